/*
 * config: YAML text -> an immutable, validated struct config snapshot.
 *
 * libyaml composes the text into a document (a tree of nodes that carry
 * their line). Each mapping is then walked against a command table in
 * twemproxy's manner, {name, setter, offsetof(field)}: the setter checks
 * the node's type and range and stores into base + offset. Nested mappings
 * (pool, timeouts, a server entry) are commands whose setter walks a
 * sub-table. The snapshot starts from config_default(), so an omitted key
 * keeps its default. config_print walks the same tables to write a
 * snapshot back as YAML (riven -T).
 *
 * Invariants: a returned snapshot has at least one listener and one server
 * and every value in range; listen_tls has an entry per listener (plain
 * unless listen[i].tls) and every TLS file named was readable at load. On
 * any error, err holds one line naming the file, the 1-based line and the
 * key path, and nothing leaks. libyaml appears only in this file.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <yaml.h>

#include "chunk.h"

#define CFG_PATH_MAX   256         /* "routes[3].route.failover[1].pool" */
#define CFG_FILE_MAX   (16u << 20) /* refuse larger config files */
#define CFG_SHOW_MAX   64          /* bytes of a bad value quoted */
#define ROUTES_REPLACE "routes: replaces pool:/l1:/l2:/orca:/batch_listen:"

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
static enum status set_hash_tag(struct loader *, yaml_node_t *,
                                const struct command *, void *, const char *);
static enum status set_later(struct loader *, yaml_node_t *,
                             const struct command *, void *, const char *);
static enum status set_chunked(struct loader *, yaml_node_t *,
                               const struct command *, void *, const char *);
static enum status set_backend_mode(struct loader *, yaml_node_t *,
                                    const struct command *, void *,
                                    const char *);

#define CFG_OFF(f) offsetof(struct config, f)

static const struct command timeout_commands[] = {
    {"connect_ms", set_u32, CFG_OFF(connect_timeout_ms), 1, 3600000, NULL},
    {"request_ms", set_u32, CFG_OFF(request_timeout_ms), 1, 3600000, NULL},
    {"tls_handshake_ms", set_u32, CFG_OFF(tls_handshake_timeout_ms), 1, 3600000,
     NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

static const struct command metrics_commands[] = {
    {"listen", set_metrics_listen, 0, 0, 0, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

#define POOL_OFF(f) offsetof(struct cfg_pool, f)

/* Keys of a pool's chunked: mapping (chunk.h); the base is a struct
 * cfg_pool. */
static const struct command chunked_commands[] = {
    {"chunk_size", set_u32, POOL_OFF(chunk_size), CHUNK_SIZE_MIN,
     CHUNK_SIZE_MAX, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* Keys of a pool's backend: mapping (batch.h); the base is a struct
 * cfg_pool. */
static const struct command backend_commands[] = {
    {"mode", set_backend_mode, POOL_OFF(batched), 0, 0, NULL},
    {"connections", set_u32, POOL_OFF(connections), 1, 64, NULL},
    {"batch_max", set_u32, POOL_OFF(batch_max), 1, 65536, NULL},
    {NULL, NULL, 0, 0, 0, NULL},
};

/* Keys of a pool (pool:, l1:, l2:, pools.NAME); the base is a struct
 * cfg_pool. */
static const struct command pool_commands[] = {
    {"servers", set_servers, 0, 0, 0, NULL},
    {"distribution", set_distribution, POOL_OFF(distribution), 0, 0, NULL},
    {"hash", set_hash, POOL_OFF(hash), 0, 0, NULL},
    {"failure_limit", set_u32, POOL_OFF(failure_limit), 1, 1000, NULL},
    {"retry_timeout_ms", set_u32, POOL_OFF(retry_timeout_ms), 1, 3600000, NULL},
    {"eject_rehash", set_bool, POOL_OFF(eject_rehash), 0, 0, NULL},
    {"hash_tag", set_hash_tag, POOL_OFF(hash_tag), 0, 0, NULL},
    {"tls", set_later, POOL_OFF(tls), 0, 0, NULL},
    {"chunked", set_chunked, POOL_OFF(chunk_size), 0, 0, chunked_commands},
    {"backend", set_map, 0, 0, 0, backend_commands},
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
    {"pools", set_later, 0, 0, 0, NULL},
    {"routes", set_later, 0, 0, 0, NULL},
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

/* hash_tag: two characters, e.g. "{}": only the key bytes between the
 * first '{' and the next '}' are hashed, as twemproxy does. */
static enum status
set_hash_tag(struct loader *ld, yaml_node_t *val, const struct command *cmd,
             void *base, const char *path)
{
    const char *s = scalar(ld, val, path, "two characters");
    char buf[CFG_SHOW_MAX + 8];

    if (s == NULL) {
        return ST_ERROR;
    }
    if (strlen(s) != 2) {
        return cfg_err(ld, val, path,
                       "expected two characters such as {}, got %s",
                       describe(val, buf, sizeof(buf)));
    }
    memcpy((char *)base + cmd->offset, s, 3);
    return ST_OK;
}

/* Keys read after the walk: pools: and routes: (load_routing: a route
 * names pools, which the file may give after it) and a pool's tls:
 * (walk_pool: its messages name the line of the tls: key). */
static enum status
set_later(struct loader *ld, yaml_node_t *val, const struct command *cmd,
          void *base, const char *path)
{
    (void)ld, (void)val, (void)cmd, (void)base, (void)path;
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

static const char *const backend_mode_names[] = {"per_connection", "batched",
                                                 NULL};

/* backend.mode: per_connection (the default) or batched. */
static enum status
set_backend_mode(struct loader *ld, yaml_node_t *val, const struct command *cmd,
                 void *base, const char *path)
{
    int i = 0;

    if (set_word(ld, val, path, backend_mode_names, "a backend mode", &i) !=
        ST_OK) {
        return ST_ERROR;
    }
    *(bool *)(void *)((char *)base + cmd->offset) = i == 1;
    return ST_OK;
}

/* chunked: true (CHUNK_SIZE_DEFAULT), false (0: not chunked) or a mapping
 * of cmd->sub over the pool, {chunk_size: N}, whose chunk_size defaults to
 * CHUNK_SIZE_DEFAULT. */
static enum status
set_chunked(struct loader *ld, yaml_node_t *val, const struct command *cmd,
            void *base, const char *path)
{
    static const char forms[] = "true, false or {chunk_size: N}";
    uint32_t *size = (void *)((char *)base + cmd->offset);
    char buf[CFG_SHOW_MAX + 8];
    const char *s;
    bool on;

    if (val->type == YAML_MAPPING_NODE) {
        *size = CHUNK_SIZE_DEFAULT;
        return walk_mapping(ld, val, cmd->sub, base, path, NULL);
    }
    s = scalar(ld, val, path, forms);
    if (s == NULL) {
        return ST_ERROR;
    }
    on = strcmp(s, "true") == 0;
    if (!on && strcmp(s, "false") != 0) {
        return cfg_err(ld, val, path, "expected %s, got %s", forms,
                       describe(val, buf, sizeof(buf)));
    }
    *size = on ? CHUNK_SIZE_DEFAULT : 0;
    return ST_OK;
}

/* A key path for messages; one too long is cut, which only shortens a
 * message. */
static void __attribute__((format(printf, 3, 4)))
path_fmt(char *out, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(out, size, fmt, ap);
    va_end(ap);
}

/* The node of an id stored in the document: libyaml composes every node
 * it refers to, so NULL would be a bug, not bad input. */
static yaml_node_t *
node_at(struct loader *ld, int id)
{
    yaml_node_t *node = yaml_document_get_node(ld->doc, id);

    assert(node != NULL);
    return node;
}

static enum status
out_of_memory(struct loader *ld)
{
    util_errf(ld->err, ld->errlen, "%s: out of memory", ld->name);
    return ST_NOMEM;
}

/* The value of key name in a mapping already walked (its keys are
 * scalars), its key node to *key; NULL if absent. */
static yaml_node_t *
map_find(struct loader *ld, yaml_node_t *map, const char *name,
         yaml_node_t **key)
{
    yaml_node_pair_t *pair;

    for (pair = map->data.mapping.pairs.start;
         pair < map->data.mapping.pairs.top; pair++) {
        yaml_node_t *k = node_at(ld, pair->key);

        if (k->type == YAML_SCALAR_NODE &&
            strcmp((const char *)k->data.scalar.value, name) == 0) {
            *key = k;
            return node_at(ld, pair->value);
        }
    }
    return NULL;
}

static size_t
map_size(const yaml_node_t *map)
{
    return (size_t)(map->data.mapping.pairs.top -
                    map->data.mapping.pairs.start);
}

static size_t
seq_size(const yaml_node_t *seq)
{
    return (size_t)(seq->data.sequence.items.top -
                    seq->data.sequence.items.start);
}

static yaml_node_t *
seq_item(struct loader *ld, const yaml_node_t *seq, size_t i)
{
    return node_at(ld, seq->data.sequence.items.start[i]);
}

/* The keys of a mapping that may hold only names[0..n-1]: the value of
 * names[j] to val[j], its key node to key[j] (NULL if absent). An unknown
 * or duplicate key is an error. */
static enum status
scan_keys(struct loader *ld, yaml_node_t *map, const char *path,
          const char *const *names, size_t n, yaml_node_t **val,
          yaml_node_t **key)
{
    if (expect(ld, map, path, YAML_MAPPING_NODE, "a mapping") != ST_OK) {
        return ST_ERROR;
    }
    for (size_t i = 0; i < map_size(map); i++) {
        const yaml_node_pair_t *pair = &map->data.mapping.pairs.start[i];
        yaml_node_t *k = node_at(ld, pair->key);
        const char *name = scalar(ld, k, path, "a key");
        size_t j = 0;

        if (name == NULL) {
            return ST_ERROR;
        }
        while (j < n && strcmp(name, names[j]) != 0) {
            j++;
        }
        if (j == n) {
            return cfg_err(ld, k, path, "unknown key '%.*s'", CFG_SHOW_MAX,
                           name);
        }
        if (val[j] != NULL) {
            return cfg_err(ld, k, path, "duplicate key '%s'", name);
        }
        val[j] = node_at(ld, pair->value);
        key[j] = k;
    }
    return ST_OK;
}

/* ---- TLS ----
 *
 * listen[i].tls and a pool's tls: take the same keys under different
 * rules: a listener needs cert and key (and ca to check clients), a pool
 * verifies its servers unless told not to. Paths are kept as written and
 * only checked for readability here; tls.c reads the files when it builds
 * a snapshot's contexts, so a reload picks up new ones.
 */

enum {
    TLS_CERT,
    TLS_KEY,
    TLS_CA,
    TLS_VERIFY,
    TLS_MIN_VERSION,
    TLS_CIPHERS,
    TLS_SERVER_NAME,
    NTLS_KEYS
};
static const char *const tls_keys[NTLS_KEYS] = {
    "cert", "key", "ca", "verify", "min_version", "ciphers", "server_name",
};
/* A listener's verify:, by enum cfg_tls_verify (a pool's is a bool). */
static const char *const tls_verify_names[] = {"none", "optional", "require",
                                               NULL};
static const char *const tls_version_names[] = {"1.2", "1.3", NULL};
static const int tls_versions[] = {0x0303, 0x0304}; /* TLS1_2/1_3_VERSION */

#define CFG_SERVER_NAME_MAX 255 /* bytes of an SNI host_name */

bool
config_tls_verify_parse(const char *s, enum cfg_tls_verify *out)
{
    for (int i = 0; tls_verify_names[i] != NULL; i++) {
        if (strcmp(s, tls_verify_names[i]) == 0) {
            *out = (enum cfg_tls_verify)i;
            return true;
        }
    }
    return false;
}

enum status
config_check_readable(const char *file, char *err, size_t errlen)
{
    struct stat st;
    char ebuf[128];
    int e = 0;

    if (access(file, R_OK) != 0 || stat(file, &st) != 0) {
        e = errno;
    } else if (S_ISDIR(st.st_mode)) {
        e = EISDIR;
    }
    if (e == 0) {
        return ST_OK;
    }
    util_errf(err, errlen, "%s: %s", file, strerror_r(e, ebuf, sizeof(ebuf)));
    return ST_ERROR;
}

/* Free the strings of *tls and make it plain (all zero). */
static void
tls_clear(struct cfg_tls *tls)
{
    free(tls->cert);
    free(tls->key);
    free(tls->ca);
    free(tls->ciphers);
    free(tls->server_name);
    memset(tls, 0, sizeof(*tls));
}

/* *dst = a copy of s (NULL stays NULL); false when memory runs out. */
static bool
dup_or_null(char **dst, const char *s)
{
    *dst = s != NULL ? strdup(s) : NULL;
    return s == NULL || *dst != NULL;
}

/* Deep copy; on ST_NOMEM *dst is plain and owns nothing. */
static enum status
tls_copy(struct cfg_tls *dst, const struct cfg_tls *src)
{
    *dst = *src;
    dst->cert = dst->key = dst->ca = dst->ciphers = dst->server_name = NULL;
    if (dup_or_null(&dst->cert, src->cert) &&
        dup_or_null(&dst->key, src->key) && dup_or_null(&dst->ca, src->ca) &&
        dup_or_null(&dst->ciphers, src->ciphers) &&
        dup_or_null(&dst->server_name, src->server_name)) {
        return ST_OK;
    }
    tls_clear(dst);
    return ST_NOMEM;
}

/* A non-empty string into *out (owned). */
static enum status
tls_string(struct loader *ld, yaml_node_t *node, const char *path,
           const char *what, char **out)
{
    const char *s = scalar(ld, node, path, what);

    if (s == NULL) {
        return ST_ERROR;
    }
    if (*s == '\0') {
        return cfg_err(ld, node, path, "expected %s, got an empty value", what);
    }
    *out = strdup(s);
    return *out != NULL ? ST_OK : out_of_memory(ld);
}

/* cert, key, ca: a path to a file readable now. */
static enum status
tls_file(struct loader *ld, yaml_node_t *node, const char *path, char **out)
{
    char msg[512];

    if (tls_string(ld, node, path, "a file path", out) != ST_OK) {
        return ST_ERROR;
    }
    if (config_check_readable(*out, msg, sizeof(msg)) != ST_OK) {
        return cfg_err(ld, node, path, "%s", msg);
    }
    return ST_OK;
}

/* verify, min_version, ciphers, server_name (val[k] NULL if absent). */
static enum status
tls_options(struct loader *ld, yaml_node_t *const *val, const char *path,
            bool listener, struct cfg_tls *tls)
{
    char sub[CFG_PATH_MAX];
    int i = 0;

    path_fmt(sub, sizeof(sub), "%s.verify", path);
    if (val[TLS_VERIFY] != NULL &&
        set_word(ld, val[TLS_VERIFY], sub,
                 listener ? tls_verify_names : bool_names,
                 listener ? "a verify mode" : "true or false", &i) != ST_OK) {
        return ST_ERROR;
    }
    if (val[TLS_VERIFY] != NULL) {
        tls->verify = listener ? (enum cfg_tls_verify)i
                      : i      ? CFG_TLS_VERIFY_REQUIRE
                               : CFG_TLS_VERIFY_NONE;
    }
    path_fmt(sub, sizeof(sub), "%s.min_version", path);
    if (val[TLS_MIN_VERSION] != NULL) {
        if (set_word(ld, val[TLS_MIN_VERSION], sub, tls_version_names,
                     "a TLS version", &i) != ST_OK) {
            return ST_ERROR;
        }
        tls->min_version = tls_versions[i];
    }
    path_fmt(sub, sizeof(sub), "%s.ciphers", path);
    if (val[TLS_CIPHERS] != NULL &&
        tls_string(ld, val[TLS_CIPHERS], sub, "a cipher list", &tls->ciphers) !=
            ST_OK) {
        return ST_ERROR;
    }
    path_fmt(sub, sizeof(sub), "%s.server_name", path);
    if (val[TLS_SERVER_NAME] != NULL &&
        tls_string(ld, val[TLS_SERVER_NAME], sub, "a host name",
                   &tls->server_name) != ST_OK) {
        return ST_ERROR;
    }
    if (tls->server_name != NULL &&
        strlen(tls->server_name) > CFG_SERVER_NAME_MAX) {
        return cfg_err(ld, val[TLS_SERVER_NAME], sub,
                       "host name longer than %d bytes", CFG_SERVER_NAME_MAX);
    }
    return ST_OK;
}

/* The keys that must go together (key: the tls: key, for the line). */
static enum status
tls_required(struct loader *ld, const yaml_node_t *key, const char *path,
             bool listener, const struct cfg_tls *tls)
{
    if (listener && tls->cert == NULL) {
        return cfg_err(ld, key, path, "missing key 'cert'");
    }
    if (listener && tls->key == NULL) {
        return cfg_err(ld, key, path, "missing key 'key'");
    }
    if (listener && tls->verify != CFG_TLS_VERIFY_NONE && tls->ca == NULL) {
        return cfg_err(ld, key, path,
                       "missing key 'ca' (verify: %s checks client "
                       "certificates against it)",
                       tls_verify_names[tls->verify]);
    }
    if (tls->cert != NULL && tls->key == NULL) {
        return cfg_err(ld, key, path,
                       "missing key 'key' (cert and key go together)");
    }
    if (tls->key != NULL && tls->cert == NULL) {
        return cfg_err(ld, key, path,
                       "missing key 'cert' (cert and key go together)");
    }
    return ST_OK;
}

/* listen[i].tls (listener) or a pool's tls: map, written at key, into
 * *tls, which it replaces. On failure *tls may hold strings; tls_clear
 * (through config_unref) frees them. */
static enum status
parse_tls(struct loader *ld, const yaml_node_t *key, yaml_node_t *map,
          const char *path, bool listener, struct cfg_tls *tls)
{
    yaml_node_t *val[NTLS_KEYS] = {NULL}, *keys[NTLS_KEYS] = {NULL};
    char **files[] = {&tls->cert, &tls->key, &tls->ca}; /* TLS_CERT.. */
    char sub[CFG_PATH_MAX];

    tls_clear(tls);
    if (scan_keys(ld, map, path, tls_keys, NTLS_KEYS, val, keys) != ST_OK) {
        return ST_ERROR;
    }
    if (listener && val[TLS_SERVER_NAME] != NULL) {
        return cfg_err(ld, keys[TLS_SERVER_NAME], path,
                       "'server_name' does not apply to a listener");
    }
    tls->on = true;
    tls->line = (int)key->start_mark.line + 1;
    tls->verify = listener ? CFG_TLS_VERIFY_NONE : CFG_TLS_VERIFY_REQUIRE;
    tls->min_version = CFG_TLS_MIN_VERSION_DEFAULT;
    for (int k = TLS_CERT; k <= TLS_CA; k++) {
        path_fmt(sub, sizeof(sub), "%s.%s", path, tls_keys[k]);
        if (val[k] != NULL && tls_file(ld, val[k], sub, files[k]) != ST_OK) {
            return ST_ERROR;
        }
    }
    if (tls_options(ld, val, path, listener, tls) != ST_OK) {
        return ST_ERROR;
    }
    return tls_required(ld, key, path, listener, tls);
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
addr_elem(struct loader *ld, yaml_node_t *node, const char *path, void *elem)
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

/* A sequence of at least one address; its length to *n. */
static enum status
addr_seq(struct loader *ld, yaml_node_t *seq, const char *path, size_t *n)
{
    if (expect(ld, seq, path, YAML_SEQUENCE_NODE, "a sequence") != ST_OK) {
        return ST_ERROR;
    }
    *n = seq_size(seq);
    if (*n == 0) {
        return cfg_err(ld, seq, path,
                       "empty list, at least one address is required");
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

    if (addr_seq(ld, seq, path, &n) != ST_OK) {
        return ST_ERROR;
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

    if (parse_seq(ld, val, path, sizeof(**dst), addr_elem, &arr, &n) != ST_OK) {
        return ST_ERROR;
    }
    free(*dst);
    *dst = arr;
    *ndst = n;
    return ST_OK;
}

/* Free the listeners and their TLS settings; cfg has none after. */
static void
listen_free(struct config *cfg)
{
    for (size_t i = 0; cfg->listen_tls != NULL && i < cfg->nlisten; i++) {
        tls_clear(&cfg->listen_tls[i]);
    }
    free(cfg->listen_tls);
    free(cfg->listen);
    cfg->listen_tls = NULL;
    cfg->listen = NULL;
    cfg->nlisten = 0;
}

/* Replace the listeners with addrs and tls, n of each (owned now). */
static void
listen_replace(struct config *cfg, struct cfg_addr *addrs, struct cfg_tls *tls,
               size_t n)
{
    listen_free(cfg);
    cfg->listen = addrs;
    cfg->listen_tls = tls;
    cfg->nlisten = n;
}

/* A listener is "ADDR" or {addr: ADDR, tls: {...}}. */
static enum status
listen_entry(struct loader *ld, yaml_node_t *node, const char *path,
             struct cfg_addr *addr, struct cfg_tls *tls)
{
    static const char *const names[2] = {"addr", "tls"};
    yaml_node_t *val[2] = {NULL, NULL}, *key[2] = {NULL, NULL};
    char sub[CFG_PATH_MAX];

    if (node->type != YAML_MAPPING_NODE) {
        return addr_elem(ld, node, path, addr);
    }
    if (scan_keys(ld, node, path, names, 2, val, key) != ST_OK) {
        return ST_ERROR;
    }
    if (val[0] == NULL) {
        return cfg_err(ld, node, path, "missing key 'addr'");
    }
    path_fmt(sub, sizeof(sub), "%s.addr", path);
    if (addr_elem(ld, val[0], sub, addr) != ST_OK) {
        return ST_ERROR;
    }
    if (val[1] == NULL) {
        return ST_OK;
    }
    path_fmt(sub, sizeof(sub), "%s.tls", path);
    return parse_tls(ld, key[1], val[1], sub, true, tls);
}

/* listen: its entries go straight into cfg (the old ones freed), where
 * config_unref frees them should one fail. */
static enum status
set_listen(struct loader *ld, yaml_node_t *val, const struct command *cmd,
           void *base, const char *path)
{
    struct config *cfg = base;
    struct cfg_addr *addrs;
    struct cfg_tls *tls;
    char epath[CFG_PATH_MAX];
    size_t n = 0;

    (void)cmd;
    if (addr_seq(ld, val, path, &n) != ST_OK) {
        return ST_ERROR;
    }
    addrs = calloc(n, sizeof(*addrs));
    tls = calloc(n, sizeof(*tls));
    if (addrs == NULL || tls == NULL) {
        free(addrs);
        free(tls);
        return out_of_memory(ld);
    }
    listen_replace(cfg, addrs, tls, n);
    for (size_t i = 0; i < n; i++) {
        path_fmt(epath, sizeof(epath), "%s[%zu]", path, i);
        if (listen_entry(ld, seq_item(ld, val, i), epath, &addrs[i], &tls[i]) !=
            ST_OK) {
            return ST_ERROR;
        }
    }
    return ST_OK;
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

/* The keys of a pool (pool_commands) over *pool, then its tls:. */
static enum status
walk_pool(struct loader *ld, yaml_node_t *map, struct cfg_pool *pool,
          const char *path)
{
    yaml_node_t *key = NULL, *tls;
    char sub[CFG_PATH_MAX];

    if (walk_mapping(ld, map, pool_commands, pool, path, NULL) != ST_OK) {
        return ST_ERROR;
    }
    tls = map_find(ld, map, "tls", &key);
    if (tls == NULL) {
        return ST_OK;
    }
    path_fmt(sub, sizeof(sub), "%s.tls", path);
    return parse_tls(ld, key, tls, sub, false, &pool->tls);
}

/* pool:, l1: or l2: a mapping of pool_commands over that pool. */
static enum status
set_pool(struct loader *ld, yaml_node_t *val, const struct command *cmd,
         void *base, const char *path)
{
    return walk_pool(ld, val, (void *)((char *)base + cmd->offset), path);
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

/* All or nothing: on ST_NOMEM cfg keeps its listeners. */
enum status
config_set_listen(struct config *cfg, const struct cfg_addr *a,
                  const struct cfg_tls *tls, size_t n)
{
    struct cfg_addr *addrs = calloc(MAX(n, 1), sizeof(*addrs));
    struct cfg_tls *copy = calloc(MAX(n, 1), sizeof(*copy));
    size_t i = 0;

    if (addrs == NULL || copy == NULL) {
        goto error;
    }
    for (; tls != NULL && i < n; i++) {
        if (tls_copy(&copy[i], &tls[i]) != ST_OK) {
            goto error;
        }
    }
    if (n > 0) {
        memcpy(addrs, a, n * sizeof(*addrs));
    }
    listen_replace(cfg, addrs, copy, n);
    return ST_OK;

error:
    while (copy != NULL && i > 0) {
        tls_clear(&copy[--i]);
    }
    free(copy);
    free(addrs);
    return ST_NOMEM;
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

/* With routes, the command line may not bring back what routes: replaces
 * (--orca, --l2, --batch-listen). */
static enum status
validate_routes(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->orca != CFG_ORCA_L1ONLY) {
        util_errf(err, errlen, "orca %s does not apply with routes: (%s)",
                  config_orca_name(cfg->orca), ROUTES_REPLACE);
        return ST_ERROR;
    }
    if (cfg->l2.nservers > 0) {
        util_errf(err, errlen, "l2 servers do not apply with routes: (%s)",
                  ROUTES_REPLACE);
        return ST_ERROR;
    }
    if (cfg->nbatch_listen > 0) {
        util_errf(err, errlen, "batch_listen does not apply with routes: (%s)",
                  ROUTES_REPLACE);
        return ST_ERROR;
    }
    return ST_OK;
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
    if (cfg->nroutes > 0) {
        return validate_routes(cfg, err, errlen);
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

/* What a pool owns: its servers and TLS strings. */
static void
pool_free(struct cfg_pool *pool)
{
    free(pool->servers);
    tls_clear(&pool->tls);
}

static void
pool_defaults(struct cfg_pool *pool)
{
    pool->distribution = CFG_DIST_KETAMA;
    pool->hash = CFG_HASH_DEFAULT;
    pool->failure_limit = CFG_DEFAULT_FAILURE_LIMIT;
    pool->retry_timeout_ms = CFG_DEFAULT_RETRY_MS;
    pool->connections = CFG_DEFAULT_BATCH_CONNECTIONS;
    pool->batch_max = CFG_DEFAULT_BATCH_MAX;
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
    cfg->tls_handshake_timeout_ms = CFG_DEFAULT_TLS_HANDSHAKE_MS;
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
        config_set_listen(cfg, &a, NULL, 1) != ST_OK) {
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

/* ---- pools and routes ----
 *
 * pools: names pools; routes: maps key prefixes to routes over them. A
 * route is an inline tree: its leaves are pool names and its inner nodes
 * rules (all_sync, failover, shadow...) whose children are written inside
 * them. No route can refer to another route, so a route graph has no
 * cycles; CFG_ROUTE_DEPTH_MAX bounds the nesting. With routes, pool:, l1:,
 * l2:, orca: and batch_listen: are refused and cfg->pool keeps its
 * defaults, unused.
 */

/* Keys that routes: replaces. */
static const char *const single_pool_keys[] = {
    "pool", "l1", "l2", "orca", "batch_listen", NULL,
};

/* A rule of a mapping route and the one optional key it may carry. */
struct rule {
    const char *name;
    enum cfg_route_kind kind;
    const char *modifier; /* or NULL */
};

static const struct rule rules[] = {
    {"pool", CFG_ROUTE_POOL, "ttl_max"},
    {"all_sync", CFG_ROUTE_ALL_SYNC, "read"},
    {"all_fastest", CFG_ROUTE_ALL_FASTEST, "read"},
    {"failover", CFG_ROUTE_FAILOVER, "miss"},
    {"shadow", CFG_ROUTE_SHADOW, NULL},
    {"warm_up", CFG_ROUTE_WARM_UP, NULL},
    {"l1l2", CFG_ROUTE_L1L2, NULL},
};
#define RULE_NAMES                                                             \
    "pool, all_sync, all_fastest, failover, shadow, warm_up or l1l2"

enum { MOD_TTL_MAX, MOD_READ, MOD_MISS, NMODS };
static const char *const modifier_names[NMODS] = {"ttl_max", "read", "miss"};
static const char *const read_names[] = {"first", "failover", NULL};
/* The keys of the two-child rules (shadow's third is its fraction). */
static const char *const shadow_names[3] = {"route", "to", "fraction"};
static const char *const warm_up_names[3] = {"cold", "warm", NULL};
static const char *const l1l2_names[3] = {"l1", "l2", NULL};

/* The keys of one mapping route, found by scan_rule. */
struct rule_keys {
    const struct rule *rule;
    yaml_node_t *val;        /* the rule's value */
    yaml_node_t *mod[NMODS]; /* modifiers' values, or NULL */
    yaml_node_t *modkey[NMODS];
};

static enum status parse_route(struct loader *ld, const struct config *cfg,
                               yaml_node_t *node, const char *path, int depth,
                               struct cfg_route *out);

static void
route_free(struct cfg_route *r)
{
    for (size_t i = 0; i < r->nchild; i++) {
        route_free(&r->child[i]);
    }
    free(r->child);
}

/* The name of pools[i]: 1..CFG_POOL_NAME_MAX bytes of [A-Za-z0-9_.-],
 * not given before. NULL after an error. */
static const char *
pool_name(struct loader *ld, const struct config *cfg, size_t i,
          const yaml_node_t *k)
{
    static const char name_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "abcdefghijklmnopqrstuvwxyz0123456789_.-";
    const char *name = scalar(ld, k, "pools", "a pool name");
    char buf[CFG_SHOW_MAX + 8];
    size_t len;

    if (name == NULL) {
        return NULL;
    }
    len = strlen(name);
    if (len == 0 || strspn(name, name_chars) != len) {
        (void)cfg_err(ld, k, "pools",
                      "pool name %s is not made of [A-Za-z0-9_.-]",
                      len ? describe(k, buf, sizeof(buf)) : "''");
        return NULL;
    }
    if (len > CFG_POOL_NAME_MAX) {
        (void)cfg_err(ld, k, "pools", "pool name %s longer than %d bytes",
                      describe(k, buf, sizeof(buf)), CFG_POOL_NAME_MAX);
        return NULL;
    }
    for (size_t j = 0; j < i; j++) {
        if (cfg->pools[j].name != NULL &&
            strcmp(cfg->pools[j].name, name) == 0) {
            (void)cfg_err(ld, k, "pools", "duplicate key '%s'", name);
            return NULL;
        }
    }
    return name;
}

/* pools.NAME: the keys of a pool, servers required; *total counts the
 * servers of all pools. */
static enum status
load_pool(struct loader *ld, struct config *cfg, size_t i,
          const yaml_node_pair_t *pair, size_t *total)
{
    yaml_node_t *k = node_at(ld, pair->key);
    yaml_node_t *v = node_at(ld, pair->value);
    struct cfg_named_pool *np = &cfg->pools[i];
    const char *name = pool_name(ld, cfg, i, k);
    char path[CFG_PATH_MAX];
    yaml_node_t *skey = NULL;

    if (name == NULL) {
        return ST_ERROR;
    }
    np->name = strdup(name);
    if (np->name == NULL) {
        return out_of_memory(ld);
    }
    pool_defaults(&np->pool);
    path_fmt(path, sizeof(path), "pools.%s", name);
    if (walk_pool(ld, v, &np->pool, path) != ST_OK) {
        return ST_ERROR;
    }
    if (map_find(ld, v, "servers", &skey) == NULL) {
        return cfg_err(ld, k, path, "missing key 'servers'");
    }
    *total += np->pool.nservers;
    if (*total > CFG_SERVERS_MAX) {
        path_fmt(path, sizeof(path), "pools.%s.servers", name);
        return cfg_err(ld, skey, path, "%zu servers over all pools, at most %d",
                       *total, CFG_SERVERS_MAX);
    }
    return ST_OK;
}

static enum status
load_pools(struct loader *ld, struct config *cfg, yaml_node_t *map)
{
    size_t n, total = 0;

    if (expect(ld, map, "pools", YAML_MAPPING_NODE, "a mapping") != ST_OK) {
        return ST_ERROR;
    }
    n = map_size(map);
    if (n == 0) {
        return cfg_err(ld, map, "pools",
                       "empty mapping, at least one pool is required");
    }
    cfg->pools = calloc(n, sizeof(*cfg->pools));
    if (cfg->pools == NULL) {
        return out_of_memory(ld);
    }
    cfg->npools = n; /* zeroed entries free as empty ones */
    for (size_t i = 0; i < n; i++) {
        if (load_pool(ld, cfg, i, &map->data.mapping.pairs.start[i], &total) !=
            ST_OK) {
            return ST_ERROR;
        }
    }
    return ST_OK;
}

/* A pool name -> CFG_ROUTE_POOL. */
static enum status
route_pool(struct loader *ld, const struct config *cfg, yaml_node_t *node,
           const char *path, struct cfg_route *out)
{
    const char *name = scalar(ld, node, path, "a pool name");

    if (name == NULL) {
        return ST_ERROR;
    }
    for (size_t i = 0; i < cfg->npools; i++) {
        if (strcmp(cfg->pools[i].name, name) == 0) {
            out->kind = CFG_ROUTE_POOL;
            out->pool = i;
            return ST_OK;
        }
    }
    return cfg_err(ld, node, path, "unknown pool '%.*s'", CFG_SHOW_MAX, name);
}

/* [ROUTE, ...]: at least one child. */
static enum status
route_list(struct loader *ld, const struct config *cfg, yaml_node_t *seq,
           const char *path, int depth, struct cfg_route *out)
{
    char cpath[CFG_PATH_MAX];
    size_t n;

    if (expect(ld, seq, path, YAML_SEQUENCE_NODE, "a sequence of routes") !=
        ST_OK) {
        return ST_ERROR;
    }
    n = seq_size(seq);
    if (n == 0) {
        return cfg_err(ld, seq, path,
                       "empty list, at least one route is required");
    }
    out->child = calloc(n, sizeof(*out->child));
    if (out->child == NULL) {
        return out_of_memory(ld);
    }
    out->nchild = n;
    for (size_t i = 0; i < n; i++) {
        path_fmt(cpath, sizeof(cpath), "%s[%zu]", path, i);
        if (parse_route(ld, cfg, seq_item(ld, seq, i), cpath, depth + 1,
                        &out->child[i]) != ST_OK) {
            return ST_ERROR;
        }
    }
    return ST_OK;
}

/* shadow.fraction: a decimal number in [0, 1]. */
static enum status
parse_fraction(struct loader *ld, yaml_node_t *node, const char *path,
               double *out)
{
    const char *s = scalar(ld, node, path, "a number from 0 to 1");
    char buf[CFG_SHOW_MAX + 8], *end = NULL;
    double f = 0;

    if (s == NULL) {
        return ST_ERROR;
    }
    if (*s != '\0' && strspn(s, "0123456789.eE+-") == strlen(s)) {
        f = strtod(s, &end);
    }
    if (end == NULL || end == s || *end != '\0') {
        return cfg_err(ld, node, path, "expected a number from 0 to 1, got %s",
                       describe(node, buf, sizeof(buf)));
    }
    if (!(f >= 0.0 && f <= 1.0)) {
        return cfg_err(ld, node, path, "%.*s out of range 0..1", CFG_SHOW_MAX,
                       s);
    }
    *out = f > 0.0 ? f : 0.0; /* no -0 */
    return ST_OK;
}

/* {names[0]: ROUTE, names[1]: ROUTE} -> child[0], child[1]; shadow also
 * takes names[2], fraction: F (required). */
static enum status
route_two(struct loader *ld, const struct config *cfg, yaml_node_t *map,
          const char *path, int depth, const char *const names[3],
          struct cfg_route *out)
{
    yaml_node_t *val[3] = {NULL, NULL, NULL}, *key[3];
    char cpath[CFG_PATH_MAX];
    size_t nkeys = names[2] != NULL ? 3 : 2;

    if (scan_keys(ld, map, path, names, nkeys, val, key) != ST_OK) {
        return ST_ERROR;
    }
    for (size_t j = 0; j < nkeys; j++) {
        if (val[j] == NULL) {
            return cfg_err(ld, map, path, "missing key '%s'", names[j]);
        }
    }
    out->child = calloc(2, sizeof(*out->child));
    if (out->child == NULL) {
        return out_of_memory(ld);
    }
    out->nchild = 2;
    for (size_t j = 0; j < 2; j++) {
        path_fmt(cpath, sizeof(cpath), "%s.%s", path, names[j]);
        if (parse_route(ld, cfg, val[j], cpath, depth + 1, &out->child[j]) !=
            ST_OK) {
            return ST_ERROR;
        }
    }
    if (nkeys < 3) {
        return ST_OK;
    }
    path_fmt(cpath, sizeof(cpath), "%s.%s", path, names[2]);
    return parse_fraction(ld, val[2], cpath, &out->fraction);
}

static const struct rule *
find_rule(const char *name)
{
    for (size_t i = 0; i < NELEMS(rules); i++) {
        if (strcmp(rules[i].name, name) == 0) {
            return &rules[i];
        }
    }
    return NULL;
}

/* Sort the keys of a mapping route: exactly one rule, and only the
 * modifier that rule takes. The rule, or NULL after an error. */
static const struct rule *
scan_rule(struct loader *ld, yaml_node_t *map, const char *path,
          struct rule_keys *rk)
{
    memset(rk, 0, sizeof(*rk));
    for (size_t i = 0; i < map_size(map); i++) {
        const yaml_node_pair_t *pair = &map->data.mapping.pairs.start[i];
        yaml_node_t *k = node_at(ld, pair->key);
        const char *name = scalar(ld, k, path, "a key");
        const struct rule *r;
        int m = 0;

        if (name == NULL) {
            return NULL;
        }
        r = find_rule(name);
        if (r != NULL && rk->rule == r) {
            (void)cfg_err(ld, k, path, "duplicate key '%s'", name);
            return NULL;
        }
        if (r != NULL && rk->rule != NULL) {
            (void)cfg_err(ld, k, path,
                          "two rules, '%s' and '%s' (a route takes one)",
                          rk->rule->name, name);
            return NULL;
        }
        if (r != NULL) {
            rk->rule = r;
            rk->val = node_at(ld, pair->value);
            continue;
        }
        while (m < NMODS && strcmp(name, modifier_names[m]) != 0) {
            m++;
        }
        if (m == NMODS) {
            (void)cfg_err(ld, k, path, "unknown key '%.*s'", CFG_SHOW_MAX,
                          name);
            return NULL;
        }
        if (rk->mod[m] != NULL) {
            (void)cfg_err(ld, k, path, "duplicate key '%s'", name);
            return NULL;
        }
        rk->mod[m] = node_at(ld, pair->value);
        rk->modkey[m] = k;
    }
    if (rk->rule == NULL) {
        (void)cfg_err(ld, map, path, "no rule (" RULE_NAMES ")");
        return NULL;
    }
    for (int m = 0; m < NMODS; m++) {
        if (rk->mod[m] != NULL &&
            (rk->rule->modifier == NULL ||
             strcmp(rk->rule->modifier, modifier_names[m]) != 0)) {
            (void)cfg_err(ld, rk->modkey[m], path, "'%s' does not apply to %s",
                          modifier_names[m], rk->rule->name);
            return NULL;
        }
    }
    return rk->rule;
}

/* The optional key of a rule: ttl_max, read or miss. */
static enum status
parse_modifier(struct loader *ld, const struct rule_keys *rk, const char *path,
               struct cfg_route *out)
{
    static const struct command ttl = {"ttl_max",         NULL, 0, 1,
                                       CFG_ROUTE_TTL_MAX, NULL};
    char mpath[CFG_PATH_MAX];
    uint64_t v = 0;
    int i = 0;

    if (rk->mod[MOD_TTL_MAX] != NULL) {
        path_fmt(mpath, sizeof(mpath), "%s.ttl_max", path);
        if (parse_uint(ld, rk->mod[MOD_TTL_MAX], &ttl, mpath, &v) != ST_OK) {
            return ST_ERROR;
        }
        out->ttl_max = (uint32_t)v;
    }
    if (rk->mod[MOD_READ] != NULL) {
        path_fmt(mpath, sizeof(mpath), "%s.read", path);
        if (set_word(ld, rk->mod[MOD_READ], mpath, read_names, "a read mode",
                     &i) != ST_OK) {
            return ST_ERROR;
        }
        out->read_failover = i == 1;
    }
    if (rk->mod[MOD_MISS] != NULL) {
        path_fmt(mpath, sizeof(mpath), "%s.miss", path);
        if (set_word(ld, rk->mod[MOD_MISS], mpath, bool_names, "true or false",
                     &i) != ST_OK) {
            return ST_ERROR;
        }
        out->miss = i == 1;
    }
    return ST_OK;
}

/* {RULE: ..., MODIFIER: ...}. */
static enum status
route_rule(struct loader *ld, const struct config *cfg, yaml_node_t *map,
           const char *path, int depth, struct cfg_route *out)
{
    struct rule_keys rk;
    char rpath[CFG_PATH_MAX];
    enum status st;

    if (scan_rule(ld, map, path, &rk) == NULL) {
        return ST_ERROR;
    }
    path_fmt(rpath, sizeof(rpath), "%s.%s", path, rk.rule->name);
    out->kind = rk.rule->kind;
    switch (rk.rule->kind) {
    case CFG_ROUTE_POOL:
        st = route_pool(ld, cfg, rk.val, rpath, out);
        break;
    case CFG_ROUTE_ALL_SYNC:
    case CFG_ROUTE_ALL_FASTEST:
    case CFG_ROUTE_FAILOVER:
        st = route_list(ld, cfg, rk.val, rpath, depth, out);
        for (size_t i = 0; st == ST_OK && out->kind == CFG_ROUTE_ALL_FASTEST &&
                           i < out->nchild;
             i++) {
            if (out->child[i].kind != CFG_ROUTE_POOL) {
                /* all_fastest waits on its children's sockets itself */
                util_errf(ld->err, ld->errlen,
                          "%s:%d: %s[%zu]: an all_fastest child must be a "
                          "pool",
                          ld->name, out->child[i].line, rpath, i);
                st = ST_ERROR;
            }
        }
        break;
    case CFG_ROUTE_SHADOW:
        st = route_two(ld, cfg, rk.val, rpath, depth, shadow_names, out);
        break;
    case CFG_ROUTE_WARM_UP:
        st = route_two(ld, cfg, rk.val, rpath, depth, warm_up_names, out);
        break;
    default:
        st = route_two(ld, cfg, rk.val, rpath, depth, l1l2_names, out);
        break;
    }
    if (st != ST_OK) {
        return st;
    }
    return parse_modifier(ld, &rk, path, out);
}

/* ROUTE: a pool name or a rule mapping. On failure *out may hold
 * children; route_free releases them. */
static enum status
parse_route(struct loader *ld, const struct config *cfg, yaml_node_t *node,
            const char *path, int depth, struct cfg_route *out)
{
    char buf[CFG_SHOW_MAX + 8];

    out->line = (int)node->start_mark.line + 1;
    if (depth >= CFG_ROUTE_DEPTH_MAX) {
        return cfg_err(ld, node, path, "routes nested deeper than %d",
                       CFG_ROUTE_DEPTH_MAX);
    }
    if (node->type == YAML_MAPPING_NODE) {
        return route_rule(ld, cfg, node, path, depth, out);
    }
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.length == 0) {
        return cfg_err(ld, node, path,
                       "expected a pool name or a mapping, got %s",
                       describe(node, buf, sizeof(buf)));
    }
    return route_pool(ld, cfg, node, path, out);
}

/* routes[i].prefix: 1..250 bytes, no space or control character. */
static enum status
parse_prefix(struct loader *ld, yaml_node_t *node, const char *path,
             struct cfg_route_entry *e)
{
    const char *s = scalar(ld, node, path, "a key prefix");
    size_t len;

    if (s == NULL) {
        return ST_ERROR;
    }
    len = strlen(s);
    if (len == 0) {
        return cfg_err(ld, node, path, "empty prefix");
    }
    if (len > CFG_PREFIX_MAX) {
        return cfg_err(ld, node, path,
                       "prefix of %zu bytes, longer than a key (%d)", len,
                       CFG_PREFIX_MAX);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= ' ' || c == 0x7f) {
            return cfg_err(ld, node, path,
                           "prefix holds a space or a control character "
                           "(byte %zu)",
                           i);
        }
    }
    e->prefix = malloc(len + 1);
    if (e->prefix == NULL) {
        return out_of_memory(ld);
    }
    memcpy(e->prefix, s, len + 1);
    e->nprefix = len;
    return ST_OK;
}

/* routes[i], checked against the entries before it. */
static enum status
load_entry(struct loader *ld, struct config *cfg, size_t i, yaml_node_t *map)
{
    static const char *const entry_keys[3] = {"prefix", "route", "default"};
    struct cfg_route_entry *e = &cfg->routes[i];
    yaml_node_t *val[3] = {NULL, NULL, NULL}, *key[3] = {NULL, NULL, NULL};
    char path[CFG_PATH_MAX], sub[CFG_PATH_MAX];

    path_fmt(path, sizeof(path), "routes[%zu]", i);
    if (scan_keys(ld, map, path, entry_keys, 3, val, key) != ST_OK) {
        return ST_ERROR;
    }
    if (val[2] != NULL && (val[0] != NULL || val[1] != NULL)) {
        return cfg_err(ld, key[2], path,
                       "default: goes alone, without prefix: or route:");
    }
    if (val[2] != NULL) {
        for (size_t j = 0; j < i; j++) {
            if (cfg->routes[j].prefix == NULL) {
                return cfg_err(ld, key[2], path,
                               "a second default entry (the first is "
                               "routes[%zu])",
                               j);
            }
        }
        path_fmt(sub, sizeof(sub), "%s.default", path);
        return parse_route(ld, cfg, val[2], sub, 0, &e->route);
    }
    if (val[0] == NULL) {
        return cfg_err(ld, map, path, "missing key 'prefix' (or default:)");
    }
    if (val[1] == NULL) {
        return cfg_err(ld, map, path, "missing key 'route'");
    }
    path_fmt(sub, sizeof(sub), "%s.prefix", path);
    if (parse_prefix(ld, val[0], sub, e) != ST_OK) {
        return ST_ERROR;
    }
    for (size_t j = 0; j < i; j++) {
        const struct cfg_route_entry *o = &cfg->routes[j];

        if (o->prefix != NULL && o->nprefix == e->nprefix &&
            memcmp(o->prefix, e->prefix, e->nprefix) == 0) {
            return cfg_err(ld, val[0], sub,
                           "prefix '%s' listed twice (also routes[%zu])",
                           e->prefix, j);
        }
    }
    path_fmt(sub, sizeof(sub), "%s.route", path);
    return parse_route(ld, cfg, val[1], sub, 0, &e->route);
}

static enum status
load_routes(struct loader *ld, struct config *cfg, yaml_node_t *seq)
{
    size_t n;

    if (expect(ld, seq, "routes", YAML_SEQUENCE_NODE, "a sequence") != ST_OK) {
        return ST_ERROR;
    }
    n = seq_size(seq);
    if (n > CFG_ROUTES_MAX) {
        return cfg_err(ld, seq, "routes", "%zu entries, at most %d", n,
                       CFG_ROUTES_MAX);
    }
    cfg->routes = calloc(MAX(n, 1), sizeof(*cfg->routes));
    if (cfg->routes == NULL) {
        return out_of_memory(ld);
    }
    cfg->nroutes = n; /* zeroed entries free as empty ones */
    for (size_t i = 0; i < n; i++) {
        if (load_entry(ld, cfg, i, seq_item(ld, seq, i)) != ST_OK) {
            return ST_ERROR;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (cfg->routes[i].prefix == NULL) {
            return ST_OK;
        }
    }
    return cfg_err(ld, seq, "routes", "no default entry");
}

/* pools: and routes:, both or neither; with them, none of the keys that
 * configure the single pool. */
static enum status
load_routing(struct loader *ld, yaml_node_t *root, struct config *cfg)
{
    yaml_node_t *pkey = NULL, *rkey = NULL, *k = NULL;
    yaml_node_t *pools = map_find(ld, root, "pools", &pkey);
    yaml_node_t *routes = map_find(ld, root, "routes", &rkey);

    if (pools == NULL && routes == NULL) {
        return ST_OK;
    }
    if (routes == NULL) {
        return cfg_err(ld, pkey, "pools", "given without routes:");
    }
    if (pools == NULL) {
        return cfg_err(ld, rkey, "routes", "given without pools:");
    }
    for (size_t i = 0; single_pool_keys[i] != NULL; i++) {
        if (map_find(ld, root, single_pool_keys[i], &k) != NULL) {
            return cfg_err(ld, k, single_pool_keys[i],
                           "not with routes: (" ROUTES_REPLACE ")");
        }
    }
    if (load_pools(ld, cfg, pools) != ST_OK) {
        return ST_ERROR;
    }
    return load_routes(ld, cfg, routes);
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
        (walk_mapping(&ld, root, config_commands, cfg, NULL, NULL) != ST_OK ||
         load_routing(&ld, root, cfg) != ST_OK)) {
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
    listen_free(cfg);
    free(cfg->batch_listen);
    pool_free(&cfg->pool);
    pool_free(&cfg->l2);
    for (size_t i = 0; i < cfg->npools; i++) {
        free(cfg->pools[i].name);
        pool_free(&cfg->pools[i].pool);
    }
    free(cfg->pools);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        free(cfg->routes[i].prefix);
        route_free(&cfg->routes[i].route);
    }
    free(cfg->routes);
    free(cfg);
}

/* ---- printing (riven -T) ----
 *
 * config_print writes a snapshot as YAML that config_load reads back to
 * the same snapshot: the keys of the command tables in their order and
 * spelling, defaults included, strings double-quoted. A key with nothing
 * to say is left out, since its absence is its default: hash_tag and tls
 * when unset, chunked when not chunked, batch_listen when empty, l2.servers
 * when l2 has none; with routes:, the keys routes: replaces. Printing the
 * result again gives the same bytes.
 */

static void print_table(FILE *f, const struct config *cfg,
                        const struct command *table, const void *base,
                        int indent);

/* A double-quoted YAML string: '"' and '\' escaped, control bytes as
 * \xNN. */
static void
print_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            fprintf(f, "\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\x%02x", *p);
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

/* The value of a scalar key at base + cmd->offset, after "key: ". false
 * if cmd's value is not a scalar. */
static bool
print_scalar(FILE *f, const struct command *cmd, const void *base)
{
    const void *p = (const char *)base + cmd->offset;

    if (cmd->set == set_u32) {
        fprintf(f, "%" PRIu32, *(const uint32_t *)p);
    } else if (cmd->set == set_size) {
        fprintf(f, "%zu", *(const size_t *)p);
    } else if (cmd->set == set_mode) {
        fprintf(f, "0%03" PRIo32, *(const uint32_t *)p);
    } else if (cmd->set == set_log_level) {
        fputs(log_level_name(*(const enum log_level *)p), f);
    } else if (cmd->set == set_orca) {
        fputs(config_orca_name(*(const enum cfg_orca *)p), f);
    } else if (cmd->set == set_distribution) {
        fputs(distribution_names[*(const enum cfg_distribution *)p], f);
    } else if (cmd->set == set_hash) {
        fputs(hash_names[*(const enum cfg_hash *)p], f);
    } else if (cmd->set == set_bool) {
        fputs(bool_names[*(const bool *)p], f);
    } else if (cmd->set == set_hash_tag) {
        print_quoted(f, p);
    } else if (cmd->set == set_backend_mode) {
        fputs(backend_mode_names[*(const bool *)p ? 1 : 0], f);
    } else {
        return false;
    }
    return true;
}

/* tls: of a listener or a pool, at indent; nothing when plain. */
static void
print_tls(FILE *f, const struct cfg_tls *tls, bool listener, int indent)
{
    const char *const strs[NTLS_KEYS] = {
        [TLS_CERT] = tls->cert,
        [TLS_KEY] = tls->key,
        [TLS_CA] = tls->ca,
        [TLS_CIPHERS] = tls->ciphers,
        [TLS_SERVER_NAME] = tls->server_name,
    };

    if (!tls->on) {
        return;
    }
    fprintf(f, "%*stls:\n", indent, "");
    for (int k = 0; k < NTLS_KEYS; k++) {
        if (k == TLS_VERIFY) {
            fprintf(f, "%*s%s: %s\n", indent + 2, "", tls_keys[k],
                    listener ? tls_verify_names[tls->verify]
                             : bool_names[tls->verify != CFG_TLS_VERIFY_NONE]);
        } else if (k == TLS_MIN_VERSION) {
            fprintf(f, "%*s%s: \"%s\"\n", indent + 2, "", tls_keys[k],
                    tls_version_names[tls->min_version == tls_versions[1]]);
        } else if (strs[k] != NULL) {
            fprintf(f, "%*s%s: ", indent + 2, "", tls_keys[k]);
            print_quoted(f, strs[k]);
            fputc('\n', f);
        }
    }
}

static void
print_listen(FILE *f, const struct config *cfg, int indent)
{
    fprintf(f, "%*slisten:\n", indent, "");
    for (size_t i = 0; i < cfg->nlisten; i++) {
        const struct cfg_tls *tls = &cfg->listen_tls[i];

        fprintf(f, "%*s- %s", indent + 2, "", tls->on ? "addr: " : "");
        print_quoted(f, cfg->listen[i].name);
        fputc('\n', f);
        print_tls(f, tls, true, indent + 4);
    }
}

static void
print_addrs(FILE *f, const char *name, const struct cfg_addr *a, size_t n,
            int indent)
{
    fprintf(f, "%*s%s:\n", indent, "", name);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%*s- ", indent + 2, "");
        print_quoted(f, a[i].name);
        fputc('\n', f);
    }
}

/* chunked: of a pool as a mapping of cmd->sub, {chunk_size: N}, at
 * indent; nothing when the pool is not chunked. */
static void
print_chunked(FILE *f, const struct command *cmd, const struct cfg_pool *pool,
              int indent)
{
    if (pool->chunk_size == 0) {
        return;
    }
    fprintf(f, "%*s%s:\n", indent, "", cmd->name);
    for (const struct command *c = cmd->sub; c->name != NULL; c++) {
        fprintf(f, "%*s%s: ", indent + 2, "", c->name);
        (void)print_scalar(f, c, pool);
        fputc('\n', f);
    }
}

/* backend: of a pool, at indent; nothing for the default mode. */
static void
print_backend(FILE *f, const struct command *cmd, const struct cfg_pool *pool,
              int indent)
{
    if (!pool->batched) {
        return;
    }
    fprintf(f, "%*s%s:\n", indent, "", cmd->name);
    for (const struct command *c = cmd->sub; c->name != NULL; c++) {
        fprintf(f, "%*s%s: ", indent + 2, "", c->name);
        (void)print_scalar(f, c, pool);
        fputc('\n', f);
    }
}

/* A pool's keys (pool_commands) at indent. */
static void
print_pool(FILE *f, const struct cfg_pool *pool, int indent)
{
    for (const struct command *cmd = pool_commands; cmd->name != NULL; cmd++) {
        if (cmd->set == set_servers) {
            if (pool->nservers == 0) {
                continue;
            }
            fprintf(f, "%*sservers:\n", indent, "");
            for (size_t i = 0; i < pool->nservers; i++) {
                fprintf(f, "%*s- {addr: ", indent + 2, "");
                print_quoted(f, pool->servers[i].addr.name);
                fprintf(f, ", weight: %" PRIu32 "}\n", pool->servers[i].weight);
            }
        } else if (cmd->set == set_later) { /* tls */
            print_tls(f, &pool->tls, false, indent);
        } else if (cmd->set == set_chunked) {
            print_chunked(f, cmd, pool, indent);
        } else if (cmd->set == set_map) { /* backend */
            print_backend(f, cmd, pool, indent);
        } else if (cmd->set != set_hash_tag || pool->hash_tag[0] != '\0') {
            fprintf(f, "%*s%s: ", indent, "", cmd->name);
            (void)print_scalar(f, cmd, pool);
            fputc('\n', f);
        }
    }
}

/* The shortest decimal that reads back as v. */
static void
print_fraction(FILE *f, double v)
{
    char buf[40];

    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof(buf), "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    fputs(buf, f);
}

/* A route in flow style: a pool name, or {RULE: ..., MODIFIER: ...}. */
static void
print_route(FILE *f, const struct config *cfg, const struct cfg_route *r)
{
    const struct rule *rule = &rules[r->kind];
    const char *const *names = r->kind == CFG_ROUTE_SHADOW    ? shadow_names
                               : r->kind == CFG_ROUTE_WARM_UP ? warm_up_names
                                                              : l1l2_names;

    if (r->kind == CFG_ROUTE_POOL) {
        fputs(r->ttl_max > 0 ? "{pool: " : "", f);
        print_quoted(f, cfg->pools[r->pool].name);
        if (r->ttl_max > 0) {
            fprintf(f, ", ttl_max: %" PRIu32 "}", r->ttl_max);
        }
        return;
    }
    if (rule->modifier == NULL) { /* shadow, warm_up, l1l2: two children */
        assert(r->nchild == 2);
        fprintf(f, "{%s: {%s: ", rule->name, names[0]);
        print_route(f, cfg, &r->child[0]);
        fprintf(f, ", %s: ", names[1]);
        print_route(f, cfg, &r->child[1]);
        if (r->kind == CFG_ROUTE_SHADOW) {
            fprintf(f, ", %s: ", names[2]);
            print_fraction(f, r->fraction);
        }
        fputs("}}", f);
        return;
    }
    fprintf(f, "{%s: [", rule->name);
    for (size_t i = 0; i < r->nchild; i++) {
        fputs(i > 0 ? ", " : "", f);
        print_route(f, cfg, &r->child[i]);
    }
    fprintf(f, "], %s: %s}", rule->modifier,
            r->kind == CFG_ROUTE_FAILOVER ? bool_names[r->miss]
                                          : read_names[r->read_failover]);
}

static void
print_pools(FILE *f, const struct config *cfg, int indent)
{
    fprintf(f, "%*spools:\n", indent, "");
    for (size_t i = 0; i < cfg->npools; i++) {
        fprintf(f, "%*s", indent + 2, "");
        print_quoted(f, cfg->pools[i].name);
        fputs(":\n", f);
        print_pool(f, &cfg->pools[i].pool, indent + 4);
    }
}

static void
print_routes(FILE *f, const struct config *cfg, int indent)
{
    fprintf(f, "%*sroutes:\n", indent, "");
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct cfg_route_entry *e = &cfg->routes[i];

        fprintf(f, "%*s- ", indent + 2, "");
        if (e->prefix != NULL) {
            fputs("prefix: ", f);
            print_quoted(f, e->prefix);
            fprintf(f, "\n%*sroute: ", indent + 4, "");
        } else {
            fputs("default: ", f);
        }
        print_route(f, cfg, &e->route);
        fputc('\n', f);
    }
}

/* Whether a key of config_commands is written (see above). */
static bool
print_wanted(const struct config *cfg, const struct command *cmd)
{
    for (const struct command *c = config_commands; c < cmd; c++) {
        if (cmd->set == set_pool && c->set == set_pool &&
            c->offset == cmd->offset) {
            return false; /* an alias: l1 of pool */
        }
    }
    for (size_t i = 0; cfg->nroutes > 0 && single_pool_keys[i] != NULL; i++) {
        if (strcmp(cmd->name, single_pool_keys[i]) == 0) {
            return false;
        }
    }
    if (cmd->set == set_batch_listen) {
        return cfg->nbatch_listen > 0;
    }
    return cmd->set != set_later || cfg->nroutes > 0;
}

/* The keys of table over base (the config, or a mapping of it). */
static void
print_table(FILE *f, const struct config *cfg, const struct command *table,
            const void *base, int indent)
{
    for (const struct command *cmd = table; cmd->name != NULL; cmd++) {
        if (table == config_commands && !print_wanted(cfg, cmd)) {
            continue;
        }
        if (cmd->set == set_listen) {
            print_listen(f, cfg, indent);
        } else if (cmd->set == set_batch_listen) {
            print_addrs(f, cmd->name, cfg->batch_listen, cfg->nbatch_listen,
                        indent);
        } else if (cmd->set == set_pool) {
            fprintf(f, "%*s%s:\n", indent, "", cmd->name);
            print_pool(f, (const void *)((const char *)base + cmd->offset),
                       indent + 2);
        } else if (cmd->set == set_map) {
            fprintf(f, "%*s%s:\n", indent, "", cmd->name);
            print_table(f, cfg, cmd->sub, base, indent + 2);
        } else if (cmd->set == set_metrics_listen) {
            fprintf(f, "%*s%s: ", indent, "", cmd->name);
            print_quoted(f, cfg->metrics_enabled ? cfg->metrics_listen.name
                                                 : "off");
            fputc('\n', f);
        } else if (cmd->set == set_later && strcmp(cmd->name, "pools") == 0) {
            print_pools(f, cfg, indent);
        } else if (cmd->set == set_later) {
            print_routes(f, cfg, indent);
        } else {
            fprintf(f, "%*s%s: ", indent, "", cmd->name);
            (void)print_scalar(f, cmd, base);
            fputc('\n', f);
        }
    }
}

enum status
config_print(const struct config *cfg, FILE *f)
{
    print_table(f, cfg, config_commands, cfg, 0);
    return fflush(f) == 0 && !ferror(f) ? ST_OK : ST_ERROR;
}
