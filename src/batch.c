/*
 * batch: the shared connections of batched pools. Each connection has a
 * queue (under its mutex) that client threads append to, and an I/O
 * thread that owns the socket:
 *
 *   queue (mu): qjobs[], qframes[]   ◀── batch_submit
 *        │ take: at most batch_max requests, when out is empty
 *        ▼
 *   out ──send──▶ memcached ──recv──▶ in ──frame──▶ job's waiter dst
 *   jobs[jh..nj), frames[fh..nf): written, in reply order
 *
 * Invariants: jobs[jh] is the batch whose replies come next; in.pos is
 * where they begin and scan how far they are framed. Any failure fails
 * every job written (out, in, jobs emptied) and closes the socket, so a
 * reply never reaches a later job. Jobs still queued were never written
 * and go out on the next socket.
 *
 * A waiter is a client handler's mutex, condvar and count of batches
 * outstanding; the I/O thread finishes each job (its bytes or a failure)
 * within connect_ms + request_ms, so a client's wait is bounded without
 * a timeout of its own, and never outlives the bytes it writes to.
 *
 * Copies a request's bytes make: one, into out, when take moves a held
 * job (the client's queue and its values stay put till the job is
 * finished); two for one that is not (a copy when it is queued). A
 * reply's: none when its group's continuation runs at once on this
 * thread (finish lends the bytes in `in`), else one, into dst.
 */
#include "batch.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "conn.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "proto_meta.h"

#define BATCH_STACK (256 * 1024)
#define BATCH_READ  16384 /* bytes read at least per recv */
#define BATCH_BUF   4096

struct job {
    struct batch_waiter *w; /* ref: waits until the job is finished */
    struct buf *dst;        /* ref: the waiter's read buffer */
    char *bytes;            /* own: a copy of the request bytes while
                               queued, or NULL: they are in q */
    const struct outq *q;   /* ref: held by the waiter until finished */
    size_t off;             /* where in q they begin */
    size_t nbytes;          /* request bytes */
    size_t nframes;
    uint64_t t0; /* ms: written, or the socket opened */
};

struct bconn {
    struct batch *b; /* ref: the owner */
    size_t server;
    pthread_mutex_t mu;
    int efd;           /* eventfd: wakes the I/O thread */
    bool started;      /* mu: the thread runs */
    bool stop;         /* mu: batch_destroy asks it to end */
    bool idle;         /* mu: the thread sleeps with nothing written: a
                          submitter must wake it */
    struct job *qjobs; /* mu: queued, each with its bytes: a copy, or
                          the client's queue, held till it is finished */
    size_t nqj, capqj;
    struct batch_frame *qframes; /* mu */
    size_t nqf, capqf;
    pthread_t thr;
    /* the I/O thread's own */
    struct conn c;
    struct buf out;
    struct buf in;
    size_t scan; /* in: bytes of jobs[jh] framed */
    size_t nfr;  /* frames of jobs[jh] framed */
    struct job *jobs;
    size_t jh, nj, capj;
    struct batch_frame *frames;
    size_t fh, nf, capf;
    struct batch_group *stalled; /* continuations waiting on a client */
    struct pollfd *pfd;          /* poll's array: efd, socket, stalled */
    size_t cappfd;
};

struct batch {
    const struct cfg_pool *pool; /* ref: the snapshot's config */
    struct health *health;       /* ref: the pool's, told of failures */
    struct conn_ctx *tls;        /* ref: the pool's TLS, or NULL: plain */
    size_t mbase;
    uint32_t connect_ms;
    uint32_t request_ms;
    uint32_t per_server;   /* connections per server */
    struct bconn *conns;   /* nservers x per_server */
    _Atomic uint32_t next; /* round robin over a server's connections */
};

struct batch_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct bconn *c;           /* ref: in the batch it is bound to */
    size_t outstanding;        /* mu: batches submitted, not finished */
    size_t since;              /* mu: batches submitted since the last wait */
    enum res_fail why;         /* mu: the first failure since the last wait */
    struct batch_group *group; /* mu: armed, run when outstanding is 0 */
    bool lent;                 /* mu: dst views the I/O thread's bytes */
};

static _Atomic size_t sockets_open;

void
batch_frame_set(struct batch_frame *f, enum req_cmd cmd, uint32_t rflags,
                const char *args, size_t nargs)
{
    f->cmd = cmd;
    f->rflags = rflags;
    while (args != NULL && nargs > 0 && *args == ' ') {
        args++;
        nargs--;
    }
    f->nargs = args != NULL ? (uint8_t)MIN(nargs, sizeof(f->args)) : 0;
    if (f->nargs > 0) {
        memcpy(f->args, args, f->nargs);
    }
}

/* Grow *arr (of size elements) to hold n + 1. */
static bool
grow(void **arr, size_t *cap, size_t n, size_t size)
{
    size_t c = *cap ? *cap : 64;
    void *p;

    if (n < *cap) {
        return true;
    }
    while (c <= n) {
        c *= 2;
    }
    p = realloc(*arr, c * size);
    if (p == NULL) {
        return false;
    }
    *arr = p;
    *cap = c;
    return true;
}

struct batch *
batch_create(const struct cfg_pool *pool, struct health *health,
             struct conn_ctx *tls, size_t mbase, uint32_t connect_ms,
             uint32_t request_ms)
{
    struct batch *b = calloc(1, sizeof(*b));
    size_t n;

    if (b == NULL) {
        return NULL;
    }
    b->pool = pool;
    b->health = health;
    b->tls = tls;
    b->mbase = mbase;
    b->connect_ms = connect_ms;
    b->request_ms = request_ms;
    b->per_server = MAX(pool->connections, 1);
    n = pool->nservers * b->per_server;
    b->conns = calloc(MAX(n, 1), sizeof(*b->conns));
    if (b->conns == NULL) {
        free(b);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct bconn *c = &b->conns[i];

        c->b = b;
        c->server = i / b->per_server;
        c->efd = -1;
        c->c.fd = -1;
        pthread_mutex_init(&c->mu, NULL);
        buf_init(&c->out, BATCH_BUF);
        buf_init(&c->in, BATCH_BUF);
    }
    return b;
}

static void
wake(struct bconn *c)
{
    uint64_t one = 1;

    if (write(c->efd, &one, sizeof(one)) < 0 && errno != EAGAIN) {
        log_warn("%s: eventfd", __func__);
    }
}

void
batch_destroy(struct batch *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->pool->nservers * b->per_server; i++) {
        struct bconn *c = &b->conns[i];

        bool started;

        pthread_mutex_lock(&c->mu);
        c->stop = true;
        started = c->started;
        pthread_mutex_unlock(&c->mu);
        if (started) {
            wake(c);
            pthread_join(c->thr, NULL);
        }
        if (c->efd >= 0) {
            close(c->efd);
        }
        pthread_mutex_destroy(&c->mu);
        for (size_t k = 0; k < c->nqj; k++) {
            free(c->qjobs[k].bytes);
        }
        buf_free(&c->out);
        buf_free(&c->in);
        free(c->qjobs);
        free(c->qframes);
        free(c->jobs);
        free(c->frames);
        free(c->pfd);
    }
    free(b->conns);
    free(b);
}

/* ---- waiters ---- */

void
batch_waiter_bind(struct batch_waiter *w, struct batch *b, size_t server)
{
    uint32_t k = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed);

    w->c = &b->conns[server * b->per_server + k % b->per_server];
}

struct batch_waiter *
batch_waiter_create(struct batch *b, size_t server)
{
    struct batch_waiter *w = calloc(1, sizeof(*w));

    if (w == NULL) {
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    batch_waiter_bind(w, b, server);
    return w;
}

void
batch_waiter_destroy(struct batch_waiter *w)
{
    enum res_fail why;
    enum status st;

    if (w == NULL) {
        return;
    }
    st = batch_wait(w, &why); /* whatever it was: the handler is gone */
    (void)st;
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

enum status
batch_wait(struct batch_waiter *w, enum res_fail *why)
{
    bool any;

    pthread_mutex_lock(&w->mu);
    while (w->outstanding > 0) {
        pthread_cond_wait(&w->cv, &w->mu);
    }
    /* a batch may have finished before the wait began: since, not
     * outstanding, says whether there was any */
    any = w->since > 0;
    w->since = 0;
    *why = w->why;
    w->why = FAIL_NONE;
    pthread_mutex_unlock(&w->mu);
    if (*why != FAIL_NONE) {
        return ST_ERROR;
    }
    return any ? ST_OK : ST_AGAIN;
}

void
batch_group_begin(struct batch_group *g)
{
    atomic_store(&g->left, 1);
    g->next = NULL;
}

bool
batch_waiter_arm(struct batch_waiter *w, struct batch_group *g)
{
    bool armed;

    pthread_mutex_lock(&w->mu);
    armed = w->outstanding > 0;
    if (armed) {
        atomic_fetch_add(&g->left, 1);
        w->group = g;
    }
    pthread_mutex_unlock(&w->mu);
    return armed;
}

bool
batch_group_end(struct batch_group *g)
{
    return atomic_fetch_sub(&g->left, 1) != 1;
}

/* The I/O thread is done with job: its replies (or why) to its waiter.
 * Returns the group whose continuation is now the caller's to run. When
 * that continuation is sure to run at once, on this thread, while the
 * replies stay put in its read buffer (the waiter's last batch, the
 * group's last waiter), dst only views them (lent, till batch_unlend),
 * and they are not copied: no allocation a reply. */
static struct batch_group *
finish(struct job *job, const char *bytes, size_t len, enum res_fail why)
{
    struct batch_waiter *w = job->w;
    struct batch_group *g = NULL;
    struct buf *dst = job->dst;

    pthread_mutex_lock(&w->mu);
    if (why == FAIL_NONE && len > 0 && w->outstanding == 1 &&
        w->group != NULL && atomic_load(&w->group->left) == 1 &&
        buf_len(dst) == 0 && !w->lent) {
        buf_free(dst);
        dst->start = dst->pos = (char *)(uintptr_t)bytes;
        dst->last = dst->end = dst->start + len;
        w->lent = true;
    } else if (why == FAIL_NONE && len > 0 &&
               buf_set(dst, bytes, len) != ST_OK) {
        /* buf_set: a reply into an empty buffer takes what it needs, not
         * the buffer's init size (one is held per busy client) */
        why = FAIL_OUT_OF_MEMORY;
    }
    if (why != FAIL_NONE && w->why == FAIL_NONE) {
        w->why = why;
    }
    w->outstanding--;
    if (w->outstanding == 0) {
        pthread_cond_signal(&w->cv);
        g = w->group;
        w->group = NULL;
    }
    pthread_mutex_unlock(&w->mu);
    return g != NULL && atomic_fetch_sub(&g->left, 1) == 1 ? g : NULL;
}

void
batch_unlend(struct batch_waiter *w, struct buf *dst)
{
    pthread_mutex_lock(&w->mu);
    if (w->lent) {
        w->lent = false;
        dst->start = dst->pos = dst->last = dst->end = NULL;
    }
    pthread_mutex_unlock(&w->mu);
}

/* Run g's continuation (NULL-safe) on c's I/O thread; one that waits for
 * its client's socket joins c's stalled list. */
static void
run_group(struct bconn *c, struct batch_group *g)
{
    if (g != NULL && g->fn(g, false) == BATCH_CONT_WAIT) {
        g->next = c->stalled;
        c->stalled = g;
    }
}

/* ---- the I/O thread ---- */

static void *io_main(void *arg);

/* Start c's thread (c->mu held). */
static enum status
start(struct bconn *c)
{
    pthread_attr_t attr;
    int rc;

    if (c->efd < 0 && (c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        log_warn("%s: eventfd", __func__);
        return ST_NOMEM;
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, BATCH_STACK);
    rc = pthread_create(&c->thr, &attr, io_main, c);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        log_warnx("%s: pthread_create: %s", __func__, strerror(rc));
        return ST_NOMEM;
    }
    c->started = true;
    return ST_OK;
}

/* Copy len bytes of q from off to p. */
static void
copy_range(const struct outq *q, size_t off, size_t len, char *p)
{
    struct iovec iov[16];
    size_t done = 0;

    while (done < len) {
        int cnt = outq_iov(q, off + done, iov, (int)NELEMS(iov));

        if (cnt == 0) {
            break; /* q is short of len: the caller's bug, not a hang */
        }
        for (int i = 0; i < cnt && done < len; i++) {
            size_t n = MIN(iov[i].iov_len, len - done);

            memcpy(p + done, iov[i].iov_base, n);
            done += n;
        }
    }
}

/* Append the job and its frames to c's queue (c->mu held). */
static enum status
enqueue(struct bconn *c, const struct job *job, batch_frame_fn fn, void *ctx)
{
    if (!grow((void **)&c->qjobs, &c->capqj, c->nqj, sizeof(*c->qjobs))) {
        return ST_NOMEM;
    }
    while (c->capqf < c->nqf + job->nframes) {
        if (!grow((void **)&c->qframes, &c->capqf, c->capqf,
                  sizeof(*c->qframes))) {
            return ST_NOMEM;
        }
    }
    for (size_t i = 0; i < job->nframes; i++) {
        fn(ctx, i, &c->qframes[c->nqf + i]);
    }
    c->nqf += job->nframes;
    c->qjobs[c->nqj++] = *job;
    return ST_OK;
}

enum status
batch_submit(struct batch_waiter *w, const struct outq *q, size_t off,
             size_t len, size_t n, batch_frame_fn fn, void *ctx,
             struct buf *dst, bool held)
{
    struct bconn *c = w->c;
    struct job job = {.w = w,
                      .dst = dst,
                      .q = q,
                      .off = off,
                      .nbytes = len,
                      .nframes = n,
                      .t0 = util_now_ms()};
    enum status st = ST_OK;
    bool wake_it;

    /* not held: copied now, before the lock (a set's value is the most
     * of it, and the other clients of the connection need not wait) */
    if (!held) {
        if ((job.bytes = malloc(MAX(len, 1))) == NULL) {
            return ST_NOMEM;
        }
        copy_range(q, off, len, job.bytes);
    }
    pthread_mutex_lock(&w->mu);
    w->outstanding++;
    w->since++;
    pthread_mutex_unlock(&w->mu);
    pthread_mutex_lock(&c->mu);
    if (c->stop || (!c->started && start(c) != ST_OK)) {
        st = ST_NOMEM;
    }
    wake_it = c->idle; /* else it takes the queue when replies come */
    c->idle = false;
    if (st == ST_OK) {
        st = enqueue(c, &job, fn, ctx);
    }
    pthread_mutex_unlock(&c->mu);
    if (st != ST_OK) {
        free(job.bytes);
        pthread_mutex_lock(&w->mu);
        w->outstanding--;
        w->since--;
        pthread_mutex_unlock(&w->mu);
        return st;
    }
    if (wake_it) {
        wake(c);
    }
    return ST_OK;
}

size_t
batch_sockets(void)
{
    return atomic_load_explicit(&sockets_open, memory_order_relaxed);
}

static size_t
midx(const struct bconn *c)
{
    return c->b->mbase + c->server;
}

static void
close_socket(struct bconn *c)
{
    if (c->c.fd >= 0) {
        conn_close(&c->c);
        metrics_server_socket_close(midx(c));
        atomic_fetch_sub_explicit(&sockets_open, 1, memory_order_relaxed);
    }
}

/* Fail every job written, empty out and in, close the socket. A
 * failure of the server (not riven's want of memory, not a stop) is one
 * step toward its ejection, told to health here once, however many
 * clients' batches it fails: their handlers report nothing for it, as
 * in per-connection mode one broken exchange is one failure. */
static void
fail_jobs(struct bconn *c, enum res_fail why, bool stopping)
{
    if (!stopping && why != FAIL_OUT_OF_MEMORY && c->jh < c->nj &&
        c->b->health != NULL) {
        health_failure(c->b->health, c->server, util_now_ms());
    }
    for (size_t i = c->jh; i < c->nj; i++) {
        run_group(c, finish(&c->jobs[i], NULL, 0, why));
    }
    c->jh = c->nj = c->fh = c->nf = 0;
    c->scan = c->nfr = 0;
    c->out.pos = c->out.last = c->out.start;
    c->in.pos = c->in.last = c->in.start;
    buf_shrink(&c->out);
    buf_shrink(&c->in);
    close_socket(c);
}

static void
fail_all(struct bconn *c, enum res_fail why)
{
    fail_jobs(c, why, false);
}

/* Move queued jobs (at most batch_max requests, and for a TLS backend
 * CONN_TLS_ROUND bytes, at least one job) to the written side. false
 * when the thread must stop. */
static bool
take(struct bconn *c)
{
    size_t k = 0, nb = 0, nf = 0, max = c->b->pool->batch_max;
    bool stop;

    if (c->jh > 0) { /* keep the written side's arrays from creeping */
        memmove(c->jobs, c->jobs + c->jh, (c->nj - c->jh) * sizeof(*c->jobs));
        memmove(c->frames, c->frames + c->fh,
                (c->nf - c->fh) * sizeof(*c->frames));
        c->nj -= c->jh;
        c->nf -= c->fh;
        c->jh = c->fh = 0;
    }
    pthread_mutex_lock(&c->mu);
    stop = c->stop;
    c->idle = false;
    while (k < c->nqj &&
           (k == 0 || (nf + c->qjobs[k].nframes <= max &&
                       (c->b->tls == NULL ||
                        nb + c->qjobs[k].nbytes <= CONN_TLS_ROUND)))) {
        nb += c->qjobs[k].nbytes;
        nf += c->qjobs[k].nframes;
        k++;
    }
    if (k > 0 &&
        (!grow((void **)&c->jobs, &c->capj, c->nj + k - 1, sizeof(*c->jobs)) ||
         buf_reserve(&c->out, nb) != ST_OK)) {
        k = 0; /* no memory now: the jobs wait in the queue */
    }
    while (k > 0 && c->capf < c->nf + nf) {
        if (!grow((void **)&c->frames, &c->capf, c->capf, sizeof(*c->frames))) {
            k = 0;
        }
    }
    if (k > 0) {
        uint64_t now = util_now_ms();

        for (size_t i = 0; i < k; i++) {
            c->qjobs[i].t0 = now; /* request_ms counts from the write */
        }
        memcpy(c->jobs + c->nj, c->qjobs, k * sizeof(*c->jobs));
        memcpy(c->frames + c->nf, c->qframes, nf * sizeof(*c->frames));
        c->nj += k;
        c->nf += nf;
        memmove(c->qjobs, c->qjobs + k, (c->nqj - k) * sizeof(*c->qjobs));
        memmove(c->qframes, c->qframes + nf,
                (c->nqf - nf) * sizeof(*c->qframes));
        c->nqj -= k;
        c->nqf -= nf;
    }
    pthread_mutex_unlock(&c->mu);
    for (size_t i = c->nj - k; i < c->nj; i++) { /* out has room for them */
        struct job *j = &c->jobs[i];

        if (j->bytes != NULL) {
            memcpy(c->out.last, j->bytes, j->nbytes);
            free(j->bytes);
            j->bytes = NULL;
        } else { /* its waiter holds q until the job is finished */
            copy_range(j->q, j->off, j->nbytes, c->out.last);
        }
        c->out.last += j->nbytes;
        j->q = NULL;
    }
    return !stop;
}

/* Before poll: are jobs queued (then poll must not sleep)? If not, and
 * nothing written waits for replies, the next submitter must wake the
 * thread (idle); while replies are due it need not: the thread takes
 * the queue after each read, so the clients that come meanwhile go out
 * together in its next write, and pay no eventfd write each. */
static bool
prepare_poll(struct bconn *c)
{
    bool q;

    pthread_mutex_lock(&c->mu);
    q = c->nqj > 0;
    c->idle = !q && c->jh == c->nj && buf_len(&c->out) == 0;
    pthread_mutex_unlock(&c->mu);
    return q;
}

/* The TLS handshake on c's new socket, within what deadline leaves of
 * connect_ms. false: it failed (logged, the socket closed, the jobs
 * failed). */
static bool
open_tls(struct bconn *c, uint64_t deadline)
{
    const struct cfg_addr *a = &c->b->pool->servers[c->server].addr;
    char err[256] = "TLS handshake: the connect timeout has passed";
    uint64_t now = util_now_ms();
    enum status st =
        now < deadline
            ? conn_connect_tls(&c->c, c->b->tls, a, (uint32_t)(deadline - now),
                               err, sizeof(err))
            : ST_TIMEOUT;

    if (st == ST_OK) {
        return true;
    }
    conn_connect_tls_failed(a, err);
    conn_close(&c->c);
    fail_all(c, st == ST_TIMEOUT ? FAIL_BACKEND_TIMEOUT
                                 : FAIL_BACKEND_UNAVAILABLE);
    return false;
}

/* Connect (blocking, bounded by connect_ms) when jobs wait. */
static void
open_socket(struct bconn *c)
{
    const struct cfg_addr *a = &c->b->pool->servers[c->server].addr;
    uint64_t deadline = util_now_ms() + c->b->connect_ms;
    struct pollfd pfd = {.events = POLLOUT};
    int fd, one = 1, err = 0, r = 0;
    socklen_t len = sizeof(err);

    fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        log_warn("%s: socket %s", __func__, a->name);
        fail_all(c, FAIL_BACKEND_UNAVAILABLE);
        return;
    }
    pfd.fd = fd;
    if (connect(fd, (const struct sockaddr *)&a->ss, a->sslen) != 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) {
            err = errno;
        }
        while (err == 0) {
            uint64_t now = util_now_ms();

            r = now < deadline ? poll(&pfd, 1, (int)(deadline - now)) : 0;
            if (r > 0 || (r < 0 && errno != EINTR)) {
                break;
            }
            if (r == 0) {
                err = ETIMEDOUT;
            }
        }
        if (err == 0 &&
            (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || r < 0)) {
            err = err ? err : EIO;
        }
    }
    if (err != 0) {
        log_debug("%s: %s: %s", __func__, a->name, strerror(err));
        close(fd);
        fail_all(c, err == ETIMEDOUT ? FAIL_BACKEND_TIMEOUT
                                     : FAIL_BACKEND_UNAVAILABLE);
        return;
    }
    if (a->ss.ss_family != AF_UNIX) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    conn_plain(&c->c, fd);
    if (c->b->tls != NULL && !open_tls(c, deadline)) {
        return;
    }
    metrics_server_socket_open(midx(c));
    metrics_server_up(midx(c), true);
    atomic_fetch_add_explicit(&sockets_open, 1, memory_order_relaxed);
    for (size_t i = c->jh; i < c->nj; i++) {
        c->jobs[i].t0 = util_now_ms(); /* their request time starts now */
    }
}

/* Send what out holds, without blocking. false: the socket failed. */
static bool
write_some(struct bconn *c)
{
    while (buf_len(&c->out) > 0) {
        ssize_t n = conn_send(&c->c, c->out.pos, buf_len(&c->out));

        if (n > 0) {
            buf_consume(&c->out, (size_t)n);
            metrics_add(M_BACKEND_TX_BYTES, (uint64_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        log_debug("%s: send: %s", __func__, strerror(errno));
        fail_all(c, FAIL_BACKEND_UNAVAILABLE);
        return false;
    }
    if (c->out.start != NULL) {
        c->out.pos = c->out.last = c->out.start;
    }
    return true;
}

/* Frame what in holds: each job whose replies are all there goes to its
 * waiter. ST_OK (maybe more to read), ST_PROTO: not memcached's reply. */
static enum status
frame(struct bconn *c, size_t *need)
{
    *need = 0;
    while (c->jh < c->nj) {
        struct job *job = &c->jobs[c->jh];

        while (c->nfr < job->nframes) {
            const struct batch_frame *f = &c->frames[c->fh + c->nfr];
            struct request req = {.cmd = f->cmd,
                                  .rflags = f->rflags,
                                  .args = f->nargs ? f->args : NULL,
                                  .nargs = f->nargs};
            struct response tmp;
            size_t used = 0, n = 0;
            enum status st;

            if (buf_len(&c->in) == c->scan) {
                return ST_OK;
            }
            st = proto_meta_parse_reply(&req, c->in.pos + c->scan,
                                        buf_len(&c->in) - c->scan, &tmp, &used,
                                        &n);
            if (st == ST_AGAIN) {
                *need = n > 0 ? c->scan + n : 0;
                return ST_OK;
            }
            if (st != ST_OK) {
                return ST_PROTO;
            }
            c->scan += used;
            c->nfr++;
        }
        run_group(c, finish(job, c->in.pos, c->scan, FAIL_NONE));
        buf_consume(&c->in, c->scan);
        c->fh += job->nframes;
        c->jh++;
        c->scan = c->nfr = 0;
    }
    if (c->jh == c->nj) {
        c->jh = c->nj = c->fh = c->nf = 0;
    }
    return ST_OK;
}

/* Read and frame. false: the socket failed (jobs failed). */
static bool
read_some(struct bconn *c)
{
    size_t need = 0;

    for (;;) {
        size_t want = need > buf_len(&c->in) ? need - buf_len(&c->in) : 0;
        ssize_t n;

        if (buf_reserve(&c->in, MAX(want, BATCH_READ)) != ST_OK) {
            fail_all(c, FAIL_OUT_OF_MEMORY);
            return false;
        }
        n = conn_recv_nowait(&c->c, c->in.last, buf_space(&c->in));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return true;
        }
        if (n <= 0) {
            log_debug("%s: %s", __func__,
                      n == 0 ? "closed by the server" : strerror(errno));
            fail_all(c, FAIL_BACKEND_UNAVAILABLE);
            return false;
        }
        c->in.last += n;
        metrics_add(M_BACKEND_RX_BYTES, (uint64_t)n);
        if (frame(c, &need) != ST_OK) {
            log_warnx("%s: %s sent a malformed reply, resetting", __func__,
                      c->b->pool->servers[c->server].addr.name);
            fail_all(c, FAIL_BACKEND_ERROR);
            return false;
        }
        if (c->nj == 0 && buf_len(&c->in) > 0) {
            log_warnx("%s: %s sent bytes nobody asked for, resetting", __func__,
                      c->b->pool->servers[c->server].addr.name);
            fail_all(c, FAIL_BACKEND_ERROR);
            return false;
        }
        if ((size_t)n < BATCH_READ && !conn_pending(&c->c)) {
            return true; /* drained for now; poll says when more comes */
        }
    }
}

/* How long poll may sleep: until the oldest job's request time ends. */
static int
poll_ms(const struct bconn *c, bool more)
{
    uint64_t now, end;

    if (more) {
        return 0;
    }
    if (c->jh == c->nj) {
        return -1;
    }
    now = util_now_ms();
    end = c->jobs[c->jh].t0 + c->b->request_ms;
    return end > now ? (int)MIN(end - now, 60000) : 0;
}

static void
drain_efd(int efd)
{
    uint64_t v;

    while (read(efd, &v, sizeof(v)) > 0) {
    }
}

/* May the thread take more jobs now? When all it took is written, and
 * for a TLS backend when their replies are in too: a round at a time
 * (CONN_TLS_ROUND, conn.h). */
static bool
can_take(const struct bconn *c)
{
    return buf_len(&c->out) == 0 && (c->b->tls == NULL || c->jh == c->nj);
}

/* poll's array: efd, the shared socket, then each stalled client's fd
 * (POLLOUT). The number of entries, or 0 when it cannot grow (then the
 * stalled are polled at the next round). */
static nfds_t
poll_set(struct bconn *c)
{
    size_t n = 2;
    nfds_t k = 2;

    for (struct batch_group *g = c->stalled; g != NULL; g = g->next) {
        n++;
    }
    if (n > c->cappfd &&
        !grow((void **)&c->pfd, &c->cappfd, n - 1, sizeof(*c->pfd))) {
        n = 2;
        if (c->cappfd < 2) {
            return 0;
        }
    }
    c->pfd[0] = (struct pollfd){.fd = c->efd, .events = POLLIN};
    c->pfd[1] = (struct pollfd){.fd = -1};
    if (c->c.fd >= 0) {
        c->pfd[1].fd = c->c.fd;
        c->pfd[1].events = POLLIN | (buf_len(&c->out) > 0 ? POLLOUT : 0);
    }
    for (struct batch_group *g = c->stalled; g != NULL && k < n; g = g->next) {
        c->pfd[k++] = (struct pollfd){.fd = g->fd, .events = POLLOUT};
    }
    return k;
}

/* How long poll may sleep for the stalled: until the first deadline. */
static int
stalled_ms(const struct bconn *c, int ms)
{
    uint64_t now = util_now_ms();

    for (const struct batch_group *g = c->stalled; g != NULL; g = g->next) {
        if (g->deadline_ms != 0) {
            int left = g->deadline_ms > now
                           ? (int)MIN(g->deadline_ms - now, 60000)
                           : 0;

            ms = ms < 0 ? left : MIN(ms, left);
        }
    }
    return ms;
}

/* Call again each stalled continuation whose client can take bytes
 * (revents of the set's entries from 2 on, in list order) or whose
 * deadline passed; drop those done. */
static void
run_stalled(struct bconn *c, nfds_t n)
{
    struct batch_group **pp = &c->stalled;
    uint64_t now = util_now_ms();
    nfds_t k = 2;

    while (*pp != NULL) {
        struct batch_group *g = *pp, *next = g->next;
        bool ready = k < n && c->pfd[k].revents != 0;
        bool late = g->deadline_ms != 0 && now >= g->deadline_ms;

        k++;
        /* done, g may be gone at once (its client's thread ends) */
        if ((ready || late) && g->fn(g, !ready) == BATCH_CONT_DONE) {
            *pp = next;
            continue;
        }
        pp = &g->next;
    }
}

static void
io_round(struct bconn *c)
{
    nfds_t n;
    bool more;
    int r;

    if (c->nj > c->jh && c->c.fd < 0) {
        open_socket(c);
    }
    if (c->c.fd >= 0 && !write_some(c)) {
        return;
    }
    more = prepare_poll(c) && can_take(c);
    if ((n = poll_set(c)) == 0) {
        fail_all(c, FAIL_OUT_OF_MEMORY);
        return;
    }
    r = poll(c->pfd, n, stalled_ms(c, poll_ms(c, more)));
    if (r < 0 && errno != EINTR) {
        log_warn("%s: poll", __func__);
    }
    if (r > 0 && (c->pfd[0].revents & POLLIN)) {
        drain_efd(c->efd);
    }
    if (c->stalled != NULL) {
        run_stalled(c, r > 0 ? n : 2);
    }
    if (r > 0 && c->pfd[1].fd >= 0 && (c->pfd[1].revents & ~POLLOUT) != 0 &&
        !read_some(c)) {
        return;
    }
    if (c->jh < c->nj &&
        util_now_ms() >= c->jobs[c->jh].t0 + c->b->request_ms) {
        log_debug("%s: %s timed out", __func__,
                  c->b->pool->servers[c->server].addr.name);
        fail_all(c, FAIL_BACKEND_TIMEOUT);
    }
}

/* Stopping: fail the jobs still queued, so no waiter is left behind
 * (batch_destroy's contract says there is none; this keeps a broken
 * caller from hanging forever). */
static void
fail_queued(struct bconn *c)
{
    for (;;) {
        struct job job;

        pthread_mutex_lock(&c->mu);
        if (c->nqj == 0) {
            c->nqf = 0;
            pthread_mutex_unlock(&c->mu);
            return;
        }
        job = c->qjobs[--c->nqj];
        pthread_mutex_unlock(&c->mu); /* a continuation runs unlocked */
        free(job.bytes);
        run_group(c, finish(&job, NULL, 0, FAIL_BACKEND_UNAVAILABLE));
    }
}

/* Stopping: the continuations still waiting on a client time out. */
static void
fail_stalled(struct bconn *c)
{
    while (c->stalled != NULL) {
        struct batch_group *g = c->stalled;

        c->stalled = g->next;
        (void)g->fn(g, true);
    }
}

static void *
io_main(void *arg)
{
    struct bconn *c = arg;

    for (;;) {
        if (can_take(c) && !take(c)) {
            break;
        }
        io_round(c);
    }
    fail_jobs(c, FAIL_BACKEND_UNAVAILABLE, true);
    fail_queued(c);
    fail_stalled(c);
    return NULL;
}
