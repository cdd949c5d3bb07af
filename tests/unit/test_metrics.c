/*
 * test_metrics: the Prometheus exposition and the stats lines of a small
 * known state, byte for byte (the lines that depend on time or on the
 * process are checked for shape instead); a format checker (HELP and TYPE
 * once per family, samples grouped under their family, histogram buckets
 * cumulative with +Inf == _count); `promtool check metrics` when promtool
 * is installed; server registration; exact counts from 8 threads while
 * another renders; route names and counters (exact lines, escaping,
 * truncation, none without routes); the chunked-pool families (exact
 * lines, every bucket bound, reset).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include <cmocka.h>

#include "metrics.h"

#ifndef RIVEN_VERSION
#define RIVEN_VERSION "unknown"
#endif

#define US UINT64_C(1000)
#define MS UINT64_C(1000000)
#define S  UINT64_C(1000000000)

static void
servers(struct cfg_server *srv, const char *const *names, size_t n)
{
    char err[256];

    for (size_t i = 0; i < n; i++) {
        if (config_parse_addr(names[i], &srv[i].addr, err, sizeof(err)) !=
            ST_OK) {
            fail_msg("%s: %s", names[i], err);
        }
        srv[i].weight = 1;
    }
    assert_int_equal(metrics_set_servers(srv, n), ST_OK);
}

static int
setup(void **state)
{
    static const char *const names[] = {"10.0.0.1:11211", "unix:/tmp/a\"b\\c"};
    struct cfg_server srv[2];

    (void)state;
    if (metrics_init() != ST_OK) {
        return -1;
    }
    metrics_reset();
    servers(srv, names, 2);
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    metrics_fini();
    return 0;
}

static void
known_state(void)
{
    metrics_gauge_add(M_CONNECTIONS_CURRENT, 3);
    for (int i = 0; i < 5; i++) {
        metrics_inc(M_CONNECTIONS_TOTAL);
    }
    metrics_inc(M_CONNECTIONS_REJECTED);
    metrics_gauge_add(M_THREADS_CURRENT, 4);
    metrics_gauge_sub(M_THREADS_CURRENT, 1);
    metrics_add(M_CLIENT_RX_BYTES, 1234);
    metrics_add(M_CLIENT_TX_BYTES, 5678);
    metrics_add(M_BACKEND_RX_BYTES, 910);
    metrics_add(M_BACKEND_TX_BYTES, 1112);
    for (int i = 0; i < 3; i++) {
        metrics_cmd(REQ_GET, PROTO_TEXT);
    }
    metrics_cmd(REQ_SET, PROTO_BINARY);
    metrics_cmd(REQ_MG, PROTO_META);
    metrics_cmd(REQ_MG, PROTO_META);
    metrics_hit(REQ_GET);
    metrics_hit(REQ_GET);
    metrics_miss(REQ_GET);
    metrics_hit(REQ_MG);
    metrics_miss(REQ_MG);
    metrics_error(MERR_CLIENT_ERROR);
    metrics_error(MERR_BACKEND_TIMEOUT);
    metrics_error(MERR_BACKEND_TIMEOUT);
    metrics_config_reload(true);
    metrics_config_reload(true);
    metrics_config_reload(false);
    for (int i = 0; i < 4; i++) {
        metrics_server_request(0);
    }
    metrics_server_request(1);
    metrics_server_request(1);
    metrics_server_error(1);
    metrics_server_up(0, true);
    metrics_server_socket_open(0);
    metrics_server_socket_open(0);
    metrics_server_socket_close(0);
    metrics_observe_request(REQ_GET, 30 * US);
    metrics_observe_request(REQ_GET, 200 * US);
    metrics_observe_request(REQ_GET, 2 * MS);
    metrics_observe_request(REQ_SET, 1500 * MS);
    metrics_observe_backend(0, 80 * US);
    metrics_observe_backend(1, 7 * S);
    for (int i = 0; i < 3; i++) {
        metrics_chunked_op(MCHUNK_GET);
    }
    metrics_chunked_op(MCHUNK_SET);
    metrics_chunked_op(MCHUNK_SET);
    metrics_chunked_op(MCHUNK_DELETE);
    metrics_chunked_op(MCHUNK_REFUSED);
    metrics_chunked_chunk_miss();
    metrics_chunked_chunk_miss();
    metrics_chunked_token_mismatch();
    metrics_chunked_chunks(0);
    metrics_chunked_chunks(1);
    metrics_chunked_chunks(5);
    metrics_chunked_chunks(982); /* 1 MiB at the default chunk_size */
    /* ignored: out of range */
    metrics_chunked_op(MCHUNK_NOPS);
    metrics_server_request(METRICS_SERVERS_MAX);
    metrics_observe_backend(METRICS_SERVERS_MAX + 5, 1);
    metrics_cmd(REQ_CMD_COUNT, PROTO_TEXT);
}

/* Bucket columns, le = 50us .. 10s, then +Inf. */
static const char *const b_get[] = {"1", "1", "2", "2", "2", "3",
                                    "3", "3", "3", "3", "3", "3",
                                    "3", "3", "3", "3", "3", "3"};
static const char *const b_set[] = {"0", "0", "0", "0", "0", "0",
                                    "0", "0", "0", "0", "0", "0",
                                    "0", "0", "1", "1", "1", "1"};
static const char *const b_srv0[] = {"0", "1", "1", "1", "1", "1",
                                     "1", "1", "1", "1", "1", "1",
                                     "1", "1", "1", "1", "1", "1"};
static const char *const b_srv1[] = {"0", "0", "0", "0", "0", "0",
                                     "0", "0", "0", "0", "0", "0",
                                     "0", "0", "0", "0", "1", "1"};

/* Append the expected text of one histogram series to dst. */
static void
hist_text(char *dst, size_t size, const char *name, const char *lv,
          const char *const *b, const char *sum, const char *count)
{
    static const char *const le[] = {
        "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025",
        "0.005",   "0.01",   "0.025",   "0.05",   "0.1",   "0.25",
        "0.5",     "1",      "2.5",     "5",      "10",    "+Inf"};
    size_t n = strlen(dst);

    for (size_t i = 0; i < NELEMS(le); i++) {
        n += (size_t)snprintf(dst + n, size - n, "%s_bucket{%s,le=\"%s\"} %s\n",
                              name, lv, le[i], b[i]);
    }
    snprintf(dst + n, size - n, "%s_sum{%s} %s\n%s_count{%s} %s\n", name, lv,
             sum, name, lv, count);
}

static const char expect_head[] =
    "# HELP riven_build_info Always 1; the version label names the running "
    "build.\n"
    "# TYPE riven_build_info gauge\n"
    "riven_build_info{version=\"" RIVEN_VERSION "\"} 1\n"
    "# HELP riven_connections_current Client connections open now.\n"
    "# TYPE riven_connections_current gauge\n"
    "riven_connections_current 3\n"
    "# HELP riven_connections_total Client connections accepted since "
    "start.\n"
    "# TYPE riven_connections_total counter\n"
    "riven_connections_total 5\n"
    "# HELP riven_connections_rejected_total Client connections closed at "
    "once: max_connections, or no thread.\n"
    "# TYPE riven_connections_rejected_total counter\n"
    "riven_connections_rejected_total 1\n"
    "# HELP riven_threads_current Connection threads running now.\n"
    "# TYPE riven_threads_current gauge\n"
    "riven_threads_current 3\n"
    "# HELP riven_client_received_bytes_total Bytes read from clients.\n"
    "# TYPE riven_client_received_bytes_total counter\n"
    "riven_client_received_bytes_total 1234\n"
    "# HELP riven_client_sent_bytes_total Bytes written to clients.\n"
    "# TYPE riven_client_sent_bytes_total counter\n"
    "riven_client_sent_bytes_total 5678\n"
    "# HELP riven_backend_received_bytes_total Bytes read from backend "
    "servers.\n"
    "# TYPE riven_backend_received_bytes_total counter\n"
    "riven_backend_received_bytes_total 910\n"
    "# HELP riven_backend_sent_bytes_total Bytes written to backend "
    "servers.\n"
    "# TYPE riven_backend_sent_bytes_total counter\n"
    "riven_backend_sent_bytes_total 1112\n"
    "# HELP riven_l1_hits_total l1l2 orcas: reads answered by L1.\n"
    "# TYPE riven_l1_hits_total counter\n"
    "riven_l1_hits_total 0\n"
    "# HELP riven_l1_misses_total l1l2 orcas: reads L1 did not have.\n"
    "# TYPE riven_l1_misses_total counter\n"
    "riven_l1_misses_total 0\n"
    "# HELP riven_l2_hits_total l1l2 orcas: L1 misses answered by L2.\n"
    "# TYPE riven_l2_hits_total counter\n"
    "riven_l2_hits_total 0\n"
    "# HELP riven_l2_misses_total l1l2 orcas: reads neither layer had.\n"
    "# TYPE riven_l2_misses_total counter\n"
    "riven_l2_misses_total 0\n"
    "# HELP riven_l1_fills_total l1l2 orcas: L2 hits copied into L1.\n"
    "# TYPE riven_l1_fills_total counter\n"
    "riven_l1_fills_total 0\n"
    "# HELP riven_l2_errors_total l1l2 orcas: requests L2 failed "
    "(SERVER_ERROR).\n"
    "# TYPE riven_l2_errors_total counter\n"
    "riven_l2_errors_total 0\n"
    "# HELP riven_tls_connections_current Client connections open now over "
    "TLS.\n"
    "# TYPE riven_tls_connections_current gauge\n"
    "riven_tls_connections_current 0\n"
    "# HELP riven_chunked_chunk_misses_total Chunked pools: reads that found "
    "a chunk absent (a miss).\n"
    "# TYPE riven_chunked_chunk_misses_total counter\n"
    "riven_chunked_chunk_misses_total 2\n"
    "# HELP riven_chunked_token_mismatches_total Chunked pools: reads that "
    "found a chunk of another write (a miss).\n"
    "# TYPE riven_chunked_token_mismatches_total counter\n"
    "riven_chunked_token_mismatches_total 1\n"
    "# HELP riven_chunked_items_total Chunked pools: client commands taken, "
    "by op (refused: not supported on chunked values).\n"
    "# TYPE riven_chunked_items_total counter\n"
    "riven_chunked_items_total{op=\"get\"} 3\n"
    "riven_chunked_items_total{op=\"set\"} 2\n"
    "riven_chunked_items_total{op=\"delete\"} 1\n"
    "riven_chunked_items_total{op=\"touch\"} 0\n"
    "riven_chunked_items_total{op=\"refused\"} 1\n"
    "# HELP riven_chunked_chunks Chunked pools: chunks per value written or "
    "read whole.\n"
    "# TYPE riven_chunked_chunks histogram\n"
    "riven_chunked_chunks_bucket{le=\"0\"} 1\n"
    "riven_chunked_chunks_bucket{le=\"1\"} 2\n"
    "riven_chunked_chunks_bucket{le=\"2\"} 2\n"
    "riven_chunked_chunks_bucket{le=\"4\"} 2\n"
    "riven_chunked_chunks_bucket{le=\"8\"} 3\n"
    "riven_chunked_chunks_bucket{le=\"16\"} 3\n"
    "riven_chunked_chunks_bucket{le=\"32\"} 3\n"
    "riven_chunked_chunks_bucket{le=\"64\"} 3\n"
    "riven_chunked_chunks_bucket{le=\"128\"} 3\n"
    "riven_chunked_chunks_bucket{le=\"256\"} 3\n"
    "riven_chunked_chunks_bucket{le=\"512\"} 3\n"
    "riven_chunked_chunks_bucket{le=\"1024\"} 4\n"
    "riven_chunked_chunks_bucket{le=\"+Inf\"} 4\n"
    "riven_chunked_chunks_sum 988\n"
    "riven_chunked_chunks_count 4\n"
    "# HELP riven_requests_total Requests received, by command and client "
    "protocol.\n"
    "# TYPE riven_requests_total counter\n"
    "riven_requests_total{command=\"get\",protocol=\"text\"} 3\n"
    "riven_requests_total{command=\"set\",protocol=\"binary\"} 1\n"
    "riven_requests_total{command=\"mg\",protocol=\"meta\"} 2\n"
    "# HELP riven_get_hits_total Keys found by get-like commands, by "
    "command.\n"
    "# TYPE riven_get_hits_total counter\n"
    "riven_get_hits_total{command=\"get\"} 2\n"
    "riven_get_hits_total{command=\"gets\"} 0\n"
    "riven_get_hits_total{command=\"gat\"} 0\n"
    "riven_get_hits_total{command=\"gats\"} 0\n"
    "riven_get_hits_total{command=\"mg\"} 1\n"
    "# HELP riven_get_misses_total Keys not found by get-like commands, by "
    "command.\n"
    "# TYPE riven_get_misses_total counter\n"
    "riven_get_misses_total{command=\"get\"} 1\n"
    "riven_get_misses_total{command=\"gets\"} 0\n"
    "riven_get_misses_total{command=\"gat\"} 0\n"
    "riven_get_misses_total{command=\"gats\"} 0\n"
    "riven_get_misses_total{command=\"mg\"} 1\n"
    "# HELP riven_errors_total Error replies sent to clients, by kind.\n"
    "# TYPE riven_errors_total counter\n"
    "riven_errors_total{kind=\"client_error\"} 1\n"
    "riven_errors_total{kind=\"server_error\"} 0\n"
    "riven_errors_total{kind=\"backend_timeout\"} 2\n"
    "riven_errors_total{kind=\"backend_unavailable\"} 0\n"
    "riven_errors_total{kind=\"hangup\"} 0\n"
    "# HELP riven_config_reloads_total Configuration reloads, by result.\n"
    "# TYPE riven_config_reloads_total counter\n"
    "riven_config_reloads_total{result=\"success\"} 2\n"
    "riven_config_reloads_total{result=\"failure\"} 1\n"
    "# HELP riven_tls_handshakes_total TLS handshakes of clients, by "
    "result.\n"
    "# TYPE riven_tls_handshakes_total counter\n"
    "riven_tls_handshakes_total{result=\"ok\"} 0\n"
    "riven_tls_handshakes_total{result=\"no_cert\"} 0\n"
    "riven_tls_handshakes_total{result=\"bad_cert\"} 0\n"
    "riven_tls_handshakes_total{result=\"expired\"} 0\n"
    "riven_tls_handshakes_total{result=\"timeout\"} 0\n"
    "riven_tls_handshakes_total{result=\"protocol\"} 0\n"
    "# HELP riven_backend_requests_total Requests sent to each backend "
    "server.\n"
    "# TYPE riven_backend_requests_total counter\n"
    "riven_backend_requests_total{server=\"10.0.0.1:11211\"} 4\n"
    "riven_backend_requests_total{server=\"unix:/tmp/a\\\"b\\\\c\"} 2\n"
    "# HELP riven_backend_errors_total Failed requests to each backend "
    "server (timeouts, connection failures, error replies).\n"
    "# TYPE riven_backend_errors_total counter\n"
    "riven_backend_errors_total{server=\"10.0.0.1:11211\"} 0\n"
    "riven_backend_errors_total{server=\"unix:/tmp/a\\\"b\\\\c\"} 1\n"
    "# HELP riven_backend_up 1 if the backend server is reachable, 0 if it "
    "is down or ejected.\n"
    "# TYPE riven_backend_up gauge\n"
    "riven_backend_up{server=\"10.0.0.1:11211\"} 1\n"
    "riven_backend_up{server=\"unix:/tmp/a\\\"b\\\\c\"} 0\n"
    "# HELP riven_backend_open_sockets Sockets open to each backend server.\n"
    "# TYPE riven_backend_open_sockets gauge\n"
    "riven_backend_open_sockets{server=\"10.0.0.1:11211\"} 1\n"
    "riven_backend_open_sockets{server=\"unix:/tmp/a\\\"b\\\\c\"} 0\n"
    "# HELP riven_request_duration_seconds Time from a request parsed to its "
    "reply queued, by command.\n"
    "# TYPE riven_request_duration_seconds histogram\n";

static const char expect_backend_hist_head[] =
    "# HELP riven_backend_request_duration_seconds Round trip time of "
    "requests to each backend server.\n"
    "# TYPE riven_backend_request_duration_seconds histogram\n";

static char *
expected_prometheus(void)
{
    size_t size = 32768;
    char *e = calloc(1, size);
    const char *rd = "riven_request_duration_seconds";
    const char *bd = "riven_backend_request_duration_seconds";

    assert_non_null(e);
    strcpy(e, expect_head);
    hist_text(e, size, rd, "command=\"get\"", b_get, "0.002230000", "3");
    hist_text(e, size, rd, "command=\"set\"", b_set, "1.500000000", "1");
    strcat(e, expect_backend_hist_head);
    hist_text(e, size, bd, "server=\"10.0.0.1:11211\"", b_srv0, "0.000080000",
              "1");
    hist_text(e, size, bd, "server=\"unix:/tmp/a\\\"b\\\\c\"", b_srv1,
              "7.000000000", "1");
    return e;
}

/* The lines of a text that start with none of the prefixes in skip[]
 * (NULL-terminated), into a new string; a matching "# HELP/TYPE" line of
 * such a family is skipped too. */
static char *
without(const char *text, size_t len, const char *const *skip)
{
    char *out = calloc(1, len + 1), *o = out;
    const char *p = text, *end = text + len;

    assert_non_null(out);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        const char *name = p;
        bool drop = false;

        if (strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0) {
            name = p + 7;
        }
        for (size_t i = 0; skip[i] != NULL; i++) {
            drop |= strncmp(name, skip[i], strlen(skip[i])) == 0;
        }
        if (!drop) {
            memcpy(o, p, n);
            o += n;
        }
        p += n;
    }
    return out;
}

/* Like assert_string_equal, but shows where long texts differ. */
static void
assert_text_equal(const char *got, const char *want)
{
    size_t i = 0;

    while (got[i] != '\0' && got[i] == want[i]) {
        i++;
    }
    if (got[i] != want[i]) {
        fail_msg("texts differ at byte %zu:\n got: %.160s\nwant: %.160s", i,
                 got + i, want + i);
    }
}

static const char *const varying[] = {"riven_uptime_seconds", "process_", NULL};

static void
test_prometheus_exact(void **state)
{
    struct buf out;
    char *want, *got;

    (void)state;
    known_state();
    buf_init(&out, 64);
    assert_int_equal(metrics_render_prometheus(&out), ST_OK);
    got = without(out.pos, buf_len(&out), varying);
    want = expected_prometheus();
    assert_text_equal(got, want);
    free(got);
    free(want);
    buf_free(&out);
}

/* The varying families are there, once, with numbers. */
static void
test_prometheus_process(void **state)
{
    static const char *const lines[] = {
        "\n# TYPE riven_uptime_seconds gauge\nriven_uptime_seconds ",
        "\n# TYPE process_cpu_seconds_total counter\n"
        "process_cpu_seconds_total ",
        "\n# TYPE process_open_fds gauge\nprocess_open_fds ",
        "\n# TYPE process_max_fds gauge\nprocess_max_fds ",
        "\n# TYPE process_resident_memory_bytes gauge\n"
        "process_resident_memory_bytes ",
        "\n# TYPE process_virtual_memory_bytes gauge\n"
        "process_virtual_memory_bytes ",
        "\n# TYPE process_start_time_seconds gauge\n"
        "process_start_time_seconds ",
    };
    struct buf out;
    char *text;

    (void)state;
    buf_init(&out, 64);
    assert_int_equal(metrics_render_prometheus(&out), ST_OK);
    assert_int_equal(buf_append(&out, "", 1), ST_OK);
    text = out.pos;
    for (size_t i = 0; i < NELEMS(lines); i++) {
        const char *p = strstr(text, lines[i]);
        char *end;
        double v;

        if (p == NULL) {
            fail_msg("missing: %s", lines[i] + 1);
        }
        assert_null(strstr(p + 1, lines[i]));
        v = strtod(p + strlen(lines[i]), &end);
        assert_true(*end == '\n');
        assert_true(v >= 0);
        if (strstr(lines[i], "resident") || strstr(lines[i], "open_fds")) {
            assert_true(v > 0);
        }
    }
    buf_free(&out);
}

/* ---- a format checker, and promtool ---- */

struct family {
    char name[128];
    char type[16];
};

/* The family a sample line belongs to must be cur. */
static void
check_sample(const char *line, size_t len, const struct family *cur)
{
    size_t n = strcspn(line, "{ ");
    size_t base = strlen(cur->name);
    static const char *const suffix[] = {"_bucket", "_sum", "_count"};
    bool ok = n == base && strncmp(line, cur->name, n) == 0;

    if (strcmp(cur->type, "histogram") == 0) {
        ok = false;
        for (size_t i = 0; i < NELEMS(suffix); i++) {
            ok |= n == base + strlen(suffix[i]) &&
                  strncmp(line, cur->name, base) == 0 &&
                  strncmp(line + base, suffix[i], strlen(suffix[i])) == 0;
        }
    }
    if (!ok) {
        fail_msg("sample outside its family %s: %.*s", cur->name, (int)len,
                 line);
    }
}

/* A sample of a histogram family: cumulative buckets never go down
 * within a series, and +Inf equals _count, which ends the series. */
static void
check_buckets(const char *line, uint64_t *prev, uint64_t *inf)
{
    const char *sp = strrchr(line, ' ');
    size_t n = strcspn(line, "{ ");
    uint64_t v = strtoull(sp + 1, NULL, 10);

    if (n > 7 && strncmp(line + n - 7, "_bucket", 7) == 0) {
        assert_true(v >= *prev);
        *prev = v;
        if (strstr(line, "le=\"+Inf\"}") != NULL) {
            *inf = v;
        }
    } else if (n > 6 && strncmp(line + n - 6, "_count", 6) == 0) {
        assert_int_equal(v, *inf);
        *prev = 0;
    }
}

static void
check_format(const char *text)
{
    struct family seen[64], cur = {"", ""};
    size_t nseen = 0;
    uint64_t prev = 0, inf = 0;
    char line[512];

    for (const char *p = text; *p != '\0';) {
        size_t n = strcspn(p, "\n");

        assert_true(p[n] == '\n'); /* every line ends with \n */
        assert_true(n < sizeof(line));
        memcpy(line, p, n);
        line[n] = '\0';
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(line + 7, "%127s", cur.name), 1);
            for (size_t i = 0; i < nseen; i++) {
                if (strcmp(seen[i].name, cur.name) == 0) {
                    fail_msg("family %s twice", cur.name);
                }
            }
            p += n + 1;
            n = strcspn(p, "\n");
            assert_true(strncmp(p, "# TYPE ", 7) == 0);
            assert_true(strncmp(p + 7, cur.name, strlen(cur.name)) == 0);
            assert_int_equal(sscanf(p + 8 + strlen(cur.name), "%15s", cur.type),
                             1);
            assert_true(nseen < NELEMS(seen));
            seen[nseen++] = cur;
        } else {
            assert_true(line[0] != '#');
            check_sample(line, n, &cur);
            if (strcmp(cur.type, "histogram") == 0) {
                check_buckets(line, &prev, &inf);
            }
        }
        p += n + 1;
    }
    assert_true(nseen >= 20);
}

static void
promtool_check(const char *text, size_t len)
{
    char path[] = "/tmp/riven-test-metrics-XXXXXX", cmd[128];
    int fd;

    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        print_message("promtool not installed: skipped\n");
        return;
    }
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
    assert_int_equal(system(cmd), 0);
    unlink(path);
}

static void
test_prometheus_format(void **state)
{
    struct buf out;

    (void)state;
    known_state();
    buf_init(&out, 64);
    assert_int_equal(metrics_render_prometheus(&out), ST_OK);
    promtool_check(out.pos, buf_len(&out));
    assert_int_equal(buf_append(&out, "", 1), ST_OK);
    check_format(out.pos);
    buf_free(&out);

    /* a fresh state: families without samples, histograms without series */
    metrics_reset();
    buf_init(&out, 64);
    assert_int_equal(metrics_render_prometheus(&out), ST_OK);
    promtool_check(out.pos, buf_len(&out));
    assert_int_equal(buf_append(&out, "", 1), ST_OK);
    check_format(out.pos);
    assert_null(strstr(out.pos, "riven_requests_total{"));
    assert_null(strstr(out.pos, "riven_request_duration_seconds_bucket"));
    /* but the chunked families, at 0: dashboards find them */
    assert_non_null(
        strstr(out.pos, "\nriven_chunked_items_total{op=\"touch\"} 0\n"));
    assert_non_null(strstr(out.pos, "\nriven_chunked_chunks_count 0\n"));
    buf_free(&out);
}

/* ---- stats ---- */

static const char expect_stats[] =
    "STAT version " RIVEN_VERSION "\r\n"
    "STAT curr_connections 3\r\n"
    "STAT total_connections 5\r\n"
    "STAT rejected_connections 1\r\n"
    "STAT threads 3\r\n"
    "STAT bytes_read 1234\r\n"
    "STAT bytes_written 5678\r\n"
    "STAT backend_bytes_read 910\r\n"
    "STAT backend_bytes_written 1112\r\n"
    "STAT l1_hits 0\r\nSTAT l1_misses 0\r\nSTAT l2_hits 0\r\nSTAT l2_misses "
    "0\r\nSTAT l1_fills 0\r\nSTAT l2_errors 0\r\n"
    "STAT tls_connections 0\r\n"
    "STAT chunked_chunk_misses 2\r\n"
    "STAT chunked_token_mismatches 1\r\n"
    "STAT chunked_gets 3\r\n"
    "STAT chunked_sets 2\r\n"
    "STAT chunked_deletes 1\r\n"
    "STAT chunked_touches 0\r\n"
    "STAT chunked_refused 1\r\n"
    "STAT chunked_values 4\r\n"
    "STAT chunked_chunks 988\r\n"
    "STAT cmd_get 3\r\nSTAT cmd_gets 0\r\nSTAT cmd_gat 0\r\n"
    "STAT cmd_gats 0\r\nSTAT cmd_set 1\r\nSTAT cmd_add 0\r\n"
    "STAT cmd_replace 0\r\nSTAT cmd_append 0\r\nSTAT cmd_prepend 0\r\n"
    "STAT cmd_cas 0\r\nSTAT cmd_incr 0\r\nSTAT cmd_decr 0\r\n"
    "STAT cmd_delete 0\r\nSTAT cmd_touch 0\r\nSTAT cmd_flush_all 0\r\n"
    "STAT cmd_version 0\r\nSTAT cmd_verbosity 0\r\nSTAT cmd_stats 0\r\n"
    "STAT cmd_quit 0\r\nSTAT cmd_noop 0\r\nSTAT cmd_mg 2\r\n"
    "STAT cmd_ms 0\r\nSTAT cmd_md 0\r\nSTAT cmd_ma 0\r\nSTAT cmd_mn 0\r\n"
    "STAT cmd_me 0\r\n"
    "STAT requests_text 3\r\n"
    "STAT requests_meta 2\r\n"
    "STAT requests_binary 1\r\n"
    "STAT get_hits 3\r\n"
    "STAT get_misses 2\r\n"
    "STAT errors_client_error 1\r\n"
    "STAT errors_server_error 0\r\n"
    "STAT errors_backend_timeout 2\r\n"
    "STAT errors_backend_unavailable 0\r\n"
    "STAT errors_hangup 0\r\n"
    "STAT config_reloads_success 2\r\n"
    "STAT config_reloads_failure 1\r\n"
    "STAT tls_handshakes_ok 0\r\nSTAT tls_handshakes_no_cert 0\r\n"
    "STAT tls_handshakes_bad_cert 0\r\nSTAT tls_handshakes_expired 0\r\n"
    "STAT tls_handshakes_timeout 0\r\nSTAT tls_handshakes_protocol 0\r\n"
    "STAT backend_0_addr 10.0.0.1:11211\r\n"
    "STAT backend_0_requests 4\r\n"
    "STAT backend_0_errors 0\r\n"
    "STAT backend_0_up 1\r\n"
    "STAT backend_0_open_sockets 1\r\n"
    "STAT backend_1_addr unix:/tmp/a\"b\\c\r\n"
    "STAT backend_1_requests 2\r\n"
    "STAT backend_1_errors 1\r\n"
    "STAT backend_1_up 0\r\n"
    "STAT backend_1_open_sockets 0\r\n"
    "STAT latency_get_count 3\r\n"
    "STAT latency_get_p50_us 198\r\n"
    "STAT latency_get_p99_us 2015\r\n"
    "STAT latency_set_count 1\r\n"
    "STAT latency_set_p50_us 1493172\r\n"
    "STAT latency_set_p99_us 1493172\r\n"
    "END\r\n";

static void
test_stats(void **state)
{
    static const char *const var[] = {"STAT pid ",      "STAT uptime ",
                                      "STAT time ",     "STAT rss_bytes ",
                                      "STAT open_fds ", NULL};
    char pid[64];
    struct buf out;
    char *got;

    (void)state;
    known_state();
    buf_init(&out, 16);
    assert_int_equal(metrics_render_stats(&out), ST_OK);
    got = without(out.pos, buf_len(&out), var);
    assert_text_equal(got, expect_stats);
    free(got);
    assert_int_equal(buf_append(&out, "", 1), ST_OK);
    snprintf(pid, sizeof(pid), "STAT pid %ld\r\nSTAT uptime ", (long)getpid());
    assert_true(strncmp(out.pos, pid, strlen(pid)) == 0);
    assert_non_null(strstr(out.pos, "\r\nSTAT time "));
    assert_non_null(strstr(out.pos, "\r\nSTAT rss_bytes "));
    assert_non_null(strstr(out.pos, "\r\nSTAT open_fds "));
    buf_free(&out);
}

/* ---- servers ---- */

static void
test_servers(void **state)
{
    static const char *const a[] = {"10.0.0.1:11211", "10.0.0.2:11211",
                                    "10.0.0.1:11211"};
    static const char *const b[] = {"10.0.0.1:11211", "10.0.0.3:11211"};
    struct cfg_server srv[3];
    struct buf out;

    (void)state;
    metrics_reset();
    servers(srv, a, 3);
    assert_false(metrics_any_server_up(NULL));
    metrics_server_up(2, true);
    assert_true(metrics_any_server_up(NULL));
    metrics_server_request(0);
    metrics_server_request(1);
    metrics_server_request(2);
    metrics_server_socket_open(1);

    /* index 0 keeps its name and counts; index 1 is renamed: zeroed but
     * its socket gauge stays; index 2 is no longer registered */
    servers(srv, b, 2);
    metrics_server_up(2, false);
    assert_false(metrics_any_server_up(NULL));
    buf_init(&out, 64);
    assert_int_equal(metrics_render_prometheus(&out), ST_OK);
    assert_int_equal(buf_append(&out, "", 1), ST_OK);
    assert_non_null(strstr(out.pos, "\nriven_backend_requests_total{server="
                                    "\"10.0.0.1:11211\"} 1\n"
                                    "riven_backend_requests_total{server="
                                    "\"10.0.0.3:11211\"} 0\n#"));
    assert_non_null(strstr(out.pos, "\nriven_backend_open_sockets{server="
                                    "\"10.0.0.3:11211\"} 1\n#"));
    assert_null(strstr(out.pos, "10.0.0.2"));
    assert_null(strstr(out.pos, "#2\""));
    buf_free(&out);

    /* a repeated address gets a unique label */
    servers(srv, a, 3);
    buf_init(&out, 64);
    assert_int_equal(metrics_render_prometheus(&out), ST_OK);
    assert_int_equal(buf_append(&out, "", 1), ST_OK);
    assert_non_null(strstr(out.pos, "{server=\"10.0.0.1:11211#2\"} 0\n"));
    buf_free(&out);
}

/* ---- routes ---- */

/* The rendered text from the first line starting with from up to (not
 * including) the first line starting with to, as a new string. */
static char *
section(const char *text, const char *from, const char *to)
{
    const char *a = strstr(text, from), *b;
    char *out;

    if (a == NULL) {
        fail_msg("missing: %s", from);
    }
    b = strstr(a, to);
    if (b == NULL) {
        fail_msg("missing after %s: %s", from, to);
    }
    out = strndup(a, (size_t)(b - a));
    assert_non_null(out);
    return out;
}

static char *
render(void)
{
    struct buf out;
    char *text;

    buf_init(&out, 64);
    assert_int_equal(metrics_render_prometheus(&out), ST_OK);
    text = strndup(out.pos, buf_len(&out));
    assert_non_null(text);
    buf_free(&out);
    return text;
}

static const char expect_routes[] =
    "# HELP riven_route_requests_total Requests taken by each route.\n"
    "# TYPE riven_route_requests_total counter\n"
    "riven_route_requests_total{route=\"users:\"} 3\n"
    "riven_route_requests_total{route=\"a\\\"b\\\\\"} 1\n"
    "riven_route_requests_total{route=\"x\\ny\"} 0\n"
    "riven_route_requests_total{route=\"default\"} 2\n"
    "# HELP riven_failovers_total Requests a failover route sent on to its "
    "next child.\n"
    "# TYPE riven_failovers_total counter\n"
    "riven_failovers_total{route=\"users:\"} 0\n"
    "riven_failovers_total{route=\"a\\\"b\\\\\"} 2\n"
    "riven_failovers_total{route=\"x\\ny\"} 0\n"
    "riven_failovers_total{route=\"default\"} 0\n"
    "# HELP riven_warmup_fills_total Warm hits a warm_up route copied into "
    "its cold child.\n"
    "# TYPE riven_warmup_fills_total counter\n"
    "riven_warmup_fills_total{route=\"users:\"} 0\n"
    "riven_warmup_fills_total{route=\"a\\\"b\\\\\"} 0\n"
    "riven_warmup_fills_total{route=\"x\\ny\"} 0\n"
    "riven_warmup_fills_total{route=\"default\"} 1\n"
    "# HELP riven_shadow_requests_total Copies of requests sent to each "
    "route's shadow, by result.\n"
    "# TYPE riven_shadow_requests_total counter\n"
    "riven_shadow_requests_total{route=\"users:\",result=\"ok\"} 2\n"
    "riven_shadow_requests_total{route=\"users:\",result=\"error\"} 1\n"
    "riven_shadow_requests_total{route=\"users:\",result=\"timeout\"} 0\n"
    "riven_shadow_requests_total{route=\"users:\",result=\"dropped\"} 0\n"
    "riven_shadow_requests_total{route=\"a\\\"b\\\\\",result=\"ok\"} 0\n"
    "riven_shadow_requests_total{route=\"a\\\"b\\\\\",result=\"error\"} 0\n"
    "riven_shadow_requests_total{route=\"a\\\"b\\\\\",result=\"timeout\"} "
    "0\n"
    "riven_shadow_requests_total{route=\"a\\\"b\\\\\",result=\"dropped\"} "
    "0\n"
    "riven_shadow_requests_total{route=\"x\\ny\",result=\"ok\"} 0\n"
    "riven_shadow_requests_total{route=\"x\\ny\",result=\"error\"} 0\n"
    "riven_shadow_requests_total{route=\"x\\ny\",result=\"timeout\"} 0\n"
    "riven_shadow_requests_total{route=\"x\\ny\",result=\"dropped\"} 0\n"
    "riven_shadow_requests_total{route=\"default\",result=\"ok\"} 0\n"
    "riven_shadow_requests_total{route=\"default\",result=\"error\"} 0\n"
    "riven_shadow_requests_total{route=\"default\",result=\"timeout\"} 4\n"
    "riven_shadow_requests_total{route=\"default\",result=\"dropped\"} 5\n";

static const char *const route_names4[] = {"users:", "a\"b\\", "x\ny",
                                           "default"};

static void
route_state(void)
{
    assert_int_equal(metrics_set_routes(route_names4, 4), ST_OK);
    for (int i = 0; i < 3; i++) {
        metrics_route_request(0);
    }
    metrics_route_request(1);
    metrics_route_request(3);
    metrics_route_request(3);
    metrics_route_failover(1);
    metrics_route_failover(1);
    metrics_route_warmup_fill(3);
    metrics_route_shadow(0, MSHADOW_OK);
    metrics_route_shadow(0, MSHADOW_OK);
    metrics_route_shadow(0, MSHADOW_ERROR);
    for (int i = 0; i < 4; i++) {
        metrics_route_shadow(3, MSHADOW_TIMEOUT);
    }
    for (int i = 0; i < 5; i++) {
        metrics_route_shadow(3, MSHADOW_DROPPED);
    }
    /* ignored: out of range */
    metrics_route_request(METRICS_ROUTES_MAX);
    metrics_route_failover(METRICS_ROUTES_MAX + 1);
    metrics_route_warmup_fill(SIZE_MAX);
    metrics_route_shadow(METRICS_ROUTES_MAX, MSHADOW_OK);
    metrics_route_shadow(0, MSHADOW_COUNT);
}

/* The route families sit between the per-server gauges and the
 * histograms, exact; the rest of the text is what it is without routes. */
static void
test_routes_exact(void **state)
{
    char *text, *got, *rest, *want;

    (void)state;
    known_state();
    route_state();
    text = render();
    got = section(text, "# HELP riven_route_requests_total",
                  "# HELP riven_request_duration_seconds");
    assert_text_equal(got, expect_routes);
    assert_string_equal(got, expect_routes);
    /* everything else unchanged */
    rest = without(text, strlen(text), varying);
    free(got);
    got = without(rest, strlen(rest),
                  (const char *const[]){"riven_route_requests_total",
                                        "riven_failovers_total",
                                        "riven_warmup_fills_total",
                                        "riven_shadow_requests_total", NULL});
    want = expected_prometheus();
    assert_string_equal(got, want);
    assert_int_equal(metrics_route_shadow_get(3, MSHADOW_DROPPED), 5);
    assert_int_equal(metrics_route_shadow_get(METRICS_ROUTES_MAX, MSHADOW_OK),
                     0);
    free(want);
    free(got);
    free(rest);
    free(text);
}

/* No routes named (or none left): not one line of the route families. */
static void
test_routes_none(void **state)
{
    char *text;

    (void)state;
    metrics_route_request(0);
    metrics_route_shadow(0, MSHADOW_OK);
    text = render();
    assert_null(strstr(text, "route"));
    assert_null(strstr(text, "riven_failovers_total"));
    assert_null(strstr(text, "riven_warmup_fills_total"));
    assert_null(strstr(text, "riven_shadow_requests_total"));
    free(text);

    route_state();
    assert_int_equal(metrics_set_routes(NULL, 0), ST_OK);
    text = render();
    assert_null(strstr(text, "route"));
    free(text);
}

/* Renaming zeroes an index, keeping a name keeps its counts; repeated
 * names are made unique; long names are cut at a character boundary. */
static void
test_routes_names(void **state)
{
    static const char *const b[] = {"users:", "default", "default"};
    char longname[400], want[512], *text, *cut;

    (void)state;
    route_state();
    assert_int_equal(metrics_set_routes(b, 3), ST_OK);
    text = render();
    assert_non_null(strstr(text, "\nriven_route_requests_total{route="
                                 "\"users:\"} 3\n"
                                 "riven_route_requests_total{route="
                                 "\"default\"} 0\n"
                                 "riven_route_requests_total{route="
                                 "\"default#2\"} 0\n#"));
    assert_null(strstr(text, "x\\ny"));
    free(text);

    /* index 3 was not named by b: named again, it starts from zero */
    assert_int_equal(metrics_set_routes(route_names4, 4), ST_OK);
    assert_int_equal(metrics_route_shadow_get(3, MSHADOW_DROPPED), 0);

    /* 254 ASCII bytes then a 2-byte character: cut before it */
    memset(longname, 'a', 254);
    strcpy(longname + 254, "\xc3\xa9tail");
    cut = longname;
    assert_int_equal(metrics_set_routes((const char *const *)&cut, 1), ST_OK);
    text = render();
    snprintf(want, sizeof(want),
             "\nriven_route_requests_total{route=\"%.254s\"} 0\n", longname);
    assert_non_null(strstr(text, want));
    free(text);
    /* plain ASCII: cut at METRICS_ROUTE_NAME_MAX */
    memset(longname, 'b', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(metrics_set_routes((const char *const *)&cut, 1), ST_OK);
    text = render();
    snprintf(want, sizeof(want),
             "\nriven_route_requests_total{route=\"%.*s\"} 0\n",
             METRICS_ROUTE_NAME_MAX, longname);
    assert_non_null(strstr(text, want));
    free(text);
}

/* With routes, the text still passes the format checker and promtool. */
static void
test_routes_format(void **state)
{
    char *text;

    (void)state;
    known_state();
    route_state();
    text = render();
    promtool_check(text, strlen(text));
    check_format(text);
    free(text);
}

static void
test_routes_stats(void **state)
{
    struct buf out;
    char *got;

    (void)state;
    route_state();
    buf_init(&out, 16);
    assert_int_equal(metrics_render_stats(&out), ST_OK);
    assert_int_equal(buf_append(&out, "", 1), ST_OK);
    got = section(out.pos, "STAT route_0_name", "STAT rss_bytes");
    assert_text_equal(got, "STAT route_0_name users:\r\n"
                           "STAT route_0_requests 3\r\n"
                           "STAT route_0_failovers 0\r\n"
                           "STAT route_0_warmup_fills 0\r\n"
                           "STAT route_0_shadow_ok 2\r\n"
                           "STAT route_0_shadow_error 1\r\n"
                           "STAT route_0_shadow_timeout 0\r\n"
                           "STAT route_0_shadow_dropped 0\r\n"
                           "STAT route_1_name a\"b\\\r\n"
                           "STAT route_1_requests 1\r\n"
                           "STAT route_1_failovers 2\r\n"
                           "STAT route_1_warmup_fills 0\r\n"
                           "STAT route_1_shadow_ok 0\r\n"
                           "STAT route_1_shadow_error 0\r\n"
                           "STAT route_1_shadow_timeout 0\r\n"
                           "STAT route_1_shadow_dropped 0\r\n"
                           "STAT route_2_name x?y\r\n"
                           "STAT route_2_requests 0\r\n"
                           "STAT route_2_failovers 0\r\n"
                           "STAT route_2_warmup_fills 0\r\n"
                           "STAT route_2_shadow_ok 0\r\n"
                           "STAT route_2_shadow_error 0\r\n"
                           "STAT route_2_shadow_timeout 0\r\n"
                           "STAT route_2_shadow_dropped 0\r\n"
                           "STAT route_3_name default\r\n"
                           "STAT route_3_requests 2\r\n"
                           "STAT route_3_failovers 0\r\n"
                           "STAT route_3_warmup_fills 1\r\n"
                           "STAT route_3_shadow_ok 0\r\n"
                           "STAT route_3_shadow_error 0\r\n"
                           "STAT route_3_shadow_timeout 4\r\n"
                           "STAT route_3_shadow_dropped 5\r\n");
    free(got);
    buf_free(&out);
}

/* ---- chunked pools ---- */

/* The chunked section of /metrics and of stats proxy, as new strings. */
static void
chunked_sections(char **prom, char **stats)
{
    struct buf out;
    char *text = render();

    *prom = section(text, "# HELP riven_chunked_chunk_misses_total",
                    "# HELP riven_requests_total");
    free(text);
    buf_init(&out, 16);
    assert_int_equal(metrics_render_stats(&out), ST_OK);
    assert_int_equal(buf_append(&out, "", 1), ST_OK);
    *stats = section(out.pos, "STAT chunked_chunk_misses", "STAT cmd_get ");
    buf_free(&out);
}

static const char expect_chunked_help[] =
    "# HELP riven_chunked_chunk_misses_total Chunked pools: reads that found "
    "a chunk absent (a miss).\n"
    "# TYPE riven_chunked_chunk_misses_total counter\n";

/* Every bound of the histogram, on both sides: a value lands in the least
 * bucket whose le it does not exceed (0 and 1 their own, then powers of
 * two to 1024), a larger one only in +Inf; sum and count exact. */
static void
test_chunked_buckets(void **state)
{
    static const uint64_t v[] = {0,   1,   2,    3,    4,
                                 5,   8,   9,    16,   17,
                                 512, 513, 1024, 1025, UINT64_C(1) << 40};
    static const char want_prom[] =
        "riven_chunked_chunks_bucket{le=\"0\"} 1\n"
        "riven_chunked_chunks_bucket{le=\"1\"} 2\n"
        "riven_chunked_chunks_bucket{le=\"2\"} 3\n"
        "riven_chunked_chunks_bucket{le=\"4\"} 5\n"
        "riven_chunked_chunks_bucket{le=\"8\"} 7\n"
        "riven_chunked_chunks_bucket{le=\"16\"} 9\n"
        "riven_chunked_chunks_bucket{le=\"32\"} 10\n"
        "riven_chunked_chunks_bucket{le=\"64\"} 10\n"
        "riven_chunked_chunks_bucket{le=\"128\"} 10\n"
        "riven_chunked_chunks_bucket{le=\"256\"} 10\n"
        "riven_chunked_chunks_bucket{le=\"512\"} 11\n"
        "riven_chunked_chunks_bucket{le=\"1024\"} 13\n"
        "riven_chunked_chunks_bucket{le=\"+Inf\"} 15\n"
        "riven_chunked_chunks_sum 1099511630915\n"
        "riven_chunked_chunks_count 15\n";
    char *prom, *stats;

    (void)state;
    for (size_t i = 0; i < NELEMS(v); i++) {
        metrics_chunked_chunks(v[i]);
    }
    chunked_sections(&prom, &stats);
    assert_non_null(strstr(prom, want_prom));
    assert_non_null(strstr(stats, "STAT chunked_values 15\r\n"
                                  "STAT chunked_chunks 1099511630915\r\n"));
    free(prom);
    free(stats);
}

/* metrics_reset zeroes every chunked series, none disappears; and it
 * zeroes the TLS handshake counters. */
static void
test_chunked_reset(void **state)
{
    static const char want_prom[] =
        "riven_chunked_chunk_misses_total 0\n"
        "# HELP riven_chunked_token_mismatches_total Chunked pools: reads "
        "that found a chunk of another write (a miss).\n"
        "# TYPE riven_chunked_token_mismatches_total counter\n"
        "riven_chunked_token_mismatches_total 0\n"
        "# HELP riven_chunked_items_total Chunked pools: client commands "
        "taken, by op (refused: not supported on chunked values).\n"
        "# TYPE riven_chunked_items_total counter\n"
        "riven_chunked_items_total{op=\"get\"} 0\n"
        "riven_chunked_items_total{op=\"set\"} 0\n"
        "riven_chunked_items_total{op=\"delete\"} 0\n"
        "riven_chunked_items_total{op=\"touch\"} 0\n"
        "riven_chunked_items_total{op=\"refused\"} 0\n"
        "# HELP riven_chunked_chunks Chunked pools: chunks per value written "
        "or read whole.\n"
        "# TYPE riven_chunked_chunks histogram\n"
        "riven_chunked_chunks_bucket{le=\"0\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"1\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"2\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"4\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"8\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"16\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"32\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"64\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"128\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"256\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"512\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"1024\"} 0\n"
        "riven_chunked_chunks_bucket{le=\"+Inf\"} 0\n"
        "riven_chunked_chunks_sum 0\n"
        "riven_chunked_chunks_count 0\n";
    static const char want_stats[] = "STAT chunked_chunk_misses 0\r\n"
                                     "STAT chunked_token_mismatches 0\r\n"
                                     "STAT chunked_gets 0\r\n"
                                     "STAT chunked_sets 0\r\n"
                                     "STAT chunked_deletes 0\r\n"
                                     "STAT chunked_touches 0\r\n"
                                     "STAT chunked_refused 0\r\n"
                                     "STAT chunked_values 0\r\n"
                                     "STAT chunked_chunks 0\r\n";
    char *prom, *stats, want[4096];

    (void)state;
    known_state();
    metrics_chunked_op(MCHUNK_TOUCH);
    metrics_chunked_chunks(4000);
    metrics_tls_handshake(CONN_HS_OK);
    metrics_reset();
    chunked_sections(&prom, &stats);
    snprintf(want, sizeof(want), "%s%s", expect_chunked_help, want_prom);
    assert_text_equal(prom, want);
    assert_string_equal(prom, want);
    assert_text_equal(stats, want_stats);
    assert_string_equal(stats, want_stats);
    assert_int_equal(metrics_get(M_CHUNKED_CHUNK_MISSES), 0);
    free(prom);
    free(stats);
    /* and, outside the chunked section, the TLS handshake counters */
    prom = render();
    assert_non_null(
        strstr(prom, "\nriven_tls_handshakes_total{result=\"ok\"} 0\n"));
    free(prom);
}

/* ---- concurrency ---- */

#define THREADS    8
#define PER_THREAD 50000

static _Atomic int done;
static _Atomic int bad; /* set by the renderer; asserted on the main thread */

static void *
worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metrics_cmd(REQ_GET, PROTO_TEXT);
        metrics_hit(REQ_GET);
        metrics_add(M_CLIENT_RX_BYTES, 10);
        metrics_server_request(0);
        metrics_observe_request(REQ_GET, (uint64_t)(i % 5000) * US);
        metrics_observe_backend(0, 100 * US);
        metrics_chunked_op(MCHUNK_SET);
        metrics_chunked_chunks((uint64_t)(i % 3));
        metrics_chunked_token_mismatch();
    }
    return NULL;
}

/* Renders until told to stop; the get count never goes down. */
static void *
renderer(void *arg)
{
    const char *key =
        "riven_requests_total{command=\"get\",protocol=\"text\"} ";
    uint64_t last = 0;

    (void)arg;
    while (!atomic_load(&done)) {
        struct buf out;
        const char *p;

        buf_init(&out, 4096);
        if (metrics_render_prometheus(&out) != ST_OK ||
            buf_append(&out, "", 1) != ST_OK) {
            atomic_store(&bad, 1);
        } else if ((p = strstr(out.pos, key)) != NULL) {
            uint64_t v = strtoull(p + strlen(key), NULL, 10);

            if (v < last) {
                atomic_store(&bad, 1);
            }
            last = v;
        }
        buf_free(&out);
    }
    return NULL;
}

static void
test_concurrent_exact(void **state)
{
    pthread_t tid[THREADS], r;
    struct buf out;
    char want[160];

    (void)state;
    metrics_reset();
    atomic_store(&done, 0);
    assert_int_equal(pthread_create(&r, NULL, renderer, NULL), 0);
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_create(&tid[t], NULL, worker, NULL), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(tid[t], NULL), 0);
    }
    atomic_store(&done, 1);
    assert_int_equal(pthread_join(r, NULL), 0);
    assert_int_equal(atomic_load(&bad), 0);
    assert_int_equal(metrics_get(M_CLIENT_RX_BYTES),
                     (uint64_t)THREADS * PER_THREAD * 10);
    assert_int_equal(metrics_get(M_CHUNKED_TOKEN_MISMATCHES),
                     (uint64_t)THREADS * PER_THREAD);

    buf_init(&out, 64);
    assert_int_equal(metrics_render_prometheus(&out), ST_OK);
    assert_int_equal(buf_append(&out, "", 1), ST_OK);
    snprintf(want, sizeof(want),
             "\nriven_requests_total{command=\"get\",protocol=\"text\"} %d\n",
             THREADS * PER_THREAD);
    assert_non_null(strstr(out.pos, want));
    snprintf(want, sizeof(want),
             "\nriven_request_duration_seconds_count{command=\"get\"} %d\n",
             THREADS * PER_THREAD);
    assert_non_null(strstr(out.pos, want));
    snprintf(want, sizeof(want),
             "\nriven_backend_request_duration_seconds_count{server="
             "\"10.0.0.1:11211\"} %d\n",
             THREADS * PER_THREAD);
    assert_non_null(strstr(out.pos, want));
    snprintf(want, sizeof(want), "\nriven_chunked_items_total{op=\"set\"} %d\n",
             THREADS * PER_THREAD);
    assert_non_null(strstr(out.pos, want));
    /* i % 3 over 0..PER_THREAD-1, per thread: the zeros, the ones, the
     * sum */
    snprintf(want, sizeof(want),
             "\nriven_chunked_chunks_bucket{le=\"0\"} %d\n"
             "riven_chunked_chunks_bucket{le=\"1\"} %d\n",
             THREADS * ((PER_THREAD + 2) / 3),
             THREADS * ((PER_THREAD + 2) / 3 + (PER_THREAD + 1) / 3));
    assert_non_null(strstr(out.pos, want));
    snprintf(want, sizeof(want),
             "\nriven_chunked_chunks_sum %d\nriven_chunked_chunks_count %d\n",
             THREADS * ((PER_THREAD + 1) / 3 + 2 * (PER_THREAD / 3)),
             THREADS * PER_THREAD);
    assert_non_null(strstr(out.pos, want));
    buf_free(&out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_prometheus_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prometheus_process, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_prometheus_format, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_servers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunked_reset, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
