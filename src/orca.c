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

#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "buf.h"
#include "chunked.h"
#include "handler.h"
#include "log.h"
#include "metrics.h"
#include "shadow.h"

/* One pool as this connection sees it. */
struct layer {
    const struct route_pool *env; /* ref: owned with the snapshot */
    struct handler **h;           /* per server, created on first use */
    struct response *each;        /* per server, for barrier commands */
    bool *probe;                  /* per server: this orca won its probe */
    struct shadow **sh;           /* per server, copies nobody waits on */
    size_t nh;
};

#define L1(o) (&(o)->ly[0])
#define L2(o) (&(o)->ly[1])

/* orca_prefetch asks for the first servers of a layer only: a get hashes to
 * one of them, and a pool's tail would cost more lines than it saves */
#define ORCA_PREFETCH_SERVERS 4

struct orca {
    const struct orca_env *env; /* ref: owned with the snapshot */
    enum cfg_orca mode;
    struct layer *ly; /* l1l2 orcas: ly[0] L1, ly[1] L2 (nh 0 in l1only);
                         routes: one per named pool */
    size_t nly;
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
    bool routed;         /* routes: the requests walk env->routes */
    struct job *jobs;    /* routes: each request's walk */
    size_t njobs;
    struct ablock *arena_head; /* routes: frames and pools' answers */
    struct ablock *arena;      /* the block in use */
    bool watching;             /* routes: a request waits on a shadow */
    struct pollfd *pfds;       /* routes: for waiting on shadows */
    size_t npfds;
    struct cjob *cj; /* chunked pools: the batch's jobs */
    size_t ncj;
    size_t capcj;
};

/* A command on a chunked pool, and the server of its key. */
struct cjob {
    struct chunked *j;
    struct layer *ly;
    size_t idx;
    bool done;
};

static enum status
layer_init(struct layer *ly, const struct route_pool *env)
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
    for (size_t i = 0; ly->sh != NULL && i < ly->nh; i++) {
        shadow_destroy(ly->sh[i]);
    }
    free(ly->sh);
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

        for (size_t j = 0; j < prev->nh && ly->h[i] == NULL; j++) {
            if (prev->h[j] == NULL ||
                strcmp(prev->env->pool->servers[j].addr.name, s->addr.name) !=
                    0) {
                continue;
            }
            ly->h[i] = prev->h[j];
            prev->h[j] = NULL;
            handler_rebind(ly->h[i], &s->addr, ly->env->tls, ly->env->mbase + i,
                           cfg->connect_timeout_ms, cfg->request_timeout_ms);
            if (handler_set_batch(ly->h[i], ly->env->batch, i) != ST_OK) {
                handler_destroy(ly->h[i]); /* made again on first use */
                ly->h[i] = NULL;
            }
            break;
        }
    }
}

static void route_done(struct orca *o);
static void route_free(struct orca *o);
static void cj_done(struct orca *o);
static bool orca_layers_busy(const struct orca *o);
static bool is_barrier(const struct request *req);

struct orca *
orca_create(const struct orca_env *env, enum cfg_orca mode, struct orca *prev)
{
    struct orca *o = calloc(1, sizeof(*o));

    if (o == NULL) {
        return NULL;
    }
    o->env = env;
    o->mode = mode;
    o->routed = env->npools > 0;
    buf_init(&o->agg, 1024);
    o->nly = o->routed ? env->npools : 2;
    o->ly = calloc(o->nly, sizeof(*o->ly));
    if (o->ly == NULL) {
        free(o);
        return NULL;
    }
    for (size_t l = 0; l < o->nly; l++) {
        const struct route_pool *pe = o->routed                 ? &env->pools[l]
                                      : l == 0                  ? &env->l1
                                      : mode == CFG_ORCA_L1ONLY ? NULL
                                                                : &env->l2;

        if (layer_init(&o->ly[l], pe) != ST_OK) {
            orca_destroy(o);
            return NULL;
        }
    }
    /* sockets to servers still in some pool move over, whichever */
    for (size_t l = 0; prev != NULL && l < o->nly; l++) {
        for (size_t m = 0; m < prev->nly; m++) {
            adopt(&o->ly[l], &prev->ly[m], env->cfg);
        }
    }
    return o;
}

void
orca_destroy(struct orca *o)
{
    if (o == NULL) {
        return;
    }
    for (size_t l = 0; o->ly != NULL && l < o->nly; l++) {
        layer_free(&o->ly[l]);
    }
    free(o->ly);
    route_free(o);
    cj_done(o);
    free(o->cj);
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
            &ly->env->pool->servers[i].addr, ly->env->tls, ly->env->mbase + i,
            o->env->cfg->connect_timeout_ms, o->env->cfg->request_timeout_ms);
        if (ly->h[i] != NULL && ly->env->batch != NULL &&
            handler_set_batch(ly->h[i], ly->env->batch, i) != ST_OK) {
            handler_destroy(ly->h[i]);
            ly->h[i] = NULL;
        }
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

/* The key's bytes: decoded when the client sent it in base64. */
static void
key_bytes(const struct request *req, char *dec, size_t declen, const char **key,
          size_t *nkey)
{
    *key = req->key;
    *nkey = req->nkey;
    if ((req->rflags & REQ_F_B64KEY) &&
        util_b64_decode(req->key, req->nkey, dec, declen, nkey)) {
        *key = dec;
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
    const char *key;
    size_t nkey, idx;

    if (ly->nh == 1) {
        return 0; /* ejected or not, the only one: no hash to compute */
    }
    key_bytes(req, dec, sizeof(dec), &key, &nkey); /* as clients place */
    route_hash_part(ly->env->pool, &key, &nkey);
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

static void chunked_send(struct orca *o, struct layer *ly,
                         const struct request *req, struct response *res,
                         uint64_t now);

/* Send req to the server of ly that owns its key; on a chunked pool, as
 * a job of rounds (chunked.h). */
static void
send_key(struct orca *o, struct layer *ly, const struct request *req,
         struct response *res, uint64_t now)
{
    if (ly->env->pool->chunk_size > 0 && chunked_takes(req)) {
        chunked_send(o, ly, req, res, now);
        return;
    }
    if (ly->env->pool->chunk_size > 0 &&
        (req->cmd == REQ_DELETE || req->cmd == REQ_MD)) {
        metrics_chunked_op(MCHUNK_DELETE);
    }
    send_at(o, ly, route(ly, req, now), req, res, now);
}

/* ---- chunked pools ---- */

struct cj_ctx {
    struct orca *o;
    struct cjob *e;
    uint64_t now;
    bool first;   /* the round's first request: it asks health */
    bool refused; /* ...and the server is ejected */
};

/* chunked_send_fn: a job's request to the server of its key. The round's
 * first asks health (and may carry the probe); when the server is
 * ejected, the rest fail as it did. */
static void
cj_queue(void *arg, const struct request *req, struct response *res)
{
    struct cj_ctx *c = arg;

    if (c->first) {
        c->first = false;
        send_at(c->o, c->e->ly, c->e->idx, req, res, c->now);
        c->refused = res->kind == RES_SERVER_ERROR &&
                     res->fail == FAIL_BACKEND_UNAVAILABLE;
    } else if (c->refused) {
        res_set_fail(res, FAIL_BACKEND_UNAVAILABLE);
    } else {
        queue_on(c->o, c->e->ly, c->e->idx, req, res);
    }
}

/* Send e's rounds while their answers are in (a round failed at once
 * needs no I/O); true if a round went out. */
static bool
cj_pump(struct orca *o, struct cjob *e, uint64_t now)
{
    struct cj_ctx c = {.o = o, .e = e, .now = now};
    bool sent = false;

    while (!e->done && chunked_ready(e->j)) {
        c.first = true;
        c.refused = false;
        if (!chunked_round(e->j, cj_queue, &c)) {
            e->done = true;
        } else {
            sent = true;
        }
    }
    return sent;
}

static void
chunked_send(struct orca *o, struct layer *ly, const struct request *req,
             struct response *res, uint64_t now)
{
    struct cjob *e;

    if (o->ncj == o->capcj) {
        size_t cap = o->capcj ? o->capcj * 2 : 16;
        struct cjob *p = realloc(o->cj, cap * sizeof(*p));

        if (p == NULL) {
            if (res != NULL) {
                res_set_fail(res, FAIL_OUT_OF_MEMORY);
            }
            return;
        }
        o->cj = p;
        o->capcj = cap;
    }
    e = &o->cj[o->ncj];
    e->j = chunked_start(req, res, ly->env->pool->chunk_size);
    if (e->j == NULL) {
        if (res != NULL) {
            res_set_fail(res, FAIL_OUT_OF_MEMORY);
        }
        return;
    }
    o->ncj++;
    e->ly = ly;
    e->idx = route(ly, req, now);
    e->done = false;
    (void)cj_pump(o, e, now);
}

/* After a round of I/O: the next rounds of the jobs whose answers are
 * in; true if one went out. */
static bool
cj_advance(struct orca *o)
{
    uint64_t now = util_now_ms();
    bool sent = false;

    for (size_t i = 0; i < o->ncj; i++) {
        if (!o->cj[i].done) {
            sent |= cj_pump(o, &o->cj[i], now);
        }
    }
    return sent;
}

static void
cj_done(struct orca *o)
{
    for (size_t i = 0; i < o->ncj; i++) {
        chunked_free(o->cj[i].j);
    }
    o->ncj = 0;
    if (o->capcj > 64) {
        free(o->cj);
        o->cj = NULL;
        o->capcj = 0;
    }
}

/* Tell the shared health state how each server's exchange went. A probe
 * this orca won always ends here: one that never reached its server (no
 * descriptor, the connect gate, no memory: outcome 0) counts as failed,
 * or the server would stay ejected with nobody probing it. The clock is
 * read only for a failure: a success, every request's case, needs none. */
static void
report(struct layer *ly)
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
            health_failure(ly->env->health, i, util_now_ms());
        } else if (ly->probe[i]) {
            health_probe_failed(ly->env->health, i, util_now_ms());
        }
        ly->probe[i] = false;
    }
}

/* The batch's first response a handler has still to read, and that
 * handler (*hp, when hp is not NULL); NULL when none is waited for. */
static const struct response *
first_waiting(const struct orca *o, const struct handler **hp)
{
    const struct response *lo = o->b->res, *hi = lo + o->b->n, *min = NULL;

    for (size_t l = 0; l < o->nly; l++) {
        const struct layer *ly = &o->ly[l];

        for (size_t i = 0; i < ly->nh; i++) {
            const struct response *w =
                ly->h[i] ? handler_waiting(ly->h[i]) : NULL;

            if (w == NULL || (uintptr_t)w < (uintptr_t)lo ||
                (uintptr_t)w >= (uintptr_t)hi ||
                (min != NULL && (uintptr_t)w >= (uintptr_t)min)) {
                continue; /* not the batch's, or not the first */
            }
            min = w;
            if (hp != NULL) {
                *hp = ly->h[i];
            }
        }
    }
    return min;
}

/* One plain pool: l1only, no routes, no chunks. */
static bool
plain_l1(const struct orca *o)
{
    return o->mode == CFG_ORCA_L1ONLY && !o->routed &&
           L1(o)->env->pool->chunk_size == 0;
}

/* Send every handler's queued requests (first step of run_once). A
 * plain pool alone (no L2, routes or chunks) queues no value but the
 * client's, which stays in its read buffer until the replies are in:
 * a batched handler's queue is held for the I/O thread, not copied. */
static void
flush_all(struct orca *o)
{
    bool held = plain_l1(o);

    for (size_t l = 0; l < o->nly; l++) {
        struct layer *ly = &o->ly[l];

        for (size_t i = 0; i < ly->nh; i++) {
            if (ly->h[i] != NULL && handler_pending(ly->h[i])) {
                handler_flush(ly->h[i], held);
            }
        }
    }
}

/* Write every server's share, then read every server's replies, each
 * handler pausing before it holds limit bytes of them (but the one the
 * client waits on first). */
static void
run_once(struct orca *o, size_t limit)
{
    const struct handler *fw = NULL;

    flush_all(o);
    if (limit < SIZE_MAX) {
        (void)first_waiting(o, &fw);
    }
    for (size_t l = 0; l < o->nly; l++) {
        struct layer *ly = &o->ly[l];

        for (size_t i = 0; i < ly->nh; i++) {
            if (ly->h[i] != NULL && handler_pending(ly->h[i])) {
                handler_recv(ly->h[i], limit, fw == NULL || ly->h[i] == fw);
            }
        }
    }
    for (size_t l = 0; l < o->nly; l++) {
        report(&o->ly[l]);
    }
}

/* run_once, again while chunked jobs send further rounds. */
static void
run_queued(struct orca *o, size_t limit)
{
    do {
        run_once(o, limit);
    } while (o->ncj > 0 && cj_advance(o));
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

    if (o->routed) {
        return; /* run_routed sends it down the key's route */
    }
    send_key(o, L1(o), &del, NULL, now);
    if (L2(o)->nh > 0) {
        send_key(o, L2(o), &del, NULL, now);
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
        send_key(o, L1(o), req, &o->s1[k], now);
    } else {
        send_key(o, L2(o), req, &b->res[k], now);
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

/* The mirror of req on L1 after L2 answered res (mirror_cmd); false when
 * L1 is left alone. */
static bool
mirror_request(const struct orca *o, const struct request *req,
               const struct response *res, struct request *r2)
{
    if (res->kind == RES_SERVER_ERROR && req->cmd == REQ_SET) {
        return false; /* L2 failed: the client hears it, L1 is left alone */
    }
    *r2 = *req;
    r2->cas = 0; /* a mirror never compares: it must not fail on L1's CAS */
    r2->cmd = mirror_cmd(o, req, res);
    if (r2->cmd == REQ_NONE || r2->key == NULL ||
        (req->proto == PROTO_META && r2->cmd != REQ_DELETE)) {
        return false;
    }
    r2->rflags &= REQ_F_B64KEY;
    r2->proto = PROTO_TEXT;
    return true;
}

/* The add that fills a cache (L1, warm_up's cold) with the hit of the
 * layer behind it: its flags and remaining TTL, or gat's new TTL (one
 * over 30 days is sent as a Unix time, as memcached reads it). */
static void
fill_request(const struct request *req, const struct response *hit,
             struct request *fill)
{
    memset(fill, 0, sizeof(*fill));
    fill->cmd = REQ_ADD;
    fill->rflags = req->rflags & REQ_F_B64KEY;
    fill->key = req->key;
    fill->nkey = req->nkey;
    fill->flags = hit->flags;
    fill->exptime = req->cmd == REQ_GAT ? req->exptime
                    : hit->ttl < 0      ? 0
                                        : hit->ttl;
    if (fill->exptime > REALTIME_MAXDELTA) {
        fill->exptime += (int64_t)time(NULL);
    }
    fill->val = hit->val;
    fill->nval = hit->nval;
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
                send_key(o, L2(o), &r2, &o->s2[k], now);
            }
            return;
        }
        metrics_inc(M_L1_MISSES);
        r2.rflags |= REQ_F_RET_TTL;
        send_key(o, L2(o), &r2, res, now);
        return;
    }
    if (res->kind == RES_SERVER_ERROR) {
        metrics_inc(M_L2_ERRORS);
    }
    if (mirror_request(o, req, res, &r2)) {
        send_key(o, L1(o), &r2, &o->s2[k], now);
    }
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
        fill_request(req, res, &fill);
        metrics_inc(M_L1_FILLS);
        send_key(o, L1(o), &fill, NULL, now);
        return;
    }
    if (req->cmd == REQ_SET && res->kind == RES_STORED &&
        o->s2[k].kind != RES_STORED && o->s2[k].kind != RES_NOT_STORED) {
        fill.cmd = REQ_DELETE; /* L1 set failed: never leave it stale */
        send_key(o, L1(o), &fill, NULL, now);
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

typedef void (*run_fn)(struct orca *o, struct req_batch *b, size_t from,
                       size_t to);

/* Phases and route rounds reorder requests across servers, so a key may
 * appear once per run: cut [from, to) where a key (by a 1024-bit filter)
 * repeats, and run each piece. */
static void
run_cuts(struct orca *o, struct req_batch *b, size_t from, size_t to,
         run_fn run)
{
    uint64_t seen[16] = {0};
    size_t start = from;

    if (to - from <= 1) {
        run(o, b, from, to); /* one request: nothing can repeat */
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
            run(o, b, start, k);
            memset(seen, 0, sizeof(seen));
            start = k;
        }
        seen[bit / 64] |= 1ull << (bit % 64);
    }
    run(o, b, start, to);
}

static void
run_layered_cuts(struct orca *o, struct req_batch *b, size_t from, size_t to)
{
    if (scratch_reserve(o, b->n) != ST_OK) {
        for (size_t k = from; k < to; k++) {
            res_set_fail(&b->res[k], FAIL_OUT_OF_MEMORY);
        }
        return;
    }
    run_cuts(o, b, from, to, run_layered);
}

/* ---- routes ---- */

/*
 * With routes, a segment runs in rounds. In each round every request
 * still unanswered takes one step down its route (route.h): a pool
 * queues the request on the server of the key; a rule steps its children
 * and decides from their answers. Then every server is written, and read,
 * before the next round. Most requests end in one round; a failover, an
 * all_sync read failing over or a warm_up miss take one more each time
 * they look elsewhere.
 *
 * A frame is a node as one request walks it; frames and the answers of
 * pools live in an arena that never moves until orca_done, because a
 * handler keeps re-pointing the answers it decoded while its read buffer
 * grows. The client's answers are copied from them after the last round.
 * Copies sent to a shadow go out on sockets nobody waits on (shadow.h).
 */

struct frame {
    const struct cfg_route *node; /* ref: the snapshot's config */
    struct frame *kid;            /* the children's frames, or NULL */
    struct response *slot;        /* a pool's answer (arena) */
    const struct response *res;   /* the node's answer, once done */
    struct shadow *sh;            /* all_fastest: the child's socket */
    struct shadow_watch *w;       /* all_fastest: its answer (arena) */
    uint32_t i;                   /* failover: the child asked */
    uint8_t state;                /* STEP_NEW, STEP_SENT, STEP_DONE */
    uint8_t phase;                /* warm_up: WARM_COLD, ... */
};

enum { STEP_NEW = 0, STEP_SENT, STEP_DONE };
enum { WARM_COLD = 0, WARM_WARM, WARM_FILL };

struct job {
    struct frame root;
    const struct request *req; /* the batch's, or own */
    struct request own;        /* a too-large set's delete */
    size_t ridx;               /* the routes entry */
    bool quiet;                /* nobody takes the answer */
};

#define ARENA_BLOCK 16384

struct ablock {
    struct ablock *next;
    size_t used;
    max_align_t data[ARENA_BLOCK / sizeof(max_align_t)];
};

static const struct response nomem_res = {.kind = RES_SERVER_ERROR,
                                          .fail = FAIL_OUT_OF_MEMORY,
                                          .msg = MSG_OUT_OF_MEMORY,
                                          .nmsg =
                                              sizeof(MSG_OUT_OF_MEMORY) - 1};

/* n zeroed bytes that stay put until route_done, or NULL. */
static void *
arena_alloc(struct orca *o, size_t n)
{
    struct ablock *a = o->arena;
    void *p;

    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    if (n > sizeof(a->data)) {
        return NULL;
    }
    if (a == NULL || sizeof(a->data) - a->used < n) {
        if (a != NULL && a->next != NULL) {
            a = a->next; /* a block kept from an earlier batch */
            a->used = 0;
        } else {
            struct ablock *nb = malloc(sizeof(*nb));

            if (nb == NULL) {
                return NULL;
            }
            nb->next = NULL;
            nb->used = 0;
            if (a != NULL) {
                a->next = nb;
            } else {
                o->arena_head = nb;
            }
            a = nb;
        }
        o->arena = a;
    }
    p = (char *)a->data + a->used;
    a->used += n;
    memset(p, 0, n);
    return p;
}

static struct frame *
frames(struct orca *o, size_t n)
{
    return arena_alloc(o, n * sizeof(struct frame));
}

/* Commands whose exptime sets the item's TTL (meta ones carry it among
 * their flags, passed through: a ttl_max pool does not clamp them). */
static bool
sets_ttl(const struct request *req)
{
    switch (req->cmd) {
    case REQ_SET:
    case REQ_ADD:
    case REQ_REPLACE:
    case REQ_CAS:
    case REQ_TOUCH:
    case REQ_GAT:
    case REQ_GATS:
        return true;
    case REQ_INCR:
    case REQ_DECR:
        return (req->rflags & REQ_F_AUTOVIV) != 0;
    default:
        return false;
    }
}

static struct shadow *
shadow_at(struct orca *o, struct layer *ly, size_t i)
{
    if (ly->sh == NULL) {
        ly->sh = ly->nh > 0 ? calloc(ly->nh, sizeof(struct shadow *)) : NULL;
        if (ly->sh == NULL) {
            return NULL;
        }
    }
    if (ly->sh[i] == NULL) {
        ly->sh[i] = shadow_create(
            &ly->env->pool->servers[i].addr, ly->env->mbase + i,
            o->env->cfg->connect_timeout_ms, o->env->cfg->request_timeout_ms);
    }
    return ly->sh[i];
}

/* Send req down route n without waiting for any answer: what a shadow
 * copy does. Writes go where the route writes, reads where it reads
 * first. */
static void
detach(struct orca *o, const struct cfg_route *n, const struct request *req,
       size_t ridx, uint64_t now)
{
    switch (n->kind) {
    case CFG_ROUTE_POOL: {
        struct layer *ly = &o->ly[n->pool];
        struct request r = *req;
        struct shadow *sh;

        if (n->ttl_max > 0 && sets_ttl(req)) {
            r.exptime = route_clamp_ttl(req->exptime, n->ttl_max, time(NULL));
        }
        sh = shadow_at(o, ly, route(ly, req, now));
        if (sh == NULL || !shadow_send(sh, &r, (uint32_t)ridx)) {
            metrics_route_shadow(ridx, MSHADOW_DROPPED);
        }
        return;
    }
    case CFG_ROUTE_ALL_SYNC:
    case CFG_ROUTE_ALL_FASTEST:
        for (size_t i = 0; i < n->nchild; i++) {
            if (i == 0 || (route_is_write(req) && req->cmd != REQ_CAS)) {
                detach(o, &n->child[i], req, ridx, now);
            }
        }
        return;
    case CFG_ROUTE_SHADOW: {
        char dec[KEY_MAX_LENGTH + 8];
        const char *key;
        size_t nkey;

        detach(o, &n->child[0], req, ridx, now);
        key_bytes(req, dec, sizeof(dec), &key, &nkey);
        if (route_in_fraction(key, nkey, n->fraction)) {
            detach(o, &n->child[1], req, ridx, now);
        }
        return;
    }
    case CFG_ROUTE_WARM_UP:
        detach(o, &n->child[0], req, ridx, now);
        if (req->cmd == REQ_DELETE || req->cmd == REQ_MD) {
            detach(o, &n->child[1], req, ridx, now);
        }
        return;
    case CFG_ROUTE_L1L2: /* writes to L2; reads to L1 */
        detach(o, &n->child[route_is_write(req) ? 1 : 0], req, ridx, now);
        return;
    default: /* failover: its first child */
        detach(o, &n->child[0], req, ridx, now);
        return;
    }
}

static bool step(struct orca *o, struct job *j, struct frame *f,
                 const struct request *req, uint64_t now);

/* Step the children [0, n) of f side by side; true once all are done. */
static bool
step_all(struct orca *o, struct job *j, struct frame *f,
         const struct request *req, size_t n, uint64_t now)
{
    bool done = true;

    for (size_t i = 0; i < n; i++) {
        done &= step(o, j, &f->kid[i], req, now);
    }
    return done;
}

/* The worst of the first n children's answers: the first error, else
 * the first refusal, else the first child's. */
static const struct response *
worst(const struct frame *f, size_t n)
{
    const struct response *w = f->kid[0].res;

    for (size_t i = 1; i < n; i++) {
        if (route_severity(f->kid[i].res) > route_severity(w)) {
            w = f->kid[i].res;
        }
    }
    return w;
}

/* A failover looks at the next child: after riven's or the server's
 * SERVER_ERROR, or with miss after a miss of a plain read. */
static bool
fails_over(bool miss, const struct request *req, const struct response *res)
{
    return res->kind == RES_SERVER_ERROR || res->kind == RES_NONE ||
           (miss && res->kind == RES_MISS && route_is_plain_read(req));
}

/* Children in order, the next one while fails_over says so. */
static bool
step_failover(struct orca *o, struct job *j, struct frame *f,
              const struct request *req, bool miss, uint64_t now)
{
    const struct cfg_route *n = f->node;

    for (;;) {
        const struct frame *k = &f->kid[f->i];

        if (!step(o, j, &f->kid[f->i], req, now)) {
            return false;
        }
        if (f->i + 1 < n->nchild && fails_over(miss, req, k->res)) {
            metrics_route_failover(j->ridx);
            f->i++;
            continue;
        }
        f->res = k->res;
        return true;
    }
}

/* all_sync: writes to every child, the worst answer; gat and gats to
 * every child too, the first answering; gets, cas and other reads to the
 * first child, or with read: failover to the next while one errs or
 * misses. */
static bool
step_all_sync(struct orca *o, struct job *j, struct frame *f,
              const struct request *req, uint64_t now)
{
    const struct cfg_route *n = f->node;

    if (route_is_write(req) && req->cmd != REQ_CAS) {
        if (!step_all(o, j, f, req, n->nchild, now)) {
            return false;
        }
        f->res = worst(f, n->nchild);
        return true;
    }
    if (req->cmd == REQ_GAT || req->cmd == REQ_GATS) {
        /* a read that sets the TTL: every copy's TTL moves; the first
         * child answers (with read: failover, the first that has it) */
        if (!step_all(o, j, f, req, n->nchild, now)) {
            return false;
        }
        f->res = f->kid[0].res;
        for (size_t i = 0;
             n->read_failover && req->cmd == REQ_GAT && i < n->nchild; i++) {
            if (!fails_over(true, req, f->kid[i].res)) {
                f->res = f->kid[i].res;
                break;
            }
        }
        return true;
    }
    if (n->read_failover && !(req->rflags & REQ_F_RET_CAS) &&
        req->cmd != REQ_CAS) {
        return step_failover(o, j, f, req, true, now);
    }
    if (!step(o, j, &f->kid[0], req, now)) {
        return false;
    }
    f->res = f->kid[0].res;
    return true;
}

/* all_fastest: a write goes to every child (pools) on sockets nobody
 * else waits on, and the first success answers; the other answers are
 * still read and counted, never kept. Reads, gets and cas as all_sync's. */
static bool
step_all_fastest(struct orca *o, struct job *j, struct frame *f,
                 const struct request *req, uint64_t now)
{
    const struct cfg_route *n = f->node;
    const struct response *ok = NULL;
    bool all = true;

    if (!route_is_write(req) || req->cmd == REQ_CAS) {
        return step_all_sync(o, j, f, req, now);
    }
    if (f->phase == 0) {
        f->phase = 1;
        for (size_t i = 0; i < n->nchild; i++) {
            struct frame *k = &f->kid[i];
            struct layer *ly = &o->ly[k->node->pool];
            struct request r = *req;

            if (k->node->ttl_max > 0 && sets_ttl(req)) {
                r.exptime =
                    route_clamp_ttl(req->exptime, k->node->ttl_max, time(NULL));
            }
            k->w = arena_alloc(o, sizeof(*k->w));
            k->sh = k->w ? shadow_at(o, ly, route(ly, req, now)) : NULL;
            if (k->sh != NULL) {
                (void)shadow_send_watched(k->sh, &r, (uint32_t)j->ridx, k->w);
            } else if (k->w != NULL) {
                res_set_fail(&k->w->res, FAIL_OUT_OF_MEMORY);
                k->w->done = true;
            }
        }
    }
    for (size_t i = 0; i < n->nchild; i++) {
        const struct frame *k = &f->kid[i];

        if (k->w != NULL && !k->w->done) {
            all = false;
        } else if (k->w != NULL && ok == NULL &&
                   route_severity(&k->w->res) == 0) {
            ok = &k->w->res;
        }
    }
    if (ok == NULL && !all) {
        o->watching = true;
        return false;
    }
    for (size_t i = 0; i < n->nchild; i++) {
        const struct frame *k = &f->kid[i];

        if (k->sh != NULL && k->w != NULL && !k->w->done) {
            shadow_unwatch(k->sh, k->w); /* read and counted, not kept */
        }
    }
    f->res = ok ? ok : f->kid[0].w != NULL ? &f->kid[0].w->res : &nomem_res;
    return true;
}

/* warm_up: classic and binary gets read cold, then warm on a miss, and
 * fill cold with what warm had; deletes go to both; everything else to
 * cold. */
static bool
step_warm_up(struct orca *o, struct job *j, struct frame *f,
             const struct request *req, uint64_t now)
{
    struct request r2 = *req, fill;
    const struct response *hit;

    if (req->cmd == REQ_DELETE || req->cmd == REQ_MD) {
        if (!step_all(o, j, f, req, 2, now)) {
            return false;
        }
        /* an error is the error; else deleted if either had it */
        f->res = route_severity(f->kid[0].res) == 2     ? f->kid[0].res
                 : route_severity(f->kid[1].res) == 2   ? f->kid[1].res
                 : f->kid[0].res->kind == RES_NOT_FOUND ? f->kid[1].res
                                                        : f->kid[0].res;
        return true;
    }
    if (route_is_write(req) || req->proto == PROTO_META ||
        !route_is_plain_read(req)) {
        if (!step(o, j, &f->kid[0], req, now)) {
            return false;
        }
        f->res = f->kid[0].res;
        return true;
    }
    switch (f->phase) {
    case WARM_COLD:
        if (!step(o, j, &f->kid[0], req, now)) {
            return false;
        }
        if (f->kid[0].res->kind != RES_MISS) {
            f->res = f->kid[0].res;
            return true;
        }
        f->phase = WARM_WARM;
        /* fall through */
    case WARM_WARM:
        r2.rflags |= REQ_F_RET_TTL;
        if (!step(o, j, &f->kid[1], &r2, now)) {
            return false;
        }
        hit = f->kid[1].res;
        if (hit->kind != RES_VALUE || hit->ttl == 0) {
            f->res = hit->kind == RES_VALUE ? hit : f->kid[0].res;
            return true; /* a miss, an error or a value about to expire */
        }
        f->phase = WARM_FILL;
        metrics_route_warmup_fill(j->ridx);
        /* fall through */
    default:
        hit = f->kid[1].res;
        fill_request(req, hit, &fill);
        if (!step(o, j, &f->kid[2], &fill, now)) {
            return false;
        }
        f->res = hit;
        return true;
    }
}

enum {
    L12_L1 = 0, /* a read asks L1 */
    L12_TOUCH,  /* an L1 hit of gat: L2's TTL kept in step */
    L12_L2,     /* an L1 miss asks L2 */
    L12_FILL,   /* L2's hit added to L1 */
    L12_WRITE,  /* anything else goes to L2, the truth */
    L12_MIRROR, /* what L2 took, mirrored to L1 */
    L12_DROP,   /* an L1 copy the mirror could not set, deleted */
};

/* l1l2: the orca's L1/L2 phases (above) as a route whose layers are
 * routes. Frames: 0 L1's read, 1 L2, 2 L1's fill or mirror, 3 the drop. */
static bool
step_l1l2(struct orca *o, struct job *j, struct frame *f,
          const struct request *req, uint64_t now)
{
    struct request r2 = *req, fill;
    const struct response *res;

    if (f->phase == L12_L1 && !is_layered_read(req)) {
        f->phase = L12_WRITE;
    }
    switch (f->phase) {
    case L12_L1:
        if (!step(o, j, &f->kid[0], req, now)) {
            return false;
        }
        if (f->kid[0].res->kind != RES_VALUE) {
            metrics_inc(M_L1_MISSES);
            f->phase = L12_L2;
            return step_l1l2(o, j, f, req, now);
        }
        metrics_inc(M_L1_HITS);
        if (req->cmd != REQ_GAT) {
            f->res = f->kid[0].res;
            return true;
        }
        f->phase = L12_TOUCH;
        /* fall through */
    case L12_TOUCH:
        r2.cmd = REQ_TOUCH;
        r2.rflags &= REQ_F_B64KEY;
        r2.cas = 0;
        if (!step(o, j, &f->kid[1], &r2, now)) {
            return false;
        }
        f->res = f->kid[0].res;
        return true;
    case L12_L2:
        r2.cas = 0;
        r2.rflags |= REQ_F_RET_TTL;
        if (!step(o, j, &f->kid[1], &r2, now)) {
            return false;
        }
        res = f->res = f->kid[1].res;
        if (res->kind != RES_VALUE) {
            metrics_inc(res->kind == RES_MISS ? M_L2_MISSES : M_L2_ERRORS);
            return true;
        }
        metrics_inc(M_L2_HITS);
        if (res->ttl == 0) {
            return true; /* an expiring item is not filled */
        }
        metrics_inc(M_L1_FILLS);
        f->phase = L12_FILL;
        /* fall through */
    case L12_FILL:
        fill_request(req, f->kid[1].res, &fill);
        return step(o, j, &f->kid[2], &fill, now);
    case L12_WRITE:
        if (!step(o, j, &f->kid[1], req, now)) {
            return false;
        }
        res = f->res = f->kid[1].res;
        if (res->kind == RES_SERVER_ERROR) {
            metrics_inc(M_L2_ERRORS);
        }
        if (!mirror_request(o, req, res, &r2)) {
            return true;
        }
        f->phase = L12_MIRROR;
        /* fall through */
    case L12_MIRROR:
        (void)mirror_request(o, req, f->kid[1].res, &r2);
        if (!step(o, j, &f->kid[2], &r2, now)) {
            return false;
        }
        if (req->cmd != REQ_SET || f->kid[1].res->kind != RES_STORED ||
            f->kid[2].res->kind == RES_STORED ||
            f->kid[2].res->kind == RES_NOT_STORED) {
            return true;
        }
        f->phase = L12_DROP; /* L1 set failed: never leave it stale */
        /* fall through */
    default:
        r2.cmd = REQ_DELETE;
        r2.rflags &= REQ_F_B64KEY;
        r2.proto = PROTO_TEXT;
        return step(o, j, &f->kid[3], &r2, now);
    }
}

/* One step of f for req; true once f->res is final. */
static bool
step(struct orca *o, struct job *j, struct frame *f, const struct request *req,
     uint64_t now)
{
    const struct cfg_route *n = f->node;
    bool done = false;

    if (f->state == STEP_DONE) {
        return true;
    }
    if (n->kind == CFG_ROUTE_POOL) {
        if (f->state == STEP_SENT) {
            f->res = f->slot;
            f->state = STEP_DONE;
            return true;
        }
        if ((f->slot = arena_alloc(o, sizeof(*f->slot))) == NULL) {
            f->res = &nomem_res;
            f->state = STEP_DONE;
            return true;
        }
        if (n->ttl_max > 0 && sets_ttl(req)) {
            struct request r = *req;

            r.exptime = route_clamp_ttl(req->exptime, n->ttl_max, time(NULL));
            send_key(o, &o->ly[n->pool], &r, f->slot, now);
        } else {
            send_key(o, &o->ly[n->pool], req, f->slot, now);
        }
        f->state = STEP_SENT;
        return false;
    }
    if (f->state == STEP_NEW) {
        /* warm_up and l1l2 ask their first child again: the fill, the
         * mirror, the drop */
        static const uint8_t again[] = {0, 1, 0, 0};
        size_t nk = n->kind == CFG_ROUTE_WARM_UP ? 3
                    : n->kind == CFG_ROUTE_L1L2  ? 4
                                                 : n->nchild;

        if ((f->kid = frames(o, nk)) == NULL) {
            f->res = &nomem_res;
            f->state = STEP_DONE;
            return true;
        }
        for (size_t i = 0; i < nk; i++) {
            f->kid[i].node =
                &n->child[i < n->nchild && n->kind != CFG_ROUTE_L1L2
                              ? i
                              : again[i]];
        }
        f->state = STEP_SENT;
        if (n->kind == CFG_ROUTE_SHADOW) {
            char dec[KEY_MAX_LENGTH + 8];
            const char *key;
            size_t nkey;

            key_bytes(req, dec, sizeof(dec), &key, &nkey);
            if (route_in_fraction(key, nkey, n->fraction)) {
                detach(o, &n->child[1], req, j->ridx, now);
            }
        }
    }
    switch (n->kind) {
    case CFG_ROUTE_FAILOVER:
        done = step_failover(o, j, f, req, n->miss, now);
        break;
    case CFG_ROUTE_ALL_SYNC:
        done = step_all_sync(o, j, f, req, now);
        break;
    case CFG_ROUTE_ALL_FASTEST:
        done = step_all_fastest(o, j, f, req, now);
        break;
    case CFG_ROUTE_WARM_UP:
        done = step_warm_up(o, j, f, req, now);
        break;
    case CFG_ROUTE_L1L2:
        done = step_l1l2(o, j, f, req, now);
        break;
    default: /* shadow: the route serves; the copy went out above */
        if ((done = step(o, j, &f->kid[0], req, now))) {
            f->res = f->kid[0].res;
        }
        break;
    }
    if (done) {
        f->state = STEP_DONE;
    }
    return done;
}

static void
shadows_poll(struct orca *o)
{
    uint64_t now = util_now_ms();

    for (size_t l = 0; l < o->nly; l++) {
        for (size_t i = 0; o->ly[l].sh != NULL && i < o->ly[l].nh; i++) {
            if (o->ly[l].sh[i] != NULL) {
                shadow_poll(o->ly[l].sh[i], now);
            }
        }
    }
}

/* Wait until a shadow has something to read (or write), or the first of
 * their deadlines, then take what they have: for all_fastest, whose
 * answers come over shadows. */
static void
shadows_wait(struct orca *o)
{
    uint64_t now = util_now_ms(), until = UINT64_MAX;
    size_t n = 0, cap = 0;

    for (size_t l = 0; l < o->nly; l++) {
        cap += o->ly[l].sh != NULL ? o->ly[l].nh : 0;
    }
    if (cap > o->npfds) {
        struct pollfd *p = realloc(o->pfds, cap * sizeof(*p));

        if (p == NULL) {
            return; /* the deadlines still end every wait */
        }
        o->pfds = p;
        o->npfds = cap;
    }
    for (size_t l = 0; l < o->nly; l++) {
        for (size_t i = 0; o->ly[l].sh != NULL && i < o->ly[l].nh; i++) {
            const struct shadow *sh = o->ly[l].sh[i];

            if (sh == NULL || shadow_fd(sh) < 0 ||
                shadow_outstanding(sh) == 0) {
                continue;
            }
            o->pfds[n].fd = shadow_fd(sh);
            o->pfds[n].events =
                (short)(POLLIN | (shadow_want_write(sh) ? POLLOUT : 0));
            o->pfds[n++].revents = 0;
            until = MIN(until, shadow_deadline(sh));
        }
    }
    if (n > 0) {
        int ms = until == UINT64_MAX ? (int)o->env->cfg->request_timeout_ms
                 : until > now       ? (int)MIN(until - now, INT32_MAX)
                                     : 0;

        (void)poll(o->pfds, (nfds_t)n, ms);
    }
    shadows_poll(o);
}

uint64_t
orca_shadow_deadline(const struct orca *o)
{
    uint64_t until = UINT64_MAX;

    for (size_t l = 0; l < o->nly; l++) {
        for (size_t i = 0; o->ly[l].sh != NULL && i < o->ly[l].nh; i++) {
            if (o->ly[l].sh[i] != NULL) {
                until = MIN(until, shadow_deadline(o->ly[l].sh[i]));
            }
        }
    }
    return until;
}

void
orca_poll_shadows(struct orca *o)
{
    shadows_poll(o);
}

static enum status
jobs_reserve(struct orca *o, size_t n)
{
    struct job *p;

    if (n <= o->njobs) {
        return ST_OK;
    }
    if ((p = realloc(o->jobs, n * sizeof(*p))) == NULL) {
        return ST_NOMEM;
    }
    o->jobs = p;
    o->njobs = n;
    return ST_OK;
}

/* Start request k's job on its route; false if it needs none. */
static bool
job_start(struct orca *o, struct job *j, const struct request *req)
{
    char dec[KEY_MAX_LENGTH + 8];
    const char *key;
    size_t nkey;

    memset(j, 0, sizeof(*j));
    if (req->key == NULL) {
        return false;
    }
    if (req->err != RES_NONE) {
        if (!((req->cmd == REQ_SET || req->cmd == REQ_MS) &&
              (req->rflags & REQ_F_TOOLARGE))) {
            return false;
        }
        /* memcached drops the old item of a too-large set: so does riven,
         * wherever the key's route writes */
        j->own.cmd = REQ_DELETE;
        j->own.rflags = req->rflags & REQ_F_B64KEY;
        j->own.key = req->key;
        j->own.nkey = req->nkey;
        j->req = &j->own;
        j->quiet = true;
    } else {
        j->req = req;
    }
    key_bytes(req, dec, sizeof(dec), &key, &nkey);
    j->ridx = route_lookup(o->env->routes, key, nkey);
    j->root.node = &o->env->cfg->routes[j->ridx].route;
    if (!j->quiet) {
        metrics_route_request(j->ridx);
    }
    return true;
}

/* Run [from, to), whose keys are all different, in rounds until every
 * request has its answer; an l1l2 rule's keys stay locked throughout. */
static void
run_routed(struct orca *o, struct req_batch *b, size_t from, size_t to)
{
    bool busy = true;

    lock_keys(o, b, from, to);
    for (size_t k = from; k < to; k++) {
        struct job *j = &o->jobs[k];

        if (!job_start(o, j, &b->reqs[k])) {
            j->root.state = STEP_DONE; /* answered locally */
        }
    }
    while (busy) {
        uint64_t now = util_now_ms();

        busy = false;
        o->watching = false;
        for (size_t k = from; k < to; k++) {
            struct job *j = &o->jobs[k];

            busy |= !step(o, j, &j->root, j->req, now);
        }
        if (busy && orca_layers_busy(o)) {
            run_queued(o, SIZE_MAX);
            if (o->watching) {
                shadows_poll(o);
            }
        } else if (busy && o->watching) {
            shadows_wait(o);
        }
    }
    unlock_keys(o);
}

/* The answers become the client's once the batch has run: a later round
 * may move the pools' read buffers, and only the answers' own slots are
 * re-pointed when they move, not copies. */
static void
take_routed(struct orca *o, struct req_batch *b)
{
    for (size_t k = 0; o->routed && o->njobs >= b->n && k < b->n; k++) {
        const struct job *j = &o->jobs[k];

        if (!is_barrier(&b->reqs[k]) && j->req != NULL && !j->quiet) {
            b->res[k] = *j->root.res;
        }
    }
}

static void
run_routed_cuts(struct orca *o, struct req_batch *b, size_t from, size_t to)
{
    if (o->njobs < b->n) { /* orca_execute could not reserve them */
        for (size_t k = from; k < to; k++) {
            if (b->res[k].kind == RES_NONE) {
                res_set_fail(&b->res[k], FAIL_OUT_OF_MEMORY);
            }
        }
        return;
    }
    shadows_poll(o); /* what came since the last batch */
    run_cuts(o, b, from, to, run_routed);
}

static void
route_done(struct orca *o)
{
    for (struct ablock *a = o->arena_head; a != NULL; a = a->next) {
        a->used = 0;
    }
    o->arena = o->arena_head;
}

static void
route_free(struct orca *o)
{
    struct ablock *a = o->arena_head;

    while (a != NULL) {
        struct ablock *next = a->next;

        free(a);
        a = next;
    }
    free(o->jobs);
    free(o->pfds);
}

/* One pool, chunked: [from, to) (keys all different) under the key
 * locks, in rounds. */
static void
run_chunked(struct orca *o, struct req_batch *b, size_t from, size_t to)
{
    uint64_t now = util_now_ms();

    lock_keys(o, b, from, to);
    for (size_t k = from; k < to; k++) {
        if (b->res[k].kind == RES_NONE) { /* not answered locally */
            send_key(o, L1(o), &b->reqs[k], &b->res[k], now);
        }
    }
    run_queued(o, SIZE_MAX);
    unlock_keys(o);
}

static void
run_segment(struct orca *o, struct req_batch *b, size_t from, size_t to)
{
    uint64_t now = util_now_ms();
    bool layered = o->mode != CFG_ORCA_L1ONLY;
    bool chunked = !layered && !o->routed && L1(o)->env->pool->chunk_size > 0;

    for (size_t k = from; k < to; k++) {
        const struct request *req = &b->reqs[k];

        if (!answer_locally(o, req, &b->res[k]) && !layered && !o->routed &&
            !chunked) {
            send_key(o, L1(o), req, &b->res[k], now);
        }
    }
    if (o->routed) {
        run_routed_cuts(o, b, from, to);
    } else if (layered) {
        run_layered_cuts(o, b, from, to);
    } else if (chunked) {
        /* a key's rounds must not interleave with a later request's */
        run_cuts(o, b, from, to, run_chunked);
    } else {
        run_queued(o, o->limit);
    }
}

/* Append "STAT name value\r\n" lines of blocks summed by name. */
static enum status stats_sum(struct orca *o, struct response *res);
static size_t stats_layers(const struct orca *o);

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
    const struct response *err = NULL;
    size_t ok = 0, n = 0, nly = stats_layers(o);

    if (stats_proxy(o, req, res)) {
        return;
    }
    if (req->cmd == REQ_FLUSH_ALL) {
        nly = o->nly;
    }
    for (size_t l = 0; l < nly; l++) {
        send_all(o, &o->ly[l], req);
        n += o->ly[l].nh;
    }
    run_queued(o, SIZE_MAX);
    for (size_t l = nly; l > 0; l--) { /* L2's error before L1's */
        const struct response *e = first_error(&o->ly[l - 1], &ok);

        err = err != NULL ? err : e;
    }
    if (req->cmd == REQ_FLUSH_ALL || n == 1 || ok == 0) {
        *res = err ? *err : o->ly[0].each[0];
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

static bool
orca_layers_busy(const struct orca *o)
{
    for (size_t l = 0; l < o->nly; l++) {
        if (layer_busy(&o->ly[l])) {
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
        if (orca_layers_busy(o)) {
            break; /* paused: the client takes the replies held first */
        }
    }
    if (o->next == b->n) {
        take_l1_hits(o, b);
        take_routed(o, b);
    }
    return final_prefix(o);
}

size_t
orca_execute(struct orca *o, struct req_batch *b, size_t limit)
{
    o->b = b;
    o->next = 0;
    /* each server's share; half of it, as a read buffer doubles */
    o->limit = MAX(limit / (2 * MAX(L1(o)->nh, 1)), 1);
    if (o->mode != CFG_ORCA_L1ONLY || o->routed ||
        L1(o)->env->pool->chunk_size > 0 || L1(o)->env->batch != NULL) {
        o->limit = SIZE_MAX; /* the layered phases, routes, chunked rounds
                                and batched pools do not pause */
    }
    if (o->routed) {
        (void)jobs_reserve(o, b->n); /* short: the segments fail, ENOMEM */
    }
    return run_from(o);
}

/* Can b run as one group of batched waits: a batched l1only pool, no
 * route, no chunks, no barrier (one segment)? */
static bool
groupable(const struct orca *o, const struct req_batch *b)
{
    if (!plain_l1(o) || L1(o)->env->batch == NULL) {
        return false;
    }
    for (size_t k = 0; k < b->n; k++) {
        if (is_barrier(&b->reqs[k])) {
            return false;
        }
    }
    return true;
}

bool
orca_start(struct orca *o, struct req_batch *b)
{
    struct layer *ly = L1(o);
    uint64_t now;

    if (!groupable(o, b)) {
        return false;
    }
    now = util_now_ms();
    o->b = b;
    o->next = b->n;
    o->limit = SIZE_MAX;
    for (size_t k = 0; k < b->n; k++) {
        if (!answer_locally(o, &b->reqs[k], &b->res[k])) {
            send_key(o, ly, &b->reqs[k], &b->res[k], now);
        }
    }
    flush_all(o);
    return true;
}

bool
orca_arm(struct orca *o, struct batch_group *g)
{
    struct layer *ly = L1(o);

    for (size_t i = 0; i < ly->nh; i++) {
        if (ly->h[i] != NULL && handler_pending(ly->h[i]) &&
            !handler_armable(ly->h[i])) {
            return false; /* a TLS round waits to be sent: not a group */
        }
    }
    batch_group_begin(g);
    for (size_t i = 0; i < ly->nh; i++) {
        if (ly->h[i] != NULL && handler_pending(ly->h[i])) {
            (void)handler_arm(ly->h[i], g);
        }
    }
    return batch_group_end(g);
}

size_t
orca_finish(struct orca *o)
{
    struct layer *ly = L1(o);

    for (size_t i = 0; i < ly->nh; i++) {
        if (ly->h[i] != NULL && handler_pending(ly->h[i])) {
            handler_recv(ly->h[i], SIZE_MAX, true);
        }
    }
    report(ly);
    return final_prefix(o);
}

bool
orca_busy(const struct orca *o)
{
    return o->b != NULL && (o->next < o->b->n || orca_layers_busy(o));
}

size_t
orca_continue(struct orca *o, size_t written)
{
    struct layer *ly = L1(o); /* only l1only segments pause */
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
    report(ly);
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
    for (size_t l = 0; l < o->nly; l++) {
        layer_done(&o->ly[l]);
    }
    route_done(o);
    cj_done(o);
    o->agg.pos = o->agg.last = o->agg.start;
    buf_shrink(&o->agg);
}

void
orca_prefetch(const struct orca *o)
{
    util_prefetch(o, sizeof(*o));
    /* a routed orca has a layer per pool, of which a batch may use one:
     * asking for all of them would cost more than the misses it saves */
    for (size_t l = 0; !o->routed && l < o->nly; l++) {
        const struct layer *ly = &o->ly[l];
        size_t n = MIN(ly->nh, ORCA_PREFETCH_SERVERS); /* 0: no arrays */

        util_prefetch(ly, sizeof(*ly));
        util_prefetch(ly->h, n * sizeof(struct handler *));
        util_prefetch(ly->each, n * sizeof(ly->each[0]));
        util_prefetch(ly->probe, n * sizeof(ly->probe[0]));
        for (size_t i = 0; i < n; i++) {
            if (ly->h[i] != NULL) {
                handler_prefetch(ly->h[i]);
            }
        }
    }
}

void
orca_trim(struct orca *o)
{
    for (size_t l = 0; l < o->nly; l++) {
        for (size_t i = 0; i < o->ly[l].nh; i++) {
            if (o->ly[l].h[i] != NULL) {
                handler_trim(o->ly[l].h[i]);
            }
        }
    }
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
    size_t n = 0;

    for (size_t l = 0; l < o->nly; l++) {
        n += layer_sockets(&o->ly[l]);
    }
    return n;
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
    for (size_t l = 0; l < o->nly; l++) {
        layer_close(&o->ly[l]);
    }
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

/* The layers stats asks: L1's pool, or with routes every pool. */
static size_t
stats_layers(const struct orca *o)
{
    return o->routed ? o->nly : 1;
}

static size_t
stats_total(const struct orca *o)
{
    size_t n = 0;

    for (size_t l = 0; l < stats_layers(o); l++) {
        n += o->ly[l].nh;
    }
    return n;
}

/* The answer of the j-th server asked, over the stats layers. */
static const struct response *
stats_at(const struct orca *o, size_t j)
{
    size_t l = 0;

    while (j >= o->ly[l].nh) {
        j -= o->ly[l++].nh;
    }
    return &o->ly[l].each[j];
}

static enum status
stats_sum(struct orca *o, struct response *res)
{
    struct stat_ent *ents = NULL;
    size_t n = 0, cap = 0;
    enum status st = ST_OK;

    for (size_t j = 0; j < stats_total(o) && st == ST_OK; j++) {
        const struct response *r = stats_at(o, j);
        const char *p = r->val, *end = p + r->nval;

        if (r->kind != RES_RAW) {
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
        for (size_t j = 0; j < stats_total(o); j++) {
            if (stats_at(o, j)->kind == RES_RAW) {
                *res = *stats_at(o, j);
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
