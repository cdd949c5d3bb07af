/*
 * main: command line, config load, signals, and the accept loop.
 *
 *   riven [-c FILE] [-l ADDR]... [-b ADDR]... [-t] [-v] [-q] [-V] [-h]
 *
 * Failures before serving starts are fatal(); after that, the daemon
 * lives on through any single connection's failure.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "config.h"
#include "listener.h"
#include "log.h"
#include "ring.h"
#include "server.h"

#define MAX_ADDRS 64

static struct listener *the_listener;

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: riven [-c FILE] [-l ADDR]... [-b ADDR]... [-t] [-v] [-q] "
            "[-V] [-h]\n"
            "  -c FILE  load the YAML config FILE (default: built-in)\n"
            "  -l ADDR  listen on ADDR (repeatable; replaces the file's)\n"
            "  -b ADDR  backend memcached ADDR (repeatable; replaces the "
            "file's)\n"
            "  -t       check the config and exit (0 ok, 1 with a message)\n"
            "  -v / -q  raise / lower the log level (repeatable)\n"
            "  -V       print the version\n"
            "  -h       print this help\n"
            "ADDR is host:port, [v6addr]:port or unix:/path.\n"
            "Defaults: listen %s, backend %s.\n",
            CFG_DEFAULT_LISTEN, CFG_DEFAULT_SERVER);
}

static void
on_signal(int sig)
{
    (void)sig;
    if (the_listener != NULL) {
        listener_stop(the_listener);
    }
}

static void
setup_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Raise the soft open-file limit to the hard one, as memcached does. */
static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

struct opts {
    const char     *file;
    struct cfg_addr listen[MAX_ADDRS];
    size_t          nlisten;
    struct cfg_addr servers[MAX_ADDRS];
    size_t          nservers;
    bool            test;
    int             verbosity;
};

static void
add_addr(struct cfg_addr *arr, size_t *n, const char *s)
{
    char err[256];

    if (*n == MAX_ADDRS) {
        fatal("too many addresses (at most %d)", MAX_ADDRS);
    }
    if (config_parse_addr(s, &arr[*n], err, sizeof(err)) != ST_OK) {
        fprintf(stderr, "riven: %s\n", err);
        exit(1);
    }
    (*n)++;
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
    int c;

    while ((c = getopt(argc, argv, "c:l:b:tvqVh")) != -1) {
        switch (c) {
        case 'c':
            o->file = optarg;
            break;
        case 'l':
            add_addr(o->listen, &o->nlisten, optarg);
            break;
        case 'b':
            add_addr(o->servers, &o->nservers, optarg);
            break;
        case 't':
            o->test = true;
            break;
        case 'v':
            o->verbosity++;
            break;
        case 'q':
            o->verbosity--;
            break;
        case 'V':
            printf("riven %s\n", RIVEN_VERSION_STR);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(1);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "riven: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        exit(1);
    }
}

static struct config *
load_config(const struct opts *o)
{
    char err[512];
    struct config *cfg;

    cfg = o->file ? config_load(o->file, err, sizeof(err)) : config_default();
    if (cfg == NULL) {
        fprintf(stderr, "riven: %s\n", o->file ? err : "out of memory");
        exit(1);
    }
    if ((o->nlisten > 0 &&
         config_set_listen(cfg, o->listen, o->nlisten) != ST_OK) ||
        (o->nservers > 0 &&
         config_set_servers(cfg, o->servers, o->nservers) != ST_OK)) {
        fatal("out of memory");
    }
    return cfg;
}

int
main(int argc, char **argv)
{
    struct opts o;
    struct config *cfg;
    struct ring *ring;
    char err[512];
    int level;

    memset(&o, 0, sizeof(o));
    parse_args(argc, argv, &o);
    cfg = load_config(&o);
    if (o.test) {
        printf("riven: configuration %s is valid\n",
               o.file ? o.file : "(built-in)");
        config_unref(cfg);
        return 0;
    }
    level = (int)cfg->log_level + o.verbosity;
    log_init((enum log_level)MAX(MIN(level, LOG_LVL_DEBUG), LOG_LVL_ERROR));
    raise_nofile();
    ring = ring_create(cfg, err, sizeof(err));
    if (ring == NULL) {
        fatal("pool: %s", err);
    }
    the_listener = listener_create(cfg, ring, err, sizeof(err));
    if (the_listener == NULL) {
        fatal("listen: %s", err);
    }
    setup_signals();
    for (size_t i = 0; i < cfg->nlisten; i++) {
        log_info("listening on %s", cfg->listen[i].name);
    }
    log_info("riven %s: %zu backend server(s), max %u connections",
             RIVEN_VERSION_STR, cfg->nservers,
             listener_max_connections(the_listener));
    if (listener_run(the_listener) != ST_OK) {
        return 1;
    }
    log_info("shutting down");
    listener_destroy(the_listener);
    /* Connection threads may still hold cfg and ring: let exit reclaim. */
    return 0;
}
