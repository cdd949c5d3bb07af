/*
 * ring: key -> backend server index, computed by libmemcached's own
 * distribution code, so riven places every key on the same server as a
 * libmemcached-based client (php-memcached, pylibmc, ...) configured with
 * the same server list. The default is libmemcached's ketama
 * compatibility mode (MEMCACHED_BEHAVIOR_KETAMA: consistent, md5).
 *
 * Thread-safety: a ring is built once per config snapshot and is then
 * read-only. ring_lookup only reads the continuum (auto-eject is never
 * enabled on the underlying memcached_st, so lookups never rebuild it) and
 * may be called from any number of threads at once.
 */
#ifndef RIVEN_RING_H
#define RIVEN_RING_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct ring;

/* Build the ring for the pool cfg's servers (read only during the call).
 * NULL with a message in err on failure. */
struct ring *ring_create(const struct cfg_pool *cfg, char *err,
                         size_t errlen) WUR;
void ring_destroy(struct ring *ring);

/* Index into pool->servers of the server that owns key. */
uint32_t ring_lookup(const struct ring *ring, const char *key, size_t nkey);

/* Number of servers. */
uint32_t ring_size(const struct ring *ring);

#endif /* RIVEN_RING_H */
