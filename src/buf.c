/*
 * buf: growable byte buffers and the writev output queue.
 */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

#define OUTQ_REF_MIN 256 /* ranges shorter than this are copied */
/* An idle buffer this small at its init size is kept: glibc would keep
 * it in the thread's cache of freed chunks (tcache, up to 1,032 bytes)
 * anyway, and the next batch would pay a malloc and a free for nothing. */
#define BUF_KEEP_MAX 1024

void
buf_init(struct buf *b, size_t init)
{
    b->start = b->pos = b->last = b->end = NULL;
    b->init = init ? init : 2048;
}

void
buf_free(struct buf *b)
{
    if (b == NULL) {
        return;
    }
    free(b->start);
    b->start = b->pos = b->last = b->end = NULL;
}

void
buf_compact(struct buf *b)
{
    size_t n = buf_len(b);

    if (b->start != NULL && b->pos != b->start) {
        memmove(b->start, b->pos, n);
        b->pos = b->start;
        b->last = b->start + n;
    }
}

enum status
buf_reserve(struct buf *b, size_t n)
{
    size_t used, size, want;
    char *p;

    if (buf_space(b) >= n) {
        return ST_OK;
    }
    used = buf_len(b);
    size = (size_t)(b->end - b->start);
    if (b->start != NULL && size - used >= n && used < size / 2) {
        buf_compact(b);
        return ST_OK;
    }
    want = size ? size : b->init;
    while (want - used < n) {
        if (want > SIZE_MAX / 2) {
            return ST_NOMEM;
        }
        want *= 2;
    }
    if (b->pos != b->start) {
        buf_compact(b);
    }
    p = realloc(b->start, want);
    if (p == NULL) {
        return ST_NOMEM;
    }
    b->start = b->pos = p;
    b->last = p + used;
    b->end = p + want;
    return ST_OK;
}

enum status
buf_append(struct buf *b, const void *p, size_t len)
{
    if (len == 0) {
        return ST_OK;
    }
    if (buf_reserve(b, len) != ST_OK) {
        return ST_NOMEM;
    }
    memcpy(b->last, p, len);
    b->last += len;
    return ST_OK;
}

enum status
buf_set(struct buf *b, const void *p, size_t len)
{
    char *m;

    if (b->start != NULL || len == 0) {
        return buf_append(b, p, len);
    }
    if ((m = malloc(len)) == NULL) {
        return ST_NOMEM;
    }
    memcpy(m, p, len);
    b->start = b->pos = m;
    b->last = b->end = m + len;
    return ST_OK;
}

void
buf_consume(struct buf *b, size_t n)
{
    if (n == 0) {
        return;
    }
    b->pos += n;
    if (b->pos >= b->last) {
        b->pos = b->last = b->start;
    }
}

void
buf_shrink(struct buf *b)
{
    size_t size = (size_t)(b->end - b->start);

    if (b->start != NULL && buf_len(b) == 0 &&
        (size > b->init || size > BUF_KEEP_MAX)) {
        free(b->start);
        b->start = b->pos = b->last = b->end = NULL;
    }
}

void
outq_init(struct outq *q, size_t init)
{
    buf_init(&q->own, init);
    q->ents = NULL;
    q->n = q->cap = q->total = 0;
    q->copy = false;
}

void
outq_free(struct outq *q)
{
    if (q == NULL) {
        return;
    }
    buf_free(&q->own);
    free(q->ents);
    q->ents = NULL;
    q->n = q->cap = q->total = 0;
}

void
outq_reset(struct outq *q)
{
    q->own.pos = q->own.last = q->own.start;
    q->n = 0;
    q->total = 0;
}

void
outq_shrink(struct outq *q)
{
    outq_reset(q);
    buf_shrink(&q->own);
    if (q->cap > 64) {
        free(q->ents);
        q->ents = NULL;
        q->cap = 0;
    }
}

static enum status
outq_push(struct outq *q, const char *ref, size_t off, size_t len)
{
    struct outq_ent *e;

    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 8;

        e = realloc(q->ents, cap * sizeof(*e));
        if (e == NULL) {
            return ST_NOMEM;
        }
        q->ents = e;
        q->cap = cap;
    }
    e = &q->ents[q->n++];
    e->ref = ref;
    e->off = off;
    e->len = len;
    return ST_OK;
}

char *
outq_reserve(struct outq *q, size_t n)
{
    return buf_reserve(&q->own, MAX(n, 1)) == ST_OK ? q->own.last : NULL;
}

enum status
outq_commit(struct outq *q, size_t len)
{
    size_t off = (size_t)(q->own.last - q->own.start);

    if (len == 0) {
        return ST_OK;
    }
    if (q->n > 0 && q->ents[q->n - 1].ref == NULL &&
        q->ents[q->n - 1].off + q->ents[q->n - 1].len == off) {
        q->ents[q->n - 1].len += len;
    } else if (outq_push(q, NULL, off, len) != ST_OK) {
        return ST_NOMEM;
    }
    q->own.last += len;
    q->total += len;
    return ST_OK;
}

enum status
outq_copy(struct outq *q, const void *p, size_t len)
{
    char *room;

    if (len == 0) {
        return ST_OK;
    }
    if ((room = outq_reserve(q, len)) == NULL) {
        return ST_NOMEM;
    }
    memcpy(room, p, len);
    return outq_commit(q, len);
}

enum status
outq_ref(struct outq *q, const void *p, size_t len)
{
    if (len < OUTQ_REF_MIN || q->copy) {
        return outq_copy(q, p, len);
    }
    if (outq_push(q, p, 0, len) != ST_OK) {
        return ST_NOMEM;
    }
    q->total += len;
    return ST_OK;
}

enum status
outq_own(struct outq *q)
{
    for (size_t i = 0; i < q->n; i++) {
        struct outq_ent *e = &q->ents[i];
        char *room;

        if (e->ref == NULL) {
            continue;
        }
        if ((room = outq_reserve(q, e->len)) == NULL) {
            return ST_NOMEM;
        }
        memcpy(room, e->ref, e->len);
        e->ref = NULL;
        e->off = (size_t)(room - q->own.start);
        q->own.last += e->len;
    }
    return ST_OK;
}

int
outq_iov(const struct outq *q, size_t skip, struct iovec *iov, int max)
{
    int n = 0;

    for (size_t i = 0; i < q->n && n < max; i++) {
        const struct outq_ent *e = &q->ents[i];
        const char *base = e->ref ? e->ref : q->own.start + e->off;

        if (skip >= e->len) {
            skip -= e->len;
            continue;
        }
        iov[n].iov_base = (void *)(base + skip);
        iov[n].iov_len = e->len - skip;
        skip = 0;
        n++;
    }
    return n;
}
