/*
 * request: the protocol-neutral request and response every layer above the
 * parsers speaks. A client parser fills struct request; the orca routes it
 * and fills struct response; an encoder turns the response back into the
 * client's protocol. The orca never sees client wire bytes and the handler
 * never sees the client.
 *
 * Pointers in both structs are references ("ref"), never owned: request
 * keys and values point into the connection's read buffer, response values
 * into a backend handler's read buffer or static text. They stay valid
 * until the connection finishes the batch they belong to.
 *
 * A batch is the array of requests parsed from one read, executed together
 * (pipelining) and answered with one writev.
 *
 * Thread-safety: plain data; a batch belongs to one connection thread.
 */
#ifndef RIVEN_REQUEST_H
#define RIVEN_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define KEY_MAX_LENGTH 250

/* memcached reads an exptime over 30 days as a Unix time */
#define REALTIME_MAXDELTA (60 * 60 * 24 * 30)

/* Every command riven knows: (enum suffix, classic text name). */
#define REQ_CMD_MAP(X)                                                         \
    X(GET, "get")                                                              \
    X(GETS, "gets")                                                            \
    X(GAT, "gat")                                                              \
    X(GATS, "gats")                                                            \
    X(SET, "set")                                                              \
    X(ADD, "add")                                                              \
    X(REPLACE, "replace")                                                      \
    X(APPEND, "append")                                                        \
    X(PREPEND, "prepend")                                                      \
    X(CAS, "cas")                                                              \
    X(INCR, "incr")                                                            \
    X(DECR, "decr")                                                            \
    X(DELETE, "delete")                                                        \
    X(TOUCH, "touch")                                                          \
    X(FLUSH_ALL, "flush_all")                                                  \
    X(VERSION, "version")                                                      \
    X(VERBOSITY, "verbosity")                                                  \
    X(STATS, "stats")                                                          \
    X(QUIT, "quit")                                                            \
    X(NOOP, "noop")                                                            \
    X(MG, "mg")                                                                \
    X(MS, "ms")                                                                \
    X(MD, "md")                                                                \
    X(MA, "ma")                                                                \
    X(MN, "mn")                                                                \
    X(ME, "me")

enum req_cmd {
    REQ_NONE = 0, /* no command: a parse error answered locally */
#define REQ_ENUM(name, text) REQ_##name,
    REQ_CMD_MAP(REQ_ENUM)
#undef REQ_ENUM
        REQ_CMD_COUNT
};

/* request.rflags */
#define REQ_F_NOREPLY   0x01u  /* client asked for no reply */
#define REQ_F_FIRST     0x02u  /* first key of a multi-key get line */
#define REQ_F_LAST      0x04u  /* last key of a get line: "END" follows */
#define REQ_F_HAS_DELAY 0x08u  /* flush_all carried a delay argument */
#define REQ_F_TOOLARGE  0x10u  /* value over item_size_max, data swallowed */
#define REQ_F_QUIET     0x20u  /* binary quiet opcode / meta q flag */
#define REQ_F_RET_KEY   0x40u  /* binary getk/gatk: the reply carries the key */
#define REQ_F_RET_CAS   0x80u  /* ask the backend for the item's CAS */
#define REQ_F_AUTOVIV   0x100u /* binary incr/decr: create with initial */
#define REQ_F_B64KEY    0x200u /* meta b flag: key is base64 on the wire */
#define REQ_F_RET_TTL   0x800u /* ask the backend for the remaining TTL */
#define REQ_F_CLOSE                                                            \
    0x400u /* send the reply, then close: the stream                           \
              is not parsed past this request */

/* The protocol a request arrived in (and its reply must be encoded in). */
enum req_proto {
    PROTO_TEXT = 0, /* classic ASCII */
    PROTO_META,     /* meta commands, on a text connection */
    PROTO_BINARY,   /* binary protocol (first byte 0x80) */
};

enum res_kind {
    RES_NONE = 0, /* not answered yet */
    RES_VALUE,    /* hit: val/nval, flags, cas */
    RES_MISS,     /* get miss */
    RES_STORED,
    RES_NOT_STORED,
    RES_EXISTS,
    RES_NOT_FOUND,
    RES_DELETED,
    RES_TOUCHED,
    RES_NUMBER, /* incr/decr result: decimal digits in val/nval */
    RES_OK,
    RES_ERROR,        /* "ERROR" */
    RES_CLIENT_ERROR, /* "CLIENT_ERROR " + msg */
    RES_SERVER_ERROR, /* "SERVER_ERROR " + msg */
    RES_VERSION,      /* riven's version line */
    RES_RAW,          /* a verbatim reply block (stats), val/nval */
    RES_QUIT,         /* no reply; close the connection */
};

struct request {
    enum req_cmd cmd;
    uint32_t rflags; /* REQ_F_* */
    const char *key; /* ref: read buffer; NULL if no key */
    size_t nkey;
    const char *val;  /* ref: data block of a storage command */
    size_t nval;      /* value length, without the "\r\n" */
    uint32_t flags;   /* client flags of a storage command */
    int64_t exptime;  /* set/touch/gat TTL; flush_all delay */
    uint64_t cas;     /* cas: value to compare */
    uint64_t delta;   /* incr/decr delta; verbosity level */
    const char *args; /* ref: stats arguments; get family: all keys;
                         meta: the flag tokens, as sent */
    size_t nargs;
    uint32_t nkeys;     /* get family: number of keys in args */
    size_t swallow;     /* bytes of a rejected data block to discard */
    enum res_kind err;  /* RES_NONE, or the local answer to give */
    const char *errmsg; /* ref: static text for CLIENT/SERVER_ERROR */
    uint8_t proto;      /* enum req_proto */
    uint8_t opcode;     /* binary: the request's opcode */
    uint32_t opaque;    /* binary: echoed in the reply */
    uint64_t initial;   /* binary incr/decr: value if created */
    uint32_t tag;       /* toward a backend: O<tag> on mg, checked against
                           the reply's (0 = none) */
};

/* Why riven answered SERVER_ERROR on its own (response.fail). A backend's
 * own SERVER_ERROR line is FAIL_NONE with the backend's text. */
enum res_fail {
    FAIL_NONE = 0,
    FAIL_BACKEND_TIMEOUT,     /* MSG_BACKEND_TIMEOUT */
    FAIL_BACKEND_UNAVAILABLE, /* MSG_BACKEND_UNAVAILABLE */
    FAIL_BACKEND_ERROR,       /* MSG_BACKEND_ERROR: a malformed reply */
    FAIL_OUT_OF_MEMORY,       /* MSG_OUT_OF_MEMORY: riven's, not memcached's */
};

struct response {
    enum res_kind kind;
    enum res_fail fail; /* with RES_SERVER_ERROR: riven's own failure */
    uint32_t flags;     /* client flags of a hit */
    uint64_t cas;       /* CAS of a hit */
    uint32_t tag;       /* the O<tag> a backend echoed, or 0 */
    int64_t ttl;        /* remaining TTL of a hit (REQ_F_RET_TTL):
                           -1 none, else seconds */
    const char *val;    /* ref: value, number or raw block */
    size_t nval;
    const char *msg; /* ref: error text, without "\r\n" */
    size_t nmsg;
    const char *raw; /* ref: meta passthrough: the backend's whole
                        reply, forwarded verbatim to a meta client */
    size_t nraw;
};

/* memcached 1.6's error texts, shared by every encoder. */
#define MSG_BAD_FORMAT  "bad command line format"
#define MSG_BAD_CHUNK   "bad data chunk"
#define MSG_TOO_LARGE   "object too large for cache"
#define MSG_BAD_DELTA   "invalid numeric delta argument"
#define MSG_BAD_EXPTIME "invalid exptime argument"
#define MSG_NON_NUMERIC "cannot increment or decrement non-numeric value"
#define MSG_DELETE_USAGE                                                       \
    "bad command line format.  Usage: delete <key> [noreply]"
#define MSG_BACKEND_TIMEOUT     "backend timeout"
#define MSG_BACKEND_UNAVAILABLE "backend unavailable"
#define MSG_BACKEND_ERROR       "backend error"
#define MSG_OUT_OF_MEMORY       "out of memory"
#define MSG_CHUNKED             "not supported on chunked storage"

/* Name of a command ("get"), or "none". */
const char *req_cmd_name(enum req_cmd cmd);

/* True if cmd is a retrieval command (get, gets, gat, gats). */
bool req_is_get(enum req_cmd cmd);
/* True if cmd carries a data block (set, add, replace, append, prepend,
 * cas). */
bool req_is_storage(enum req_cmd cmd);

/* A key riven accepts and can forward on a meta line: 1..250 bytes, no
 * space, '\n' or NUL. Other control bytes pass, as memcached takes them
 * (memaslap's keys begin with 8 of them); a '\r' is safe anywhere, since
 * memcached strips only the one before the line's '\n'. */
bool req_key_valid(const char *key, size_t nkey);

/* Make res a local error answer. msg is static text or NULL. */
void res_set_error(struct response *res, enum res_kind kind, const char *msg);

/* Make res riven's own SERVER_ERROR for why (not FAIL_NONE), with its
 * message. */
void res_set_fail(struct response *res, enum res_fail why);

/* ---- what the text and meta parsers and encoders share ---- */

/* Tokens a command line is split into at the most: memcached's MAX_TOKENS
 * (24) less the terminal token its tokenize_command adds. */
#define REQ_LINE_TOKENS 23

struct req_tok {
    const char *p; /* ref: the read buffer */
    size_t n;
};

/* One command line of the text protocols, classic and meta. */
struct req_line {
    const char *p; /* ref: first byte of the line */
    size_t n;      /* bytes of the command, without "\r\n" */
    size_t size;   /* bytes the line occupies, with its "\n" */
    size_t nt;     /* tokens found, at most the caller's maxtok */
    struct req_tok t[REQ_LINE_TOKENS];
};

/*
 * Split the line buf[0..nl], nl its '\n', as memcached does: one '\r'
 * before the '\n' is dropped (not when it is the whole command), the
 * command ends at its first NUL (memcached reads a C string) and splits
 * on spaces into at most maxtok <= REQ_LINE_TOKENS tokens; what follows
 * them is not looked at. Reads only buf[0..nl).
 */
void req_line_split(const char *buf, const char *nl, size_t maxtok,
                    struct req_line *l);

/*
 * The data block of a storage command (classic set..cas, meta ms): vlen
 * bytes and "\r\n" after the command line's nline bytes at buf[0..len),
 * framed as memcached frames it. vlen is at most INT32_MAX - 2.
 * - out->err already set (the command was refused), or vlen over
 *   item_size_max (then "SERVER_ERROR object too large for cache" and
 *   REQ_F_TOOLARGE): ST_OK, out->swallow = vlen + 2 bytes to discard;
 * - the block not all in buf: ST_AGAIN, *consumed 0, *need = nline +
 *   vlen + 2, the bytes the command needs;
 * - else ST_OK, *consumed = nline + vlen + 2, *need 0, and out->val/nval
 *   the value, or "CLIENT_ERROR bad data chunk" if the block does not end
 *   in "\r\n" (memcached reads vlen + 2 bytes whatever they hold).
 * *consumed and *need are left alone in the first case.
 */
enum status req_data_block(const char *buf, size_t len, size_t nline,
                           size_t vlen, size_t item_size_max,
                           struct request *out, size_t *consumed,
                           size_t *need) WUR;

struct outq;

/* Append "<prefix> <msg>\r\n", or "<prefix>\r\n" when nmsg is 0, to q:
 * a text or meta status or error line. ST_NOMEM if q cannot grow. */
enum status res_encode_line(struct outq *q, const char *prefix, size_t nprefix,
                            const char *msg, size_t nmsg) WUR;

/* ---- batch ---- */

struct req_batch {
    struct request *reqs;
    struct response *res; /* res[i] answers reqs[i] */
    size_t n;
    size_t cap;
};

void req_batch_init(struct req_batch *b);
void req_batch_free(struct req_batch *b);
/* Forget the requests; keeps memory. */
void req_batch_reset(struct req_batch *b);
/* Append a zeroed request and response; NULL when memory runs out. The
 * array grows on demand and is reused, so steady state allocates nothing.
 * Pointers into the batch are invalidated by the next push. */
struct request *req_batch_push(struct req_batch *b) WUR;

#endif /* RIVEN_REQUEST_H */
