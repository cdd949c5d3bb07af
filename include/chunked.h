/*
 * chunked: one command on a chunked pool (chunk.h) as rounds of backend
 * requests to the server of its key. The orca does the I/O: it asks the
 * job for a round, queues the round's requests on that server, and once
 * every one is answered asks for the next, until the command has its
 * answer. Every job of a batch runs its rounds side by side.
 *
 *   get gets gat gats mg   1: the metadata and chunk 0
 *                          2: chunks 1 .. n-1 (a value of one chunk or
 *                             none is read in one round trip)
 *   touch                  1: the metadata (read and touched), chunk 0
 *                          2: chunks 1 .. n-1 touched
 *   set, ms (mode S)       1: chunks 0 .. n-1, then the metadata
 *   add replace cas,       1: the metadata read (its CAS)
 *   ms with ME MR C<cas>   2: as set when the condition holds, else the
 *                             metadata write alone, so that memcached
 *                             gives the refusal (NS, EX, NF) itself
 *   incr decr append prepend ma, ms MA MP, and meta flags a chunked
 *   value cannot honour (mg E N R, ms I N): CLIENT_ERROR not supported
 *   on chunked storage, and nothing is sent.
 *   delete, md, me: no job; they concern the metadata item alone, which
 *   the orca forwards as for any pool (chunks left behind are read by
 *   nobody and age out).
 *
 * The metadata item holds the client's flags as its memcached flags, so
 * the flags a backend returns are the client's. A meta command's own
 * flags go to the metadata item as sent: its reply is memcached's, with
 * "VA 48" made "VA <length>" (or "HD" when the client did not ask for v)
 * and s48 made s<length>. A read that finds metadata it cannot decode, a
 * missing chunk or one of another write answers a miss (and counts it).
 *
 * Answers point into the job (values assembled, error texts and meta
 * replies copied), never into a handler's buffer: the job owns them
 * until chunked_free, after the client has them.
 *
 * Not thread-safe: a job belongs to one connection thread.
 */
#ifndef RIVEN_CHUNKED_H
#define RIVEN_CHUNKED_H

#include <stdbool.h>
#include <stdint.h>

#include "request.h"
#include "util.h"

struct chunked;

/* Queue req on the key's server; its answer goes to *res (the job's: it
 * stays put until chunked_free). */
typedef void (*chunked_send_fn)(void *arg, const struct request *req,
                                struct response *res);

/* True if req on a chunked pool runs as a job; false if it goes to the
 * metadata item as it is (delete, md, me) or to no key at all. */
bool chunked_takes(const struct request *req);

/* A job answering req into *res (NULL: nobody takes it), writing chunks
 * of chunk_size bytes. req is a ref: its key and meta flags must stay
 * valid until the job is done, its value until the first chunked_round
 * returns (a write that reads first keeps a copy). NULL when memory runs
 * out. */
struct chunked *chunked_start(const struct request *req, struct response *res,
                              uint32_t chunk_size) WUR;

/* True when every request of the last round has its answer (also before
 * the first round). */
bool chunked_ready(const struct chunked *j);

/* With the last round answered, send the next round's requests; true if
 * it sent some, false when the job is done and *res is final. */
bool chunked_round(struct chunked *j, chunked_send_fn send, void *arg);

/* NULL-safe. */
void chunked_free(struct chunked *j);

#endif /* RIVEN_CHUNKED_H */
