/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_kme_metrics.c - the KME's counters (src/kme/metrics.h) as
 * /metrics shows them: requests by endpoint and code (unknown codes fold
 * into "other", a hostile target counts as endpoint "other"), the
 * duration histogram's buckets, keys and bytes by op, reservations per
 * configured peer (the peer's ID escaped), link blocks, the security
 * kinds, build_info; and counting from many threads at once loses nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kme/metrics.h"
#include "kme/netmap.h"

static kme_peer peers[2];
static kme_link links[2];
static netmap map;
static kme_config cfg;

static int setup(void **state)
{
    (void)state;
    memset(&cfg, 0, sizeof cfg);
    peers[0].id = "KME-B";
    peers[1].id = "K\"M\\E";
    cfg.peers = peers;
    cfg.n_peers = 2;
    links[0].id = "LINK-AB";
    links[0].peer = "KME-B";
    links[1].id = "LINK-AC";
    links[1].peer = "KME-C";
    cfg.links = links;
    cfg.n_links = 2;
    cfg.map = &map; /* a KME with a network map counts relays */
    cfg.has_link = true;
    assert_int_equal(metrics_init(&cfg), 0);
    metrics_testing_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    metrics_free();
    return 0;
}

static char *render(void)
{
    prom_writer w;
    prom_init(&w);
    metrics_render(&w, &cfg);
    char *s = prom_finish(&w, NULL);
    assert_non_null(s);
    return s;
}

static void has(const char *text, const char *line)
{
    if (!strstr(text, line))
        fail_msg("missing line: %s\n--- in ---\n%s", line, text);
}

static void test_endpoint_of(void **state)
{
    (void)state;
    assert_int_equal(metrics_endpoint_of("/api/v1/keys/SAE_B1/status"), METRICS_EP_STATUS);
    assert_int_equal(metrics_endpoint_of("/api/v1/keys/SAE_B1/enc_keys?number=2"), METRICS_EP_ENC_KEYS);
    assert_int_equal(metrics_endpoint_of("/api/v1/keys/SAE_A1/dec_keys"), METRICS_EP_DEC_KEYS);
    assert_int_equal(metrics_endpoint_of("/api/v1/keys/x/other"), METRICS_EP_OTHER);
    assert_int_equal(metrics_endpoint_of("/evil/status"), METRICS_EP_OTHER);
    assert_int_equal(metrics_endpoint_of(""), METRICS_EP_OTHER);
    assert_int_equal(metrics_endpoint_of(NULL), METRICS_EP_OTHER);
    assert_int_equal(metrics_endpoint_of("/status"), METRICS_EP_OTHER);
}

static void test_requests_and_codes(void **state)
{
    (void)state;
    metrics_request(METRICS_EP_STATUS, 200, 50000);       /* 50 us */
    metrics_request(METRICS_EP_STATUS, 200, 300000);      /* 300 us */
    metrics_request(METRICS_EP_ENC_KEYS, 503, 2000000);   /* 2 ms */
    metrics_request(METRICS_EP_DEC_KEYS, 418, 0);         /* no such code here */
    metrics_request(METRICS_EP_OTHER, 401, 0);
    metrics_request((metrics_endpoint)99, 200, -5);       /* hostile arguments fold */
    char *s = render();
    has(s, "# TYPE qkd_kme_requests_total counter\n");
    has(s, "qkd_kme_requests_total{endpoint=\"status\",code=\"200\"} 2\n");
    has(s, "qkd_kme_requests_total{endpoint=\"enc_keys\",code=\"503\"} 1\n");
    has(s, "qkd_kme_requests_total{endpoint=\"enc_keys\",code=\"200\"} 0\n");
    has(s, "qkd_kme_requests_total{endpoint=\"dec_keys\",code=\"other\"} 1\n");
    has(s, "qkd_kme_requests_total{endpoint=\"other\",code=\"401\"} 1\n");
    has(s, "qkd_kme_requests_total{endpoint=\"other\",code=\"200\"} 1\n");
    /* histogram: 50 us in le=0.0001, 300 us in le=0.0005, cumulative */
    has(s, "# TYPE qkd_kme_request_duration_seconds histogram\n");
    has(s, "qkd_kme_request_duration_seconds_bucket{endpoint=\"status\",le=\"0.0001\"} 1\n");
    has(s, "qkd_kme_request_duration_seconds_bucket{endpoint=\"status\",le=\"0.00025\"} 1\n");
    has(s, "qkd_kme_request_duration_seconds_bucket{endpoint=\"status\",le=\"0.0005\"} 2\n");
    has(s, "qkd_kme_request_duration_seconds_bucket{endpoint=\"status\",le=\"+Inf\"} 2\n");
    has(s, "qkd_kme_request_duration_seconds_count{endpoint=\"status\"} 2\n");
    has(s, "qkd_kme_request_duration_seconds_sum{endpoint=\"status\"} 0.00035\n");
    has(s, "qkd_kme_request_duration_seconds_bucket{endpoint=\"enc_keys\",le=\"0.001\"} 0\n");
    has(s, "qkd_kme_request_duration_seconds_bucket{endpoint=\"enc_keys\",le=\"0.0025\"} 1\n");
    free(s);
}

static void test_keys_peers_link(void **state)
{
    (void)state;
    metrics_keys(true, 3, 96);
    metrics_keys(false, 2, 64);
    metrics_reservation(0, METRICS_RESV_ACKNOWLEDGED);
    metrics_reservation(1, METRICS_RESV_FAILED);
    metrics_reservation(2, METRICS_RESV_FAILED);          /* no such peer: ignored */
    metrics_reservation(0, (metrics_resv_result)7);       /* no such result: ignored */
    metrics_relay(METRICS_RELAY_ORIGIN, METRICS_RELAY_DELIVERED);
    metrics_relay(METRICS_RELAY_LAST, METRICS_RELAY_TAMPERED);
    metrics_relay(METRICS_RELAY_LAST, METRICS_RELAY_TAMPERED);
    metrics_relay(METRICS_RELAY_ROLE_N, METRICS_RELAY_DELIVERED); /* no such role: ignored */
    metrics_link_block(0, true, 1000);
    metrics_link_block(0, false, 24);
    metrics_link_block(1, true, 7);
    metrics_link_block(KME_MAX_LINKS, true, 5); /* no such link: ignored */
    char *s = render();
    has(s, "qkd_kme_keys_delivered_total{op=\"enc\"} 3\n");
    has(s, "qkd_kme_keys_delivered_total{op=\"dec\"} 2\n");
    has(s, "qkd_kme_key_bytes_delivered_total{op=\"enc\"} 96\n");
    has(s, "qkd_kme_key_bytes_delivered_total{op=\"dec\"} 64\n");
    has(s, "qkd_kme_reservations_total{peer=\"KME-B\",result=\"acknowledged\"} 1\n");
    has(s, "qkd_kme_reservations_total{peer=\"KME-B\",result=\"failed\"} 0\n");
    has(s, "qkd_kme_reservations_total{peer=\"K\\\"M\\\\E\",result=\"failed\"} 1\n");
    has(s, "qkd_kme_link_blocks_total{peer=\"KME-B\"} 2\n");
    has(s, "qkd_kme_link_key_bytes_total{peer=\"KME-B\"} 1024\n");
    has(s, "qkd_kme_link_blocks_total{peer=\"KME-C\"} 1\n");
    has(s, "qkd_kme_relays_total{role=\"origin\",result=\"delivered\"} 1\n");
    has(s, "qkd_kme_relays_total{role=\"last\",result=\"tampered\"} 2\n");
    has(s, "qkd_kme_relays_total{role=\"trusted_node\",result=\"unavailable\"} 0\n");
    has(s, "qkd_kme_link_key_bytes_total{peer=\"KME-C\"} 7\n");
    assert_int_equal(metrics_link_bytes(0, true), 1000);
    assert_int_equal(metrics_link_bytes(0, false), 24);
    assert_int_equal(metrics_link_bytes(1, true), 7);
    assert_int_equal(metrics_link_bytes(KME_MAX_LINKS, true), 0);
    has(s, "# TYPE qkd_kme_security_events_total counter\n");
    static const char *const kinds[] = { "unauthorized", "key_reuse", "not_a_slave",
                                         "qber_alarm", "pool_exhausted", "rate_limited" };
    for (size_t i = 0; i < 6; i++) {
        char line[96];
        snprintf(line, sizeof line, "qkd_kme_security_events_total{kind=\"%s\"} ", kinds[i]);
        has(s, line);
    }
    has(s, "qkd_kme_build_info{version=\"" QUMAILC_VERSION "\"} 1\n");
    /* no key IDs or SAE IDs: the only label names are the bounded ones */
    for (const char *p = strchr(s, '{'); p; p = strchr(p + 1, '{')) {
        const char *names[] = { "{endpoint=", "{op=", "{peer=", "{kind=", "{version=", "{role=" };
        bool known = false;
        for (size_t i = 0; i < 6; i++)
            known |= strncmp(p, names[i], strlen(names[i])) == 0;
        assert_true(known);
    }
    free(s);
}

#define THREADS 8
#define PER_THREAD 20000

static void *count_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < PER_THREAD; i++) {
        metrics_request(METRICS_EP_ENC_KEYS, 200, 1000);
        metrics_keys(true, 1, 32);
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    (void)state;
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, count_many, NULL), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    char *s = render();
    char line[128];
    snprintf(line, sizeof line, "qkd_kme_requests_total{endpoint=\"enc_keys\",code=\"200\"} %d\n",
             THREADS * PER_THREAD);
    has(s, line);
    snprintf(line, sizeof line, "qkd_kme_key_bytes_delivered_total{op=\"enc\"} %d\n",
             THREADS * PER_THREAD * 32);
    has(s, line);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_of),
        cmocka_unit_test_setup_teardown(test_requests_and_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys_peers_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
