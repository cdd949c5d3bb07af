/*
 * test_config: config loading. Good files load with the expected values
 * (the sample conf/riven.yml, defaults, IPv6 and unix addresses, weighted
 * servers); each kind of bad file fails with the exact message, line
 * numbers included. Inline YAML goes through config_load_string, files
 * through config_load on mkstemp files under /tmp.
 *
 * Run from the repository root (the sample is read as conf/riven.yml), or
 * set RIVEN_SAMPLE_CONF.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cmocka.h>

#include "config.h"

static struct config *
load(const char *yaml, char *err, size_t errlen)
{
    return config_load_string(yaml, strlen(yaml), "x.yml", err, errlen);
}

static struct config *
load_ok(const char *yaml)
{
    char err[512];
    struct config *cfg = load(yaml, err, sizeof(err));

    if (cfg == NULL) {
        fail_msg("unexpected error: %s", err);
    }
    return cfg;
}

static int
addr_port(const struct cfg_addr *a)
{
    if (a->ss.ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
}

static void
assert_inet(const struct cfg_addr *a, const char *name, const char *ip,
            int port)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;
    char buf[INET_ADDRSTRLEN];

    assert_string_equal(a->name, name);
    assert_int_equal(a->ss.ss_family, AF_INET);
    assert_int_equal(a->sslen, sizeof(struct sockaddr_in));
    assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
    assert_string_equal(buf, ip);
    assert_int_equal(addr_port(a), port);
}

static void
assert_defaults_except_addrs(const struct config *cfg)
{
    assert_int_equal(cfg->connect_timeout_ms, 4000);
    assert_int_equal(cfg->request_timeout_ms, 1000);
    assert_int_equal(cfg->max_connections, 0);
    assert_int_equal(cfg->thread_stack_size, 262144);
    assert_int_equal(cfg->item_size_max, 1048576);
    assert_int_equal(cfg->client_max_buffer, 0);
    assert_int_equal(config_client_max_buffer(cfg), 8 * 1048576);
    assert_int_equal(cfg->log_level, LOG_LVL_INFO);
    assert_int_equal(cfg->unix_mode, 0700);
    assert_true(cfg->metrics_enabled);
    assert_inet(&cfg->metrics_listen, "127.0.0.1:11299", "127.0.0.1", 11299);
}

static void
assert_defaults(const struct config *cfg)
{
    assert_defaults_except_addrs(cfg);
    assert_int_equal(cfg->nlisten, 1);
    assert_inet(&cfg->listen[0], "127.0.0.1:11311", "127.0.0.1", 11311);
    assert_int_equal(cfg->pool.nservers, 1);
    assert_inet(&cfg->pool.servers[0].addr, "127.0.0.1:11211", "127.0.0.1",
                11211);
    assert_int_equal(cfg->pool.servers[0].weight, 1);
}

/* Write text to a new file under /tmp; the name goes to path. */
static void
write_temp(char *path, size_t size, const char *text)
{
    int fd;

    snprintf(path, size, "/tmp/riven-test-config-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(close(fd), 0);
}

/* ---- good files ---- */

static void
test_default(void **state)
{
    struct config *cfg = config_default();

    (void)state;
    assert_non_null(cfg);
    assert_null(cfg->path);
    assert_defaults(cfg);
    config_unref(cfg);
}

static void
test_sample_file(void **state)
{
    const char *path = getenv("RIVEN_SAMPLE_CONF");
    char err[512];
    struct config *cfg;

    (void)state;
    path = path ? path : "conf/riven.yml";
    cfg = config_load(path, err, sizeof(err));
    if (cfg == NULL) {
        fail_msg("%s", err);
    }
    assert_string_equal(cfg->path, path);
    assert_defaults(cfg);
    config_unref(cfg);
}

static void
test_empty_means_defaults(void **state)
{
    static const char *const docs[] = {"", "# nothing\n", "---\n",
                                       "--- # empty\n...\n", "\n\n"};

    (void)state;
    for (size_t i = 0; i < NELEMS(docs); i++) {
        struct config *cfg = load_ok(docs[i]);

        assert_null(cfg->path);
        assert_defaults(cfg);
        config_unref(cfg);
    }
}

static void
test_omitted_keys_keep_defaults(void **state)
{
    struct config *cfg = load_ok("timeouts:\n"
                                 "  request_ms: 250\n");

    (void)state;
    assert_int_equal(cfg->request_timeout_ms, 250);
    assert_int_equal(cfg->connect_timeout_ms, 4000);
    assert_int_equal(cfg->nlisten, 1);
    assert_string_equal(cfg->listen[0].name, "127.0.0.1:11311");
    assert_int_equal(cfg->pool.nservers, 1);
    assert_string_equal(cfg->pool.servers[0].addr.name, "127.0.0.1:11211");
    config_unref(cfg);

    cfg = load_ok("pool: {}\ntimeouts: {}\n");
    assert_defaults(cfg);
    config_unref(cfg);
}

static void
test_every_key_set(void **state)
{
    struct config *cfg = load_ok("listen: [10.0.0.1:1, 10.0.0.2:65535]\n"
                                 "pool:\n"
                                 "  servers:\n"
                                 "    - 10.1.0.1:11211\n"
                                 "timeouts:\n"
                                 "  connect_ms: 1\n"
                                 "  request_ms: 3600000\n"
                                 "max_connections: 10000000\n"
                                 "thread_stack_size: 67108864\n"
                                 "item_size_max: 1024\n"
                                 "log_level: debug\n"
                                 "unix_socket_mode: 0660\n");

    (void)state;
    assert_int_equal(cfg->nlisten, 2);
    assert_inet(&cfg->listen[0], "10.0.0.1:1", "10.0.0.1", 1);
    assert_inet(&cfg->listen[1], "10.0.0.2:65535", "10.0.0.2", 65535);
    assert_int_equal(cfg->pool.nservers, 1);
    assert_inet(&cfg->pool.servers[0].addr, "10.1.0.1:11211", "10.1.0.1",
                11211);
    assert_int_equal(cfg->connect_timeout_ms, 1);
    assert_int_equal(cfg->request_timeout_ms, 3600000);
    assert_int_equal(cfg->max_connections, 10000000);
    assert_int_equal(cfg->thread_stack_size, 67108864);
    assert_int_equal(cfg->item_size_max, 1024);
    /* derived: 8 x item_size_max, but never below 2 MiB */
    assert_int_equal(config_client_max_buffer(cfg), 2097152);
    assert_int_equal(cfg->log_level, LOG_LVL_DEBUG);
    assert_int_equal(cfg->unix_mode, 0660);
    config_unref(cfg);
}

static void
test_ipv6_and_unix(void **state)
{
    struct config *cfg = load_ok("listen:\n"
                                 "  - \"[::1]:11311\"\n"
                                 "  - unix:/tmp/riven.sock\n"
                                 "  - localhost:7\n");
    const struct sockaddr_in6 *sin6;
    const struct sockaddr_un *sun;

    (void)state;
    assert_int_equal(cfg->nlisten, 3);
    sin6 = (const struct sockaddr_in6 *)&cfg->listen[0].ss;
    assert_string_equal(cfg->listen[0].name, "[::1]:11311");
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_int_equal(cfg->listen[0].sslen, sizeof(*sin6));
    assert_memory_equal(&sin6->sin6_addr, &in6addr_loopback,
                        sizeof(in6addr_loopback));
    assert_int_equal(ntohs(sin6->sin6_port), 11311);

    sun = (const struct sockaddr_un *)&cfg->listen[1].ss;
    assert_string_equal(cfg->listen[1].name, "unix:/tmp/riven.sock");
    assert_int_equal(sun->sun_family, AF_UNIX);
    assert_string_equal(sun->sun_path, "/tmp/riven.sock");
    assert_int_equal(cfg->listen[1].sslen,
                     offsetof(struct sockaddr_un, sun_path) +
                         sizeof("/tmp/riven.sock"));

    /* a name, resolved once: v4 or v6 loopback, port applied */
    assert_string_equal(cfg->listen[2].name, "localhost:7");
    assert_true(cfg->listen[2].ss.ss_family == AF_INET ||
                cfg->listen[2].ss.ss_family == AF_INET6);
    assert_int_equal(addr_port(&cfg->listen[2]), 7);
    config_unref(cfg);
}

static void
test_server_mappings(void **state)
{
    struct config *cfg = load_ok("pool:\n"
                                 "  servers:\n"
                                 "    - 10.0.0.1:11211\n"
                                 "    - {addr: 10.0.0.2:11212, weight: 3}\n"
                                 "    - weight: 65535\n"
                                 "      addr: \"[::1]:11213\"\n"
                                 "    - addr: unix:/run/mc.sock\n");

    (void)state;
    assert_int_equal(cfg->pool.nservers, 4);
    assert_inet(&cfg->pool.servers[0].addr, "10.0.0.1:11211", "10.0.0.1",
                11211);
    assert_int_equal(cfg->pool.servers[0].weight, 1);
    assert_inet(&cfg->pool.servers[1].addr, "10.0.0.2:11212", "10.0.0.2",
                11212);
    assert_int_equal(cfg->pool.servers[1].weight, 3);
    assert_string_equal(cfg->pool.servers[2].addr.name, "[::1]:11213");
    assert_int_equal(cfg->pool.servers[2].addr.ss.ss_family, AF_INET6);
    assert_int_equal(addr_port(&cfg->pool.servers[2].addr), 11213);
    assert_int_equal(cfg->pool.servers[2].weight, 65535);
    assert_string_equal(cfg->pool.servers[3].addr.name, "unix:/run/mc.sock");
    assert_int_equal(cfg->pool.servers[3].addr.ss.ss_family, AF_UNIX);
    assert_int_equal(cfg->pool.servers[3].weight, 1);
    config_unref(cfg);
}

static void
test_scalar_forms(void **state)
{
    static const struct {
        const char *yaml;
        uint32_t mode;
    } modes[] = {
        {"unix_socket_mode: 0700", 0700},  {"unix_socket_mode: 700", 0700},
        {"unix_socket_mode: 0o750", 0750}, {"unix_socket_mode: 0", 0},
        {"unix_socket_mode: 0777", 0777},  {"unix_socket_mode: '0600'", 0600},
    };
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    char yaml[64];

    (void)state;
    for (size_t i = 0; i < NELEMS(modes); i++) {
        struct config *cfg = load_ok(modes[i].yaml);

        assert_int_equal(cfg->unix_mode, modes[i].mode);
        config_unref(cfg);
    }
    for (size_t i = 0; i < NELEMS(levels); i++) {
        struct config *cfg;

        snprintf(yaml, sizeof(yaml), "log_level: %s", levels[i]);
        cfg = load_ok(yaml);
        assert_int_equal(cfg->log_level, (int)i);
        config_unref(cfg);
    }
    {
        struct config *cfg = load_ok("max_connections: \"0042\"");

        assert_int_equal(cfg->max_connections, 42);
        config_unref(cfg);
    }
}

static void
test_file_roundtrip(void **state)
{
    char path[64], err[512];
    struct config *cfg;

    (void)state;
    write_temp(path, sizeof(path),
               "listen: [unix:/tmp/r.sock]\n"
               "log_level: warn\n");
    cfg = config_load(path, err, sizeof(err));
    assert_non_null(cfg);
    assert_string_equal(cfg->path, path);
    assert_int_equal(cfg->log_level, LOG_LVL_WARN);
    assert_string_equal(cfg->listen[0].name, "unix:/tmp/r.sock");
    config_unref(cfg);
    unlink(path);
}

static void
test_metrics_listen(void **state)
{
    struct config *cfg = load_ok("metrics:\n"
                                 "  listen: 0.0.0.0:9150\n");
    const struct sockaddr_in6 *sin6;

    (void)state;
    assert_true(cfg->metrics_enabled);
    assert_inet(&cfg->metrics_listen, "0.0.0.0:9150", "0.0.0.0", 9150);
    config_unref(cfg);

    cfg = load_ok("metrics: {listen: \"[::1]:9151\"}\n");
    sin6 = (const struct sockaddr_in6 *)&cfg->metrics_listen.ss;
    assert_true(cfg->metrics_enabled);
    assert_string_equal(cfg->metrics_listen.name, "[::1]:9151");
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(sin6->sin6_port), 9151);
    config_unref(cfg);

    cfg = load_ok("metrics:\n  listen: off\n");
    assert_false(cfg->metrics_enabled);
    config_unref(cfg);

    cfg = load_ok("metrics: {}\n");
    assert_defaults(cfg);
    config_unref(cfg);
}

static void
test_set_metrics(void **state)
{
    struct config *cfg = config_default();
    char err[256];

    (void)state;
    assert_int_equal(config_set_metrics(cfg, "off", err, sizeof(err)), ST_OK);
    assert_false(cfg->metrics_enabled);
    assert_int_equal(config_set_metrics(cfg, "10.0.0.1:9100", err, sizeof(err)),
                     ST_OK);
    assert_true(cfg->metrics_enabled);
    assert_inet(&cfg->metrics_listen, "10.0.0.1:9100", "10.0.0.1", 9100);

    /* errors leave the snapshot as it was */
    assert_int_equal(
        config_set_metrics(cfg, "unix:/tmp/m.sock", err, sizeof(err)),
        ST_ERROR);
    assert_string_equal(err, "'unix:/tmp/m.sock': the metrics endpoint "
                             "needs a TCP address (host:port or "
                             "[v6addr]:port) or off");
    assert_int_equal(config_set_metrics(cfg, "OFF", err, sizeof(err)),
                     ST_ERROR);
    assert_string_equal(err, "missing port in 'OFF' (expected host:port, "
                             "[v6addr]:port or unix:/path)");
    assert_int_equal(config_set_metrics(cfg, "", err, sizeof(err)), ST_ERROR);
    assert_string_equal(err, "empty address (expected host:port, "
                             "[v6addr]:port or unix:/path)");
    assert_true(cfg->metrics_enabled);
    assert_inet(&cfg->metrics_listen, "10.0.0.1:9100", "10.0.0.1", 9100);
    config_unref(cfg);
}

/* ---- bad files ---- */

struct bad {
    const char *yaml;
    const char *msg;
};

static const struct bad bad_cases[] = {
    /* unknown keys */
    {"listn: [127.0.0.1:1]\n", "x.yml:1: unknown key 'listn'"},
    {"log_level: info\n\n\nlistn: [127.0.0.1:1]\n",
     "x.yml:4: unknown key 'listn'"},
    {"timeouts:\n  connect_ms: 5\n  conect_ms: 5\n",
     "x.yml:3: timeouts: unknown key 'conect_ms'"},
    {"pool:\n  server: [127.0.0.1:1]\n", "x.yml:2: pool: unknown key 'server'"},
    {"pool:\n  servers:\n    - {addr: 127.0.0.1:1, wieght: 2}\n",
     "x.yml:3: pool.servers[0]: unknown key 'wieght'"},
    /* wrong types */
    {"listen: 127.0.0.1:11311\n",
     "x.yml:1: listen: expected a sequence, got '127.0.0.1:11311'"},
    {"listen:\n", "x.yml:1: listen: expected a sequence, got an empty value"},
    {"timeouts: [1, 2]\n", "x.yml:1: timeouts: expected a mapping, got a "
                           "sequence"},
    {"pool: 5\n", "x.yml:1: pool: expected a mapping, got '5'"},
    {"timeouts:\n  connect_ms: abc\n",
     "x.yml:2: timeouts.connect_ms: expected an integer, got 'abc'"},
    {"timeouts:\n  connect_ms: {a: 1}\n",
     "x.yml:2: timeouts.connect_ms: expected an integer, got a mapping"},
    {"max_connections: +5\n",
     "x.yml:1: max_connections: expected an integer, got '+5'"},
    {"max_connections: 1e3\n",
     "x.yml:1: max_connections: expected an integer, got '1e3'"},
    {"max_connections: 0x10\n",
     "x.yml:1: max_connections: expected an integer, got '0x10'"},
    {"max_connections: ' 5'\n",
     "x.yml:1: max_connections: expected an integer, got ' 5'"},
    {"item_size_max:\n",
     "x.yml:1: item_size_max: expected an integer, got an empty value"},
    {"listen:\n  - [127.0.0.1:1]\n",
     "x.yml:2: listen[0]: expected an address, got a sequence"},
    {"pool:\n  servers:\n    - [a]\n",
     "x.yml:3: pool.servers[0]: expected an address, got a sequence"},
    {"log_level: verbose\n", "x.yml:1: log_level: expected error, warn, info "
                             "or debug, got 'verbose'"},
    {"log_level: [info]\n",
     "x.yml:1: log_level: expected a log level, got a sequence"},
    {"unix_socket_mode: 0800\n", "x.yml:1: unix_socket_mode: expected an "
                                 "octal mode such as 0700, got '0800'"},
    {"unix_socket_mode: rwx\n", "x.yml:1: unix_socket_mode: expected an "
                                "octal mode such as 0700, got 'rwx'"},
    {"- listen\n", "x.yml:1: expected a mapping, got a sequence"},
    {"just text\n", "x.yml:1: expected a mapping, got 'just text'"},
    {"? [a]\n: 1\n", "x.yml:1: expected a key, got a sequence"},
    /* out of range */
    {"timeouts:\n  connect_ms: 0\n",
     "x.yml:2: timeouts.connect_ms: 0 out of range 1..3600000"},
    {"timeouts:\n  request_ms: 3600001\n",
     "x.yml:2: timeouts.request_ms: 3600001 out of range 1..3600000"},
    {"timeouts:\n  request_ms: -5\n",
     "x.yml:2: timeouts.request_ms: -5 out of range 1..3600000"},
    {"max_connections: 10000001\n",
     "x.yml:1: max_connections: 10000001 out of range 0..10000000"},
    {"max_connections: 99999999999999999999999\n",
     "x.yml:1: max_connections: 99999999999999999999999 out of range "
     "0..10000000"},
    {"thread_stack_size: 65535\n",
     "x.yml:1: thread_stack_size: 65535 out of range 65536..67108864"},
    {"thread_stack_size: 67108865\n",
     "x.yml:1: thread_stack_size: 67108865 out of range 65536..67108864"},
    {"item_size_max: 1023\n",
     "x.yml:1: item_size_max: 1023 out of range 1024..1073741824"},
    {"item_size_max: 1073741825\n",
     "x.yml:1: item_size_max: 1073741825 out of range 1024..1073741824"},
    {"unix_socket_mode: 01000\n",
     "x.yml:1: unix_socket_mode: 01000 out of range 0..0777"},
    {"pool:\n  servers:\n    - {addr: 127.0.0.1:1, weight: 0}\n",
     "x.yml:3: pool.servers[0].weight: 0 out of range 1..65535"},
    {"pool:\n  servers:\n    - addr: 127.0.0.1:1\n      weight: 65536\n",
     "x.yml:4: pool.servers[0].weight: 65536 out of range 1..65535"},
    /* bad ports */
    {"pool:\n  servers:\n    - 127.0.0.1:11211\n    - 127.0.0.1:99999\n",
     "x.yml:4: pool.servers[1]: port 99999 out of range 1..65535"},
    {"listen: [127.0.0.1:0]\n",
     "x.yml:1: listen[0]: port 0 out of range 1..65535"},
    {"listen: [127.0.0.1:123456789012345678901]\n",
     "x.yml:1: listen[0]: port 123456789012345678901 out of range 1..65535"},
    {"listen: [127.0.0.1:http]\n",
     "x.yml:1: listen[0]: invalid port 'http' in '127.0.0.1:http'"},
    {"listen: [127.0.0.1:-1]\n",
     "x.yml:1: listen[0]: invalid port '-1' in '127.0.0.1:-1'"},
    {"listen: [\"127.0.0.1:\"]\n",
     "x.yml:1: listen[0]: missing port in '127.0.0.1:' (expected host:port, "
     "[v6addr]:port or unix:/path)"},
    /* bad addresses */
    {"listen: [127.0.0.1]\n",
     "x.yml:1: listen[0]: missing port in '127.0.0.1' (expected host:port, "
     "[v6addr]:port or unix:/path)"},
    {"listen: [\":11211\"]\n",
     "x.yml:1: listen[0]: missing host in ':11211' (expected host:port, "
     "[v6addr]:port or unix:/path)"},
    {"listen: [\"::1:11211\"]\n",
     "x.yml:1: listen[0]: IPv6 address must be in brackets, [v6addr]:port, "
     "in '::1:11211'"},
    {"listen: [\"[::1:11211\"]\n",
     "x.yml:1: listen[0]: missing ']' in '[::1:11211'"},
    {"listen: [\"[::1]11211\"]\n",
     "x.yml:1: listen[0]: missing port in '[::1]11211' (expected host:port, "
     "[v6addr]:port or unix:/path)"},
    {"listen: [\"[127.0.0.1]:5\"]\n",
     "x.yml:1: listen[0]: invalid IPv6 address '127.0.0.1'"},
    {"listen: [\"\"]\n",
     "x.yml:1: listen[0]: empty address (expected host:port, [v6addr]:port "
     "or unix:/path)"},
    {"listen: [\"unix:\"]\n",
     "x.yml:1: listen[0]: empty unix socket path in 'unix:'"},
    {"pool:\n  servers:\n    - {weight: 2}\n",
     "x.yml:3: pool.servers[0]: missing key 'addr'"},
    /* empty lists */
    {"listen: []\n",
     "x.yml:1: listen: empty list, at least one address is required"},
    {"pool:\n  servers: []\n",
     "x.yml:2: pool.servers: empty list, at least one address is required"},
    /* duplicate keys */
    {"listen: [127.0.0.1:1]\nlog_level: info\nlisten: [127.0.0.1:2]\n",
     "x.yml:3: duplicate key 'listen'"},
    {"timeouts:\n  connect_ms: 5\n  connect_ms: 6\n",
     "x.yml:3: timeouts: duplicate key 'connect_ms'"},
    {"pool:\n  servers:\n    - {addr: 127.0.0.1:1, addr: 127.0.0.1:2}\n",
     "x.yml:3: pool.servers[0]: duplicate key 'addr'"},
    /* metrics */
    {"metrics:\n  listen: unix:/tmp/m.sock\n",
     "x.yml:2: metrics.listen: 'unix:/tmp/m.sock': the metrics endpoint "
     "needs a TCP address (host:port or [v6addr]:port) or off"},
    {"metrics:\n  listen: 127.0.0.1:99999\n",
     "x.yml:2: metrics.listen: port 99999 out of range 1..65535"},
    {"metrics:\n  listen: 11299\n",
     "x.yml:2: metrics.listen: missing port in '11299' (expected host:port, "
     "[v6addr]:port or unix:/path)"},
    {"metrics:\n  listen: [127.0.0.1:1]\n",
     "x.yml:2: metrics.listen: expected an address or off, got a sequence"},
    {"metrics:\n  listen:\n",
     "x.yml:2: metrics.listen: empty address (expected host:port, "
     "[v6addr]:port or unix:/path)"},
    {"metrics:\n  listn: off\n", "x.yml:2: metrics: unknown key 'listn'"},
    {"metrics: off\n", "x.yml:1: metrics: expected a mapping, got 'off'"},
    {"metrics:\n  listen: off\n  listen: off\n",
     "x.yml:3: metrics: duplicate key 'listen'"},
    /* YAML syntax errors */
    {"listen: [127.0.0.1:1\nlog_level: info\n",
     "x.yml:2: invalid YAML: did not find expected ',' or ']' (while "
     "parsing a flow sequence at line 1)"},
    {"log_level: info\n  timeouts: 5\n",
     "x.yml:2: invalid YAML: mapping values are not allowed in this context"},
    {"timeouts:\n  connect_ms: 1\n bad: 2\n",
     "x.yml:3: invalid YAML: did not find expected key (while parsing a "
     "block mapping at line 1)"},
    {"log_level: *lvl\n", "x.yml:1: invalid YAML: found undefined alias"},
    {"log_level: info\n---\nlog_level: warn\n",
     "x.yml:2: a second YAML document is not allowed"},
    /* client_max_buffer */
    {"item_size_max: 4194304\nclient_max_buffer: 8388607\n",
     "x.yml: client_max_buffer 8388607 is below 8388608 (2 x item_size_max, "
     "and at least 2 MiB)"},
    {"client_max_buffer: 2097151\n",
     "x.yml: client_max_buffer 2097151 is below 2097152 (2 x item_size_max, "
     "and at least 2 MiB)"},
    {"client_max_buffer: -1\n",
     "x.yml:1: client_max_buffer: -1 out of range 0..1099511627776"},
};

static void
test_bad(void **state)
{
    char err[512];

    (void)state;
    for (size_t i = 0; i < NELEMS(bad_cases); i++) {
        struct config *cfg;

        memset(err, 'X', sizeof(err));
        cfg = load(bad_cases[i].yaml, err, sizeof(err));
        if (cfg != NULL) {
            fail_msg("case %zu loaded: %s", i, bad_cases[i].yaml);
        }
        if (strcmp(err, bad_cases[i].msg) != 0) {
            fail_msg("case %zu:\n  got  \"%s\"\n  want \"%s\"", i, err,
                     bad_cases[i].msg);
        }
    }
}

static void
test_bad_unix_path_too_long(void **state)
{
    char yaml[512], want[512], path[200], err[512];

    (void)state;
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    snprintf(yaml, sizeof(yaml), "listen:\n  - unix:%s\n", path);
    snprintf(want, sizeof(want),
             "x.yml:2: listen[0]: unix socket path too long (%zu bytes, "
             "max %zu)",
             strlen(path), sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
    assert_null(load(yaml, err, sizeof(err)));
    assert_string_equal(err, want);
}

static void
test_bad_file(void **state)
{
    char path[64], want[128], err[512];

    (void)state;
    write_temp(path, sizeof(path),
               "log_level: info\n"
               "timeouts:\n"
               "  connect_ms: abc\n");
    assert_null(config_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want),
             "%s:3: timeouts.connect_ms: expected an integer, got 'abc'", path);
    assert_string_equal(err, want);
    unlink(path);
}

static void
test_missing_file(void **state)
{
    char err[512];

    (void)state;
    assert_null(config_load("/tmp/riven-no-such-dir/x.yml", err, sizeof(err)));
    assert_string_equal(err, "cannot open '/tmp/riven-no-such-dir/x.yml': "
                             "No such file or directory");
    assert_null(config_load("/tmp", err, sizeof(err)));
    assert_string_equal(err, "cannot read '/tmp': Is a directory");
}

static void
test_small_err_buffer(void **state)
{
    char err[8];

    (void)state;
    assert_null(load("listn: 1\n", err, sizeof(err)));
    assert_string_equal(err, "x.yml:1");
    assert_null(load("listn: 1\n", NULL, 0));
    assert_null(config_load_string("a: [", 4, NULL, err, sizeof(err)));
    assert_string_equal(err, "<string");
}

/* ---- addresses and snapshots ---- */

static void
test_parse_addr(void **state)
{
    struct cfg_addr a;
    char err[256];

    (void)state;
    assert_int_equal(config_parse_addr("192.168.1.2:80", &a, err, sizeof(err)),
                     ST_OK);
    assert_inet(&a, "192.168.1.2:80", "192.168.1.2", 80);
    assert_int_equal(config_parse_addr("[fe80::1]:65535", &a, err, sizeof(err)),
                     ST_OK);
    assert_int_equal(a.ss.ss_family, AF_INET6);
    assert_int_equal(addr_port(&a), 65535);
    assert_int_equal(config_parse_addr("1.2.3.4:65536", &a, err, sizeof(err)),
                     ST_ERROR);
    assert_string_equal(err, "port 65536 out of range 1..65535");
    assert_int_equal(
        config_parse_addr("no-such-host.invalid:1", &a, err, sizeof(err)),
        ST_ERROR);
    assert_true(strncmp(err, "cannot resolve 'no-such-host.invalid': ", 39) ==
                0);
}

static void
test_parse_addr_too_long(void **state)
{
    char s[CFG_ADDR_NAME_MAX + 1], want[96], err[256];
    struct cfg_addr a;

    (void)state;
    memset(s, 'h', sizeof(s) - 1);
    s[sizeof(s) - 1] = '\0';
    assert_int_equal(config_parse_addr(s, &a, err, sizeof(err)), ST_ERROR);
    snprintf(want, sizeof(want), "address too long (%zu bytes, max %d)",
             strlen(s), CFG_ADDR_NAME_MAX - 1);
    assert_string_equal(err, want);
}

static void
test_set_listen_servers(void **state)
{
    struct config *cfg = config_default();
    struct cfg_addr a[2];
    char err[128];

    (void)state;
    assert_int_equal(config_parse_addr("10.0.0.1:1", &a[0], err, sizeof(err)),
                     ST_OK);
    assert_int_equal(config_parse_addr("unix:/x", &a[1], err, sizeof(err)),
                     ST_OK);
    assert_int_equal(config_set_listen(cfg, a, 2), ST_OK);
    assert_int_equal(cfg->nlisten, 2);
    assert_string_equal(cfg->listen[1].name, "unix:/x");
    assert_int_equal(config_set_servers(cfg, a, 2), ST_OK);
    assert_int_equal(cfg->pool.nservers, 2);
    assert_inet(&cfg->pool.servers[0].addr, "10.0.0.1:1", "10.0.0.1", 1);
    assert_int_equal(cfg->pool.servers[0].weight, 1);
    assert_int_equal(cfg->pool.servers[1].weight, 1);
    config_unref(cfg);
}

static void
test_refcount(void **state)
{
    struct config *cfg = config_default();

    (void)state;
    assert_int_equal(atomic_load(&cfg->refs), 1);
    assert_ptr_equal(config_ref(cfg), cfg);
    assert_ptr_equal(config_ref(cfg), cfg);
    assert_int_equal(atomic_load(&cfg->refs), 3);
    config_unref(cfg);
    config_unref(cfg);
    assert_int_equal(atomic_load(&cfg->refs), 1);
    config_unref(cfg); /* frees; ASan reports a leak otherwise */
    assert_null(config_ref(NULL));
    config_unref(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default),
        cmocka_unit_test(test_sample_file),
        cmocka_unit_test(test_empty_means_defaults),
        cmocka_unit_test(test_omitted_keys_keep_defaults),
        cmocka_unit_test(test_every_key_set),
        cmocka_unit_test(test_ipv6_and_unix),
        cmocka_unit_test(test_server_mappings),
        cmocka_unit_test(test_scalar_forms),
        cmocka_unit_test(test_file_roundtrip),
        cmocka_unit_test(test_metrics_listen),
        cmocka_unit_test(test_set_metrics),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_bad_unix_path_too_long),
        cmocka_unit_test(test_bad_file),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_small_err_buffer),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_parse_addr_too_long),
        cmocka_unit_test(test_set_listen_servers),
        cmocka_unit_test(test_refcount),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
