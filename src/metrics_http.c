/*
 * metrics_http: GET /metrics and /healthz over libmicrohttpd.
 *
 * libmicrohttpd parses HTTP and runs one internal polling thread (epoll,
 * so descriptor numbers above FD_SETSIZE are fine); for each request it
 * calls handle(), which renders the answer into a struct buf and hands a
 * copy to MHD. Nothing is shared with connection threads except through
 * the thread-safe metrics API and the backend callback.
 *
 * Invariants: this is the only file that includes microhttpd.h. A scrape
 * never blocks recording: rendering takes each histogram's write lock for
 * the time of one 8 KiB copy.
 */
#include "metrics_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"
#include "metrics.h"

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4"
#define TEXT_CONTENT_TYPE "text/plain; charset=utf-8"
#define HTTP_CONN_LIMIT   32 /* scrapers at once */
#define HTTP_TIMEOUT_S    10 /* idle connection timeout */
#define RENDER_INIT       (64u * 1024)

struct metrics_http {
    struct MHD_Daemon *daemon;
    metrics_backend_fn backend; /* NULL: no backends, always healthy */
    void *arg;                  /* ref: owned by the caller */
    char lasterr[160];          /* last MHD message, for start */
    _Atomic bool started;       /* false: start reports, not the log */
};

/* MHD's error log: during start, kept for start's own message; after,
 * logged as a warning. */
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct metrics_http *mh = cls;
    size_t n;

    vsnprintf(mh->lasterr, sizeof(mh->lasterr), fmt, ap);
    n = strlen(mh->lasterr);
    while (n > 0 && (mh->lasterr[n - 1] == '\n' || mh->lasterr[n - 1] == ' ')) {
        mh->lasterr[--n] = '\0';
    }
    if (atomic_load(&mh->started)) {
        log_warnx("metrics_http: %s", mh->lasterr);
    }
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned status, const char *type,
      const void *body, size_t len)
{
    struct MHD_Response *res;
    enum MHD_Result rc;

    res = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body,
                                          MHD_RESPMEM_MUST_COPY);
    if (res == NULL) {
        return MHD_NO; /* out of memory: MHD closes the connection */
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        MHD_add_response_header(res, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    rc = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    return rc;
}

static enum MHD_Result
reply_text(struct MHD_Connection *conn, unsigned status, const char *text)
{
    return reply(conn, status, TEXT_CONTENT_TYPE, text, strlen(text));
}

static enum MHD_Result
reply_metrics(struct MHD_Connection *conn)
{
    struct buf out;
    enum MHD_Result rc;

    buf_init(&out, RENDER_INIT);
    if (metrics_render_prometheus(&out) != ST_OK) {
        buf_free(&out);
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                          "out of memory\n");
    }
    rc = reply(conn, MHD_HTTP_OK, PROM_CONTENT_TYPE, out.pos, buf_len(&out));
    buf_free(&out);
    return rc;
}

/* True while at least one backend is up (or there is no callback). */
static bool
any_up(const struct metrics_http *mh)
{
    char name[CFG_ADDR_NAME_MAX];
    bool up = false;

    if (mh->backend == NULL) {
        return true;
    }
    for (size_t i = 0; !up && mh->backend(mh->arg, i, name, sizeof(name), &up);
         i++) {
    }
    return up;
}

/* GET /healthz/backends: a line per backend. */
static enum MHD_Result
reply_backends(const struct metrics_http *mh, struct MHD_Connection *conn)
{
    char name[CFG_ADDR_NAME_MAX];
    struct buf out;
    enum status st = ST_OK;
    enum MHD_Result rc;
    bool up, any = mh->backend == NULL;

    buf_init(&out, 1024);
    for (size_t i = 0; st == ST_OK && mh->backend != NULL &&
                       mh->backend(mh->arg, i, name, sizeof(name), &up);
         i++) {
        const char *state = up ? " up\n" : " down\n";

        any = any || up;
        if ((st = buf_append(&out, name, strlen(name))) == ST_OK) {
            st = buf_append(&out, state, strlen(state));
        }
    }
    if (st != ST_OK) {
        buf_free(&out);
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR,
                          "out of memory\n");
    }
    rc = reply(conn, any ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
               TEXT_CONTENT_TYPE, out.pos, buf_len(&out));
    buf_free(&out);
    return rc;
}

/* GET /healthz/<server>. */
static enum MHD_Result
reply_backend(const struct metrics_http *mh, struct MHD_Connection *conn,
              const char *server)
{
    char name[CFG_ADDR_NAME_MAX];
    bool up;

    if (strcmp(server, "backends") == 0) {
        return reply_backends(mh, conn);
    }
    for (size_t i = 0; mh->backend != NULL &&
                       mh->backend(mh->arg, i, name, sizeof(name), &up);
         i++) {
        if (strcmp(name, server) == 0) {
            return up ? reply_text(conn, MHD_HTTP_OK, "up\n")
                      : reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                                   "down\n");
        }
    }
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "unknown backend\n");
}

/* MHD's access handler: one call per request (the answer never needs the
 * request body, so it is queued on the first call). */
static enum MHD_Result
handle(void *cls, struct MHD_Connection *conn, const char *url,
       const char *method, const char *version, const char *upload,
       size_t *upload_len, void **req_cls)
{
    struct metrics_http *mh = cls;

    (void)version;
    (void)upload;
    (void)upload_len;
    (void)req_cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
        strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                          "method not allowed\n");
    }
    if (strcmp(url, "/metrics") == 0) {
        return reply_metrics(conn);
    }
    if (strcmp(url, "/healthz") == 0) {
        if (any_up(mh)) {
            return reply_text(conn, MHD_HTTP_OK, "ok\n");
        }
        return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable\n");
    }
    if (strncmp(url, "/healthz/", 9) == 0) {
        return reply_backend(mh, conn, url + 9);
    }
    return reply_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

struct metrics_http *
metrics_http_start(const struct cfg_addr *addr, metrics_backend_fn backend,
                   void *arg, char *err, size_t errlen)
{
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    struct metrics_http *mh;
    char ebuf[128];
    int family = addr->ss.ss_family, saved;

    if (family != AF_INET && family != AF_INET6) {
        util_errf(err, errlen,
                  "metrics: cannot listen on %s: expected host:port or "
                  "[v6addr]:port",
                  addr->name);
        return NULL;
    }
    mh = calloc(1, sizeof(*mh));
    if (mh == NULL) {
        util_errf(err, errlen, "metrics: out of memory");
        return NULL;
    }
    mh->backend = backend;
    mh->arg = arg;
    flags |= family == AF_INET6 ? MHD_USE_IPv6 : 0;
    errno = 0;
    mh->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, mh, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
        mh, MHD_OPTION_SOCK_ADDR, &addr->ss, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)HTTP_CONN_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_TIMEOUT_S, MHD_OPTION_END);
    if (mh->daemon == NULL) {
        saved = errno;
        util_errf(err, errlen, "metrics: cannot listen on %s: %s", addr->name,
                  saved != 0
                      ? strerror_r(saved, ebuf, sizeof(ebuf))
                      : (mh->lasterr[0] ? mh->lasterr : "unknown error"));
        free(mh);
        return NULL;
    }
    atomic_store(&mh->started, true);
    return mh;
}

uint16_t
metrics_http_port(const struct metrics_http *mh)
{
    const union MHD_DaemonInfo *info;

    if (mh == NULL) {
        return 0;
    }
    info = MHD_get_daemon_info(mh->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info != NULL ? info->port : 0;
}

void
metrics_http_stop(struct metrics_http *mh)
{
    if (mh == NULL) {
        return;
    }
    MHD_stop_daemon(mh->daemon);
    free(mh);
}
