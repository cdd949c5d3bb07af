/*
 * metrics: storage of every counter, gauge and histogram, and rendering.
 *
 * Recording (metrics.h) writes metrics_store with relaxed atomics; the
 * histograms live behind their own rwlocks (hist.c). Rendering reads each
 * value once and formats it; nothing here runs unless someone scrapes.
 *
 * Prometheus exposition, in this order (one HELP and TYPE per family):
 *   riven_build_info{version}  riven_uptime_seconds
 *   METRICS_SCALARS (connections, threads, bytes, l1l2, tls, chunked)
 *   riven_chunked_items_total{op}  riven_chunked_chunks (histogram, always)
 *   riven_requests_total{command,protocol}   (pairs seen at least once)
 *   riven_get_hits_total{command} riven_get_misses_total{command}
 *   riven_errors_total{kind}  riven_config_reloads_total{result}
 *   riven_tls_handshakes_total{result}
 *   riven_backend_{requests_total,errors_total,up,open_sockets}{server}
 *   riven_route_requests_total{route} riven_failovers_total{route}
 *   riven_warmup_fills_total{route} riven_shadow_requests_total{route,result}
 *     (only once routes are named: a single-pool riven has none)
 *   riven_request_duration_seconds{command}  (histogram, commands seen)
 *   riven_backend_request_duration_seconds{server}  (histogram)
 *   process_* (the standard names client libraries use), from /proc/self
 *
 * Invariants: server and route names are written only under names_lock,
 * and read under it; the histogram pointers of metrics_store are set before any
 * reader can see them (req_hist at init, server[].hist with release).
 */
#include "metrics.h"

#include <dirent.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "hist.h"

#ifndef RIVEN_VERSION
#define RIVEN_VERSION "unknown"
#endif

#define SERVER_NAME_MAX (CFG_ADDR_NAME_MAX + 8)      /* room for "#255" */
#define ROUTE_NAME_SIZE (METRICS_ROUTE_NAME_MAX + 8) /* "#4095" and NUL */
#define NS_PER_SEC      UINT64_C(1000000000)

_Static_assert(PROTO_BINARY + 1 == METRICS_PROTO_COUNT,
               "METRICS_PROTO_COUNT must match enum req_proto");

struct metrics_store metrics_store;

static uint64_t start_mono_ns;     /* util_now_ns() at metrics_init */
static struct timespec start_real; /* CLOCK_REALTIME at metrics_init */

static pthread_mutex_t names_lock = PTHREAD_MUTEX_INITIALIZER;
static char server_names[METRICS_SERVERS_MAX][SERVER_NAME_MAX];
static size_t nservers;         /* registered; under names_lock */
static _Atomic size_t l1_count; /* l1l2: servers [0, l1_count) are L1 */
static char (*route_names)[ROUTE_NAME_SIZE]; /* nroutes; under names_lock */
static size_t nroutes;

static const char *const proto_names[METRICS_PROTO_COUNT] = {"text", "meta",
                                                             "binary"};
static const char *const err_names[MERR_COUNT] = {
    "client_error", "server_error", "backend_timeout", "backend_unavailable",
    "hangup"};
static const char *const reload_names[2] = {"failure", "success"};
static const char *const shadow_names[MSHADOW_COUNT] = {"ok", "error",
                                                        "timeout", "dropped"};
/* enum metrics_chunked_op: Prometheus label values, stats names */
static const char *const chunked_op_names[MCHUNK_NOPS] = {
    "get", "set", "delete", "touch", "refused"};
static const char *const chunked_op_stats[MCHUNK_NOPS] = {
    "chunked_gets", "chunked_sets", "chunked_deletes", "chunked_touches",
    "chunked_refused"};

/*
 * riven_chunked_chunks: fixed buckets of atomic counters, not a struct
 * hist. hist is built for nanoseconds: its buckets above 64 are 1/32 of a
 * power of two wide, so hist_cumulative would count a 1,025-chunk value
 * under le="1024" (it counts a bound's whole bucket), it costs a striped
 * rwlock and 8 KiB, and its sum renders as seconds. Chunk counts are small
 * integers whose interesting bounds are powers of two (982 chunks is a
 * 1 MiB value at the default chunk_size), so 13 counters and a sum give
 * exact buckets for two relaxed adds per value.
 */
static const char *const chunks_le[METRICS_CHUNKS_NLE] = {
    "0", "1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024"};

/* The scalar table, generated from METRICS_SCALARS. */
#define KIND_IS_GAUGE_COUNTER false
#define KIND_IS_GAUGE_GAUGE   true
static const struct {
    const char *prom; /* Prometheus name */
    const char *stat; /* stats proxy name */
    const char *help;
    bool gauge;
} scalars[M_COUNT] = {
#define METRICS_DESC(id, kind, prom, stat, help)                               \
    [M_##id] = {prom, stat, help, KIND_IS_GAUGE_##kind},
    METRICS_SCALARS(METRICS_DESC)
#undef METRICS_DESC
};

/* Histogram "le" buckets: 50 us .. 10 s, then +Inf (= count). */
static const struct {
    uint64_t ns;
    const char *le;
} le_bounds[] = {
    {50000, "0.00005"}, {100000, "0.0001"},  {250000, "0.00025"},
    {500000, "0.0005"}, {1000000, "0.001"},  {2500000, "0.0025"},
    {5000000, "0.005"}, {10000000, "0.01"},  {25000000, "0.025"},
    {50000000, "0.05"}, {100000000, "0.1"},  {250000000, "0.25"},
    {500000000, "0.5"}, {1000000000, "1"},   {2500000000, "2.5"},
    {5000000000, "5"},  {10000000000, "10"},
};
#define NLE NELEMS(le_bounds)

/* ---- setup ---- */

enum status
metrics_init(void)
{
    start_mono_ns = util_now_ns();
    clock_gettime(CLOCK_REALTIME, &start_real);
    for (size_t c = 0; c < REQ_CMD_COUNT; c++) {
        if (metrics_store.req_hist[c] == NULL) {
            metrics_store.req_hist[c] = hist_create();
        }
        if (metrics_store.req_hist[c] == NULL) {
            return ST_NOMEM;
        }
    }
    return ST_OK;
}

void
metrics_fini(void)
{
    for (size_t c = 0; c < REQ_CMD_COUNT; c++) {
        hist_destroy(metrics_store.req_hist[c]);
        metrics_store.req_hist[c] = NULL;
    }
    for (size_t i = 0; i < METRICS_SERVERS_MAX; i++) {
        hist_destroy(atomic_exchange(&metrics_store.server[i].hist, NULL));
    }
    pthread_mutex_lock(&names_lock);
    nservers = 0;
    memset(server_names, 0, sizeof(server_names));
    free(route_names);
    route_names = NULL;
    nroutes = 0;
    pthread_mutex_unlock(&names_lock);
}

static void
zero(_Atomic uint64_t *a, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        atomic_store_explicit(&a[i], 0, memory_order_relaxed);
    }
}

static void
zero_route(struct metrics_route *r)
{
    zero(&r->requests, 1);
    zero(&r->failovers, 1);
    zero(&r->warmup_fills, 1);
    zero(r->shadow, MSHADOW_COUNT);
}

void
metrics_reset(void)
{
    zero(metrics_store.scalar, M_COUNT);
    zero(&metrics_store.requests[0][0], REQ_CMD_COUNT * METRICS_PROTO_COUNT);
    zero(metrics_store.hits, REQ_CMD_COUNT);
    zero(metrics_store.misses, REQ_CMD_COUNT);
    zero(metrics_store.errors, MERR_COUNT);
    zero(metrics_store.reloads, 2);
    zero(metrics_store.tls_handshakes, CONN_HS_NKINDS);
    zero(metrics_store.chunked_ops, MCHUNK_NOPS);
    zero(metrics_store.chunked_chunks, METRICS_CHUNKS_NLE + 1);
    zero(&metrics_store.chunked_chunks_sum, 1);
    for (size_t c = 0; c < REQ_CMD_COUNT; c++) {
        if (metrics_store.req_hist[c] != NULL) {
            hist_reset(metrics_store.req_hist[c]);
        }
    }
    for (size_t i = 0; i < METRICS_SERVERS_MAX; i++) {
        struct metrics_server *s = &metrics_store.server[i];
        struct hist *h = atomic_load(&s->hist);

        zero(&s->requests, 1);
        zero(&s->errors, 1);
        zero(&s->up, 1);
        zero(&s->sockets, 1);
        if (h != NULL) {
            hist_reset(h);
        }
    }
    for (size_t i = 0; i < METRICS_ROUTES_MAX; i++) {
        zero_route(&metrics_store.route[i]);
    }
}

/* The unique name of servers[i]: its address, or "addr#i" if an earlier
 * entry has the same address. */
static void
unique_name(const struct cfg_server *servers, size_t i, char *dst)
{
    const char *name = servers[i].addr.name;

    for (size_t j = 0; j < i; j++) {
        if (strcmp(servers[j].addr.name, name) == 0) {
            snprintf(dst, SERVER_NAME_MAX, "%.*s#%u", CFG_ADDR_NAME_MAX - 1,
                     name, (unsigned)(uint8_t)i);
            return;
        }
    }
    snprintf(dst, SERVER_NAME_MAX, "%.*s", CFG_ADDR_NAME_MAX - 1, name);
}

enum status
metrics_set_servers(const struct cfg_server *servers, size_t n)
{
    enum status st = ST_OK;
    char name[SERVER_NAME_MAX];

    n = MIN(n, (size_t)METRICS_SERVERS_MAX);
    pthread_mutex_lock(&names_lock);
    for (size_t i = 0; i < n; i++) {
        struct metrics_server *s = &metrics_store.server[i];
        struct hist *h = atomic_load_explicit(&s->hist, memory_order_acquire);

        unique_name(servers, i, name);
        if (h == NULL) {
            h = hist_create();
            st = h == NULL ? ST_NOMEM : st;
            atomic_store_explicit(&s->hist, h, memory_order_release);
        } else if (strcmp(server_names[i], name) != 0) {
            hist_reset(h);
        }
        if (strcmp(server_names[i], name) != 0) {
            zero(&s->requests, 1);
            zero(&s->errors, 1);
            memcpy(server_names[i], name, sizeof(name));
        }
    }
    nservers = n;
    pthread_mutex_unlock(&names_lock);
    return st;
}

/* name cut to at most max bytes, not inside a UTF-8 sequence: the
 * length to keep. */
static size_t
utf8_cut(const char *name, size_t max)
{
    size_t n = strnlen(name, max + 1);

    if (n <= max) {
        return n;
    }
    n = max;
    while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80) {
        n--; /* name[n] continues a character: cut before its lead byte */
    }
    return n;
}

/* Fill names[0..n) of dst (ROUTE_NAME_SIZE each): cut, then made unique
 * by "#<index>". Labels stay valid UTF-8 when the names are. */
static void
route_label_all(char (*dst)[ROUTE_NAME_SIZE], const char *const *names,
                size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i] != NULL ? names[i] : "";

        snprintf(dst[i], ROUTE_NAME_SIZE, "%.*s",
                 (int)utf8_cut(name, METRICS_ROUTE_NAME_MAX), name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(dst[j], dst[i]) == 0) {
                size_t len = strlen(dst[i]);

                snprintf(dst[i] + len, ROUTE_NAME_SIZE - len, "#%zu", i);
                break;
            }
        }
    }
}

enum status
metrics_set_routes(const char *const *names, size_t n)
{
    char(*fresh)[ROUTE_NAME_SIZE] = NULL;
    char(*old)[ROUTE_NAME_SIZE];

    n = MIN(n, (size_t)METRICS_ROUTES_MAX);
    if (n > 0) {
        fresh = calloc(n, sizeof(*fresh));
        if (fresh == NULL) {
            return ST_NOMEM;
        }
        route_label_all(fresh, names, n);
    }
    pthread_mutex_lock(&names_lock);
    for (size_t i = 0; i < n; i++) {
        if (i >= nroutes || strcmp(route_names[i], fresh[i]) != 0) {
            zero_route(&metrics_store.route[i]);
        }
    }
    old = route_names;
    route_names = fresh;
    nroutes = n;
    pthread_mutex_unlock(&names_lock);
    free(old);
    return ST_OK;
}

/* ---- recording ---- */

void
metrics_observe_request(enum req_cmd cmd, uint64_t ns)
{
    if ((unsigned)cmd < REQ_CMD_COUNT && metrics_store.req_hist[cmd]) {
        hist_record(metrics_store.req_hist[cmd], ns);
    }
}

void
metrics_observe_backend(size_t idx, uint64_t ns)
{
    struct hist *h;

    if (idx >= METRICS_SERVERS_MAX) {
        return;
    }
    h = atomic_load_explicit(&metrics_store.server[idx].hist,
                             memory_order_acquire);
    if (h != NULL) {
        hist_record(h, ns);
    }
}

/* The bucket of n chunks: 0 and 1 their own, then the least power of two
 * >= n (index 1 + log2 of it), METRICS_CHUNKS_NLE above 1024. */
static size_t
chunks_bucket(uint64_t n)
{
    size_t i;

    if (n <= 1) {
        return (size_t)n;
    }
    i = 65 - (size_t)__builtin_clzll(n - 1); /* 2 -> 2, 3..4 -> 3, ... */
    return MIN(i, (size_t)METRICS_CHUNKS_NLE);
}

void
metrics_chunked_chunks(uint64_t nchunks)
{
    atomic_fetch_add_explicit(
        &metrics_store.chunked_chunks[chunks_bucket(nchunks)], 1,
        memory_order_relaxed);
    atomic_fetch_add_explicit(&metrics_store.chunked_chunks_sum, nchunks,
                              memory_order_relaxed);
}

bool
metrics_any_server_up(void *arg)
{
    bool up = false;

    (void)arg;
    pthread_mutex_lock(&names_lock);
    for (size_t i = 0; i < nservers && !up; i++) {
        up = atomic_load_explicit(&metrics_store.server[i].up,
                                  memory_order_relaxed) != 0;
    }
    pthread_mutex_unlock(&names_lock);
    return up;
}

/* ---- output helpers ---- */

/* An output with a sticky status: after a failure, emits do nothing. */
struct out {
    struct buf *b;
    enum status st;
};

static void __attribute__((format(printf, 2, 3)))
emit(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->st != ST_OK || buf_reserve(o->b, 256) != ST_OK) {
        o->st = ST_NOMEM;
        return;
    }
    va_start(ap, fmt);
    n = vsnprintf(o->b->last, buf_space(o->b), fmt, ap);
    va_end(ap);
    if (n < 0) {
        o->st = ST_ERROR;
        return;
    }
    if ((size_t)n >= buf_space(o->b)) {
        if (buf_reserve(o->b, (size_t)n + 1) != ST_OK) {
            o->st = ST_NOMEM;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(o->b->last, buf_space(o->b), fmt, ap);
        va_end(ap);
    }
    o->b->last += n;
}

/* A label value with \ " and newline escaped (exposition format rules). */
static void
emit_escaped(struct out *o, const char *s)
{
    for (; *s != '\0' && o->st == ST_OK; s++) {
        if (*s == '\\' || *s == '"') {
            emit(o, "\\%c", *s);
        } else if (*s == '\n') {
            emit(o, "\\n");
        } else {
            emit(o, "%c", *s);
        }
    }
}

static void
emit_family(struct out *o, const char *name, const char *type, const char *help)
{
    emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{label="value"} v */
static void
emit_labelled(struct out *o, const char *name, const char *label,
              const char *value, uint64_t v)
{
    emit(o, "%s{%s=\"", name, label);
    emit_escaped(o, value);
    emit(o, "\"} %" PRIu64 "\n", v);
}

/* Nanoseconds as exact decimal seconds, e.g. "1.500000000". */
static const char *
seconds(char *dst, size_t size, uint64_t ns)
{
    snprintf(dst, size, "%" PRIu64 ".%09" PRIu64, ns / NS_PER_SEC,
             ns % NS_PER_SEC);
    return dst;
}

static uint64_t
load(_Atomic uint64_t *a)
{
    return atomic_load_explicit(a, memory_order_relaxed);
}

static uint64_t
uptime_ns(void)
{
    return start_mono_ns == 0 ? 0 : util_now_ns() - start_mono_ns;
}

/* ---- Prometheus families ---- */

static void
render_info(struct out *o)
{
    char sec[32];

    emit_family(o, "riven_build_info", "gauge",
                "Always 1; the version label names the running build.");
    emit(o, "riven_build_info{version=\"%s\"} 1\n", RIVEN_VERSION);
    emit_family(o, "riven_uptime_seconds", "gauge",
                "Seconds since riven started.");
    emit(o, "riven_uptime_seconds %s\n",
         seconds(sec, sizeof(sec), uptime_ns()));
}

static void
render_scalars(struct out *o)
{
    for (size_t m = 0; m < M_COUNT; m++) {
        uint64_t v = load(&metrics_store.scalar[m]);

        emit_family(o, scalars[m].prom, scalars[m].gauge ? "gauge" : "counter",
                    scalars[m].help);
        if (scalars[m].gauge) {
            emit(o, "%s %" PRId64 "\n", scalars[m].prom, (int64_t)v);
        } else {
            emit(o, "%s %" PRIu64 "\n", scalars[m].prom, v);
        }
    }
}

/* The chunks-per-value buckets, read once: cum[i] cumulative up to
 * chunks_le[i]; the total (the +Inf bucket and the count) returned. */
static uint64_t
chunks_read(uint64_t cum[METRICS_CHUNKS_NLE])
{
    uint64_t total = 0;

    for (size_t i = 0; i < METRICS_CHUNKS_NLE; i++) {
        total += load(&metrics_store.chunked_chunks[i]);
        cum[i] = total;
    }
    return total + load(&metrics_store.chunked_chunks[METRICS_CHUNKS_NLE]);
}

/* Every op and the histogram, zeros included: a dashboard's queries find
 * the series on a riven without chunked pools too. The sum is read apart
 * from the buckets, so under load it may hold a value the buckets do not
 * yet (or already) show. */
static void
render_chunked(struct out *o)
{
    const char *h = "riven_chunked_chunks";
    uint64_t cum[METRICS_CHUNKS_NLE], total;

    emit_family(o, "riven_chunked_items_total", "counter",
                "Chunked pools: client commands taken, by op (refused: not "
                "supported on chunked values).");
    for (size_t k = 0; k < MCHUNK_NOPS; k++) {
        emit_labelled(o, "riven_chunked_items_total", "op", chunked_op_names[k],
                      load(&metrics_store.chunked_ops[k]));
    }
    total = chunks_read(cum);
    emit_family(o, h, "histogram",
                "Chunked pools: chunks per value written or read whole.");
    for (size_t i = 0; i < METRICS_CHUNKS_NLE; i++) {
        emit(o, "%s_bucket{le=\"%s\"} %" PRIu64 "\n", h, chunks_le[i], cum[i]);
    }
    emit(o,
         "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n%s_sum %" PRIu64
         "\n%s_count %" PRIu64 "\n",
         h, total, h, load(&metrics_store.chunked_chunks_sum), h, total);
}

static bool
is_get_like(size_t cmd)
{
    return req_is_get((enum req_cmd)cmd) || cmd == REQ_MG;
}

static void
render_requests(struct out *o)
{
    emit_family(o, "riven_requests_total", "counter",
                "Requests received, by command and client protocol.");
    for (size_t c = 1; c < REQ_CMD_COUNT; c++) {
        for (size_t p = 0; p < METRICS_PROTO_COUNT; p++) {
            uint64_t v = load(&metrics_store.requests[c][p]);

            if (v != 0) {
                emit(o,
                     "riven_requests_total{command=\"%s\",protocol=\"%s\"} "
                     "%" PRIu64 "\n",
                     req_cmd_name((enum req_cmd)c), proto_names[p], v);
            }
        }
    }
}

static void
render_lookups(struct out *o)
{
    emit_family(o, "riven_get_hits_total", "counter",
                "Keys found by get-like commands, by command.");
    for (size_t c = 1; c < REQ_CMD_COUNT; c++) {
        if (is_get_like(c)) {
            emit_labelled(o, "riven_get_hits_total", "command",
                          req_cmd_name((enum req_cmd)c),
                          load(&metrics_store.hits[c]));
        }
    }
    emit_family(o, "riven_get_misses_total", "counter",
                "Keys not found by get-like commands, by command.");
    for (size_t c = 1; c < REQ_CMD_COUNT; c++) {
        if (is_get_like(c)) {
            emit_labelled(o, "riven_get_misses_total", "command",
                          req_cmd_name((enum req_cmd)c),
                          load(&metrics_store.misses[c]));
        }
    }
}

static void
render_errors(struct out *o)
{
    emit_family(o, "riven_errors_total", "counter",
                "Error replies sent to clients, by kind.");
    for (size_t k = 0; k < MERR_COUNT; k++) {
        emit_labelled(o, "riven_errors_total", "kind", err_names[k],
                      load(&metrics_store.errors[k]));
    }
    emit_family(o, "riven_config_reloads_total", "counter",
                "Configuration reloads, by result.");
    for (size_t r = 2; r-- > 0;) {
        emit_labelled(o, "riven_config_reloads_total", "result",
                      reload_names[r], load(&metrics_store.reloads[r]));
    }
    emit_family(o, "riven_tls_handshakes_total", "counter",
                "TLS handshakes of clients, by result.");
    for (size_t r = 0; r < CONN_HS_NKINDS; r++) {
        emit_labelled(o, "riven_tls_handshakes_total", "result",
                      conn_hs_name((enum conn_hs)r),
                      load(&metrics_store.tls_handshakes[r]));
    }
}

/* One per-server family; field is the offset of the value in
 * struct metrics_server. Caller holds names_lock. */
static void
render_server_family(struct out *o, const char *name, const char *type,
                     const char *help, size_t field)
{
    emit_family(o, name, type, help);
    for (size_t i = 0; i < nservers; i++) {
        char *s = (char *)&metrics_store.server[i];

        emit_labelled(o, name, "server", server_names[i],
                      load((_Atomic uint64_t *)(void *)(s + field)));
    }
}

#define SRV_OFF(f) offsetof(struct metrics_server, f)

/* Caller holds names_lock. */
static void
render_servers(struct out *o)
{
    render_server_family(o, "riven_backend_requests_total", "counter",
                         "Requests sent to each backend server.",
                         SRV_OFF(requests));
    render_server_family(o, "riven_backend_errors_total", "counter",
                         "Failed requests to each backend server (timeouts, "
                         "connection failures, error replies).",
                         SRV_OFF(errors));
    render_server_family(o, "riven_backend_up", "gauge",
                         "1 if the backend server is reachable, 0 if it is "
                         "down or ejected.",
                         SRV_OFF(up));
    render_server_family(o, "riven_backend_open_sockets", "gauge",
                         "Sockets open to each backend server.",
                         SRV_OFF(sockets));
}

/* One per-route family; field is the offset of the value in
 * struct metrics_route. Caller holds names_lock. */
static void
render_route_family(struct out *o, const char *name, const char *help,
                    size_t field)
{
    emit_family(o, name, "counter", help);
    for (size_t i = 0; i < nroutes; i++) {
        char *r = (char *)&metrics_store.route[i];

        emit_labelled(o, name, "route", route_names[i],
                      load((_Atomic uint64_t *)(void *)(r + field)));
    }
}

#define ROUTE_OFF(f) offsetof(struct metrics_route, f)

/* Caller holds names_lock. Nothing without routes. */
static void
render_routes(struct out *o)
{
    const char *sh = "riven_shadow_requests_total";

    if (nroutes == 0) {
        return;
    }
    render_route_family(o, "riven_route_requests_total",
                        "Requests taken by each route.", ROUTE_OFF(requests));
    render_route_family(o, "riven_failovers_total",
                        "Requests a failover route sent on to its next "
                        "child.",
                        ROUTE_OFF(failovers));
    render_route_family(o, "riven_warmup_fills_total",
                        "Warm hits a warm_up route copied into its cold "
                        "child.",
                        ROUTE_OFF(warmup_fills));
    emit_family(o, sh, "counter",
                "Copies of requests sent to each route's shadow, by "
                "result.");
    for (size_t i = 0; i < nroutes; i++) {
        for (size_t r = 0; r < MSHADOW_COUNT; r++) {
            emit(o, "%s{route=\"", sh);
            emit_escaped(o, route_names[i]);
            emit(o, "\",result=\"%s\"} %" PRIu64 "\n", shadow_names[r],
                 load(&metrics_store.route[i].shadow[r]));
        }
    }
}

/* The _bucket, _sum and _count lines of one labelled histogram. */
static void
render_hist(struct out *o, const char *name, const char *label,
            const char *value, const struct hist_snapshot *s)
{
    uint64_t bounds[NLE], cum[NLE];
    char sec[32];

    for (size_t i = 0; i < NLE; i++) {
        bounds[i] = le_bounds[i].ns;
    }
    hist_cumulative(s, bounds, NLE, cum);
    for (size_t i = 0; i < NLE; i++) {
        emit(o, "%s_bucket{%s=\"", name, label);
        emit_escaped(o, value);
        emit(o, "\",le=\"%s\"} %" PRIu64 "\n", le_bounds[i].le, cum[i]);
    }
    emit(o, "%s_bucket{%s=\"", name, label);
    emit_escaped(o, value);
    emit(o, "\",le=\"+Inf\"} %" PRIu64 "\n%s_sum{%s=\"", s->count, name, label);
    emit_escaped(o, value);
    emit(o, "\"} %s\n%s_count{%s=\"", seconds(sec, sizeof(sec), s->sum_ns),
         name, label);
    emit_escaped(o, value);
    emit(o, "\"} %" PRIu64 "\n", s->count);
}

static void
render_request_hists(struct out *o, struct hist_snapshot *snap)
{
    emit_family(o, "riven_request_duration_seconds", "histogram",
                "Time from a request parsed to its reply queued, by "
                "command.");
    for (size_t c = 1; c < REQ_CMD_COUNT; c++) {
        if (metrics_store.req_hist[c] == NULL) {
            continue;
        }
        hist_snapshot(metrics_store.req_hist[c], snap, false);
        if (snap->count != 0) {
            render_hist(o, "riven_request_duration_seconds", "command",
                        req_cmd_name((enum req_cmd)c), snap);
        }
    }
}

void
metrics_set_layers(size_t nl1)
{
    atomic_store(&l1_count, nl1);
}

/* riven_layer_request_duration_seconds{layer}: the servers' histograms
 * summed per layer (l1l2 orcas). Caller holds names_lock. */
static void
render_layer_hists(struct out *o, struct hist_snapshot *snap)
{
    size_t split = atomic_load(&l1_count);
    struct hist_snapshot *acc;

    if (split == 0 || split >= nservers ||
        (acc = malloc(sizeof(*acc))) == NULL) {
        return;
    }
    emit_family(o, "riven_layer_request_duration_seconds", "histogram",
                "Round trip time of requests to each cache layer (l1l2).");
    for (int layer = 0; layer < 2; layer++) {
        memset(acc, 0, sizeof(*acc));
        for (size_t i = layer ? split : 0; i < (layer ? nservers : split);
             i++) {
            struct hist *h = atomic_load_explicit(&metrics_store.server[i].hist,
                                                  memory_order_acquire);

            if (h == NULL) {
                continue;
            }
            hist_snapshot(h, snap, false);
            acc->count += snap->count;
            acc->sum_ns += snap->sum_ns;
            for (size_t b = 0; b < HIST_NBUCKETS; b++) {
                acc->buckets[b] += snap->buckets[b];
            }
        }
        render_hist(o, "riven_layer_request_duration_seconds", "layer",
                    layer ? "l2" : "l1", acc);
    }
    free(acc);
}

/* Caller holds names_lock. */
static void
render_backend_hists(struct out *o, struct hist_snapshot *snap)
{
    emit_family(o, "riven_backend_request_duration_seconds", "histogram",
                "Round trip time of requests to each backend server.");
    for (size_t i = 0; i < nservers; i++) {
        struct hist *h = atomic_load_explicit(&metrics_store.server[i].hist,
                                              memory_order_acquire);

        if (h != NULL) {
            hist_snapshot(h, snap, false);
            render_hist(o, "riven_backend_request_duration_seconds", "server",
                        server_names[i], snap);
        }
    }
}

/* ---- process metrics (from /proc/self at scrape time) ---- */

struct proc_info {
    uint64_t rss_bytes;
    uint64_t vsz_bytes;
    uint64_t open_fds;
    uint64_t max_fds;
    uint64_t cpu_ns;
    bool have_mem;
    bool have_fds;
};

/* Two decimal numbers from the start of f ("/proc/self/statm"). */
static bool
read_two(FILE *f, unsigned long long *a, unsigned long long *b)
{
    char line[128], *end;

    if (fgets(line, sizeof(line), f) == NULL) {
        return false;
    }
    *a = strtoull(line, &end, 10);
    if (end == line || *end != ' ') {
        return false;
    }
    *b = strtoull(end + 1, &end, 10);
    return *end == ' ' || *end == '\n' || *end == '\0';
}

static void
proc_read(struct proc_info *p)
{
    unsigned long long vsz, rss;
    long page = sysconf(_SC_PAGESIZE);
    struct rusage ru;
    struct rlimit rl;
    struct dirent *de;
    FILE *f = fopen("/proc/self/statm", "re");
    DIR *d;

    memset(p, 0, sizeof(*p));
    if (f != NULL) {
        if (read_two(f, &vsz, &rss) && page > 0) {
            p->vsz_bytes = vsz * (uint64_t)page;
            p->rss_bytes = rss * (uint64_t)page;
            p->have_mem = true;
        }
        fclose(f);
    }
    d = opendir("/proc/self/fd");
    if (d != NULL) {
        while ((de = readdir(d)) != NULL) {
            p->open_fds += de->d_name[0] != '.';
        }
        p->open_fds -= p->open_fds > 0; /* the directory's own fd */
        p->have_fds = true;
        closedir(d);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        p->max_fds = rl.rlim_cur;
    }
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        p->cpu_ns =
            ((uint64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * NS_PER_SEC +
            ((uint64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
    }
}

static void
render_process(struct out *o)
{
    struct proc_info p;
    char sec[32];

    proc_read(&p);
    emit_family(o, "process_cpu_seconds_total", "counter",
                "Total user and system CPU time spent in seconds.");
    emit(o, "process_cpu_seconds_total %s\n",
         seconds(sec, sizeof(sec), p.cpu_ns));
    if (p.have_fds) {
        emit_family(o, "process_open_fds", "gauge",
                    "Number of open file descriptors.");
        emit(o, "process_open_fds %" PRIu64 "\n", p.open_fds);
    }
    if (p.max_fds != 0) {
        emit_family(o, "process_max_fds", "gauge",
                    "Maximum number of open file descriptors.");
        emit(o, "process_max_fds %" PRIu64 "\n", p.max_fds);
    }
    if (p.have_mem) {
        emit_family(o, "process_resident_memory_bytes", "gauge",
                    "Resident memory size in bytes.");
        emit(o, "process_resident_memory_bytes %" PRIu64 "\n", p.rss_bytes);
        emit_family(o, "process_virtual_memory_bytes", "gauge",
                    "Virtual memory size in bytes.");
        emit(o, "process_virtual_memory_bytes %" PRIu64 "\n", p.vsz_bytes);
    }
    emit_family(o, "process_start_time_seconds", "gauge",
                "Start time of the process since unix epoch in seconds.");
    emit(o, "process_start_time_seconds %lld.%09ld\n",
         (long long)start_real.tv_sec, (long)start_real.tv_nsec);
}

enum status
metrics_render_prometheus(struct buf *out)
{
    struct out o = {out, ST_OK};
    struct hist_snapshot *snap = malloc(sizeof(*snap));

    if (snap == NULL) {
        return ST_NOMEM;
    }
    render_info(&o);
    render_scalars(&o);
    render_chunked(&o); /* right after its two scalars */
    render_requests(&o);
    render_lookups(&o);
    render_errors(&o);
    pthread_mutex_lock(&names_lock);
    render_servers(&o);
    render_routes(&o);
    render_request_hists(&o, snap);
    render_backend_hists(&o, snap);
    render_layer_hists(&o, snap);
    pthread_mutex_unlock(&names_lock);
    render_process(&o);
    free(snap);
    return o.st;
}

/* ---- memcached stats ---- */

static void
stats_header(struct out *o)
{
    uint64_t up = uptime_ns();

    emit(o, "STAT pid %ld\r\n", (long)getpid());
    emit(o, "STAT uptime %" PRIu64 "\r\n", up / NS_PER_SEC);
    emit(o, "STAT time %lld\r\n", (long long)time(NULL));
    emit(o, "STAT version %s\r\n", RIVEN_VERSION);
    for (size_t m = 0; m < M_COUNT; m++) {
        uint64_t v = load(&metrics_store.scalar[m]);

        if (scalars[m].gauge) {
            emit(o, "STAT %s %" PRId64 "\r\n", scalars[m].stat, (int64_t)v);
        } else {
            emit(o, "STAT %s %" PRIu64 "\r\n", scalars[m].stat, v);
        }
    }
}

/* Follows the scalars, whose last two are chunked_chunk_misses and
 * chunked_token_mismatches. */
static void
stats_chunked(struct out *o)
{
    uint64_t cum[METRICS_CHUNKS_NLE];

    for (size_t k = 0; k < MCHUNK_NOPS; k++) {
        emit(o, "STAT %s %" PRIu64 "\r\n", chunked_op_stats[k],
             load(&metrics_store.chunked_ops[k]));
    }
    emit(o, "STAT chunked_values %" PRIu64 "\r\n", chunks_read(cum));
    emit(o, "STAT chunked_chunks %" PRIu64 "\r\n",
         load(&metrics_store.chunked_chunks_sum));
}

static void
stats_requests(struct out *o)
{
    uint64_t per_proto[METRICS_PROTO_COUNT] = {0}, hits = 0, misses = 0;

    for (size_t c = 1; c < REQ_CMD_COUNT; c++) {
        uint64_t sum = 0;

        for (size_t p = 0; p < METRICS_PROTO_COUNT; p++) {
            uint64_t v = load(&metrics_store.requests[c][p]);

            sum += v;
            per_proto[p] += v;
        }
        hits += load(&metrics_store.hits[c]);
        misses += load(&metrics_store.misses[c]);
        emit(o, "STAT cmd_%s %" PRIu64 "\r\n", req_cmd_name((enum req_cmd)c),
             sum);
    }
    for (size_t p = 0; p < METRICS_PROTO_COUNT; p++) {
        emit(o, "STAT requests_%s %" PRIu64 "\r\n", proto_names[p],
             per_proto[p]);
    }
    emit(o, "STAT get_hits %" PRIu64 "\r\nSTAT get_misses %" PRIu64 "\r\n",
         hits, misses);
    for (size_t k = 0; k < MERR_COUNT; k++) {
        emit(o, "STAT errors_%s %" PRIu64 "\r\n", err_names[k],
             load(&metrics_store.errors[k]));
    }
    for (size_t r = 2; r-- > 0;) {
        emit(o, "STAT config_reloads_%s %" PRIu64 "\r\n", reload_names[r],
             load(&metrics_store.reloads[r]));
    }
    for (size_t r = 0; r < CONN_HS_NKINDS; r++) {
        emit(o, "STAT tls_handshakes_%s %" PRIu64 "\r\n",
             conn_hs_name((enum conn_hs)r),
             load(&metrics_store.tls_handshakes[r]));
    }
}

/* Caller holds names_lock. */
static void
stats_servers(struct out *o)
{
    for (size_t i = 0; i < nservers; i++) {
        struct metrics_server *s = &metrics_store.server[i];

        emit(o, "STAT backend_%zu_addr %s\r\n", i, server_names[i]);
        emit(o, "STAT backend_%zu_requests %" PRIu64 "\r\n", i,
             load(&s->requests));
        emit(o, "STAT backend_%zu_errors %" PRIu64 "\r\n", i, load(&s->errors));
        emit(o, "STAT backend_%zu_up %" PRIu64 "\r\n", i, load(&s->up));
        emit(o, "STAT backend_%zu_open_sockets %" PRId64 "\r\n", i,
             (int64_t)load(&s->sockets));
    }
}

/* A route name as one stats token: bytes that would split or end the
 * line (space, control bytes) become '?'. */
static void
emit_stat_token(struct out *o, const char *s)
{
    for (; *s != '\0' && o->st == ST_OK; s++) {
        unsigned char c = (unsigned char)*s;

        emit(o, "%c", c <= ' ' || c == 0x7f ? '?' : (char)c);
    }
}

/* Caller holds names_lock. */
static void
stats_routes(struct out *o)
{
    for (size_t i = 0; i < nroutes; i++) {
        struct metrics_route *r = &metrics_store.route[i];

        emit(o, "STAT route_%zu_name ", i);
        emit_stat_token(o, route_names[i]);
        emit(o, "\r\nSTAT route_%zu_requests %" PRIu64 "\r\n", i,
             load(&r->requests));
        emit(o, "STAT route_%zu_failovers %" PRIu64 "\r\n", i,
             load(&r->failovers));
        emit(o, "STAT route_%zu_warmup_fills %" PRIu64 "\r\n", i,
             load(&r->warmup_fills));
        for (size_t k = 0; k < MSHADOW_COUNT; k++) {
            emit(o, "STAT route_%zu_shadow_%s %" PRIu64 "\r\n", i,
                 shadow_names[k], load(&r->shadow[k]));
        }
    }
}

static void
stats_latency(struct out *o, struct hist_snapshot *snap)
{
    for (size_t c = 1; c < REQ_CMD_COUNT; c++) {
        const char *name = req_cmd_name((enum req_cmd)c);

        if (metrics_store.req_hist[c] == NULL) {
            continue;
        }
        hist_snapshot(metrics_store.req_hist[c], snap, false);
        if (snap->count == 0) {
            continue;
        }
        emit(o, "STAT latency_%s_count %" PRIu64 "\r\n", name, snap->count);
        emit(o, "STAT latency_%s_p50_us %" PRIu64 "\r\n", name,
             hist_quantile(snap, 0.5) / 1000);
        emit(o, "STAT latency_%s_p99_us %" PRIu64 "\r\n", name,
             hist_quantile(snap, 0.99) / 1000);
    }
}

enum status
metrics_render_stats(struct buf *out)
{
    struct out o = {out, ST_OK};
    struct hist_snapshot *snap = malloc(sizeof(*snap));
    struct proc_info p;

    if (snap == NULL) {
        return ST_NOMEM;
    }
    stats_header(&o);
    stats_chunked(&o);
    stats_requests(&o);
    pthread_mutex_lock(&names_lock);
    stats_servers(&o);
    stats_routes(&o);
    pthread_mutex_unlock(&names_lock);
    stats_latency(&o, snap);
    proc_read(&p);
    emit(&o, "STAT rss_bytes %" PRIu64 "\r\nSTAT open_fds %" PRIu64 "\r\n",
         p.rss_bytes, p.open_fds);
    emit(&o, "END\r\n");
    free(snap);
    return o.st;
}
