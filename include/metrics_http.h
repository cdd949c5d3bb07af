/*
 * metrics_http: the HTTP endpoint Prometheus scrapes, served by
 * libmicrohttpd on its own address (config metrics.listen, -m ADDR).
 *
 *   GET /metrics  200, Content-Type "text/plain; version=0.0.4", the
 *                 text of metrics_render_prometheus
 *   GET /healthz  200 "ok\n" while at least one backend is up, else 503
 *                 "unavailable\n"
 *   GET /healthz/backends
 *                 one line "<server> up\n" or "<server> down\n" per
 *                 backend; 200 while at least one is up, else 503
 *   GET /healthz/<server>
 *                 200 "up\n" or 503 "down\n" for that backend (its
 *                 address as written in the config); 404 if none is named so
 *   other paths   404; methods other than GET and HEAD: 405 with Allow
 *
 * Up and down come from the backend callback, which answers from results
 * already known (riven's prober, see main.c): /healthz never waits for a
 * backend, so neither does a /metrics scrape queued behind it.
 *
 * One internal thread (epoll) accepts and answers; rendering happens on
 * it, at scrape time. libmicrohttpd appears only in metrics_http.c.
 *
 * Thread-safety: start and stop are called by one thread (main); the
 * backend callback runs on the endpoint's thread and must be thread-safe.
 */
#ifndef RIVEN_METRICS_HTTP_H
#define RIVEN_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "util.h"

struct metrics_http;

/* Backend i for /healthz (i from 0 until it returns false): its name
 * copied to name (namelen bytes, NUL-terminated) and whether it is up.
 * arg is the pointer given to metrics_http_start. Runs on the endpoint's
 * only thread: must be thread-safe and must not block. */
typedef bool (*metrics_backend_fn)(void *arg, size_t i, char *name,
                                   size_t namelen, bool *up);

/* Listen on addr (AF_INET or AF_INET6; port 0 picks a free port) and
 * serve until metrics_http_stop. backend may be NULL: no backends, and
 * /healthz always healthy. NULL on failure with a
 * message in err ("metrics: cannot listen on 127.0.0.1:11299: Address
 * already in use"). Call before serving starts: the failure is fatal. */
struct metrics_http *metrics_http_start(const struct cfg_addr *addr,
                                        metrics_backend_fn backend, void *arg,
                                        char *err, size_t errlen) WUR;

/* The port actually bound (useful after port 0), or 0. */
uint16_t metrics_http_port(const struct metrics_http *mh);

/* Close the socket, finish the thread and free. NULL-safe. */
void metrics_http_stop(struct metrics_http *mh);

#endif /* RIVEN_METRICS_HTTP_H */
