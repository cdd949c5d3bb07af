/*
 * proto_meta: the meta protocol, on both sides of riven.
 *
 *   client rbuf    --parse_request--> struct request (refs into the rbuf)
 *   struct request --queue_request--> "ms k 5 F0 T0\r\n" + value ref +
 *                                     "\r\n" into a handler's outq
 *                  (--encode_request-> the same bytes copied into a buf)
 *   backend rbuf   --parse_reply----> struct response (refs into the rbuf)
 *   struct response --encode_reply--> client outq (meta clients)
 *
 * Meta clients are passed through: riven checks only what it must (the
 * framing, the key it routes on, flag letters, q and b), forwards the line
 * without its q flags, and returns the backend's reply bytes verbatim
 * unless q hides them. Flag arguments are the backend's to check: its
 * error line reaches the client unchanged, as memcached would send it.
 *
 * Encoding writes the command line within an upper bound (in place in a
 * buf, or on the stack and then copied into an outq); numbers are
 * formatted with util_*_str. A value goes to an outq by reference
 * (STYLE.md 17: forwarded from where it lies, in a writev). Keys, flags and
 * stats arguments are checked so a bad request can never inject a second
 * command into the backend stream.
 *
 * Parsers decode exactly one request or reply and keep no state: an
 * incomplete one is re-parsed from its start when more bytes arrive. They
 * never read past len; the reply parser never writes *res unless it
 * returns ST_OK, and fills *res completely (val/msg/raw NULL if absent).
 *
 * Facts checked against memcached 1.6.18 (see tests/unit/test_proto_meta.c):
 * T0 means no expiry and a negative T expires at once, as in classic
 * commands; mg with T answers the value as it was and then applies T;
 * ms in append/prepend mode ignores F and T and answers NS on a miss; ma
 * clamps decr at 0, wraps incr at 2^64 and answers CLIENT_ERROR for a
 * non-numeric value; EN/HD may carry returned flags ("EN Oabc kk");
 * "stats sizes_enable|sizes_disable" answer one STAT line and no END;
 * binary delete returns CAS 0 but binary touch the item's CAS, and
 * binary incr on a miss with an expiration creates the item with the
 * initial value and returns it (ma N<e> J<i> does the same).
 * Client side: see the two tables below. Known, deliberate differences:
 * flag tokens with control bytes are refused (memcached accepts them;
 * keys may hold them, as req_key_valid says), a line longer
 * than META_LINE_MAX closes the connection even when its '\n' arrived
 * with it, an ms value is "too large" when <datalen> > item_size_max and
 * that is found before the backend could object to a flag argument, and
 * "ma ... q" hides the reply of an autovivified item, which memcached
 * shows (the reply bytes are the same; riven cannot tell them apart).
 */
#include "proto_meta.h"

#include <assert.h>
#include <string.h>

#include "proto_text.h"

#define META_VAL_MAX (1u << 30) /* memcached's largest item_size_max */
#define META_NUM_MAX 20         /* digits of a 64-bit counter */
#define NUM_STR_MAX  21         /* util_*_str output bound */
#define ENC_FIXED    48         /* command, flag letters, spaces, CRLFs */
/* The longest backend command line: numbers, letters, a key and a meta
 * line's flags (line_args_ok: at most META_LINE_MAX). */
#define ENC_LINE_MAX                                                           \
    (ENC_FIXED + 4 * NUM_STR_MAX + KEY_MAX_LENGTH + META_LINE_MAX)
/* proto_meta_queue_request copies values up to this long with their line
 * (outq_ref would copy them too: OUTQ_REF_MIN, buf.c). */
#define ENC_INLINE_MAX 255

/* Tokens of a meta line, command and key included: memcached refuses
 * more than 20 counting its terminal token. */
#define META_TOKENS_MAX 19
_Static_assert(META_TOKENS_MAX + 1 <= REQ_LINE_TOKENS,
               "struct req_line holds a line");

#define MSG_INVALID_OR_DUP "invalid or duplicate flag"

/* ---- what memcached 1.6.18 accepts ---- */

/*
 * The flags of mg, ms, md and ma. memcached checks them with one shared
 * parser, in order: a letter not listed is an "invalid flag", a letter
 * seen twice a "duplicate flag" (md and ma say "invalid or duplicate
 * flag" for both). Only a token's first byte names its flag ("vx" is v,
 * "qq" is q); a flag that takes an argument reads the rest of the token
 * ("T30", "Oabc"). riven checks letters, repeats, q and b; arguments are
 * checked by the backend. me has no flags: only a "b" right after the key
 * counts, anything else is ignored.
 */
static const struct meta_flag {
    char letter;
    bool arg;            /* takes an argument in its token */
    const char *meaning; /* and the commands it acts on */
} meta_flags[] = {
    {'b', false, "key is base64 (decoded for hashing): all"},
    {'c', false, "return the CAS: mg ms ma"},
    {'f', false, "return the client flags: mg"},
    {'h', false, "return whether hit before: mg"},
    {'k', false, "return the key: all"},
    {'l', false, "return seconds since last access: mg"},
    {'q', false, "quiet: hide the nominal status (see meta_cmds): all"},
    {'s', false, "return the item size: mg"},
    {'t', false, "return the TTL left, -1 for none: mg ma"},
    {'u', false, "do not bump the item in the LRU: mg"},
    {'v', false, "return the value (VA instead of HD): mg ma"},
    {'C', true, "compare this CAS: ms md ma"},
    {'D', true, "delta: ma"},
    {'F', true, "client flags to store: ms"},
    {'I', false, "invalidate (mark stale): ms md"},
    {'J', true, "initial value when autovivified: ma"},
    {'L', true, "ignored (a hint for proxies): all"},
    {'M', true, "mode: ms E A P R S, ma I + D -"},
    {'N', true, "autovivify on a miss with this TTL: mg ma"},
    {'O', true, "opaque, echoed back, at most 31 bytes: all"},
    {'P', true, "ignored (a path for proxies): all"},
    {'R', true, "win the recache if the TTL left is below: mg"},
    {'T', true, "set the TTL: mg ms ma, md with I"},
};

/*
 * The commands. A request with q does not get the statuses in q_hides
 * (mg: a miss; ms, md: success; ma: success with or without a value);
 * every other status and every error line is sent. The error texts are
 * memcached's, which differ per command. A line without a key is "ERROR",
 * except for me ("CLIENT_ERROR bad command line format"); mn ignores
 * anything after it.
 */
static const struct meta_cmd {
    char name[3];
    enum req_cmd cmd;
    bool datalen;          /* ms: "<key> <datalen> <flags>*" */
    const char *invalid;   /* unknown flag letter */
    const char *duplicate; /* repeated flag letter */
    const char *too_long;  /* more than META_TOKENS_MAX tokens */
    const char *bad_b64;   /* b, and the key does not decode */
    const char q_hides[2][3];
} meta_cmds[] = {
    {.name = "mg",
     .cmd = REQ_MG,
     .q_hides = {"EN"},
     .invalid = "invalid flag",
     .duplicate = "duplicate flag",
     .too_long = "options flags are too long",
     .bad_b64 = "error decoding key"},
    {.name = "ms",
     .cmd = REQ_MS,
     .q_hides = {"HD"},
     .datalen = true,
     .invalid = "invalid flag",
     .duplicate = "duplicate flag",
     .too_long = "options flags too long",
     .bad_b64 = "error decoding key"},
    {.name = "md",
     .cmd = REQ_MD,
     .q_hides = {"HD"},
     .invalid = MSG_INVALID_OR_DUP,
     .duplicate = MSG_INVALID_OR_DUP,
     .too_long = "options flags too long",
     .bad_b64 = MSG_INVALID_OR_DUP},
    {.name = "ma",
     .cmd = REQ_MA,
     .q_hides = {"HD", "VA"},
     .invalid = MSG_INVALID_OR_DUP,
     .duplicate = MSG_INVALID_OR_DUP,
     .too_long = "options flags too long",
     .bad_b64 = MSG_INVALID_OR_DUP},
    {.name = "me", .cmd = REQ_ME, .bad_b64 = MSG_BAD_FORMAT},
    {.name = "mn", .cmd = REQ_MN},
};

static const struct meta_cmd *
meta_cmd_of(enum req_cmd cmd)
{
    for (size_t i = 0; i < NELEMS(meta_cmds); i++) {
        if (meta_cmds[i].cmd == cmd) {
            return &meta_cmds[i];
        }
    }
    return NULL;
}

/* A client meta command that goes to a backend (mn does not). */
static bool
is_meta(enum req_cmd cmd)
{
    return cmd == REQ_MG || cmd == REQ_MS || cmd == REQ_MD || cmd == REQ_MA ||
           cmd == REQ_ME;
}

/* Index of a flag letter in meta_flags, or -1. */
static int
flag_index(char c)
{
    for (size_t i = 0; i < NELEMS(meta_flags); i++) {
        if (meta_flags[i].letter == c) {
            return (int)i;
        }
    }
    return -1;
}

/* Does a client with q not get this status ("EN", "HD", ...)? */
static bool
q_hides(const struct request *req, const char *status, size_t n)
{
    const struct meta_cmd *mc = meta_cmd_of(req->cmd);

    if (!(req->rflags & REQ_F_QUIET) || mc == NULL || n < 2) {
        return false;
    }
    for (size_t i = 0; i < NELEMS(mc->q_hides); i++) {
        if (mc->q_hides[i][0] != '\0' &&
            memcmp(mc->q_hides[i], status, 2) == 0 &&
            (n == 2 || status[2] == ' ' || status[2] == '\r')) {
            return true;
        }
    }
    return false;
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

/* Would memcached decode this b key? */
static bool
b64_key_valid(const char *key, size_t nkey)
{
    char tmp[UTIL_B64_DECODED_MAX(KEY_MAX_LENGTH)];
    size_t n;

    return nkey <= KEY_MAX_LENGTH &&
           util_b64_decode(key, nkey, tmp, sizeof(tmp), &n);
}

/* ---- backend requests ---- */

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

/* The flags every translated command may end with: " c" to have the CAS
 * returned, " b" for a base64 key. */
static char *
put_tail(const struct request *req, char *p, bool cas)
{
    if (cas) {
        p = PUT_LIT(p, " c");
    }
    return req->rflags & REQ_F_B64KEY ? PUT_LIT(p, " b") : p;
}

/* " C<cas>" when a binary request carries a CAS to compare (append,
 * prepend, incr, decr, delete); classic text never sets one. */
static char *
put_compare(const struct request *req, char *p)
{
    if (req->cas == 0 || req->cmd == REQ_CAS) {
        return p;
    }
    p = PUT_LIT(p, " C");
    return put_u64(p, req->cas);
}

/* "mg k f v [c] [T<e>]" or "mg k [f] [c] T<e>" for touch. */
static char *
enc_get(const struct request *req, char *p)
{
    bool cas = req->cmd == REQ_GETS || req->cmd == REQ_GATS ||
               (req->rflags & REQ_F_RET_CAS);

    p = put(PUT_LIT(p, "mg "), req->key, req->nkey);
    if (req->cmd != REQ_TOUCH) {
        p = PUT_LIT(p, " f v");
    } else if (cas) {
        p = PUT_LIT(p, " f"); /* a binary touch answers the flags too */
    }
    if (cas) {
        p = PUT_LIT(p, " c");
    }
    if (req->rflags & REQ_F_RET_TTL) {
        p = PUT_LIT(p, " t");
    }
    if (req->tag != 0) { /* lets the handler match the reply to it */
        p = PUT_LIT(p, " O");
        p = put_u64(p, req->tag);
    }
    if (req->cmd != REQ_GET && req->cmd != REQ_GETS) {
        p = PUT_LIT(p, " T");
        p = put_i64(p, req->exptime);
    }
    return put_tail(req, p, false);
}

/* "ms k n ...": the line; the data block follows it. */
static char *
enc_store(const struct request *req, char *p)
{
    p = put(PUT_LIT(p, "ms "), req->key, req->nkey);
    *p++ = ' ';
    p = put_u64(p, req->nval);
    if (req->cmd == REQ_APPEND || req->cmd == REQ_PREPEND) {
        p = req->cmd == REQ_APPEND ? PUT_LIT(p, " MA") : PUT_LIT(p, " MP");
        p = put_compare(req, p);
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
    return put_tail(req, p, req->rflags & REQ_F_RET_CAS);
}

/* "ma k v D<d> [MD] [N<e> J<i>]": binary incr/decr creates the item with
 * its initial value on a miss unless the expiration is all ones; the
 * binary parser sets REQ_F_AUTOVIV only then. */
static char *
enc_arith(const struct request *req, char *p)
{
    p = put(PUT_LIT(p, "ma "), req->key, req->nkey);
    p = PUT_LIT(p, " v D");
    p = put_u64(p, req->delta);
    if (req->cmd == REQ_DECR) {
        p = PUT_LIT(p, " MD");
    }
    if (req->rflags & REQ_F_AUTOVIV) {
        p = PUT_LIT(p, " N");
        p = put_i64(p, req->exptime);
        p = PUT_LIT(p, " J");
        p = put_u64(p, req->initial);
    }
    p = put_compare(req, p);
    return put_tail(req, p, req->rflags & REQ_F_RET_CAS);
}

/* A client's meta command: "<cmd> <key>[ <datalen>]" and its flags
 * without q (me: only b); for ms the data block follows the line. */
static char *
enc_meta(const struct request *req, char *p)
{
    const char *cur = req->args;
    const char *end = req->args != NULL ? req->args + req->nargs : NULL;
    const char *tok;
    size_t ntok;

    p = put(p, meta_cmd_of(req->cmd)->name, 2);
    p = put(PUT_LIT(p, " "), req->key, req->nkey);
    if (req->cmd == REQ_ME) {
        return put_tail(req, p, false);
    }
    if (req->cmd == REQ_MS) {
        *p++ = ' ';
        p = put_u64(p, req->nval);
    }
    while (req->nargs > 0 && util_next_token(&cur, end, &tok, &ntok)) {
        if (tok[0] != 'q') {
            p = put(PUT_LIT(p, " "), tok, ntok);
        }
    }
    return p;
}

/* A keyed command's line, without its "\r\n". */
static char *
enc_keyed(const struct request *req, char *p)
{
    switch (req->cmd) {
    case REQ_INCR:
    case REQ_DECR:
        return enc_arith(req, p);
    case REQ_DELETE:
        p = put_compare(req, put(PUT_LIT(p, "md "), req->key, req->nkey));
        return put_tail(req, p, false);
    default:
        if (is_meta(req->cmd)) {
            return enc_meta(req, p);
        }
        return req_is_storage(req->cmd) ? enc_store(req, p) : enc_get(req, p);
    }
}

static bool
is_keyed(enum req_cmd cmd)
{
    return req_is_get(cmd) || req_is_storage(cmd) || cmd == REQ_TOUCH ||
           cmd == REQ_INCR || cmd == REQ_DECR || cmd == REQ_DELETE ||
           is_meta(cmd);
}

/* flush_all and stats: classic text, which meta lacks; mn, the health
 * probe. */
static char *
enc_classic(const struct request *req, char *p)
{
    if (req->cmd == REQ_MN) {
        return PUT_LIT(p, "mn");
    }
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

/* false if args could not be written into one command line. */
static bool
line_args_ok(const struct request *req)
{
    return req->nargs == 0 ||
           (req->args != NULL && req->nargs <= META_LINE_MAX &&
            args_valid(req->args, req->nargs));
}

/* Does req carry a data block after its line? */
static bool
has_data(const struct request *req)
{
    return req_is_storage(req->cmd) || req->cmd == REQ_MS;
}

/* Upper bound of the command line's length with its "\r\n" (at most
 * ENC_LINE_MAX; the data block not counted), or 0 if req must not be
 * sent. */
static size_t
line_bound(const struct request *req)
{
    size_t fixed = ENC_FIXED + 4 * NUM_STR_MAX;

    if (is_keyed(req->cmd)) {
        if (req->key == NULL || !req_key_valid(req->key, req->nkey) ||
            (is_meta(req->cmd) && req->cmd != REQ_ME && !line_args_ok(req))) {
            return 0;
        }
        if (has_data(req) && ((req->nval > 0 && req->val == NULL) ||
                              req->nval > SIZE_MAX - ENC_LINE_MAX - 2)) {
            return 0;
        }
        fixed += is_meta(req->cmd) && req->cmd != REQ_ME ? req->nargs : 0;
        return fixed + req->nkey;
    }
    if (req->cmd == REQ_STATS) {
        return line_args_ok(req) ? fixed + req->nargs : 0;
    }
    return req->cmd == REQ_FLUSH_ALL || req->cmd == REQ_MN ? fixed : 0;
}

/* Write req's line with its "\r\n" at p (line_bound bytes of room);
 * returns its end. */
static char *
enc_line(const struct request *req, char *p)
{
    p = is_keyed(req->cmd) ? enc_keyed(req, p) : enc_classic(req, p);
    return PUT_LIT(p, "\r\n");
}

enum status
proto_meta_encode_request(const struct request *req, struct buf *out)
{
    size_t bound = line_bound(req);
    char *p;

    if (bound == 0) {
        return ST_ERROR;
    }
    if (has_data(req)) {
        bound += req->nval + 2;
    }
    if (buf_reserve(out, bound) != ST_OK) {
        return ST_NOMEM;
    }
    p = enc_line(req, out->last);
    if (has_data(req)) {
        p = req->nval > 0 ? put(p, req->val, req->nval) : p;
        p = PUT_LIT(p, "\r\n");
    }
    out->last = p;
    return ST_OK;
}

/* Where an outq stood, to take back a request queued in part. outq has
 * no rewind of its own: it only appends bytes to own, appends entries and
 * lengthens its last entry, which is what this undoes (buf.h shows the
 * fields). */
struct qmark {
    size_t n;     /* entries */
    size_t total; /* bytes queued */
    size_t own;   /* bytes in own */
    size_t last;  /* length of entry n - 1 */
};

static void
qmark_take(const struct outq *q, struct qmark *m)
{
    m->n = q->n;
    m->total = q->total;
    m->own = q->own.start ? (size_t)(q->own.last - q->own.start) : 0;
    m->last = q->n > 0 ? q->ents[q->n - 1].len : 0;
}

static void
qmark_rewind(struct outq *q, const struct qmark *m)
{
    q->n = m->n;
    q->total = m->total;
    if (q->own.start != NULL) {
        q->own.last = q->own.start + m->own;
    }
    if (m->n > 0) {
        q->ents[m->n - 1].len = m->last;
    }
}

/* The line is written in place, in the queue's own bytes: a line buffer
 * on the stack (ENC_LINE_MAX, 2.7 KiB with an inline value) was the
 * deepest frame of a request, a third page of every busy thread's stack. */
enum status
proto_meta_queue_request(const struct request *req, struct outq *q)
{
    size_t bound = line_bound(req);
    bool inline_val = has_data(req) && req->nval <= ENC_INLINE_MAX;
    struct qmark m;
    char *line, *p;

    if (bound == 0) {
        return ST_ERROR;
    }
    line = outq_reserve(q, bound + (inline_val ? req->nval + 2 : 0));
    if (line == NULL) {
        return ST_NOMEM;
    }
    p = enc_line(req, line);
    assert((size_t)(p - line) <= bound);
    if (!has_data(req)) {
        return outq_commit(q, (size_t)(p - line));
    }
    if (inline_val) { /* one copy, with the line */
        p = req->nval > 0 ? put(p, req->val, req->nval) : p;
        p = PUT_LIT(p, "\r\n");
        return outq_commit(q, (size_t)(p - line));
    }
    qmark_take(q, &m);
    if (outq_commit(q, (size_t)(p - line)) != ST_OK ||
        outq_ref(q, req->val, req->nval) != ST_OK ||
        outq_copy(q, "\r\n", 2) != ST_OK) {
        qmark_rewind(q, &m); /* never half a request on the wire */
        return ST_NOMEM;
    }
    return ST_OK;
}

/* ---- backend replies ---- */

/* What a reply line's first token is: meta codes, then classic words. */
enum code {
    C_VA,
    C_EN,
    C_HD,
    C_NS,
    C_EX,
    C_NF,
    C_ME,
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
    RC_MG, /* meta passthrough: the reply is also kept raw */
    RC_MS,
    RC_MD,
    RC_MA,
    RC_ME,
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
    /* EX: a binary client's CAS did not match (C<cas>) */
    [RC_ARITH] =
        {[C_VA] = RES_NUMBER, [C_NF] = RES_NOT_FOUND, [C_EX] = RES_EXISTS},
    [RC_DELETE] =
        {[C_HD] = RES_DELETED, [C_NF] = RES_NOT_FOUND, [C_EX] = RES_EXISTS},
    [RC_FLUSH] = {[C_OK] = RES_OK},
    [RC_MG] = {[C_VA] = RES_VALUE, [C_HD] = RES_VALUE, [C_EN] = RES_MISS},
    [RC_MS] = {[C_HD] = RES_STORED,
               [C_NS] = RES_NOT_STORED,
               [C_EX] = RES_EXISTS,
               [C_NF] = RES_NOT_FOUND},
    [RC_MD] =
        {[C_HD] = RES_DELETED, [C_NF] = RES_NOT_FOUND, [C_EX] = RES_EXISTS},
    [RC_MA] = {[C_VA] = RES_NUMBER,
               [C_HD] = RES_NUMBER,
               [C_NF] = RES_NOT_FOUND,
               [C_NS] = RES_NOT_STORED,
               [C_EX] = RES_EXISTS},
    [RC_ME] = {[C_ME] = RES_RAW, [C_EN] = RES_MISS},
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
    case REQ_MG:
        return RC_MG;
    case REQ_MS:
        return RC_MS;
    case REQ_MD:
        return RC_MD;
    case REQ_MA:
        return RC_MA;
    case REQ_ME:
        return RC_ME;
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
    static const char meta[C_OK][3] = {"VA", "EN", "HD", "NS",
                                       "EX", "NF", "ME"};
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
        if (s[i] == 't' && !util_parse_i64(s + i + 1, j - i - 1, &res->ttl)) {
            return false;
        }
        if (s[i] == 'O' && !util_parse_u32(s + i + 1, j - i - 1, &res->tag)) {
            res->tag = 0; /* not one of riven's tags */
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
        return code == C_ME || parse_flags(buf + rest, eol - rest, res)
                   ? ST_OK
                   : ST_PROTO;
    }
    st = parse_va(buf, len, rest, eol, res, consumed, need);
    if (st == ST_OK && (rc == RC_ARITH || rc == RC_MA) &&
        (res->nval > META_NUM_MAX || !util_all_digits(res->val, res->nval))) {
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
static void stats_error(const char *buf, size_t n, struct response *res);

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
    stats_error(buf, off, res);
    *consumed = off;
    return ST_OK;
}

/* A stats reply that is one error line ("ERROR", "CLIENT_ERROR ...") is an
 * error, so a binary client hears "Not found"; a text client gets the
 * same bytes either way. */
static void
stats_error(const char *buf, size_t n, struct response *res)
{
    static const char cerr[] = "CLIENT_ERROR ";

    if (n == 7 && memcmp(buf, "ERROR\r\n", 7) == 0) {
        res->kind = RES_ERROR;
        res->msg = buf;
        res->nmsg = 0;
    } else if (n > sizeof(cerr) + 1 &&
               memcmp(buf, cerr, sizeof(cerr) - 1) == 0 &&
               memchr(buf, '\n', n - 1) == NULL) {
        res->kind = RES_CLIENT_ERROR;
        res->msg = buf + sizeof(cerr) - 1;
        res->nmsg = n - (sizeof(cerr) - 1) - 2;
    } else {
        return;
    }
    res->val = NULL;
    res->nval = 0;
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
    if (req->cmd == REQ_MN) { /* the answer to a health probe */
        if (len < 4) {
            return memcmp(buf, "MN\r\n", len) == 0 ? ST_AGAIN : ST_PROTO;
        }
        if (memcmp(buf, "MN\r\n", 4) != 0) {
            return ST_PROTO;
        }
        *res = (struct response){.kind = RES_OK};
        *consumed = 4;
        return ST_OK;
    }
    if (req->cmd == REQ_STATS) {
        st = parse_stats(req, buf, len, &r, &used);
    } else if (rc < 0) {
        return ST_PROTO;
    } else {
        st = parse_one(rc, buf, len, &r, &used, need);
    }
    if (st == ST_OK) {
        if (rc >= RC_MG) {
            r.raw = buf;
            r.nraw = used;
        }
        *res = r;
        *consumed = used;
    }
    return st;
}
/* ---- client requests ---- */

/*
 * Find and tokenize the line at buf[0..len) (req_line_split says how),
 * at most META_TOKENS_MAX + 1 tokens: ST_AGAIN without a '\n', ST_PROTO
 * past META_LINE_MAX.
 */
static enum status
split_line(const char *buf, size_t len, struct req_line *l)
{
    const char *nl = memchr(buf, '\n', MIN(len, META_LINE_MAX + 1));

    if (nl == NULL) {
        return len > META_LINE_MAX ? ST_PROTO : ST_AGAIN;
    }
    req_line_split(buf, nl, META_TOKENS_MAX + 1, l);
    return ST_OK;
}

static enum status
fail(struct request *out, enum res_kind kind, const char *msg)
{
    out->err = kind;
    out->errmsg = msg;
    if (kind == RES_ERROR) {
        out->cmd = REQ_NONE;
        out->rflags = 0;
    }
    return ST_OK;
}

/* A meta command name: exactly two bytes. */
static const struct meta_cmd *
lookup(struct req_tok t)
{
    if (t.n != 2 || t.p[0] != 'm') {
        return NULL;
    }
    for (size_t i = 0; i < NELEMS(meta_cmds); i++) {
        if (meta_cmds[i].name[1] == t.p[1]) {
            return &meta_cmds[i];
        }
    }
    return NULL;
}

/* The flag tokens t[first..nt): letters, repeats, q and b, in memcached's
 * order; out->args spans them as sent. */
static enum status
check_flags(const struct meta_cmd *mc, const struct req_line *l, size_t first,
            struct request *out)
{
    uint32_t seen = 0;

    if (l->nt > first) {
        out->args = l->t[first].p;
        out->nargs =
            (size_t)(l->t[l->nt - 1].p + l->t[l->nt - 1].n - out->args);
    }
    for (size_t i = first; i < l->nt; i++) {
        const struct req_tok *t = &l->t[i];
        int f = flag_index(t->p[0]);

        if (!args_valid(t->p, t->n)) {
            return fail(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
        }
        if (f < 0) {
            return fail(out, RES_CLIENT_ERROR, mc->invalid);
        }
        if (seen & (1u << f)) {
            return fail(out, RES_CLIENT_ERROR, mc->duplicate);
        }
        seen |= 1u << f;
        out->rflags |= t->p[0] == 'q'   ? REQ_F_QUIET
                       : t->p[0] == 'b' ? REQ_F_B64KEY
                                        : 0;
    }
    if ((out->rflags & REQ_F_B64KEY) && !b64_key_valid(out->key, out->nkey)) {
        return fail(out, RES_CLIENT_ERROR, mc->bad_b64);
    }
    return ST_OK;
}

/*
 * ms <key> <datalen> <flags>* + data. memcached's order: a bad datalen is
 * answered without reading the data (it is then read as a command); bad
 * flags and a value too large swallow <datalen> + 2 bytes; the data must
 * end in "\r\n".
 */
static enum status
parse_ms(const struct meta_cmd *mc, const struct req_line *l, const char *buf,
         size_t len, size_t item_size_max, struct request *out,
         size_t *consumed, size_t *need)
{
    int32_t vlen;

    if (l->nt < 3 || !util_safe_strtol(l->t[2].p, l->t[2].n, &vlen) ||
        vlen < 0 || vlen > INT32_MAX - 2) {
        return fail(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
    }
    (void)check_flags(mc, l, 3, out);
    return req_data_block(buf, len, l->size, (size_t)vlen, item_size_max, out,
                          consumed, need);
}

/* me <key> [b]: args keep the rest of the line; only a "b" right after
 * the key means anything. */
static enum status
parse_me(const struct meta_cmd *mc, const struct req_line *l,
         struct request *out)
{
    const char *end = l->p + l->n;

    if (l->nt > 2) {
        while (end[-1] == ' ') {
            end--;
        }
        out->args = l->t[2].p;
        out->nargs = (size_t)(end - out->args);
        if (l->t[2].n == 1 && l->t[2].p[0] == 'b') {
            out->rflags |= REQ_F_B64KEY;
        }
    }
    if ((out->rflags & REQ_F_B64KEY) && !b64_key_valid(out->key, out->nkey)) {
        return fail(out, RES_CLIENT_ERROR, mc->bad_b64);
    }
    return ST_OK;
}

enum status
proto_meta_parse_request(const char *buf, size_t len, size_t item_size_max,
                         struct request *out, size_t *consumed, size_t *need)
{
    struct req_line l;
    const struct meta_cmd *mc;
    enum status st;

    memset(out, 0, sizeof(*out));
    out->proto = PROTO_META;
    *consumed = 0;
    *need = 0;
    st = split_line(buf, len, &l);
    if (st != ST_OK) {
        return st;
    }
    *consumed = l.size;
    mc = l.nt > 0 ? lookup(l.t[0]) : NULL;
    if (mc == NULL && proto_text_is_http(l.p, l.n)) {
        out->rflags = REQ_F_CLOSE; /* "mkcol /x HTTP/1.1": hang up */
        return fail(out, RES_QUIT, NULL);
    }
    if (mc == NULL) {
        return fail(out, RES_ERROR, NULL);
    }
    out->cmd = mc->cmd;
    if (mc->cmd == REQ_MN) {
        return ST_OK;
    }
    if (l.nt < 2) {
        return mc->cmd == REQ_ME ? fail(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT)
                                 : fail(out, RES_ERROR, NULL);
    }
    if (!req_key_valid(l.t[1].p, l.t[1].n)) {
        return fail(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
    }
    out->key = l.t[1].p;
    out->nkey = l.t[1].n;
    if (mc->cmd == REQ_ME) {
        return parse_me(mc, &l, out);
    }
    if (l.nt > META_TOKENS_MAX) {
        return fail(out, RES_CLIENT_ERROR, mc->too_long);
    }
    if (mc->datalen) {
        return parse_ms(mc, &l, buf, len, item_size_max, out, consumed, need);
    }
    return check_flags(mc, &l, 2, out);
}

/* ---- client replies ---- */

#define COPY(q, lit) outq_copy((q), lit, sizeof(lit) - 1)

/* "VA <n>\r\n<val>\r\n": a value answered without the backend's bytes. */
static enum status
encode_va(const struct response *res, struct outq *q)
{
    char num[NUM_STR_MAX + 5] = "VA ";
    size_t n = 3 + util_u64_str(num + 3, res->nval);

    num[n++] = '\r';
    num[n++] = '\n';
    if (outq_copy(q, num, n) != ST_OK ||
        outq_ref(q, res->val, res->nval) != ST_OK) {
        return ST_NOMEM;
    }
    return COPY(q, "\r\n");
}

/* A reply riven makes itself: errors, and the bare status of a response
 * that did not come from a backend. */
static enum status
encode_local(const struct request *req, const struct response *res,
             struct outq *q)
{
    static const char codes[][3] = {
        [RES_MISS] = "EN",      [RES_STORED] = "HD",     [RES_DELETED] = "HD",
        [RES_TOUCHED] = "HD",   [RES_NOT_STORED] = "NS", [RES_EXISTS] = "EX",
        [RES_NOT_FOUND] = "NF", [RES_VALUE] = "VA",      [RES_NUMBER] = "VA",
    };
    size_t nmsg = res->msg ? res->nmsg : 0;

    switch (res->kind) {
    case RES_ERROR:
        return COPY(q, "ERROR\r\n");
    case RES_CLIENT_ERROR:
        return res_encode_line(q, "CLIENT_ERROR", 12, res->msg, nmsg);
    case RES_SERVER_ERROR:
        return res_encode_line(q, "SERVER_ERROR", 12, res->msg, nmsg);
    default:
        break;
    }
    if ((size_t)res->kind >= NELEMS(codes) || codes[res->kind][0] == '\0' ||
        q_hides(req, codes[res->kind], 2)) {
        return ST_OK;
    }
    if (res->kind == RES_VALUE || res->kind == RES_NUMBER) {
        return encode_va(res, q);
    }
    return res_encode_line(q, codes[res->kind], 2, NULL, 0);
}

enum status
proto_meta_encode_reply(const struct request *req, const struct response *res,
                        struct outq *q)
{
    if (req->cmd == REQ_MN && req->err == RES_NONE) {
        return COPY(q, "MN\r\n");
    }
    if (res->raw == NULL) {
        return encode_local(req, res, q);
    }
    if (q_hides(req, res->raw, res->nraw)) {
        return ST_OK;
    }
    return outq_ref(q, res->raw, res->nraw);
}
