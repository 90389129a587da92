/* SPDX-License-Identifier: Apache-2.0 */
/*
 * smtp.c - SMTP submission over TLS with libcurl's own SMTP engine
 * (mailserver.h has the contract): STARTTLS (CURLUSESSL_ALL) or implicit
 * TLS, AUTH, MAIL FROM / RCPT TO, DATA with dot-stuffing.  Our part is the
 * LF -> CRLF conversion (CURLOPT_CRLF would turn CRLF into CRCRLF) and the
 * error classes.
 */
#include "mail/mailserver_internal.h"

#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An address usable in MAIL FROM:<...> / RCPT TO:<...>: printable, no
 * spaces or angle brackets, at most 254 characters (RFC 5321). */
static bool smtp_address_ok(const char *a)
{
    size_t n = a != NULL ? strlen(a) : 0;
    if (n == 0 || n > 254)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)a[i];
        if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
            return false;
    }
    return true;
}

/* msg with every LF that lacks its CR turned into CRLF.  The copy may hold
 * a plaintext message (Level 4): the caller wipes it. */
static uint8_t *to_crlf(const uint8_t *msg, size_t len, size_t *out_len)
{
    size_t bare = 0;
    for (size_t i = 0; i < len; i++)
        if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
            bare++;
    if (len > SIZE_MAX - bare - 1)
        return NULL;
    uint8_t *out = malloc(len + bare + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\n' && (i == 0 || msg[i - 1] != '\r'))
            out[o++] = '\r';
        out[o++] = msg[i];
    }
    *out_len = o;
    return out;
}

typedef struct upload {
    const uint8_t *data;
    size_t len, pos;
} upload;

static size_t upload_read(char *buf, size_t size, size_t nitems, void *arg)
{
    upload *u = arg;
    size_t n = size * nitems;
    if (n > u->len - u->pos)
        n = u->len - u->pos;
    memcpy(buf, u->data + u->pos, n);
    u->pos += n;
    return n;
}

static struct curl_slist *smtp_recipients(const char *const *rcpt, size_t n_rcpt)
{
    struct curl_slist *list = NULL;
    for (size_t i = 0; i < n_rcpt; i++) {
        char buf[260];
        snprintf(buf, sizeof buf, "<%s>", rcpt[i]);
        struct curl_slist *next = curl_slist_append(list, buf);
        if (next == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }
        list = next;
    }
    return list;
}

qm_err qm_smtp_send(const qm_mailserver *s, const char *from, const char *const *rcpt,
                    size_t n_rcpt, const uint8_t *msg, size_t len, char *detail, size_t detail_cap)
{
    if (detail != NULL && detail_cap > 0)
        detail[0] = '\0';
    if (!qm_credentials_given(s, detail, detail_cap))
        return QM_E_USAGE;
    if ((msg == NULL && len > 0) || rcpt == NULL || n_rcpt == 0) {
        qm_detail_set(detail, detail_cap, "nothing to send or nobody to send it to");
        return QM_E_USAGE;
    }
    if (!smtp_address_ok(from)) {
        qm_detail_set(detail, detail_cap, "sender address is not usable in SMTP");
        return QM_E_USAGE;
    }
    for (size_t i = 0; i < n_rcpt; i++)
        if (!smtp_address_ok(rcpt[i])) {
            qm_detail_set(detail, detail_cap, "recipient address %zu is not usable in SMTP", i + 1);
            return QM_E_USAGE;
        }
    server_url url;
    qm_err err = qm_server_url_parse(s->url, "smtp", "smtps", &url, detail, detail_cap);
    if (err != QM_OK)
        return err;

    size_t wire_len = 0;
    uint8_t *wire = to_crlf(msg != NULL ? msg : (const uint8_t *)"", len, &wire_len);
    struct curl_slist *rcpts = smtp_recipients(rcpt, n_rcpt);
    char from_arg[260];
    snprintf(from_arg, sizeof from_arg, "<%s>", from);
    char errbuf[CURL_ERROR_SIZE];
    CURL *h = wire != NULL && rcpts != NULL ? qm_curl_handle(s, &url, "smtp,smtps", errbuf) : NULL;
    if (h == NULL) {
        err = QM_E_NOMEM;
        goto out;
    }
    upload up = {.data = wire, .len = wire_len};
    if (curl_easy_setopt(h, CURLOPT_MAIL_FROM, from_arg) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpts) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_READFUNCTION, upload_read) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_READDATA, &up) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)wire_len) != CURLE_OK) {
        err = QM_E_NOMEM;
        goto out;
    }
    CURLcode rc = curl_easy_perform(h);
    err = rc == CURLE_OK ? QM_OK : qm_curl_failure(rc, errbuf, "SMTP", &url, detail, detail_cap);
out:
    if (h != NULL)
        curl_easy_cleanup(h);
    curl_slist_free_all(rcpts);
    if (wire != NULL) {
        sodium_memzero(wire, wire_len);
        free(wire);
    }
    return err;
}
