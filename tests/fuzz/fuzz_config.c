/*
 * fuzz_config: libFuzzer target for the YAML config loader
 * (config_load_string).
 *
 * The input is a config file. A failure must leave a NUL-terminated,
 * non-empty message in err, inside its buffer; a success must be a
 * snapshot that satisfies the validation rules (at least one listener, an
 * l1 pool with a server and, for the l1l2 orcas, an l2 pool with one;
 * weights >= 1; no address without a family; item size > 0).
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
}

static void
check_config(const struct config *cfg)
{
    CHECK(cfg->nlisten >= 1 && cfg->listen != NULL);
    for (size_t i = 0; i < cfg->nlisten; i++) {
        check_addr(&cfg->listen[i]);
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
