/*
 * harness: process and socket helpers for riven's integration tests.
 *
 * A test starts real memcached processes (and riven in front of them) on
 * free loopback ports, talks to them over raw sockets or libmemcached, and
 * stops exactly the processes it started, by pid. Every started pid is kept
 * in a registry; an atexit hook and handlers for fatal signals kill what is
 * still registered, so an aborted test leaks no process. Children also get
 * PR_SET_PDEATHSIG(SIGKILL).
 *
 * RIVEN_DIRECT=1 in the environment makes harness_stack_start() skip riven:
 * clients then talk straight to memcached (to check the tests themselves).
 * RIVEN_BIN names the riven binary (default build/riven).
 *
 * Readiness is a condition (a connect succeeds before a deadline), never a
 * bare sleep. Only loopback addresses are used.
 *
 * Thread-safety: process functions must be called from the main thread
 * (PDEATHSIG is tied to the forking thread). Connection functions are safe
 * on distinct connections.
 */
#ifndef RIVEN_HARNESS_H
#define RIVEN_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HARNESS_TIMEOUT_MS 5000 /* default deadline for one reply */

struct harness_proc {
    pid_t pid;     /* -1 when not running */
    int port;      /* TCP port it listens on (127.0.0.1) */
    char name[16]; /* "memcached", "riven", "strace": for messages */
};

/* A memcached with riven in front, or the memcached alone (direct mode). */
struct harness_stack {
    struct harness_proc mc; /* the backend */
    struct harness_proc rv; /* riven; pid -1 in direct mode */
    int port;               /* the port clients use */
};

/* Milliseconds, and microseconds, of CLOCK_MONOTONIC. */
int64_t harness_now_ms(void);
int64_t harness_now_us(void);

/* true when RIVEN_DIRECT is set to a non-empty value other than "0". */
bool harness_direct(void);

/* true when RIVEN_BATCHED is set (not "" or "0"): harness_riven_start
 * without a config file adds --batched (the pool through shared backend
 * connections), so a suite runs against a batched pool. */
bool harness_batched(void);

/* $RIVEN_BIN or "build/riven". */
const char *harness_riven_bin(void);

/* true when the riven binary exists and is executable. */
bool harness_riven_available(void);

/* A free loopback TCP port (bind port 0, read it back), or -1. The port is
 * released before returning, so a later bind may race; callers retry. */
int harness_free_port(void);

/* The soft RLIMIT_NOFILE (ulimit -n); printed on first call. */
long harness_nofile_limit(void);

/* Start memcached -U 0 -l 127.0.0.1 -p PORT -m 64 [extra...] (extra is a
 * NULL-terminated list, may be NULL). port 0 picks a free port. Waits until
 * it accepts connections. 0 on success, -1 on failure (message on stderr,
 * nothing left running). */
int harness_memcached_start(struct harness_proc *p, int port,
                            const char *const *extra);

/* Start riven -q -l 127.0.0.1:PORT -b 127.0.0.1:BACKEND_PORT [extra...]
 * on a free port and wait until it accepts. If config is not NULL riven is
 * started as riven -q -c CONFIG [extra...] instead, and listen_port must be
 * the port the config listens on. 0 or -1 as above. */
int harness_riven_start(struct harness_proc *p, int backend_port,
                        const char *config, int listen_port,
                        const char *const *extra);

/* Children spawned after this call start with RLIMIT_NOFILE n (soft and
 * hard, set between fork and exec); n <= 0 restores the inherited limit.
 * For tests that exhaust a process's descriptors. Main thread only. */
void harness_child_nofile(long n);

/* Open descriptors of process pid (entries of /proc/pid/fd), or -1. */
long harness_proc_fds(pid_t pid);

/* Start argv (argv[0] searched in PATH) as a registered child, without
 * waiting for anything. 0 or -1. */
int harness_spawn(struct harness_proc *p, const char *name,
                  const char *const *argv);

/* Wait until 127.0.0.1:port accepts a connection, or p exits, or the
 * deadline passes. 0 when it accepts, -1 otherwise. */
int harness_wait_ready(struct harness_proc *p, int port, int timeout_ms);
/* The same for the unix socket at path: a riven listening on a port and on
 * a path readies them one after the other. */
int harness_wait_ready_unix(struct harness_proc *p, const char *path,
                            int timeout_ms);
/* A stream connection to the unix socket at path: its fd, or -1. */
int harness_unix_connect(const char *path);

/* true while p's process has not exited (reaps it when it has). */
bool harness_proc_alive(struct harness_proc *p);

/* Stop p: SIGTERM, wait up to timeout_ms (times 4 under a sanitizer:
 * LeakSanitizer's scan at exit takes seconds after a test that ran
 * thousands of threads), then SIGKILL and reap. Returns
 * the exit status as waitpid gives it, or -1 if p was not running. Safe to
 * call twice; p->pid becomes -1. */
int harness_proc_stop(struct harness_proc *p, int timeout_ms);

/* Send sig to p (SIGKILL and reap, SIGSTOP, SIGCONT...). 0 or -1. */
int harness_proc_signal(struct harness_proc *p, int sig);
void harness_proc_kill(struct harness_proc *p);

/* Wait for p to exit by itself, up to timeout_ms. The wait status, or -1
 * on timeout (p still running). */
int harness_proc_wait(struct harness_proc *p, int timeout_ms);

/* memcached + riven (or memcached alone in direct mode). riven_extra as in
 * harness_riven_start. 0 or -1 (nothing left running). */
int harness_stack_start(struct harness_stack *s,
                        const char *const *riven_extra);
void harness_stack_stop(struct harness_stack *s);

/* true while the stack's processes run (riven, unless direct, and
 * memcached); a dead one is reaped and reported on stderr with its exit
 * status or signal. */
bool harness_stack_alive(struct harness_stack *s);

/* A "Name:   123 kB" field of /proc/pid/status (VmRSS, VmHWM...) in
 * bytes; -1 if absent. */
long harness_proc_status(pid_t pid, const char *field);

/* How much a sanitizer multiplies riven's memory (ASan: quarantine and
 * fake stacks, about 10 MB a thread; TSan: shadow and per-thread state):
 * 16 when SANITIZER is set or RIVEN_BIN is a build/thread or
 * build/address binary, else 1. RSS bounds in tests are scaled by it. */
long harness_rss_scale(void);

/* ---- raw connections ------------------------------------------------ */

/* A client socket with a read buffer: bytes past what a read helper
 * returned stay buffered for the next call. */
struct harness_conn {
    int fd;
    char *buf;  /* owned */
    size_t len; /* buffered bytes */
    size_t cap;
};

/* How a connection's buffer is refilled: harness_conn's own reads from
 * its fd; a TLS client (tls_client.c) reads through OpenSSL into the same
 * kind of buffer. One read, waiting at most until deadline (ms of
 * harness_now_ms): >0 bytes added, 0 the peer closed, -1 error, -2
 * timeout. */
typedef ssize_t (*harness_fill_fn)(struct harness_conn *c, void *arg,
                                   int64_t deadline);

/* At least room free bytes at the end of c's buffer. 0, or -1 without
 * memory. */
int harness_conn_reserve(struct harness_conn *c, size_t room);

/* Detach the first n buffered bytes as a malloc'd NUL-terminated copy
 * (NULL without memory). */
char *harness_take(struct harness_conn *c, size_t n);

/* harness_recv_until and harness_recv_n, reading with by(c, arg, ...). */
char *harness_recv_until_by(struct harness_conn *c, harness_fill_fn by,
                            void *arg, const char *term, size_t termlen,
                            int timeout_ms, size_t *outlen);
char *harness_recv_n_by(struct harness_conn *c, harness_fill_fn by, void *arg,
                        size_t n, int timeout_ms);

/* Connect to 127.0.0.1:port (retrying until timeout_ms). NULL on failure. */
struct harness_conn *harness_conn_open(int port, int timeout_ms);
/* Close and free. NULL-safe. */
void harness_conn_close(struct harness_conn *c);

/* Send all len bytes (blocking socket, EINTR retried). 0 or -1. */
int harness_send(struct harness_conn *c, const void *data, size_t len);
int harness_sends(struct harness_conn *c, const char *s);

/* Read until the buffer holds term (termlen bytes). Returns a malloc'd,
 * NUL-terminated copy of everything up to and including term, its length
 * in *outlen. NULL on timeout, EOF or error (what was read stays
 * buffered). */
char *harness_recv_until(struct harness_conn *c, const char *term,
                         size_t termlen, int timeout_ms, size_t *outlen);

/* Send "get KEYS" on c; the whole reply (one error line, or the VALUE
 * blocks through "END\r\n"), NUL-terminated, to free. NULL on timeout or
 * EOF. */
char *harness_get_reply(struct harness_conn *c, const char *keys,
                        int timeout_ms);

/* Read exactly n bytes. Same ownership and failures as above. */
char *harness_recv_n(struct harness_conn *c, size_t n, int timeout_ms);

/* Read exactly len bytes and compare with want. On mismatch or timeout
 * print both (escaped) to stderr and return false. */
bool harness_expect_n(struct harness_conn *c, const void *want, size_t len,
                      int timeout_ms);
bool harness_expect(struct harness_conn *c, const char *want);

/* Send req and expect the reply want (default timeout). */
bool harness_roundtrip(struct harness_conn *c, const char *req,
                       const char *want);

/* true if the peer closes the connection within timeout_ms (any bytes
 * received meanwhile are kept in the buffer). */
bool harness_wait_eof(struct harness_conn *c, int timeout_ms);

/* true if nothing arrives and the peer does not close within timeout_ms
 * (used only to assert silence after a noreply command, bounded by a
 * following request whenever possible). */
bool harness_quiet(struct harness_conn *c, int timeout_ms);

/* Print len bytes of data to stderr with C escapes, at most max bytes. */
void harness_dump(const char *label, const void *data, size_t len, size_t max);

/* Print both streams around the first differing byte. Returns the offset
 * of the first difference, or -1 if a and b are equal. */
long harness_diff(const char *name_a, const void *a, size_t alen,
                  const char *name_b, const void *b, size_t blen);

#endif /* RIVEN_HARNESS_H */
