/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_prom.c - the Prometheus text format writer (common/prom.h): HELP
 * and TYPE lines, samples with and without labels, label values and help
 * texts escaped (a hostile value cannot end its quotes or start a new
 * line), doubles that read back exactly, histograms cumulative with +Inf
 * equal to _count; and the admin listener's pure rules
 * (common/admin_http.h): loopback addresses, the Host header.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/admin_http.h"
#include "common/prom.h"

static char *finish(prom_writer *w)
{
    size_t len = 0;
    char *s = prom_finish(w, &len);
    assert_non_null(s);
    assert_int_equal(strlen(s), len);
    return s;
}

static void test_counter_and_gauge(void **state)
{
    (void)state;
    prom_writer w;
    prom_init(&w);
    prom_family(&w, "x_requests_total", PROM_COUNTER, "Requests.");
    prom_label l[] = { { "endpoint", "status" }, { "code", "200" } };
    prom_u64(&w, l, 2, 18446744073709551615ull);
    prom_family(&w, "x_up", PROM_GAUGE, "Up.");
    prom_u64(&w, NULL, 0, 1);
    char *s = finish(&w);
    assert_string_equal(s,
        "# HELP x_requests_total Requests.\n"
        "# TYPE x_requests_total counter\n"
        "x_requests_total{endpoint=\"status\",code=\"200\"} 18446744073709551615\n"
        "# HELP x_up Up.\n"
        "# TYPE x_up gauge\n"
        "x_up 1\n");
    free(s);
}

static void test_escaping(void **state)
{
    (void)state;
    prom_writer w;
    prom_init(&w);
    prom_family(&w, "x_info", PROM_GAUGE, "a \\ back\nslash \"quoted\"");
    prom_label l[] = { { "peer", "K\"M}E\\\n# TYPE evil counter" } };
    prom_u64(&w, l, 1, 1);
    char *s = finish(&w);
    assert_string_equal(s,
        "# HELP x_info a \\\\ back\\nslash \"quoted\"\n"
        "# TYPE x_info gauge\n"
        "x_info{peer=\"K\\\"M}E\\\\\\n# TYPE evil counter\"} 1\n");
    /* three lines only: the hostile value started none */
    size_t lines = 0;
    for (const char *p = s; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 3);
    free(s);
}

static void test_doubles(void **state)
{
    (void)state;
    prom_writer w;
    prom_init(&w);
    prom_family(&w, "x_ratio", PROM_GAUGE, "R.");
    prom_double(&w, NULL, 0, 0.1);
    prom_double(&w, NULL, 0, 1.0 / 3.0);
    prom_double(&w, NULL, 0, NAN);
    prom_double(&w, NULL, 0, -INFINITY);
    prom_double(&w, NULL, 0, 12500000);
    char *s = finish(&w);
    assert_non_null(strstr(s, "x_ratio 0.1\n"));
    assert_non_null(strstr(s, "x_ratio 0.33333333333333331\n"));
    assert_non_null(strstr(s, "x_ratio NaN\n"));
    assert_non_null(strstr(s, "x_ratio -Inf\n"));
    assert_non_null(strstr(s, "x_ratio 12500000\n"));
    free(s);
}

static void test_histogram(void **state)
{
    (void)state;
    static const double bounds[] = { 0.001, 0.01, 0.1 };
    const uint64_t counts[] = { 2, 0, 5, 1 }; /* per bucket, the last above 0.1 */
    prom_writer w;
    prom_init(&w);
    prom_family(&w, "x_seconds", PROM_HISTOGRAM, "T.");
    prom_label l[] = { { "endpoint", "enc_keys" } };
    prom_histogram(&w, l, 1, bounds, counts, 3, 0.75);
    char *s = finish(&w);
    assert_string_equal(s,
        "# HELP x_seconds T.\n"
        "# TYPE x_seconds histogram\n"
        "x_seconds_bucket{endpoint=\"enc_keys\",le=\"0.001\"} 2\n"
        "x_seconds_bucket{endpoint=\"enc_keys\",le=\"0.01\"} 2\n"
        "x_seconds_bucket{endpoint=\"enc_keys\",le=\"0.1\"} 7\n"
        "x_seconds_bucket{endpoint=\"enc_keys\",le=\"+Inf\"} 8\n"
        "x_seconds_sum{endpoint=\"enc_keys\"} 0.75\n"
        "x_seconds_count{endpoint=\"enc_keys\"} 8\n");
    free(s);
}

static void test_empty_and_free(void **state)
{
    (void)state;
    prom_writer w;
    prom_init(&w);
    char *s = finish(&w);
    assert_string_equal(s, "");
    free(s);
    prom_init(&w);
    prom_family(&w, "x", PROM_GAUGE, "x");
    prom_free(&w); /* given up halfway: nothing leaks (ASan) */
}

static void test_loopback(void **state)
{
    (void)state;
    assert_true(admin_is_loopback("127.0.0.1"));
    assert_true(admin_is_loopback("127.255.0.9"));
    assert_true(admin_is_loopback("::1"));
    assert_false(admin_is_loopback("0.0.0.0"));
    assert_false(admin_is_loopback("10.0.0.1"));
    assert_false(admin_is_loopback("::"));
    assert_false(admin_is_loopback("::ffff:127.0.0.1")); /* v4-mapped: a v6 socket, any v4 */
    assert_false(admin_is_loopback("localhost"));
    assert_false(admin_is_loopback(""));
    assert_false(admin_is_loopback(NULL));
}

static void test_host_header(void **state)
{
    (void)state;
    assert_true(admin_host_ok("127.0.0.1:9100", "127.0.0.1", 9100));
    assert_true(admin_host_ok("localhost:9100", "127.0.0.1", 9100));
    assert_true(admin_host_ok("[::1]:9100", "::1", 9100));
    assert_true(admin_host_ok("localhost:9100", "::1", 9100));
    /* DNS rebinding: the attacker's name, resolving to us */
    assert_false(admin_host_ok("evil.example:9100", "127.0.0.1", 9100));
    assert_false(admin_host_ok("127.0.0.1.evil.example:9100", "127.0.0.1", 9100));
    assert_false(admin_host_ok("localhost.:9100", "127.0.0.1", 9100));
    assert_false(admin_host_ok("LOCALHOST:9100", "127.0.0.1", 9100));
    /* another port, no port, another loopback address, empty, absent */
    assert_false(admin_host_ok("127.0.0.1:9101", "127.0.0.1", 9100));
    assert_false(admin_host_ok("127.0.0.1", "127.0.0.1", 9100));
    assert_false(admin_host_ok("127.0.0.2:9100", "127.0.0.1", 9100));
    assert_false(admin_host_ok("127.0.0.1:9100 ", "127.0.0.1", 9100));
    assert_false(admin_host_ok("", "127.0.0.1", 9100));
    assert_false(admin_host_ok(NULL, "127.0.0.1", 9100));
    /* localhost names loopback only: a listener elsewhere wants its address */
    assert_false(admin_host_ok("localhost:9100", "10.0.0.1", 9100));
    assert_true(admin_host_ok("10.0.0.1:9100", "10.0.0.1", 9100));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_and_gauge),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_empty_and_free),
        cmocka_unit_test(test_loopback),
        cmocka_unit_test(test_host_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
