/*
 * script: request byte streams for the differential tests (integ_diff,
 * integ_diff_proto), and sending one to a server while reading its
 * replies.
 *
 * A script is built with sc_add/sc_lit/sc_addf and sent by sc_exchange:
 * a thread writes it in chunks of pseudo-random sizes (a seed per side,
 * so the two sides are cut differently and request framing must not
 * depend on how bytes arrive) while the caller's thread reads.
 */
#ifndef RIVEN_SCRIPT_H
#define RIVEN_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "harness.h"

struct script {
    char *data; /* owned, NUL-terminated */
    size_t len;
    size_t cap;
};

/* Append n bytes (p may be NULL when n is 0). */
void sc_add(struct script *s, const void *p, size_t n);
#define sc_lit(s, lit) sc_add((s), (lit), sizeof(lit) - 1)

/* Append a formatted string (at most 4095 bytes). */
void sc_addf(struct script *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A malloc'd value of n bytes (NUL-terminated) filled from a seed:
 * any byte when binary, else lowercase letters. */
char *sc_make_value(size_t n, unsigned seed, bool binary);

/* Send sc on c (in a thread, cut as seed says) and read the replies
 * until term (termlen bytes) arrives, or, when term is NULL, until the
 * peer closes (within eof_ms). The malloc'd reply stream and its length
 * in *outlen; NULL (with what was received on stderr) if it never
 * completed. */
char *sc_exchange(struct harness_conn *c, const struct script *sc,
                  uint32_t seed, const char *term, size_t termlen, int eof_ms,
                  size_t *outlen);

#endif /* RIVEN_SCRIPT_H */
