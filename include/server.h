/*
 * server: the per-connection REPL, run on the connection's own thread.
 *
 *   recv ─▶ rbuf ─▶ proto_text_parse* ─▶ batch ─▶ orca_execute
 *        ◀─ writev ◀─ outq ◀─ proto_text_encode* ◀─┘
 *
 * Every complete request in the read buffer joins one batch, which the
 * orca sends to the backends in one write per server; the replies go back
 * to the client in one writev. Buffers start small, grow on demand and are
 * released when the connection goes idle.
 *
 * Thread-safety: server_run owns everything it creates; it shares only the
 * config snapshot and ring (read-only) with other threads.
 */
#ifndef RIVEN_SERVER_H
#define RIVEN_SERVER_H

#include "config.h"
#include "ring.h"

/* The "version" answer: the memcached protocol level riven speaks, then
 * riven's own version. */
#define SERVER_VERSION "1.6.18-riven-" RIVEN_VERSION_STR
#ifdef RIVEN_VERSION
#define RIVEN_VERSION_STR RIVEN_VERSION
#else
#define RIVEN_VERSION_STR "0.0.0"
#endif

/* Serve the client on fd until it quits, breaks the protocol or the
 * connection fails, then close fd. cfg and ring are refs the caller keeps
 * alive until this returns. */
void server_run(int fd, const struct config *cfg, const struct ring *ring);

#endif /* RIVEN_SERVER_H */
