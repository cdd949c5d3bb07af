/*
 * server: the per-connection REPL, run on the connection's own thread.
 *
 *   recv ─▶ rbuf ─▶ proto_text_parse* ─▶ batch ─▶ orca_execute
 *        ◀─ writev ◀─ outq ◀─ proto_text_encode* ◀─┘
 *
 * Every complete request in the read buffer joins one batch, which the
 * orca sends to the backends in one write per server; the replies go back
 * to the client in one writev, or, past the connection's reply budget
 * (client_max_buffer), in several as the orca reads them. A get line of
 * more keys than a batch holds is streamed in batches of them. Buffers
 * start small, grow on demand and are released when the connection goes
 * idle. An allocation that fails closes this connection alone.
 *
 * Thread-safety: server_run owns everything it creates; it shares only the
 * config snapshot and ring (read-only) with other threads.
 */
#ifndef RIVEN_SERVER_H
#define RIVEN_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "orca.h"

/* The "version" answer: the memcached protocol level riven speaks, then
 * riven's own version. */
#define SERVER_VERSION "1.6.18-riven-" RIVEN_VERSION_STR
#ifdef RIVEN_VERSION
#define RIVEN_VERSION_STR RIVEN_VERSION
#else
#define RIVEN_VERSION_STR "0.0.0"
#endif

/*
 * One client connection as the listener sees it, shared between the
 * connection's thread and the thread that drains. busy is 1 while the
 * connection holds a partial or unanswered request, 0 while it waits for
 * a new one; a draining listener may shut an idle connection's read side.
 */
struct server_conn {
    int fd;
    bool batch;              /* accepted on a batch_listen address */
    bool tls;                /* ... on a listener with tls: */
    const char *listen_name; /* ref: the listener's address, as written */
    _Atomic int busy;
    struct server_conn *prev; /* listener's registry */
    struct server_conn *next;
};

/* Serve the client on conn->fd until it quits, breaks the protocol, the
 * connection fails or a drain finds it idle. The caller closes the fd,
 * after taking conn out of its registry (so a drain never shuts down an
 * fd number that was reused). */
void server_run(struct server_conn *conn);

/* Begin a graceful drain: connections finish what they are executing and
 * close when idle. Async-signal-safe. */
void server_drain(void);
bool server_draining(void);

#endif /* RIVEN_SERVER_H */
