/*
 * Unit tests for proto_meta: exact bytes of every encoded backend command,
 * and every reply decoded at every split point. Reply inputs are bytes
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
    };
    struct buf b;

    (void)state;
    buf_init(&b, 16);
    for (size_t i = 0; i < NELEMS(bad); i++) {
        if (proto_meta_encode_request(&bad[i], &b) != ST_ERROR) {
            fail_msg("case %zu: not rejected", i);
        }
        assert_int_equal(buf_len(&b), 0);
    }
    buf_free(&b);
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
    {"stats bad slab", REQ_STATS, NULL,
     RAW("CLIENT_ERROR Illegal slab id\r\n")},
    {"stats detail usage", REQ_STATS, "detail",
     RAW("CLIENT_ERROR usage: stats detail on|off|dump\r\n")},
    {"stats bogus", REQ_STATS, "bogus", RAW("ERROR\r\n")},
    /* memcached sends no END after these two */
    {"stats sizes_enable", REQ_STATS, "sizes_enable",
     RAW("STAT sizes_status enabled\r\n")},
    {"stats sizes_disable", REQ_STATS, " sizes_disable x",
     RAW("STAT sizes_status disabled\r\n")},
};

static void
check_res(const struct dec_case *c, const char *in, const struct response *r)
{
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_table),
        cmocka_unit_test(test_encode_appends),
        cmocka_unit_test(test_encode_large),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_decode_table),
        cmocka_unit_test(test_decode_pipeline),
        cmocka_unit_test(test_decode_proto),
        cmocka_unit_test(test_decode_long_line),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
