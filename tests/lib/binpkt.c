/*
 * binpkt: binary-protocol request packets, header fields in network order.
 */
#include "binpkt.h"

#include <arpa/inet.h>
#include <endian.h>
#include <string.h>

size_t
binpkt_header(uint8_t *h, uint8_t op, uint16_t klen, uint8_t elen,
              uint32_t blen, uint32_t opaque, uint64_t cas)
{
    uint16_t k16 = htons(klen);
    uint32_t b32 = htonl(blen), o32 = htonl(opaque);
    uint64_t c64 = htobe64(cas);

    memset(h, 0, BINPKT_HEADER_LEN);
    h[0] = 0x80;
    h[1] = op;
    memcpy(h + 2, &k16, 2);
    h[4] = elen;
    memcpy(h + 8, &b32, 4);
    memcpy(h + 12, &o32, 4);
    memcpy(h + 16, &c64, 8);
    return BINPKT_HEADER_LEN;
}

size_t
binpkt_request(uint8_t *out, uint8_t op, const char *key, const void *ext,
               uint8_t elen, const void *val, size_t vlen, uint32_t opaque)
{
    size_t klen = key != NULL ? strlen(key) : 0;
    size_t n = binpkt_header(out, op, (uint16_t)klen, elen,
                             (uint32_t)(elen + klen + vlen), opaque, 0);

    /* no memcpy from NULL, even of 0 bytes (UBSan) */
    if (elen > 0) {
        memcpy(out + n, ext, elen);
    }
    if (klen > 0) {
        memcpy(out + n + elen, key, klen);
    }
    if (vlen > 0) {
        memcpy(out + n + elen + klen, val, vlen);
    }
    return n + elen + klen + vlen;
}
