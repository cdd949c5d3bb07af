/*
 * chunk: encode and check the metadata and chunk items of chunked storage
 * (the layout and its reasoning are in chunk.h). Integers are big-endian,
 * written and read byte by byte (STYLE rule 20); the key hash is a
 * SHA-256 (FIPS 180-4) implemented here, so that chunk keys cannot be
 * made to collide on purpose and the module needs no library.
 *
 * Pure but chunk_token; no allocation; thread-safe.
 */
#include "chunk.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const char META_MAGIC[4] = {'\0', 'r', 'v', 'm'};
static const char CHUNK_MAGIC[4] = {'\0', 'r', 'v', 'c'};

#define KEY_HASH_LEN 16 /* bytes of the hash in the chunk key */
#define KEY_TAG_OFF  16 /* the header's tag: hash[16..24) */
#define KEY_TAG_LEN  8
#define KEY_B64_LEN  22 /* base64url of 16 bytes, no padding */

/* ---- SHA-256 ---- */

struct sha256 {
    uint32_t h[8];
    uint8_t block[64];
    size_t nblock;  /* bytes in block */
    uint64_t nbits; /* message length so far */
};

static const uint32_t SHA256_K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
    0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
    0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t
ror(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32 - n));
}

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           (uint32_t)p[3];
}

static uint64_t
get64(const uint8_t *p)
{
    return (uint64_t)get32(p) << 32 | get32(p + 4);
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void
put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static void
sha256_block(uint32_t h[8], const uint8_t *b)
{
    uint32_t w[64], s[8];

    for (int i = 0; i < 16; i++) {
        w[i] = get32(b + 4 * i);
    }
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ror(w[i - 15], 7) ^ ror(w[i - 15], 18) ^ w[i - 15] >> 3;
        uint32_t s1 = ror(w[i - 2], 17) ^ ror(w[i - 2], 19) ^ w[i - 2] >> 10;

        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy(s, h, sizeof(s));
    for (int i = 0; i < 64; i++) {
        uint32_t e = s[4], a = s[0];
        uint32_t t1 = s[7] + (ror(e, 6) ^ ror(e, 11) ^ ror(e, 25)) +
                      ((e & s[5]) ^ (~e & s[6])) + SHA256_K[i] + w[i];
        uint32_t t2 = (ror(a, 2) ^ ror(a, 13) ^ ror(a, 22)) +
                      ((a & s[1]) ^ (a & s[2]) ^ (s[1] & s[2]));

        memmove(s + 1, s, 7 * sizeof(s[0]));
        s[4] += t1;
        s[0] = t1 + t2;
    }
    for (int i = 0; i < 8; i++) {
        h[i] += s[i];
    }
}

static void
sha256_init(struct sha256 *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372,
                                   0xa54ff53a, 0x510e527f, 0x9b05688c,
                                   0x1f83d9ab, 0x5be0cd19};

    memcpy(c->h, iv, sizeof(iv));
    c->nblock = 0;
    c->nbits = 0;
}

static void
sha256_update(struct sha256 *c, const uint8_t *p, size_t n)
{
    c->nbits += (uint64_t)n * 8;
    while (n > 0) {
        size_t take = MIN(n, sizeof(c->block) - c->nblock);

        memcpy(c->block + c->nblock, p, take);
        c->nblock += take;
        p += take;
        n -= take;
        if (c->nblock == sizeof(c->block)) {
            sha256_block(c->h, c->block);
            c->nblock = 0;
        }
    }
}

static void
sha256_final(struct sha256 *c, uint8_t out[32])
{
    uint64_t nbits = c->nbits;
    static const uint8_t pad[64] = {0x80};
    uint8_t len[8];

    sha256_update(c, pad, c->nblock < 56 ? 56 - c->nblock : 120 - c->nblock);
    put64(len, nbits);
    sha256_update(c, len, sizeof(len));
    assert(c->nblock == 0);
    for (int i = 0; i < 8; i++) {
        put32(out + 4 * i, c->h[i]);
    }
}

/* ---- keys ---- */

void
chunk_keyid(const char *key, size_t nkey, struct chunk_keyid *out)
{
    struct sha256 c;
    uint8_t d[32];

    sha256_init(&c);
    sha256_update(&c, (const uint8_t *)key, nkey);
    sha256_final(&c, d);
    memcpy(out->hash, d, sizeof(out->hash));
}

size_t
chunk_key(char *out, size_t outlen, const struct chunk_keyid *id,
          uint32_t index)
{
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuv"
                              "wxyz0123456789-_";
    static const char hex[] = "0123456789abcdef";
    const uint8_t *h = id->hash;
    char *p = out;

    if (outlen < CHUNK_KEY_LEN) {
        return 0;
    }
    memcpy(p, CHUNK_KEY_PREFIX, sizeof(CHUNK_KEY_PREFIX) - 1);
    p += sizeof(CHUNK_KEY_PREFIX) - 1;
    /* 16 bytes: five groups of 3 (4 characters each), then 1 byte (2) */
    for (int i = 0; i < 15; i += 3) {
        uint32_t v = (uint32_t)h[i] << 16 | (uint32_t)h[i + 1] << 8 | h[i + 2];

        *p++ = b64[v >> 18];
        *p++ = b64[(v >> 12) & 63];
        *p++ = b64[(v >> 6) & 63];
        *p++ = b64[v & 63];
    }
    *p++ = b64[h[15] >> 2];
    *p++ = b64[(h[15] & 3) << 4];
    for (int shift = 28; shift >= 0; shift -= 4) {
        *p++ = hex[(index >> shift) & 15];
    }
    assert((size_t)(p - out) == CHUNK_KEY_LEN);
    return CHUNK_KEY_LEN;
}

bool
chunk_is_chunk_key(const char *key, size_t nkey)
{
    return nkey == CHUNK_KEY_LEN &&
           memcmp(key, CHUNK_KEY_PREFIX, sizeof(CHUNK_KEY_PREFIX) - 1) == 0;
}

/* ---- metadata ---- */

uint64_t
chunk_count(uint64_t total, uint32_t chunk_size)
{
    assert(chunk_size > 0);
    return total / chunk_size + (total % chunk_size != 0);
}

enum status
chunk_meta_init(struct chunk_meta *m, uint64_t total, uint32_t flags,
                int64_t exptime, uint32_t chunk_size, uint64_t token)
{
    uint64_t n;

    if (chunk_size < CHUNK_SIZE_MIN || chunk_size > CHUNK_SIZE_MAX ||
        token == 0) {
        return ST_ERROR;
    }
    n = chunk_count(total, chunk_size);
    if (n > UINT32_MAX) {
        return ST_ERROR;
    }
    m->total = total;
    m->token = token;
    m->exptime = exptime;
    m->flags = flags;
    m->nchunks = (uint32_t)n;
    m->chunk_size = chunk_size;
    return ST_OK;
}

static uint32_t
fnv1a32(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

size_t
chunk_meta_encode(char *out, size_t outlen, const struct chunk_meta *m)
{
    uint8_t *p = (uint8_t *)out;

    if (outlen < CHUNK_META_LEN) {
        return 0;
    }
    assert(m->nchunks == chunk_count(m->total, m->chunk_size));
    memcpy(p, META_MAGIC, sizeof(META_MAGIC));
    p[4] = CHUNK_META_VERSION;
    memset(p + 5, 0, 3);
    put64(p + 8, m->total);
    put64(p + 16, m->token);
    put64(p + 24, (uint64_t)m->exptime);
    put32(p + 32, m->flags);
    put32(p + 36, m->nchunks);
    put32(p + 40, m->chunk_size);
    put32(p + 44, fnv1a32(p, 44));
    return CHUNK_META_LEN;
}

enum status
chunk_meta_decode(const char *p, size_t n, struct chunk_meta *m)
{
    const uint8_t *b = (const uint8_t *)p;
    static const uint8_t zero[3];
    struct chunk_meta d;
    uint64_t e;

    if (n != CHUNK_META_LEN || memcmp(b, META_MAGIC, sizeof(META_MAGIC)) != 0 ||
        b[4] != CHUNK_META_VERSION || memcmp(b + 5, zero, sizeof(zero)) != 0 ||
        get32(b + 44) != fnv1a32(b, 44)) {
        return ST_ERROR;
    }
    e = get64(b + 24);
    memcpy(&d.exptime, &e, sizeof(e)); /* two's complement back */
    d.total = get64(b + 8);
    d.token = get64(b + 16);
    d.flags = get32(b + 32);
    d.nchunks = get32(b + 36);
    d.chunk_size = get32(b + 40);
    if (d.token == 0 || d.chunk_size < CHUNK_SIZE_MIN ||
        d.chunk_size > CHUNK_SIZE_MAX ||
        d.nchunks != chunk_count(d.total, d.chunk_size)) {
        return ST_ERROR;
    }
    *m = d;
    return ST_OK;
}

/* ---- chunks ---- */

void
chunk_span(const struct chunk_meta *m, uint32_t index, uint64_t *off,
           uint32_t *len)
{
    assert(index < m->nchunks);
    *off = (uint64_t)index * m->chunk_size;
    *len = (uint32_t)MIN(m->total - *off, (uint64_t)m->chunk_size);
}

size_t
chunk_header(char *out, size_t outlen, const struct chunk_meta *m,
             const struct chunk_keyid *id, uint32_t index)
{
    uint8_t *p = (uint8_t *)out;

    if (outlen < CHUNK_HDR_LEN || index >= m->nchunks) {
        return 0;
    }
    memcpy(p, CHUNK_MAGIC, sizeof(CHUNK_MAGIC));
    put32(p + 4, index);
    put64(p + 8, m->token);
    memcpy(p + 16, id->hash + KEY_TAG_OFF, KEY_TAG_LEN);
    return CHUNK_HDR_LEN;
}

size_t
chunk_encode(char *out, size_t outlen, const struct chunk_meta *m,
             const struct chunk_keyid *id, uint32_t index, const char *value)
{
    uint64_t off;
    uint32_t len;

    if (outlen < CHUNK_VALUE_LEN((size_t)m->chunk_size) ||
        chunk_header(out, outlen, m, id, index) == 0) {
        return 0;
    }
    chunk_span(m, index, &off, &len);
    memcpy(out + CHUNK_HDR_LEN, value + off, len);
    memset(out + CHUNK_HDR_LEN + len, 0, m->chunk_size - len);
    return CHUNK_VALUE_LEN((size_t)m->chunk_size);
}

/* true if p[0..n) are all zero */
static bool
all_zero(const char *p, size_t n)
{
    unsigned char acc = 0;

    for (size_t i = 0; i < n; i++) {
        acc |= (unsigned char)p[i];
    }
    return acc == 0;
}

enum status
chunk_check(const char *p, size_t n, const struct chunk_meta *m,
            const struct chunk_keyid *id, uint32_t index, const char **payload,
            size_t *npayload)
{
    const uint8_t *b = (const uint8_t *)p;
    uint64_t off;
    uint32_t len;

    if (index >= m->nchunks || n != CHUNK_VALUE_LEN((size_t)m->chunk_size) ||
        memcmp(b, CHUNK_MAGIC, sizeof(CHUNK_MAGIC)) != 0 ||
        get32(b + 4) != index || get64(b + 8) != m->token ||
        memcmp(b + 16, id->hash + KEY_TAG_OFF, KEY_TAG_LEN) != 0) {
        return ST_ERROR;
    }
    chunk_span(m, index, &off, &len);
    if (!all_zero(p + CHUNK_HDR_LEN + len, m->chunk_size - len)) {
        return ST_ERROR;
    }
    *payload = p + CHUNK_HDR_LEN;
    *npayload = len;
    return ST_OK;
}

/* ---- tokens ---- */

static uint64_t
splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* When getrandom has nothing: distinct per call within a thread (the
 * counter), and across threads and processes in practice (the clocks,
 * the pid, the thread's address). Unique is what a token needs; it is
 * not a secret. */
static uint64_t
token_fallback(void)
{
    static _Thread_local uint64_t counter;
    struct timespec rt = {0}, mt = {0};
    uint64_t x;

    clock_gettime(CLOCK_REALTIME, &rt);
    clock_gettime(CLOCK_MONOTONIC, &mt);
    x = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec;
    x ^= splitmix64((uint64_t)mt.tv_nsec ^ (uint64_t)getpid() << 32);
    x ^= splitmix64((uint64_t)(uintptr_t)&counter);
    return splitmix64(x + ++counter * 0x9e3779b97f4a7c15ull);
}

uint64_t
chunk_token(void)
{
    int saved = errno;
    uint64_t t = 0;
    ssize_t r;

    do {
        r = getrandom(&t, sizeof(t), GRND_NONBLOCK);
    } while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof(t)) {
        t = token_fallback();
    }
    while (t == 0) {
        t = token_fallback();
    }
    errno = saved;
    return t;
}
