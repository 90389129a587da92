/* SPDX-License-Identifier: Apache-2.0 */
/*
 * netprefix.c - address ranges of allow_from and the test of a client's
 * address against them (netprefix.h).
 */
#include "kme/netprefix.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#define ADDR_TEXT_MAX 64 /* longer than any numeric address */

static int why_fail(char *why, size_t whylen, const char *text, const char *reason)
{
    snprintf(why, whylen, "'%.64s%s' %s", text, strlen(text) > 64 ? "..." : "", reason);
    return -1;
}

/* Decimal 0..max without sign, spaces or leading zero; -1 otherwise. */
static int parse_bits(const char *s, unsigned max)
{
    if (!*s || (s[0] == '0' && s[1]) || strlen(s) > 3)
        return -1;
    unsigned v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned)(*s - '0');
    }
    return v <= max ? (int)v : -1;
}

static bool host_bits_clear(const net_prefix *p)
{
    unsigned len = p->family == AF_INET ? 4 : 16;
    for (unsigned i = 0; i < len; i++) {
        unsigned keep = p->bits >= (i + 1) * 8 ? 8 : p->bits > i * 8 ? p->bits - i * 8 : 0;
        uint8_t mask = (uint8_t)(keep ? 0xffu << (8 - keep) : 0);
        if (p->addr[i] & (uint8_t)~mask)
            return false;
    }
    return true;
}

int net_prefix_host(const char *host, net_prefix *out)
{
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        out->bits = 32;
        return 0;
    }
    if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
        return 0;
    }
    return -1;
}

int net_prefix_parse(const char *text, net_prefix *out, char *why, size_t whylen)
{
    char addr[ADDR_TEXT_MAX];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);
    if (alen == 0)
        return why_fail(why, whylen, text, "has no address (ADDR or ADDR/PREFIX)");
    if (alen >= sizeof addr)
        return why_fail(why, whylen, text, "is not a numeric IPv4 or IPv6 address");
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    if (net_prefix_host(addr, out) != 0)
        return why_fail(why, whylen, text, "is not a numeric IPv4 or IPv6 address");
    if (!slash)
        return 0;
    unsigned max = out->family == AF_INET ? 32 : 128;
    int bits = parse_bits(slash + 1, max);
    if (bits < 0) {
        char reason[96];
        snprintf(reason, sizeof reason, "has a bad prefix length (a number 0..%u for %s)", max,
                 out->family == AF_INET ? "IPv4" : "IPv6");
        return why_fail(why, whylen, text, reason);
    }
    out->bits = (unsigned)bits;
    if (!host_bits_clear(out))
        return why_fail(why, whylen, text, "has address bits set past the prefix length");
    return 0;
}

static bool in_prefix(const net_prefix *p, int family, const uint8_t *addr)
{
    if (p->family != family)
        return false;
    unsigned full = p->bits / 8, rest = p->bits % 8;
    if (memcmp(p->addr, addr, full) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (p->addr[full] & mask) == (addr[full] & mask);
}

bool net_prefix_match(const net_prefix *list, size_t n, const struct sockaddr *sa)
{
    int family;
    uint8_t addr[16];
    if (sa->sa_family == AF_INET) {
        family = AF_INET;
        memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            family = AF_INET;
            memcpy(addr, a6->s6_addr + 12, 4);
        } else {
            family = AF_INET6;
            memcpy(addr, a6->s6_addr, 16);
        }
    } else {
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (in_prefix(&list[i], family, addr))
            return true;
    return false;
}

void net_prefix_format(const net_prefix *p, char *out, size_t outlen)
{
    char a[INET6_ADDRSTRLEN] = "?";
    inet_ntop(p->family, p->addr, a, sizeof a);
    snprintf(out, outlen, "%s/%u", a, p->bits);
}
