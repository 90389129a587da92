/* SPDX-License-Identifier: Apache-2.0 */
/*
 * netprefix.h - "ADDR[/PREFIX]" address ranges: the [peer_api] and [link]
 * allow_from lists of the KME configuration, and the test of a connecting
 * client's address against them (before any TLS).
 *
 * Parsed strictly (fuzzed: fuzz/fuzz_netprefix.c): a numeric IPv4 or IPv6
 * address, an optional prefix length in decimal without sign or leading
 * zero, no host bits set past the prefix (10.0.0.1/8 is a typo of
 * 10.0.0.0/8 or of 10.0.0.1, so it is refused rather than guessed).
 */
#ifndef QC_KME_NETPREFIX_H
#define QC_KME_NETPREFIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct net_prefix {
    int family;               /* AF_INET or AF_INET6 */
    uint8_t addr[16];         /* network byte order; 4 bytes used for IPv4 */
    unsigned bits;            /* prefix length */
} net_prefix;

/* Parse one "ADDR[/PREFIX]" (no prefix: the single address).  0, or -1
 * with a reason (quoting at most 64 bytes of text) in why. */
int net_prefix_parse(const char *text, net_prefix *out, char *why, size_t whylen);

/* The single address of a numeric host ("127.0.0.1", "::1"); 0 or -1. */
int net_prefix_host(const char *host, net_prefix *out);

/* Does the address sa (AF_INET, AF_INET6; an IPv4-mapped IPv6 address
 * counts as its IPv4 address) fall in one of list[0..n)? */
bool net_prefix_match(const net_prefix *list, size_t n, const struct sockaddr *sa);

/* "ADDR/BITS" of p into out (at least 64 bytes). */
void net_prefix_format(const net_prefix *p, char *out, size_t outlen);

#endif
