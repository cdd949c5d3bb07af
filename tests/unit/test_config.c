/*
 * test_config: config loading. Good files load with the expected values
 * (the sample conf/riven.yml, defaults, IPv6 and unix addresses, weighted
 * servers); each kind of bad file fails with the exact message, line
 * numbers included. config_print's output (riven -T) loads back to an
 * equal snapshot and prints the same bytes again. Inline YAML goes
 * through config_load_string, files through config_load on mkstemp files
 * under /tmp.
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
    assert_int_equal(cfg->tls_handshake_timeout_ms, 3000);
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
    assert_non_null(cfg->listen_tls);
    assert_false(cfg->listen_tls[0].on);
    assert_false(cfg->pool.tls.on);
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

/* Each case fails to load with exactly its message. */
static void
check_bad(const struct bad *cases, size_t n)
{
    char err[512];

    for (size_t i = 0; i < n; i++) {
        struct config *cfg;

        memset(err, 'X', sizeof(err));
        cfg = load(cases[i].yaml, err, sizeof(err));
        if (cfg != NULL) {
            config_unref(cfg);
            fail_msg("case %zu loaded: %s", i, cases[i].yaml);
        }
        if (strcmp(err, cases[i].msg) != 0) {
            fail_msg("case %zu:\n  got  \"%s\"\n  want \"%s\"", i, err,
                     cases[i].msg);
        }
    }
}

static void
test_bad(void **state)
{
    (void)state;
    check_bad(bad_cases, NELEMS(bad_cases));
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

/* ---- pools and routes ---- */

/* The example of the issue, plus a block-style route (lines 20-25) and a
 * pool that sets every pool key. Line numbers on the left. */
static const char routes_example[] =
    /*  1 */
    "pools:\n"
    /*  2 */ "  main:   {servers: [127.0.0.1:11211, 127.0.0.1:11212], "
    /*    */ "hash_tag: \"{}\"}\n"
    /*  3 */ "  replica: {servers: [127.0.0.1:11213]}\n"
    /*  4 */ "  new:    {servers: [127.0.0.1:11214]}\n"
    /*  5 */ "  gutter: {servers: [127.0.0.1:11215], distribution: modula, "
    /*    */ "hash: crc, failure_limit: 5, retry_timeout_ms: 200, "
    /*    */ "eject_rehash: true}\n"
    /*  6 */ "routes:\n"
    /*  7 */ "  - prefix: \"sess:\"\n"
    /*  8 */ "    route: {all_sync: [main, replica]}\n"
    /*  9 */ "  - prefix: \"s:\"\n"
    /* 10 */ "    route: {all_sync: [main, replica], read: failover}\n"
    /* 11 */ "  - prefix: \"feed:\"\n"
    /* 12 */ "    route: {failover: [main, {pool: gutter, ttl_max: 300}], "
    /*    */ "miss: true}\n"
    /* 13 */ "  - prefix: \"user:\"\n"
    /* 14 */ "    route: {warm_up: {cold: new, warm: main}}\n"
    /* 15 */ "  - prefix: \"x:\"\n"
    /* 16 */ "    route: {all_fastest: [main, replica]}\n"
    /* 17 */ "  - prefix: \"y:\"\n"
    /* 18 */ "    route: {l1l2: {l1: main, l2: {all_sync: [replica, new]}}}\n"
    /* 19 */ "  - prefix: b\n"
    /* 20 */ "    route:\n"
    /* 21 */ "      failover:\n"
    /* 22 */ "        - main\n"
    /* 23 */ "        - pool: gutter\n"
    /* 24 */ "          ttl_max: 2592000\n"
    /* 25 */ "      miss: false\n"
    /* 26 */ "  - default: {shadow: {route: main, to: new, fraction: 0.1}}\n";

enum { MAIN, REPLICA, NEW, GUTTER };

static void
assert_pool_route(const struct cfg_route *r, size_t pool, uint32_t ttl_max,
                  int line)
{
    assert_int_equal(r->kind, CFG_ROUTE_POOL);
    assert_int_equal(r->pool, pool);
    assert_int_equal(r->ttl_max, ttl_max);
    assert_null(r->child);
    assert_int_equal(r->nchild, 0);
    assert_false(r->read_failover);
    assert_false(r->miss);
    assert_true(r->fraction == 0.0);
    assert_int_equal(r->line, line);
}

/* A rule route's own fields; its children are checked by the caller. */
static void
assert_rule(const struct cfg_route *r, enum cfg_route_kind kind, size_t nchild,
            bool read_failover, bool miss, int line)
{
    assert_int_equal(r->kind, kind);
    assert_int_equal(r->pool, 0);
    assert_int_equal(r->ttl_max, 0);
    assert_non_null(r->child);
    assert_int_equal(r->nchild, nchild);
    assert_int_equal(r->read_failover, read_failover);
    assert_int_equal(r->miss, miss);
    assert_int_equal(r->line, line);
}

static void
assert_prefix(const struct cfg_route_entry *e, const char *prefix)
{
    assert_int_equal(e->nprefix, strlen(prefix));
    assert_memory_equal(e->prefix, prefix, strlen(prefix) + 1);
}

static void
assert_example_pools(const struct config *cfg)
{
    static const char *const names[] = {"main", "replica", "new", "gutter"};
    const struct cfg_pool *p;

    assert_int_equal(cfg->npools, 4);
    for (size_t i = 0; i < NELEMS(names); i++) {
        assert_string_equal(cfg->pools[i].name, names[i]);
    }
    p = &cfg->pools[MAIN].pool;
    assert_int_equal(p->nservers, 2);
    assert_inet(&p->servers[0].addr, "127.0.0.1:11211", "127.0.0.1", 11211);
    assert_inet(&p->servers[1].addr, "127.0.0.1:11212", "127.0.0.1", 11212);
    assert_int_equal(p->servers[1].weight, 1);
    assert_memory_equal(p->hash_tag, "{}", 3);
    assert_int_equal(p->distribution, CFG_DIST_KETAMA);
    assert_int_equal(p->hash, CFG_HASH_DEFAULT);
    assert_int_equal(p->failure_limit, 3);
    assert_int_equal(p->retry_timeout_ms, 1000);
    assert_false(p->eject_rehash);
    assert_int_equal(cfg->pools[REPLICA].pool.nservers, 1);
    assert_string_equal(cfg->pools[NEW].pool.servers[0].addr.name,
                        "127.0.0.1:11214");
    assert_memory_equal(cfg->pools[NEW].pool.hash_tag, "\0\0", 3);
    p = &cfg->pools[GUTTER].pool;
    assert_int_equal(p->nservers, 1);
    assert_inet(&p->servers[0].addr, "127.0.0.1:11215", "127.0.0.1", 11215);
    assert_string_equal(p->hash_tag, "");
    assert_int_equal(p->distribution, CFG_DIST_MODULA);
    assert_int_equal(p->hash, CFG_HASH_CRC);
    assert_int_equal(p->failure_limit, 5);
    assert_int_equal(p->retry_timeout_ms, 200);
    assert_true(p->eject_rehash);
}

/* routes[0..3]: sess:, s:, feed:, user:. */
static void
assert_example_routes_a(const struct config *cfg)
{
    const struct cfg_route *r;

    assert_prefix(&cfg->routes[0], "sess:");
    r = &cfg->routes[0].route;
    assert_rule(r, CFG_ROUTE_ALL_SYNC, 2, false, false, 8);
    assert_pool_route(&r->child[0], MAIN, 0, 8);
    assert_pool_route(&r->child[1], REPLICA, 0, 8);

    assert_prefix(&cfg->routes[1], "s:");
    r = &cfg->routes[1].route;
    assert_rule(r, CFG_ROUTE_ALL_SYNC, 2, true, false, 10);
    assert_pool_route(&r->child[0], MAIN, 0, 10);
    assert_pool_route(&r->child[1], REPLICA, 0, 10);

    assert_prefix(&cfg->routes[2], "feed:");
    r = &cfg->routes[2].route;
    assert_rule(r, CFG_ROUTE_FAILOVER, 2, false, true, 12);
    assert_pool_route(&r->child[0], MAIN, 0, 12);
    assert_pool_route(&r->child[1], GUTTER, 300, 12);

    assert_prefix(&cfg->routes[3], "user:");
    r = &cfg->routes[3].route;
    assert_rule(r, CFG_ROUTE_WARM_UP, 2, false, false, 14);
    assert_pool_route(&r->child[0], NEW, 0, 14);
    assert_pool_route(&r->child[1], MAIN, 0, 14);
}

/* routes[4..7]: x:, y:, b, the default. */
static void
assert_example_routes_b(const struct config *cfg)
{
    const struct cfg_route *r;

    assert_prefix(&cfg->routes[4], "x:");
    r = &cfg->routes[4].route;
    assert_rule(r, CFG_ROUTE_ALL_FASTEST, 2, false, false, 16);
    assert_pool_route(&r->child[0], MAIN, 0, 16);
    assert_pool_route(&r->child[1], REPLICA, 0, 16);

    assert_prefix(&cfg->routes[5], "y:");
    r = &cfg->routes[5].route;
    assert_rule(r, CFG_ROUTE_L1L2, 2, false, false, 18);
    assert_pool_route(&r->child[0], MAIN, 0, 18);
    assert_rule(&r->child[1], CFG_ROUTE_ALL_SYNC, 2, false, false, 18);
    assert_pool_route(&r->child[1].child[0], REPLICA, 0, 18);
    assert_pool_route(&r->child[1].child[1], NEW, 0, 18);

    assert_prefix(&cfg->routes[6], "b");
    r = &cfg->routes[6].route;
    assert_rule(r, CFG_ROUTE_FAILOVER, 2, false, false, 21);
    assert_pool_route(&r->child[0], MAIN, 0, 22);
    assert_pool_route(&r->child[1], GUTTER, 2592000, 23);

    assert_null(cfg->routes[7].prefix);
    assert_int_equal(cfg->routes[7].nprefix, 0);
    r = &cfg->routes[7].route;
    assert_rule(r, CFG_ROUTE_SHADOW, 2, false, false, 26);
    assert_true(r->fraction == 0.1);
    assert_pool_route(&r->child[0], MAIN, 0, 26);
    assert_pool_route(&r->child[1], NEW, 0, 26);
}

static void
test_routes_example(void **state)
{
    struct config *cfg = load_ok(routes_example);

    (void)state;
    assert_example_pools(cfg);
    assert_int_equal(cfg->nroutes, 8);
    assert_example_routes_a(cfg);
    assert_example_routes_b(cfg);
    /* the single pool keeps its defaults, unused */
    assert_defaults(cfg);
    assert_int_equal(cfg->orca, CFG_ORCA_L1ONLY);
    assert_int_equal(cfg->l2.nservers, 0);
    assert_int_equal(cfg->nbatch_listen, 0);
    config_unref(cfg);
}

/* conf/routes-example.yml loads (run from the repository root). */
static void
test_routes_example_file(void **state)
{
    char err[512];
    struct config *cfg =
        config_load("conf/routes-example.yml", err, sizeof(err));

    (void)state;
    if (cfg == NULL) {
        fail_msg("%s", err);
    }
    assert_true(cfg->npools > 0);
    assert_true(cfg->nroutes > 0);
    config_unref(cfg);
}

/* Other spellings: routes: before pools:, block mappings, the default
 * first and alone, explicit defaults of the modifiers, bounds. */
static void
test_routes_forms(void **state)
{
    struct config *cfg;
    const struct cfg_route *r;

    (void)state;
    cfg = load_ok("routes:\n"
                  "  - default:\n"
                  "      shadow:\n"
                  "        route: {all_fastest: [a.b, c-d_1], read: first}\n"
                  "        to: {failover: [c-d_1], miss: false}\n"
                  "        fraction: 1\n"
                  "  - {prefix: 0, route: {pool: a.b, ttl_max: 1}}\n"
                  "pools:\n"
                  "  a.b:\n"
                  "    servers: [127.0.0.1:1]\n"
                  "  c-d_1: {servers: [127.0.0.1:2], hash_tag: '$$'}\n");
    assert_int_equal(cfg->npools, 2);
    assert_string_equal(cfg->pools[1].name, "c-d_1");
    assert_string_equal(cfg->pools[1].pool.hash_tag, "$$");
    assert_int_equal(cfg->nroutes, 2);
    assert_null(cfg->routes[0].prefix);
    r = &cfg->routes[0].route;
    assert_rule(r, CFG_ROUTE_SHADOW, 2, false, false, 3);
    assert_true(r->fraction == 1.0);
    assert_rule(&r->child[0], CFG_ROUTE_ALL_FASTEST, 2, false, false, 4);
    assert_pool_route(&r->child[0].child[0], 0, 0, 4);
    assert_pool_route(&r->child[0].child[1], 1, 0, 4);
    assert_rule(&r->child[1], CFG_ROUTE_FAILOVER, 1, false, false, 5);
    assert_pool_route(&r->child[1].child[0], 1, 0, 5);
    assert_prefix(&cfg->routes[1], "0");
    assert_pool_route(&cfg->routes[1].route, 0, 1, 7);
    config_unref(cfg);

    cfg = load_ok("pools: {p: {servers: [127.0.0.1:1]}}\n"
                  "routes:\n"
                  "  - default: {shadow: {to: p, route: p, fraction: 0}}\n"
                  "  - prefix: \"\\xe9t\\xe9:\"\n"
                  "    route: p\n");
    assert_true(cfg->routes[0].route.fraction == 0.0);
    assert_prefix(&cfg->routes[1], "\xc3\xa9t\xc3\xa9:");
    config_unref(cfg);
}

/* A prefix of 250 bytes (a longest key) loads; 251 does not. */
static void
test_routes_prefix_length(void **state)
{
    char prefix[CFG_PREFIX_MAX + 2], yaml[512], err[512];
    struct config *cfg;

    (void)state;
    memset(prefix, 'k', sizeof(prefix) - 2);
    prefix[CFG_PREFIX_MAX] = '\0';
    snprintf(yaml, sizeof(yaml),
             "pools: {p: {servers: [127.0.0.1:1]}}\n"
             "routes: [{default: p}, {prefix: %s, route: p}]\n",
             prefix);
    cfg = load_ok(yaml);
    assert_int_equal(cfg->routes[1].nprefix, 250);
    assert_memory_equal(cfg->routes[1].prefix, prefix, 251);
    config_unref(cfg);

    strcat(prefix, "k");
    snprintf(yaml, sizeof(yaml),
             "pools: {p: {servers: [127.0.0.1:1]}}\n"
             "routes: [{default: p}, {prefix: %s, route: p}]\n",
             prefix);
    assert_null(load(yaml, err, sizeof(err)));
    assert_string_equal(err, "x.yml:2: routes[1].prefix: prefix of 251 bytes, "
                             "longer than a key (250)");
}

/* hash_tag is a pool key: pool:, l1:, l2: take it too. */
static void
test_hash_tag(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = load_ok("pool:\n"
                  "  hash_tag: \"{}\"\n");
    assert_memory_equal(cfg->pool.hash_tag, "{}", 3);
    assert_defaults(cfg);
    config_unref(cfg);

    cfg = load_ok("orca: l1l2\n"
                  "l1: {servers: [127.0.0.1:1], hash_tag: '[]'}\n"
                  "l2: {servers: [127.0.0.1:2], hash_tag: '::'}\n");
    assert_string_equal(cfg->pool.hash_tag, "[]");
    assert_string_equal(cfg->l2.hash_tag, "::");
    config_unref(cfg);

    cfg = load_ok("pool: {servers: [127.0.0.1:1]}\n");
    assert_string_equal(cfg->pool.hash_tag, "");
    config_unref(cfg);
}

/* chunked: is a pool key: a mapping {chunk_size: N} (chunk_size 1068 when
 * left out), true (1068) or false (0, not chunked, as when absent), in
 * pool:, l1:, l2: and pools.NAME:. */
static void
test_chunked(void **state)
{
    static const struct {
        const char *yaml;
        uint32_t chunk_size;
    } forms[] = {
        {"pool: {servers: [127.0.0.1:1]}\n", 0},
        {"pool:\n  chunked:\n    chunk_size: 4000\n", 4000},
        {"pool: {chunked: {chunk_size: 256}}\n", 256},
        {"pool: {chunked: {chunk_size: 524172}}\n", 524172},
        {"pool: {chunked: {chunk_size: \"1364\"}}\n", 1364},
        {"pool: {chunked: {}}\n", 1068},
        {"pool:\n  chunked: true\n", 1068},
        {"pool:\n  chunked: false\n", 0},
        {"l1: {chunked: {chunk_size: 2204}}\n", 2204},
        /* l1: after pool: replaces what it sets, keeps the rest */
        {"pool: {chunked: true}\nl1: {chunked: false}\n", 0},
        {"pool: {chunked: {chunk_size: 300}}\nl1: {hash: crc}\n", 300},
    };
    struct config *cfg;

    (void)state;
    for (size_t i = 0; i < NELEMS(forms); i++) {
        cfg = load_ok(forms[i].yaml);
        if (cfg->pool.chunk_size != forms[i].chunk_size) {
            fail_msg("case %zu: chunk_size %u, want %u", i,
                     (unsigned)cfg->pool.chunk_size,
                     (unsigned)forms[i].chunk_size);
        }
        assert_int_equal(cfg->l2.chunk_size, 0);
        config_unref(cfg);
    }

    cfg = config_default();
    assert_int_equal(cfg->pool.chunk_size, 0);
    assert_int_equal(cfg->l2.chunk_size, 0);
    config_unref(cfg);

    cfg = load_ok("orca: l1l2\n"
                  "l1: {servers: [127.0.0.1:1]}\n"
                  "l2:\n"
                  "  servers: [127.0.0.1:2]\n"
                  "  chunked: {chunk_size: 8764}\n");
    assert_int_equal(cfg->pool.chunk_size, 0);
    assert_int_equal(cfg->l2.chunk_size, 8764);
    config_unref(cfg);

    cfg = load_ok("pools:\n"
                  "  a: {servers: [127.0.0.1:1], chunked: {chunk_size: 636}}\n"
                  "  b: {servers: [127.0.0.1:2]}\n"
                  "  c:\n"
                  "    servers: [127.0.0.1:3]\n"
                  "    chunked: true\n"
                  "  d: {servers: [127.0.0.1:4], chunked: false}\n"
                  "routes: [{default: a}]\n");
    assert_int_equal(cfg->npools, 4);
    assert_string_equal(cfg->pools[0].name, "a");
    assert_int_equal(cfg->pools[0].pool.chunk_size, 636);
    assert_int_equal(cfg->pools[1].pool.chunk_size, 0);
    assert_int_equal(cfg->pools[2].pool.chunk_size, 1068);
    assert_int_equal(cfg->pools[3].pool.chunk_size, 0);
    config_unref(cfg);
}

/* backend: is a pool key: {mode: batched|per_connection, connections: N,
 * batch_max: N}; per_connection (1 and 256 kept for batched) when absent. */
static void
test_backend(void **state)
{
    struct config *cfg;

    (void)state;
    cfg = load_ok("pool: {servers: [127.0.0.1:1]}\n");
    assert_false(cfg->pool.batched);
    assert_int_equal(cfg->pool.connections, 1);
    assert_int_equal(cfg->pool.batch_max, 256);
    config_unref(cfg);
    cfg = load_ok("pool:\n  backend:\n    mode: batched\n"
                  "    connections: 4\n    batch_max: 64\n");
    assert_true(cfg->pool.batched);
    assert_int_equal(cfg->pool.connections, 4);
    assert_int_equal(cfg->pool.batch_max, 64);
    config_unref(cfg);
    cfg = load_ok("pool: {backend: {mode: per_connection}}\n");
    assert_false(cfg->pool.batched);
    config_unref(cfg);
    cfg = load_ok("pools:\n"
                  "  a: {servers: [127.0.0.1:1], backend: {mode: batched}}\n"
                  "  b: {servers: [127.0.0.1:2]}\n"
                  "routes: [{default: a}]\n");
    assert_true(cfg->pools[0].pool.batched);
    assert_false(cfg->pools[1].pool.batched);
    config_unref(cfg);
}

static const struct bad bad_backend_cases[] = {
    {"pool: {backend: {mode: shared}}\n",
     "x.yml:1: pool.backend.mode: expected one of per_connection, batched, "
     "got 'shared'"},
    {"pool: {backend: {connections: 0}}\n",
     "x.yml:1: pool.backend.connections: 0 out of range 1..64"},
    {"pool: {backend: {batch_max: 0}}\n",
     "x.yml:1: pool.backend.batch_max: 0 out of range 1..65536"},
    {"pool: {backend: {size: 3}}\n",
     "x.yml:1: pool.backend: unknown key 'size'"},
};

static void
test_bad_backend(void **state)
{
    (void)state;
    check_bad(bad_backend_cases, NELEMS(bad_backend_cases));
}

#define CHUNKED_FORMS "expected true, false or {chunk_size: N}"

static const struct bad bad_chunked_cases[] = {
    /* out of range: CHUNK_SIZE_MIN..CHUNK_SIZE_MAX */
    {"pool:\n  chunked: {chunk_size: 255}\n",
     "x.yml:2: pool.chunked.chunk_size: 255 out of range 256..524172"},
    {"pool:\n  chunked:\n    chunk_size: 524173\n",
     "x.yml:3: pool.chunked.chunk_size: 524173 out of range 256..524172"},
    {"pool: {chunked: {chunk_size: 0}}\n",
     "x.yml:1: pool.chunked.chunk_size: 0 out of range 256..524172"},
    {"pool: {chunked: {chunk_size: -1068}}\n",
     "x.yml:1: pool.chunked.chunk_size: -1068 out of range 256..524172"},
    {"pool: {chunked: {chunk_size: 4294968364}}\n",
     "x.yml:1: pool.chunked.chunk_size: 4294968364 out of range "
     "256..524172"},
    {"pool: {chunked: {chunk_size: 1k}}\n",
     "x.yml:1: pool.chunked.chunk_size: expected an integer, got '1k'"},
    /* unknown and duplicate keys */
    {"pool:\n  chunked:\n    chunk_size: 1068\n    chunk_sise: 1068\n",
     "x.yml:4: pool.chunked: unknown key 'chunk_sise'"},
    {"pool: {chunked: {chunk_size: 300, chunk_size: 400}}\n",
     "x.yml:1: pool.chunked: duplicate key 'chunk_size'"},
    {"pool: {chunked: true, chunked: false}\n",
     "x.yml:1: pool: duplicate key 'chunked'"},
    {"pool: {chunk_size: 1068}\n", "x.yml:1: pool: unknown key 'chunk_size'"},
    /* neither a bool nor a mapping */
    {"pool: {chunked: 1068}\n",
     "x.yml:1: pool.chunked: " CHUNKED_FORMS ", got '1068'"},
    {"pool: {chunked: yes}\n",
     "x.yml:1: pool.chunked: " CHUNKED_FORMS ", got 'yes'"},
    {"pool: {chunked: [1068]}\n",
     "x.yml:1: pool.chunked: " CHUNKED_FORMS ", got a sequence"},
    {"pool:\n  chunked:\n",
     "x.yml:2: pool.chunked: " CHUNKED_FORMS ", got an empty value"},
    /* every pool: its path and line */
    {"l1: {chunked: {chunk_size: 100}}\n",
     "x.yml:1: l1.chunked.chunk_size: 100 out of range 256..524172"},
    {"orca: l1l2\nl2:\n  servers: [127.0.0.1:2]\n  chunked: {size: 1}\n",
     "x.yml:4: l2.chunked: unknown key 'size'"},
    {"pools:\n  a: {servers: [127.0.0.1:1]}\n"
     "  b: {servers: [127.0.0.1:2], chunked: {chunk_size: 600000}}\n"
     "routes: [{default: a}]\n",
     "x.yml:3: pools.b.chunked.chunk_size: 600000 out of range 256..524172"},
};

static void
test_bad_chunked(void **state)
{
    (void)state;
    check_bad(bad_chunked_cases, NELEMS(bad_chunked_cases));
}

/* Two pools, a (index 0) and b, on lines 1-3; routes from line 4. */
#define POOLS                                                                  \
    "pools:\n"                                                                 \
    "  a: {servers: [127.0.0.1:1]}\n"                                          \
    "  b: {servers: [127.0.0.1:2]}\n"
#define ROUTES_REPLACE_MSG                                                     \
    "not with routes: (routes: replaces pool:/l1:/l2:/orca:/batch_listen:)"

static const struct bad bad_pool_cases[] = {
    /* pools: and routes: go together */
    {"pools:\n  a: {servers: [127.0.0.1:1]}\n",
     "x.yml:1: pools: given without routes:"},
    {"log_level: info\nroutes:\n  - default: a\n",
     "x.yml:2: routes: given without pools:"},
    /* and replace the single pool */
    {POOLS "routes: [{default: a}]\npool:\n  servers: [127.0.0.1:3]\n",
     "x.yml:5: pool: " ROUTES_REPLACE_MSG},
    {"l1: {servers: [127.0.0.1:3]}\n" POOLS "routes: [{default: a}]\n",
     "x.yml:1: l1: " ROUTES_REPLACE_MSG},
    {POOLS "l2: {servers: [127.0.0.1:3]}\nroutes: [{default: a}]\n",
     "x.yml:4: l2: " ROUTES_REPLACE_MSG},
    {POOLS "routes: [{default: a}]\norca: l1only\n",
     "x.yml:5: orca: " ROUTES_REPLACE_MSG},
    {POOLS "routes: [{default: a}]\nbatch_listen: [127.0.0.1:4]\n",
     "x.yml:5: batch_listen: " ROUTES_REPLACE_MSG},
    /* pools */
    {"pools: []\nroutes: [{default: a}]\n",
     "x.yml:1: pools: expected a mapping, got a sequence"},
    {"pools:\nroutes: [{default: a}]\n",
     "x.yml:1: pools: expected a mapping, got an empty value"},
    {"pools: {}\nroutes: [{default: a}]\n",
     "x.yml:1: pools: empty mapping, at least one pool is required"},
    {"pools:\n  a b: {servers: [127.0.0.1:1]}\nroutes: [{default: a}]\n",
     "x.yml:2: pools: pool name 'a b' is not made of [A-Za-z0-9_.-]"},
    {"pools:\n  a/b: {servers: [127.0.0.1:1]}\nroutes: [{default: a}]\n",
     "x.yml:2: pools: pool name 'a/b' is not made of [A-Za-z0-9_.-]"},
    {"pools:\n  '': {servers: [127.0.0.1:1]}\nroutes: [{default: a}]\n",
     "x.yml:2: pools: pool name '' is not made of [A-Za-z0-9_.-]"},
    {"pools:\n  [a]: {servers: [127.0.0.1:1]}\nroutes: [{default: a}]\n",
     "x.yml:2: pools: expected a pool name, got a sequence"},
    {POOLS "  a: {servers: [127.0.0.1:3]}\nroutes: [{default: a}]\n",
     "x.yml:4: pools: duplicate key 'a'"},
    {"pools:\n  a: {hash: md5}\nroutes: [{default: a}]\n",
     "x.yml:2: pools.a: missing key 'servers'"},
    {"pools:\n  a: {}\nroutes: [{default: a}]\n",
     "x.yml:2: pools.a: missing key 'servers'"},
    {"pools:\n  a:\nroutes: [{default: a}]\n",
     "x.yml:2: pools.a: expected a mapping, got an empty value"},
    {"pools:\n  a: {servers: []}\nroutes: [{default: a}]\n",
     "x.yml:2: pools.a.servers: empty list, at least one address is "
     "required"},
    {"pools:\n  a:\n    servers:\n      - 127.0.0.1:1\n      - 127.0.0.1:0\n"
     "routes: [{default: a}]\n",
     "x.yml:5: pools.a.servers[1]: port 0 out of range 1..65535"},
    {"pools:\n  a: {servers: [127.0.0.1:1], sevrers: 1}\n"
     "routes: [{default: a}]\n",
     "x.yml:2: pools.a: unknown key 'sevrers'"},
    {"pools:\n  a: {servers: [127.0.0.1:1], failure_limit: 0}\n"
     "routes: [{default: a}]\n",
     "x.yml:2: pools.a.failure_limit: 0 out of range 1..1000"},
    /* hash_tag */
    {"pools:\n  a: {servers: [127.0.0.1:1], hash_tag: '{'}\n"
     "routes: [{default: a}]\n",
     "x.yml:2: pools.a.hash_tag: expected two characters such as {}, got "
     "'{'"},
    {"pools:\n  a: {servers: [127.0.0.1:1], hash_tag: ''}\n"
     "routes: [{default: a}]\n",
     "x.yml:2: pools.a.hash_tag: expected two characters such as {}, got "
     "an empty value"},
    {"pool:\n  hash_tag: '{}}'\n",
     "x.yml:2: pool.hash_tag: expected two characters such as {}, got "
     "'{}}'"},
    {"l2:\n  hash_tag: [a, b]\n",
     "x.yml:2: l2.hash_tag: expected two characters, got a sequence"},
};

static const struct bad bad_routes_cases[] = {
    {POOLS "routes: {default: a}\n",
     "x.yml:4: routes: expected a sequence, got a mapping"},
    {POOLS "routes: []\n", "x.yml:4: routes: no default entry"},
    {POOLS "routes:\n  - {prefix: p, route: a}\n",
     "x.yml:5: routes: no default entry"},
    {POOLS "routes:\n  - default: a\n  - {prefix: p, route: a}\n"
           "  - default: b\n",
     "x.yml:7: routes[2]: a second default entry (the first is routes[0])"},
    {POOLS "routes:\n  - default: a\n  - {prefix: 'p:', route: a}\n"
           "  - prefix: 'q:'\n    route: a\n  - prefix: 'p:'\n    route: b\n",
     "x.yml:9: routes[3].prefix: prefix 'p:' listed twice (also routes[1])"},
    {POOLS "routes:\n  - default: a\n  - {prefix: '', route: a}\n",
     "x.yml:6: routes[1].prefix: empty prefix"},
    {POOLS "routes:\n  - default: a\n  - {prefix: 'a b', route: a}\n",
     "x.yml:6: routes[1].prefix: prefix holds a space or a control "
     "character (byte 1)"},
    {POOLS "routes:\n  - default: a\n  - {prefix: \"ab\\t\", route: a}\n",
     "x.yml:6: routes[1].prefix: prefix holds a space or a control "
     "character (byte 2)"},
    {POOLS "routes:\n  - default: a\n  - {prefix: \"\\x7f\", route: a}\n",
     "x.yml:6: routes[1].prefix: prefix holds a space or a control "
     "character (byte 0)"},
    {POOLS "routes:\n  - default: a\n  - {prefix: [p], route: a}\n",
     "x.yml:6: routes[1].prefix: expected a key prefix, got a sequence"},
    {POOLS "routes:\n  - default: a\n  - {prefix: \"a\\0b\", route: a}\n",
     "x.yml:6: routes[1].prefix: expected a key prefix, got a NUL byte"},
    {POOLS "routes:\n  - default: a\n  - a\n",
     "x.yml:6: routes[1]: expected a mapping, got 'a'"},
    {POOLS "routes:\n  - default: a\n  - {prefx: p, route: a}\n",
     "x.yml:6: routes[1]: unknown key 'prefx'"},
    {POOLS "routes:\n  - default: a\n  - {prefix: p, prefix: q, route: a}\n",
     "x.yml:6: routes[1]: duplicate key 'prefix'"},
    {POOLS "routes:\n  - {prefix: p, default: a}\n",
     "x.yml:5: routes[0]: default: goes alone, without prefix: or route:"},
    {POOLS "routes:\n  - {route: a, default: a}\n",
     "x.yml:5: routes[0]: default: goes alone, without prefix: or route:"},
    {POOLS "routes:\n  - default: a\n  - prefix: p\n",
     "x.yml:6: routes[1]: missing key 'route'"},
    {POOLS "routes:\n  - default: a\n  - route: a\n",
     "x.yml:6: routes[1]: missing key 'prefix' (or default:)"},
    {POOLS "routes:\n  - {}\n",
     "x.yml:5: routes[0]: missing key 'prefix' (or default:)"},
};

#define NO_RULE                                                                \
    "no rule (pool, all_sync, all_fastest, failover, shadow, warm_up or "      \
    "l1l2)"

static const struct bad bad_route_cases[] = {
    /* pool names */
    {POOLS "routes:\n  - default: c\n",
     "x.yml:5: routes[0].default: unknown pool 'c'"},
    {POOLS "routes:\n  - default: a\n  - prefix: p\n"
           "    route: {failover: [a, {pool: A, ttl_max: 5}]}\n",
     "x.yml:7: routes[1].route.failover[1].pool: unknown pool 'A'"},
    {POOLS "routes:\n  - default: {l1l2: {l1: a, l2: {all_sync: [b, c]}}}\n",
     "x.yml:5: routes[0].default.l1l2.l2.all_sync[1]: unknown pool 'c'"},
    {POOLS "routes:\n  - default: {warm_up: {cold: b, warm: a.}}\n",
     "x.yml:5: routes[0].default.warm_up.warm: unknown pool 'a.'"},
    {POOLS "routes:\n  - default: {all_fastest: [a, {failover: [a, b]}]}\n",
     "x.yml:5: routes[0].default.all_fastest[1]: an all_fastest child must "
     "be a pool"},
    {POOLS "routes:\n  - default: {pool: [a]}\n",
     "x.yml:5: routes[0].default.pool: expected a pool name, got a "
     "sequence"},
    {POOLS "routes:\n  - default: [a]\n",
     "x.yml:5: routes[0].default: expected a pool name or a mapping, got a "
     "sequence"},
    {POOLS "routes:\n  - default:\n",
     "x.yml:5: routes[0].default: expected a pool name or a mapping, got an "
     "empty value"},
    /* lists */
    {POOLS "routes:\n  - default: {all_sync: []}\n",
     "x.yml:5: routes[0].default.all_sync: empty list, at least one route "
     "is required"},
    {POOLS "routes:\n  - default: {failover: []}\n",
     "x.yml:5: routes[0].default.failover: empty list, at least one route "
     "is required"},
    {POOLS "routes:\n  - default: {all_fastest: a}\n",
     "x.yml:5: routes[0].default.all_fastest: expected a sequence of "
     "routes, got 'a'"},
    /* rule keys */
    {POOLS "routes:\n  - default: {}\n",
     "x.yml:5: routes[0].default: " NO_RULE},
    {POOLS "routes:\n  - default: {read: first}\n",
     "x.yml:5: routes[0].default: " NO_RULE},
    {POOLS "routes:\n  - default:\n      all_sync: [a]\n"
           "      failover: [b]\n",
     "x.yml:7: routes[0].default: two rules, 'all_sync' and 'failover' (a "
     "route takes one)"},
    {POOLS "routes:\n  - default: {pool: a, pool: b}\n",
     "x.yml:5: routes[0].default: duplicate key 'pool'"},
    {POOLS "routes:\n  - default: {all_sync: [a], reed: first}\n",
     "x.yml:5: routes[0].default: unknown key 'reed'"},
    {POOLS "routes:\n  - default: {all_sync: [a], read: first, "
           "read: first}\n",
     "x.yml:5: routes[0].default: duplicate key 'read'"},
    {POOLS "routes:\n  - default: {failover: [a], read: failover}\n",
     "x.yml:5: routes[0].default: 'read' does not apply to failover"},
    {POOLS "routes:\n  - default: {all_sync: [a], miss: true}\n",
     "x.yml:5: routes[0].default: 'miss' does not apply to all_sync"},
    {POOLS "routes:\n  - default: {failover: [a], ttl_max: 5}\n",
     "x.yml:5: routes[0].default: 'ttl_max' does not apply to failover"},
    {POOLS "routes:\n  - default:\n      l1l2: {l1: a, l2: b}\n"
           "      miss: true\n",
     "x.yml:7: routes[0].default: 'miss' does not apply to l1l2"},
    /* modifiers */
    {POOLS "routes:\n  - default: {all_sync: [a], read: last}\n",
     "x.yml:5: routes[0].default.read: expected one of first, failover, got "
     "'last'"},
    {POOLS "routes:\n  - default: {failover: [a], miss: yes}\n",
     "x.yml:5: routes[0].default.miss: expected one of false, true, got "
     "'yes'"},
    {POOLS "routes:\n  - default: {pool: a, ttl_max: 0}\n",
     "x.yml:5: routes[0].default.ttl_max: 0 out of range 1..2592000"},
    {POOLS "routes:\n  - default: {pool: a, ttl_max: 2592001}\n",
     "x.yml:5: routes[0].default.ttl_max: 2592001 out of range 1..2592000"},
    {POOLS "routes:\n  - default: {pool: a, ttl_max: 1d}\n",
     "x.yml:5: routes[0].default.ttl_max: expected an integer, got '1d'"},
    /* shadow, warm_up, l1l2 */
    {POOLS "routes:\n  - default: {shadow: {route: a, to: b}}\n",
     "x.yml:5: routes[0].default.shadow: missing key 'fraction'"},
    {POOLS "routes:\n  - default: {shadow: {route: a, fraction: 0.5}}\n",
     "x.yml:5: routes[0].default.shadow: missing key 'to'"},
    {POOLS "routes:\n  - default: {shadow: {route: a, to: b, fraction: 1.5}}\n",
     "x.yml:5: routes[0].default.shadow.fraction: 1.5 out of range 0..1"},
    {POOLS "routes:\n  - default: {shadow: {route: a, to: b, "
           "fraction: -0.1}}\n",
     "x.yml:5: routes[0].default.shadow.fraction: -0.1 out of range 0..1"},
    {POOLS "routes:\n  - default: {shadow: {route: a, to: b, "
           "fraction: 1e999}}\n",
     "x.yml:5: routes[0].default.shadow.fraction: 1e999 out of range 0..1"},
    {POOLS "routes:\n  - default: {shadow: {route: a, to: b, "
           "fraction: 10%}}\n",
     "x.yml:5: routes[0].default.shadow.fraction: expected a number from 0 "
     "to 1, got '10%'"},
    {POOLS "routes:\n  - default: {shadow: {route: a, to: b, "
           "fraction: nan}}\n",
     "x.yml:5: routes[0].default.shadow.fraction: expected a number from 0 "
     "to 1, got 'nan'"},
    {POOLS "routes:\n  - default: {shadow: {route: a, to: b, "
           "fraction: 0.5.}}\n",
     "x.yml:5: routes[0].default.shadow.fraction: expected a number from 0 "
     "to 1, got '0.5.'"},
    {POOLS "routes:\n  - default: {shadow: {route: a, to: b, fraction: }}\n",
     "x.yml:5: routes[0].default.shadow.fraction: expected a number from 0 "
     "to 1, got an empty value"},
    {POOLS "routes:\n  - default: {shadow: [a, b]}\n",
     "x.yml:5: routes[0].default.shadow: expected a mapping, got a "
     "sequence"},
    {POOLS "routes:\n  - default: {shadow: {route: a, to: b, fraction: 0, "
           "too: a}}\n",
     "x.yml:5: routes[0].default.shadow: unknown key 'too'"},
    {POOLS "routes:\n  - default: {warm_up: {cold: a}}\n",
     "x.yml:5: routes[0].default.warm_up: missing key 'warm'"},
    {POOLS "routes:\n  - default: {warm_up: {cold: a, warm: b, cold: b}}\n",
     "x.yml:5: routes[0].default.warm_up: duplicate key 'cold'"},
    {POOLS "routes:\n  - default: {l1l2: {l1: a, l2: b, l3: a}}\n",
     "x.yml:5: routes[0].default.l1l2: unknown key 'l3'"},
    {POOLS "routes:\n  - default: {l1l2: {l1: a, l2: b, fraction: 1}}\n",
     "x.yml:5: routes[0].default.l1l2: unknown key 'fraction'"},
};

static void
test_bad_pools(void **state)
{
    (void)state;
    check_bad(bad_pool_cases, NELEMS(bad_pool_cases));
}

static void
test_bad_routes(void **state)
{
    (void)state;
    check_bad(bad_routes_cases, NELEMS(bad_routes_cases));
}

static void
test_bad_route_rules(void **state)
{
    (void)state;
    check_bad(bad_route_cases, NELEMS(bad_route_cases));
}

/* A pool name of 64 bytes loads; 65 does not. */
static void
test_bad_pool_name_length(void **state)
{
    char name[CFG_POOL_NAME_MAX + 2], yaml[256], want[256], err[512];
    struct config *cfg;

    (void)state;
    memset(name, 'p', sizeof(name) - 2);
    name[CFG_POOL_NAME_MAX] = '\0';
    snprintf(yaml, sizeof(yaml),
             "pools: {%s: {servers: [127.0.0.1:1]}}\n"
             "routes: [{default: %s}]\n",
             name, name);
    cfg = load_ok(yaml);
    assert_string_equal(cfg->pools[0].name, name);
    config_unref(cfg);

    strcat(name, "p");
    snprintf(yaml, sizeof(yaml),
             "pools: {%s: {servers: [127.0.0.1:1]}}\n"
             "routes: [{default: %s}]\n",
             name, name);
    assert_null(load(yaml, err, sizeof(err)));
    snprintf(want, sizeof(want),
             "x.yml:1: pools: pool name '%.64s...' longer than 64 bytes", name);
    assert_string_equal(err, want);
}

/* Append to buf (of size) at *len; fails the test if it does not fit. */
static void __attribute__((format(printf, 4, 5)))
append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf + *len, size - *len, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < size - *len);
    *len += (size_t)n;
}

/* 256 servers over all pools load; 257 do not (line of the servers: key
 * of the pool that goes past). */
static void
test_bad_too_many_servers(void **state)
{
    static char yaml[32768];
    char err[512];
    struct config *cfg;
    size_t len = 0;

    (void)state;
    for (int extra = 0; extra < 2; extra++) {
        len = 0;
        append(yaml, sizeof(yaml), &len, "pools:\n  a:\n    servers:\n");
        for (int i = 0; i < 200; i++) {
            append(yaml, sizeof(yaml), &len, "      - 127.0.0.1:%d\n", i + 1);
        }
        append(yaml, sizeof(yaml), &len, "  b:\n    hash: md5\n");
        append(yaml, sizeof(yaml), &len, "    servers:\n");
        for (int i = 0; i < 56 + extra; i++) {
            append(yaml, sizeof(yaml), &len, "      - 127.0.0.1:%d\n",
                   i + 1000);
        }
        append(yaml, sizeof(yaml), &len, "routes: [{default: b}]\n");
        cfg = load(yaml, err, sizeof(err));
        if (extra == 0) {
            assert_non_null(cfg);
            assert_int_equal(cfg->pools[0].pool.nservers, 200);
            assert_int_equal(cfg->pools[1].pool.nservers, 56);
            config_unref(cfg);
        } else {
            assert_null(cfg);
            assert_string_equal(err, "x.yml:206: pools.b.servers: 257 "
                                     "servers over all pools, at most 256");
        }
    }
}

/* 4096 routes load; 4097 do not. */
static void
test_bad_too_many_routes(void **state)
{
    static char yaml[262144];
    char err[512];
    struct config *cfg;
    size_t len;

    (void)state;
    for (int extra = 0; extra < 2; extra++) {
        len = 0;
        append(yaml, sizeof(yaml), &len,
               "pools: {a: {servers: [127.0.0.1:1]}}\nroutes:\n"
               "  - default: a\n");
        for (int i = 1; i < CFG_ROUTES_MAX + extra; i++) {
            append(yaml, sizeof(yaml), &len, "  - {prefix: 'k%d:', route: a}\n",
                   i);
        }
        cfg = load(yaml, err, sizeof(err));
        if (extra == 0) {
            assert_non_null(cfg);
            assert_int_equal(cfg->nroutes, 4096);
            assert_prefix(&cfg->routes[4095], "k4095:");
            config_unref(cfg);
        } else {
            assert_null(cfg);
            assert_string_equal(err,
                                "x.yml:3: routes: 4097 entries, at most 4096");
        }
    }
}

/* Rules nest at most CFG_ROUTE_DEPTH_MAX deep (a stack bound). */
static void
test_bad_route_depth(void **state)
{
    char yaml[1024], err[512];
    struct config *cfg;
    size_t len;

    (void)state;
    for (int extra = 0; extra < 2; extra++) {
        len = 0;
        append(yaml, sizeof(yaml), &len,
               "pools: {a: {servers: [127.0.0.1:1]}}\nroutes:\n"
               "  - default: ");
        for (int i = 0; i < CFG_ROUTE_DEPTH_MAX - 1 + extra; i++) {
            append(yaml, sizeof(yaml), &len, "{failover: [");
        }
        append(yaml, sizeof(yaml), &len, "a");
        for (int i = 0; i < CFG_ROUTE_DEPTH_MAX - 1 + extra; i++) {
            append(yaml, sizeof(yaml), &len, "]}");
        }
        append(yaml, sizeof(yaml), &len, "\n");
        cfg = load(yaml, err, sizeof(err));
        if (extra == 0) {
            const struct cfg_route *r;

            assert_non_null(cfg);
            r = &cfg->routes[0].route;
            for (int i = 0; i < CFG_ROUTE_DEPTH_MAX - 1; i++) {
                assert_int_equal(r->kind, CFG_ROUTE_FAILOVER);
                assert_int_equal(r->nchild, 1);
                r = &r->child[0];
            }
            assert_pool_route(r, 0, 0, 3);
            config_unref(cfg);
        } else {
            assert_null(cfg);
            assert_string_equal(
                err, "x.yml:3: routes[0].default.failover[0].failover[0]."
                     "failover[0].failover[0].failover[0].failover[0]."
                     "failover[0].failover[0].failover[0].failover[0]."
                     "failover[0].failover[0].failover[0].failover[0]."
                     "failover[0].failover[0]: routes nested deeper than 16");
        }
    }
}

/* With routes, the command line may not bring back an orca, l2 servers
 * or batch listeners. */
static void
test_routes_validate(void **state)
{
    struct config *cfg = load_ok(POOLS "routes: [{default: a}]\n");
    struct cfg_addr a;
    char err[512];

    (void)state;
    assert_int_equal(config_validate(cfg, err, sizeof(err)), ST_OK);
    cfg->orca = CFG_ORCA_L1L2;
    assert_int_equal(config_validate(cfg, err, sizeof(err)), ST_ERROR);
    assert_string_equal(err, "orca l1l2 does not apply with routes: (routes: "
                             "replaces pool:/l1:/l2:/orca:/batch_listen:)");
    cfg->orca = CFG_ORCA_L1ONLY;
    assert_int_equal(config_parse_addr("127.0.0.1:5", &a, err, sizeof(err)),
                     ST_OK);
    assert_int_equal(config_set_l2_servers(cfg, &a, 1), ST_OK);
    assert_int_equal(config_validate(cfg, err, sizeof(err)), ST_ERROR);
    assert_string_equal(err, "l2 servers do not apply with routes: (routes: "
                             "replaces pool:/l1:/l2:/orca:/batch_listen:)");
    assert_int_equal(config_set_l2_servers(cfg, NULL, 0), ST_OK);
    assert_int_equal(config_set_batch_listen(cfg, &a, 1), ST_OK);
    assert_int_equal(config_validate(cfg, err, sizeof(err)), ST_ERROR);
    assert_string_equal(err, "batch_listen does not apply with routes: "
                             "(routes: replaces "
                             "pool:/l1:/l2:/orca:/batch_listen:)");
    config_unref(cfg);
}

/* ---- TLS ---- */

/* Files for cert:, key: and ca: (they must be readable; only tls.c reads
 * what is in them). mkstemp files under /tmp, removed by tls_files_remove. */
struct tls_files {
    char cert[64];
    char key[64];
    char ca[64];
};

static void
tls_files_create(struct tls_files *f)
{
    write_temp(f->cert, sizeof(f->cert), "cert\n");
    write_temp(f->key, sizeof(f->key), "key\n");
    write_temp(f->ca, sizeof(f->ca), "ca\n");
}

static void
tls_files_remove(const struct tls_files *f)
{
    unlink(f->cert);
    unlink(f->key);
    unlink(f->ca);
}

static void
assert_plain(const struct cfg_tls *t)
{
    assert_false(t->on);
    assert_null(t->cert);
    assert_null(t->key);
    assert_null(t->ca);
    assert_null(t->ciphers);
    assert_null(t->server_name);
    assert_int_equal(t->verify, CFG_TLS_VERIFY_NONE);
    assert_int_equal(t->min_version, 0);
    assert_int_equal(t->line, 0);
}

/* on, with these strings (NULL: absent), verify, min_version and line. */
static void
assert_tls(const struct cfg_tls *t, const char *cert, const char *key,
           const char *ca, enum cfg_tls_verify verify, int min_version,
           int line)
{
    assert_true(t->on);
    if (cert == NULL) {
        assert_null(t->cert);
    } else {
        assert_string_equal(t->cert, cert);
    }
    if (key == NULL) {
        assert_null(t->key);
    } else {
        assert_string_equal(t->key, key);
    }
    if (ca == NULL) {
        assert_null(t->ca);
    } else {
        assert_string_equal(t->ca, ca);
    }
    assert_int_equal(t->verify, verify);
    assert_int_equal(t->min_version, min_version);
    assert_int_equal(t->line, line);
}

/* The built-in and an empty file: plain listeners and pools, a 3 s
 * handshake. */
static void
test_tls_defaults(void **state)
{
    struct config *cfg = config_default();

    (void)state;
    assert_int_equal(CFG_TLS_MIN_VERSION_DEFAULT, 0x0303);
    assert_int_equal(cfg->tls_handshake_timeout_ms, 3000);
    assert_non_null(cfg->listen_tls);
    assert_plain(&cfg->listen_tls[0]);
    assert_plain(&cfg->pool.tls);
    assert_plain(&cfg->l2.tls);
    config_unref(cfg);

    cfg = load_ok("listen: [127.0.0.1:1, 127.0.0.1:2]\n");
    assert_int_equal(cfg->tls_handshake_timeout_ms, 3000);
    assert_plain(&cfg->listen_tls[0]);
    assert_plain(&cfg->listen_tls[1]);
    config_unref(cfg);
}

/* Listeners: plain strings, mappings with and without tls:, every key,
 * flow and block style; line is the tls: key's. */
static void
test_tls_listeners(void **state)
{
    struct tls_files f;
    char yaml[2048];
    struct config *cfg;

    (void)state;
    tls_files_create(&f);
    snprintf(yaml, sizeof(yaml),
             /*  1 */
             "listen:\n"
             /*  2 */ "  - 127.0.0.1:11311\n"
             /*  3 */ "  - {addr: 127.0.0.1:11312, tls: {cert: %s, key: %s, "
             /*    */ "ca: %s, verify: require, min_version: \"1.3\", "
             /*    */ "ciphers: \"ECDHE+AESGCM\"}}\n"
             /*  4 */ "  - addr: 127.0.0.1:11313\n"
             /*  5 */ "    tls:\n"
             /*  6 */ "      key: %s\n"
             /*  7 */ "      cert: %s\n"
             /*  8 */ "  - {addr: unix:/tmp/riven-tls.sock}\n"
             /*  9 */ "  - addr: 127.0.0.1:11315\n"
             /* 10 */ "    tls: {cert: %s, key: %s, ca: %s, verify: optional, "
             /*    */ "min_version: 1.2}\n"
             /* 11 */ "  - addr: 127.0.0.1:11316\n"
             /* 12 */ "    tls: {cert: %s, key: %s, verify: none}\n",
             f.cert, f.key, f.ca, f.key, f.cert, f.cert, f.key, f.ca, f.cert,
             f.key);
    cfg = load_ok(yaml);
    assert_int_equal(cfg->nlisten, 6);
    assert_inet(&cfg->listen[0], "127.0.0.1:11311", "127.0.0.1", 11311);
    assert_plain(&cfg->listen_tls[0]);

    assert_inet(&cfg->listen[1], "127.0.0.1:11312", "127.0.0.1", 11312);
    assert_tls(&cfg->listen_tls[1], f.cert, f.key, f.ca, CFG_TLS_VERIFY_REQUIRE,
               0x0304, 3);
    assert_string_equal(cfg->listen_tls[1].ciphers, "ECDHE+AESGCM");
    assert_null(cfg->listen_tls[1].server_name);

    /* defaults: verify none, TLS 1.2, no ca, no ciphers */
    assert_inet(&cfg->listen[2], "127.0.0.1:11313", "127.0.0.1", 11313);
    assert_tls(&cfg->listen_tls[2], f.cert, f.key, NULL, CFG_TLS_VERIFY_NONE,
               0x0303, 5);
    assert_null(cfg->listen_tls[2].ciphers);
    assert_null(cfg->listen_tls[2].server_name);

    assert_string_equal(cfg->listen[3].name, "unix:/tmp/riven-tls.sock");
    assert_plain(&cfg->listen_tls[3]);

    assert_tls(&cfg->listen_tls[4], f.cert, f.key, f.ca,
               CFG_TLS_VERIFY_OPTIONAL, 0x0303, 10);
    assert_null(cfg->listen_tls[4].ciphers);
    assert_tls(&cfg->listen_tls[5], f.cert, f.key, NULL, CFG_TLS_VERIFY_NONE,
               0x0303, 12);
    config_unref(cfg);
    tls_files_remove(&f);
}

/* pool:, l1:, l2: verify defaults to true (require); cert and key are
 * optional together; tls: {} is TLS with every default. */
static void
test_tls_pools(void **state)
{
    struct tls_files f;
    char yaml[2048];
    struct config *cfg;
    const struct cfg_tls *t;

    (void)state;
    tls_files_create(&f);
    snprintf(yaml, sizeof(yaml),
             /*  1 */
             "orca: l1l2\n"
             /*  2 */ "l1:\n"
             /*  3 */ "  servers: [127.0.0.1:1]\n"
             /*  4 */ "  tls: {ca: %s, cert: %s, key: %s, verify: true, "
             /*    */ "server_name: cache.internal, min_version: \"1.3\", "
             /*    */ "ciphers: \"HIGH:!aNULL\"}\n"
             /*  5 */ "l2:\n"
             /*  6 */ "  servers: [127.0.0.1:2]\n"
             /*  7 */ "  tls:\n"
             /*  8 */ "    verify: false\n"
             /*  9 */ "timeouts:\n"
             /* 10 */ "  tls_handshake_ms: 2500\n",
             f.ca, f.cert, f.key);
    cfg = load_ok(yaml);
    t = &cfg->pool.tls;
    assert_tls(t, f.cert, f.key, f.ca, CFG_TLS_VERIFY_REQUIRE, 0x0304, 4);
    assert_string_equal(t->server_name, "cache.internal");
    assert_string_equal(t->ciphers, "HIGH:!aNULL");
    t = &cfg->l2.tls;
    assert_tls(t, NULL, NULL, NULL, CFG_TLS_VERIFY_NONE, 0x0303, 7);
    assert_null(t->server_name);
    assert_null(t->ciphers);
    assert_int_equal(cfg->tls_handshake_timeout_ms, 2500);
    assert_plain(&cfg->listen_tls[0]);
    config_unref(cfg);

    cfg = load_ok("pool:\n  tls: {}\n");
    assert_tls(&cfg->pool.tls, NULL, NULL, NULL, CFG_TLS_VERIFY_REQUIRE, 0x0303,
               2);
    assert_null(cfg->pool.tls.server_name);
    assert_null(cfg->pool.tls.ciphers);
    assert_plain(&cfg->l2.tls);
    config_unref(cfg);

    /* l1: after pool: replaces its tls: (the first one's strings freed) */
    cfg = load_ok("pool: {tls: {server_name: first, ciphers: A}}\n"
                  "l1: {tls: {server_name: second}}\n");
    assert_tls(&cfg->pool.tls, NULL, NULL, NULL, CFG_TLS_VERIFY_REQUIRE, 0x0303,
               2);
    assert_string_equal(cfg->pool.tls.server_name, "second");
    assert_null(cfg->pool.tls.ciphers);
    config_unref(cfg);
    tls_files_remove(&f);
}

/* pools.NAME.tls, as pool.tls. */
static void
test_tls_named_pools(void **state)
{
    struct tls_files f;
    char yaml[1024];
    struct config *cfg;

    (void)state;
    tls_files_create(&f);
    snprintf(yaml, sizeof(yaml),
             /* 1 */
             "pools:\n"
             /* 2 */ "  a: {servers: [127.0.0.1:1], tls: {server_name: "
             /*   */ "a.internal}}\n"
             /* 3 */ "  b:\n"
             /* 4 */ "    servers: [127.0.0.1:2]\n"
             /* 5 */ "    tls:\n"
             /* 6 */ "      ca: %s\n"
             /* 7 */ "      verify: false\n"
             /* 8 */ "      cert: %s\n"
             /* 9 */ "      key: %s\n"
             /*10 */ "  c: {servers: [127.0.0.1:3]}\n"
             /*11 */ "routes: [{default: a}, {prefix: 'b:', route: b}]\n",
             f.ca, f.cert, f.key);
    cfg = load_ok(yaml);
    assert_int_equal(cfg->npools, 3);
    assert_tls(&cfg->pools[0].pool.tls, NULL, NULL, NULL,
               CFG_TLS_VERIFY_REQUIRE, 0x0303, 2);
    assert_string_equal(cfg->pools[0].pool.tls.server_name, "a.internal");
    assert_tls(&cfg->pools[1].pool.tls, f.cert, f.key, f.ca,
               CFG_TLS_VERIFY_NONE, 0x0303, 5);
    assert_null(cfg->pools[1].pool.tls.server_name);
    assert_plain(&cfg->pools[2].pool.tls);
    assert_plain(&cfg->pool.tls);
    config_unref(cfg);
    tls_files_remove(&f);
}

static const struct bad bad_tls_cases[] = {
    /* listen entries */
    {"listen:\n  - {addr: 127.0.0.1:1, tsl: {}}\n",
     "x.yml:2: listen[0]: unknown key 'tsl'"},
    {"listen:\n  - 127.0.0.1:1\n  - {tls: {}}\n",
     "x.yml:3: listen[1]: missing key 'addr'"},
    {"listen:\n  - {addr: 127.0.0.1:0}\n",
     "x.yml:2: listen[0].addr: port 0 out of range 1..65535"},
    {"listen:\n  - {addr: [127.0.0.1:1]}\n",
     "x.yml:2: listen[0].addr: expected an address, got a sequence"},
    {"listen:\n  - {addr: 127.0.0.1:1, addr: 127.0.0.1:2}\n",
     "x.yml:2: listen[0]: duplicate key 'addr'"},
    {"listen:\n  - {addr: 127.0.0.1:1, tls: true}\n",
     "x.yml:2: listen[0].tls: expected a mapping, got 'true'"},
    {"listen:\n  - addr: 127.0.0.1:1\n    tls:\n",
     "x.yml:3: listen[0].tls: expected a mapping, got an empty value"},
    {"batch_listen: [{addr: 127.0.0.1:1, tls: {}}]\n",
     "x.yml:1: batch_listen[0]: expected an address, got a mapping"},
    /* a listener's tls: */
    {"listen:\n  - addr: 127.0.0.1:1\n    tls: {}\n",
     "x.yml:3: listen[0].tls: missing key 'cert'"},
    {"listen:\n  - addr: 127.0.0.1:1\n    tls:\n      server_name: a\n",
     "x.yml:4: listen[0].tls: 'server_name' does not apply to a listener"},
    {"listen:\n  - addr: 127.0.0.1:1\n    tls:\n      crt: a\n",
     "x.yml:4: listen[0].tls: unknown key 'crt'"},
    {"listen:\n  - addr: 127.0.0.1:1\n    tls:\n      ciphers: a\n"
     "      ciphers: b\n",
     "x.yml:5: listen[0].tls: duplicate key 'ciphers'"},
    {"listen:\n  - addr: 127.0.0.1:1\n    tls:\n"
     "      cert: /nonexistent/riven-test.pem\n",
     "x.yml:4: listen[0].tls.cert: /nonexistent/riven-test.pem: No such file "
     "or directory"},
    {"listen:\n  - {addr: 127.0.0.1:1, tls: {key: /tmp}}\n",
     "x.yml:2: listen[0].tls.key: /tmp: Is a directory"},
    {"listen:\n  - {addr: 127.0.0.1:1, tls: {ca: ''}}\n",
     "x.yml:2: listen[0].tls.ca: expected a file path, got an empty value"},
    {"listen:\n  - {addr: 127.0.0.1:1, tls: {cert: [a]}}\n",
     "x.yml:2: listen[0].tls.cert: expected a file path, got a sequence"},
    {"listen:\n  - {addr: 127.0.0.1:1, tls: {verify: true}}\n",
     "x.yml:2: listen[0].tls.verify: expected one of none, optional, "
     "require, got 'true'"},
    {"listen:\n  - {addr: 127.0.0.1:1, tls: {min_version: 1.1}}\n",
     "x.yml:2: listen[0].tls.min_version: expected one of 1.2, 1.3, got "
     "'1.1'"},
    {"listen:\n  - {addr: 127.0.0.1:1, tls: {min_version: 1.30}}\n",
     "x.yml:2: listen[0].tls.min_version: expected one of 1.2, 1.3, got "
     "'1.30'"},
    /* a pool's tls: */
    {"pool:\n  tls: true\n", "x.yml:2: pool.tls: expected a mapping, got "
                             "'true'"},
    {"l2:\n  tls: [a]\n", "x.yml:2: l2.tls: expected a mapping, got a "
                          "sequence"},
    {"pool:\n  tls: {}\n  tls: {}\n", "x.yml:3: pool: duplicate key 'tls'"},
    {"l1:\n  tls: {verify: yes}\n",
     "x.yml:2: l1.tls.verify: expected one of false, true, got 'yes'"},
    {"l1:\n  tls: {verify: require}\n",
     "x.yml:2: l1.tls.verify: expected one of false, true, got 'require'"},
    {"pool:\n  tls: {min_version: '1.0'}\n",
     "x.yml:2: pool.tls.min_version: expected one of 1.2, 1.3, got '1.0'"},
    {"pool:\n  tls: {ciphers: ''}\n",
     "x.yml:2: pool.tls.ciphers: expected a cipher list, got an empty value"},
    {"pool:\n  tls: {server_name: ''}\n",
     "x.yml:2: pool.tls.server_name: expected a host name, got an empty "
     "value"},
    {"pool:\n  tls: {server_name: {a: b}}\n",
     "x.yml:2: pool.tls.server_name: expected a host name, got a mapping"},
    {"pool:\n  tls:\n    ca: /nonexistent/ca.pem\n",
     "x.yml:3: pool.tls.ca: /nonexistent/ca.pem: No such file or directory"},
    {"pool:\n  tls: {sni: a}\n", "x.yml:2: pool.tls: unknown key 'sni'"},
    {"pools:\n  a:\n    servers: [127.0.0.1:1]\n    tls: {verify: 1}\n"
     "routes: [{default: a}]\n",
     "x.yml:4: pools.a.tls.verify: expected one of false, true, got '1'"},
    {"pools:\n  a: {servers: [127.0.0.1:1], tls: {cert: /nonexistent/c}}\n"
     "routes: [{default: a}]\n",
     "x.yml:2: pools.a.tls.cert: /nonexistent/c: No such file or directory"},
    /* timeouts.tls_handshake_ms */
    {"timeouts:\n  tls_handshake_ms: 0\n",
     "x.yml:2: timeouts.tls_handshake_ms: 0 out of range 1..3600000"},
    {"timeouts:\n  tls_handshake_ms: 3600001\n",
     "x.yml:2: timeouts.tls_handshake_ms: 3600001 out of range 1..3600000"},
    {"timeouts:\n  tls_handshake_ms: 3s\n",
     "x.yml:2: timeouts.tls_handshake_ms: expected an integer, got '3s'"},
};

static void
test_bad_tls(void **state)
{
    (void)state;
    check_bad(bad_tls_cases, NELEMS(bad_tls_cases));
}

/* printf into a new string, for cases that name the temporary files. */
static char *__attribute__((format(printf, 1, 2)))
fmt_alloc(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;

    va_start(ap, fmt);
    assert_true(vasprintf(&s, fmt, ap) >= 0);
    va_end(ap);
    return s;
}

/* The rules between keys, with files that exist. */
static void
test_bad_tls_rules(void **state)
{
    struct tls_files f;
    struct bad cases[7];
    char name[257]; /* 256 bytes: one past SNI's host_name */
    size_t n = 0;

    (void)state;
    tls_files_create(&f);
    memset(name, 'h', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    cases[n++] = (struct bad){
        fmt_alloc("listen:\n  - addr: 127.0.0.1:1\n    tls: {cert: %s}\n",
                  f.cert),
        "x.yml:3: listen[0].tls: missing key 'key'"};
    cases[n++] = (struct bad){
        fmt_alloc("listen:\n  - addr: 127.0.0.1:1\n    tls: {key: %s}\n",
                  f.key),
        "x.yml:3: listen[0].tls: missing key 'cert'"};
    cases[n++] = (struct bad){
        fmt_alloc("listen:\n  - 127.0.0.1:1\n  - addr: 127.0.0.1:2\n"
                  "    tls:\n      cert: %s\n      key: %s\n"
                  "      verify: require\n",
                  f.cert, f.key),
        "x.yml:4: listen[1].tls: missing key 'ca' (verify: require checks "
        "client certificates against it)"};
    cases[n++] = (struct bad){
        fmt_alloc("listen:\n  - {addr: 127.0.0.1:1, tls: {cert: %s, key: %s, "
                  "verify: optional}}\n",
                  f.cert, f.key),
        "x.yml:2: listen[0].tls: missing key 'ca' (verify: optional checks "
        "client certificates against it)"};
    cases[n++] = (struct bad){
        fmt_alloc("pool:\n  tls:\n    cert: %s\n", f.cert),
        "x.yml:2: pool.tls: missing key 'key' (cert and key go together)"};
    cases[n++] = (struct bad){
        fmt_alloc("pools:\n  a: {servers: [127.0.0.1:1], tls: {key: %s, "
                  "ca: %s}}\nroutes: [{default: a}]\n",
                  f.key, f.ca),
        "x.yml:2: pools.a.tls: missing key 'cert' (cert and key go "
        "together)"};
    cases[n++] = (struct bad){
        fmt_alloc("l2:\n  tls: {server_name: %s}\n", name),
        "x.yml:2: l2.tls.server_name: host name longer than 255 bytes"};
    assert_int_equal(n, NELEMS(cases));
    check_bad(cases, n);
    for (size_t i = 0; i < n; i++) {
        free((char *)cases[i].yaml);
    }
    tls_files_remove(&f);
}

/* An error after TLS settings were parsed frees them (ASan checks). */
static void
test_bad_tls_frees(void **state)
{
    struct tls_files f;
    char yaml[1024], err[512];

    (void)state;
    tls_files_create(&f);
    snprintf(yaml, sizeof(yaml),
             "listen:\n"
             "  - {addr: 127.0.0.1:1, tls: {cert: %s, key: %s, ca: %s, "
             "ciphers: A}}\n"
             "  - {addr: 127.0.0.1:2, tls: {cert: %s, key: %s}}\n"
             "  - {addr: 127.0.0.1:3, tls: {cert: %s, key: %s, "
             "verify: require}}\n",
             f.cert, f.key, f.ca, f.cert, f.key, f.cert, f.key);
    assert_null(load(yaml, err, sizeof(err)));
    assert_string_equal(err, "x.yml:4: listen[2].tls: missing key 'ca' "
                             "(verify: require checks client certificates "
                             "against it)");
    snprintf(yaml, sizeof(yaml),
             "l1: {tls: {cert: %s, key: %s, server_name: s, ciphers: c}}\n"
             "l2: {tls: {ca: %s}}\n"
             "log_level: loud\n",
             f.cert, f.key, f.ca);
    assert_null(load(yaml, err, sizeof(err)));
    assert_string_equal(err, "x.yml:3: log_level: expected error, warn, info "
                             "or debug, got 'loud'");
    snprintf(yaml, sizeof(yaml),
             "pools:\n"
             "  a: {servers: [127.0.0.1:1], tls: {ca: %s, server_name: a}}\n"
             "  b: {servers: [127.0.0.1:2], tls: {ca: %s, verify: maybe}}\n"
             "routes: [{default: a}]\n",
             f.ca, f.ca);
    assert_null(load(yaml, err, sizeof(err)));
    assert_string_equal(err, "x.yml:3: pools.b.tls.verify: expected one of "
                             "false, true, got 'maybe'");
    tls_files_remove(&f);
}

/* config_set_listen copies the TLS settings (tls NULL: all plain) and
 * frees the ones it replaces. */
static void
test_set_listen_tls(void **state)
{
    struct config *cfg = config_default();
    struct cfg_addr a[3];
    struct cfg_tls tls[3];
    char cert[] = "/c.pem", key[] = "/k.pem", ca[] = "/ca.pem";
    char ciphers[] = "HIGH", sni[] = "sni";
    char err[128];

    (void)state;
    for (int i = 0; i < 3; i++) {
        char s[32];

        snprintf(s, sizeof(s), "127.0.0.1:%d", i + 1);
        assert_int_equal(config_parse_addr(s, &a[i], err, sizeof(err)), ST_OK);
    }
    memset(tls, 0, sizeof(tls));
    tls[1] = (struct cfg_tls){.on = true,
                              .cert = cert,
                              .key = key,
                              .ca = ca,
                              .verify = CFG_TLS_VERIFY_OPTIONAL,
                              .min_version = 0x0304,
                              .ciphers = ciphers,
                              .server_name = sni};
    tls[2] = (struct cfg_tls){
        .on = true, .cert = cert, .key = key, .min_version = 0x0303, .line = 7};
    assert_int_equal(config_set_listen(cfg, a, tls, 3), ST_OK);
    memset(cert, 'x', sizeof(cert) - 1); /* the copies are the config's */
    assert_int_equal(cfg->nlisten, 3);
    assert_string_equal(cfg->listen[2].name, "127.0.0.1:3");
    assert_plain(&cfg->listen_tls[0]);
    assert_tls(&cfg->listen_tls[1], "/c.pem", "/k.pem", "/ca.pem",
               CFG_TLS_VERIFY_OPTIONAL, 0x0304, 0);
    assert_ptr_not_equal(cfg->listen_tls[1].cert, cert);
    assert_ptr_not_equal(cfg->listen_tls[1].ciphers, ciphers);
    assert_string_equal(cfg->listen_tls[1].ciphers, "HIGH");
    assert_string_equal(cfg->listen_tls[1].server_name, "sni");
    assert_tls(&cfg->listen_tls[2], "/c.pem", "/k.pem", NULL,
               CFG_TLS_VERIFY_NONE, 0x0303, 7);
    assert_null(cfg->listen_tls[2].ciphers);

    /* tls NULL: plain; the TLS strings above are freed (ASan) */
    assert_int_equal(config_set_listen(cfg, a, NULL, 2), ST_OK);
    assert_int_equal(cfg->nlisten, 2);
    assert_plain(&cfg->listen_tls[0]);
    assert_plain(&cfg->listen_tls[1]);
    assert_int_equal(config_set_listen(cfg, &a[1], &tls[1], 1), ST_OK);
    assert_string_equal(cfg->listen_tls[0].cert, cert);
    config_unref(cfg);
}

static void
test_tls_verify_parse(void **state)
{
    enum cfg_tls_verify v = CFG_TLS_VERIFY_NONE;
    char err[256];

    (void)state;
    assert_true(config_tls_verify_parse("require", &v));
    assert_int_equal(v, CFG_TLS_VERIFY_REQUIRE);
    assert_true(config_tls_verify_parse("optional", &v));
    assert_int_equal(v, CFG_TLS_VERIFY_OPTIONAL);
    assert_true(config_tls_verify_parse("none", &v));
    assert_int_equal(v, CFG_TLS_VERIFY_NONE);
    assert_false(config_tls_verify_parse("true", &v));
    assert_false(config_tls_verify_parse("", &v));
    assert_int_equal(v, CFG_TLS_VERIFY_NONE);

    assert_int_equal(config_check_readable("/dev/null", err, sizeof(err)),
                     ST_OK);
    assert_int_equal(
        config_check_readable("/nonexistent/k.pem", err, sizeof(err)),
        ST_ERROR);
    assert_string_equal(err, "/nonexistent/k.pem: No such file or directory");
    assert_int_equal(config_check_readable("/", err, sizeof(err)), ST_ERROR);
    assert_string_equal(err, "/: Is a directory");
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
    assert_int_equal(config_set_listen(cfg, a, NULL, 2), ST_OK);
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

/* ---- printing (riven -T) ---- */

/* cfg as config_print writes it (malloc'd, NUL-terminated). */
static char *
print_string(const struct config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    assert_int_equal(config_print(cfg, f), ST_OK);
    assert_int_equal(fclose(f), 0);
    return text;
}

static void
assert_addr_equal(const struct cfg_addr *a, const struct cfg_addr *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->sslen, b->sslen);
    assert_memory_equal(&a->ss, &b->ss, a->sslen);
}

static void
assert_str_or_null(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        assert_ptr_equal(a, b);
    } else {
        assert_string_equal(a, b);
    }
}

/* Equal settings (the line a tls: was written at may differ). */
static void
assert_tls_equal(const struct cfg_tls *a, const struct cfg_tls *b)
{
    assert_int_equal(a->on, b->on);
    assert_str_or_null(a->cert, b->cert);
    assert_str_or_null(a->key, b->key);
    assert_str_or_null(a->ca, b->ca);
    assert_int_equal(a->verify, b->verify);
    assert_int_equal(a->min_version, b->min_version);
    assert_str_or_null(a->ciphers, b->ciphers);
    assert_str_or_null(a->server_name, b->server_name);
}

static void
assert_pool_equal(const struct cfg_pool *a, const struct cfg_pool *b)
{
    assert_tls_equal(&a->tls, &b->tls);
    assert_int_equal(a->nservers, b->nservers);
    for (size_t i = 0; i < a->nservers; i++) {
        assert_addr_equal(&a->servers[i].addr, &b->servers[i].addr);
        assert_int_equal(a->servers[i].weight, b->servers[i].weight);
    }
    assert_int_equal(a->distribution, b->distribution);
    assert_int_equal(a->hash, b->hash);
    assert_int_equal(a->failure_limit, b->failure_limit);
    assert_int_equal(a->retry_timeout_ms, b->retry_timeout_ms);
    assert_int_equal(a->eject_rehash, b->eject_rehash);
    assert_string_equal(a->hash_tag, b->hash_tag);
    assert_int_equal(a->chunk_size, b->chunk_size);
}

static void
assert_route_equal(const struct cfg_route *a, const struct cfg_route *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_int_equal(a->pool, b->pool);
    assert_int_equal(a->ttl_max, b->ttl_max);
    assert_int_equal(a->read_failover, b->read_failover);
    assert_int_equal(a->miss, b->miss);
    assert_true(a->fraction == b->fraction);
    assert_int_equal(a->nchild, b->nchild);
    for (size_t i = 0; i < a->nchild; i++) {
        assert_route_equal(&a->child[i], &b->child[i]);
    }
}

static void
assert_routing_equal(const struct config *a, const struct config *b)
{
    assert_int_equal(a->npools, b->npools);
    for (size_t i = 0; i < a->npools; i++) {
        assert_string_equal(a->pools[i].name, b->pools[i].name);
        assert_pool_equal(&a->pools[i].pool, &b->pools[i].pool);
    }
    assert_int_equal(a->nroutes, b->nroutes);
    for (size_t i = 0; i < a->nroutes; i++) {
        assert_str_or_null(a->routes[i].prefix, b->routes[i].prefix);
        assert_int_equal(a->routes[i].nprefix, b->routes[i].nprefix);
        assert_route_equal(&a->routes[i].route, &b->routes[i].route);
    }
}

/* Every field of struct config but refs and path. */
static void
assert_config_equal(const struct config *a, const struct config *b)
{
    assert_int_equal(a->nlisten, b->nlisten);
    for (size_t i = 0; i < a->nlisten; i++) {
        assert_addr_equal(&a->listen[i], &b->listen[i]);
        assert_tls_equal(&a->listen_tls[i], &b->listen_tls[i]);
    }
    if (a->nroutes == 0) { /* with routes, pool: is unused */
        assert_pool_equal(&a->pool, &b->pool);
    }
    assert_pool_equal(&a->l2, &b->l2);
    assert_routing_equal(a, b);
    assert_int_equal(a->orca, b->orca);
    assert_int_equal(a->key_locks, b->key_locks);
    assert_int_equal(a->nbatch_listen, b->nbatch_listen);
    for (size_t i = 0; i < a->nbatch_listen; i++) {
        assert_addr_equal(&a->batch_listen[i], &b->batch_listen[i]);
    }
    assert_int_equal(a->connect_timeout_ms, b->connect_timeout_ms);
    assert_int_equal(a->request_timeout_ms, b->request_timeout_ms);
    assert_int_equal(a->tls_handshake_timeout_ms, b->tls_handshake_timeout_ms);
    assert_int_equal(a->max_connections, b->max_connections);
    assert_int_equal(a->shutdown_timeout_ms, b->shutdown_timeout_ms);
    assert_int_equal(a->client_idle_timeout_ms, b->client_idle_timeout_ms);
    assert_int_equal(a->client_write_timeout_ms, b->client_write_timeout_ms);
    assert_int_equal(a->backend_idle_timeout_ms, b->backend_idle_timeout_ms);
    assert_int_equal(a->thread_stack_size, b->thread_stack_size);
    assert_int_equal(a->item_size_max, b->item_size_max);
    assert_int_equal(a->client_max_buffer, b->client_max_buffer);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->unix_mode, b->unix_mode);
    assert_int_equal(a->metrics_enabled, b->metrics_enabled);
    if (a->metrics_enabled) {
        assert_addr_equal(&a->metrics_listen, &b->metrics_listen);
    }
}

/* Print cfg, load the text, compare the two snapshots, print again: the
 * same bytes. Releases cfg. */
static void
assert_print_roundtrip(struct config *cfg)
{
    char err[512];
    char *p1 = print_string(cfg), *p2;
    struct config *back =
        config_load_string(p1, strlen(p1), "T.yml", err, sizeof(err));

    if (back == NULL) {
        fail_msg("printed config does not load: %s\n%s", err, p1);
    }
    assert_config_equal(cfg, back);
    p2 = print_string(back);
    assert_string_equal(p1, p2);
    free(p1);
    free(p2);
    config_unref(back);
    config_unref(cfg);
}

/* The built-in defaults, an empty file and the shipped examples. */
static void
test_print_examples(void **state)
{
    static const char *const files[] = {
        "conf/riven.yml",           "conf/pool-example.yml",
        "conf/l1l2-example.yml",    "conf/routes-example.yml",
        "conf/chunked-example.yml",
    };
    char err[512];

    (void)state;
    assert_print_roundtrip(config_default());
    assert_print_roundtrip(load_ok(""));
    assert_print_roundtrip(load_ok(routes_example));
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct config *cfg = config_load(files[i], err, sizeof(err));

        if (cfg == NULL) {
            fail_msg("%s", err);
        }
        assert_print_roundtrip(cfg);
    }
}

/* Every key away from its default; listeners and pools with TLS, strings
 * that need escapes, l2 settings without servers, metrics off. */
static void
test_print_every_key(void **state)
{
    struct tls_files f;
    char yaml[4096];

    (void)state;
    tls_files_create(&f);
    snprintf(yaml, sizeof(yaml),
             "listen:\n"
             "  - \"[::1]:11311\"\n"
             "  - unix:/tmp/riven \"x\\\\y\".sock\n"
             "  - {addr: 127.0.0.1:2, tls: {cert: %s, key: %s, ca: %s,\n"
             "     verify: require, min_version: \"1.3\", ciphers: HIGH}}\n"
             "  - {addr: 127.0.0.1:3, tls: {cert: %s, key: %s}}\n"
             "l1:\n"
             "  servers: [10.0.0.1:1, {addr: 10.0.0.2:2, weight: 65535}]\n"
             "  distribution: ketama_weighted\n"
             "  hash: one_at_a_time\n"
             "  failure_limit: 1000\n"
             "  retry_timeout_ms: 3600000\n"
             "  eject_rehash: true\n"
             "  hash_tag: \"[]\"\n"
             "  tls: {ca: %s, verify: false, server_name: cache.internal}\n"
             "l2: {failure_limit: 9, distribution: modula, hash: crc}\n"
             "key_locks: 0\n"
             "timeouts: {connect_ms: 1, request_ms: 2, tls_handshake_ms: 3}\n"
             "max_connections: 10000000\n"
             "shutdown_timeout_ms: 0\n"
             "client_idle_timeout_ms: 86400000\n"
             "client_write_timeout_ms: 0\n"
             "backend_idle_timeout_ms: 5\n"
             "thread_stack_size: 65536\n"
             "item_size_max: 1024\n"
             "client_max_buffer: 3000000\n"
             "log_level: error\n"
             "unix_socket_mode: 0o0\n"
             "metrics: {listen: off}\n",
             f.cert, f.key, f.ca, f.cert, f.key, f.ca);
    assert_print_roundtrip(load_ok(yaml));
    /* an l1l2batch orca: l2 servers and batch listeners */
    assert_print_roundtrip(load_ok("orca: l1l2batch\n"
                                   "l2: {servers: [127.0.0.1:7]}\n"
                                   "batch_listen: [127.0.0.1:8, "
                                   "unix:/tmp/b.sock]\n"
                                   "metrics: {listen: \"[::1]:9\"}\n"));
    tls_files_remove(&f);
}

/* Routes: every rule and modifier, nesting, fractions that need every
 * digit, pool names and prefixes that need quotes or escapes. */
static void
test_print_routes(void **state)
{
    struct tls_files f;
    char yaml[2048];

    (void)state;
    tls_files_create(&f);
    snprintf(yaml, sizeof(yaml),
             "pools:\n"
             "  a.b-c_1: {servers: [127.0.0.1:1], hash_tag: \"{}\"}\n"
             "  \"true\": {servers: [127.0.0.1:2], tls: {ca: %s}}\n"
             "  \"-\": {servers: [127.0.0.1:3]}\n"
             "routes:\n"
             "  - {prefix: \"q\\\"\\\\:\", route: \"true\"}\n"
             "  - {prefix: \"#x\", route: {pool: \"-\", ttl_max: 2592000}}\n"
             "  - {prefix: \"s\", route: {shadow: {route: a.b-c_1,\n"
             "     to: \"true\", fraction: 0.30000000000000004}}}\n"
             "  - {prefix: \"t\", route: {shadow: {route: a.b-c_1,\n"
             "     to: \"-\", fraction: 1e-05}}}\n"
             "  - {prefix: \"u\", route: {failover: [a.b-c_1, {all_fastest:\n"
             "     [\"-\", \"true\"], read: failover}], miss: false}}\n"
             "  - {prefix: \"v\", route: {warm_up: {cold: {l1l2: {l1: \"-\",\n"
             "     l2: {all_sync: [\"true\"]}}}, warm: a.b-c_1}}}\n"
             "  - default: {shadow: {route: \"-\", to: \"-\", fraction: 1}}\n",
             f.ca);
    assert_print_roundtrip(load_ok(yaml));
    tls_files_remove(&f);
}

/* chunked: printed as a block mapping with its chunk_size, whatever form
 * it was written in; nothing for a pool that is not chunked. Each loads
 * back to the same snapshot and prints the same bytes. */
static void
test_print_chunked(void **state)
{
    static const char *const docs[] = {
        "pool: {chunked: {chunk_size: 4000}}\n",
        "pool: {chunked: true}\nl2: {chunked: {chunk_size: 256}}\n",
        "pool: {chunked: false, hash_tag: \"{}\"}\n",
        "pools:\n  a: {servers: [127.0.0.1:1], chunked: {}}\n"
        "  b: {servers: [127.0.0.1:2], chunked: {chunk_size: 524172}}\n"
        "  c: {servers: [127.0.0.1:3]}\n"
        "routes: [{prefix: \"x:\", route: b}, {default: {failover: [a, c]}}]\n",
    };
    struct config *cfg;
    char *text;

    (void)state;
    for (size_t i = 0; i < NELEMS(docs); i++) {
        assert_print_roundtrip(load_ok(docs[i]));
    }

    cfg = load_ok(docs[0]);
    text = print_string(cfg);
    assert_non_null(strstr(text, "  eject_rehash: false\n"
                                 "  chunked:\n"
                                 "    chunk_size: 4000\n"
                                 "l2:\n"));
    free(text);
    config_unref(cfg);

    cfg = load_ok(docs[1]);
    text = print_string(cfg);
    assert_non_null(strstr(text, "\n  chunked:\n"
                                 "    chunk_size: 1068\n"
                                 "l2:\n"));
    assert_non_null(strstr(text, "\n  chunked:\n"
                                 "    chunk_size: 256\n"
                                 "orca: l1only\n"));
    free(text);
    config_unref(cfg);

    cfg = load_ok(docs[2]);
    text = print_string(cfg);
    assert_null(strstr(text, "chunk"));
    free(text);
    config_unref(cfg);

    cfg = load_ok(docs[3]);
    text = print_string(cfg);
    assert_non_null(strstr(text, "  \"a\":\n"
                                 "    servers:\n"
                                 "      - {addr: \"127.0.0.1:1\", weight: 1}\n"
                                 "    distribution: ketama\n"
                                 "    hash: default\n"
                                 "    failure_limit: 3\n"
                                 "    retry_timeout_ms: 1000\n"
                                 "    eject_rehash: false\n"
                                 "    chunked:\n"
                                 "      chunk_size: 1068\n"
                                 "  \"b\":\n"));
    assert_non_null(strstr(text, "    chunked:\n"
                                 "      chunk_size: 524172\n"
                                 "  \"c\":\n"));
    assert_null(strstr(strstr(text, "  \"c\":\n"), "chunk"));
    free(text);
    config_unref(cfg);
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
        cmocka_unit_test(test_routes_example),
        cmocka_unit_test(test_routes_example_file),
        cmocka_unit_test(test_routes_forms),
        cmocka_unit_test(test_routes_prefix_length),
        cmocka_unit_test(test_hash_tag),
        cmocka_unit_test(test_chunked),
        cmocka_unit_test(test_backend),
        cmocka_unit_test(test_bad_backend),
        cmocka_unit_test(test_bad_chunked),
        cmocka_unit_test(test_bad_pools),
        cmocka_unit_test(test_bad_routes),
        cmocka_unit_test(test_bad_route_rules),
        cmocka_unit_test(test_bad_pool_name_length),
        cmocka_unit_test(test_bad_too_many_servers),
        cmocka_unit_test(test_bad_too_many_routes),
        cmocka_unit_test(test_bad_route_depth),
        cmocka_unit_test(test_routes_validate),
        cmocka_unit_test(test_tls_defaults),
        cmocka_unit_test(test_tls_listeners),
        cmocka_unit_test(test_tls_pools),
        cmocka_unit_test(test_tls_named_pools),
        cmocka_unit_test(test_bad_tls),
        cmocka_unit_test(test_bad_tls_rules),
        cmocka_unit_test(test_bad_tls_frees),
        cmocka_unit_test(test_set_listen_tls),
        cmocka_unit_test(test_tls_verify_parse),
        cmocka_unit_test(test_print_examples),
        cmocka_unit_test(test_print_every_key),
        cmocka_unit_test(test_print_routes),
        cmocka_unit_test(test_print_chunked),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
