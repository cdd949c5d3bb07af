/*
 * fuzz_common: what the libFuzzer targets share. Each target is built
 * from its own tests/fuzz/fuzz_*.c alone (Makefile, "make fuzz"), so this
 * is a header of static inline functions rather than a library.
 *
 * CHECK(cond): a broken invariant prints what broke and aborts, so
 * libFuzzer saves the input as a crash.
 *
 * The request targets (text, binary, meta) run their input through
 * fuzz_request_stream: the input is a client's byte stream, parsed
 * request after request as the server does with its read buffer
 * (consume, skip swallowed bytes, stop at ST_AGAIN, ST_PROTO or
 * REQ_F_CLOSE), each result handed to the target's checks.
 */
#ifndef RIVEN_FUZZ_COMMON_H
#define RIVEN_FUZZ_COMMON_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s: invariant failed: %s (%s:%d)\n",              \
                    program_invocation_short_name, #cond, __FILE__, __LINE__); \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define FUZZ_ITEM_MAX (1024u * 1024u)

/* True if [p, p+n) lies inside [lo, hi). */
static inline bool
fuzz_inside(const char *p, size_t n, const char *lo, const char *hi)
{
    return p >= lo && p <= hi && n <= (size_t)(hi - p);
}

/* An exact-size heap copy of buf[0..len), so ASan sees over-reads of a
 * parser given it. The caller frees it. */
static inline char *
fuzz_dup(const char *buf, size_t len)
{
    char *copy = malloc(len ? len : 1);

    CHECK(copy != NULL);
    memcpy(copy, buf, len);
    return copy;
}

/* proto_text_parse, proto_binary_parse, proto_meta_parse_request. */
typedef enum status (*fuzz_parse_fn)(const char *buf, size_t len,
                                     size_t item_max, struct request *r,
                                     size_t *used, size_t *need);

/* parse buf[0..len) from an exact-size copy. r's pointers dangle once
 * this returns: compare values only. */
static inline enum status
fuzz_parse_copy(fuzz_parse_fn parse, const char *buf, size_t len,
                size_t item_max, struct request *r, size_t *used, size_t *need)
{
    char *copy = fuzz_dup(buf, len);
    enum status st = parse(copy, len, item_max, r, used, need);

    free(copy);
    return st;
}

/* key, value and arguments of a parsed request lie in its bytes. */
static inline void
fuzz_check_spans(const struct request *r, const char *p, const char *end)
{
    CHECK(r->key == NULL || fuzz_inside(r->key, r->nkey, p, end));
    CHECK(r->val == NULL || fuzz_inside(r->val, r->nval, p, end));
    CHECK(r->args == NULL || fuzz_inside(r->args, r->nargs, p, end));
}

/* The status contract of the line parsers (text and meta, requests and
 * replies) for rem bytes: ST_AGAIN needs more than rem (or an amount not
 * known yet, 0); ST_OK consumed something within rem. true for ST_OK,
 * whose request or reply the caller checks further. */
static inline bool
fuzz_check_line_status(enum status st, size_t rem, size_t used, size_t need)
{
    CHECK(st == ST_OK || st == ST_AGAIN || st == ST_PROTO);
    if (st == ST_AGAIN) {
        CHECK(need == 0 || need > rem);
    }
    if (st != ST_OK) {
        return false;
    }
    CHECK(used > 0 && used <= rem);
    return true;
}

/* The line parsers must decide from the consumed bytes alone: p[0..used)
 * parses again to the same request (into *again, for the caller's own
 * comparisons), and one byte less is incomplete (or, past line_max
 * without a newline, unframeable) and never needs more than the whole. */
static inline void
fuzz_check_line_prefixes(fuzz_parse_fn parse, const char *p, size_t used,
                         size_t item_max, size_t line_max,
                         const struct request *r, struct request *again)
{
    struct request r2;
    size_t used2 = 0, need2 = 0;
    enum status st;

    st = fuzz_parse_copy(parse, p, used, item_max, again, &used2, &need2);
    CHECK(st == ST_OK);
    CHECK(used2 == used);
    CHECK(again->cmd == r->cmd && again->err == r->err &&
          again->rflags == r->rflags);
    CHECK(again->nkey == r->nkey && again->nval == r->nval &&
          again->nargs == r->nargs);
    CHECK(again->swallow == r->swallow);

    st = fuzz_parse_copy(parse, p, used - 1, item_max, &r2, &used2, &need2);
    CHECK(st == ST_AGAIN || (st == ST_PROTO && used - 1 > line_max));
    if (st == ST_AGAIN) {
        CHECK(need2 == 0 || (need2 > used - 1 && need2 <= used));
    }
}

/* A value reply (or a miss, as sel says) with a prefix of val. */
static inline void
fuzz_value_response(struct response *res, const char *val, size_t valsize,
                    unsigned sel)
{
    res->kind = sel & 1 ? RES_MISS : RES_VALUE;
    res->val = val;
    res->nval = sel % valsize;
    res->flags = sel;
    res->cas = (uint64_t)sel * 0x9e3779b97f4a7c15u;
}

/* A response a backend could have produced for r; sel varies it. binary:
 * as the binary protocol sees it (touch answers with the value, noop,
 * version and quit with nothing of their own, a stored item has a CAS);
 * else as the text one (r's own error first, touch TOUCHED, version and
 * quit their kinds). */
static inline void
fuzz_make_response(const struct request *r, unsigned sel, bool binary,
                   struct response *res)
{
    static const char bval[] = "0123456789abcdef";
    static const char tval[] = "0123456789abcdef\r\nEND\r\n";
    static const char bstats[] = "STAT pid 1\r\nSTAT uptime 22\r\nEND\r\n";
    static const char tstats[] = "STAT pid 1\r\nEND\r\n";

    memset(res, 0, sizeof(*res));
    if (!binary && r->err != RES_NONE) {
        res_set_error(res, r->err, r->errmsg);
        return;
    }
    if (sel % 7 == 0) {
        res_set_fail(res, FAIL_BACKEND_TIMEOUT);
        return;
    }
    switch (r->cmd) {
    case REQ_GET:
    case REQ_GETS:
    case REQ_GAT:
    case REQ_GATS:
        if (binary) {
            fuzz_value_response(res, bval, sizeof(bval), sel);
        } else {
            fuzz_value_response(res, tval, sizeof(tval), sel);
        }
        break;
    case REQ_TOUCH:
        if (binary) {
            fuzz_value_response(res, bval, sizeof(bval), sel);
        } else {
            res->kind = sel & 1 ? RES_NOT_FOUND : RES_TOUCHED;
        }
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
    case REQ_STATS:
        res->kind = RES_RAW;
        res->val = binary ? bstats : tstats;
        res->nval = binary ? sizeof(bstats) - 1 : sizeof(tstats) - 1;
        break;
    case REQ_FLUSH_ALL:
    case REQ_VERBOSITY:
        res->kind = RES_OK;
        break;
    case REQ_VERSION:
        res->kind = binary ? RES_NONE : RES_VERSION;
        break;
    case REQ_QUIT:
        res->kind = binary ? RES_NONE : RES_QUIT;
        break;
    case REQ_NOOP:
        if (binary) {
            res->kind = RES_NONE;
            break;
        }
        /* text has no noop: a storage command's answer, as below */
        res->kind = (enum res_kind)(RES_STORED + sel % 4);
        break;
    default: /* storage */
        res->kind = (enum res_kind)(RES_STORED + sel % 4);
        if (binary) {
            res->cas = sel;
        }
        break;
    }
}

/* Checks of every parse of the rem bytes at p (any status). */
typedef void (*fuzz_check_one_fn)(const char *p, size_t rem, size_t item_max,
                                  enum status st, const struct request *r,
                                  size_t used, size_t need);

/* Checks of a request parsed ST_OK from p[0..used); sel varies the
 * responses made up for it. */
typedef void (*fuzz_check_accepted_fn)(const char *p, size_t used,
                                       size_t item_max, const struct request *r,
                                       unsigned sel);

/* Parse data request after request as the server does (see the top);
 * the input's last bit picks a small or the usual item size limit. */
static inline void
fuzz_request_stream(const uint8_t *data, size_t size, fuzz_parse_fn parse,
                    fuzz_check_one_fn check_one,
                    fuzz_check_accepted_fn check_accepted)
{
    const char *buf = (const char *)data;
    size_t off = 0;
    unsigned sel = 0;
    /* Small item limits reach the too-large paths with small inputs. */
    size_t item_max = size > 0 && (data[size - 1] & 1) ? 64 : FUZZ_ITEM_MAX;

    while (off < size) {
        struct request r;
        size_t used = 0, need = 0, rem = size - off;
        enum status st;

        st = parse(buf + off, rem, item_max, &r, &used, &need);
        check_one(buf + off, rem, item_max, st, &r, used, need);
        if (st != ST_OK) {
            break;
        }
        check_accepted(buf + off, used, item_max, &r, sel++ ^ (unsigned)used);
        if (r.rflags & REQ_F_CLOSE) { /* only the binary parser sets it */
            break;
        }
        off += used;
        off += MIN(r.swallow, size - off);
    }
}

#endif /* RIVEN_FUZZ_COMMON_H */
