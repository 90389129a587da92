/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_secret.c - buffers for key material (src/common/secret.c): zeroed on
 * allocation and wiped on release (seen through the reuse cache, which
 * hands the very same block back: freed memory itself is never read),
 * locked and excluded from core dumps (the VMA flags in /proc/self/smaps),
 * constant-time comparison, the CSPRNG, and the process-wide hardening
 * (no core dumps), checked in a forked child so this process keeps its
 * own settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/secret.h"

/* AddressSanitizer turns mlock() into a no-op that succeeds, so buffers of
 * a sanitizer build are never locked. */
#if defined(__SANITIZE_ADDRESS__)
#define MLOCK_WORKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MLOCK_WORKS 0
#endif
#endif
#ifndef MLOCK_WORKS
#define MLOCK_WORKS 1
#endif

static size_t page(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != v)
            return false;
    return true;
}

/* The VmFlags line of the mapping that holds p, from /proc/self/smaps;
 * false when not found. */
static bool vm_flags_of(const void *p, char *flags, size_t cap)
{
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        return false;
    char line[512];
    bool inside = false, found = false;
    uintptr_t a = (uintptr_t)p;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = a >= lo && a < hi;
            continue;
        }
        if (inside && strncmp(line, "VmFlags:", 8) == 0) {
            snprintf(flags, cap, "%s", line + 8);
            found = true;
            break;
        }
    }
    fclose(f);
    return found;
}

static bool has_flag(const char *flags, const char *flag)
{
    char copy[512];
    snprintf(copy, sizeof copy, "%s", flags);
    char *save = NULL;
    for (char *t = strtok_r(copy, " \n", &save); t; t = strtok_r(NULL, " \n", &save))
        if (strcmp(t, flag) == 0)
            return true;
    return false;
}

/* --- allocation and release ---------------------------------------------- */

static void test_alloc_is_zeroed_and_aligned(void **state)
{
    (void)state;
    static const size_t sizes[] = { 1, 32, 4095, 4096, 4097, 3 * 4096, 16 * 4096, 17 * 4096 + 5 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        secret_buf sb;
        assert_int_equal(secret_alloc(&sb, sizes[i]), 0);
        assert_non_null(sb.data);
        assert_int_equal(sb.cap, sizes[i]);
        assert_int_equal(sb.len, 0);
        assert_int_equal((uintptr_t)sb.data % page(), 0);
        assert_true(all_bytes(sb.data, sizes[i], 0));
        memset(sb.data, 0x5a, sizes[i]); /* the whole capacity is usable */
        secret_free(&sb);
    }
}

static void test_alloc_zero_capacity(void **state)
{
    (void)state;
    secret_buf sb;
    assert_int_equal(secret_alloc(&sb, 0), 0);
    assert_non_null(sb.data);
    assert_int_equal(sb.cap, 0);
    secret_free(&sb);
    assert_null(sb.data);
}

static void test_alloc_impossible_size_fails(void **state)
{
    (void)state;
    secret_buf sb;
    memset(&sb, 0x77, sizeof sb);
    assert_int_equal(secret_alloc(&sb, SIZE_MAX - 1), -1);
    assert_null(sb.data);
    assert_int_equal(sb.cap, 0);
    secret_free(&sb); /* an empty buffer is safe to free */
}

/* A freed block goes to the reuse cache (a stack per size), so the next
 * allocation of that size gets the same block: it must come back zeroed,
 * although it held key bytes up to the free. */
static void test_free_wipes_cached_block(void **state)
{
    (void)state;
    static const size_t sizes[] = { 1, 100, 4096, 2 * 4096 + 1, 16 * 4096 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        secret_buf a, b;
        assert_int_equal(secret_alloc(&a, n), 0);
        uint8_t *first = a.data;
        memset(a.data, 0xa5, n);
        a.len = n;
        secret_free(&a);
        assert_null(a.data);
        assert_int_equal(a.len, 0);
        assert_int_equal(a.cap, 0);
        assert_int_equal(secret_alloc(&b, n), 0);
        assert_ptr_equal(b.data, first);  /* really the same block */
        assert_true(all_bytes(b.data, n, 0));
        /* the slack up to the page boundary was wiped as well */
        size_t rounded = (n + page() - 1) / page() * page();
        assert_true(all_bytes(b.data, rounded, 0));
        secret_free(&b);
    }
}

/* A block of another size in the cache is never handed out for this one. */
static void test_cache_is_per_size(void **state)
{
    (void)state;
    secret_buf one, two, again;
    assert_int_equal(secret_alloc(&one, page()), 0);
    uint8_t *p1 = one.data;
    secret_free(&one);
    assert_int_equal(secret_alloc(&two, 2 * page()), 0);
    assert_ptr_not_equal(two.data, p1);
    assert_true(all_bytes(two.data, 2 * page(), 0));
    assert_int_equal(secret_alloc(&again, page()), 0);
    assert_ptr_equal(again.data, p1);
    secret_free(&two);
    secret_free(&again);
}

static void test_double_free_is_harmless(void **state)
{
    (void)state;
    secret_buf sb;
    assert_int_equal(secret_alloc(&sb, 64), 0);
    secret_free(&sb);
    secret_free(&sb);
    assert_null(sb.data);
}

/* Locked (VmFlags "lo") and kept out of core dumps ("dd"). */
static void test_locked_and_not_dumped(void **state)
{
    (void)state;
    struct rlimit ml;
    assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &ml), 0);
    size_t n = 20 * page(); /* larger than the cached sizes: a fresh block */
    secret_buf sb;
    assert_int_equal(secret_alloc(&sb, n), 0);
    char flags[512];
    assert_true(vm_flags_of(sb.data, flags, sizeof flags));
    assert_true(has_flag(flags, "dd"));
    if (MLOCK_WORKS && (geteuid() == 0 || ml.rlim_cur == RLIM_INFINITY || ml.rlim_cur >= 4 * n))
        assert_true(has_flag(flags, "lo"));
    /* the whole buffer lies in such mappings */
    assert_true(vm_flags_of(sb.data + n - 1, flags, sizeof flags));
    assert_true(has_flag(flags, "dd"));
    secret_free(&sb);
}

static void test_wipe(void **state)
{
    (void)state;
    uint8_t buf[100];
    memset(buf, 0xff, sizeof buf);
    secret_wipe(buf + 10, 80);
    assert_true(all_bytes(buf, 10, 0xff));
    assert_true(all_bytes(buf + 10, 80, 0));
    assert_true(all_bytes(buf + 90, 10, 0xff));
    secret_wipe(NULL, 10);  /* no-ops */
    secret_wipe(buf, 0);
    assert_int_equal(buf[0], 0xff);
}

/* --- comparison and randomness ------------------------------------------ */

static void test_cmp_results(void **state)
{
    (void)state;
    uint8_t a[64], b[64];
    secret_random(a, sizeof a);
    memcpy(b, a, sizeof b);
    assert_int_equal(secret_cmp(a, b, sizeof a), 0);
    for (size_t i = 0; i < sizeof a; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            assert_int_not_equal(secret_cmp(a, b, sizeof a), 0);
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    assert_int_equal(secret_cmp(a, b, sizeof a), 0);
    /* only n bytes count */
    b[63] ^= 1;
    assert_int_equal(secret_cmp(a, b, 63), 0);
    assert_int_equal(secret_cmp(a, b, 0), 0);
}

static double seconds_for_cmp(const uint8_t *a, const uint8_t *b, size_t n, int reps)
{
    struct timespec t0, t1;
    volatile int sink = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < reps; i++)
        sink += secret_cmp(a, b, n);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    (void)sink;
    return (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

/* The time does not depend on where the buffers differ.  An early-exit
 * memcmp is about n times faster on a difference in the first byte than in
 * the last; here the two must be within a factor of 3 (the best of several
 * interleaved rounds each, against scheduling noise). */
static void test_cmp_constant_time(void **state)
{
    (void)state;
    const size_t n = 256 * 1024;
    uint8_t *a = malloc(n), *first = malloc(n), *last = malloc(n);
    assert_non_null(a);
    assert_non_null(first);
    assert_non_null(last);
    secret_random(a, n);
    memcpy(first, a, n);
    memcpy(last, a, n);
    first[0] ^= 1;
    last[n - 1] ^= 1;
    double best_first = 1e9, best_last = 1e9;
    for (int round = 0; round < 9; round++) {
        double f = seconds_for_cmp(a, first, n, 20);
        double l = seconds_for_cmp(a, last, n, 20);
        best_first = f < best_first ? f : best_first;
        best_last = l < best_last ? l : best_last;
    }
    assert_true(best_first > 0 && best_last > 0);
    assert_true(best_first * 3 > best_last);
    assert_true(best_last * 3 > best_first);
    free(a);
    free(first);
    free(last);
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[64], b[64];
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    secret_random(a, sizeof a);
    secret_random(b, sizeof b);
    assert_memory_not_equal(a, b, sizeof a);
    assert_false(all_bytes(a, sizeof a, 0));
    /* a one-byte fill writes its byte (1 in 2^32 to fail by chance) and
     * nothing beyond it */
    uint8_t d[2];
    int zeros = 0;
    for (int i = 0; i < 4; i++) {
        d[0] = 0;
        d[1] = 0xee;
        secret_random(d, 1);
        zeros += d[0] == 0;
        assert_int_equal(d[1], 0xee);
    }
    assert_true(zeros < 4);
}

/* --- process hardening ---------------------------------------------------- */

/* In a child: secret_process_init() must set RLIMIT_CORE to 0 (soft and
 * hard) and make the process non-dumpable (also in sanitizer builds:
 * LeakSanitizer copes with that, tests/kme/workload-test shows it).
 * The child reports through its exit status, one bit per failed check. */
static void test_process_init_disables_core_dumps(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int bad = 0;
        struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY };
        (void)setrlimit(RLIMIT_CORE, &rl); /* start from "dumps allowed" */
        if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) != 0)
            bad |= 1;
        if (secret_process_init() != 0)
            bad |= 2;
        if (getrlimit(RLIMIT_CORE, &rl) != 0 || rl.rlim_cur != 0 || rl.rlim_max != 0)
            bad |= 4;
        int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        if (dumpable != 0)
            bad |= 8;
        /* a second call is harmless (the hard limit is 0 already) */
        if (secret_process_init() != 0)
            bad |= 16;
        _exit(bad);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_is_zeroed_and_aligned),
        cmocka_unit_test(test_alloc_zero_capacity),
        cmocka_unit_test(test_alloc_impossible_size_fails),
        cmocka_unit_test(test_free_wipes_cached_block),
        cmocka_unit_test(test_cache_is_per_size),
        cmocka_unit_test(test_double_free_is_harmless),
        cmocka_unit_test(test_locked_and_not_dumped),
        cmocka_unit_test(test_wipe),
        cmocka_unit_test(test_cmp_results),
        cmocka_unit_test(test_cmp_constant_time),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_process_init_disables_core_dumps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
