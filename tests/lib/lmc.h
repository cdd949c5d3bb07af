/*
 * lmc: libmemcached helpers for integration tests that drive riven through
 * a memcached_st (text or binary protocol).
 *
 * Every helper checks what it gets with cmocka and fails the running test
 * on a mismatch, printing libmemcached's own description of the error.
 */
#ifndef RIVEN_LMC_H
#define RIVEN_LMC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmemcached/memcached.h>

/* A client of 127.0.0.1:port with CAS support and 5 s timeouts; binary
 * selects the binary protocol (its setting is asserted), noreply turns on
 * MEMCACHED_BEHAVIOR_NOREPLY. */
memcached_st *lmc_new(int port, bool binary, bool noreply);

/* Fail the test unless rc is want; what and line name the call. */
void lmc_check_rc(memcached_st *m, memcached_return_t rc,
                  memcached_return_t want, const char *what, int line);
#define LMC_CHECK_RC(m, rc, want) lmc_check_rc((m), (rc), (want), #rc, __LINE__)

/* set key (no expiry) and expect MEMCACHED_SUCCESS. */
void lmc_put(memcached_st *m, const char *key, const void *val, size_t len,
             uint32_t flags);

/* get key and compare value and flags exactly. */
void lmc_want_value(memcached_st *m, const char *key, const void *want,
                    size_t len, uint32_t want_flags);

/* get key and expect a miss. */
void lmc_want_miss(memcached_st *m, const char *key);

/* The rc that ended a fetch: libmemcached 1.1 reports NOTFOUND, older
 * ones END. */
void lmc_fetch_end(memcached_st *m, memcached_return_t rc);

/* The CAS of key, by an mget of it alone. */
uint64_t lmc_get_cas(memcached_st *m, const char *key);

/* cmocka case fixtures: *state is a fresh client of group_stack in the
 * text or the binary protocol; the teardown frees it and fails the case
 * when a process of the stack is gone. */
int lmc_text_setup(void **state);
int lmc_binary_setup(void **state);
int lmc_teardown(void **state);

/* Scenarios that expect the same in the text and the binary protocol.
 * "<key>-none" is a key they keep missing. */

/* add on key (existing: add_exists), add on "<key>-new", replace on
 * key, replace on the missing key (replace_miss); values checked after
 * each. The protocols answer the two failures differently. */
void lmc_check_add_replace(memcached_st *m, const char *key,
                           memcached_return_t add_exists,
                           memcached_return_t replace_miss);

/* append and prepend to key (its flags kept), then to the missing key:
 * NOTSTORED. */
void lmc_check_append_prepend(memcached_st *m, const char *key);

/* A cas that stores, a stale one (DATA_EXISTS, value untouched), one on
 * the missing key (NOTFOUND). */
void lmc_check_cas(memcached_st *m, const char *key);

/* delete key: SUCCESS, then NOTFOUND. */
void lmc_check_delete(memcached_st *m, const char *key);

/* On m with MEMCACHED_BEHAVIOR_NOREPLY on: set, add, append, prepend,
 * incr, decr, delete and replace on keys "<p>nr", "<p>nrc", "<p>nrd",
 * "<p>nrr". lmc_noreply_check turns replies back on and finds exactly
 * their effects (a get is answered only after every earlier quiet
 * command was processed). */
void lmc_noreply_burst(memcached_st *m, const char *p);
void lmc_noreply_check(memcached_st *m, const char *p);

/* Two keys k1, k2 set, memcached_flush(0) empties both, and k1 set
 * again is found again. */
void lmc_check_flush(memcached_st *m, const char *k1, const char *k2);

/* memcached_version succeeds and reports memcached 1.6.18. */
void lmc_check_version(memcached_st *m);

/* 500 keys "<prefix>N" set (value and flags derived from N), 100 more
 * deleted, then one mget of all 600: exactly the 500 hits, each once,
 * with exact values and flags (and a CAS when want_cas). */
void lmc_mget_many(memcached_st *m, const char *prefix, bool want_cas);

#endif /* RIVEN_LMC_H */
