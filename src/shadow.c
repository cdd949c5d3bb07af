/*
 * shadow: a detached backend socket. Non-blocking from end to end:
 * O_NONBLOCK socket, connect(2) completed by poll(2) with a zero timeout,
 * send with MSG_NOSIGNAL that keeps what the socket does not take, recv
 * until EAGAIN.
 *
 *   send: request -> proto_meta bytes in wbuf, a pend at the ring's tail
 *   poll: wbuf -> socket; socket -> rbuf -> proto_meta_parse_reply ->
 *         count the ring's head, pop it
 *
 * A pend keeps what proto_meta_parse_reply needs of the request (its
 * command and flags: no key, no value; stats, which also needs its
 * arguments, is not sent) plus the O<tag> of a read, its send time and
 * the route to count it for. Replies come in request order, so the head
 * of the ring is what the next reply answers.
 *
 * Invariants: the ring is empty whenever the socket is closed (each
 * failure counts and pops every pend), so a late reply can never be
 * taken for the answer to a later request; wbuf and rbuf are empty too.
 * Only the oldest pend can be the first to time out.
 */
#include "shadow.h"

#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "proto_meta.h"

#define SHADOW_BUF_INIT   2048
#define SHADOW_READ_MIN   16384 /* bytes asked of one recv at least */
#define SHADOW_READS_MAX  64    /* recv calls per shadow_poll */
#define SHADOW_QUEUE_INIT 16
#define NS_PER_MS         UINT64_C(1000000)

struct pend {
    uint64_t sent_ns;           /* when shadow_send took it */
    uint32_t route;             /* metrics index of the route to count it for */
    uint32_t otag;              /* O<tag> sent (reads), 0 if none */
    uint32_t rflags;            /* the request's REQ_F_* */
    uint8_t cmd;                /* enum req_cmd */
    struct shadow_watch *watch; /* ref: the waiter's, or NULL */
};

struct shadow {
    const struct cfg_addr *addr; /* ref: owned by the config snapshot */
    size_t idx;                  /* server number, for metrics */
    uint32_t connect_ms;
    uint32_t request_ms;
    int fd;              /* -1 when closed */
    bool connecting;     /* connect(2) not finished */
    bool gated;          /* holds a place in health's connect gate */
    uint64_t connect_at; /* ms: when connect(2) was called */
    uint64_t ready_at;   /* ms: when the connection was established */
    uint64_t retry_at;   /* ms: no connect before, after a failed one */
    struct buf wbuf;     /* encoded requests not yet written */
    struct buf rbuf;     /* reply bytes not yet parsed */
    struct pend *ring;   /* cap slots, n used from head */
    size_t head;
    size_t n;
    size_t cap;
    uint32_t seq; /* the last O<tag> */
};

static bool
counted(const struct shadow *s)
{
    return s->idx < METRICS_SERVERS_MAX; /* else no server metrics */
}

static void
gate_leave(struct shadow *s)
{
    if (s->gated) {
        s->gated = false;
        health_gate_leave(s->idx);
    }
}

/* Close the socket; the ring must be empty. */
static void
shadow_close(struct shadow *s)
{
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
        metrics_server_socket_close(s->idx);
    }
    s->connecting = false;
    gate_leave(s);
    s->wbuf.pos = s->wbuf.last = s->wbuf.start;
    s->rbuf.pos = s->rbuf.last = s->rbuf.start;
    buf_shrink(&s->wbuf);
    buf_shrink(&s->rbuf);
}

/* A watched request failed: its waiter hears riven's error. */
static void
watch_fail(struct shadow_watch *w, enum res_fail why)
{
    if (w != NULL) {
        memset(&w->res, 0, sizeof(w->res));
        res_set_fail(&w->res, why);
        w->done = true;
    }
}

/* Count every outstanding request as r, then close. */
static void
fail_all(struct shadow *s, enum metrics_shadow_result r)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct pend *p = &s->ring[(s->head + i) % s->cap];

        metrics_route_shadow(p->route, r);
        watch_fail(p->watch, r == MSHADOW_TIMEOUT ? FAIL_BACKEND_TIMEOUT
                             : r == MSHADOW_ERROR ? FAIL_BACKEND_ERROR
                                                  : FAIL_BACKEND_UNAVAILABLE);
    }
    s->head = s->n = 0;
    shadow_close(s);
}

struct shadow *
shadow_create(const struct cfg_addr *addr, size_t idx, uint32_t connect_ms,
              uint32_t request_ms)
{
    struct shadow *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->addr = addr;
    s->idx = idx;
    s->connect_ms = connect_ms;
    s->request_ms = request_ms;
    s->fd = -1;
    buf_init(&s->wbuf, SHADOW_BUF_INIT);
    buf_init(&s->rbuf, SHADOW_BUF_INIT);
    return s;
}

static bool read_replies(struct shadow *s);

void
shadow_destroy(struct shadow *s)
{
    if (s == NULL) {
        return;
    }
    if (s->fd >= 0 && !s->connecting) {
        (void)read_replies(s); /* count what has come */
    }
    fail_all(s, MSHADOW_DROPPED); /* abandoned unanswered */
    buf_free(&s->wbuf);
    buf_free(&s->rbuf);
    free(s->ring);
    free(s);
}

size_t
shadow_outstanding(const struct shadow *s)
{
    return s->n;
}

int
shadow_fd(const struct shadow *s)
{
    return s->fd;
}

bool
shadow_want_write(const struct shadow *s)
{
    return s->fd >= 0 && (s->connecting || buf_len(&s->wbuf) > 0);
}

uint64_t
shadow_deadline(const struct shadow *s)
{
    uint64_t sent;

    if (s->fd >= 0 && s->connecting) {
        return s->connect_at + s->connect_ms;
    }
    if (s->n == 0) {
        return UINT64_MAX;
    }
    sent = s->ring[s->head].sent_ns / NS_PER_MS;
    return MAX(sent, s->ready_at) + s->request_ms;
}

void
shadow_rebind(struct shadow *s, const struct cfg_addr *addr, size_t idx,
              uint32_t connect_ms, uint32_t request_ms)
{
    if (s->fd >= 0 && idx != s->idx) {
        metrics_server_socket_close(s->idx);
        metrics_server_socket_open(idx);
    }
    if (idx != s->idx) {
        gate_leave(s); /* the place was taken under the old number */
    }
    s->addr = addr;
    s->idx = idx;
    s->connect_ms = connect_ms;
    s->request_ms = request_ms;
}

/* ---- connecting ---- */

/* The connect failed (err: its errno, 0 for a timeout): what was queued
 * meanwhile was never sent. */
static void
connect_failed(struct shadow *s, int err, uint64_t now_ms)
{
    log_debug("%s: %s: %s", __func__, s->addr->name,
              err != 0 ? strerror(err) : "timed out");
    metrics_server_error(s->idx);
    fail_all(s, MSHADOW_DROPPED);
    s->retry_at = now_ms + SHADOW_RETRY_MS;
}

static void
connected(struct shadow *s, uint64_t now_ms)
{
    s->connecting = false;
    s->ready_at = now_ms;
}

/* Start a non-blocking connect. ST_OK (connected or pending), or
 * ST_ERROR (counted; nothing open). */
static enum status
start_connect(struct shadow *s, uint64_t now_ms)
{
    const struct cfg_addr *a = s->addr;
    int fd, one = 1, err;

    if (now_ms < s->retry_at) {
        return ST_ERROR;
    }
    if (!health_gate_enter(s->idx, 0)) { /* full: do not wait */
        return ST_ERROR;
    }
    s->gated = true;
    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_warn("%s: socket %s", __func__, a->name);
        gate_leave(s);
        return ST_ERROR;
    }
    if (a->ss.ss_family != AF_UNIX) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    s->fd = fd;
    s->connect_at = now_ms;
    metrics_server_socket_open(s->idx);
    if (connect(fd, (const struct sockaddr *)&a->ss, a->sslen) == 0) {
        connected(s, now_ms);
        return ST_OK;
    }
    err = errno;
    if (err == EINPROGRESS) { /* TCP; a unix socket never is pending */
        s->connecting = true;
        return ST_OK;
    }
    connect_failed(s, err, now_ms);
    return ST_ERROR;
}

/* Finish a pending connect if it is done. ST_OK when connected,
 * ST_AGAIN while pending, ST_ERROR when it failed (counted, closed). */
static enum status
finish_connect(struct shadow *s, uint64_t now_ms)
{
    struct pollfd pfd = {.fd = s->fd, .events = POLLOUT};
    int err = 0, r;
    socklen_t len = sizeof(err);

    if (!s->connecting) {
        return ST_OK;
    }
    do {
        r = poll(&pfd, 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        if (now_ms - s->connect_at < s->connect_ms) {
            return ST_AGAIN;
        }
        connect_failed(s, 0, now_ms);
        return ST_ERROR;
    }
    if (r < 0 || getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 ||
        err != 0) {
        connect_failed(s, r < 0 ? errno : err, now_ms);
        return ST_ERROR;
    }
    connected(s, now_ms);
    return ST_OK;
}

/* ---- writing ---- */

/* Write what the socket takes. false when the socket failed (counted,
 * closed). */
static bool
flush(struct shadow *s)
{
    while (buf_len(&s->wbuf) > 0) {
        ssize_t n = send(s->fd, s->wbuf.pos, buf_len(&s->wbuf),
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n >= 0) {
            buf_consume(&s->wbuf, (size_t)n);
            if (counted(s)) {
                metrics_add(M_BACKEND_TX_BYTES, (uint64_t)n);
            }
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return true; /* the rest waits for shadow_poll */
        }
        log_debug("%s: send %s: %s", __func__, s->addr->name, strerror(errno));
        metrics_server_error(s->idx);
        fail_all(s, MSHADOW_ERROR);
        return false;
    }
    buf_shrink(&s->wbuf);
    return true;
}

/* Room for one more pend. false when the ring is full or memory ran
 * out. */
static bool
ring_room(struct shadow *s)
{
    struct pend *p;
    size_t cap;

    if (s->n < s->cap) {
        return true;
    }
    if (s->cap >= SHADOW_QUEUE_MAX) {
        return false;
    }
    cap =
        s->cap ? MIN(s->cap * 2, (size_t)SHADOW_QUEUE_MAX) : SHADOW_QUEUE_INIT;
    p = malloc(cap * sizeof(*p));
    if (p == NULL) {
        return false;
    }
    assert(s->n == 0 || s->cap > 0);
    for (size_t i = 0; i < s->n; i++) { /* unwrap into the new ring */
        p[i] = s->ring[(s->head + i) % s->cap];
    }
    free(s->ring);
    s->ring = p;
    s->cap = cap;
    s->head = 0;
    return true;
}

/* The bytes req takes in wbuf at the least (its key, value and flags). */
static size_t
least_size(const struct request *req)
{
    return req->nkey + req->nval + req->nargs;
}

/* Encode req at the end of wbuf, as a handler does: reads carry an
 * O<tag>. ST_OK, or ST_ERROR (wbuf unchanged). */
static enum status
encode(struct shadow *s, const struct request *req, struct pend *p)
{
    struct request tagged;
    size_t before = buf_len(&s->wbuf);

    p->otag = 0;
    if (req_is_get(req->cmd) || req->cmd == REQ_TOUCH) {
        tagged = *req;
        s->seq = s->seq % 1000000 + 1;
        tagged.tag = p->otag = s->seq;
        req = &tagged;
    }
    if (req->cmd == REQ_STATS ||
        proto_meta_encode_request(req, &s->wbuf) != ST_OK) {
        return ST_ERROR;
    }
    if (before > 0 && buf_len(&s->wbuf) > SHADOW_WBUF_MAX) {
        s->wbuf.last = s->wbuf.pos + before; /* over the bound: take back */
        return ST_ERROR;
    }
    p->cmd = (uint8_t)req->cmd;
    p->rflags = req->rflags;
    return ST_OK;
}

static bool
drop(uint32_t route)
{
    metrics_route_shadow(route, MSHADOW_DROPPED);
    return false;
}

static bool send_one(struct shadow *s, const struct request *req, uint32_t tag,
                     struct shadow_watch *w);

bool
shadow_send(struct shadow *s, const struct request *req, uint32_t tag)
{
    return send_one(s, req, tag, NULL);
}

bool
shadow_send_watched(struct shadow *s, const struct request *req, uint32_t tag,
                    struct shadow_watch *w)
{
    w->done = false;
    if (!send_one(s, req, tag, w)) {
        watch_fail(w, FAIL_BACKEND_UNAVAILABLE);
        return false;
    }
    return true;
}

void
shadow_unwatch(struct shadow *s, const struct shadow_watch *w)
{
    for (size_t i = 0; i < s->n; i++) {
        struct pend *p = &s->ring[(s->head + i) % s->cap];

        if (p->watch == w) {
            p->watch = NULL;
        }
    }
}

static bool
send_one(struct shadow *s, const struct request *req, uint32_t tag,
         struct shadow_watch *w)
{
    uint64_t now_ns = util_now_ns(), now_ms = now_ns / NS_PER_MS;
    size_t unsent = buf_len(&s->wbuf);
    struct pend *p;

    if (!ring_room(s) ||
        (unsent > 0 && unsent + least_size(req) > SHADOW_WBUF_MAX)) {
        return drop(tag);
    }
    if (s->fd < 0 && start_connect(s, now_ms) != ST_OK) {
        return drop(tag);
    }
    if (s->connecting && finish_connect(s, now_ms) == ST_ERROR) {
        return drop(tag);
    }
    p = &s->ring[(s->head + s->n) % s->cap];
    if (encode(s, req, p) != ST_OK) {
        return drop(tag);
    }
    p->sent_ns = now_ns;
    p->route = tag;
    p->watch = w;
    s->n++;
    metrics_server_request(s->idx);
    if (!s->connecting) {
        (void)flush(s);
    }
    return true;
}

/* ---- reading ---- */

/* Give w (NULL: nobody waits) a copy of res, its bytes in w->buf. */
static void
watch_take(struct shadow_watch *w, const struct response *res)
{
    size_t n = res->nval + res->nraw + res->nmsg;
    char *at;

    if (w == NULL) {
        return;
    }
    if (n > sizeof(w->buf)) {
        watch_fail(w, FAIL_BACKEND_ERROR);
        return;
    }
    w->res = *res;
    at = w->buf;
    if (res->nval > 0) {
        w->res.val = memcpy(at, res->val, res->nval);
        at += res->nval;
    }
    if (res->nraw > 0) {
        w->res.raw = memcpy(at, res->raw, res->nraw);
        at += res->nraw;
    }
    if (res->nmsg > 0) {
        w->res.msg = memcpy(at, res->msg, res->nmsg);
    }
    w->done = true;
}

/* Count the reply at rbuf.pos for the head pend. ST_OK (counted and
 * popped), ST_AGAIN (*need: total bytes needed if known, else 0), or
 * ST_PROTO. */
static enum status
take_reply(struct shadow *s, uint64_t now_ns, size_t *need)
{
    struct pend *p = &s->ring[s->head];
    struct request req = {.cmd = (enum req_cmd)p->cmd, .rflags = p->rflags};
    struct response res = {0};
    size_t used = 0;
    enum status st;
    bool err;

    st = proto_meta_parse_reply(&req, s->rbuf.pos, buf_len(&s->rbuf), &res,
                                &used, need);
    if (st != ST_OK) {
        return st;
    }
    if (p->otag != 0 && res.tag != p->otag) {
        return ST_PROTO; /* the reply to another request */
    }
    err = res.kind == RES_ERROR || res.kind == RES_CLIENT_ERROR ||
          res.kind == RES_SERVER_ERROR;
    metrics_route_shadow(p->route, err ? MSHADOW_ERROR : MSHADOW_OK);
    watch_take(p->watch, &res);
    metrics_observe_backend(s->idx, now_ns - p->sent_ns);
    buf_consume(&s->rbuf, used);
    s->head = (s->head + 1) % s->cap;
    s->n--;
    gate_leave(s); /* the server took this connection */
    return ST_OK;
}

/* Count every complete reply in rbuf. false when the socket failed
 * (counted, closed). *need as take_reply's. */
static bool
take_replies(struct shadow *s, size_t *need)
{
    uint64_t now_ns = util_now_ns();

    *need = 0;
    while (s->n > 0 && buf_len(&s->rbuf) > 0) {
        enum status st = take_reply(s, now_ns, need);

        if (st == ST_AGAIN) {
            return true;
        }
        if (st != ST_OK) {
            log_warnx("%s: %s sent a malformed reply, resetting", __func__,
                      s->addr->name);
            metrics_server_error(s->idx);
            fail_all(s, MSHADOW_ERROR);
            return false;
        }
    }
    if (buf_len(&s->rbuf) > 0) {
        log_warnx("%s: %s sent bytes nobody asked for, resetting", __func__,
                  s->addr->name);
        metrics_server_error(s->idx);
        fail_all(s, MSHADOW_ERROR);
        return false;
    }
    return true;
}

/* Read what is there and count the replies. false when the socket
 * failed or closed (counted, closed). */
static bool
read_replies(struct shadow *s)
{
    size_t need = 0;

    for (int i = 0; i < SHADOW_READS_MAX; i++) {
        size_t want = need > buf_len(&s->rbuf) ? need - buf_len(&s->rbuf) : 0;
        ssize_t n;

        if (buf_reserve(&s->rbuf, MAX(want, SHADOW_READ_MIN)) != ST_OK) {
            fail_all(s, MSHADOW_ERROR); /* riven's memory, not the server */
            return false;
        }
        n = recv(s->fd, s->rbuf.last, buf_space(&s->rbuf), MSG_DONTWAIT);
        if (n > 0) {
            s->rbuf.last += n;
            if (counted(s)) {
                metrics_add(M_BACKEND_RX_BYTES, (uint64_t)n);
            }
            if (!take_replies(s, &need)) {
                return false;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        }
        log_debug("%s: %s: %s", __func__, s->addr->name,
                  n == 0 ? "closed the connection" : strerror(errno));
        if (s->n > 0) {
            metrics_server_error(s->idx);
        }
        fail_all(s, MSHADOW_ERROR);
        return false;
    }
    if (buf_len(&s->rbuf) == 0) {
        buf_shrink(&s->rbuf);
    }
    return true;
}

void
shadow_poll(struct shadow *s, uint64_t now_ms)
{
    if (s->n == 0 && buf_len(&s->wbuf) == 0 && !s->connecting) {
        return; /* nothing owed, nothing to write: no system call */
    }
    if (s->fd < 0 || finish_connect(s, now_ms) != ST_OK) {
        return; /* closed, pending, or failed just now */
    }
    if (!flush(s) || !read_replies(s)) {
        return;
    }
    if (s->n > 0 && now_ms >= shadow_deadline(s)) {
        log_debug("%s: %s: %zu requests timed out", __func__, s->addr->name,
                  s->n);
        metrics_server_error(s->idx);
        fail_all(s, MSHADOW_TIMEOUT);
    }
    if (s->n == 0 && s->cap > SHADOW_QUEUE_INIT) {
        free(s->ring); /* idle after a burst: give the ring back */
        s->ring = NULL;
        s->cap = s->head = 0;
    }
}
