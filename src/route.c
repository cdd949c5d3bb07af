/*
 * route: the prefix table and the rules of routes (see route.h).
 */
#include "route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV64_OFFSET 14695981039346656037ull
#define FNV64_PRIME  1099511628211ull

struct slot {
    uint64_t hash;
    const struct cfg_route_entry *e; /* NULL: empty */
    size_t idx;                      /* e's index in cfg->routes */
};

#define BLOOM_BITS 16384 /* 2 KiB: about 6% false hits with 1,000 prefixes */

struct route_table {
    struct slot *slots; /* open addressing, a power of two */
    size_t mask;
    uint64_t bloom[BLOOM_BITS / 64]; /* a bit per prefix hash: most
                                        lengths of a key end here */
    size_t def;                      /* the default entry's index */
    size_t minlen, maxlen;
};

static uint64_t
fnv_step(uint64_t h, unsigned char c)
{
    return (h ^ c) * FNV64_PRIME;
}

static uint64_t
fnv(const char *p, size_t n)
{
    uint64_t h = FNV64_OFFSET;

    for (size_t i = 0; i < n; i++) {
        h = fnv_step(h, (unsigned char)p[i]);
    }
    return h;
}

/* The filter's bit of hash h: its top bits, which the table's index (the
 * low bits) does not use. */
static size_t
bloom_bit(uint64_t h)
{
    return (size_t)(h >> 50) % BLOOM_BITS;
}

static void
bloom_set(struct route_table *t, uint64_t h)
{
    t->bloom[bloom_bit(h) / 64] |= 1ull << (bloom_bit(h) % 64);
}

static bool
bloom_has(const struct route_table *t, uint64_t h)
{
    return (t->bloom[bloom_bit(h) / 64] >> (bloom_bit(h) % 64)) & 1u;
}

struct route_table *
route_table_create(const struct config *cfg, char *err, size_t errlen)
{
    struct route_table *t = calloc(1, sizeof(*t));
    size_t cap = 8;

    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    while (cap < 2 * cfg->nroutes) {
        cap *= 2;
    }
    t->slots = calloc(cap, sizeof(*t->slots));
    if (t->slots == NULL) {
        snprintf(err, errlen, "out of memory");
        free(t);
        return NULL;
    }
    t->mask = cap - 1;
    t->minlen = SIZE_MAX;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct cfg_route_entry *e = &cfg->routes[i];
        size_t j;

        if (e->prefix == NULL) {
            t->def = i;
            continue;
        }
        if (e->nprefix == 0 || e->nprefix > KEY_MAX_LENGTH) {
            continue; /* config refuses these */
        }
        j = fnv(e->prefix, e->nprefix) & t->mask;
        while (t->slots[j].e != NULL) {
            j = (j + 1) & t->mask;
        }
        t->slots[j] = (struct slot){fnv(e->prefix, e->nprefix), e, i};
        bloom_set(t, t->slots[j].hash);
        t->minlen = e->nprefix < t->minlen ? e->nprefix : t->minlen;
        t->maxlen = e->nprefix > t->maxlen ? e->nprefix : t->maxlen;
    }
    return t;
}

void
route_table_destroy(struct route_table *t)
{
    if (t == NULL) {
        return;
    }
    free(t->slots);
    free(t);
}

static const struct slot *
probe(const struct route_table *t, uint64_t h, const char *key, size_t n)
{
    for (size_t j = h & t->mask; t->slots[j].e != NULL; j = (j + 1) & t->mask) {
        const struct slot *s = &t->slots[j];

        if (s->hash == h && s->e->nprefix == n &&
            memcmp(s->e->prefix, key, n) == 0) {
            return s;
        }
    }
    return NULL;
}

size_t
route_lookup(const struct route_table *t, const char *key, size_t nkey)
{
    uint64_t h = FNV64_OFFSET;
    size_t best = t->def, end = nkey < t->maxlen ? nkey : t->maxlen;

    for (size_t n = 1; n <= end; n++) {
        const struct slot *s;

        h = fnv_step(h, (unsigned char)key[n - 1]);
        if (n < t->minlen || !bloom_has(t, h)) {
            continue; /* no prefix has this hash (of this length) */
        }
        if ((s = probe(t, h, key, n)) != NULL) {
            best = s->idx;
        }
    }
    return best;
}

static bool
has_l1l2(const struct cfg_route *r)
{
    if (r->kind == CFG_ROUTE_L1L2) {
        return true;
    }
    for (size_t i = 0; i < r->nchild; i++) {
        if (has_l1l2(&r->child[i])) {
            return true;
        }
    }
    return false;
}

bool
route_needs_locks(const struct config *cfg)
{
    if (cfg->pool.chunk_size > 0 || cfg->l2.chunk_size > 0) {
        return true;
    }
    for (size_t i = 0; i < cfg->npools; i++) {
        if (cfg->pools[i].pool.chunk_size > 0) {
            return true;
        }
    }
    for (size_t i = 0; i < cfg->nroutes; i++) {
        if (has_l1l2(&cfg->routes[i].route)) {
            return true;
        }
    }
    return false;
}

bool
route_is_write(const struct request *req)
{
    switch (req->cmd) {
    case REQ_INCR:
    case REQ_DECR:
    case REQ_DELETE:
    case REQ_TOUCH:
    case REQ_MS:
    case REQ_MD:
    case REQ_MA:
        return true;
    default:
        return req_is_storage(req->cmd);
    }
}

bool
route_is_plain_read(const struct request *req)
{
    return (req->cmd == REQ_GET || req->cmd == REQ_GAT || req->cmd == REQ_MG) &&
           !(req->rflags & REQ_F_RET_CAS);
}

int
route_severity(const struct response *res)
{
    switch (res->kind) {
    case RES_NONE:
    case RES_ERROR:
    case RES_CLIENT_ERROR:
    case RES_SERVER_ERROR:
        return 2;
    case RES_NOT_STORED:
    case RES_NOT_FOUND:
    case RES_EXISTS:
    case RES_MISS:
        return 1;
    default:
        return 0;
    }
}

bool
route_in_fraction(const char *key, size_t nkey, double fraction)
{
    uint64_t h = fnv(key, nkey);

    /* a 64-bit finalizer (MurmurHash3's fmix64): FNV's high bits alone
     * follow the last bytes of similar keys too closely */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (double)(h >> 11) < fraction * (double)(1ull << 53);
}

int64_t
route_clamp_ttl(int64_t exptime, uint32_t ttl_max, int64_t now_unix)
{
    int64_t left = exptime;

    if (ttl_max == 0 || exptime < 0) {
        return exptime; /* no clamp; a negative TTL expires at once */
    }
    if (exptime > REALTIME_MAXDELTA) {
        left = exptime - now_unix; /* a Unix time */
        if (left <= 0) {
            return exptime; /* already past: expires at once anyway */
        }
    }
    return exptime == 0 || left > (int64_t)ttl_max ? (int64_t)ttl_max : exptime;
}

void
route_hash_part(const struct cfg_pool *pool, const char **key, size_t *nkey)
{
    const char *open, *close;

    if (pool->hash_tag[0] == '\0') {
        return;
    }
    open = memchr(*key, pool->hash_tag[0], *nkey);
    if (open == NULL) {
        return;
    }
    open++;
    close = memchr(open, pool->hash_tag[1], (size_t)(*key + *nkey - open));
    if (close == NULL || close == open) {
        return;
    }
    *key = open;
    *nkey = (size_t)(close - open);
}
