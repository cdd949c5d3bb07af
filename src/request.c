/*
 * request: command names, key rules, what the text and meta protocols
 * share (the command line, a storage command's data block, status and
 * error lines) and the growable batch arrays.
 */
#include "request.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"

static const char *const cmd_names[REQ_CMD_COUNT] = {[REQ_NONE] = "none",
#define REQ_NAME(name, text) [REQ_##name] = (text),
                                                     REQ_CMD_MAP(REQ_NAME)
#undef REQ_NAME
};

const char *
req_cmd_name(enum req_cmd cmd)
{
    return cmd < REQ_CMD_COUNT ? cmd_names[cmd] : "none";
}

bool
req_is_get(enum req_cmd cmd)
{
    return cmd == REQ_GET || cmd == REQ_GETS || cmd == REQ_GAT ||
           cmd == REQ_GATS;
}

bool
req_is_storage(enum req_cmd cmd)
{
    return cmd == REQ_SET || cmd == REQ_ADD || cmd == REQ_REPLACE ||
           cmd == REQ_APPEND || cmd == REQ_PREPEND || cmd == REQ_CAS;
}

bool
req_key_valid(const char *key, size_t nkey)
{
    if (nkey == 0 || nkey > KEY_MAX_LENGTH) {
        return false;
    }
    for (size_t i = 0; i < nkey; i++) {
        unsigned char c = (unsigned char)key[i];

        if (c == ' ' || c == '\n' || c == '\0') {
            return false;
        }
    }
    return true;
}

void
res_set_error(struct response *res, enum res_kind kind, const char *msg)
{
    res->kind = kind;
    res->fail = FAIL_NONE;
    res->msg = msg;
    res->nmsg = msg ? strlen(msg) : 0;
}

void
res_set_fail(struct response *res, enum res_fail why)
{
    static const char *const msgs[] = {
        [FAIL_NONE] = NULL,
        [FAIL_BACKEND_TIMEOUT] = MSG_BACKEND_TIMEOUT,
        [FAIL_BACKEND_UNAVAILABLE] = MSG_BACKEND_UNAVAILABLE,
        [FAIL_BACKEND_ERROR] = MSG_BACKEND_ERROR,
        [FAIL_OUT_OF_MEMORY] = MSG_OUT_OF_MEMORY,
    };

    res_set_error(res, RES_SERVER_ERROR, msgs[why]);
    res->fail = why;
}

void
req_line_split(const char *buf, const char *nl, size_t maxtok,
               struct req_line *l)
{
    const char *nul;
    const char *cur = buf;

    l->p = buf;
    l->n = (size_t)(nl - buf);
    l->size = l->n + 1;
    if (l->n > 1 && buf[l->n - 1] == '\r') {
        l->n--;
    }
    nul = memchr(buf, '\0', l->n);
    if (nul != NULL) {
        l->n = (size_t)(nul - buf);
    }
    l->nt = 0;
    while (l->nt < maxtok &&
           util_next_token(&cur, l->p + l->n, &l->t[l->nt].p, &l->t[l->nt].n)) {
        l->nt++;
    }
}

enum status
req_data_block(const char *buf, size_t len, size_t nline, size_t vlen,
               size_t item_size_max, struct request *out, size_t *consumed,
               size_t *need)
{
    const char *data;

    if (out->err == RES_NONE && vlen > item_size_max) {
        out->rflags |= REQ_F_TOOLARGE;
        out->err = RES_SERVER_ERROR;
        out->errmsg = MSG_TOO_LARGE;
    }
    if (out->err != RES_NONE) {
        out->swallow = vlen + 2;
        return ST_OK;
    }
    *need = nline + vlen + 2;
    if (len < *need) {
        *consumed = 0;
        return ST_AGAIN;
    }
    *consumed = *need;
    *need = 0;
    data = buf + nline;
    if (data[vlen] != '\r' || data[vlen + 1] != '\n') {
        out->err = RES_CLIENT_ERROR;
        out->errmsg = MSG_BAD_CHUNK;
        return ST_OK;
    }
    out->val = data;
    out->nval = vlen;
    return ST_OK;
}

#define COPY(q, lit) outq_copy((q), lit, sizeof(lit) - 1)

enum status
res_encode_line(struct outq *q, const char *prefix, size_t nprefix,
                const char *msg, size_t nmsg)
{
    if (outq_copy(q, prefix, nprefix) != ST_OK ||
        (nmsg > 0 &&
         (COPY(q, " ") != ST_OK || outq_copy(q, msg, nmsg) != ST_OK))) {
        return ST_NOMEM;
    }
    return COPY(q, "\r\n");
}

void
req_batch_init(struct req_batch *b)
{
    b->reqs = NULL;
    b->res = NULL;
    b->n = b->cap = 0;
}

void
req_batch_free(struct req_batch *b)
{
    if (b == NULL) {
        return;
    }
    free(b->reqs);
    free(b->res);
    req_batch_init(b);
}

void
req_batch_reset(struct req_batch *b)
{
    b->n = 0;
}

struct request *
req_batch_push(struct req_batch *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1;
        struct request *rq = realloc(b->reqs, cap * sizeof(*rq));

        if (rq == NULL) {
            return NULL;
        }
        b->reqs = rq;
        struct response *rs = realloc(b->res, cap * sizeof(*rs));
        if (rs == NULL) {
            return NULL;
        }
        b->res = rs;
        b->cap = cap;
    }
    memset(&b->reqs[b->n], 0, sizeof(b->reqs[0]));
    memset(&b->res[b->n], 0, sizeof(b->res[0]));
    return &b->reqs[b->n++];
}
