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

/* The request opcodes of memcached's binary protocol. */
enum {
    OP_GET = 0x00,
    OP_SET = 0x01,
    OP_ADD = 0x02,
    OP_REPLACE = 0x03,
    OP_DELETE = 0x04,
    OP_INCR = 0x05,
    OP_DECR = 0x06,
    OP_QUIT = 0x07,
    OP_FLUSH = 0x08,
    OP_GETQ = 0x09,
    OP_NOOP = 0x0a,
    OP_VERSION = 0x0b,
    OP_GETK = 0x0c,
    OP_GETKQ = 0x0d,
    OP_APPEND = 0x0e,
    OP_PREPEND = 0x0f,
    OP_STAT = 0x10,
    OP_SETQ = 0x11,
    OP_ADDQ = 0x12,
    OP_REPLACEQ = 0x13,
    OP_DELETEQ = 0x14,
    OP_INCRQ = 0x15,
    OP_DECRQ = 0x16,
    OP_QUITQ = 0x17,
    OP_FLUSHQ = 0x18,
    OP_APPENDQ = 0x19,
    OP_PREPENDQ = 0x1a,
    OP_VERBOSITY = 0x1b,
    OP_TOUCH = 0x1c,
    OP_GAT = 0x1d,
    OP_GATQ = 0x1e,
    OP_GATK = 0x23,
    OP_GATKQ = 0x24,
};

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
