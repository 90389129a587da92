/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_reuse_watch.c - the window of delivered (key ID, slave) pairs that
 * tells a key-reuse attempt from an unknown key (src/kme/reuse_watch.c):
 * a slave asking again is seen, another slave or an unknown ID is not,
 * pairs leave after keep_ms and when the window is full (oldest first),
 * and the probing table stays exact through many evictions (checked
 * against a plain list).  The clock is passed in: no sleeps.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kme/reuse_watch.h"

static void id_of(uint8_t id[16], uint32_t n)
{
    memset(id, 0, 16);
    memcpy(id, &n, sizeof n);
    id[15] = (uint8_t)(n * 7);
}

static size_t seen1(reuse_watch *w, const char *slave, uint32_t n, int64_t now)
{
    uint8_t id[1][16];
    id_of(id[0], n);
    return reuse_watch_seen(w, slave, (const uint8_t (*)[16])id, 1, now);
}

static void put1(reuse_watch *w, const char *slave, uint32_t n, int64_t now)
{
    uint8_t id[1][16];
    id_of(id[0], n);
    reuse_watch_delivered(w, slave, (const uint8_t (*)[16])id, 1, now);
}

static void test_seen_by_slave_only(void **state)
{
    (void)state;
    reuse_watch *w = reuse_watch_new(16, 1000);
    assert_non_null(w);
    uint8_t ids[3][16];
    for (uint32_t i = 0; i < 3; i++)
        id_of(ids[i], i + 1);
    reuse_watch_delivered(w, "SAE_B", (const uint8_t (*)[16])ids, 2, 0);
    assert_int_equal(reuse_watch_seen(w, "SAE_B", (const uint8_t (*)[16])ids, 3, 10), 2);
    assert_int_equal(reuse_watch_seen(w, "SAE_C", (const uint8_t (*)[16])ids, 3, 10), 0);
    assert_int_equal(seen1(w, "SAE_B", 3, 10), 0);
    assert_int_equal(reuse_watch_count(w), 2);
    reuse_watch_free(w);
}

static void test_expires_after_keep(void **state)
{
    (void)state;
    reuse_watch *w = reuse_watch_new(16, 1000);
    put1(w, "SAE_B", 1, 0);
    put1(w, "SAE_B", 2, 500);
    assert_int_equal(seen1(w, "SAE_B", 1, 999), 1);
    assert_int_equal(seen1(w, "SAE_B", 1, 1000), 0); /* kept 1000 ms, no more */
    assert_int_equal(seen1(w, "SAE_B", 2, 1000), 1);
    assert_int_equal(reuse_watch_count(w), 1);
    reuse_watch_free(w);
}

static void test_full_window_drops_oldest(void **state)
{
    (void)state;
    reuse_watch *w = reuse_watch_new(4, 1000000);
    for (uint32_t i = 1; i <= 6; i++)
        put1(w, "SAE_B", i, i);
    assert_int_equal(reuse_watch_count(w), 4);
    assert_int_equal(seen1(w, "SAE_B", 1, 10), 0);
    assert_int_equal(seen1(w, "SAE_B", 2, 10), 0);
    for (uint32_t i = 3; i <= 6; i++)
        assert_int_equal(seen1(w, "SAE_B", i, 10), 1);
    reuse_watch_free(w);
}

/* Many insertions through a small window: after each one, exactly the
 * last `cap` IDs are seen (backward-shift deletion keeps every probe
 * chain whole). */
static void test_many_evictions_exact(void **state)
{
    (void)state;
    const size_t cap = 37;
    reuse_watch *w = reuse_watch_new(cap, INT64_MAX / 2);
    srand(5);
    uint32_t *order = calloc(3000, sizeof *order);
    assert_non_null(order);
    for (uint32_t i = 0; i < 3000; i++) {
        order[i] = (uint32_t)rand();
        put1(w, i % 3 ? "SAE_B" : "SAE_C", order[i], 0);
        if (i % 97 != 0)
            continue;
        for (uint32_t k = 0; k <= i; k++) {
            size_t want = i - k < cap ? 1 : 0;
            assert_int_equal(seen1(w, k % 3 ? "SAE_B" : "SAE_C", order[k], 0), want);
        }
    }
    free(order);
    reuse_watch_free(w);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    assert_null(reuse_watch_new(0, 1000));
    assert_null(reuse_watch_new(REUSE_WATCH_MAX + 1, 1000));
    assert_null(reuse_watch_new(8, 0));
    reuse_watch_delivered(NULL, "SAE_B", NULL, 0, 0); /* no window: a no-op */
    assert_int_equal(reuse_watch_seen(NULL, "SAE_B", NULL, 0, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seen_by_slave_only),
        cmocka_unit_test(test_expires_after_keep),
        cmocka_unit_test(test_full_window_drops_oldest),
        cmocka_unit_test(test_many_evictions_exact),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
