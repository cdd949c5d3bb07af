/*
 * util: the lowest layer. Return codes shared by every module, overflow-
 * checked number parsing over (pointer, length) tokens that are not
 * NUL-terminated, the monotonic clock, integer formatting and a cache
 * prefetch hint.
 *
 * Thread-safe: every function here is pure or reads only the clock.
 */
#ifndef RIVEN_UTIL_H
#define RIVEN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WUR __attribute__((warn_unused_result))

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Ask the cache, for writing, for every 64-byte line of [p, p + n): a
 * hint that changes nothing (a prefetch never faults). Nothing for a NULL
 * p. For a thread that wakes after many others, so that the misses on
 * what it is about to touch overlap instead of coming one by one. */
static inline void
util_prefetch(const void *p, size_t n)
{
    const char *c = p;

    for (size_t off = 0; c != NULL && off < n; off += 64) {
        __builtin_prefetch(c + off, 1, 3);
    }
}

/* One small set of return codes (nginx style). */
enum status {
    ST_OK = 0, /* done */
    ST_ERROR,  /* failed; errno or a message says why */
    ST_AGAIN,  /* need more input; state kept, call again */
    ST_NOMEM,  /* allocation failed */
    ST_PROTO,  /* peer broke the protocol; the stream cannot be framed */
    ST_TIMEOUT,
    ST_CLOSED, /* peer closed the connection */
};

/* Decimal digits only (no sign, no spaces); false on empty input, any
 * other byte, or overflow. */
bool util_parse_u64(const char *s, size_t len, uint64_t *out) WUR;
bool util_parse_u32(const char *s, size_t len, uint32_t *out) WUR;

/* Optional leading '-' then digits; false on overflow of int64_t. */
bool util_parse_i64(const char *s, size_t len, int64_t *out) WUR;

/*
 * memcached's safe_strtoull / safe_strtoul / safe_strtol on LP64, over
 * s[0..len): strto*'s syntax (leading white space, an optional sign, at
 * least one digit) and then the end or white space, whatever follows it
 * ("5\tjunk" is 5). false on anything else or when the magnitude
 * overflows uint64_t (strto*'s ERANGE); *out is untouched then.
 * - strtoull: "-N" is refused only when the wrapped result is negative as
 *   an int64_t ("-0" is 0, "-1" fails);
 * - strtoul: as strtoull, then stored into 32 bits ("4294967296" is 0);
 * - strtol: strtol's range (int64_t), then stored into 32 bits modulo 2^32
 *   ("4294967297" is 1, "2147483648" is INT32_MIN).
 */
bool util_safe_strtoull(const char *s, size_t len, uint64_t *out) WUR;
bool util_safe_strtoul(const char *s, size_t len, uint32_t *out) WUR;
bool util_safe_strtol(const char *s, size_t len, int32_t *out) WUR;

/* true if s[0..len) is one or more decimal digits and nothing else. */
bool util_all_digits(const char *s, size_t len);

/* Writes v in decimal to dst (at least 21 bytes), no NUL; returns length. */
size_t util_u64_str(char *dst, uint64_t v);
size_t util_i64_str(char *dst, int64_t v);

/* snprintf into err[0..errlen) for an error message; nothing if err is
 * NULL or errlen 0. */
void util_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The next space-separated token of [*cursor, end): skips leading spaces,
 * sets tok/ntok and advances *cursor past it. false when none is left
 * (and *cursor is end). */
bool util_next_token(const char **cursor, const char *end, const char **tok,
                     size_t *ntok);

/* The address forms riven takes, for error messages. */
#define UTIL_ADDR_FORMS "expected host:port, [v6addr]:port or unix:/path"

/*
 * Split "host:port" or "[v6addr]:port" (an IPv6 address must be in
 * brackets): copies the host, without brackets, NUL-terminated into
 * host[0..hostlen), points *port at the text after the ':' (not empty,
 * not checked further) and sets *v6 when the host was in brackets.
 * ST_ERROR with a message in err[0..errlen) when a ']', the port or the
 * host is missing, an unbracketed host holds a ':', or the host does not
 * fit; *host and *port are undefined then. "unix:" is the caller's.
 */
enum status util_split_host_port(const char *s, char *host, size_t hostlen,
                                 const char **port, bool *v6, char *err,
                                 size_t errlen) WUR;

/* CLOCK_MONOTONIC, via the vDSO (no syscall). */
uint64_t util_now_ns(void);
uint64_t util_now_ms(void);

/* Base64, RFC 4648 standard alphabet ("+/", '=' padding), as memcached's
 * meta protocol uses for binary keys (the b flag). */
#define UTIL_B64_ENCODED_LEN(n) (((n) + 2) / 3 * 4)
#define UTIL_B64_DECODED_MAX(n) ((n) / 4 * 3)

/* Decode in[0..n) exactly as memcached 1.6 does: bytes outside the
 * alphabet are skipped, the remaining ones must form whole quads, and
 * the first quad with '=' padding ends the input. Writes at most outcap
 * bytes (UTIL_B64_DECODED_MAX(n) always suffices) and sets *outlen.
 * false where memcached fails ("error decoding key"): no quads, a partial
 * quad, more than two '=' in a quad, or outcap too small. */
bool util_b64_decode(const char *in, size_t n, char *out, size_t outcap,
                     size_t *outlen) WUR;

/* Encode in[0..n) with '=' padding, no NUL. Returns the length written
 * (UTIL_B64_ENCODED_LEN(n)), or 0 if outcap is too small. */
size_t util_b64_encode(const void *in, size_t n, char *out, size_t outcap);

#endif /* RIVEN_UTIL_H */
