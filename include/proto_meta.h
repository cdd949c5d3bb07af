/*
 * proto_meta: the meta protocol (mg ms md ma mn me), on both sides.
 *
 * Client side: meta commands arrive on a text connection, mixed with
 * classic ones. They are passed through: the request line goes to the
 * backend that owns the key almost verbatim (the q flag removed, so the
 * backend always answers and replies stay in order), and the backend's
 * reply goes back verbatim, except where q says to hide it. mn is
 * answered by riven itself, in order.
 *
 * Backend side: encodes struct request into meta commands (classic text
 * for flush_all and stats, which meta lacks) and decodes the backend's
 * replies into struct response.
 *
 * Requests never carry the q flag toward a backend: every request gets a
 * reply, and replies arrive in request order, so reply i answers request i.
 *
 * Translation of classic and binary commands (backend side):
 *   get/gets k        mg k f v [c]           VA n f.. [c..] / EN
 *   gat/gats e k      mg k f v [c] T<e>      VA ... / EN
 *   touch k e         mg k [c] T<e>          HD -> TOUCHED / EN -> NOT_FOUND
 *   set/add/replace   ms k n F<f> T<e> [M<E|R>] [c]   HD/NS/EX/NF
 *   append/prepend    ms k n M<A|P> [c]      HD/NS
 *   cas               ms k n F<f> T<e> C<c> [c]   HD/EX/NF
 *   incr/decr k d     ma k v D<d> [MD] [N<e> J<i>] [c]   VA n + digits / NF
 *   delete k          md k                   HD -> DELETED / NF
 *   flush_all [d]     flush_all [d]          OK
 *   stats [args]      stats [args]           lines up to END/RESET/OK/ERROR
 * [c] is added for REQ_F_RET_CAS (always for gets/gats), [N<e> J<i>] for
 * REQ_F_AUTOVIV, and " b" after the flags for REQ_F_B64KEY.
 *
 * Pure functions: no I/O, no allocation, no logging; encoding appends to
 * a struct buf or an outq (a backend request's value by reference).
 * Thread-safe: no shared state.
 */
#ifndef RIVEN_PROTO_META_H
#define RIVEN_PROTO_META_H

#include <stddef.h>

#include "buf.h"
#include "request.h"
#include "util.h"

#define META_LINE_MAX 2048 /* longest meta line, memcached's bound */

/*
 * Parse one client meta command (a line starting with mg, ms, md, ma, mn
 * or me) from buf[0..len). The contract is proto_text_parse's:
 *
 * ST_OK: *out is filled and *consumed is the number of bytes used (the
 *   line, and for ms its data block and "\r\n"). out->proto = PROTO_META,
 *   out->key/nkey the key as on the wire (base64 if REQ_F_B64KEY),
 *   out->args/nargs the flag tokens after the key (ms: after the datalen)
 *   as sent, or NULL/0; ms: out->val/nval the data. REQ_F_QUIET if a q
 *   flag is present.
 *   Errors that leave the stream framed also return ST_OK, with out->err
 *   (RES_ERROR or RES_CLIENT_ERROR / RES_SERVER_ERROR) and out->errmsg,
 *   as memcached 1.6.18 answers them. An ms whose flags are bad, or whose
 *   value is larger than item_size_max (out->err = RES_SERVER_ERROR,
 *   MSG_TOO_LARGE, REQ_F_TOOLARGE), returns at once with *consumed = the
 *   line only and out->swallow = bytes of data block to discard.
 * ST_AGAIN: incomplete; *need is the total length needed if known, else 0.
 * ST_PROTO: a line of more than META_LINE_MAX bytes; close the connection.
 *
 * Only what riven needs is checked here (framing, key, flag letters, q, b,
 * token count); flag tokens are checked by the backend, whose error is
 * forwarded verbatim.
 */
enum status proto_meta_parse_request(const char *buf, size_t len,
                                     size_t item_size_max, struct request *out,
                                     size_t *consumed, size_t *need) WUR;

/*
 * Append the reply to a client meta request to q. A local error (req->err
 * at parse time, or a backend failure with res->raw NULL) is encoded from
 * res->kind and res->msg; mn answers "MN"; otherwise res->raw is queued
 * by reference, unless the request had q and memcached hides that status
 * for the command (errors are never hidden). ST_OK or ST_NOMEM.
 */
enum status proto_meta_encode_reply(const struct request *req,
                                    const struct response *res,
                                    struct outq *q) WUR;

/* Append the backend request for req to out, its value copied. Meta
 * requests (REQ_MG .. REQ_ME) are passed through, q flags removed; REQ_MN
 * is the health probe "mn". ST_OK, ST_NOMEM (out unchanged), or ST_ERROR
 * for a command that is not sent to backends (version, quit, ...) or
 * that could not be sent safely (bad key, control bytes). */
enum status proto_meta_encode_request(const struct request *req,
                                      struct buf *out) WUR;

/* The same bytes, appended to q for a writev: the command line copied,
 * a storage command's value (set add replace append prepend cas ms) of
 * more than 255 bytes queued by reference (outq_ref), so req->val must
 * stay valid and unmoved until q is written; shorter values are copied
 * with their line. ST_OK, ST_NOMEM (q as it was: never part of a
 * request), or ST_ERROR as above. */
enum status proto_meta_queue_request(const struct request *req,
                                     struct outq *q) WUR;

/*
 * Decode the backend's reply to req from buf[0..len).
 * ST_OK: *res is filled (res->val and res->msg point into buf) and
 *   *consumed is the reply's length. Backend CLIENT_ERROR / SERVER_ERROR
 *   lines become RES_CLIENT_ERROR / RES_SERVER_ERROR with their text.
 *   Meta requests: res->raw/nraw is the whole reply, to forward verbatim;
 *   res->kind is the closest kind (mg: VA/HD -> RES_VALUE, EN -> RES_MISS;
 *   ms: HD -> RES_STORED, NS, EX, NF; md: HD -> RES_DELETED, NF, EX;
 *   ma: VA/HD -> RES_NUMBER, NF, NS, EX; me: ME -> RES_RAW, EN -> RES_MISS).
 * ST_AGAIN: incomplete; *need is the total length needed if known, else 0.
 * ST_PROTO: the bytes are not a valid reply to req; the socket must be
 *   reset.
 */
enum status proto_meta_parse_reply(const struct request *req, const char *buf,
                                   size_t len, struct response *res,
                                   size_t *consumed, size_t *need) WUR;

#endif /* RIVEN_PROTO_META_H */
