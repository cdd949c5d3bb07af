#!/usr/bin/env python3
"""Write the seed corpus of fuzz_session into tests/fuzz/corpus/fuzz_session/.

Each seed is one control byte (see tests/fuzz/fuzz_session.c: bits 0-2 how
replies are read (7 stalls only with bit 3), bits 3-5 the largest piece
the input is written in, bit 7 the layered configuration, bit 6 with it a
batch connection, without it a reload to the layered one mid-session)
followed by a client session. Run from the repository root.
"""
import os
import struct

OUT = "tests/fuzz/corpus/fuzz_session"
AT_ONCE, TRICKLE, LATE, STALL = 0, 4, 6, 7
LAYERED, BATCH, RELOAD = 0x80, 0xc0, 0x40


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

os.makedirs(OUT, exist_ok=True)
for name, data in SEEDS.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
