/*
 * listener: the one accept loop. Binds every configured listener (TCP over
 * IPv4/IPv6, unix sockets with the configured mode), accepts, enforces
 * max_connections and gives each connection a detached thread with a small
 * fixed stack that runs server_run.
 *
 * Thread-safety: listener_run runs on one thread (main); listener_stop is
 * async-signal-safe; listener_connections may be read from any thread.
 */
#ifndef RIVEN_LISTENER_H
#define RIVEN_LISTENER_H

#include <stdint.h>

#include "config.h"
#include "ring.h"

struct listener;

/* Bind and listen on cfg's addresses. cfg and ring are refs that must
 * outlive the listener and its connection threads. NULL with a message in
 * err on failure. */
struct listener *listener_create(const struct config *cfg,
                                 const struct ring *ring, char *err,
                                 size_t errlen) WUR;

/* Accept until listener_stop. ST_OK when stopped, ST_ERROR on a fatal
 * poll failure. */
enum status listener_run(struct listener *l);

/* Make listener_run return. Async-signal-safe. */
void listener_stop(struct listener *l);

/* Close the sockets, unlink unix socket files, free. NULL-safe. */
void listener_destroy(struct listener *l);

/* Client connections currently open. */
uint64_t listener_connections(void);

/* The connection limit in force (max_connections, or derived from the
 * open-file limit). */
uint32_t listener_max_connections(const struct listener *l);

#endif /* RIVEN_LISTENER_H */
