/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mailserver.c - what SMTP (smtp.c) and IMAP (imap.c) share: server URLs,
 * the one-line detail, and one libcurl handle with TLS required and
 * verified (mailserver_internal.h; mailserver.h has the contract).
 */
#include "mail/mailserver_internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/tls_policy.h"

/* --- details ------------------------------------------------------------- */

void qm_detail_set(char *detail, size_t cap, const char *fmt, ...)
{
    if (detail == NULL || cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, cap, fmt, ap);
    va_end(ap);
    for (char *p = detail; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/* --- URLs ---------------------------------------------------------------- */

qm_err qm_server_url_parse(const char *url, const char *plain, const char *tls, server_url *out,
                           char *detail, size_t cap)
{
    CURLU *u = curl_url();
    if (u == NULL)
        return QM_E_NOMEM;
    qm_err err = QM_E_CONFIG;
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *path = NULL;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        qm_detail_set(detail, cap, "mail server URL is not a URL of the form %s://HOST[:PORT]", plain);
        goto out;
    }
    if (strcmp(scheme, plain) != 0 && strcmp(scheme, tls) != 0) {
        qm_detail_set(detail, cap, "mail server URL scheme '%s' is neither %s:// (STARTTLS) nor %s://",
                      scheme, plain, tls);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK) {
        qm_detail_set(detail, cap, "mail server URL must not carry a user name or password "
                      "(they have their own settings)");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK && strcmp(path, "/") != 0 &&
        path[0] != '\0') {
        qm_detail_set(detail, cap, "mail server URL must not have a path (%s://HOST[:PORT])", plain);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        qm_detail_set(detail, cap, "mail server URL has no usable port");
        goto out;
    }
    out->implicit_tls = strcmp(scheme, tls) == 0;
    int a = snprintf(out->shown, sizeof out->shown, "%s://%s:%s", scheme, host, port);
    int b = snprintf(out->base, sizeof out->base, "%s://%s:%s/", scheme, host, port);
    if (a < 0 || (size_t)a >= sizeof out->shown || b < 0 || (size_t)b >= sizeof out->base) {
        qm_detail_set(detail, cap, "mail server URL is too long");
        goto out;
    }
    err = QM_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_free(path);
    curl_url_cleanup(u);
    return err;
}

/* --- one libcurl handle ------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static bool curl_ready;

/* libcurl's global set-up, once per process, here: libqkd014 no longer
 * uses libcurl (common/httpsc.c), so nothing else in a qumail process
 * does it. */
static void curl_setup(void)
{
    curl_ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

CURL *qm_curl_handle(const qm_mailserver *s, const server_url *url, const char *protocols,
                     char errbuf[CURL_ERROR_SIZE])
{
    pthread_once(&curl_once, curl_setup);
    CURL *h = curl_ready ? curl_easy_init() : NULL;
    if (h == NULL)
        return NULL;
    errbuf[0] = '\0';
    bool ok = curl_easy_setopt(h, CURLOPT_URL, url->base) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protocols) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)QC_TLS_CURL_MIN_VERSION) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)OPERATION_TIMEOUT_S) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)STALL_TIMEOUT_S) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_USERNAME, s->username) == CURLE_OK &&
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->password) == CURLE_OK;
    if (ok && s->ca_file != NULL)
        ok = curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file) == CURLE_OK;
    if (!ok) {
        curl_easy_cleanup(h);
        return NULL;
    }
    return h;
}

qm_err qm_curl_failure(CURLcode rc, const char *errbuf, const char *what,
                       const server_url *url, char *detail, size_t cap)
{
    const char *why = errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_LOGIN_DENIED) {
        qm_detail_set(detail, cap, "%s %s: login refused: %s", what, url->shown, why);
        return QM_E_AUTH;
    }
    if (rc == CURLE_OUT_OF_MEMORY)
        return QM_E_NOMEM;
    qm_detail_set(detail, cap, "%s %s: %s", what, url->shown, why);
    return QM_E_TRANSPORT;
}

bool qm_credentials_given(const qm_mailserver *s, char *detail, size_t cap)
{
    if (s == NULL || s->url == NULL || s->username == NULL || s->password == NULL) {
        qm_detail_set(detail, cap, "mail server URL, user name and password are required");
        return false;
    }
    return true;
}
