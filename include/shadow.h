/*
 * shadow: a backend socket nobody waits on. Routes send copies of
 * requests to a shadow pool (and all_fastest sends writes to children it
 * does not wait for); their replies must never reach the client and never
 * slow it down, even when the server is black-holed. So, unlike a
 * handler, a shadow never blocks:
 *
 *   shadow_send()   encode a request into the write buffer, connect
 *                   non-blockingly if needed, write what the socket takes
 *   shadow_poll()   finish a connect, write the rest, read and count every
 *                   reply that is there, time out what waits too long
 *
 * Every request shadow_send takes is counted exactly once in
 * riven_shadow_requests_total{route,result} (metrics_route_shadow, its
 * tag the route's metrics index):
 *   ok       the server replied, not with an error
 *   error    ERROR / CLIENT_ERROR / SERVER_ERROR replies; and every
 *            request outstanding when the server resets or closes the
 *            connection or sends a malformed reply
 *   timeout  every request outstanding when the oldest has had no reply
 *            request_ms after it was sent (or after the connect, if that
 *            came later)
 *   dropped  never sent: refused at once by shadow_send (no connection,
 *            queue or buffer full, a command a shadow does not send), or
 *            queued while a connect was pending that then failed; and
 *            requests still outstanding at shadow_destroy
 * Each failure closes the socket; the next send reconnects, but not
 * before SHADOW_RETRY_MS after a failed connect (sends meanwhile are
 * dropped without a system call).
 *
 * Bounds: at most SHADOW_QUEUE_MAX requests outstanding and
 * SHADOW_WBUF_MAX unsent bytes (one larger request is taken when nothing
 * else is unsent). New connections pass health's connect gate without
 * waiting: a full gate drops the request. A shadow takes no part in
 * health or ejection and never sets riven_backend_up; it counts bytes,
 * requests, errors, sockets and round trips of server idx like a handler.
 *
 * Not thread-safe: a shadow belongs to one connection thread, like its
 * handlers.
 */
#ifndef RIVEN_SHADOW_H
#define RIVEN_SHADOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "request.h"

#define SHADOW_QUEUE_MAX 4096          /* requests awaiting a reply */
#define SHADOW_WBUF_MAX  (256u * 1024) /* unsent bytes */
#define SHADOW_RETRY_MS  1000          /* no connect after a failed one */

#define SHADOW_WATCH_BYTES 512 /* reply bytes a watch keeps */

struct shadow;

/* What became of a request sent with a watch (all_fastest waits on its
 * children this way): done once it has a reply or failed. res is the
 * reply, its bytes (value, raw meta reply, message) copied into buf; a
 * reply of more than SHADOW_WATCH_BYTES is taken as FAIL_BACKEND_ERROR.
 * A failure is riven's SERVER_ERROR (timeout, unavailable, error). */
struct shadow_watch {
    bool done;
    struct response res;
    char buf[SHADOW_WATCH_BYTES];
};

/* A shadow for addr (ref: owned by the config snapshot, which must
 * outlive the shadow), server number idx (for metrics; >=
 * METRICS_SERVERS_MAX counts in no server metric). Does not connect.
 * NULL when memory runs out. */
struct shadow *shadow_create(const struct cfg_addr *addr, size_t idx,
                             uint32_t connect_ms, uint32_t request_ms) WUR;

/* Close the socket and free; requests still outstanding are counted
 * dropped. NULL-safe. */
void shadow_destroy(struct shadow *s);

/* Send a copy of req (encoded with proto_meta_encode_request; req and
 * what it points to need not outlive the call), its result to be counted
 * for route tag. Connects non-blockingly on first use. Never blocks and
 * never reads. true: taken, its result is counted later (or already, as
 * error, if writing failed at once). false: not taken, counted dropped:
 * no connection (refused, pending past connect_ms, within
 * SHADOW_RETRY_MS of a failed connect, connect gate full), queue or
 * write buffer full, out of memory, or req is no request for a backend
 * (stats, whose reply needs its arguments, and what proto_meta does not
 * encode). */
bool shadow_send(struct shadow *s, const struct request *req, uint32_t tag);

/* shadow_send, and w (ref: until done, or until shadow_unwatch) gets
 * the reply. Not taken: w is done at once with backend unavailable. */
bool shadow_send_watched(struct shadow *s, const struct request *req,
                         uint32_t tag, struct shadow_watch *w);

/* Forget w: its reply is still read and counted, but not kept. */
void shadow_unwatch(struct shadow *s, const struct shadow_watch *w);

/* Without blocking: finish a pending connect, write buffered requests,
 * read and count every reply that is there, and time out (now_ms:
 * util_now_ms()) as described above. With nothing owed and nothing to
 * write it returns at once, without a system call. Call it whenever shadow_fd
 * is readable (or writable, with shadow_want_write), and at shadow_deadline. */
void shadow_poll(struct shadow *s, uint64_t now_ms);

/* Requests taken and not yet counted. */
size_t shadow_outstanding(const struct shadow *s);

/* The socket, -1 when closed: for a caller that poll()s several
 * shadows. Wait for POLLIN, and for POLLOUT while shadow_want_write. */
int shadow_fd(const struct shadow *s);

/* True while a connect is pending or requests wait to be written. */
bool shadow_want_write(const struct shadow *s);

/* The CLOCK_MONOTONIC ms at which shadow_poll must run to time out the
 * oldest request or a pending connect; UINT64_MAX when nothing waits. */
uint64_t shadow_deadline(const struct shadow *s);

/* Point the shadow at the same server in a new config snapshot (addr is
 * a ref into it), keeping its socket and outstanding requests. */
void shadow_rebind(struct shadow *s, const struct cfg_addr *addr, size_t idx,
                   uint32_t connect_ms, uint32_t request_ms);

#endif /* RIVEN_SHADOW_H */
