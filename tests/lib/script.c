/*
 * script: growing request streams and the chunked sender of the
 * differential tests.
 */
#include "script.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <cmocka.h>

void
sc_add(struct script *s, const void *p, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        size_t ncap = s->cap == 0 ? 4096 : s->cap;

        while (ncap < s->len + n + 1) {
            ncap *= 2;
        }
        s->data = realloc(s->data, ncap);
        assert_non_null(s->data);
        s->cap = ncap;
    }
    if (n > 0) { /* p may be NULL then: no memcpy from NULL (UBSan) */
        memcpy(s->data + s->len, p, n);
    }
    s->len += n;
    s->data[s->len] = '\0';
}

void
sc_addf(struct script *s, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(tmp));
    sc_add(s, tmp, (size_t)n);
}

char *
sc_make_value(size_t n, unsigned seed, bool binary)
{
    char *v = malloc(n + 1);
    uint32_t x = seed * 2654435761u + 1;

    assert_non_null(v);
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        v[i] = binary ? (char)(x >> 16) : (char)('a' + (x >> 16) % 26);
    }
    v[n] = '\0';
    return v;
}

struct sender {
    struct harness_conn *conn;
    const struct script *sc;
    uint32_t seed;
    int rc;
};

static void *
sender_main(void *arg)
{
    struct sender *sd = arg;
    uint32_t x = sd->seed;
    size_t off = 0;

    sd->rc = 0;
    while (off < sd->sc->len) {
        size_t n;

        x = x * 1103515245u + 12345u;
        switch ((x >> 16) % 4) {
        case 0:
            n = 1 + (x >> 8) % 7; /* tiny: split tokens and headers */
            break;
        case 1:
            n = 1 + (x >> 8) % 300;
            break;
        case 2:
            n = 1 + (x >> 8) % 4000;
            break;
        default:
            n = 65536; /* large: pipelining */
            break;
        }
        if (n > sd->sc->len - off) {
            n = sd->sc->len - off;
        }
        if (harness_send(sd->conn, sd->sc->data + off, n) != 0) {
            sd->rc = -1; /* the peer closed: possible in EOF sections */
            break;
        }
        off += n;
    }
    return NULL;
}

char *
sc_exchange(struct harness_conn *c, const struct script *sc, uint32_t seed,
            const char *term, size_t termlen, int eof_ms, size_t *outlen)
{
    struct sender sd = {.conn = c, .sc = sc, .seed = seed, .rc = 0};
    pthread_t tid;
    char *out = NULL;

    assert_int_equal(pthread_create(&tid, NULL, sender_main, &sd), 0);
    if (term != NULL) {
        out = harness_recv_until(c, term, termlen, 20000, outlen);
    } else if (harness_wait_eof(c, eof_ms)) {
        *outlen = c->len;
        out = harness_recv_n(c, c->len, 0);
    }
    pthread_join(tid, NULL);
    if (out == NULL) {
        fprintf(stderr, "%s: no complete reply stream (%s)\n",
                program_invocation_short_name,
                term != NULL ? "marker never arrived" : "no EOF");
        harness_dump("  received so far", c->buf, c->len, 2000);
    }
    return out;
}
