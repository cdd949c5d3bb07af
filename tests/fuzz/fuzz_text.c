/*
 * fuzz_text: libFuzzer target for the classic ASCII parser and encoder.
 *
 * The input is a client's byte stream. It is parsed command after command,
 * as the server does with its read buffer: consume, skip swallowed data,
 * stop at ST_AGAIN or ST_PROTO. Every parsed command is checked against
 * proto_text_parse's contract, re-parsed from an exact-size copy of its own
 * bytes (the parser must not look past what it consumed) and from one byte
 * less (which must be incomplete), its get keys are walked with
 * util_next_token, and a plausible response is encoded.
 *
 * A broken invariant prints what broke and aborts, so libFuzzer saves the
 * input as a crash.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "proto_text.h"
#include "request.h"

#define ITEM_MAX (1024u * 1024u)

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_text: invariant failed: %s (%s:%d)\n",       \
                    #cond, __FILE__, __LINE__);                                \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* True if [p, p+n) lies inside [lo, hi). */
static int
inside(const char *p, size_t n, const char *lo, const char *hi)
{
    return p >= lo && p <= hi && n <= (size_t)(hi - p);
}

/* Parse buf[0..len) from an exact-size heap copy, so ASan sees over-reads. */
static enum status
parse_copy(const char *buf, size_t len, size_t item_max, struct request *r,
           size_t *used, size_t *need)
{
    char *copy = malloc(len ? len : 1);
    enum status st;

    CHECK(copy != NULL);
    memcpy(copy, buf, len);
    st = proto_text_parse(copy, len, item_max, r, used, need);
    free(copy); /* r's pointers dangle from here: compare values only */
    return st;
}

static void
check_keys(const struct request *r)
{
    const char *cur = r->args;
    const char *key = NULL;
    size_t nkey = 0;
    uint32_t n = 0;

    CHECK(r->args != NULL && r->nargs > 0);
    while (util_next_token(&cur, r->args + r->nargs, &key, &nkey)) {
        CHECK(inside(key, nkey, r->args, r->args + r->nargs));
        CHECK(cur <= r->args + r->nargs);
        CHECK(req_key_valid(key, nkey));
        if (n == 0) {
            CHECK(key == r->key && nkey == r->nkey);
        }
        n++;
    }
    CHECK(cur == r->args + r->nargs);
    CHECK(n == r->nkeys);
}

/* A response a backend could have produced for r; sel varies it. */
static void
make_response(const struct request *r, unsigned sel, struct response *res)
{
    static const char val[] = "0123456789abcdef\r\nEND\r\n";
    static const char stats[] = "STAT pid 1\r\nEND\r\n";

    memset(res, 0, sizeof(*res));
    if (r->err != RES_NONE) {
        res_set_error(res, r->err, r->errmsg);
        return;
    }
    if (sel % 7 == 0) {
        res_set_error(res, RES_SERVER_ERROR, MSG_BACKEND_TIMEOUT);
        return;
    }
    switch (r->cmd) {
    case REQ_GET:
    case REQ_GETS:
    case REQ_GAT:
    case REQ_GATS:
        res->kind = sel & 1 ? RES_MISS : RES_VALUE;
        res->val = val;
        res->nval = sel % sizeof(val);
        res->flags = sel;
        res->cas = (uint64_t)sel * 0x9e3779b97f4a7c15u;
        break;
    case REQ_INCR:
    case REQ_DECR:
        res->kind = sel & 1 ? RES_NOT_FOUND : RES_NUMBER;
        res->val = "18446744073709551615";
        res->nval = 1 + sel % 20;
        break;
    case REQ_DELETE:
        res->kind = sel & 1 ? RES_NOT_FOUND : RES_DELETED;
        break;
    case REQ_TOUCH:
        res->kind = sel & 1 ? RES_NOT_FOUND : RES_TOUCHED;
        break;
    case REQ_STATS:
        res->kind = RES_RAW;
        res->val = stats;
        res->nval = sizeof(stats) - 1;
        break;
    case REQ_VERSION:
        res->kind = RES_VERSION;
        break;
    case REQ_QUIT:
        res->kind = RES_QUIT;
        break;
    case REQ_FLUSH_ALL:
    case REQ_VERBOSITY:
        res->kind = RES_OK;
        break;
    default: /* storage */
        res->kind = (enum res_kind)(RES_STORED + sel % 4);
        break;
    }
}

static void
check_encode(const struct request *r, unsigned sel)
{
    struct response res;
    struct outq q;
    struct iovec iov[64];
    size_t total = 0;
    char last2[2] = {0, 0};
    size_t have = 0;
    int n;

    make_response(r, sel, &res);
    outq_init(&q, 64);
    CHECK(proto_text_encode(r, &res, "1.6.18", &q) == ST_OK);
    if (r->rflags & REQ_F_NOREPLY) {
        CHECK(q.total == 0);
    }
    n = outq_iov(&q, 0, iov, (int)NELEMS(iov));
    CHECK(n >= 0);
    for (int i = 0; i < n; i++) {
        const char *b = iov[i].iov_base;

        total += iov[i].iov_len;
        for (size_t j = 0; j < iov[i].iov_len; j++) {
            last2[0] = last2[1];
            last2[1] = b[j];
            have++;
        }
    }
    if (n < (int)NELEMS(iov)) {
        CHECK(total == q.total);
    }
    /* Every text reply is whole lines. */
    if (total > 0 && total == q.total) {
        CHECK(have >= 2 && last2[0] == '\r' && last2[1] == '\n');
    }
    outq_free(&q);
}

static void
check_one(const char *p, size_t rem, size_t item_max, enum status st,
          const struct request *r, size_t used, size_t need)
{
    const char *end = p + used;

    CHECK(st == ST_OK || st == ST_AGAIN || st == ST_PROTO);
    if (st == ST_AGAIN) {
        CHECK(need == 0 || need > rem);
        return;
    }
    if (st != ST_OK) {
        return;
    }
    CHECK(used > 0 && used <= rem);
    CHECK(r->proto == PROTO_TEXT);
    CHECK(r->key == NULL || inside(r->key, r->nkey, p, end));
    CHECK(r->val == NULL || inside(r->val, r->nval, p, end));
    CHECK(r->args == NULL || inside(r->args, r->nargs, p, end));
    CHECK(r->err != RES_NONE || r->swallow == 0);
    CHECK(r->err == RES_NONE || r->err == RES_ERROR || r->err == RES_MISS ||
          r->err == RES_CLIENT_ERROR || r->err == RES_SERVER_ERROR);
    if (r->rflags & REQ_F_TOOLARGE) {
        CHECK(r->err == RES_SERVER_ERROR);
    }
    if (r->err != RES_NONE) {
        return;
    }
    if (req_is_get(r->cmd)) {
        check_keys(r);
    } else if (r->key != NULL) {
        CHECK(req_key_valid(r->key, r->nkey));
    }
    if (req_is_storage(r->cmd)) {
        CHECK(r->key != NULL && r->val != NULL);
        CHECK(r->nval <= item_max);
        /* the data block and its "\r\n" end the command */
        CHECK(r->val + r->nval + 2 == end);
        CHECK(end[-2] == '\r' && end[-1] == '\n');
    }
}

/* The parser must decide from the consumed bytes alone. */
static void
check_prefixes(const char *p, size_t used, size_t item_max,
               const struct request *r)
{
    struct request r2;
    size_t used2 = 0, need2 = 0;
    enum status st;

    st = parse_copy(p, used, item_max, &r2, &used2, &need2);
    CHECK(st == ST_OK);
    CHECK(used2 == used);
    CHECK(r2.cmd == r->cmd && r2.err == r->err && r2.rflags == r->rflags);
    CHECK(r2.nkey == r->nkey && r2.nval == r->nval && r2.nargs == r->nargs);
    CHECK(r2.swallow == r->swallow && r2.nkeys == r->nkeys);

    /* One byte less is incomplete (or, past TEXT_LINE_MAX without a
     * newline, unframeable), and never needs more than the whole. */
    st = parse_copy(p, used - 1, item_max, &r2, &used2, &need2);
    CHECK(st == ST_AGAIN || (st == ST_PROTO && used - 1 > TEXT_LINE_MAX));
    if (st == ST_AGAIN) {
        CHECK(need2 == 0 || (need2 > used - 1 && need2 <= used));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    size_t off = 0;
    unsigned sel = 0;
    /* Small item limits reach the too-large paths with small inputs. */
    size_t item_max = size > 0 && (data[size - 1] & 1) ? 64 : ITEM_MAX;

    while (off < size) {
        struct request r;
        size_t used = 0, need = 0, rem = size - off;
        enum status st;

        st = proto_text_parse(buf + off, rem, item_max, &r, &used, &need);
        check_one(buf + off, rem, item_max, st, &r, used, need);
        if (st != ST_OK) {
            break;
        }
        check_prefixes(buf + off, used, item_max, &r);
        check_encode(&r, sel++ ^ (unsigned)used);
        off += used;
        off += MIN(r.swallow, size - off);
    }
    return 0;
}
