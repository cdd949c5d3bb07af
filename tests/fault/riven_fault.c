/*
 * riven_fault: allocation faults for the riven-fault test binary.
 *
 * build/tests/riven-fault is riven linked with
 * -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=server_run: every
 * call riven's own objects make to those functions comes here first (calls
 * from inside libc and the libraries do not). server_run's wrapper numbers
 * the connection threads 1, 2, 3... in the order they start serving.
 *
 *   RIVEN_FAULT_ALLOC=N@K   the Nth allocation made by connection thread K
 *                           fails (NULL, errno ENOMEM); one line on stderr
 *                           says so
 *
 * Nothing else changes: without the variable, riven-fault is riven.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_server_run(struct server_conn *conn);

void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_server_run(struct server_conn *conn);

static _Atomic unsigned conn_seq;
static _Thread_local unsigned conn_no;     /* 0: not a connection thread */
static _Thread_local unsigned long allocs; /* made by this thread */

/* Is this allocation the one RIVEN_FAULT_ALLOC names? */
static int
fail_now(void)
{
    static unsigned long at;
    static unsigned who;
    static _Atomic int parsed;
    const char *s;
    char line[96];
    int n;

    if (conn_no == 0) {
        return 0;
    }
    if (!atomic_load(&parsed)) {
        s = getenv("RIVEN_FAULT_ALLOC");
        if (s == NULL || sscanf(s, "%lu@%u", &at, &who) != 2) {
            at = 0;
        }
        atomic_store(&parsed, 1);
    }
    if (at == 0 || conn_no != who || ++allocs != at) {
        return 0;
    }
    n = snprintf(line, sizeof(line),
                 "riven-fault: allocation %lu of connection %u fails\n", at,
                 who);
    (void)!write(STDERR_FILENO, line, (size_t)n);
    errno = ENOMEM;
    return 1;
}

void *
__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __real_realloc(p, n);
}

void
__wrap_server_run(struct server_conn *conn)
{
    conn_no = atomic_fetch_add(&conn_seq, 1) + 1;
    allocs = 0;
    __real_server_run(conn);
    conn_no = 0;
}
