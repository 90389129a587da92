/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_admin_gate.c - what any local program sends the admin listeners of
 * qkd-kme and qkd-link, and what ends up in their metrics: the Host rule
 * (src/common/admin_http.c) against a listen address taken from the input
 * too, and the Prometheus writer (src/common/prom.c) with a label value
 * and help text from the input.  Checks: a Host accepted is exactly
 * LISTEN:PORT or localhost:PORT on loopback; the exposition text has
 * exactly the lines the writer meant, whatever the value holds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/admin_http.h"
#include "common/prom.h"

static void check_host(const char *host, const char *listen, uint16_t port)
{
    if (!admin_host_ok(host, listen, port))
        return;
    char a[128], b[64];
    snprintf(a, sizeof a, strchr(listen, ':') ? "[%s]:%u" : "%s:%u", listen, (unsigned)port);
    snprintf(b, sizeof b, "localhost:%u", (unsigned)port);
    if (strcmp(host, a) != 0 && !(strcmp(host, b) == 0 && admin_is_loopback(listen)))
        abort();
}

static void check_prom(const char *value)
{
    prom_writer w;
    prom_init(&w);
    prom_family(&w, "x_total", PROM_COUNTER, value);
    prom_label l[] = { { "peer", value }, { "kind", value } };
    prom_u64(&w, l, 2, 1);
    static const double bounds[] = { 0.1, 1 };
    const uint64_t counts[] = { 1, 2, 3 };
    prom_family(&w, "x_seconds", PROM_HISTOGRAM, value);
    prom_histogram(&w, l, 1, bounds, counts, 2, 1.5);
    size_t len = 0, lines = 0;
    char *s = prom_finish(&w, &len);
    if (!s)
        return;
    for (size_t i = 0; i < len; i++)
        lines += s[i] == '\n';
    if (lines != 2 + 1 + 2 + 3 + 2 || strlen(s) != len) /* HELP, TYPE; a sample; 3 buckets, sum, count */
        abort();
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* input: PORT(2) LISTEN '\0' HOST; the whole input as a label value */
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    if (size >= 2) {
        uint16_t port = (uint16_t)(data[0] << 8 | data[1]);
        const char *listen = text + 2;
        size_t ll = strlen(listen);
        const char *host = 2 + ll < size ? listen + ll + 1 : "";
        check_host(host, listen, port);
        admin_is_loopback(listen);
    }
    check_prom(text);
    free(text);
    return 0;
}
