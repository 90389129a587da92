/* SPDX-License-Identifier: Apache-2.0 */
/*
 * kme_bench.c - key-pair throughput and latency of a running qkd-kme.
 *
 * One "pair" is what two SAEs do to share a key: the master calls enc_keys,
 * the slave calls dec_keys with the key ID, and the two keys must be equal.
 * Each client thread holds two keep-alive mTLS connections (master, slave)
 * through libqkd014 and does pairs back to back for a fixed time; the
 * program prints pairs per second and percentiles of the pair latency and of
 * each call.  It reads the KME and the SAE certificates from a testbed.env
 * (scripts/testbed), so it measures exactly what an integrator would get.
 *
 *   kme_bench --env DIR/testbed.env [--clients N] [--seconds S] [--size BITS]
 *             [--master SAE_A1] [--slave SAE_A2] [--kme A|B]
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qkd014.h"

#define MAX_SAMPLES 2000000

typedef struct env_kv {
    char key[64];
    char value[1024];
} env_kv;

typedef struct bench_cfg {
    env_kv env[128];
    size_t n_env;
    const char *master_kme, *slave_kme;      /* KME_A / KME_B prefixes */
    const char *master, *slave;              /* SAE_A1 / SAE_A2 prefixes */
    int clients, seconds, size;
} bench_cfg;

typedef struct worker {
    const bench_cfg *cfg;
    pthread_t thread;
    double *pair_us, *enc_us, *dec_us;
    size_t n, cap;
    unsigned long errors, mismatches;
    char first_error[256];
    volatile int *stop;
} worker;

static const char *env_get(const bench_cfg *c, const char *prefix, const char *suffix)
{
    char k[128];
    snprintf(k, sizeof k, "%s%s", prefix, suffix);
    for (size_t i = 0; i < c->n_env; i++)
        if (strcmp(c->env[i].key, k) == 0)
            return c->env[i].value;
    return NULL;
}

static int load_env(bench_cfg *c, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[1200];
    while (fgets(line, sizeof line, f) && c->n_env < sizeof c->env / sizeof *c->env) {
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#')
            continue;
        *eq = '\0';
        eq[1 + strcspn(eq + 1, "\r\n")] = '\0';
        if (strlen(line) >= sizeof c->env[0].key || strlen(eq + 1) >= sizeof c->env[0].value)
            continue;
        strcpy(c->env[c->n_env].key, line);
        strcpy(c->env[c->n_env].value, eq + 1);
        c->n_env++;
    }
    fclose(f);
    return 0;
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static qkd014_client *connect_sae(const bench_cfg *c, const char *kme, const char *sae)
{
    qkd014_options o = {
        .version = QKD014_OPTIONS_VERSION,
        .kme_url = env_get(c, kme, "_URL"),
        .cert_file = env_get(c, sae, "_CERT"),
        .key_file = env_get(c, sae, "_KEY"),
        .ca_file = env_get(c, "CA_CERT", ""),
    };
    qkd014_client *cl = NULL;
    if (!o.kme_url || !o.cert_file || !o.key_file || !o.ca_file) {
        fprintf(stderr, "kme_bench: testbed.env lacks %s_URL or %s_CERT/_KEY or CA_CERT\n", kme, sae);
        return NULL;
    }
    if (qkd014_client_new(&o, &cl) != QKD014_OK)
        return NULL;
    return cl;
}

static void note_error(worker *w, const char *what, qkd014_client *c, qkd014_code rc)
{
    if (w->errors++ == 0)
        snprintf(w->first_error, sizeof w->first_error, "%s: %s: %s", what,
                 qkd014_strerror(rc), qkd014_errmsg(c));
}

static int record(worker *w, double pair, double enc, double dec)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 65536;
        if (cap > MAX_SAMPLES)
            return -1;
        double *p = realloc(w->pair_us, cap * sizeof *p);
        double *e = p ? realloc(w->enc_us, cap * sizeof *e) : NULL;
        double *d = e ? realloc(w->dec_us, cap * sizeof *d) : NULL;
        if (p) w->pair_us = p;
        if (e) w->enc_us = e;
        if (!d)
            return -1;
        w->dec_us = d;
        w->cap = cap;
    }
    w->pair_us[w->n] = pair;
    w->enc_us[w->n] = enc;
    w->dec_us[w->n] = dec;
    w->n++;
    return 0;
}

static void one_pair(worker *w, qkd014_client *m, qkd014_client *s, const qkd014_key_request *rq)
{
    const bench_cfg *c = w->cfg;
    qkd014_keys *enc = NULL, *dec = NULL;
    double t0 = now_us();
    qkd014_code rc = qkd014_get_key(m, env_get(c, c->slave, "_ID"), rq, &enc);
    double t1 = now_us();
    if (rc != QKD014_OK) {
        note_error(w, "enc_keys", m, rc);
        return;
    }
    const char *id = enc->keys[0].key_id;
    rc = qkd014_get_key_with_ids(s, env_get(c, c->master, "_ID"), &id, 1, &dec);
    double t2 = now_us();
    if (rc != QKD014_OK)
        note_error(w, "dec_keys", s, rc);
    else if (dec->keys[0].key_len != enc->keys[0].key_len
             || memcmp(dec->keys[0].key, enc->keys[0].key, enc->keys[0].key_len) != 0)
        w->mismatches++;
    else if (record(w, t2 - t0, t1 - t0, t2 - t1) != 0)
        *w->stop = 1;
    qkd014_keys_free(enc);
    qkd014_keys_free(dec);
}

static void *run_worker(void *arg)
{
    worker *w = arg;
    const bench_cfg *c = w->cfg;
    qkd014_client *m = connect_sae(c, c->master_kme, c->master);
    qkd014_client *s = connect_sae(c, c->slave_kme, c->slave);
    qkd014_key_request rq = { .version = QKD014_KEY_REQUEST_VERSION, .number = 1, .size = c->size };
    while (m && s && !*w->stop)
        one_pair(w, m, s, c->size ? &rq : NULL);
    if (!m || !s)
        note_error(w, "connect", m ? m : s, QKD014_E_USAGE);
    qkd014_client_free(m);
    qkd014_client_free(s);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(const double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i];
}

static void report(const char *what, double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    printf("  %-5s latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", what,
           pct(v, n, 50) / 1e3, pct(v, n, 90) / 1e3, pct(v, n, 99) / 1e3, n ? v[n - 1] / 1e3 : 0);
}

static double *merge(worker *ws, int nw, size_t total, size_t field)
{
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; all && i < nw; i++) {
        double *src = field == 0 ? ws[i].pair_us : field == 1 ? ws[i].enc_us : ws[i].dec_us;
        memcpy(all + k, src, ws[i].n * sizeof *all);
        k += ws[i].n;
    }
    return all;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: kme_bench --env FILE [--clients N] [--seconds S] [--size BITS]\n"
                 "                 [--master SAE_A1] [--slave SAE_A2] [--master-kme KME_A] [--slave-kme KME_A]\n");
}

int main(int argc, char **argv)
{
    static bench_cfg cfg = { .master_kme = "KME_A", .slave_kme = "KME_A", .master = "SAE_A1",
                             .slave = "SAE_A2", .clients = 1, .seconds = 5, .size = 0 };
    static const struct option opts[] = {
        { "env", required_argument, NULL, 'e' }, { "clients", required_argument, NULL, 'c' },
        { "seconds", required_argument, NULL, 's' }, { "size", required_argument, NULL, 'z' },
        { "master", required_argument, NULL, 'm' }, { "slave", required_argument, NULL, 'l' },
        { "master-kme", required_argument, NULL, 'M' }, { "slave-kme", required_argument, NULL, 'L' },
        { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 },
    };
    const char *env = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'e': env = optarg; break;
        case 'c': cfg.clients = atoi(optarg); break;
        case 's': cfg.seconds = atoi(optarg); break;
        case 'z': cfg.size = atoi(optarg); break;
        case 'm': cfg.master = optarg; break;
        case 'l': cfg.slave = optarg; break;
        case 'M': cfg.master_kme = optarg; break;
        case 'L': cfg.slave_kme = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!env || cfg.clients < 1 || cfg.clients > 256 || cfg.seconds < 1) {
        usage(stderr);
        return 2;
    }
    if (load_env(&cfg, env) != 0 || qkd014_global_init() != QKD014_OK)
        return 1;
    volatile int stop = 0;
    worker *ws = calloc((size_t)cfg.clients, sizeof *ws);
    for (int i = 0; i < cfg.clients; i++) {
        ws[i].cfg = &cfg;
        ws[i].stop = &stop;
        pthread_create(&ws[i].thread, NULL, run_worker, &ws[i]);
    }
    double t0 = now_us();
    struct timespec d = { .tv_sec = cfg.seconds, .tv_nsec = 0 };
    nanosleep(&d, NULL);
    stop = 1;
    size_t total = 0;
    unsigned long errors = 0, mismatches = 0;
    for (int i = 0; i < cfg.clients; i++) {
        pthread_join(ws[i].thread, NULL);
        total += ws[i].n;
        errors += ws[i].errors;
        mismatches += ws[i].mismatches;
    }
    double secs = (now_us() - t0) / 1e6;
    printf("%d client(s), %d s, key size %d bits: %zu pairs, %.0f pairs/s, %lu errors, %lu mismatches\n",
           cfg.clients, cfg.seconds, cfg.size ? cfg.size : 256, total,
           (double)total / secs, errors, mismatches);
    for (size_t f = 0; f < 3; f++) {
        double *all = merge(ws, cfg.clients, total, f);
        if (all)
            report(f == 0 ? "pair" : f == 1 ? "enc" : "dec", all, total);
        free(all);
    }
    for (int i = 0; i < cfg.clients; i++) {
        if (ws[i].errors)
            fprintf(stderr, "client %d: first error: %s\n", i, ws[i].first_error);
        free(ws[i].pair_us);
        free(ws[i].enc_us);
        free(ws[i].dec_us);
    }
    free(ws);
    qkd014_global_cleanup();
    return errors || mismatches || total == 0 ? 1 : 0;
}
