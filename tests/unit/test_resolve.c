/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_resolve.c - getaddrinfo with a time bound (src/common/resolve.c):
 * a name from /etc/hosts and a numeric address resolve as getaddrinfo
 * resolves them; a numeric-only lookup of a name fails as getaddrinfo
 * fails; a bound of 0 ms gives either the answer or "timed out", and a
 * lookup left behind frees itself (the suite runs under ASan's leak check
 * and valgrind).  A resolver that hangs cannot be staged here without
 * changing the machine's DNS configuration.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/resolve.h"

static bool has_loopback(const struct addrinfo *res)
{
    for (const struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET &&
            ((const struct sockaddr_in *)ai->ai_addr)->sin_addr.s_addr == htonl(INADDR_LOOPBACK))
            return true;
        if (ai->ai_family == AF_INET6 &&
            IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr))
            return true;
    }
    return false;
}

static void test_localhost(void **state)
{
    (void)state;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    bool timed_out = true;
    assert_int_equal(resolve_within("localhost", "443", &hints, 10000, &res, &timed_out), 0);
    assert_false(timed_out);
    assert_non_null(res);
    assert_true(has_loopback(res));
    assert_int_equal(ntohs(((struct sockaddr_in *)res->ai_addr)->sin_port), 443);
    freeaddrinfo(res);
}

static void test_numeric(void **state)
{
    (void)state;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST };
    struct addrinfo *res = NULL;
    bool timed_out = true;
    assert_int_equal(resolve_within("127.0.0.1", "8443", &hints, 0, &res, &timed_out), 0);
    assert_false(timed_out);
    assert_true(has_loopback(res));
    freeaddrinfo(res);
    res = NULL;
    assert_int_equal(resolve_within("::1", "8443", &hints, 0, &res, &timed_out), 0);
    assert_true(has_loopback(res));
    freeaddrinfo(res);
    res = (struct addrinfo *)&hints; /* must be reset */
    assert_int_equal(resolve_within("localhost", "8443", &hints, 1000, &res, &timed_out),
                     EAI_NONAME);
    assert_null(res);
    assert_false(timed_out);
}

static void test_zero_bound(void **state)
{
    (void)state;
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    int answered = 0, gave_up = 0;
    for (int i = 0; i < 50; i++) {
        struct addrinfo *res = NULL;
        bool timed_out = false;
        int rc = resolve_within("localhost", "443", &hints, 0, &res, &timed_out);
        if (timed_out) {
            assert_int_equal(rc, EAI_AGAIN);
            assert_null(res);
            gave_up++;
        } else {
            assert_int_equal(rc, 0);
            assert_true(has_loopback(res));
            freeaddrinfo(res);
            answered++;
        }
    }
    print_message("0 ms bound: %d answered, %d gave up\n", answered, gave_up);
    usleep(200 * 1000); /* let the lookups left behind end and free themselves */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_localhost),
        cmocka_unit_test(test_numeric),
        cmocka_unit_test(test_zero_bound),
    };
    return cmocka_run_group_tests_name("resolve", tests, NULL, NULL);
}
