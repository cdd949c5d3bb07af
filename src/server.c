/*
 * server: read, parse, execute, answer, for one client connection.
 *
 * Invariant: requests in the batch point into rbuf, and responses into the
 * orca's handlers, so rbuf is neither read into nor compacted while a
 * batch is in flight, and the orca's buffers are released only after the
 * replies are written.
 */
#include "server.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "orca.h"
#include "proto_text.h"
#include "request.h"

#define SERVER_BUF_INIT    2048
#define SERVER_READ_MIN    1024
#define BATCH_MAX_REQS     512     /* requests per batch */
#define BATCH_MAX_BYTES    (256u * 1024) /* request bytes per batch */
#define IOV_CHUNK          256

struct server {
    int                  fd;
    const struct config *cfg;     /* ref: held by the listener's thread */
    struct orca         *orca;
    struct buf           rbuf;    /* client bytes */
    struct req_batch     batch;
    struct outq          out;     /* replies of the batch */
    size_t               need;    /* bytes the next request needs */
    size_t               swallow; /* data bytes still to discard */
    bool                 closing; /* quit seen or stream unframeable */
};

/* Blocking read into rbuf. ST_OK, ST_CLOSED, ST_ERROR or ST_NOMEM. */
static enum status
read_client(struct server *s)
{
    size_t want = SERVER_READ_MIN;
    ssize_t n;

    if (s->need > buf_len(&s->rbuf)) {
        want = MAX(want, s->need - buf_len(&s->rbuf));
    }
    if (buf_reserve(&s->rbuf, want) != ST_OK) {
        return ST_NOMEM;
    }
    do {
        n = recv(s->fd, s->rbuf.last, buf_space(&s->rbuf), 0);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        s->rbuf.last += n;
        return ST_OK;
    }
    if (n < 0 && errno != ECONNRESET) {
        log_debug("%s: recv: %s", __func__, strerror(errno));
    }
    return n == 0 ? ST_CLOSED : ST_ERROR;
}

/* writev the whole queue. ST_OK or ST_ERROR. */
static enum status
write_client(struct server *s)
{
    struct iovec iov[IOV_CHUNK];
    size_t done = 0;

    while (done < s->out.total) {
        int n = outq_iov(&s->out, done, iov, IOV_CHUNK);
        ssize_t w = writev(s->fd, iov, n);

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_debug("%s: writev: %s", __func__, strerror(errno));
            return ST_ERROR;
        }
        done += (size_t)w;
    }
    return ST_OK;
}

/* Discard bytes of a rejected data block. */
static void
swallow_bytes(struct server *s)
{
    size_t n = MIN(s->swallow, buf_len(&s->rbuf));

    buf_consume(&s->rbuf, n);
    s->swallow -= n;
}

/* Append req to the batch, one entry per key for a get line. */
static enum status
batch_add(struct server *s, const struct request *req)
{
    const char *cur = req->args, *end = req->args + req->nargs, *key;
    size_t nkey;
    struct request *r;
    uint32_t flags = REQ_F_FIRST;

    if (!req_is_get(req->cmd) || req->err != RES_NONE) {
        if ((r = req_batch_push(&s->batch)) == NULL) {
            return ST_NOMEM;
        }
        *r = *req;
        r->rflags |= REQ_F_FIRST | REQ_F_LAST;
        return ST_OK;
    }
    while (proto_text_next_key(&cur, end, &key, &nkey)) {
        if ((r = req_batch_push(&s->batch)) == NULL) {
            return ST_NOMEM;
        }
        *r = *req;
        r->key = key;
        r->nkey = nkey;
        r->rflags |= flags;
        flags = 0;
    }
    s->batch.reqs[s->batch.n - 1].rflags |= REQ_F_LAST;
    return ST_OK;
}

/* Parse complete requests into the batch; returns bytes used. */
static size_t
parse_batch(struct server *s)
{
    size_t used = 0;

    req_batch_reset(&s->batch);
    s->need = 0;
    while (s->batch.n < BATCH_MAX_REQS && used < BATCH_MAX_BYTES) {
        struct request req;
        size_t n = 0, need = 0;
        enum status st;

        st = proto_text_parse(s->rbuf.pos + used, buf_len(&s->rbuf) - used,
                              s->cfg->item_size_max, &req, &n, &need);
        if (st == ST_AGAIN) {
            s->need = need ? need : buf_len(&s->rbuf) - used + 1;
            break;
        }
        if (st != ST_OK) {
            s->closing = true;
            break;
        }
        if (batch_add(s, &req) != ST_OK) {
            s->closing = true;
            break;
        }
        used += n;
        if (req.swallow > 0 || req.cmd == REQ_QUIT || req.cmd == REQ_STATS) {
            s->swallow = req.swallow;
            s->closing = req.cmd == REQ_QUIT && req.err == RES_NONE;
            break;
        }
    }
    return used;
}

/* Run the batch and write its replies. */
static enum status
answer_batch(struct server *s)
{
    enum status st = ST_OK;

    orca_execute(s->orca, &s->batch);
    outq_reset(&s->out);
    for (size_t i = 0; i < s->batch.n && st == ST_OK; i++) {
        st = proto_text_encode(&s->batch.reqs[i], &s->batch.res[i],
                               SERVER_VERSION, &s->out);
    }
    if (st == ST_OK) {
        st = write_client(s);
    }
    orca_done(s->orca);
    return st;
}

/* Answer every complete request in rbuf. */
static enum status
process(struct server *s)
{
    for (;;) {
        size_t used;

        if (s->swallow > 0) {
            swallow_bytes(s);
            if (s->swallow > 0) {
                return ST_OK;
            }
        }
        used = parse_batch(s);
        if (s->batch.n == 0) {
            return s->closing ? ST_CLOSED : ST_OK;
        }
        if (answer_batch(s) != ST_OK) {
            return ST_ERROR;
        }
        buf_consume(&s->rbuf, used);
        if (s->closing) {
            return ST_CLOSED;
        }
    }
}

void
server_run(int fd, const struct config *cfg, const struct ring *ring)
{
    struct server s = {.fd = fd, .cfg = cfg};

    buf_init(&s.rbuf, SERVER_BUF_INIT);
    req_batch_init(&s.batch);
    outq_init(&s.out, SERVER_BUF_INIT);
    s.orca = orca_create(cfg, ring);
    while (s.orca != NULL) {
        if (read_client(&s) != ST_OK || process(&s) != ST_OK) {
            break;
        }
        if (buf_len(&s.rbuf) == 0) {
            buf_shrink(&s.rbuf);
            outq_shrink(&s.out);
        }
    }
    orca_destroy(s.orca);
    req_batch_free(&s.batch);
    outq_free(&s.out);
    buf_free(&s.rbuf);
    close(fd);
}
