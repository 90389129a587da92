/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_netprefix.c - libFuzzer target for the allow_from parser of the KME
 * configuration (src/kme/netprefix.c): any text is parsed; what parses
 * formats back to a prefix that parses to the same range, and matching
 * never reads past an address.
 */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kme/netprefix.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[256];
    if (size >= sizeof text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    net_prefix p, again;
    char why[160], out[64];
    if (net_prefix_parse(text, &p, why, sizeof why) != 0) {
        if (!why[0])
            __builtin_trap(); /* a refusal always says why */
        return 0;
    }
    net_prefix_format(&p, out, sizeof out);
    if (net_prefix_parse(out, &again, why, sizeof why) != 0 || again.family != p.family
        || again.bits != p.bits || memcmp(again.addr, p.addr, sizeof p.addr) != 0)
        __builtin_trap();
    struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };
    memcpy(&sa.sin6_addr, p.addr, 16);
    (void)net_prefix_match(&p, 1, (struct sockaddr *)&sa);
    return 0;
}
