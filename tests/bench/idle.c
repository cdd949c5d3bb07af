/*
 * idle: c10k idle-scale check for `make bench`. Opens N connections to a
 * riven (127.0.0.1:PORT), sends each one "version\r\n" and reads the
 * answer, holds them all open, then reports the riven process's RSS (from
 * /proc/PID/status) and its open backend sockets, and closes everything.
 * The open-file limit is printed and N scaled down to fit it.
 *
 * With -s each connection speaks TLS (no certificate checked) and is
 * held with its TLS state, so that the RSS is that of idle TLS clients.
 *
 *   idle [-s] PORT RIVEN_PID [N [HOLD_MS]]   (default N = 19000, HOLD_MS 0)
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long
rss_kib(int pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    if ((f = fopen(path, "r")) == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "VmRSS: %ld", &kib) == 1) {
            break;
        }
    }
    fclose(f);
    return kib;
}

static long
count_fds(int pid)
{
    char path[64];
    struct dirent *e;
    long n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    if ((d = opendir(path)) == NULL) {
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static SSL_CTX *tls; /* -s */

/* Connect (with TLS when tls is set, the stream in *sslp), send
 * "version", read the full line. fd or -1. */
static int
open_one(const struct sockaddr_in *sa, SSL **sslp)
{
    char buf[128];
    size_t got = 0, n;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    SSL *ssl = NULL;

    if (fd < 0) {
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) != 0) {
        close(fd);
        return -1;
    }
    if (tls != NULL) {
        ssl = SSL_new(tls);
        if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1 ||
            SSL_write_ex(ssl, "version\r\n", 9, &n) != 1) {
            SSL_free(ssl);
            close(fd);
            return -1;
        }
    } else if (write(fd, "version\r\n", 9) != 9) {
        close(fd);
        return -1;
    }
    *sslp = ssl;
    while (got < sizeof(buf)) {
        if (ssl != NULL) {
            if (SSL_read_ex(ssl, buf + got, sizeof(buf) - got, &n) != 1) {
                n = 0;
            }
        } else {
            ssize_t r = read(fd, buf + got, sizeof(buf) - got);

            n = r > 0 ? (size_t)r : 0;
        }
        if (n == 0) {
            SSL_free(ssl);
            close(fd);
            return -1;
        }
        got += n;
        if (buf[got - 1] == '\n') {
            break;
        }
    }
    if (got < 9 || memcmp(buf, "VERSION ", 8) != 0) {
        SSL_free(ssl);
        close(fd);
        return -1;
    }
    return fd;
}

int
main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    struct rlimit rl;
    int pid, *fds;
    SSL **ssls;
    long n = 19000, fds0, rss0, rss1, open = 0, failed = 0;
    double t0, t1, worst = 0;

    if (argc > 1 && strcmp(argv[1], "-s") == 0) {
        signal(SIGPIPE, SIG_IGN);
        if ((tls = SSL_CTX_new(TLS_client_method())) == NULL) {
            return 1;
        }
        SSL_CTX_set_verify(tls, SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_mode(tls, SSL_MODE_RELEASE_BUFFERS);
        argc--;
        argv++;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: idle [-s] PORT RIVEN_PID [N [HOLD_MS]]\n");
        return 2;
    }
    sa.sin_port = htons((uint16_t)atoi(argv[1]));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pid = atoi(argv[2]);
    if (argc > 3) {
        n = atol(argv[3]);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    printf("idle: open-file limit %ld\n", (long)rl.rlim_cur);
    if ((long)rl.rlim_cur - 64 < n) {
        n = (long)rl.rlim_cur - 64;
        printf("idle: scaling down to %ld connections\n", n);
    }
    fds = calloc((size_t)n, sizeof(*fds));
    ssls = calloc((size_t)n, sizeof(*ssls));
    rss0 = rss_kib(pid);
    fds0 = count_fds(pid);
    t0 = now_ms();
    for (long i = 0; i < n; i++) {
        double a = now_ms();

        fds[i] = open_one(&sa, &ssls[i]);
        if (fds[i] < 0) {
            failed++;
            continue;
        }
        open++;
        if (now_ms() - a > worst) {
            worst = now_ms() - a;
        }
    }
    t1 = now_ms();
    rss1 = rss_kib(pid);
    printf("idle: %ld connections held (%ld failed) in %.0f ms, slowest "
           "connect+version %.1f ms\n",
           open, failed, t1 - t0, worst);
    printf("idle: riven RSS %ld KiB before, %ld KiB with them open: %.1f "
           "KiB per connection\n",
           rss0, rss1, open ? (double)(rss1 - rss0) / (double)open : 0.0);
    printf("idle: riven fds %ld before, %ld with them open: %ld backend "
           "sockets\n",
           fds0, count_fds(pid), count_fds(pid) - fds0 - open);
    if (argc > 4) {
        usleep((useconds_t)atol(argv[4]) * 1000);
    }
    for (long i = 0; i < n; i++) {
        if (fds[i] >= 0) {
            SSL_free(ssls[i]);
            close(fds[i]);
        }
    }
    free(fds);
    free(ssls);
    return failed == 0 ? 0 : 1;
}
