/* SPDX-License-Identifier: Apache-2.0 */
/*
 * listen_setup.c - see listen_setup.h.
 */
#include "common/listen_setup.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/secret.h"

int listen_sockaddr(const char *host, unsigned port, struct sockaddr_storage *ss, bool *ipv6)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *ipv6 = false;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *ipv6 = true;
        return 0;
    }
    return -1;
}

void listen_pem_free(char *pem)
{
    if (pem) {
        secret_wipe(pem, strlen(pem));
        free(pem);
    }
}

char *listen_pem_read(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    /* one buffer of the largest size: no realloc leaves a copy of a key
     * behind in freed memory */
    char *buf = malloc(LISTEN_PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, LISTEN_PEM_MAX + 1, f) : 0;
    bool failed = buf && ferror(f);
    fclose(f);
    const char *why = !buf ? "out of memory" : failed ? "read error" : n == 0 ? "is empty"
                      : n > LISTEN_PEM_MAX ? "is larger than 1 MiB" : NULL;
    if (why) {
        snprintf(err, errlen, "%s %s", path, why);
        if (buf) {
            secret_wipe(buf, n);
            free(buf);
        }
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}
