/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qkd014_bench.c - cost of a libqkd014 call against a running KME, with the
 * kept-alive connection reused versus a new client (new TCP + TLS
 * connection) per call.  One thread; for each call kind (status, enc_keys
 * with one key of the default size) and each mode it runs for a fixed time
 * and prints calls per second, latency percentiles and the client's own CPU
 * time per call (user + system time of this thread: what libqkd014 costs,
 * without the KME's share).
 *
 *   qkd014_bench --env DIR/testbed.env [--seconds S] [--master SAE_A1]
 *                [--slave SAE_A2]
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "qkd014.h"

#define MAX_SAMPLES 4000000

typedef struct cfg {
    char url[512], cert[1024], key[1024], ca[1024];
    const char *slave;
    int seconds;
} cfg;

typedef struct samples {
    double *us;
    size_t n;
    unsigned long errors;
    double cpu_us; /* this thread's user + system time during the run */
    char first_error[256];
} samples;

static double thread_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* Read URL, SAE certificate/key and CA from a testbed.env. */
static int load_env(cfg *c, const char *path, const char *master)
{
    char line[1200], kc[128], kk[128];
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    snprintf(kc, sizeof kc, "%s_CERT=", master);
    snprintf(kk, sizeof kk, "%s_KEY=", master);
    struct { const char *k; char *dst; size_t len; } want[] = {
        { "KME_A_URL=", c->url, sizeof c->url }, { kc, c->cert, sizeof c->cert },
        { kk, c->key, sizeof c->key }, { "CA_CERT=", c->ca, sizeof c->ca },
    };
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        for (size_t i = 0; i < 4; i++)
            if (strncmp(line, want[i].k, strlen(want[i].k)) == 0 &&
                strlen(line + strlen(want[i].k)) < want[i].len)
                memcpy(want[i].dst, line + strlen(want[i].k),
                       strlen(line + strlen(want[i].k)) + 1);
    }
    fclose(f);
    if (!c->url[0] || !c->cert[0] || !c->key[0] || !c->ca[0]) {
        fprintf(stderr, "qkd014_bench: %s lacks KME_A_URL, %s_CERT/_KEY or CA_CERT\n",
                path, master);
        return -1;
    }
    return 0;
}

static qkd014_client *new_client(const cfg *c)
{
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION, .kme_url = c->url, .cert_file = c->cert,
                         .key_file = c->key, .ca_file = c->ca };
    qkd014_client *cl = NULL;
    return qkd014_client_new(&o, &cl) == QKD014_OK ? cl : NULL;
}

/* One call of the given kind on cl. */
static qkd014_code one_call(qkd014_client *cl, const char *slave, bool keys)
{
    if (keys) {
        qkd014_keys *k = NULL;
        qkd014_code rc = qkd014_get_key(cl, slave, NULL, &k);
        qkd014_keys_free(k);
        return rc;
    }
    qkd014_status *s = NULL;
    qkd014_code rc = qkd014_get_status(cl, slave, &s);
    qkd014_status_free(s);
    return rc;
}

static void note(samples *s, qkd014_client *cl, qkd014_code rc)
{
    if (s->errors++ == 0)
        snprintf(s->first_error, sizeof s->first_error, "%s: %s",
                 qkd014_strerror(rc), cl ? qkd014_errmsg(cl) : "cannot create client");
}

/* Run calls for cfg->seconds; reuse: one client, else one per call. */
static void run(const cfg *c, bool keys, bool reuse, samples *s)
{
    double cpu0 = thread_cpu_us();
    qkd014_client *kept = reuse ? new_client(c) : NULL;
    double end = now_us() + c->seconds * 1e6;
    while (s->n < MAX_SAMPLES) {
        double t0 = now_us();
        if (t0 >= end)
            break;
        qkd014_client *cl = reuse ? kept : new_client(c);
        qkd014_code rc = cl ? one_call(cl, c->slave, keys) : QKD014_E_NOMEM;
        if (!reuse)
            qkd014_client_free(cl);
        if (rc != QKD014_OK)
            note(s, cl, rc);
        else
            s->us[s->n++] = now_us() - t0;
    }
    qkd014_client_free(kept);
    s->cpu_us = thread_cpu_us() - cpu0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, const cfg *c, samples *s)
{
    qsort(s->us, s->n, sizeof *s->us, cmp_double);
    double p[4] = { 0 }, q[4] = { 0.50, 0.90, 0.99, 1.0 };
    for (size_t i = 0; i < 4 && s->n > 0; i++) {
        size_t at = (size_t)(q[i] * (double)(s->n - 1));
        p[i] = s->us[at] / 1000.0;
    }
    printf("%-42s %8zu calls %9.0f calls/s  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f ms"
           "  client CPU %.1f us/call  %lu errors\n", what, s->n, (double)s->n / c->seconds,
           p[0], p[1], p[2], p[3], s->n ? s->cpu_us / (double)s->n : 0.0, s->errors);
    if (s->errors > 0)
        printf("  first error: %s\n", s->first_error);
}

static int parse_args(int argc, char **argv, cfg *c)
{
    static const struct option opts[] = {
        { "env", required_argument, NULL, 'e' }, { "seconds", required_argument, NULL, 's' },
        { "master", required_argument, NULL, 'm' }, { "slave", required_argument, NULL, 'l' },
        { NULL, 0, NULL, 0 },
    };
    const char *env = NULL, *master = "SAE_A1";
    int o;
    c->slave = "SAE_A2";
    c->seconds = 3;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'e') env = optarg;
        else if (o == 's') c->seconds = atoi(optarg);
        else if (o == 'm') master = optarg;
        else if (o == 'l') c->slave = optarg;
        else return -1;
    }
    if (env == NULL || c->seconds < 1) {
        fprintf(stderr, "usage: qkd014_bench --env DIR/testbed.env [--seconds S] "
                        "[--master SAE] [--slave SAE]\n");
        return -1;
    }
    return load_env(c, env, master);
}

int main(int argc, char **argv)
{
    cfg c = {0};
    if (parse_args(argc, argv, &c) != 0 || qkd014_global_init() != QKD014_OK)
        return 2;
    samples s = { .us = malloc(MAX_SAMPLES * sizeof(double)) };
    if (s.us == NULL)
        return 1;
    printf("libqkd014 call cost, 1 thread, %d s per run, %s\n", c.seconds, c.url);
    int bad = 0;
    for (int keys = 0; keys < 2; keys++) {
        for (int reuse = 1; reuse >= 0; reuse--) {
            char what[64];
            snprintf(what, sizeof what, "%s, %s", keys ? "enc_keys (1 x 256 bit)" : "status",
                     reuse ? "reused connection" : "new connection");
            s.n = 0;
            s.errors = 0;
            run(&c, keys, reuse, &s);
            report(what, &c, &s);
            bad |= s.errors > 0;
        }
    }
    free(s.us);
    qkd014_global_cleanup();
    return bad;
}
