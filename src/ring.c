/*
 * ring: a read-only memcached_st per config snapshot, asked
 * memcached_generate_hash for each key. libmemcached is used only here.
 */
#include "ring.h"

#include <libmemcached/memcached.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct ring {
    memcached_st *mc; /* distribution only; never connects */
    uint32_t nservers;
};

static memcached_return_t
add_server(memcached_st *mc, const struct cfg_server *s)
{
    char host[CFG_ADDR_NAME_MAX];
    const char *port;
    uint32_t nport;
    bool v6;

    if (strncmp(s->addr.name, "unix:", 5) == 0) {
        return memcached_server_add_unix_socket_with_weight(
            mc, s->addr.name + 5, s->weight);
    }
    /* the host as written: libmemcached's ketama points hash it */
    if (util_split_host_port(s->addr.name, host, sizeof(host), &port, &v6, NULL,
                             0) != ST_OK ||
        !util_parse_u32(port, strlen(port), &nport) || nport > 65535) {
        return MEMCACHED_INVALID_ARGUMENTS;
    }
    return memcached_server_add_with_weight(mc, host, (in_port_t)nport,
                                            s->weight);
}

static const memcached_hash_t hashes[] = {
    [CFG_HASH_DEFAULT] = MEMCACHED_HASH_DEFAULT,
    [CFG_HASH_MD5] = MEMCACHED_HASH_MD5,
    [CFG_HASH_CRC] = MEMCACHED_HASH_CRC,
    [CFG_HASH_FNV1_64] = MEMCACHED_HASH_FNV1_64,
    [CFG_HASH_FNV1A_64] = MEMCACHED_HASH_FNV1A_64,
    [CFG_HASH_FNV1_32] = MEMCACHED_HASH_FNV1_32,
    [CFG_HASH_FNV1A_32] = MEMCACHED_HASH_FNV1A_32,
    [CFG_HASH_HSIEH] = MEMCACHED_HASH_HSIEH,
    [CFG_HASH_MURMUR] = MEMCACHED_HASH_MURMUR,
    [CFG_HASH_JENKINS] = MEMCACHED_HASH_JENKINS,
    [CFG_HASH_ONE_AT_A_TIME] = MEMCACHED_HASH_DEFAULT, /* libmemcached: OAAT */
};

/* The behaviours a libmemcached client would set for the same pool
 * settings; a test can compare placements with libmemcached itself. */
static memcached_return_t
set_distribution(memcached_st *mc, const struct cfg_pool *cfg)
{
    memcached_return_t rc;

    switch (cfg->distribution) {
    case CFG_DIST_KETAMA_WEIGHTED:
        rc = memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
        break;
    case CFG_DIST_MODULA:
        rc = memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_DISTRIBUTION,
                                    MEMCACHED_DISTRIBUTION_MODULA);
        break;
    default:
        rc = memcached_behavior_set(mc, MEMCACHED_BEHAVIOR_KETAMA, 1);
        break;
    }
    return rc;
}

struct ring *
ring_create(const struct cfg_pool *cfg, char *err, size_t errlen)
{
    struct ring *ring = calloc(1, sizeof(*ring));
    memcached_return_t rc;

    if (ring == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ring->nservers = (uint32_t)cfg->nservers;
    ring->mc = memcached_create(NULL);
    if (ring->mc == NULL) {
        snprintf(err, errlen, "memcached_create failed");
        goto error;
    }
    rc = set_distribution(ring->mc, cfg);
    if (rc != MEMCACHED_SUCCESS) {
        snprintf(err, errlen, "distribution: %s",
                 memcached_strerror(ring->mc, rc));
        goto error;
    }
    if (cfg->hash != CFG_HASH_DEFAULT &&
        (rc = memcached_behavior_set(ring->mc, MEMCACHED_BEHAVIOR_HASH,
                                     hashes[cfg->hash])) != MEMCACHED_SUCCESS) {
        snprintf(err, errlen, "hash: not supported by this libmemcached (%s)",
                 memcached_strerror(ring->mc, rc));
        goto error;
    }
    for (size_t i = 0; i < cfg->nservers; i++) {
        rc = add_server(ring->mc, &cfg->servers[i]);
        if (rc != MEMCACHED_SUCCESS) {
            snprintf(err, errlen, "server %s: %s", cfg->servers[i].addr.name,
                     memcached_strerror(ring->mc, rc));
            goto error;
        }
    }
    return ring;

error:
    ring_destroy(ring);
    return NULL;
}

void
ring_destroy(struct ring *ring)
{
    if (ring == NULL) {
        return;
    }
    if (ring->mc != NULL) {
        memcached_free(ring->mc);
    }
    free(ring);
}

uint32_t
ring_lookup(const struct ring *ring, const char *key, size_t nkey)
{
    if (ring->nservers <= 1) {
        return 0;
    }
    return memcached_generate_hash(ring->mc, key, nkey);
}

uint32_t
ring_size(const struct ring *ring)
{
    return ring->nservers;
}
