/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_log.c - the logger (src/common/log.c): the record format, escaping
 * of control characters (a record is always exactly one line and cannot
 * forge another), level filtering and parsing, truncation of long
 * messages, and records of concurrent threads that never interleave.
 *
 * stderr is redirected to a temporary file around each call, and the file
 * is read back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"

static int saved_fd = -1;
static FILE *capture_file;
static char out[256 * 1024];

static void capture_start(void)
{
    fflush(stderr);
    capture_file = tmpfile();
    assert_non_null(capture_file);
    saved_fd = dup(STDERR_FILENO);
    assert_true(saved_fd >= 0);
    assert_int_equal(dup2(fileno(capture_file), STDERR_FILENO), STDERR_FILENO);
}

/* Restore stderr; the captured text goes to out, its length is returned. */
static size_t capture_end(void)
{
    fflush(stderr);
    assert_int_equal(dup2(saved_fd, STDERR_FILENO), STDERR_FILENO);
    close(saved_fd);
    saved_fd = -1;
    rewind(capture_file);
    size_t n = fread(out, 1, sizeof out - 1, capture_file);
    out[n] = '\0';
    fclose(capture_file);
    capture_file = NULL;
    return n;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The message part of a one-record capture: after "LEVEL program: ",
 * without the final newline. */
static const char *message_of(const char *record, const char *prefix)
{
    const char *p = strstr(record, prefix);
    assert_non_null(p);
    p += strlen(prefix);
    size_t n = strlen(p);
    assert_true(n > 0 && p[n - 1] == '\n');
    static char msg[sizeof out];
    memcpy(msg, p, n - 1);
    msg[n - 1] = '\0';
    return msg;
}

static int reset(void **state)
{
    (void)state;
    log_init("test", LOG_DEBUG);
    return 0;
}

/* --- format -------------------------------------------------------------- */

static void test_record_format(void **state)
{
    (void)state;
    log_init("/usr/local/bin/qkd-kme", LOG_INFO);
    capture_start();
    log_info("serving %d SAEs on port %u", 3, 8443u);
    capture_end();
    regex_t re;
    assert_int_equal(regcomp(&re,
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
        "INFO qkd-kme: serving 3 SAEs on port 8443\n$", REG_EXTENDED | REG_NOSUB), 0);
    assert_int_equal(regexec(&re, out, 0, NULL, 0), 0);
    regfree(&re);
}

static void test_level_names(void **state)
{
    (void)state;
    capture_start();
    log_error("e");
    log_warn("w");
    log_info("i");
    log_debug("d");
    capture_end();
    assert_int_equal(count_lines(out), 4);
    assert_non_null(strstr(out, " ERROR test: e\n"));
    assert_non_null(strstr(out, " WARN test: w\n"));
    assert_non_null(strstr(out, " INFO test: i\n"));
    assert_non_null(strstr(out, " DEBUG test: d\n"));
}

/* --- escaping ------------------------------------------------------------ */

static void test_control_characters_escaped(void **state)
{
    (void)state;
    capture_start();
    log_warn("a\nb\rc\td\\e\x01" "f\x1b[31mg\x7fh");
    capture_end();
    assert_int_equal(count_lines(out), 1);
    assert_string_equal(message_of(out, " WARN test: "),
                        "a\\nb\\rc\\td\\\\e\\x01f\\x1b[31mg\\x7fh");
}

/* A client-supplied string cannot forge a second record. */
static void test_forged_record_stays_on_one_line(void **state)
{
    (void)state;
    const char *evil = "SAE_1\n2026-01-01T00:00:00.000Z ERROR qkd-kme: forged";
    capture_start();
    log_info("unknown SAE %s", evil);
    capture_end();
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "SAE_1\\n2026-01-01T00:00:00.000Z ERROR qkd-kme: forged\n"));
}

/* Printable ASCII and UTF-8 pass unchanged. */
static void test_printable_and_utf8_unchanged(void **state)
{
    (void)state;
    const char *text = "key_ID=\"ab-cd\" size=256 {json} [x] ~ caf\xc3\xa9 \xe2\x82\xac";
    capture_start();
    log_info("%s", text);
    capture_end();
    assert_string_equal(message_of(out, " INFO test: "), text);
}

/* Every byte 0x01..0x1f is escaped: the worst case is four output bytes
 * per input byte, and a full-length message of them still fits. */
static void test_all_control_bytes(void **state)
{
    (void)state;
    char msg[32], want[32 * 4 + 1];
    size_t w = 0;
    for (int c = 1; c < 32; c++) {
        msg[c - 1] = (char)c;
        if (c == '\n')
            w += (size_t)sprintf(want + w, "\\n");
        else if (c == '\r')
            w += (size_t)sprintf(want + w, "\\r");
        else if (c == '\t')
            w += (size_t)sprintf(want + w, "\\t");
        else
            w += (size_t)sprintf(want + w, "\\x%02x", c);
    }
    msg[31] = '\0';
    capture_start();
    log_error("%s", msg);
    capture_end();
    assert_string_equal(message_of(out, " ERROR test: "), want);

    char *big = malloc(3000);
    assert_non_null(big);
    memset(big, '\x02', 2999);
    big[2999] = '\0';
    capture_start();
    log_error("%s", big);
    capture_end();
    assert_int_equal(count_lines(out), 1);
    const char *m = message_of(out, " ERROR test: ");
    /* truncated to 2044 bytes before escaping, then "..." */
    assert_int_equal(strlen(m), 2044 * 4 + 3);
    assert_string_equal(m + 2044 * 4, "...");
    assert_memory_equal(m, "\\x02\\x02", 8);
    free(big);
}

static void test_long_message_truncated(void **state)
{
    (void)state;
    char *big = malloc(10000);
    assert_non_null(big);
    memset(big, 'x', 9999);
    big[9999] = '\0';
    capture_start();
    log_info("%s", big);
    capture_end();
    assert_int_equal(count_lines(out), 1);
    const char *m = message_of(out, " INFO test: ");
    assert_int_equal(strlen(m), 2047);
    assert_string_equal(m + 2044, "...");
    free(big);
}

/* --- levels -------------------------------------------------------------- */

static void test_level_filtering(void **state)
{
    (void)state;
    log_init("test", LOG_WARN);
    assert_true(log_enabled(LOG_ERROR));
    assert_true(log_enabled(LOG_WARN));
    assert_false(log_enabled(LOG_INFO));
    assert_false(log_enabled(LOG_DEBUG));
    capture_start();
    log_debug("hidden debug");
    log_info("hidden info");
    log_msg(LOG_INFO, "hidden through log_msg");
    log_warn("shown warn");
    log_error("shown error");
    capture_end();
    assert_int_equal(count_lines(out), 2);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "WARN test: shown warn\n"));
    assert_non_null(strstr(out, "ERROR test: shown error\n"));

    log_set_level(LOG_ERROR);
    capture_start();
    log_warn("hidden");
    log_error("only this");
    capture_end();
    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "only this"));

    log_set_level(LOG_DEBUG);
    capture_start();
    log_debug("now shown");
    capture_end();
    assert_non_null(strstr(out, "DEBUG test: now shown\n"));

    /* out-of-range levels are clamped to debug */
    log_set_level((enum log_level)99);
    assert_true(log_enabled(LOG_DEBUG));
}

/* Arguments of filtered-out info/debug records are not even evaluated. */
static int evaluated;
static const char *side_effect(void)
{
    evaluated++;
    return "x";
}

static void test_filtered_arguments_not_evaluated(void **state)
{
    (void)state;
    log_set_level(LOG_WARN);
    evaluated = 0;
    capture_start();
    log_debug("%s", side_effect());
    log_info("%s", side_effect());
    capture_end();
    assert_int_equal(evaluated, 0);
    assert_int_equal(strlen(out), 0);
}

static void test_level_parse(void **state)
{
    (void)state;
    static const struct { const char *s; enum log_level l; } good[] = {
        { "error", LOG_ERROR }, { "warn", LOG_WARN }, { "warning", LOG_WARN },
        { "info", LOG_INFO }, { "debug", LOG_DEBUG }, { "DEBUG", LOG_DEBUG }, { "Warn", LOG_WARN },
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        enum log_level l = (enum log_level)-1;
        assert_int_equal(log_level_parse(good[i].s, &l), 0);
        assert_int_equal(l, good[i].l);
    }
    static const char *const bad[] = { "", "err", "information", "debug ", " info", "trace", "3" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum log_level l = LOG_INFO;
        assert_int_equal(log_level_parse(bad[i], &l), -1);
        assert_int_equal(l, LOG_INFO); /* untouched */
    }
    enum log_level l = LOG_INFO;
    assert_int_equal(log_level_parse(NULL, &l), -1);
}

/* --- threads ------------------------------------------------------------- */

#define THREADS 4
#define PER_THREAD 200

static void *logger_thread(void *arg)
{
    int id = (int)(intptr_t)arg;
    for (int i = 0; i < PER_THREAD; i++)
        log_info("thread %d record %d %s", id, i, "padding-padding-padding-padding-padding");
    return NULL;
}

static void test_threads_do_not_interleave(void **state)
{
    (void)state;
    log_set_level(LOG_INFO);
    capture_start();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, logger_thread, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    capture_end();
    assert_int_equal(count_lines(out), THREADS * PER_THREAD);
    regex_t re;
    assert_int_equal(regcomp(&re,
        "^[0-9TZ:.-]{24} INFO test: thread [0-9] record [0-9]+ padding-padding-padding-padding-padding$",
        REG_EXTENDED | REG_NOSUB), 0);
    int seen[THREADS] = { 0 };
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        assert_int_equal(regexec(&re, line, 0, NULL, 0), 0);
        int id = atoi(strstr(line, "thread ") + 7);
        assert_in_range(id, 0, THREADS - 1);
        seen[id]++;
    }
    regfree(&re);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(seen[i], PER_THREAD);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_record_format, reset),
        cmocka_unit_test_setup(test_level_names, reset),
        cmocka_unit_test_setup(test_control_characters_escaped, reset),
        cmocka_unit_test_setup(test_forged_record_stays_on_one_line, reset),
        cmocka_unit_test_setup(test_printable_and_utf8_unchanged, reset),
        cmocka_unit_test_setup(test_all_control_bytes, reset),
        cmocka_unit_test_setup(test_long_message_truncated, reset),
        cmocka_unit_test_setup(test_level_filtering, reset),
        cmocka_unit_test_setup(test_filtered_arguments_not_evaluated, reset),
        cmocka_unit_test_setup(test_level_parse, reset),
        cmocka_unit_test_setup(test_threads_do_not_interleave, reset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
