/*
 * util: tokens, number parsing (strict, and memcached's safe_strto*) and
 * formatting on unterminated input, and the monotonic clock. Parsers never
 * read past len and never allocate.
 */
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void
util_errf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool
util_next_token(const char **cursor, const char *end, const char **tok,
                size_t *ntok)
{
    const char *s = *cursor;
    const char *sp;

    while (s < end && *s == ' ') {
        s++;
    }
    if (s >= end) {
        *cursor = end;
        return false;
    }
    sp = memchr(s, ' ', (size_t)(end - s));
    if (sp == NULL) {
        sp = end;
    }
    *tok = s;
    *ntok = (size_t)(sp - s);
    *cursor = sp;
    return true;
}

bool
util_parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - '0';

        if (d > 9) {
            return false;
        }
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool
util_parse_u32(const char *s, size_t len, uint32_t *out)
{
    uint64_t v;

    if (!util_parse_u64(s, len, &v) || v > UINT32_MAX) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

bool
util_parse_i64(const char *s, size_t len, int64_t *out)
{
    uint64_t v;
    bool neg = len > 0 && s[0] == '-';

    if (neg) {
        s++;
        len--;
    }
    if (!util_parse_u64(s, len, &v)) {
        return false;
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return false;
        }
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > INT64_MAX) {
            return false;
        }
        *out = (int64_t)v;
    }
    return true;
}

bool
util_all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return len > 0;
}

enum status
util_split_host_port(const char *s, char *host, size_t hostlen,
                     const char **port, bool *v6, char *err, size_t errlen)
{
    const char *h = s;
    const char *sep;
    size_t n;

    *v6 = s[0] == '[';
    if (*v6) {
        h = s + 1;
        sep = strchr(s, ']');
        if (sep == NULL) {
            util_errf(err, errlen, "missing ']' in '%s'", s);
            return ST_ERROR;
        }
        n = (size_t)(sep - h);
        sep++;
    } else {
        sep = strrchr(s, ':');
        n = sep != NULL ? (size_t)(sep - s) : 0;
    }
    if (sep == NULL || *sep != ':' || sep[1] == '\0') {
        util_errf(err, errlen, "missing port in '%s' (%s)", s, UTIL_ADDR_FORMS);
        return ST_ERROR;
    }
    if (!*v6 && memchr(h, ':', n) != NULL) {
        util_errf(err, errlen,
                  "IPv6 address must be in brackets, "
                  "[v6addr]:port, in '%s'",
                  s);
        return ST_ERROR;
    }
    if (n == 0) {
        util_errf(err, errlen, "missing host in '%s' (%s)", s, UTIL_ADDR_FORMS);
        return ST_ERROR;
    }
    if (n >= hostlen) {
        util_errf(err, errlen, "host too long in '%s' (%zu bytes, max %zu)", s,
                  n, hostlen - 1);
        return ST_ERROR;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    *port = sep + 1;
    return ST_OK;
}

/* ---- memcached's safe_strto* ---- */

/* isspace() in the C locale */
static bool
is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/*
 * The scan all three share: leading white space, an optional sign, at
 * least one digit, then the end or white space. false on anything else or
 * when the magnitude overflows uint64_t.
 */
static bool
scan_num(const char *s, size_t len, bool *neg, uint64_t *mag)
{
    size_t i = 0;
    size_t d0;

    while (i < len && is_space(s[i])) {
        i++;
    }
    *neg = i < len && s[i] == '-';
    if (i < len && (s[i] == '-' || s[i] == '+')) {
        i++;
    }
    d0 = i;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    if (i < len && !is_space(s[i])) {
        return false;
    }
    return util_parse_u64(s + d0, i - d0, mag);
}

bool
util_safe_strtoull(const char *s, size_t len, uint64_t *out)
{
    bool neg;
    uint64_t mag;

    /* a "-N" wraps, and is refused only if negative as an int64_t */
    if (!scan_num(s, len, &neg, &mag) || (neg && 0 - mag > INT64_MAX)) {
        return false;
    }
    *out = neg ? 0 - mag : mag;
    return true;
}

bool
util_safe_strtoul(const char *s, size_t len, uint32_t *out)
{
    uint64_t v;
    bool ok = util_safe_strtoull(s, len, &v);

    if (ok) {
        *out = (uint32_t)v; /* the unsigned long, stored into 32 bits */
    }
    return ok;
}

bool
util_safe_strtol(const char *s, size_t len, int32_t *out)
{
    uint32_t u;
    bool neg;
    uint64_t mag;

    if (!scan_num(s, len, &neg, &mag) || mag > (uint64_t)INT64_MAX + neg) {
        return false; /* strtol's ERANGE */
    }
    /* the long, stored into 32 bits: modulo 2^32 */
    u = (uint32_t)(neg ? 0 - mag : mag);
    *out = u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
    return true;
}

size_t
util_u64_str(char *dst, uint64_t v)
{
    char tmp[20];
    size_t n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        dst[i] = tmp[n - 1 - i];
    }
    return n;
}

size_t
util_i64_str(char *dst, int64_t v)
{
    if (v < 0) {
        dst[0] = '-';
        return 1 + util_u64_str(dst + 1, (uint64_t)0 - (uint64_t)v);
    }
    return util_u64_str(dst, (uint64_t)v);
}

uint64_t
util_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t
util_now_ms(void)
{
    return util_now_ns() / 1000000u;
}

/* ---- base64 (RFC 4648 standard alphabet, as memcached uses) ---- */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
/* index 64 is the pad */

/* Value of an alphabet byte, 0 for '=', -1 for a byte memcached skips. */
static int
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    return c == '+' ? 62 : c == '/' ? 63 : c == '=' ? 0 : -1;
}

/*
 * memcached's base64_decode (after hostap's): bytes outside the alphabet
 * are skipped, the rest must come in quads, and the first quad holding
 * '=' ends the input (one '=' drops one byte, two drop two, more fail).
 */
bool
util_b64_decode(const char *in, size_t n, char *out, size_t outcap,
                size_t *outlen)
{
    unsigned char quad[4];
    size_t count = 0, pos = 0, k = 0;
    int pad = 0;

    for (size_t i = 0; i < n; i++) {
        count += b64_value((unsigned char)in[i]) >= 0;
    }
    if (count == 0 || count % 4 != 0 || count / 4 * 3 > outcap) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        int v = b64_value((unsigned char)in[i]);

        if (v < 0) {
            continue;
        }
        pad += in[i] == '=';
        quad[k++] = (unsigned char)v;
        if (k < 4) {
            continue;
        }
        out[pos++] = (char)(quad[0] << 2 | quad[1] >> 4);
        out[pos++] = (char)((quad[1] & 0x0f) << 4 | quad[2] >> 2);
        out[pos++] = (char)((quad[2] & 0x03) << 6 | quad[3]);
        k = 0;
        if (pad > 2) {
            return false;
        }
        if (pad > 0) {
            pos -= (size_t)pad;
            break;
        }
    }
    *outlen = pos;
    return true;
}

size_t
util_b64_encode(const void *in, size_t n, char *out, size_t outcap)
{
    const unsigned char *s = in;
    size_t pos = 0;

    if (n > SIZE_MAX / 4 * 3 - 2 || UTIL_B64_ENCODED_LEN(n) > outcap) {
        return 0;
    }
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;

        v |= i + 1 < n ? (unsigned)(unsigned char)s[i + 1] << 8 : 0u;
        v |= i + 2 < n ? (unsigned)(unsigned char)s[i + 2] : 0u;
        out[pos++] = b64_alphabet[v >> 18 & 63];
        out[pos++] = b64_alphabet[v >> 12 & 63];
        out[pos++] = b64_alphabet[i + 1 < n ? (v >> 6 & 63) : 64];
        out[pos++] = b64_alphabet[i + 2 < n ? (v & 63) : 64];
    }
    return pos;
}
