/*
 * util: number parsing and formatting on unterminated tokens, and the
 * monotonic clock. Parsers never read past len and never allocate.
 */
#include "util.h"

#include <time.h>

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
