/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_allow_from.c - the listeners' address rules of the KME
 * configuration: "ADDR[/PREFIX]" ranges (src/kme/netprefix.c), their match
 * against a client's address, and the [peer_api]/[link] allow_from,
 * per_ip_limit and [limits] handshake_timeout_ms keys of config.c, with
 * their defaults and FILE:LINE messages for every bad value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kme/config.h"
#include "kme/netprefix.h"

/* ------------------------------------------------------------ netprefix */

static void expect_parse_error(const char *text, const char *reason)
{
    net_prefix p;
    char why[256];
    assert_int_equal(net_prefix_parse(text, &p, why, sizeof why), -1);
    if (!strstr(why, reason))
        fail_msg("'%s': got '%s', want '%s'", text, why, reason);
}

static void test_parse(void **state)
{
    (void)state;
    net_prefix p;
    char why[256], out[64];
    assert_int_equal(net_prefix_parse("10.1.0.0/16", &p, why, sizeof why), 0);
    net_prefix_format(&p, out, sizeof out);
    assert_string_equal(out, "10.1.0.0/16");
    assert_int_equal(net_prefix_parse("192.0.2.7", &p, why, sizeof why), 0);
    assert_int_equal(p.bits, 32);
    assert_int_equal(net_prefix_parse("2001:db8::/32", &p, why, sizeof why), 0);
    assert_int_equal(p.family, AF_INET6);
    assert_int_equal(net_prefix_parse("0.0.0.0/0", &p, why, sizeof why), 0);
    assert_int_equal(net_prefix_parse("::/0", &p, why, sizeof why), 0);
    expect_parse_error("10.0.0.0/33", "bad prefix length (a number 0..32 for IPv4)");
    expect_parse_error("::/129", "bad prefix length (a number 0..128 for IPv6)");
    expect_parse_error("10.0.0.0/", "bad prefix length");
    expect_parse_error("10.0.0.0/08", "bad prefix length");
    expect_parse_error("10.0.0.0/+8", "bad prefix length");
    expect_parse_error("10.0.0.0/8/8", "bad prefix length");
    expect_parse_error("10.0.0.x", "is not a numeric IPv4 or IPv6 address");
    expect_parse_error("localhost", "is not a numeric IPv4 or IPv6 address");
    expect_parse_error("/8", "has no address");
    expect_parse_error("10.0.0.1/8", "has address bits set past the prefix length");
    expect_parse_error("2001:db8::1/64", "has address bits set past the prefix length");
    /* a long value is quoted shortened, never whole */
    char longv[300];
    memset(longv, '1', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';
    assert_int_equal(net_prefix_parse(longv, &p, why, sizeof why), -1);
    assert_true(strlen(why) < 140);
}

static struct sockaddr_storage v4(const char *a)
{
    struct sockaddr_storage ss = { 0 };
    struct sockaddr_in *s = (struct sockaddr_in *)&ss;
    s->sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, a, &s->sin_addr), 1);
    return ss;
}

static struct sockaddr_storage v6(const char *a)
{
    struct sockaddr_storage ss = { 0 };
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
    s->sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, a, &s->sin6_addr), 1);
    return ss;
}

static void test_match(void **state)
{
    (void)state;
    net_prefix list[3];
    char why[128];
    assert_int_equal(net_prefix_parse("127.0.0.1", &list[0], why, sizeof why), 0);
    assert_int_equal(net_prefix_parse("10.8.0.0/13", &list[1], why, sizeof why), 0);
    assert_int_equal(net_prefix_parse("2001:db8:ab00::/40", &list[2], why, sizeof why), 0);
    struct sockaddr_storage a;
#define MATCH(ss) (a = (ss), net_prefix_match(list, 3, (struct sockaddr *)&a))
    assert_true(MATCH(v4("127.0.0.1")));
    assert_false(MATCH(v4("127.0.0.2")));
    assert_true(MATCH(v4("10.8.0.0")));
    assert_true(MATCH(v4("10.15.255.255")));
    assert_false(MATCH(v4("10.16.0.0")));
    assert_false(MATCH(v4("10.7.255.255")));
    assert_true(MATCH(v6("2001:db8:abff::1")));
    assert_false(MATCH(v6("2001:db8:ac00::1")));
    /* an IPv4 client on a dual-stack socket */
    assert_true(MATCH(v6("::ffff:127.0.0.1")));
    assert_false(MATCH(v6("::ffff:127.0.0.2")));
    assert_false(MATCH(v6("::1")));
    a = v4("127.0.0.1");
    assert_false(net_prefix_match(list, 0, (struct sockaddr *)&a));
#undef MATCH
}

/* --------------------------------------------------------- configuration */

static char dir[] = "/tmp/qc-allow-XXXXXX";
static char conf[300], err[1024];

/* A pair configuration; extra goes at line 24 (in [link]) or replaces
 * nothing when empty.  Line numbers below are facts the tests rely on. */
static int load(const char *peer_extra, const char *link_extra, kme_config *c)
{
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f,
            "[kme]\n"                                 /*  1 */
            "id = KME-T\n"                            /*  2 */
            "database = %s/kme.db\n"                  /*  3 */
            "[sae_api]\n"                             /*  4 */
            "listen = 127.0.0.1:0\n"                  /*  5 */
            "cert = %s/f\n"                           /*  6 */
            "key = %s/f\n"                            /*  7 */
            "ca = %s/f\n"                             /*  8 */
            "[saes]\n"                                /*  9 */
            "local = SAE_1\n"                         /* 10 */
            "[peer_api]\n"                            /* 11 */
            "listen = 0.0.0.0:0\n"                    /* 12 */
            "ca = %s/f\n"                             /* 13 */
            "%s\n"                                    /* 14 */
            "[peer KME-P]\n"                          /* 15 */
            "address = 10.1.2.3:9000\n"               /* 16 */
            "saes = SAE_P\n"                          /* 17 */
            "[peer KME-Q]\n"                          /* 18 */
            "address = [2001:db8::7]:9000\n"          /* 19 */
            "saes = SAE_Q\n"                          /* 20 */
            "[link]\n"                                /* 21 */
            "listen = 192.0.2.1:0\n"                  /* 22 */
            "id = LINK\nside = A\npeer = KME-P\n"     /* 23-25 */
            "%s\n",                                   /* 26 */
            dir, dir, dir, dir, dir, peer_extra, link_extra);
    assert_int_equal(fclose(f), 0);
    return kme_config_load(conf, c, err, sizeof err);
}

static void prefixes(const kme_allow *a, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < a->n; i++) {
        char one[64];
        net_prefix_format(&a->nets[i], one, sizeof one);
        snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? " " : "", one);
    }
}

static void test_defaults(void **state)
{
    (void)state;
    kme_config c;
    char text[512];
    assert_int_equal(load("", "", &c), 0);
    assert_int_equal(c.handshake_timeout_ms, 3000);
    assert_int_equal(c.sae_per_ip_limit, 0);
    assert_int_equal(c.peer_per_ip_limit, 0);
    assert_int_equal(c.n_links, 1);
    assert_int_equal(c.links[0].per_ip_limit, 0);
    prefixes(&c.peer_allow, text, sizeof text);
    assert_string_equal(text, "10.1.2.3/32 2001:db8::7/128");
    prefixes(&c.links[0].allow, text, sizeof text);
    assert_string_equal(text, "127.0.0.0/8 ::1/128 192.0.2.1/32 10.1.2.3/32");
    kme_config_free(&c);
}

static void test_given(void **state)
{
    (void)state;
    kme_config c;
    char text[512];
    assert_int_equal(load("allow_from = 198.51.100.0/24  2001:db8::/32\nper_ip_limit = 8",
                          "allow_from = 0.0.0.0/0", &c), 0);
    prefixes(&c.peer_allow, text, sizeof text);
    assert_string_equal(text, "198.51.100.0/24 2001:db8::/32");
    prefixes(&c.links[0].allow, text, sizeof text);
    assert_string_equal(text, "0.0.0.0/0");
    assert_int_equal(c.peer_per_ip_limit, 8);
    kme_config_free(&c);
}

static void expect_error(const char *peer_extra, const char *link_extra, const char *want)
{
    kme_config c;
    assert_int_equal(load(peer_extra, link_extra, &c), -1);
    char full[1400];
    snprintf(full, sizeof full, "%s:%s", conf, want);
    if (strcmp(err, full) != 0)
        fail_msg("got  '%s'\nwant '%s'", err, full);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("allow_from = 10.0.0.0/33", "",
                 "14: [peer_api] allow_from: '10.0.0.0/33' has a bad prefix length (a number 0..32 for IPv4)");
    expect_error("allow_from = 10.1.2.3 10.0.0.x", "",
                 "14: [peer_api] allow_from: '10.0.0.x' is not a numeric IPv4 or IPv6 address");
    expect_error("", "allow_from = 10.0.0.1/8",
                 "26: [link] allow_from: '10.0.0.1/8' has address bits set past the prefix length");
    expect_error("allow_from =", "", "14: [peer_api] allow_from: empty value");
    expect_error("per_ip_limit = -1", "", "14: [peer_api] per_ip_limit: '-1' is not an integer in 0..1000000");
    expect_error("", "per_ip_limit = many", "26: [link] per_ip_limit: 'many' is not an integer in 0..1000000");
    /* 65 entries: more than KME_ALLOW_MAX */
    char many[2048] = "allow_from =";
    for (int i = 0; i < 65; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), " 10.0.%d.0/24", i);
    expect_error(many, "", "14: [peer_api] allow_from: more than 64 entries");
}

static void test_handshake_timeout_range(void **state)
{
    (void)state;
    kme_config c;
    assert_int_equal(load("", "[limits]\nhandshake_timeout_ms = 99", &c), -1);
    assert_non_null(strstr(err, ":27: [limits] handshake_timeout_ms: '99' is not an integer in 100..600000"));
    assert_int_equal(load("", "[limits]\nhandshake_timeout_ms = 1500", &c), 0);
    assert_int_equal(c.handshake_timeout_ms, 1500);
    kme_config_free(&c);
}

static int setup(void **state)
{
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(conf, sizeof conf, "%s/kme.conf", dir);
    char f[300];
    snprintf(f, sizeof f, "%s/f", dir);
    FILE *fp = fopen(f, "w");
    if (!fp)
        return -1;
    fputs("x\n", fp);
    return fclose(fp);
}

static int teardown(void **state)
{
    (void)state;
    char path[320];
    snprintf(path, sizeof path, "%s/f", dir);
    unlink(path);
    unlink(conf);
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_given),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_handshake_timeout_range),
    };
    return cmocka_run_group_tests_name("allow_from and listener limits", tests, setup, teardown);
}
