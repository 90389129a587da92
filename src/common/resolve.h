/* SPDX-License-Identifier: Apache-2.0 */
/*
 * resolve.h - name resolution with a time bound.
 *
 * getaddrinfo() blocks for as long as the system's resolver takes (with an
 * unreachable DNS server, several times its 5-second timeout), and it has
 * no timeout of its own.  The HTTPS client (httpsc.c) bounds every wait of
 * a call by the call's deadline, so a name is looked up in a thread of its
 * own here: the caller waits until the answer or the deadline, whichever
 * comes first.  A lookup that outlives its caller finishes in its thread
 * and frees what it holds; nothing is left behind for the caller.
 * Numeric hosts (AI_NUMERICHOST) need no lookup and are converted at once.
 */
#ifndef QC_RESOLVE_H
#define QC_RESOLVE_H

#include <netdb.h>
#include <stdbool.h>

/* getaddrinfo(host, port, hints, res), waiting at most timeout_ms.  Returns
 * 0 with *res (free with freeaddrinfo), a getaddrinfo error code (EAI_*,
 * for gai_strerror) or, when the time ran out, EAI_AGAIN with *timed_out
 * set.  EAI_SYSTEM leaves the cause in errno, as getaddrinfo does. */
int resolve_within(const char *host, const char *port, const struct addrinfo *hints,
                   long timeout_ms, struct addrinfo **res, bool *timed_out);

#endif
