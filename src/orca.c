/*
 * orca: batch execution over one pool (l1only) or two (l1l2, l1l2batch).
 *
 *   requests ──ring──▶ handler[server].queue ... (all servers)
 *            ──▶ handler.flush (every server written)
 *            ──▶ handler.recv  (then every server read)
 *            ──▶ responses, in request order
 *
 * With two layers a batch runs in up to three such phases, each sent to
 * every server before any is read:
 *
 *   phase 1   reads to L1, writes to L2 (the truth)
 *   phase 2   L1 misses to L2; what L2 accepted is mirrored to L1
 *   phase 3   L2 hits filled into L1 (add: a concurrent write wins);
 *             an L1 copy that could not be updated is deleted
 *
 * Striped key locks (key_locks) hold each key of the segment for all
 * phases, taken in stripe order so threads cannot deadlock.
 *
 * flush_all and stats are barriers sent to every server; stats replies are
 * summed by name when the pool has more than one server.
 */
#include "orca.h"

#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "handler.h"
#include "log.h"
#include "metrics.h"

/* One pool as this connection sees it. */
struct layer {
    const struct orca_pool *env; /* ref: owned with the snapshot */
    struct handler **h;          /* per server, created on first use */
    struct response *each;       /* per server, for barrier commands */
    bool *probe;                 /* per server: this orca won its probe */
    size_t nh;
};

#define REALTIME_MAXDELTA (60 * 60 * 24 * 30) /* memcached's 30 days */

struct orca {
    const struct orca_env *env; /* ref: owned with the snapshot */
    enum cfg_orca mode;
    struct layer l1;
    struct layer l2;     /* nh == 0 for l1only */
    struct buf agg;      /* summed stats reply */
    struct response *s1; /* l1l2: L1's answer to each read */
    struct response *s2; /* l1l2: each request's mirror answer */
    size_t nscratch;
    uint32_t *held; /* lock stripes held, sorted */
    size_t nheld;
    size_t capheld;
    struct req_batch *b; /* ref: the batch in execution, the server's */
    size_t next;         /* b: first request not yet sent */
    size_t limit;        /* reply bytes a handler may hold (l1only) */
};

static enum status
layer_init(struct layer *ly, const struct orca_pool *env)
{
    ly->env = env;
    ly->nh = env != NULL ? env->pool->nservers : 0;
    if (ly->nh == 0) {
        return ST_OK;
    }
    ly->h = calloc(ly->nh, sizeof(struct handler *));
    ly->each = calloc(ly->nh, sizeof(*ly->each));
    ly->probe = calloc(ly->nh, sizeof(*ly->probe));
    return ly->h != NULL && ly->each != NULL && ly->probe != NULL ? ST_OK
                                                                  : ST_NOMEM;
}

static void
layer_free(struct layer *ly)
{
    for (size_t i = 0; ly->h != NULL && i < ly->nh; i++) {
        handler_destroy(ly->h[i]);
    }
    free(ly->h);
    free(ly->each);
    free(ly->probe);
}

/* Move prev's handlers for servers still in the pool into ly. */
static void
adopt(struct layer *ly, struct layer *prev, const struct config *cfg)
{
    for (size_t i = 0; i < ly->nh; i++) {
        const struct cfg_server *s = &ly->env->pool->servers[i];

        for (size_t j = 0; j < prev->nh; j++) {
            if (prev->h[j] == NULL ||
                strcmp(prev->env->pool->servers[j].addr.name, s->addr.name) !=
                    0) {
                continue;
            }
            ly->h[i] = prev->h[j];
            prev->h[j] = NULL;
            handler_rebind(ly->h[i], &s->addr, ly->env->mbase + i,
                           cfg->connect_timeout_ms, cfg->request_timeout_ms);
            break;
        }
    }
}

struct orca *
orca_create(const struct orca_env *env, enum cfg_orca mode, struct orca *prev)
{
    struct orca *o = calloc(1, sizeof(*o));

    if (o == NULL) {
        return NULL;
    }
    o->env = env;
    o->mode = mode;
    buf_init(&o->agg, 1024);
    if (layer_init(&o->l1, &env->l1) != ST_OK ||
        layer_init(&o->l2, mode == CFG_ORCA_L1ONLY ? NULL : &env->l2) !=
            ST_OK) {
        orca_destroy(o);
        return NULL;
    }
    if (prev != NULL) {
        adopt(&o->l1, &prev->l1, env->cfg);
        adopt(&o->l2, &prev->l2, env->cfg);
    }
    return o;
}

void
orca_destroy(struct orca *o)
{
    if (o == NULL) {
        return;
    }
    layer_free(&o->l1);
    layer_free(&o->l2);
    free(o->s1);
    free(o->s2);
    free(o->held);
    buf_free(&o->agg);
    free(o);
}

static struct handler *
handler_at(struct orca *o, struct layer *ly, size_t i)
{
    if (ly->h[i] == NULL) {
        ly->h[i] = handler_create(
            &ly->env->pool->servers[i].addr, ly->env->mbase + i,
            o->env->cfg->connect_timeout_ms, o->env->cfg->request_timeout_ms);
    }
    return ly->h[i];
}

/* Queue req on server i; a failure to queue answers res at once. */
static void
queue_on(struct orca *o, struct layer *ly, size_t i, const struct request *req,
         struct response *res)
{
    struct handler *h = handler_at(o, ly, i);
    enum status st = h != NULL ? handler_queue(h, req, res) : ST_NOMEM;

    if (st == ST_NOMEM && res != NULL) {
        res_set_fail(res, FAIL_OUT_OF_MEMORY);
    } else if (st != ST_OK && res != NULL) {
        res_set_error(res, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
    }
}

/* The server for key: the ring's choice, or with eject_rehash and that
 * server ejected, the first live one found by rehashing key with a
 * counter appended (2 * n tries), else the next live index after it, so
 * a key never fails while any server is live. */
static size_t
route(const struct layer *ly, const struct request *req, uint64_t now)
{
    char dec[KEY_MAX_LENGTH + 8], alt[KEY_MAX_LENGTH + 8];
    const char *key = req->key;
    size_t nkey = req->nkey, idx;

    if ((req->rflags & REQ_F_B64KEY) &&
        util_b64_decode(req->key, req->nkey, dec, sizeof(dec), &nkey)) {
        key = dec; /* place binary keys by their bytes, as clients do */
    }
    idx = ring_lookup(ly->env->ring, key, nkey);
    if (!ly->env->pool->eject_rehash ||
        !health_ejected(ly->env->health, idx, now) || nkey > KEY_MAX_LENGTH) {
        return idx;
    }
    memcpy(alt, key, nkey);
    for (unsigned n = 1; n <= 2 * ly->nh; n++) {
        size_t len = nkey;
        size_t j;

        alt[len++] = '#';
        len += util_u64_str(alt + len, n);
        j = ring_lookup(ly->env->ring, alt, len);
        if (!health_ejected(ly->env->health, j, now)) {
            return j;
        }
    }
    /* every try landed on ejected servers: likely with few live ones */
    for (size_t k = 1; k < ly->nh; k++) {
        size_t j = (idx + k) % ly->nh;

        if (!health_ejected(ly->env->health, j, now)) {
            return j;
        }
    }
    return idx;
}

/* Send req to server idx of ly, unless the server is ejected. */
static void
send_at(struct orca *o, struct layer *ly, size_t idx, const struct request *req,
        struct response *res, uint64_t now)
{
    switch (health_check(ly->env->health, idx, now)) {
    case HEALTH_EJECTED:
        if (res != NULL) {
            res_set_fail(res, FAIL_BACKEND_UNAVAILABLE);
        }
        if (ly->h[idx] != NULL && !handler_pending(ly->h[idx])) {
            /* the socket likely died with the server: a probe or the
             * first request after its return must not find it */
            handler_close(ly->h[idx]);
        }
        return;
    case HEALTH_PROBE: {
        /* the probe: a no-op the server must answer before the request;
         * report() ends it whatever happens to it */
        struct request probe = {.cmd = REQ_MN};

        ly->probe[idx] = true;
        queue_on(o, ly, idx, &probe, NULL);
        break;
    }
    default:
        break;
    }
    queue_on(o, ly, idx, req, res);
}

/* Send req to the server of ly that owns its key. */
static void
send_key(struct orca *o, struct layer *ly, const struct request *req,
         struct response *res, uint64_t now)
{
    send_at(o, ly, route(ly, req, now), req, res, now);
}

/* Tell the shared health state how each server's exchange went. A probe
 * this orca won always ends here: one that never reached its server (no
 * descriptor, the connect gate, no memory: outcome 0) counts as failed,
 * or the server would stay ejected with nobody probing it. */
static void
report(struct layer *ly, uint64_t now)
{
    for (size_t i = 0; i < ly->nh; i++) {
        int outcome;

        if (ly->h[i] != NULL && handler_pending(ly->h[i])) {
            continue; /* paused mid-batch: reported when it ends */
        }
        outcome = ly->h[i] ? handler_take_outcome(ly->h[i]) : 0;
        if (outcome > 0) {
            health_success(ly->env->health, i);
        } else if (outcome < 0) {
            health_failure(ly->env->health, i, now);
        } else if (ly->probe[i]) {
            health_probe_failed(ly->env->health, i, now);
        }
        ly->probe[i] = false;
    }
}

/* The batch's first response a handler has still to read, and that
 * handler (*hp, when hp is not NULL); NULL when none is waited for. */
static const struct response *
first_waiting(const struct orca *o, const struct handler **hp)
{
    const struct layer *ls[2] = {&o->l1, &o->l2};
    const struct response *lo = o->b->res, *hi = lo + o->b->n, *min = NULL;

    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < ls[l]->nh; i++) {
            const struct response *w =
                ls[l]->h[i] ? handler_waiting(ls[l]->h[i]) : NULL;

            if (w == NULL || (uintptr_t)w < (uintptr_t)lo ||
                (uintptr_t)w >= (uintptr_t)hi ||
                (min != NULL && (uintptr_t)w >= (uintptr_t)min)) {
                continue; /* not the batch's, or not the first */
            }
            min = w;
            if (hp != NULL) {
                *hp = ls[l]->h[i];
            }
        }
    }
    return min;
}

/* Write every server's share, then read every server's replies, each
 * handler pausing before it holds limit bytes of them (but the one the
 * client waits on first). */
static void
run_queued(struct orca *o, size_t limit)
{
    struct layer *ls[2] = {&o->l1, &o->l2};
    const struct handler *fw = NULL;

    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < ls[l]->nh; i++) {
            if (ls[l]->h[i] != NULL && handler_pending(ls[l]->h[i])) {
                handler_flush(ls[l]->h[i]);
            }
        }
    }
    if (limit < SIZE_MAX) {
        (void)first_waiting(o, &fw);
    }
    for (size_t l = 0; l < 2; l++) {
        for (size_t i = 0; i < ls[l]->nh; i++) {
            if (ls[l]->h[i] != NULL && handler_pending(ls[l]->h[i])) {
                handler_recv(ls[l]->h[i], limit,
                             fw == NULL || ls[l]->h[i] == fw);
            }
        }
    }
    report(&o->l1, util_now_ms());
    report(&o->l2, util_now_ms());
}

/* A too-large set: memcached drops the old item, so a stale value never
 * outlives a failed overwrite; riven drops it from every layer. */
static void
drop_stale(struct orca *o, const struct request *req)
{
    struct request del = {.cmd = REQ_DELETE,
                          .rflags = req->rflags & REQ_F_B64KEY,
                          .key = req->key,
                          .nkey = req->nkey};
    uint64_t now = util_now_ms();

    send_key(o, &o->l1, &del, NULL, now);
    if (o->l2.nh > 0) {
        send_key(o, &o->l2, &del, NULL, now);
    }
}

/* Answer what needs no backend; false if req must go to one. */
static bool
answer_locally(struct orca *o, const struct request *req, struct response *res)
{
    if (req->err != RES_NONE) {
        res_set_error(res, req->err, req->errmsg);
        if ((req->cmd == REQ_SET || req->cmd == REQ_MS) &&
            (req->rflags & REQ_F_TOOLARGE)) {
            drop_stale(o, req);
        }
        return true;
    }
    switch (req->cmd) {
    case REQ_VERSION:
        res->kind = RES_VERSION;
        return true;
    case REQ_VERBOSITY:
    case REQ_NOOP:
    case REQ_MN:
        res->kind = RES_OK;
        return true;
    case REQ_QUIT:
        res->kind = RES_QUIT;
        return true;
    case REQ_NONE:
        res->kind = RES_ERROR;
        return true;
    default:
        return false;
    }
}

/* ---- l1l2: striped key locks ---- */

static uint32_t
stripe_of(const struct request *req, uint32_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (size_t i = 0; i < req->nkey; i++) {
        h = (h ^ (unsigned char)req->key[i]) * 16777619u;
    }
    return h % n;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return (x > y) - (x < y);
}

/* Lock the stripes of every key in [from, to), in ascending order. */
static void
lock_keys(struct orca *o, const struct req_batch *b, size_t from, size_t to)
{
    uint32_t n = o->env->nlocks;

    o->nheld = 0;
    if (n == 0) {
        return;
    }
    if (to - from > o->capheld) {
        uint32_t *p = realloc(o->held, (to - from) * sizeof(*p));

        if (p == NULL) {
            return; /* ENOMEM: run unlocked rather than not at all */
        }
        o->held = p;
        o->capheld = to - from;
    }
    for (size_t k = from; k < to; k++) {
        if (b->reqs[k].key != NULL && b->reqs[k].err == RES_NONE) {
            o->held[o->nheld++] = stripe_of(&b->reqs[k], n);
        }
    }
    if (o->nheld == 0) {
        return;
    }
    qsort(o->held, o->nheld, sizeof(*o->held), cmp_u32);
    for (size_t i = 0, w = 0; i < o->nheld; i++) {
        if (i == 0 || o->held[i] != o->held[w - 1]) {
            o->held[w++] = o->held[i];
            pthread_mutex_lock(&o->env->locks[o->held[i]]);
        }
        if (i + 1 == o->nheld) {
            o->nheld = w;
        }
    }
}

static void
unlock_keys(struct orca *o)
{
    for (size_t i = o->nheld; i > 0; i--) {
        pthread_mutex_unlock(&o->env->locks[o->held[i - 1]]);
    }
    o->nheld = 0;
}

/* ---- l1l2: the phases ---- */

/* Reads that try L1 first. A read that returns a CAS (gets, gats, binary
 * get) goes to L2: CAS values are L2's, as cas commands go to L2. */
static bool
is_layered_read(const struct request *req)
{
    return (req->cmd == REQ_GET || req->cmd == REQ_GAT) &&
           !(req->rflags & REQ_F_RET_CAS);
}

/*
 * Response slots: a handler keeps re-pointing the responses it decoded
 * while its read buffer grows, until the batch ends, so each slot belongs
 * to one handler: s1[k] to L1's read, res[k] to L2 (the client's answer),
 * s2[k] to the mirror on the other layer. L1 hits are copied into res[k]
 * after the last phase, when no buffer moves any more.
 */

/* Phase 1: plain reads (get, gat) try L1; everything else goes to L2. */
static void
phase1(struct orca *o, struct req_batch *b, size_t k, uint64_t now)
{
    const struct request *req = &b->reqs[k];

    if (is_layered_read(req)) {
        send_key(o, &o->l1, req, &o->s1[k], now);
    } else {
        send_key(o, &o->l2, req, &b->res[k], now);
    }
}

/* An L1 copy of req's key after L2 took req: which command keeps L1
 * right (REQ_NONE: leave L1 alone). */
static enum req_cmd
mirror_cmd(const struct orca *o, const struct request *req,
           const struct response *res)
{
    bool ok = res->kind == RES_STORED;

    switch (req->cmd) {
    case REQ_SET:
        if (!ok) {
            return REQ_NONE;
        }
        return o->mode == CFG_ORCA_L1L2BATCH ? REQ_REPLACE : REQ_SET;
    case REQ_ADD:
        return ok ? REQ_SET : REQ_NONE;
    case REQ_REPLACE:
    case REQ_APPEND:
    case REQ_PREPEND:
        return ok ? req->cmd : REQ_DELETE;
    case REQ_TOUCH:
        return res->kind == RES_TOUCHED ? REQ_TOUCH : REQ_DELETE;
    case REQ_GET:
    case REQ_GETS:
    case REQ_GAT:
    case REQ_GATS:
    case REQ_MG:
    case REQ_ME:
        return req->cmd == REQ_GAT || req->cmd == REQ_GATS ? REQ_TOUCH
                                                           : REQ_NONE;
    default:
        /* delete, incr, decr, cas, gets, gats, meta: drop the L1 copy */
        return REQ_DELETE;
    }
}

/* Phase 2 for one request, after L1 answered reads and L2 the rest. */
static void
phase2(struct orca *o, struct req_batch *b, size_t k, uint64_t now)
{
    const struct request *req = &b->reqs[k];
    struct response *res = &b->res[k];
    struct request r2 = *req;

    r2.cas = 0; /* a mirror never compares: it must not fail on L1's CAS */

    if (is_layered_read(req)) {
        if (o->s1[k].kind == RES_VALUE) {
            metrics_inc(M_L1_HITS);
            if (req->cmd == REQ_GAT) { /* keep L2's TTL in step */
                r2.cmd = REQ_TOUCH;
                r2.rflags = 0;
                send_key(o, &o->l2, &r2, &o->s2[k], now);
            }
            return;
        }
        metrics_inc(M_L1_MISSES);
        r2.rflags |= REQ_F_RET_TTL;
        send_key(o, &o->l2, &r2, res, now);
        return;
    }
    if (res->kind == RES_SERVER_ERROR) {
        metrics_inc(M_L2_ERRORS);
        if (req->cmd == REQ_SET) {
            return; /* L2 failed: the client hears it, L1 is left alone */
        }
    }
    r2.cmd = mirror_cmd(o, req, res);
    if (r2.cmd == REQ_NONE || r2.key == NULL ||
        (req->proto == PROTO_META && r2.cmd != REQ_DELETE)) {
        return;
    }
    r2.rflags &= REQ_F_B64KEY;
    r2.proto = PROTO_TEXT;
    send_key(o, &o->l1, &r2, &o->s2[k], now);
}

/* Phase 3: fill L1 with L2's hits; delete L1 copies that failed to
 * update. */
static void
phase3(struct orca *o, struct req_batch *b, size_t k, uint64_t now)
{
    const struct request *req = &b->reqs[k];
    const struct response *res = &b->res[k];
    struct request fill = {.cmd = REQ_ADD, .key = req->key, .nkey = req->nkey};

    if (is_layered_read(req) && o->s1[k].kind == RES_VALUE) {
        return; /* served by L1 */
    }
    if (is_layered_read(req) && res->kind != RES_VALUE) {
        if (res->kind == RES_MISS) {
            metrics_inc(M_L2_MISSES);
        } else if (res->kind == RES_SERVER_ERROR) {
            metrics_inc(M_L2_ERRORS);
        }
        return;
    }
    if (is_layered_read(req)) {
        metrics_inc(M_L2_HITS);
        if (o->mode == CFG_ORCA_L1L2BATCH || res->ttl == 0) {
            return; /* batch loaders do not fill; an expiring item neither */
        }
        fill.flags = res->flags;
        fill.exptime =
            req->cmd == REQ_GAT ? req->exptime : (res->ttl < 0 ? 0 : res->ttl);
        if (fill.exptime > REALTIME_MAXDELTA) {
            /* memcached reads more than 30 days as a Unix time */
            fill.exptime += (int64_t)time(NULL);
        }
        fill.val = res->val;
        fill.nval = res->nval;
        metrics_inc(M_L1_FILLS);
        send_key(o, &o->l1, &fill, NULL, now);
        return;
    }
    if (req->cmd == REQ_SET && res->kind == RES_STORED &&
        o->s2[k].kind != RES_STORED && o->s2[k].kind != RES_NOT_STORED) {
        fill.cmd = REQ_DELETE; /* L1 set failed: never leave it stale */
        send_key(o, &o->l1, &fill, NULL, now);
    }
}

typedef void (*phase_fn)(struct orca *o, struct req_batch *b, size_t k,
                         uint64_t now);

static enum status
scratch_reserve(struct orca *o, size_t n)
{
    struct response *p;

    if (n <= o->nscratch) {
        return ST_OK;
    }
    if ((p = realloc(o->s1, n * sizeof(*p))) == NULL) {
        return ST_NOMEM;
    }
    o->s1 = p;
    if ((p = realloc(o->s2, n * sizeof(*p))) == NULL) {
        return ST_NOMEM;
    }
    o->s2 = p;
    o->nscratch = n;
    return ST_OK;
}

/* The three phases over [from, to), whose keys are all different. */
static void
run_layered(struct orca *o, struct req_batch *b, size_t from, size_t to)
{
    static const phase_fn phases[] = {phase1, phase2, phase3};

    memset(o->s1 + from, 0, (to - from) * sizeof(*o->s1));
    memset(o->s2 + from, 0, (to - from) * sizeof(*o->s2));
    lock_keys(o, b, from, to);
    for (size_t p = 0; p < NELEMS(phases); p++) {
        uint64_t now = util_now_ms();

        for (size_t k = from; k < to; k++) {
            if (b->reqs[k].key != NULL && b->reqs[k].err == RES_NONE) {
                phases[p](o, b, k, now);
            }
        }
        run_queued(o, SIZE_MAX);
    }
    unlock_keys(o);
}

/* L1's hits become the client's answers once the batch has run: a later
 * run or barrier of the batch may move L1's read buffers, and only the
 * handlers' own slots (s1) are re-pointed when they move, not copies. */
static void
take_l1_hits(struct orca *o, struct req_batch *b)
{
    if (o->mode == CFG_ORCA_L1ONLY || o->nscratch < b->n) {
        return;
    }
    for (size_t k = 0; k < b->n; k++) {
        if (b->reqs[k].err == RES_NONE && is_layered_read(&b->reqs[k]) &&
            o->s1[k].kind == RES_VALUE) {
            b->res[k] = o->s1[k];
        }
    }
}

/* Phases reorder requests across layers, so a key may appear once per
 * run: cut [from, to) where a key (by a 1024-bit filter) repeats. */
static void
run_layered_cuts(struct orca *o, struct req_batch *b, size_t from, size_t to)
{
    uint64_t seen[16] = {0};
    size_t start = from;

    if (scratch_reserve(o, b->n) != ST_OK) {
        for (size_t k = from; k < to; k++) {
            res_set_fail(&b->res[k], FAIL_OUT_OF_MEMORY);
        }
        return;
    }
    for (size_t k = from; k < to; k++) {
        const struct request *r = &b->reqs[k];
        uint32_t bit;

        if (r->key == NULL || r->err != RES_NONE) {
            continue;
        }
        bit = stripe_of(r, 1024);
        if (seen[bit / 64] & (1ull << (bit % 64))) {
            run_layered(o, b, start, k);
            memset(seen, 0, sizeof(seen));
            start = k;
        }
        seen[bit / 64] |= 1ull << (bit % 64);
    }
    run_layered(o, b, start, to);
}

static void
run_segment(struct orca *o, struct req_batch *b, size_t from, size_t to)
{
    uint64_t now = util_now_ms();
    bool layered = o->mode != CFG_ORCA_L1ONLY;

    for (size_t k = from; k < to; k++) {
        const struct request *req = &b->reqs[k];

        if (!answer_locally(o, req, &b->res[k]) && !layered) {
            send_key(o, &o->l1, req, &b->res[k], now);
        }
    }
    if (layered) {
        run_layered_cuts(o, b, from, to);
    } else {
        run_queued(o, o->limit);
    }
}

/* Append "STAT name value\r\n" lines of blocks summed by name. */
static enum status stats_sum(struct orca *o, struct response *res);

/* "stats proxy": riven's own counters, memcached style. */
static bool
stats_proxy(struct orca *o, const struct request *req, struct response *res)
{
    if (req->cmd != REQ_STATS || req->nargs != 5 ||
        memcmp(req->args, "proxy", 5) != 0) {
        return false;
    }
    if (metrics_render_stats(&o->agg) != ST_OK) {
        res_set_fail(res, FAIL_OUT_OF_MEMORY);
        return true;
    }
    res->kind = RES_RAW;
    res->val = o->agg.pos;
    res->nval = buf_len(&o->agg);
    return true;
}

/* Send req to every server of ly; answers land in ly->each. */
static void
send_all(struct orca *o, struct layer *ly, const struct request *req)
{
    for (size_t i = 0; i < ly->nh; i++) {
        memset(&ly->each[i], 0, sizeof(ly->each[i]));
        send_at(o, ly, i, req, &ly->each[i], util_now_ms());
    }
}

/* The first error among ly's answers, or NULL. */
static const struct response *
first_error(const struct layer *ly, size_t *ok)
{
    const struct response *err = NULL;

    for (size_t i = 0; i < ly->nh; i++) {
        enum res_kind kind = ly->each[i].kind;

        if (kind == RES_OK || kind == RES_RAW) {
            (*ok)++;
        } else if (err == NULL) {
            err = &ly->each[i];
        }
    }
    return err;
}

/* flush_all (every server of every layer) or stats (the l1 pool): one
 * combined answer. */
static void
run_barrier(struct orca *o, const struct request *req, struct response *res)
{
    const struct response *err, *err2 = NULL;
    size_t ok = 0, ok2 = 0;

    if (stats_proxy(o, req, res)) {
        return;
    }
    send_all(o, &o->l1, req);
    if (req->cmd == REQ_FLUSH_ALL) {
        send_all(o, &o->l2, req);
    }
    run_queued(o, SIZE_MAX);
    err = first_error(&o->l1, &ok);
    if (req->cmd == REQ_FLUSH_ALL) {
        err2 = first_error(&o->l2, &ok2);
        *res = err2 ? *err2 : err ? *err : o->l1.each[0];
        return;
    }
    if (o->l1.nh == 1 || ok == 0) {
        *res = err ? *err : o->l1.each[0];
        return;
    }
    if (stats_sum(o, res) != ST_OK) {
        res_set_fail(res, FAIL_OUT_OF_MEMORY);
    }
}

static bool
is_barrier(const struct request *req)
{
    return req->err == RES_NONE &&
           (req->cmd == REQ_FLUSH_ALL || req->cmd == REQ_STATS);
}

static bool
layer_busy(const struct layer *ly)
{
    for (size_t i = 0; i < ly->nh; i++) {
        if (ly->h[i] != NULL && handler_pending(ly->h[i])) {
            return true;
        }
    }
    return false;
}

/* How many leading responses of the batch are final: those before the
 * first that a handler has still to read, and never past o->next. */
static size_t
final_prefix(const struct orca *o)
{
    const struct response *w = first_waiting(o, NULL);

    return w != NULL ? MIN(o->next, (size_t)(w - o->b->res)) : o->next;
}

/* Run segments and barriers from o->next until the batch is done or a
 * segment's handlers pause with replies held for the client. */
static size_t
run_from(struct orca *o)
{
    struct req_batch *b = o->b;

    while (o->next < b->n) {
        size_t k = o->next, to = k;

        if (is_barrier(&b->reqs[k])) {
            run_barrier(o, &b->reqs[k], &b->res[k]);
            o->next = k + 1;
            continue;
        }
        while (to < b->n && !is_barrier(&b->reqs[to])) {
            to++;
        }
        o->next = to;
        run_segment(o, b, k, to);
        if (layer_busy(&o->l1) || layer_busy(&o->l2)) {
            break; /* paused: the client takes the replies held first */
        }
    }
    if (o->next == b->n) {
        take_l1_hits(o, b);
    }
    return final_prefix(o);
}

size_t
orca_execute(struct orca *o, struct req_batch *b, size_t limit)
{
    o->b = b;
    o->next = 0;
    /* each server's share; half of it, as a read buffer doubles */
    o->limit = MAX(limit / (2 * MAX(o->l1.nh, 1)), 1);
    if (o->mode != CFG_ORCA_L1ONLY) {
        o->limit = SIZE_MAX; /* the layered phases do not pause */
    }
    return run_from(o);
}

bool
orca_busy(const struct orca *o)
{
    return o->b != NULL &&
           (o->next < o->b->n || layer_busy(&o->l1) || layer_busy(&o->l2));
}

size_t
orca_continue(struct orca *o, size_t written)
{
    struct layer *ly = &o->l1; /* only l1only segments pause */
    const struct response *res = o->b->res;
    const struct handler *fw = NULL;

    for (size_t i = 0; i < ly->nh; i++) {
        if (ly->h[i] != NULL) {
            handler_release(ly->h[i], res + written, res + o->b->n);
        }
    }
    (void)first_waiting(o, &fw);
    for (size_t i = 0; i < ly->nh; i++) {
        if (ly->h[i] != NULL && handler_pending(ly->h[i])) {
            handler_recv(ly->h[i], o->limit, fw == NULL || ly->h[i] == fw);
        }
    }
    report(ly, util_now_ms());
    if (layer_busy(ly)) {
        return final_prefix(o);
    }
    return run_from(o);
}

static void
layer_done(struct layer *ly)
{
    for (size_t i = 0; i < ly->nh; i++) {
        if (ly->h[i] != NULL) {
            handler_done(ly->h[i]);
        }
    }
}

void
orca_done(struct orca *o)
{
    o->b = NULL;
    layer_done(&o->l1);
    layer_done(&o->l2);
    o->agg.pos = o->agg.last = o->agg.start;
    buf_shrink(&o->agg);
}

static size_t
layer_sockets(const struct layer *ly)
{
    size_t n = 0;

    for (size_t i = 0; i < ly->nh; i++) {
        n += ly->h[i] != NULL && handler_connected(ly->h[i]);
    }
    return n;
}

size_t
orca_sockets(const struct orca *o)
{
    return layer_sockets(&o->l1) + layer_sockets(&o->l2);
}

static void
layer_close(struct layer *ly)
{
    for (size_t i = 0; i < ly->nh; i++) {
        if (ly->h[i] != NULL) {
            handler_close(ly->h[i]);
        }
    }
}

void
orca_close_sockets(struct orca *o)
{
    layer_close(&o->l1);
    layer_close(&o->l2);
}

/* ---- stats over a pool ---- */

struct stat_ent {
    const char *name; /* ref: a reply block */
    size_t nname;
    const char *val; /* ref: first server's text */
    size_t nval;
    uint64_t sum; /* integer sum */
    double fsum;  /* decimal sum ("1.234") */
    int kind;     /* 0 text, 1 integer, 2 decimal */
};

static int
value_kind(const char *v, size_t n)
{
    size_t dots = 0;

    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i] == '.') {
            dots++;
        } else if (v[i] < '0' || v[i] > '9') {
            return 0;
        }
    }
    return dots == 0 ? 1 : dots == 1 ? 2 : 0;
}

static void
stat_add(struct stat_ent *e, const char *v, size_t n)
{
    int kind = value_kind(v, n);
    uint64_t u;

    if (kind != e->kind) {
        return;
    }
    if (kind == 1 && util_parse_u64(v, n, &u)) {
        e->sum += u;
    } else if (kind == 2) {
        e->fsum += strtod(v, NULL);
    }
}

/* Fold one "STAT name value" line into ents. */
static enum status
stat_line(struct stat_ent **ents, size_t *n, size_t *cap, const char *line,
          size_t len)
{
    const char *name = line + 5, *sp, *val;
    size_t nname, nval;

    sp = memchr(name, ' ', len - 5);
    if (sp == NULL) {
        return ST_OK;
    }
    nname = (size_t)(sp - name);
    val = sp + 1;
    nval = len - 5 - nname - 1;
    for (size_t i = 0; i < *n; i++) {
        if ((*ents)[i].nname == nname &&
            memcmp((*ents)[i].name, name, nname) == 0) {
            stat_add(&(*ents)[i], val, nval);
            return ST_OK;
        }
    }
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        struct stat_ent *p = realloc(*ents, c * sizeof(*p));

        if (p == NULL) {
            return ST_NOMEM;
        }
        *ents = p;
        *cap = c;
    }
    struct stat_ent *e = &(*ents)[(*n)++];
    memset(e, 0, sizeof(*e));
    e->name = name;
    e->nname = nname;
    e->val = val;
    e->nval = nval;
    e->kind = value_kind(val, nval);
    stat_add(e, val, nval);
    return ST_OK;
}

static enum status
stats_render(struct buf *out, const struct stat_ent *ents, size_t n)
{
    char num[64];

    for (size_t i = 0; i < n; i++) {
        const struct stat_ent *e = &ents[i];
        size_t len = 0;

        if (buf_append(out, "STAT ", 5) != ST_OK ||
            buf_append(out, e->name, e->nname) != ST_OK ||
            buf_append(out, " ", 1) != ST_OK) {
            return ST_NOMEM;
        }
        if (e->kind == 1) {
            len = util_u64_str(num, e->sum);
        } else if (e->kind == 2) {
            len = (size_t)snprintf(num, sizeof(num), "%.6f", e->fsum);
        }
        if ((e->kind ? buf_append(out, num, len)
                     : buf_append(out, e->val, e->nval)) != ST_OK ||
            buf_append(out, "\r\n", 2) != ST_OK) {
            return ST_NOMEM;
        }
    }
    return buf_append(out, "END\r\n", 5);
}

static enum status
stats_sum(struct orca *o, struct response *res)
{
    struct stat_ent *ents = NULL;
    size_t n = 0, cap = 0;
    enum status st = ST_OK;

    for (size_t i = 0; i < o->l1.nh && st == ST_OK; i++) {
        const char *p = o->l1.each[i].val, *end = p + o->l1.each[i].nval;

        if (o->l1.each[i].kind != RES_RAW) {
            continue;
        }
        while (p < end && st == ST_OK) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

            if (len > 0 && p[len - 1] == '\r') {
                len--;
            }
            if (len > 5 && memcmp(p, "STAT ", 5) == 0) {
                st = stat_line(&ents, &n, &cap, p, len);
            }
            p = nl ? nl + 1 : end;
        }
    }
    if (st == ST_OK && n == 0) {
        /* Not a STAT listing (e.g. "RESET"): the first answer speaks. */
        for (size_t i = 0; i < o->l1.nh; i++) {
            if (o->l1.each[i].kind == RES_RAW) {
                *res = o->l1.each[i];
                break;
            }
        }
        free(ents);
        return ST_OK;
    }
    if (st == ST_OK) {
        st = stats_render(&o->agg, ents, n);
    }
    free(ents);
    if (st == ST_OK) {
        res->kind = RES_RAW;
        res->val = o->agg.pos;
        res->nval = buf_len(&o->agg);
    }
    return st;
}
