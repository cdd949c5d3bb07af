/*
 * test_request: what the text and meta protocols share, apart from their
 * parsers: the command line and its tokens, the framing of a storage
 * command's data block, fed at every split point, each from a buffer of
 * exactly the bytes given (so ASan sees any read past them), and the
 * status and error lines, checked byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <cmocka.h>

#include "buf.h"
#include "request.h"

#define S(lit) (lit), (sizeof(lit) - 1) /* literal -> pointer, length */

static const struct line_case {
    const char *in; /* up to and with its '\n' */
    size_t len;
    size_t maxtok;
    size_t n;                              /* the command's bytes */
    const char *toks[REQ_LINE_TOKENS + 1]; /* NULL-terminated */
} line_cases[] = {
    {S("get a  b\r\n"), REQ_LINE_TOKENS, 8, {"get", "a", "b"}},
    {S("  get   a  \n"), REQ_LINE_TOKENS, 11, {"get", "a"}},
    {S("mn\n"), REQ_LINE_TOKENS, 2, {"mn"}},
    {S("\n"), REQ_LINE_TOKENS, 0, {NULL}},
    {S("   \r\n"), REQ_LINE_TOKENS, 3, {NULL}},
    {S("\r\n"), REQ_LINE_TOKENS, 1, {"\r"}}, /* a lone '\r' stays */
    {S("a\r\r\n"), REQ_LINE_TOKENS, 2, {"a\r"}},
    {S("a\rb\n"), REQ_LINE_TOKENS, 3, {"a\rb"}},
    {S("set k\0 junk\r\n"), REQ_LINE_TOKENS, 5, {"set", "k"}},
    {S("\0get a\r\n"), REQ_LINE_TOKENS, 0, {NULL}},
    {S("a\tb c\n"), REQ_LINE_TOKENS, 5, {"a\tb", "c"}}, /* spaces only */
    {S("a b c d\r\n"), 2, 7, {"a", "b"}},
    {S("a b c d\r\n"), 0, 7, {NULL}},
    {S("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24\n"),
     REQ_LINE_TOKENS,
     62,
     {"1",  "2",  "3",  "4",  "5",  "6",  "7",  "8",  "9",  "10", "11", "12",
      "13", "14", "15", "16", "17", "18", "19", "20", "21", "22", "23"}},
};

static void
test_line_split(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEMS(line_cases); i++) {
        const struct line_case *c = &line_cases[i];
        char *buf = malloc(c->len);
        struct req_line l;
        size_t nt = 0;

        assert_non_null(buf);
        memcpy(buf, c->in, c->len);
        memset(&l, 0xa5, sizeof(l));
        req_line_split(buf, buf + c->len - 1, c->maxtok, &l);
        assert_ptr_equal(l.p, buf);
        assert_int_equal(l.size, c->len);
        assert_int_equal(l.n, c->n);
        while (c->toks[nt] != NULL) {
            nt++;
        }
        assert_int_equal(l.nt, nt);
        for (size_t k = 0; k < nt; k++) {
            assert_int_equal(l.t[k].n, strlen(c->toks[k]));
            assert_memory_equal(l.t[k].p, c->toks[k], l.t[k].n);
            assert_true(l.t[k].p >= buf && l.t[k].p + l.t[k].n <= l.p + l.n);
        }
        free(buf);
    }
}

#define LINE "set k 0 0 N\r\n" /* stands for any command line */

static const struct block_case {
    const char *block;  /* the bytes after the line */
    size_t vlen;        /* the <bytes> the line announced */
    size_t max;         /* item_size_max */
    enum res_kind err0; /* out->err before the call */
    enum res_kind err;  /* out->err after */
    const char *errmsg;
    size_t swallow; /* out->swallow after */
} block_cases[] = {
    {"hello\r\n", 5, 1024, RES_NONE, RES_NONE, NULL, 0},
    {"\r\n", 0, 1024, RES_NONE, RES_NONE, NULL, 0},
    {"a\r\nb\r\n", 4, 4, RES_NONE, RES_NONE, NULL, 0}, /* max is inclusive */
    {"hello\n\n", 5, 1024, RES_NONE, RES_CLIENT_ERROR, MSG_BAD_CHUNK, 0},
    {"helloXY", 5, 1024, RES_NONE, RES_CLIENT_ERROR, MSG_BAD_CHUNK, 0},
    {"hello\r\r", 5, 1024, RES_NONE, RES_CLIENT_ERROR, MSG_BAD_CHUNK, 0},
    {"hello\r\n", 5, 4, RES_NONE, RES_SERVER_ERROR, MSG_TOO_LARGE, 7},
    /* refused before (a bad meta flag): swallowed, size not looked at */
    {"hello\r\n", 5, 4, RES_CLIENT_ERROR, RES_CLIENT_ERROR, "x", 7},
    {"hello\r\n", 5, 1024, RES_CLIENT_ERROR, RES_CLIENT_ERROR, "x", 7},
};

/* One call on exactly line + block[0..n). */
static enum status
frame(const struct block_case *c, size_t n, struct request *out,
      size_t *consumed, size_t *need)
{
    size_t nline = sizeof(LINE) - 1;
    char *buf = malloc(nline + n + 1);
    enum status st;

    assert_non_null(buf);
    memcpy(buf, LINE, nline);
    memcpy(buf + nline, c->block, n);
    memset(out, 0, sizeof(*out));
    if (c->err0 != RES_NONE) {
        out->err = c->err0;
        out->errmsg = "x";
    }
    *consumed = nline; /* as the parsers leave it: the line is used */
    *need = 0;
    st = req_data_block(buf, nline + n, nline, c->vlen, c->max, out, consumed,
                        need);
    if (st == ST_OK && out->val != NULL) {
        /* the value points into buf: check it before buf goes */
        assert_ptr_equal(out->val, buf + nline);
        assert_memory_equal(out->val, c->block, c->vlen);
    }
    free(buf);
    return st;
}

static void
test_data_block(void **state)
{
    size_t nline = sizeof(LINE) - 1;

    (void)state;
    for (size_t i = 0; i < NELEMS(block_cases); i++) {
        const struct block_case *c = &block_cases[i];
        size_t total = c->vlen + 2;

        for (size_t n = 0; n <= total; n++) {
            struct request out;
            size_t consumed, need;
            enum status st = frame(c, n, &out, &consumed, &need);

            if (c->swallow > 0) { /* answered at once, whatever follows */
                assert_int_equal(st, ST_OK);
                assert_int_equal(out.err, c->err);
                assert_string_equal(out.errmsg, c->errmsg);
                assert_int_equal(out.swallow, c->swallow);
                assert_int_equal(consumed, nline);
                assert_int_equal(need, 0);
                assert_null(out.val);
                assert_int_equal((out.rflags & REQ_F_TOOLARGE) != 0,
                                 c->err0 == RES_NONE &&
                                     c->err == RES_SERVER_ERROR);
                continue;
            }
            if (n < total) {
                assert_int_equal(st, ST_AGAIN);
                assert_int_equal(consumed, 0);
                assert_int_equal(need, nline + total);
                continue;
            }
            assert_int_equal(st, ST_OK);
            assert_int_equal(consumed, nline + total);
            assert_int_equal(need, 0);
            assert_int_equal(out.swallow, 0);
            assert_int_equal(out.rflags, 0);
            assert_int_equal(out.err, c->err);
            if (c->err == RES_NONE) {
                assert_int_equal(out.nval, c->vlen);
                assert_null(out.errmsg);
            } else {
                assert_string_equal(out.errmsg, c->errmsg);
                assert_null(out.val);
            }
        }
    }
}

/* res_encode_line into a fresh queue: exactly want[0..n). */
static void
line_expect(const char *prefix, size_t nprefix, const char *msg, size_t nmsg,
            const char *want, size_t n)
{
    struct outq q;
    struct iovec iov[8];
    char got[256];
    size_t len = 0;
    int k;

    outq_init(&q, 16);
    assert_int_equal(res_encode_line(&q, prefix, nprefix, msg, nmsg), ST_OK);
    k = outq_iov(&q, 0, iov, 8);
    for (int i = 0; i < k; i++) {
        assert_true(len + iov[i].iov_len <= sizeof(got));
        memcpy(got + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    assert_int_equal(len, n);
    assert_int_equal(q.total, n);
    assert_memory_equal(got, want, n);
    outq_free(&q);
}

static void
test_encode_line(void **state)
{
    (void)state;
    line_expect(S("CLIENT_ERROR"), S(MSG_BAD_CHUNK),
                S("CLIENT_ERROR bad data chunk\r\n"));
    line_expect(S("SERVER_ERROR"), S(MSG_TOO_LARGE),
                S("SERVER_ERROR object too large for cache\r\n"));
    line_expect(S("HD"), NULL, 0, S("HD\r\n"));
    line_expect(S("SERVER_ERROR"), "ignored", 0, S("SERVER_ERROR\r\n"));
    line_expect(S("VERSION"), S("1.2.3"), S("VERSION 1.2.3\r\n"));
    line_expect(S("18446744073709551615"), NULL, 0,
                S("18446744073709551615\r\n")); /* an incr result */
    /* only msg[0..nmsg): the rest of a backend's line is not copied */
    line_expect(S("CLIENT_ERROR"), "bad\r\nEND\r\n", 3,
                S("CLIENT_ERROR bad\r\n"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_split),
        cmocka_unit_test(test_data_block),
        cmocka_unit_test(test_encode_line),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
