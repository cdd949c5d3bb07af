/*
 * health: per-server failure counting and ejection with C11 atomics.
 * Only the thread that flips a state logs it, so a transition is logged
 * exactly once however many threads see it.
 *
 * The connect gates are a mutex and a condition variable (CLOCK_MONOTONIC)
 * per metrics index, created once; a waiter sleeps until a place is given
 * back or its deadline passes.
 */
#include "health.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

struct server_health {
    _Atomic uint32_t fails;    /* consecutive failures */
    _Atomic int ejected;       /* 1 while ejected */
    _Atomic int probing;       /* 1 while one thread probes */
    _Atomic uint64_t until_ms; /* ejected until (monotonic ms) */
};

struct gate {
    pthread_mutex_t lock;
    pthread_cond_t freed;
    unsigned busy; /* connections not yet proven by an answered batch */
};

static struct gate gates[METRICS_SERVERS_MAX];
static pthread_once_t gates_once = PTHREAD_ONCE_INIT;

struct health {
    const struct cfg_pool *cfg; /* ref: owned by the snapshot */
    size_t mbase;               /* metrics index of server 0 */
    size_t n;
    struct server_health *s;
};

struct health *
health_create(const struct cfg_pool *cfg, size_t mbase,
              const struct health *prev)
{
    struct health *h = calloc(1, sizeof(*h));

    if (h == NULL) {
        return NULL;
    }
    h->cfg = cfg;
    h->mbase = mbase;
    h->n = cfg->nservers;
    h->s = calloc(h->n ? h->n : 1, sizeof(*h->s));
    if (h->s == NULL) {
        free(h);
        return NULL;
    }
    for (size_t i = 0; prev != NULL && i < h->n; i++) {
        for (size_t j = 0; j < prev->n; j++) {
            const struct server_health *o = &prev->s[j];

            if (strcmp(prev->cfg->servers[j].addr.name,
                       cfg->servers[i].addr.name) != 0) {
                continue;
            }
            atomic_store(&h->s[i].fails, atomic_load(&o->fails));
            atomic_store(&h->s[i].ejected, atomic_load(&o->ejected));
            atomic_store(&h->s[i].until_ms, atomic_load(&o->until_ms));
            break;
        }
    }
    return h;
}

void
health_destroy(struct health *h)
{
    if (h == NULL) {
        return;
    }
    free(h->s);
    free(h);
}

enum health_verdict
health_check(struct health *h, size_t idx, uint64_t now_ms)
{
    struct server_health *s = &h->s[idx];
    int zero = 0;

    if (!atomic_load_explicit(&s->ejected, memory_order_acquire)) {
        return HEALTH_USE;
    }
    if (now_ms < atomic_load_explicit(&s->until_ms, memory_order_relaxed)) {
        return HEALTH_EJECTED;
    }
    if (atomic_compare_exchange_strong(&s->probing, &zero, 1)) {
        log_debug("%s: probing %s", __func__, h->cfg->servers[idx].addr.name);
        return HEALTH_PROBE;
    }
    return HEALTH_EJECTED;
}

bool
health_ejected(const struct health *h, size_t idx, uint64_t now_ms)
{
    const struct server_health *s = &h->s[idx];

    return atomic_load_explicit(&s->ejected, memory_order_acquire) &&
           now_ms < atomic_load_explicit(&s->until_ms, memory_order_relaxed);
}

void
health_success(struct health *h, size_t idx)
{
    struct server_health *s = &h->s[idx];
    int one = 1;

    /* Every reply of every connection lands here: write the shared line
     * only when something changes, so a healthy server's state stays in
     * every core's cache instead of moving between them twice a reply. */
    if (atomic_load_explicit(&s->fails, memory_order_relaxed) != 0) {
        atomic_store_explicit(&s->fails, 0, memory_order_relaxed);
    }
    if (atomic_load_explicit(&s->ejected, memory_order_relaxed) &&
        atomic_compare_exchange_strong(&s->ejected, &one, 0)) {
        log_info("backend %s is back", h->cfg->servers[idx].addr.name);
        metrics_server_up(h->mbase + idx, true);
    }
    if (atomic_load(&s->probing) != 0) {
        atomic_store(&s->probing, 0);
    }
}

void
health_failure(struct health *h, size_t idx, uint64_t now_ms)
{
    struct server_health *s = &h->s[idx];
    uint32_t fails = atomic_fetch_add(&s->fails, 1) + 1;
    int zero = 0;

    if (atomic_load(&s->probing)) {
        atomic_store(&s->until_ms, now_ms + h->cfg->retry_timeout_ms);
        atomic_store(&s->probing, 0);
        log_debug("%s: probe of %s failed", __func__,
                  h->cfg->servers[idx].addr.name);
        return;
    }
    if (fails < h->cfg->failure_limit || atomic_load(&s->ejected)) {
        return;
    }
    /* until_ms first: a reader that sees ejected sees the new deadline */
    atomic_store(&s->until_ms, now_ms + h->cfg->retry_timeout_ms);
    if (atomic_compare_exchange_strong(&s->ejected, &zero, 1)) {
        log_warnx("backend %s ejected after %u failures, retry in %u ms",
                  h->cfg->servers[idx].addr.name, fails,
                  h->cfg->retry_timeout_ms);
        metrics_server_up(h->mbase + idx, false);
    }
}

void
health_probe_failed(struct health *h, size_t idx, uint64_t now_ms)
{
    struct server_health *s = &h->s[idx];

    if (!atomic_load(&s->probing) || !atomic_load(&s->ejected)) {
        return; /* ended by another thread's report */
    }
    /* until_ms first: whoever sees probing 0 sees the new deadline */
    atomic_store(&s->until_ms, now_ms + h->cfg->retry_timeout_ms);
    atomic_store(&s->probing, 0);
    log_debug("%s: %s could not be probed, retry in %u ms", __func__,
              h->cfg->servers[idx].addr.name, h->cfg->retry_timeout_ms);
}

static void
gates_init(void)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (size_t i = 0; i < METRICS_SERVERS_MAX; i++) {
        pthread_mutex_init(&gates[i].lock, NULL);
        pthread_cond_init(&gates[i].freed, &ca);
    }
    pthread_condattr_destroy(&ca);
}

bool
health_gate_enter(size_t sidx, uint64_t deadline_ms)
{
    struct gate *g;
    struct timespec ts = {.tv_sec = (time_t)(deadline_ms / 1000),
                          .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    bool ok = true;

    if (sidx >= METRICS_SERVERS_MAX) {
        return true;
    }
    pthread_once(&gates_once, gates_init);
    g = &gates[sidx];
    pthread_mutex_lock(&g->lock);
    while (g->busy >= HEALTH_GATE_MAX) {
        if (pthread_cond_timedwait(&g->freed, &g->lock, &ts) == ETIMEDOUT) {
            ok = g->busy < HEALTH_GATE_MAX;
            break;
        }
    }
    if (ok) {
        g->busy++;
    }
    pthread_mutex_unlock(&g->lock);
    return ok;
}

void
health_gate_leave(size_t sidx)
{
    struct gate *g;

    if (sidx >= METRICS_SERVERS_MAX) {
        return;
    }
    g = &gates[sidx];
    pthread_mutex_lock(&g->lock);
    g->busy--;
    pthread_cond_signal(&g->freed);
    pthread_mutex_unlock(&g->lock);
}
