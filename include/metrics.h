/*
 * metrics: riven's counters, gauges and latency histograms, and their two
 * renderings: Prometheus text exposition 0.0.4 (GET /metrics) and
 * memcached's "STAT name value" lines (the `stats proxy` command).
 *
 * Data flow: connection threads call the record functions below on every
 * request; the metrics_http thread (or a `stats proxy` request) renders on
 * demand. Recording is a relaxed atomic add (counters, gauges) or a
 * hist_record under a read lock (histograms); all the formatting work
 * happens at scrape time.
 *
 * Storage is one global struct, exposed only so the record functions can be
 * inlined: never write it directly. Scalar counters and gauges are declared
 * once in METRICS_SCALARS, which generates the storage, the Prometheus
 * name/type/help and the stats name. Labelled families are fixed arrays
 * indexed by enum (command, protocol, error kind, backend server index,
 * route index, chunked op). The chunks-per-value histogram of chunked
 * pools is a fixed array of atomic buckets, not a struct hist (see
 * metrics_chunked_chunks).
 *
 * Thread-safety: every function here is thread-safe, except metrics_init,
 * metrics_fini and metrics_reset, which run while no other thread records.
 * Counters are exact (no update is lost) but a rendering is not one atomic
 * snapshot across metrics: each value is read once, individually. Each
 * histogram is read consistently (its _count equals its +Inf bucket).
 */
#ifndef RIVEN_METRICS_H
#define RIVEN_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "conn.h"
#include "request.h"
#include "util.h"

/*
 * Scalar metrics: X(ID, KIND, prometheus name, stats name, help).
 * KIND is COUNTER (only grows) or GAUGE (goes up and down; rendered as a
 * signed number, so a transient underflow shows as -1, not 2^64-1).
 */
#define METRICS_SCALARS(X)                                                     \
    X(CONNECTIONS_CURRENT, GAUGE, "riven_connections_current",                 \
      "curr_connections", "Client connections open now.")                      \
    X(CONNECTIONS_TOTAL, COUNTER, "riven_connections_total",                   \
      "total_connections", "Client connections accepted since start.")         \
    X(CONNECTIONS_REJECTED, COUNTER, "riven_connections_rejected_total",       \
      "rejected_connections",                                                  \
      "Client connections closed at once: max_connections, or no thread.")     \
    X(THREADS_CURRENT, GAUGE, "riven_threads_current", "threads",              \
      "Connection threads running now.")                                       \
    X(CLIENT_RX_BYTES, COUNTER, "riven_client_received_bytes_total",           \
      "bytes_read", "Bytes read from clients.")                                \
    X(CLIENT_TX_BYTES, COUNTER, "riven_client_sent_bytes_total",               \
      "bytes_written", "Bytes written to clients.")                            \
    X(BACKEND_RX_BYTES, COUNTER, "riven_backend_received_bytes_total",         \
      "backend_bytes_read", "Bytes read from backend servers.")                \
    X(BACKEND_TX_BYTES, COUNTER, "riven_backend_sent_bytes_total",             \
      "backend_bytes_written", "Bytes written to backend servers.")            \
    X(L1_HITS, COUNTER, "riven_l1_hits_total", "l1_hits",                      \
      "l1l2 orcas: reads answered by L1.")                                     \
    X(L1_MISSES, COUNTER, "riven_l1_misses_total", "l1_misses",                \
      "l1l2 orcas: reads L1 did not have.")                                    \
    X(L2_HITS, COUNTER, "riven_l2_hits_total", "l2_hits",                      \
      "l1l2 orcas: L1 misses answered by L2.")                                 \
    X(L2_MISSES, COUNTER, "riven_l2_misses_total", "l2_misses",                \
      "l1l2 orcas: reads neither layer had.")                                  \
    X(L1_FILLS, COUNTER, "riven_l1_fills_total", "l1_fills",                   \
      "l1l2 orcas: L2 hits copied into L1.")                                   \
    X(L2_ERRORS, COUNTER, "riven_l2_errors_total", "l2_errors",                \
      "l1l2 orcas: requests L2 failed (SERVER_ERROR).")                        \
    X(TLS_CONNECTIONS_CURRENT, GAUGE, "riven_tls_connections_current",         \
      "tls_connections", "Client connections open now over TLS.")              \
    X(CHUNKED_CHUNK_MISSES, COUNTER, "riven_chunked_chunk_misses_total",       \
      "chunked_chunk_misses",                                                  \
      "Chunked pools: reads that found a chunk absent (a miss).")              \
    X(CHUNKED_TOKEN_MISMATCHES, COUNTER,                                       \
      "riven_chunked_token_mismatches_total", "chunked_token_mismatches",      \
      "Chunked pools: reads that found a chunk of another write (a miss).")

enum metric {
#define METRICS_ENUM(id, kind, prom, stat, help) M_##id,
    METRICS_SCALARS(METRICS_ENUM)
#undef METRICS_ENUM
        M_COUNT
};

/* Error kinds: label kind="client_error" ... of riven_errors_total. */
enum metrics_err {
    MERR_CLIENT_ERROR = 0,    /* CLIENT_ERROR / ERROR sent to a client */
    MERR_SERVER_ERROR,        /* SERVER_ERROR sent for a backend error reply */
    MERR_BACKEND_TIMEOUT,     /* a backend did not answer in request_ms */
    MERR_BACKEND_UNAVAILABLE, /* connect failed, or the server is ejected */
    MERR_HANGUP,              /* closed unanswered: an HTTP request line */
    MERR_COUNT
};

#define METRICS_PROTO_COUNT 3    /* enum req_proto: text, meta, binary */
#define METRICS_SERVERS_MAX 256  /* backend indexes >= this are not counted */
#define METRICS_ROUTES_MAX  4096 /* route indexes >= this are not counted */
/* A route's label is cut to at most this many bytes (at a UTF-8 character
 * boundary) before "#<index>" is appended to a repeated one. */
#define METRICS_ROUTE_NAME_MAX 255

/* What became of a copy sent to a shadow: label result="ok" ... of
 * riven_shadow_requests_total. */
enum metrics_shadow_result {
    MSHADOW_OK = 0,  /* the shadow answered, not with an error */
    MSHADOW_ERROR,   /* an error reply, a malformed one, a reset */
    MSHADOW_TIMEOUT, /* no reply within request_ms */
    MSHADOW_DROPPED, /* never sent: no connection, queue or buffer full */
    MSHADOW_COUNT
};

/* What a chunked pool did for a client's command: label op of
 * riven_chunked_items_total. */
enum metrics_chunked_op {
    MCHUNK_GET = 0, /* get gets gat gats mg, binary get family */
    MCHUNK_SET,     /* set add replace cas ms */
    MCHUNK_DELETE,  /* delete md */
    MCHUNK_TOUCH,   /* touch */
    MCHUNK_REFUSED, /* incr decr append prepend ma, unsupported meta flags */
    MCHUNK_NOPS
};

/* riven_chunked_chunks: finite buckets le="0", "1", "2", "4" ... "1024"
 * (0, 1, then powers of two), then +Inf. */
#define METRICS_CHUNKS_NLE 12

struct hist;

/* Per backend server, indexed like config->servers. */
struct metrics_server {
    _Atomic uint64_t requests;   /* requests sent */
    _Atomic uint64_t errors;     /* timeouts, failures, error replies */
    _Atomic uint64_t up;         /* gauge 0/1, set by the health code */
    _Atomic uint64_t sockets;    /* gauge: open backend sockets */
    _Atomic(struct hist *) hist; /* latency; NULL until registered */
};

/* Per route, indexed like metrics_set_routes' names. */
struct metrics_route {
    _Atomic uint64_t requests;     /* requests the route took */
    _Atomic uint64_t failovers;    /* requests sent on to a next child */
    _Atomic uint64_t warmup_fills; /* warm hits copied into the cold child */
    _Atomic uint64_t shadow[MSHADOW_COUNT]; /* copies, by result */
};

/* The storage. Exposed for the inline functions below only. */
struct metrics_store {
    _Atomic uint64_t scalar[M_COUNT];
    _Atomic uint64_t requests[REQ_CMD_COUNT][METRICS_PROTO_COUNT];
    _Atomic uint64_t hits[REQ_CMD_COUNT];
    _Atomic uint64_t misses[REQ_CMD_COUNT];
    _Atomic uint64_t errors[MERR_COUNT];
    _Atomic uint64_t reloads[2]; /* [0] failure, [1] success */
    _Atomic uint64_t tls_handshakes[CONN_HS_NKINDS]; /* by result */
    _Atomic uint64_t chunked_ops[MCHUNK_NOPS];       /* by op */
    /* chunks per chunked value: [i] counts values in finite bucket i
     * (not cumulative), [METRICS_CHUNKS_NLE] those above 1024 */
    _Atomic uint64_t chunked_chunks[METRICS_CHUNKS_NLE + 1];
    _Atomic uint64_t chunked_chunks_sum;  /* chunks of all those values */
    struct hist *req_hist[REQ_CMD_COUNT]; /* set once by metrics_init */
    struct metrics_server server[METRICS_SERVERS_MAX];
    struct metrics_route route[METRICS_ROUTES_MAX];
};

extern struct metrics_store metrics_store;

/* ---- setup (main thread, before and after serving) ---- */

/* Create the histograms and note the start time. Call once, before any
 * thread records. ST_OK or ST_NOMEM. Before it, histogram records are
 * ignored; counters work without it. */
enum status metrics_init(void) WUR;

/* Free the histograms (for tests and leak checkers); no thread may record
 * any more. Safe without metrics_init and twice. */
void metrics_fini(void);

/* Zero every counter, gauge and histogram (tests). Not atomic as a whole. */
void metrics_reset(void);

/* Name the backend servers: index i of the record functions below is
 * servers[i] (config->servers), labelled server="<addr as written>".
 * Call at startup and after each successful reload, with the new list.
 * An index whose name changes has its counters and histogram zeroed (so
 * a series never jumps between servers); gauges (up, sockets) are kept,
 * because handlers of the old snapshot still balance their socket counts:
 * the caller sets up for every index afterwards. Servers beyond
 * METRICS_SERVERS_MAX are not counted. A name repeated in the list gets
 * "#<index>" appended so every series stays unique.
 * ST_OK, or ST_NOMEM (a histogram could not be created; counting goes on
 * without it). Thread-safe against recorders and renderers. */
enum status metrics_set_servers(const struct cfg_server *servers, size_t n) WUR;

/* With an l1l2 orca: servers [0, nl1) of metrics_set_servers are L1, the
 * rest L2, and riven_layer_request_duration_seconds{layer} sums their
 * histograms per layer. 0 (the default) means one layer: no such family.
 * Thread-safe. */
void metrics_set_layers(size_t nl1);

/* Name the routes: index i of the metrics_route_* functions below is
 * names[i], labelled route="<name>" (a route's key prefix, "default" for
 * the default entry). Call at startup and after each successful reload.
 * A name is cut to METRICS_ROUTE_NAME_MAX bytes; a repeated one gets
 * "#<index>" appended. An index whose name changes, or that was not
 * named before, has its counters zeroed. Only the first n routes are
 * rendered; with n == 0 (no routes: configs) the route families are left
 * out altogether. Routes beyond METRICS_ROUTES_MAX are not counted.
 * ST_OK, or ST_NOMEM with the previous names kept. Thread-safe. */
enum status metrics_set_routes(const char *const *names, size_t n) WUR;

/* ---- recording (any thread, lock-free except histograms) ---- */

static inline void
metrics_add(enum metric m, uint64_t n)
{
    atomic_fetch_add_explicit(&metrics_store.scalar[m], n,
                              memory_order_relaxed);
}

/* Counters and gauges. */
static inline void
metrics_inc(enum metric m)
{
    metrics_add(m, 1);
}

static inline void
metrics_gauge_add(enum metric m, uint64_t n)
{
    metrics_add(m, n);
}

static inline void
metrics_gauge_sub(enum metric m, uint64_t n)
{
    atomic_fetch_sub_explicit(&metrics_store.scalar[m], n,
                              memory_order_relaxed);
}

static inline void
metrics_gauge_set(enum metric m, uint64_t v)
{
    atomic_store_explicit(&metrics_store.scalar[m], v, memory_order_relaxed);
}

/* One request of command cmd arrived in protocol proto (enum req_proto).
 * A multi-key get counts once per key (each is a request). */
static inline void
metrics_cmd(enum req_cmd cmd, unsigned proto)
{
    if ((unsigned)cmd < REQ_CMD_COUNT && proto < METRICS_PROTO_COUNT) {
        atomic_fetch_add_explicit(&metrics_store.requests[cmd][proto], 1,
                                  memory_order_relaxed);
    }
}

/* A get-like lookup (get, gets, gat, gats, mg) found / missed its key. */
static inline void
metrics_hit(enum req_cmd cmd)
{
    if ((unsigned)cmd < REQ_CMD_COUNT) {
        atomic_fetch_add_explicit(&metrics_store.hits[cmd], 1,
                                  memory_order_relaxed);
    }
}

static inline void
metrics_miss(enum req_cmd cmd)
{
    if ((unsigned)cmd < REQ_CMD_COUNT) {
        atomic_fetch_add_explicit(&metrics_store.misses[cmd], 1,
                                  memory_order_relaxed);
    }
}

/* One error of the given kind was answered to a client. */
static inline void
metrics_error(enum metrics_err kind)
{
    if ((unsigned)kind < MERR_COUNT) {
        atomic_fetch_add_explicit(&metrics_store.errors[kind], 1,
                                  memory_order_relaxed);
    }
}

/* A client's TLS handshake ended with hs. */
static inline void
metrics_tls_handshake(enum conn_hs hs)
{
    if ((unsigned)hs < CONN_HS_NKINDS) {
        atomic_fetch_add_explicit(&metrics_store.tls_handshakes[hs], 1,
                                  memory_order_relaxed);
    }
}

/* A chunked pool answered one client command of kind op (+1). A
 * multi-key get counts once per key. Out-of-range ops are ignored. */
static inline void
metrics_chunked_op(enum metrics_chunked_op op)
{
    if ((unsigned)op < MCHUNK_NOPS) {
        atomic_fetch_add_explicit(&metrics_store.chunked_ops[op], 1,
                                  memory_order_relaxed);
    }
}

/* A chunked read found a chunk absent: the key answered a miss. */
static inline void
metrics_chunked_chunk_miss(void)
{
    metrics_inc(M_CHUNKED_CHUNK_MISSES);
}

/* A chunked read found a chunk of another write (token, index, key tag or
 * length wrong): the key answered a miss. */
static inline void
metrics_chunked_token_mismatch(void)
{
    metrics_inc(M_CHUNKED_TOKEN_MISMATCHES);
}

/* A config reload finished (SIGHUP): ok = applied, !ok = rejected. */
static inline void
metrics_config_reload(bool ok)
{
    atomic_fetch_add_explicit(&metrics_store.reloads[ok ? 1 : 0], 1,
                              memory_order_relaxed);
}

/* Per backend server idx (index into config->servers). Out-of-range
 * indexes are ignored. */
static inline void
metrics_server_request(size_t idx)
{
    if (idx < METRICS_SERVERS_MAX) {
        atomic_fetch_add_explicit(&metrics_store.server[idx].requests, 1,
                                  memory_order_relaxed);
    }
}

static inline void
metrics_server_error(size_t idx)
{
    if (idx < METRICS_SERVERS_MAX) {
        atomic_fetch_add_explicit(&metrics_store.server[idx].errors, 1,
                                  memory_order_relaxed);
    }
}

/* Health: the server is reachable (true) or ejected/unreachable. */
static inline void
metrics_server_up(size_t idx, bool up)
{
    if (idx < METRICS_SERVERS_MAX) {
        atomic_store_explicit(&metrics_store.server[idx].up, up ? 1 : 0,
                              memory_order_relaxed);
    }
}

/* A backend socket to server idx was opened / closed. Calls must pair. */
static inline void
metrics_server_socket_open(size_t idx)
{
    if (idx < METRICS_SERVERS_MAX) {
        atomic_fetch_add_explicit(&metrics_store.server[idx].sockets, 1,
                                  memory_order_relaxed);
    }
}

static inline void
metrics_server_socket_close(size_t idx)
{
    if (idx < METRICS_SERVERS_MAX) {
        atomic_fetch_sub_explicit(&metrics_store.server[idx].sockets, 1,
                                  memory_order_relaxed);
    }
}

/* Per route idx (index into metrics_set_routes' names). Out-of-range
 * indexes are ignored. */
static inline void
metrics_route_request(size_t idx)
{
    if (idx < METRICS_ROUTES_MAX) {
        atomic_fetch_add_explicit(&metrics_store.route[idx].requests, 1,
                                  memory_order_relaxed);
    }
}

/* A request failed over to the route's next child
 * (riven_failovers_total). */
static inline void
metrics_route_failover(size_t idx)
{
    if (idx < METRICS_ROUTES_MAX) {
        atomic_fetch_add_explicit(&metrics_store.route[idx].failovers, 1,
                                  memory_order_relaxed);
    }
}

/* A warm_up route copied a warm hit into its cold child
 * (riven_warmup_fills_total). */
static inline void
metrics_route_warmup_fill(size_t idx)
{
    if (idx < METRICS_ROUTES_MAX) {
        atomic_fetch_add_explicit(&metrics_store.route[idx].warmup_fills, 1,
                                  memory_order_relaxed);
    }
}

/* A copy sent to the route's shadow ended with result r
 * (riven_shadow_requests_total). */
static inline void
metrics_route_shadow(size_t idx, enum metrics_shadow_result r)
{
    if (idx < METRICS_ROUTES_MAX && (unsigned)r < MSHADOW_COUNT) {
        atomic_fetch_add_explicit(&metrics_store.route[idx].shadow[r], 1,
                                  memory_order_relaxed);
    }
}

/* A request of command cmd took ns nanoseconds, from parsed to answered
 * (riven_request_duration_seconds). */
void metrics_observe_request(enum req_cmd cmd, uint64_t ns);

/* A chunked value of nchunks chunks was written or read whole
 * (riven_chunked_chunks; 0 for an empty value). Two relaxed atomic adds,
 * no lock. */
void metrics_chunked_chunks(uint64_t nchunks);

/* A backend round trip to server idx took ns nanoseconds
 * (riven_backend_request_duration_seconds). Ignored before
 * metrics_set_servers named idx. */
void metrics_observe_backend(size_t idx, uint64_t ns);

/* ---- reading ---- */

/* Read a scalar (tests, health decisions). */
static inline uint64_t
metrics_get(enum metric m)
{
    return atomic_load_explicit(&metrics_store.scalar[m], memory_order_relaxed);
}

/* The count of route idx's shadow copies that ended with r (tests,
 * logs); 0 for an out-of-range idx or r. */
static inline uint64_t
metrics_route_shadow_get(size_t idx, enum metrics_shadow_result r)
{
    if (idx >= METRICS_ROUTES_MAX || (unsigned)r >= MSHADOW_COUNT) {
        return 0;
    }
    return atomic_load_explicit(&metrics_store.route[idx].shadow[r],
                                memory_order_relaxed);
}

/* True when at least one registered server is up: a ready-made
 * metrics_http "healthy" callback (arg is ignored). */
bool metrics_any_server_up(void *arg);

/* Append the Prometheus text exposition (format 0.0.4) of every metric to
 * out. ST_OK, or ST_NOMEM with out holding a partial text. */
enum status metrics_render_prometheus(struct buf *out) WUR;

/* Append memcached `stats` lines, "STAT <name> <value>\r\n" ..., then
 * "END\r\n" to out. ST_OK, or ST_NOMEM with out holding a partial text. */
enum status metrics_render_stats(struct buf *out) WUR;

#endif /* RIVEN_METRICS_H */
