/*
 * handler: one backend socket. Blocking I/O with SO_RCVTIMEO/SO_SNDTIMEO
 * as the request timeout (no poll before each read); a non-blocking
 * connect bounded by the connect timeout, and for a pool with tls: a TLS
 * handshake (conn) bounded by what is left of it.
 *
 *   queue: request -> out: the command line copied, the value by
 *          reference (proto_meta_queue_request); a pend slot per reply
 *   flush: out -> iovecs (outq_iov) -> writev -> socket; out emptied
 *   recv:  socket -> rbuf -> proto_meta_parse_reply -> pend[i].res
 *
 * Invariant: between batches rbuf and out are empty and no reply is
 * outstanding; any failure closes the socket, so a late reply can never
 * be taken for the answer to a later request. out is empty whenever
 * handler_flush has returned, but for a TLS server's later rounds
 * (send_round), whose values it copied: no reference it held outlives
 * the flush.
 *
 * Batched (handler_set_batch): a shared connection's I/O thread appends
 * the replies to rbuf between handler_flush and the next settle(). This
 * thread touches rbuf only after settle(), and close, done and destroy
 * settle first, so the I/O thread never writes into a handler that
 * closed, moved on or was freed.
 *
 * New connections to one server pass health's connect gate
 * (health_gate_enter): a place is taken before connect(2) and given back
 * at the first answered batch or when the socket closes. A thread waits
 * for a place within its connect timeout.
 */
#include "handler.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "batch.h"
#include "buf.h"
#include "conn.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "proto_meta.h"

#define HANDLER_BUF_INIT 2048
#define HANDLER_READ_MIN HANDLER_BUF_INIT /* replies of a typical batch fit */
/* The outgoing queue: up to HANDLER_OUT_ENTS ranges kept between batches
 * (outq's first allocation, enough for a batch with three referenced
 * values), and HANDLER_OUT_INIT bytes of copied lines (a get's request; a
 * batch of sets grows it once), let go when idle as buf_shrink does. */
#define HANDLER_OUT_ENTS  8
#define HANDLER_OUT_INIT  256
#define HANDLER_IOV       64 /* iovecs per writev: 1 KiB of stack */
#define HANDLER_PEND_INIT 1  /* a request's replies, grown by doubling */
/* Stack below read_more's frame that parsing, encoding and writing the
 * replies reach. */
#define HANDLER_PREFETCH_STACK 2048

struct pend {
    struct response *res; /* ref: batch response; NULL = drop reply */
    enum req_cmd cmd;     /* what the reply answers */
    uint32_t tag;         /* O<tag> sent (reads), 0 if none */
    uint32_t rflags;      /* its REQ_F_* */
    const char *args;     /* ref: stats arguments, in the client's rbuf */
    size_t nargs;
    size_t val_off; /* res->val as an offset into rbuf */
    size_t msg_off; /* res->msg as an offset into rbuf */
    size_t raw_off; /* res->raw as an offset into rbuf */
    size_t start;   /* rbuf offset where the reply begins */
    size_t end;     /* out.total once its request was queued */
    bool decoded;   /* res was decoded from rbuf */
};

struct handler {
    const struct cfg_addr *addr; /* ref: owned by the config snapshot */
    size_t idx;                  /* server number, for metrics */
    uint64_t sent_ns;            /* when the batch was flushed */
    uint32_t connect_ms;
    uint32_t request_ms;
    struct conn_ctx *tls; /* ref: the pool's, in the snapshot; NULL plain */
    struct conn c;        /* fd -1 when closed */
    struct outq out;      /* requests not yet sent: lines, value refs */
    struct buf rbuf;      /* replies of the current batch */
    size_t parsed;        /* rbuf offset of the next reply */
    struct pend *pend;
    size_t npend; /* queued replies */
    size_t nrecv; /* replies answered (decoded or failed) */
    size_t cap;
    int outcome;             /* see handler_take_outcome */
    bool gated;              /* holds a place in health's connect gate of idx */
    struct batch_waiter *bw; /* batched pool: its shared connection
                                carries the bytes; NULL: own socket */
    size_t nsent;            /* pend slots written (batched: submitted) */
    size_t out_sent;         /* bytes of out written (a TLS round's end) */
    enum res_fail bfail;     /* batched: the failure the last wait saw */
    bool held;               /* batched: out is held for the I/O thread
                                (batch_submit's held) until settle */
    bool shared_fail;        /* batched: the failure is the shared
                                connection's, told to health by it */
};

/* Take a place in the connect gate of h's server by deadline
 * (CLOCK_MONOTONIC ms). false on timeout. */
static bool
gate_enter(struct handler *h, uint64_t deadline)
{
    h->gated = health_gate_enter(h->idx, deadline);
    return h->gated;
}

static void
gate_leave(struct handler *h)
{
    if (h->gated) {
        h->gated = false;
        health_gate_leave(h->idx);
    }
}

/* Batched: wait until the I/O thread is done with every batch submitted,
 * so that it never writes into rbuf again before the next submit; keep
 * the failure it saw for read_more. Only then may this thread touch
 * rbuf. */
static void
settle(struct handler *h)
{
    enum res_fail why = FAIL_NONE;

    if (h->bw != NULL && batch_wait(h->bw, &why) == ST_ERROR &&
        h->bfail == FAIL_NONE) {
        h->bfail = why;
    }
    if (h->held) { /* the I/O thread has copied it: the values may go */
        h->held = false;
        outq_reset(&h->out);
        h->out_sent = 0;
    }
}

struct handler *
handler_create(const struct cfg_addr *addr, struct conn_ctx *tls, size_t idx,
               uint32_t connect_ms, uint32_t request_ms)
{
    struct handler *h = calloc(1, sizeof(*h));

    if (h == NULL) {
        return NULL;
    }
    h->addr = addr;
    h->idx = idx;
    h->connect_ms = connect_ms;
    h->request_ms = request_ms;
    h->tls = tls;
    h->c.fd = -1;
    outq_init(&h->out, HANDLER_OUT_INIT);
    h->out.copy = tls != NULL; /* see send_round */
    buf_init(&h->rbuf, HANDLER_BUF_INIT);
    return h;
}

void
handler_destroy(struct handler *h)
{
    if (h == NULL) {
        return;
    }
    handler_close(h);
    if (h->bw != NULL) {
        batch_unlend(h->bw, &h->rbuf);
    }
    batch_waiter_destroy(h->bw);
    outq_free(&h->out);
    buf_free(&h->rbuf);
    free(h->pend);
    free(h);
}

void
handler_close(struct handler *h)
{
    if (h->bw != NULL) {
        settle(h);
        h->bfail = FAIL_NONE;
        if (h->rbuf.start != NULL) {
            h->rbuf.last = h->rbuf.start + h->parsed; /* came unasked */
        }
    }
    if (h->c.fd >= 0) {
        conn_close(&h->c);
        metrics_server_socket_close(h->idx);
    }
    gate_leave(h);
}

bool
handler_connected(const struct handler *h)
{
    return h->c.fd >= 0;
}

bool
handler_pending(const struct handler *h)
{
    return h->nrecv < h->npend;
}

bool
handler_armable(const struct handler *h)
{
    return h->bw != NULL && h->nsent == h->npend;
}

bool
handler_arm(struct handler *h, struct batch_group *g)
{
    return batch_waiter_arm(h->bw, g);
}

enum status
handler_queue(struct handler *h, const struct request *req,
              struct response *res)
{
    struct pend *p;
    struct request tagged;
    enum status st;

    if (h->npend == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : HANDLER_PEND_INIT;

        p = realloc(h->pend, cap * sizeof(*p));
        if (p == NULL) {
            return ST_NOMEM;
        }
        h->pend = p;
        h->cap = cap;
    }
    if (req_is_get(req->cmd) || req->cmd == REQ_TOUCH) {
        /* tag reads: a hit or miss alone cannot show that a backend
         * answered out of order and handed one key another's value */
        tagged = *req;
        tagged.tag = (uint32_t)(h->npend % 1000000) + 1;
        req = &tagged;
    }
    if ((st = proto_meta_queue_request(req, &h->out)) != ST_OK) {
        return st; /* ST_NOMEM, or ST_ERROR: not a request for a backend */
    }
    metrics_server_request(h->idx);
    p = &h->pend[h->npend++];
    p->res = res;
    p->cmd = req->cmd;
    p->tag = req->tag;
    p->rflags = req->rflags;
    p->args = req->args;
    p->nargs = req->nargs;
    p->val_off = p->msg_off = p->raw_off = p->start = 0;
    p->end = h->out.total;
    p->decoded = false;
    return ST_OK;
}

/* Answer every reply still outstanding with riven's SERVER_ERROR for
 * why, and close. Riven's own want of memory is not the server's fault:
 * no step toward ejection; nor is a shared connection's failure, which
 * its I/O thread counted once for all the clients it failed. */
static void
fail_pending(struct handler *h, enum res_fail why)
{
    settle(h); /* the I/O thread must be done with rbuf first */
    h->outcome = why == FAIL_OUT_OF_MEMORY || h->shared_fail ? 0 : -1;
    h->shared_fail = false;
    if (why != FAIL_OUT_OF_MEMORY) {
        metrics_server_error(h->idx);
    }
    if (why == FAIL_BACKEND_TIMEOUT || why == FAIL_BACKEND_UNAVAILABLE) {
        metrics_server_up(h->idx, false);
    }
    for (size_t i = h->nrecv; i < h->npend; i++) {
        h->pend[i].start = h->parsed;
        if (h->pend[i].res != NULL) {
            res_set_fail(h->pend[i].res, why);
        }
    }
    h->nrecv = h->nsent = h->npend;
    outq_reset(&h->out);
    h->out_sent = 0;
    if (h->rbuf.start != NULL) {
        h->rbuf.last = h->rbuf.start + h->parsed; /* drop unparsed bytes */
    }
    handler_close(h);
}

/* Wait for a non-blocking connect until deadline (CLOCK_MONOTONIC ms).
 * ST_OK, ST_TIMEOUT or ST_ERROR. */
static enum status
connect_wait(int fd, uint64_t deadline)
{
    struct pollfd pfd = {.fd = fd, .events = POLLOUT};
    int err = 0, r;
    socklen_t len = sizeof(err);

    for (;;) {
        uint64_t now = util_now_ms();

        if (now >= deadline) {
            return ST_TIMEOUT;
        }
        r = poll(&pfd, 1, (int)(deadline - now));
        if (r > 0) {
            break;
        }
        if (r == 0) {
            return ST_TIMEOUT;
        }
        if (errno != EINTR) {
            return ST_ERROR;
        }
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        errno = err;
        return ST_ERROR;
    }
    return ST_OK;
}

static enum status
handler_connect(struct handler *h)
{
    const struct cfg_addr *a = h->addr;
    int fd, one = 1;
    enum status st = ST_OK;
    uint64_t deadline = util_now_ms() + h->connect_ms; /* gate included */

    if (!gate_enter(h, deadline)) {
        log_debug("%s: %s: timed out waiting for the connect gate", __func__,
                  a->name);
        return ST_AGAIN; /* riven's own queue, not the server */
    }
    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        st = errno == EMFILE || errno == ENFILE ? ST_NOMEM : ST_ERROR;
        log_warn("%s: socket %s", __func__, a->name);
        gate_leave(h);
        return st;
    }
    if (connect(fd, (const struct sockaddr *)&a->ss, a->sslen) != 0) {
        st = errno == EINPROGRESS || errno == EAGAIN
                 ? connect_wait(fd, deadline)
                 : ST_ERROR;
    }
    if (st != ST_OK) {
        log_debug("%s: %s: %s", __func__, a->name,
                  st == ST_TIMEOUT ? "timed out" : strerror(errno));
        close(fd);
        gate_leave(h);
        return st;
    }
    (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (a->ss.ss_family != AF_UNIX) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    conn_plain(&h->c, fd);
    conn_set_timeouts(&h->c, h->request_ms, h->request_ms);
    if (h->tls != NULL) {
        uint64_t now = util_now_ms();
        char err[256] = "TLS handshake: the connect timeout has passed";

        st = now < deadline ? conn_connect_tls(&h->c, h->tls, a,
                                               (uint32_t)(deadline - now), err,
                                               sizeof(err))
                            : ST_TIMEOUT;
        if (st != ST_OK) {
            conn_connect_tls_failed(a, err);
            conn_close(&h->c);
            gate_leave(h);
            return st;
        }
    }
    metrics_server_socket_open(h->idx);
    metrics_server_up(h->idx, true);
    return ST_OK;
}

/* writev the queue's bytes [done, to). ST_OK, or the failure in *why:
 * the send timeout (SO_SNDTIMEO, errno EAGAIN) or any other error. */
static enum status
write_out(struct handler *h, size_t done, size_t to, enum res_fail *why)
{
    struct iovec iov[HANDLER_IOV];

    while (done < to) {
        int cnt = outq_iov(&h->out, done, iov, HANDLER_IOV), err;
        size_t left = to - done;
        ssize_t n;

        for (int i = 0; i < cnt; i++) { /* stop the iovecs at to */
            if (iov[i].iov_len >= left) {
                iov[i].iov_len = left;
                cnt = i + 1;
                break;
            }
            left -= iov[i].iov_len;
        }
        n = conn_writev(&h->c, iov, cnt);
        err = errno;

        if (n >= 0) { /* a part: the rest from where it stopped */
            done += (size_t)n;
            if (h->idx < METRICS_SERVERS_MAX) { /* not a /healthz probe */
                metrics_add(M_BACKEND_TX_BYTES, (uint64_t)n);
            }
            continue;
        }
        if (err == EINTR) {
            continue;
        }
        log_debug("%s: writev %s: %s", __func__, h->addr->name, strerror(err));
        *why = err == EAGAIN ? FAIL_BACKEND_TIMEOUT : FAIL_BACKEND_UNAVAILABLE;
        return ST_ERROR;
    }
    return ST_OK;
}

/* batch_frame_fn: the frame of pend slot nsent + i. */
static void
pend_frame(void *ctx, size_t i, struct batch_frame *f)
{
    const struct handler *h = ctx;
    const struct pend *p = &h->pend[h->nsent + i];

    batch_frame_set(f, p->cmd, p->rflags, p->args, p->nargs);
}

/* Write the next round of queued requests: all of them, or for a TLS
 * backend at most CONN_TLS_ROUND bytes (one larger request alone), whose
 * replies come before the next round is written (conn.h says why). When
 * every request is written, the queue is emptied: the values it
 * referenced may go. A TLS handler's queue copies its values (out.copy):
 * its later rounds go out from handler_recv, after the round's flushes,
 * when a value in another handler's read buffer may have moved (see the
 * lifetime rule in handler.h). Batched, with held (handler_flush), the
 * queue is kept instead until settle: the I/O thread copies it when it
 * writes, and the client's read buffer holds the values till then.
 * ST_OK, or the failure in *why. */
static enum status
send_round(struct handler *h, bool held, enum res_fail *why)
{
    size_t k = h->nsent;

    while (k < h->npend && (k == h->nsent || h->tls == NULL ||
                            h->pend[k].end - h->out_sent <= CONN_TLS_ROUND)) {
        k++;
    }
    held = held && h->bw != NULL && k == h->npend && !h->out.copy;
    if (h->bw != NULL) { /* batched: the shared connection sends it */
        if (batch_submit(h->bw, &h->out, h->out_sent,
                         h->pend[k - 1].end - h->out_sent, k - h->nsent,
                         pend_frame, h, &h->rbuf, held) != ST_OK) {
            *why = FAIL_OUT_OF_MEMORY;
            return ST_NOMEM;
        }
    } else if (write_out(h, h->out_sent, h->pend[k - 1].end, why) != ST_OK) {
        return ST_ERROR;
    }
    h->nsent = k;
    h->out_sent = h->pend[k - 1].end;
    if (held) {
        h->held = true; /* settle empties it */
    } else if (k == h->npend) {
        outq_reset(&h->out); /* the values referenced may go now */
        h->out_sent = 0;
    }
    return ST_OK;
}

void
handler_flush(struct handler *h, bool held)
{
    enum res_fail why = FAIL_NONE;
    enum status st;

    if (h->nsent == h->npend) {
        return;
    }
    if (h->tls != NULL && h->nrecv < h->nsent) {
        return; /* a TLS round in flight: handler_recv sends the next */
    }
    h->sent_ns = util_now_ns();
    if (h->bw == NULL && h->c.fd < 0 && (st = handler_connect(h)) != ST_OK) {
        fail_pending(h, st == ST_TIMEOUT || st == ST_AGAIN
                            ? FAIL_BACKEND_TIMEOUT
                            : FAIL_BACKEND_UNAVAILABLE);
        if (st == ST_NOMEM || st == ST_AGAIN) {
            h->outcome = 0; /* our fd limit or connect gate, not the
                               server's fault: no step toward ejection */
        }
        return;
    }
    if (send_round(h, held, &why) != ST_OK) {
        fail_pending(h, why); /* empties the queue */
    }
}

/* A reply came after the thread slept, likely while many others ran: ask
 * the cache at once for the stack below this frame, where the reply is
 * parsed, encoded and written, and for the handler's own lines. Changes
 * nothing. */
static __attribute__((noinline)) void
prefetch_reply(const struct handler *h)
{
    const char *sp = __builtin_frame_address(0);

    util_prefetch(sp - HANDLER_PREFETCH_STACK, HANDLER_PREFETCH_STACK);
    handler_prefetch(h);
}

/* Read more reply bytes. ST_OK, or the failure in *why. */
static enum status
read_more(struct handler *h, size_t need, uint64_t deadline, enum res_fail *why)
{
    size_t want = need > buf_len(&h->rbuf) ? need - buf_len(&h->rbuf) : 0;
    ssize_t n;

    if (h->bw != NULL) { /* batched: handler_recv waited for it all; short
                            and no failure: framed whole, decoded short */
        *why = h->bfail != FAIL_NONE ? h->bfail : FAIL_BACKEND_ERROR;
        h->shared_fail = h->bfail != FAIL_NONE;
        h->bfail = FAIL_NONE;
        return ST_ERROR;
    }
    if (buf_reserve(&h->rbuf, MAX(want, HANDLER_READ_MIN)) != ST_OK) {
        *why = FAIL_OUT_OF_MEMORY;
        return ST_NOMEM;
    }
    for (;;) {
        n = conn_recv(&h->c, h->rbuf.last, buf_space(&h->rbuf));
        if (n > 0) {
            prefetch_reply(h);
            h->rbuf.last += n;
            if (h->idx < METRICS_SERVERS_MAX) {
                metrics_add(M_BACKEND_RX_BYTES, (uint64_t)n);
            }
            return ST_OK;
        }
        if (n < 0 && errno == EINTR && util_now_ms() < deadline) {
            continue;
        }
        break;
    }
    if (n == 0) {
        *why = FAIL_BACKEND_UNAVAILABLE;
        log_debug("%s: %s closed the connection", __func__, h->addr->name);
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
        *why = FAIL_BACKEND_TIMEOUT;
        log_debug("%s: %s timed out", __func__, h->addr->name);
    } else {
        *why = FAIL_BACKEND_UNAVAILABLE;
        log_debug("%s: recv %s: %s", __func__, h->addr->name, strerror(errno));
    }
    return ST_ERROR;
}

/* Point decoded responses at their bytes, now that rbuf stops moving. */
static void
fix_pointers(struct handler *h)
{
    for (size_t i = 0; i < h->nrecv; i++) {
        struct response *r = h->pend[i].res;

        if (r == NULL || !h->pend[i].decoded) {
            continue;
        }
        if (r->val != NULL) {
            r->val = h->rbuf.start + h->pend[i].val_off;
        }
        if (r->msg != NULL) {
            r->msg = h->rbuf.start + h->pend[i].msg_off;
        }
        if (r->raw != NULL) {
            r->raw = h->rbuf.start + h->pend[i].raw_off;
        }
    }
}

/* Decode one reply at h->parsed into pend[nrecv]. */
static enum status
decode_one(struct handler *h, size_t *need)
{
    struct pend *p = &h->pend[h->nrecv];
    struct request req = {
        .cmd = p->cmd, .rflags = p->rflags, .args = p->args, .nargs = p->nargs};
    struct response tmp = {0};
    struct response *r = p->res ? p->res : &tmp;
    const char *base;
    size_t used = 0;
    enum status st;

    if (h->rbuf.start == NULL || buf_len(&h->rbuf) == h->parsed) {
        *need = 0;
        return ST_AGAIN; /* nothing to decode yet */
    }
    base = h->rbuf.start + h->parsed;
    st = proto_meta_parse_reply(&req, base, buf_len(&h->rbuf) - h->parsed, r,
                                &used, need);
    if (st != ST_OK) {
        return st;
    }
    if (p->tag != 0 && r->tag != p->tag) {
        return ST_PROTO; /* the reply to another request */
    }
    p->start = h->parsed;
    p->val_off = r->val ? (size_t)(r->val - h->rbuf.start) : 0;
    p->msg_off = r->msg ? (size_t)(r->msg - h->rbuf.start) : 0;
    p->raw_off = r->raw ? (size_t)(r->raw - h->rbuf.start) : 0;
    h->parsed += used;
    p->decoded = true;
    h->nrecv++;
    return ST_OK;
}

void
handler_recv(struct handler *h, size_t limit, bool first)
{
    uint64_t deadline = util_now_ms() + h->request_ms;
    enum res_fail why = FAIL_NONE;
    size_t wait = h->nrecv;
    bool waited = false; /* a read came back: the clock has moved */

    while (wait < h->npend && h->pend[wait].res == NULL) {
        wait++; /* the reply somebody waits for, after replies to drop */
    }
    settle(h); /* batched: every reply is in rbuf now, or bfail says why */
    while (h->nrecv < h->npend) {
        bool must = first && h->nrecv <= wait; /* the client waits on it */
        size_t need = 0;
        enum status st;

        if (!must && h->parsed >= limit) {
            break; /* paused: the client takes what is held first */
        }
        if (h->nrecv == h->nsent && (h->bw != NULL || h->c.fd >= 0)) {
            /* a TLS backend's next round */
            if (send_round(h, false, &why) != ST_OK) {
                break;
            }
            settle(h); /* batched: its replies are in rbuf now */
            deadline = util_now_ms() + h->request_ms;
        }
        st = decode_one(h, &need);
        if (st == ST_OK) {
            continue;
        }
        if (st == ST_PROTO) {
            log_warnx("%s: %s sent a malformed reply, resetting", __func__,
                      h->addr->name);
            why = FAIL_BACKEND_ERROR;
            break;
        }
        if (need > 0) {
            need += h->parsed;
        }
        if (!must && need > limit) {
            break; /* the next reply would not fit: paused before it */
        }
        if (h->bw == NULL && waited && util_now_ms() >= deadline) {
            why = FAIL_BACKEND_TIMEOUT; /* batched: the I/O thread's */
            break;
        }
        if (read_more(h, need, deadline, &why) != ST_OK) {
            break;
        }
        waited = true;
    }
    if (why != FAIL_NONE) {
        fail_pending(h, why);
    } else if (h->nrecv == h->npend) {
        metrics_observe_backend(h->idx, util_now_ns() - h->sent_ns);
        if (h->outcome == 0) {
            h->outcome = 1;
        }
        gate_leave(h); /* the server accepted this connection */
    }
    fix_pointers(h);
    if (why == FAIL_NONE && h->nrecv == h->npend &&
        h->parsed != buf_len(&h->rbuf)) {
        log_warnx("%s: %s sent bytes nobody asked for, resetting", __func__,
                  h->addr->name);
        handler_close(h);
    }
}

/* Is r one of the responses [lo, hi)? (NULL is none of them.) */
static bool
res_within(const struct response *r, const struct response *lo,
           const struct response *hi)
{
    return r != NULL && (uintptr_t)r >= (uintptr_t)lo &&
           (uintptr_t)r < (uintptr_t)hi;
}

void
handler_release(struct handler *h, const struct response *lo,
                const struct response *hi)
{
    size_t n = 0, cut, rest;

    while (n < h->nrecv && !res_within(h->pend[n].res, lo, hi)) {
        n++;
    }
    if (n == 0) {
        return;
    }
    cut = n < h->nrecv ? h->pend[n].start : h->parsed;
    rest = buf_len(&h->rbuf) - cut;
    if (h->rbuf.start != NULL) {
        memmove(h->rbuf.start, h->rbuf.start + cut, rest);
        h->rbuf.last = h->rbuf.start + rest;
    }
    h->parsed -= cut;
    memmove(h->pend, h->pend + n, (h->npend - n) * sizeof(*h->pend));
    h->npend -= n;
    h->nrecv -= n;
    h->nsent -= MIN(n, h->nsent);
    for (size_t i = 0; i < h->nrecv; i++) {
        struct pend *p = &h->pend[i];

        p->start -= cut;
        if (p->decoded && p->res != NULL) {
            p->val_off -= p->res->val ? cut : 0;
            p->msg_off -= p->res->msg ? cut : 0;
            p->raw_off -= p->res->raw ? cut : 0;
        }
    }
    fix_pointers(h);
}

const struct response *
handler_waiting(const struct handler *h)
{
    for (size_t i = h->nrecv; i < h->npend; i++) {
        if (h->pend[i].res != NULL) {
            return h->pend[i].res;
        }
    }
    return NULL;
}

int
handler_take_outcome(struct handler *h)
{
    int o = h->outcome;

    h->outcome = 0;
    return o;
}

void
handler_rebind(struct handler *h, const struct cfg_addr *addr,
               struct conn_ctx *tls, size_t idx, uint32_t connect_ms,
               uint32_t request_ms)
{
    if (h->c.fd >= 0 && (h->tls == NULL) != (tls == NULL)) {
        handler_close(h); /* the pool's tls: was turned on or off */
    }
    h->tls = tls; /* an open TLS socket keeps its session */
    h->out.copy = tls != NULL;
    if (h->c.fd >= 0 && idx != h->idx) {
        metrics_server_socket_close(h->idx);
        metrics_server_socket_open(idx);
    }
    if (idx != h->idx) {
        gate_leave(h); /* the place was taken under the old number */
    }
    h->addr = addr;
    h->idx = idx;
    h->connect_ms = connect_ms;
    if (h->c.fd >= 0 && request_ms != h->request_ms) {
        conn_set_timeouts(&h->c, request_ms, request_ms);
    }
    h->request_ms = request_ms;
}

void
handler_done(struct handler *h)
{
    settle(h);
    if (h->bw != NULL) {
        batch_unlend(h->bw, &h->rbuf); /* before rbuf is reset */
    }
    h->bfail = FAIL_NONE;
    if (h->nrecv < h->npend) {
        handler_close(h); /* abandoned mid-batch: its replies are unread */
    }
    h->npend = h->nrecv = h->nsent = 0;
    h->parsed = 0;
    h->rbuf.pos = h->rbuf.last = h->rbuf.start;
    buf_shrink(&h->rbuf);
    outq_shrink(&h->out); /* and forgets what was never flushed */
    h->out_sent = 0;
    if (h->out.cap > HANDLER_OUT_ENTS) {
        /* a burst of values: give back the ranges too */
        outq_free(&h->out);
        outq_init(&h->out, HANDLER_OUT_INIT);
        h->out.copy = h->tls != NULL;
    }
}

void
handler_prefetch(const struct handler *h)
{
    util_prefetch(h, sizeof(*h));
    util_prefetch(h->out.ents, sizeof(*h->out.ents));
    util_prefetch(h->out.own.start, 1);
    util_prefetch(h->pend, sizeof(*h->pend));
}

void
handler_trim(struct handler *h)
{
    outq_free(&h->out);
    free(h->pend);
    h->pend = NULL;
    h->cap = 0;
}

enum status
handler_set_batch(struct handler *h, struct batch *b, size_t server)
{
    if (b == NULL) {
        batch_waiter_destroy(h->bw);
        h->bw = NULL;
        return ST_OK;
    }
    if (h->bw != NULL) {
        batch_waiter_bind(h->bw, b, server);
        return ST_OK;
    }
    if ((h->bw = batch_waiter_create(b, server)) == NULL) {
        return ST_NOMEM;
    }
    handler_close(h); /* its own socket, if it had one */
    return ST_OK;
}
