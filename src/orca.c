/*
 * orca: batch execution.
 *
 *   requests ──ring──▶ handler[server].queue ... (all servers)
 *            ──▶ handler.flush (every server written)
 *            ──▶ handler.recv  (then every server read)
 *            ──▶ responses, in request order
 *
 * flush_all and stats are barriers sent to every server; stats replies are
 * summed by name when the pool has more than one server.
 */
#include "orca.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "handler.h"
#include "log.h"
#include "metrics.h"

struct orca {
    const struct config *cfg;   /* ref: held by the connection */
    const struct ring   *ring;  /* ref: owned with the snapshot */
    struct health       *health; /* ref: owned with the snapshot */
    struct handler     **h;     /* per server, created on first use */
    struct response     *each;  /* per server, for barrier commands */
    size_t               nh;
    struct buf           agg;   /* summed stats reply */
};

/* Move prev's handlers for servers still in the pool into o. */
static void
adopt(struct orca *o, struct orca *prev)
{
    for (size_t i = 0; i < o->nh; i++) {
        const struct cfg_server *s = &o->cfg->servers[i];

        for (size_t j = 0; j < prev->nh; j++) {
            if (prev->h[j] == NULL ||
                strcmp(prev->cfg->servers[j].addr.name, s->addr.name) != 0) {
                continue;
            }
            o->h[i] = prev->h[j];
            prev->h[j] = NULL;
            handler_rebind(o->h[i], &s->addr, i, o->cfg->connect_timeout_ms,
                           o->cfg->request_timeout_ms);
            break;
        }
    }
}

struct orca *
orca_create(const struct config *cfg, const struct ring *ring,
            struct health *health, struct orca *prev)
{
    struct orca *o = calloc(1, sizeof(*o));

    if (o == NULL) {
        return NULL;
    }
    o->cfg = cfg;
    o->ring = ring;
    o->health = health;
    o->nh = cfg->nservers;
    o->h = calloc(o->nh, sizeof(*o->h));
    o->each = calloc(o->nh, sizeof(*o->each));
    buf_init(&o->agg, 1024);
    if (o->h == NULL || o->each == NULL) {
        orca_destroy(o);
        return NULL;
    }
    if (prev != NULL) {
        adopt(o, prev);
    }
    return o;
}

void
orca_destroy(struct orca *o)
{
    if (o == NULL) {
        return;
    }
    for (size_t i = 0; o->h != NULL && i < o->nh; i++) {
        handler_destroy(o->h[i]);
    }
    free(o->h);
    free(o->each);
    buf_free(&o->agg);
    free(o);
}

static struct handler *
handler_at(struct orca *o, size_t i)
{
    if (o->h[i] == NULL) {
        o->h[i] = handler_create(&o->cfg->servers[i].addr, i,
                                 o->cfg->connect_timeout_ms,
                                 o->cfg->request_timeout_ms);
    }
    return o->h[i];
}

/* Queue req on server i; a failure to queue answers res at once. */
static void
queue_on(struct orca *o, size_t i, const struct request *req,
         struct response *res)
{
    struct handler *h = handler_at(o, i);

    if (h == NULL || handler_queue(h, req, res) != ST_OK) {
        if (res != NULL) {
            res_set_error(res, RES_SERVER_ERROR, MSG_OUT_OF_MEMORY);
        }
    }
}

/* The server for key: the ring's choice, or with eject_rehash and that
 * server ejected, the first live one found by rehashing key with a
 * counter appended. */
static size_t
route(struct orca *o, const struct request *req, uint64_t now)
{
    char dec[KEY_MAX_LENGTH + 8], alt[KEY_MAX_LENGTH + 8];
    const char *key = req->key;
    size_t nkey = req->nkey, idx;

    if ((req->rflags & REQ_F_B64KEY) &&
        util_b64_decode(req->key, req->nkey, dec, sizeof(dec), &nkey)) {
        key = dec; /* place binary keys by their bytes, as clients do */
    }
    idx = ring_lookup(o->ring, key, nkey);

    if (!o->cfg->eject_rehash || !health_ejected(o->health, idx, now) ||
        nkey > KEY_MAX_LENGTH) {
        return idx;
    }
    memcpy(alt, key, nkey);
    for (unsigned n = 1; n <= 2 * o->nh; n++) {
        size_t len = nkey;
        size_t j;

        alt[len++] = '#';
        len += util_u64_str(alt + len, n);
        j = ring_lookup(o->ring, alt, len);
        if (!health_ejected(o->health, j, now)) {
            return j;
        }
    }
    return idx;
}

/* Send req to server idx, unless the server is ejected. */
static void
send_to(struct orca *o, size_t idx, const struct request *req,
        struct response *res, uint64_t now)
{
    switch (health_check(o->health, idx, now)) {
    case HEALTH_EJECTED:
        if (res != NULL) {
            res_set_error(res, RES_SERVER_ERROR, MSG_BACKEND_UNAVAILABLE);
        }
        return;
    case HEALTH_PROBE: {
        /* the probe: a no-op the server must answer before the request */
        struct request probe = {.cmd = REQ_MN};

        queue_on(o, idx, &probe, NULL);
        break;
    }
    default:
        break;
    }
    queue_on(o, idx, req, res);
}

/* Tell the shared health state how each server's exchange went. */
static void
report(struct orca *o)
{
    uint64_t now = util_now_ms();

    for (size_t i = 0; i < o->nh; i++) {
        int outcome = o->h[i] ? handler_take_outcome(o->h[i]) : 0;

        if (outcome > 0) {
            health_success(o->health, i);
        } else if (outcome < 0) {
            health_failure(o->health, i, now);
        }
    }
}

/* Write every server's share, then read every server's replies. */
static void
run_queued(struct orca *o)
{
    for (size_t i = 0; i < o->nh; i++) {
        if (o->h[i] != NULL && handler_pending(o->h[i])) {
            handler_flush(o->h[i]);
        }
    }
    for (size_t i = 0; i < o->nh; i++) {
        if (o->h[i] != NULL && handler_pending(o->h[i])) {
            handler_recv(o->h[i]);
        }
    }
    report(o);
}

/* Answer what needs no backend; false if req must go to one. */
static bool
answer_locally(struct orca *o, const struct request *req,
               struct response *res)
{
    if (req->err != RES_NONE) {
        res_set_error(res, req->err, req->errmsg);
        if ((req->cmd == REQ_SET || req->cmd == REQ_MS) &&
            (req->rflags & REQ_F_TOOLARGE)) {
            /* memcached drops the old item when a set is too large, so
             * a stale value never outlives a failed overwrite. */
            struct request del = {.cmd = REQ_DELETE,
                                  .rflags = req->rflags & REQ_F_B64KEY,
                                  .key = req->key,
                                  .nkey = req->nkey};

            send_to(o, route(o, &del, util_now_ms()), &del, NULL,
                    util_now_ms());
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

/* In a get line where some keys were answered, failed keys are misses;
 * where none was, the line answers with the first key's error. */
static void
settle_get_line(struct req_batch *b, size_t first, size_t last)
{
    bool answered = false;

    for (size_t k = first; k <= last; k++) {
        enum res_kind kind = b->res[k].kind;

        if (kind == RES_VALUE || kind == RES_MISS) {
            answered = true;
        }
    }
    if (!answered) {
        return;
    }
    for (size_t k = first; k <= last; k++) {
        if (b->res[k].kind != RES_VALUE) {
            b->res[k].kind = RES_MISS;
        }
    }
}

static void
settle_gets(struct req_batch *b, size_t from, size_t to)
{
    size_t first = from;

    for (size_t k = from; k < to; k++) {
        const struct request *r = &b->reqs[k];

        if (!req_is_get(r->cmd) || r->err != RES_NONE) {
            continue;
        }
        if (r->rflags & REQ_F_FIRST) {
            first = k;
        }
        if (r->rflags & REQ_F_LAST) {
            settle_get_line(b, first, k);
        }
    }
}

static void
run_segment(struct orca *o, struct req_batch *b, size_t from, size_t to)
{
    uint64_t now = util_now_ms();

    for (size_t k = from; k < to; k++) {
        const struct request *req = &b->reqs[k];

        if (!answer_locally(o, req, &b->res[k])) {
            send_to(o, route(o, req, now), req, &b->res[k], now);
        }
    }
    run_queued(o);
    settle_gets(b, from, to);
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
        res_set_error(res, RES_SERVER_ERROR, MSG_OUT_OF_MEMORY);
        return true;
    }
    res->kind = RES_RAW;
    res->val = o->agg.pos;
    res->nval = buf_len(&o->agg);
    return true;
}

/* flush_all or stats: every server, then one combined answer. */
static void
run_barrier(struct orca *o, const struct request *req, struct response *res)
{
    size_t ok = 0, first_err = o->nh;

    if (stats_proxy(o, req, res)) {
        return;
    }
    for (size_t i = 0; i < o->nh; i++) {
        memset(&o->each[i], 0, sizeof(o->each[i]));
        send_to(o, i, req, &o->each[i], util_now_ms());
    }
    run_queued(o);
    for (size_t i = 0; i < o->nh; i++) {
        enum res_kind kind = o->each[i].kind;

        if (kind == RES_OK || kind == RES_RAW) {
            ok++;
        } else if (first_err == o->nh) {
            first_err = i;
        }
    }
    if (req->cmd == REQ_FLUSH_ALL || o->nh == 1 || ok == 0) {
        *res = o->each[first_err < o->nh ? first_err : 0];
        return;
    }
    if (stats_sum(o, res) != ST_OK) {
        res_set_error(res, RES_SERVER_ERROR, MSG_OUT_OF_MEMORY);
    }
}

void
orca_execute(struct orca *o, struct req_batch *b)
{
    size_t from = 0;

    for (size_t k = 0; k < b->n; k++) {
        const struct request *req = &b->reqs[k];

        if (req->err != RES_NONE ||
            (req->cmd != REQ_FLUSH_ALL && req->cmd != REQ_STATS)) {
            continue;
        }
        run_segment(o, b, from, k);
        run_barrier(o, req, &b->res[k]);
        from = k + 1;
    }
    run_segment(o, b, from, b->n);
}

void
orca_done(struct orca *o)
{
    for (size_t i = 0; i < o->nh; i++) {
        if (o->h[i] != NULL) {
            handler_done(o->h[i]);
        }
    }
    o->agg.pos = o->agg.last = o->agg.start;
    buf_shrink(&o->agg);
}

size_t
orca_sockets(const struct orca *o)
{
    size_t n = 0;

    for (size_t i = 0; i < o->nh; i++) {
        n += o->h[i] != NULL && handler_connected(o->h[i]);
    }
    return n;
}

void
orca_close_sockets(struct orca *o)
{
    for (size_t i = 0; i < o->nh; i++) {
        if (o->h[i] != NULL) {
            handler_close(o->h[i]);
        }
    }
}

/* ---- stats over a pool ---- */

struct stat_ent {
    const char *name;  /* ref: a reply block */
    size_t      nname;
    const char *val;   /* ref: first server's text */
    size_t      nval;
    uint64_t    sum;   /* integer sum */
    double      fsum;  /* decimal sum ("1.234") */
    int         kind;  /* 0 text, 1 integer, 2 decimal */
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

    for (size_t i = 0; i < o->nh && st == ST_OK; i++) {
        const char *p = o->each[i].val, *end = p + o->each[i].nval;

        if (o->each[i].kind != RES_RAW) {
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
        for (size_t i = 0; i < o->nh; i++) {
            if (o->each[i].kind == RES_RAW) {
                *res = o->each[i];
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
