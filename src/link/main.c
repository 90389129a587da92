/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - qkd-link: the QKD link simulator.  Stands in for a pair of QKD
 * devices: random key blocks at a configured secret-key rate, identical
 * copies into the two KMEs of the link (docs/link.md).
 *
 * Start-up is strict: options, configuration (validated completely),
 * process hardening (no core dumps: they would hold key blocks), then the
 * feeder loop.  SIGTERM or SIGINT ends the loop after the block in flight;
 * what both KMEs stored is confirmed before the process exits.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/secret.h"
#include "link/config.h"
#include "link/feeder.h"

enum { EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_RUNTIME = 4 };

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
        "usage: qkd-link --config FILE [--check]\n"
        "\n"
        "QKD link simulator: produces random key blocks at a secret-key rate and\n"
        "feeds identical copies to the link intake of two KMEs over HTTPS with\n"
        "mutual TLS (docs/link.md).\n"
        "\n"
        "  -c, --config FILE  configuration file\n"
        "      --check        validate the configuration and exit\n"
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
    log_info("link %s: %s (side A) <-> %s (side B), %.3f Mbit/s in blocks of %lld bytes, owners A:B = %u:%u",
             cfg->id, cfg->kme[0].id, cfg->kme[1].id, (double)cfg->rate_bps / 1e6,
             (long long)cfg->block_bytes, cfg->ratio_a, cfg->ratio_b);
    feeder_run(f, &stop_requested);
    feeder_free(f);
    curl_global_cleanup();
    return 0;
}

static int parse_args(int argc, char **argv, const char **config_path, int *check_only)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", no_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': *config_path = optarg; break;
        case 'k': *check_only = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("qkd-link %s\n", QUMAILC_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc || !*config_path) {
        fprintf(stderr, "qkd-link: %s\n", optind != argc ? "unexpected argument" : "--config FILE is required");
        usage(stderr);
        return EXIT_USAGE;
    }
    return -1; /* go on */
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int check_only = 0;
    log_init("qkd-link", LOG_INFO);
    int rc = parse_args(argc, argv, &config_path, &check_only);
    if (rc >= 0)
        return rc;
    link_config cfg;
    char err[1024];
    if (link_config_load(config_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "qkd-link: configuration error: %s\n", err);
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
