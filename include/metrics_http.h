/*
 * metrics_http: the HTTP endpoint Prometheus scrapes, served by
 * libmicrohttpd on its own address (config metrics.listen, -m ADDR).
 *
 *   GET /metrics  200, Content-Type "text/plain; version=0.0.4", the
 *                 text of metrics_render_prometheus
 *   GET /healthz  200 "ok\n" when the healthy callback says so (at least
 *                 one backend up), else 503 "unavailable\n"
 *   other paths   404; methods other than GET and HEAD: 405 with Allow
 *
 * One internal thread (epoll) accepts and answers; rendering happens on
 * it, at scrape time. libmicrohttpd appears only in metrics_http.c.
 *
 * Thread-safety: start and stop are called by one thread (main); the
 * healthy callback runs on the endpoint's thread and must be thread-safe.
 */
#ifndef RIVEN_METRICS_HTTP_H
#define RIVEN_METRICS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "util.h"

struct metrics_http;

/* Decides /healthz; arg is the pointer given to metrics_http_start. */
typedef bool (*metrics_healthy_fn)(void *arg);

/* Listen on addr (AF_INET or AF_INET6; port 0 picks a free port) and
 * serve until metrics_http_stop. healthy may be NULL (always healthy);
 * metrics_any_server_up is the usual choice. NULL on failure with a
 * message in err ("metrics: cannot listen on 127.0.0.1:11299: Address
 * already in use"). Call before serving starts: the failure is fatal. */
struct metrics_http *metrics_http_start(const struct cfg_addr *addr,
                                        metrics_healthy_fn healthy, void *arg,
                                        char *err, size_t errlen) WUR;

/* The port actually bound (useful after port 0), or 0. */
uint16_t metrics_http_port(const struct metrics_http *mh);

/* Close the socket, finish the thread and free. NULL-safe. */
void metrics_http_stop(struct metrics_http *mh);

#endif /* RIVEN_METRICS_HTTP_H */
