/*
 * snapshot: the config snapshot registry. A snapshot is what connections
 * serve with: one config and what is built from it once (each pool's ring
 * and health, the l1l2 key locks). main publishes one at start and on
 * each good reload; each connection thread holds a reference and moves
 * to the newest snapshot between batches, never in the middle of one.
 * The last reference frees a snapshot.
 *
 *   main: config ─▶ snapshot_create ─▶ snapshot_publish ─▶ current
 *   connection:          snapshot_generation() changed? ─▶ snapshot_get
 *
 * Thread-safe: every function may be called from any thread.
 */
#ifndef RIVEN_SNAPSHOT_H
#define RIVEN_SNAPSHOT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "conn.h"
#include "orca.h"

struct snapshot {
    _Atomic uint32_t refs;
    struct config *cfg;  /* one reference, dropped with the snapshot */
    struct orca_env env; /* pools (rings, health, TLS owned here), locks */
    struct conn_ctx **listen_tls; /* cfg->nlisten: listener i's TLS
                                     context, NULL when it is plain */
};

/* A snapshot of cfg (the snapshot takes over the caller's reference).
 * Servers also in prev (may be NULL) keep their health state. The TLS
 * contexts read their certificate and key files now. NULL with a message
 * in err when a ring or a TLS context cannot be built; cfg is then
 * released. */
struct snapshot *snapshot_create(struct config *cfg,
                                 const struct snapshot *prev, char *err,
                                 size_t errlen) WUR;
/* Drop one reference. NULL-safe. */
void snapshot_unref(struct snapshot *snap);

/* Make snap current (takes the caller's reference); the previous one is
 * released once the last connection moves off it. */
void snapshot_publish(struct snapshot *snap);

/* A new reference to the current snapshot, or NULL before the first
 * publish. */
struct snapshot *snapshot_get(void);

/* The TLS context of snap's listener named name (as written in listen:),
 * or NULL when it is plain or not in snap's config. */
struct conn_ctx *snapshot_listen_tls(const struct snapshot *snap,
                                     const char *name);

/* Bumped by each publish: a connection compares it with the generation
 * it serves to see, without a lock, that a newer snapshot exists. */
uint64_t snapshot_generation(void);

#endif /* RIVEN_SNAPSHOT_H */
