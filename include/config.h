/*
 * config: conf/riven.yml (libyaml) -> an immutable struct config snapshot.
 *
 * Every value is validated; an error message names the file, the line and
 * the key ("riven.yml:12: pool.servers[1]: port 99999 out of range
 * 1..65535"). A snapshot is refcounted: the main thread publishes one,
 * connection threads take a reference for as long as they use it
 * (config_ref / config_unref), and reload swaps in a new one.
 *
 * Thread-safety: a snapshot is never modified after config_load returns;
 * config_ref/config_unref are atomic. Loading is not thread-safe per call
 * target but may run on any thread.
 */
#ifndef RIVEN_CONFIG_H
#define RIVEN_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "log.h"
#include "util.h"

#define CFG_ADDR_NAME_MAX 280

/* A parsed ADDR: "host:port", "[v6addr]:port" or "unix:/path". */
struct cfg_addr {
    struct sockaddr_storage ss; /* resolved address (AF_INET/6/UNIX) */
    socklen_t sslen;
    char name[CFG_ADDR_NAME_MAX]; /* as written, for logs */
};

struct cfg_server {
    struct cfg_addr addr;
    uint32_t weight; /* 1.. (default 1) */
};

/* pool.distribution: libmemcached's distributions. */
enum cfg_distribution {
    CFG_DIST_KETAMA = 0,      /* MEMCACHED_BEHAVIOR_KETAMA (md5, compat) */
    CFG_DIST_KETAMA_WEIGHTED, /* MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED */
    CFG_DIST_MODULA,          /* MEMCACHED_DISTRIBUTION_MODULA */
};

/* pool.hash: libmemcached's key hashes; CFG_HASH_DEFAULT keeps what the
 * distribution sets (md5 for ketama, one_at_a_time... as libmemcached
 * defaults otherwise). */
enum cfg_hash {
    CFG_HASH_DEFAULT = 0,
    CFG_HASH_MD5,
    CFG_HASH_CRC,
    CFG_HASH_FNV1_64,
    CFG_HASH_FNV1A_64,
    CFG_HASH_FNV1_32,
    CFG_HASH_FNV1A_32,
    CFG_HASH_HSIEH,
    CFG_HASH_MURMUR,
    CFG_HASH_JENKINS,
    CFG_HASH_ONE_AT_A_TIME,
};

/* TLS of a listener (listen[].tls, -l tls:ADDR) or of a pool's backend
 * connections (pool.tls, l1.tls, l2.tls, pools.NAME.tls). Paths are kept
 * as written; the files are read when a snapshot is built (tls.c), so
 * that SIGHUP re-reads them. */
enum cfg_tls_verify {
    CFG_TLS_VERIFY_NONE = 0, /* no peer certificate asked for or checked */
    CFG_TLS_VERIFY_OPTIONAL, /* listener: asked for, checked when sent */
    CFG_TLS_VERIFY_REQUIRE,  /* required and checked (a pool's verify: true) */
};

struct cfg_tls {
    bool on;                    /* false: plain TCP (every field unset) */
    char *cert;                 /* cert: PEM chain (listener: required) */
    char *key;                  /* key: PEM private key (with cert) */
    char *ca;                   /* ca: PEM bundle; pool: NULL = system's */
    enum cfg_tls_verify verify; /* listener: none; pool: require */
    int min_version;            /* min_version "1.2" | "1.3": OpenSSL's */
    char *ciphers;              /* ciphers: TLS 1.2 list, NULL = default */
    char *server_name;          /* pool: SNI and the name checked */
    int line;                   /* line of tls:, 0 = from the command line */
};

#define CFG_TLS_MIN_VERSION_DEFAULT  0x0303 /* TLS1_2_VERSION */
#define CFG_DEFAULT_TLS_HANDSHAKE_MS 3000

/* A pool of memcached servers: l1 (alias "pool"), l2 or pools.NAME. */
struct cfg_pool {
    struct cfg_tls tls;         /* tls */
    struct cfg_server *servers; /* servers */
    size_t nservers;
    enum cfg_distribution distribution; /* distribution */
    enum cfg_hash hash;                 /* hash */
    uint32_t failure_limit;             /* failure_limit */
    uint32_t retry_timeout_ms;          /* retry_timeout_ms */
    bool eject_rehash;                  /* eject_rehash */
    char hash_tag[3];     /* hash_tag: two characters, "" = the whole key */
    uint32_t chunk_size;  /* chunked.chunk_size: payload bytes per chunk;
                             0 = not chunked (chunk.h) */
    bool batched;         /* backend.mode: batched (batch.h), else a
                             socket per connection thread */
    uint32_t connections; /* backend.connections: shared sockets per
                             server when batched */
    uint32_t batch_max;   /* backend.batch_max: requests per write */
};

/* pools.NAME: a pool with a name, for routes. */
struct cfg_named_pool {
    char *name;
    struct cfg_pool pool;
};

/* A route (routes[].route, routes[].default): a pool, or a rule over
 * child routes. */
enum cfg_route_kind {
    CFG_ROUTE_POOL = 0,    /* pool: pools[pool] */
    CFG_ROUTE_ALL_SYNC,    /* writes to every child, the worst answer */
    CFG_ROUTE_ALL_FASTEST, /* writes to every child, the first success */
    CFG_ROUTE_FAILOVER,    /* children in order, the next on an error */
    CFG_ROUTE_SHADOW,      /* child[0] serves; child[1] gets a copy */
    CFG_ROUTE_WARM_UP,     /* child[0] cold, child[1] warm */
    CFG_ROUTE_L1L2,        /* child[0] l1, child[1] l2 */
};

struct cfg_route {
    enum cfg_route_kind kind;
    size_t pool;             /* POOL: index in config.pools */
    uint32_t ttl_max;        /* POOL: writes' TTL clamped to it, 0 = none */
    struct cfg_route *child; /* nchild children (owned) */
    size_t nchild;
    bool read_failover; /* all_sync, all_fastest: read: failover */
    bool miss;          /* failover: miss: true (a get miss fails over) */
    double fraction;    /* shadow: share of keys copied, 0..1 */
    int line;           /* where it was written, for messages */
};

/* One routes: entry. */
struct cfg_route_entry {
    char *prefix; /* key prefix; NULL for the default entry */
    size_t nprefix;
    struct cfg_route route;
};

/* orca: how a request uses the pools. */
enum cfg_orca {
    CFG_ORCA_L1ONLY = 0, /* one pool */
    CFG_ORCA_L1L2,       /* RAM cache (l1) in front of the truth (l2) */
    CFG_ORCA_L1L2BATCH,  /* bulk loaders: refresh only keys hot in l1 */
};

struct config {
    _Atomic uint32_t refs;
    char *path;                 /* file it came from, or NULL */
    struct cfg_addr *listen;    /* listeners */
    struct cfg_tls *listen_tls; /* nlisten entries: listen[i].tls */
    size_t nlisten;
    struct cfg_pool pool;         /* l1: (alias pool:) */
    struct cfg_pool l2;           /* l2: (l1l2 orcas only) */
    struct cfg_named_pool *pools; /* pools: (routes only) */
    size_t npools;
    struct cfg_route_entry *routes; /* routes:, in file order; the default */
    size_t nroutes;                 /* entry (prefix NULL) is one of them */
    enum cfg_orca orca;             /* orca */
    uint32_t key_locks;             /* key_locks: stripes, 0 = off */
    struct cfg_addr *batch_listen;  /* batch_listen: l1l2batch */
    size_t nbatch_listen;
    uint32_t connect_timeout_ms;       /* timeouts.connect_ms */
    uint32_t request_timeout_ms;       /* timeouts.request_ms */
    uint32_t tls_handshake_timeout_ms; /* timeouts.tls_handshake_ms */
    uint32_t max_connections;          /* 0 = from the fd limit */
    uint32_t shutdown_timeout_ms;      /* drain limit on SIGTERM */
    uint32_t client_idle_timeout_ms;   /* 0 = off */
    uint32_t client_write_timeout_ms;  /* 0 = off */
    uint32_t backend_idle_timeout_ms;  /* 0 = keep sockets */
    size_t thread_stack_size;          /* bytes */
    size_t item_size_max;              /* bytes */
    size_t client_max_buffer;          /* bytes per connection, 0 = derived */
    enum log_level log_level;
    uint32_t unix_mode;             /* unix_socket_mode, e.g. 0700 */
    struct cfg_addr metrics_listen; /* metrics.listen (TCP only) */
    bool metrics_enabled;           /* false after "listen: off" */
};

/* Defaults (also what a file that omits a key gets). */
#define CFG_DEFAULT_LISTEN            "127.0.0.1:11311"
#define CFG_DEFAULT_SERVER            "127.0.0.1:11211"
#define CFG_DEFAULT_TIMEOUT_MS        1000
#define CFG_DEFAULT_CONNECT_MS        4000 /* libmemcached's default */
#define CFG_DEFAULT_SHUTDOWN_MS       10000
#define CFG_DEFAULT_CLIENT_WRITE_MS   60000
#define CFG_DEFAULT_FAILURE_LIMIT     3
#define CFG_DEFAULT_RETRY_MS          1000
#define CFG_DEFAULT_BATCH_CONNECTIONS 1
#define CFG_DEFAULT_BATCH_MAX         256
#define CFG_DEFAULT_KEY_LOCKS         1024
#define CFG_DEFAULT_STACK_SIZE        (256u * 1024)
#define CFG_DEFAULT_ITEM_SIZE_MAX     (1024u * 1024)
/* client_max_buffer: derived as this many item_size_max; at least
 * CFG_CLIENT_BUFFER_MIN_ITEMS of them (a largest set in, a largest value
 * out) and CFG_CLIENT_BUFFER_FLOOR (a longest get line, 1 MiB, and the
 * first replies to it), whether derived or set. */
#define CFG_CLIENT_BUFFER_ITEMS     8
#define CFG_CLIENT_BUFFER_MIN_ITEMS 2
#define CFG_CLIENT_BUFFER_FLOOR     (2u * 1024 * 1024)
#define CFG_DEFAULT_UNIX_MODE       0700
#define CFG_DEFAULT_METRICS_LISTEN  "127.0.0.1:11299"

/* Bounds of pools: and routes:. */
#define CFG_ROUTES_MAX      4096    /* routes: entries, the default included */
#define CFG_SERVERS_MAX     256     /* servers over all named pools */
#define CFG_POOL_NAME_MAX   64      /* bytes of a pool name */
#define CFG_PREFIX_MAX      250     /* bytes of a prefix: a key's limit */
#define CFG_ROUTE_TTL_MAX   2592000 /* ttl_max: memcached's 30 days */
#define CFG_ROUTE_DEPTH_MAX 16      /* rules nested in one route */

/* Built-in defaults: listen 127.0.0.1:11311, one backend 127.0.0.1:11211,
 * metrics on 127.0.0.1:11299.
 * NULL only when memory runs out. Caller owns one reference. */
struct config *config_default(void) WUR;

/* Load and validate a YAML file. NULL on failure with a message in err
 * (always NUL-terminated): a missing file names its path; a bad value
 * names its line and key. Caller owns one reference. */
struct config *config_load(const char *path, char *err, size_t errlen) WUR;

/* Same, from memory; name is used in messages instead of a path. */
struct config *config_load_string(const char *yaml, size_t len,
                                  const char *name, char *err,
                                  size_t errlen) WUR;

/* Parse one ADDR. ST_OK, or ST_ERROR with a message in err. Host names
 * are resolved here (getaddrinfo), once. */
enum status config_parse_addr(const char *s, struct cfg_addr *out, char *err,
                              size_t errlen) WUR;

/* Replace the listeners / servers (command line -l / -b). ST_OK or
 * ST_NOMEM. Only on a snapshot not yet shared with other threads.
 * config_set_listen's tls is NULL (all plain) or n entries, copied. */
enum status config_set_listen(struct config *cfg, const struct cfg_addr *a,
                              const struct cfg_tls *tls, size_t n) WUR;
enum status config_set_servers(struct config *cfg, const struct cfg_addr *a,
                               size_t n) WUR;
/* Replace l2's servers (--l2) and the batch listeners (--batch-listen). */
enum status config_set_l2_servers(struct config *cfg, const struct cfg_addr *a,
                                  size_t n) WUR;
enum status config_set_batch_listen(struct config *cfg,
                                    const struct cfg_addr *a, size_t n) WUR;
/* The bytes one client connection may hold (client_max_buffer, or its
 * default derived from item_size_max). */
size_t config_client_max_buffer(const struct config *cfg);

/* Cross-key rules (an l1l2 orca needs l2 servers...). ST_OK, or ST_ERROR
 * with a message. config_load applies it; call it again after changing a
 * snapshot from the command line. */
enum status config_validate(const struct config *cfg, char *err,
                            size_t errlen) WUR;

/* "none" | "optional" | "require" (a listener's verify); false if
 * unknown. */
bool config_tls_verify_parse(const char *s, enum cfg_tls_verify *out);

/* ST_OK if file can be read now (access(R_OK)) and is not a directory;
 * else ST_ERROR with "FILE: strerror" in err. What config_load checks of
 * every cert, key and ca path. */
enum status config_check_readable(const char *file, char *err,
                                  size_t errlen) WUR;

/* "l1only" | "l1l2" | "l1l2batch"; false if unknown. */
bool config_orca_parse(const char *s, enum cfg_orca *out);
const char *config_orca_name(enum cfg_orca orca);

/* Set the metrics endpoint from text (command line -m): "off" disables it,
 * otherwise a TCP ADDR ("host:port" or "[v6addr]:port"; not unix:). ST_OK,
 * or ST_ERROR with a message in err and cfg unchanged. Only on a snapshot
 * not yet shared with other threads. */
enum status config_set_metrics(struct config *cfg, const char *s, char *err,
                               size_t errlen) WUR;

/* Write cfg as YAML to f (riven -T): every key config_load reads, in its
 * order and spelling, defaults filled in; config_load reads it back to
 * the same snapshot, and printing that prints the same bytes. ST_OK, or
 * ST_ERROR if f reports a write error. */
enum status config_print(const struct config *cfg, FILE *f) WUR;

struct config *config_ref(struct config *cfg);
/* Drop a reference; the last one frees. NULL-safe. */
void config_unref(struct config *cfg);

#endif /* RIVEN_CONFIG_H */
