/*
 * parse_bench: nanoseconds per request for riven's client parsers (text
 * get and set, meta mg and ms, binary get and set) and the meta encoder
 * toward backends, single-threaded, in a tight loop over one request.
 * Printed as a table for tests/bench/RESULTS.md.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "proto_binary.h"
#include "proto_meta.h"
#include "proto_text.h"
#include "util.h"

#define ITERS 2000000

typedef enum status (*parse_fn)(const char *, size_t, size_t, struct request *,
                                size_t *, size_t *);

static double
bench_parse(const char *name, parse_fn fn, const char *in, size_t len)
{
    struct request req;
    size_t used = 0, need = 0, sum = 0;
    uint64_t t0 = util_now_ns(), ns;

    for (int i = 0; i < ITERS; i++) {
        if (fn(in, len, 1 << 20, &req, &used, &need) != ST_OK) {
            fprintf(stderr, "parse_bench: %s does not parse\n", name);
            return -1;
        }
        sum += used + req.nkey;
    }
    ns = util_now_ns() - t0;
    printf("| %-28s | %6.1f |\n", name, (double)ns / ITERS);
    return (double)sum;
}

static void
bench_encode(const char *name, const char *in, size_t len)
{
    struct request req;
    struct buf out;
    size_t used, need;
    uint64_t t0, ns;

    buf_init(&out, 4096);
    if (proto_text_parse(in, len, 1 << 20, &req, &used, &need) != ST_OK) {
        return;
    }
    if (req.cmd == REQ_GET) {
        req.key = req.args;
        req.nkey = req.nargs;
    }
    t0 = util_now_ns();
    for (int i = 0; i < ITERS; i++) {
        out.pos = out.last = out.start;
        if (proto_meta_encode_request(&req, &out) != ST_OK) {
            fprintf(stderr, "parse_bench: %s does not encode\n", name);
            return;
        }
    }
    ns = util_now_ns() - t0;
    printf("| %-28s | %6.1f |\n", name, (double)ns / ITERS);
    buf_free(&out);
}

/* A binary request: 24-byte header, extras, key, value. */
static size_t
bin_packet(char *p, uint8_t op, const char *key, const char *extras,
           size_t nextras, const char *val, size_t nval)
{
    size_t nkey = strlen(key), body = nextras + nkey + nval;

    memset(p, 0, 24);
    p[0] = (char)0x80;
    p[1] = (char)op;
    p[2] = (char)(nkey >> 8);
    p[3] = (char)nkey;
    p[4] = (char)nextras;
    p[8] = (char)(body >> 24);
    p[9] = (char)(body >> 16);
    p[10] = (char)(body >> 8);
    p[11] = (char)body;
    memcpy(p + 24, extras, nextras);
    memcpy(p + 24 + nextras, key, nkey);
    memcpy(p + 24 + nextras + nkey, val, nval);
    return 24 + body;
}

int
main(void)
{
    static const char get[] = "get user:1234:profile\r\n";
    static const char set[] = "set user:1234:profile 0 3600 32\r\n"
                              "0123456789abcdef0123456789abcdef\r\n";
    static const char mg[] = "mg user:1234:profile v f t\r\n";
    static const char ms[] = "ms user:1234:profile 32 T3600 F0\r\n"
                             "0123456789abcdef0123456789abcdef\r\n";
    char bget[128], bset[128];
    size_t nbget, nbset;

    nbget = bin_packet(bget, 0x00, "user:1234:profile", NULL, 0, NULL, 0);
    nbset = bin_packet(bset, 0x01, "user:1234:profile", "\0\0\0\0\0\0\x0e\x10",
                       8, "0123456789abcdef0123456789abcdef", 32);
    printf("| request | ns/request |\n| --- | --- |\n");
    bench_parse("text get (1 key)", proto_text_parse, get, sizeof(get) - 1);
    bench_parse("text set (32-byte value)", proto_text_parse, set,
                sizeof(set) - 1);
    bench_parse("meta mg", proto_meta_parse_request, mg, sizeof(mg) - 1);
    bench_parse("meta ms (32-byte value)", proto_meta_parse_request, ms,
                sizeof(ms) - 1);
    bench_parse("binary get", proto_binary_parse, bget, nbget);
    bench_parse("binary set (32-byte value)", proto_binary_parse, bset, nbset);
    bench_encode("encode get -> mg (backend)", get, sizeof(get) - 1);
    bench_encode("encode set -> ms (backend)", set, sizeof(set) - 1);
    return 0;
}
