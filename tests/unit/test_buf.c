/*
 * test_buf: struct buf growth, consumption, compaction, shrinking and
 * buf_set, and the outq (copied and referenced ranges resolved into
 * iovecs), checked on the exact bytes and on where pos/last/end land.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

#define S(lit) (lit), (sizeof(lit) - 1)

static size_t
buf_size(const struct buf *b)
{
    return (size_t)(b->end - b->start);
}

static void
assert_unread(const struct buf *b, const char *want, size_t len)
{
    assert_int_equal(buf_len(b), len);
    assert_memory_equal(b->pos, want, len);
}

/* ---- buf ---- */

static void
test_init_free(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 0);
    assert_int_equal(b.init, 2048);
    assert_null(b.start);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(buf_space(&b), 0);
    buf_free(&b);
    buf_free(NULL);

    buf_init(&b, 16);
    assert_int_equal(buf_reserve(&b, 1), ST_OK);
    assert_int_equal(buf_size(&b), 16);
    assert_int_equal(buf_space(&b), 16);
    buf_free(&b);
    assert_null(b.start);
    /* reusable after free */
    assert_int_equal(buf_append(&b, S("abc")), ST_OK);
    assert_unread(&b, S("abc"));
    buf_free(&b);
}

static void
test_append_consume(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, S("get foo\r\n")), ST_OK);
    assert_int_equal(buf_append(&b, S("get")), ST_OK);
    assert_unread(&b, S("get foo\r\nget"));
    buf_consume(&b, 4);
    assert_unread(&b, S("foo\r\nget"));
    assert_true(b.pos == b.start + 4);
    buf_consume(&b, 8);
    /* nothing left: both cursors back at start */
    assert_int_equal(buf_len(&b), 0);
    assert_true(b.pos == b.start && b.last == b.start);
    assert_int_equal(buf_space(&b), 16);
    assert_int_equal(buf_append(&b, "", 0), ST_OK);
    assert_int_equal(buf_len(&b), 0);
    buf_free(&b);
}

/* Empty operations on a buffer that never allocated must not do pointer
 * arithmetic on NULL (clang's UBSan: "applying zero offset to null
 * pointer"). */
static void
test_empty_ops_unallocated(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, "", 0), ST_OK);
    buf_consume(&b, 0);
    assert_int_equal(buf_len(&b), 0);
    buf_free(&b);
}

static void
test_reserve_compacts(void **state)
{
    struct buf b;
    char *start;

    (void)state;
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, S("0123456789abcdef")), ST_OK);
    start = b.start;
    buf_consume(&b, 12);
    /* 4 unread of 16: room after compaction, so no growth */
    assert_int_equal(buf_reserve(&b, 10), ST_OK);
    assert_true(b.start == start);
    assert_true(b.pos == b.start);
    assert_int_equal(buf_size(&b), 16);
    assert_unread(&b, S("cdef"));
    assert_int_equal(buf_space(&b), 12);
    buf_free(&b);
}

static void
test_reserve_grows(void **state)
{
    char big[40];
    struct buf b;

    (void)state;
    memset(big, 'v', sizeof(big));
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, big, sizeof(big)), ST_OK);
    assert_int_equal(buf_size(&b), 64); /* 16 -> 32 -> 64 */
    assert_unread(&b, big, sizeof(big));
    buf_free(&b);

    /* more than half unread: grows (doubling) and compacts the bytes */
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, S("0123456789abcdef")), ST_OK);
    buf_consume(&b, 4);
    assert_int_equal(buf_reserve(&b, 8), ST_OK);
    assert_int_equal(buf_size(&b), 32);
    assert_true(b.pos == b.start);
    assert_unread(&b, S("456789abcdef"));
    assert_true(buf_space(&b) >= 8);
    buf_free(&b);
}

static void
test_reserve_overflow(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, S("x")), ST_OK);
    assert_int_equal(buf_reserve(&b, SIZE_MAX), ST_NOMEM);
    assert_int_equal(buf_reserve(&b, SIZE_MAX / 2 + 2), ST_NOMEM);
    assert_unread(&b, S("x")); /* untouched */
    buf_free(&b);
}

static void
test_compact(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 16);
    buf_compact(&b); /* empty, unallocated: no-op */
    assert_null(b.start);
    assert_int_equal(buf_append(&b, S("abcdef")), ST_OK);
    buf_consume(&b, 2);
    buf_compact(&b);
    assert_true(b.pos == b.start);
    assert_unread(&b, S("cdef"));
    assert_int_equal(buf_space(&b), 12);
    buf_compact(&b); /* already compact */
    assert_unread(&b, S("cdef"));
    buf_free(&b);
}

static void
test_shrink(void **state)
{
    char big[100];
    struct buf b;

    (void)state;
    memset(big, 'z', sizeof(big));
    buf_init(&b, 16);
    assert_int_equal(buf_append(&b, big, sizeof(big)), ST_OK);
    assert_int_equal(buf_size(&b), 128);
    buf_shrink(&b); /* unread bytes: kept */
    assert_unread(&b, big, sizeof(big));
    buf_consume(&b, sizeof(big));
    buf_shrink(&b); /* idle and large: released */
    assert_null(b.start);
    assert_int_equal(buf_len(&b), 0);
    assert_int_equal(buf_append(&b, S("ab")), ST_OK);
    assert_int_equal(buf_size(&b), 16); /* back at init size */
    buf_consume(&b, 2);
    buf_shrink(&b); /* idle at init size: kept */
    assert_non_null(b.start);
    buf_free(&b);

    buf_init(&b, 2048); /* past 1 KiB: released even at init size */
    assert_int_equal(buf_append(&b, S("get k\r\n")), ST_OK);
    assert_int_equal(buf_size(&b), 2048);
    buf_consume(&b, 7);
    buf_shrink(&b);
    assert_null(b.start);

    /* buf_set: an allocation of exactly the bytes, grown from there */
    assert_int_equal(buf_set(&b, S("get k\r\n")), ST_OK);
    assert_int_equal(buf_size(&b), 7);
    assert_unread(&b, S("get k\r\n"));
    assert_int_equal(buf_set(&b, S("ab")), ST_OK); /* appends */
    assert_unread(&b, S("get k\r\nab"));
    assert_int_equal(buf_size(&b), 14);
    buf_consume(&b, 9);
    buf_shrink(&b); /* small: kept for the next request */
    assert_non_null(b.start);
    assert_int_equal(buf_set(&b, S("get k\r\n")), ST_OK);
    assert_int_equal(buf_size(&b), 14); /* fits: no allocation */
    buf_free(&b);
}

/* ---- outq ---- */

/* Concatenate the iovecs of q from skip into out; returns the length. */
static size_t
flatten(const struct outq *q, size_t skip, char *out, size_t size)
{
    struct iovec iov[64];
    int n = outq_iov(q, skip, iov, (int)NELEMS(iov));
    size_t len = 0;

    for (int i = 0; i < n; i++) {
        assert_true(len + iov[i].iov_len <= size);
        memcpy(out + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    return len;
}

static void
test_outq_copy_merges(void **state)
{
    struct outq q;
    struct iovec iov[4];
    char out[64];

    (void)state;
    outq_init(&q, 16);
    assert_int_equal(outq_copy(&q, S("VALUE k 0 5\r\n")), ST_OK);
    assert_int_equal(outq_copy(&q, S("hello")), ST_OK); /* grows own */
    assert_int_equal(outq_copy(&q, "", 0), ST_OK);
    assert_int_equal(outq_ref(&q, S("\r\nEND\r\n")), ST_OK); /* short */
    assert_int_equal(q.n, 1);
    assert_int_equal(q.total, 25);
    assert_int_equal(outq_iov(&q, 0, iov, 4), 1);
    assert_int_equal(iov[0].iov_len, 25);
    assert_memory_equal(iov[0].iov_base, "VALUE k 0 5\r\nhello\r\nEND\r\n", 25);
    assert_int_equal(flatten(&q, 20, out, sizeof(out)), 5);
    assert_memory_equal(out, "END\r\n", 5);
    assert_int_equal(outq_iov(&q, 25, iov, 4), 0);
    outq_free(&q);
    outq_free(NULL);
}

/* outq_reserve gives room at the end of own, written in place; only
 * what outq_commit takes is queued, merged with the copied range before
 * it, and a reference between them starts a new range. */
static void
test_outq_reserve_commit(void **state)
{
    static char value[300];
    struct outq q;
    struct iovec iov[4];
    char *room;

    (void)state;
    memset(value, 'v', sizeof(value));
    outq_init(&q, 8);
    assert_int_equal(outq_commit(&q, 0), ST_OK);
    assert_int_equal(q.n, 0);
    room = outq_reserve(&q, 64); /* grows own past its init of 8 */
    assert_non_null(room);
    memcpy(room, "mg k v\r\n", 8);
    assert_int_equal(outq_commit(&q, 8), ST_OK);
    room = outq_reserve(&q, 40);
    assert_non_null(room);
    memcpy(room, "ms k 300 T0\r\n", 14);
    assert_int_equal(outq_commit(&q, 14), ST_OK);
    assert_int_equal(q.n, 1); /* merged */
    assert_int_equal(outq_ref(&q, value, sizeof(value)), ST_OK);
    assert_non_null(room = outq_reserve(&q, 2));
    memcpy(room, "\r\nXX", 4); /* 2 of the 4 bytes written are taken */
    assert_int_equal(outq_commit(&q, 2), ST_OK);
    assert_int_equal(q.n, 3);
    assert_int_equal(q.total, 8 + 14 + 300 + 2);
    assert_int_equal(outq_iov(&q, 0, iov, 4), 3);
    assert_int_equal(iov[0].iov_len, 22);
    assert_memory_equal(iov[0].iov_base, "mg k v\r\nms k 300 T0\r\n", 22);
    assert_ptr_equal(iov[1].iov_base, value);
    assert_int_equal(iov[2].iov_len, 2);
    assert_memory_equal(iov[2].iov_base, "\r\n", 2);
    outq_free(&q);
}

/* outq_own: the referenced ranges become the queue's own copies, in
 * place and order, so the bytes they came from may change or go; what
 * was sent already (a skip into the queue) reads the same. */
static void
test_outq_own(void **state)
{
    static char v1[300], v2[400];
    struct outq q;
    struct iovec iov[8];
    char flat[8 + 300 + 2 + 400];
    size_t at = 0;
    int n;

    (void)state;
    memset(v1, 'a', sizeof(v1));
    memset(v2, 'b', sizeof(v2));
    outq_init(&q, 8);
    assert_int_equal(outq_copy(&q, "VALUE k\n", 8), ST_OK);
    assert_int_equal(outq_ref(&q, v1, sizeof(v1)), ST_OK);
    assert_int_equal(outq_copy(&q, "\r\n", 2), ST_OK);
    assert_int_equal(outq_ref(&q, v2, sizeof(v2)), ST_OK);
    assert_int_equal(q.n, 4);
    assert_int_equal(outq_own(&q), ST_OK);
    memset(v1, 'x', sizeof(v1)); /* what it referenced changes */
    memset(v2, 'y', sizeof(v2));
    assert_int_equal(q.n, 4);
    assert_int_equal(q.total, sizeof(flat));
    n = outq_iov(&q, 0, iov, 8);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++) {
        assert_true(iov[i].iov_base < (void *)v1 ||
                    iov[i].iov_base >= (void *)(v1 + sizeof(v1)));
        assert_true(iov[i].iov_base < (void *)v2 ||
                    iov[i].iov_base >= (void *)(v2 + sizeof(v2)));
        memcpy(flat + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
    assert_int_equal(at, sizeof(flat));
    assert_memory_equal(flat, "VALUE k\n", 8);
    for (size_t i = 8; i < 308; i++) {
        assert_int_equal(flat[i], 'a');
    }
    assert_memory_equal(flat + 308, "\r\n", 2);
    for (size_t i = 310; i < sizeof(flat); i++) {
        assert_int_equal(flat[i], 'b');
    }
    n = outq_iov(&q, 500, iov, 8); /* 500 sent: the rest of v2's copy */
    assert_int_equal(n, 1);
    assert_int_equal(iov[0].iov_len, sizeof(flat) - 500);
    assert_int_equal(((char *)iov[0].iov_base)[0], 'b');
    assert_int_equal(outq_own(&q), ST_OK); /* nothing left to copy */
    assert_int_equal(q.total, sizeof(flat));
    outq_free(&q);
}

/* A queue whose copy is set (a TLS handler's) copies every range: the
 * value may change after, the queue does not. */
static void
test_outq_ref_copy(void **state)
{
    static char value[300];
    struct outq q;
    struct iovec iov[4];

    (void)state;
    memset(value, 'v', sizeof(value));
    outq_init(&q, 16);
    assert_false(q.copy);
    q.copy = true;
    assert_int_equal(outq_copy(&q, S("ms k 300\r\n")), ST_OK);
    assert_int_equal(outq_ref(&q, value, sizeof(value)), ST_OK);
    memset(value, 'x', sizeof(value));
    assert_int_equal(q.n, 1);
    assert_int_equal(q.total, 10 + 300);
    assert_int_equal(outq_iov(&q, 0, iov, 4), 1);
    assert_int_equal(iov[0].iov_len, 310);
    assert_memory_equal(iov[0].iov_base, "ms k 300\r\nvvvv", 14);
    assert_int_equal(((const char *)iov[0].iov_base)[309], 'v');
    outq_free(&q);
    outq_init(&q, 16); /* init forgets it */
    assert_false(q.copy);
    outq_free(&q);
}

static void
test_outq_ref(void **state)
{
    static char value[300];
    struct outq q;
    struct iovec iov[4];
    char out[400];

    (void)state;
    memset(value, 'v', sizeof(value));
    outq_init(&q, 16);
    assert_int_equal(outq_copy(&q, S("VALUE k 0 300\r\n")), ST_OK);
    assert_int_equal(outq_ref(&q, value, sizeof(value)), ST_OK);
    assert_int_equal(outq_copy(&q, S("\r\n")), ST_OK);
    assert_int_equal(outq_copy(&q, S("END\r\n")), ST_OK);
    assert_int_equal(q.n, 3);
    assert_int_equal(q.total, 15 + 300 + 7);

    assert_int_equal(outq_iov(&q, 0, iov, 4), 3);
    assert_int_equal(iov[0].iov_len, 15);
    assert_memory_equal(iov[0].iov_base, "VALUE k 0 300\r\n", 15);
    assert_ptr_equal(iov[1].iov_base, value); /* not copied */
    assert_int_equal(iov[1].iov_len, 300);
    assert_int_equal(iov[2].iov_len, 7);
    assert_memory_equal(iov[2].iov_base, "\r\nEND\r\n", 7);

    /* skip: inside the first range, exactly past it, into the ref */
    assert_int_equal(outq_iov(&q, 6, iov, 4), 3);
    assert_memory_equal(iov[0].iov_base, "k 0 300\r\n", 9);
    assert_int_equal(outq_iov(&q, 15, iov, 4), 2);
    assert_ptr_equal(iov[0].iov_base, value);
    assert_int_equal(outq_iov(&q, 15 + 299, iov, 4), 2);
    assert_ptr_equal(iov[0].iov_base, value + 299);
    assert_int_equal(iov[0].iov_len, 1);
    assert_int_equal(flatten(&q, 15 + 300 + 2, out, sizeof(out)), 5);
    assert_memory_equal(out, "END\r\n", 5);

    /* max bounds the count */
    assert_int_equal(outq_iov(&q, 0, iov, 1), 1);
    assert_int_equal(iov[0].iov_len, 15);
    outq_free(&q);
}

/* Offsets of copies survive reallocation of own between ranges. */
static void
test_outq_many(void **state)
{
    static char value[256];
    char want[8192], out[8192], line[16];
    size_t wlen = 0;
    struct outq q;

    (void)state;
    memset(value, 'R', sizeof(value));
    outq_init(&q, 16);
    for (int i = 0; i < 20; i++) {
        size_t n = (size_t)snprintf(line, sizeof(line), "line %d\r\n", i);

        assert_int_equal(outq_copy(&q, line, n), ST_OK);
        memcpy(want + wlen, line, n);
        wlen += n;
        assert_int_equal(outq_ref(&q, value, sizeof(value)), ST_OK);
        memcpy(want + wlen, value, sizeof(value));
        wlen += sizeof(value);
    }
    assert_int_equal(q.n, 40);
    assert_int_equal(q.total, wlen);
    assert_int_equal(flatten(&q, 0, out, sizeof(out)), wlen);
    assert_memory_equal(out, want, wlen);
    assert_int_equal(flatten(&q, 1000, out, sizeof(out)), wlen - 1000);
    assert_memory_equal(out, want + 1000, wlen - 1000);

    outq_reset(&q);
    assert_int_equal(q.n, 0);
    assert_int_equal(q.total, 0);
    assert_int_equal(outq_copy(&q, S("END\r\n")), ST_OK);
    assert_int_equal(q.ents[0].off, 0);
    assert_int_equal(flatten(&q, 0, out, sizeof(out)), 5);
    assert_memory_equal(out, "END\r\n", 5);

    outq_shrink(&q);
    assert_int_equal(q.n, 0);
    assert_int_equal(q.total, 0);
    assert_null(q.own.start); /* grew past init, so released */
    assert_int_equal(outq_copy(&q, S("OK\r\n")), ST_OK);
    assert_int_equal(flatten(&q, 0, out, sizeof(out)), 4);
    assert_memory_equal(out, "OK\r\n", 4);
    outq_free(&q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_free),
        cmocka_unit_test(test_append_consume),
        cmocka_unit_test(test_empty_ops_unallocated),
        cmocka_unit_test(test_reserve_compacts),
        cmocka_unit_test(test_reserve_grows),
        cmocka_unit_test(test_reserve_overflow),
        cmocka_unit_test(test_compact),
        cmocka_unit_test(test_shrink),
        cmocka_unit_test(test_outq_copy_merges),
        cmocka_unit_test(test_outq_ref),
        cmocka_unit_test(test_outq_ref_copy),
        cmocka_unit_test(test_outq_reserve_commit),
        cmocka_unit_test(test_outq_many),
        cmocka_unit_test(test_outq_own),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
