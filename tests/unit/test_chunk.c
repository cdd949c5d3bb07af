/*
 * test_chunk: the chunked-storage layout. SHA-256 and chunk keys against
 * golden vectors (FIPS 180-4 and Python's hashlib/base64), the metadata's
 * exact bytes, round trips of every value size 0..3 * chunk_size + 2 and a
 * sweep to 1 MiB (through chunk_encode and through header + span + zeros,
 * the writev path, which must give the same bytes), refusal of every
 * foreign or damaged chunk and metadata, key shape and distinctness, and
 * tokens that are never 0 and never repeat.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "chunk.h"

#define MIB (1024u * 1024u)

/* A deterministic byte pattern (xorshift), so failures repeat. */
static uint64_t rng_state = 88172645463325252ull;

static uint64_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void
fill(char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        p[i] = (char)(rng() >> 56);
    }
}

static void
hex_of(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(out + 2 * i, 3, "%02x", p[i]);
    }
}

/* struct chunk_meta has padding: compare it field by field */
static void
assert_meta_equal(const struct chunk_meta *a, const struct chunk_meta *b)
{
    assert_true(a->total == b->total);
    assert_true(a->token == b->token);
    assert_true(a->exptime == b->exptime);
    assert_int_equal(a->flags, b->flags);
    assert_int_equal(a->nchunks, b->nchunks);
    assert_int_equal(a->chunk_size, b->chunk_size);
}

static struct chunk_keyid
keyid_of(const char *key, size_t nkey)
{
    struct chunk_keyid id;

    chunk_keyid(key, nkey, &id);
    return id;
}

static void
test_keyid_vectors(void **state)
{
    static const char abc56[] =
        "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    /* SHA-256(k)[0..24): FIPS 180-4's examples, then k[i] = i * 7 + n
     * for lengths around the 55/56/64-byte padding boundaries */
    static const struct {
        size_t n;
        const char *hex;
    } pattern[] = {
        {55, "81afe5b788dc2ce138ff83d9b20164db75a94d75d2b2432e"},
        {56, "2aba54f0ac632420a2b502431408866e40e1d5e430df4cd8"},
        {63, "733d3d4ee79ee67145bf73da13588f6f235d37414fc64b14"},
        {64, "79322907b3e9d013d7dc2c2f256674dbf733045cde01df35"},
        {65, "d85c007c6eb440f085afa2b84f6f2bce4658b240e9f62cb1"},
        {119, "6c87eedf096b345de205b702e5223b73b447a3207791ded3"},
        {120, "42500cf6a1e3936d6b9e0bcfe296d654b63255e525487d36"},
        {250, "7fe63d3b5b7744496edc102519c44354b78cf91627d1a651"},
        {1000, "6b0df76627243d095b0c4400cb658b7e804dd03461cc03ae"},
    };
    char hex[49], key[1000];
    struct chunk_keyid id;

    (void)state;
    id = keyid_of("", 0);
    hex_of(id.hash, sizeof(id.hash), hex);
    assert_string_equal(hex,
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934c");
    id = keyid_of("abc", 3);
    hex_of(id.hash, sizeof(id.hash), hex);
    assert_string_equal(hex,
                        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9c");
    id = keyid_of(abc56, sizeof(abc56) - 1);
    hex_of(id.hash, sizeof(id.hash), hex);
    assert_string_equal(hex,
                        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167");
    for (size_t t = 0; t < NELEMS(pattern); t++) {
        size_t n = pattern[t].n;

        for (size_t i = 0; i < n; i++) {
            key[i] = (char)((i * 7 + n) & 0xff);
        }
        id = keyid_of(key, n);
        hex_of(id.hash, sizeof(id.hash), hex);
        assert_string_equal(hex, pattern[t].hex);
    }
}

static void
test_key_golden(void **state)
{
    char key[250], out[CHUNK_KEY_LEN + 1] = {0};
    struct chunk_keyid id = keyid_of("foo", 3);

    (void)state;
    assert_int_equal(chunk_key(out, sizeof(out), &id, 0), CHUNK_KEY_LEN);
    assert_string_equal(out, "~rcLCa0a2j_xo_5m0U8HTBBNA00000000");
    assert_int_equal(chunk_key(out, CHUNK_KEY_LEN, &id, 0xdeadbeef),
                     CHUNK_KEY_LEN);
    assert_string_equal(out, "~rcLCa0a2j_xo_5m0U8HTBBNAdeadbeef");
    /* a 250-byte client key: the chunk key is still 33 bytes */
    memset(key, 'K', sizeof(key));
    id = keyid_of(key, sizeof(key));
    assert_int_equal(chunk_key(out, sizeof(out), &id, 7), CHUNK_KEY_LEN);
    assert_string_equal(out, "~rcSOpcD2P5JeJJcTrrxN7HYw00000007");
    /* a binary key with a space, CR LF and NUL gives a text key */
    id = keyid_of("a b\r\n\0", 6);
    assert_int_equal(chunk_key(out, sizeof(out), &id, 1), CHUNK_KEY_LEN);
    assert_string_equal(out, "~rcgjGt9ve1N4PyC_4n7PgWFg00000001");
    /* too small a buffer: 0, nothing written */
    memset(out, '#', sizeof(out));
    assert_int_equal(chunk_key(out, CHUNK_KEY_LEN - 1, &id, 1), 0);
    assert_int_equal(out[0], '#');
}

static bool
key_byte_ok(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '~';
}

static int
cmp_key(const void *a, const void *b)
{
    return memcmp(a, b, CHUNK_KEY_LEN);
}

/* Keys of many client keys (every length 1..250, random bytes) and
 * indexes: all CHUNK_KEY_LEN bytes of [A-Za-z0-9_~-], all distinct. */
static void
test_key_shape_distinct(void **state)
{
    static const uint32_t idx[] = {0, 1, 2, 15, 16, 255, 256, 0xffffffffu};
    enum { NKEYS = 2000 };
    char(*keys)[CHUNK_KEY_LEN] = calloc(NKEYS * NELEMS(idx), sizeof(*keys));
    char client[250];
    size_t k = 0;

    (void)state;
    assert_non_null(keys);
    for (size_t i = 0; i < NKEYS; i++) {
        size_t n = 1 + i % sizeof(client);
        struct chunk_keyid id;

        fill(client, n);
        if (i < 10) {
            memset(client, 'x', n); /* and some alike, by length only */
        }
        id = keyid_of(client, n);
        for (size_t j = 0; j < NELEMS(idx); j++, k++) {
            assert_int_equal(chunk_key(keys[k], CHUNK_KEY_LEN, &id, idx[j]),
                             CHUNK_KEY_LEN);
            assert_true(CHUNK_KEY_LEN <= 250);
            for (size_t b = 0; b < CHUNK_KEY_LEN; b++) {
                if (!key_byte_ok(keys[k][b])) {
                    fail_msg("key byte %zu is 0x%02x", b,
                             (unsigned char)keys[k][b]);
                }
            }
            assert_memory_equal(keys[k], CHUNK_KEY_PREFIX, 3);
            assert_true(chunk_is_chunk_key(keys[k], CHUNK_KEY_LEN));
        }
    }
    qsort(keys, k, CHUNK_KEY_LEN, cmp_key);
    for (size_t i = 1; i < k; i++) {
        assert_true(memcmp(keys[i - 1], keys[i], CHUNK_KEY_LEN) != 0);
    }
    free(keys);
    assert_false(chunk_is_chunk_key("~rc", 3));
    assert_false(chunk_is_chunk_key("foo", 3));
    assert_false(chunk_is_chunk_key("~rcLCa0a2j_xo_5m0U8HTBBNA000000000", 34));
    assert_false(chunk_is_chunk_key("~rxLCa0a2j_xo_5m0U8HTBBNA00000000", 33));
}

static void
test_count(void **state)
{
    (void)state;
    assert_int_equal(chunk_count(0, 1068), 0);
    assert_int_equal(chunk_count(1, 1068), 1);
    assert_int_equal(chunk_count(1067, 1068), 1);
    assert_int_equal(chunk_count(1068, 1068), 1);
    assert_int_equal(chunk_count(1069, 1068), 2);
    assert_int_equal(chunk_count(MIB, 1068), 982);
    assert_true(chunk_count(UINT64_MAX, 1) == UINT64_MAX);
    assert_true(chunk_count(UINT64_MAX, 256) == (UINT64_MAX >> 8) + 1);
    assert_true(chunk_count(UINT64_MAX - 255, 256) == (UINT64_MAX >> 8));
}

static void
test_meta_init(void **state)
{
    struct chunk_meta m, keep;
    uint64_t most = (uint64_t)UINT32_MAX * CHUNK_SIZE_MIN;

    (void)state;
    assert_int_equal(CHUNK_SIZE_MAX, 524172);
    assert_int_equal(CHUNK_ITEM_SIZE(CHUNK_SIZE_DEFAULT), 1184);
    assert_int_equal(CHUNK_VALUE_LEN(CHUNK_SIZE_DEFAULT), 1092);
    assert_int_equal(chunk_meta_init(&m, 4000, 7, 60, 1068, 99), ST_OK);
    assert_true(m.total == 4000 && m.token == 99 && m.exptime == 60);
    assert_true(m.flags == 7 && m.nchunks == 4 && m.chunk_size == 1068);
    assert_int_equal(chunk_meta_init(&m, 0, 0, 0, CHUNK_SIZE_MIN, 1), ST_OK);
    assert_int_equal(m.nchunks, 0);
    assert_int_equal(chunk_meta_init(&m, most, 0, 0, CHUNK_SIZE_MIN, 1), ST_OK);
    assert_true(m.nchunks == UINT32_MAX);
    assert_int_equal(chunk_meta_init(&m, MIB, 0, 0, CHUNK_SIZE_MAX, 1), ST_OK);
    assert_int_equal(m.nchunks, 3);
    keep = m;
    assert_int_equal(chunk_meta_init(&m, most + 1, 0, 0, CHUNK_SIZE_MIN, 1),
                     ST_ERROR);
    assert_int_equal(chunk_meta_init(&m, 1, 0, 0, CHUNK_SIZE_MIN - 1, 1),
                     ST_ERROR);
    assert_int_equal(chunk_meta_init(&m, 1, 0, 0, CHUNK_SIZE_MAX + 1, 1),
                     ST_ERROR);
    assert_int_equal(chunk_meta_init(&m, 1, 0, 0, 0, 1), ST_ERROR);
    assert_int_equal(chunk_meta_init(&m, 1, 0, 0, 1068, 0), ST_ERROR);
    assert_meta_equal(&m, &keep); /* untouched */
}

static void
test_meta_golden(void **state)
{
    static const char want[CHUNK_META_LEN] =
        "\x00\x72\x76\x6d\x01\x00\x00\x00"  /* magic, version, zero */
        "\x00\x00\x00\x00\x00\x00\x0f\xa0"  /* total 4000 */
        "\x01\x23\x45\x67\x89\xab\xcd\xef"  /* token */
        "\xff\xff\xff\xff\xff\xff\xff\xff"  /* exptime -1 */
        "\xde\xad\xbe\xef\x00\x00\x00\x04"  /* flags, nchunks 4 */
        "\x00\x00\x04\x2c\x5d\xd3\x25\x52"; /* chunk_size 1068, FNV-1a */
    char out[CHUNK_META_LEN + 8];
    struct chunk_meta m, d;

    (void)state;
    assert_int_equal(
        chunk_meta_init(&m, 4000, 0xdeadbeef, -1, 1068, 0x0123456789abcdefull),
        ST_OK);
    memset(out, '#', sizeof(out));
    assert_int_equal(chunk_meta_encode(out, CHUNK_META_LEN - 1, &m), 0);
    assert_int_equal(out[0], '#');
    assert_int_equal(chunk_meta_encode(out, sizeof(out), &m), CHUNK_META_LEN);
    assert_memory_equal(out, want, CHUNK_META_LEN);
    assert_int_equal(out[CHUNK_META_LEN], '#');
    assert_int_equal(chunk_meta_decode(want, sizeof(want), &d), ST_OK);
    assert_meta_equal(&d, &m);
}

static void
test_meta_roundtrip(void **state)
{
    static const int64_t exps[] = {0,       1,         -1,       2592000,
                                   2592001, INT64_MIN, INT64_MAX};
    static const uint32_t sizes[] = {CHUNK_SIZE_MIN, 1068, 4428,
                                     CHUNK_SIZE_MAX};
    static const uint64_t totals[] = {0,   1,    255, 256,
                                      257, 1068, MIB, (uint64_t)1 << 39};
    char buf[CHUNK_META_LEN];
    struct chunk_meta m, d;

    (void)state;
    for (size_t e = 0; e < NELEMS(exps); e++) {
        for (size_t s = 0; s < NELEMS(sizes); s++) {
            for (size_t t = 0; t < NELEMS(totals); t++) {
                uint32_t flags = (uint32_t)rng();

                assert_int_equal(chunk_meta_init(&m, totals[t], flags, exps[e],
                                                 sizes[s], rng() | 1),
                                 ST_OK);
                assert_int_equal(chunk_meta_encode(buf, sizeof(buf), &m),
                                 CHUNK_META_LEN);
                memset(&d, 0, sizeof(d));
                assert_int_equal(chunk_meta_decode(buf, sizeof(buf), &d),
                                 ST_OK);
                assert_meta_equal(&d, &m);
            }
        }
    }
}

/* FNV-1a 32 over the first 44 bytes into the last 4: a re-sealed
 * metadata whose fields the test altered. */
static void
reseal(char *b)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < 44; i++) {
        h = (h ^ (unsigned char)b[i]) * 16777619u;
    }
    for (size_t i = 0; i < 4; i++) {
        b[44 + i] = (char)(h >> (24 - 8 * i));
    }
}

static void
expect_meta_error(const char *p, size_t n)
{
    struct chunk_meta d, keep;

    memset(&d, 0x5a, sizeof(d));
    keep = d;
    if (chunk_meta_decode(p, n, &d) != ST_ERROR) {
        fail_msg("metadata of %zu bytes accepted", n);
    }
    assert_meta_equal(&d, &keep);
}

static void
test_meta_garbage(void **state)
{
    char good[CHUNK_META_LEN], b[CHUNK_META_LEN + 1], junk[4096];
    struct chunk_meta m;
    struct chunk_keyid id = keyid_of("k", 1);

    (void)state;
    assert_int_equal(chunk_meta_init(&m, 5000, 3, 0, 1068, 0x77), ST_OK);
    assert_int_equal(chunk_meta_encode(good, sizeof(good), &m), CHUNK_META_LEN);
    expect_meta_error("hello", 5);
    expect_meta_error("", 0);
    /* a plain value of exactly CHUNK_META_LEN bytes */
    expect_meta_error("0123456789abcdef0123456789abcdef0123456789abcdef", 48);
    for (size_t n = 0; n < CHUNK_META_LEN; n++) { /* truncated */
        expect_meta_error(good, n);
    }
    memcpy(b, good, sizeof(good)); /* one byte too many */
    b[CHUNK_META_LEN] = 0;
    expect_meta_error(b, CHUNK_META_LEN + 1);
    for (size_t i = 0; i < CHUNK_META_LEN * 8; i++) { /* every bit */
        memcpy(b, good, sizeof(good));
        b[i / 8] ^= (char)(1u << (i % 8));
        expect_meta_error(b, CHUNK_META_LEN);
    }
    for (int t = 0; t < 10000; t++) { /* random bytes, random lengths */
        size_t n = t % 2 ? CHUNK_META_LEN : (size_t)(rng() % sizeof(junk));

        fill(junk, n);
        if (t % 4 == 1) {
            memcpy(junk, good, 5); /* even with the magic and version */
        }
        expect_meta_error(junk, n);
    }
    /* a chunk item's value is not metadata */
    assert_int_equal(chunk_encode(junk, sizeof(junk), &m, &id, 0, junk + 2000),
                     CHUNK_VALUE_LEN(1068));
    expect_meta_error(junk, CHUNK_VALUE_LEN(1068));
    expect_meta_error(junk, CHUNK_META_LEN);
    /* sealed, but a field is wrong */
    memcpy(b, good, sizeof(good));
    b[4] = 2; /* version */
    reseal(b);
    expect_meta_error(b, CHUNK_META_LEN);
    memcpy(b, good, sizeof(good));
    b[6] = 1; /* reserved */
    reseal(b);
    expect_meta_error(b, CHUNK_META_LEN);
    memcpy(b, good, sizeof(good));
    memset(b + 16, 0, 8); /* token 0 */
    reseal(b);
    expect_meta_error(b, CHUNK_META_LEN);
    memcpy(b, good, sizeof(good));
    b[39] = 4; /* nchunks 4 for 5000 bytes of 1068 */
    reseal(b);
    expect_meta_error(b, CHUNK_META_LEN);
    memcpy(b, good, sizeof(good));
    memcpy(b + 8, "\0\0\0\0\0\0\0\xff", 8);    /* total 255, 1 chunk */
    memcpy(b + 36, "\0\0\0\x01\0\0\0\xff", 8); /* chunk_size 255 */
    reseal(b);
    expect_meta_error(b, CHUNK_META_LEN);
    memcpy(b + 36, "\0\0\0\x01\0\0\x01\0", 8); /* 256: allowed */
    reseal(b);
    assert_int_equal(chunk_meta_decode(b, CHUNK_META_LEN, &m), ST_OK);
    assert_int_equal(m.chunk_size, 256);
}

/* Every chunk of value (m->total bytes) under key through both write
 * paths, checked and put back together; the bytes must be the value. */
static void
roundtrip(const struct chunk_meta *m, const struct chunk_keyid *id,
          const char *value, char *item, char *item2, char *back)
{
    uint64_t at = 0;

    for (uint32_t i = 0; i < m->nchunks; i++) {
        size_t n = CHUNK_VALUE_LEN((size_t)m->chunk_size), np = 0;
        const char *pl = NULL;
        uint64_t off;
        uint32_t len;

        assert_int_equal(chunk_encode(item, n, m, id, i, value), n);
        /* the writev path: header, the value's slice, zeros */
        chunk_span(m, i, &off, &len);
        assert_true(off == at);
        assert_int_equal(chunk_header(item2, CHUNK_HDR_LEN, m, id, i),
                         CHUNK_HDR_LEN);
        memcpy(item2 + CHUNK_HDR_LEN, value + off, len);
        memset(item2 + CHUNK_HDR_LEN + len, 0, m->chunk_size - len);
        assert_memory_equal(item, item2, n);
        if (chunk_check(item, n, m, id, i, &pl, &np) != ST_OK) {
            fail_msg("total %llu chunk %u refused",
                     (unsigned long long)m->total, i);
        }
        assert_ptr_equal(pl, item + CHUNK_HDR_LEN);
        assert_int_equal(np, len);
        memcpy(back + at, pl, np);
        at += np;
    }
    assert_true(at == m->total);
    assert_memory_equal(back, value, m->total);
}

struct bufs {
    char *value, *item, *item2, *back;
};

static int
setup_bufs(void **state)
{
    struct bufs *b = calloc(1, sizeof(*b));

    if (b == NULL) {
        return -1;
    }
    b->value = malloc(MIB + 1);
    b->back = malloc(MIB + 1);
    b->item = malloc(CHUNK_VALUE_LEN(CHUNK_SIZE_MAX));
    b->item2 = malloc(CHUNK_VALUE_LEN(CHUNK_SIZE_MAX));
    if (!b->value || !b->back || !b->item || !b->item2) {
        return -1;
    }
    fill(b->value, MIB + 1);
    *state = b;
    return 0;
}

static int
teardown_bufs(void **state)
{
    struct bufs *b = *state;

    if (b != NULL) {
        free(b->value);
        free(b->back);
        free(b->item);
        free(b->item2);
        free(b);
    }
    return 0;
}

static void
test_roundtrip_every_size(void **state)
{
    static const uint32_t sizes[] = {CHUNK_SIZE_MIN, CHUNK_SIZE_DEFAULT};
    struct bufs *b = *state;
    struct chunk_keyid id = keyid_of("every:size", 10);
    char meta[CHUNK_META_LEN];

    for (size_t s = 0; s < NELEMS(sizes); s++) {
        uint32_t cs = sizes[s];

        for (uint64_t total = 0; total <= 3 * (uint64_t)cs + 2; total++) {
            struct chunk_meta m, d;

            assert_int_equal(
                chunk_meta_init(&m, total, (uint32_t)total, 0, cs, total + 1),
                ST_OK);
            assert_int_equal(m.nchunks, (total + cs - 1) / cs);
            assert_int_equal(chunk_meta_encode(meta, sizeof(meta), &m),
                             CHUNK_META_LEN);
            assert_int_equal(chunk_meta_decode(meta, sizeof(meta), &d), ST_OK);
            assert_meta_equal(&d, &m);
            roundtrip(&d, &id, b->value, b->item, b->item2, b->back);
        }
    }
}

static void
test_roundtrip_sweep(void **state)
{
    static const uint32_t sizes[] = {CHUNK_SIZE_MIN, CHUNK_SIZE_DEFAULT, 4428,
                                     CHUNK_SIZE_MAX};
    struct bufs *b = *state;
    struct chunk_keyid id = keyid_of("sweep", 5);

    for (size_t s = 0; s < NELEMS(sizes); s++) {
        /* 0, 8191, ... (a prime stride: every offset in a chunk), then
         * 1 MiB - 1, 1 MiB, 1 MiB + 1 */
        for (uint64_t total = 0; total <= MIB + 1;
             total = total + 8191 < MIB - 1 ? total + 8191
                     : total < MIB - 1      ? MIB - 1
                                            : total + 1) {
            struct chunk_meta m;

            assert_int_equal(
                chunk_meta_init(&m, total, 0, 0, sizes[s], chunk_token()),
                ST_OK);
            roundtrip(&m, &id, b->value, b->item, b->item2, b->back);
        }
    }
}

static void
expect_check_error(const char *p, size_t n, const struct chunk_meta *m,
                   const struct chunk_keyid *id, uint32_t index)
{
    const char *pl = (const char *)1;
    size_t np = 12345;

    if (chunk_check(p, n, m, id, index, &pl, &np) != ST_ERROR) {
        fail_msg("chunk %u of %zu bytes accepted", index, n);
    }
    assert_ptr_equal(pl, (const char *)1);
    assert_int_equal(np, 12345);
}

static void
test_check_refuses(void **state)
{
    struct bufs *b = *state;
    struct chunk_keyid id = keyid_of("victim", 6), other = keyid_of("x", 1);
    struct chunk_meta m, m2;
    size_t n = CHUNK_VALUE_LEN((size_t)CHUNK_SIZE_MIN);
    char *c = b->item, *c2 = b->item2;
    const char *pl;
    size_t np;

    /* 3 chunks, the last with 10 bytes and 246 of padding */
    assert_int_equal(chunk_meta_init(&m, 2 * CHUNK_SIZE_MIN + 10, 0, 0,
                                     CHUNK_SIZE_MIN, 0x1111),
                     ST_OK);
    assert_int_equal(chunk_encode(c, n, &m, &id, 2, b->value), n);
    assert_int_equal(chunk_check(c, n, &m, &id, 2, &pl, &np), ST_OK);
    assert_int_equal(np, 10);
    /* another token (another write of the same key) */
    m2 = m;
    m2.token = 0x2222;
    expect_check_error(c, n, &m2, &id, 2);
    /* another index: chunk 1 read for 2 and 2 for 1, 0 */
    assert_int_equal(chunk_encode(c2, n, &m, &id, 1, b->value), n);
    expect_check_error(c2, n, &m, &id, 2);
    expect_check_error(c, n, &m, &id, 1);
    expect_check_error(c, n, &m, &id, 0);
    expect_check_error(c, n, &m, &id, 3); /* past nchunks */
    expect_check_error(c, n, &m, &id, UINT32_MAX);
    /* another key, same token (a chunk key collision) */
    expect_check_error(c, n, &m, &other, 2);
    assert_int_equal(chunk_encode(c2, n, &m, &other, 2, b->value), n);
    expect_check_error(c2, n, &m, &id, 2);
    /* truncated, one byte long, another chunk size */
    for (size_t k = 0; k < n; k++) {
        expect_check_error(c, k, &m, &id, 2);
    }
    c[n] = 0;
    expect_check_error(c, n + 1, &m, &id, 2);
    m2 = m;
    m2.chunk_size = CHUNK_SIZE_MIN + 1;
    expect_check_error(c, n, &m2, &id, 2);
    /* any byte of the header or the padding altered */
    for (size_t k = 0; k < n; k++) {
        if (k >= CHUNK_HDR_LEN && k < CHUNK_HDR_LEN + 10) {
            continue; /* payload: the chunk's own business */
        }
        memcpy(c2, c, n);
        c2[k] ^= 0x20;
        expect_check_error(c2, n, &m, &id, 2);
    }
    /* a 0-byte value has no chunk 0 */
    assert_int_equal(chunk_meta_init(&m2, 0, 0, 0, CHUNK_SIZE_MIN, 5), ST_OK);
    expect_check_error(c, n, &m2, &id, 0);
    /* metadata is not a chunk */
    assert_int_equal(chunk_meta_encode(c2, n, &m), CHUNK_META_LEN);
    expect_check_error(c2, CHUNK_META_LEN, &m, &id, 0);
}

static void
test_encode_bounds(void **state)
{
    struct bufs *b = *state;
    struct chunk_keyid id = keyid_of("k", 1);
    struct chunk_meta m;
    size_t n = CHUNK_VALUE_LEN((size_t)CHUNK_SIZE_DEFAULT);
    char *c = b->item;

    assert_int_equal(chunk_meta_init(&m, 5000, 0, 0, CHUNK_SIZE_DEFAULT, 9),
                     ST_OK);
    memset(c, '#', n + 1);
    assert_int_equal(chunk_encode(c, n - 1, &m, &id, 0, b->value), 0);
    assert_int_equal(chunk_header(c, CHUNK_HDR_LEN - 1, &m, &id, 0), 0);
    assert_int_equal(chunk_encode(c, n, &m, &id, 5, b->value), 0);
    assert_int_equal(chunk_header(c, n, &m, &id, 5), 0);
    assert_int_equal(c[0], '#');
    assert_int_equal(chunk_encode(c, n, &m, &id, 4, b->value), n);
    assert_int_equal(c[n], '#');
    /* the header: magic, index 4, token 9, SHA-256("k")[16..24) */
    assert_int_equal(chunk_header(c, n, &m, &id, 4), CHUNK_HDR_LEN);
    assert_memory_equal(c, "\0rvc\0\0\0\x04\0\0\0\0\0\0\0\x09", 16);
    assert_memory_equal(c + 16, id.hash + 16, 8);
}

static void
test_header_golden(void **state)
{
    struct chunk_keyid id = keyid_of("foo", 3);
    struct chunk_meta m;
    char h[CHUNK_HDR_LEN];

    (void)state;
    assert_int_equal(
        chunk_meta_init(&m, 4000, 0, 0, 1068, 0x0123456789abcdefull), ST_OK);
    assert_int_equal(chunk_header(h, sizeof(h), &m, &id, 3), CHUNK_HDR_LEN);
    assert_memory_equal(h,
                        "\x00rvc\x00\x00\x00\x03"
                        "\x01\x23\x45\x67\x89\xab\xcd\xef"
                        "\x13\x42\x2d\x70\x64\x83\xbf\xa0",
                        CHUNK_HDR_LEN);
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return (x > y) - (x < y);
}

#define NTOKENS 20000

static void *
tokens_thread(void *arg)
{
    uint64_t *t = arg;

    for (size_t i = 0; i < NTOKENS; i++) {
        t[i] = chunk_token();
    }
    return NULL;
}

static void
test_token(void **state)
{
    uint64_t *t = calloc(3 * NTOKENS, sizeof(*t));
    pthread_t th[2];

    (void)state;
    assert_non_null(t);
    errno = 4242;
    t[0] = chunk_token();
    assert_int_equal(errno, 4242);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(
            pthread_create(&th[i], NULL, tokens_thread, t + (i + 1) * NTOKENS),
            0);
    }
    tokens_thread(t);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
    }
    qsort(t, 3 * NTOKENS, sizeof(*t), cmp_u64);
    assert_true(t[0] != 0);
    for (size_t i = 1; i < 3 * NTOKENS; i++) {
        assert_true(t[i - 1] != t[i]);
    }
    free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keyid_vectors),
        cmocka_unit_test(test_key_golden),
        cmocka_unit_test(test_key_shape_distinct),
        cmocka_unit_test(test_count),
        cmocka_unit_test(test_meta_init),
        cmocka_unit_test(test_meta_golden),
        cmocka_unit_test(test_meta_roundtrip),
        cmocka_unit_test(test_meta_garbage),
        cmocka_unit_test_setup_teardown(test_roundtrip_every_size, setup_bufs,
                                        teardown_bufs),
        cmocka_unit_test_setup_teardown(test_roundtrip_sweep, setup_bufs,
                                        teardown_bufs),
        cmocka_unit_test_setup_teardown(test_check_refuses, setup_bufs,
                                        teardown_bufs),
        cmocka_unit_test_setup_teardown(test_encode_bounds, setup_bufs,
                                        teardown_bufs),
        cmocka_unit_test(test_header_golden),
        cmocka_unit_test(test_token),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
