/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gate.c - Host, Origin and Sec-Fetch-Site rules (gate.h).  Comparisons are
 * exact and case-sensitive: browsers send these headers in lower case and
 * with the port they connected to, and anything else is not our page.
 */
#include "web/gate.h"

#include <stdio.h>
#include <string.h>

static bool is_authority(const char *s, uint16_t port)
{
    char a[32], b[32];
    snprintf(a, sizeof a, "127.0.0.1:%u", (unsigned)port);
    snprintf(b, sizeof b, "localhost:%u", (unsigned)port);
    return strcmp(s, a) == 0 || strcmp(s, b) == 0;
}

bool web_host_ok(const char *host, uint16_t port)
{
    return host && is_authority(host, port);
}

bool web_origin_ok(const char *origin, const char *sec_fetch_site, uint16_t port)
{
    if (!origin)
        return true;
    /* Set by the browser, never by a page: a null Origin from our own page. */
    if (strcmp(origin, "null") == 0)
        return sec_fetch_site && strcmp(sec_fetch_site, "same-origin") == 0;
    return strncmp(origin, "http://", 7) == 0 && is_authority(origin + 7, port);
}

bool web_fetch_site_ok(const char *v)
{
    return !v || strcmp(v, "same-origin") == 0 || strcmp(v, "none") == 0;
}
