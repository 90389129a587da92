/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testbed_env.h - what the system tests that run against a testbed share:
 * reading DIR/testbed.env (scripts/testbed writes it: one KEY=VALUE per
 * line), an SAE's identity from it, a monotonic clock and pauses for
 * polling, running a shell command, counting log lines, an HTTP body buffer.  CHECK and
 * FAIL_AT (cmocka failures with a message) are in check.h.
 */
#ifndef QC_TESTS_TESTBED_ENV_H
#define QC_TESTS_TESTBED_ENV_H

#include <stddef.h>

/* The value of key in dir/testbed.env (malloc'd; the last line for the key
 * wins, as in a shell), or NULL when the file or the key is missing.  The
 * file is read afresh each time: `scripts/testbed start` rewrites PIDs. */
char *testbed_env_value(const char *dir, const char *key);

/* An SAE of the testbed: NAME_ID, NAME_CERT and NAME_KEY of testbed.env
 * (each NULL when missing; free with tb_sae_free). */
typedef struct tb_sae {
    char *id, *cert, *key;
} tb_sae;
void tb_sae_load(tb_sae *s, const char *dir, const char *name);
void tb_sae_free(tb_sae *s);

/* The testbed run-with-testbed brought up: TESTBED_DIR and TESTBED_SCRIPT
 * of the environment into *dir and *script (0), or -1 with a message on
 * stderr when the program was not started through run-with-testbed. */
int tb_from_env(char **dir, char **script);

/* Deadlines are tested with slack: 3 under sanitizers (QC_SANITIZED=1 in
 * the environment, set by tests/system/meson.build), else 1. */
int tb_slack_factor(void);

/* Milliseconds of CLOCK_MONOTONIC; a pause of ms that signals do not cut
 * short (for polls, never as an assertion). */
long tb_now_ms(void);
void tb_pause_ms(long ms);

/* system() of the formatted command line (at most 2 KiB). */
__attribute__((format(printf, 1, 2)))
int tb_run(const char *fmt, ...);

/* A growing, NUL-terminated buffer for an HTTP body: pass tb_buf_append
 * as curl's CURLOPT_WRITEFUNCTION and a tb_buf as its WRITEDATA (data is
 * NULL until something arrived); free with tb_buf_free. */
typedef struct tb_buf {
    char *data;
    size_t len;
} tb_buf;
size_t tb_buf_append(char *p, size_t size, size_t n, void *buf);
void tb_buf_free(tb_buf *b);

/* Lines of the file at path that contain text (0 when it cannot be read). */
int tb_count_lines(const char *path, const char *text);

#endif
