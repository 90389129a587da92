/* SPDX-License-Identifier: Apache-2.0 */
/*
 * server.h - the HTTP server of `qumail web` (docs/web.md): libmicrohttpd on
 * 127.0.0.1 only, one request thread, every request through the gate of
 * gate.c (Host, Origin, Sec-Fetch-Site, session, CSRF) before any page.
 */
#ifndef QUMAIL_WEB_SERVER_H
#define QUMAIL_WEB_SERVER_H

#include <stddef.h>
#include <stdint.h>

typedef struct web_server web_server;

typedef struct web_server_opts {
    uint16_t port;          /* 0: any free port */
    const char *account;    /* the configured address, shown on pages */
    const struct qm_config *cfg;   /* the account (mail/config.h) */
    struct qkd014_client *kme;     /* kept open between requests; used on the server's thread only */
    struct qm_self *reader;        /* the account as reader (mail/open.h, qm_open_keys done for
                                      decrypting); the server's thread only */
    unsigned idle_s;        /* a session unused this long ends */
    unsigned max_s;         /* and any session this old */
} web_server_opts;

/* Start listening on 127.0.0.1; NULL with the reason in err on failure. */
web_server *web_server_start(const web_server_opts *o, char *err, size_t cap);

/* The port it listens on. */
uint16_t web_server_port(const web_server *w);

/* "http://127.0.0.1:PORT/?token=..." into out; -1 if out is too small. */
int web_server_url(const web_server *w, char *out, size_t cap);

/* Stop (waits for the request thread) and wipe every secret. */
void web_server_stop(web_server *w);

#endif
