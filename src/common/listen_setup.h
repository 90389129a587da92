/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listen_setup.h - what every HTTPS listener of ours (the KME's SAE, peer
 * and link listeners, the admin listeners of qkd-kme and qkd-link) needs
 * before libmicrohttpd starts: the numeric listen address as a socket
 * address, and its PEM files (a private key among them) in memory that is
 * wiped when it is freed.
 */
#ifndef QC_LISTEN_SETUP_H
#define QC_LISTEN_SETUP_H

#include <stdbool.h>
#include <sys/socket.h>

/* host (a numeric IPv4 or IPv6 address) and port into *ss; *ipv6 says
 * which.  0, or -1 when host is not a numeric address. */
int listen_sockaddr(const char *host, unsigned port, struct sockaddr_storage *ss, bool *ipv6);

#define LISTEN_PEM_MAX (1024 * 1024) /* the largest PEM file read */

/* The whole file at path, NUL-terminated (free with listen_pem_free); NULL
 * with a reason in err when it cannot be read, is empty or is larger than
 * LISTEN_PEM_MAX.  The read buffers are wiped: it may hold a private key. */
char *listen_pem_read(const char *path, char *err, size_t errlen);
void listen_pem_free(char *pem);

#endif
