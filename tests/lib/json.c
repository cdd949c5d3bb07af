/*
 * json: a recursive-descent JSON reader (RFC 8259) for the tests.
 *
 * The parser walks the text once with a cursor; every node is calloc'd and
 * linked into its parent's child list in document order. On any error the
 * partial tree is freed and the message names the offset of the fault.
 */
#include "json.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_DEPTH_MAX 128

struct cursor {
    const char *s;
    size_t len;
    size_t pos;
    char *err;
    size_t errlen;
    bool failed;
};

static struct json *parse_value(struct cursor *c, int depth);

static void
fail(struct cursor *c, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (c->failed) {
        return;
    }
    c->failed = true;
    n = snprintf(c->err, c->errlen, "json: offset %zu: ", c->pos);
    if (n < 0 || (size_t)n >= c->errlen) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void
skip_ws(struct cursor *c)
{
    while (c->pos < c->len && (c->s[c->pos] == ' ' || c->s[c->pos] == '\t' ||
                               c->s[c->pos] == '\n' || c->s[c->pos] == '\r')) {
        c->pos++;
    }
}

static int
hex4(struct cursor *c, uint32_t *out)
{
    uint32_t v = 0;

    if (c->len - c->pos < 4) {
        return -1;
    }
    for (int i = 0; i < 4; i++) {
        char ch = c->s[c->pos++];

        v <<= 4;
        if (ch >= '0' && ch <= '9') {
            v |= (uint32_t)(ch - '0');
        } else if (ch >= 'a' && ch <= 'f') {
            v |= (uint32_t)(ch - 'a' + 10);
        } else if (ch >= 'A' && ch <= 'F') {
            v |= (uint32_t)(ch - 'A' + 10);
        } else {
            return -1;
        }
    }
    *out = v;
    return 0;
}

static size_t
utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* One \u escape (the cursor past "\u"), a surrogate pair joined. */
static int
unicode_escape(struct cursor *c, uint32_t *cp)
{
    uint32_t lo;

    if (hex4(c, cp) != 0) {
        return -1;
    }
    if (*cp >= 0xd800 && *cp < 0xdc00) {
        if (c->len - c->pos < 2 || c->s[c->pos] != '\\' ||
            c->s[c->pos + 1] != 'u') {
            return -1;
        }
        c->pos += 2;
        if (hex4(c, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff) {
            return -1;
        }
        *cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
    } else if (*cp >= 0xdc00 && *cp < 0xe000) {
        return -1;
    }
    return 0;
}

/* A string (the cursor on its opening quote), malloc'd and unescaped. An
 * escape never expands: the output fits in the input's length. */
static char *
parse_string(struct cursor *c)
{
    size_t start = ++c->pos, o = 0;
    char *out = malloc(c->len - start + 1);

    if (out == NULL) {
        fail(c, "out of memory");
        return NULL;
    }
    while (c->pos < c->len && c->s[c->pos] != '"') {
        unsigned char ch = (unsigned char)c->s[c->pos++];
        uint32_t cp;

        if (ch < 0x20) {
            fail(c, "control character in a string");
            goto error;
        }
        if (ch != '\\') {
            out[o++] = (char)ch;
            continue;
        }
        if (c->pos >= c->len) {
            break;
        }
        switch (c->s[c->pos++]) {
        case '"':
            out[o++] = '"';
            break;
        case '\\':
            out[o++] = '\\';
            break;
        case '/':
            out[o++] = '/';
            break;
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'u':
            if (unicode_escape(c, &cp) != 0) {
                fail(c, "bad \\u escape");
                goto error;
            }
            o += utf8_put(out + o, cp);
            break;
        default:
            fail(c, "bad escape");
            goto error;
        }
    }
    if (c->pos >= c->len) {
        fail(c, "unterminated string");
        goto error;
    }
    c->pos++;
    out[o] = '\0';
    return out;
error:
    free(out);
    return NULL;
}

static int
parse_number(struct cursor *c, struct json *j)
{
    char buf[64], *end;
    size_t n = 0;

    while (c->pos + n < c->len && n < sizeof(buf) - 1 &&
           strchr("+-0123456789.eE", c->s[c->pos + n]) != NULL) {
        n++;
    }
    memcpy(buf, c->s + c->pos, n);
    buf[n] = '\0';
    j->num = strtod(buf, &end);
    if (n == 0 || end != buf + n) {
        fail(c, "bad number");
        return -1;
    }
    c->pos += n;
    return 0;
}

static bool
literal(struct cursor *c, const char *word)
{
    size_t n = strlen(word);

    if (c->len - c->pos < n || memcmp(c->s + c->pos, word, n) != 0) {
        return false;
    }
    c->pos += n;
    return true;
}

/* The elements of an array or the members of an object (the cursor on
 * its opening bracket) into j's child list. */
static int
parse_list(struct cursor *c, struct json *j, int depth)
{
    bool object = j->type == JSON_OBJECT;
    char close = object ? '}' : ']';
    struct json **tail = &j->child;

    c->pos++;
    skip_ws(c);
    if (c->pos < c->len && c->s[c->pos] == close) {
        c->pos++;
        return 0;
    }
    for (;;) {
        char *key = NULL;
        struct json *v;

        skip_ws(c);
        if (object) {
            if (c->pos >= c->len || c->s[c->pos] != '"') {
                fail(c, "expected a member name");
                return -1;
            }
            if ((key = parse_string(c)) == NULL) {
                return -1;
            }
            skip_ws(c);
            if (c->pos >= c->len || c->s[c->pos] != ':') {
                free(key);
                fail(c, "expected ':'");
                return -1;
            }
            c->pos++;
        }
        if ((v = parse_value(c, depth + 1)) == NULL) {
            free(key);
            return -1;
        }
        v->key = key;
        *tail = v;
        tail = &v->next;
        skip_ws(c);
        if (c->pos < c->len && c->s[c->pos] == ',') {
            c->pos++;
            continue;
        }
        if (c->pos < c->len && c->s[c->pos] == close) {
            c->pos++;
            return 0;
        }
        fail(c, "expected ',' or '%c'", close);
        return -1;
    }
}

static struct json *
parse_value(struct cursor *c, int depth)
{
    struct json *j;
    int rc = 0;

    if (depth > JSON_DEPTH_MAX) {
        fail(c, "nested too deep");
        return NULL;
    }
    skip_ws(c);
    if (c->pos >= c->len) {
        fail(c, "unexpected end");
        return NULL;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        fail(c, "out of memory");
        return NULL;
    }
    switch (c->s[c->pos]) {
    case '{':
        j->type = JSON_OBJECT;
        rc = parse_list(c, j, depth);
        break;
    case '[':
        j->type = JSON_ARRAY;
        rc = parse_list(c, j, depth);
        break;
    case '"':
        j->type = JSON_STRING;
        rc = (j->str = parse_string(c)) == NULL ? -1 : 0;
        break;
    default:
        if (literal(c, "null")) {
            j->type = JSON_NULL;
        } else if (literal(c, "true")) {
            j->type = JSON_BOOL;
            j->num = 1;
        } else if (literal(c, "false")) {
            j->type = JSON_BOOL;
        } else {
            j->type = JSON_NUMBER;
            rc = parse_number(c, j);
        }
    }
    if (rc != 0) {
        json_free(j);
        return NULL;
    }
    return j;
}

struct json *
json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct cursor c = {text, len, 0, err, errlen, false};
    struct json *j = parse_value(&c, 0);

    if (j == NULL) {
        return NULL;
    }
    skip_ws(&c);
    if (c.pos != c.len) {
        fail(&c, "trailing bytes after the value");
        json_free(j);
        return NULL;
    }
    return j;
}

void
json_free(struct json *j)
{
    while (j != NULL) {
        struct json *next = j->next;

        json_free(j->child);
        free(j->key);
        free(j->str);
        free(j);
        j = next;
    }
}

const struct json *
json_get(const struct json *obj, const char *key)
{
    if (obj == NULL || obj->type != JSON_OBJECT) {
        return NULL;
    }
    for (const struct json *m = obj->child; m != NULL; m = m->next) {
        if (strcmp(m->key, key) == 0) {
            return m;
        }
    }
    return NULL;
}

const char *
json_get_str(const struct json *obj, const char *key)
{
    const struct json *m = json_get(obj, key);

    return m != NULL && m->type == JSON_STRING ? m->str : NULL;
}

size_t
json_count(const struct json *j)
{
    size_t n = 0;

    if (j == NULL || (j->type != JSON_ARRAY && j->type != JSON_OBJECT)) {
        return 0;
    }
    for (const struct json *m = j->child; m != NULL; m = m->next) {
        n++;
    }
    return n;
}
