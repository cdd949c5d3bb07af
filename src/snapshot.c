/*
 * snapshot: publish and pick up config snapshots. The current snapshot
 * sits behind a mutex taken only to publish or to take a reference;
 * connections poll the generation counter, an atomic, between batches.
 */
#include "snapshot.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "health.h"
#include "ring.h"
#include "route.h"

static pthread_mutex_t snap_lock = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *snap_cur; /* guarded by snap_lock */
static _Atomic uint64_t snap_gen; /* bumped on each publish */

/* Build one pool's ring and health, and a batched pool's shared
 * connections (their threads start on first use); mbase numbers its
 * servers for metrics after the pools before it. */
static enum status
pool_env_init(struct route_pool *env, const struct cfg_pool *pool,
              const struct config *cfg, size_t mbase,
              const struct route_pool *prev, char *err, size_t errlen)
{
    env->pool = pool;
    env->mbase = mbase;
    if (pool->nservers == 0) {
        return ST_OK;
    }
    if (pool->tls.on &&
        (env->tls = conn_ctx_client(&pool->tls, err, errlen)) == NULL) {
        return ST_ERROR;
    }
    env->ring = ring_create(pool, err, errlen);
    env->health = health_create(pool, mbase, prev ? prev->health : NULL);
    if (env->ring == NULL || env->health == NULL) {
        if (env->ring != NULL) {
            snprintf(err, errlen, "out of memory");
        }
        return ST_ERROR;
    }
    if (pool->batched &&
        (env->batch = batch_create(pool, env->health, env->tls, mbase,
                                   cfg->connect_timeout_ms,
                                   cfg->request_timeout_ms)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return ST_ERROR;
    }
    return ST_OK;
}

/* The pool of prev named name, for its servers' health; else NULL. */
static const struct route_pool *
prev_pool(const struct snapshot *prev, const char *name)
{
    if (prev == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < prev->env.npools; i++) {
        if (strcmp(prev->cfg->pools[i].name, name) == 0) {
            return &prev->env.pools[i];
        }
    }
    return NULL;
}

/* A pool under r that speaks TLS or is chunked, or NULL. */
static const struct cfg_named_pool *
odd_pool_under(const struct config *cfg, const struct cfg_route *r)
{
    const struct cfg_named_pool *np = NULL;

    if (r->kind == CFG_ROUTE_POOL) {
        const struct cfg_pool *p = &cfg->pools[r->pool].pool;

        return p->tls.on || p->chunk_size > 0 ? &cfg->pools[r->pool] : NULL;
    }
    for (size_t i = 0; i < r->nchild && np == NULL; i++) {
        np = odd_pool_under(cfg, &r->child[i]);
    }
    return np;
}

/* The sockets nobody waits on (shadow.c: a shadow's copies, all_fastest's
 * other children) are non-blocking and plain, and send each request as it
 * is: a pool they would reach must not ask for TLS, nor be chunked (one
 * command there is several, in rounds). ST_OK, or ST_ERROR naming the
 * pool. */
static enum status
check_shadow_pools(const struct config *cfg, const struct cfg_route *r,
                   char *err, size_t errlen)
{
    const struct cfg_named_pool *np = NULL;

    if (r->kind == CFG_ROUTE_SHADOW) {
        np = odd_pool_under(cfg, &r->child[1]);
    } else if (r->kind == CFG_ROUTE_ALL_FASTEST) {
        np = odd_pool_under(cfg, r);
    }
    if (np != NULL) {
        snprintf(err, errlen,
                 "line %d: pool %s has %s, which a shadow's copies and "
                 "all_fastest's children do not speak yet",
                 r->line, np->name, np->pool.tls.on ? "tls:" : "chunked:");
        return ST_ERROR;
    }
    for (size_t i = 0; i < r->nchild; i++) {
        if (check_shadow_pools(cfg, &r->child[i], err, errlen) != ST_OK) {
            return ST_ERROR;
        }
    }
    return ST_OK;
}

/* Routes: each named pool's ring and health, numbered for metrics one
 * after another in file order, and the prefix table. */
static enum status
routes_init(struct orca_env *e, const struct config *cfg,
            const struct snapshot *prev, char *err, size_t errlen)
{
    size_t mbase = 0;

    e->pools = calloc(cfg->npools, sizeof(*e->pools));
    if (e->pools == NULL) {
        snprintf(err, errlen, "out of memory");
        return ST_ERROR;
    }
    e->npools = cfg->npools;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        if (check_shadow_pools(cfg, &cfg->routes[i].route, err, errlen) !=
            ST_OK) {
            return ST_ERROR;
        }
    }
    for (size_t i = 0; i < cfg->npools; i++) {
        const struct cfg_named_pool *np = &cfg->pools[i];

        if (pool_env_init(&e->pools[i], &np->pool, cfg, mbase,
                          prev_pool(prev, np->name), err, errlen) != ST_OK) {
            return ST_ERROR;
        }
        mbase += np->pool.nservers;
    }
    e->l1.pool = &cfg->pool; /* unused with routes; never NULL */
    e->l2.pool = &cfg->l2;
    e->routes = route_table_create(cfg, err, errlen);
    return e->routes != NULL ? ST_OK : ST_ERROR;
}

/* Each TLS listener's context, with its files read now. */
static enum status
listen_init(struct snapshot *snap, char *err, size_t errlen)
{
    const struct config *cfg = snap->cfg;

    snap->listen_tls = calloc(MAX(cfg->nlisten, 1), sizeof(struct conn_ctx *));
    if (snap->listen_tls == NULL) {
        snprintf(err, errlen, "out of memory");
        return ST_ERROR;
    }
    for (size_t i = 0; i < cfg->nlisten; i++) {
        char why[512];

        if (cfg->listen_tls == NULL || !cfg->listen_tls[i].on) {
            continue;
        }
        snap->listen_tls[i] =
            conn_ctx_server(&cfg->listen_tls[i], why, sizeof(why));
        if (snap->listen_tls[i] == NULL) {
            snprintf(err, errlen, "listen %s: %s", cfg->listen[i].name, why);
            return ST_ERROR;
        }
    }
    return ST_OK;
}

struct conn_ctx *
snapshot_listen_tls(const struct snapshot *snap, const char *name)
{
    for (size_t i = 0; i < snap->cfg->nlisten; i++) {
        if (strcmp(snap->cfg->listen[i].name, name) == 0) {
            return snap->listen_tls[i];
        }
    }
    return NULL;
}

static void
snapshot_free(struct snapshot *snap)
{
    struct orca_env *e = &snap->env;

    batch_destroy(e->l1.batch);
    batch_destroy(e->l2.batch);
    for (size_t i = 0; e->pools != NULL && i < e->npools; i++) {
        batch_destroy(e->pools[i].batch);
    }
    ring_destroy((struct ring *)e->l1.ring);
    health_destroy(e->l1.health);
    conn_ctx_free(e->l1.tls);
    ring_destroy((struct ring *)e->l2.ring);
    health_destroy(e->l2.health);
    conn_ctx_free(e->l2.tls);
    for (size_t i = 0; e->pools != NULL && i < e->npools; i++) {
        ring_destroy((struct ring *)e->pools[i].ring);
        health_destroy(e->pools[i].health);
        conn_ctx_free(e->pools[i].tls);
    }
    for (size_t i = 0; snap->listen_tls != NULL && i < snap->cfg->nlisten;
         i++) {
        conn_ctx_free(snap->listen_tls[i]);
    }
    free(snap->listen_tls);
    free(e->pools);
    route_table_destroy(e->routes);
    for (uint32_t i = 0; i < e->nlocks; i++) {
        pthread_mutex_destroy(&e->locks[i]);
    }
    free(e->locks);
    config_unref(snap->cfg);
    free(snap);
}

struct snapshot *
snapshot_create(struct config *cfg, const struct snapshot *prev, char *err,
                size_t errlen)
{
    struct snapshot *snap = calloc(1, sizeof(*snap));
    struct orca_env *e;

    if (snap == NULL) {
        snprintf(err, errlen, "out of memory");
        config_unref(cfg);
        return NULL;
    }
    atomic_init(&snap->refs, 1);
    snap->cfg = cfg;
    e = &snap->env;
    e->cfg = cfg;
    if (cfg->npools > 0) {
        if (routes_init(e, cfg, prev, err, errlen) != ST_OK) {
            goto error;
        }
    } else if (pool_env_init(&e->l1, &cfg->pool, cfg, 0,
                             prev ? &prev->env.l1 : NULL, err,
                             errlen) != ST_OK ||
               pool_env_init(&e->l2, &cfg->l2, cfg, cfg->pool.nservers,
                             prev ? &prev->env.l2 : NULL, err,
                             errlen) != ST_OK) {
        goto error;
    }
    if (listen_init(snap, err, errlen) != ST_OK) {
        goto error;
    }
    if ((cfg->orca != CFG_ORCA_L1ONLY || route_needs_locks(cfg)) &&
        cfg->key_locks > 0) {
        e->locks = calloc(cfg->key_locks, sizeof(*e->locks));
        if (e->locks == NULL) {
            snprintf(err, errlen, "out of memory");
            goto error;
        }
        for (; e->nlocks < cfg->key_locks; e->nlocks++) {
            pthread_mutex_init(&e->locks[e->nlocks], NULL);
        }
    }
    return snap;

error:
    snapshot_free(snap);
    return NULL;
}

void
snapshot_unref(struct snapshot *snap)
{
    if (snap == NULL ||
        atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    snapshot_free(snap);
}

void
snapshot_publish(struct snapshot *snap)
{
    struct snapshot *old;

    pthread_mutex_lock(&snap_lock);
    old = snap_cur;
    snap_cur = snap;
    atomic_fetch_add_explicit(&snap_gen, 1, memory_order_release);
    pthread_mutex_unlock(&snap_lock);
    snapshot_unref(old);
}

struct snapshot *
snapshot_get(void)
{
    struct snapshot *snap;

    pthread_mutex_lock(&snap_lock);
    snap = snap_cur;
    if (snap != NULL) {
        atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&snap_lock);
    return snap;
}

uint64_t
snapshot_generation(void)
{
    return atomic_load_explicit(&snap_gen, memory_order_acquire);
}
