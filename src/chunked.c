/*
 * chunked: a command on a chunked pool as rounds (chunked.h).
 *
 * A job's answer slots never move and are never reused within a batch: a
 * handler re-points the values of the answers it decoded whenever its read
 * buffer grows, until the batch ends. head[0] is the metadata read, head[1]
 * chunk 0 (reads) or the metadata write (writes); more[] holds round 2's
 * chunks (reads: 1 .. n-1) or every chunk of a write.
 *
 * A write's chunk items are made once, in chunked_start, into one block
 * of job memory (items: header, payload, zero padding, each), and its
 * metadata into meta: handlers send values by reference until they flush
 * (handler.h), so both stay put until chunked_free, after the batch. The
 * client's value is copied once, into items, and needed no longer.
 */
#include "chunked.h"

#include <stdlib.h>
#include <string.h>

#include "chunk.h"
#include "metrics.h"

enum job_kind { JOB_READ = 0, JOB_TOUCH, JOB_WRITE };

struct chunked {
    struct request req;    /* the command; its refs are the batch's */
    struct response *res;  /* its answer, or NULL */
    struct chunk_keyid id; /* the key's chunk names */
    struct chunk_meta m;   /* write: the new value's; read: the stored one */
    uint8_t kind;          /* enum job_kind */
    uint8_t round;         /* rounds sent */
    bool done;
    bool touch;  /* read: gat, gats, mg T: chunks touched as read */
    bool want_v; /* mg: the client asked for the value */
    bool check;  /* write: the metadata is read first */
    bool bad;    /* write: a flag riven cannot read; memcached's to
                    answer, so the metadata write goes alone */
    int mode;    /* write: 'S', 'E' (add) or 'R' (replace) */
    bool cmp;    /* write: compare CAS cas_cmp with the stored one */
    uint64_t cas_cmp;
    int64_t exptime; /* chunks' TTL: writes, gat, touch */
    uint32_t flags;  /* write: the client's flags */
    char *items;     /* write: the chunk items' values, nchunks of
                        CHUNK_VALUE_LEN(chunk_size), until chunked_free */
    char *args;      /* mg: the flags sent to the metadata item */
    size_t nargs;
    char *own; /* the answer's bytes */
    char *msg; /* a backend error's text and reply, copied */
    struct response *more;
    size_t nmore;
    uint8_t hsent;    /* the head answers of the last round: bit i */
    size_t sent_more; /* the last round's answers in more[]: from here */
    char meta[CHUNK_META_LEN];
    struct response head[2];
};

bool
chunked_takes(const struct request *req)
{
    if (req->key == NULL || req->err != RES_NONE) {
        return false;
    }
    switch (req->cmd) {
    case REQ_DELETE:
    case REQ_MD:
    case REQ_ME:
        return false;
    default:
        return true;
    }
}

/* The key's bytes as memcached stores them. */
static void
key_id(const struct request *req, struct chunk_keyid *id)
{
    char dec[KEY_MAX_LENGTH + 8];
    size_t n;

    if ((req->rflags & REQ_F_B64KEY) &&
        util_b64_decode(req->key, req->nkey, dec, sizeof(dec), &n)) {
        chunk_keyid(dec, n, id);
    } else {
        chunk_keyid(req->key, req->nkey, id);
    }
}

/* Make the answer final. */
static void
finish(struct chunked *j, const struct response *r)
{
    if (j->res != NULL) {
        *j->res = *r;
    }
    j->done = true;
}

static void
finish_error(struct chunked *j, enum res_kind kind, const char *msg)
{
    struct response r = {0};

    res_set_error(&r, kind, msg);
    finish(j, &r);
}

/* A backend's answer that is the command's: its texts copied out of the
 * handler's buffer. */
static void
finish_copy(struct chunked *j, const struct response *sub)
{
    struct response r = *sub;
    size_t n = (r.msg ? r.nmsg : 0) + (r.raw ? r.nraw : 0);

    r.val = NULL;
    r.nval = 0;
    if (n > 0 && sub->fail == FAIL_NONE) {
        if ((j->msg = malloc(n)) == NULL) {
            res_set_fail(&r, FAIL_OUT_OF_MEMORY);
            finish(j, &r);
            return;
        }
        if (r.msg != NULL) {
            memcpy(j->msg, r.msg, r.nmsg);
            r.msg = j->msg;
        }
        if (r.raw != NULL) {
            memcpy(j->msg + (r.msg ? r.nmsg : 0), sub->raw, r.nraw);
            r.raw = j->msg + (r.msg ? r.nmsg : 0);
        }
    }
    finish(j, &r);
}

static bool
is_error(const struct response *r)
{
    return r->kind == RES_ERROR || r->kind == RES_CLIENT_ERROR ||
           r->kind == RES_SERVER_ERROR;
}

/* Append s[0..n) at p; returns the end. */
static char *
put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

/* ---- the flags of meta commands ---- */

/* mg: refuse what a chunked value cannot honour, note v and T, and make
 * the flags sent to the metadata item (v added). false: refused. */
static bool
mg_flags(struct chunked *j)
{
    const char *cur = j->req.args, *end = cur + j->req.nargs, *tok;
    size_t ntok;

    j->want_v = false;
    while (j->req.nargs > 0 && util_next_token(&cur, end, &tok, &ntok)) {
        switch (tok[0]) {
        case 'N': /* vivify: an empty item is no value */
        case 'R': /* recache: wins belong to whole values */
            return false;
        case 'v':
            j->want_v = true;
            break;
        case 'T':
            j->touch = true;
            if (!util_parse_i64(tok + 1, ntok - 1, &j->exptime)) {
                j->touch = false; /* memcached refuses the line */
            }
            break;
        default:
            break;
        }
    }
    j->nargs = j->req.nargs + 2;
    if ((j->args = malloc(j->nargs)) == NULL) {
        return true; /* round 1 answers out of memory */
    }
    if (j->req.nargs > 0) {
        memcpy(j->args, j->req.args, j->req.nargs);
    }
    if (j->want_v) {
        j->nargs = j->req.nargs;
    } else if (j->req.nargs > 0) {
        memcpy(j->args + j->req.nargs, " v", 2);
    } else {
        j->args[0] = 'v';
        j->nargs = 1;
    }
    return true;
}

/* ms: the mode, the compare, the TTL and the flags. false: refused. */
static bool
ms_flags(struct chunked *j)
{
    const char *cur = j->req.args, *end = cur + j->req.nargs, *tok;
    size_t ntok;

    while (j->req.nargs > 0 && util_next_token(&cur, end, &tok, &ntok)) {
        switch (tok[0]) {
        case 'I': /* invalidate: a stale value is not chunked */
        case 'N': /* vivify on append */
            return false;
        case 'M':
            if (ntok != 2) {
                j->bad = true;
                break;
            }
            switch (tok[1]) {
            case 'E':
            case 'e':
                j->mode = 'E';
                break;
            case 'R':
            case 'r':
                j->mode = 'R';
                break;
            case 'S':
            case 's':
                j->mode = 'S';
                break;
            case 'A':
            case 'a':
            case 'P':
            case 'p':
                return false;
            default:
                j->bad = true;
                break;
            }
            break;
        case 'C':
            j->cmp = true;
            j->bad |= !util_parse_u64(tok + 1, ntok - 1, &j->cas_cmp);
            break;
        case 'T':
            j->bad |= !util_parse_i64(tok + 1, ntok - 1, &j->exptime);
            break;
        case 'F':
            j->bad |= !util_parse_u32(tok + 1, ntok - 1, &j->flags);
            break;
        default:
            break;
        }
    }
    return true;
}

/* ---- start ---- */

static enum metrics_chunked_op
op_of(enum req_cmd cmd)
{
    switch (cmd) {
    case REQ_TOUCH:
        return MCHUNK_TOUCH;
    case REQ_SET:
    case REQ_ADD:
    case REQ_REPLACE:
    case REQ_CAS:
    case REQ_MS:
        return MCHUNK_SET;
    default:
        return MCHUNK_GET;
    }
}

/* Set the job up for req; false if req is refused. */
static bool
job_setup(struct chunked *j)
{
    const struct request *req = &j->req;

    j->mode = 'S';
    switch (req->cmd) {
    case REQ_GET:
    case REQ_GETS:
        j->kind = JOB_READ;
        return true;
    case REQ_GAT:
    case REQ_GATS:
        j->kind = JOB_READ;
        j->touch = true;
        j->exptime = req->exptime;
        return true;
    case REQ_MG:
        j->kind = JOB_READ;
        return mg_flags(j);
    case REQ_TOUCH:
        j->kind = JOB_TOUCH;
        j->exptime = req->exptime;
        return true;
    case REQ_SET:
    case REQ_ADD:
    case REQ_REPLACE:
    case REQ_CAS:
        j->kind = JOB_WRITE;
        j->mode = req->cmd == REQ_ADD       ? 'E'
                  : req->cmd == REQ_REPLACE ? 'R'
                                            : 'S';
        j->cmp = req->cmd == REQ_CAS;
        j->cas_cmp = req->cas;
        j->exptime = req->exptime;
        j->flags = req->flags;
        return true;
    case REQ_MS:
        j->kind = JOB_WRITE;
        return ms_flags(j);
    default: /* incr, decr, append, prepend, ma */
        return false;
    }
}

/* Every chunk item of the write, from value (m.total bytes): the value's
 * one copy, which a round that reads first needs anyway (the batch's
 * buffers may move before round 2). ST_OK or ST_NOMEM. */
static enum status
make_items(struct chunked *j, const char *value)
{
    size_t len = CHUNK_VALUE_LEN((size_t)j->m.chunk_size);

    if (j->m.nchunks == 0) {
        return ST_OK;
    }
    if (j->m.nchunks > SIZE_MAX / len ||
        (j->items = malloc(j->m.nchunks * len)) == NULL) {
        return ST_NOMEM;
    }
    for (uint32_t i = 0; i < j->m.nchunks; i++) {
        (void)chunk_encode(j->items + i * len, len, &j->m, &j->id, i, value);
    }
    return ST_OK;
}

struct chunked *
chunked_start(const struct request *req, struct response *res,
              uint32_t chunk_size)
{
    struct chunked *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        return NULL;
    }
    j->req = *req;
    j->res = res;
    if (!job_setup(j)) {
        metrics_chunked_op(MCHUNK_REFUSED);
        finish_error(j, RES_CLIENT_ERROR, MSG_CHUNKED);
        return j;
    }
    metrics_chunked_op(op_of(req->cmd));
    key_id(req, &j->id);
    if (j->kind != JOB_WRITE) {
        return j;
    }
    j->check = !j->bad && (j->mode != 'S' || j->cmp);
    if (chunk_meta_init(&j->m, req->nval, j->flags, j->exptime, chunk_size,
                        chunk_token()) != ST_OK) {
        finish_error(j, RES_SERVER_ERROR, MSG_CHUNKED);
        return j;
    }
    if (!j->bad && make_items(j, req->val) != ST_OK) {
        chunked_free(j);
        return NULL;
    }
    return j;
}

bool
chunked_ready(const struct chunked *j)
{
    for (size_t i = 0; i < NELEMS(j->head); i++) {
        if ((j->hsent & (1u << i)) && j->head[i].kind == RES_NONE) {
            return false;
        }
    }
    for (size_t i = j->sent_more; i < j->nmore; i++) {
        if (j->more[i].kind == RES_NONE) {
            return false;
        }
    }
    return true;
}

void
chunked_free(struct chunked *j)
{
    if (j == NULL) {
        return;
    }
    free(j->args);
    free(j->items);
    free(j->own);
    free(j->msg);
    free(j->more);
    free(j);
}

/* ---- sending ---- */

/* The request for chunk index: a read, a read that touches, a touch. */
static void
send_chunk_read(struct chunked *j, uint32_t index, struct response *res,
                chunked_send_fn send, void *arg)
{
    char key[CHUNK_KEY_LEN];
    struct request r = {.cmd = j->kind == JOB_TOUCH ? REQ_TOUCH
                               : j->touch           ? REQ_GAT
                                                    : REQ_GET,
                        .key = key,
                        .nkey = chunk_key(key, sizeof(key), &j->id, index),
                        .exptime = j->exptime};

    send(arg, &r, res);
}

/* The metadata read of round 1: the command itself for mg (its flags, v
 * added), else a get (a gat for gat, gats and touch) with the CAS and TTL
 * the client asked for. */
static void
send_meta_read(struct chunked *j, chunked_send_fn send, void *arg)
{
    struct request r = {.key = j->req.key,
                        .nkey = j->req.nkey,
                        .rflags =
                            j->req.rflags &
                            (REQ_F_B64KEY | REQ_F_RET_CAS | REQ_F_RET_TTL),
                        .exptime = j->exptime};

    if (j->req.cmd == REQ_MG) {
        r.cmd = REQ_MG;
        r.proto = PROTO_META;
        r.args = j->args;
        r.nargs = j->nargs;
    } else if (j->kind == JOB_WRITE) {
        r.cmd = REQ_GET;
        r.rflags = (j->req.rflags & REQ_F_B64KEY) | REQ_F_RET_CAS;
    } else {
        r.cmd = j->kind == JOB_TOUCH || j->touch ? REQ_GAT : REQ_GET;
        if (j->req.cmd == REQ_GETS || j->req.cmd == REQ_GATS) {
            r.rflags |= REQ_F_RET_CAS;
        }
    }
    send(arg, &r, &j->head[0]);
}

static bool
more_reserve(struct chunked *j, size_t n)
{
    j->sent_more = j->nmore;
    if (n == 0) {
        return true;
    }
    j->more = calloc(n, sizeof(*j->more));
    if (j->more == NULL) {
        return false;
    }
    j->nmore = n;
    return true;
}

/* Every chunk, then the metadata; with alone, the metadata only. */
static void
send_write(struct chunked *j, bool alone, chunked_send_fn send, void *arg)
{
    struct request r = j->req;
    char key[CHUNK_KEY_LEN];

    if (!alone) {
        size_t len = CHUNK_VALUE_LEN((size_t)j->m.chunk_size);

        if (!more_reserve(j, j->m.nchunks)) {
            finish_error(j, RES_SERVER_ERROR, MSG_OUT_OF_MEMORY);
            return;
        }
        for (uint32_t i = 0; i < j->m.nchunks; i++) {
            struct request c = {.cmd = REQ_SET,
                                .key = key,
                                .nkey = chunk_key(key, sizeof(key), &j->id, i),
                                .val = j->items + i * len, /* job's: sent
                                                              by reference */
                                .nval = len,
                                .exptime = j->exptime};

            send(arg, &c, &j->more[i]);
        }
        metrics_chunked_chunks(j->m.nchunks);
    }
    r.val = j->meta;
    r.nval = chunk_meta_encode(j->meta, sizeof(j->meta), &j->m);
    r.rflags &= REQ_F_B64KEY | REQ_F_RET_CAS;
    if (r.cmd != REQ_MS) {
        r.proto = PROTO_TEXT;
        r.flags = j->flags;
    }
    send(arg, &r, &j->head[1]);
    j->hsent = 2;
}

/* ---- reading the answers ---- */

/* The metadata of head[0]: ST_OK, a miss (ST_ERROR) or an error answered
 * (ST_AGAIN, the job done). */
static enum status
take_meta(struct chunked *j)
{
    const struct response *r = &j->head[0];

    if (is_error(r)) {
        finish_copy(j, r);
        return ST_AGAIN;
    }
    if (r->kind != RES_VALUE) {
        return ST_ERROR;
    }
    return chunk_meta_decode(r->val, r->nval, &j->m);
}

/* Chunk index's answer: ST_OK, a miss counted (ST_ERROR), or an error
 * answered (ST_AGAIN). */
static enum status
take_chunk(struct chunked *j, const struct response *r, uint32_t index)
{
    const char *p;
    size_t n;

    if (is_error(r)) {
        finish_copy(j, r);
        return ST_AGAIN;
    }
    if (j->kind == JOB_TOUCH) {
        if (r->kind == RES_TOUCHED) {
            return ST_OK;
        }
        metrics_chunked_chunk_miss();
        return ST_ERROR;
    }
    if (r->kind != RES_VALUE) {
        metrics_chunked_chunk_miss();
        return ST_ERROR;
    }
    if (chunk_check(r->val, r->nval, &j->m, &j->id, index, &p, &n) != ST_OK) {
        metrics_chunked_token_mismatch();
        return ST_ERROR;
    }
    return ST_OK;
}

/* The chunk of index among the answers. */
static const struct response *
chunk_res(const struct chunked *j, uint32_t index)
{
    return index == 0 ? &j->head[1] : &j->more[index - 1];
}

/* A miss: the client's, or for mg memcached's EN line as a miss of the
 * flags sent would read ("EN" with O and k as asked, " b" last). */
static void
finish_miss(struct chunked *j)
{
    struct response r = {.kind =
                             j->kind == JOB_TOUCH ? RES_NOT_FOUND : RES_MISS};
    const char *cur = j->req.args, *end = cur + j->req.nargs, *tok;
    size_t ntok;
    char *p;

    if (j->req.cmd != REQ_MG) {
        finish(j, &r);
        return;
    }
    /* "EN", each O token with a space before it (at most the flags and
     * one more byte), " k" + the key, " b", "\r\n" */
    free(j->own);
    if ((j->own = malloc(2 + j->req.nargs + 1 + 2 + j->req.nkey + 2 + 2)) ==
        NULL) {
        finish_error(j, RES_SERVER_ERROR, MSG_OUT_OF_MEMORY);
        return;
    }
    p = PUT_LIT(j->own, "EN");
    while (j->req.nargs > 0 && util_next_token(&cur, end, &tok, &ntok)) {
        if (tok[0] == 'O') {
            *p++ = ' ';
            p = put(p, tok, ntok);
        } else if (tok[0] == 'k') {
            p = put(PUT_LIT(p, " k"), j->req.key, j->req.nkey);
        }
    }
    if (j->req.rflags & REQ_F_B64KEY) {
        p = PUT_LIT(p, " b");
    }
    p = PUT_LIT(p, "\r\n");
    r.raw = j->own;
    r.nraw = (size_t)(p - j->own);
    finish(j, &r);
}

/* mg's reply line: memcached's for the metadata item, "VA 48" made
 * "VA <total>" (or "HD" without v) and s48 s<total>. Writes it to out
 * (room: the line's length + 40); returns its length with "\r\n". */
static size_t
mg_line(const struct chunked *j, const struct response *meta, char *out)
{
    const char *line = meta->raw, *eol = memchr(line, '\r', meta->nraw);
    const char *cur = line + 3, *end = eol, *tok;
    char *p = out;
    size_t ntok;

    if (j->want_v) {
        p = PUT_LIT(p, "VA ");
        p += util_u64_str(p, j->m.total);
    } else {
        p = PUT_LIT(p, "HD");
    }
    (void)util_next_token(&cur, end, &tok, &ntok); /* the 48 */
    while (util_next_token(&cur, end, &tok, &ntok)) {
        *p++ = ' ';
        if (tok[0] == 's') {
            *p++ = 's';
            p += util_u64_str(p, j->m.total);
        } else {
            p = put(p, tok, ntok);
        }
    }
    p = PUT_LIT(p, "\r\n");
    return (size_t)(p - out);
}

/* Every chunk checked: the value assembled, the answer made. */
static void
finish_hit(struct chunked *j)
{
    const struct response *meta = &j->head[0];
    struct response r = {.kind = j->kind == JOB_TOUCH ? RES_TOUCHED : RES_VALUE,
                         .flags = meta->flags,
                         .cas = meta->cas,
                         .ttl = meta->ttl};
    size_t line = 0, cap = (size_t)j->m.total;
    char *p;

    if (j->kind == JOB_TOUCH) {
        finish(j, &r);
        return;
    }
    if (j->req.cmd == REQ_MG) {
        cap += meta->nraw + 40 + 2;
    }
    free(j->own);
    if ((j->own = malloc(MAX(cap, 1))) == NULL) {
        finish_error(j, RES_SERVER_ERROR, MSG_OUT_OF_MEMORY);
        return;
    }
    if (j->req.cmd == REQ_MG) {
        line = mg_line(j, meta, j->own);
    }
    p = j->own + line;
    for (uint32_t i = 0; i < j->m.nchunks; i++) {
        const struct response *c = chunk_res(j, i);
        uint64_t off;
        uint32_t len;

        chunk_span(&j->m, i, &off, &len);
        memcpy(p + off, c->val + CHUNK_HDR_LEN, len);
    }
    r.val = p;
    r.nval = (size_t)j->m.total;
    if (j->req.cmd == REQ_MG) {
        r.nraw = line;
        if (j->want_v) {
            (void)PUT_LIT(p + j->m.total, "\r\n");
            r.nraw += (size_t)j->m.total + 2;
        }
        r.raw = j->own;
    }
    metrics_chunked_chunks(j->m.nchunks);
    finish(j, &r);
}

/* Round 1 of a read or touch is in: answer, or ask for the rest. */
static bool
read_round1(struct chunked *j, chunked_send_fn send, void *arg)
{
    enum status st = take_meta(j);

    if (st == ST_AGAIN) {
        return false;
    }
    if (st != ST_OK) {
        if (is_error(&j->head[1])) { /* chunk 0's error says more */
            finish_copy(j, &j->head[1]);
        } else {
            finish_miss(j);
        }
        return false;
    }
    if (j->m.nchunks > 0) {
        st = take_chunk(j, &j->head[1], 0);
        if (st == ST_AGAIN) {
            return false;
        }
        if (st != ST_OK) {
            finish_miss(j);
            return false;
        }
    }
    if (j->m.nchunks <= 1) {
        finish_hit(j);
        return false;
    }
    if (!more_reserve(j, j->m.nchunks - 1)) {
        finish_error(j, RES_SERVER_ERROR, MSG_OUT_OF_MEMORY);
        return false;
    }
    j->hsent = 0;
    for (uint32_t i = 1; i < j->m.nchunks; i++) {
        send_chunk_read(j, i, &j->more[i - 1], send, arg);
    }
    return true;
}

/* Round 2 of a read or touch is in. */
static void
read_round2(struct chunked *j)
{
    for (uint32_t i = 1; i < j->m.nchunks; i++) {
        enum status st = take_chunk(j, chunk_res(j, i), i);

        if (st == ST_AGAIN) {
            return;
        }
        if (st != ST_OK) {
            finish_miss(j);
            return;
        }
    }
    finish_hit(j);
}

/* A write's chunks and metadata are in: the metadata's answer is the
 * command's, unless a chunk failed (the value then reads as a miss). */
static void
write_done(struct chunked *j)
{
    for (size_t i = j->sent_more; i < j->nmore; i++) {
        if (is_error(&j->more[i])) {
            finish_copy(j, &j->more[i]);
            return;
        }
    }
    finish_copy(j, &j->head[1]);
}

/* Does the stored metadata (head[0]) let the write go ahead? */
static bool
write_allowed(struct chunked *j)
{
    const struct response *r = &j->head[0];
    struct chunk_meta old;
    bool valid = r->kind == RES_VALUE &&
                 chunk_meta_decode(r->val, r->nval, &old) == ST_OK;

    if (j->mode == 'E' && valid) {
        return false;
    }
    if (j->mode == 'R' && !valid) {
        return false;
    }
    return !j->cmp || (valid && r->cas == j->cas_cmp);
}

bool
chunked_round(struct chunked *j, chunked_send_fn send, void *arg)
{
    if (j->done) {
        return false;
    }
    j->round++;
    switch (j->kind) {
    case JOB_WRITE:
        if (j->round == 1 && j->bad) {
            send_write(j, true, send, arg);
        } else if (j->round == 1 && j->check) {
            send_meta_read(j, send, arg);
            j->hsent = 1;
        } else if (j->round == 1 || (j->round == 2 && j->check)) {
            if (j->round == 2 && is_error(&j->head[0])) {
                finish_copy(j, &j->head[0]);
                return false;
            }
            send_write(j, j->round == 2 && !write_allowed(j), send, arg);
        } else {
            write_done(j);
            return false;
        }
        return !j->done;
    default:
        if (j->round == 1) {
            if (j->req.cmd == REQ_MG && j->args == NULL) {
                finish_error(j, RES_SERVER_ERROR, MSG_OUT_OF_MEMORY);
                return false;
            }
            send_meta_read(j, send, arg);
            send_chunk_read(j, 0, &j->head[1], send, arg);
            j->hsent = 3;
            return true;
        }
        if (j->round == 2) {
            return read_round1(j, send, arg);
        }
        read_round2(j);
        return false;
    }
}
