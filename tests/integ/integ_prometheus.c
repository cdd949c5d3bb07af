/*
 * integ_prometheus: a real Prometheus server scraping riven (issue 17).
 *
 * The group setup starts a memcached, a riven (l1only, metrics on a free
 * port), and Debian's prometheus on 127.0.0.1 with a scrape interval of
 * 1 s, job "riven", and conf/prometheus/riven-rules.yml as its rules; a
 * client thread then drives riven at DRIVE_RATE requests a second (set,
 * get hit, get miss, mg: text and meta) on absolute deadlines, until the
 * group teardown. The cases query Prometheus's HTTP API (/api/v1/query,
 * /api/v1/rules) and poll each condition until a deadline, never sleeping
 * blindly (a sample appears only after a scrape):
 *
 *   up             up{job="riven"} is 1;
 *   rate           sum(rate(riven_requests_total[10s])) at the instant of
 *                  a scrape, once 12 s of load lie behind it, is within
 *                  10% of the rate the thread drove (which must be
 *                  DRIVE_RATE within 5%);
 *   rules          every rule of riven-rules.yml is loaded and evaluates
 *                  without error, and none fires on this healthy riven;
 *   dashboard      every target of every panel of conf/grafana/riven.json,
 *                  variables substituted ($job riven, $instance .+,
 *                  $__rate_interval 10s), returns at least one series,
 *                  except the panels of EXPECT_EMPTY (no l1l2 orca, no
 *                  routes here), which must return none;
 *   names          every riven_* and process_* name in the dashboard and
 *                  in the rules is one riven exports: the union of
 *                  /metrics of this riven, of one with orca l1l2 (the
 *                  layer histogram) and of one with routes (the route
 *                  families), plus up; every expression names a metric.
 *
 * Skipped, with a message, when prometheus is not installed (Debian
 * package prometheus) and under RIVEN_DIRECT=1. Paths are relative to
 * the repository root, where make test runs. The temp dir (config and
 * TSDB) is removed and every process stopped by pid at teardown.
 */
#include <errno.h>
#include <ftw.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "json.h"

#define RULES_FILE     "conf/prometheus/riven-rules.yml"
#define DASHBOARD_FILE "conf/grafana/riven.json"
#define DRIVE_RATE     200 /* requests a second */
/* The rate() checked against DRIVE_RATE, evaluated at the instant of a
 * scrape so that the window ends on a sample and starts on one: evaluated
 * "now", [15s] held only 14 samples and rate() extrapolated 13 s of them
 * to 182.8/s for 200 (it stretches a window's first gap by half an
 * interval only). */
#define RATE_WINDOW   "10s"
#define RATE_FULL_MS  12000 /* RATE_WINDOW and two scrapes of load */
#define DEADLINE_MS   25000 /* for a condition to hold in Prometheus */
#define PROM_START_MS 15000 /* for prometheus to answer /-/ready */
#define POLL_MS       250
#define NAMES_MAX     256

/* Dashboard panels that must return no series in this configuration. */
static const char *const EXPECT_EMPTY[] = {
    "Latency p50/p99 by layer",  /* riven_layer_*: orca l1l2 only */
    "Requests/s by route",       /* riven_route_*: routes: only */
    "Failovers/s by route",      /* riven_failovers_total: routes: only */
    "Shadow results/s by route", /* riven_shadow_*: routes: only */
    "Warm-up fills/s by route",  /* riven_warmup_*: routes: only */
};

struct env {
    bool skip;              /* prometheus missing, or direct mode */
    struct harness_proc mc; /* the backend */
    struct harness_proc rv; /* riven, l1only, metrics on mport */
    struct harness_proc pr; /* prometheus on pport */
    int mport, pport;
    char dir[64]; /* mkdtemp: prometheus.yml and data/ */
    pthread_t driver;
    bool driving;
    atomic_bool stop;
    atomic_uint_fast64_t sent; /* requests answered (as expected) */
    atomic_uint_fast64_t bad;  /* unexpected replies */
    int64_t start_us;          /* when the driver began */
};

static struct env env;

/* ---- HTTP ------------------------------------------------------------ */

/* GET path from 127.0.0.1:port over HTTP/1.0 (no chunked replies). The
 * status, or -1; *body malloc'd on success. */
static int
http_get(int port, const char *path, char **body)
{
    struct harness_conn *c = harness_conn_open(port, 2000);
    char req[8192], *raw = NULL, *sep;
    int code = -1;

    *body = NULL;
    if (c == NULL) {
        return -1;
    }
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
             path);
    if (harness_sends(c, req) != 0 || !harness_wait_eof(c, 10000) ||
        c->len == 0) {
        goto out;
    }
    if ((raw = strndup(c->buf, c->len)) == NULL ||
        (sep = strstr(raw, "\r\n\r\n")) == NULL ||
        sscanf(raw, "HTTP/1.%*d %d", &code) != 1) {
        code = -1;
        goto out;
    }
    if ((*body = strdup(sep + 4)) == NULL) {
        code = -1;
    }
out:
    free(raw);
    harness_conn_close(c);
    return code;
}

/* s, or "" when it is NULL. */
static const char *
str_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

/* Percent-encode s for a query string. */
static void
url_encode(const char *s, char *out, size_t cap)
{
    size_t o = 0;

    for (; *s != '\0' && o + 4 < cap; s++) {
        unsigned char ch = (unsigned char)*s;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
            (ch >= '0' && ch <= '9') || strchr("-_.~", ch) != NULL) {
            out[o++] = (char)ch;
        } else {
            o += (size_t)snprintf(out + o, cap - o, "%%%02X", ch);
        }
    }
    out[o] = '\0';
}

/* Instant query at time at (Unix seconds), or now when at is NAN; the
 * parsed reply whose status is "success", or NULL with err. */
static struct json *
prom_query_at(const char *expr, double at, char *err, size_t errlen)
{
    char enc[6144], path[6400], *body;
    struct json *j;
    int code;

    url_encode(expr, enc, sizeof(enc));
    snprintf(path, sizeof(path), "/api/v1/query?query=%s", enc);
    if (!isnan(at)) {
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "&time=%.3f",
                 at);
    }
    code = http_get(env.pport, path, &body);
    if (code < 0) {
        snprintf(err, errlen, "query %s: no reply from prometheus", expr);
        return NULL;
    }
    j = json_parse(body, strlen(body), err, errlen);
    if (j != NULL &&
        (code != 200 ||
         strcmp(str_or_empty(json_get_str(j, "status")), "success"))) {
        snprintf(err, errlen, "query %s: status %d: %.300s", expr, code, body);
        json_free(j);
        j = NULL;
    }
    free(body);
    return j;
}

static struct json *
prom_query(const char *expr, char *err, size_t errlen)
{
    return prom_query_at(expr, NAN, err, errlen);
}

/* data.result of a query reply (an array), or NULL. */
static const struct json *
result_of(const struct json *reply)
{
    const struct json *r = json_get(json_get(reply, "data"), "result");

    return r != NULL && r->type == JSON_ARRAY ? r : NULL;
}

/* The value of the first series of an instant vector, NAN if none. */
static double
first_value(const struct json *reply)
{
    const struct json *r = result_of(reply);
    const struct json *v =
        r != NULL && r->child != NULL ? json_get(r->child, "value") : NULL;

    if (v == NULL || json_count(v) != 2 ||
        v->child->next->type != JSON_STRING) {
        return NAN;
    }
    return strtod(v->child->next->str, NULL);
}

/* ---- the load driver ------------------------------------------------ */

static void *
drive(void *arg)
{
    static const char *const req[4] = {"set prom:k 0 0 1\r\nx\r\n",
                                       "get prom:k\r\n", "get prom:none\r\n",
                                       "mg prom:k v\r\n"};
    static const char *const want[4] = {"STORED\r\n",
                                        "VALUE prom:k 0 1\r\nx\r\nEND\r\n",
                                        "END\r\n", "VA 1\r\nx\r\n"};
    struct harness_conn *c = harness_conn_open(*(int *)arg, 2000);
    struct timespec next;
    const long step_ns = 1000000000L / DRIVE_RATE;

    if (c == NULL) {
        atomic_fetch_add(&env.bad, 1);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (unsigned i = 0; !atomic_load(&env.stop); i++) {
        if (!harness_roundtrip(c, req[i % 4], want[i % 4])) {
            atomic_fetch_add(&env.bad, 1);
            break;
        }
        atomic_fetch_add(&env.sent, 1);
        next.tv_nsec += step_ns;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) ==
               EINTR) {
        }
    }
    harness_conn_close(c);
    return NULL;
}

/* ---- setup ---------------------------------------------------------- */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0) {
        fprintf(stderr, "integ_prometheus: remove %s: %s\n", path,
                strerror(errno));
    }
    return 0;
}

static int
write_file(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "w");
    va_list ap;
    int rc;

    if (f == NULL) {
        return -1;
    }
    va_start(ap, fmt);
    rc = vfprintf(f, fmt, ap) < 0 ? -1 : 0;
    va_end(ap);
    return fclose(f) != 0 ? -1 : rc;
}

/* Start prometheus on a free port, scraping 127.0.0.1:mport as job
 * "riven" every second with the rules loaded; wait for /-/ready. */
static int
prometheus_start(void)
{
    char conf[128], data[128], listen[64], rules[4096], cfile[160];
    char dflag[160], lflag[96], *body = NULL;
    int64_t deadline;

    if (realpath(RULES_FILE, rules) == NULL) {
        fprintf(stderr,
                "integ_prometheus: %s: %s (run from the repository "
                "root)\n",
                RULES_FILE, strerror(errno));
        return -1;
    }
    snprintf(conf, sizeof(conf), "%s/prometheus.yml", env.dir);
    snprintf(data, sizeof(data), "%s/data", env.dir);
    if (write_file(conf,
                   "global:\n  scrape_interval: 1s\n"
                   "  evaluation_interval: 1s\n"
                   "rule_files:\n  - %s\n"
                   "scrape_configs:\n  - job_name: riven\n"
                   "    static_configs:\n"
                   "      - targets: ['127.0.0.1:%d']\n",
                   rules, env.mport) != 0) {
        return -1;
    }
    for (int try = 0; try < 5; try++) {
        const char *argv[] = {"prometheus",       cfile, dflag, lflag,
                              "--log.level=warn", NULL};

        env.pport = harness_free_port();
        snprintf(cfile, sizeof(cfile), "--config.file=%s", conf);
        snprintf(dflag, sizeof(dflag), "--storage.tsdb.path=%s", data);
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", env.pport);
        snprintf(lflag, sizeof(lflag), "--web.listen-address=%s", listen);
        if (harness_spawn(&env.pr, "prometheus", argv) != 0) {
            return -1;
        }
        if (harness_wait_ready(&env.pr, env.pport, PROM_START_MS) == 0) {
            break;
        }
        harness_proc_stop(&env.pr, 5000);
    }
    if (env.pr.pid < 0) {
        return -1;
    }
    deadline = harness_now_ms() + PROM_START_MS;
    while (harness_now_ms() < deadline) {
        int code = http_get(env.pport, "/-/ready", &body);

        free(body);
        if (code == 200) {
            return 0;
        }
        usleep(POLL_MS * 1000);
    }
    fprintf(stderr, "integ_prometheus: prometheus not ready\n");
    return -1;
}

static int
group_setup(void **state)
{
    char mflag[32];
    const char *extra[] = {"-m", mflag, NULL};

    (void)state;
    memset(&env, 0, sizeof(env));
    env.mc.pid = env.rv.pid = env.pr.pid = -1;
    if (harness_direct()) {
        printf("integ_prometheus: RIVEN_DIRECT: needs riven: skipped\n");
        env.skip = true;
        return 0;
    }
    if (system("command -v prometheus >/dev/null 2>&1") != 0) {
        printf("integ_prometheus: prometheus is not installed (Debian "
               "package prometheus): skipped\n");
        env.skip = true;
        return 0;
    }
    snprintf(env.dir, sizeof(env.dir), "/tmp/riven-prom-XXXXXX");
    if (mkdtemp(env.dir) == NULL) {
        env.dir[0] = '\0';
        return -1;
    }
    env.mport = harness_free_port();
    snprintf(mflag, sizeof(mflag), "127.0.0.1:%d", env.mport);
    if (harness_memcached_start(&env.mc, 0, NULL) != 0 ||
        harness_riven_start(&env.rv, env.mc.port, NULL, 0, extra) != 0 ||
        prometheus_start() != 0) {
        return -1;
    }
    env.start_us = harness_now_us();
    if (pthread_create(&env.driver, NULL, drive, &env.rv.port) != 0) {
        return -1;
    }
    env.driving = true;
    return 0;
}

static int
group_teardown(void **state)
{
    (void)state;
    if (env.driving) {
        atomic_store(&env.stop, true);
        pthread_join(env.driver, NULL);
    }
    harness_proc_stop(&env.pr, 10000);
    harness_proc_stop(&env.rv, 5000);
    harness_proc_stop(&env.mc, 5000);
    if (env.dir[0] != '\0') {
        nftw(env.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    return 0;
}

#define NEEDS_PROMETHEUS()                                                     \
    do {                                                                       \
        if (env.skip) {                                                        \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* The timestamp of riven's latest scrape, NAN if none. */
static double
last_scrape(void)
{
    char err[256];
    struct json *j = prom_query("timestamp(riven_build_info{job=\"riven\"})",
                                err, sizeof(err));
    double t = first_value(j);

    json_free(j);
    return t;
}

/* Poll expr until its first value satisfies ok(v, arg) or DEADLINE_MS
 * passes; the last value seen. at_scrape: evaluate it at the instant of
 * riven's latest scrape rather than now. */
static double
poll_value(const char *expr, bool (*ok)(double, double), double arg,
           bool at_scrape)
{
    int64_t deadline = harness_now_ms() + DEADLINE_MS;
    double v = NAN;
    char err[512] = "";

    while (harness_now_ms() < deadline) {
        double at = at_scrape ? last_scrape() : NAN;
        struct json *j = prom_query_at(expr, at, err, sizeof(err));

        if (j != NULL) {
            v = first_value(j);
            json_free(j);
            if (ok(v, arg)) {
                return v;
            }
        }
        usleep(POLL_MS * 1000);
    }
    if (err[0] != '\0') {
        fprintf(stderr, "integ_prometheus: last error: %s\n", err);
    }
    return v;
}

/* ---- cases ---------------------------------------------------------- */

static bool
equals(double v, double want)
{
    return v == want;
}

static bool
above(double v, double min)
{
    return !isnan(v) && v > min;
}

static void
test_up(void **state)
{
    (void)state;
    NEEDS_PROMETHEUS();
    assert_true(poll_value("up{job=\"riven\"}", equals, 1, false) == 1);
}

static double
driven_rate(void)
{
    double secs = (double)(harness_now_us() - env.start_us) / 1e6;

    return (double)atomic_load(&env.sent) / secs;
}

static bool
within_10pct(double v, double unused)
{
    double want = driven_rate();

    (void)unused;
    return !isnan(v) && fabs(v - want) <= 0.1 * want;
}

static void
test_rate(void **state)
{
    const char *expr =
        "sum(rate(riven_requests_total{job=\"riven\"}[" RATE_WINDOW "]))";
    double v;

    (void)state;
    NEEDS_PROMETHEUS();
    /* a whole window of load, and two scrapes, before the rate can hold */
    while (harness_now_us() - env.start_us < RATE_FULL_MS * 1000) {
        usleep(POLL_MS * 1000);
    }
    v = poll_value(expr, within_10pct, 0, true);
    printf("integ_prometheus: %s = %.1f, driven %.1f req/s (nominal %d), "
           "%.1f s into the load\n",
           expr, v, driven_rate(), DRIVE_RATE,
           (double)(harness_now_us() - env.start_us) / 1e6);
    assert_int_equal(atomic_load(&env.bad), 0);
    assert_true(within_10pct(v, 0));
    /* the driver kept its schedule (a starved machine would show here) */
    assert_true(fabs(driven_rate() - DRIVE_RATE) <= 0.05 * DRIVE_RATE);
}

/* ---- metric names --------------------------------------------------- */

struct names {
    char *v[NAMES_MAX];
    size_t n;
};

static bool
names_has(const struct names *ns, const char *name, size_t len)
{
    for (size_t i = 0; i < ns->n; i++) {
        if (strlen(ns->v[i]) == len && memcmp(ns->v[i], name, len) == 0) {
            return true;
        }
    }
    return false;
}

static void
names_add(struct names *ns, const char *name, size_t len)
{
    if (!names_has(ns, name, len)) {
        assert_true(ns->n < NAMES_MAX);
        ns->v[ns->n] = strndup(name, len);
        assert_non_null(ns->v[ns->n++]);
    }
}

static void
names_free(struct names *ns)
{
    for (size_t i = 0; i < ns->n; i++) {
        free(ns->v[i]);
    }
    ns->n = 0;
}

/* Add the sample names of one /metrics body (histograms: _bucket, _sum,
 * _count, which are what a scrape shows). */
static void
names_from_scrape(struct names *ns, const char *body)
{
    for (const char *line = body; *line != '\0';) {
        const char *eol = strchr(line, '\n');
        size_t len = eol != NULL ? (size_t)(eol - line) : strlen(line);
        size_t n = strcspn(line, "{ \n");

        if (line[0] != '#' && n > 0 && n <= len) {
            names_add(ns, line, n);
        }
        line += len + (eol != NULL);
    }
}

/* Scrape the riven on port mport into ns (its endpoint may start a
 * moment after its listener: retried for 5 s). */
static void
scrape_into(struct names *ns, int mport)
{
    int64_t deadline = harness_now_ms() + 5000;
    char *body = NULL;
    int code;

    while ((code = http_get(mport, "/metrics", &body)) != 200 &&
           harness_now_ms() < deadline) {
        free(body);
        body = NULL;
        usleep(50 * 1000);
    }
    assert_int_equal(code, 200);
    names_from_scrape(ns, body);
    free(body);
}

/* Start a riven with orca l1l2 (routes false: l1 and l2 both on our
 * memcached) or with routes (a shadow route and a failover default over
 * two pools on it), scrape it into ns, stop it. */
static void
scrape_config(struct names *ns, bool routes)
{
    char path[128], text[1024], maddr[32];
    int lport = harness_free_port(), mport = harness_free_port();
    int mc = env.mc.port;
    const char *extra[] = {"-m", maddr, NULL};
    struct harness_proc p = {.pid = -1};

    snprintf(path, sizeof(path), "%s/riven-%d.yml", env.dir, lport);
    if (routes) {
        snprintf(text, sizeof(text),
                 "listen: [\"127.0.0.1:%d\"]\npools:\n"
                 "  a: {servers: [\"127.0.0.1:%d\"]}\n"
                 "  b: {servers: [\"127.0.0.1:%d\"]}\n"
                 "routes:\n  - prefix: \"s:\"\n"
                 "    route: {shadow: {route: a, to: b, fraction: 1}}\n"
                 "  - default: {failover: [a, b]}\n",
                 lport, mc, mc);
    } else {
        snprintf(text, sizeof(text),
                 "listen: [\"127.0.0.1:%d\"]\norca: l1l2\n"
                 "l1: {servers: [\"127.0.0.1:%d\"]}\n"
                 "l2: {servers: [\"127.0.0.1:%d\"]}\n",
                 lport, mc, mc);
    }
    assert_int_equal(write_file(path, "%s", text), 0);
    snprintf(maddr, sizeof(maddr), "127.0.0.1:%d", mport);
    assert_int_equal(harness_riven_start(&p, 0, path, lport, extra), 0);
    scrape_into(ns, mport);
    harness_proc_stop(&p, 5000);
    unlink(path);
}

/* Every riven_ / process_ identifier in expr is in ns, and expr names at
 * least one metric (those, or up). Prints and returns false otherwise. */
static bool
expr_names_ok(const struct names *ns, const char *where, const char *expr)
{
    bool ok = true, any = false;

    for (const char *p = expr; *p != '\0';) {
        size_t n;

        if (*p == '"') { /* a label value or string: skip it */
            for (p++; *p != '\0' && *p != '"'; p++) {
                p += p[0] == '\\' && p[1] != '\0';
            }
            p += *p != '\0';
            continue;
        }
        n = strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789_:");
        if (n == 0) {
            p++;
            continue;
        }
        if (strncmp(p, "riven_", 6) == 0 || strncmp(p, "process_", 8) == 0) {
            any = true;
            if (!names_has(ns, p, n)) {
                fprintf(stderr,
                        "integ_prometheus: %s: %.*s is not a metric "
                        "riven exports\n",
                        where, (int)n, p);
                ok = false;
            }
        } else if (n == 2 && strncmp(p, "up", 2) == 0 && p[2] == '{') {
            any = true;
        }
        p += n;
    }
    if (!any) {
        fprintf(stderr, "integ_prometheus: %s names no metric: %s\n", where,
                expr);
    }
    return ok && any;
}

/* ---- the dashboard -------------------------------------------------- */

/* expr with Grafana's variables replaced, malloc'd. */
static char *
substitute(const char *expr)
{
    static const char *const from[] = {"$__rate_interval", "$instance", "$job"};
    static const char *const to[] = {RATE_WINDOW, ".+", "riven"};
    size_t cap = strlen(expr) * 2 + 64, o = 0;
    char *out = malloc(cap);

    assert_non_null(out);
    while (*expr != '\0') {
        size_t i;

        for (i = 0; i < 3; i++) {
            if (strncmp(expr, from[i], strlen(from[i])) == 0) {
                break;
            }
        }
        if (i < 3) {
            o += (size_t)snprintf(out + o, cap - o, "%s", to[i]);
            expr += strlen(from[i]);
        } else {
            out[o++] = *expr++;
        }
        assert_true(o < cap - 8);
    }
    out[o] = '\0';
    assert_null(strchr(out, '$')); /* a variable we do not know */
    return out;
}

static struct json *
load_dashboard(void)
{
    char *text = NULL, err[256];
    size_t len = 0;
    FILE *f = fopen(DASHBOARD_FILE, "r");
    struct json *d;

    assert_non_null(f);
    assert_int_equal(getdelim(&text, &len, '\0', f) > 0, 1);
    fclose(f);
    d = json_parse(text, strlen(text), err, sizeof(err));
    if (d == NULL) {
        fail_msg("%s: %s", DASHBOARD_FILE, err);
    }
    free(text);
    return d;
}

/* A visitor over every (panel, target) of the dashboard, rows' panels
 * included; returns the number of failures it reported. */
typedef int (*target_fn)(const struct json *panel, const char *expr, void *arg);

static int
walk_panels(const struct json *panels, target_fn fn, void *arg, int *ntargets)
{
    int failures = 0;

    for (const struct json *p = panels != NULL ? panels->child : NULL;
         p != NULL; p = p->next) {
        const struct json *ts = json_get(p, "targets");

        failures += walk_panels(json_get(p, "panels"), fn, arg, ntargets);
        for (const struct json *t = ts != NULL ? ts->child : NULL; t != NULL;
             t = t->next) {
            const char *expr = json_get_str(t, "expr");

            assert_non_null(expr);
            (*ntargets)++;
            failures += fn(p, expr, arg);
        }
    }
    return failures;
}

static bool
expect_empty(const char *title)
{
    for (size_t i = 0; i < sizeof(EXPECT_EMPTY) / sizeof(*EXPECT_EMPTY); i++) {
        if (strcmp(title, EXPECT_EMPTY[i]) == 0) {
            return true;
        }
    }
    return false;
}

static int
check_target_data(const struct json *panel, const char *expr, void *arg)
{
    const char *title = json_get_str(panel, "title");
    char err[512], *q = substitute(expr);
    struct json *j = prom_query(q, err, sizeof(err));
    size_t n;
    int bad = 0;

    (void)arg;
    if (j == NULL) {
        fprintf(stderr, "integ_prometheus: panel \"%s\": %s\n", title, err);
        free(q);
        return 1;
    }
    n = json_count(result_of(j));
    if (expect_empty(title) ? n != 0 : n == 0) {
        fprintf(stderr,
                "integ_prometheus: panel \"%s\": %zu series (%s): "
                "%s\n",
                title, n,
                expect_empty(title) ? "expected none" : "expected some", q);
        bad = 1;
    }
    json_free(j);
    free(q);
    return bad;
}

static void
test_dashboard(void **state)
{
    struct json *d;
    int failures, ntargets = 0, empties = 0;
    const struct json *panels;

    (void)state;
    NEEDS_PROMETHEUS();
    d = load_dashboard();
    assert_true(json_get(d, "schemaVersion") != NULL &&
                json_get(d, "schemaVersion")->num >= 36);
    panels = json_get(d, "panels");
    /* a full rate window of traffic (test_rate has waited for it) */
    assert_true(
        poll_value("sum(rate(riven_requests_total{job=\"riven\"}[" RATE_WINDOW
                   "]))",
                   above, 0.5 * DRIVE_RATE, false) > 0.5 * DRIVE_RATE);
    for (size_t i = 0; i < sizeof(EXPECT_EMPTY) / sizeof(*EXPECT_EMPTY); i++) {
        bool found = false;

        for (const struct json *p = panels->child; p != NULL; p = p->next) {
            const struct json *sub = json_get(p, "panels");

            for (const struct json *s = sub != NULL ? sub->child : NULL;
                 s != NULL; s = s->next) {
                found |= strcmp(str_or_empty(json_get_str(s, "title")),
                                EXPECT_EMPTY[i]) == 0;
            }
            found |= strcmp(str_or_empty(json_get_str(p, "title")),
                            EXPECT_EMPTY[i]) == 0;
        }
        empties += found;
        if (!found) {
            fprintf(stderr, "integ_prometheus: no panel \"%s\"\n",
                    EXPECT_EMPTY[i]);
        }
    }
    failures = walk_panels(panels, check_target_data, NULL, &ntargets);
    printf("integ_prometheus: %d dashboard queries, %d failed; %d panels "
           "expected empty\n",
           ntargets, failures, empties);
    json_free(d);
    assert_true(ntargets > 0);
    assert_int_equal(empties, sizeof(EXPECT_EMPTY) / sizeof(*EXPECT_EMPTY));
    assert_int_equal(failures, 0);
}

/* ---- the rules ------------------------------------------------------ */

/* Rules of /api/v1/rules, once every one has been evaluated: the parsed
 * reply. */
static struct json *
loaded_rules(size_t *nrules)
{
    int64_t deadline = harness_now_ms() + DEADLINE_MS;

    while (harness_now_ms() < deadline) {
        char *body = NULL, err[256];
        struct json *j = NULL;
        const struct json *groups;
        size_t n = 0, evaluated = 0;

        if (http_get(env.pport, "/api/v1/rules", &body) == 200) {
            j = json_parse(body, strlen(body), err, sizeof(err));
        }
        free(body);
        groups = json_get(json_get(j, "data"), "groups");
        for (const struct json *g = groups != NULL ? groups->child : NULL;
             g != NULL; g = g->next) {
            const struct json *rules = json_get(g, "rules");

            for (const struct json *r = rules != NULL ? rules->child : NULL;
                 r != NULL; r = r->next) {
                const char *health = json_get_str(r, "health");

                n++;
                evaluated += health != NULL && strcmp(health, "unknown") != 0;
            }
        }
        if (n > 0 && evaluated == n) {
            *nrules = n;
            return j;
        }
        json_free(j);
        usleep(POLL_MS * 1000);
    }
    fail_msg("prometheus did not evaluate the rules of %s", RULES_FILE);
    return NULL;
}

/* The "- alert:" lines of the rules file. */
static size_t
alerts_in_file(void)
{
    FILE *f = fopen(RULES_FILE, "r");
    char line[512];
    size_t n = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        n += strncmp(line + strspn(line, " "), "- alert:", 8) == 0;
    }
    fclose(f);
    return n;
}

static void
test_rules(void **state)
{
    size_t nrules = 0, bad = 0;
    struct json *j, *alerts;
    char err[512];

    (void)state;
    NEEDS_PROMETHEUS();
    j = loaded_rules(&nrules);
    assert_int_equal(nrules, alerts_in_file());
    for (const struct json *g = json_get(json_get(j, "data"), "groups")->child;
         g != NULL; g = g->next) {
        for (const struct json *r = json_get(g, "rules")->child; r != NULL;
             r = r->next) {
            if (strcmp(str_or_empty(json_get_str(r, "health")), "ok") != 0) {
                fprintf(stderr, "integ_prometheus: rule %s: health %s: %s\n",
                        json_get_str(r, "name"), json_get_str(r, "health"),
                        str_or_empty(json_get_str(r, "lastError")));
                bad++;
            }
        }
    }
    json_free(j);
    assert_int_equal(bad, 0);
    /* a healthy riven under steady load fires nothing */
    alerts = prom_query("ALERTS{alertstate=\"firing\"}", err, sizeof(err));
    if (alerts == NULL) {
        fail_msg("%s", err);
    }
    assert_int_equal(json_count(result_of(alerts)), 0);
    json_free(alerts);
}

static int
check_target_names(const struct json *panel, const char *expr, void *arg)
{
    return expr_names_ok(arg, json_get_str(panel, "title"), expr) ? 0 : 1;
}

static void
test_names(void **state)
{
    struct names ns = {.n = 0};
    struct json *d, *rules;
    size_t nrules = 0;
    int failures, ntargets = 0;

    (void)state;
    NEEDS_PROMETHEUS();
    scrape_into(&ns, env.mport);
    scrape_config(&ns, false);
    scrape_config(&ns, true);
    assert_true(
        names_has(&ns, "riven_layer_request_duration_seconds_bucket", 43));
    assert_true(names_has(&ns, "riven_route_requests_total", 26));
    d = load_dashboard();
    failures =
        walk_panels(json_get(d, "panels"), check_target_names, &ns, &ntargets);
    json_free(d);
    rules = loaded_rules(&nrules);
    for (const struct json *g =
             json_get(json_get(rules, "data"), "groups")->child;
         g != NULL; g = g->next) {
        for (const struct json *r = json_get(g, "rules")->child; r != NULL;
             r = r->next) {
            failures += !expr_names_ok(&ns, json_get_str(r, "name"),
                                       json_get_str(r, "query"));
        }
    }
    json_free(rules);
    printf("integ_prometheus: %zu metric names exported; %d dashboard and "
           "%zu rule expressions checked\n",
           ns.n, ntargets, nrules);
    names_free(&ns);
    assert_int_equal(failures, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_up),    cmocka_unit_test(test_rate),
        cmocka_unit_test(test_rules), cmocka_unit_test(test_dashboard),
        cmocka_unit_test(test_names),
    };

    if (!harness_direct() && !harness_riven_available()) {
        fprintf(stderr, "integ_prometheus: %s not found (set RIVEN_BIN)\n",
                harness_riven_bin());
        return 1;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
