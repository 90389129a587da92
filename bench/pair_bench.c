/* SPDX-License-Identifier: Apache-2.0 */
/*
 * pair_bench.c - what the QKD link behind two KMEs sustains, and whether the
 * KMEs' link pools stay honest under load (docs/kme-pair.md).
 *
 *   pair_bench rate  --env DIR/testbed.env [--seconds S] [--clients N] [--batch K]
 *   pair_bench pools --env DIR/testbed.env [--seconds S] [--clients N] [--batch K]
 *                    [--testbed scripts/testbed]
 *   pair_bench settle --env DIR/testbed.env
 *
 * Load: N client threads per direction (masters SAE_A1 at KME-A and SAE_B1
 * at KME-B, slaves SAE_B1 and SAE_A1 at the other KME) each ask enc_keys for
 * K 256-bit keys, fetch them with dec_keys at the other KME and compare;
 * a 503 (pool empty) makes the thread wait 2 ms and ask again.
 *
 * rate: drains both directions' pools (until each has answered 503), then
 * counts the keys delivered for S seconds: keys/s and bit/s per direction
 * and in total, against the link's rate (LINK_RATE_BPS).  With a small pool
 * cap (TESTBED_POOL_CAP) the drain is quick.
 *
 * pools: (1) with the link running, a sampler reads GET /link/v1/state of
 * both KMEs (with the link's certificate) every 20 ms during S seconds of
 * load and checks 0 <= own, peer <= cap_bits at each, printing the range
 * seen; (2) with --testbed, it waits until the link idles (pools at their
 * cap), stops it, waits until the pools are quiet and agree (own bits at A == peer bits at B and vice versa), runs S
 * seconds of load, waits again and checks conservation: the bits each
 * owner's pool lost equal the bits of the keys delivered from it, at both
 * KMEs (nothing counted twice, nothing lost); then it restarts the link.
 * settle: waits until the link idles (both pools quiet, consistent, at
 * their cap), so that what follows measures the KMEs and not block intake.
 * Exit status 1 on any violation, mismatch or error.  Key bytes are only
 * compared, never printed.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "qkd014.h"

enum { KA = 0, KB = 1 };

typedef struct env_kv {
    char key[64];
    char value[1024];
} env_kv;

static struct {
    env_kv env[160];
    size_t n_env;
    int clients, seconds, batch;
    const char *testbed, *env_path;
} C = { .clients = 2, .seconds = 5, .batch = 64 };

static const char *env_get(const char *key)
{
    for (size_t i = 0; i < C.n_env; i++)
        if (strcmp(C.env[i].key, key) == 0)
            return C.env[i].value;
    return NULL;
}

static int load_env(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        perror(path);
        return -1;
    }
    char line[1200];
    while (fgets(line, sizeof line, f) && C.n_env < sizeof C.env / sizeof *C.env) {
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#')
            continue;
        *eq = '\0';
        eq[1 + strcspn(eq + 1, "\r\n")] = '\0';
        if (strlen(line) >= sizeof C.env[0].key || strlen(eq + 1) >= sizeof C.env[0].value)
            continue;
        strcpy(C.env[C.n_env].key, line);
        strcpy(C.env[C.n_env].value, eq + 1);
        C.n_env++;
    }
    fclose(f);
    return 0;
}

static const char *need(const char *key)
{
    const char *v = env_get(key);
    if (!v) {
        fprintf(stderr, "pair_bench: %s lacks %s (a pair testbed: scripts/testbed up)\n", C.env_path, key);
        exit(1);
    }
    return v;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec d = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    nanosleep(&d, NULL);
}

/* ------------------------------------------------------------ link state */

typedef struct pool {
    int64_t own, peer, cap;
    size_t unconfirmed;
} pool;

typedef struct buf {
    char *p;
    size_t n;
} buf;

static size_t buf_write(char *data, size_t sz, size_t nm, void *ud)
{
    buf *b = ud;
    size_t n = sz * nm;
    char *p = b->n + n < (1u << 24) ? realloc(b->p, b->n + n + 1) : NULL;
    if (!p)
        return 0;
    memcpy(p + b->n, data, n);
    b->p = p;
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

static int get_i64(json_t *o, const char *k, int64_t *v)
{
    json_t *x = json_object_get(o, k);
    if (!json_is_integer(x))
        return -1;
    *v = (int64_t)json_integer_value(x);
    return 0;
}

/* GET /link/v1/state of KME k with the link certificate; h is kept alive.
 * 0, or -1 with the reason in err. */
static int link_state(CURL *h, int k, pool *out, char *err, size_t errlen)
{
    char url[1200];
    buf b = { 0 };
    snprintf(url, sizeof url, "%s/link/v1/state", need(k == KA ? "KME_A_LINK_URL" : "KME_B_LINK_URL"));
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CAINFO, need("CA_CERT"));
    curl_easy_setopt(h, CURLOPT_SSLCERT, need("LINK_CERT"));
    curl_easy_setopt(h, CURLOPT_SSLKEY, need("LINK_KEY"));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, buf_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    long st = 0;
    CURLcode cc = curl_easy_perform(h);
    if (cc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    json_t *o = st == 200 && b.p ? json_loads(b.p, 0, NULL) : NULL;
    json_t *p = json_object_get(o, "pool");
    int rc = -1;
    if (json_object_get(p, "own_bits")) {
        rc = get_i64(p, "own_bits", &out->own) | get_i64(p, "peer_bits", &out->peer)
           | get_i64(p, "cap_bits", &out->cap);
    } else if (json_is_object(p)) {
        json_t *me = json_object_get(p, k == KA ? "A" : "B"), *ot = json_object_get(p, k == KA ? "B" : "A");
        rc = get_i64(me, "bits", &out->own) | get_i64(ot, "bits", &out->peer) | get_i64(me, "cap_bits", &out->cap);
    }
    out->unconfirmed = json_array_size(json_object_get(o, "unconfirmed"));
    if (rc != 0)
        snprintf(err, errlen, "GET %.300s: %s, HTTP %ld: %.200s", url, curl_easy_strerror(cc), st,
                 b.p ? b.p : "");
    json_decref(o);
    free(b.p);
    return rc != 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ load */

typedef struct loader {
    pthread_t th;
    int mk;
    atomic_int *stop;
    atomic_ullong delivered;      /* keys the master received */
    atomic_ullong empty;          /* 503 answers */
    unsigned long errors, mismatches;
    char first_error[300];
} loader;

static qkd014_client *client_at(int k, const char *sae)
{
    char kc[32], kk[32], ki[32];
    snprintf(kc, sizeof kc, "%s_CERT", sae);
    snprintf(kk, sizeof kk, "%s_KEY", sae);
    snprintf(ki, sizeof ki, "%s_ID", k == KA ? "KME_A" : "KME_B");
    qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                         .kme_url = need(k == KA ? "KME_A_URL" : "KME_B_URL"),
                         .cert_file = need(kc), .key_file = need(kk), .ca_file = need("CA_CERT"),
                         .expected_kme_id = need(ki), .timeout_ms = 20000 };
    qkd014_client *c = NULL;
    return qkd014_client_new(&o, &c) == QKD014_OK ? c : NULL;
}

static void note(loader *l, const char *what, qkd014_client *c, qkd014_code rc)
{
    if (l->errors++ == 0)
        snprintf(l->first_error, sizeof l->first_error, "%s: %s: %s", what, qkd014_strerror(rc),
                 c ? qkd014_errmsg(c) : "no client");
}

static void *load_run(void *arg)
{
    loader *l = arg;
    const char *master = l->mk == KA ? "SAE_A1" : "SAE_B1", *slave = l->mk == KA ? "SAE_B1" : "SAE_A1";
    qkd014_client *m = client_at(l->mk, master), *s = client_at(1 - l->mk, slave);
    qkd014_key_request rq = { .version = QKD014_KEY_REQUEST_VERSION,
                              .number = C.batch, .size = 256 };
    const char **ids = calloc((size_t)C.batch, sizeof *ids);
    if (!m || !s || !ids)
        note(l, "client", m ? s : m, QKD014_E_USAGE);
    while (m && s && ids && !atomic_load(l->stop)) {
        qkd014_keys *enc = NULL, *dec = NULL;
        qkd014_code rc = qkd014_get_key(m, need(l->mk == KA ? "SAE_B1_ID" : "SAE_A1_ID"), &rq, &enc);
        if (rc == QKD014_E_UNAVAILABLE) {
            atomic_fetch_add(&l->empty, 1);
            sleep_ms(2);
            continue;
        }
        if (rc != QKD014_OK) {
            note(l, "enc_keys", m, rc);
            sleep_ms(10);
            continue;
        }
        atomic_fetch_add(&l->delivered, enc->n);
        for (size_t i = 0; i < enc->n; i++)
            ids[i] = enc->keys[i].key_id;
        rc = qkd014_get_key_with_ids(s, need(l->mk == KA ? "SAE_A1_ID" : "SAE_B1_ID"), ids, enc->n, &dec);
        if (rc != QKD014_OK)
            note(l, "dec_keys", s, rc);
        else
            for (size_t i = 0; i < enc->n; i++)
                l->mismatches += dec->keys[i].key_len != enc->keys[i].key_len
                                 || memcmp(dec->keys[i].key, enc->keys[i].key, enc->keys[i].key_len) != 0;
        qkd014_keys_free(enc);
        qkd014_keys_free(dec);
    }
    free(ids);
    qkd014_client_free(m);
    qkd014_client_free(s);
    return NULL;
}

static loader *loaders_start(atomic_int *stop)
{
    int n = 2 * C.clients;
    loader *ls = calloc((size_t)n, sizeof *ls);
    for (int i = 0; ls && i < n; i++) {
        ls[i].mk = i % 2;
        ls[i].stop = stop;
        if (pthread_create(&ls[i].th, NULL, load_run, &ls[i]) != 0) {
            fprintf(stderr, "pair_bench: pthread_create failed\n");
            exit(1);
        }
    }
    return ls;
}

/* Keys delivered per direction (masters at A, at B) and 503s. */
static void totals(loader *ls, unsigned long long dir[2], unsigned long long *empty)
{
    dir[0] = dir[1] = 0;
    *empty = 0;
    for (int i = 0; i < 2 * C.clients; i++) {
        dir[ls[i].mk] += atomic_load(&ls[i].delivered);
        *empty += atomic_load(&ls[i].empty);
    }
}

static unsigned long emptied(loader *ls, int mk)
{
    unsigned long n = 0;
    for (int i = 0; i < 2 * C.clients; i++)
        if (ls[i].mk == mk)
            n += atomic_load(&ls[i].empty);
    return n;
}

/* Join (the caller frees); 0 if no thread saw an error or a mismatch. */
static int loaders_join(loader *ls)
{
    int bad = 0;
    for (int i = 0; i < 2 * C.clients; i++) {
        pthread_join(ls[i].th, NULL);
        if (ls[i].errors || ls[i].mismatches) {
            fprintf(stderr, "  client %d (master at KME-%c): %lu errors, %lu mismatches; first: %s\n", i,
                    ls[i].mk == KA ? 'A' : 'B', ls[i].errors, ls[i].mismatches, ls[i].first_error);
            bad = 1;
        }
    }
    return bad;
}

/* ------------------------------------------------------------------ rate */

static int run_rate(void)
{
    long rate = atol(need("LINK_RATE_BPS"));
    atomic_int stop = 0;
    loader *ls = loaders_start(&stop);
    double t0 = now_s();
    while ((emptied(ls, KA) == 0 || emptied(ls, KB) == 0) && now_s() - t0 < 30)
        sleep_ms(50);
    unsigned long long d0[2], d1[2], e0, e1;
    totals(ls, d0, &e0);
    if (emptied(ls, KA) && emptied(ls, KB))
        printf("link %.1f Mbit/s: pools drained after %.1f s (%llu keys A->B, %llu keys B->A)\n", rate / 1e6,
               now_s() - t0, d0[0], d0[1]);
    else
        printf("link %.1f Mbit/s: pools NOT drained within %.0f s (%llu keys A->B, %llu keys B->A): "
               "the KMEs and clients deliver less than the link produces\n", rate / 1e6, now_s() - t0,
               d0[0], d0[1]);
    double w0 = now_s();
    sleep_ms(1000L * C.seconds);
    totals(ls, d1, &e1);
    double w = now_s() - w0;
    atomic_store(&stop, 1);
    int bad = loaders_join(ls);
    free(ls);
    double ab = (double)(d1[0] - d0[0]) / w, ba = (double)(d1[1] - d0[1]) / w;
    printf("  sustained over %.1f s: A->B %.0f keys/s, B->A %.0f keys/s, total %.0f keys/s of 256 bits "
           "= %.2f Mbit/s (%.0f%% of the link rate; %llu answers 503 while waiting)\n",
           w, ab, ba, ab + ba, (ab + ba) * 256 / 1e6, 100.0 * (ab + ba) * 256 / (double)rate, e1 - e0);
    const char *bb = env_get("LINK_BLOCK_BYTES");
    double block_keys = bb ? (double)atol(bb) * 8 / 256 : 2048;
    printf("  (blocks arrive whole: +-1 block per direction in the window = +-%.0f keys/s in total)\n",
           2 * block_keys / w);
    if (e0 == e1)
        printf("  note: no 503 in the window: this is what the KMEs deliver, not what the link sustains\n");
    return bad;
}

/* ----------------------------------------------------------------- pools */

typedef struct sampler {
    pthread_t th;
    atomic_int stop;
    unsigned long samples, violations, errors;
    int64_t min_own[2], max_own[2], min_peer[2], max_peer[2], cap[2];
    char first[700];
} sampler;

static void *sample_run(void *arg)
{
    sampler *s = arg;
    CURL *h[2] = { curl_easy_init(), curl_easy_init() };
    for (int k = 0; k < 2; k++) {
        s->min_own[k] = s->min_peer[k] = INT64_MAX;
        s->max_own[k] = s->max_peer[k] = INT64_MIN;
    }
    while (!atomic_load(&s->stop)) {
        for (int k = 0; k < 2; k++) {
            pool p;
            char err[600];
            if (!h[k] || link_state(h[k], k, &p, err, sizeof err) != 0) {
                if (s->errors++ == 0)
                    snprintf(s->first, sizeof s->first, "%s", h[k] ? err : "curl_easy_init failed");
                continue;
            }
            s->samples++;
            s->cap[k] = p.cap;
            if (p.own < 0 || p.peer < 0 || p.own > p.cap || p.peer > p.cap) {
                if (s->violations++ == 0)
                    snprintf(s->first, sizeof s->first, "KME-%c: own %lld peer %lld cap %lld", k ? 'B' : 'A',
                             (long long)p.own, (long long)p.peer, (long long)p.cap);
            }
            if (p.own < s->min_own[k]) s->min_own[k] = p.own;
            if (p.own > s->max_own[k]) s->max_own[k] = p.own;
            if (p.peer < s->min_peer[k]) s->min_peer[k] = p.peer;
            if (p.peer > s->max_peer[k]) s->max_peer[k] = p.peer;
        }
        sleep_ms(20);
    }
    curl_easy_cleanup(h[0]);
    curl_easy_cleanup(h[1]);
    return NULL;
}

static int testbed(const char *cmd, const char *part)
{
    char line[4096];
    snprintf(line, sizeof line, "'%s' %s '%s' %s >/dev/null", C.testbed, cmd, need("TESTBED_DIR"), part);
    int rc = system(line);
    return rc == 0 ? 0 : -1;
}

/* Wait until both KMEs agree and two readings 300 ms apart are equal. */
static int quiet_state(CURL *h, pool *a, pool *b, double secs)
{
    pool pa = { 0 }, pb = { 0 };
    char err[600] = "";
    bool have = false;
    double end = now_s() + secs;
    while (now_s() < end) {
        if (link_state(h, KA, a, err, sizeof err) == 0 && link_state(h, KB, b, err, sizeof err) == 0) {
            if (have && a->own == b->peer && a->peer == b->own && !a->unconfirmed && !b->unconfirmed
                && memcmp(a, &pa, sizeof *a) == 0 && memcmp(b, &pb, sizeof *b) == 0)
                return 0;
            pa = *a;
            pb = *b;
            have = true;
        }
        sleep_ms(300);
    }
    fprintf(stderr, "  pools not quiet and consistent within %.0f s: A own %lld peer %lld, B own %lld peer %lld%s%s\n",
            secs, (long long)pa.own, (long long)pa.peer, (long long)pb.own, (long long)pb.peer,
            err[0] ? "; last error: " : "", err);
    return -1;
}

static int run_pools(void)
{
    int bad = 0;
    /* (1) sampling under load, link running */
    sampler s = { 0 };
    atomic_int stop = 0;
    pthread_create(&s.th, NULL, sample_run, &s);
    loader *ls = loaders_start(&stop);
    sleep_ms(1000L * C.seconds);
    atomic_store(&stop, 1);
    unsigned long long d[2], e;
    bad |= loaders_join(ls);
    totals(ls, d, &e);
    free(ls);
    atomic_store(&s.stop, 1);
    pthread_join(s.th, NULL);
    printf("pool levels under load (link running, %d s, %llu keys A->B, %llu keys B->A, %lu samples):\n",
           C.seconds, d[0], d[1], s.samples);
    for (int k = 0; k < 2 && s.samples; k++)
        printf("  KME-%c: own %lld..%lld, peer %lld..%lld bits (cap %lld)\n", k ? 'B' : 'A',
               (long long)s.min_own[k], (long long)s.max_own[k], (long long)s.min_peer[k],
               (long long)s.max_peer[k], (long long)s.cap[k]);
    printf("  invariant 0 <= own, peer <= cap: %s (%lu violations, %lu read errors)%s%s\n",
           s.violations || s.errors || !s.samples ? "VIOLATED" : "holds", s.violations, s.errors,
           s.first[0] ? "; first: " : "", s.first);
    bad |= s.violations || s.errors || !s.samples;
    if (!C.testbed)
        return bad;

    /* (2) conservation with the link stopped */
    CURL *h = curl_easy_init();
    pool a0, b0, a1, b1;
    /* The link idles once both pools are at their cap: stop it then, so
     * that no block is half confirmed. */
    if (!h || quiet_state(h, &a0, &b0, 60) != 0 || testbed("stop", "link") != 0) {
        fprintf(stderr, "  cannot quiesce and stop the link\n");
        if (h)
            curl_easy_cleanup(h);
        return 1;
    }
    if (quiet_state(h, &a0, &b0, 30) == 0) {
        stop = 0;
        ls = loaders_start(&stop);
        sleep_ms(1000L * C.seconds);
        atomic_store(&stop, 1);
        bad |= loaders_join(ls);
        totals(ls, d, &e);
        free(ls);
        if (quiet_state(h, &a1, &b1, 30) == 0) {
            long long ab = (long long)d[0] * 256, ba = (long long)d[1] * 256;
            long long lost_a = a0.own - a1.own, lost_b = b0.own - b1.own;
            long long seen_a = b0.peer - b1.peer, seen_b = a0.peer - a1.peer;
            bool ok = lost_a == ab && lost_b == ba && seen_a == ab && seen_b == ba && e == 0;
            printf("conservation (link stopped, %d s of load): A-owned pool -%lld bits at A, -%lld at B, "
                   "keys A->B %lld bits; B-owned pool -%lld at B, -%lld at A, keys B->A %lld bits; "
                   "503 answers %llu: %s\n", C.seconds, lost_a, seen_a, ab, lost_b, seen_b, ba, e,
                   ok ? "exact" : "MISMATCH");
            bad |= !ok;
        } else {
            bad = 1;
        }
    } else {
        bad = 1;
    }
    if (testbed("start", "link") != 0) {
        fprintf(stderr, "  cannot restart the link\n");
        bad = 1;
    }
    curl_easy_cleanup(h);
    return bad;
}

/* settle: wait until the link idles (both pools quiet and consistent, so
 * at their cap), so that a benchmark measures the KMEs, not block intake. */
static int run_settle(void)
{
    CURL *h = curl_easy_init();
    pool a, b;
    double t0 = now_s();
    int rc = h ? quiet_state(h, &a, &b, 300) : -1;
    if (rc == 0)
        printf("link idle after %.1f s: A-owned %lld bits, B-owned %lld bits (cap %lld)\n", now_s() - t0,
               (long long)a.own, (long long)b.own, (long long)a.cap);
    if (h)
        curl_easy_cleanup(h);
    return rc != 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: pair_bench rate|pools|settle --env FILE [--seconds S] [--clients N per direction]\n"
                 "                  [--batch K keys per request] [--testbed scripts/testbed]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "env", required_argument, NULL, 'e' }, { "clients", required_argument, NULL, 'c' },
        { "seconds", required_argument, NULL, 's' }, { "batch", required_argument, NULL, 'b' },
        { "testbed", required_argument, NULL, 't' }, { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'e': C.env_path = optarg; break;
        case 'c': C.clients = atoi(optarg); break;
        case 's': C.seconds = atoi(optarg); break;
        case 'b': C.batch = atoi(optarg); break;
        case 't': C.testbed = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind + 1 != argc || !C.env_path || C.clients < 1 || C.clients > 64 || C.seconds < 1
        || C.batch < 1 || C.batch > 1024) {
        usage(stderr);
        return 2;
    }
    const char *mode = argv[optind];
    if (strcmp(mode, "rate") != 0 && strcmp(mode, "pools") != 0 && strcmp(mode, "settle") != 0) {
        usage(stderr);
        return 2;
    }
    if (load_env(C.env_path) != 0)
        return 1;
    const char *m = env_get("TESTBED_MODE");
    if (!m || strcmp(m, "pair") != 0) {
        fprintf(stderr, "pair_bench: %s is not a pair testbed (TESTBED_MODE=%s)\n", C.env_path, m ? m : "?");
        return 1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || qkd014_global_init() != QKD014_OK)
        return 1;
    int rc = strcmp(mode, "rate") == 0 ? run_rate() : strcmp(mode, "pools") == 0 ? run_pools() : run_settle();
    qkd014_global_cleanup();
    curl_global_cleanup();
    return rc;
}
