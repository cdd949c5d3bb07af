/*
 * proto_text: memcached's classic ASCII protocol, client side.
 *
 * In: the unread bytes of a client connection. A command is one line
 * ending in "\n" (a "\r" before it is dropped), cut at its first NUL as
 * memcached's strlen() does, split on spaces. Storage commands are
 * followed by a data block of <bytes> + "\r\n".
 * Out: struct request whose pointers all reference the input; nothing is
 * copied or written. Replies go to an outq; value bytes by reference.
 *
 * Invariants: the parser reads only buf[0..len), allocates nothing and
 * keeps no state between calls (an incomplete command is parsed again
 * from its first byte). Every reply, error text, the bytes an error
 * consumes and whether noreply silences it follow memcached 1.6.18's
 * proto_text.c; the cases were checked against the real daemon (table
 * in tests/unit/test_proto_text.c). Known, deliberate differences:
 * a value is "too large" when <bytes> > item_size_max (memcached also
 * counts its item header), and commands riven does not proxy (shutdown,
 * slabs, lru_crawler, ...) are answered "ERROR".
 */
#include "proto_text.h"

#include <string.h>

/* memcached's tokenize_command(..., MAX_TOKENS) yields at most 23 real
 * tokens plus a terminal one; its ntokens is our nt + 1. */
#define LINE_TOKENS (TEXT_MAX_TOKENS - 1)

#define GET_PREFIX_SPACES 100 /* leading spaces memcached tolerates */

_Static_assert(LINE_TOKENS <= REQ_LINE_TOKENS, "struct req_line holds a line");

static bool
tok_is(struct req_tok t, const char *s, size_t n)
{
    return t.n == n && memcmp(t.p, s, n) == 0;
}

#define TOK_IS(t, lit) tok_is((t), lit, sizeof(lit) - 1)

/* ---- results ---- */

static enum status
reply(struct request *out, enum res_kind kind, const char *msg)
{
    out->err = kind;
    out->errmsg = msg;
    return ST_OK;
}

/* "ERROR": unknown command or wrong number of tokens. memcached answers
 * it before looking at noreply. */
static enum status
reply_error(struct request *out)
{
    out->cmd = REQ_NONE;
    out->rflags = 0;
    return reply(out, RES_ERROR, NULL);
}

/* memcached's hang-up (its t/malicious-commands.t): a command it does
 * not know, whose first byte picks none of its command families, with a
 * last token that begins "HTTP/" is a browser or an HTTP proxy talking
 * to the cache. It closes the connection without an answer, which keeps
 * cross-protocol requests from reading anything back. */
static bool
is_http(const struct req_line *l)
{
    static const struct req_tok known[] = {
        {"bget", 4}, {"lru", 3}, {"lru_crawler", 11}, {"watch", 5}};
    const struct req_tok *last = &l->t[l->nt - 1];

    if (strchr("gsacidt", l->t[0].p[0]) != NULL ||
        (l->t[0].p[0] == 'm' && l->t[0].n == 2)) {
        return false; /* memcached answers these ERROR */
    }
    for (size_t i = 0; i < NELEMS(known); i++) {
        if (tok_is(l->t[0], known[i].p, known[i].n)) {
            return false; /* commands memcached runs and riven does not */
        }
    }
    return last->n >= 5 && memcmp(last->p, "HTTP/", 5) == 0;
}

static enum status
reply_unknown(const struct req_line *l, struct request *out)
{
    if (!is_http(l)) {
        return reply_error(out);
    }
    out->cmd = REQ_NONE;
    out->rflags = REQ_F_CLOSE;
    return reply(out, RES_QUIT, NULL);
}

bool
proto_text_is_http(const char *buf, size_t len)
{
    struct req_line l;

    req_line_split(buf, buf + len, LINE_TOKENS, &l);
    return l.nt > 0 && l.t[0].n >= 2 && is_http(&l);
}

/* memcached's set_noreply_maybe: the last token is "noreply". */
static bool
noreply_maybe(const struct req_line *l, struct request *out)
{
    if (TOK_IS(l->t[l->nt - 1], "noreply")) {
        out->rflags |= REQ_F_NOREPLY;
        return true;
    }
    return false;
}

static bool
set_key(struct request *out, struct req_tok t)
{
    if (!req_key_valid(t.p, t.n)) {
        return false;
    }
    out->key = t.p;
    out->nkey = t.n;
    return true;
}

/* ---- commands ---- */

/* A bad key fails the whole get line: one error replaces its reply. */
static enum status
get_fail(struct request *out)
{
    out->key = out->args = NULL;
    out->nkey = out->nargs = 0;
    out->nkeys = 0;
    out->rflags = REQ_F_FIRST | REQ_F_LAST;
    return reply(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
}

/* get|gets <key>*, gat|gats <exptime> <key>*: the whole line is read,
 * however many tokens it holds; one bad key fails the whole line. */
static enum status
parse_get(const struct req_line *l, struct request *out)
{
    const char *end = l->p + l->n;
    const char *cur;
    const char *key;
    size_t nkey;

    if (l->nt < 2) {
        return reply_error(out);
    }
    out->rflags = REQ_F_FIRST | REQ_F_LAST;
    cur = l->t[1].p;
    if (out->cmd == REQ_GAT || out->cmd == REQ_GATS) {
        int32_t exptime;

        if (!util_safe_strtol(l->t[1].p, l->t[1].n, &exptime)) {
            return reply(out, RES_CLIENT_ERROR, MSG_BAD_EXPTIME);
        }
        out->exptime = exptime;
        cur = l->t[1].p + l->t[1].n;
    }
    out->args = cur;
    while (util_next_token(&cur, end, &key, &nkey)) {
        if (!req_key_valid(key, nkey)) {
            return get_fail(out);
        }
        if (out->nkeys++ == 0) {
            out->key = key;
            out->nkey = nkey;
            out->args = key;
        }
        out->nargs = (size_t)(key + nkey - out->args);
    }
    if (out->nkeys > 1) {
        out->rflags &= ~REQ_F_LAST;
    }
    if (out->nkeys == 0) {
        /* "gat 10" has no key: memcached answers a bare "END". */
        out->args = NULL;
        return reply(out, RES_MISS, NULL);
    }
    return ST_OK;
}

/* <cmd> <key> <flags> <exptime> <bytes> [<cas>] [noreply] + data */
static enum status
parse_storage(const struct req_line *l, const char *buf, size_t len,
              size_t item_size_max, struct request *out, size_t *consumed,
              size_t *need)
{
    size_t nt = out->cmd == REQ_CAS ? 6 : 5;
    int32_t exptime;
    int32_t vlen;

    if (l->nt != nt && l->nt != nt + 1) {
        return reply_error(out);
    }
    noreply_maybe(l, out);
    if (!set_key(out, l->t[1]) ||
        !util_safe_strtoul(l->t[2].p, l->t[2].n, &out->flags) ||
        !util_safe_strtol(l->t[3].p, l->t[3].n, &exptime) ||
        !util_safe_strtol(l->t[4].p, l->t[4].n, &vlen) ||
        (nt == 6 && !util_safe_strtoull(l->t[5].p, l->t[5].n, &out->cas)) ||
        vlen < 0 || vlen > INT32_MAX - 2) {
        /* the data block is not swallowed: it is read as a command */
        return reply(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
    }
    out->exptime = exptime;
    return req_data_block(buf, len, l->size, (size_t)vlen, item_size_max, out,
                          consumed, need);
}

/* incr|decr <key> <delta> [noreply] */
static enum status
parse_arith(const struct req_line *l, struct request *out)
{
    if (l->nt != 3 && l->nt != 4) {
        return reply_error(out);
    }
    noreply_maybe(l, out);
    if (!set_key(out, l->t[1])) {
        return reply(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
    }
    if (!util_safe_strtoull(l->t[2].p, l->t[2].n, &out->delta)) {
        return reply(out, RES_CLIENT_ERROR, MSG_BAD_DELTA);
    }
    return ST_OK;
}

/* delete <key> [0] [noreply]: the legacy hold time must be "0". */
static enum status
parse_delete(const struct req_line *l, struct request *out)
{
    if (l->nt < 2 || l->nt > 4) {
        return reply_error(out);
    }
    if (l->nt > 2) {
        bool zero = TOK_IS(l->t[2], "0");
        bool nr = noreply_maybe(l, out);

        if (!((l->nt == 3 && (zero || nr)) || (l->nt == 4 && zero && nr))) {
            return reply(out, RES_CLIENT_ERROR, MSG_DELETE_USAGE);
        }
    }
    if (!set_key(out, l->t[1])) {
        return reply(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
    }
    return ST_OK;
}

/* touch <key> <exptime> [noreply] */
static enum status
parse_touch(const struct req_line *l, struct request *out)
{
    int32_t exptime;

    if (l->nt != 3 && l->nt != 4) {
        return reply_error(out);
    }
    noreply_maybe(l, out);
    if (!set_key(out, l->t[1])) {
        return reply(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
    }
    if (!util_safe_strtol(l->t[2].p, l->t[2].n, &exptime)) {
        return reply(out, RES_CLIENT_ERROR, MSG_BAD_EXPTIME);
    }
    out->exptime = exptime;
    return ST_OK;
}

/* flush_all [delay] [noreply]: a token other than a lone "noreply"
 * must be a number ("flush_all 0 junk" is accepted). */
static enum status
parse_flush(const struct req_line *l, struct request *out)
{
    int32_t delay;

    if (l->nt > 3) {
        return reply_error(out);
    }
    if (l->nt == (noreply_maybe(l, out) ? 2u : 1u)) {
        return ST_OK;
    }
    if (!util_safe_strtol(l->t[1].p, l->t[1].n, &delay)) {
        return reply(out, RES_CLIENT_ERROR, MSG_BAD_EXPTIME);
    }
    out->rflags |= REQ_F_HAS_DELAY;
    out->exptime = delay;
    return ST_OK;
}

/* verbosity <level> [noreply]; the level goes to out->delta. */
static enum status
parse_verbosity(const struct req_line *l, struct request *out)
{
    uint32_t level;

    if (l->nt != 2 && l->nt != 3) {
        return reply_error(out);
    }
    noreply_maybe(l, out);
    if (!util_safe_strtoul(l->t[1].p, l->t[1].n, &level)) {
        return reply(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
    }
    out->delta = level;
    return ST_OK;
}

/* stats [args]: the arguments, trimmed of spaces, are passed on raw. */
static enum status
parse_stats(const struct req_line *l, struct request *out)
{
    const char *end = l->p + l->n;

    if (l->nt < 2) {
        return ST_OK;
    }
    while (end[-1] == ' ') {
        end--;
    }
    out->args = l->t[1].p;
    out->nargs = (size_t)(end - out->args);
    return ST_OK;
}

/* Command name -> enum, by length first (memcached names are exact and
 * case-sensitive). */
static enum req_cmd
lookup(struct req_tok t)
{
    switch (t.n) {
    case 3:
        return TOK_IS(t, "get")   ? REQ_GET
               : TOK_IS(t, "set") ? REQ_SET
               : TOK_IS(t, "gat") ? REQ_GAT
               : TOK_IS(t, "add") ? REQ_ADD
               : TOK_IS(t, "cas") ? REQ_CAS
                                  : REQ_NONE;
    case 4:
        return TOK_IS(t, "gets")   ? REQ_GETS
               : TOK_IS(t, "incr") ? REQ_INCR
               : TOK_IS(t, "decr") ? REQ_DECR
               : TOK_IS(t, "gats") ? REQ_GATS
               : TOK_IS(t, "quit") ? REQ_QUIT
                                   : REQ_NONE;
    case 5:
        return TOK_IS(t, "touch")   ? REQ_TOUCH
               : TOK_IS(t, "stats") ? REQ_STATS
                                    : REQ_NONE;
    case 6:
        return TOK_IS(t, "delete")   ? REQ_DELETE
               : TOK_IS(t, "append") ? REQ_APPEND
                                     : REQ_NONE;
    case 7:
        return TOK_IS(t, "replace")   ? REQ_REPLACE
               : TOK_IS(t, "prepend") ? REQ_PREPEND
               : TOK_IS(t, "version") ? REQ_VERSION
                                      : REQ_NONE;
    case 9:
        return TOK_IS(t, "flush_all")   ? REQ_FLUSH_ALL
               : TOK_IS(t, "verbosity") ? REQ_VERBOSITY
                                        : REQ_NONE;
    default:
        return REQ_NONE;
    }
}

/* A line with no '\n' yet: may it keep growing? memcached closes the
 * connection past 2048 bytes unless the line is a multi-get (after at
 * most 100 leading spaces). */
static bool
may_grow(const char *buf, size_t len)
{
    if (len <= TEXT_LINE_MAX) {
        return true;
    }
    return len <= TEXT_GET_LINE_MAX && proto_text_is_get_line(buf, len);
}

bool
proto_text_is_get_line(const char *buf, size_t len)
{
    static const struct req_tok gets[] = {
        {"get ", 4}, {"gets ", 5}, {"gat ", 4}, {"gats ", 5}};
    size_t i = 0;

    while (i < len && buf[i] == ' ' && i <= GET_PREFIX_SPACES) {
        i++;
    }
    if (i > GET_PREFIX_SPACES) {
        return false;
    }
    for (size_t k = 0; k < NELEMS(gets); k++) {
        const struct req_tok *g = &gets[k];

        if (len - i >= g->n && memcmp(buf + i, g->p, g->n) == 0) {
            return true;
        }
    }
    return false;
}

enum status
proto_text_parse(const char *buf, size_t len, size_t item_size_max,
                 struct request *out, size_t *consumed, size_t *need)
{
    struct req_line l; /* req_line_split sets what is read: t[0..nt) */
    const char *nl;

    memset(out, 0, sizeof(*out));
    *consumed = 0;
    *need = 0;
    nl = len > 0 ? memchr(buf, '\n', len) : NULL;
    if (nl == NULL) {
        return may_grow(buf, len) ? ST_AGAIN : ST_PROTO;
    }
    req_line_split(buf, nl, LINE_TOKENS, &l);
    *consumed = l.size;
    if (l.nt == 0 || l.t[0].n < 2) {
        return reply_error(out);
    }
    out->cmd = lookup(l.t[0]);
    switch (out->cmd) {
    case REQ_GET:
    case REQ_GETS:
    case REQ_GAT:
    case REQ_GATS:
        return parse_get(&l, out);
    case REQ_SET:
    case REQ_ADD:
    case REQ_REPLACE:
    case REQ_APPEND:
    case REQ_PREPEND:
    case REQ_CAS:
        return parse_storage(&l, buf, len, item_size_max, out, consumed, need);
    case REQ_INCR:
    case REQ_DECR:
        return parse_arith(&l, out);
    case REQ_DELETE:
        return parse_delete(&l, out);
    case REQ_TOUCH:
        return parse_touch(&l, out);
    case REQ_FLUSH_ALL:
        return parse_flush(&l, out);
    case REQ_VERBOSITY:
        return parse_verbosity(&l, out);
    case REQ_STATS:
        return parse_stats(&l, out);
    case REQ_VERSION:
    case REQ_QUIT:
        return ST_OK; /* memcached ignores any further tokens */
    default:
        return reply_unknown(&l, out);
    }
}

/* ---- encoder ---- */

#define COPY(q, lit) outq_copy((q), lit, sizeof(lit) - 1)

/* "VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n" [+ "END\r\n"] */
static enum status
encode_value(const struct request *req, const struct response *res,
             struct outq *q)
{
    char num[3 * 21 + 4];
    size_t n = 0;
    bool last = (req->rflags & REQ_F_LAST) != 0;

    num[n++] = ' ';
    n += util_u64_str(num + n, res->flags);
    num[n++] = ' ';
    n += util_u64_str(num + n, res->nval);
    if (req->cmd == REQ_GETS || req->cmd == REQ_GATS) {
        num[n++] = ' ';
        n += util_u64_str(num + n, res->cas);
    }
    num[n++] = '\r';
    num[n++] = '\n';
    if (COPY(q, "VALUE ") != ST_OK ||
        outq_copy(q, req->key, req->nkey) != ST_OK ||
        outq_copy(q, num, n) != ST_OK ||
        outq_ref(q, res->val, res->nval) != ST_OK) {
        return ST_NOMEM;
    }
    return last ? COPY(q, "\r\nEND\r\n") : COPY(q, "\r\n");
}

enum status
proto_text_encode(const struct request *req, const struct response *res,
                  const char *version, struct outq *q)
{
    /* memcached silences every reply, errors included, once it has seen
     * noreply; the parser sets the flag only where memcached does. */
    if (req->rflags & REQ_F_NOREPLY) {
        return ST_OK;
    }
    switch (res->kind) {
    case RES_VALUE:
        return encode_value(req, res, q);
    case RES_MISS:
        return req->rflags & REQ_F_LAST ? COPY(q, "END\r\n") : ST_OK;
    case RES_STORED:
        return COPY(q, "STORED\r\n");
    case RES_NOT_STORED:
        return COPY(q, "NOT_STORED\r\n");
    case RES_EXISTS:
        return COPY(q, "EXISTS\r\n");
    case RES_NOT_FOUND:
        return COPY(q, "NOT_FOUND\r\n");
    case RES_DELETED:
        return COPY(q, "DELETED\r\n");
    case RES_TOUCHED:
        return COPY(q, "TOUCHED\r\n");
    case RES_OK:
        return COPY(q, "OK\r\n");
    case RES_ERROR:
        return COPY(q, "ERROR\r\n");
    case RES_NUMBER:
        return res_encode_line(q, res->val, res->nval, NULL, 0);
    case RES_CLIENT_ERROR:
        return res_encode_line(q, "CLIENT_ERROR", 12, res->msg,
                               res->msg ? res->nmsg : 0);
    case RES_SERVER_ERROR:
        return res_encode_line(q, "SERVER_ERROR", 12, res->msg,
                               res->msg ? res->nmsg : 0);
    case RES_VERSION:
        return res_encode_line(q, "VERSION", 7, version,
                               version ? strlen(version) : 0);
    case RES_RAW:
        return outq_ref(q, res->val, res->nval);
    case RES_NONE:
    case RES_QUIT:
    default:
        return ST_OK;
    }
}
