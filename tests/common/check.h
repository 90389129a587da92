/* SPDX-License-Identifier: Apache-2.0 */
/*
 * check.h - cmocka failures with a message: CHECK(cond, fmt, ...) fails
 * the running test at the caller's line with the formatted text when cond
 * is false; CHECK_AT and FAIL_AT do it for a given file and line (helpers
 * that check for their callers).  Include after <cmocka.h>.
 */
#ifndef QC_TESTS_CHECK_H
#define QC_TESTS_CHECK_H

#define FAIL_AT(file, line, ...)                                             \
    do {                                                                     \
        print_error("%s:%d: ", (file), (line));                             \
        print_error(__VA_ARGS__);                                            \
        print_error("\n");                                                   \
        _fail((file), (line));                                               \
    } while (0)
#define CHECK_AT(file, line, cond, ...)                                      \
    do {                                                                     \
        if (!(cond))                                                         \
            FAIL_AT(file, line, __VA_ARGS__);                                \
    } while (0)
#define CHECK(cond, ...) CHECK_AT(__FILE__, __LINE__, cond, __VA_ARGS__)

#endif
