/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gate.h - the header rules every request to `qumail web` must pass before
 * any page sees it (docs/web.md, "Security model"):
 *   Host            exactly 127.0.0.1:PORT or localhost:PORT (DNS rebinding)
 *   Origin          absent, or exactly http://127.0.0.1:PORT or
 *                   http://localhost:PORT (cross-site requests); "null"
 *                   only with Sec-Fetch-Site same-origin, which is what
 *                   Chromium sends for our own form POSTs under
 *                   Referrer-Policy: no-referrer (Fetch: an opaque origin
 *                   of the request, the initiator itself same-origin)
 *   Sec-Fetch-Site  absent, "same-origin" or "none" (another site, or
 *                   another program's page on 127.0.0.1, which is same-site)
 * Pure functions of the header values, so that tests and fuzzing reach
 * them without a socket.
 */
#ifndef QUMAIL_WEB_GATE_H
#define QUMAIL_WEB_GATE_H

#include <stdbool.h>
#include <stdint.h>

bool web_host_ok(const char *host, uint16_t port);
bool web_origin_ok(const char *origin, const char *sec_fetch_site, uint16_t port);
bool web_fetch_site_ok(const char *sec_fetch_site);

#endif
