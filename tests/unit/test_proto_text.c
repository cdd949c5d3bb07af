/*
 * test_proto_text: the classic ASCII parser and encoder.
 *
 * Every parse case is fed whole and cut at every byte offset (each prefix
 * must be ST_AGAIN, in an exact-size heap copy so ASan catches over-reads);
 * encoder cases compare exact reply bytes.
 *
 * Edge cases checked byte for byte against memcached 1.6.18 (-U 0, raw
 * bytes over TCP); "->" is the reply, "|" separates replies:
 *
 *   request                              memcached 1.6.18
 *   ------------------------------------ --------------------------------
 *   "\r\n", "\n", "  \r\n", "x", "ge k"  ERROR
 *   "GET k", "SET k 0 0 1"               ERROR (case-sensitive; data: ERROR)
 *   get | "get " | gat                   ERROR (no key)
 *   gat 10                               END (exptime, no key)
 *   get k <251 x> k [noreply]            CLIENT_ERROR bad command line format
 *                                        (only that: earlier hits dropped;
 *                                        "noreply" is a key for get)
 *   get <250 x>                          END (250 is allowed)
 *   gat x k / gat x <251 x>              CLIENT_ERROR invalid exptime argument
 *   gat 1 k <251 x>                      CLIENT_ERROR bad command line format
 *   gat -1 k                             VALUE ... END (negative allowed)
 *   "   get   k  "                       VALUE k ... END (spaces collapse)
 *   get with 30 keys (> 24 tokens)       30 VALUEs + END (no token limit)
 *   set k 0 0 3 + "abcde\r\n"            CLIENT_ERROR bad data chunk|ERROR
 *                                        (line + 3 + 2 consumed, the
 *                                        remaining "\r\n" is a command)
 *   same with noreply                    ERROR (chunk error silenced)
 *   set k 0 0 -1 [noreply]               CLIENT_ERROR bad command line
 *                                        format, not swallowed (silent
 *                                        with noreply)
 *   set k -1 0 1 + "a"                   CLIENT_ERROR bad ... format|ERROR
 *   set k 4294967296 0 1                 STORED, flags read back as 0
 *   set k 0 0 4294967297 + "c"           STORED, 1 byte (int32 wrap)
 *   set k 0 0 2147483646 / 2147483647    CLIENT_ERROR bad command line format
 *   set k 0 0 2147483645                 SERVER_ERROR object too large for
 *                                        cache, swallows 2147483647 bytes
 *   set big 0 0 1048577 + data           SERVER_ERROR object too large for
 *                                        cache|(data swallowed, no ERROR)
 *   set ... 1048576 noreply + data       nothing (silenced, swallowed)
 *   set k +1 +0 +1 / -0 -0 -0            STORED (strtol signs accepted)
 *   set k 0\t 0 1 / 0 0 1\t2             STORED (strtol stops at space)
 *   set k 0 9223372036854775808 1        CLIENT_ERROR bad ... (ERANGE)
 *   set k 1 0 1 x                        STORED (7th token not noreply)
 *   set k 0 0 1 noreply x / set k 0 0    ERROR (token count)
 *   set k 0 0 1 a*30                     ERROR (> 24 tokens)
 *   cas k 0 0 1 x | -1 | 2^64            CLIENT_ERROR bad command line format
 *   cas k 0 0 x 1 noreply                nothing
 *   incr k +3 -> n; -1, x, 1x, 2^64      CLIENT_ERROR invalid numeric delta
 *                                        argument
 *   incr k 18446744073709551615          wraps; incr k 1 x -> number
 *   incr k | incr k 1 noreply x          ERROR
 *   incr <251 x> x                       CLIENT_ERROR bad command line format
 *   incr k x noreply                     nothing
 *   delete k 0 | k noreply | k 0 noreply DELETED | nothing | nothing
 *   delete k 1 | k 0 x | k noreply 0     CLIENT_ERROR bad command line
 *   | k 00                               format.  Usage: delete <key> [noreply]
 *   delete k 1 noreply                   nothing (usage error silenced)
 *   delete | delete k 0 noreply x        ERROR
 *   touch k x [noreply]                  CLIENT_ERROR invalid exptime
 *                                        argument (silent with noreply)
 *   touch k 10 x                         TOUCHED; touch k -> ERROR
 *   touch <251 x> x                      CLIENT_ERROR bad command line format
 *   flush_all x                          CLIENT_ERROR invalid exptime argument
 *   flush_all 0 x | -1 | 99999999999     OK
 *   flush_all noreply noreply            nothing (an error, silenced)
 *   flush_all 0 noreply x                ERROR
 *   verbosity                            ERROR; verbosity 1 x -> OK
 *   verbosity x | -1 | 2^64              CLIENT_ERROR bad command line format
 *   verbosity noreply                    nothing
 *   version a b c ... (30 tokens)        VERSION 1.6.18
 *   quit x                               connection closed
 *   stats noreply | stats x              ERROR (riven passes args on raw)
 *   "x"*3000 + "\r\n" at once            ERROR; without "\n": closed
 *   50 spaces + "get " + 3000 keys       served (long get lines allowed)
 *   "get k\0j"                           END (line cut at the NUL)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto_text.h"

#define MIB    (1024u * 1024u)
#define S(lit) lit, sizeof(lit) - 1

struct pcase {
    const char *name;
    const char *in;  /* exactly one command */
    size_t inlen;    /* 0: strlen(in) */
    size_t item_max; /* 0: 1 MiB */
    size_t consumed; /* 0: inlen */
    enum req_cmd cmd;
    uint32_t rflags;
    const char *key; /* NULL: no key expected */
    const char *val; /* NULL: no value expected */
    uint32_t flags;
    int64_t exptime;
    uint64_t cas;
    uint64_t delta;
    const char *args; /* NULL: no args expected */
    uint32_t nkeys;
    size_t swallow;
    enum res_kind err;
    const char *errmsg;
};

#define X10  "xxxxxxxxxx"
#define X50  X10 X10 X10 X10 X10
#define X250 X50 X50 X50 X50 X50

#define FL (REQ_F_FIRST | REQ_F_LAST)
#define NR REQ_F_NOREPLY
#define CE RES_CLIENT_ERROR

/* clang-format off */
static const struct pcase cases[] = {
    /* retrieval */
    {.name = "get", .in = "get foo\r\n", .cmd = REQ_GET, .rflags = FL,
     .key = "foo", .args = "foo", .nkeys = 1},
    {.name = "get lf only", .in = "get foo\n", .cmd = REQ_GET, .rflags = FL,
     .key = "foo", .args = "foo", .nkeys = 1},
    {.name = "get multi", .in = "get a bb  ccc\r\n", .cmd = REQ_GET,
     .rflags = REQ_F_FIRST, .key = "a", .args = "a bb  ccc", .nkeys = 3},
    {.name = "get spaces", .in = "   get   k  \r\n", .cmd = REQ_GET,
     .rflags = FL, .key = "k", .args = "k", .nkeys = 1},
    {.name = "get noreply is a key", .in = "get k noreply\r\n",
     .cmd = REQ_GET, .rflags = REQ_F_FIRST, .key = "k", .args = "k noreply",
     .nkeys = 2},
    {.name = "gets", .in = "gets a b\r\n", .cmd = REQ_GETS,
     .rflags = REQ_F_FIRST, .key = "a", .args = "a b", .nkeys = 2},
    {.name = "gat", .in = "gat 100 k\r\n", .cmd = REQ_GAT, .rflags = FL,
     .key = "k", .exptime = 100, .args = "k", .nkeys = 1},
    {.name = "gats neg", .in = "gats -1 a b\r\n", .cmd = REQ_GATS,
     .rflags = REQ_F_FIRST, .key = "a", .exptime = -1, .args = "a b",
     .nkeys = 2},
    {.name = "gat no key", .in = "gat 10\r\n", .cmd = REQ_GAT, .rflags = FL,
     .exptime = 10, .err = RES_MISS},
    {.name = "get no key", .in = "get\r\n", .err = RES_ERROR},
    {.name = "get space", .in = "get \r\n", .err = RES_ERROR},
    {.name = "gat no exptime", .in = "gat\r\n", .err = RES_ERROR},
    {.name = "gat bad exptime", .in = "gat x k\r\n", .cmd = REQ_GAT,
     .rflags = FL, .err = CE, .errmsg = MSG_BAD_EXPTIME},
    /* control bytes are key bytes, as in memcached (memaslap's keys) */
    {.name = "get ctl key", .in = "get a b\tc\x10\x7f\r\n", .cmd = REQ_GET,
     .rflags = REQ_F_FIRST, .key = "a", .args = "a b\tc\x10\x7f", .nkeys = 2},
    {.name = "get cut at nul", .in = "get k\0j\r\n", .inlen = 9,
     .cmd = REQ_GET, .rflags = FL, .key = "k", .args = "k", .nkeys = 1},
    /* storage */
    {.name = "set", .in = "set k 5 10 3\r\nabc\r\n", .cmd = REQ_SET,
     .key = "k", .val = "abc", .flags = 5, .exptime = 10},
    {.name = "set empty", .in = "set k 0 0 0\r\n\r\n", .cmd = REQ_SET,
     .key = "k", .val = ""},
    {.name = "set noreply", .in = "set k 0 0 1 noreply\r\nx\r\n",
     .cmd = REQ_SET, .rflags = NR, .key = "k", .val = "x"},
    {.name = "set 7th token", .in = "set k 1 0 1 x\r\nx\r\n", .cmd = REQ_SET,
     .key = "k", .val = "x", .flags = 1},
    {.name = "set signs", .in = "set k +1 -0 +1\r\nx\r\n", .cmd = REQ_SET,
     .key = "k", .val = "x", .flags = 1},
    {.name = "set tab", .in = "set k 0\t 0 1\t2\r\nx\r\n", .cmd = REQ_SET,
     .key = "k", .val = "x"},
    {.name = "set flags wrap", .in = "set k 4294967297 0 1\r\nx\r\n",
     .cmd = REQ_SET, .key = "k", .val = "x", .flags = 1},
    {.name = "set vlen wrap", .in = "set k 0 0 4294967297\r\nx\r\n",
     .cmd = REQ_SET, .key = "k", .val = "x"},
    {.name = "set exptime neg", .in = "set k 0 -1 1\r\nx\r\n",
     .cmd = REQ_SET, .key = "k", .val = "x", .exptime = -1},
    {.name = "set exptime wrap", .in = "set k 0 99999999999 1\r\nx\r\n",
     .cmd = REQ_SET, .key = "k", .val = "x", .exptime = 1215752191},
    {.name = "add", .in = "add k 0 0 2\r\nab\r\n", .cmd = REQ_ADD,
     .key = "k", .val = "ab"},
    {.name = "replace", .in = "replace k 0 0 2\r\nab\r\n",
     .cmd = REQ_REPLACE, .key = "k", .val = "ab"},
    {.name = "append", .in = "append k 0 0 2 noreply\r\nab\r\n",
     .cmd = REQ_APPEND, .rflags = NR, .key = "k", .val = "ab"},
    {.name = "prepend", .in = "prepend k 0 0 2\r\nab\r\n",
     .cmd = REQ_PREPEND, .key = "k", .val = "ab"},
    {.name = "cas", .in = "cas k 1 2 3 18446744073709551615\r\nabc\r\n",
     .cmd = REQ_CAS, .key = "k", .val = "abc", .flags = 1, .exptime = 2,
     .cas = UINT64_MAX},
    {.name = "cas noreply", .in = "cas k 0 0 1 7 noreply\r\nx\r\n",
     .cmd = REQ_CAS, .rflags = NR, .key = "k", .val = "x", .cas = 7},
    {.name = "data crlf inside", .in = "set k 0 0 4\r\na\r\nb\r\n",
     .cmd = REQ_SET, .key = "k", .val = "a\r\nb"},
    {.name = "bad chunk", .in = "set k 0 0 3\r\nabcde", .cmd = REQ_SET,
     .key = "k", .err = CE, .errmsg = MSG_BAD_CHUNK},
    {.name = "bad chunk noreply", .in = "set k 0 0 3 noreply\r\nabcde",
     .cmd = REQ_SET, .rflags = NR, .key = "k", .err = CE,
     .errmsg = MSG_BAD_CHUNK},
    {.name = "too large", .in = "set k 0 0 1048577\r\n", .cmd = REQ_SET,
     .rflags = REQ_F_TOOLARGE, .key = "k", .swallow = 1048579,
     .err = RES_SERVER_ERROR, .errmsg = MSG_TOO_LARGE},
    {.name = "too large noreply", .in = "append k 0 0 11 noreply\r\n",
     .item_max = 10, .cmd = REQ_APPEND, .rflags = REQ_F_TOOLARGE | NR,
     .key = "k", .swallow = 13, .err = RES_SERVER_ERROR,
     .errmsg = MSG_TOO_LARGE},
    {.name = "at item max", .in = "set k 0 0 10\r\n0123456789\r\n",
     .item_max = 10, .cmd = REQ_SET, .key = "k", .val = "0123456789"},
    {.name = "too large int max", .in = "set k 0 0 2147483645\r\n",
     .cmd = REQ_SET, .rflags = REQ_F_TOOLARGE, .key = "k",
     .swallow = 2147483647, .err = RES_SERVER_ERROR,
     .errmsg = MSG_TOO_LARGE},
    {.name = "vlen past int max", .in = "set k 0 0 2147483646\r\n",
     .cmd = REQ_SET, .key = "k", .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "vlen negative", .in = "set k 0 0 -1\r\n", .cmd = REQ_SET,
     .key = "k", .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "vlen negative noreply", .in = "set k 0 0 -1 noreply\r\n",
     .cmd = REQ_SET, .rflags = NR, .key = "k", .err = CE,
     .errmsg = MSG_BAD_FORMAT},
    {.name = "vlen junk", .in = "set k 0 0 1x\r\n", .cmd = REQ_SET,
     .key = "k", .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "flags negative", .in = "set k -1 0 1\r\n", .cmd = REQ_SET,
     .key = "k", .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "exptime erange", .in = "set k 0 9223372036854775808 1\r\n",
     .cmd = REQ_SET, .key = "k", .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "get 250", .in = "get " X250 "\r\n", .cmd = REQ_GET,
     .rflags = FL, .key = X250, .args = X250, .nkeys = 1},
    {.name = "get 251", .in = "get k " X250 "x k\r\n", .cmd = REQ_GET,
     .rflags = FL, .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "gat 251", .in = "gat 1 k " X250 "x\r\n", .cmd = REQ_GAT,
     .rflags = FL, .exptime = 1, .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "incr 251", .in = "incr " X250 "x x\r\n", .cmd = REQ_INCR,
     .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "touch 251", .in = "touch " X250 "x x\r\n", .cmd = REQ_TOUCH,
     .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "delete 251 noreply", .in = "delete " X250 "x noreply\r\n",
     .cmd = REQ_DELETE, .rflags = NR, .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "set long key",
     .in = "set " X250 "x 0 0 1\r\n",
     .cmd = REQ_SET, .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "cas bad", .in = "cas k 0 0 1 -1\r\n", .cmd = REQ_CAS,
     .key = "k", .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "cas erange", .in = "cas k 0 0 1 18446744073709551616\r\n",
     .cmd = REQ_CAS, .key = "k", .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "cas bad noreply", .in = "cas k 0 0 x 1 noreply\r\n",
     .cmd = REQ_CAS, .rflags = NR, .key = "k", .err = CE,
     .errmsg = MSG_BAD_FORMAT},
    {.name = "set few tokens", .in = "set k 0 0\r\n", .err = RES_ERROR},
    {.name = "set many tokens", .in = "set k 0 0 1 noreply x\r\n",
     .err = RES_ERROR},
    {.name = "cas few tokens", .in = "cas k 0 0 1\r\n", .err = RES_ERROR},
    {.name = "set > 24 tokens",
     .in = "set k 0 0 1 a a a a a a a a a a a a a a a a a a a a a a a a\r\n",
     .err = RES_ERROR},
    /* arithmetic */
    {.name = "incr", .in = "incr k 5\r\n", .cmd = REQ_INCR, .key = "k",
     .delta = 5},
    {.name = "decr noreply", .in = "decr k 18446744073709551615 noreply\r\n",
     .cmd = REQ_DECR, .rflags = NR, .key = "k", .delta = UINT64_MAX},
    {.name = "incr plus", .in = "incr k +3\r\n", .cmd = REQ_INCR, .key = "k",
     .delta = 3},
    {.name = "incr 4th token", .in = "incr k 1 x\r\n", .cmd = REQ_INCR,
     .key = "k", .delta = 1},
    {.name = "incr neg", .in = "incr k -1\r\n", .cmd = REQ_INCR, .key = "k",
     .err = CE, .errmsg = MSG_BAD_DELTA},
    {.name = "incr junk", .in = "incr k 1x\r\n", .cmd = REQ_INCR, .key = "k",
     .err = CE, .errmsg = MSG_BAD_DELTA},
    {.name = "incr erange", .in = "incr k 18446744073709551616\r\n",
     .cmd = REQ_INCR, .key = "k", .err = CE, .errmsg = MSG_BAD_DELTA},
    {.name = "incr bad noreply", .in = "incr k x noreply\r\n",
     .cmd = REQ_INCR, .rflags = NR, .key = "k", .err = CE,
     .errmsg = MSG_BAD_DELTA},
    {.name = "incr no delta", .in = "incr k\r\n", .err = RES_ERROR},
    {.name = "incr 5 tokens", .in = "incr k 1 noreply x\r\n",
     .err = RES_ERROR},
    /* delete */
    {.name = "delete", .in = "delete k\r\n", .cmd = REQ_DELETE, .key = "k"},
    {.name = "delete 0", .in = "delete k 0\r\n", .cmd = REQ_DELETE,
     .key = "k"},
    {.name = "delete noreply", .in = "delete k noreply\r\n",
     .cmd = REQ_DELETE, .rflags = NR, .key = "k"},
    {.name = "delete 0 noreply", .in = "delete k 0 noreply\r\n",
     .cmd = REQ_DELETE, .rflags = NR, .key = "k"},
    {.name = "delete key noreply", .in = "delete noreply\r\n",
     .cmd = REQ_DELETE, .key = "noreply"},
    {.name = "delete 1", .in = "delete k 1\r\n", .cmd = REQ_DELETE,
     .err = CE, .errmsg = MSG_DELETE_USAGE},
    {.name = "delete 00", .in = "delete k 00\r\n", .cmd = REQ_DELETE,
     .err = CE, .errmsg = MSG_DELETE_USAGE},
    {.name = "delete noreply 0", .in = "delete k noreply 0\r\n",
     .cmd = REQ_DELETE, .err = CE, .errmsg = MSG_DELETE_USAGE},
    {.name = "delete 1 noreply", .in = "delete k 1 noreply\r\n",
     .cmd = REQ_DELETE, .rflags = NR, .err = CE,
     .errmsg = MSG_DELETE_USAGE},
    {.name = "delete no key", .in = "delete\r\n", .err = RES_ERROR},
    {.name = "delete 5 tokens", .in = "delete k 0 noreply x\r\n",
     .err = RES_ERROR},
    /* touch */
    {.name = "touch", .in = "touch k 10\r\n", .cmd = REQ_TOUCH, .key = "k",
     .exptime = 10},
    {.name = "touch noreply", .in = "touch k -5 noreply\r\n",
     .cmd = REQ_TOUCH, .rflags = NR, .key = "k", .exptime = -5},
    {.name = "touch 4th token", .in = "touch k 10 x\r\n", .cmd = REQ_TOUCH,
     .key = "k", .exptime = 10},
    {.name = "touch bad", .in = "touch k x\r\n", .cmd = REQ_TOUCH,
     .key = "k", .err = CE, .errmsg = MSG_BAD_EXPTIME},
    {.name = "touch bad noreply", .in = "touch k x noreply\r\n",
     .cmd = REQ_TOUCH, .rflags = NR, .key = "k", .err = CE,
     .errmsg = MSG_BAD_EXPTIME},
    {.name = "touch no exptime", .in = "touch k\r\n", .err = RES_ERROR},
    /* flush_all */
    {.name = "flush_all", .in = "flush_all\r\n", .cmd = REQ_FLUSH_ALL},
    {.name = "flush_all delay", .in = "flush_all 30\r\n",
     .cmd = REQ_FLUSH_ALL, .rflags = REQ_F_HAS_DELAY, .exptime = 30},
    {.name = "flush_all noreply", .in = "flush_all noreply\r\n",
     .cmd = REQ_FLUSH_ALL, .rflags = NR},
    {.name = "flush_all 0 noreply", .in = "flush_all 0 noreply\r\n",
     .cmd = REQ_FLUSH_ALL, .rflags = NR | REQ_F_HAS_DELAY},
    {.name = "flush_all 0 x", .in = "flush_all 0 x\r\n",
     .cmd = REQ_FLUSH_ALL, .rflags = REQ_F_HAS_DELAY},
    {.name = "flush_all neg", .in = "flush_all -1\r\n", .cmd = REQ_FLUSH_ALL,
     .rflags = REQ_F_HAS_DELAY, .exptime = -1},
    {.name = "flush_all bad", .in = "flush_all x\r\n", .cmd = REQ_FLUSH_ALL,
     .err = CE, .errmsg = MSG_BAD_EXPTIME},
    {.name = "flush_all nr nr", .in = "flush_all noreply noreply\r\n",
     .cmd = REQ_FLUSH_ALL, .rflags = NR, .err = CE,
     .errmsg = MSG_BAD_EXPTIME},
    {.name = "flush_all 4 tokens", .in = "flush_all 0 noreply x\r\n",
     .err = RES_ERROR},
    /* verbosity, version, stats, quit */
    {.name = "verbosity", .in = "verbosity 1\r\n", .cmd = REQ_VERBOSITY,
     .delta = 1},
    {.name = "verbosity x", .in = "verbosity 1 x\r\n", .cmd = REQ_VERBOSITY,
     .delta = 1},
    {.name = "verbosity noreply", .in = "verbosity 2 noreply\r\n",
     .cmd = REQ_VERBOSITY, .rflags = NR, .delta = 2},
    {.name = "verbosity bad", .in = "verbosity -1\r\n", .cmd = REQ_VERBOSITY,
     .err = CE, .errmsg = MSG_BAD_FORMAT},
    {.name = "verbosity only noreply", .in = "verbosity noreply\r\n",
     .cmd = REQ_VERBOSITY, .rflags = NR, .err = CE,
     .errmsg = MSG_BAD_FORMAT},
    {.name = "verbosity none", .in = "verbosity\r\n", .err = RES_ERROR},
    {.name = "verbosity 4 tokens", .in = "verbosity 1 2 3\r\n",
     .err = RES_ERROR},
    {.name = "version", .in = "version\r\n", .cmd = REQ_VERSION},
    {.name = "version args", .in = "version a b c\r\n", .cmd = REQ_VERSION},
    {.name = "quit", .in = "quit\r\n", .cmd = REQ_QUIT},
    {.name = "stats", .in = "stats\r\n", .cmd = REQ_STATS},
    {.name = "stats args", .in = "stats  detail  dump \r\n",
     .cmd = REQ_STATS, .args = "detail  dump"},
    {.name = "stats noreply", .in = "stats noreply\r\n", .cmd = REQ_STATS,
     .args = "noreply"},
    /* unknown */
    {.name = "empty crlf", .in = "\r\n", .err = RES_ERROR},
    {.name = "empty lf", .in = "\n", .err = RES_ERROR},
    {.name = "spaces", .in = "  \r\n", .err = RES_ERROR},
    {.name = "one byte", .in = "x\r\n", .err = RES_ERROR},
    {.name = "upper case", .in = "GET k\r\n", .err = RES_ERROR},
    {.name = "prefix", .in = "ge k\r\n", .err = RES_ERROR},
    {.name = "suffix", .in = "sets k\r\n", .err = RES_ERROR},
    {.name = "unproxied", .in = "shutdown\r\n", .err = RES_ERROR},
};
/* clang-format on */

/* A heap copy of exactly n bytes, so any read past n is an ASan error. */
static char *
dup_exact(const char *p, size_t n)
{
    char *b = malloc(n ? n : 1);

    assert_non_null(b);
    if (n > 0) {
        memcpy(b, p, n);
    }
    return b;
}

static void
check_ref(const char *got, size_t ngot, const char *want, const char *buf,
          size_t len)
{
    if (want == NULL) {
        assert_null(got);
        assert_int_equal(ngot, 0);
        return;
    }
    assert_non_null(got);
    assert_true(got >= buf && got + ngot <= buf + len); /* in place */
    assert_int_equal(ngot, strlen(want));
    assert_memory_equal(got, want, ngot);
}

static void
check_case(const struct pcase *c, const char *buf, size_t len,
           const struct request *r)
{
    check_ref(r->key, r->nkey, c->key, buf, len);
    check_ref(r->val, r->nval, c->val, buf, len);
    check_ref(r->args, r->nargs, c->args, buf, len);
    assert_int_equal(r->cmd, c->cmd);
    assert_int_equal(r->rflags, c->rflags);
    assert_int_equal(r->flags, c->flags);
    assert_int_equal(r->exptime, c->exptime);
    assert_int_equal(r->cas, c->cas);
    assert_int_equal(r->delta, c->delta);
    assert_int_equal(r->nkeys, c->nkeys);
    assert_int_equal(r->swallow, c->swallow);
    assert_int_equal(r->err, c->err);
    if (c->errmsg == NULL) {
        assert_null(r->errmsg);
    } else {
        assert_string_equal(r->errmsg, c->errmsg);
    }
}

static void
test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEMS(cases); i++) {
        const struct pcase *c = &cases[i];
        size_t len = c->inlen ? c->inlen : strlen(c->in);
        size_t want = c->consumed ? c->consumed : len;
        size_t imax = c->item_max ? c->item_max : MIB;
        struct request r;
        size_t used, need;
        char *buf;

        print_message("case %s\n", c->name);
        for (size_t cut = 0; cut < want; cut++) {
            buf = dup_exact(c->in, cut);
            assert_int_equal(proto_text_parse(buf, cut, imax, &r, &used, &need),
                             ST_AGAIN);
            assert_true(need == 0 || need == want);
            free(buf);
        }
        buf = dup_exact(c->in, len);
        assert_int_equal(proto_text_parse(buf, len, imax, &r, &used, &need),
                         ST_OK);
        assert_int_equal(used, want);
        check_case(c, buf, len, &r);
        free(buf);
    }
}

static enum status
parse_str(const char *s, size_t n, struct request *r, size_t *used,
          size_t *need)
{
    return proto_text_parse(s, n, MIB, r, used, need);
}

static void
test_need(void **state)
{
    struct request r;
    size_t used, need;

    (void)state;
    assert_int_equal(parse_str(S("set k 0 0 10\r\nab"), &r, &used, &need),
                     ST_AGAIN);
    assert_int_equal(need, 14 + 12);
    assert_int_equal(used, 0);
    assert_int_equal(parse_str(S("set k 0 0 10\r"), &r, &used, &need),
                     ST_AGAIN);
    assert_int_equal(need, 0);
    /* a too-large value is answered at once: the data may never come */
    assert_int_equal(
        proto_text_parse(S("set k 0 0 100\r\nab"), 10, &r, &used, &need),
        ST_OK);
    assert_int_equal(used, 15);
    assert_int_equal(r.swallow, 102);
    assert_true(r.rflags & REQ_F_TOOLARGE);
}

static void
test_long_lines(void **state)
{
    size_t n = TEXT_LINE_MAX + 100;
    char *buf = malloc(n + 2);
    struct request r;
    size_t used, need;

    (void)state;
    assert_non_null(buf);
    memset(buf, 'x', n);
    /* not a get: 2048 bytes without '\n' may still grow, 2049 may not */
    assert_int_equal(parse_str(buf, TEXT_LINE_MAX, &r, &used, &need), ST_AGAIN);
    assert_int_equal(parse_str(buf, TEXT_LINE_MAX + 1, &r, &used, &need),
                     ST_PROTO);
    /* but a complete long line is a command (memcached: "ERROR") */
    memcpy(buf + n, "\r\n", 2);
    assert_int_equal(parse_str(buf, n + 2, &r, &used, &need), ST_OK);
    assert_int_equal(r.err, RES_ERROR);
    assert_int_equal(used, n + 2);
    /* get lines, after up to 100 spaces, may be long */
    static const char *const pfx[] = {"get ", "gets ", "gat ", "gats "};
    for (size_t i = 0; i < NELEMS(pfx); i++) {
        memset(buf, ' ', n);
        memcpy(buf, pfx[i], strlen(pfx[i]));
        assert_int_equal(parse_str(buf, n, &r, &used, &need), ST_AGAIN);
    }
    memset(buf, ' ', n);
    memcpy(buf + 100, "get ", 4);
    assert_int_equal(parse_str(buf, n, &r, &used, &need), ST_AGAIN);
    memset(buf, ' ', n);
    memcpy(buf + 101, "get ", 4);
    assert_int_equal(parse_str(buf, n, &r, &used, &need), ST_PROTO);
    memcpy(buf, "getx", 4);
    assert_int_equal(parse_str(buf, n, &r, &used, &need), ST_PROTO);
    free(buf);
}

static void
test_get_line_max(void **state)
{
    size_t n = TEXT_GET_LINE_MAX + 1;
    char *buf = malloc(n);
    struct request r;
    size_t used, need;

    (void)state;
    assert_non_null(buf);
    memset(buf, 'k', n);
    memcpy(buf, "get ", 4);
    assert_int_equal(parse_str(buf, n - 1, &r, &used, &need), ST_AGAIN);
    assert_int_equal(parse_str(buf, n, &r, &used, &need), ST_PROTO);
    free(buf);
}

/* A get with more keys than a line has tokens, every key 250 bytes, split
 * at every offset: the whole line is one request. */
static void
test_get_many_keys(void **state)
{
    enum { NKEYS = 30 };
    size_t len = 0;
    char *in = malloc(4 + NKEYS * 251 + 2);
    const char *cur, *end, *key;
    size_t nkey, used, need, k = 0;
    struct request r;

    (void)state;
    assert_non_null(in);
    memcpy(in, "get", 3);
    len = 3;
    for (int i = 0; i < NKEYS; i++) {
        in[len++] = ' ';
        memset(in + len, 'a' + i % 26, KEY_MAX_LENGTH);
        len += KEY_MAX_LENGTH;
    }
    memcpy(in + len, "\r\n", 2);
    len += 2;
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(parse_str(in, cut, &r, &used, &need), ST_AGAIN);
    }
    assert_int_equal(parse_str(in, len, &r, &used, &need), ST_OK);
    assert_int_equal(r.err, RES_NONE);
    assert_int_equal(r.nkeys, NKEYS);
    assert_int_equal(r.rflags, REQ_F_FIRST);
    cur = r.args;
    end = r.args + r.nargs;
    while (util_next_token(&cur, end, &key, &nkey)) {
        assert_int_equal(nkey, KEY_MAX_LENGTH);
        assert_int_equal(key[0], 'a' + (int)k % 26);
        k++;
    }
    assert_int_equal(k, NKEYS);
    assert_ptr_equal(cur, end);
    /* one byte more in the last key fails the whole line */
    in[len - 2] = 'z';
    memcpy(in + len - 1, "\r\n", 2);
    assert_int_equal(parse_str(in, len + 1, &r, &used, &need), ST_OK);
    assert_int_equal(r.err, RES_CLIENT_ERROR);
    assert_string_equal(r.errmsg, MSG_BAD_FORMAT);
    assert_int_equal(r.rflags, REQ_F_FIRST | REQ_F_LAST);
    assert_int_equal(r.nkeys, 0);
    free(in);
}

/* Requests back to back in one buffer, as a pipelining client sends them;
 * the leftover "\r\n" of a bad data chunk is a command of its own. */
static void
test_pipeline(void **state)
{
    static const char in[] = "set a 1 0 2\r\nhi\r\n"
                             "get a b\r\n"
                             "set k 0 0 3\r\nabcde\r\n"
                             "delete a noreply\r\n"
                             "set big 0 0 20\r\n"
                             "01234567890123456789\r\n"
                             "incr n 2\r\n";
    static const struct {
        enum req_cmd cmd;
        enum res_kind err;
        size_t used;
    } want[] = {
        {REQ_SET, RES_NONE, 17},         {REQ_GET, RES_NONE, 9},
        {REQ_SET, RES_CLIENT_ERROR, 18}, {REQ_NONE, RES_ERROR, 2},
        {REQ_DELETE, RES_NONE, 18},      {REQ_SET, RES_SERVER_ERROR, 16},
        {REQ_INCR, RES_NONE, 10},
    };
    size_t off = 0, len = sizeof(in) - 1;
    struct request r;
    size_t used, need;

    (void)state;
    for (size_t i = 0; i < NELEMS(want); i++) {
        assert_int_equal(
            proto_text_parse(in + off, len - off, 10, &r, &used, &need), ST_OK);
        assert_int_equal(r.cmd, want[i].cmd);
        assert_int_equal(r.err, want[i].err);
        assert_int_equal(used, want[i].used);
        off += used + r.swallow; /* the caller discards swallow bytes */
    }
    assert_int_equal(off, len);
    assert_int_equal(parse_str(in + off, 0, &r, &used, &need), ST_AGAIN);
}

/* ---- encoder ---- */

static void
expect_bytes(const struct outq *q, const char *want, size_t n)
{
    struct iovec iov[64];
    int k = outq_iov(q, 0, iov, 64);
    char got[4096];
    size_t len = 0;

    for (int i = 0; i < k; i++) {
        assert_true(len + iov[i].iov_len <= sizeof(got));
        memcpy(got + len, iov[i].iov_base, iov[i].iov_len);
        len += iov[i].iov_len;
    }
    assert_int_equal(q->total, len);
    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
}

static void
encode_expect(const struct request *req, const struct response *res,
              const char *want, size_t n)
{
    struct outq q;

    outq_init(&q, 64);
    assert_int_equal(proto_text_encode(req, res, "1.2.3", &q), ST_OK);
    expect_bytes(&q, want, n);
    outq_free(&q);
}

static void
test_encode_simple(void **state)
{
    static const struct {
        enum res_kind kind;
        const char *want;
    } t[] = {
        {RES_STORED, "STORED\r\n"},
        {RES_NOT_STORED, "NOT_STORED\r\n"},
        {RES_EXISTS, "EXISTS\r\n"},
        {RES_NOT_FOUND, "NOT_FOUND\r\n"},
        {RES_DELETED, "DELETED\r\n"},
        {RES_TOUCHED, "TOUCHED\r\n"},
        {RES_OK, "OK\r\n"},
        {RES_ERROR, "ERROR\r\n"},
        {RES_VERSION, "VERSION 1.2.3\r\n"},
        {RES_QUIT, ""},
        {RES_NONE, ""},
    };
    struct request req = {.cmd = REQ_SET};
    struct response res = {0};

    (void)state;
    for (size_t i = 0; i < NELEMS(t); i++) {
        res.kind = t[i].kind;
        encode_expect(&req, &res, t[i].want, strlen(t[i].want));
    }
}

static void
test_encode_errors(void **state)
{
    struct request req = {.cmd = REQ_INCR};
    struct response res = {0};

    (void)state;
    res_set_error(&res, RES_CLIENT_ERROR, MSG_BAD_DELTA);
    encode_expect(&req, &res,
                  S("CLIENT_ERROR invalid numeric delta argument\r\n"));
    res_set_error(&res, RES_SERVER_ERROR, MSG_TOO_LARGE);
    encode_expect(&req, &res, S("SERVER_ERROR object too large for cache\r\n"));
    res_set_error(&res, RES_CLIENT_ERROR, MSG_DELETE_USAGE);
    encode_expect(&req, &res,
                  S("CLIENT_ERROR bad command line format.  "
                    "Usage: delete <key> [noreply]\r\n"));
    res_set_error(&res, RES_SERVER_ERROR, NULL);
    encode_expect(&req, &res, S("SERVER_ERROR\r\n"));
    /* a get line that failed to parse: the error is its whole reply */
    req.cmd = REQ_GET;
    req.rflags = REQ_F_FIRST | REQ_F_LAST;
    res_set_error(&res, RES_CLIENT_ERROR, MSG_BAD_FORMAT);
    encode_expect(&req, &res, S("CLIENT_ERROR bad command line format\r\n"));
    /* "gat 10": memcached answers a bare END */
    res.kind = RES_MISS;
    encode_expect(&req, &res, S("END\r\n"));
}

/* noreply silences everything, errors included (memcached does too). */
static void
test_encode_noreply(void **state)
{
    static const enum res_kind kinds[] = {
        RES_STORED,  RES_NOT_STORED,   RES_EXISTS,       RES_NOT_FOUND,
        RES_DELETED, RES_TOUCHED,      RES_NUMBER,       RES_OK,
        RES_ERROR,   RES_CLIENT_ERROR, RES_SERVER_ERROR,
    };
    struct request req = {.cmd = REQ_SET, .rflags = REQ_F_NOREPLY};
    struct response res = {.val = "5", .nval = 1, .msg = "x", .nmsg = 1};

    (void)state;
    for (size_t i = 0; i < NELEMS(kinds); i++) {
        res.kind = kinds[i];
        encode_expect(&req, &res, "", 0);
    }
}

static void
test_encode_number_raw(void **state)
{
    struct request req = {.cmd = REQ_INCR};
    struct response res = {.kind = RES_NUMBER, .val = "42", .nval = 2};
    static const char stats[] = "STAT pid 1\r\nSTAT uptime 2\r\nEND\r\n";

    (void)state;
    encode_expect(&req, &res, S("42\r\n"));
    req.cmd = REQ_STATS;
    res.kind = RES_RAW;
    res.val = stats;
    res.nval = sizeof(stats) - 1;
    encode_expect(&req, &res, S(stats));
}

static void
test_encode_get(void **state)
{
    struct request req = {
        .cmd = REQ_GET, .key = "foo", .nkey = 3, .rflags = REQ_F_FIRST};
    struct response res = {.kind = RES_VALUE,
                           .flags = 4294967295u,
                           .cas = 99,
                           .val = "bar",
                           .nval = 3};
    struct outq q;

    (void)state;
    encode_expect(&req, &res, S("VALUE foo 4294967295 3\r\nbar\r\n"));
    req.rflags = REQ_F_LAST;
    encode_expect(&req, &res, S("VALUE foo 4294967295 3\r\nbar\r\nEND\r\n"));
    req.cmd = REQ_GETS;
    encode_expect(&req, &res, S("VALUE foo 4294967295 3 99\r\nbar\r\nEND\r\n"));
    req.cmd = REQ_GATS;
    res.nval = 0;
    res.flags = 0;
    encode_expect(&req, &res, S("VALUE foo 0 0 99\r\n\r\nEND\r\n"));
    req.cmd = REQ_GAT;
    encode_expect(&req, &res, S("VALUE foo 0 0\r\n\r\nEND\r\n"));
    /* misses say nothing except the END of the line */
    res.kind = RES_MISS;
    req.rflags = REQ_F_FIRST;
    encode_expect(&req, &res, "", 0);
    req.rflags = REQ_F_LAST;
    encode_expect(&req, &res, S("END\r\n"));

    /* a multi-get line: hit, miss, hit(last), into one queue */
    outq_init(&q, 16);
    req.cmd = REQ_GET;
    req.rflags = REQ_F_FIRST;
    res.kind = RES_VALUE;
    res.val = "1";
    res.nval = 1;
    assert_int_equal(proto_text_encode(&req, &res, "v", &q), ST_OK);
    req.rflags = 0;
    res.kind = RES_MISS;
    assert_int_equal(proto_text_encode(&req, &res, "v", &q), ST_OK);
    req.rflags = REQ_F_LAST;
    req.key = "b";
    req.nkey = 1;
    res.kind = RES_VALUE;
    res.val = "22";
    res.nval = 2;
    assert_int_equal(proto_text_encode(&req, &res, "v", &q), ST_OK);
    expect_bytes(&q, S("VALUE foo 0 1\r\n1\r\nVALUE b 0 2\r\n22\r\nEND\r\n"));
    outq_free(&q);
}

/* Value bytes are queued by reference, not copied. */
static void
test_encode_value_ref(void **state)
{
    enum { N = 1000 };
    char *val = malloc(N);
    char want[N + 64];
    struct request req = {.cmd = REQ_GET,
                          .key = "k",
                          .nkey = 1,
                          .rflags = REQ_F_FIRST | REQ_F_LAST};
    struct response res = {.kind = RES_VALUE, .val = val, .nval = N};
    struct outq q;
    bool found = false;
    size_t n;

    (void)state;
    assert_non_null(val);
    memset(val, 'v', N);
    outq_init(&q, 16);
    assert_int_equal(proto_text_encode(&req, &res, "v", &q), ST_OK);
    for (size_t i = 0; i < q.n; i++) {
        found |= q.ents[i].ref == val && q.ents[i].len == N;
    }
    assert_true(found);
    n = (size_t)snprintf(want, sizeof(want), "VALUE k 0 %d\r\n", N);
    memset(want + n, 'v', N);
    memcpy(want + n + N, "\r\nEND\r\n", 7);
    expect_bytes(&q, want, n + N + 7);
    outq_free(&q);
    free(val);
}

/* Parse then encode a local error, as the server does with req->err. */
static void
test_parse_encode_roundtrip(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } t[] = {
        {"bogus\r\n", "ERROR\r\n"},
        {"gat x k\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
        {"delete k 1\r\n", "CLIENT_ERROR bad command line format.  "
                           "Usage: delete <key> [noreply]\r\n"},
        {"delete k 1 noreply\r\n", ""},
        {"set k 0 0 3\r\nabcde", "CLIENT_ERROR bad data chunk\r\n"},
        {"set k 0 0 3 noreply\r\nabcde", ""},
        {"set k 0 0 2000000\r\n",
         "SERVER_ERROR object too large for cache\r\n"},
        {"flush_all x\r\n", "CLIENT_ERROR invalid exptime argument\r\n"},
        {"gat 10\r\n", "END\r\n"},
    };

    (void)state;
    for (size_t i = 0; i < NELEMS(t); i++) {
        struct request r;
        struct response res = {0};
        size_t used, need;

        assert_int_equal(parse_str(t[i].in, strlen(t[i].in), &r, &used, &need),
                         ST_OK);
        assert_int_not_equal(r.err, RES_NONE);
        res_set_error(&res, r.err, r.errmsg);
        encode_expect(&r, &res, t[i].out, strlen(t[i].out));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_need),
        cmocka_unit_test(test_long_lines),
        cmocka_unit_test(test_get_line_max),
        cmocka_unit_test(test_get_many_keys),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_encode_simple),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_encode_noreply),
        cmocka_unit_test(test_encode_number_raw),
        cmocka_unit_test(test_encode_get),
        cmocka_unit_test(test_encode_value_ref),
        cmocka_unit_test(test_parse_encode_roundtrip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
