/*
 * config: YAML text -> an immutable, validated struct config snapshot.
 *
 * libyaml composes the text into a document (a tree of nodes that carry
 * their line). Each mapping is then walked against a command table in
 * twemproxy's manner, {name, setter, offsetof(field)}: the setter checks
 * the node's type and range and stores into base + offset. Nested mappings
 * (pool, timeouts, a server entry) are commands whose setter walks a
 * sub-table. The snapshot starts from config_default(), so an omitted key
 * keeps its default.
 *
 * Invariants: a returned snapshot has at least one listener and one server
 * and every value in range; on any error, err holds one line naming the
 * file, the 1-based line and the key path, and nothing leaks.
 * libyaml appears only in this file.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <yaml.h>

#define CFG_PATH_MAX 128         /* "pool.servers[12].weight" */
#define CFG_FILE_MAX (16u << 20) /* refuse larger config files */
#define CFG_SHOW_MAX 64          /* bytes of a bad value quoted */

struct loader {
    yaml_document_t *doc; /* ref: the document being walked */
    const char *name;     /* ref: file name used in messages */
    char *err;            /* ref: caller's message buffer */
    size_t errlen;
};

struct command;
typedef enum status (*setter_fn)(struct loader *ld, yaml_node_t *val,
                                 const struct command *cmd, void *base,
                                 const char *path);

/* One key of a mapping: its setter stores into base + offset. */
struct command {
    const char *name;
    setter_fn set;
    size_t offset;
    uint64_t min; /* range of an integer field */
    uint64_t max;
    const struct command *sub; /* keys of a nested mapping, or NULL */
};

static enum status set_u32(struct loader *, yaml_node_t *,
                           const struct command *, void *, const char *);
static enum status set_size(struct loader *, yaml_node_t *,
                            const struct command *, void *, const char *);
static enum status set_mode(struct loader *, yaml_node_t *,
                            const struct command *, void *, const char *);
static enum status set_log_level(struct loader *, yaml_node_t *,
                                 const struct command *, void *, const char *);
static enum status set_map(struct loader *, yaml_node_t *,
                           const struct command *, void *, const char *);
static enum status set_listen(struct loader *, yaml_node_t *,
                              const struct command *, void *, const char *);
static enum status set_servers(struct loader *, yaml_node_t *,
                               const struct command *, void *, const char *);
static enum status set_pool(struct loader *, yaml_node_t *,
                            const struct command *, void *, const char *);
static enum status set_orca(struct loader *, yaml_node_t *,
                            const struct command *, void *, const char *);
static enum status set_batch_listen(struct loader *, yaml_node_t *,
                                    const struct command *, void *,
                                    const char *);
static enum status set_addr(struct loader *, yaml_node_t *,
                            const struct command *, void *, const char *);
static enum status set_distribution(struct loader *, yaml_node_t *,
                                    const struct command *, void *,
                                    const char *);
static enum status set_hash(struct loader *, yaml_node_t *,
                            const struct command *, void *, const char *);
static enum status set_bool(struct loader *, yaml_node_t *,
                            const struct command *, void *, const char *);
static enum status set_metrics_listen(struct loader *, yaml_node_t *,
                                      const struct command *, void *,
                                      const char *);

#define CFG_OFF(f) offsetof(struct config, f)

static const struct command timeout_commands[] = {
    {"connect_ms", set_u32, CFG_OFF(connect_timeout_ms), 1, 3600000, NULL},
    {"request_ms", set_u32, CFG_OFF(request_timeout_ms), 1, 3600000, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const struct command metrics_commands[] = {
    {"listen", set_metrics_listen, 0, 0, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

#define POOL_OFF(f) offsetof(struct cfg_pool, f)

/* Keys of a pool (pool:, l1:, l2:); the base is a struct cfg_pool. */
static const struct command pool_commands[] = {
    {"servers", set_servers, 0, 0, 0, NULL},
    {"distribution", set_distribution, POOL_OFF(distribution), 0, 0, NULL},
    {"hash", set_hash, POOL_OFF(hash), 0, 0, NULL},
    {"failure_limit", set_u32, POOL_OFF(failure_limit), 1, 1000, NULL},
    {"retry_timeout_ms", set_u32, POOL_OFF(retry_timeout_ms), 1, 3600000, NULL},
    {"eject_rehash", set_bool, POOL_OFF(eject_rehash), 0, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const char *const distribution_names[] = {"ketama", "ketama_weighted",
                                                 "modula", NULL};
static const char *const hash_names[] = {
    "default",  "md5",   "crc",    "fnv1_64", "fnv1a_64",      "fnv1_32",
    "fnv1a_32", "hsieh", "murmur", "jenkins", "one_at_a_time", NULL};
static const char *const bool_names[] = {"false", "true", NULL};

/* Keys of one pool.servers entry written as a mapping. */
static const struct command server_commands[] = {
    {"addr", set_addr, offsetof(struct cfg_server, addr), 0, 0, NULL},
    {"weight", set_u32, offsetof(struct cfg_server, weight), 1, 65535, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const struct command config_commands[] = {
    {"listen", set_listen, 0, 0, 0, NULL},
    {"pool", set_pool, CFG_OFF(pool), 0, 0, pool_commands},
    {"l1", set_pool, CFG_OFF(pool), 0, 0, pool_commands},
    {"l2", set_pool, CFG_OFF(l2), 0, 0, pool_commands},
    {"orca", set_orca, CFG_OFF(orca), 0, 0, NULL},
    {"key_locks", set_u32, CFG_OFF(key_locks), 0, 1048576, NULL},
    {"batch_listen", set_batch_listen, 0, 0, 0, NULL},
    {"timeouts", set_map, 0, 0, 0, timeout_commands},
    {"max_connections", set_u32, CFG_OFF(max_connections), 0, 10000000, NULL},
    {"shutdown_timeout_ms", set_u32, CFG_OFF(shutdown_timeout_ms), 0, 3600000,
     NULL},
    {"client_idle_timeout_ms", set_u32, CFG_OFF(client_idle_timeout_ms), 0,
     86400000, NULL},
    {"client_write_timeout_ms", set_u32, CFG_OFF(client_write_timeout_ms), 0,
     86400000, NULL},
    {"backend_idle_timeout_ms", set_u32, CFG_OFF(backend_idle_timeout_ms), 0,
     86400000, NULL},
    {"thread_stack_size", set_size, CFG_OFF(thread_stack_size), 65536, 67108864,
     NULL},
    {"item_size_max", set_size, CFG_OFF(item_size_max), 1024, 1073741824, NULL},
    {"client_max_buffer", set_size, CFG_OFF(client_max_buffer), 0,
     (size_t)1 << 40, NULL},
    {"log_level", set_log_level, CFG_OFF(log_level), 0, 0, NULL},
    {"unix_socket_mode", set_mode, CFG_OFF(unix_mode), 0, 0777, NULL},
    {"metrics", set_map, 0, 0, 0, metrics_commands},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* ---- messages ---- */

/* "name:line: path: message"; path may be NULL. Returns ST_ERROR. */
static enum status __attribute__((format(printf, 4, 5)))
cfg_err(struct loader *ld, const yaml_node_t *node, const char *path,
        const char *fmt, ...)
{
    va_list ap;
    int n;

    if (ld->err == NULL || ld->errlen == 0) {
        return ST_ERROR;
    }
    n = snprintf(ld->err, ld->errlen, "%s:%zu: %s%s", ld->name,
                 node->start_mark.line + 1, path ? path : "", path ? ": " : "");
    if (n >= 0 && (size_t)n < ld->errlen) {
        va_start(ap, fmt);
        vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return ST_ERROR;
}

/* What a node is, for "expected X, got Y": a quoted scalar or a kind. */
static const char *
describe(const yaml_node_t *node, char *buf, size_t size)
{
    size_t len;

    switch (node->type) {
    case YAML_SCALAR_NODE:
        len = node->data.scalar.length;
        if (len == 0) {
            return "an empty value";
        }
        snprintf(buf, size, "'%.*s%s'", (int)MIN(len, CFG_SHOW_MAX),
                 (const char *)node->data.scalar.value,
                 len > CFG_SHOW_MAX ? "..." : "");
        return buf;
    case YAML_SEQUENCE_NODE:
        return "a sequence";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static enum status
expect(struct loader *ld, const yaml_node_t *node, const char *path,
       yaml_node_type_t type, const char *what)
{
    char buf[CFG_SHOW_MAX + 8];

    if (node->type == type) {
        return ST_OK;
    }
    return cfg_err(ld, node, path, "expected %s, got %s", what,
                   describe(node, buf, sizeof(buf)));
}

/* The text of a scalar node (NUL-terminated by libyaml), or NULL after
 * an error: wrong type or an embedded NUL byte. */
static const char *
scalar(struct loader *ld, const yaml_node_t *node, const char *path,
       const char *what)
{
    const char *s;

    if (expect(ld, node, path, YAML_SCALAR_NODE, what) != ST_OK) {
        return NULL;
    }
    s = (const char *)node->data.scalar.value;
    if (strlen(s) != node->data.scalar.length) {
        cfg_err(ld, node, path, "expected %s, got a NUL byte", what);
        return NULL;
    }
    return s;
}

/* ---- scalar setters ---- */

/* A plain decimal integer within [cmd->min, cmd->max]. */
static enum status
parse_uint(struct loader *ld, yaml_node_t *val, const struct command *cmd,
           const char *path, uint64_t *out)
{
    const char *s = scalar(ld, val, path, "an integer");
    const char *digits;
    char buf[CFG_SHOW_MAX + 8];
    uint64_t v = 0;

    if (s == NULL) {
        return ST_ERROR;
    }
    digits = s[0] == '-' ? s + 1 : s; /* "-5" is out of range, not junk */
    if (!util_all_digits(digits, strlen(digits))) {
        return cfg_err(ld, val, path, "expected an integer, got %s",
                       describe(val, buf, sizeof(buf)));
    }
    if (s[0] == '-' || !util_parse_u64(s, strlen(s), &v) || v < cmd->min ||
        v > cmd->max) {
        return cfg_err(ld, val, path, "%.*s out of range %" PRIu64 "..%" PRIu64,
                       CFG_SHOW_MAX, s, cmd->min, cmd->max);
    }
    *out = v;
    return ST_OK;
}

static enum status
set_u32(struct loader *ld, yaml_node_t *val, const struct command *cmd,
        void *base, const char *path)
{
    uint64_t v = 0;

    if (parse_uint(ld, val, cmd, path, &v) != ST_OK) {
        return ST_ERROR;
    }
    *(uint32_t *)(void *)((char *)base + cmd->offset) = (uint32_t)v;
    return ST_OK;
}

static enum status
set_size(struct loader *ld, yaml_node_t *val, const struct command *cmd,
         void *base, const char *path)
{
    uint64_t v = 0;

    if (parse_uint(ld, val, cmd, path, &v) != ST_OK) {
        return ST_ERROR;
    }
    *(size_t *)(void *)((char *)base + cmd->offset) = (size_t)v;
    return ST_OK;
}

/* Octal permission bits: "0700", "700" or "0o700". */
static enum status
set_mode(struct loader *ld, yaml_node_t *val, const struct command *cmd,
         void *base, const char *path)
{
    const char *s = scalar(ld, val, path, "an octal mode");
    char buf[CFG_SHOW_MAX + 8];
    const char *p;
    uint64_t v = 0;

    if (s == NULL) {
        return ST_ERROR;
    }
    p = strncmp(s, "0o", 2) == 0 ? s + 2 : s;
    if (*p == '\0' || strspn(p, "01234567") != strlen(p)) {
        return cfg_err(ld, val, path,
                       "expected an octal mode such as 0700, got %s",
                       describe(val, buf, sizeof(buf)));
    }
    for (; *p != '\0' && v <= cmd->max; p++) {
        v = v * 8 + (uint64_t)(*p - '0');
    }
    if (v > cmd->max) {
        return cfg_err(ld, val, path, "%.*s out of range 0..0%" PRIo64,
                       CFG_SHOW_MAX, s, cmd->max);
    }
    *(uint32_t *)(void *)((char *)base + cmd->offset) = (uint32_t)v;
    return ST_OK;
}

static enum status
set_log_level(struct loader *ld, yaml_node_t *val, const struct command *cmd,
              void *base, const char *path)
{
    const char *s = scalar(ld, val, path, "a log level");
    char buf[CFG_SHOW_MAX + 8];
    enum log_level level;

    if (s == NULL) {
        return ST_ERROR;
    }
    if (!log_level_parse(s, &level)) {
        return cfg_err(ld, val, path,
                       "expected error, warn, info or debug, got %s",
                       describe(val, buf, sizeof(buf)));
    }
    *(enum log_level *)(void *)((char *)base + cmd->offset) = level;
    return ST_OK;
}

/* A scalar that must be one of names[]; its index goes to *out. */
static enum status
set_word(struct loader *ld, yaml_node_t *val, const char *path,
         const char *const *names, const char *what, int *out)
{
    const char *s = scalar(ld, val, path, what);
    char buf[CFG_SHOW_MAX + 8], list[256] = "";
    size_t n = 0;

    if (s == NULL) {
        return ST_ERROR;
    }
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return ST_OK;
        }
        n += (size_t)snprintf(list + n, sizeof(list) - MIN(n, sizeof(list)),
                              "%s%s", i ? ", " : "", names[i]);
    }
    return cfg_err(ld, val, path, "expected one of %s, got %s", list,
                   describe(val, buf, sizeof(buf)));
}

static enum status
set_distribution(struct loader *ld, yaml_node_t *val, const struct command *cmd,
                 void *base, const char *path)
{
    int i = 0;

    if (set_word(ld, val, path, distribution_names, "a distribution", &i) !=
        ST_OK) {
        return ST_ERROR;
    }
    *(enum cfg_distribution *)(void *)((char *)base + cmd->offset) =
        (enum cfg_distribution)i;
    return ST_OK;
}

static enum status
set_hash(struct loader *ld, yaml_node_t *val, const struct command *cmd,
         void *base, const char *path)
{
    int i = 0;

    if (set_word(ld, val, path, hash_names, "a hash", &i) != ST_OK) {
        return ST_ERROR;
    }
    *(enum cfg_hash *)(void *)((char *)base + cmd->offset) = (enum cfg_hash)i;
    return ST_OK;
}

static const char *const orca_names[] = {"l1only", "l1l2", "l1l2batch", NULL};

bool
config_orca_parse(const char *s, enum cfg_orca *out)
{
    for (int i = 0; orca_names[i] != NULL; i++) {
        if (strcmp(s, orca_names[i]) == 0) {
            *out = (enum cfg_orca)i;
            return true;
        }
    }
    return false;
}

const char *
config_orca_name(enum cfg_orca orca)
{
    return (unsigned)orca < 3 ? orca_names[orca] : "?";
}

static enum status
set_orca(struct loader *ld, yaml_node_t *val, const struct command *cmd,
         void *base, const char *path)
{
    int i = 0;

    if (set_word(ld, val, path, orca_names, "an orca", &i) != ST_OK) {
        return ST_ERROR;
    }
    *(enum cfg_orca *)(void *)((char *)base + cmd->offset) = (enum cfg_orca)i;
    return ST_OK;
}

static enum status
set_bool(struct loader *ld, yaml_node_t *val, const struct command *cmd,
         void *base, const char *path)
{
    int i = 0;

    if (set_word(ld, val, path, bool_names, "true or false", &i) != ST_OK) {
        return ST_ERROR;
    }
    *(bool *)(void *)((char *)base + cmd->offset) = i == 1;
    return ST_OK;
}

/* ---- mappings ---- */

static const struct command *
find_command(const struct command *table, const char *name)
{
    for (; table->name != NULL; table++) {
        if (strcmp(table->name, name) == 0) {
            return table;
        }
    }
    return NULL;
}

/* Walk one mapping against table: unknown and duplicate keys are errors.
 * Sets *seen (if not NULL) to a bit per table index that was present. */
static enum status
walk_mapping(struct loader *ld, yaml_node_t *map, const struct command *table,
             void *base, const char *prefix, uint64_t *seen)
{
    char path[CFG_PATH_MAX];
    uint64_t mask = 0;
    yaml_node_pair_t *pair;

    if (expect(ld, map, prefix, YAML_MAPPING_NODE, "a mapping") != ST_OK) {
        return ST_ERROR;
    }
    for (pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, pair->key);
        yaml_node_t *v = yaml_document_get_node(ld->doc, pair->value);
        const char *name = scalar(ld, k, prefix, "a key");
        const struct command *cmd;

        if (name == NULL) {
            return ST_ERROR;
        }
        cmd = find_command(table, name);
        if (cmd == NULL) {
            return cfg_err(ld, k, prefix, "unknown key '%.*s'", CFG_SHOW_MAX,
                           name);
        }
        if (mask & (UINT64_C(1) << (cmd - table))) {
            return cfg_err(ld, k, prefix, "duplicate key '%s'", name);
        }
        mask |= UINT64_C(1) << (cmd - table);
        snprintf(path, sizeof(path), "%s%s%s", prefix ? prefix : "",
                 prefix ? "." : "", name);
        if (cmd->set(ld, v, cmd, base, path) != ST_OK) {
            return ST_ERROR;
        }
    }
    if (seen != NULL) {
        *seen = mask;
    }
    return ST_OK;
}

static enum status
set_map(struct loader *ld, yaml_node_t *val, const struct command *cmd,
        void *base, const char *path)
{
    return walk_mapping(ld, val, cmd->sub, base, path, NULL);
}

/* ---- address lists ---- */

typedef enum status (*elem_fn)(struct loader *ld, yaml_node_t *node,
                               const char *path, void *elem);

static enum status
set_addr(struct loader *ld, yaml_node_t *val, const struct command *cmd,
         void *base, const char *path)
{
    struct cfg_addr *a = (void *)((char *)base + cmd->offset);
    const char *s = scalar(ld, val, path, "an address");
    char msg[256];

    if (s == NULL) {
        return ST_ERROR;
    }
    if (config_parse_addr(s, a, msg, sizeof(msg)) != ST_OK) {
        return cfg_err(ld, val, path, "%s", msg);
    }
    return ST_OK;
}

static enum status
listen_elem(struct loader *ld, yaml_node_t *node, const char *path, void *elem)
{
    static const struct command cmd = {"", set_addr, 0, 0, 0, NULL};

    return set_addr(ld, node, &cmd, elem, path);
}

/* A server is "ADDR" or {addr: ADDR, weight: N}. */
static enum status
server_elem(struct loader *ld, yaml_node_t *node, const char *path, void *elem)
{
    struct cfg_server *srv = elem;
    uint64_t seen;

    srv->weight = 1;
    if (node->type != YAML_MAPPING_NODE) {
        return set_addr(ld, node, &server_commands[0], srv, path);
    }
    if (walk_mapping(ld, node, server_commands, srv, path, &seen) != ST_OK) {
        return ST_ERROR;
    }
    if (!(seen & 1)) {
        return cfg_err(ld, node, path, "missing key 'addr'");
    }
    return ST_OK;
}

/* Parse a non-empty sequence into a new array of n elements of size. */
static enum status
parse_seq(struct loader *ld, yaml_node_t *seq, const char *path, size_t size,
          elem_fn fn, void **out, size_t *nout)
{
    char epath[CFG_PATH_MAX];
    char *arr = NULL;
    size_t n;

    if (expect(ld, seq, path, YAML_SEQUENCE_NODE, "a sequence") != ST_OK) {
        return ST_ERROR;
    }
    n = (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n == 0) {
        return cfg_err(ld, seq, path,
                       "empty list, at least one address is required");
    }
    arr = calloc(n, size);
    if (arr == NULL) {
        util_errf(ld->err, ld->errlen, "%s: out of memory", ld->name);
        return ST_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        int id = seq->data.sequence.items.start[i];

        snprintf(epath, sizeof(epath), "%s[%zu]", path, i);
        if (fn(ld, yaml_document_get_node(ld->doc, id), epath,
               arr + i * size) != ST_OK) {
            goto error;
        }
    }
    *out = arr;
    *nout = n;
    return ST_OK;

error:
    free(arr);
    return ST_ERROR;
}

/* Parse a list of addresses into *dst (replacing it) and *ndst. */
static enum status
set_addr_list(struct loader *ld, yaml_node_t *val, const char *path,
              struct cfg_addr **dst, size_t *ndst)
{
    void *arr = NULL;
    size_t n = 0;

    if (parse_seq(ld, val, path, sizeof(**dst), listen_elem, &arr, &n) !=
        ST_OK) {
        return ST_ERROR;
    }
    free(*dst);
    *dst = arr;
    *ndst = n;
    return ST_OK;
}

static enum status
set_listen(struct loader *ld, yaml_node_t *val, const struct command *cmd,
           void *base, const char *path)
{
    struct config *cfg = base;

    (void)cmd;
    return set_addr_list(ld, val, path, &cfg->listen, &cfg->nlisten);
}

static enum status
set_servers(struct loader *ld, yaml_node_t *val, const struct command *cmd,
            void *base, const char *path)
{
    struct cfg_pool *pool = base;
    void *arr = NULL;
    size_t n = 0;

    (void)cmd;
    if (parse_seq(ld, val, path, sizeof(*pool->servers), server_elem, &arr,
                  &n) != ST_OK) {
        return ST_ERROR;
    }
    free(pool->servers);
    pool->servers = arr;
    pool->nservers = n;
    return ST_OK;
}

/* pool:, l1: or l2: a mapping of pool_commands over that pool. */
static enum status
set_pool(struct loader *ld, yaml_node_t *val, const struct command *cmd,
         void *base, const char *path)
{
    return walk_mapping(ld, val, cmd->sub, (char *)base + cmd->offset, path,
                        NULL);
}

static enum status
set_batch_listen(struct loader *ld, yaml_node_t *val, const struct command *cmd,
                 void *base, const char *path)
{
    struct config *cfg = base;

    (void)cmd;
    return set_addr_list(ld, val, path, &cfg->batch_listen,
                         &cfg->nbatch_listen);
}

/* metrics.listen: "off", or a TCP ADDR. */
static enum status
set_metrics_listen(struct loader *ld, yaml_node_t *val,
                   const struct command *cmd, void *base, const char *path)
{
    const char *s = scalar(ld, val, path, "an address or off");
    char msg[256];

    (void)cmd;
    if (s == NULL) {
        return ST_ERROR;
    }
    if (config_set_metrics(base, s, msg, sizeof(msg)) != ST_OK) {
        return cfg_err(ld, val, path, "%s", msg);
    }
    return ST_OK;
}

/* ---- addresses ---- */

static enum status
parse_unix(const char *path, struct cfg_addr *out, char *err, size_t errlen)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
    size_t len = strlen(path);

    if (len == 0) {
        util_errf(err, errlen, "empty unix socket path in 'unix:'");
        return ST_ERROR;
    }
    if (len >= sizeof(un->sun_path)) {
        util_errf(err, errlen, "unix socket path too long (%zu bytes, max %zu)",
                  len, sizeof(un->sun_path) - 1);
        return ST_ERROR;
    }
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, len + 1);
    out->sslen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    return ST_OK;
}

/* Resolve host (numeric only when v6, i.e. written in brackets) and store
 * the first result with port. */
static enum status
resolve(const char *host, uint16_t port, bool v6, struct cfg_addr *out,
        char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char ebuf[128];
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = v6 ? AF_INET6 : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = v6 ? AI_NUMERICHOST : 0;
    rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 && v6) {
        util_errf(err, errlen, "invalid IPv6 address '%s'", host);
        return ST_ERROR;
    }
    if (rc != 0) {
        util_errf(err, errlen, "cannot resolve '%s': %s", host,
                  rc == EAI_SYSTEM ? strerror_r(errno, ebuf, sizeof(ebuf))
                                   : gai_strerror(rc));
        return ST_ERROR;
    }
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->sslen = res->ai_addrlen;
    if (res->ai_family == AF_INET) {
        ((struct sockaddr_in *)&out->ss)->sin_port = htons(port);
    } else {
        ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons(port);
    }
    freeaddrinfo(res);
    return ST_OK;
}

enum status
config_parse_addr(const char *s, struct cfg_addr *out, char *err, size_t errlen)
{
    char host[CFG_ADDR_NAME_MAX];
    const char *port;
    uint64_t p;
    size_t len = strlen(s);
    bool v6;

    memset(out, 0, sizeof(*out));
    if (len == 0) {
        util_errf(err, errlen, "empty address (%s)", UTIL_ADDR_FORMS);
        return ST_ERROR;
    }
    if (len >= CFG_ADDR_NAME_MAX) {
        util_errf(err, errlen, "address too long (%zu bytes, max %d)", len,
                  CFG_ADDR_NAME_MAX - 1);
        return ST_ERROR;
    }
    memcpy(out->name, s, len + 1);
    if (strncmp(s, "unix:", 5) == 0) {
        return parse_unix(s + 5, out, err, errlen);
    }
    if (util_split_host_port(s, host, sizeof(host), &port, &v6, err, errlen) !=
        ST_OK) {
        return ST_ERROR;
    }
    if (!util_all_digits(port, strlen(port))) {
        util_errf(err, errlen, "invalid port '%s' in '%s'", port, s);
        return ST_ERROR;
    }
    if (!util_parse_u64(port, strlen(port), &p) || p < 1 || p > 65535) {
        util_errf(err, errlen, "port %s out of range 1..65535", port);
        return ST_ERROR;
    }
    return resolve(host, (uint16_t)p, v6, out, err, errlen);
}

/* ---- snapshots ---- */

enum status
config_set_metrics(struct config *cfg, const char *s, char *err, size_t errlen)
{
    struct cfg_addr a;

    if (strcmp(s, "off") == 0) {
        cfg->metrics_enabled = false;
        return ST_OK;
    }
    if (config_parse_addr(s, &a, err, errlen) != ST_OK) {
        return ST_ERROR;
    }
    if (a.ss.ss_family == AF_UNIX) {
        util_errf(err, errlen,
                  "'%s': the metrics endpoint needs a TCP address "
                  "(host:port or [v6addr]:port) or off",
                  s);
        return ST_ERROR;
    }
    cfg->metrics_listen = a;
    cfg->metrics_enabled = true;
    return ST_OK;
}

static enum status
copy_addrs(struct cfg_addr **dst, size_t *ndst, const struct cfg_addr *a,
           size_t n)
{
    struct cfg_addr *arr = calloc(MAX(n, 1), sizeof(*arr));

    if (arr == NULL) {
        return ST_NOMEM;
    }
    if (n > 0) {
        memcpy(arr, a, n * sizeof(*arr));
    }
    free(*dst);
    *dst = arr;
    *ndst = n;
    return ST_OK;
}

enum status
config_set_listen(struct config *cfg, const struct cfg_addr *a, size_t n)
{
    return copy_addrs(&cfg->listen, &cfg->nlisten, a, n);
}

static enum status
pool_set_servers(struct cfg_pool *pool, const struct cfg_addr *a, size_t n)
{
    struct cfg_server *arr = calloc(MAX(n, 1), sizeof(*arr));

    if (arr == NULL) {
        return ST_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        arr[i].addr = a[i];
        arr[i].weight = 1;
    }
    free(pool->servers);
    pool->servers = arr;
    pool->nservers = n;
    return ST_OK;
}

enum status
config_set_servers(struct config *cfg, const struct cfg_addr *a, size_t n)
{
    return pool_set_servers(&cfg->pool, a, n);
}

enum status
config_set_l2_servers(struct config *cfg, const struct cfg_addr *a, size_t n)
{
    return pool_set_servers(&cfg->l2, a, n);
}

enum status
config_set_batch_listen(struct config *cfg, const struct cfg_addr *a, size_t n)
{
    struct cfg_addr *arr = calloc(MAX(n, 1), sizeof(*arr));

    if (arr == NULL) {
        return ST_NOMEM;
    }
    memcpy(arr, a, n * sizeof(*a));
    free(cfg->batch_listen);
    cfg->batch_listen = arr;
    cfg->nbatch_listen = n;
    return ST_OK;
}

size_t
config_client_max_buffer(const struct config *cfg)
{
    if (cfg->client_max_buffer > 0) {
        return cfg->client_max_buffer;
    }
    return MAX(CFG_CLIENT_BUFFER_ITEMS * cfg->item_size_max,
               (size_t)CFG_CLIENT_BUFFER_FLOOR);
}

enum status
config_validate(const struct config *cfg, char *err, size_t errlen)
{
    size_t least = MAX(CFG_CLIENT_BUFFER_MIN_ITEMS * cfg->item_size_max,
                       (size_t)CFG_CLIENT_BUFFER_FLOOR);

    if (cfg->client_max_buffer > 0 && cfg->client_max_buffer < least) {
        util_errf(err, errlen,
                  "client_max_buffer %zu is below %zu (%d x item_size_max, "
                  "and at least 2 MiB)",
                  cfg->client_max_buffer, least, CFG_CLIENT_BUFFER_MIN_ITEMS);
        return ST_ERROR;
    }
    if (cfg->orca != CFG_ORCA_L1ONLY && cfg->l2.nservers == 0) {
        util_errf(err, errlen, "orca %s needs l2 servers (l2.servers or --l2)",
                  config_orca_name(cfg->orca));
        return ST_ERROR;
    }
    if (cfg->orca == CFG_ORCA_L1L2BATCH && cfg->nbatch_listen == 0) {
        util_errf(err, errlen,
                  "orca l1l2batch needs batch_listen addresses "
                  "(batch_listen or --batch-listen)");
        return ST_ERROR;
    }
    return ST_OK;
}

static void
pool_defaults(struct cfg_pool *pool)
{
    pool->distribution = CFG_DIST_KETAMA;
    pool->hash = CFG_HASH_DEFAULT;
    pool->failure_limit = CFG_DEFAULT_FAILURE_LIMIT;
    pool->retry_timeout_ms = CFG_DEFAULT_RETRY_MS;
    pool->eject_rehash = false;
}

struct config *
config_default(void)
{
    struct config *cfg = calloc(1, sizeof(*cfg));
    struct cfg_addr a;
    char err[128];

    if (cfg == NULL) {
        return NULL;
    }
    atomic_init(&cfg->refs, 1);
    cfg->connect_timeout_ms = CFG_DEFAULT_CONNECT_MS;
    cfg->request_timeout_ms = CFG_DEFAULT_TIMEOUT_MS;
    cfg->max_connections = 0;
    cfg->shutdown_timeout_ms = CFG_DEFAULT_SHUTDOWN_MS;
    cfg->client_write_timeout_ms = CFG_DEFAULT_CLIENT_WRITE_MS;
    pool_defaults(&cfg->pool);
    pool_defaults(&cfg->l2);
    cfg->orca = CFG_ORCA_L1ONLY;
    cfg->key_locks = CFG_DEFAULT_KEY_LOCKS;
    cfg->thread_stack_size = CFG_DEFAULT_STACK_SIZE;
    cfg->item_size_max = CFG_DEFAULT_ITEM_SIZE_MAX;
    cfg->log_level = LOG_LVL_INFO;
    cfg->unix_mode = CFG_DEFAULT_UNIX_MODE;
    if (config_parse_addr(CFG_DEFAULT_LISTEN, &a, err, sizeof(err)) != ST_OK ||
        config_set_listen(cfg, &a, 1) != ST_OK) {
        goto error;
    }
    if (config_parse_addr(CFG_DEFAULT_SERVER, &a, err, sizeof(err)) != ST_OK ||
        config_set_servers(cfg, &a, 1) != ST_OK) {
        goto error;
    }
    if (config_set_metrics(cfg, CFG_DEFAULT_METRICS_LISTEN, err, sizeof(err)) !=
        ST_OK) {
        goto error;
    }
    return cfg;

error:
    config_unref(cfg);
    return NULL;
}

/* ---- loading ---- */

static void
syntax_error(struct loader *ld, const yaml_parser_t *parser)
{
    const char *problem = parser->problem ? parser->problem : "error";

    switch (parser->error) {
    case YAML_MEMORY_ERROR:
        util_errf(ld->err, ld->errlen, "%s: out of memory", ld->name);
        break;
    case YAML_READER_ERROR:
        util_errf(ld->err, ld->errlen, "%s: invalid YAML: %s at byte %zu",
                  ld->name, problem, parser->problem_offset);
        break;
    default:
        if (parser->context != NULL) {
            util_errf(ld->err, ld->errlen,
                      "%s:%zu: invalid YAML: %s (%s "
                      "at line %zu)",
                      ld->name, parser->problem_mark.line + 1, problem,
                      parser->context, parser->context_mark.line + 1);
        } else {
            util_errf(ld->err, ld->errlen, "%s:%zu: invalid YAML: %s", ld->name,
                      parser->problem_mark.line + 1, problem);
        }
        break;
    }
}

/* The rest of the stream must hold no second document. */
static enum status
expect_end(struct loader *ld, yaml_parser_t *parser)
{
    yaml_document_t next;
    bool more;
    size_t line;

    if (!yaml_parser_load(parser, &next)) {
        syntax_error(ld, parser);
        return ST_ERROR;
    }
    more = yaml_document_get_root_node(&next) != NULL;
    line = next.start_mark.line + 1;
    yaml_document_delete(&next);
    if (more) {
        util_errf(ld->err, ld->errlen,
                  "%s:%zu: a second YAML document is not allowed", ld->name,
                  line);
        return ST_ERROR;
    }
    return ST_OK;
}

/* An empty document, or one holding only "---" (an empty scalar). */
static bool
is_empty(const yaml_node_t *root)
{
    return root == NULL ||
           (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0 &&
            root->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
}

struct config *
config_load_string(const char *yaml, size_t len, const char *name, char *err,
                   size_t errlen)
{
    struct loader ld = {NULL, name ? name : "<string>", err, errlen};
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_node_t *root;
    struct config *cfg = NULL;
    bool have_doc = false;

    util_errf(err, errlen, "%s", "");
    if (!yaml_parser_initialize(&parser)) {
        util_errf(err, errlen, "%s: out of memory", ld.name);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        syntax_error(&ld, &parser);
        goto error;
    }
    have_doc = true;
    ld.doc = &doc;
    if (expect_end(&ld, &parser) != ST_OK) {
        goto error;
    }
    cfg = config_default();
    if (cfg == NULL) {
        util_errf(err, errlen, "%s: out of memory", ld.name);
        goto error;
    }
    root = yaml_document_get_root_node(&doc);
    if (!is_empty(root) &&
        walk_mapping(&ld, root, config_commands, cfg, NULL, NULL) != ST_OK) {
        goto error;
    }
    if (config_validate(cfg, err, errlen) != ST_OK) {
        char msg[256];

        snprintf(msg, sizeof(msg), "%s", err);
        util_errf(err, errlen, "%s: %s", ld.name, msg);
        goto error;
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return cfg;

error:
    config_unref(cfg);
    if (have_doc) {
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&parser);
    return NULL;
}

/* Read a whole file into a new buffer; a message in err on failure. */
static enum status
read_file(const char *path, char **out, size_t *outlen, char *err,
          size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *text = NULL, *p, ebuf[128];
    size_t len = 0, cap = 0;

    if (f == NULL) {
        util_errf(err, errlen, "cannot open '%s': %s", path,
                  strerror_r(errno, ebuf, sizeof(ebuf)));
        return ST_ERROR;
    }
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 4096;
            if (cap > CFG_FILE_MAX) {
                util_errf(err, errlen, "'%s': file larger than %u bytes", path,
                          CFG_FILE_MAX);
                goto error;
            }
            p = realloc(text, cap);
            if (p == NULL) {
                util_errf(err, errlen, "'%s': out of memory", path);
                goto error;
            }
            text = p;
        }
        len += fread(text + len, 1, cap - len, f);
        if (ferror(f)) {
            util_errf(err, errlen, "cannot read '%s': %s", path,
                      strerror_r(errno, ebuf, sizeof(ebuf)));
            goto error;
        }
        if (feof(f)) {
            break;
        }
    }
    fclose(f);
    *out = text;
    *outlen = len;
    return ST_OK;

error:
    free(text);
    fclose(f);
    return ST_ERROR;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
    struct config *cfg;
    char *text;
    size_t len;

    if (read_file(path, &text, &len, err, errlen) != ST_OK) {
        return NULL;
    }
    cfg = config_load_string(text, len, path, err, errlen);
    free(text);
    if (cfg == NULL) {
        return NULL;
    }
    cfg->path = strdup(path);
    if (cfg->path == NULL) {
        util_errf(err, errlen, "%s: out of memory", path);
        config_unref(cfg);
        return NULL;
    }
    return cfg;
}

struct config *
config_ref(struct config *cfg)
{
    if (cfg != NULL) {
        atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
    }
    return cfg;
}

void
config_unref(struct config *cfg)
{
    if (cfg == NULL ||
        atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    free(cfg->path);
    free(cfg->listen);
    free(cfg->batch_listen);
    free(cfg->pool.servers);
    free(cfg->l2.servers);
    free(cfg);
}
