/*
 * fuzz_meta_request: libFuzzer target for the client-side meta parser
 * (proto_meta_parse_request) and the backend request it turns into
 * (proto_meta_encode_request), plus the client reply (proto_meta_encode_
 * reply).
 *
 * The input is a client's byte stream of meta commands, parsed command
 * after command as the server does. Each command is checked against the
 * parser's contract, re-parsed from an exact-size copy of its own bytes
 * and from one byte less, and an accepted command is encoded for the
 * backend: that line must parse again as the same command with the same
 * key and value, without the q flag.
 *
 * A broken invariant prints what broke and aborts.
 */
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "proto_meta.h"
#include "request.h"

#include "fuzz_common.h"

static int
is_meta(enum req_cmd cmd)
{
    return cmd == REQ_MG || cmd == REQ_MS || cmd == REQ_MD || cmd == REQ_MA ||
           cmd == REQ_MN || cmd == REQ_ME;
}

static void
check_one(const char *p, size_t rem, size_t item_max, enum status st,
          const struct request *r, size_t used, size_t need)
{
    const char *end = p + used;

    if (!fuzz_check_line_status(st, rem, used, need)) {
        return;
    }
    fuzz_check_spans(r, p, end);
    CHECK(r->err != RES_NONE || r->swallow == 0);
    if (r->err != RES_NONE) {
        return;
    }
    CHECK(r->proto == PROTO_META);
    CHECK(is_meta(r->cmd));
    if (r->cmd != REQ_MN) {
        CHECK(r->key != NULL && r->nkey > 0);
    }
    if (r->cmd == REQ_MS) {
        CHECK(r->val != NULL && r->nval <= item_max);
        CHECK(r->val + r->nval + 2 == end);
        CHECK(end[-2] == '\r' && end[-1] == '\n');
    } else {
        CHECK(end[-1] == '\n');
    }
}

/* What goes to the backend parses back as the same command, q removed. */
static void
check_backend_request(const struct request *r)
{
    struct buf b;
    struct request r2;
    size_t used = 0, need = 0;
    enum status st;

    buf_init(&b, 64);
    st = proto_meta_encode_request(r, &b);
    /* mn is answered by riven; everything else accepted must be sendable */
    CHECK(st == ST_OK || (st == ST_ERROR && r->cmd == REQ_MN));
    if (st == ST_OK) {
        size_t n = buf_len(&b);

        CHECK(n >= 2 && b.pos[n - 2] == '\r' && b.pos[n - 1] == '\n');
        CHECK(proto_meta_parse_request(b.pos, n, SIZE_MAX, &r2, &used, &need) ==
              ST_OK);
        CHECK(used == n);
        CHECK(r2.err == RES_NONE);
        CHECK(r2.cmd == r->cmd);
        CHECK(!(r2.rflags & REQ_F_QUIET));
        CHECK((r2.rflags & REQ_F_B64KEY) == (r->rflags & REQ_F_B64KEY));
        CHECK(r2.nkey == r->nkey);
        CHECK(r->nkey == 0 || memcmp(r2.key, r->key, r->nkey) == 0);
        CHECK(r2.nval == r->nval);
        CHECK(r->nval == 0 || memcmp(r2.val, r->val, r->nval) == 0);
    }
    buf_free(&b);
}

static void
check_client_reply(const struct request *r, unsigned sel)
{
    static const char *const raws[] = {
        "HD\r\n",
        "EN\r\n",
        "NS\r\n",
        "EX\r\n",
        "NF\r\n",
        "VA 3 f0\r\nabc\r\n",
        "ME foo exp=-1 la=1 cas=2 fetch=no\r\n",
        "SERVER_ERROR out of memory\r\n",
    };
    static const enum res_kind kinds[] = {
        RES_STORED,    RES_MISS,  RES_NOT_STORED, RES_EXISTS,
        RES_NOT_FOUND, RES_VALUE, RES_RAW,        RES_SERVER_ERROR,
    };
    struct response res;
    struct outq q;
    size_t i = sel % NELEMS(raws);

    memset(&res, 0, sizeof(res));
    if (r->err != RES_NONE) {
        res_set_error(&res, r->err, r->errmsg);
    } else if (sel % 11 == 0) { /* a backend failure, answered locally */
        res_set_fail(&res, FAIL_BACKEND_UNAVAILABLE);
    } else {
        res.kind = kinds[i];
        res.raw = raws[i];
        res.nraw = strlen(raws[i]);
    }
    outq_init(&q, 64);
    CHECK(proto_meta_encode_reply(r, &res, &q) == ST_OK);
    CHECK(q.total <= 64 + res.nraw + (res.msg ? res.nmsg : 0));
    outq_free(&q);
}

/* The parser must decide from the consumed bytes alone; what it accepted
 * goes to a backend and back to the client. */
static void
check_accepted(const char *p, size_t used, size_t item_max,
               const struct request *r, unsigned sel)
{
    struct request again;

    fuzz_check_line_prefixes(proto_meta_parse_request, p, used, item_max,
                             META_LINE_MAX, r, &again);
    if (r->err == RES_NONE) {
        check_backend_request(r);
    }
    check_client_reply(r, sel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_request_stream(data, size, proto_meta_parse_request, check_one,
                        check_accepted);
    return 0;
}
