/*
 * proto_meta: riven's side of the meta protocol toward memcached >= 1.6
 * backends.
 *
 *   struct request --encode--> "mg k f v\r\n" ... appended to the wbuf
 *   backend rbuf   --parse---> struct response (refs into the rbuf)
 *
 * Encoding reserves an upper bound once and writes in place; numbers are
 * formatted with util_*_str. Keys and stats arguments are checked so a bad
 * request can never inject a second command into the backend stream.
 *
 * Parsing decodes exactly one reply and keeps no state: an incomplete
 * reply is re-parsed from its start when more bytes arrive. It never reads
 * past len, never writes *res unless it returns ST_OK, and fills *res
 * completely (val/msg are NULL when absent).
 *
 * Facts checked against memcached 1.6.18 (see tests/unit/test_proto_meta.c):
 * T0 means no expiry and a negative T expires at once, as in classic
 * commands; mg with T answers the value as it was and then applies T;
 * ms in append/prepend mode ignores F and T and answers NS on a miss; ma
 * clamps decr at 0, wraps incr at 2^64 and answers CLIENT_ERROR for a
 * non-numeric value; EN/HD may carry returned flags ("EN Oabc kk");
 * "stats sizes_enable|sizes_disable" answer one STAT line and no END.
 */
#include "proto_meta.h"

#include <string.h>

#define META_LINE_MAX 2048       /* longest reply line, memcached's bound */
#define META_VAL_MAX  (1u << 30) /* memcached's largest item_size_max */
#define META_NUM_MAX  20         /* digits of a 64-bit counter */
#define NUM_STR_MAX   21         /* util_*_str output bound */
#define ENC_FIXED     32         /* command, flag letters, spaces, CRLFs */

/* ---- encoding ---- */

static char *
put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *
put_u64(char *p, uint64_t v)
{
    return p + util_u64_str(p, v);
}

static char *
put_i64(char *p, int64_t v)
{
    return p + util_i64_str(p, v);
}

/* false if a control byte in args could end the command line early. */
static bool
args_valid(const char *args, size_t nargs)
{
    for (size_t i = 0; i < nargs; i++) {
        unsigned char c = (unsigned char)args[i];

        if (c < 0x20 || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* "mg k f v [c] [T<e>]" or "mg k T<e>" for touch. */
static char *
enc_get(const struct request *req, char *p)
{
    p = put(PUT_LIT(p, "mg "), req->key, req->nkey);
    if (req->cmd == REQ_TOUCH) {
        p = PUT_LIT(p, " T");
        return put_i64(p, req->exptime);
    }
    p = PUT_LIT(p, " f v");
    if (req->cmd == REQ_GETS || req->cmd == REQ_GATS) {
        p = PUT_LIT(p, " c");
    }
    if (req->cmd == REQ_GAT || req->cmd == REQ_GATS) {
        p = PUT_LIT(p, " T");
        p = put_i64(p, req->exptime);
    }
    return p;
}

/* "ms k n ..." + "\r\n" + value; the caller adds the final "\r\n". */
static char *
enc_store(const struct request *req, char *p)
{
    p = put(PUT_LIT(p, "ms "), req->key, req->nkey);
    *p++ = ' ';
    p = put_u64(p, req->nval);
    if (req->cmd == REQ_APPEND || req->cmd == REQ_PREPEND) {
        p = req->cmd == REQ_APPEND ? PUT_LIT(p, " MA") : PUT_LIT(p, " MP");
    } else {
        p = PUT_LIT(p, " F");
        p = put_u64(p, req->flags);
        p = PUT_LIT(p, " T");
        p = put_i64(p, req->exptime);
        if (req->cmd == REQ_ADD) {
            p = PUT_LIT(p, " ME");
        } else if (req->cmd == REQ_REPLACE) {
            p = PUT_LIT(p, " MR");
        } else if (req->cmd == REQ_CAS) {
            p = PUT_LIT(p, " C");
            p = put_u64(p, req->cas);
        }
    }
    p = PUT_LIT(p, "\r\n");
    return req->nval > 0 ? put(p, req->val, req->nval) : p;
}

/* Everything but the final "\r\n" of a keyed command. */
static char *
enc_keyed(const struct request *req, char *p)
{
    switch (req->cmd) {
    case REQ_INCR:
    case REQ_DECR:
        p = put(PUT_LIT(p, "ma "), req->key, req->nkey);
        p = PUT_LIT(p, " v D");
        p = put_u64(p, req->delta);
        return req->cmd == REQ_DECR ? PUT_LIT(p, " MD") : p;
    case REQ_DELETE:
        return put(PUT_LIT(p, "md "), req->key, req->nkey);
    default:
        return req_is_storage(req->cmd) ? enc_store(req, p) : enc_get(req, p);
    }
}

static bool
is_keyed(enum req_cmd cmd)
{
    return req_is_get(cmd) || req_is_storage(cmd) || cmd == REQ_TOUCH ||
           cmd == REQ_INCR || cmd == REQ_DECR || cmd == REQ_DELETE;
}

/* flush_all and stats: classic text, which meta lacks. */
static char *
enc_classic(const struct request *req, char *p)
{
    if (req->cmd == REQ_FLUSH_ALL) {
        p = PUT_LIT(p, "flush_all");
        if (req->rflags & REQ_F_HAS_DELAY) {
            *p++ = ' ';
            p = put_i64(p, req->exptime);
        }
        return p;
    }
    p = PUT_LIT(p, "stats");
    if (req->nargs > 0) {
        *p++ = ' ';
        p = put(p, req->args, req->nargs);
    }
    return p;
}

/* Upper bound of the encoded length, or 0 if req must not be sent. */
static size_t
enc_bound(const struct request *req)
{
    size_t fixed = ENC_FIXED + 4 * NUM_STR_MAX;

    if (is_keyed(req->cmd)) {
        if (req->key == NULL || !req_key_valid(req->key, req->nkey)) {
            return 0;
        }
        if (!req_is_storage(req->cmd)) {
            return fixed + req->nkey;
        }
        if ((req->nval > 0 && req->val == NULL) ||
            req->nval > SIZE_MAX - fixed - KEY_MAX_LENGTH) {
            return 0;
        }
        return fixed + req->nkey + req->nval;
    }
    if (req->cmd == REQ_STATS) {
        if (req->nargs > 0 &&
            (req->args == NULL || !args_valid(req->args, req->nargs) ||
             req->nargs > META_LINE_MAX)) {
            return 0;
        }
        return fixed + req->nargs;
    }
    return req->cmd == REQ_FLUSH_ALL ? fixed : 0;
}

enum status
proto_meta_encode_request(const struct request *req, struct buf *out)
{
    size_t bound = enc_bound(req);
    char *p;

    if (bound == 0) {
        return ST_ERROR;
    }
    if (buf_reserve(out, bound) != ST_OK) {
        return ST_NOMEM;
    }
    p = is_keyed(req->cmd) ? enc_keyed(req, out->last)
                           : enc_classic(req, out->last);
    out->last = PUT_LIT(p, "\r\n");
    return ST_OK;
}

/* ---- parsing ---- */

/* What a reply line's first token is: meta codes, then classic words. */
enum code {
    C_VA,
    C_EN,
    C_HD,
    C_NS,
    C_EX,
    C_NF,
    C_OK,
    C_ERROR,
    C_CLIENT_ERROR,
    C_SERVER_ERROR,
    C_COUNT,
    C_BAD = C_COUNT
};

/* Reply classes of the commands sent to backends. */
enum rclass {
    RC_GET,
    RC_TOUCH,
    RC_STORE,
    RC_ARITH,
    RC_DELETE,
    RC_FLUSH,
    RC_COUNT
};

/* Status line -> result per class; RES_NONE: not a valid reply (ST_PROTO).
 * Error lines are valid for every class and handled apart. */
static const enum res_kind rmap[RC_COUNT][C_OK + 1] = {
    [RC_GET] = {[C_VA] = RES_VALUE, [C_EN] = RES_MISS},
    [RC_TOUCH] = {[C_HD] = RES_TOUCHED, [C_EN] = RES_NOT_FOUND},
    [RC_STORE] = {[C_HD] = RES_STORED,
                  [C_NS] = RES_NOT_STORED,
                  [C_EX] = RES_EXISTS,
                  [C_NF] = RES_NOT_FOUND},
    [RC_ARITH] = {[C_VA] = RES_NUMBER, [C_NF] = RES_NOT_FOUND},
    [RC_DELETE] = {[C_HD] = RES_DELETED, [C_NF] = RES_NOT_FOUND},
    [RC_FLUSH] = {[C_OK] = RES_OK},
};

static int
rclass_of(enum req_cmd cmd)
{
    switch (cmd) {
    case REQ_GET:
    case REQ_GETS:
    case REQ_GAT:
    case REQ_GATS:
        return RC_GET;
    case REQ_TOUCH:
        return RC_TOUCH;
    case REQ_INCR:
    case REQ_DECR:
        return RC_ARITH;
    case REQ_DELETE:
        return RC_DELETE;
    case REQ_FLUSH_ALL:
        return RC_FLUSH;
    default:
        return req_is_storage(cmd) ? RC_STORE : -1;
    }
}

/*
 * Find the line at buf[0..len): *eol is the offset of its "\r\n".
 * ST_AGAIN without a '\n' yet, ST_PROTO for a bare '\n' or a line longer
 * than META_LINE_MAX.
 */
static enum status
find_line(const char *buf, size_t len, size_t *eol)
{
    const char *nl = memchr(buf, '\n', MIN(len, META_LINE_MAX));

    if (nl == NULL) {
        return len >= META_LINE_MAX ? ST_PROTO : ST_AGAIN;
    }
    if (nl == buf || nl[-1] != '\r') {
        return ST_PROTO;
    }
    *eol = (size_t)(nl - buf) - 1;
    return ST_OK;
}

/* Does line[0..n) start with word, followed by the end or a space? */
static bool
word_is(const char *line, size_t n, const char *word, size_t wlen)
{
    return n >= wlen && memcmp(line, word, wlen) == 0 &&
           (n == wlen || line[wlen] == ' ');
}

#define WORD_IS(line, n, lit) word_is((line), (n), (lit), sizeof(lit) - 1)

/* Classify a reply line; *rest is where its arguments start. */
static enum code
classify(const char *line, size_t n, size_t *rest)
{
    static const char meta[C_OK][3] = {"VA", "EN", "HD", "NS", "EX", "NF"};
    static const struct {
        const char *word;
        size_t len;
    } words[] = {
        {"OK", 2}, {"ERROR", 5}, {"CLIENT_ERROR", 12}, {"SERVER_ERROR", 12}};

    for (size_t i = 0; i < NELEMS(meta); i++) {
        if (word_is(line, n, meta[i], 2)) {
            *rest = n > 2 ? 3 : 2;
            return (enum code)i;
        }
    }
    for (size_t i = 0; i < NELEMS(words); i++) {
        if (word_is(line, n, words[i].word, words[i].len)) {
            *rest = MIN(n, words[i].len + 1);
            return (enum code)(C_OK + i);
        }
    }
    return C_BAD;
}

/* Parse returned meta flags in s[0..n): f<flags> and c<cas> are kept,
 * every other flag is skipped. false on a malformed f or c token. */
static bool
parse_flags(const char *s, size_t n, struct response *res)
{
    size_t i = 0;

    while (i < n) {
        size_t j;

        if (s[i] == ' ') {
            i++;
            continue;
        }
        for (j = i; j < n && s[j] != ' '; j++) {
        }
        if (s[i] == 'f' && !util_parse_u32(s + i + 1, j - i - 1, &res->flags)) {
            return false;
        }
        if (s[i] == 'c' && !util_parse_u64(s + i + 1, j - i - 1, &res->cas)) {
            return false;
        }
        i = j;
    }
    return true;
}

/* "VA <n> <flags>*": the data block follows the line. */
static enum status
parse_va(const char *buf, size_t len, size_t rest, size_t eol,
         struct response *res, size_t *consumed, size_t *need)
{
    size_t j = rest, hdr = eol + 2;
    uint64_t n;

    while (j < eol && buf[j] != ' ') {
        j++;
    }
    if (!util_parse_u64(buf + rest, j - rest, &n) || n > META_VAL_MAX ||
        !parse_flags(buf + j, eol - j, res)) {
        return ST_PROTO;
    }
    if (len < hdr + n + 2) {
        *need = hdr + (size_t)n + 2;
        return ST_AGAIN;
    }
    if (buf[hdr + n] != '\r' || buf[hdr + n + 1] != '\n') {
        return ST_PROTO;
    }
    res->val = buf + hdr;
    res->nval = (size_t)n;
    *consumed = hdr + (size_t)n + 2;
    return ST_OK;
}

static bool
all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return n > 0;
}

/* One reply to a keyed command or flush_all. */
static enum status
parse_one(int rc, const char *buf, size_t len, struct response *res,
          size_t *consumed, size_t *need)
{
    size_t eol = 0, rest = 0;
    enum status st = find_line(buf, len, &eol);
    enum code code;

    if (st != ST_OK) {
        return st;
    }
    code = classify(buf, eol, &rest);
    if (code == C_BAD) {
        return ST_PROTO;
    }
    if (code >= C_ERROR) {
        res->kind = code == C_ERROR          ? RES_ERROR
                    : code == C_CLIENT_ERROR ? RES_CLIENT_ERROR
                                             : RES_SERVER_ERROR;
        res->msg = buf + rest;
        res->nmsg = eol - rest;
        *consumed = eol + 2;
        return ST_OK;
    }
    res->kind = rmap[rc][code];
    if (res->kind == RES_NONE || (code == C_OK && eol != 2)) {
        return ST_PROTO;
    }
    if (code != C_VA) {
        *consumed = eol + 2;
        return parse_flags(buf + rest, eol - rest, res) ? ST_OK : ST_PROTO;
    }
    st = parse_va(buf, len, rest, eol, res, consumed, need);
    if (st == ST_OK && rc == RC_ARITH &&
        (res->nval > META_NUM_MAX || !all_digits(res->val, res->nval))) {
        return ST_PROTO;
    }
    return st;
}

/* Does a stats line end the block? */
static bool
stats_last_line(const char *line, size_t n)
{
    return (n == 3 && memcmp(line, "END", 3) == 0) ||
           (n == 5 && memcmp(line, "RESET", 5) == 0) ||
           (n == 2 && memcmp(line, "OK", 2) == 0) ||
           WORD_IS(line, n, "ERROR") || WORD_IS(line, n, "CLIENT_ERROR") ||
           WORD_IS(line, n, "SERVER_ERROR");
}

/* memcached answers "stats sizes_enable|sizes_disable" with one STAT line
 * and no END; only known when the caller passes the arguments. */
static bool
stats_one_line(const struct request *req)
{
    const char *a = req->args;
    size_t n = req->nargs;

    while (a != NULL && n > 0 && *a == ' ') {
        a++;
        n--;
    }
    return a != NULL &&
           (WORD_IS(a, n, "sizes_enable") || WORD_IS(a, n, "sizes_disable"));
}

/* A stats block, verbatim, up to and including its last line. */
static enum status
parse_stats(const struct request *req, const char *buf, size_t len,
            struct response *res, size_t *consumed)
{
    bool one = stats_one_line(req);
    size_t off = 0;

    for (;;) {
        size_t eol = 0;
        enum status st = find_line(buf + off, len - off, &eol);

        if (st != ST_OK) {
            return st;
        }
        if (one || stats_last_line(buf + off, eol)) {
            off += eol + 2;
            break;
        }
        off += eol + 2;
    }
    res->kind = RES_RAW;
    res->val = buf;
    res->nval = off;
    *consumed = off;
    return ST_OK;
}

enum status
proto_meta_parse_reply(const struct request *req, const char *buf, size_t len,
                       struct response *res, size_t *consumed, size_t *need)
{
    struct response r = {.kind = RES_NONE};
    size_t used = 0;
    int rc = rclass_of(req->cmd);
    enum status st;

    *need = 0;
    if (req->cmd == REQ_STATS) {
        st = parse_stats(req, buf, len, &r, &used);
    } else if (rc < 0) {
        return ST_PROTO;
    } else {
        st = parse_one(rc, buf, len, &r, &used, need);
    }
    if (st == ST_OK) {
        *res = r;
        *consumed = used;
    }
    return st;
}
