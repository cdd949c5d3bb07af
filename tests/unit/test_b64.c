/*
 * test_b64: base64 as memcached 1.6.18 decodes meta keys (b flag). Every
 * decode case below was sent to the real daemon as "mg <in> b k v" after
 * storing the decoded key in text ("ms foo 3"): "ok" cases hit it, "fail"
 * cases answered "CLIENT_ERROR error decoding key".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

struct dec_case {
    const char *in;
    const char *want; /* decoded bytes, or NULL: memcached refuses it */
    size_t nwant;
};

#define OK(in, out)                                                            \
    {                                                                          \
        (in), (out), sizeof(out) - 1                                           \
    }
#define FAIL(in)                                                               \
    {                                                                          \
        (in), NULL, 0                                                          \
    }

static const struct dec_case dec_cases[] = {
    OK("Zm9v", "foo"),
    OK("Zm9vYg==", "foob"),
    OK("Zm9vZm9v", "foofoo"),
    OK("Zm8=", "fo"),
    OK("Zg==", "f"),
    OK("Zm9v!", "foo"), /* bytes outside the alphabet are skipped */
    OK("!Zm9v", "foo"),
    OK("Zm9v-_", "foo"), /* so is the URL-safe alphabet */
    OK("Zg==Zm9v", "f"), /* the first padded quad ends the input */
    OK("Zm=9", "f`"),    /* '=' anywhere in a quad counts as padding */
    OK("+/+/", "\xfb\xff\xbf"),
    OK("AAAA", "\0\0\0"), /* synthetic: text cannot set this key */
    FAIL(""),
    FAIL("!!!!"),
    FAIL("Z"),
    FAIL("Zg"),
    FAIL("Zg="),
    FAIL("Zm8"),
    FAIL("Zm9"),
    FAIL("Zm9vY"),
    FAIL("Zm9vYg"),
    FAIL("Zm9v="),
    FAIL("Zm=9v"),
    FAIL("Zm9v+/"),
    FAIL("===="),
    FAIL("Z==="),
    FAIL("Zm9vZ==="),
    FAIL("Zm9v===="),
    FAIL("Zm9v\tx"),
};

static void
test_decode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEMS(dec_cases); i++) {
        const struct dec_case *c = &dec_cases[i];
        size_t n = strlen(c->in), got = 999;
        char *in = malloc(n + 1); /* exact size: ASan sees over-reads */
        char out[64];
        bool ok;

        assert_non_null(in);
        memcpy(in, c->in, n);
        ok = util_b64_decode(in, n, out, UTIL_B64_DECODED_MAX(n), &got);
        if (ok != (c->want != NULL)) {
            free(in);
            fail_msg("'%s': decode returned %d", c->in, ok);
        }
        if (ok) {
            assert_int_equal(got, c->nwant);
            assert_memory_equal(out, c->want, got);
        } else {
            assert_int_equal(got, 999);
        }
        free(in);
    }
}

/* The output bound is checked before anything is written. */
static void
test_decode_outcap(void **state)
{
    char out[8] = "xxxxxxxx";
    size_t n = 0;

    (void)state;
    assert_false(util_b64_decode("Zm9vYg==", 8, out, 5, &n));
    assert_memory_equal(out, "xxxxxxxx", 8);
    assert_true(util_b64_decode("Zm9vYg==", 8, out, 6, &n));
    assert_int_equal(n, 4);
    assert_memory_equal(out, "foob", 4);
}

static void
test_encode(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
        {"\xfb\xff\xbf", "+/+/"},
    };
    char out[16];

    (void)state;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        size_t n = strlen(cases[i].in);
        size_t m = util_b64_encode(cases[i].in, n, out, sizeof(out));

        assert_int_equal(m, strlen(cases[i].out));
        assert_int_equal(m, UTIL_B64_ENCODED_LEN(n));
        assert_memory_equal(out, cases[i].out, m);
    }
    assert_int_equal(util_b64_encode("foo", 3, out, 3), 0);
}

/* Every byte string survives a round trip; binary keys with spaces and
 * control bytes are what the b flag exists for. */
static void
test_round_trip(void **state)
{
    unsigned char in[187];
    char enc[UTIL_B64_ENCODED_LEN(sizeof(in))];
    char dec[UTIL_B64_DECODED_MAX(sizeof(enc))];

    (void)state;
    for (size_t n = 1; n <= sizeof(in); n++) {
        size_t m, got = 0;

        for (size_t i = 0; i < n; i++) {
            in[i] = (unsigned char)(i * 37 + n);
        }
        m = util_b64_encode(in, n, enc, sizeof(enc));
        assert_int_equal(m, UTIL_B64_ENCODED_LEN(n));
        assert_true(
            util_b64_decode(enc, m, dec, UTIL_B64_DECODED_MAX(m), &got));
        assert_int_equal(got, n);
        assert_memory_equal(dec, in, n);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_table),
        cmocka_unit_test(test_decode_outcap),
        cmocka_unit_test(test_encode),
        cmocka_unit_test(test_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
