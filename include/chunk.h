/*
 * chunk: the layout of chunked storage (issue 15, Rend's answer to slab
 * calcification). Through a chunked pool a value of `total` bytes is
 * stored as one metadata item under the client's own key plus
 * chunk_count(total, chunk_size) chunk items of exactly CHUNK_HDR_LEN +
 * chunk_size bytes each (the last one padded with zeros), so every chunk
 * item of a pool lands in one memcached slab class whatever the value
 * sizes. This module encodes and checks those bytes; it does no I/O, no
 * allocation, and (but chunk_token) reads no state: thread-safe.
 *
 * Sizes, for memcached 1.6.18 on 64 bits with its defaults (-f 1.25,
 * -n 48: classes of 96, 120, 152, 192, 240, 304, 384, 480, 600, 752, 944,
 * 1184, 1480, 1856, 2320, 2904, ... bytes, `memcached -vv`). An item
 * takes 48 bytes of header, 8 of CAS (none with -C), the key and a NUL,
 * 4 bytes of client flags only when they are not 0, and the value with
 * its "\r\n" (measured here: a 33-byte key with a 1,092-byte value and
 * flags 0 is class 1184, 1,093 bytes or flags 7 is class 1480). A chunk
 * item (flags 0, a CHUNK_KEY_LEN key) thus takes
 *     48 + 8 + (33 + 1) + 2 + 24 (header) + chunk_size
 *   = CHUNK_ITEM_OVERHEAD (116) + chunk_size bytes.
 * CHUNK_SIZE_DEFAULT, 1,068, fills class 1184 to the byte. About 1 KiB is
 * also where the memory per value, ceil(v / c) * (c + 116) + v's share of
 * its last chunk, is least for values of a few KiB (c near sqrt(2 * 116 *
 * v)), and a 1 MiB value is 982 chunks. Every value of at least one byte
 * takes a whole chunk: a chunked pool is for values of hundreds of bytes
 * and more. Other sizes that fill a default class exactly: 268 (384), 364
 * (480), 484 (600), 636 (752), 828 (944), 1364 (1480), 1740 (1856), 2204
 * (2320), 2788 (2904), 3516 (3632), 4428 (4544), 5564 (5680), 6988
 * (7104), 8764 (8880): class - 116. Allowed: CHUNK_SIZE_MIN (256: below
 * it the 116 bytes of overhead are over a third of the item) to
 * CHUNK_SIZE_MAX (524,172: the item fills memcached's largest class,
 * slab_chunk_size_max = 512 KiB, above which memcached chains an item
 * out of several slab chunks itself).
 *
 * Chunk keys: a client key may already have 250 bytes, memcached's limit,
 * so a chunk key cannot be the key plus a suffix. It is fixed-length,
 * CHUNK_KEY_LEN (33) bytes, all of them [A-Za-z0-9_~-]:
 *     "~rc" + base64url(SHA-256(key)[0..16)) (22, no padding)
 *           + the index as 8 lowercase hex digits
 * e.g. "~rcLCa0a2j_xo_5m0U8HTBBNA00000000" for "foo", chunk 0. It is a
 * valid text key whatever bytes the client key holds (binary keys, control
 * bytes), and its length never varies, so the item size does not either.
 * Collisions are detected, not assumed away: the chunk header carries
 * SHA-256(key)[16..24), a further 64 bits of the key's hash, and every
 * chunk carries its value's token. A chunk of another key under the same
 * chunk key (a 128-bit collision, or a client key that is itself "~rc..."
 * and so stores its metadata over a chunk) fails chunk_check: its key's
 * value is a miss, never wrong bytes.
 *
 * The metadata item (its value, CHUNK_META_LEN = 48 bytes, big-endian):
 *     0  4  magic "\0rvm"
 *     4  1  version (1); versions the chunk layout too
 *     5  3  zero
 *     8  8  total: the value's length
 *    16  8  token: random, never 0, new on every write
 *    24  8  exptime as the client sent it (int64), for the record only:
 *           touch and gat do not rewrite it, memcached's TTL is the truth
 *    32  4  flags: the client's
 *    36  4  nchunks = chunk_count(total, chunk_size)
 *    40  4  chunk_size (the value's own: a pool's new chunk_size leaves
 *           older values readable)
 *    44  4  FNV-1a 32 of bytes 0..43
 * A value under the key that is not this (a plain "hello" written by a
 * non-riven client, a chunk, a truncated or altered metadata) fails
 * chunk_meta_decode, and the orca treats the key as a miss, not as a
 * plain value to pass through: a chunked pool holds only chunked values,
 * gets/cas/delete follow the metadata item alone, and a miss makes the
 * client write the key again, chunked, so a pool switched to chunked
 * converges rather than keeping its odd-sized items alive.
 *
 * The chunk item's value (CHUNK_HDR_LEN = 24 bytes of header, then
 * chunk_size bytes: payload, zeros after the last payload byte):
 *     0  4  magic "\0rvc"
 *     4  4  index
 *     8  8  token (the metadata's)
 *    16  8  SHA-256(key)[16..24)
 *
 * A 0-byte value has no chunks: the metadata item alone (nchunks 0).
 *
 * What the orca must keep for this to hold: chunk items are stored with
 * flags 0 (4 more bytes push them into the next class) under exactly
 * chunk_key's key; the key hashed is the one memcached stores (base64
 * meta keys decoded); all items of a value go to the server the client
 * key maps to; chunks are written before the metadata, with the same
 * exptime; a read takes the metadata (its CAS is the value's), then
 * every chunk with the metadata's chunk_size, and any ST_ERROR of
 * chunk_meta_decode or chunk_check, or a missing chunk, is a miss.
 * append, prepend, incr and decr cannot work on the metadata's bytes.
 */
#ifndef RIVEN_CHUNK_H
#define RIVEN_CHUNK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define CHUNK_SIZE_DEFAULT  1068u /* chunk item = 1184, a default class */
#define CHUNK_SIZE_MIN      256u
#define CHUNK_SIZE_MAX      (524288u - CHUNK_ITEM_OVERHEAD)
#define CHUNK_KEY_PREFIX    "~rc"
#define CHUNK_KEY_LEN       33u /* 3 + 22 + 8 */
#define CHUNK_HDR_LEN       24u
#define CHUNK_META_LEN      48u
#define CHUNK_META_VERSION  1u
#define CHUNK_ITEM_OVERHEAD 116u /* memcached 1.6, 64-bit, CAS, flags 0 */

/* The chunk item's value length (header + payload + padding). */
#define CHUNK_VALUE_LEN(chunk_size) (CHUNK_HDR_LEN + (chunk_size))
/* The bytes of memcached memory a chunk item takes: the slab class it
 * needs is the smallest at least this large. */
#define CHUNK_ITEM_SIZE(chunk_size) (CHUNK_ITEM_OVERHEAD + (chunk_size))

struct chunk_meta {
    uint64_t total;      /* the value's length in bytes */
    uint64_t token;      /* random, never 0, new on every write */
    int64_t exptime;     /* the client's exptime at the write, as sent */
    uint32_t flags;      /* the client's flags */
    uint32_t nchunks;    /* chunk_count(total, chunk_size) */
    uint32_t chunk_size; /* payload bytes per chunk */
};

/* What a client key gives its chunks: SHA-256(key)[0..24), bytes 0..15
 * name the chunk keys, 16..23 are the tag in every chunk header. Computed
 * once per request (a SHA-256 of the key) by chunk_keyid. */
struct chunk_keyid {
    uint8_t hash[24];
};

/* Hash key[0..nkey): the bytes memcached stores the item under (a base64
 * key of the meta protocol decoded first). Any bytes, any length. */
void chunk_keyid(const char *key, size_t nkey, struct chunk_keyid *out);

/* Chunks of a value of total bytes: ceil(total / chunk_size); 0 for a
 * 0-byte value. chunk_size > 0. */
uint64_t chunk_count(uint64_t total, uint32_t chunk_size);

/* Fill *m for a write. ST_ERROR (m untouched) if chunk_size is outside
 * CHUNK_SIZE_MIN..CHUNK_SIZE_MAX, token is 0, or the value needs more than
 * UINT32_MAX chunks. */
enum status chunk_meta_init(struct chunk_meta *m, uint64_t total,
                            uint32_t flags, int64_t exptime,
                            uint32_t chunk_size, uint64_t token) WUR;

/* Write m's CHUNK_META_LEN bytes to out; returns CHUNK_META_LEN, or 0 if
 * outlen is smaller. m as chunk_meta_init or chunk_meta_decode made it. */
size_t chunk_meta_encode(char *out, size_t outlen, const struct chunk_meta *m);

/* Read the metadata item's value p[0..n). ST_OK and *m set, or ST_ERROR
 * (m untouched) when it is not metadata of this version: wrong length,
 * magic, version, checksum, non-zero reserved bytes, a token of 0, a
 * chunk_size out of range, or nchunks not chunk_count(total, chunk_size). */
enum status chunk_meta_decode(const char *p, size_t n,
                              struct chunk_meta *m) WUR;

/* Write the key of chunk index to out (no NUL); returns CHUNK_KEY_LEN, or
 * 0 if outlen is smaller. */
size_t chunk_key(char *out, size_t outlen, const struct chunk_keyid *id,
                 uint32_t index);

/* true if key[0..nkey) has the shape of a chunk key (CHUNK_KEY_LEN bytes
 * starting with CHUNK_KEY_PREFIX): a client key the orca may refuse in a
 * chunked pool, since its metadata would overwrite a chunk (which only
 * makes that chunk's value a miss). */
bool chunk_is_chunk_key(const char *key, size_t nkey);

/* Chunk index's payload: value[*off .. *off + *len); the chunk item is
 * then padded with m->chunk_size - *len zeros. index < m->nchunks. */
void chunk_span(const struct chunk_meta *m, uint32_t index, uint64_t *off,
                uint32_t *len);

/* Write chunk index's CHUNK_HDR_LEN-byte header to out, for a writev of
 * header, value slice (chunk_span) and padding; returns CHUNK_HDR_LEN, or
 * 0 if outlen is smaller or index >= m->nchunks. */
size_t chunk_header(char *out, size_t outlen, const struct chunk_meta *m,
                    const struct chunk_keyid *id, uint32_t index);

/* Write chunk index's whole item value (header, payload copied from
 * value, which holds m->total bytes, then zeros) to out; returns
 * CHUNK_VALUE_LEN(m->chunk_size), or 0 if outlen is smaller or index >=
 * m->nchunks. */
size_t chunk_encode(char *out, size_t outlen, const struct chunk_meta *m,
                    const struct chunk_keyid *id, uint32_t index,
                    const char *value);

/* Check that p[0..n), read from chunk index's key, is chunk index of the
 * value m describes for the key id was made from: length
 * CHUNK_VALUE_LEN(m->chunk_size), magic, index, token, key tag, zero
 * padding. ST_OK with *payload (pointing into p) and *npayload set, or
 * ST_ERROR (payload, npayload untouched): the key must be a miss. */
enum status chunk_check(const char *p, size_t n, const struct chunk_meta *m,
                        const struct chunk_keyid *id, uint32_t index,
                        const char **payload, size_t *npayload) WUR;

/* A fresh random token, never 0: getrandom(2) (non-blocking), else, only
 * if the kernel has none to give, a mix of the clocks, the pid, the
 * thread and a per-thread counter. Thread-safe, fork-safe (no state is
 * carried from getrandom), errno untouched. */
uint64_t chunk_token(void);

#endif /* RIVEN_CHUNK_H */
