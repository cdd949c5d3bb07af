/*
 * fuzz_session: libFuzzer target for whole client sessions. The input's
 * bytes go into server_run over a socketpair, against an in-process fake
 * memcached, and the replies are read back and checked:
 *
 *   input[1..] ──client thread──▶ socketpair ──▶ server_run (this thread)
 *   checks ◀──────client thread◀─ replies   ◀─┘        │ meta protocol
 *                                                fake backend thread
 *                                               (two unix sockets)
 *
 * Input: byte 0 steers the client, the rest is the client's byte stream
 * (its first byte chooses the protocol, as for a real connection).
 *   bits 0-2  how replies are read, and the routed configuration:
 *               0, 2  at once
 *               4     in small pieces through small socket buffers
 *               6, 7  after the whole input was sent or 5 ms, through
 *                     small buffers, so riven's writes block; but 7 with
 *                     bit 3 only after the whole input was sent, so
 *                     riven's writes block until client_write_timeout_ms
 *                     (100 ms) closes the connection (slow: the rarest
 *                     choice)
 *               1, 5  routed, read as 0 and 4
 *               3     routed, read as 7 (with bit 3 the slow one)
 *             (1, 3 and 5 read as 0, 0 and 4 before routes: bit 0
 *             mattered only in 7, so every older input keeps its meaning)
 *   bits 3-5  the largest piece the input is written in (1 byte .. all),
 *             so requests arrive split across reads
 *   bits 6-7  the configuration (see "three configurations" below) and
 *             a reload, published once half the input is sent, as a
 *             SIGHUP does; riven switches between two batches:
 *                          not routed                   routed
 *               none       flat                         routed
 *               bit 6      flat, reload to layered      routed, to flat
 *               bit 7      layered                      layered, to routed
 *               both       layered, batch_listen        flat, to routed
 *                          connection (l1l2batch)
 * The piece and read sizes come from a generator seeded with byte 0.
 *
 * Invariants: server_run returns; no sanitizer report and no leak; the
 * replies are well framed for the session's protocol (text: lines ending
 * in "\r\n", value blocks as long as their VALUE/VA line says, every line
 * a reply memcached could send; binary: packets with magic 0x81 and a
 * consistent body length), cut short only where riven may give up on a
 * client that stopped reading; their size is bounded by the input's. The
 * fake backend checks that riven sends it only well-formed requests.
 *
 * The fake backend (one thread, poll) keeps a small store per server; keys
 * never stored have a value derived from their hash (a quarter miss, some are
 * 8-40 KiB, "big<N>" is N bytes up to 1 MiB), so gets stream large
 * replies, and a TTL (mg's t) from it too: none, 0, over 30 days or 100 s,
 * what warm_up and l1l2 fills must carry; stored items keep what T gave.
 * Each backend sends at most FAKE_BUDGET value bytes per session
 * (then it answers misses), which bounds a run's time. It is reset before
 * each session (store emptied, the last session's sockets closed: the
 * handlers', and with routes the shadow and all_fastest sockets, opened
 * without blocking on first use), so runs are deterministic up to riven's
 * timeouts and, with routes, the order in which the fake serves several
 * sockets to one backend (a shadow copy may land before or after the
 * request it copies).
 *
 * FUZZ_SESSION_DUMP=1 in the environment copies the replies to stderr
 * (to read what a reproducer does); FUZZ_SESSION_FLAT=1 runs every input
 * in the flat configuration (to fuzz on past an open bug in the layered
 * orca or the routes).
 *
 * Memory of the fake and the client thread is allocated once (buffers grow
 * by realloc), so libFuzzer's malloc/free balance, which decides when to
 * look for leaks, sees riven's allocations only.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "metrics.h"
#include "server.h"
#include "snapshot.h"

#include "fuzz_common.h"

#define FAKE_SERVERS     2
#define FAKE_CONNS       32 /* handlers and shadows, a reload's too */
#define FAKE_LINE_MAX    8192
#define FAKE_TOKENS      24
#define FAKE_ITEMS       256
#define FAKE_ARENA       (4u << 20)     /* value bytes one backend stores */
#define FAKE_BUDGET      (2560u * 1024) /* value bytes a backend sends/session */
#define FAKE_BUF_INIT    (64u * 1024)
#define WRITE_TIMEOUT_MS 100 /* client_write_timeout_ms of the config */
#define SMALL_SOCKBUF    4096
#define LATE_MS          5
#define MAX_SENDS        2048 /* pieces of input, the rest goes at once */
#define TRICKLE_MAX      (64u * 1024) /* bytes read in small pieces */
#define BIG_SOCKBUF      (256 * 1024)
#define REPLY_LINE_MAX   4096

/* ---- the fake backend ---- */

struct fake_item {
    char key[KEY_MAX_LENGTH];
    size_t nkey;
    bool live; /* false: deleted (a tombstone over a derived value) */
    uint32_t flags;
    uint64_t cas;
    int64_t ttl; /* what mg's t returns: -1 none, else seconds left */
    size_t off;  /* value in its store's arena */
    size_t len;
};

struct fake_conn {
    int fd;     /* -1: free slot */
    int server; /* which listening socket accepted it */
    char *in;   /* bytes from riven, not yet answered */
    size_t nin, capin;
    char *out; /* replies not yet sent, from outpos */
    size_t outpos, nout, capout;
};

/* A value as the fake sees it. */
struct fake_val {
    const char *data;
    size_t len;
    uint32_t flags;
    uint64_t cas;
    int64_t ttl;            /* as fake_item's */
    struct fake_item *item; /* NULL: derived from the key */
};

/* One command line, tokenized, and its meta flags. */
struct fake_cmd {
    const char *tok[FAKE_TOKENS];
    size_t ntok[FAKE_TOKENS];
    size_t nt;
    bool bad;  /* a flag's argument is not a number */
    char mode; /* ms/ma M<mode>, 0 if none */
    bool has_cas, has_n, has_ttl;
    uint64_t cas, delta, initial;
    int64_t ttl; /* T<exptime> */
};

static struct fake {
    char dir[64];
    char path[FAKE_SERVERS][108];
    int lfd[FAKE_SERVERS];
    int wake[2]; /* pipe: a reset is asked for */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint64_t reset_asked, reset_done; /* guarded by lock */
    struct fake_conn conns[FAKE_CONNS];
    size_t sent[FAKE_SERVERS]; /* value bytes sent this session */
} fk = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* Each backend's own store, as two memcached servers have (L1 and L2
 * must not share one). */
static struct fake_store {
    struct fake_item items[FAKE_ITEMS];
    size_t nitems;
    size_t arena_used;
    uint64_t cas_next;
    bool flushed;
    char arena[FAKE_ARENA];
} stores[FAKE_SERVERS];
static struct fake_store *st; /* the store of the command being answered */

/* Patterns of derived values: digits (numbers for incr) and letters. */
static char pat_digits[FUZZ_ITEM_MAX + 16];
static char pat_letters[FUZZ_ITEM_MAX + 32];

static uint32_t
fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)p[i]) * 16777619u;
    }
    return h;
}

static void
grow(char **p, size_t *cap, size_t need)
{
    size_t cap2 = *cap;

    if (need <= *cap) {
        return;
    }
    while (cap2 < need) {
        cap2 *= 2;
    }
    *p = realloc(*p, cap2); /* a malloc and a free: the balance holds */
    CHECK(*p != NULL);
    *cap = cap2;
}

static void
out_put(struct fake_conn *c, const void *s, size_t n)
{
    grow(&c->out, &c->capout, c->nout + n);
    memcpy(c->out + c->nout, s, n);
    c->nout += n;
}

static void
out_str(struct fake_conn *c, const char *s)
{
    out_put(c, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void
out_fmt(struct fake_conn *c, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    CHECK(n >= 0 && (size_t)n < sizeof(tmp));
    out_put(c, tmp, (size_t)n);
}

static bool
tok_is(const struct fake_cmd *m, size_t i, const char *word)
{
    return i < m->nt && m->ntok[i] == strlen(word) &&
           memcmp(m->tok[i], word, m->ntok[i]) == 0;
}

/* Decimal s[0..n), optionally signed; false if it is not one. */
static bool
num_parse(const char *s, size_t n, bool sign, uint64_t *out)
{
    char tmp[32];
    char *end;

    if (n == 0 || n >= sizeof(tmp) || (s[0] == '-' && !sign)) {
        return false;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    errno = 0;
    if (sign) {
        *out = (uint64_t)strtoll(tmp, &end, 10);
    } else {
        *out = strtoull(tmp, &end, 10);
    }
    return errno == 0 && *end == '\0' &&
           (tmp[0] == '-' || isdigit((unsigned char)tmp[0]));
}

/* Split line[0..n) on spaces; riven must never send more tokens than
 * memcached reads. */
static void
tokenize(const char *line, size_t n, struct fake_cmd *m)
{
    size_t i = 0;

    memset(m, 0, sizeof(*m));
    while (i < n) {
        size_t j = i;

        if (line[i] == ' ') {
            i++;
            continue;
        }
        while (j < n && line[j] != ' ') {
            j++;
        }
        if (m->nt == FAKE_TOKENS) {
            m->nt++; /* one too many: the caller decides */
            return;
        }
        m->tok[m->nt] = line + i;
        m->ntok[m->nt++] = j - i;
        i = j;
    }
}

/* The meta flags from token first on: numbers checked, mode and the
 * arguments the commands use kept. */
static void
meta_flags(struct fake_cmd *m, size_t first)
{
    for (size_t i = first; i < m->nt; i++) {
        const char *a = m->tok[i] + 1;
        size_t na = m->ntok[i] - 1;
        uint64_t v = 0;

        switch (m->tok[i][0]) {
        case 'T':
        case 'N':
        case 'R':
            m->bad |= !num_parse(a, na, true, &v);
            m->has_n |= m->tok[i][0] == 'N';
            if (m->tok[i][0] == 'T') {
                m->has_ttl = true;
                m->ttl = (int64_t)v;
            }
            break;
        case 'F':
        case 'E':
            m->bad |= !num_parse(a, na, false, &v);
            break;
        case 'C':
            m->bad |= !num_parse(a, na, false, &m->cas);
            m->has_cas = true;
            break;
        case 'D':
            m->bad |= !num_parse(a, na, false, &m->delta);
            break;
        case 'J':
            m->bad |= !num_parse(a, na, false, &m->initial);
            break;
        case 'M':
            m->bad |= na != 1;
            m->mode = na == 1 ? a[0] : 0;
            break;
        case 'O':
            m->bad |= na > 32;
            break;
        default:
            break;
        }
    }
}

/* The flags a reply returns, in the order they were asked for. A miss
 * returns only O and k (and b with k). */
static void
out_ret(struct fake_conn *c, const struct fake_cmd *m, size_t first,
        const struct fake_val *v)
{
    bool k = false;

    for (size_t i = first; i < m->nt; i++) {
        const char *t = m->tok[i];

        if (t[0] == 'O') {
            out_put(c, " ", 1);
            out_put(c, t, m->ntok[i]);
        } else if (t[0] == 'k') {
            out_str(c, " k");
            out_put(c, m->tok[1], m->ntok[1]);
            k = true;
        } else if (v == NULL) {
            continue;
        } else if (t[0] == 'c') {
            out_fmt(c, " c%llu", (unsigned long long)v->cas);
        } else if (t[0] == 'f') {
            out_fmt(c, " f%u", v->flags);
        } else if (t[0] == 's') {
            out_fmt(c, " s%zu", v->len);
        } else if (t[0] == 't') {
            out_fmt(c, " t%lld", (long long)v->ttl);
        } else if (t[0] == 'h' || t[0] == 'l') {
            out_fmt(c, " %c0", t[0]);
        }
    }
    for (size_t i = first; k && i < m->nt; i++) {
        if (m->ntok[i] == 1 && m->tok[i][0] == 'b') {
            out_str(c, " b");
        }
    }
}

static struct fake_item *
item_find(const char *key, size_t nkey)
{
    for (size_t i = 0; i < st->nitems; i++) {
        if (st->items[i].nkey == nkey &&
            memcmp(st->items[i].key, key, nkey) == 0) {
            return &st->items[i];
        }
    }
    return NULL;
}

/* The value of key, or false for a miss. Derived values: see the top. */
static bool
lookup(const char *key, size_t nkey, struct fake_val *v)
{
    struct fake_item *it = item_find(key, nkey);
    uint32_t h = fnv1a(key, nkey);
    uint64_t big = 0;

    memset(v, 0, sizeof(*v));
    if (it != NULL) {
        if (!it->live) {
            return false;
        }
        *v = (struct fake_val){
            st->arena + it->off, it->len, it->flags, it->cas, it->ttl, it};
        return true;
    }
    if (st->flushed) {
        return false;
    }
    if (nkey > 3 && memcmp(key, "big", 3) == 0 &&
        num_parse(key + 3, nkey - 3, false, &big)) {
        v->len = (size_t)MIN(big, FUZZ_ITEM_MAX);
    } else if (h % 4 == 0) {
        return false;
    } else if (h % 64 == 1) {
        v->len = 8192 + (h >> 8) % 32768;
    } else {
        v->len = (h >> 8) % 64;
    }
    v->data = h & 1 ? pat_digits + h % 10 : pat_letters + h % 26;
    v->flags = (h >> 12) & 0xffff;
    v->cas = (uint64_t)h + 1;
    /* TTLs a warm-up or L1 fill must carry: none, about to expire, over
     * 30 days (sent back as a Unix time), short */
    v->ttl = (h >> 20) % 8 == 0   ? 0
             : (h >> 20) % 8 == 1 ? 3000000
             : (h >> 20) % 8 == 2 ? 100
                                  : -1;
    return true;
}

/* Store data as key's value; false when the store is full. */
static bool
store(const char *key, size_t nkey, const char *a, size_t na, const char *b,
      size_t nb, uint32_t flags)
{
    struct fake_item *it = item_find(key, nkey);

    if (na + nb > FAKE_ARENA - st->arena_used ||
        (it == NULL && st->nitems == FAKE_ITEMS)) {
        return false;
    }
    if (it == NULL) {
        it = &st->items[st->nitems++];
        memcpy(it->key, key, nkey);
        it->nkey = nkey;
    }
    if (na > 0) {
        memmove(st->arena + st->arena_used, a, na);
    }
    if (nb > 0) {
        memmove(st->arena + st->arena_used + na, b, nb);
    }
    it->off = st->arena_used;
    it->len = na + nb;
    st->arena_used += na + nb;
    it->live = true;
    it->flags = flags;
    it->cas = st->cas_next++;
    it->ttl = -1;
    return true;
}

static void
check_key(const char *key, size_t nkey)
{
    CHECK(req_key_valid(key, nkey));
}

/* A value reply within the backend's budget, else a miss. */
static bool
budget(struct fake_conn *c, const struct fake_val *v)
{
    if (v->len > FAKE_BUDGET - fk.sent[c->server]) {
        return false;
    }
    fk.sent[c->server] += v->len;
    return true;
}

static void
do_mg(struct fake_conn *c, const struct fake_cmd *m)
{
    struct fake_val v;
    bool val = false;

    for (size_t i = 2; i < m->nt; i++) {
        val |= m->tok[i][0] == 'v';
    }
    if (!lookup(m->tok[1], m->ntok[1], &v) || (val && !budget(c, &v))) {
        out_str(c, "EN");
        out_ret(c, m, 2, NULL);
        out_str(c, "\r\n");
        return;
    }
    if (!val) {
        out_str(c, "HD");
        out_ret(c, m, 2, &v);
        out_str(c, "\r\n");
        return;
    }
    out_fmt(c, "VA %zu", v.len);
    out_ret(c, m, 2, &v);
    out_str(c, "\r\n");
    out_put(c, v.data, v.len);
    out_str(c, "\r\n");
}

/* What mg's t returns after ms m stored its item: -1 without T or with
 * T0, else the seconds left (over 30 days, T is a Unix time; memcached
 * expires past and negative times at once, here 1 s is left). */
static int64_t
ttl_left(const struct fake_cmd *m)
{
    int64_t left = m->ttl;

    if (!m->has_ttl || m->ttl == 0) {
        return -1;
    }
    if (m->ttl > 2592000) {
        left = m->ttl - (int64_t)time(NULL);
    }
    return left > 0 ? left : 1;
}

/* ms: the status for m and data; stores on success. */
static const char *
ms_status(const struct fake_cmd *m, const char *data, size_t n)
{
    const char *key = m->tok[1];
    size_t nkey = m->ntok[1];
    struct fake_val v;
    bool hit = lookup(key, nkey, &v);
    uint64_t flags = 0;
    char mode = m->mode ? m->mode : 'S';
    bool ok;

    if (strchr("SEAPRseapr", mode) == NULL) {
        return "CLIENT_ERROR invalid mode for ms STORE";
    }
    if (m->has_cas && (!hit || v.cas != m->cas)) {
        return hit ? "EX" : "NF";
    }
    if (((mode == 'E' || mode == 'e') && hit) ||
        (strchr("APRapr", mode) != NULL && !hit)) {
        return "NS";
    }
    for (size_t i = 3; i < m->nt; i++) {
        if (m->tok[i][0] == 'F') {
            (void)num_parse(m->tok[i] + 1, m->ntok[i] - 1, false, &flags);
        }
    }
    if (mode == 'A' || mode == 'a') {
        ok = store(key, nkey, v.data, v.len, data, n, v.flags);
    } else if (mode == 'P' || mode == 'p') {
        ok = store(key, nkey, data, n, v.data, v.len, v.flags);
    } else {
        ok = store(key, nkey, data, n, NULL, 0, (uint32_t)flags);
        v.ttl = ttl_left(m);
    }
    if (!ok) {
        return "SERVER_ERROR out of memory storing object";
    }
    item_find(key, nkey)->ttl = v.ttl; /* append and prepend keep it */
    return "HD";
}

/* ms: returns the bytes used, 0 while its data block is incomplete. */
static size_t
do_ms(struct fake_conn *c, struct fake_cmd *m, const char *p, size_t line,
      size_t avail)
{
    uint64_t n = 0;
    const char *data;
    const char *st;
    struct fake_val v;

    CHECK(m->nt >= 3 && num_parse(m->tok[2], m->ntok[2], false, &n));
    CHECK(n <= FUZZ_ITEM_MAX);
    if (avail < line + n + 2) {
        return 0;
    }
    data = p + line;
    CHECK(data[n] == '\r' && data[n + 1] == '\n');
    meta_flags(m, 3);
    if (m->bad) {
        out_str(c, "CLIENT_ERROR bad token in command line format\r\n");
        return line + n + 2;
    }
    st = ms_status(m, data, n);
    out_str(c, st);
    if (strcmp(st, "HD") == 0) {
        CHECK(lookup(m->tok[1], m->ntok[1], &v));
        out_ret(c, m, 3, &v);
    } else if (st[0] != 'C' && st[0] != 'S') {
        out_ret(c, m, 3, NULL);
    }
    out_str(c, "\r\n");
    return line + n + 2;
}

static void
do_md(struct fake_conn *c, const struct fake_cmd *m)
{
    struct fake_val v;
    bool hit = lookup(m->tok[1], m->ntok[1], &v);

    if (hit && m->has_cas && v.cas != m->cas) {
        out_str(c, "EX");
    } else if (!hit) {
        out_str(c, "NF");
    } else if (v.item != NULL) {
        v.item->live = false;
        out_str(c, "HD");
    } else if (store(m->tok[1], m->ntok[1], NULL, 0, NULL, 0, 0)) {
        item_find(m->tok[1], m->ntok[1])->live = false;
        out_str(c, "HD");
    } else {
        out_str(c, "SERVER_ERROR out of memory\r\n");
        return;
    }
    out_ret(c, m, 2, NULL);
    out_str(c, "\r\n");
}

/* The counter in v, or false if it is not a number memcached takes. */
static bool
counter_of(const struct fake_val *v, uint64_t *out)
{
    if (v->len == 0 || v->len > 20) {
        return false;
    }
    for (size_t i = 0; i < v->len; i++) {
        if (!isdigit((unsigned char)v->data[i])) {
            return false;
        }
    }
    return num_parse(v->data, v->len, false, out);
}

static void
do_ma(struct fake_conn *c, const struct fake_cmd *m)
{
    struct fake_val v;
    bool hit = lookup(m->tok[1], m->ntok[1], &v), val = false;
    uint64_t n = 0;
    char num[24];
    int nn;

    for (size_t i = 2; i < m->nt; i++) {
        val |= m->tok[i][0] == 'v';
    }
    if (m->mode != 0 && strchr("IiDd+-", m->mode) == NULL) {
        out_str(c, "CLIENT_ERROR invalid mode for ma\r\n");
        return;
    }
    if (!hit && !m->has_n) {
        out_str(c, "NF");
        out_ret(c, m, 2, NULL);
        out_str(c, "\r\n");
        return;
    }
    if (hit && m->has_cas && v.cas != m->cas) {
        out_str(c, "EX");
        out_ret(c, m, 2, NULL);
        out_str(c, "\r\n");
        return;
    }
    if (!hit) {
        n = m->initial;
    } else if (!counter_of(&v, &n)) {
        out_str(c, "CLIENT_ERROR cannot increment or decrement non-numeric "
                   "value\r\n");
        return;
    } else if (m->mode != 0 && strchr("Dd-", m->mode) != NULL) {
        n = n > m->delta ? n - m->delta : 0;
    } else {
        n += m->delta;
    }
    nn = snprintf(num, sizeof(num), "%llu", (unsigned long long)n);
    if (!store(m->tok[1], m->ntok[1], num, (size_t)nn, NULL, 0,
               hit ? v.flags : 0)) {
        out_str(c, "SERVER_ERROR out of memory\r\n");
        return;
    }
    CHECK(lookup(m->tok[1], m->ntok[1], &v));
    if (val) {
        out_fmt(c, "VA %d", nn);
        out_ret(c, m, 2, &v);
        out_fmt(c, "\r\n%s\r\n", num);
    } else {
        out_str(c, "HD");
        out_ret(c, m, 2, &v);
        out_str(c, "\r\n");
    }
}

static void
do_me(struct fake_conn *c, const struct fake_cmd *m)
{
    struct fake_val v;

    if (!lookup(m->tok[1], m->ntok[1], &v)) {
        out_str(c, "EN\r\n");
        return;
    }
    out_str(c, "ME ");
    out_put(c, m->tok[1], m->ntok[1]);
    out_fmt(c, " exp=-1 la=1 cas=%llu fetch=no cls=1 size=%zu\r\n",
            (unsigned long long)v.cas, v.len + 48);
}

static void
do_stats(struct fake_conn *c, const struct fake_cmd *m)
{
    if (m->nt == 1) {
        out_fmt(c,
                "STAT pid 1\r\nSTAT uptime 100\r\nSTAT curr_items %zu\r\n"
                "STAT get_hits %zu\r\nSTAT version 1.6.18\r\nEND\r\n",
                st->nitems, fk.sent[c->server]);
    } else if (tok_is(m, 1, "reset")) {
        out_str(c, "RESET\r\n");
    } else if (tok_is(m, 1, "detail") &&
               (tok_is(m, 2, "on") || tok_is(m, 2, "off"))) {
        out_str(c, "OK\r\n");
    } else if (tok_is(m, 1, "sizes_enable") || tok_is(m, 1, "sizes_disable")) {
        out_str(c, "STAT sizes_status enabled\r\n");
    } else if (tok_is(m, 1, "settings") || tok_is(m, 1, "items") ||
               tok_is(m, 1, "slabs") || tok_is(m, 1, "sizes") ||
               tok_is(m, 1, "conns")) {
        out_str(c, "STAT active_slabs 1\r\nSTAT total_malloced 1048576\r\n"
                   "END\r\n");
    } else {
        out_str(c, "ERROR\r\n");
    }
}

/* Answer the command at p (its line is line bytes, with "\r\n"; avail
 * bytes are buffered). The bytes used, 0 if more are needed. */
static size_t
fake_command(struct fake_conn *c, const char *p, size_t line, size_t avail)
{
    struct fake_cmd m;

    st = &stores[c->server];
    tokenize(p, line - 2, &m);
    CHECK(m.nt >= 1);
    if (tok_is(&m, 0, "mn") && m.nt == 1) {
        out_str(c, "MN\r\n");
        return line;
    }
    if (tok_is(&m, 0, "flush_all")) {
        uint64_t delay = 0;

        CHECK(m.nt == 1 ||
              (m.nt == 2 && num_parse(m.tok[1], m.ntok[1], true, &delay)));
        st->nitems = 0;
        st->arena_used = 0;
        st->flushed = true;
        out_str(c, "OK\r\n");
        return line;
    }
    if (tok_is(&m, 0, "stats")) {
        do_stats(c, &m);
        return line;
    }
    /* Meta commands: riven checks keys and flag letters before sending. */
    CHECK(m.nt >= 2 && m.nt <= FAKE_TOKENS && m.ntok[0] == 2);
    check_key(m.tok[1], m.ntok[1]);
    if (tok_is(&m, 0, "ms")) {
        return do_ms(c, &m, p, line, avail);
    }
    meta_flags(&m, 2);
    if (m.bad && !tok_is(&m, 0, "me")) {
        out_str(c, "CLIENT_ERROR bad token in command line format\r\n");
        return line;
    }
    if (tok_is(&m, 0, "mg")) {
        do_mg(c, &m);
    } else if (tok_is(&m, 0, "md")) {
        do_md(c, &m);
    } else if (tok_is(&m, 0, "ma")) {
        do_ma(c, &m);
    } else {
        CHECK(tok_is(&m, 0, "me"));
        do_me(c, &m);
    }
    return line;
}

/* Answer every complete command in c->in. */
static void
fake_process(struct fake_conn *c)
{
    size_t pos = 0;

    for (;;) {
        const char *p = c->in + pos;
        size_t avail = c->nin - pos, used;
        const char *nl = memchr(p, '\n', avail);

        if (nl == NULL) {
            CHECK(avail <= FAKE_LINE_MAX); /* riven sent an endless line */
            break;
        }
        CHECK(nl > p && nl[-1] == '\r'); /* every line ends in "\r\n" */
        used = fake_command(c, p, (size_t)(nl - p) + 1, avail);
        if (used == 0) {
            break;
        }
        pos += used;
    }
    memmove(c->in, c->in + pos, c->nin - pos);
    c->nin -= pos;
}

static void
fake_conn_close(struct fake_conn *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->nin = c->nout = c->outpos = 0;
}

/* Read what riven sent, answer it, send what can be sent. */
static void
conn_serve(struct fake_conn *c, short revents)
{
    for (;;) {
        ssize_t n;

        if (!(revents & (POLLIN | POLLHUP | POLLERR))) {
            break;
        }
        grow(&c->in, &c->capin, c->nin + FAKE_BUF_INIT);
        n = read(c->fd, c->in + c->nin, c->capin - c->nin);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            fake_conn_close(c);
            return;
        }
        if (n < 0) {
            break;
        }
        c->nin += (size_t)n;
        fake_process(c);
    }
    while (c->outpos < c->nout) {
        ssize_t n =
            send(c->fd, c->out + c->outpos, c->nout - c->outpos, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                fake_conn_close(c);
            }
            return;
        }
        c->outpos += (size_t)n;
    }
    c->outpos = c->nout = 0;
}

/* server_run has returned, so riven must have closed its end of fd
 * (handler, shadow or all_fastest socket): read what is left up to EOF;
 * nothing to read and no EOF is a socket riven leaked. */
static void
expect_eof(int fd)
{
    char b[16384];

    for (;;) {
        ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);

        if (n > 0 || (n < 0 && errno == EINTR)) {
            continue;
        }
        if (n < 0 && errno == EAGAIN) {
            fprintf(stderr, "fuzz_session: riven kept a backend socket "
                            "open after server_run returned\n");
        }
        CHECK(n == 0 || errno != EAGAIN);
        return;
    }
}

/* Before a session: close the last session's sockets, those riven
 * closed before they were accepted too, and empty the store. */
static void
fake_do_reset(void)
{
    for (int s = 0; s < FAKE_SERVERS; s++) {
        int fd;

        while ((fd = accept4(fk.lfd[s], NULL, NULL, SOCK_CLOEXEC)) >= 0) {
            expect_eof(fd);
            close(fd);
        }
        fk.sent[s] = 0;
    }
    for (int i = 0; i < FAKE_CONNS; i++) {
        if (fk.conns[i].fd >= 0) {
            expect_eof(fk.conns[i].fd);
        }
        fake_conn_close(&fk.conns[i]);
    }
    for (int s = 0; s < FAKE_SERVERS; s++) {
        stores[s].nitems = 0;
        stores[s].arena_used = 0;
        stores[s].cas_next = 1;
        stores[s].flushed = false;
    }
}

static void
fake_accept(int s)
{
    int fd = accept4(fk.lfd[s], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0) {
        return;
    }
    for (int i = 0; i < FAKE_CONNS; i++) {
        if (fk.conns[i].fd < 0) {
            fk.conns[i].fd = fd;
            fk.conns[i].server = s;
            return;
        }
    }
    close(fd); /* more than riven's handlers and shadows: riven sees a
                * closed connection */
}

static void
fake_wake(void)
{
    char b[16];

    while (read(fk.wake[0], b, sizeof(b)) > 0) {
    }
    pthread_mutex_lock(&fk.lock);
    if (fk.reset_done != fk.reset_asked) {
        fake_do_reset();
        fk.reset_done = fk.reset_asked;
        pthread_cond_broadcast(&fk.cond);
    }
    pthread_mutex_unlock(&fk.lock);
}

static void *
fake_main(void *arg)
{
    struct pollfd pfd[1 + FAKE_SERVERS + FAKE_CONNS];
    int ci[FAKE_CONNS];

    (void)arg;
    for (;;) {
        int n = 0, nc = 0;

        pfd[n++] = (struct pollfd){.fd = fk.wake[0], .events = POLLIN};
        for (int s = 0; s < FAKE_SERVERS; s++) {
            pfd[n++] = (struct pollfd){.fd = fk.lfd[s], .events = POLLIN};
        }
        for (int i = 0; i < FAKE_CONNS; i++) {
            struct fake_conn *c = &fk.conns[i];

            if (c->fd >= 0) {
                ci[nc++] = i;
                pfd[n++] = (struct pollfd){
                    .fd = c->fd,
                    .events = POLLIN | (c->nout > c->outpos ? POLLOUT : 0)};
            }
        }
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            CHECK(errno == EINTR);
            continue;
        }
        if (pfd[0].revents) {
            fake_wake();
            continue; /* the connections may be gone */
        }
        for (int s = 0; s < FAKE_SERVERS; s++) {
            if (pfd[1 + s].revents & POLLIN) {
                fake_accept(s);
            }
        }
        for (int k = 0; k < nc; k++) {
            short ev = pfd[1 + FAKE_SERVERS + k].revents;

            if (ev != 0) {
                conn_serve(&fk.conns[ci[k]], ev);
            }
        }
    }
    return NULL;
}

/* Wait until the backend has reset itself. */
static void
fake_reset(void)
{
    uint64_t want;

    pthread_mutex_lock(&fk.lock);
    want = ++fk.reset_asked;
    CHECK(write(fk.wake[1], "r", 1) == 1);
    while (fk.reset_done != want) {
        pthread_cond_wait(&fk.cond, &fk.lock);
    }
    pthread_mutex_unlock(&fk.lock);
}

static void
fake_cleanup(void)
{
    for (int s = 0; s < FAKE_SERVERS; s++) {
        unlink(fk.path[s]);
    }
    rmdir(fk.dir);
}

static void
fake_start(void)
{
    pthread_t t;

    snprintf(fk.dir, sizeof(fk.dir), "/tmp/riven-fuzz-XXXXXX");
    CHECK(mkdtemp(fk.dir) != NULL);
    for (int s = 0; s < FAKE_SERVERS; s++) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};

        snprintf(fk.path[s], sizeof(fk.path[s]), "%s/mc%d.sock", fk.dir, s);
        snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", fk.path[s]);
        fk.lfd[s] =
            socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        CHECK(fk.lfd[s] >= 0);
        CHECK(bind(fk.lfd[s], (struct sockaddr *)&sun, sizeof(sun)) == 0);
        CHECK(listen(fk.lfd[s], 64) == 0);
    }
    atexit(fake_cleanup);
    CHECK(pipe2(fk.wake, O_NONBLOCK | O_CLOEXEC) == 0);
    for (int i = 0; i < FAKE_CONNS; i++) {
        struct fake_conn *c = &fk.conns[i];

        c->fd = -1;
        c->capin = c->capout = FAKE_BUF_INIT;
        c->in = malloc(c->capin);
        c->out = malloc(c->capout);
        CHECK(c->in != NULL && c->out != NULL);
    }
    for (size_t i = 0; i < sizeof(pat_digits); i++) {
        pat_digits[i] = (char)('0' + i % 10);
    }
    for (size_t i = 0; i < sizeof(pat_letters); i++) {
        pat_letters[i] = (char)('a' + i % 26);
    }
    CHECK(pthread_create(&t, NULL, fake_main, NULL) == 0);
    CHECK(pthread_detach(t) == 0);
}

/* ---- riven: three configurations ---- */

/*
 * CFG_FLAT: orca l1only over both backends (multi-key gets fan out).
 * CFG_LAYERED: orca l1l2batch, backend 0 as L1 and 1 as L2 (a plain
 * connection runs l1l2, a batch one l1l2batch), and backend sockets
 * released after 5 ms idle, so split inputs reconnect.
 * CFG_ROUTED: routes over pool a (backend 0) and pool b (backend 1), one
 * one-letter prefix per rule so fuzzed keys reach each ("s" all_sync,
 * "f" failover with ttl_max, "w" warm_up, "x" all_fastest, "l" l1l2,
 * "sh" shadow, every other key the default, a shadow over all_sync);
 * the l1l2 rule holds the default key_locks, as CFG_LAYERED does.
 */
enum { CFG_FLAT, CFG_LAYERED, CFG_ROUTED, CFG_N };

static const char *const cfg_pools[] = {
    [CFG_FLAT] = "pool:\n"
                 "  servers: [\"unix:%s\", \"unix:%s\"]\n"
                 "  failure_limit: 1000\n"
                 "  retry_timeout_ms: 1\n",
    [CFG_LAYERED] = "orca: l1l2batch\n"
                    "batch_listen: [127.0.0.1:1]\n"
                    "backend_idle_timeout_ms: 5\n"
                    "l1:\n"
                    "  servers: [\"unix:%s\"]\n"
                    "  failure_limit: 1000\n"
                    "  retry_timeout_ms: 1\n"
                    "l2:\n"
                    "  servers: [\"unix:%s\"]\n"
                    "  failure_limit: 1000\n"
                    "  retry_timeout_ms: 1\n",
    [CFG_ROUTED] =
        "pools:\n"
        "  a: {servers: [\"unix:%s\"], failure_limit: 1000,"
        " retry_timeout_ms: 1}\n"
        "  b: {servers: [\"unix:%s\"], failure_limit: 1000,"
        " retry_timeout_ms: 1}\n"
        "routes:\n"
        "  - {prefix: \"s\", route: {all_sync: [a, b], read: failover}}\n"
        "  - {prefix: \"f\", route: {failover: [a, {pool: b, ttl_max: 60}],"
        " miss: true}}\n"
        "  - {prefix: \"w\", route: {warm_up: {cold: a, warm: b}}}\n"
        "  - {prefix: \"x\", route: {all_fastest: [a, b]}}\n"
        "  - {prefix: \"l\", route: {l1l2: {l1: a, l2: b}}}\n"
        "  - {prefix: \"sh\", route: {shadow: {route: a, to: b,"
        " fraction: 0.5}}}\n"
        "  - default: {shadow: {route: {all_sync: [a, b]}, to: a,"
        " fraction: 0.3}}\n",
};

/*
 * The snapshot registry is used here only. held[i] is a reference to
 * configuration i's snapshot, kept while another one is current.
 * riven_use runs on the main thread before a session and on the client
 * thread during one, never on both at once.
 */
static struct snapshot *held[CFG_N];
static int cfg_current = -1;
static bool flat_only; /* FUZZ_SESSION_FLAT */

static void
riven_use(int which)
{
    if (which == cfg_current) {
        return;
    }
    snapshot_publish(held[which]); /* takes that reference */
    held[which] = snapshot_get();
    cfg_current = which;
}

static struct config *
riven_config(int which)
{
    char yaml[2048], pool[1536], err[512];
    struct config *cfg;
    int n;

    n = snprintf(pool, sizeof(pool), cfg_pools[which], fk.path[0], fk.path[1]);
    CHECK(n > 0 && (size_t)n < sizeof(pool));
    n = snprintf(yaml, sizeof(yaml),
                 "%s"
                 "timeouts: {connect_ms: 1000, request_ms: 1000}\n"
                 "client_write_timeout_ms: %d\n"
                 "item_size_max: %u\n"
                 "log_level: error\n"
                 "metrics: {listen: \"off\"}\n",
                 pool, WRITE_TIMEOUT_MS, FUZZ_ITEM_MAX);
    CHECK(n > 0 && (size_t)n < sizeof(yaml));
    cfg = config_load_string(yaml, (size_t)n, "fuzz_session", err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "fuzz_session: config: %s\n", err);
    }
    CHECK(cfg != NULL);
    return cfg;
}

static void
riven_start(void)
{
    char err[256];

    log_init(LOG_LVL_ERROR);
    CHECK(metrics_init() == ST_OK);
    for (int i = CFG_FLAT; i < CFG_N; i++) {
        struct config *cfg = riven_config(i);
        struct snapshot *snap;

        if (i == CFG_FLAT) { /* metrics: server 0 and 1 in both */
            CHECK(metrics_set_servers(cfg->pool.servers, cfg->pool.nservers) ==
                  ST_OK);
        }
        snap = snapshot_create(cfg, NULL, err, sizeof(err));
        if (snap == NULL) {
            fprintf(stderr, "fuzz_session: snapshot: %s\n", err);
        }
        CHECK(snap != NULL);
        snapshot_publish(snap);
        held[i] = snapshot_get();
        cfg_current = i;
    }
}

/* ---- the reply checker ---- */

struct replies {
    bool binary;
    size_t total;
    size_t skip; /* value bytes to pass over */
    int crlf;    /* bytes of the "\r\n" after a value still due */
    char line[REPLY_LINE_MAX];
    size_t nline;
    uint8_t hdr[24];
    size_t nhdr;
};

static bool
starts(const char *line, size_t n, const char *word)
{
    size_t w = strlen(word);

    return n >= w && memcmp(line, word, w) == 0 && (n == w || line[w] == ' ');
}

/* The n-th space-separated token of line as a length. */
static size_t
length_token(const char *line, size_t n, int nth)
{
    size_t i = 0, j;
    uint64_t v = 0;

    for (int t = 0; t < nth; t++) {
        while (i < n && line[i] != ' ') {
            i++;
        }
        CHECK(i < n);
        i++;
    }
    for (j = i; j < n && line[j] != ' '; j++) {
    }
    CHECK(num_parse(line + i, j - i, false, &v));
    CHECK(v <= FUZZ_ITEM_MAX);
    return (size_t)v;
}

/* One text reply line (without "\r\n"). */
static void
text_line(struct replies *r, const char *l, size_t n)
{
    static const char *const words[] = {
        "END",       "STORED",  "NOT_STORED",   "EXISTS",
        "NOT_FOUND", "DELETED", "TOUCHED",      "OK",
        "ERROR",     "RESET",   "CLIENT_ERROR", "SERVER_ERROR",
        "STAT",      "VERSION", "HD",           "EN",
        "NS",        "EX",      "NF",           "MN",
        "ME"};
    bool digits = n > 0 && n <= 20;

    if (starts(l, n, "VALUE")) {
        r->skip = length_token(l, n, 3);
        r->crlf = 2;
        return;
    }
    if (starts(l, n, "VA")) {
        r->skip = length_token(l, n, 1);
        r->crlf = 2;
        return;
    }
    for (size_t i = 0; i < NELEMS(words); i++) {
        if (starts(l, n, words[i])) {
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        digits &= isdigit((unsigned char)l[i]) != 0;
    }
    if (!digits) {
        fprintf(stderr, "fuzz_session: unexpected reply line '%.*s'\n",
                (int)MIN(n, 200), l);
    }
    CHECK(digits); /* an incr/decr result */
}

/* Pass over what r still skips (value bytes) at the head of *p, *n;
 * true if there was any. */
static bool
skip_value(struct replies *r, const char **p, size_t *n)
{
    size_t k = MIN(r->skip, *n);

    r->skip -= k;
    *p += k;
    *n -= k;
    return k > 0;
}

static void
text_feed(struct replies *r, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl;
        size_t k;

        if (skip_value(r, &p, &n)) {
            continue;
        }
        if (r->crlf > 0) {
            CHECK(*p == (r->crlf == 2 ? '\r' : '\n')); /* value's end */
            r->crlf--;
            p++;
            n--;
            continue;
        }
        nl = memchr(p, '\n', n);
        k = nl ? (size_t)(nl - p) + 1 : n;
        CHECK(r->nline + k <= sizeof(r->line)); /* a reply line is short */
        memcpy(r->line + r->nline, p, k);
        r->nline += k;
        p += k;
        n -= k;
        if (nl != NULL) {
            CHECK(r->nline >= 2 && r->line[r->nline - 2] == '\r');
            text_line(r, r->line, r->nline - 2);
            r->nline = 0;
        }
    }
}

static void
binary_feed(struct replies *r, const char *p, size_t n)
{
    while (n > 0) {
        size_t k;

        if (skip_value(r, &p, &n)) {
            continue;
        }
        k = MIN(sizeof(r->hdr) - r->nhdr, n);
        memcpy(r->hdr + r->nhdr, p, k);
        r->nhdr += k;
        p += k;
        n -= k;
        if (r->nhdr == sizeof(r->hdr)) {
            uint32_t body = (uint32_t)r->hdr[8] << 24 |
                            (uint32_t)r->hdr[9] << 16 |
                            (uint32_t)r->hdr[10] << 8 | r->hdr[11];
            uint32_t keylen = (uint32_t)r->hdr[2] << 8 | r->hdr[3];

            CHECK(r->hdr[0] == 0x81); /* a response packet */
            CHECK(keylen + r->hdr[4] <= body);
            CHECK(body <= FUZZ_ITEM_MAX + 4096);
            r->skip = body;
            r->nhdr = 0;
        }
    }
}

static bool
replies_partial(const struct replies *r)
{
    return r->skip > 0 || r->crlf > 0 || r->nline > 0 || r->nhdr > 0;
}

/* ---- the client ---- */

enum read_mode {
    READ_AT_ONCE = 0,
    READ_TRICKLE, /* small pieces through small socket buffers */
    READ_LATE,    /* after the input, or LATE_MS */
    READ_STALL,   /* after the input, however long */
};

struct session {
    const uint8_t *in;
    size_t nin;
    uint8_t ctl;
    int fd;     /* the client's end, non-blocking */
    int srv_fd; /* riven's end */
    bool small; /* small socket buffers, until TRICKLE_MAX was read */
    int cfg;    /* the configuration the session starts in */
    int reload; /* published once half the input is sent; -1 none */
    bool batch; /* a batch_listen connection */
    struct replies rep;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct session *job; /* guarded by lock; NULL when done */
    bool dump;           /* FUZZ_SESSION_DUMP set: replies to stderr */
    char buf[256 * 1024];
} cl = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Bits 0-2 (and 3): see the top. 3 is routed 7, 1 routed 0, 5 routed 4. */
static enum read_mode
read_mode(uint8_t ctl)
{
    static const enum read_mode modes[8] = {
        READ_AT_ONCE, READ_AT_ONCE, READ_AT_ONCE, READ_STALL,
        READ_TRICKLE, READ_TRICKLE, READ_LATE,    READ_STALL};

    if ((ctl & 0xb) == 3) { /* 3 or 7 without bit 3 */
        return READ_LATE;
    }
    return modes[ctl & 7];
}

/* Bit 0 without 7 in bits 0-2: the routed configuration. */
static bool
routed(uint8_t ctl)
{
    return (ctl & 1) && (ctl & 7) != 7;
}

/* The session's configuration, its reload and connection kind, from
 * bits 0-2, 6 and 7 (see the top). */
static void
session_plan(struct session *ss)
{
    bool b6 = ss->ctl & 0x40, b7 = ss->ctl & 0x80;

    ss->reload = -1;
    if (flat_only) {
        ss->cfg = CFG_FLAT;
    } else if (!routed(ss->ctl)) {
        ss->cfg = b7 ? CFG_LAYERED : CFG_FLAT;
        ss->batch = b7 && b6; /* only l1l2batch's batch_listen has them */
        ss->reload = !b7 && b6 ? CFG_LAYERED : -1;
    } else if (!b7) {
        ss->cfg = CFG_ROUTED;
        ss->reload = b6 ? CFG_FLAT : -1;
    } else {
        ss->cfg = b6 ? CFG_FLAT : CFG_LAYERED;
        ss->reload = CFG_ROUTED;
    }
}

static uint32_t
lcg(uint32_t *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* Send the next piece of the input; false once it is all sent or riven
 * has closed. */
static bool
client_send(struct session *ss, size_t *off, uint32_t *seed, size_t *sends)
{
    static const size_t pieces[8] = {SIZE_MAX, 1,    3,    16,
                                     100,      1000, 4096, SIZE_MAX};
    size_t max = pieces[(ss->ctl >> 3) & 7];
    size_t n = ss->nin - *off;
    ssize_t w;

    if (max != SIZE_MAX && *sends < MAX_SENDS) {
        size_t piece = 1 + lcg(seed) % max; /* MIN evaluates twice */

        n = MIN(n, piece);
    }
    w = send(ss->fd, ss->in + *off, n, MSG_NOSIGNAL);
    if (w < 0) {
        return errno == EAGAIN || errno == EINTR;
    }
    *off += (size_t)w;
    (*sends)++;
    if (ss->reload >= 0 && *off >= ss->nin / 2) {
        riven_use(ss->reload); /* the main thread is in server_run */
        ss->reload = -1;
    }
    return *off < ss->nin;
}

static void
set_buffers(int fd, int n)
{
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof(n));
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof(n));
}

/* Read replies; false at EOF. Past TRICKLE_MAX bytes, backpressure has
 * been shown: the buffers grow so large replies do not crawl. */
static bool
client_recv(struct session *ss, size_t *trickled, uint32_t *seed)
{
    size_t want = sizeof(cl.buf);
    ssize_t n;

    if (read_mode(ss->ctl) == READ_TRICKLE && *trickled < TRICKLE_MAX) {
        want = 1 + lcg(seed) % 61u;
    }
    n = recv(ss->fd, cl.buf, want, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        return false;
    }
    if (n > 0) {
        if (cl.dump) {
            fwrite(cl.buf, 1, (size_t)n, stderr);
        }
        *trickled += (size_t)n;
        if (ss->small && *trickled >= TRICKLE_MAX) {
            set_buffers(ss->srv_fd, BIG_SOCKBUF);
            set_buffers(ss->fd, BIG_SOCKBUF);
            ss->small = false;
        }
        ss->rep.total += (size_t)n;
        if (ss->rep.binary) {
            binary_feed(&ss->rep, cl.buf, (size_t)n);
        } else {
            text_feed(&ss->rep, cl.buf, (size_t)n);
        }
    }
    return true;
}

/* Write the input, half-close, read replies until riven closes. */
static void
client_run(struct session *ss)
{
    enum read_mode mode = read_mode(ss->ctl);
    uint32_t seed = ss->ctl;
    size_t off = 0, sends = 0, trickled = 0;
    bool sending = ss->nin > 0;
    uint64_t start = now_ms();

    if (!sending) {
        shutdown(ss->fd, SHUT_WR);
    }
    for (;;) {
        struct pollfd pfd = {.fd = ss->fd};
        bool reading = !sending || mode == READ_AT_ONCE ||
                       mode == READ_TRICKLE ||
                       (mode == READ_LATE && now_ms() - start >= LATE_MS);

        pfd.events = (short)((sending ? POLLOUT : 0) | (reading ? POLLIN : 0));
        if (poll(&pfd, 1, reading ? -1 : 5) < 0) {
            CHECK(errno == EINTR);
            continue;
        }
        if (sending && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
            sending = client_send(ss, &off, &seed, &sends);
            if (!sending) {
                shutdown(ss->fd, SHUT_WR);
            }
        }
        if (reading && (pfd.revents & (POLLIN | POLLERR | POLLHUP)) &&
            !client_recv(ss, &trickled, &seed)) {
            return;
        }
    }
}

static void *
client_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct session *ss;

        pthread_mutex_lock(&cl.lock);
        while (cl.job == NULL) {
            pthread_cond_wait(&cl.cond, &cl.lock);
        }
        ss = cl.job;
        pthread_mutex_unlock(&cl.lock);
        client_run(ss);
        pthread_mutex_lock(&cl.lock);
        cl.job = NULL;
        pthread_cond_broadcast(&cl.cond);
        pthread_mutex_unlock(&cl.lock);
    }
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    pthread_t t;

    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    cl.dump = getenv("FUZZ_SESSION_DUMP") != NULL;
    flat_only = getenv("FUZZ_SESSION_FLAT") != NULL;
    fake_start();
    riven_start();
    CHECK(pthread_create(&t, NULL, client_main, NULL) == 0);
    CHECK(pthread_detach(t) == 0);
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct session ss;
    struct server_conn conn;
    int sv[2];
    uint64_t t0, ms;

    if (size == 0) {
        return 0;
    }
    memset(&ss, 0, sizeof(ss));
    ss.ctl = data[0];
    ss.in = data + 1;
    ss.nin = size - 1;
    ss.rep.binary = ss.nin > 0 && ss.in[0] == 0x80;
    fake_reset();
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    if (read_mode(ss.ctl) != READ_AT_ONCE) {
        set_buffers(sv[0], SMALL_SOCKBUF);
        set_buffers(sv[1], SMALL_SOCKBUF);
        ss.small = true;
    }
    CHECK(fcntl(sv[1], F_SETFL, O_NONBLOCK) == 0);
    ss.fd = sv[1];
    ss.srv_fd = sv[0];
    memset(&conn, 0, sizeof(conn));
    conn.fd = sv[0];
    session_plan(&ss);
    riven_use(ss.cfg);
    conn.batch = ss.batch;

    t0 = now_ms();
    pthread_mutex_lock(&cl.lock);
    cl.job = &ss;
    pthread_cond_broadcast(&cl.cond);
    pthread_mutex_unlock(&cl.lock);
    server_run(&conn);
    ms = now_ms() - t0;
    close(sv[0]); /* the client reads to EOF */
    pthread_mutex_lock(&cl.lock);
    while (cl.job != NULL) {
        pthread_cond_wait(&cl.cond, &cl.lock);
    }
    pthread_mutex_unlock(&cl.lock);
    close(sv[1]);

    /* A reply is cut short only when riven gave up on a slow reader. */
    if (replies_partial(&ss.rep)) {
        CHECK(read_mode(ss.ctl) >= READ_LATE || ms >= WRITE_TIMEOUT_MS);
    }
    CHECK(ss.nin > 0 || ss.rep.total == 0);
    /* at most a 1 MiB value per two input bytes, and riven's own stats */
    CHECK(ss.rep.total <= (ss.nin / 2 + 2) * (FUZZ_ITEM_MAX + 1024));
    return 0;
}
