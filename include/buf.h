/*
 * buf: a growable byte buffer in nginx's shape, and an output queue of
 * byte ranges for writev.
 *
 *   start          pos              last             end
 *     |  consumed   |  unread bytes   |  free space    |
 *
 * Producers append at last; consumers advance pos. buf_compact moves the
 * unread bytes to start. Growth doubles; buf_shrink frees an idle
 * buffer of more than 1 KiB or more than its initial size. Growth moves the
 * bytes: pointers into a buffer are valid only until its next grow or compact.
 *
 * An outq collects a reply as a list of ranges: bytes copied into its own
 * buf (headers, short replies) and references to bytes that live elsewhere
 * (value data in a backend's read buffer), so values are forwarded without
 * a copy. Ranges are resolved to a struct iovec array only when written.
 *
 * Not thread-safe: each buffer belongs to one connection thread.
 */
#ifndef RIVEN_BUF_H
#define RIVEN_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#include "util.h"

struct buf {
    char *start; /* allocation, or NULL before first use */
    char *pos;   /* first unread byte */
    char *last;  /* one past the last byte written */
    char *end;   /* one past the allocation */
    size_t init; /* size to allocate first and to shrink back to */
};

/* An empty buffer that allocates init bytes on first use. No allocation. */
void buf_init(struct buf *b, size_t init);
/* Frees the memory; b may be reused after buf_init. NULL-safe. */
void buf_free(struct buf *b);

static inline size_t
buf_len(const struct buf *b)
{
    return (size_t)(b->last - b->pos);
}

static inline size_t
buf_space(const struct buf *b)
{
    return (size_t)(b->end - b->last);
}

/* Ensure at least n bytes of free space after last, compacting first when
 * that suffices. ST_OK or ST_NOMEM; moves bytes on success. */
enum status buf_reserve(struct buf *b, size_t n) WUR;

/* Append len bytes. ST_OK or ST_NOMEM. */
enum status buf_append(struct buf *b, const void *p, size_t len) WUR;

/* Append len bytes; a buffer with nothing allocated takes an allocation
 * of exactly len (and grows from there), for bytes that are seldom added
 * to: what a connection holds while its request is in flight is then the
 * request, not init bytes. ST_OK or ST_NOMEM. */
enum status buf_set(struct buf *b, const void *p, size_t len) WUR;

/* Mark n bytes consumed; when none remain, reset pos = last = start. */
void buf_consume(struct buf *b, size_t n);

/* Move unread bytes to start. */
void buf_compact(struct buf *b);

/* If the buffer holds no unread bytes and is larger than its initial size
 * or than 1 KiB, give the memory back (it is allocated again, at init
 * size, on next use). Called between batches, so that a connection
 * waiting for its next request holds no buffer of more than 1 KiB: a
 * freed chunk that large goes back to its malloc arena, where the next
 * connection to need one takes it; a smaller one would stay in the
 * thread's cache (glibc's tcache) anyway, so it is kept. */
void buf_shrink(struct buf *b);

/* ---- output queue ---- */

struct outq_ent {
    const char *ref; /* ref: external bytes, or NULL for bytes in own */
    size_t off;      /* offset into own when ref == NULL */
    size_t len;
};

struct outq {
    struct buf own; /* copied bytes */
    struct outq_ent *ents;
    size_t n;
    size_t cap;
    size_t total; /* bytes queued */
    bool copy;    /* outq_ref copies too (set by the owner) */
};

void outq_init(struct outq *q, size_t init);
void outq_free(struct outq *q);
/* Forget all ranges; keeps memory. */
void outq_reset(struct outq *q);
/* Shrink memory after a burst. */
void outq_shrink(struct outq *q);

/* Copy len bytes into the queue. ST_OK or ST_NOMEM. */
enum status outq_copy(struct outq *q, const void *p, size_t len) WUR;
/* Room for n bytes at the end of the copied bytes, to be written in
 * place (no bounce buffer on the stack) and queued with outq_commit: the
 * room, or NULL on ENOMEM. Valid until the queue's next change. */
char *outq_reserve(struct outq *q, size_t n) WUR;
/* Queue the first len bytes written at outq_reserve's room, as outq_copy
 * would. ST_OK or ST_NOMEM (nothing queued). */
enum status outq_commit(struct outq *q, size_t len) WUR;
/* Queue a reference to len bytes at p, which must stay valid until the
 * queue is written. Short ranges are copied instead, and every range of
 * a queue whose copy is set. */
enum status outq_ref(struct outq *q, const void *p, size_t len) WUR;

/* Copy every referenced range into the queue's own bytes, so that the
 * queue no longer needs what it referenced. ST_OK or ST_NOMEM (some
 * ranges copied, the rest still references). */
enum status outq_own(struct outq *q) WUR;

/* Fill at most max iovecs starting skip bytes into the queue; returns the
 * number filled. */
int outq_iov(const struct outq *q, size_t skip, struct iovec *iov, int max);

#endif /* RIVEN_BUF_H */
