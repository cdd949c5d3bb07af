/*
 * route: the route table of a config snapshot, and the rules the orca
 * applies when it walks a route (config.h's struct cfg_route).
 *
 * A table maps a key to its routes: entry by the longest matching prefix
 * (the default entry when none matches). Prefixes sit in an open-addressed
 * hash table keyed by their bytes; a lookup hashes the key once, FNV-1a
 * byte by byte, and at each length asks a 16,384-bit filter of the
 * prefixes' hashes before it probes the table: a length where no prefix
 * can match costs a bit test, so a thousand prefixes cost about what one
 * does.
 *
 *   key ──FNV-1a prefix by prefix──▶ filter bit? ──▶ probe the table
 *       ──▶ the longest hit, else the default entry
 *
 * Also here, as pure functions of a request: which commands are writes
 * (they go to every child of all_sync), how bad an answer is (the worst
 * wins), whether a key falls in a shadow's fraction, the TTL a ttl_max
 * child stores, and the part of a key that a pool's hash_tag hashes.
 *
 * Thread-safety: a table is built once per snapshot and is read-only
 * after; every function may be called from any thread.
 */
#ifndef RIVEN_ROUTE_H
#define RIVEN_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "health.h"
#include "request.h"
#include "ring.h"

/* One pool of a config snapshot, shared by every connection. */
struct batch;

struct route_pool {
    const struct cfg_pool *pool; /* ref: in the snapshot's config */
    const struct ring *ring;     /* ref: owned by the snapshot */
    struct health *health;       /* ref: owned by the snapshot */
    struct conn_ctx *tls;        /* owned by the snapshot; NULL: plain */
    size_t mbase;                /* metrics index of server 0 */
    struct batch *batch; /* owned by the snapshot: the shared connections
                            of a batched pool (batch.h); NULL: a socket
                            per connection thread */
};

struct route_table;

/* The table of cfg's routes (ref: cfg must outlive it; config_load has
 * checked them, all_fastest's children being pools included). NULL with
 * a message in err when memory runs out. */
struct route_table *route_table_create(const struct config *cfg, char *err,
                                       size_t errlen) WUR;
void route_table_destroy(struct route_table *t);

/* Index into cfg->routes of the entry for key (its bytes, not base64). */
size_t route_lookup(const struct route_table *t, const char *key, size_t nkey);

/* True if some route of cfg has an l1l2 rule, or some pool is chunked:
 * their rounds hold the striped key locks, as the l1l2 orca does. */
bool route_needs_locks(const struct config *cfg);

/* A command that changes an item: all_sync and all_fastest send it to
 * every child, warm_up to cold. */
bool route_is_write(const struct request *req);

/* A read whose miss may be looked for elsewhere (failover with miss,
 * all_sync with read: failover, warm_up): get, gat, mg, binary get. A
 * read returning a CAS is not one: a CAS is one server's. */
bool route_is_plain_read(const struct request *req);

/* How bad an answer is: 2 an error (riven's or memcached's), 1 a refusal
 * (NOT_STORED, NOT_FOUND, EXISTS, a miss), 0 success. */
int route_severity(const struct response *res);

/* True if key (its bytes) falls in the fraction of keys a shadow copies:
 * the same keys in every run and every riven. */
bool route_in_fraction(const char *key, size_t nkey, double fraction);

/* The exptime a child with ttl_max stores for exptime (memcached's
 * meaning: 0 never, up to 30 days relative, else a Unix time). */
int64_t route_clamp_ttl(int64_t exptime, uint32_t ttl_max, int64_t now_unix);

/* The part of key that pool hashes: between its hash_tag's two
 * characters when both are found with something between, else the whole
 * key. */
void route_hash_part(const struct cfg_pool *pool, const char **key,
                     size_t *nkey);

#endif /* RIVEN_ROUTE_H */
