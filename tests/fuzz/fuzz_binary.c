/*
 * fuzz_binary: libFuzzer target for the binary protocol parser
 * (proto_binary_parse) and encoder (proto_binary_encode).
 *
 * The input is a client's byte stream of request packets, parsed packet
 * after packet as the server does (consume, skip swallowed bytes, stop at
 * REQ_F_CLOSE, ST_AGAIN or ST_PROTO). Each packet is checked against the
 * parser's contract and the header it came from, re-parsed from an
 * exact-size copy, and answered with a plausible response; the encoded
 * reply must be well-formed packets (magic 0x81, the request's opcode and
 * opaque, lengths that add up).
 *
 * A broken invariant prints what broke and aborts.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "proto_binary.h"
#include "request.h"

#include "fuzz_common.h"

static uint32_t
be32(const char *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return ntohl(v);
}

static uint16_t
be16(const char *p)
{
    uint16_t v;

    memcpy(&v, p, 2);
    return ntohs(v);
}

static void
check_one(const char *p, size_t rem, size_t item_max, enum status st,
          const struct request *r, size_t used, size_t need)
{
    const char *end = p + used;

    CHECK(st == ST_OK || st == ST_AGAIN || st == ST_PROTO);
    /* the magic is judged once a whole header is in, as memcached does */
    CHECK((st == ST_PROTO) ==
          (rem >= BIN_HEADER_LEN && (uint8_t)p[0] != BIN_REQ_MAGIC));
    if (st == ST_AGAIN) {
        CHECK(need >= BIN_HEADER_LEN && need > rem);
        return;
    }
    if (st != ST_OK) {
        return;
    }
    CHECK(used >= BIN_HEADER_LEN && used <= rem);
    CHECK(used <= BIN_HEADER_LEN + (size_t)be32(p + 8));
    CHECK(r->proto == PROTO_BINARY);
    CHECK(r->opcode == (uint8_t)p[1]);
    CHECK(r->opaque == be32(p + 12));
    fuzz_check_spans(r, p, end);
    CHECK(r->key == NULL || r->nkey == be16(p + 2));
    if (r->rflags & REQ_F_CLOSE) {
        CHECK(r->err != RES_NONE && used == BIN_HEADER_LEN);
    }
    CHECK(r->err != RES_NONE || r->swallow == 0);
    if (r->err != RES_NONE) {
        return;
    }
    CHECK(used == BIN_HEADER_LEN + (size_t)be32(p + 8));
    CHECK(r->key == NULL || req_key_valid(r->key, r->nkey));
    CHECK(r->nval <= item_max);
    if (req_is_get(r->cmd)) {
        CHECK(r->nkeys == 1 && r->args == r->key && r->nargs == r->nkey);
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

    st = fuzz_parse_copy(proto_binary_parse, p, used, item_max, &r2, &used2,
                         &need2);
    CHECK(st == ST_OK && used2 == used);
    CHECK(r2.cmd == r->cmd && r2.err == r->err && r2.rflags == r->rflags);
    CHECK(r2.nkey == r->nkey && r2.nval == r->nval);
    CHECK(r2.swallow == r->swallow && r2.flags == r->flags);
    CHECK(r2.exptime == r->exptime && r2.cas == r->cas);
    CHECK(r2.delta == r->delta && r2.initial == r->initial);
    if (r->err == RES_NONE) {
        /* a whole accepted packet: one byte less needs exactly it */
        st = fuzz_parse_copy(proto_binary_parse, p, used - 1, item_max, &r2,
                             &used2, &need2);
        CHECK(st == ST_AGAIN && need2 == used);
    }
}

/* Walk the encoded reply: whole packets echoing the request. */
static void
check_encode(const struct request *r, unsigned sel)
{
    struct response res;
    struct outq q;
    struct iovec iov[256];
    char *flat;
    size_t total = 0, off = 0;
    int n;

    fuzz_make_response(r, sel, true, &res);
    outq_init(&q, 64);
    CHECK(proto_binary_encode(r, &res, "1.6.18", &q) == ST_OK);
    n = outq_iov(&q, 0, iov, (int)NELEMS(iov));
    CHECK(n >= 0 && n < (int)NELEMS(iov));
    flat = malloc(q.total ? q.total : 1);
    CHECK(flat != NULL);
    for (int i = 0; i < n; i++) {
        CHECK(total + iov[i].iov_len <= q.total);
        memcpy(flat + total, iov[i].iov_base, iov[i].iov_len);
        total += iov[i].iov_len;
    }
    CHECK(total == q.total);
    while (off < total) {
        const char *h = flat + off;
        size_t body;

        CHECK(total - off >= BIN_HEADER_LEN);
        body = be32(h + 8);
        CHECK((uint8_t)h[0] == BIN_RES_MAGIC);
        CHECK((uint8_t)h[5] == 0); /* datatype */
        CHECK((size_t)be16(h + 2) + (uint8_t)h[4] <= body);
        CHECK(body <= total - off - BIN_HEADER_LEN);
        CHECK(be32(h + 12) == r->opaque);
        /* stats replies are several packets of the stat opcode */
        CHECK((uint8_t)h[1] == r->opcode);
        off += BIN_HEADER_LEN + body;
    }
    free(flat);
    outq_free(&q);
}

static void
check_accepted(const char *p, size_t used, size_t item_max,
               const struct request *r, unsigned sel)
{
    check_prefixes(p, used, item_max, r);
    check_encode(r, sel);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_request_stream(data, size, proto_binary_parse, check_one,
                        check_accepted);
    return 0;
}
