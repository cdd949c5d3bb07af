/*
 * log: one write(2) per line on stderr; "<N>" priority prefixes when
 * stderr is the systemd journal (JOURNAL_STREAM=dev:inode matches fd 2).
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static _Atomic int log_level = LOG_LVL_INFO;
static bool log_journal;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int level_prio[] = {3, 4, 6, 7}; /* syslog priorities */

#define MIN_LEN(a, b) ((a) < (b) ? (a) : (b))

static bool
stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char *end;
    struct stat st;

    if (js == NULL) {
        return false;
    }
    dev = strtoull(js, &end, 10);
    if (end == js || *end != ':') {
        return false;
    }
    ino = strtoull(end + 1, &end, 10);
    if (*end != '\0') {
        return false;
    }
    if (fstat(STDERR_FILENO, &st) != 0) {
        return false;
    }
    return (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

void
log_init(enum log_level level)
{
    log_journal = stderr_is_journal();
    log_set_level(level);
}

void
log_set_level(enum log_level level)
{
    if (level > LOG_LVL_DEBUG) {
        level = LOG_LVL_DEBUG;
    }
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

enum log_level
log_get_level(void)
{
    return (enum log_level)atomic_load_explicit(&log_level,
                                                memory_order_relaxed);
}

bool
log_enabled(enum log_level level)
{
    return (int)level <= atomic_load_explicit(&log_level, memory_order_relaxed);
}

bool
log_every(_Atomic uint64_t *last, uint64_t ms)
{
    uint64_t now = util_now_ms(), prev = atomic_load(last);

    return (prev == 0 || now - prev >= ms) &&
           atomic_compare_exchange_strong(last, &prev, now);
}

bool
log_level_parse(const char *s, enum log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return true;
        }
    }
    return false;
}

const char *
log_level_name(enum log_level level)
{
    return level <= LOG_LVL_DEBUG ? level_names[level] : "debug";
}

static void __attribute__((format(printf, 4, 0)))
log_vwrite(enum log_level level, bool with_errno, int err, const char *fmt,
           va_list ap)
{
    char line[1024];
    size_t n = 0;
    int r;

    if (log_journal) {
        r = snprintf(line, sizeof(line), "<%d>", level_prio[level]);
    } else {
        struct timespec ts;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        r = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ riven[%d] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L, (int)getpid(),
                     level_names[level]);
    }
    n = r > 0 ? (size_t)r : 0;
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    n = r > 0 ? MIN_LEN(n + (size_t)r, sizeof(line) - 1) : n;
    if (with_errno && n < sizeof(line) - 3) {
        char ebuf[128];
        const char *es = strerror_r(err, ebuf, sizeof(ebuf));

        r = snprintf(line + n, sizeof(line) - n, ": %s", es);
        n = r > 0 ? MIN_LEN(n + (size_t)r, sizeof(line) - 1) : n;
    }
    line[n++] = '\n';
    (void)!write(STDERR_FILENO, line, n);
}

void
log_write(enum log_level level, bool with_errno, const char *fmt, ...)
{
    int err = errno;
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, with_errno, err, fmt, ap);
    va_end(ap);
    errno = err;
}

void
fatal(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(LOG_LVL_ERROR, false, errno, fmt, ap);
    va_end(ap);
    exit(1);
}
