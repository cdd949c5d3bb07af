/*
 * log: levelled one-line logging to stderr. Each call formats into a stack
 * buffer and emits exactly one write(2), so lines from many threads never
 * interleave. When JOURNAL_STREAM names our stderr, lines carry a "<N>"
 * syslog priority prefix so the journal keeps the level.
 *
 * Thread-safe. The level is an atomic; log_set_level may run at any time.
 * Every function preserves errno.
 */
#ifndef RIVEN_LOG_H
#define RIVEN_LOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum log_level {
    LOG_LVL_ERROR = 0,
    LOG_LVL_WARN,
    LOG_LVL_INFO,
    LOG_LVL_DEBUG,
};

/* Reads JOURNAL_STREAM once; call before threads start. */
void log_init(enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);

/* True at most once every ms milliseconds per *last (a static of the
 * caller's, 0 at first): whether a line that any number of threads may
 * repeat should be written at its level now, or only at debug. Lock-free:
 * one thread wins each period. */
bool log_every(_Atomic uint64_t *last, uint64_t ms);

/* "error" | "warn" | "info" | "debug" -> level; false if unknown. */
bool log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_write(enum log_level level, bool with_errno, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* log_warn appends ": <strerror(errno)>", log_warnx does not (relayd). */
#define LOG_AT(lvl, e, ...)                                                    \
    do {                                                                       \
        if (log_enabled(lvl)) {                                                \
            log_write(lvl, e, __VA_ARGS__);                                    \
        }                                                                      \
    } while (0)
#define log_error(...)  LOG_AT(LOG_LVL_ERROR, true, __VA_ARGS__)
#define log_errorx(...) LOG_AT(LOG_LVL_ERROR, false, __VA_ARGS__)
#define log_warn(...)   LOG_AT(LOG_LVL_WARN, true, __VA_ARGS__)
#define log_warnx(...)  LOG_AT(LOG_LVL_WARN, false, __VA_ARGS__)
#define log_info(...)   LOG_AT(LOG_LVL_INFO, false, __VA_ARGS__)
#define log_debug(...)  LOG_AT(LOG_LVL_DEBUG, false, __VA_ARGS__)

/* Log at error level and exit(1). Only before serving starts. */
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

#endif /* RIVEN_LOG_H */
