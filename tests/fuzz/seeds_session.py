#!/usr/bin/env python3
"""Write the seed corpus of fuzz_session into tests/fuzz/corpus/fuzz_session/.

Each seed is one control byte (see tests/fuzz/fuzz_session.c: bits 0-2 how
replies are read (7 stalls only with bit 3) and, as 1, 3 and 5, the routed
configuration; bits 3-5 the largest piece the input is written in; bit 7
the layered configuration, bit 6 with it a batch connection, without it a
reload to the layered one mid-session; routed, bits 6-7 choose a reload
from or to the routed configuration) followed by a client session. Run
from the repository root.
"""
import os
import struct

OUT = "tests/fuzz/corpus/fuzz_session"
AT_ONCE, TRICKLE, LATE, STALL = 0, 4, 6, 7
LAYERED, BATCH, RELOAD = 0x80, 0xc0, 0x40
# routed: read at once, in small pieces, late (with an odd piece, stalled)
R_AT_ONCE, R_TRICKLE, R_LATE = 1, 5, 3
# routed, bits 6-7: routed then flat, layered then routed, flat then routed
TO_FLAT, FROM_LAYERED, FROM_FLAT = 0x40, 0x80, 0xc0
# one key per route of CFG_ROUTED: all_sync, failover, warm_up,
# all_fastest, l1l2, shadow, the default
PREFIXES = [b"s", b"f", b"w", b"x", b"l", b"sh", b"z"]


def ctl(mode, piece=0, orca=0):
    return bytes([mode | piece << 3 | orca])


def binreq(op, key=b"", extras=b"", value=b"", opaque=0, cas=0):
    body = extras + key + value
    return struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0,
                       len(body), opaque, cas) + body


SEEDS = {
    "text-get-set": ctl(AT_ONCE) +
    b"set foo 5 0 3\r\nbar\r\nget foo\r\nget nokey foo k1\r\ngets foo\r\n"
    b"quit\r\n",
    "text-cas": ctl(AT_ONCE, 1) +
    b"gets k1\r\ncas k1 0 0 1 2\r\nx\r\nset k1 7 0 2\r\nhi\r\ngets k1\r\n"
    b"cas k1 0 0 2 1\r\nyo\r\n",
    "text-incr": ctl(AT_ONCE, 2) +
    b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr missing 1\r\n"
    b"incr n abc\r\nset s 0 0 3\r\nabc\r\nincr s 1\r\n",
    "text-delete-touch": ctl(AT_ONCE, 3) +
    b"set d 0 0 1\r\nz\r\ndelete d\r\ndelete d\r\ntouch k2 100\r\n"
    b"touch gone 0\r\ngat 10 k2 k3\r\ngats 0 k4\r\ndelete d noreply\r\n",
    "text-storage": ctl(AT_ONCE, 4) +
    b"add a 1 0 1\r\na\r\nadd a 1 0 1\r\nb\r\nreplace r 0 0 1\r\nc\r\n"
    b"append a 0 0 2\r\nxy\r\nprepend a 0 0 2\r\nzz\r\nget a\r\n"
    b"set q 0 0 1 noreply\r\nq\r\nget q\r\n",
    "text-admin": ctl(AT_ONCE, 5) +
    b"version\r\nverbosity 1\r\nstats\r\nstats settings\r\nstats proxy\r\n"
    b"stats bogus\r\nflush_all\r\nget foo\r\nflush_all 0\r\nquit\r\n"
    b"get after\r\n",
    "text-errors": ctl(AT_ONCE, 6) +
    b"bogus\r\nget\r\nset k 0 0 -1\r\nset k 0 0 3\r\nabcd\r\nincr k\r\n"
    b"get " + b"k" * 251 + b"\r\nset big 0 0 2000000\r\n",
    "meta": ctl(AT_ONCE) +
    b"ms mk 3 T0 F5 c k\r\nabc\r\nmg mk v f c k s t Oabc\r\n"
    b"mg miss v Oq1 k\r\nmg mk\r\nma cnt N0 J10 v\r\nma cnt D5 MD v c\r\n"
    b"ma mk\r\nmd mk q\r\nmd mk Oz\r\nmn\r\nme mk\r\nms mk 2 MA\r\nzz\r\n"
    b"mg bWs= b v k\r\nms mk 1 Mx\r\nx\r\nmg mk Tbad\r\nmn\r\n",
    "meta-quiet": ctl(AT_ONCE, 7) +
    b"mg k1 v q\r\nmg k2 v q k\r\nms a 1 q\r\n1\r\nmd a q\r\nmd a q\r\nmn\r\n",
    "binary": ctl(AT_ONCE) +
    binreq(0x01, b"bk", struct.pack(">II", 7, 0), b"hello", 1) +
    binreq(0x00, b"bk", opaque=2) + binreq(0x0c, b"k1", opaque=3) +
    binreq(0x09, b"miss", opaque=4) +
    binreq(0x05, b"ctr", struct.pack(">QQI", 1, 5, 0), opaque=5) +
    binreq(0x04, b"bk", opaque=6) + binreq(0x0a, opaque=7) +
    binreq(0x10, opaque=8) + binreq(0x0b, opaque=9) + binreq(0x07, opaque=10),
    "binary-split": ctl(TRICKLE, 1) +
    binreq(0x00, b"big300000", opaque=1) +
    binreq(0x01, b"x", struct.pack(">II", 0, 0), b"v" * 1000, 2) +
    binreq(0x00, b"x", opaque=3),
    "multiget-300": ctl(AT_ONCE) +
    b"get " + b" ".join(b"key%d" % i for i in range(300)) +
    b"\r\nget big1048576 big500000 k1\r\n",
    "pipelined": ctl(LATE, 3) +
    b"set a 0 0 1\r\n1\r\nget a\r\nmg a v\r\nincr a 1\r\nms b 2\r\nhi\r\n"
    b"gets a b\r\ndelete a\r\nmn\r\nget a b c d e f\r\nversion\r\n",
    "large-set": ctl(AT_ONCE) +
    b"set L 0 0 32768\r\n" + bytes(i * 7 % 251 for i in range(32768)) +
    b"\r\nget L L L\r\n",
    "backpressure-late": ctl(LATE) +
    b"get big1048576 big1048575\r\n" + b"get k1\r\n" * 50,
    # more input than the socket buffers hold, behind a 1 MiB reply: riven
    # blocks writing until client_write_timeout_ms closes the connection
    "backpressure-stall": ctl(STALL, 7) +
    b"get big1048576\r\n" + b"get k1\r\n" * 3000,
    "trickle": ctl(TRICKLE, 2) +
    b"get big200000 big100000 k1 k2 k3\r\nmg big65536 v\r\n",
    "empty": ctl(AT_ONCE),
    "l1l2-text": ctl(AT_ONCE, 0, LAYERED) +
    b"get k1 k2 k3\r\nset a 0 0 2\r\nhi\r\nget a\r\ngets a\r\n"
    b"touch a 10\r\nincr n 1\r\nset n 0 0 1\r\n5\r\nincr n 2\r\n"
    b"delete a\r\nget a\r\nflush_all\r\nget k1\r\n",
    "l1l2-meta": ctl(TRICKLE, 3, LAYERED) +
    b"mg k1 v\r\nms m 2 T0\r\nab\r\nmg m v c\r\nmd m\r\nma c N0 J1 v\r\n"
    b"mn\r\n",
    "reload": ctl(AT_ONCE, 2, RELOAD) +
    b"get k1\r\nset a 0 0 1\r\nx\r\nget k3\r\nget b c d\r\nmg e v\r\n"
    b"incr f 1\r\ngets g\r\n",
    "l1l2-batch": ctl(AT_ONCE, 4, BATCH) +
    b"set k1 0 0 3\r\nnew\r\nset cold 0 0 1\r\nx\r\nget k1 cold\r\n"
    b"delete k2\r\nadd k3 0 0 1\r\ny\r\n",
}



def per_prefix(fmt):
    """fmt (bytes with %s for the prefix) once for each route's prefix."""
    return b"".join(fmt.replace(b"%s", p) for p in PREFIXES)


def mget(n, suffix=b""):
    return b" ".join(p + b"%d" % i + suffix for i in range(n)
                     for p in PREFIXES)


ROUTED_TEXT = (
    per_prefix(b"set %sa 1 0 2\r\nhi\r\nget %sa\r\n") +
    per_prefix(b"add %sb 2 0 1\r\nb\r\nadd %sb 2 0 1\r\nc\r\n"
               b"replace %sr 0 0 1\r\nr\r\nappend %sa 0 0 1\r\n!\r\n"
               b"prepend %sa 0 0 1\r\n<\r\n") +
    per_prefix(b"gets %sa\r\ncas %sa 0 0 1 1\r\nx\r\n"
               b"set %sn 0 0 1\r\n9\r\nincr %sn 5\r\ndecr %sn 20\r\n"
               b"incr %smiss 1\r\ntouch %sa 100\r\ngat 10 %sa %sz\r\n"
               b"gats 0 %sa\r\ndelete %sb\r\ndelete %sb\r\n"
               b"delete %sb noreply\r\n") +
    b"get " + mget(3) + b"\r\ngets " + mget(2) + b"\r\n")

ROUTED_META = (
    per_prefix(b"ms %sm 3 T0 F5 c k\r\nabc\r\nmg %sm v f c k s t Oab\r\n"
               b"mg %smiss v t f Oq1 k\r\nmg %sw v t q\r\n"
               b"ms %sm 2 ME\r\nzz\r\nms %sp 1 MA q\r\n!\r\n"
               b"ma %sc N0 J10 v t\r\nma %sc D3 MD v\r\nmd %sm q\r\n"
               b"md %sm Oz\r\nme %sm\r\nmn\r\n") +
    # base64 keys: "sh1", "w1", "x1", "s1"
    b"mg c2gx b v k\r\nmg dzE= b v t\r\nms eDE= b 1\r\nq\r\n"
    b"md czE= b q\r\nmn\r\n")


def binreqs(prefix, opaque):
    k = prefix + b"bk"
    return (binreq(0x01, k, struct.pack(">II", 7, 0), b"hello", opaque) +
            binreq(0x00, k, opaque=opaque + 1) +
            binreq(0x0c, prefix + b"1", opaque=opaque + 2) +
            binreq(0x02, k, struct.pack(">II", 1, 3000000), b"a", opaque + 3) +
            binreq(0x03, prefix + b"r", struct.pack(">II", 1, 50), b"r",
                   opaque + 4) +
            binreq(0x05, prefix + b"ctr", struct.pack(">QQI", 1, 5, 0),
                   opaque=opaque + 5) +
            binreq(0x1c, k, struct.pack(">I", 100), opaque=opaque + 6) +
            binreq(0x1d, k, struct.pack(">I", 10), opaque=opaque + 7) +
            binreq(0x0d, prefix + b"q", opaque=opaque + 8) +
            binreq(0x09, prefix + b"miss", opaque=opaque + 9) +
            binreq(0x04, k, opaque=opaque + 10))


ROUTED_BINARY = (b"".join(binreqs(p, 16 * i) for i, p in enumerate(PREFIXES))
                 + binreq(0x0a, opaque=999) + binreq(0x10, opaque=1000))

SEEDS.update({
    "routed-text": ctl(R_AT_ONCE) + ROUTED_TEXT,
    "routed-meta": ctl(R_AT_ONCE, 2) + ROUTED_META,
    "routed-binary": ctl(R_AT_ONCE) + ROUTED_BINARY,
    "routed-binary-split": ctl(R_TRICKLE, 1) + ROUTED_BINARY,
    # keys in every route in one get, some repeated, large values among them
    "routed-multiget": ctl(R_TRICKLE, 3) +
    b"get " + mget(20) + b" s1 w1 x1 sh1 z1 w1\r\n"
    b"get sbig100000 wbig200000 xbig50000 lbig65536 shbig30000 big120000\r\n"
    b"gat 100 " + mget(4) + b"\r\n",
    # warm_up: misses in cold filled from warm, then hits in cold
    "routed-warm": ctl(R_AT_ONCE, 4) +
    b"get " + b" ".join(b"w%d" % i for i in range(40)) + b"\r\n"
    b"get " + b" ".join(b"w%d" % i for i in range(40)) + b"\r\n"
    b"gat 50 w1 w2 w3\r\nmg w7 v t\r\ndelete w1\r\nget w1\r\n",
    # ttl_max 60 on failover's second child; l1l2 fills and mirrors
    "routed-ttl": ctl(R_AT_ONCE, 5) +
    b"set f1 0 0 1\r\na\r\nset f2 0 100 1\r\nb\r\n"
    b"set f3 0 3000000 1\r\nc\r\ntouch f1 1000\r\ngat 5000 f2 f3\r\n"
    b"get f1 f2 f3 f4 f5\r\nset l1 0 0 1\r\nd\r\nget l1 l2 l3 l4\r\n"
    b"incr l1 1\r\ndelete l1\r\nget l1\r\n",
    "routed-admin": ctl(R_AT_ONCE, 6) +
    b"version\r\nstats\r\nstats proxy\r\nstats settings\r\n"
    b"verbosity 1\r\nget s1 x1 z1\r\nflush_all\r\nget s1 x1 z1 w1\r\n"
    b"flush_all 0\r\nset x1 0 0 1\r\n1\r\nget x1\r\nquit\r\n",
    "routed-late": ctl(R_LATE, 2) +
    b"get sbig200000 xbig200000 zbig300000\r\n" +
    per_prefix(b"set %sk 0 0 1\r\nv\r\nget %sk\r\n") * 5,
    # stalled: riven's writes block until client_write_timeout_ms while
    # shadow copies and all_fastest writes are outstanding
    "routed-stall": ctl(R_LATE, 7) +
    b"get zbig1048576\r\n" +
    per_prefix(b"set %sk 0 0 1\r\nv\r\n") * 300,
    "routed-reload": ctl(R_AT_ONCE, 2, TO_FLAT) +
    b"get s1 x1 z1\r\nset x1 0 0 1\r\nv\r\nset sh1 0 0 1\r\nv\r\n"
    b"get w1 w2 w3 l1\r\nget s1 x1 z1\r\nmg sh1 v\r\nincr x1 1\r\n",
    "layered-to-routed": ctl(R_AT_ONCE, 3, FROM_LAYERED) +
    b"get k1 l1\r\nset l1 0 0 1\r\nx\r\nget k3 s3\r\n"
    b"get l1 w1 x1 sh1\r\nset x2 0 0 1\r\ny\r\nmg z1 v\r\ngets l1\r\n",
    "flat-to-routed": ctl(R_TRICKLE, 2, FROM_FLAT) +
    b"get s1 f1 w1\r\nset x1 0 0 1\r\nx\r\nget z1 z2\r\n"
    b"get s1 f1 w1 x1 l1 sh1 z1\r\nset x1 0 0 1\r\ny\r\nmg x1 v\r\n",
})

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
