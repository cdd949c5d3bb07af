/*
 * proto_meta: the meta protocol (mg ms md ma mn me) as riven speaks it to
 * its backends. Encodes struct request into meta commands (classic text for
 * flush_all and stats, which meta lacks) and decodes the backend's replies
 * into struct response.
 *
 * Requests never carry the q flag toward a backend: every request gets a
 * reply, and replies arrive in request order, so reply i answers request i.
 *
 * Translation (backend side):
 *   get/gets k        mg k f v [c]           VA n f.. [c..] / EN
 *   gat/gats e k      mg k f v [c] T<e>      VA ... / EN
 *   touch k e         mg k T<e>              HD -> TOUCHED / EN -> NOT_FOUND
 *   set/add/replace   ms k n F<f> T<e> [M<E|R>]   HD/NS/EX/NF
 *   append/prepend    ms k n M<A|P>          HD/NS
 *   cas               ms k n F<f> T<e> C<c>  HD/EX/NF
 *   incr/decr k d     ma k v D<d> [MD]       VA n + digits / NF
 *   delete k          md k                   HD -> DELETED / NF
 *   flush_all [d]     flush_all [d]          OK
 *   stats [args]      stats [args]           lines up to END/RESET/OK/ERROR
 *
 * Pure functions: no I/O, no logging; encoding appends to a struct buf.
 * Thread-safe: no shared state.
 */
#ifndef RIVEN_PROTO_META_H
#define RIVEN_PROTO_META_H

#include <stddef.h>

#include "buf.h"
#include "request.h"
#include "util.h"

/* Append the backend request for req to out. ST_OK, ST_NOMEM, or ST_ERROR
 * for a command that is not sent to backends (version, quit, ...). */
enum status proto_meta_encode_request(const struct request *req,
                                      struct buf *out) WUR;

/*
 * Decode the backend's reply to req from buf[0..len).
 * ST_OK: *res is filled (res->val and res->msg point into buf) and
 *   *consumed is the reply's length. Backend CLIENT_ERROR / SERVER_ERROR
 *   lines become RES_CLIENT_ERROR / RES_SERVER_ERROR with their text.
 * ST_AGAIN: incomplete; *need is the total length needed if known, else 0.
 * ST_PROTO: the bytes are not a valid reply to req; the socket must be
 *   reset.
 */
enum status proto_meta_parse_reply(const struct request *req, const char *buf,
                                   size_t len, struct response *res,
                                   size_t *consumed, size_t *need) WUR;

#endif /* RIVEN_PROTO_META_H */
