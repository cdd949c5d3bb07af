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
#include <string.h>

#include "buf.h"
#include "proto_text.h"
#include "request.h"

#include "fuzz_common.h"

static void
check_keys(const struct request *r)
{
    const char *cur = r->args;
    const char *key = NULL;
    size_t nkey = 0;
    uint32_t n = 0;

    CHECK(r->args != NULL && r->nargs > 0);
    while (util_next_token(&cur, r->args + r->nargs, &key, &nkey)) {
        CHECK(fuzz_inside(key, nkey, r->args, r->args + r->nargs));
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

    fuzz_make_response(r, sel, false, &res);
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

    if (!fuzz_check_line_status(st, rem, used, need)) {
        return;
    }
    CHECK(r->proto == PROTO_TEXT);
    fuzz_check_spans(r, p, end);
    CHECK(r->err != RES_NONE || r->swallow == 0);
    CHECK(r->err == RES_NONE || r->err == RES_ERROR || r->err == RES_MISS ||
          r->err == RES_CLIENT_ERROR || r->err == RES_SERVER_ERROR ||
          r->err == RES_QUIT);
    /* RES_QUIT is memcached's hang-up on an HTTP line: no command, close */
    CHECK(r->err != RES_QUIT ||
          (r->cmd == REQ_NONE && (r->rflags & REQ_F_CLOSE)));
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

/* The parser must decide from the consumed bytes alone; a response is
 * encoded for what it accepted. */
static void
check_accepted(const char *p, size_t used, size_t item_max,
               const struct request *r, unsigned sel)
{
    struct request again;

    fuzz_check_line_prefixes(proto_text_parse, p, used, item_max, TEXT_LINE_MAX,
                             r, &again);
    CHECK(again.nkeys == r->nkeys);
    check_encode(r, sel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_request_stream(data, size, proto_text_parse, check_one,
                        check_accepted);
    return 0;
}
