/*
 * fuzz_meta_reply: libFuzzer target for proto_meta_parse_reply, the
 * parser of what backends send.
 *
 * Input byte 0 chooses the request the replies answer: its low 5 bits
 * index cmds[] below (the commands riven sends, and a few it does not,
 * which must be ST_PROTO), bit 5 asks for the CAS, bit 6 gives a stats
 * request the "sizes_enable" argument (a one-line reply). The rest is the
 * backend's byte stream, parsed reply after reply as a handler does.
 *
 * Each reply is checked against the contract: consumed within the input,
 * val/msg/raw inside the reply, raw = the whole reply for meta commands,
 * ST_AGAIN's need beyond the input; and it is re-parsed from an
 * exact-size copy of its own bytes (same answer) and from one byte less
 * (incomplete, needing no more than the whole).
 *
 * A broken invariant prints what broke and aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto_meta.h"
#include "request.h"

#include "fuzz_common.h"

/* Seeds were made with this order: append only. */
static const enum req_cmd cmds[] = {
    REQ_GET,  REQ_GETS,    REQ_GAT,       REQ_GATS,    REQ_TOUCH,   REQ_SET,
    REQ_ADD,  REQ_REPLACE, REQ_APPEND,    REQ_PREPEND, REQ_CAS,     REQ_INCR,
    REQ_DECR, REQ_DELETE,  REQ_FLUSH_ALL, REQ_STATS,   REQ_MG,      REQ_MS,
    REQ_MD,   REQ_MA,      REQ_MN,        REQ_ME,      REQ_VERSION, REQ_NONE,
};

static int
is_meta(enum req_cmd cmd)
{
    return cmd == REQ_MG || cmd == REQ_MS || cmd == REQ_MD || cmd == REQ_MA ||
           cmd == REQ_ME;
}

static int
is_sent(enum req_cmd cmd)
{
    return cmd != REQ_VERSION && cmd != REQ_NONE;
}

static enum status
parse_copy(const struct request *req, const char *buf, size_t len,
           struct response *res, size_t *used, size_t *need)
{
    char *copy = fuzz_dup(buf, len);
    enum status st = proto_meta_parse_reply(req, copy, len, res, used, need);

    free(copy); /* res's pointers dangle from here: compare values only */
    return st;
}

static void
check_one(const struct request *req, const char *p, size_t rem, enum status st,
          const struct response *res, size_t used, size_t need)
{
    const char *end = p + used;
    bool ok = fuzz_check_line_status(st, rem, used, need);

    if (!is_sent(req->cmd)) {
        CHECK(st == ST_PROTO);
    }
    if (!ok) {
        return;
    }
    CHECK(end[-1] == '\n');
    CHECK(res->kind != RES_NONE);
    CHECK(res->val == NULL || fuzz_inside(res->val, res->nval, p, end));
    CHECK(res->msg == NULL || fuzz_inside(res->msg, res->nmsg, p, end));
    CHECK(res->raw == NULL || fuzz_inside(res->raw, res->nraw, p, end));
    if (is_meta(req->cmd)) {
        CHECK(res->raw == p && res->nraw == used);
    }
    if (res->kind == RES_NUMBER && (res->val != NULL || !is_meta(req->cmd))) {
        /* incr/decr always carry the number; ma only with its v flag */
        CHECK(res->val != NULL && res->nval > 0 && res->nval <= 20);
        for (size_t i = 0; i < res->nval; i++) {
            CHECK(res->val[i] >= '0' && res->val[i] <= '9');
        }
    }
    if (res->kind == RES_VALUE && !is_meta(req->cmd)) {
        /* classic get: the value and its "\r\n" end the reply */
        CHECK(res->val != NULL && res->val + res->nval + 2 == end);
        CHECK(end[-2] == '\r');
    }
}

/* The parser must decide from the consumed bytes alone. */
static void
check_prefixes(const struct request *req, const char *p, size_t used,
               const struct response *res)
{
    struct response r2;
    size_t used2 = 0, need2 = 0;
    enum status st;

    st = parse_copy(req, p, used, &r2, &used2, &need2);
    CHECK(st == ST_OK && used2 == used);
    CHECK(r2.kind == res->kind && r2.flags == res->flags && r2.cas == res->cas);
    CHECK(r2.nval == res->nval && r2.nmsg == res->nmsg && r2.nraw == res->nraw);

    /* A reply cut short (a read that split it) is incomplete, never
     * an error: the handler would reset a healthy backend. */
    st = parse_copy(req, p, used - 1, &r2, &used2, &need2);
    CHECK(st == ST_AGAIN);
    CHECK(need2 == 0 || (need2 > used - 1 && need2 <= used));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct request req;
    const char *buf;
    size_t off = 0;

    if (size < 1) {
        return 0;
    }
    memset(&req, 0, sizeof(req));
    req.cmd = cmds[(data[0] & 0x1f) % NELEMS(cmds)];
    if (data[0] & 0x20) {
        req.rflags |= REQ_F_RET_CAS;
    }
    if (req.cmd == REQ_STATS && (data[0] & 0x40)) {
        req.args = "sizes_enable";
        req.nargs = strlen(req.args);
    }
    buf = (const char *)data + 1;
    size--;
    while (off < size) {
        struct response res;
        size_t used = 0, need = 0, rem = size - off;
        enum status st;

        memset(&res, 0, sizeof(res));
        st = proto_meta_parse_reply(&req, buf + off, rem, &res, &used, &need);
        check_one(&req, buf + off, rem, st, &res, used, need);
        if (st != ST_OK) {
            break;
        }
        check_prefixes(&req, buf + off, used, &res);
        off += used;
    }
    return 0;
}
