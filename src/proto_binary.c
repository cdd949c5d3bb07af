/*
 * proto_binary: memcached's binary protocol, client side.
 *
 * In: the unread bytes of a binary client connection, one 24-byte header
 * plus body per request. Out: struct request whose key and value point
 * into the input; replies go to an outq, value bytes by reference.
 *
 * Everything an opcode means is in the one table `ops` below: the command
 * it becomes, the extras length it must carry, whether it needs, forbids
 * or ignores a key and a value, what its quiet form hides and whether the
 * reply carries the key. The parser validates a packet against its row;
 * the encoder picks the reply shape from the same row.
 *
 * Every status, body text, extras/key/CAS field and quiet rule below was
 * checked byte for byte against memcached 1.6.18 (golden packets in
 * tests/unit/test_proto_binary.c). What memcached 1.6.18 does:
 *   - a first byte other than 0x80 closes the connection, no reply;
 *   - body length < extras + key: 0x0081 "Unknown command", then close;
 *   - key > 250 bytes (any opcode): 0x0004 "Invalid arguments", close;
 *   - wrong extras/key/value for an opcode: 0x0004, then close;
 *   - unknown opcode (verbosity 0x1b and SASL 0x20-0x22 included): 0x0081
 *     and the body is discarded; the connection stays open;
 *   - value too large: 0x0003 "Too large.", the value is discarded, and a
 *     set drops the old item;
 *   - quiet opcodes hide get misses, or the success of the others; error
 *     replies are always sent; quitq closes without a reply;
 *   - add/replace/set with a CAS are a compare-and-swap; append, prepend,
 *     delete and incr/decr with a CAS compare it too;
 *   - set/add/replace/append/prepend/incr/decr/get/gat/touch replies carry
 *     the item's CAS; delete, flush and the rest carry 0.
 * Deliberate differences: memcached over-discards the body of an unknown
 * opcode by its extras + key and leaves a stat/touch/gat value unread,
 * which misframes the stream; riven takes the body length as the truth.
 * Keys with a space, '\n' or NUL, which memcached stores but a meta line
 * to the backends cannot carry, get 0x0004 without a close (other control
 * bytes are forwarded as they are).
 * A value is "too large" when it exceeds item_size_max (memcached also
 * counts its item header). Backend failures, which memcached never has,
 * are 0x0086 "Temporary failure" (backend unavailable or timeout: retry
 * later) or 0x0084 "Internal error" (anything else), each with riven's
 * message as the body; statuses from the binary protocol's later revision
 * (and what Couchbase-era clients map to temporary/internal errors).
 */
#include "proto_binary.h"

#include <arpa/inet.h>
#include <endian.h>
#include <string.h>

/* The key an opcode takes. */
enum op_key {
    K_NONE, /* must be absent */
    K_NEED, /* must be present */
    K_ANY,  /* optional (stat group) */
};

/* The value an opcode takes. */
enum op_val {
    V_NONE,   /* must be absent */
    V_DATA,   /* the item's data, may be empty */
    V_IGNORE, /* not used; skipped if present */
};

/* What the quiet form of an opcode leaves out. */
enum op_hide {
    H_NONE, /* not quiet */
    H_MISS, /* getq/getkq/gatq/gatkq: misses */
    H_OK,   /* setq, deleteq, incrq, flushq, ...: successes */
    H_ALL,  /* quitq: everything */
};

#define EXT_0_OR_4 0xff /* flush: no extras, or a 4-byte delay */

struct opdef {
    const char *name; /* NULL: unknown opcode */
    enum req_cmd cmd;
    uint8_t ext; /* extras length required, or EXT_0_OR_4 */
    enum op_key key;
    enum op_val val;
    enum op_hide hide;
    bool retkey; /* reply carries the key */
};

/*
 * Extras: set/add/replace: flags(4) exptime(4); incr/decr: delta(8)
 * initial(8) exptime(4); touch/gat: exptime(4); flush: [exptime(4)].
 */
/* clang-format off */
static const struct opdef ops[256] = {
/*   opcode          name        cmd            ext  key     value   quiet */
    [BIN_GET]      = {"get",      REQ_GET,       0,  K_NEED, V_NONE,   H_NONE},
    [BIN_GETQ]     = {"getq",     REQ_GET,       0,  K_NEED, V_NONE,   H_MISS},
    [BIN_GETK]     = {"getk",     REQ_GET,       0,  K_NEED, V_NONE,   H_NONE,
                      .retkey = true},
    [BIN_GETKQ]    = {"getkq",    REQ_GET,       0,  K_NEED, V_NONE,   H_MISS,
                      .retkey = true},
    [BIN_GAT]      = {"gat",      REQ_GAT,       4,  K_NEED, V_IGNORE, H_NONE},
    [BIN_GATQ]     = {"gatq",     REQ_GAT,       4,  K_NEED, V_IGNORE, H_MISS},
    [BIN_GATK]     = {"gatk",     REQ_GAT,       4,  K_NEED, V_IGNORE, H_NONE,
                      .retkey = true},
    [BIN_GATKQ]    = {"gatkq",    REQ_GAT,       4,  K_NEED, V_IGNORE, H_MISS,
                      .retkey = true},
    [BIN_TOUCH]    = {"touch",    REQ_TOUCH,     4,  K_NEED, V_IGNORE, H_NONE},
    [BIN_SET]      = {"set",      REQ_SET,       8,  K_NEED, V_DATA,   H_NONE},
    [BIN_SETQ]     = {"setq",     REQ_SET,       8,  K_NEED, V_DATA,   H_OK},
    [BIN_ADD]      = {"add",      REQ_ADD,       8,  K_NEED, V_DATA,   H_NONE},
    [BIN_ADDQ]     = {"addq",     REQ_ADD,       8,  K_NEED, V_DATA,   H_OK},
    [BIN_REPLACE]  = {"replace",  REQ_REPLACE,   8,  K_NEED, V_DATA,   H_NONE},
    [BIN_REPLACEQ] = {"replaceq", REQ_REPLACE,   8,  K_NEED, V_DATA,   H_OK},
    [BIN_APPEND]   = {"append",   REQ_APPEND,    0,  K_NEED, V_DATA,   H_NONE},
    [BIN_APPENDQ]  = {"appendq",  REQ_APPEND,    0,  K_NEED, V_DATA,   H_OK},
    [BIN_PREPEND]  = {"prepend",  REQ_PREPEND,   0,  K_NEED, V_DATA,   H_NONE},
    [BIN_PREPENDQ] = {"prependq", REQ_PREPEND,   0,  K_NEED, V_DATA,   H_OK},
    [BIN_DELETE]   = {"delete",   REQ_DELETE,    0,  K_NEED, V_NONE,   H_NONE},
    [BIN_DELETEQ]  = {"deleteq",  REQ_DELETE,    0,  K_NEED, V_NONE,   H_OK},
    [BIN_INCR]     = {"incr",     REQ_INCR,      20, K_NEED, V_NONE,   H_NONE},
    [BIN_INCRQ]    = {"incrq",    REQ_INCR,      20, K_NEED, V_NONE,   H_OK},
    [BIN_DECR]     = {"decr",     REQ_DECR,      20, K_NEED, V_NONE,   H_NONE},
    [BIN_DECRQ]    = {"decrq",    REQ_DECR,      20, K_NEED, V_NONE,   H_OK},
    [BIN_FLUSH]    = {"flush",    REQ_FLUSH_ALL, EXT_0_OR_4,
                                                     K_NONE, V_NONE,   H_NONE},
    [BIN_FLUSHQ]   = {"flushq",   REQ_FLUSH_ALL, EXT_0_OR_4,
                                                     K_NONE, V_NONE,   H_OK},
    [BIN_STAT]     = {"stat",     REQ_STATS,     0,  K_ANY,  V_IGNORE, H_NONE},
    [BIN_NOOP]     = {"noop",     REQ_NOOP,      0,  K_NONE, V_NONE,   H_NONE},
    [BIN_VERSION]  = {"version",  REQ_VERSION,   0,  K_NONE, V_NONE,   H_NONE},
    [BIN_QUIT]     = {"quit",     REQ_QUIT,      0,  K_NONE, V_NONE,   H_NONE},
    [BIN_QUITQ]    = {"quitq",    REQ_QUIT,      0,  K_NONE, V_NONE,   H_ALL},
    /* SASL is not served, but memcached checks the shape first: a wrong
     * one is invalid arguments (and closes), a right one unknown. */
    [0x20]         = {"sasl_list_mechs", REQ_NONE, 0, K_NONE, V_NONE, H_NONE},
    [0x21]         = {"sasl_auth", REQ_NONE,     0,  K_NEED, V_DATA,   H_NONE},
    [0x22]         = {"sasl_step", REQ_NONE,     0,  K_NEED, V_DATA,   H_NONE},
};
/* clang-format on */

#define AUTOVIV_NEVER 0xffffffffu /* incr/decr exptime: fail on a miss */

struct hdr {
    uint8_t magic;
    uint8_t opcode;
    uint16_t keylen;
    uint8_t extlen;
    uint32_t bodylen;
    uint32_t opaque;
    uint64_t cas;
};

static uint16_t
rd16(const char *p)
{
    uint16_t v;

    memcpy(&v, p, sizeof(v));
    return ntohs(v);
}

static uint32_t
rd32(const char *p)
{
    uint32_t v;

    memcpy(&v, p, sizeof(v));
    return ntohl(v);
}

static uint64_t
rd64(const char *p)
{
    uint64_t v;

    memcpy(&v, p, sizeof(v));
    return be64toh(v);
}

static void
hdr_read(const char *p, struct hdr *h)
{
    h->magic = (uint8_t)p[0];
    h->opcode = (uint8_t)p[1];
    h->keylen = rd16(p + 2);
    h->extlen = (uint8_t)p[4];
    /* p[5] datatype and p[6..7] vbucket: memcached ignores both */
    h->bodylen = rd32(p + 8);
    h->opaque = rd32(p + 12);
    h->cas = rd64(p + 16);
}

/* ---- parser ---- */

/* memcached's per-opcode shape check (dispatch_bin_command). */
static bool
shape_ok(const struct opdef *op, const struct hdr *h)
{
    size_t vlen = h->bodylen - h->extlen - h->keylen;

    if (op->ext == EXT_0_OR_4 ? h->extlen != 0 && h->extlen != 4
                              : h->extlen != op->ext) {
        return false;
    }
    if ((op->key == K_NEED && h->keylen == 0) ||
        (op->key == K_NONE && h->keylen != 0)) {
        return false;
    }
    return op->val != V_NONE || vlen == 0;
}

/* An error memcached answers and then closes the connection on. */
static enum status
fail_close(struct request *out, enum res_kind kind, const char *msg,
           size_t *consumed)
{
    out->cmd = REQ_NONE;
    out->rflags = REQ_F_CLOSE;
    out->err = kind;
    out->errmsg = msg;
    *consumed = BIN_HEADER_LEN;
    return ST_OK;
}

/* Unknown opcode: answered at once, its body discarded. */
static enum status
fail_unknown(const struct hdr *h, size_t len, struct request *out,
             size_t *consumed)
{
    size_t total = BIN_HEADER_LEN + (size_t)h->bodylen;

    out->cmd = REQ_NONE;
    out->err = RES_ERROR;
    if (len >= total) {
        *consumed = total;
    } else {
        *consumed = BIN_HEADER_LEN;
        out->swallow = h->bodylen;
    }
    return ST_OK;
}

static void
fill_storage(const struct hdr *h, const char *ext, struct request *out)
{
    if (h->extlen == 8) { /* set, add, replace */
        out->flags = rd32(ext);
        out->exptime = rd32(ext + 4);
    }
    out->rflags |= REQ_F_RET_CAS;
    out->cas = h->cas;
    /* memcached turns set/add/replace with a CAS into a plain cas */
    if (h->cas != 0 && h->extlen == 8) {
        out->cmd = REQ_CAS;
    }
}

static void
fill_arith(const struct hdr *h, const char *ext, struct request *out)
{
    uint32_t exp = rd32(ext + 16);

    out->delta = rd64(ext);
    out->initial = rd64(ext + 8);
    out->cas = h->cas;
    out->rflags |= REQ_F_RET_CAS;
    if (exp != AUTOVIV_NEVER) {
        out->rflags |= REQ_F_AUTOVIV;
        out->exptime = exp;
    }
}

/* Fill out from a packet whose header passed the checks. body points at
 * the extras; only its first extlen + keylen bytes are read when the
 * value is not needed (too large). */
static void
fill(const struct opdef *op, const struct hdr *h, const char *body,
     struct request *out)
{
    const char *key = body + h->extlen;

    out->cmd = op->cmd;
    out->rflags |= op->hide != H_NONE ? REQ_F_QUIET : 0;
    out->rflags |= op->retkey ? REQ_F_RET_KEY : 0;
    if (h->keylen > 0 && op->cmd != REQ_STATS) {
        out->key = key;
        out->nkey = h->keylen;
    }
    switch (op->cmd) {
    case REQ_GAT:
    case REQ_TOUCH:
        out->exptime = rd32(body);
        __attribute__((fallthrough));
    case REQ_GET:
        out->rflags |= REQ_F_RET_CAS;
        if (op->cmd != REQ_TOUCH) { /* one key, as a get line of one */
            out->args = key;
            out->nargs = h->keylen;
            out->nkeys = 1;
        }
        break;
    case REQ_SET:
    case REQ_ADD:
    case REQ_REPLACE:
    case REQ_APPEND:
    case REQ_PREPEND:
        fill_storage(h, body, out);
        break;
    case REQ_DELETE:
        out->cas = h->cas;
        break;
    case REQ_INCR:
    case REQ_DECR:
        fill_arith(h, body, out);
        break;
    case REQ_FLUSH_ALL:
        if (h->extlen == 4) {
            out->exptime = rd32(body);
            out->rflags |= REQ_F_HAS_DELAY;
        }
        break;
    case REQ_STATS:
        out->args = h->keylen > 0 ? key : NULL;
        out->nargs = h->keylen;
        break;
    default:
        break;
    }
}

/* A value over item_size_max: answered once extras and key are in, the
 * value discarded (memcached reads the key to drop the old item). */
static enum status
too_large(const struct opdef *op, const struct hdr *h, const char *buf,
          size_t len, struct request *out, size_t *consumed, size_t *need)
{
    size_t head = BIN_HEADER_LEN + h->extlen + h->keylen;
    size_t total = BIN_HEADER_LEN + (size_t)h->bodylen;

    if (len < head) {
        *need = head;
        return ST_AGAIN;
    }
    fill(op, h, buf + BIN_HEADER_LEN, out);
    out->rflags |= REQ_F_TOOLARGE;
    out->err = RES_SERVER_ERROR;
    out->errmsg = MSG_TOO_LARGE;
    *consumed = len >= total ? total : head;
    out->swallow = total - *consumed;
    return ST_OK;
}

enum status
proto_binary_parse(const char *buf, size_t len, size_t item_size_max,
                   struct request *out, size_t *consumed, size_t *need)
{
    const struct opdef *op;
    struct hdr h;
    size_t total;

    memset(out, 0, sizeof(*out));
    *consumed = 0;
    *need = BIN_HEADER_LEN;
    if (len < BIN_HEADER_LEN) {
        return ST_AGAIN; /* memcached judges the magic of a whole header */
    }
    if ((uint8_t)buf[0] != BIN_REQ_MAGIC) {
        return ST_PROTO;
    }
    hdr_read(buf, &h);
    out->proto = PROTO_BINARY;
    out->opcode = h.opcode;
    out->opaque = h.opaque;
    op = &ops[h.opcode];
    total = BIN_HEADER_LEN + (size_t)h.bodylen;
    if ((size_t)h.keylen + h.extlen > h.bodylen) {
        return fail_close(out, RES_ERROR, NULL, consumed);
    }
    if (h.keylen > KEY_MAX_LENGTH) {
        return fail_close(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT, consumed);
    }
    if (op->name == NULL) {
        return fail_unknown(&h, len, out, consumed);
    }
    if (!shape_ok(op, &h)) {
        return fail_close(out, RES_CLIENT_ERROR, MSG_BAD_FORMAT, consumed);
    }
    if (op->cmd == REQ_NONE) { /* SASL */
        return fail_unknown(&h, len, out, consumed);
    }
    if (op->val == V_DATA && h.bodylen - h.extlen - h.keylen > item_size_max) {
        return too_large(op, &h, buf, len, out, consumed, need);
    }
    if (len < total) {
        *need = total;
        return ST_AGAIN;
    }
    fill(op, &h, buf + BIN_HEADER_LEN, out);
    if (op->val == V_DATA) {
        out->val = buf + BIN_HEADER_LEN + h.extlen + h.keylen;
        out->nval = h.bodylen - h.extlen - h.keylen;
    }
    if (out->key != NULL && !req_key_valid(out->key, out->nkey)) {
        out->err = RES_CLIENT_ERROR;
        out->errmsg = MSG_BAD_FORMAT;
    }
    *consumed = total;
    return ST_OK;
}

/* ---- encoder ---- */

/* One reply packet. ext and key are copied; val is queued by reference
 * unless copy is set (bytes on the encoder's stack). */
struct pkt {
    uint16_t status;
    uint64_t cas;
    const char *ext;
    size_t next;
    const char *key;
    size_t nkey;
    const char *val;
    size_t nval;
    bool copy;
};

static enum status
put(struct outq *q, const struct request *req, const struct pkt *p)
{
    char h[BIN_HEADER_LEN];
    uint16_t keylen = htons((uint16_t)p->nkey);
    uint16_t status = htons(p->status);
    uint32_t bodylen = htonl((uint32_t)(p->next + p->nkey + p->nval));
    uint32_t opaque = htonl(req->opaque);
    uint64_t cas = htobe64(p->cas);

    h[0] = (char)BIN_RES_MAGIC;
    h[1] = (char)req->opcode;
    memcpy(h + 2, &keylen, 2);
    h[4] = (char)p->next;
    h[5] = 0; /* datatype: raw bytes */
    memcpy(h + 6, &status, 2);
    memcpy(h + 8, &bodylen, 4);
    memcpy(h + 12, &opaque, 4);
    memcpy(h + 16, &cas, 8);
    if (outq_copy(q, h, sizeof(h)) != ST_OK ||
        outq_copy(q, p->ext, p->next) != ST_OK ||
        outq_copy(q, p->key, p->nkey) != ST_OK) {
        return ST_NOMEM;
    }
    if (p->nval == 0) {
        return ST_OK;
    }
    return p->copy ? outq_copy(q, p->val, p->nval)
                   : outq_ref(q, p->val, p->nval);
}

/* memcached's body text for a status (write_bin_error). */
static const char *
status_text(uint16_t status)
{
    switch (status) {
    case BIN_ST_NOT_FOUND:
        return "Not found";
    case BIN_ST_EXISTS:
        return "Data exists for key.";
    case BIN_ST_TOO_LARGE:
        return "Too large.";
    case BIN_ST_EINVAL:
        return "Invalid arguments";
    case BIN_ST_NOT_STORED:
        return "Not stored.";
    case BIN_ST_NON_NUMERIC:
        return "Non-numeric server-side value for incr or decr";
    case BIN_ST_UNKNOWN:
        return "Unknown command";
    case BIN_ST_NOMEM:
        return "Out of memory allocating item";
    case BIN_ST_TMPFAIL:
        return "Temporary failure";
    default:
        return "Internal error";
    }
}

/* An error reply: status, no extras, no key, its text as the body
 * (msg/nmsg instead when given: riven's own backend failures). */
static enum status
put_error(struct outq *q, const struct request *req, uint16_t status,
          const char *msg, size_t nmsg)
{
    struct pkt p = {.status = status};

    if (msg == NULL || nmsg == 0) {
        msg = status_text(status);
        nmsg = strlen(msg);
    }
    p.val = msg;
    p.nval = nmsg;
    return put(q, req, &p);
}

/* A success without extras or value, hidden by the H_OK quiet forms. */
static enum status
put_ok(struct outq *q, const struct request *req, const struct opdef *op,
       uint64_t cas)
{
    struct pkt p = {.cas = cas};

    if (op->hide == H_OK || op->hide == H_ALL) {
        return ST_OK;
    }
    return put(q, req, &p);
}

static bool
msg_is(const char *msg, size_t nmsg, const char *lit)
{
    size_t n = strlen(lit);

    return msg != NULL && nmsg >= n && memcmp(msg, lit, n) == 0;
}

/* RES_SERVER_ERROR: memcached's own failures (their text, as memcached
 * wrote it) keep memcached's status; riven's failures (fail) are out of
 * memory, or a temporary or internal error with riven's message as the
 * body. */
static enum status
put_server_error(struct outq *q, const struct request *req, enum res_fail fail,
                 const char *msg, size_t nmsg)
{
    switch (fail) {
    case FAIL_OUT_OF_MEMORY:
        return put_error(q, req, BIN_ST_NOMEM, NULL, 0);
    case FAIL_BACKEND_UNAVAILABLE:
    case FAIL_BACKEND_TIMEOUT:
        return put_error(q, req, BIN_ST_TMPFAIL, msg, nmsg);
    case FAIL_BACKEND_ERROR:
    case FAIL_NONE:
    default:
        break;
    }
    if (msg_is(msg, nmsg, MSG_TOO_LARGE)) {
        return put_error(q, req, BIN_ST_TOO_LARGE, NULL, 0);
    }
    if (msg_is(msg, nmsg, MSG_OUT_OF_MEMORY)) { /* memcached's own */
        return put_error(q, req, BIN_ST_NOMEM, NULL, 0);
    }
    return put_error(q, req, BIN_ST_EINTERNAL, msg, nmsg);
}

/* A get/gat hit: flags as extras, the key for getk/gatk, the item's CAS.
 * touch answers the same without the value. */
static enum status
put_hit(struct outq *q, const struct request *req, const struct response *res)
{
    uint32_t flags = htonl(res->flags);
    struct pkt p = {.cas = res->cas, .ext = (const char *)&flags, .next = 4};

    if (req->rflags & REQ_F_RET_KEY) {
        p.key = req->key;
        p.nkey = req->nkey;
    }
    if (req->cmd != REQ_TOUCH) {
        p.val = res->val;
        p.nval = res->nval;
    }
    return put(q, req, &p);
}

/* A get/gat miss: "Not found", or for getk/gatk the key and no text. */
static enum status
put_miss(struct outq *q, const struct request *req, const struct opdef *op)
{
    struct pkt p = {.status = BIN_ST_NOT_FOUND};

    if (op->hide == H_MISS) {
        return ST_OK;
    }
    if (!(req->rflags & REQ_F_RET_KEY)) {
        return put_error(q, req, BIN_ST_NOT_FOUND, NULL, 0);
    }
    p.key = req->key;
    p.nkey = req->nkey;
    return put(q, req, &p);
}

/* incr/decr: the new value as 8 bytes big-endian, with the item's CAS. */
static enum status
put_number(struct outq *q, const struct request *req, const struct opdef *op,
           const struct response *res)
{
    uint64_t v;
    struct pkt p = {.cas = res->cas, .nval = 8, .copy = true};

    if (!util_parse_u64(res->val, res->nval, &v)) {
        return put_error(q, req, BIN_ST_EINTERNAL, MSG_BACKEND_ERROR,
                         strlen(MSG_BACKEND_ERROR));
    }
    if (op->hide == H_OK) {
        return ST_OK;
    }
    v = htobe64(v);
    p.val = (const char *)&v;
    return put(q, req, &p);
}

/* One packet per "STAT <name> <value>" line (key = name, value = the
 * rest of the line), then an empty packet. Other lines ("END", "RESET")
 * are dropped. */
static enum status
put_stats(struct outq *q, const struct request *req, const char *s, size_t n)
{
    const char *end = s + n;
    struct pkt done = {0};

    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *eol = nl != NULL ? nl : end;
        const char *sp;
        struct pkt p = {0};

        if (eol > s && eol[-1] == '\r') {
            eol--;
        }
        if (eol - s > 5 && memcmp(s, "STAT ", 5) == 0) {
            p.key = s + 5;
            sp = memchr(p.key, ' ', (size_t)(eol - p.key));
            p.nkey = (size_t)((sp != NULL ? sp : eol) - p.key);
            p.val = sp != NULL ? sp + 1 : eol;
            p.nval = (size_t)(eol - p.val);
            if (put(q, req, &p) != ST_OK) {
                return ST_NOMEM;
            }
        }
        s = nl != NULL ? nl + 1 : end;
    }
    return put(q, req, &done);
}

/* Replies of the opcodes that need no backend answer. */
static enum status
put_local(struct outq *q, const struct request *req, const struct opdef *op,
          const char *version)
{
    struct pkt p = {0};

    if (op->cmd == REQ_VERSION && version != NULL) {
        p.val = version;
        p.nval = strlen(version);
        p.copy = true;
    }
    if (op->hide == H_ALL) {
        return ST_OK;
    }
    return put(q, req, &p);
}

/* The status of a failure other than a miss, by command. */
static uint16_t
failure_status(const struct request *req, enum res_kind kind, const char *msg,
               size_t nmsg)
{
    switch (kind) {
    case RES_NOT_STORED: /* memcached answers add/replace as it stored */
        return req->cmd == REQ_ADD       ? BIN_ST_EXISTS
               : req->cmd == REQ_REPLACE ? BIN_ST_NOT_FOUND
                                         : BIN_ST_NOT_STORED;
    case RES_EXISTS:
        return BIN_ST_EXISTS;
    case RES_NOT_FOUND:
    case RES_MISS:
        return BIN_ST_NOT_FOUND;
    case RES_ERROR: /* from a backend: an unknown stats group */
        return req->cmd == REQ_STATS ? BIN_ST_NOT_FOUND : BIN_ST_UNKNOWN;
    case RES_CLIENT_ERROR:
        if (req->cmd == REQ_STATS) { /* a stats group with bad arguments */
            return BIN_ST_NOT_FOUND;
        }
        if (msg_is(msg, nmsg, MSG_CHUNKED)) {
            return BIN_ST_NOT_SUPPORTED; /* the text says why */
        }
        return msg_is(msg, nmsg, MSG_NON_NUMERIC) ? BIN_ST_NON_NUMERIC
                                                  : BIN_ST_EINVAL;
    default:
        return BIN_ST_EINTERNAL;
    }
}

/* The reply to a request the backends answered with res. */
static enum status
put_result(struct outq *q, const struct request *req, const struct opdef *op,
           const struct response *res)
{
    bool get = req->cmd == REQ_GET || req->cmd == REQ_GAT;
    uint16_t status;

    switch (res->kind) {
    case RES_VALUE:
    case RES_TOUCHED:
        return get || req->cmd == REQ_TOUCH ? put_hit(q, req, res)
                                            : put_ok(q, req, op, 0);
    case RES_MISS:
    case RES_NOT_FOUND:
        if (get) {
            return put_miss(q, req, op);
        }
        break;
    case RES_STORED:
        return put_ok(q, req, op, res->cas);
    case RES_DELETED:
    case RES_OK:
        return put_ok(q, req, op, 0);
    case RES_NUMBER:
        return put_number(q, req, op, res);
    case RES_RAW:
        return put_stats(q, req, res->val, res->nval);
    case RES_SERVER_ERROR:
        return put_server_error(q, req, res->fail, res->msg, res->nmsg);
    case RES_NONE: /* nothing to answer */
    case RES_QUIT:
        return ST_OK;
    default:
        break;
    }
    status = failure_status(req, res->kind, res->msg, res->nmsg);
    return status == BIN_ST_NOT_SUPPORTED
               ? put_error(q, req, status, res->msg, res->nmsg)
               : put_error(q, req, status, NULL, 0);
}

enum status
proto_binary_encode(const struct request *req, const struct response *res,
                    const char *version, struct outq *q)
{
    const struct opdef *op = &ops[req->opcode];
    const char *msg = req->errmsg;
    size_t nmsg = msg != NULL ? strlen(msg) : 0;

    switch (req->err) {
    case RES_NONE:
        break;
    case RES_ERROR: /* unknown opcode, or a body too short to frame */
        return put_error(q, req, BIN_ST_UNKNOWN, NULL, 0);
    case RES_SERVER_ERROR:
        return put_server_error(q, req, FAIL_NONE, msg, nmsg);
    default:
        return put_error(q, req, failure_status(req, req->err, msg, nmsg), NULL,
                         0);
    }
    switch (op->cmd) {
    case REQ_NOOP:
    case REQ_VERSION:
    case REQ_QUIT:
        return put_local(q, req, op, version);
    default:
        return put_result(q, req, op, res);
    }
}
