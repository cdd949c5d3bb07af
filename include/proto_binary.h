/*
 * proto_binary: memcached's binary protocol on the client side. Parses
 * request packets in place into struct request, and encodes struct
 * response back into the exact packets memcached 1.6.18 sends.
 *
 * A packet is a 24-byte header (all integers big-endian) and a body of
 * extras, key and value, in that order:
 *
 *   byte  0      1       2..3    4       5        6..7     8..11
 *         magic  opcode  keylen  extlen  datatype vbucket/ bodylen
 *                                                 status
 *   byte  12..15  16..23
 *         opaque  cas           then extlen + keylen + value bytes
 *
 * Requests carry magic 0x80, replies 0x81. Replies echo the opcode and
 * opaque, and always send datatype 0.
 *
 * The parser is a pure function: no I/O, no allocation, no logging.
 * Keys and values are references into the caller's buffer.
 *
 * Thread-safe: no shared state.
 */
#ifndef RIVEN_PROTO_BINARY_H
#define RIVEN_PROTO_BINARY_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "request.h"
#include "util.h"

#define BIN_REQ_MAGIC  0x80
#define BIN_RES_MAGIC  0x81
#define BIN_HEADER_LEN 24

/* Opcodes riven serves (memcached 1.6.18's protocol_binary.h). */
enum bin_opcode {
    BIN_GET = 0x00,
    BIN_SET = 0x01,
    BIN_ADD = 0x02,
    BIN_REPLACE = 0x03,
    BIN_DELETE = 0x04,
    BIN_INCR = 0x05,
    BIN_DECR = 0x06,
    BIN_QUIT = 0x07,
    BIN_FLUSH = 0x08,
    BIN_GETQ = 0x09,
    BIN_NOOP = 0x0a,
    BIN_VERSION = 0x0b,
    BIN_GETK = 0x0c,
    BIN_GETKQ = 0x0d,
    BIN_APPEND = 0x0e,
    BIN_PREPEND = 0x0f,
    BIN_STAT = 0x10,
    BIN_SETQ = 0x11,
    BIN_ADDQ = 0x12,
    BIN_REPLACEQ = 0x13,
    BIN_DELETEQ = 0x14,
    BIN_INCRQ = 0x15,
    BIN_DECRQ = 0x16,
    BIN_QUITQ = 0x17,
    BIN_FLUSHQ = 0x18,
    BIN_APPENDQ = 0x19,
    BIN_PREPENDQ = 0x1a,
    BIN_VERBOSITY = 0x1b, /* memcached 1.6.18: "Unknown command" */
    BIN_TOUCH = 0x1c,
    BIN_GAT = 0x1d,
    BIN_GATQ = 0x1e,
    BIN_GATK = 0x23,
    BIN_GATKQ = 0x24,
};

/* Reply statuses. 0x0084 and 0x0086 are never sent by memcached 1.6.18;
 * riven uses them for its own backend failures (see proto_binary.c). */
enum bin_status {
    BIN_ST_OK = 0x0000,
    BIN_ST_NOT_FOUND = 0x0001,     /* "Not found" */
    BIN_ST_EXISTS = 0x0002,        /* "Data exists for key." */
    BIN_ST_TOO_LARGE = 0x0003,     /* "Too large." */
    BIN_ST_EINVAL = 0x0004,        /* "Invalid arguments" */
    BIN_ST_NOT_STORED = 0x0005,    /* "Not stored." */
    BIN_ST_NON_NUMERIC = 0x0006,   /* "Non-numeric server-side value for
                                      incr or decr" */
    BIN_ST_UNKNOWN = 0x0081,       /* "Unknown command" */
    BIN_ST_NOMEM = 0x0082,         /* "Out of memory allocating item" */
    BIN_ST_NOT_SUPPORTED = 0x0083, /* riven: MSG_CHUNKED, as the body */
    BIN_ST_EINTERNAL = 0x0084,     /* riven: any other backend failure */
    BIN_ST_TMPFAIL = 0x0086,       /* riven: backend unavailable / timeout */
};

/*
 * Parse one packet from buf[0..len).
 *
 * ST_OK: *out is filled (proto = PROTO_BINARY, opcode, opaque, cmd,
 *   rflags, key, val, ...) and *consumed is the packet's size. Get-family
 *   requests also set args/nargs = the key, nkeys = 1. Errors that
 *   memcached answers return ST_OK with out->err set and out->errmsg:
 *   - unknown opcode: RES_ERROR (0x0081); the body is discarded and the
 *     connection stays open;
 *   - extras, key or value not allowed for the opcode, or a key longer
 *     than 250 bytes: RES_CLIENT_ERROR (0x0004) and REQ_F_CLOSE;
 *   - body length shorter than extras + key: RES_ERROR (0x0081) and
 *     REQ_F_CLOSE;
 *   These are decided from the header alone. REQ_F_CLOSE: *consumed =
 *   24; the caller must send the reply, then close without parsing
 *   further. Unknown opcode: *consumed = 24 + bodylen when the body is
 *   in buf, else 24 with out->swallow = bodylen.
 *   A key memcached accepts but the backends' meta protocol cannot carry
 *   (space, '\n' or NUL): the whole packet, RES_CLIENT_ERROR (0x0004),
 *   connection kept.
 *   A value larger than item_size_max: RES_SERVER_ERROR, MSG_TOO_LARGE,
 *   REQ_F_TOOLARGE, once header, extras and key are in buf; *consumed is
 *   the whole packet if present, else 24 + extras + key with out->swallow
 *   = the value bytes still to discard.
 * ST_AGAIN: incomplete. *need is the total number of bytes the packet is
 *   known to need (24 while the header is incomplete).
 * ST_PROTO: the magic byte is not 0x80; memcached closes without a reply.
 */
enum status proto_binary_parse(const char *buf, size_t len,
                               size_t item_size_max, struct request *out,
                               size_t *consumed, size_t *need) WUR;

/*
 * Append the reply packets for req, as memcached 1.6.18 sends them, to q:
 * nothing for what a quiet opcode hides (misses of getq/getkq/gatq/gatkq,
 * successes of the other quiet opcodes, everything for quitq). A parse
 * error in req->err takes precedence over res. Value bytes are queued by
 * reference (outq_ref). version is the string answered to "version".
 * ST_OK or ST_NOMEM.
 */
enum status proto_binary_encode(const struct request *req,
                                const struct response *res, const char *version,
                                struct outq *q) WUR;

#endif /* RIVEN_PROTO_BINARY_H */
