/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testbed_env.h - read DIR/testbed.env (scripts/testbed writes it: one
 * KEY=VALUE per line) in the system tests that run against a testbed.
 */
#ifndef QC_TESTS_TESTBED_ENV_H
#define QC_TESTS_TESTBED_ENV_H

/* The value of key in dir/testbed.env (malloc'd; the last line for the key
 * wins, as in a shell), or NULL when the file or the key is missing.  The
 * file is read afresh each time: `scripts/testbed start` rewrites PIDs. */
char *testbed_env_value(const char *dir, const char *key);

#endif
