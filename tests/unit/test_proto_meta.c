/*
 * Unit tests for proto_meta: exact bytes of every encoded backend command,
 * every reply decoded at every split point, every client meta request
 * parsed at every split point and passed through, and the replies meta
 * clients get (q hiding). Reply inputs, error texts and q rules are bytes
 * captured from memcached 1.6.18 (`memcached -U 0 -l 127.0.0.1`) unless
 * marked "synthetic".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "proto_meta.h"
#include "request.h"

#define S(lit) (lit), sizeof(lit) - 1

/* ---- encoding ---- */

struct enc_case {
    const char *name;
    struct request req;
    const char *want;
};

#define KEY(k)  .key = (k), .nkey = sizeof(k) - 1
#define VAL(v)  .val = (v), .nval = sizeof(v) - 1
#define ARGS(a) .args = (a), .nargs = sizeof(a) - 1

static const struct enc_case enc_cases[] = {
    {"get", {.cmd = REQ_GET, KEY("foo")}, "mg foo f v\r\n"},
    {"gets", {.cmd = REQ_GETS, KEY("foo")}, "mg foo f v c\r\n"},
    {"gat",
     {.cmd = REQ_GAT, KEY("foo"), .exptime = 100},
     "mg foo f v T100\r\n"},
    {"gats negative",
     {.cmd = REQ_GATS, KEY("foo"), .exptime = -1},
     "mg foo f v c T-1\r\n"},
    {"touch", {.cmd = REQ_TOUCH, KEY("foo"), .exptime = 0}, "mg foo T0\r\n"},
    {"touch negative",
     {.cmd = REQ_TOUCH, KEY("foo"), .exptime = -5},
     "mg foo T-5\r\n"},
    {"set",
     {.cmd = REQ_SET, KEY("foo"), VAL("hello"), .flags = 42},
     "ms foo 5 F42 T0\r\nhello\r\n"},
    {"set max",
     {.cmd = REQ_SET,
      KEY("k"),
      VAL("abc"),
      .flags = UINT32_MAX,
      .exptime = INT64_MIN},
     "ms k 3 F4294967295 T-9223372036854775808\r\nabc\r\n"},
    {"set empty", {.cmd = REQ_SET, KEY("foo")}, "ms foo 0 F0 T0\r\n\r\n"},
    {"set crlf in value",
     {.cmd = REQ_SET, KEY("foo"), VAL("a\r\nb")},
     "ms foo 4 F0 T0\r\na\r\nb\r\n"},
    {"add",
     {.cmd = REQ_ADD, KEY("foo"), VAL("x"), .flags = 1, .exptime = 2592000},
     "ms foo 1 F1 T2592000 ME\r\nx\r\n"},
    {"replace",
     {.cmd = REQ_REPLACE, KEY("foo"), VAL("z"), .flags = 2},
     "ms foo 1 F2 T0 MR\r\nz\r\n"},
    {"append ignores flags",
     {.cmd = REQ_APPEND, KEY("foo"), VAL("AA"), .flags = 9, .exptime = 100},
     "ms foo 2 MA\r\nAA\r\n"},
    {"prepend",
     {.cmd = REQ_PREPEND, KEY("foo"), VAL("PP")},
     "ms foo 2 MP\r\nPP\r\n"},
    {"cas",
     {.cmd = REQ_CAS,
      KEY("foo"),
      VAL("x"),
      .flags = 7,
      .exptime = 100,
      .cas = 15},
     "ms foo 1 F7 T100 C15\r\nx\r\n"},
    {"cas max",
     {.cmd = REQ_CAS, KEY("foo"), VAL("x"), .cas = UINT64_MAX},
     "ms foo 1 F0 T0 C18446744073709551615\r\nx\r\n"},
    {"incr", {.cmd = REQ_INCR, KEY("n1"), .delta = 5}, "ma n1 v D5\r\n"},
    {"incr zero", {.cmd = REQ_INCR, KEY("n1")}, "ma n1 v D0\r\n"},
    {"decr",
     {.cmd = REQ_DECR, KEY("n1"), .delta = UINT64_MAX},
     "ma n1 v D18446744073709551615 MD\r\n"},
    {"delete", {.cmd = REQ_DELETE, KEY("foo")}, "md foo\r\n"},
    {"flush_all", {.cmd = REQ_FLUSH_ALL}, "flush_all\r\n"},
    {"mn health probe", {.cmd = REQ_MN}, "mn\r\n"},
    {"flush_all no flag",
     {.cmd = REQ_FLUSH_ALL, .exptime = 10},
     "flush_all\r\n"},
    {"flush_all delay",
     {.cmd = REQ_FLUSH_ALL, .rflags = REQ_F_HAS_DELAY, .exptime = 10},
     "flush_all 10\r\n"},
    {"flush_all 0",
     {.cmd = REQ_FLUSH_ALL, .rflags = REQ_F_HAS_DELAY},
     "flush_all 0\r\n"},
    {"flush_all noreply",
     {.cmd = REQ_FLUSH_ALL, .rflags = REQ_F_NOREPLY},
     "flush_all\r\n"},
    {"set noreply",
     {.cmd = REQ_SET, .rflags = REQ_F_NOREPLY, KEY("k"), VAL("v")},
     "ms k 1 F0 T0\r\nv\r\n"},
    {"stats", {.cmd = REQ_STATS}, "stats\r\n"},
    {"stats slabs", {.cmd = REQ_STATS, ARGS("slabs")}, "stats slabs\r\n"},
    {"stats cachedump",
     {.cmd = REQ_STATS, ARGS("cachedump 1 10")},
     "stats cachedump 1 10\r\n"},
    /* binary clients: CAS returned, autovivify, base64 keys */
    {"get cas",
     {.cmd = REQ_GET, .rflags = REQ_F_RET_CAS, KEY("foo")},
     "mg foo f v c\r\n"},
    {"gat cas",
     {.cmd = REQ_GAT, .rflags = REQ_F_RET_CAS, KEY("foo"), .exptime = 5},
     "mg foo f v c T5\r\n"},
    {"gets cas once",
     {.cmd = REQ_GETS, .rflags = REQ_F_RET_CAS, KEY("foo")},
     "mg foo f v c\r\n"},
    {"touch cas",
     {.cmd = REQ_TOUCH, .rflags = REQ_F_RET_CAS, KEY("foo"), .exptime = 100},
     "mg foo f c T100\r\n"},
    {"set cas",
     {.cmd = REQ_SET, .rflags = REQ_F_RET_CAS, KEY("foo"), VAL("abc")},
     "ms foo 3 F0 T0 c\r\nabc\r\n"},
    {"append cas",
     {.cmd = REQ_APPEND, .rflags = REQ_F_RET_CAS, KEY("foo"), VAL("x")},
     "ms foo 1 MA c\r\nx\r\n"},
    {"cas cas",
     {.cmd = REQ_CAS, .rflags = REQ_F_RET_CAS, KEY("foo"), VAL("x"), .cas = 9},
     "ms foo 1 F0 T0 C9 c\r\nx\r\n"},
    {"incr cas",
     {.cmd = REQ_INCR, .rflags = REQ_F_RET_CAS, KEY("n"), .delta = 5},
     "ma n v D5 c\r\n"},
    {"incr autoviv",
     {.cmd = REQ_INCR,
      .rflags = REQ_F_RET_CAS | REQ_F_AUTOVIV,
      KEY("n"),
      .delta = 5,
      .exptime = 0,
      .initial = 10},
     "ma n v D5 N0 J10 c\r\n"},
    {"decr autoviv max",
     {.cmd = REQ_DECR,
      .rflags = REQ_F_AUTOVIV,
      KEY("n"),
      .delta = 1,
      .exptime = 4294967294,
      .initial = UINT64_MAX},
     "ma n v D1 MD N4294967294 J18446744073709551615\r\n"},
    {"delete cas ignored",
     {.cmd = REQ_DELETE, .rflags = REQ_F_RET_CAS, KEY("foo")},
     "md foo\r\n"},
    {"get b64",
     {.cmd = REQ_GET, .rflags = REQ_F_B64KEY, KEY("Zm9v")},
     "mg Zm9v f v b\r\n"},
    {"set b64 cas",
     {.cmd = REQ_SET,
      .rflags = REQ_F_B64KEY | REQ_F_RET_CAS,
      KEY("Zm9v"),
      VAL("x")},
     "ms Zm9v 1 F0 T0 c b\r\nx\r\n"},
    {"delete b64",
     {.cmd = REQ_DELETE, .rflags = REQ_F_B64KEY, KEY("Zm9v")},
     "md Zm9v b\r\n"},
    {"incr b64",
     {.cmd = REQ_INCR, .rflags = REQ_F_B64KEY, KEY("Zm9v")},
     "ma Zm9v v D0 b\r\n"},
    /* meta passthrough, built by hand (parsed ones: test_passthrough) */
    {"mg q stripped",
     {.cmd = REQ_MG, .rflags = REQ_F_QUIET, KEY("foo"), ARGS("q v Oab k")},
     "mg foo v Oab k\r\n"},
    {"mg only q", {.cmd = REQ_MG, KEY("foo"), ARGS("q")}, "mg foo\r\n"},
    {"ms passthrough",
     {.cmd = REQ_MS, KEY("foo"), VAL("hi"), ARGS("T5 q c")},
     "ms foo 2 T5 c\r\nhi\r\n"},
    {"ms no flags", {.cmd = REQ_MS, KEY("foo")}, "ms foo 0\r\n\r\n"},
    {"md passthrough",
     {.cmd = REQ_MD, KEY("foo"), ARGS("C5")},
     "md foo C5\r\n"},
    {"md synthesized",
     {.cmd = REQ_MD, .rflags = REQ_F_B64KEY, KEY("Zm9v")},
     "md Zm9v\r\n"},
    {"ma passthrough",
     {.cmd = REQ_MA, KEY("n"), ARGS("v N0 J1")},
     "ma n v N0 J1\r\n"},
    {"me b",
     {.cmd = REQ_ME, .rflags = REQ_F_B64KEY, KEY("Zm9v"), ARGS("b x")},
     "me Zm9v b\r\n"},
};

static void
test_encode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEMS(enc_cases); i++) {
        const struct enc_case *c = &enc_cases[i];
        struct buf b;

        buf_init(&b, 8);
        assert_int_equal(proto_meta_encode_request(&c->req, &b), ST_OK);
        if (buf_len(&b) != strlen(c->want) ||
            memcmp(b.pos, c->want, buf_len(&b)) != 0) {
            fail_msg("%s: got '%.*s'", c->name, (int)buf_len(&b), b.pos);
        }
        buf_free(&b);
    }
}

/* Requests append after what the buffer already holds. */
static void
test_encode_appends(void **state)
{
    const struct request a = {.cmd = REQ_GET, KEY("a")};
    const struct request d = {.cmd = REQ_DELETE, KEY("b")};
    struct buf b;

    (void)state;
    buf_init(&b, 4);
    assert_int_equal(proto_meta_encode_request(&a, &b), ST_OK);
    assert_int_equal(proto_meta_encode_request(&d, &b), ST_OK);
    assert_int_equal(proto_meta_encode_request(&a, &b), ST_OK);
    assert_int_equal(buf_len(&b), strlen("mg a f v\r\nmd b\r\nmg a f v\r\n"));
    assert_memory_equal(b.pos, "mg a f v\r\nmd b\r\nmg a f v\r\n", buf_len(&b));
    buf_free(&b);
}

/* A large value and a 250-byte key go out intact. */
static void
test_encode_large(void **state)
{
    size_t n = 300000;
    char *val = malloc(n);
    char key[KEY_MAX_LENGTH];
    struct request r = {
        .cmd = REQ_SET, .key = key, .nkey = sizeof(key), .val = val, .nval = n};
    struct buf b;
    const char *tail = " 300000 F0 T0\r\n";

    (void)state;
    assert_non_null(val);
    memset(val, 'v', n);
    memset(key, 'k', sizeof(key));
    buf_init(&b, 16);
    assert_int_equal(proto_meta_encode_request(&r, &b), ST_OK);
    assert_int_equal(buf_len(&b), 3 + sizeof(key) + strlen(tail) + n + 2);
    assert_memory_equal(b.pos, "ms ", 3);
    assert_memory_equal(b.pos + 3, key, sizeof(key));
    assert_memory_equal(b.pos + 3 + sizeof(key), tail, strlen(tail));
    assert_memory_equal(b.pos + 3 + sizeof(key) + strlen(tail), val, n);
    assert_memory_equal(b.last - 2, "\r\n", 2);
    buf_free(&b);
    free(val);
}

static void
test_encode_errors(void **state)
{
    static const char longkey[KEY_MAX_LENGTH + 1] = {0};
    const struct request bad[] = {
        {.cmd = REQ_NONE},
        {.cmd = REQ_VERSION},
        {.cmd = REQ_VERBOSITY, .delta = 1},
        {.cmd = REQ_QUIT},
        {.cmd = REQ_GET}, /* no key */
        {.cmd = REQ_GET, .key = "", .nkey = 0},
        {.cmd = REQ_GET, KEY("a b")},               /* would inject a flag */
        {.cmd = REQ_DELETE, KEY("a\r\nflush_all")}, /* would inject a cmd */
        {.cmd = REQ_TOUCH, .key = longkey, .nkey = sizeof(longkey)},
        {.cmd = REQ_SET, KEY("k"), .val = NULL, .nval = 3},
        {.cmd = REQ_SET, KEY("k"), .val = "x", .nval = SIZE_MAX},
        {.cmd = REQ_STATS, ARGS("items\r\nflush_all")},
        {.cmd = REQ_STATS, .args = NULL, .nargs = 4},
        {.cmd = REQ_MG},
        {.cmd = REQ_MG, KEY("a"), ARGS("v\r\nflush_all")},
        {.cmd = REQ_MS, KEY("a"), ARGS("T\n1"), VAL("x")},
        {.cmd = REQ_MD, KEY("a"), .args = NULL, .nargs = 3},
        {.cmd = REQ_MS, KEY("k"), .val = NULL, .nval = 3},
    };
    struct buf b;
    struct outq q;

    (void)state;
    buf_init(&b, 16);
    outq_init(&q, 16);
    for (size_t i = 0; i < NELEMS(bad); i++) {
        if (proto_meta_encode_request(&bad[i], &b) != ST_ERROR ||
            proto_meta_queue_request(&bad[i], &q) != ST_ERROR) {
            fail_msg("case %zu: not rejected", i);
        }
        assert_int_equal(buf_len(&b), 0);
        assert_int_equal(q.total, 0);
        assert_int_equal(q.n, 0);
    }
    buf_free(&b);
    outq_free(&q);
}

/* ---- queueing for a writev (proto_meta_queue_request) ---- */

#define IOV_MAX_TEST 16

/* The bytes q would write from skip on, as handler_flush resumes a
 * partial writev; *niov: the iovecs of a write from skip. */
static size_t
flatten(const struct outq *q, size_t skip, char *out, size_t cap, int *niov)
{
    struct iovec iov[IOV_MAX_TEST];
    int n = outq_iov(q, skip, iov, IOV_MAX_TEST);
    size_t len = 0;

    for (int i = 0; i < n; i++) {
        assert_true(len + iov[i].iov_len <= cap);
        memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    if (niov != NULL) {
        *niov = n;
    }
    return len;
}

/* Every encoding of the table, queued: the same bytes, in one range
 * (no value in the table is long enough to be referenced). */
static void
test_queue_table(void **state)
{
    char got[512];

    (void)state;
    for (size_t i = 0; i < NELEMS(enc_cases); i++) {
        const struct enc_case *c = &enc_cases[i];
        struct outq q;
        size_t n;
        int niov = 0;

        outq_init(&q, 8);
        assert_int_equal(proto_meta_queue_request(&c->req, &q), ST_OK);
        n = flatten(&q, 0, got, sizeof(got), &niov);
        if (n != strlen(c->want) || memcmp(got, c->want, n) != 0 ||
            q.total != n || niov != 1) {
            fail_msg("%s: got '%.*s' in %d ranges", c->name, (int)n, got, niov);
        }
        outq_free(&q);
    }
}

static char bigval[102400]; /* test_queue_refs fills it */

struct ref_case {
    const char *name;
    struct request req; /* .val = bigval */
    size_t nval;
    const char *line; /* the command line: bigval[0..nval) + "\r\n" follow */
};

static const struct ref_case ref_cases[] = {
    {"set",
     {.cmd = REQ_SET, KEY("foo"), .flags = 42},
     300,
     "ms foo 300 F42 T0\r\n"},
    {"set b64 cas",
     {.cmd = REQ_SET, .rflags = REQ_F_B64KEY | REQ_F_RET_CAS, KEY("Zm9v")},
     256,
     "ms Zm9v 256 F0 T0 c b\r\n"},
    {"add b64",
     {.cmd = REQ_ADD, .rflags = REQ_F_B64KEY, KEY("Zm9v"), .exptime = 60},
     1000,
     "ms Zm9v 1000 F0 T60 ME b\r\n"},
    {"replace",
     {.cmd = REQ_REPLACE, KEY("k"), .flags = 1},
     4096,
     "ms k 4096 F1 T0 MR\r\n"},
    {"cas",
     {.cmd = REQ_CAS, KEY("foo"), .exptime = 100, .cas = 15},
     300,
     "ms foo 300 F0 T100 C15\r\n"},
    {"cas b64",
     {.cmd = REQ_CAS, .rflags = REQ_F_B64KEY, KEY("Zm9v"), .cas = 7},
     100000,
     "ms Zm9v 100000 F0 T0 C7 b\r\n"},
    {"append b64",
     {.cmd = REQ_APPEND, .rflags = REQ_F_B64KEY, KEY("Zm9v"), .flags = 9},
     512,
     "ms Zm9v 512 MA b\r\n"},
    {"prepend cas compare",
     {.cmd = REQ_PREPEND, KEY("foo"), .cas = 3},
     300,
     "ms foo 300 MP C3\r\n"},
    {"ms passthrough",
     {.cmd = REQ_MS, KEY("foo"), ARGS("T5 q c")},
     102400,
     "ms foo 102400 T5 c\r\n"},
    {"ms b64 q stripped",
     {.cmd = REQ_MS,
      .rflags = REQ_F_B64KEY | REQ_F_QUIET,
      KEY("Zm9v"),
      ARGS("b q F3 MS")},
     300,
     "ms Zm9v 300 b F3 MS\r\n"},
};

/* A value of 256 bytes or more goes by reference: the line, the value
 * where it lies, "\r\n"; the bytes are those encode_request copies, and
 * a write resumed at any byte sends the rest. */
static void
test_queue_refs(void **state)
{
    size_t cap = 200 + sizeof(bigval);
    char *got = malloc(cap), *want = malloc(cap);

    (void)state;
    assert_non_null(got);
    assert_non_null(want);
    for (size_t i = 0; i < sizeof(bigval); i++) {
        bigval[i] = i % 97 == 0   ? '\r'
                    : i % 89 == 0 ? '\n'
                                  : (char)('a' + i % 26);
    }
    for (size_t i = 0; i < NELEMS(ref_cases); i++) {
        const struct ref_case *c = &ref_cases[i];
        struct request r = c->req;
        struct iovec iov[4];
        size_t nline = strlen(c->line), nwant = nline + c->nval + 2, n;
        struct buf b;
        struct outq q;

        r.val = bigval;
        r.nval = c->nval;
        memcpy(want, c->line, nline);
        memcpy(want + nline, bigval, c->nval);
        memcpy(want + nline + c->nval, "\r\n", 2);
        outq_init(&q, 16);
        assert_int_equal(proto_meta_queue_request(&r, &q), ST_OK);
        assert_int_equal(q.total, nwant);
        assert_int_equal(outq_iov(&q, 0, iov, 4), 3);
        if (iov[0].iov_len != nline ||
            memcmp(iov[0].iov_base, c->line, nline)) {
            fail_msg("%s: line '%.*s'", c->name, (int)iov[0].iov_len,
                     (const char *)iov[0].iov_base);
        }
        assert_ptr_equal(iov[1].iov_base, bigval); /* not a copy */
        assert_int_equal(iov[1].iov_len, c->nval);
        assert_int_equal(iov[2].iov_len, 2);
        for (size_t skip = 0; skip <= nwant;
             skip += skip < nline + 8 || nwant - skip < 8 ? 1 : 997) {
            n = flatten(&q, skip, got, cap, NULL);
            assert_int_equal(n, nwant - skip);
            assert_memory_equal(got, want + skip, n);
        }
        buf_init(&b, 16); /* the copying encoder agrees */
        assert_int_equal(proto_meta_encode_request(&r, &b), ST_OK);
        assert_int_equal(buf_len(&b), nwant);
        assert_memory_equal(b.pos, want, nwant);
        buf_free(&b);
        outq_free(&q);
    }
    free(got);
    free(want);
}

/* Empty values, and the boundary: 255 bytes are copied with the line,
 * 256 referenced. */
static void
test_queue_copy_or_ref(void **state)
{
    static const struct {
        struct request req;
        size_t nval;
        const char *line;
        int niov;
    } cases[] = {
        {{.cmd = REQ_SET, KEY("e")}, 0, "ms e 0 F0 T0\r\n", 1},
        {{.cmd = REQ_MS, .rflags = REQ_F_B64KEY, KEY("Zm9v"), ARGS("b")},
         0,
         "ms Zm9v 0 b\r\n",
         1},
        {{.cmd = REQ_APPEND, KEY("e")}, 0, "ms e 0 MA\r\n", 1},
        {{.cmd = REQ_SET, KEY("k")}, 1, "ms k 1 F0 T0\r\n", 1},
        {{.cmd = REQ_SET, KEY("k")}, 255, "ms k 255 F0 T0\r\n", 1},
        {{.cmd = REQ_SET, KEY("k")}, 256, "ms k 256 F0 T0\r\n", 3},
        {{.cmd = REQ_MS, KEY("k")}, 255, "ms k 255\r\n", 1},
        {{.cmd = REQ_MS, KEY("k")}, 256, "ms k 256\r\n", 3},
    };
    char got[1024], want[1024];

    (void)state;
    memset(bigval, 'x', 300);
    for (size_t i = 0; i < NELEMS(cases); i++) {
        struct request r = cases[i].req;
        size_t nline = strlen(cases[i].line);
        struct iovec iov[4];
        struct outq q;
        int niov = 0;

        r.val = cases[i].nval > 0 ? bigval : NULL;
        r.nval = cases[i].nval;
        memcpy(want, cases[i].line, nline);
        memcpy(want + nline, bigval, r.nval);
        memcpy(want + nline + r.nval, "\r\n", 2);
        outq_init(&q, 8);
        assert_int_equal(proto_meta_queue_request(&r, &q), ST_OK);
        assert_int_equal(flatten(&q, 0, got, sizeof(got), &niov),
                         nline + r.nval + 2);
        assert_memory_equal(got, want, nline + r.nval + 2);
        if (niov != cases[i].niov) {
            fail_msg("case %zu: %d ranges, want %d", i, niov, cases[i].niov);
        }
        if (niov == 3) {
            assert_int_equal(outq_iov(&q, 0, iov, 4), 3);
            assert_ptr_equal(iov[1].iov_base, bigval);
        }
        outq_free(&q);
    }
}

/* Requests queue after what the queue holds: lines around a referenced
 * value merge into the ranges next to it. */
static void
test_queue_appends(void **state)
{
    const struct request a = {.cmd = REQ_GET, KEY("a")};
    struct request s = {.cmd = REQ_SET, KEY("b"), .val = bigval, .nval = 300};
    const struct request d = {.cmd = REQ_DELETE, KEY("c")};
    struct iovec iov[8];
    struct outq q;

    (void)state;
    memset(bigval, 'v', 300);
    outq_init(&q, 4);
    assert_int_equal(proto_meta_queue_request(&a, &q), ST_OK);
    assert_int_equal(proto_meta_queue_request(&s, &q), ST_OK);
    assert_int_equal(proto_meta_queue_request(&d, &q), ST_OK);
    assert_int_equal(proto_meta_queue_request(&s, &q), ST_OK);
    assert_int_equal(outq_iov(&q, 0, iov, 8), 5);
    assert_int_equal(iov[0].iov_len, strlen("mg a f v\r\nms b 300 F0 T0\r\n"));
    assert_memory_equal(iov[0].iov_base, "mg a f v\r\nms b 300 F0 T0\r\n",
                        iov[0].iov_len);
    assert_ptr_equal(iov[1].iov_base, bigval);
    assert_int_equal(iov[2].iov_len, strlen("\r\nmd c\r\nms b 300 F0 T0\r\n"));
    assert_memory_equal(iov[2].iov_base, "\r\nmd c\r\nms b 300 F0 T0\r\n",
                        iov[2].iov_len);
    assert_ptr_equal(iov[3].iov_base, bigval);
    assert_int_equal(iov[4].iov_len, 2);
    outq_free(&q);
}

/* ---- parsing ---- */

struct dec_case {
    const char *name;
    enum req_cmd cmd;
    const char *args; /* stats arguments, or NULL */
    const char *in;
    size_t nin;
    enum res_kind kind;
    uint32_t flags;
    uint64_t cas;
    const char *val; /* expected val bytes, or NULL if res->val NULL */
    size_t nval;
    const char *msg; /* expected msg text, or NULL if res->msg NULL */
    size_t hdr;      /* length of a VA header line, 0 if none */
};

#define IN(lit)   .in = (lit), .nin = sizeof(lit) - 1
#define WANT(lit) .val = (lit), .nval = sizeof(lit) - 1

#define STATS_SLABS                                                            \
    "STAT 1:chunk_size 96\r\n"                                                 \
    "STAT 1:chunks_per_page 10922\r\n"                                         \
    "STAT 1:total_pages 1\r\n"                                                 \
    "STAT 1:total_chunks 10922\r\n"                                            \
    "STAT 1:used_chunks 2\r\n"                                                 \
    "STAT 1:free_chunks 10920\r\n"                                             \
    "STAT 1:free_chunks_end 0\r\n"                                             \
    "STAT 1:get_hits 0\r\n"                                                    \
    "STAT 1:cmd_set 1\r\n"                                                     \
    "STAT 1:delete_hits 0\r\n"                                                 \
    "STAT 1:incr_hits 0\r\n"                                                   \
    "STAT 1:decr_hits 0\r\n"                                                   \
    "STAT 1:cas_hits 0\r\n"                                                    \
    "STAT 1:cas_badval 0\r\n"                                                  \
    "STAT 1:touch_hits 0\r\n"                                                  \
    "STAT active_slabs 1\r\n"                                                  \
    "STAT total_malloced 1048576\r\n"                                          \
    "END\r\n"

#define STATS_CONNS                                                            \
    "STAT 23:addr tcp:127.0.0.1:22133\r\n"                                     \
    "STAT 23:state conn_listening\r\n"                                         \
    "STAT 23:secs_since_last_cmd 140\r\n"                                      \
    "STAT 24:addr tcp:127.0.0.1:38626\r\n"                                     \
    "STAT 24:listen_addr tcp:127.0.0.1:22133\r\n"                              \
    "STAT 24:state conn_parse_cmd\r\n"                                         \
    "STAT 24:secs_since_last_cmd 0\r\n"                                        \
    "END\r\n"

#define RAW(lit) IN(lit), .kind = RES_RAW, WANT(lit)

static const struct dec_case dec_cases[] = {
    /* get family */
    {"get hit", REQ_GET, NULL, IN("VA 5 f42\r\nhello\r\n"), RES_VALUE, 42, 0,
     WANT("hello"), NULL, 10},
    {"gets hit", REQ_GETS, NULL, IN("VA 5 f42 c2\r\nhello\r\n"), RES_VALUE, 42,
     2, WANT("hello"), NULL, 13},
    {"get empty value", REQ_GET, NULL, IN("VA 0 f1\r\n\r\n"), RES_VALUE, 1, 0,
     WANT(""), NULL, 9},
    {"get max flags", REQ_GET, NULL, IN("VA 3 f4294967295\r\nabc\r\n"),
     RES_VALUE, UINT32_MAX, 0, WANT("abc"), NULL, 18},
    {"get other flags", REQ_GETS, NULL, IN("VA 3 t-1 f0 c3 s3 kk2\r\nabc\r\n"),
     RES_VALUE, 0, 3, WANT("abc"), NULL, 23},
    {"gat hit", REQ_GAT, NULL, IN("VA 5 t100 f42\r\nhello\r\n"), RES_VALUE, 42,
     0, WANT("hello"), NULL, 15},
    {"gats hit", REQ_GATS, NULL, IN("VA 6 f2 c15\r\nPPzAAQ\r\n"), RES_VALUE, 2,
     15, WANT("PPzAAQ"), NULL, 13},
    /* synthetic: a value holding CRLF and "EN" */
    {"get crlf value", REQ_GET, NULL, IN("VA 8 f0\r\na\r\nEN\r\nb\r\n"),
     RES_VALUE, 0, 0, WANT("a\r\nEN\r\nb"), NULL, 9},
    {"get miss", REQ_GET, NULL, IN("EN\r\n"), RES_MISS},
    {"gat miss", REQ_GATS, NULL, IN("EN\r\n"), RES_MISS},
    {"get miss flags", REQ_GET, NULL, IN("EN Oabc kk\r\n"), RES_MISS},
    {"get client error", REQ_GET, NULL,
     IN("CLIENT_ERROR bad command line format\r\n"), RES_CLIENT_ERROR,
     .msg = "bad command line format"},
    {"get error", REQ_GET, NULL, IN("ERROR\r\n"), RES_ERROR, .msg = ""},
    /* touch */
    {"touch hit", REQ_TOUCH, NULL, IN("HD\r\n"), RES_TOUCHED},
    {"touch miss", REQ_TOUCH, NULL, IN("EN\r\n"), RES_NOT_FOUND},
    /* storage */
    {"set", REQ_SET, NULL, IN("HD\r\n"), RES_STORED},
    {"add exists", REQ_ADD, NULL, IN("NS\r\n"), RES_NOT_STORED},
    {"replace miss", REQ_REPLACE, NULL, IN("NS\r\n"), RES_NOT_STORED},
    {"append miss", REQ_APPEND, NULL, IN("NS\r\n"), RES_NOT_STORED},
    {"prepend hit", REQ_PREPEND, NULL, IN("HD\r\n"), RES_STORED},
    {"cas miss", REQ_CAS, NULL, IN("NF\r\n"), RES_NOT_FOUND},
    {"cas mismatch", REQ_CAS, NULL, IN("EX\r\n"), RES_EXISTS},
    {"cas ok", REQ_CAS, NULL, IN("HD\r\n"), RES_STORED},
    {"set too large", REQ_SET, NULL,
     IN("SERVER_ERROR object too large for cache\r\n"), RES_SERVER_ERROR,
     .msg = "object too large for cache"},
    {"set bad chunk", REQ_SET, NULL, IN("CLIENT_ERROR bad data chunk\r\n"),
     RES_CLIENT_ERROR, .msg = "bad data chunk"},
    /* incr/decr */
    {"incr", REQ_INCR, NULL, IN("VA 2\r\n15\r\n"), RES_NUMBER, WANT("15"),
     .hdr = 6},
    {"decr clamps", REQ_DECR, NULL, IN("VA 1\r\n0\r\n"), RES_NUMBER, WANT("0"),
     .hdr = 6},
    {"incr max", REQ_INCR, NULL, IN("VA 20\r\n18446744073709551615\r\n"),
     RES_NUMBER, WANT("18446744073709551615"), .hdr = 7},
    {"incr miss", REQ_INCR, NULL, IN("NF\r\n"), RES_NOT_FOUND},
    {"incr non-numeric", REQ_INCR, NULL,
     IN("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
     RES_CLIENT_ERROR, .msg = MSG_NON_NUMERIC},
    /* delete, flush_all */
    {"delete", REQ_DELETE, NULL, IN("HD\r\n"), RES_DELETED},
    {"delete miss", REQ_DELETE, NULL, IN("NF\r\n"), RES_NOT_FOUND},
    {"flush_all", REQ_FLUSH_ALL, NULL, IN("OK\r\n"), RES_OK},
    {"mn probe", REQ_MN, NULL, IN("MN\r\n"), RES_OK},
    /* synthetic: flush_all disabled with -F */
    {"flush_all denied", REQ_FLUSH_ALL, NULL,
     IN("CLIENT_ERROR flush_all not allowed\r\n"), RES_CLIENT_ERROR,
     .msg = "flush_all not allowed"},
    /* stats: whole block verbatim */
    {"stats slabs", REQ_STATS, "slabs", RAW(STATS_SLABS)},
    {"stats conns", REQ_STATS, NULL, RAW(STATS_CONNS)},
    {"stats sizes", REQ_STATS, "sizes",
     RAW("STAT sizes_status disabled\r\nEND\r\n")},
    {"stats reset", REQ_STATS, "reset", RAW("RESET\r\n")},
    {"stats detail on", REQ_STATS, "detail on", RAW("OK\r\n")},
    {"stats detail dump", REQ_STATS, "detail dump",
     RAW("PREFIX foo get 2 hit 2 set 1 del 1\r\nEND\r\n")},
    {"stats detail dump empty", REQ_STATS, NULL, RAW("END\r\n")},
    {"stats cachedump", REQ_STATS, "cachedump 1 0",
     RAW("ITEM foo:b [1 b; 0 s]\r\nITEM a [1 b; 0 s]\r\nEND\r\n")},
    /* a stats reply of one error line is that error */
    {"stats bad slab", REQ_STATS, NULL, IN("CLIENT_ERROR Illegal slab id\r\n"),
     RES_CLIENT_ERROR, .msg = "Illegal slab id"},
    {"stats detail usage", REQ_STATS, "detail",
     IN("CLIENT_ERROR usage: stats detail on|off|dump\r\n"), RES_CLIENT_ERROR,
     .msg = "usage: stats detail on|off|dump"},
    {"stats bogus", REQ_STATS, "bogus", IN("ERROR\r\n"), RES_ERROR, .msg = ""},
    /* memcached sends no END after these two */
    {"stats sizes_enable", REQ_STATS, "sizes_enable",
     RAW("STAT sizes_status enabled\r\n")},
    {"stats sizes_disable", REQ_STATS, " sizes_disable x",
     RAW("STAT sizes_status disabled\r\n")},
    /* CAS returned for binary clients */
    {"set cas", REQ_SET, NULL, IN("HD c76\r\n"), RES_STORED, 0, 76},
    {"incr cas", REQ_INCR, NULL, IN("VA 2 c77\r\n11\r\n"), RES_NUMBER, 0, 77,
     WANT("11"), NULL, 10},
    {"touch cas", REQ_TOUCH, NULL, IN("HD c72\r\n"), RES_TOUCHED, 0, 72},
    /* meta passthrough: res->raw is the whole reply */
    {"mg hit", REQ_MG, NULL, IN("VA 3 f5 c3 kfoo s3 t-1 Oabc\r\nabc\r\n"),
     RES_VALUE, 5, 3, WANT("abc"), NULL, 29},
    {"mg stale", REQ_MG, NULL, IN("VA 3 X W\r\nabc\r\n"), RES_VALUE,
     WANT("abc"), .hdr = 10},
    {"mg no value", REQ_MG, NULL, IN("HD\r\n"), RES_VALUE},
    {"mg vivified", REQ_MG, NULL, IN("HD kmiss W\r\n"), RES_VALUE},
    {"mg miss", REQ_MG, NULL, IN("EN\r\n"), RES_MISS},
    {"mg miss flags", REQ_MG, NULL, IN("EN knokey Oa\r\n"), RES_MISS},
    {"mg b miss", REQ_MG, NULL, IN("EN kZm8= b\r\n"), RES_MISS},
    {"mg error", REQ_MG, NULL, IN("CLIENT_ERROR invalid flag\r\n"),
     RES_CLIENT_ERROR, .msg = "invalid flag"},
    {"ms", REQ_MS, NULL, IN("HD c3 kfoo Oxyz\r\n"), RES_STORED, 0, 3},
    {"ms NS", REQ_MS, NULL, IN("NS\r\n"), RES_NOT_STORED},
    {"ms EX", REQ_MS, NULL, IN("EX\r\n"), RES_EXISTS},
    {"ms NF", REQ_MS, NULL, IN("NF\r\n"), RES_NOT_FOUND},
    {"ms too large", REQ_MS, NULL,
     IN("SERVER_ERROR object too large for cache\r\n"), RES_SERVER_ERROR,
     .msg = "object too large for cache"},
    {"md", REQ_MD, NULL, IN("HD\r\n"), RES_DELETED},
    {"md NF", REQ_MD, NULL, IN("NF kfk\r\n"), RES_NOT_FOUND},
    {"md EX", REQ_MD, NULL, IN("EX\r\n"), RES_EXISTS},
    {"ma value", REQ_MA, NULL, IN("VA 2 c15 t-1\r\n10\r\n"), RES_NUMBER, 0, 15,
     WANT("10"), NULL, 14},
    {"ma HD", REQ_MA, NULL, IN("HD\r\n"), RES_NUMBER},
    {"ma NF", REQ_MA, NULL, IN("NF\r\n"), RES_NOT_FOUND},
    {"ma NS", REQ_MA, NULL, IN("NS\r\n"), RES_NOT_STORED},
    {"ma EX", REQ_MA, NULL, IN("EX\r\n"), RES_EXISTS},
    {"ma non-numeric", REQ_MA, NULL,
     IN("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"),
     RES_CLIENT_ERROR, .msg = MSG_NON_NUMERIC},
    {"me", REQ_ME, NULL,
     IN("ME foo exp=-1 la=21 cas=56 fetch=yes cls=1 size=65\r\n"), RES_RAW},
    {"me miss", REQ_ME, NULL, IN("EN\r\n"), RES_MISS},
};

static bool
is_meta_cmd(enum req_cmd cmd)
{
    return cmd == REQ_MG || cmd == REQ_MS || cmd == REQ_MD || cmd == REQ_MA ||
           cmd == REQ_ME;
}

static void
check_res(const struct dec_case *c, const char *in, const struct response *r)
{
    if (is_meta_cmd(c->cmd)) {
        assert_ptr_equal(r->raw, in);
        assert_int_equal(r->nraw, c->nin);
    } else {
        assert_null(r->raw);
        assert_int_equal(r->nraw, 0);
    }
    assert_int_equal(r->kind, c->kind);
    assert_int_equal(r->flags, c->flags);
    assert_int_equal(r->cas, c->cas);
    if (c->val == NULL) {
        assert_null(r->val);
        assert_int_equal(r->nval, 0);
    } else {
        assert_true(r->val >= in && r->val + r->nval <= in + c->nin);
        assert_int_equal(r->nval, c->nval);
        assert_memory_equal(r->val, c->val, c->nval);
    }
    if (c->msg == NULL) {
        assert_null(r->msg);
    } else {
        assert_int_equal(r->nmsg, strlen(c->msg));
        assert_memory_equal(r->msg, c->msg, r->nmsg);
    }
}

/* Parse in[0..len) from a private heap copy so ASan catches over-reads. */
static enum status
parse_copy(const struct request *req, const char *in, size_t len,
           struct response *r, size_t *used, size_t *need, char **copy)
{
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    memcpy(*copy, in, len);
    return proto_meta_parse_reply(req, *copy, len, r, used, need);
}

static void
dec_case_splits(const struct dec_case *c)
{
    struct request req = {
        .cmd = c->cmd, .args = c->args, .nargs = c->args ? strlen(c->args) : 0};

    for (size_t k = 0; k < c->nin; k++) {
        struct response r = {.kind = RES_QUIT};
        size_t used = 77, need = 77;
        char *copy;

        if (parse_copy(&req, c->in, k, &r, &used, &need, &copy) != ST_AGAIN) {
            fail_msg("%s: prefix %zu not ST_AGAIN", c->name, k);
        }
        if (need != (c->hdr && k >= c->hdr ? c->nin : 0)) {
            fail_msg("%s: prefix %zu need %zu", c->name, k, need);
        }
        assert_int_equal(r.kind, RES_QUIT); /* untouched */
        assert_int_equal(used, 77);
        free(copy);
    }
}

static void
dec_case_full(const struct dec_case *c)
{
    struct request req = {
        .cmd = c->cmd, .args = c->args, .nargs = c->args ? strlen(c->args) : 0};
    struct response r = {.kind = RES_QUIT, .flags = 9, .cas = 9};
    size_t used = 0, need = 0, n = 2 * c->nin;
    char *two = malloc(n), *copy;
    enum status st;

    assert_non_null(two);
    st = parse_copy(&req, c->in, c->nin, &r, &used, &need, &copy);
    if (st != ST_OK || used != c->nin) {
        fail_msg("%s: status %d used %zu", c->name, st, used);
    }
    check_res(c, copy, &r);
    free(copy);

    /* two replies back to back: the first consumes exactly its bytes */
    memcpy(two, c->in, c->nin);
    memcpy(two + c->nin, c->in, c->nin);
    for (size_t off = 0; off < n; off += used) {
        assert_int_equal(
            proto_meta_parse_reply(&req, two + off, n - off, &r, &used, &need),
            ST_OK);
        assert_int_equal(used, c->nin);
        check_res(c, two + off, &r);
    }
    free(two);
}

static void
test_decode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEMS(dec_cases); i++) {
        dec_case_splits(&dec_cases[i]);
        dec_case_full(&dec_cases[i]);
    }
}

/* Different replies back to back, as a pipelined batch receives them. */
static void
test_decode_pipeline(void **state)
{
    static const char in[] = "VA 5 f42 c2\r\nhello\r\n"
                             "EN\r\n"
                             "HD\r\n"
                             "VA 2\r\n15\r\n"
                             "NF\r\n"
                             "STAT a 1\r\nEND\r\n"
                             "OK\r\n";
    static const enum req_cmd cmds[] = {REQ_GETS,     REQ_GET,    REQ_SET,
                                        REQ_INCR,     REQ_DELETE, REQ_STATS,
                                        REQ_FLUSH_ALL};
    static const enum res_kind kinds[] = {RES_VALUE,  RES_MISS,      RES_STORED,
                                          RES_NUMBER, RES_NOT_FOUND, RES_RAW,
                                          RES_OK};
    static const size_t lens[] = {20, 4, 4, 10, 4, 15, 4};
    size_t off = 0;

    (void)state;
    for (size_t i = 0; i < NELEMS(cmds); i++) {
        struct request req = {.cmd = cmds[i]};
        struct response r;
        size_t used = 0, need = 0;

        assert_int_equal(proto_meta_parse_reply(&req, in + off,
                                                sizeof(in) - 1 - off, &r, &used,
                                                &need),
                         ST_OK);
        assert_int_equal(r.kind, kinds[i]);
        assert_int_equal(used, lens[i]);
        off += used;
    }
    assert_int_equal(off, sizeof(in) - 1);
}

struct proto_case {
    const char *name;
    enum req_cmd cmd;
    const char *in;
    size_t nin;
};

static const struct proto_case proto_cases[] = {
    {"VA for delete", REQ_DELETE, S("VA 1\r\nx\r\n")},
    {"VA for touch", REQ_TOUCH, S("VA 1 f0\r\nx\r\n")},
    {"HD for get", REQ_GET, S("HD\r\n")},
    {"OK for get", REQ_GET, S("OK\r\n")},
    {"EN for set", REQ_SET, S("EN\r\n")},
    {"NS for delete", REQ_DELETE, S("NS\r\n")},
    {"HD for incr", REQ_INCR, S("HD\r\n")},
    {"HD for flush", REQ_FLUSH_ALL, S("HD\r\n")},
    {"OK with junk", REQ_FLUSH_ALL, S("OK junk\r\n")},
    {"classic reply", REQ_GET, S("VALUE k 0 1\r\nx\r\nEND\r\n")},
    {"classic stored", REQ_SET, S("STORED\r\n")},
    {"garbage", REQ_GET, S("garbage\r\n")},
    {"code glued", REQ_GET, S("ENX\r\n")},
    {"lower case", REQ_GET, S("en\r\n")},
    {"empty line", REQ_GET, S("\r\n")},
    {"bare LF", REQ_GET, S("EN\n")},
    {"bare LF in stats", REQ_STATS, S("STAT a 1\nEND\r\n")},
    {"VA no length", REQ_GET, S("VA\r\n")},
    {"VA negative", REQ_GET, S("VA -1 f0\r\n")},
    {"VA absurd", REQ_GET, S("VA 99999999999 f0\r\n")},
    {"VA overflow", REQ_GET, S("VA 18446744073709551616 f0\r\n")},
    {"VA hex", REQ_GET, S("VA 0x3 f0\r\n")},
    {"VA bad flags", REQ_GET, S("VA 3 fx\r\nabc\r\n")},
    {"VA flags overflow", REQ_GET, S("VA 3 f4294967296\r\nabc\r\n")},
    {"VA bad cas", REQ_GETS, S("VA 3 f0 c\r\nabc\r\n")},
    {"VA data no CRLF", REQ_GET, S("VA 3 f0\r\nabcXY")},
    {"VA data bad LF", REQ_GET, S("VA 3 f0\r\nabc\rX")},
    {"VA data short", REQ_GET, S("VA 3 f0\r\nab\r\n\r\n")},
    {"incr not digits", REQ_INCR, S("VA 3\r\nabc\r\n")},
    {"incr empty", REQ_DECR, S("VA 0\r\n\r\n")},
    {"incr too long", REQ_INCR, S("VA 21\r\n111111111111111111111\r\n")},
    {"reply to version", REQ_VERSION, S("VERSION 1.6.18\r\n")},
    {"reply to none", REQ_NONE, S("ERROR\r\n")},
    {"mn probe answered HD", REQ_MN, S("HD\r\n")},
    {"ME for get", REQ_GET, S("ME foo exp=-1\r\n")},
    {"HD for me", REQ_ME, S("HD\r\n")},
    {"MN for mg", REQ_MG, S("MN\r\n")},
    {"OK for ms", REQ_MS, S("OK\r\n")},
    {"VA for md", REQ_MD, S("VA 1\r\nx\r\n")},
    {"EN for ma", REQ_MA, S("EN\r\n")},
    {"ma not digits", REQ_MA, S("VA 1\r\nx\r\n")},
    {"classic for mg", REQ_MG, S("END\r\n")},
};

static void
test_decode_proto(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEMS(proto_cases); i++) {
        const struct proto_case *c = &proto_cases[i];
        struct request req = {.cmd = c->cmd};
        struct response r = {.kind = RES_QUIT};
        size_t used = 77, need = 0;
        char *copy;
        enum status st;

        st = parse_copy(&req, c->in, c->nin, &r, &used, &need, &copy);
        if (st != ST_PROTO) {
            fail_msg("%s: status %d", c->name, st);
        }
        assert_int_equal(r.kind, RES_QUIT);
        assert_int_equal(used, 77);
        free(copy);
    }
}

/* A line with no '\n' within 2048 bytes cannot be framed. */
static void
test_decode_long_line(void **state)
{
    static const enum req_cmd cmds[] = {REQ_GET, REQ_SET, REQ_STATS};
    size_t n = 4096;
    char *in = malloc(n);
    struct response r;
    size_t used, need;

    (void)state;
    assert_non_null(in);
    for (size_t i = 0; i < NELEMS(cmds); i++) {
        struct request req = {.cmd = cmds[i]};
        size_t off = cmds[i] == REQ_STATS ? 10 : 0;

        memset(in, 'A', n);
        if (off > 0) {
            memcpy(in, "STAT x 1\r\nSTAT ", 15); /* second line is long */
        }
        assert_int_equal(
            proto_meta_parse_reply(&req, in, off + 2047, &r, &used, &need),
            ST_AGAIN);
        assert_int_equal(
            proto_meta_parse_reply(&req, in, off + 2048, &r, &used, &need),
            ST_PROTO);
    }
    free(in);
}

/* ---- client requests ---- */

#define ITEM_MAX 1048576 /* memcached's default item_size_max */

/* 17 flags: with "mg <key>" the 19 tokens memcached allows. */
#define FLAGS17 "c f h k l s t u v I L1 M1 N1 O1 P1 R1 T1"
#define P17     "P0 P1 P2 P3 P4 P5 P6 P7 P8 P9 P10 P11 P12 P13 P14 P15 P16"
#define K250                                                                   \
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk" \
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk" \
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk" \
    "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"
#define B252                                                                   \
    "Zm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9v" \
    "Zm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9v" \
    "Zm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9v" \
    "Zm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9vZm9v"

struct req_case {
    const char *name;
    const char *in;
    size_t nin;
    enum req_cmd cmd;
    const char *key;  /* NULL: no key */
    const char *args; /* NULL: no flags */
    const char *val;  /* ms data, or NULL */
    uint32_t rflags;
    enum res_kind err;
    const char *errmsg;
    size_t consumed; /* 0: the whole input */
    size_t swallow;
    size_t line; /* ms accepted: length of the line (need is known) */
};

#define REQ(lit) .in = (lit), .nin = sizeof(lit) - 1
#define CERR(m)  .err = RES_CLIENT_ERROR, .errmsg = (m)

#define MSG_INVALID_OR_DUP "invalid or duplicate flag" /* md, ma */

/*
 * Inputs and the answers memcached 1.6.18 gave them. Requests that pass
 * the local checks are forwarded; their answer is the backend's.
 */
static const struct req_case req_cases[] = {
    /* accepted */
    {"mg", REQ("mg foo v\r\n"), REQ_MG, "foo", "v"},
    {"mg no flags", REQ("mg foo\r\n"), REQ_MG, "foo"},
    {"mg bare LF", REQ("mg foo v\n"), REQ_MG, "foo", "v"},
    {"mg spaces", REQ("mg  foo  k   v  \r\n"), REQ_MG, "foo", "k   v"},
    {"mg quiet", REQ("mg foo k s v q Oabc\r\n"), REQ_MG, "foo", "k s v q Oabc",
     .rflags = REQ_F_QUIET},
    {"mg q names by first byte", REQ("mg foo qx v\r\n"), REQ_MG, "foo", "qx v",
     .rflags = REQ_F_QUIET},
    {"mg vq is v", REQ("mg foo vq\r\n"), REQ_MG, "foo", "vq"},
    {"mg 17 flags", REQ("mg foo " FLAGS17 "\r\n"), REQ_MG, "foo", FLAGS17},
    {"mg cut at NUL", REQ("mg foo v\0 junk\r\n"), REQ_MG, "foo", "v"},
    {"mg key 250", REQ("mg " K250 " v\r\n"), REQ_MG, K250, "v"},
    {"mg b", REQ("mg Zm9v b k v\r\n"), REQ_MG, "Zm9v", "b k v",
     .rflags = REQ_F_B64KEY},
    {"mg b skips junk", REQ("mg Zm9v! b\r\n"), REQ_MG, "Zm9v!", "b",
     .rflags = REQ_F_B64KEY},
    {"mg bad arg is backend's", REQ("mg foo T\r\n"), REQ_MG, "foo", "T"},
    {"ms", REQ("ms foo 3 T0 F5 c k Oxyz\r\nabc\r\n"), REQ_MS, "foo",
     "T0 F5 c k Oxyz", "abc", .line = 25},
    {"ms no flags", REQ("ms foo 3\r\nabc\r\n"), REQ_MS, "foo", NULL, "abc",
     .line = 10},
    {"ms quiet", REQ("ms foo 3 q\r\nabc\r\n"), REQ_MS, "foo", "q", "abc",
     .rflags = REQ_F_QUIET, .line = 12},
    {"ms empty", REQ("ms foo 0\r\n\r\n"), REQ_MS, "foo", NULL, "", .line = 10},
    {"ms crlf in value", REQ("ms Zm9v 4 b\r\na\r\nb\r\n"), REQ_MS, "Zm9v", "b",
     "a\r\nb", .rflags = REQ_F_B64KEY, .line = 13},
    {"ms +len", REQ("ms foo +3\r\nabc\r\n"), REQ_MS, "foo", NULL, "abc",
     .line = 11},
    {"ms 0len", REQ("ms foo 03\r\nabc\r\n"), REQ_MS, "foo", NULL, "abc",
     .line = 11},
    {"ms len wraps at 2^32", REQ("ms foo 4294967299\r\nabc\r\n"), REQ_MS, "foo",
     NULL, "abc", .line = 19},
    {"ms len tab", REQ("ms foo 3\t\r\nabc\r\n"), REQ_MS, "foo", NULL, "abc",
     .line = 11},
    {"md", REQ("md foo q\r\n"), REQ_MD, "foo", "q", .rflags = REQ_F_QUIET},
    {"md flags", REQ("md foo C1 I T30 k\r\n"), REQ_MD, "foo", "C1 I T30 k"},
    {"ma", REQ("ma n D5 MD N0 J7 v\r\n"), REQ_MA, "n", "D5 MD N0 J7 v"},
    {"ma quiet b", REQ("ma Zm9v q b\r\n"), REQ_MA, "Zm9v", "q b",
     .rflags = REQ_F_QUIET | REQ_F_B64KEY},
    {"mn", REQ("mn\r\n"), REQ_MN},
    {"mn space", REQ("mn \r\n"), REQ_MN},
    {"mn ignores the rest", REQ("mn foo q\r\n"), REQ_MN},
    {"me", REQ("me foo\r\n"), REQ_ME, "foo"},
    {"me q is no flag", REQ("me foo q\r\n"), REQ_ME, "foo", "q"},
    {"me b", REQ("me Zm9v b\r\n"), REQ_ME, "Zm9v", "b", .rflags = REQ_F_B64KEY},
    {"me b then junk", REQ("me Zm9v b x y \r\n"), REQ_ME, "Zm9v", "b x y",
     .rflags = REQ_F_B64KEY},
    {"me bx is no b", REQ("me foo bx\r\n"), REQ_ME, "foo", "bx"},
    /* ERROR */
    {"mg no key", REQ("mg \r\n"), REQ_NONE, .err = RES_ERROR},
    {"mg bare", REQ("mg\r\n"), REQ_NONE, .err = RES_ERROR},
    {"ms no key", REQ("ms \r\n"), REQ_NONE, .err = RES_ERROR},
    {"md no key", REQ("md \r\n"), REQ_NONE, .err = RES_ERROR},
    {"ma no key", REQ("ma \r\n"), REQ_NONE, .err = RES_ERROR},
    {"mnx", REQ("mnx\r\n"), REQ_NONE, .err = RES_ERROR},
    {"mgx", REQ("mgx foo\r\n"), REQ_NONE, .err = RES_ERROR},
    {"mx", REQ("mx foo\r\n"), REQ_NONE, .err = RES_ERROR},
    /* CLIENT_ERROR, the line consumed */
    {"me no key", REQ("me\r\n"), REQ_ME, CERR(MSG_BAD_FORMAT)},
    {"me space", REQ("me \r\n"), REQ_ME, CERR(MSG_BAD_FORMAT)},
    {"mg key 251", REQ("mg k" K250 " v q\r\n"), REQ_MG, CERR(MSG_BAD_FORMAT)},
    {"me key 251", REQ("me k" K250 "\r\n"), REQ_ME, CERR(MSG_BAD_FORMAT)},
    {"mg b key 252", REQ("mg " B252 " b\r\n"), REQ_MG, CERR(MSG_BAD_FORMAT)},
    {"mg control key", REQ("mg fo\x01o\r v\r\n"), REQ_MG, "fo\x01o\r", "v"},
    {"mg control flag", REQ("mg foo v\tx\r\n"), REQ_MG, "foo", "v\tx",
     CERR(MSG_BAD_FORMAT)},
    {"mg invalid", REQ("mg foo !\r\n"), REQ_MG, "foo", "!",
     CERR("invalid flag")},
    {"mg invalid letter", REQ("mg foo v z\r\n"), REQ_MG, "foo", "v z",
     CERR("invalid flag")},
    {"mg invalid digit", REQ("mg foo 1\r\n"), REQ_MG, "foo", "1",
     CERR("invalid flag")},
    {"mg duplicate", REQ("mg foo v v\r\n"), REQ_MG, "foo", "v v",
     CERR("duplicate flag")},
    {"mg duplicate q", REQ("mg foo q q\r\n"), REQ_MG, "foo", "q q",
     .rflags = REQ_F_QUIET, CERR("duplicate flag")},
    {"mg duplicate first", REQ("mg foo v v !\r\n"), REQ_MG, "foo", "v v !",
     CERR("duplicate flag")},
    {"mg invalid first", REQ("mg foo ! v v\r\n"), REQ_MG, "foo", "! v v",
     CERR("invalid flag")},
    {"mg duplicate P", REQ("mg foo " P17 "\r\n"), REQ_MG, "foo", P17,
     CERR("duplicate flag")},
    {"mg 18 flags", REQ("mg foo " FLAGS17 " C1\r\n"), REQ_MG, "foo",
     CERR("options flags are too long")},
    {"mg many flags", REQ("mg foo " P17 " " P17 " " P17 "\r\n"), REQ_MG, "foo",
     CERR("options flags are too long")},
    {"mg bad b64", REQ("mg !!!! b\r\n"), REQ_MG, "!!!!", "b",
     .rflags = REQ_F_B64KEY, CERR("error decoding key")},
    {"mg b64 partial", REQ("mg Zm9 b k v\r\n"), REQ_MG, "Zm9", "b k v",
     .rflags = REQ_F_B64KEY, CERR("error decoding key")},
    {"mg invalid before b64", REQ("mg !!!! b !\r\n"), REQ_MG, "!!!!", "b !",
     .rflags = REQ_F_B64KEY, CERR("invalid flag")},
    {"md invalid", REQ("md foo z\r\n"), REQ_MD, "foo", "z",
     CERR(MSG_INVALID_OR_DUP)},
    {"md duplicate", REQ("md foo v v\r\n"), REQ_MD, "foo", "v v",
     CERR(MSG_INVALID_OR_DUP)},
    {"md 18 flags", REQ("md foo " FLAGS17 " C1\r\n"), REQ_MD, "foo",
     CERR("options flags too long")},
    {"md bad b64", REQ("md !!!! b\r\n"), REQ_MD, "!!!!", "b",
     .rflags = REQ_F_B64KEY, CERR(MSG_INVALID_OR_DUP)},
    {"ma duplicate q", REQ("ma foo q q\r\n"), REQ_MA, "foo", "q q",
     .rflags = REQ_F_QUIET, CERR(MSG_INVALID_OR_DUP)},
    {"ma bad b64", REQ("ma !!!! b\r\n"), REQ_MA, "!!!!", "b",
     .rflags = REQ_F_B64KEY, CERR(MSG_INVALID_OR_DUP)},
    {"me bad b64", REQ("me !!!! b\r\n"), REQ_ME, "!!!!", "b",
     .rflags = REQ_F_B64KEY, CERR(MSG_BAD_FORMAT)},
    {"me b64 of foo", REQ("me foo b k\r\n"), REQ_ME, "foo", "b k",
     .rflags = REQ_F_B64KEY, CERR(MSG_BAD_FORMAT)},
    /* ms: a bad line is answered and its data is read as commands */
    {"ms no len", REQ("ms foo\r\nabc\r\n"), REQ_MS, "foo", CERR(MSG_BAD_FORMAT),
     .consumed = 8},
    {"ms len word", REQ("ms foo abc\r\nabc\r\n"), REQ_MS, "foo",
     CERR(MSG_BAD_FORMAT), .consumed = 12},
    {"ms len negative", REQ("ms foo -1\r\nabc\r\n"), REQ_MS, "foo",
     CERR(MSG_BAD_FORMAT), .consumed = 11},
    {"ms len junk", REQ("ms foo 3x\r\nabc\r\n"), REQ_MS, "foo",
     CERR(MSG_BAD_FORMAT), .consumed = 11},
    {"ms len INT_MAX-1", REQ("ms foo 2147483646\r\nabc\r\n"), REQ_MS, "foo",
     CERR(MSG_BAD_FORMAT), .consumed = 19},
    {"ms key 251", REQ("ms k" K250 " 3\r\nabc\r\n"), REQ_MS,
     CERR(MSG_BAD_FORMAT), .consumed = 258},
    {"ms too many", REQ("ms foo 1 " P17 "\r\nx\r\n"), REQ_MS, "foo",
     CERR("options flags too long"),
     .consumed = sizeof("ms foo 1 " P17 "\r\n") - 1},
    /* ms: bad flags swallow the data */
    {"ms invalid", REQ("ms foo 3 !\r\nabc\r\n"), REQ_MS, "foo", "!",
     CERR("invalid flag"), .consumed = 12, .swallow = 5},
    {"ms duplicate q", REQ("ms foo 3 q q\r\nabc\r\n"), REQ_MS, "foo", "q q",
     .rflags = REQ_F_QUIET, CERR("duplicate flag"), .consumed = 14,
     .swallow = 5},
    {"ms bad b64", REQ("ms !!!! 3 b\r\nabc\r\n"), REQ_MS, "!!!!", "b",
     .rflags = REQ_F_B64KEY, CERR("error decoding key"), .consumed = 13,
     .swallow = 5},
    {"ms too large", REQ("ms foo 2000000 T0\r\n"), REQ_MS, "foo", "T0",
     .rflags = REQ_F_TOOLARGE, .err = RES_SERVER_ERROR, .errmsg = MSG_TOO_LARGE,
     .swallow = 2000002},
    {"ms too large q", REQ("ms foo 1048577 q\r\n"), REQ_MS, "foo", "q",
     .rflags = REQ_F_TOOLARGE | REQ_F_QUIET, .err = RES_SERVER_ERROR,
     .errmsg = MSG_TOO_LARGE, .swallow = 1048579},
    {"ms invalid before too large", REQ("ms foo 2000000 !\r\n"), REQ_MS, "foo",
     "!", CERR("invalid flag"), .swallow = 2000002},
    /* ms: <datalen> + 2 bytes are read, then checked */
    {"ms bad chunk", REQ("ms foo 3\r\nabcd\r\n"), REQ_MS, "foo",
     CERR(MSG_BAD_CHUNK), .consumed = 15, .line = 10},
    {"ms bad chunk CR", REQ("ms foo 3\r\nabc\r\r\n"), REQ_MS, "foo",
     CERR(MSG_BAD_CHUNK), .consumed = 15, .line = 10},
    {"ms -0 len", REQ("ms foo -0\r\nabc\r\n"), REQ_MS, "foo",
     CERR(MSG_BAD_CHUNK), .consumed = 13, .line = 11},
};

static void
check_req(const struct req_case *c, const char *in, const struct request *r)
{
    assert_int_equal(r->proto, PROTO_META);
    assert_int_equal(r->cmd, c->cmd);
    assert_int_equal(r->rflags, c->rflags);
    assert_int_equal(r->err, c->err);
    if (c->errmsg == NULL) {
        assert_null(r->errmsg);
    } else {
        assert_string_equal(r->errmsg, c->errmsg);
    }
    if (c->key == NULL) {
        assert_null(r->key);
    } else {
        assert_int_equal(r->nkey, strlen(c->key));
        assert_memory_equal(r->key, c->key, r->nkey);
        assert_true(r->key > in && r->key < in + c->nin);
    }
    if (c->args == NULL) {
        assert_null(r->args);
        assert_int_equal(r->nargs, 0);
    } else {
        assert_int_equal(r->nargs, strlen(c->args));
        assert_memory_equal(r->args, c->args, r->nargs);
    }
    if (c->val == NULL) {
        assert_null(r->val);
        assert_int_equal(r->nval, 0);
    } else {
        assert_int_equal(r->nval, strlen(c->val));
        assert_memory_equal(r->val, c->val, r->nval);
    }
    assert_int_equal(r->swallow, c->swallow);
}

/* Parse in[0..len) from a heap copy of exactly len bytes. */
static enum status
req_parse_copy(const char *in, size_t len, struct request *r, size_t *used,
               size_t *need, char **copy)
{
    *copy = malloc(len ? len : 1);
    assert_non_null(*copy);
    memcpy(*copy, in, len);
    return proto_meta_parse_request(*copy, len, ITEM_MAX, r, used, need);
}

static void
req_case_run(const struct req_case *c)
{
    size_t want = c->consumed ? c->consumed : c->nin;
    struct request r;
    size_t used = 77, need = 77;
    char *copy;
    enum status st;

    for (size_t k = 0; k < want; k++) {
        st = req_parse_copy(c->in, k, &r, &used, &need, &copy);
        free(copy);
        if (st != ST_AGAIN) {
            fail_msg("%s: prefix %zu: status %d", c->name, k, st);
        }
        if (need != (c->line && k >= c->line ? want : 0)) {
            fail_msg("%s: prefix %zu: need %zu", c->name, k, need);
        }
    }
    st = req_parse_copy(c->in, c->nin, &r, &used, &need, &copy);
    if (st != ST_OK || used != want || need != 0) {
        free(copy);
        fail_msg("%s: status %d used %zu need %zu", c->name, st, used, need);
    }
    check_req(c, copy, &r);
    free(copy);
}

static void
test_request_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEMS(req_cases); i++) {
        req_case_run(&req_cases[i]);
    }
}

/* memcached closes a connection whose line passes 2048 bytes. */
static void
test_request_long_line(void **state)
{
    size_t n = META_LINE_MAX + 2;
    char *in = malloc(n);
    struct request r;
    size_t used, need;

    (void)state;
    assert_non_null(in);
    memset(in, 'v', n);
    memcpy(in, "mg foo ", 7);
    assert_int_equal(
        proto_meta_parse_request(in, META_LINE_MAX, ITEM_MAX, &r, &used, &need),
        ST_AGAIN);
    assert_int_equal(proto_meta_parse_request(in, META_LINE_MAX + 1, ITEM_MAX,
                                              &r, &used, &need),
                     ST_PROTO);
    in[META_LINE_MAX] = '\n'; /* 2048 bytes, then '\n': accepted */
    assert_int_equal(
        proto_meta_parse_request(in, n, ITEM_MAX, &r, &used, &need), ST_OK);
    assert_int_equal(used, META_LINE_MAX + 1);
    in[META_LINE_MAX] = 'v';
    in[META_LINE_MAX + 1] = '\n';
    assert_int_equal(
        proto_meta_parse_request(in, n, ITEM_MAX, &r, &used, &need), ST_PROTO);
    free(in);
}

/* Pipelined commands, each consuming exactly its bytes. */
static void
test_request_pipeline(void **state)
{
    static const char in[] = "mg a v q\r\n"
                             "ms b 2 T0\r\nxy\r\n"
                             "md c\r\n"
                             "mn\r\n"
                             "ma d v\r\n"
                             "me e\r\n";
    static const enum req_cmd cmds[] = {REQ_MG, REQ_MS, REQ_MD,
                                        REQ_MN, REQ_MA, REQ_ME};
    static const size_t lens[] = {10, 15, 6, 4, 8, 6};
    size_t off = 0;

    (void)state;
    for (size_t i = 0; i < NELEMS(cmds); i++) {
        struct request r;
        size_t used = 0, need = 0;

        assert_int_equal(proto_meta_parse_request(in + off,
                                                  sizeof(in) - 1 - off,
                                                  ITEM_MAX, &r, &used, &need),
                         ST_OK);
        assert_int_equal(r.cmd, cmds[i]);
        assert_int_equal(r.err, RES_NONE);
        assert_int_equal(used, lens[i]);
        off += used;
    }
    assert_int_equal(off, sizeof(in) - 1);
}

/* What a client sends -> what its backend receives. */
static const struct {
    const char *in;
    const char *out;
} pass_cases[] = {
    {"mg foo v\r\n", "mg foo v\r\n"},
    {"mg foo\r\n", "mg foo\r\n"},
    {"mg foo k s v q Oabc\r\n", "mg foo k s v Oabc\r\n"},
    {"mg  foo  q  v  \r\n", "mg foo v\r\n"},
    {"mg foo qx\r\n", "mg foo\r\n"},
    {"mg Zm9v b k q\n", "mg Zm9v b k\r\n"},
    {"mg foo T\r\n", "mg foo T\r\n"},
    {"ms foo 3 q T0 F5 c k Oxyz\r\nabc\r\n",
     "ms foo 3 T0 F5 c k Oxyz\r\nabc\r\n"},
    {"ms foo +3 q\r\nabc\r\n", "ms foo 3\r\nabc\r\n"},
    {"ms foo 4294967299\r\nabc\r\n", "ms foo 3\r\nabc\r\n"},
    {"ms foo 0 MA\r\n\r\n", "ms foo 0 MA\r\n\r\n"},
    {"ms foo 4 I C5\r\na\r\nb\r\n", "ms foo 4 I C5\r\na\r\nb\r\n"},
    {"md foo q C1\r\n", "md foo C1\r\n"},
    {"md foo I T30 k Oa\r\n", "md foo I T30 k Oa\r\n"},
    {"ma n q N0 J7 v\r\n", "ma n N0 J7 v\r\n"},
    {"ma n MD D18446744073709551615 t c\r\n",
     "ma n MD D18446744073709551615 t c\r\n"},
    {"me foo\r\n", "me foo\r\n"},
    {"me foo q\r\n", "me foo\r\n"},
    {"me Zm9v b x y\r\n", "me Zm9v b\r\n"},
};

static void
test_passthrough(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEMS(pass_cases); i++) {
        const char *in = pass_cases[i].in;
        const char *want = pass_cases[i].out;
        struct request r;
        size_t used = 0, need = 0;
        struct buf b;

        assert_int_equal(proto_meta_parse_request(in, strlen(in), ITEM_MAX, &r,
                                                  &used, &need),
                         ST_OK);
        assert_int_equal(r.err, RES_NONE);
        buf_init(&b, 8);
        assert_int_equal(proto_meta_encode_request(&r, &b), ST_OK);
        if (buf_len(&b) != strlen(want) ||
            memcmp(b.pos, want, buf_len(&b)) != 0) {
            fail_msg("'%s': got '%.*s'", in, (int)buf_len(&b), b.pos);
        }
        buf_free(&b);
    }
}

/* ---- client replies ---- */

struct rep_case {
    const char *name;
    struct request req;
    struct response res;
    const char *want;
};

#define RAW_RES(lit) .raw = (lit), .nraw = sizeof(lit) - 1
#define MSG(lit)     .msg = (lit), .nmsg = sizeof(lit) - 1
#define Q            .rflags = REQ_F_QUIET

/* With q, memcached 1.6.18 hides: mg EN; ms HD; md HD; ma HD and VA.
 * Everything else, errors included, is sent. */
static const struct rep_case rep_cases[] = {
    {"mg hit",
     {.cmd = REQ_MG},
     {.kind = RES_VALUE, RAW_RES("VA 3 f5 c3 kfoo s3 t-1 Oabc\r\nabc\r\n")},
     "VA 3 f5 c3 kfoo s3 t-1 Oabc\r\nabc\r\n"},
    {"mg q hit",
     {.cmd = REQ_MG, Q},
     {.kind = RES_VALUE, RAW_RES("VA 3 kfoo\r\nabc\r\n")},
     "VA 3 kfoo\r\nabc\r\n"},
    {"mg q HD",
     {.cmd = REQ_MG, Q},
     {.kind = RES_VALUE, RAW_RES("HD\r\n")},
     "HD\r\n"},
    {"mg q vivify",
     {.cmd = REQ_MG, Q},
     {.kind = RES_VALUE, RAW_RES("HD kmiss W\r\n")},
     "HD kmiss W\r\n"},
    {"mg miss",
     {.cmd = REQ_MG},
     {.kind = RES_MISS, RAW_RES("EN\r\n")},
     "EN\r\n"},
    {"mg q miss",
     {.cmd = REQ_MG, Q},
     {.kind = RES_MISS, RAW_RES("EN\r\n")},
     ""},
    {"mg q miss flags",
     {.cmd = REQ_MG, Q},
     {.kind = RES_MISS, RAW_RES("EN knokey Oa\r\n")},
     ""},
    {"mg q error",
     {.cmd = REQ_MG, Q},
     {.kind = RES_CLIENT_ERROR,
      RAW_RES("CLIENT_ERROR bad token in command line format\r\n")},
     "CLIENT_ERROR bad token in command line format\r\n"},
    {"ms",
     {.cmd = REQ_MS},
     {.kind = RES_STORED, RAW_RES("HD c3 kfoo\r\n")},
     "HD c3 kfoo\r\n"},
    {"ms q HD",
     {.cmd = REQ_MS, Q},
     {.kind = RES_STORED, RAW_RES("HD c3 kfoo Oxyz\r\n")},
     ""},
    {"ms q NS",
     {.cmd = REQ_MS, Q},
     {.kind = RES_NOT_STORED, RAW_RES("NS\r\n")},
     "NS\r\n"},
    {"ms q EX",
     {.cmd = REQ_MS, Q},
     {.kind = RES_EXISTS, RAW_RES("EX\r\n")},
     "EX\r\n"},
    {"ms q NF",
     {.cmd = REQ_MS, Q},
     {.kind = RES_NOT_FOUND, RAW_RES("NF\r\n")},
     "NF\r\n"},
    {"ms q too large (backend)",
     {.cmd = REQ_MS, Q},
     {.kind = RES_SERVER_ERROR,
      RAW_RES("SERVER_ERROR object too large for cache\r\n")},
     "SERVER_ERROR object too large for cache\r\n"},
    {"md q HD",
     {.cmd = REQ_MD, Q},
     {.kind = RES_DELETED, RAW_RES("HD\r\n")},
     ""},
    {"md q NF",
     {.cmd = REQ_MD, Q},
     {.kind = RES_NOT_FOUND, RAW_RES("NF\r\n")},
     "NF\r\n"},
    {"md q EX",
     {.cmd = REQ_MD, Q},
     {.kind = RES_EXISTS, RAW_RES("EX\r\n")},
     "EX\r\n"},
    {"md",
     {.cmd = REQ_MD},
     {.kind = RES_DELETED, RAW_RES("HD kfoo\r\n")},
     "HD kfoo\r\n"},
    {"ma q HD",
     {.cmd = REQ_MA, Q},
     {.kind = RES_NUMBER, RAW_RES("HD\r\n")},
     ""},
    {"ma q VA",
     {.cmd = REQ_MA, Q},
     {.kind = RES_NUMBER, RAW_RES("VA 1\r\n7\r\n")},
     ""},
    {"ma q NF",
     {.cmd = REQ_MA, Q},
     {.kind = RES_NOT_FOUND, RAW_RES("NF\r\n")},
     "NF\r\n"},
    {"ma q NS",
     {.cmd = REQ_MA, Q},
     {.kind = RES_NOT_STORED, RAW_RES("NS\r\n")},
     "NS\r\n"},
    {"ma q EX",
     {.cmd = REQ_MA, Q},
     {.kind = RES_EXISTS, RAW_RES("EX\r\n")},
     "EX\r\n"},
    {"ma q non-numeric",
     {.cmd = REQ_MA, Q},
     {.kind = RES_CLIENT_ERROR,
      RAW_RES("CLIENT_ERROR cannot increment or decrement non-numeric "
              "value\r\n")},
     "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"},
    {"ma",
     {.cmd = REQ_MA},
     {.kind = RES_NUMBER, RAW_RES("VA 2 c15 t-1\r\n10\r\n")},
     "VA 2 c15 t-1\r\n10\r\n"},
    {"me",
     {.cmd = REQ_ME},
     {.kind = RES_RAW,
      RAW_RES("ME foo exp=-1 la=21 cas=56 fetch=yes cls=1 size=65\r\n")},
     "ME foo exp=-1 la=21 cas=56 fetch=yes cls=1 size=65\r\n"},
    {"me hides nothing",
     {.cmd = REQ_ME, Q},
     {.kind = RES_MISS, RAW_RES("EN\r\n")},
     "EN\r\n"},
    {"mn", {.cmd = REQ_MN}, {.kind = RES_OK}, "MN\r\n"},
    {"mn q", {.cmd = REQ_MN, Q}, {.kind = RES_OK}, "MN\r\n"},
    /* answered by riven: parse errors, backend failures */
    {"ERROR",
     {.cmd = REQ_NONE, .err = RES_ERROR},
     {.kind = RES_ERROR},
     "ERROR\r\n"},
    {"parse error q",
     {.cmd = REQ_MG, Q, .err = RES_CLIENT_ERROR},
     {.kind = RES_CLIENT_ERROR, MSG("duplicate flag")},
     "CLIENT_ERROR duplicate flag\r\n"},
    {"too large q",
     {.cmd = REQ_MS,
      .rflags = REQ_F_QUIET | REQ_F_TOOLARGE,
      .err = RES_SERVER_ERROR},
     {.kind = RES_SERVER_ERROR, MSG(MSG_TOO_LARGE)},
     "SERVER_ERROR object too large for cache\r\n"},
    {"backend down q",
     {.cmd = REQ_MD, Q},
     {.kind = RES_SERVER_ERROR, MSG(MSG_BACKEND_UNAVAILABLE)},
     "SERVER_ERROR backend unavailable\r\n"},
    {"backend timeout",
     {.cmd = REQ_MG},
     {.kind = RES_SERVER_ERROR, MSG(MSG_BACKEND_TIMEOUT)},
     "SERVER_ERROR backend timeout\r\n"},
    {"error without text",
     {.cmd = REQ_MG},
     {.kind = RES_CLIENT_ERROR},
     "CLIENT_ERROR\r\n"},
    /* a status without the backend's bytes: the bare code */
    {"bare miss", {.cmd = REQ_MG}, {.kind = RES_MISS}, "EN\r\n"},
    {"bare miss q", {.cmd = REQ_MG, Q}, {.kind = RES_MISS}, ""},
    {"bare stored", {.cmd = REQ_MS}, {.kind = RES_STORED}, "HD\r\n"},
    {"bare not found q", {.cmd = REQ_MD, Q}, {.kind = RES_NOT_FOUND}, "NF\r\n"},
    {"bare value",
     {.cmd = REQ_MG},
     {.kind = RES_VALUE, .val = "abc", .nval = 3},
     "VA 3\r\nabc\r\n"},
    {"bare number q",
     {.cmd = REQ_MA, Q},
     {.kind = RES_NUMBER, .val = "7", .nval = 1},
     ""},
    {"nothing", {.cmd = REQ_MG}, {.kind = RES_NONE}, ""},
};

/* The bytes an outq holds, into dst (at least q->total bytes). */
static size_t
outq_flatten(const struct outq *q, char *dst)
{
    struct iovec iov[16];
    int n = outq_iov(q, 0, iov, 16);
    size_t off = 0;

    for (int i = 0; i < n; i++) {
        memcpy(dst + off, iov[i].iov_base, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    return off;
}

static void
test_reply_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEMS(rep_cases); i++) {
        const struct rep_case *c = &rep_cases[i];
        struct request req = c->req;
        struct outq q;
        char got[256];
        size_t n;

        req.proto = PROTO_META;
        outq_init(&q, 16);
        assert_int_equal(proto_meta_encode_reply(&req, &c->res, &q), ST_OK);
        assert_true(q.total < sizeof(got));
        n = outq_flatten(&q, got);
        assert_int_equal(n, q.total);
        if (n != strlen(c->want) || memcmp(got, c->want, n) != 0) {
            fail_msg("%s: got '%.*s'", c->name, (int)n, got);
        }
        outq_free(&q);
    }
}

/* A long value is queued by reference, not copied. */
static void
test_reply_by_ref(void **state)
{
    static char raw[4096];
    const struct request req = {.cmd = REQ_MG, .proto = PROTO_META};
    const struct response res = {
        .kind = RES_VALUE, .raw = raw, .nraw = sizeof(raw)};
    struct outq q;
    struct iovec iov[4];

    (void)state;
    memcpy(raw, "VA 4085\r\n", 9);
    outq_init(&q, 16);
    assert_int_equal(proto_meta_encode_reply(&req, &res, &q), ST_OK);
    assert_int_equal(outq_iov(&q, 0, iov, 4), 1);
    assert_ptr_equal(iov[0].iov_base, raw);
    assert_int_equal(iov[0].iov_len, sizeof(raw));
    outq_free(&q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_table),
        cmocka_unit_test(test_encode_appends),
        cmocka_unit_test(test_encode_large),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_queue_table),
        cmocka_unit_test(test_queue_refs),
        cmocka_unit_test(test_queue_copy_or_ref),
        cmocka_unit_test(test_queue_appends),
        cmocka_unit_test(test_decode_table),
        cmocka_unit_test(test_decode_pipeline),
        cmocka_unit_test(test_decode_proto),
        cmocka_unit_test(test_decode_long_line),
        cmocka_unit_test(test_request_table),
        cmocka_unit_test(test_request_long_line),
        cmocka_unit_test(test_request_pipeline),
        cmocka_unit_test(test_passthrough),
        cmocka_unit_test(test_reply_table),
        cmocka_unit_test(test_reply_by_ref),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
