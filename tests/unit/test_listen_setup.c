/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_listen_setup.c - what our HTTPS listeners read before they start
 * (src/common/listen_setup.c): numeric IPv4 and IPv6 listen addresses, a
 * name or garbage refused; PEM files read whole, and a missing, empty or
 * oversized file refused with its path and the reason.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/listen_setup.h"

static void test_addresses(void **state)
{
    (void)state;
    struct sockaddr_storage ss;
    bool v6 = true;
    assert_int_equal(listen_sockaddr("127.0.0.1", 8443, &ss, &v6), 0);
    assert_false(v6);
    const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
    assert_int_equal(a->sin_family, AF_INET);
    assert_int_equal(ntohs(a->sin_port), 8443);
    assert_int_equal(ntohl(a->sin_addr.s_addr), 0x7f000001);
    assert_int_equal(listen_sockaddr("::1", 0, &ss, &v6), 0);
    assert_true(v6);
    assert_int_equal(((const struct sockaddr_in6 *)&ss)->sin6_family, AF_INET6);
    assert_int_equal(listen_sockaddr("localhost", 1, &ss, &v6), -1);
    assert_int_equal(listen_sockaddr("127.0.0.1 ", 1, &ss, &v6), -1);
    assert_int_equal(listen_sockaddr("", 1, &ss, &v6), -1);
}

static void write_file(const char *path, const char *text, long size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (text)
        fputs(text, f);
    fclose(f);
    if (size >= 0)
        assert_int_equal(truncate(path, size), 0);
}

static void test_pem_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_listen_setup.XXXXXX", path[128], err[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/key.pem", dir);
    const char *pem = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
    write_file(path, pem, -1);
    char *got = listen_pem_read(path, err, sizeof err);
    assert_non_null(got);
    assert_string_equal(got, pem);
    listen_pem_free(got);
    listen_pem_free(NULL);

    write_file(path, NULL, 0);
    assert_null(listen_pem_read(path, err, sizeof err));
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "is empty"));

    write_file(path, NULL, LISTEN_PEM_MAX + 1);
    assert_null(listen_pem_read(path, err, sizeof err));
    assert_non_null(strstr(err, "larger than 1 MiB"));
    write_file(path, NULL, LISTEN_PEM_MAX); /* the largest accepted */
    got = listen_pem_read(path, err, sizeof err);
    assert_non_null(got);
    listen_pem_free(got);

    unlink(path);
    assert_null(listen_pem_read(path, err, sizeof err));
    assert_non_null(strstr(err, "cannot open"));
    assert_null(listen_pem_read(dir, err, sizeof err)); /* a directory */
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_pem_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
