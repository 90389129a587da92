/* SPDX-License-Identifier: Apache-2.0 */
/*
 * main.c - qkd-kme: the Key Management Entity daemon.
 *
 * Start-up is strict and in this order: options, configuration (validated
 * completely), process hardening (no core dumps: they would hold keys), the
 * key store, then the listener.  The daemon then waits for SIGTERM or SIGINT
 * and shuts down in reverse order; every request answered before that was
 * already durable, so a SIGKILL instead loses nothing either.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/log.h"
#include "common/monotime.h"
#include "common/sdnotify.h"
#include "common/secret.h"
#include "kme/admin.h"
#include "kme/api.h"
#include "kme/config.h"
#include "kme/crl.h"
#include "kme/events.h"
#include "kme/link_intake.h"
#include "kme/link_state.h"
#include "kme/netmap.h"
#include "kme/listener.h"
#include "kme/metrics.h"
#include "kme/peer.h"
#include "kme/pool_watch.h"
#include "kme/request.h"
#include "kme/keystore.h"

enum { EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_RUNTIME = 4 };

static void usage(FILE *out)
{
    fprintf(out,
        "usage: qkd-kme --config FILE [--check]\n"
        "\n"
        "ETSI GS QKD 014 Key Management Entity: serves keys to SAEs over HTTPS\n"
        "with mutual TLS.\n"
        "\n"
        "  -c, --config FILE  configuration file (see etc/kme.conf.example)\n"
        "      --check        validate the configuration and exit\n"
        "  -h, --help         show this help\n"
        "  -V, --version      show the version\n"
        "\n"
        "Exit status: 0 ok, 2 usage, 3 configuration, 4 start-up or runtime failure.\n");
}

static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%u\n", port) > 0;
    ok = (fclose(f) == 0) && ok;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

/* The SAE CA's CRL ([sae_api] crl), NULL without one; SIGHUP re-reads it. */
static crl_store *sae_crl;

/* Load the CRL at start (also for --check): a CRL that is not the SAE
 * CA's, badly signed or expired stops the KME. */
static int open_crl(const kme_config *cfg)
{
    char err[512];
    if (!cfg->crl)
        return 0;
    sae_crl = crl_store_open(cfg->ca, cfg->crl, err, sizeof err);
    if (!sae_crl) {
        log_error("%s: [sae_api] crl %s: %s", cfg->path, cfg->crl, err);
        return -1;
    }
    return 0;
}

/* SIGHUP: the new CRL, or the old one stays in force and the log says why. */
static void reload_crl(const kme_config *cfg)
{
    char err[512];
    size_t revoked = 0;
    if (!sae_crl)
        log_info("SIGHUP: no [sae_api] crl is configured; nothing to re-read");
    else if (crl_store_reload(sae_crl, &revoked, err, sizeof err) == 0)
        log_info("SIGHUP: CRL %s re-read: %zu certificates revoked", cfg->crl, revoked);
    else
        log_error("SIGHUP: CRL %s refused, the previous one stays in force "
                  "(%zu certificates revoked): %s", cfg->crl, revoked, err);
}

/* Wait for SIGTERM or SIGINT, serving SIGHUPs meanwhile (the CRL, and
 * the audit log reopened for log rotation).  Under a systemd watchdog
 * ($WATCHDOG_USEC) this loop pings WATCHDOG=1 at half the interval: a main
 * thread stuck anywhere stops the pings and systemd restarts the KME. */
static int wait_for_stop_signal(const kme_config *cfg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    uint64_t wd_us = sdnotify_watchdog_usec();
    int64_t ping_ms = wd_us ? (int64_t)(wd_us / 2000) : 0;
    if (wd_us && ping_ms < 1)
        ping_ms = 1;
    int64_t next_ping = mono_ms();
    for (;;) {
        int sig;
        if (ping_ms) {
            if (mono_ms() >= next_ping) {
                sdnotify_send("WATCHDOG=1");
                next_ping = mono_ms() + ping_ms;
            }
            int64_t wait = next_ping - mono_ms();
            struct timespec ts = { .tv_sec = wait / 1000, .tv_nsec = (wait % 1000) * 1000000L };
            sig = sigtimedwait(&set, NULL, &ts);
            if (sig < 0)
                continue; /* EAGAIN: time to ping; EINTR */
        } else if (sigwait(&set, &sig) != 0) {
            continue;
        }
        if (sig != SIGHUP)
            return sig;
        reload_crl(cfg);
        events_reopen();
        sdnotify_send("STATUS=SIGHUP served: CRL and audit log reopened");
    }
}

/* The security event writer, its audit log and alert command (events.h);
 * started after the signals are blocked, so that its thread (and the
 * commands it spawns, which reset the mask) never takes them.  0, or -1
 * (logged). */
static int start_events(const kme_config *cfg)
{
    char err[600];
    events_options eo = {
        .kme_id = cfg->id, .audit_log = cfg->audit_log, .alert_command = cfg->alert_command,
        .alert_timeout_s = cfg->alert_timeout_s, .alert_interval_s = cfg->alert_interval_s,
    };
    if (events_start(&eo, err, sizeof err) != 0) {
        log_error("%s: [kme] audit_log: %s", cfg->path, err);
        return -1;
    }
    if (cfg->audit_log)
        log_info("audit log of security events: %s", cfg->audit_log);
    if (cfg->alert_command)
        log_info("alert command for alarms: %s (at most one per kind and peer per %u s, "
                 "killed after %u s)", cfg->alert_command, cfg->alert_interval_s,
                 cfg->alert_timeout_s);
    return 0;
}

/*
 * File descriptors: the soft RLIMIT_NOFILE is raised to the hard limit,
 * and what it allows, less a reserve, is shared out as the listeners'
 * connection limits (the SAE API half, the peer and link listeners a
 * quarter each).  The reserve covers the database and its WAL, logs, the
 * listeners' sockets and per-thread wake-up descriptors, and the peer
 * client's up to 32 connections per peer, so that a full listener never
 * makes the KME fail to open anything else.
 */
#define FD_RESERVE_BASE 64
#define FD_PER_THREAD 2
#define FD_PER_PEER 40
#define MAX_CONNECTIONS_CAP 65536 /* memory: each holds a TLS session and buffers */

static rlim_t raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit want = { .rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max };
        if (rl.rlim_max == RLIM_INFINITY)
            want.rlim_cur = 1u << 20;
        if (setrlimit(RLIMIT_NOFILE, &want) == 0)
            rl.rlim_cur = want.rlim_cur;
        else
            log_warn("cannot raise the open file limit from %llu to %llu: %s",
                     (unsigned long long)rl.rlim_cur, (unsigned long long)want.rlim_cur,
                     strerror(errno));
    }
    return rl.rlim_cur;
}

static unsigned share_of(rlim_t available, unsigned parts_of_4)
{
    rlim_t n = available / 4 * parts_of_4;
    if (n > MAX_CONNECTIONS_CAP)
        n = MAX_CONNECTIONS_CAP;
    return n < 16 ? 16 : (unsigned)n;
}

static void set_connection_limits(kme_config *cfg)
{
    rlim_t nofile = raise_nofile_limit();
    rlim_t reserve = FD_RESERVE_BASE
        + (rlim_t)FD_PER_THREAD * (cfg->threads + (cfg->has_peer_api ? cfg->peer_threads : 0) + 1)
        + (rlim_t)FD_PER_PEER * cfg->n_peers;
    rlim_t available = nofile > reserve ? nofile - reserve : 0;
    bool others = cfg->has_peer_api || cfg->has_link;
    cfg->sae_max_connections = share_of(available, others ? 2 : 4);
    cfg->peer_max_connections = share_of(available, 1);
    cfg->link_max_connections = share_of(available, 1);
    log_info("open file limit %llu: at most %u connections to the SAE API%s",
             (unsigned long long)nofile, cfg->sae_max_connections,
             others ? ", a quarter of the rest each to the peer and link listeners" : "");
}

/* The KME-to-KME channel ([peer_api]): listener, client pools, void
 * replay.  Started before the SAE API so that no enc_keys can run before
 * the reservations of unknown fate are listed for the replay thread to
 * settle with the peer.  0, or -1 (logged). */
static int start_peer(const kme_config *cfg, keystore *ks, peer_service **out)
{
    char err[512];
    *out = NULL;
    if (!cfg->has_peer_api)
        return 0;
    peer_service *ps = peer_service_start(cfg, ks, err, sizeof err);
    if (!ps) {
        log_error("peer_api: %s", err);
        return -1;
    }
    unsigned port = peer_service_port(ps);
    if (cfg->peer_port_file && write_port_file(cfg->peer_port_file, port) != 0) {
        log_error("cannot write port file %s: %s", cfg->peer_port_file, strerror(errno));
        peer_service_stop(ps);
        return -1;
    }
    log_info("KME %s serving the KME-to-KME channel on https://%s:%u (%zu peers)",
             cfg->id, cfg->peer_listen.host, port, cfg->n_peers);
    *out = ps;
    return 0;
}

/* The QKD links at run time: per cfg->links[i] its intake (the listener's
 * context), listener and link state (QBER reports, read by the ETSI
 * status answer and the admin listener). */
typedef struct link_set {
    size_t n;
    link_intake *intake;
    listener **listeners;
    link_state **states;
} link_set;

static int link_set_init(const kme_config *cfg, keystore *ks, link_set *set)
{
    memset(set, 0, sizeof *set);
    if (!cfg->n_links)
        return 0;
    set->intake = calloc(cfg->n_links, sizeof *set->intake);
    set->listeners = calloc(cfg->n_links, sizeof *set->listeners);
    set->states = calloc(cfg->n_links, sizeof *set->states);
    if (!set->intake || !set->listeners || !set->states)
        return -1;
    set->n = cfg->n_links;
    for (size_t i = 0; i < cfg->n_links; i++) {
        if (!(set->states[i] = link_state_new(cfg->links[i].id)))
            return -1;
        set->intake[i] = (link_intake){ .cfg = cfg, .link = &cfg->links[i], .index = i, .ks = ks,
                                        .state = set->states[i] };
    }
    return 0;
}

static void link_set_stop(link_set *set)
{
    for (size_t i = 0; set->listeners && i < set->n; i++)
        listener_stop(set->listeners[i]);
}

static void link_set_free(link_set *set)
{
    for (size_t i = 0; set->states && i < set->n; i++)
        link_state_free(set->states[i]);
    free(set->intake);
    free(set->listeners);
    free(set->states);
    memset(set, 0, sizeof *set);
}

/* One link's listener: key blocks from its QKD link simulator, the only
 * party it admits (KME CA, CN = the link's ID).  0, or -1 (logged). */
static int start_link_listener(const kme_config *cfg, link_intake *intake, listener **out)
{
    const kme_link *lk = intake->link;
    char err[512];
    listener_spec spec = {
        .name = "link", .host = lk->listen.host, .port = lk->listen.port,
        .cert = cfg->cert, .key = cfg->key, .ca = cfg->peer_ca, .threads = 1,
        .max_body = LINK_MAX_BODY, .identify = link_identify, .handle = link_handle, .ctx = intake,
        .max_connections = cfg->link_max_connections,
        .handshake_timeout_ms = (unsigned)cfg->handshake_timeout_ms,
        .per_ip_limit = lk->per_ip_limit,
        .allow_from = lk->allow.nets, .n_allow_from = lk->allow.n,
    };
    listener *l = listener_start(&spec, err, sizeof err);
    if (!l) {
        log_error("link %s: %s", lk->id, err);
        return -1;
    }
    unsigned port = listener_port(l);
    if (lk->port_file && write_port_file(lk->port_file, port) != 0) {
        log_error("cannot write port file %s: %s", lk->port_file, strerror(errno));
        listener_stop(l);
        return -1;
    }
    log_info("KME %s taking key blocks from link %s (to %s) on https://%s:%u (link side %s)",
             cfg->id, lk->id, lk->peer, lk->listen.host, port,
             lk->side == KME_LINK_SIDE_A ? "A" : "B");
    *out = l;
    return 0;
}

/* Every link's listener.  Started last, so that blocks arrive only at a
 * KME that serves everything else.  0, or -1 (logged). */
static int start_link_listeners(const kme_config *cfg, link_set *set)
{
    for (size_t i = 0; i < set->n; i++)
        if (start_link_listener(cfg, &set->intake[i], &set->listeners[i]) != 0)
            return -1;
    return 0;
}

/* The smallest block_ttl_ms of the links: the key store expires every
 * link's unconfirmed blocks by one period. */
static int64_t min_block_ttl(const kme_config *cfg)
{
    int64_t ttl = 0;
    for (size_t i = 0; i < cfg->n_links; i++)
        if (!ttl || cfg->links[i].block_ttl_ms < ttl)
            ttl = cfg->links[i].block_ttl_ms;
    return ttl;
}

/* The [admin] listener: metrics, health, the status page (admin.h).
 * Started after the others, so that its /health never reports a KME
 * that does not serve yet.  0, or -1 (logged). */
static int start_admin(const kme_config *cfg, keystore *ks, peer_service *peers,
                       link_state *const *links, kme_admin **out)
{
    char err[512];
    *out = NULL;
    if (!cfg->has_admin)
        return 0;
    kme_admin *a = kme_admin_start(cfg, ks, peers, links, err, sizeof err);
    if (!a) {
        log_error("%s: [admin] %s", cfg->path, err);
        return -1;
    }
    unsigned port = kme_admin_port(a);
    if (cfg->admin_port_file && write_port_file(cfg->admin_port_file, port) != 0) {
        log_error("cannot write port file %s: %s", cfg->admin_port_file, strerror(errno));
        kme_admin_stop(a);
        return -1;
    }
    bool v6 = strchr(cfg->admin_listen.host, ':') != NULL;
    log_info("KME %s: metrics, health and status page on %s://%s%s%s:%u/", cfg->id,
             cfg->admin_cert ? "https" : "http", v6 ? "[" : "", cfg->admin_listen.host,
             v6 ? "]" : "", port);
    *out = a;
    return 0;
}

static int run(const kme_config *cfg, link_set *links)
{
    char err[512];
    ks_options ko = {
        .path = cfg->database,
        .sync = cfg->sync,
        .local_cap_bits = (uint64_t)cfg->local_pool_bits,
        .local_rate_bps = (uint64_t)cfg->local_rate_bps,
        .key_ttl_s = cfg->key_ttl,
        .maintenance_ms = (unsigned)cfg->maintenance_ms,
        .link_block_ttl_ms = min_block_ttl(cfg),
        .slave_unfetched_bits = (uint64_t)cfg->sae_unfetched_bits,
        /* a file from before several links had one: the single [link]'s */
        .migrate_link_peer = cfg->n_links == 1 ? cfg->links[0].peer : NULL,
    };
    keystore *ks = ks_open(&ko, err, sizeof err);
    if (!ks) {
        log_error("key store %s: %s", cfg->database, err);
        return EXIT_RUNTIME;
    }
    for (size_t i = 0; i < links->n; i++)
        links->intake[i].ks = ks;
    kme_api api = { .cfg = cfg, .ks = ks, .links = links->states };
    if (api_init(&api) != 0) {
        ks_close(ks);
        return EXIT_RUNTIME;
    }
    pool_watch *pools = pool_watch_start(cfg, ks);
    if (start_peer(cfg, ks, &api.peers) != 0) {
        api_free(&api);
        ks_close(ks);
        return EXIT_RUNTIME;
    }
    listener_spec sae_api = {
        .name = "sae_api", .host = cfg->listen_host, .port = cfg->listen_port,
        .cert = cfg->cert, .key = cfg->key, .ca = cfg->ca, .threads = cfg->threads,
        .max_body = KME_MAX_BODY, .identify = api_identify, .handle = api_handle, .ctx = &api,
        .refused = api_refused,
        .max_connections = cfg->sae_max_connections,
        .handshake_timeout_ms = (unsigned)cfg->handshake_timeout_ms,
        .per_ip_limit = cfg->sae_per_ip_limit,
        .crl = sae_crl,
    };
    listener *http = listener_start(&sae_api, err, sizeof err);
    if (!http) {
        log_error("%s", err);
        peer_service_stop(api.peers);
        api_free(&api);
        ks_close(ks);
        return EXIT_RUNTIME;
    }
    unsigned port = listener_port(http);
    if (cfg->port_file && write_port_file(cfg->port_file, port) != 0) {
        log_error("cannot write port file %s: %s", cfg->port_file, strerror(errno));
        listener_stop(http);
        peer_service_stop(api.peers);
        api_free(&api);
        ks_close(ks);
        return EXIT_RUNTIME;
    }
    log_info("KME %s serving ETSI GS QKD 014 on https://%s:%u (%zu local SAEs, sync=%s)",
             cfg->id, cfg->listen_host, port, cfg->n_local_saes,
             cfg->sync == KS_SYNC_FULL ? "full" : "normal");
    int rc = start_link_listeners(cfg, links) == 0 ? 0 : EXIT_RUNTIME;
    kme_admin *admin = NULL;
    if (rc == 0 && start_admin(cfg, ks, api.peers, links->states, &admin) != 0)
        rc = EXIT_RUNTIME;
    if (rc == 0) {
        /* every listener is bound and accepting: systemd may start what
         * depends on this KME */
        sdnotify_sendf("READY=1\nSTATUS=KME %s serving on %s:%u", cfg->id, cfg->listen_host, port);
        int sig = wait_for_stop_signal(cfg);
        log_info("signal %d: shutting down", sig);
        sdnotify_send("STOPPING=1\nSTATUS=shutting down");
    }
    kme_admin_stop(admin);
    pool_watch_stop(pools);
    link_set_stop(links);
    listener_stop(http);
    peer_service_stop(api.peers);
    api_free(&api);
    ks_close(ks);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check", no_argument, NULL, 'k' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = NULL;
    int check_only = 0, c;
    log_init("qkd-kme", LOG_INFO);
    while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'k': check_only = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("qkd-kme %s\n", QUMAILC_VERSION); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc || !config_path) {
        fprintf(stderr, "qkd-kme: %s\n", optind != argc ? "unexpected argument" : "--config FILE is required");
        usage(stderr);
        return EXIT_USAGE;
    }
    kme_config cfg;
    char err[512];
    if (kme_config_load(config_path, &cfg, err, sizeof err) != 0) {
        fprintf(stderr, "qkd-kme: configuration error: %s\n", err);
        return EXIT_CONFIG;
    }
    if (open_crl(&cfg) != 0) {
        kme_config_free(&cfg);
        return EXIT_CONFIG;
    }
    if (check_only) {
        printf("%s: configuration OK (KME %s, %zu local SAEs", config_path, cfg.id, cfg.n_local_saes);
        if (cfg.n_links)
            printf(", %zu QKD link%s", cfg.n_links, cfg.n_links == 1 ? "" : "s");
        if (cfg.map)
            printf(", network map version %lld: %zu KMEs, %zu links", (long long)cfg.map->version,
                   cfg.map->n_kmes, cfg.map->n_links);
        printf(")\n");
        crl_store_free(sae_crl);
        kme_config_free(&cfg);
        return 0;
    }
    log_set_level(cfg.log_level);
    /* Block the stop signals in every thread; main() waits for them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (secret_process_init() != 0) {
        log_error("cannot initialise libsodium");
        crl_store_free(sae_crl);
        kme_config_free(&cfg);
        return EXIT_RUNTIME;
    }
    set_connection_limits(&cfg);
    if (start_events(&cfg) != 0) {
        crl_store_free(sae_crl);
        kme_config_free(&cfg);
        return EXIT_CONFIG;
    }
    link_set links;
    if (link_set_init(&cfg, NULL, &links) != 0) {
        log_error("out of memory");
        link_set_free(&links);
        crl_store_free(sae_crl);
        kme_config_free(&cfg);
        return EXIT_RUNTIME;
    }
    int rc = run(&cfg, &links);
    link_set_free(&links);
    events_stop();
    crl_store_free(sae_crl);
    kme_config_free(&cfg);
    return rc;
}
