/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_link_state.c - a KME's view of its link (src/kme/link_state.c): the
 * state follows the reports; the alarm is raised by an abort on QBER and
 * cleared by the first produced block under the bound, with exactly one
 * log line each however many blocks follow; marginal blocks raise nothing;
 * the moving average and the measured, physical key rate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "kme/events.h"
#include "kme/link_state.h"

static link_report report(link_report_state st, double qber, uint64_t bits)
{
    link_report r;
    memset(&r, 0, sizeof r);
    r.state = st;
    r.has_qber = r.has_bound = r.has_distance = true;
    r.qber = qber;
    r.bound = 0.0625;
    r.model = 1;
    r.distance_km = 25;
    r.time_scale = 1000;
    r.secret_bits = bits;
    return r;
}

/* stderr into a file while fn runs; the lines that contain needle. */
static char log_path[] = "/tmp/test_link_state.XXXXXX";
static int saved_stderr = -1;

static void capture_start(void)
{
    int fd = mkstemp(log_path);
    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

static unsigned capture_count(const char *needle)
{
    fflush(stderr);
    FILE *f = fopen(log_path, "r");
    char line[1024];
    unsigned n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return n;
}

static void capture_stop(void)
{
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    unlink(log_path);
    strcpy(log_path, "/tmp/test_link_state.XXXXXX");
}

static void test_before_any_report(void **state)
{
    (void)state;
    link_state *ls = link_state_new("LINK-AB");
    link_state_snapshot s;
    link_state_get(ls, 5000, &s);
    assert_false(s.reported || s.alarm || s.has_qber);
    assert_string_equal(s.state, "unknown");
    assert_null(s.model);
    assert_true(s.secret_key_rate_bps == 0 && s.time_scale == 1);
    link_state_free(ls);
}

static void test_alarm_once_per_change(void **state)
{
    (void)state;
    link_state *ls = link_state_new("LINK-AB");
    link_state_snapshot s;
    uint64_t raised = events_total(EV_QBER_ALARM), cleared = events_total(EV_QBER_CLEARED);
    capture_start();
    for (int i = 0; i < 5; i++) {
        link_report r = report(LINK_REPORT_DISTILLING, 0.033, 200000);
        link_state_report(ls, &r, 1000 + i);
    }
    link_report m = report(LINK_REPORT_MARGINAL, 0.064, 0);
    link_state_report(ls, &m, 2000);
    link_state_get(ls, 2000, &s);
    assert_false(s.alarm);
    assert_string_equal(s.state, "marginal");
    for (int i = 0; i < 7; i++) {
        link_report r = report(LINK_REPORT_ABORTED, 0.28, 0);
        link_state_report(ls, &r, 3000 + i);
    }
    link_state_get(ls, 3000, &s);
    assert_true(s.alarm);
    assert_string_equal(s.state, "aborted");
    assert_int_equal(s.alarms, 1);
    /* a marginal block and one produced over the bound do not clear it */
    link_state_report(ls, &m, 3500);
    link_report over = report(LINK_REPORT_DISTILLING, 0.07, 1000);
    link_state_report(ls, &over, 3600);
    link_report none = report(LINK_REPORT_DISTILLING, 0.03, 0);
    link_state_report(ls, &none, 3700);
    link_state_get(ls, 3700, &s);
    assert_true(s.alarm);
    for (int i = 0; i < 4; i++) {
        link_report r = report(LINK_REPORT_DISTILLING, 0.034, 200000);
        link_state_report(ls, &r, 4000 + i);
    }
    link_state_get(ls, 4000, &s);
    assert_false(s.alarm);
    assert_int_equal(capture_count("possible eavesdropping"), 1);
    assert_int_equal(capture_count("QBER 0.2800 above the bound 0.0625"), 1);
    assert_int_equal(capture_count("alarm cleared"), 1);
    /* one security event each (events.h): the audit log and the alert command */
    assert_int_equal(events_total(EV_QBER_ALARM), raised + 1);
    assert_int_equal(events_total(EV_QBER_CLEARED), cleared + 1);
    assert_int_equal(capture_count("LINK-AB"), capture_count("link LINK-AB"));
    capture_stop();
    link_state_free(ls);
}

static void test_average_and_fields(void **state)
{
    (void)state;
    link_state *ls = link_state_new("LINK-AB");
    for (int i = 0; i < 40; i++) {
        link_report r = report(LINK_REPORT_DISTILLING, i < 20 ? 0.5 : (i % 2 ? 0.03 : 0.04), 1);
        link_state_report(ls, &r, i);
    }
    link_state_snapshot s;
    link_state_get(ls, 40, &s);
    assert_true(fabs(s.qber_avg - 0.035) < 1e-12); /* only the last 16 */
    assert_true(s.qber == 0.03 && s.bound == 0.0625 && s.distance_km == 25 && s.time_scale == 1000);
    assert_string_equal(s.model, "decoy-bb84");
    assert_int_equal(s.reports, 40);
    link_state_free(ls);
}

static void test_rate_is_measured_and_physical(void **state)
{
    (void)state;
    link_state *ls = link_state_new("LINK-AB");
    link_report r = report(LINK_REPORT_DISTILLING, 0.033, 0);
    link_state_report(ls, &r, 0);
    /* 1.5 Mbit/s for 20 s at time_scale 1000: 1500 bit/s physical */
    for (int64_t t = 100000; t < 120000; t += 100)
        link_state_bits(ls, 150000, t);
    link_state_snapshot s;
    link_state_get(ls, 120000, &s);
    assert_true(fabs(s.secret_key_rate_bps - 1500) < 1500 * 0.02);
    /* the first seconds: over the time since the first block */
    link_state *fresh = link_state_new("LINK-AB");
    link_state_report(fresh, &r, 0);
    for (int64_t t = 50000; t < 52000; t += 100)
        link_state_bits(fresh, 150000, t);
    link_state_get(fresh, 52000, &s);
    assert_true(fabs(s.secret_key_rate_bps - 1500) < 1500 * 0.1);
    /* nothing for a window: 0 */
    link_state_get(fresh, 80000, &s);
    assert_true(s.secret_key_rate_bps == 0);
    link_state_free(fresh);
    link_state_free(ls);
}

int main(void)
{
    log_init("test_link_state", LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_before_any_report),
        cmocka_unit_test(test_alarm_once_per_change),
        cmocka_unit_test(test_average_and_fields),
        cmocka_unit_test(test_rate_is_measured_and_physical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
