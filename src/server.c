/*
 * server: read, parse, execute, answer, for one client connection.
 *
 * Invariant: requests in the batch point into rbuf, and responses into the
 * orca's handlers, so rbuf is neither read into nor compacted while a
 * batch is in flight, and the orca's buffers are released only after the
 * replies are written. A batch answered by an I/O thread (answer_async)
 * keeps this too: meanwhile this thread reads the client into its stack.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "batch.h"
#include "buf.h"
#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "orca.h"
#include "proto_binary.h"
#include "proto_meta.h"
#include "proto_text.h"
#include "request.h"
#include "snapshot.h"

#define SERVER_BUF_INIT 2048
#define SERVER_READ_MIN 1024
#define SERVER_OUT_INIT 128           /* reply headers of a typical batch */
#define BATCH_MAX_REQS  512           /* requests per batch */
#define BATCH_MAX_BYTES (256u * 1024) /* request bytes per batch */
#define BATCH_MAX_GETS  64            /* get keys per batch */
#define REPLY_OVERHEAD  512 /* a reply's bytes besides its value, at most */
#define IOV_CHUNK       64  /* iovecs per writev: 1 KiB of stack */

/* A waiting client's read lands on the stack (recv_fresh, read_async): a
 * get, or a set of a 1 KiB value with a key of up to 190 bytes, in one
 * recv. With the thread's descriptor and static TLS above it (about 5
 * KiB, glibc 2.36 on x86-64), this read and the malloc that copies its
 * bytes to the heap are a thread's deepest calls, and a busy thread
 * touches 2 pages of stack. 1536 bytes here made 3 for most threads at
 * c=200: glibc's malloc_consolidate went 72 to 88 bytes into the third
 * page (its stale frames, read from the pages of a stopped riven). */
#define SERVER_FRESH_READ 1280
/* Stack below read_client's frame that a request's calls reach. */
#define SERVER_PREFETCH_STACK 3072

struct server {
    struct conn io;           /* the client: fd owned by the listener */
    struct server_conn *conn; /* ref: owned by the listener */
    struct snapshot *snap;    /* one reference */
    uint64_t gen;             /* generation of snap */
    const struct config *cfg; /* ref: snap->cfg */
    struct orca *orca;
    struct buf rbuf; /* client bytes */
    struct req_batch batch;
    struct outq out;          /* replies of the batch */
    size_t need;              /* bytes the next request needs */
    size_t swallow;           /* data bytes still to discard */
    bool skipline;            /* discarding an over-long get line */
    struct request line;      /* a get line streamed in sub-batches: its
                                 keys from line.args on are still to come;
                                 open while line.nargs > 0 */
    bool line_answered;       /* a key of the current line hit or missed */
    size_t line_used;         /* rbuf bytes up to the end of the line */
    struct response line_err; /* the line's first error */
    size_t line_errs;         /* failed keys before the first answer */
    char line_msg[128];       /* line_err's text */
    uint64_t last_done;       /* ms: connect, reload, or last batch
                                 answered (mark_done) */
    bool closing;             /* quit seen or stream unframeable */
    bool nomem;               /* the batch could not be built */
    bool detected;            /* proto is known (first byte seen) */
    enum req_proto proto;     /* PROTO_BINARY, or PROTO_TEXT for text
                                 and meta commands mixed */
    /* answer_async: a batch whose replies the I/O thread that answers it
     * last encodes and writes (answer_cont), while this thread waits for
     * the client's next bytes. Until async_wait, that thread owns orca,
     * batch, out, the line state and rbuf (all of it the batch's, and
     * freed by that thread when it is answered: async_end); this one
     * only reads the socket into its stack (read_async). */
    bool async;             /* this thread's: a batch is out */
    bool afirst;            /* answer_cont's: not yet run */
    bool adone;             /* amu: answered */
    enum status ast;        /* amu: how it went */
    size_t asent;           /* out bytes written */
    uint64_t at0;           /* ns: when the batch began */
    struct batch_group grp; /* answer_cont */
    pthread_mutex_t amu;
    pthread_cond_t acv;
};

static _Atomic int draining; /* seq_cst with conn->busy */

void
server_drain(void)
{
    atomic_store(&draining, 1);
}

bool
server_draining(void)
{
    return atomic_load(&draining) != 0;
}

/* The orca a connection runs: l1l2batch on batch listeners; the normal
 * listeners of an l1l2batch config serve l1l2. A batch listener still
 * bound after a reload to l1only serves l1only: there is no L2. */
static enum cfg_orca
orca_mode(const struct server *s, const struct config *cfg)
{
    if (s->conn->batch && cfg->orca != CFG_ORCA_L1ONLY) {
        return CFG_ORCA_L1L2BATCH;
    }
    return cfg->orca == CFG_ORCA_L1L2BATCH ? CFG_ORCA_L1L2 : cfg->orca;
}

/* Move to the newest snapshot, if one was published. Between batches
 * only: responses must no longer point into the old orca. */
static enum status
switch_snapshot(struct server *s)
{
    uint64_t gen = snapshot_generation();
    struct snapshot *snap;
    struct orca *orca;

    if (gen == s->gen && s->orca != NULL) {
        return ST_OK;
    }
    snap = snapshot_get();
    if (snap == NULL) {
        return ST_ERROR;
    }
    orca = orca_create(&snap->env, orca_mode(s, snap->cfg), s->orca);
    if (orca == NULL) {
        snapshot_unref(snap);
        return s->orca != NULL ? ST_OK : ST_NOMEM;
    }
    orca_destroy(s->orca);
    snapshot_unref(s->snap);
    s->orca = orca;
    s->snap = snap;
    s->cfg = snap->cfg;
    s->gen = gen;
    s->last_done = util_now_ms(); /* a reload may set an idle timeout:
                                     mark_done counts from here */
    return ST_OK;
}

/* A batch was answered: the idle timeouts (recv_wait) count from now.
 * With none configured the clock is not read. */
static void
mark_done(struct server *s)
{
    if (s->cfg->client_idle_timeout_ms > 0 ||
        s->cfg->backend_idle_timeout_ms > 0) {
        s->last_done = util_now_ms();
    }
}

/* The time recv may block: until the client must have completed a request
 * (client_idle_timeout_ms), the backend sockets are released
 * (backend_idle_timeout_ms) or copies sent to a shadow time out,
 * whichever comes first; 0 = forever, and then the clock is not read. */
static uint32_t
recv_wait(struct server *s)
{
    uint64_t deadline = orca_shadow_deadline(s->orca);
    uint64_t now;

    if (s->cfg->client_idle_timeout_ms > 0) {
        deadline = MIN(deadline, s->last_done + s->cfg->client_idle_timeout_ms);
    }
    if (s->cfg->backend_idle_timeout_ms > 0 && orca_sockets(s->orca) > 0) {
        deadline =
            MIN(deadline, s->last_done + s->cfg->backend_idle_timeout_ms);
    }
    if (deadline == UINT64_MAX) {
        return 0;
    }
    now = util_now_ms();
    return deadline > now ? (uint32_t)MIN(deadline - now, UINT32_MAX) : 1;
}

/* recv timed out: count the shadows' timeouts, release backend sockets,
 * or give up on the client. */
static enum status
recv_timeout(struct server *s)
{
    uint64_t idle = util_now_ms() - s->last_done;

    orca_poll_shadows(s->orca);
    if (s->cfg->client_idle_timeout_ms > 0 &&
        idle >= s->cfg->client_idle_timeout_ms) {
        log_debug("%s: client completed no request in %llu ms, closing",
                  __func__, (unsigned long long)idle);
        return ST_TIMEOUT;
    }
    if (s->cfg->backend_idle_timeout_ms > 0 &&
        idle >= s->cfg->backend_idle_timeout_ms) {
        orca_close_sockets(s->orca);
    }
    return ST_OK;
}

/* recv for a plain client whose rbuf holds nothing: into the stack, then
 * copied into the read buffer, allocated now of the size that came
 * (buf_set). A client waiting for its next request so holds at most the
 * last request's small buffer (server_run's buf_shrink lets a larger one
 * go); SERVER_FRESH_READ says what the stack pays. Returns as recv, and
 * -1 with errno ENOMEM when the buffer cannot be had. */
static ssize_t
recv_fresh(struct server *s)
{
    char tmp[SERVER_FRESH_READ];
    ssize_t n = conn_recv(&s->io, tmp, sizeof(tmp));

    if (n > 0 && buf_set(&s->rbuf, tmp, (size_t)n) != ST_OK) {
        errno = ENOMEM;
        return -1;
    }
    return n;
}

/* A request came: ask the cache for the lines its batch will touch, all at
 * once. The thread ran last a while ago, after many others, so its stack
 * below this frame, its request arrays and queues, and its orca and
 * handlers are cold; touched one after the other, each costs a miss in
 * turn. Changes nothing. */
static void
prefetch_batch(const struct server *s)
{
    const char *sp = __builtin_frame_address(0);

    util_prefetch(sp - SERVER_PREFETCH_STACK, SERVER_PREFETCH_STACK);
    util_prefetch(s->batch.reqs, sizeof(*s->batch.reqs));
    util_prefetch(s->batch.res, sizeof(*s->batch.res));
    util_prefetch(s->out.ents, sizeof(*s->out.ents));
    util_prefetch(s->out.own.start, 1);
    if (s->orca != NULL) {
        orca_prefetch(s->orca);
    }
}

/*
 * Blocking read into rbuf. ST_OK, ST_CLOSED, ST_TIMEOUT, ST_ERROR or
 * ST_NOMEM. Not inlined, like write_client: server_run's frame is above
 * every request's deepest call (orca, handler, recv), and what these two
 * hold on the stack (a read's bytes, the iovec array) need not add to it.
 */
static __attribute__((noinline)) enum status
read_client(struct server *s)
{
    size_t want = SERVER_READ_MIN;
    ssize_t n;
    bool fresh = false; /* n bytes are appended already (recv_fresh) */

    if (s->need > config_client_max_buffer(s->cfg)) {
        /* a request riven cannot hold (a binary body of gigabytes that
         * carries no value): the stream cannot be followed within bounds */
        log_debug("%s: a request of %zu bytes, closing", __func__, s->need);
        return ST_PROTO;
    }
    if (s->need > buf_len(&s->rbuf)) {
        want = MAX(want, s->need - buf_len(&s->rbuf));
    }
    if (buf_len(&s->rbuf) == 0 && s->swallow == 0 && !s->skipline) {
        atomic_store(&s->conn->busy, 0);
        if (atomic_load(&draining)) {
            return ST_CLOSED;
        }
    }
    for (;;) {
        conn_set_timeouts(&s->io, recv_wait(s), s->io.snd_ms);
        conn_idle(&s->io);
        n = 0;
        fresh = false;
        if (buf_len(&s->rbuf) == 0 && s->io.ssl != NULL) {
            /* a TLS client waits with no read buffer: it is read in
             * records anyway, after a poll (conn_wait) */
            buf_free(&s->rbuf);
            n = conn_wait(&s->io);
        } else if (buf_len(&s->rbuf) == 0 && want <= SERVER_FRESH_READ) {
            fresh = true;
            n = recv_fresh(s);
        }
        if (n == 0 && !fresh) {
            if (buf_reserve(&s->rbuf, want) != ST_OK) {
                return ST_NOMEM;
            }
            n = conn_recv(&s->io, s->rbuf.last, buf_space(&s->rbuf));
        }
        if (n >= 0) {
            break;
        }
        if (fresh && errno == ENOMEM) {
            return ST_NOMEM;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            break;
        }
        if (recv_timeout(s) != ST_OK) {
            return ST_TIMEOUT;
        }
    }
    if (n > 0) {
        prefetch_batch(s);
        atomic_store(&s->conn->busy, 1);
        metrics_add(M_CLIENT_RX_BYTES, (uint64_t)n);
        if (!fresh) {
            s->rbuf.last += n;
        }
        return ST_OK;
    }
    if (n < 0 && errno != ECONNRESET) {
        log_debug("%s: recv: %s", __func__, strerror(errno));
    }
    return n == 0 ? ST_CLOSED : ST_ERROR;
}

/* writev the whole queue. ST_OK or ST_ERROR. Not inlined: see
 * read_client. */
static __attribute__((noinline)) enum status
write_client(struct server *s)
{
    struct iovec iov[IOV_CHUNK];
    size_t done = 0;

    while (done < s->out.total) {
        int n = outq_iov(&s->out, done, iov, IOV_CHUNK);
        uint64_t t0 = s->cfg->client_write_timeout_ms ? util_now_ms() : 0;
        ssize_t w = conn_writev(&s->io, iov, n);

        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_debug("%s: writev: %s", __func__, strerror(errno));
            return ST_ERROR;
        }
        done += (size_t)w;
        metrics_add(M_CLIENT_TX_BYTES, (uint64_t)w);
        /* SO_SNDTIMEO ends a stalled writev with what it sent so far; a
         * client that took that long to accept a part has stopped
         * reading: do not wait a second timeout for the rest. */
        if (t0 != 0 && done < s->out.total &&
            util_now_ms() - t0 >= s->cfg->client_write_timeout_ms) {
            log_debug("%s: client stopped reading, closing", __func__);
            return ST_ERROR;
        }
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

/* Discard an over-long get line up to its '\n'; when it ends, answer as
 * memcached does for a line whose key cannot be valid. Memory stays
 * bounded by TEXT_GET_LINE_MAX. */
static enum status
skip_line(struct server *s)
{
    char *nl = memchr(s->rbuf.pos, '\n', buf_len(&s->rbuf));
    struct request *r;

    if (nl == NULL) {
        buf_consume(&s->rbuf, buf_len(&s->rbuf));
        return ST_AGAIN;
    }
    buf_consume(&s->rbuf, (size_t)(nl + 1 - s->rbuf.pos));
    s->skipline = false;
    if ((r = req_batch_push(&s->batch)) == NULL) {
        return ST_NOMEM;
    }
    r->cmd = REQ_GET;
    r->rflags = REQ_F_FIRST | REQ_F_LAST;
    r->err = RES_CLIENT_ERROR;
    r->errmsg = MSG_BAD_FORMAT;
    return ST_OK;
}

/* Take the next keys of the open get line into the batch, at most room
 * of them. The line's first key carries REQ_F_FIRST, its last REQ_F_LAST;
 * the line stays open while keys remain. */
static enum status
line_keys(struct server *s, size_t room)
{
    struct request *line = &s->line;
    const char *cur = line->args, *end = line->args + line->nargs, *key;
    size_t nkey, n = 0;
    struct request *r = NULL;

    while (n < room && util_next_token(&cur, end, &key, &nkey)) {
        if ((r = req_batch_push(&s->batch)) == NULL) {
            return ST_NOMEM;
        }
        *r = *line;
        r->key = key;
        r->nkey = nkey;
        r->rflags = line->rflags & ~REQ_F_LAST;
        line->rflags &= ~REQ_F_FIRST;
        n++;
    }
    line->nargs = (size_t)(end - cur);
    line->args = cur;
    while (line->nargs > 0 && line->args[0] == ' ') {
        line->args++;
        line->nargs--;
    }
    if (line->nargs == 0 && r != NULL) {
        r->rflags |= REQ_F_LAST;
    }
    return ST_OK;
}

/* Append req to the batch, one entry per key for a get line, at most
 * room keys of it now; the rest follow in the next batches. */
static enum status
batch_add(struct server *s, const struct request *req, size_t room)
{
    struct request *r;

    if (!req_is_get(req->cmd) || req->err != RES_NONE || req->nkeys <= 1) {
        if ((r = req_batch_push(&s->batch)) == NULL) {
            return ST_NOMEM;
        }
        *r = *req;
        r->rflags |= REQ_F_FIRST | REQ_F_LAST;
        return ST_OK;
    }
    s->line = *req;
    s->line.rflags |= REQ_F_FIRST;
    return line_keys(s, MAX(room, 1));
}

/* Parse one request in the connection's protocol. The first byte of a
 * connection chooses it: 0x80 is binary, anything else text. */
static enum status
parse_one(struct server *s, const char *p, size_t len, struct request *req,
          size_t *used, size_t *need)
{
    if (len == 0) { /* every byte parsed: wait for more */
        *need = 0;
        return ST_AGAIN;
    }
    if (!s->detected) {
        s->proto = (unsigned char)p[0] == 0x80 ? PROTO_BINARY : PROTO_TEXT;
        s->detected = true;
    }
    if (s->proto == PROTO_BINARY) {
        return proto_binary_parse(p, len, s->cfg->item_size_max, req, used,
                                  need);
    }
    if (p[0] == 'm') { /* mg ms md ma mn me, and what merely looks so */
        return proto_meta_parse_request(p, len, s->cfg->item_size_max, req,
                                        used, need);
    }
    return proto_text_parse(p, len, s->cfg->item_size_max, req, used, need);
}

/* Encode one reply in the protocol its request came in. */
static enum status
encode_one(struct server *s, const struct request *req,
           const struct response *res)
{
    if (req->proto == PROTO_BINARY) {
        return proto_binary_encode(req, res, SERVER_VERSION, &s->out);
    }
    if (req->proto == PROTO_META) {
        return proto_meta_encode_reply(req, res, &s->out);
    }
    return proto_text_encode(req, res, SERVER_VERSION, &s->out);
}

/* Get keys a batch may carry. The l1only orca pauses its handlers at
 * the reply budget, so only the batch size bounds it; the l1l2 orcas,
 * routes and a chunked pool do not pause, so their keys are as many as
 * largest values fit. */
static size_t
gets_max(const struct server *s)
{
    size_t budget = config_client_max_buffer(s->cfg);
    size_t held = (size_t)(s->rbuf.end - s->rbuf.start);

    if (orca_mode(s, s->cfg) == CFG_ORCA_L1ONLY && s->cfg->npools == 0 &&
        s->cfg->pool.chunk_size == 0 && !s->cfg->pool.batched) {
        return BATCH_MAX_GETS;
    }
    budget = budget > held ? budget - held : 0;
    return MAX(
        MIN(budget / (s->cfg->item_size_max + REPLY_OVERHEAD), BATCH_MAX_GETS),
        1);
}

/* Parse complete requests into the batch; returns bytes used. An open
 * get line fills the batch alone; its bytes are used once it closes. */
static size_t
parse_batch(struct server *s)
{
    size_t used = 0, gets = 0, gmax = gets_max(s);

    s->need = 0;
    if (s->line.nargs > 0) {
        s->nomem = line_keys(s, gmax) != ST_OK;
        return s->line.nargs > 0 ? 0 : s->line_used;
    }
    while (s->batch.n < BATCH_MAX_REQS && used < BATCH_MAX_BYTES &&
           gets < gmax) {
        struct request req;
        size_t n = 0, need = 0;
        enum status st;

        st = parse_one(s, s->rbuf.pos + used, buf_len(&s->rbuf) - used, &req,
                       &n, &need);
        if (st == ST_AGAIN) {
            s->need = need ? need : buf_len(&s->rbuf) - used + 1;
            break;
        }
        if (st == ST_PROTO && s->proto == PROTO_TEXT &&
            proto_text_is_get_line(s->rbuf.pos + used,
                                   buf_len(&s->rbuf) - used)) {
            s->skipline = true; /* a get line past TEXT_GET_LINE_MAX */
            break;
        }
        if (st != ST_OK) {
            s->closing = true;
            break;
        }
        if (batch_add(s, &req, gmax - gets) != ST_OK) {
            s->nomem = true;
            break;
        }
        gets += req_is_get(req.cmd) ? MAX(req.nkeys, 1) : 0;
        used += n;
        if (s->line.nargs > 0) {
            s->line_used = used;
            return 0;
        }
        /* a barrier (stats, flush_all) ends its batch: its combined answer
         * may point into handler buffers that a later read would move */
        if (req.swallow > 0 || req.cmd == REQ_QUIT || req.cmd == REQ_STATS ||
            req.cmd == REQ_FLUSH_ALL || (req.rflags & REQ_F_CLOSE)) {
            s->swallow = req.swallow;
            s->closing = (req.cmd == REQ_QUIT && req.err == RES_NONE) ||
                         (req.rflags & REQ_F_CLOSE);
            break;
        }
    }
    return used;
}

/* Remember a failed key of the open get line: the first error's text
 * (riven's own out of memory before any other), and how many failed
 * before any key hit or missed. */
static void
line_error(struct server *s, const struct response *res)
{
    if (s->line_err.kind == RES_NONE ||
        (res->fail == FAIL_OUT_OF_MEMORY &&
         s->line_err.fail != FAIL_OUT_OF_MEMORY)) {
        size_t n = res->msg ? MIN(res->nmsg, sizeof(s->line_msg)) : 0;

        if (n > 0) {
            memcpy(s->line_msg, res->msg, n);
        }
        s->line_err = (struct response){.kind = res->kind,
                                        .fail = res->fail,
                                        .msg = s->line_msg,
                                        .nmsg = n};
    }
    if (!s->line_answered) {
        s->line_errs++;
    }
}

/* The answer a get key gives within its line. A line where some key hit
 * or missed answers its failed keys as misses; a line where none did
 * answers with its first error alone. Riven's own out of memory is never
 * a miss: that line ends with SERVER_ERROR out of memory in place of END,
 * after the values already sent, as memcached's does. Errors therefore
 * wait for the end of the line, which may come batches later; they hold
 * no memory but their text, copied to line_msg. Other requests answer as
 * they are. */
static const struct response *
settle(struct server *s, const struct request *req, const struct response *res,
       struct response *tmp, const struct response **count)
{
    static const struct response miss = {.kind = RES_MISS};
    const uint32_t both = REQ_F_FIRST | REQ_F_LAST;
    bool last = (req->rflags & REQ_F_LAST) != 0, oom;

    *count = res;
    if (!req_is_get(req->cmd) || req->err != RES_NONE ||
        (req->rflags & both) == both) {
        return res;
    }
    if (req->rflags & REQ_F_FIRST) {
        s->line_answered = false;
        s->line_err.kind = RES_NONE;
        s->line_errs = 0;
    }
    if (res->kind == RES_VALUE || res->kind == RES_MISS) {
        s->line_answered = true;
    } else {
        line_error(s, res);
        *count = s->line_answered && res->fail != FAIL_OUT_OF_MEMORY
                     ? &miss
                     : NULL; /* decided at the end */
    }
    oom =
        s->line_err.kind != RES_NONE && s->line_err.fail == FAIL_OUT_OF_MEMORY;
    if (last && s->line_answered && !oom) {
        for (; s->line_errs > 0; s->line_errs--) {
            metrics_miss(req->cmd); /* failed keys before the first hit */
        }
    }
    if (res->kind == RES_VALUE) {
        return res;
    }
    if (last && (!s->line_answered || oom)) {
        *count = &s->line_err;
        return &s->line_err;
    }
    *tmp = *res;
    tmp->raw = NULL;
    tmp->kind = last ? RES_MISS : RES_NONE;
    return tmp;
}

/* Count one answered request: command, and the hit, miss or error kind
 * of res (NULL: none yet). */
static void
account(const struct request *req, const struct response *res, uint64_t ns)
{
    metrics_cmd(req->cmd, req->proto);
    metrics_observe_request(req->cmd, ns);
    switch (res != NULL ? res->kind : RES_NONE) {
    case RES_VALUE:
        metrics_hit(req->cmd);
        break;
    case RES_MISS:
        metrics_miss(req->cmd);
        break;
    case RES_ERROR:
    case RES_CLIENT_ERROR:
        metrics_error(MERR_CLIENT_ERROR);
        break;
    case RES_QUIT:
        if (req->cmd == REQ_NONE) {
            metrics_error(MERR_HANGUP);
        }
        break;
    case RES_SERVER_ERROR:
        metrics_error(res->fail == FAIL_BACKEND_TIMEOUT ? MERR_BACKEND_TIMEOUT
                      : res->fail == FAIL_BACKEND_UNAVAILABLE
                          ? MERR_BACKEND_UNAVAILABLE
                          : MERR_SERVER_ERROR);
        break;
    default:
        break;
    }
}

/* Encode and count the replies [from, to) of the batch into out. */
static enum status
encode_range(struct server *s, size_t from, size_t to, uint64_t t0)
{
    enum status st = ST_OK;
    uint64_t ns = util_now_ns() - t0;

    outq_reset(&s->out);
    for (size_t i = from; i < to; i++) {
        const struct request *req = &s->batch.reqs[i];
        struct response tmp;
        const struct response *count;
        const struct response *res =
            settle(s, req, &s->batch.res[i], &tmp, &count);

        if (st == ST_OK) {
            st = encode_one(s, req, res);
        }
        account(req, count, ns);
    }
    return st;
}

/* Encode, write and count the replies [from, to) of the batch. */
static enum status
answer_range(struct server *s, size_t from, size_t to, uint64_t t0)
{
    enum status st = encode_range(s, from, to, t0);

    return st == ST_OK ? write_client(s) : st;
}

/* Write out from asent on, without blocking: ST_OK all of it, ST_AGAIN
 * the client's socket is full, ST_ERROR. */
static enum status
write_nowait(struct server *s)
{
    struct iovec iov[IOV_CHUNK];

    while (s->asent < s->out.total) {
        struct msghdr mh = {.msg_iov = iov};
        ssize_t w;

        mh.msg_iovlen = (size_t)outq_iov(&s->out, s->asent, iov, IOV_CHUNK);
        w = sendmsg(s->io.fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return ST_AGAIN;
            }
            log_debug("%s: sendmsg: %s", __func__, strerror(errno));
            return ST_ERROR;
        }
        s->asent += (size_t)w;
        metrics_add(M_CLIENT_TX_BYTES, (uint64_t)w);
    }
    return ST_OK;
}

/* The async batch is answered (st): release it and tell the thread. A
 * client that got every reply waits for its next request, idle as
 * read_client marks it, so a drain that began meanwhile ends it. */
static void
async_end(struct server *s, enum status st)
{
    orca_done(s->orca);
    /* What the batch used goes now, and from this thread: not when the
     * client's thread wakes, and not into that thread's malloc cache,
     * where it would stay while the client is idle. A busy connection
     * so holds its request only while it is in flight. */
    orca_trim(s->orca);
    buf_free(&s->rbuf); /* the batch was all of it (async_ok) */
    outq_free(&s->out);
    req_batch_free(&s->batch);
    if (st == ST_OK) {
        atomic_store(&s->conn->busy, 0);
        if (atomic_load(&draining)) {
            (void)shutdown(s->io.fd, SHUT_RD);
        }
    }
    pthread_mutex_lock(&s->amu);
    s->ast = st;
    s->adone = true;
    pthread_cond_signal(&s->acv);
    pthread_mutex_unlock(&s->amu);
}

/* batch_group continuation, on the I/O thread that answered the batch's
 * last reply: encode and count the replies, write what the client's
 * socket takes, and wait (BATCH_CONT_WAIT) for it to take the rest,
 * within client_write_timeout_ms as write_client does. A client that
 * timed out is shut down: its thread's read ends. */
static enum batch_cont
answer_cont(struct batch_group *g, bool timed_out)
{
    struct server *s =
        (struct server *)(void *)((char *)g - offsetof(struct server, grp));
    enum status st;

    if (s->afirst) {
        s->afirst = false;
        s->asent = 0;
        s->ast = encode_range(s, 0, orca_finish(s->orca), s->at0);
    }
    st = s->ast;
    if (st == ST_OK && timed_out) {
        log_debug("%s: client stopped reading, closing", __func__);
        (void)shutdown(s->io.fd, SHUT_RDWR);
        st = ST_ERROR;
    } else if (st == ST_OK && (st = write_nowait(s)) == ST_AGAIN &&
               (st = outq_own(&s->out)) == ST_OK) {
        /* what is left is the queue's own now: the replies it referenced
         * may be in the I/O thread's read buffer (batch.c lends them),
         * which moves on while this client waits */
        uint32_t ms = s->cfg->client_write_timeout_ms;

        g->fd = s->io.fd;
        g->deadline_ms = ms > 0 ? util_now_ms() + ms : 0;
        return BATCH_CONT_WAIT;
    }
    async_end(s, st);
    return BATCH_CONT_DONE;
}

/* May the batch of used bytes be answered by the I/O thread? Only a
 * plain client's (TLS's state is this thread's), whose batch is all of
 * rbuf and ends nothing open (a get line, a swallow, a quit). */
static bool
async_ok(const struct server *s, size_t used)
{
    return s->io.ssl == NULL && !s->closing && s->swallow == 0 &&
           !s->skipline && s->line.nargs == 0 && used == buf_len(&s->rbuf);
}

/* After orca_start: hand the batch to the I/O threads (true), or false
 * when its replies are in already. The socket's read timeout is set
 * first: the orca is not this thread's once armed. */
static bool
answer_async(struct server *s, uint64_t t0)
{
    conn_set_timeouts(&s->io, recv_wait(s), s->io.snd_ms);
    s->at0 = t0;
    s->afirst = true;
    s->adone = false;
    s->grp.fn = answer_cont;
    s->async = orca_arm(s->orca, &s->grp);
    return s->async;
}

/* Wait for the async batch's answer; its status. */
static enum status
async_wait(struct server *s)
{
    enum status st;

    if (!s->async) {
        return ST_OK;
    }
    pthread_mutex_lock(&s->amu);
    while (!s->adone) {
        pthread_cond_wait(&s->acv, &s->amu);
    }
    st = s->ast;
    pthread_mutex_unlock(&s->amu);
    s->async = false;
    return st;
}

/* With a batch out: read the client's next bytes into the stack, then
 * take the batch's answer and its place in rbuf. A read that timed out
 * goes on in read_client, which knows why. */
static __attribute__((noinline)) enum status
read_async(struct server *s)
{
    char tmp[SERVER_FRESH_READ];
    ssize_t n;
    int err;
    enum status st;

    conn_idle(&s->io);
    do {
        n = recv(s->io.fd, tmp, sizeof(tmp), 0);
    } while (n < 0 && errno == EINTR);
    err = errno;
    if ((st = async_wait(s)) != ST_OK) {
        return st;
    }
    mark_done(s);
    if (n > 0) {
        atomic_store(&s->conn->busy, 1);
        metrics_add(M_CLIENT_RX_BYTES, (uint64_t)n);
        return buf_set(&s->rbuf, tmp, (size_t)n);
    }
    if (n < 0 && (err == EAGAIN || err == EWOULDBLOCK)) {
        return read_client(s);
    }
    if (n < 0 && err != ECONNRESET) {
        log_debug("%s: recv: %s", __func__, strerror(err));
    }
    return n == 0 ? ST_CLOSED : ST_ERROR;
}

/* The reply bytes the orca may hold for this connection: what
 * client_max_buffer leaves beside the read buffer. */
static size_t
reply_budget(const struct server *s)
{
    size_t budget = config_client_max_buffer(s->cfg);
    size_t held = (size_t)(s->rbuf.end - s->rbuf.start);

    return budget > held ? budget - held : 0;
}

/* Run the batch and write its replies: those that are final first, then
 * the rest as the orca reads them, so that a client that does not read
 * leaves riven holding at most the reply budget (backpressure). */
static enum status
answer_batch(struct server *s, size_t used)
{
    enum status st;
    uint64_t t0 = util_now_ns();
    size_t done = 0, ready;

    if (async_ok(s, used) && orca_start(s->orca, &s->batch)) {
        if (answer_async(s, t0)) {
            return ST_OK; /* read_async takes the answer */
        }
        ready = orca_finish(s->orca);
    } else {
        ready = orca_execute(s->orca, &s->batch, reply_budget(s));
    }
    for (;;) {
        st = answer_range(s, done, ready, t0);
        done = ready;
        if (st != ST_OK || !orca_busy(s->orca)) {
            break;
        }
        ready = orca_continue(s->orca, done);
    }
    orca_done(s->orca);
    return st;
}

/* Answer every complete request in rbuf. */
static enum status
process(struct server *s)
{
    for (;;) {
        enum status st;
        size_t used;

        if (s->swallow > 0) {
            swallow_bytes(s);
            if (s->swallow > 0) {
                return ST_OK;
            }
        }
        if ((st = switch_snapshot(s)) != ST_OK) {
            return st;
        }
        used = 0;
        req_batch_reset(&s->batch);
        if (s->skipline) {
            st = skip_line(s);
            if (st == ST_AGAIN) {
                return ST_OK;
            }
            if (st != ST_OK) {
                return st;
            }
        } else {
            used = parse_batch(s);
        }
        if (s->nomem) {
            return ST_NOMEM; /* nothing of this batch ran */
        }
        if (s->batch.n == 0) {
            return s->closing ? ST_CLOSED : ST_OK;
        }
        if ((st = answer_batch(s, used)) != ST_OK || s->async) {
            return st;
        }
        buf_consume(&s->rbuf, used);
        mark_done(s);
        if (s->closing) {
            return ST_CLOSED;
        }
    }
}

/* An allocation failed: this connection ends, and where its protocol
 * has a line for it, the client hears why. The line is static: nothing
 * more is allocated. */
static void
out_of_memory(struct server *s)
{
    static const char line[] = "SERVER_ERROR " MSG_OUT_OF_MEMORY "\r\n";

    log_warnx("%s: closing a client connection", __func__);
    if (s->detected && s->proto == PROTO_TEXT) {
        (void)!conn_send(&s->io, line, sizeof(line) - 1);
    }
}

/* The client's address, "ip:port", for the log. */
static void
peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    memset(&ss, 0, sizeof(ss));
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;

            inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
            port = ntohs(in->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
            port = ntohs(in6->sin6_port);
        } else {
            snprintf(buf, len, "unix");
            return;
        }
    }
    snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host,
             port);
}

/* A client of a TLS listener: the handshake, within tls_handshake_ms,
 * with the listener's context in the current snapshot (new certificates
 * after a reload). Each result is counted; a failure is logged at most
 * once a second over all threads (a scan of the port must not flood the
 * log), every one at debug. ST_OK, or ST_CLOSED. */
static __attribute__((noinline)) enum status
start_tls(struct server *s)
{
    static _Atomic uint64_t logged_ms;
    struct conn_ctx *ctx = snapshot_listen_tls(s->snap, s->conn->listen_name);
    char peer[INET6_ADDRSTRLEN + 16], detail[256], subject[256];
    enum conn_hs hs;

    peer_name(s->io.fd, peer, sizeof(peer));
    if (ctx == NULL) {
        log_warnx("tls: listener %s has no tls: in the configuration now "
                  "(it takes a restart): closing client %s",
                  s->conn->listen_name, peer);
        return ST_CLOSED;
    }
    hs = conn_accept_tls(&s->io, ctx, s->cfg->tls_handshake_timeout_ms, detail,
                         sizeof(detail), subject, sizeof(subject));
    metrics_tls_handshake(hs);
    if (hs == CONN_HS_OK) {
        metrics_gauge_add(M_TLS_CONNECTIONS_CURRENT, 1);
        log_debug("tls: client %s: %s", peer,
                  subject[0] != '\0' ? subject : "no certificate");
        return ST_OK;
    }
    if (log_every(&logged_ms, 1000)) {
        log_info("tls: client %s: handshake failed (%s): %s%s%s", peer,
                 conn_hs_name(hs), detail, subject[0] != '\0' ? ": " : "",
                 subject);
    } else {
        log_debug("tls: client %s: handshake failed (%s): %s", peer,
                  conn_hs_name(hs), detail);
    }
    return ST_CLOSED;
}

void
server_run(struct server_conn *conn)
{
    struct server s = {.io = CONN_INIT, .conn = conn};
    enum status st;

    conn_plain(&s.io, conn->fd);
    /* after the first request: the second wait for bytes */
    conn_trim_at(&s.io, 2);
    buf_init(&s.rbuf, SERVER_BUF_INIT);
    req_batch_init(&s.batch);
    outq_init(&s.out, SERVER_OUT_INIT);
    if (switch_snapshot(&s) == ST_OK) { /* sets last_done */
        conn_set_timeouts(&s.io, 0, s.cfg->client_write_timeout_ms);
    }
    st = s.snap == NULL ? ST_ERROR : conn->tls ? start_tls(&s) : ST_OK;
    pthread_mutex_init(&s.amu, NULL);
    pthread_cond_init(&s.acv, NULL);
    while (st == ST_OK) {
        if (s.async) {
            st = read_async(&s);
        } else if ((st = switch_snapshot(&s)) == ST_OK) {
            st = read_client(&s);
        }
        if (st != ST_OK || (st = process(&s)) != ST_OK) {
            break;
        }
        if (!s.async && buf_len(&s.rbuf) == 0) { /* async: not ours */
            buf_shrink(&s.rbuf);
            outq_shrink(&s.out);
        }
    }
    if (s.async) { /* a failed read: the batch is still answered */
        (void)async_wait(&s);
    }
    pthread_cond_destroy(&s.acv);
    pthread_mutex_destroy(&s.amu);
    if (st == ST_NOMEM) {
        out_of_memory(&s);
    }
    if (s.io.ssl != NULL) {
        metrics_gauge_sub(M_TLS_CONNECTIONS_CURRENT, 1);
        conn_end_tls(&s.io); /* the listener closes the fd */
    }
    orca_destroy(s.orca);
    snapshot_unref(s.snap);
    req_batch_free(&s.batch);
    outq_free(&s.out);
    buf_free(&s.rbuf);
}
