/*
 * proto_text: memcached's classic ASCII protocol on the client side.
 * Parses request lines (and their data blocks) in place into struct
 * request, and encodes struct response back into the exact bytes
 * memcached 1.6 sends.
 *
 * The parser is a pure function: no I/O, no allocation, no logging.
 * Tokens are references into the caller's buffer.
 *
 * Thread-safe: no shared state.
 */
#ifndef RIVEN_PROTO_TEXT_H
#define RIVEN_PROTO_TEXT_H

#include <stddef.h>

#include "buf.h"
#include "request.h"
#include "util.h"

#define TEXT_LINE_MAX     2048 /* longer without '\n' closes, unless a get */
#define TEXT_GET_LINE_MAX (1u << 20) /* bound on a multi-get line */
#define TEXT_MAX_TOKENS   24

/*
 * Parse one command from buf[0..len).
 *
 * ST_OK: *out is filled and *consumed is the number of bytes the command
 *   used (its line, and for a storage command its data block and "\r\n").
 *   Errors that leave the stream framed also return ST_OK, with out->err
 *   set (RES_ERROR, RES_CLIENT_ERROR or RES_SERVER_ERROR) and
 *   out->errmsg. A value larger than item_size_max returns ST_OK at once
 *   with out->err = RES_SERVER_ERROR, MSG_TOO_LARGE, REQ_F_TOOLARGE,
 *   *consumed = the line only and out->swallow = bytes of data block to
 *   discard (value + 2), which may not have arrived yet.
 *   Get family: out->key/nkey is the first key, out->args/nargs spans all
 *   keys and out->nkeys counts them; iterate with util_next_token
 *   from args to args + nargs.
 * ST_AGAIN: the command is incomplete. *need is the total number of bytes
 *   the command is known to need (line + data + 2), or 0 if unknown.
 * ST_PROTO: the stream cannot be framed (a line longer than TEXT_LINE_MAX
 *   without '\n' that is not a get, or a get line past TEXT_GET_LINE_MAX);
 *   the connection must be closed.
 */
enum status proto_text_parse(const char *buf, size_t len, size_t item_size_max,
                             struct request *out, size_t *consumed,
                             size_t *need) WUR;

/* True if buf starts a get/gets/gat/gats line (after at most 100 spaces),
 * the only lines memcached lets grow past TEXT_LINE_MAX. */
bool proto_text_is_get_line(const char *buf, size_t len);

/* True if the command line buf[0..len) (without "\r\n") is one memcached
 * hangs up on without an answer: an unknown command whose last token
 * begins "HTTP/" ("GET / HTTP/1.0"). proto_text_parse answers such a
 * line with RES_QUIT and REQ_F_CLOSE. */
bool proto_text_is_http(const char *buf, size_t len);

/*
 * Append the reply to req, as memcached sends it, to q. Nothing for a
 * noreply request or a get miss; "END\r\n" after the last key of a get.
 * Value bytes are queued by reference (outq_ref). version is the string
 * riven answers to "version". ST_OK or ST_NOMEM.
 */
enum status proto_text_encode(const struct request *req,
                              const struct response *res, const char *version,
                              struct outq *q) WUR;

#endif /* RIVEN_PROTO_TEXT_H */
