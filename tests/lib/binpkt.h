/*
 * binpkt: memcached binary-protocol request packets for raw-socket tests.
 *
 * The lengths in a header are taken as given, so a test can also build
 * the malformed packets it sends on purpose (a body shorter than key and
 * extras, a length past what is sent).
 */
#ifndef RIVEN_BINPKT_H
#define RIVEN_BINPKT_H

#include <stddef.h>
#include <stdint.h>

#define BINPKT_HEADER_LEN 24

/* Write the 24-byte request header at h: magic 0x80, op, key length
 * klen, extras length elen, total body length blen, opaque and cas (in
 * network order); datatype, vbucket 0. Returns 24. */
size_t binpkt_header(uint8_t *h, uint8_t op, uint16_t klen, uint8_t elen,
                     uint32_t blen, uint32_t opaque, uint64_t cas);

/* Write a whole request at out: header (cas 0), extras, key, value. key,
 * ext and val may be NULL when their length is 0 (strlen(key) for the
 * key); out has room for 24 + elen + strlen(key) + vlen bytes. Returns
 * that length. */
size_t binpkt_request(uint8_t *out, uint8_t op, const char *key,
                      const void *ext, uint8_t elen, const void *val,
                      size_t vlen, uint32_t opaque);

#endif /* RIVEN_BINPKT_H */
