/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mailserver_internal.h - what smtp.c, imap.c and imap_reader.c share
 * behind mailserver.h: the one-line detail, server URLs, and one libcurl
 * handle set up with TLS required and verified.
 */
#ifndef QM_MAILSERVER_INTERNAL_H
#define QM_MAILSERVER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

#include "mail/mailserver.h"

enum {
    /* libcurl's connect phase is TCP, TLS, greeting and login together;
     * Dovecot answers a repeated failed login only after a penalty of up
     * to 15 s, which must come out as "login refused", not a timeout. */
    CONNECT_TIMEOUT_S = 30,
    OPERATION_TIMEOUT_S = 600,      /* a whole send, list or fetch */
    STALL_TIMEOUT_S = 30,           /* no byte moving for this long: give up */
};

/* One line of reason into detail (NULL or 0 capacity: nothing).  Control
 * characters (a server's CR LF, say) become spaces. */
void qm_detail_set(char *detail, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The parts of a server URL we use: which scheme, and scheme://host:port for
 * messages.  Credentials in the URL are refused (they would end up in error
 * messages, and the password has its own field). */
typedef struct server_url {
    bool implicit_tls;
    char shown[300];
    char base[300];  /* scheme://host:port/ for libcurl */
} server_url;

/* url with scheme `plain` (STARTTLS) or `tls` (implicit TLS) into *out;
 * QM_E_CONFIG with a detail otherwise. */
qm_err qm_server_url_parse(const char *url, const char *plain, const char *tls, server_url *out,
                           char *detail, size_t cap);

/* URL, user name and password all given (else a detail). */
bool qm_credentials_given(const qm_mailserver *s, char *detail, size_t cap);

/* A handle set up for one operation: TLS required and verified, bounded in
 * time, restricted to the two schemes of its protocol. */
CURL *qm_curl_handle(const qm_mailserver *s, const server_url *url, const char *protocols,
                     char errbuf[CURL_ERROR_SIZE]);

/* The error class and detail of a failed libcurl operation. */
qm_err qm_curl_failure(CURLcode rc, const char *errbuf, const char *what,
                       const server_url *url, char *detail, size_t cap);

#endif
