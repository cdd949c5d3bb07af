/*
 * main: command line, config load, signals, and the accept loop.
 *
 *   riven [-c FILE] [-l [tls:]ADDR]... [-b ADDR]... [-t] [-T] [-v] [-q] [-V]
 *         [-h]
 *         [--tls-cert FILE --tls-key FILE [--tls-ca FILE] [--tls-verify V]]
 *
 * Failures before serving starts are fatal(); after that, the daemon
 * lives on through any single connection's failure.
 */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "chunk.h"
#include "config.h"
#include "handler.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "server.h"
#include "snapshot.h"
#include "util.h"

#define MAX_ADDRS 64

#define TICK_MS 1000

#define PROBE_EVERY_MS 500  /* a round of /healthz probes starts this often */
#define PROBE_MAX_MS   500  /* a probe's connect and reply timeouts, at most */
#define PROBE_STALE_MS 5000 /* an older probe result counts as down */
#define PROBE_WORKERS  16   /* probes at once */

static struct listener *the_listener;
static _Atomic int want_reload;
static _Atomic int want_stop; /* a signal that came before the listener */

static void
usage(FILE *f)
{
    fprintf(
        f,
        "usage: riven [-c FILE] [-l [tls:]ADDR]... [-b ADDR]... [-m ADDR|off]\n"
        "             [-t] [-T] [-v] [-q] [-V] [-h]\n"
        "             [--orca NAME] [--l2 ADDR]... [--batch-listen ADDR]...\n"
        "             [--chunked] [--chunk-size N] [--batched]\n"
        "             [--tls-cert FILE] [--tls-key FILE] [--tls-ca FILE]\n"
        "             [--tls-verify MODE]\n"
        "  -c FILE  load the YAML config FILE (default: built-in)\n"
        "  -l ADDR  listen on ADDR (repeatable; replaces the file's)\n"
        "  -l tls:ADDR  listen on ADDR with TLS (needs --tls-cert, --tls-key)\n"
        "  -b ADDR  backend memcached ADDR (repeatable; replaces the "
        "file's)\n"
        "  -m ADDR  serve /metrics on ADDR, or 'off' (default %s)\n"
        "  --orca l1only|l1l2|l1l2batch   how requests use L1 and L2\n"
        "  --l2 ADDR           add an L2 server (repeatable)\n"
        "  --batch-listen ADDR listener for bulk loaders (l1l2batch)\n"
        "  --chunked           store the pool's values in chunks of %u "
        "bytes\n"
        "                      (unless the file gives a chunk_size)\n"
        "  --chunk-size N      chunk size %u..%u (implies --chunked)\n"
        "  --batched           reach the pool's servers through shared\n"
        "                      connections (backend: {mode: batched})\n"
        "  --tls-cert FILE     certificate chain (PEM) of the tls: listeners\n"
        "  --tls-key FILE      its private key (PEM)\n"
        "  --tls-ca FILE       CAs (PEM) that client certificates are checked "
        "against\n"
        "  --tls-verify MODE   none (default) | optional | require: ask "
        "clients\n"
        "                      for a certificate (optional and require need "
        "--tls-ca)\n"
        "  -t       check the config and exit (0 ok, 1 with a message)\n"
        "  -T, --print-config  check the config, print it as YAML with the\n"
        "                      defaults and the flags applied, and exit\n"
        "  -v / -q  raise / lower the log level (repeatable)\n"
        "  -V       print the version\n"
        "  -h       print this help\n"
        "ADDR is host:port, [v6addr]:port or unix:/path.\n"
        "Defaults: listen %s, backend %s.\n",
        CFG_DEFAULT_METRICS_LISTEN, CHUNK_SIZE_DEFAULT, CHUNK_SIZE_MIN,
        CHUNK_SIZE_MAX, CFG_DEFAULT_LISTEN, CFG_DEFAULT_SERVER);
}

static void
on_stop(int sig)
{
    (void)sig;
    atomic_store(&want_stop, 1);
    if (the_listener != NULL) {
        listener_stop(the_listener);
    }
}

static void
on_reload(int sig)
{
    (void)sig;
    atomic_store(&want_reload, 1);
    if (the_listener != NULL) {
        listener_wake(the_listener);
    }
}

static void
setup_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_reload;
    sigaction(SIGHUP, &sa, NULL);
}
/* Raise the soft open-file limit to the hard one, as memcached does. */
static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

struct opts {
    const char *file;
    struct cfg_addr listen[MAX_ADDRS];
    struct cfg_tls listen_tls[MAX_ADDRS]; /* on for -l tls:ADDR */
    size_t nlisten;
    size_t ntls;         /* -l tls:ADDR listeners */
    struct cfg_tls tls;  /* --tls-*: of every -l tls:ADDR listener */
    const char *tls_opt; /* the first --tls-* given, or NULL */
    struct cfg_addr servers[MAX_ADDRS];
    size_t nservers;
    struct cfg_addr l2[MAX_ADDRS]; /* --l2 */
    size_t nl2;
    struct cfg_addr batch[MAX_ADDRS]; /* --batch-listen */
    size_t nbatch;
    const char *orca;    /* --orca */
    bool chunked;        /* --chunked (or --chunk-size) */
    uint32_t chunk_size; /* --chunk-size N, 0 = not given */
    bool batched;        /* --batched */
    const char *metrics; /* -m ADDR|off, or NULL */
    bool test;
    bool print; /* -T */
    int verbosity;
};

static void
add_addr(struct cfg_addr *arr, size_t *n, const char *s)
{
    char err[256];

    if (*n == MAX_ADDRS) {
        fatal("too many addresses (at most %d)", MAX_ADDRS);
    }
    if (config_parse_addr(s, &arr[*n], err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "riven: %s\n", err);
        exit(1);
    }
    (*n)++;
}

/* A command-line mistake: "riven: MESSAGE" and exit 1, as the others. */
static void __attribute__((format(printf, 1, 2), noreturn))
usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("riven: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* -l ADDR or -l tls:ADDR. */
static void
add_listen(struct opts *o, const char *s)
{
    bool tls = strncmp(s, "tls:", 4) == 0;

    add_addr(o->listen, &o->nlisten, tls ? s + 4 : s);
    o->listen_tls[o->nlisten - 1].on = tls;
    o->ntls += tls;
}

enum {
    OPT_TLS_CERT = 256,
    OPT_TLS_KEY,
    OPT_TLS_CA,
    OPT_TLS_VERIFY,
    OPT_CHUNKED,
    OPT_CHUNK_SIZE,
    OPT_BATCHED,
};

/* --chunk-size N: CHUNK_SIZE_MIN..CHUNK_SIZE_MAX; implies --chunked. */
static void
set_chunk_size(struct opts *o, const char *arg)
{
    const char *digits = arg[0] == '-' ? arg + 1 : arg;
    uint64_t v = 0;

    if (*digits == '\0' || !util_all_digits(digits, strlen(digits))) {
        usage_error("--chunk-size: expected an integer, got '%s'", arg);
    }
    if (arg[0] == '-' || !util_parse_u64(arg, strlen(arg), &v) ||
        v < CHUNK_SIZE_MIN || v > CHUNK_SIZE_MAX) {
        usage_error("--chunk-size: %s out of range %u..%u", arg, CHUNK_SIZE_MIN,
                    CHUNK_SIZE_MAX);
    }
    o->chunked = true;
    o->chunk_size = (uint32_t)v;
}

/* --tls-cert, --tls-key, --tls-ca, --tls-verify. */
static void
set_tls_opt(struct opts *o, int c, char *arg)
{
    static const char *const names[] = {"--tls-cert", "--tls-key", "--tls-ca",
                                        "--tls-verify"};

    o->tls_opt = o->tls_opt ? o->tls_opt : names[c - OPT_TLS_CERT];
    switch (c) {
    case OPT_TLS_CERT:
        o->tls.cert = arg;
        break;
    case OPT_TLS_KEY:
        o->tls.key = arg;
        break;
    case OPT_TLS_CA:
        o->tls.ca = arg;
        break;
    default:
        if (!config_tls_verify_parse(arg, &o->tls.verify)) {
            usage_error("--tls-verify: expected none, optional or require, "
                        "got '%s'",
                        arg);
        }
        break;
    }
}

/* Every -l tls:ADDR listener takes the --tls-* settings, which need one. */
static void
finish_tls(struct opts *o)
{
    if (o->ntls == 0 && o->tls_opt != NULL) {
        usage_error("%s applies to -l tls:ADDR listeners; none given",
                    o->tls_opt);
    }
    if (o->ntls == 0) {
        return;
    }
    if (o->tls.cert == NULL || o->tls.key == NULL) {
        usage_error("-l tls:ADDR needs --tls-cert and --tls-key");
    }
    if (o->tls.verify != CFG_TLS_VERIFY_NONE && o->tls.ca == NULL) {
        usage_error("--tls-verify %s needs --tls-ca",
                    o->tls.verify == CFG_TLS_VERIFY_REQUIRE ? "require"
                                                            : "optional");
    }
    o->tls.on = true;
    o->tls.min_version = CFG_TLS_MIN_VERSION_DEFAULT;
    for (size_t i = 0; i < o->nlisten; i++) {
        if (o->listen_tls[i].on) {
            o->listen_tls[i] = o->tls;
        }
    }
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
    int c;

    static const struct option longs[] = {
        {"orca", required_argument, NULL, 'O'},
        {"l2", required_argument, NULL, '2'},
        {"batch-listen", required_argument, NULL, 'B'},
        {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
        {"tls-key", required_argument, NULL, OPT_TLS_KEY},
        {"tls-ca", required_argument, NULL, OPT_TLS_CA},
        {"tls-verify", required_argument, NULL, OPT_TLS_VERIFY},
        {"chunked", no_argument, NULL, OPT_CHUNKED},
        {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
        {"batched", no_argument, NULL, OPT_BATCHED},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"print-config", no_argument, NULL, 'T'},
        {NULL, 0, NULL, 0},
    };

    while ((c = getopt_long(argc, argv, "c:l:b:m:tTvqVh", longs, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->file = optarg;
            break;
        case 'l':
            add_listen(o, optarg);
            break;
        case 'b':
            add_addr(o->servers, &o->nservers, optarg);
            break;
        case 'm':
            o->metrics = optarg;
            break;
        case 'O':
            o->orca = optarg;
            break;
        case '2':
            add_addr(o->l2, &o->nl2, optarg);
            break;
        case 'B':
            add_addr(o->batch, &o->nbatch, optarg);
            break;
        case OPT_TLS_CERT:
        case OPT_TLS_KEY:
        case OPT_TLS_CA:
        case OPT_TLS_VERIFY:
            set_tls_opt(o, c, optarg);
            break;
        case OPT_CHUNKED:
            o->chunked = true;
            break;
        case OPT_CHUNK_SIZE:
            set_chunk_size(o, optarg);
            break;
        case OPT_BATCHED:
            o->batched = true;
            break;
        case 't':
            o->test = true;
            break;
        case 'T':
            o->print = true;
            break;
        case 'v':
            o->verbosity++;
            break;
        case 'q':
            o->verbosity--;
            break;
        case 'V':
            printf("riven %s\n", RIVEN_VERSION_STR);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(1);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "riven: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        exit(1);
    }
    finish_tls(o);
}

/* --tls-cert, --tls-key and --tls-ca can be read (now: at each reload). */
static enum status
check_tls_files(const struct opts *o, char *err, size_t errlen)
{
    const char *const names[] = {"--tls-cert", "--tls-key", "--tls-ca"};
    const char *const files[] = {o->tls.cert, o->tls.key, o->tls.ca};
    char msg[256];

    for (size_t i = 0; i < NELEMS(files); i++) {
        if (files[i] != NULL &&
            config_check_readable(files[i], msg, sizeof(msg)) != ST_OK) {
            snprintf(err, errlen, "%s: %s", names[i], msg);
            return ST_ERROR;
        }
    }
    return ST_OK;
}

/* Command-line settings override the file's. */
static enum status
apply_opts(struct config *cfg, const struct opts *o, char *err, size_t errlen)
{
    if (o->nservers > 0 && cfg->nroutes > 0) {
        snprintf(err, errlen,
                 "-b does not apply with routes: (the servers are in pools:)");
        return ST_ERROR;
    }
    if (o->chunked && cfg->nroutes > 0) {
        snprintf(err, errlen,
                 "%s does not apply with routes: (set chunked: in pools:)",
                 o->chunk_size > 0 ? "--chunk-size" : "--chunked");
        return ST_ERROR;
    }
    if (o->batched && cfg->nroutes > 0) {
        snprintf(err, errlen,
                 "--batched does not apply with routes: (set "
                 "backend: {mode: batched} in pools:)");
        return ST_ERROR;
    }
    if (check_tls_files(o, err, errlen) != ST_OK) {
        return ST_ERROR;
    }
    if (o->batched) {
        cfg->pool.batched = true;
    }
    if (o->chunk_size > 0) {
        cfg->pool.chunk_size = o->chunk_size;
    } else if (o->chunked && cfg->pool.chunk_size == 0) {
        cfg->pool.chunk_size = CHUNK_SIZE_DEFAULT;
    }
    if ((o->nlisten > 0 && config_set_listen(cfg, o->listen, o->listen_tls,
                                             o->nlisten) != ST_OK) ||
        (o->nservers > 0 &&
         config_set_servers(cfg, o->servers, o->nservers) != ST_OK)) {
        snprintf(err, errlen, "out of memory");
        return ST_NOMEM;
    }
    if ((o->nl2 > 0 && config_set_l2_servers(cfg, o->l2, o->nl2) != ST_OK) ||
        (o->nbatch > 0 &&
         config_set_batch_listen(cfg, o->batch, o->nbatch) != ST_OK)) {
        snprintf(err, errlen, "out of memory");
        return ST_NOMEM;
    }
    if (o->orca != NULL && !config_orca_parse(o->orca, &cfg->orca)) {
        snprintf(err, errlen,
                 "--orca: expected l1only, l1l2 or l1l2batch, "
                 "got '%s'",
                 o->orca);
        return ST_ERROR;
    }
    if (o->metrics != NULL &&
        config_set_metrics(cfg, o->metrics, err, errlen) != ST_OK) {
        return ST_ERROR;
    }
    return config_validate(cfg, err, errlen);
}

static struct config *
load_config(const struct opts *o)
{
    char err[512];
    struct config *cfg;

    cfg = o->file ? config_load(o->file, err, sizeof(err)) : config_default();
    if (cfg == NULL) {
        fprintf(stderr, "riven: %s\n", o->file ? err : "out of memory");
        exit(1);
    }
    if (apply_opts(cfg, o, err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "riven: %s\n", err);
        exit(1);
    }
    return cfg;
}

/* -t and -T: build the pools' rings as serving would, then say so (-t)
 * or print the configuration (-T). Releases cfg; the exit status. */
static int
check_config(struct config *cfg, const struct opts *o)
{
    char err[512];
    struct snapshot *snap;
    int rc = 0;

    snap = snapshot_create(config_ref(cfg), NULL, err, sizeof(err));
    if (snap == NULL) {
        fprintf(stderr, "riven: pool: %s\n", err);
        config_unref(cfg);
        return 1;
    }
    snapshot_unref(snap);
    if (!o->print) {
        printf("riven: configuration %s is valid\n",
               o->file ? o->file : "(built-in)");
    } else {
        printf("# riven %s -T: the effective configuration\n",
               RIVEN_VERSION_STR);
        if (config_print(cfg, stdout) != ST_OK) {
            fprintf(stderr, "riven: -T: cannot write the configuration\n");
            rc = 1;
        }
    }
    config_unref(cfg);
    return rc;
}

/* State the main loop's tick works on. */
struct main_state {
    const struct opts *opts;
    uint64_t last_conns;  /* last STATUS= sent */
    uint64_t watchdog_us; /* 0 when no watchdog */
    uint64_t last_ping;   /* ms of the last WATCHDOG=1 */
};

static uint64_t
monotonic_usec(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * The /healthz prober: a thread started with the metrics endpoint probes
 * every backend (L1's, then L2's, by metrics index) every PROBE_EVERY_MS,
 * up to PROBE_WORKERS at once, each with an "mn" over a fresh socket
 * within min(connect_ms, request_ms, PROBE_MAX_MS) to connect and as much
 * to answer. /healthz answers from the results: it never waits for a
 * backend, so a black-holed one cannot stall /metrics behind it. Each
 * probe also sets riven_backend_up.
 */

/* The last probe of one backend. */
struct probe_slot {
    char name[CFG_ADDR_NAME_MAX]; /* its address as written */
    bool up;
    uint64_t at_ms; /* when it was probed; 0: not yet */
};

/* Results by metrics index. The lock is held to copy a slot, never
 * during a probe. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake; /* stop (CLOCK_MONOTONIC) */
    bool stop;
    bool running;
    pthread_t tid;
    size_t n; /* backends of the last round */
    struct probe_slot slot[METRICS_SERVERS_MAX];
} prober = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* One round's work: the backends of a snapshot (ref: held by the round). */
struct probe_round {
    const struct cfg_server *srv[METRICS_SERVERS_MAX];
    struct conn_ctx *tls[METRICS_SERVERS_MAX]; /* srv[i]'s pool's, or NULL */
    size_t n;
    uint32_t ms;         /* each probe's connect and reply timeouts */
    _Atomic size_t next; /* next index to probe */
};

/* Ask one backend for an "mn" over a fresh socket: is it reachable? */
static bool
probe(const struct cfg_server *srv, struct conn_ctx *tls, uint32_t ms)
{
    /* an index metrics and the connect gate ignore: not client traffic */
    struct handler *h =
        handler_create(&srv->addr, tls, METRICS_SERVERS_MAX, ms, ms);
    struct request mn = {.cmd = REQ_MN};
    struct response res = {0};
    bool up = false;

    if (h != NULL && handler_queue(h, &mn, &res) == ST_OK) {
        handler_flush(h, false);
        handler_recv(h, SIZE_MAX, true);
        up = res.kind == RES_OK;
    }
    handler_destroy(h);
    return up;
}

static void *
probe_worker(void *arg)
{
    struct probe_round *r = arg;
    size_t i;

    while ((i = atomic_fetch_add(&r->next, 1)) < r->n) {
        bool up = probe(r->srv[i], r->tls[i], r->ms);

        pthread_mutex_lock(&prober.lock);
        prober.slot[i].up = up;
        prober.slot[i].at_ms = util_now_ms();
        pthread_mutex_unlock(&prober.lock);
        metrics_server_up(i, up);
    }
    return NULL;
}

/* cfg's pools in the order metrics number their servers: L1 and L2,
 * or with routes the named pools in file order. Returns how many. */
static size_t
config_pool_list(const struct config *cfg, const struct cfg_pool **out,
                 size_t max)
{
    size_t n = 0;

    if (cfg->npools == 0) {
        out[n++] = &cfg->pool;
        out[n++] = &cfg->l2;
        return n;
    }
    for (size_t i = 0; i < cfg->npools && n < max; i++) {
        out[n++] = &cfg->pools[i].pool;
    }
    return n;
}

static size_t
config_server_count(const struct config *cfg)
{
    const struct cfg_pool *pools[CFG_SERVERS_MAX];
    size_t np = config_pool_list(cfg, pools, NELEMS(pools)), n = 0;

    for (size_t p = 0; p < np; p++) {
        n += pools[p]->nservers;
    }
    return n;
}

/* List snap's backends in r and name the slots; a slot whose server
 * changed forgets its result. */
static void
round_init(struct probe_round *r, const struct snapshot *snap)
{
    const struct config *cfg = snap->cfg;
    const struct cfg_pool *pools[CFG_SERVERS_MAX];
    size_t np = config_pool_list(cfg, pools, NELEMS(pools));

    r->n = 0;
    r->ms = MIN(MIN(cfg->connect_timeout_ms, cfg->request_timeout_ms),
                PROBE_MAX_MS);
    atomic_store(&r->next, 0);
    pthread_mutex_lock(&prober.lock);
    for (size_t p = 0; p < np; p++) {
        for (size_t i = 0; i < pools[p]->nservers && r->n < METRICS_SERVERS_MAX;
             i++) {
            struct probe_slot *s = &prober.slot[r->n];
            const char *name = pools[p]->servers[i].addr.name;

            if (strcmp(s->name, name) != 0) {
                snprintf(s->name, sizeof(s->name), "%s", name);
                s->up = false;
                s->at_ms = 0;
            }
            /* the snapshot's pool p, in config_pool_list's order */
            r->tls[r->n] = cfg->npools > 0 ? snap->env.pools[p].tls
                           : p == 0        ? snap->env.l1.tls
                                           : snap->env.l2.tls;
            r->srv[r->n++] = &pools[p]->servers[i];
        }
    }
    prober.n = r->n;
    pthread_mutex_unlock(&prober.lock);
}

/* Probe every backend of the current snapshot once. */
static void
probe_all(void)
{
    static struct probe_round r; /* the prober thread's only */
    struct snapshot *snap = snapshot_get();
    pthread_t tids[PROBE_WORKERS];
    pthread_attr_t attr;
    size_t nt = 0;

    if (snap == NULL) {
        return;
    }
    round_init(&r, snap);
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, snap->cfg->thread_stack_size);
    while (nt + 1 < MIN(r.n, PROBE_WORKERS) &&
           pthread_create(&tids[nt], &attr, probe_worker, &r) == 0) {
        nt++;
    }
    pthread_attr_destroy(&attr);
    probe_worker(&r); /* this thread probes too */
    for (size_t k = 0; k < nt; k++) {
        pthread_join(tids[k], NULL);
    }
    snapshot_unref(snap);
}

static void *
prober_main(void *arg)
{
    uint64_t next = 0;

    (void)arg;
    pthread_mutex_lock(&prober.lock);
    while (!prober.stop) {
        uint64_t now = util_now_ms();
        struct timespec ts = {.tv_sec = (time_t)(next / 1000),
                              .tv_nsec = (long)(next % 1000) * 1000000L};

        if (now < next) {
            pthread_cond_timedwait(&prober.wake, &prober.lock, &ts);
            continue;
        }
        pthread_mutex_unlock(&prober.lock);
        probe_all();
        next = now + PROBE_EVERY_MS;
        pthread_mutex_lock(&prober.lock);
    }
    pthread_mutex_unlock(&prober.lock);
    return NULL;
}

/* Start the prober thread. false if it cannot start (no /healthz data:
 * every backend reads as down). */
static bool
prober_start(void)
{
    pthread_condattr_t ca;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&prober.wake, &ca);
    pthread_condattr_destroy(&ca);
    prober.running = pthread_create(&prober.tid, NULL, prober_main, NULL) == 0;
    return prober.running;
}

/* Stop the prober, after the round it may be running. */
static void
prober_stop(void)
{
    if (!prober.running) {
        return;
    }
    pthread_mutex_lock(&prober.lock);
    prober.stop = true;
    pthread_cond_signal(&prober.wake);
    pthread_mutex_unlock(&prober.lock);
    pthread_join(prober.tid, NULL);
    prober.running = false;
}

/* /healthz (libmicrohttpd's thread): backend i's last probe result, down
 * once older than PROBE_STALE_MS. Never waits for a probe. */
static bool
healthz_backend(void *arg, size_t i, char *name, size_t namelen, bool *up)
{
    bool ok;

    (void)arg;
    pthread_mutex_lock(&prober.lock);
    ok = i < prober.n;
    if (ok) {
        const struct probe_slot *s = &prober.slot[i];

        snprintf(name, namelen, "%s", s->name);
        *up = s->up && s->at_ms != 0 &&
              util_now_ms() - s->at_ms <= PROBE_STALE_MS;
    }
    pthread_mutex_unlock(&prober.lock);
    return ok;
}

/* Metrics name backend servers by index: L1's, then L2's, or the named
 * pools' in file order; and the routes by their prefixes. */
static enum status
name_servers(const struct config *cfg)
{
    const struct cfg_pool *pools[CFG_SERVERS_MAX];
    size_t np = config_pool_list(cfg, pools, NELEMS(pools));
    size_t n = config_server_count(cfg), at = 0;
    struct cfg_server *all = calloc(MAX(n, 1), sizeof(*all));
    const char **names = calloc(MAX(cfg->nroutes, 1), sizeof(*names));
    enum status st = ST_NOMEM;

    if (all != NULL && names != NULL) {
        for (size_t p = 0; p < np; p++) {
            if (pools[p]->nservers > 0) { /* no L2: servers is NULL */
                memcpy(all + at, pools[p]->servers,
                       pools[p]->nservers * sizeof(*all));
                at += pools[p]->nservers;
            }
        }
        for (size_t i = 0; i < cfg->nroutes; i++) {
            names[i] =
                cfg->routes[i].prefix ? cfg->routes[i].prefix : "default";
        }
        st = metrics_set_servers(all, n);
        if (st == ST_OK) {
            st = metrics_set_routes(names, cfg->nroutes);
        }
        metrics_set_layers(
            cfg->npools == 0 && cfg->l2.nservers > 0 ? cfg->pool.nservers : 0);
    }
    free(all);
    free(names);
    return st;
}

/* The file's log level, moved by -v/-q. */
static enum log_level
log_level_for(const struct config *cfg, const struct opts *o)
{
    int level = (int)cfg->log_level + o->verbosity;

    return (enum log_level)MAX(MIN(level, LOG_LVL_DEBUG), LOG_LVL_ERROR);
}

/* SIGHUP: re-read the file; a bad one is logged and the old one stays. */
static void
reload(const struct opts *o)
{
    char err[512];
    struct config *cfg;
    struct snapshot *snap, *prev;

    sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
               (unsigned long long)monotonic_usec());
    if (o->file == NULL) {
        log_info("reload: no config file (-c), nothing to re-read");
        sd_notify(0, "READY=1");
        return;
    }
    cfg = config_load(o->file, err, sizeof(err));
    if (cfg != NULL && apply_opts(cfg, o, err, sizeof(err)) != ST_OK) {
        config_unref(cfg);
        cfg = NULL;
    }
    prev = snapshot_get();
    snap = cfg ? snapshot_create(cfg, prev, err, sizeof(err)) : NULL;
    snapshot_unref(prev);
    if (snap == NULL) {
        metrics_config_reload(false);
        log_errorx("reload: %s; keeping the previous configuration", err);
    } else {
        log_set_level(log_level_for(snap->cfg, o));
        if (name_servers(snap->cfg) != ST_OK) {
            log_warnx("reload: no latency histogram for new servers");
        }
        snapshot_publish(snap);
        metrics_config_reload(true); /* counted once connections can see it */
        log_info("reload: %s loaded, %zu backend server(s)", o->file,
                 config_server_count(snap->cfg));
    }
    sd_notify(0, "READY=1");
}

static void
tick(void *arg)
{
    struct main_state *m = arg;
    uint64_t n = listener_connections(), now;

    if (atomic_exchange(&want_reload, 0)) {
        reload(m->opts);
    }
    if (n != m->last_conns) {
        sd_notifyf(0, "STATUS=%llu connection(s)", (unsigned long long)n);
        m->last_conns = n;
    }
    now = util_now_ms();
    if (m->watchdog_us > 0 && (now - m->last_ping) * 2000 >= m->watchdog_us) {
        sd_notify(0, "WATCHDOG=1");
        m->last_ping = now;
    }
}

/* A connection lets go of its buffers between requests (a busy one holds
 * them only while a request is in flight). glibc would then hand a large
 * freed buffer back to the kernel at once (trim, or munmap past its mmap
 * threshold), and the next 100 KiB value would fault its pages in again:
 * keep freed memory in the arenas for the next request instead, and
 * values up to 4 MiB out of mmap. */
static void
tune_malloc(void)
{
    (void)mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    (void)mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
}

int
main(int argc, char **argv)
{
    struct opts o;
    struct config *cfg;
    struct snapshot *snap;
    struct main_state m = {.opts = &o};
    struct metrics_http *mh = NULL;
    char err[512];
    int tick_ms = TICK_MS;
    uint32_t shutdown_ms;
    uint64_t left;

    memset(&o, 0, sizeof(o));
    parse_args(argc, argv, &o);
    cfg = load_config(&o);
    if (o.test || o.print) {
        return check_config(cfg, &o);
    }
    log_init(log_level_for(cfg, &o));
    raise_nofile();
    tune_malloc();
    /*
     * Handlers before the first listen(2): a client can connect, and a
     * supervisor can signal, as soon as the socket is bound.
     */
    setup_signals();
    if (metrics_init() != ST_OK || name_servers(cfg) != ST_OK) {
        fatal("metrics: out of memory");
    }
    the_listener = listener_create(cfg, err, sizeof(err));
    if (the_listener == NULL) {
        fatal("listen: %s", err);
    }
    if (atomic_load(&want_stop)) {
        listener_stop(the_listener);
    }
    snap = snapshot_create(config_ref(cfg), NULL, err, sizeof(err));
    if (snap == NULL) {
        fatal("pool: %s", err);
    }
    snapshot_publish(snap);
    if (cfg->metrics_enabled) {
        if (!prober_start()) {
            log_warnx("healthz: cannot start the prober thread");
        }
        mh = metrics_http_start(&cfg->metrics_listen, healthz_backend, NULL,
                                err, sizeof(err));
        if (mh == NULL) {
            fatal("%s", err);
        }
        log_info("metrics on http://%s/metrics", cfg->metrics_listen.name);
    }
    if (cfg->npools > 0) {
        log_info("riven %s: %zu listener(s)%s, %zu route(s) over %zu pool(s) "
                 "of %zu backend server(s), max %u connections",
                 RIVEN_VERSION_STR, listener_count(the_listener),
                 listener_activated(the_listener) ? " from systemd" : "",
                 cfg->nroutes, cfg->npools, config_server_count(cfg),
                 listener_max_connections(the_listener));
    } else {
        log_info("riven %s: %zu listener(s)%s, orca %s, %zu L1 + %zu L2 "
                 "backend server(s), max %u connections",
                 RIVEN_VERSION_STR, listener_count(the_listener),
                 listener_activated(the_listener) ? " from systemd" : "",
                 config_orca_name(cfg->orca), cfg->pool.nservers,
                 cfg->l2.nservers, listener_max_connections(the_listener));
    }
    config_unref(cfg);
    if (sd_watchdog_enabled(0, &m.watchdog_us) > 0) {
        tick_ms = (int)MIN(TICK_MS, m.watchdog_us / 4000 + 1);
    }
    sd_notify(0, "READY=1\nSTATUS=0 connection(s)");
    if (listener_run(the_listener, tick, &m, tick_ms) != ST_OK) {
        return 1;
    }
    sd_notifyf(0, "STOPPING=1\nSTATUS=draining %llu connection(s)",
               (unsigned long long)listener_connections());
    log_info("shutting down: draining %llu connection(s)",
             (unsigned long long)listener_connections());
    snap = snapshot_get();
    shutdown_ms = snap->cfg->shutdown_timeout_ms;
    snapshot_unref(snap);
    left = listener_drain(the_listener, shutdown_ms);
    if (left > 0) {
        log_warnx("shutdown: closing %llu connection(s) still busy",
                  (unsigned long long)left);
    }
    metrics_http_stop(mh);
    prober_stop();
    log_info("stopped");
    /* Threads still busy past the timeout end with the process. */
    return 0;
}
