/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qumail_e2e_bench.c - end-to-end time of one QuMail message, keys included:
 * the sender encrypts (enc_keys at its KME, seal, MIME) and the recipient
 * decrypts (MIME, dec_keys at its KME, used-key record, verify, open), as
 * `qumail encrypt` and `qumail decrypt` do, but in one process so that the
 * numbers show the library and the KMEs, not process start-up.
 *
 *   qumail_e2e_bench --from CONFIG --to CONFIG [--runs N] [--size BYTES]
 *                    [--level 1|2|4] [--warmup N] [--new-connections] [--trace]
 *
 * The two configs are qumail user configurations (the testbed writes
 * QUMAIL_CONFIG_A1 and QUMAIL_CONFIG_B1); the recipient's used keys go to a
 * temporary database, never to its real store.  Every run checks that the
 * decrypted bytes equal the original.  By default each side keeps its TLS
 * connection to its KME across runs (a long-running mail client);
 * --new-connections makes a new client per side per run, timed, as each
 * `qumail` process does (one TLS handshake with mutual authentication more
 * per side).  Prints percentiles of the encrypt,
 * decrypt and total times; --trace shows the library's narration of each
 * run with timestamps (where the time goes).  bench/run-qumail-bench drives it on a testbed.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qkd014.h"
#include "common/secret.h"
#include "mail/config.h"
#include "mail/message.h"
#include "mail/usedkeys.h"

typedef struct party {
    qm_config cfg;
    qkd014_options opt;    /* to connect afresh (--new-connections) */
    qkd014_client *kme;
    qm_usedkeys *used;
    qm_self me;
} party;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* --trace: the library's narration, stamped with ms since the run began. */
static double trace_t0;
static void trace_line(void *arg, const char *line)
{
    fprintf(stderr, "  %8.2f ms  %s: %s\n", now_ms() - trace_t0, (const char *)arg, line);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

static void report(const char *what, double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    printf("  %-8s mean %7.2f ms  p50 %7.2f  p90 %7.2f  p99 %7.2f  max %7.2f\n", what,
           sum / (double)n, pct(v, n, 50), pct(v, n, 90), pct(v, n, 99), v[n - 1]);
}

static int party_open(party *p, const char *conf, const char *used_db)
{
    char err[1200];
    if (qm_config_load(conf, &p->cfg, err, sizeof err) != QM_OK) {
        fprintf(stderr, "qumail_e2e_bench: %s\n", err);
        return -1;
    }
    p->opt = (qkd014_options){ .version = QKD014_OPTIONS_VERSION,
                               .kme_url = p->cfg.kme_url, .cert_file = p->cfg.kme_cert,
                               .key_file = p->cfg.kme_key, .ca_file = p->cfg.kme_ca,
                               .expected_kme_id = p->cfg.kme_id };
    if (qkd014_client_new(&p->opt, &p->kme) != QKD014_OK) {
        fprintf(stderr, "qumail_e2e_bench: %s: cannot make a KME client\n", conf);
        return -1;
    }
    if (used_db && qm_usedkeys_open(used_db, &p->used) != QM_OK) {
        fprintf(stderr, "qumail_e2e_bench: cannot open %s\n", used_db);
        return -1;
    }
    p->me = (qm_self){ .kme = p->kme, .sae_id = p->cfg.sae_id, .address = p->cfg.address,
                       .used = p->used };
    return 0;
}

static void party_close(party *p)
{
    if (p->used)
        qm_usedkeys_close(p->used);
    if (p->kme)
        qkd014_client_free(p->kme);
    qm_config_free(&p->cfg);
}

/* --new-connections: a new KME client (TLS handshake on its first call),
 * as each `qumail` process has. */
static bool fresh_connections;

static int reconnect(party *p)
{
    if (!fresh_connections)
        return 0;
    qkd014_client_free(p->kme);
    p->kme = NULL;
    if (qkd014_client_new(&p->opt, &p->kme) != QKD014_OK)
        return -1;
    p->me.kme = p->kme;
    return 0;
}

/* One message there and back; times in ms into enc and dec. */
static int one_run(party *a, party *b, const qm_peer *to, int level, const uint8_t *msg,
                   size_t len, double *enc, double *dec)
{
    uint8_t *outer = NULL, *inner = NULL;
    size_t outer_len = 0, inner_len = 0;
    int got_level = 0;
    double t0 = now_ms();
    trace_t0 = t0;
    if (reconnect(a) != 0)
        return -1;
    qm_err rc = qm_encrypt(&a->me, level, to, 1, msg, len, &outer, &outer_len);
    double t1 = now_ms();
    if (rc != QM_OK) {
        fprintf(stderr, "encrypt: %s: %s\n", qm_strerror(rc), a->me.detail);
        return -1;
    }
    if (reconnect(b) != 0)
        return -1;
    rc = qm_decrypt(&b->me, outer, outer_len, &inner, &inner_len, &got_level);
    double t2 = now_ms();
    free(outer);
    if (rc != QM_OK) {
        fprintf(stderr, "decrypt: %s: %s\n", qm_strerror(rc), b->me.detail);
        return -1;
    }
    int same = inner_len == len && memcmp(inner, msg, len) == 0 && got_level == level;
    secret_wipe(inner, inner_len);
    free(inner);
    if (!same) {
        fprintf(stderr, "decrypted message differs from the original\n");
        return -1;
    }
    *enc = t1 - t0;
    *dec = t2 - t1;
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: qumail_e2e_bench --from CONFIG --to CONFIG [--runs N] "
            "[--size BYTES] [--level 1|2|4] [--warmup N] [--new-connections] [--trace]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *from = NULL, *to_conf = NULL;
    long runs = 200, size = 100 * 1024, level = 1, warmup = 5;
    bool trace = false;
    static const struct option opts[] = {
        { "from", required_argument, NULL, 'f' }, { "to", required_argument, NULL, 't' },
        { "runs", required_argument, NULL, 'r' }, { "size", required_argument, NULL, 's' },
        { "level", required_argument, NULL, 'l' }, { "warmup", required_argument, NULL, 'w' },
        { "trace", no_argument, NULL, 'T' },
        { "new-connections", no_argument, NULL, 'N' },
        { NULL, 0, NULL, 0 },
    };
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'f') from = optarg;
        else if (o == 't') to_conf = optarg;
        else if (o == 'r') runs = atol(optarg);
        else if (o == 's') size = atol(optarg);
        else if (o == 'l') level = atol(optarg);
        else if (o == 'w') warmup = atol(optarg);
        else if (o == 'T') trace = true;
        else if (o == 'N') fresh_connections = true;
        else return usage();
    }
    if (!from || !to_conf || runs < 1 || size < 0 || warmup < 0 ||
        (level != 1 && level != 2 && level != 4))
        return usage();
    if (secret_process_init() != 0 || qkd014_global_init() != QKD014_OK)
        return 1;

    char used_db[] = "/tmp/qumail-e2e-bench.XXXXXX";
    int fd = mkstemp(used_db);
    if (fd < 0)
        return 1;
    close(fd);
    unlink(used_db); /* the store creates it */
    party a = {0}, b = {0};
    int rc = 1;
    uint8_t *msg = malloc((size_t)size + 1);
    double *enc = calloc((size_t)runs, sizeof *enc), *dec = calloc((size_t)runs, sizeof *dec);
    double *tot = calloc((size_t)runs, sizeof *tot);
    if (!msg || !enc || !dec || !tot || party_open(&a, from, NULL) != 0 ||
        party_open(&b, to_conf, used_db) != 0)
        goto out;
    secret_random(msg, (size_t)size);
    if (trace) {
        a.me.trace = b.me.trace = trace_line;
        a.me.trace_arg = "sender";
        b.me.trace_arg = "recipient";
    }
    const qm_contact *ct = qm_config_contact(&a.cfg, b.cfg.address);
    qm_peer peer = { b.cfg.address, b.cfg.sae_id, ct ? ct->kme_id : NULL };

    printf("QuMail end to end: Level %ld, %ld-byte message, %s (%s) -> %s (%s), %ld runs "
           "(+%ld warm-up), keys fetched every run, %s\n", level, size, a.cfg.address,
           a.cfg.sae_id, b.cfg.address, b.cfg.sae_id, runs, warmup,
           fresh_connections ? "a new TLS connection per side per run" :
                               "each side's TLS connection kept");
    double e, d;
    for (long i = 0; i < warmup; i++)
        if (one_run(&a, &b, &peer, (int)level, msg, (size_t)size, &e, &d) != 0)
            goto out;
    double t0 = now_ms();
    for (long i = 0; i < runs; i++) {
        if (one_run(&a, &b, &peer, (int)level, msg, (size_t)size, &enc[i], &dec[i]) != 0)
            goto out;
        tot[i] = enc[i] + dec[i];
    }
    double wall = now_ms() - t0;
    report("encrypt", enc, (size_t)runs);
    report("decrypt", dec, (size_t)runs);
    report("total", tot, (size_t)runs);
    printf("  %.0f messages/s end to end (one at a time)\n", (double)runs / (wall / 1e3));
    rc = 0;
out:
    party_close(&a);
    party_close(&b);
    for (const char *const *sfx = (const char *const[]){ "", "-wal", "-shm", "-journal", NULL };
         *sfx; sfx++) {
        char f[64];
        snprintf(f, sizeof f, "%s%s", used_db, *sfx);
        unlink(f);
    }
    free(msg);
    free(enc);
    free(dec);
    free(tot);
    qkd014_global_cleanup();
    return rc;
}
