/*
 * listener: the one accept loop. Binds every configured listener (TCP over
 * IPv4/IPv6, unix sockets with the configured mode), or adopts the sockets
 * systemd passes (sd_listen_fds) and then binds nothing else. It accepts,
 * enforces max_connections, gives each connection a detached thread with a
 * small fixed stack that runs server_run, and keeps a registry of open
 * connections so a drain can close the idle ones.
 *
 * Thread-safety: listener_run and listener_drain run on the main thread;
 * listener_wake and listener_stop are async-signal-safe;
 * listener_connections may be read from any thread.
 */
#ifndef RIVEN_LISTENER_H
#define RIVEN_LISTENER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct listener;

typedef void (*listener_tick_fn)(void *arg);

/* Listen as cfg says, or on every socket systemd passed (any number).
 * A unix: path may hold nothing or a stale socket (replaced); anything
 * else there is refused. The socket file has cfg->unix_mode from its
 * creation: call before any other thread starts (it sets the umask around
 * bind). cfg is read only during the call. NULL with a message in err on
 * failure. */
struct listener *listener_create(const struct config *cfg, char *err,
                                 size_t errlen) WUR;

/* Accept until listener_stop. tick(arg) runs on this thread at least
 * every tick_ms and after every listener_wake. Out of fds (EMFILE,
 * ENFILE) or memory, accepting pauses 10 ms doubling to 1 s and resumes
 * by itself; one warning per 10 s counts the failed accepts. ST_OK when
 * stopped, ST_ERROR on a fatal poll failure. */
enum status listener_run(struct listener *l, listener_tick_fn tick, void *arg,
                         int tick_ms);

/* Make listener_run call tick soon. Async-signal-safe. */
void listener_wake(struct listener *l);
/* Make listener_run return. Async-signal-safe. */
void listener_stop(struct listener *l);

/* Close the listening sockets, let each connection finish the request or
 * pipeline it is executing, close idle ones, and wait for them to leave,
 * up to timeout_ms. Returns the connections still open. */
uint64_t listener_drain(struct listener *l, uint32_t timeout_ms);

/* Close sockets, unlink unix socket files riven created, free.
 * NULL-safe. */
void listener_destroy(struct listener *l);

/* Client connections currently open. */
uint64_t listener_connections(void);

/* The connection limit in force (max_connections, or derived from the
 * open-file limit). */
uint32_t listener_max_connections(const struct listener *l);

/* Number of listening sockets, and whether they came from systemd. */
size_t listener_count(const struct listener *l);
bool listener_activated(const struct listener *l);

#endif /* RIVEN_LISTENER_H */
