/*
 * test_util: number parsing at its boundaries (overflow by one, signs,
 * stray bytes, lengths shorter than the string), memcached's safe_strto*
 * against a copy of memcached's own code over libc, host:port splitting
 * with its messages, and integer formatting (0, INT64_MIN, UINT64_MAX),
 * checked byte for byte.
 */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

#define S(lit) (lit), (sizeof(lit) - 1) /* literal -> pointer, length */

static void
test_parse_u64(void **state)
{
    static const char *const bad[] = {
        "",
        "-1",
        "+1",
        " 1",
        "1 ",
        "1a",
        "a",
        "0x10",
        "1.0",
        "1\r",
        "18446744073709551616",
        "18446744073709551620",
        "99999999999999999999",
        "184467440737095516150",
    };
    uint64_t v;

    (void)state;
    assert_true(util_parse_u64(S("0"), &v));
    assert_int_equal(v, 0);
    assert_true(util_parse_u64(S("000123"), &v));
    assert_int_equal(v, 123);
    assert_true(util_parse_u64(S("18446744073709551615"), &v));
    assert_true(v == UINT64_MAX);
    assert_true(util_parse_u64(S("18446744073709551614"), &v));
    assert_true(v == UINT64_MAX - 1);
    for (size_t i = 0; i < NELEMS(bad); i++) {
        v = 42;
        if (util_parse_u64(bad[i], strlen(bad[i]), &v)) {
            fail_msg("accepted '%s'", bad[i]);
        }
        assert_int_equal(v, 42); /* untouched on failure */
    }
}

static void
test_parse_len_bounds(void **state)
{
    uint64_t u;
    int64_t i;

    (void)state;
    /* tokens are not NUL-terminated: only len bytes count */
    assert_true(util_parse_u64("123 456", 3, &u));
    assert_int_equal(u, 123);
    assert_true(util_parse_u64("7\r\n", 1, &u));
    assert_int_equal(u, 7);
    assert_false(util_parse_u64("123", 0, &u));
    assert_true(util_parse_i64("-12x", 3, &i));
    assert_int_equal(i, -12);
    assert_false(util_parse_i64("-12", 1, &i));
}

static void
test_parse_u32(void **state)
{
    uint32_t v;

    (void)state;
    assert_true(util_parse_u32(S("0"), &v));
    assert_int_equal(v, 0);
    assert_true(util_parse_u32(S("4294967295"), &v));
    assert_true(v == UINT32_MAX);
    v = 9;
    assert_false(util_parse_u32(S("4294967296"), &v));
    assert_false(util_parse_u32(S("18446744073709551616"), &v));
    assert_false(util_parse_u32(S("-1"), &v));
    assert_false(util_parse_u32(S(""), &v));
    assert_int_equal(v, 9);
}

static void
test_parse_i64(void **state)
{
    static const char *const bad[] = {
        "",
        "-",
        "--1",
        "+1",
        "- 1",
        "1-",
        "-a",
        "9223372036854775808",
        "-9223372036854775809",
        "18446744073709551616",
        "-18446744073709551616",
    };
    int64_t v;

    (void)state;
    assert_true(util_parse_i64(S("0"), &v));
    assert_int_equal(v, 0);
    assert_true(util_parse_i64(S("-0"), &v));
    assert_int_equal(v, 0);
    assert_true(util_parse_i64(S("-1"), &v));
    assert_int_equal(v, -1);
    assert_true(util_parse_i64(S("9223372036854775807"), &v));
    assert_true(v == INT64_MAX);
    assert_true(util_parse_i64(S("-9223372036854775807"), &v));
    assert_true(v == -INT64_MAX);
    assert_true(util_parse_i64(S("-9223372036854775808"), &v));
    assert_true(v == INT64_MIN);
    for (size_t i = 0; i < NELEMS(bad); i++) {
        v = 42;
        if (util_parse_i64(bad[i], strlen(bad[i]), &v)) {
            fail_msg("accepted '%s'", bad[i]);
        }
        assert_int_equal(v, 42);
    }
}

/*
 * memcached 1.6's safe_strto* (its util.c), on NUL-terminated input: the
 * oracle the util_safe_* functions must agree with on every input.
 */
static bool
mc_ok(const char *str, const char *end)
{
    return errno != ERANGE && end != str &&
           (isspace((unsigned char)*end) || *end == '\0');
}

static bool
mc_strtoull(const char *str, uint64_t *out)
{
    char *end;
    unsigned long long ull;

    errno = 0;
    ull = strtoull(str, &end, 10);
    if (!mc_ok(str, end) ||
        ((long long)ull < 0 && memchr(str, '-', (size_t)(end - str)))) {
        return false;
    }
    *out = ull;
    return true;
}

static bool
mc_strtoul(const char *str, uint32_t *out)
{
    char *end;
    unsigned long l;

    errno = 0;
    l = strtoul(str, &end, 10);
    if (!mc_ok(str, end) ||
        ((long)l < 0 && memchr(str, '-', (size_t)(end - str)))) {
        return false;
    }
    *out = (uint32_t)l;
    return true;
}

static bool
mc_strtol(const char *str, int32_t *out)
{
    char *end;
    long l;

    errno = 0;
    l = strtol(str, &end, 10);
    if (!mc_ok(str, end)) {
        return false;
    }
    *out = (int32_t)l; /* modulo 2^32, as gcc and clang define it */
    return true;
}

static void
test_safe_strto_oracle(void **state)
{
    static const char *const in[] = {
        "0",
        "-0",
        "+0",
        "7",
        "+7",
        "-7",
        "007",
        " 7",
        "\t\n\v\f\r7",
        "5\tjunk",
        "5\rx",
        "5 x",
        "5\n",
        "5x",
        "x5",
        "0x10",
        "1.5",
        "1e3",
        "",
        " ",
        "-",
        "+",
        "--1",
        "+-1",
        "- 1",
        "\t-3",
        "1-",
        "2147483647",
        "2147483648",
        "-2147483648",
        "-2147483649",
        "4294967295",
        "4294967296",
        "4294967297",
        "-4294967295",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775807",
        "-9223372036854775808",
        "-9223372036854775809",
        "-18446744073709551615",
        "18446744073709551615",
        "18446744073709551616",
        "-18446744073709551616",
        "99999999999999999999999",
    };

    (void)state;
    for (size_t i = 0; i < NELEMS(in); i++) {
        size_t n = strlen(in[i]);
        uint64_t ull = 1, want_ull = 1;
        uint32_t ul = 1, want_ul = 1;
        int32_t l = 1, want_l = 1;
        bool ok;

        ok = util_safe_strtoull(in[i], n, &ull);
        if (ok != mc_strtoull(in[i], &want_ull) || ull != want_ull) {
            fail_msg("strtoull '%s'", in[i]);
        }
        ok = util_safe_strtoul(in[i], n, &ul);
        if (ok != mc_strtoul(in[i], &want_ul) || ul != want_ul) {
            fail_msg("strtoul '%s'", in[i]);
        }
        ok = util_safe_strtol(in[i], n, &l);
        if (ok != mc_strtol(in[i], &want_l) || l != want_l) {
            fail_msg("strtol '%s'", in[i]);
        }
    }
}

/* The quirks riven's parsers rely on, spelled out. */
static void
test_safe_strto(void **state)
{
    static const struct {
        char fn; /* 'l' strtol, 'u' strtoul, 'U' strtoull */
        const char *s;
        size_t len;
        bool ok;
        int64_t want;
    } cases[] = {
        {'l', S("5\tjunk"), true, 5},
        {'l', S("4294967297"), true, 1},
        {'l', S("2147483648"), true, INT32_MIN},
        {'l', S("-1"), true, -1},
        {'l', S("9223372036854775808"), false, 0},
        {'l', "12", 1, true, 1}, /* only s[0..len) is read */
        {'l', "1", 0, false, 0},
        {'u', S("4294967296"), true, 0},
        {'u', S("-1"), false, 0},
        {'U', S("-0"), true, 0},
        {'U', S("-9223372036854775809"), true, INT64_MAX},
        {'U', S("-1"), false, 0},
        {'U', " ", 0, false, 0},
    };

    (void)state;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        uint64_t ull = 42; /* untouched on failure */
        uint32_t ul = 42;
        int32_t l = 42;
        bool ok = false;
        int64_t got = 0;

        switch (cases[i].fn) {
        case 'l':
            ok = util_safe_strtol(cases[i].s, cases[i].len, &l);
            got = l;
            break;
        case 'u':
            ok = util_safe_strtoul(cases[i].s, cases[i].len, &ul);
            got = ul;
            break;
        default:
            ok = util_safe_strtoull(cases[i].s, cases[i].len, &ull);
            got = (int64_t)ull;
            break;
        }
        if (ok != cases[i].ok || got != (ok ? cases[i].want : 42)) {
            fail_msg("%c '%.*s': %d %lld", cases[i].fn, (int)cases[i].len,
                     cases[i].s, ok, (long long)got);
        }
    }
}

static void
test_all_digits(void **state)
{
    static const char nul[] = {'1', '\0', '2'};

    (void)state;
    assert_true(util_all_digits(S("0")));
    assert_true(util_all_digits(S("0123456789")));
    assert_true(util_all_digits("12x", 2));
    assert_false(util_all_digits(S("")));
    assert_false(util_all_digits("1", 0));
    assert_false(util_all_digits(S("-1")));
    assert_false(util_all_digits(S("+1")));
    assert_false(util_all_digits(S(" 1")));
    assert_false(util_all_digits(S("1 ")));
    assert_false(util_all_digits(S("1/")));
    assert_false(util_all_digits(S("1:")));
    assert_false(util_all_digits(nul, sizeof(nul)));
}

static void
test_split_host_port(void **state)
{
    static const struct {
        const char *in, *host, *port, *err;
        bool v6;
    } cases[] = {
        {"127.0.0.1:11211", "127.0.0.1", "11211", NULL, false},
        {"localhost:1", "localhost", "1", NULL, false},
        {"[::1]:11211", "::1", "11211", NULL, true},
        {"[fe80::1%lo]:80", "fe80::1%lo", "80", NULL, true},
        {"h:x:", NULL, NULL, "missing port in 'h:x:' (" UTIL_ADDR_FORMS ")",
         false},
        {"h:junk", "h", "junk", NULL, false}, /* the port is the caller's */
        {"host", NULL, NULL, "missing port in 'host' (" UTIL_ADDR_FORMS ")",
         false},
        {"[::1]11211", NULL, NULL,
         "missing port in '[::1]11211' (" UTIL_ADDR_FORMS ")", true},
        {"[::1]", NULL, NULL, "missing port in '[::1]' (" UTIL_ADDR_FORMS ")",
         true},
        {"[::1:11211", NULL, NULL, "missing ']' in '[::1:11211'", true},
        {"::1:11211", NULL, NULL,
         "IPv6 address must be in brackets, [v6addr]:port, in '::1:11211'",
         false},
        {":11211", NULL, NULL, "missing host in ':11211' (" UTIL_ADDR_FORMS ")",
         false},
        {"[]:11211", NULL, NULL,
         "missing host in '[]:11211' (" UTIL_ADDR_FORMS ")", true},
        {"", NULL, NULL, "missing port in '' (" UTIL_ADDR_FORMS ")", false},
    };

    (void)state;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        char host[32], err[160] = "";
        const char *port = NULL;
        bool v6 = !cases[i].v6;
        enum status st = util_split_host_port(cases[i].in, host, sizeof(host),
                                              &port, &v6, err, sizeof(err));

        if (cases[i].err != NULL) {
            assert_int_equal(st, ST_ERROR);
            assert_string_equal(err, cases[i].err);
        } else {
            assert_int_equal(st, ST_OK);
            assert_string_equal(host, cases[i].host);
            assert_string_equal(port, cases[i].port);
        }
        assert_int_equal(v6, cases[i].v6);
    }
}

/* The host must fit host[0..hostlen) with its NUL; no message needed. */
static void
test_split_host_port_bounds(void **state)
{
    char host[4] = "xxx", err[96];
    const char *port = NULL;
    bool v6;

    (void)state;
    assert_int_equal(
        util_split_host_port("abc:1", host, 4, &port, &v6, NULL, 0), ST_OK);
    assert_string_equal(host, "abc");
    assert_int_equal(
        util_split_host_port("[::1]:1", host, 4, &port, &v6, NULL, 0), ST_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(
        util_split_host_port("abcd:1", host, 4, &port, &v6, err, sizeof(err)),
        ST_ERROR);
    assert_string_equal(err, "host too long in 'abcd:1' (4 bytes, max 3)");
    assert_int_equal(
        util_split_host_port("[::12]:1", host, 4, &port, &v6, NULL, 0),
        ST_ERROR);
}

/* Format with fn into a buffer of 'X's: exact bytes, nothing past them. */
static void
check_u64(uint64_t v, const char *want)
{
    char buf[32];
    size_t n;

    memset(buf, 'X', sizeof(buf));
    n = util_u64_str(buf, v);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    assert_int_equal(buf[n], 'X');
}

static void
check_i64(int64_t v, const char *want)
{
    char buf[32];
    size_t n;

    memset(buf, 'X', sizeof(buf));
    n = util_i64_str(buf, v);
    assert_int_equal(n, strlen(want));
    assert_memory_equal(buf, want, n);
    assert_int_equal(buf[n], 'X');
}

static void
test_format(void **state)
{
    (void)state;
    check_u64(0, "0");
    check_u64(9, "9");
    check_u64(10, "10");
    check_u64(1000000, "1000000");
    check_u64(UINT64_MAX, "18446744073709551615");
    check_i64(0, "0");
    check_i64(-1, "-1");
    check_i64(-10, "-10");
    check_i64(INT64_MAX, "9223372036854775807");
    check_i64(INT64_MIN, "-9223372036854775808");
    check_i64(INT64_MIN + 1, "-9223372036854775807");
}

static void
test_format_roundtrip(void **state)
{
    static const int64_t vals[] = {0,    1,         -1,        255,
                                   -256, INT64_MAX, INT64_MIN, 1234567890123LL};
    char buf[32];
    int64_t back;

    (void)state;
    for (size_t i = 0; i < NELEMS(vals); i++) {
        size_t n = util_i64_str(buf, vals[i]);

        assert_true(util_parse_i64(buf, n, &back));
        assert_true(back == vals[i]);
    }
}

static void
test_clock(void **state)
{
    uint64_t a, b, ms;

    (void)state;
    a = util_now_ns();
    ms = util_now_ms();
    b = util_now_ns();
    assert_true(a > 0);
    assert_true(b >= a);
    assert_true(ms >= a / 1000000u && ms <= b / 1000000u);
}

static void
test_next_token(void **state)
{
    static const char line[] = "  a  bb ccc ";
    const char *cur = line, *end = line + sizeof(line) - 1, *tok;
    size_t ntok;

    (void)state;
    assert_true(util_next_token(&cur, end, &tok, &ntok));
    assert_int_equal(ntok, 1);
    assert_ptr_equal(tok, line + 2);
    assert_true(util_next_token(&cur, end, &tok, &ntok));
    assert_int_equal(ntok, 2);
    assert_ptr_equal(tok, line + 5);
    assert_true(util_next_token(&cur, end, &tok, &ntok));
    assert_int_equal(ntok, 3);
    assert_ptr_equal(tok, line + 8);
    assert_false(util_next_token(&cur, end, &tok, &ntok));
    assert_ptr_equal(cur, end);
    assert_false(util_next_token(&cur, end, &tok, &ntok));
}

static void
test_errf(void **state)
{
    char err[8];

    (void)state;
    memset(err, 'x', sizeof(err));
    util_errf(err, sizeof(err), "%s %d", "port", 123456);
    assert_string_equal(err, "port 12"); /* truncated, terminated */
    util_errf(NULL, 0, "%s", "ignored");
    util_errf(err, 0, "%s", "ignored");
    assert_string_equal(err, "port 12");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_u64),
        cmocka_unit_test(test_parse_len_bounds),
        cmocka_unit_test(test_parse_u32),
        cmocka_unit_test(test_parse_i64),
        cmocka_unit_test(test_safe_strto_oracle),
        cmocka_unit_test(test_safe_strto),
        cmocka_unit_test(test_all_digits),
        cmocka_unit_test(test_split_host_port),
        cmocka_unit_test(test_split_host_port_bounds),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_next_token),
        cmocka_unit_test(test_errf),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
