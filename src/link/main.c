/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - qkd-link: the QKD link simulator.  Stands in for a pair of QKD
 * devices: random key blocks at a configured secret-key rate, identical
 * copies into the two KMEs of the link (docs/link.md).
 *
 * Start-up is strict: options, configuration (validated completely),
 * process hardening (no core dumps: they would hold key blocks), then the
 * feeder loop.  SIGTERM or SIGINT ends the loop after the block in flight;
 * what both KMEs stored is confirmed before the process exits.  SIGHUP
 * re-reads the file and applies its [physics] keys (feeder.h).
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/sdnotify.h"
#include "common/secret.h"
#include "link/admin.h"
#include "link/config.h"
#include "link/feeder.h"
#include "link/model.h"

enum { EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_RUNTIME = 4 };

static volatile sig_atomic_t stop_requested, reload_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void on_hup(int sig)
{
    (void)sig;
    reload_requested = 1;
}

/* systemd's watchdog ($WATCHDOG_USEC): WATCHDOG=1 at half the interval
 * from a thread of its own (the feeder's loop is the main thread), with
 * the stop signals blocked so that they reach the feeder. */
static void *watchdog_main(void *arg)
{
    uint64_t half_us = *(uint64_t *)arg / 2;
    sigset_t set;
    sigfillset(&set);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct timespec ts = { .tv_sec = (time_t)(half_us / 1000000),
                           .tv_nsec = (long)(half_us % 1000000) * 1000L };
    while (!stop_requested) {
        sdnotify_send("WATCHDOG=1");
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void start_watchdog(void)
{
    static uint64_t usec;
    static pthread_t thread;
    usec = sdnotify_watchdog_usec();
    if (usec && pthread_create(&thread, NULL, watchdog_main, &usec) == 0)
        pthread_detach(thread);
}

static void usage(FILE *out)
{
    fprintf(out,
        "usage: qkd-link --config FILE [--check]\n"
        "       qkd-link --config FILE --table [--distances KM,KM,...]\n"
        "\n"
        "QKD link simulator: produces random key blocks at a secret-key rate and\n"
        "feeds identical copies to the link intake of two KMEs over HTTPS with\n"
        "mutual TLS (docs/link.md).\n"
        "\n"
        "  -c, --config FILE  configuration file\n"
        "      --check        validate the configuration and exit\n"
        "      --table        print the [physics] model's QBER and key rate per\n"
        "                     distance (physical, time_scale 1) and exit; needs\n"
        "                     only the [physics] keys\n"
        "      --distances L  comma-separated distances in km for --table\n"
        "                     (default 0,25,50,75,100,120,140,150)\n"
        "  -h, --help         show this help\n"
        "  -V, --version      show the version\n"
        "\n"
        "Exit status: 0 ok, 2 usage, 3 configuration, 4 start-up or runtime failure.\n");
}

/* No SA_RESTART: a signal cuts the loop's sleeps short. */
static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static int run(const link_config *cfg)
{
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("cannot initialise libcurl");
        return EXIT_RUNTIME;
    }
    feeder *f = feeder_new(cfg);
    if (!f) {
        log_error("cannot set up the connections to the KMEs (out of memory or libcurl)");
        curl_global_cleanup();
        return EXIT_RUNTIME;
    }
    link_admin *admin = NULL;
    char err[512];
    if (link_admin_start(cfg, &admin, err, sizeof err) != 0) {
        log_error("%s: %s", cfg->path, err);
        feeder_free(f);
        curl_global_cleanup();
        return EXIT_RUNTIME;
    }
    if (admin)
        log_info("link %s: metrics on http://%s/metrics (port %u)", cfg->id, cfg->admin_listen,
                 (unsigned)link_admin_port(admin));
    log_info("link %s: %s (side A) <-> %s (side B), %.3f Mbit/s in blocks of %lld bytes, owners A:B = %u:%u",
             cfg->id, cfg->kme[0].id, cfg->kme[1].id, (double)cfg->rate_bps / 1e6,
             (long long)cfg->block_bytes, cfg->ratio_a, cfg->ratio_b);
    start_watchdog();
    sdnotify_sendf("READY=1\nSTATUS=link %s feeding %s and %s", cfg->id, cfg->kme[0].id, cfg->kme[1].id);
    feeder_run(f, &stop_requested, &reload_requested);
    link_admin_stop(admin);
    feeder_free(f);
    curl_global_cleanup();
    return 0;
}

typedef struct options {
    const char *config_path;
    int check_only, table;
    const char *distances;
} options;

static int parse_args(int argc, char **argv, options *o)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", no_argument, NULL, 'k' },
        { "table", no_argument, NULL, 't' },
        { "distances", required_argument, NULL, 'd' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config_path = optarg; break;
        case 'k': o->check_only = 1; break;
        case 't': o->table = 1; break;
        case 'd': o->distances = optarg; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("qkd-link %s\n", QUMAILC_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    const char *bad = optind != argc ? "unexpected argument"
                    : !o->config_path ? "--config FILE is required"
                    : o->distances && !o->table ? "--distances goes with --table"
                    : o->table && o->check_only ? "--table and --check exclude each other" : NULL;
    if (bad) {
        fprintf(stderr, "qkd-link: %s\n", bad);
        usage(stderr);
        return EXIT_USAGE;
    }
    return -1; /* go on */
}

/* ------------------------------------------------------------ --table */

#define MAX_DISTANCES 1000

/* "0,25,50": plain decimals in 0..1000 km; 0 and *n, or -1 with a
 * message on stderr. */
static int parse_distances(const char *list, double *out, size_t *n)
{
    const char *p = list;
    *n = 0;
    for (;;) {
        size_t len = strcspn(p, ",");
        char word[32];
        char *end = NULL;
        double d = 0;
        bool ok = len > 0 && len < sizeof word && *n < MAX_DISTANCES;
        if (ok) {
            memcpy(word, p, len);
            word[len] = '\0';
            errno = 0;
            d = strtod(word, &end);
            ok = strspn(word, "0123456789.") == len && *end == '\0' && errno == 0
                 && isfinite(d) && d >= 0 && d <= 1000;
        }
        if (!ok) {
            fprintf(stderr, "qkd-link: --distances: '%.*s' is not a distance in km (plain decimals "
                    "in 0..1000, separated by commas, at most %d)\n", (int)(len > 40 ? 40 : len), p,
                    MAX_DISTANCES);
            return -1;
        }
        out[(*n)++] = d;
        if (!p[len])
            return 0;
        p += len + 1;
    }
}

/* %.*f without the trailing zeros: plain decimals for any tool. */
static void print_plain(double v, int decimals, const char *sep)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%.*f", decimals, v);
    if (strchr(buf, '.')) {
        size_t n = strlen(buf);
        while (buf[n - 1] == '0')
            buf[--n] = '\0';
        if (buf[n - 1] == '.')
            buf[--n] = '\0';
    }
    printf("%s%s", buf, sep);
}

static int print_table(const char *path, const char *distances)
{
    static double d[MAX_DISTANCES];
    size_t n = 0;
    char err[1024];
    link_physics ph;
    if (parse_distances(distances ? distances : "0,25,50,75,100,120,140,150", d, &n) != 0)
        return EXIT_USAGE;
    if (link_physics_load(path, &ph, err, sizeof err) != 0) {
        fprintf(stderr, "qkd-link: configuration error: %s\n", err);
        return EXIT_CONFIG;
    }
    printf("distance_km qber secret_key_rate_bps bits_per_pulse mu\n");
    for (size_t i = 0; i < n; i++) {
        model_point m;
        ph.distance_km = d[i];
        model_at(&ph, &m);
        print_plain(d[i], 3, " ");
        print_plain(m.e_mu, 6, " ");
        print_plain(m.secret_key_rate_bps, 3, " ");
        print_plain(m.bits_per_pulse, 15, " ");
        print_plain(m.mu, 4, "\n");
    }
    return fflush(stdout) == 0 ? 0 : EXIT_RUNTIME;
}

int main(int argc, char **argv)
{
    options o = { 0 };
    log_init("qkd-link", LOG_INFO);
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.table)
        return print_table(o.config_path, o.distances);
    const char *config_path = o.config_path;
    int check_only = o.check_only;
    link_config cfg;
    char err[1024];
    if (link_config_load(config_path, &cfg, err, sizeof err) != 0
        || link_admin_check(&cfg, err, sizeof err) != 0) {
        fprintf(stderr, "qkd-link: configuration error: %s\n", err);
        if (cfg.path)
            link_config_free(&cfg);
        return EXIT_CONFIG;
    }
    if (check_only) {
        printf("%s: configuration OK (link %s: %s <-> %s)\n", config_path, cfg.id, cfg.kme[0].id, cfg.kme[1].id);
        link_config_free(&cfg);
        return 0;
    }
    log_set_level(cfg.log_level);
    install_signals();
    if (secret_process_init() != 0) {
        log_error("cannot initialise libsodium");
        link_config_free(&cfg);
        return EXIT_RUNTIME;
    }
    rc = run(&cfg);
    link_config_free(&cfg);
    return rc;
}
