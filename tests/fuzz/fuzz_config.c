/*
 * fuzz_config: libFuzzer target for the YAML config loader
 * (config_load_string).
 *
 * The input is a config file. A failure must leave a NUL-terminated,
 * non-empty message in err, inside its buffer; a success must be a
 * snapshot that satisfies the validation rules (at least one listener, an
 * l1 pool with a server and, for the l1l2 orcas, an l2 pool with one;
 * weights >= 1; no address without a family; item size > 0; TLS settings
 * per listener, all zero when off, with a cert and key on a listener).
 * LeakSanitizer checks that both paths free everything.
 *
 * Host names are not resolved: getaddrinfo is interposed below to accept
 * numeric addresses only, so a fuzzed name never becomes a DNS query (that
 * would be slow, flaky and would leave the machine).
 *
 * A broken invariant prints what broke and aborts.
 */
#include <dlfcn.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "config.h"
#include "route.h"

#include "fuzz_common.h"

typedef int (*getaddrinfo_fn)(const char *, const char *,
                              const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service,
                const struct addrinfo *hints, struct addrinfo **res);

/* Numeric hosts only: AI_NUMERICHOST added to the caller's hints. */
int
getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
            struct addrinfo **res)
{
    static getaddrinfo_fn real;
    struct addrinfo h;

    if (real == NULL) {
        real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");
        CHECK(real != NULL);
    }
    memset(&h, 0, sizeof(h));
    if (hints != NULL) {
        h = *hints;
    }
    h.ai_flags |= AI_NUMERICHOST;
    return real(node, service, &h, res);
}

static void
check_addr(const struct cfg_addr *a)
{
    CHECK(a->ss.ss_family == AF_INET || a->ss.ss_family == AF_INET6 ||
          a->ss.ss_family == AF_UNIX);
    CHECK(a->sslen > 0 && a->sslen <= sizeof(a->ss));
    CHECK(memchr(a->name, '\0', sizeof(a->name)) != NULL);
}

/* A listener's or a pool's TLS settings. */
static void
check_tls(const struct cfg_tls *t, bool listener)
{
    if (!t->on) {
        CHECK(t->cert == NULL && t->key == NULL && t->ca == NULL);
        CHECK(t->ciphers == NULL && t->server_name == NULL);
        CHECK(t->verify == CFG_TLS_VERIFY_NONE && t->min_version == 0);
        return;
    }
    CHECK(t->line >= 1);
    CHECK(t->min_version == 0x0303 || t->min_version == 0x0304);
    CHECK(t->verify <= CFG_TLS_VERIFY_REQUIRE);
    CHECK((t->cert == NULL) == (t->key == NULL));
    if (listener) {
        CHECK(t->cert != NULL && t->server_name == NULL);
        CHECK(t->verify == CFG_TLS_VERIFY_NONE || t->ca != NULL);
    } else {
        CHECK(t->verify != CFG_TLS_VERIFY_OPTIONAL);
    }
}

static void
check_pool(const struct cfg_pool *p, bool need)
{
    CHECK(!need || p->nservers >= 1);
    CHECK(p->nservers == 0 || p->servers != NULL);
    for (size_t i = 0; i < p->nservers; i++) {
        check_addr(&p->servers[i].addr);
        CHECK(p->servers[i].weight >= 1);
    }
    CHECK(p->distribution <= CFG_DIST_MODULA);
    CHECK(p->hash <= CFG_HASH_ONE_AT_A_TIME);
    check_tls(&p->tls, false);
}

/* A route tree: pools that exist, children where the rule needs them. */
static void
check_route(const struct config *cfg, const struct cfg_route *r, int depth)
{
    CHECK(depth <= CFG_ROUTE_DEPTH_MAX);
    CHECK(r->kind <= CFG_ROUTE_L1L2);
    if (r->kind == CFG_ROUTE_POOL) {
        CHECK(r->pool < cfg->npools && r->nchild == 0);
        CHECK(r->ttl_max <= CFG_ROUTE_TTL_MAX);
        return;
    }
    CHECK(r->nchild >= 1 && r->child != NULL);
    if (r->kind >= CFG_ROUTE_SHADOW) {
        CHECK(r->nchild == 2);
    }
    CHECK(r->fraction >= 0.0 && r->fraction <= 1.0);
    for (size_t i = 0; i < r->nchild; i++) {
        CHECK(r->kind != CFG_ROUTE_ALL_FASTEST ||
              r->child[i].kind == CFG_ROUTE_POOL);
        check_route(cfg, &r->child[i], depth + 1);
    }
}

/* Routes: one default, distinct prefixes, and a table that finds each
 * prefix's own entry (and the default for a key no prefix starts). */
static void
check_routes(const struct config *cfg)
{
    struct route_table *t;
    size_t ndef = 0;
    char err[128];

    CHECK((cfg->npools == 0) == (cfg->nroutes == 0));
    for (size_t i = 0; i < cfg->npools; i++) {
        check_pool(&cfg->pools[i].pool, true);
    }
    if (cfg->nroutes == 0) {
        return;
    }
    t = route_table_create(cfg, err, sizeof(err));
    CHECK(t != NULL);
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct cfg_route_entry *e = &cfg->routes[i];

        check_route(cfg, &e->route, 1);
        if (e->prefix == NULL) {
            ndef++;
            continue;
        }
        CHECK(e->nprefix >= 1 && e->nprefix <= KEY_MAX_LENGTH);
        CHECK(route_lookup(t, e->prefix, e->nprefix) == i);
    }
    CHECK(ndef == 1);
    CHECK(cfg->routes[route_lookup(t, "", 0)].prefix == NULL);
    route_table_destroy(t);
}

static void
check_config(const struct config *cfg)
{
    CHECK(cfg->nlisten >= 1 && cfg->listen != NULL);
    CHECK(cfg->listen_tls != NULL);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        check_addr(&cfg->listen[i]);
        check_tls(&cfg->listen_tls[i], true);
    }
    check_pool(&cfg->pool, true);
    check_pool(&cfg->l2, cfg->orca != CFG_ORCA_L1ONLY);
    CHECK(cfg->nbatch_listen == 0 || cfg->batch_listen != NULL);
    for (size_t i = 0; i < cfg->nbatch_listen; i++) {
        check_addr(&cfg->batch_listen[i]);
    }
    if (cfg->metrics_enabled) {
        check_addr(&cfg->metrics_listen);
        CHECK(cfg->metrics_listen.ss.ss_family != AF_UNIX);
    }
    CHECK(cfg->item_size_max > 0);
    CHECK(cfg->thread_stack_size > 0);
    CHECK(cfg->orca <= CFG_ORCA_L1L2BATCH);
    check_routes(cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256 + 1];
    struct config *cfg;

    memset(err, 'x', sizeof(err));
    cfg = config_load_string((const char *)data, size, "fuzz.yml", err,
                             sizeof(err) - 1);
    CHECK(err[sizeof(err) - 1] == 'x'); /* nothing past errlen */
    if (cfg == NULL) {
        size_t n = strnlen(err, sizeof(err) - 1);

        CHECK(n > 0 && n < sizeof(err) - 1);
        return 0;
    }
    check_config(cfg);
    CHECK(config_ref(cfg) == cfg);
    config_unref(cfg);
    config_unref(cfg);
    return 0;
}
