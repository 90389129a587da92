/* SPDX-License-Identifier: Apache-2.0 */
/*
 * mailserver.h - mail transport over real servers: SMTP submission and IMAP.
 *
 * The network half of `qumail send` ([mail] send = smtp) and of `qumail
 * inbox` / `qumail read` ([mail] inbox = imap).  Implemented with libcurl
 * (GnuTLS flavour).  TLS is always required: smtp:// and imap:// use
 * STARTTLS and fail if the server does not offer it; smtps:// and imaps://
 * are implicit TLS.  The server certificate and host name are always
 * verified (against ca_file, or the system store when it is NULL); no
 * credential is ever sent before TLS is up.  Messages go out and come back
 * byte for byte (SMTP: LF lines become CRLF; IMAP returns what the server
 * stores, CRLF lines).  Reading never sets \Seen.
 *
 * Errors: QM_E_AUTH (the server refused the login), QM_E_NOT_FOUND (no such
 * message or mailbox), QM_E_CONFIG (a URL that is not one of the four
 * schemes, or that carries credentials), QM_E_USAGE (NULL arguments or an
 * address that cannot be used in an SMTP command), QM_E_NOMEM,
 * QM_E_TRANSPORT (anything else: connection, TLS, verification, timeout,
 * server refusals).  `detail` (may be NULL) receives one line of reason; it
 * never contains the password.
 */
#ifndef QM_MAILSERVER_H
#define QM_MAILSERVER_H

#include <stddef.h>
#include <stdint.h>

#include "mail/errors.h"

typedef struct qm_mailserver {
    const char *url;        /* smtp://127.0.0.1:PORT (STARTTLS required), smtps://..., imap://, imaps:// */
    const char *username;
    const char *password;
    const char *ca_file;    /* CA that signs the server certificate; NULL = system store */
} qm_mailserver;

/* Send msg (LF or CRLF lines) from `from` to the rcpt addresses.  TLS is always required.
 * Errors: QM_E_AUTH (login refused), QM_E_TRANSPORT (anything else); detail gets a one-line
 * reason (never the password). */
qm_err qm_smtp_send(const qm_mailserver *s, const char *from, const char *const *rcpt,
                    size_t n_rcpt, const uint8_t *msg, size_t len, char *detail, size_t detail_cap);

typedef struct qm_imap_entry { char *uid; } qm_imap_entry;

/* UIDs of the messages in mailbox (e.g. "INBOX"), ascending. */
qm_err qm_imap_list(const qm_mailserver *s, const char *mailbox, qm_imap_entry **entries,
                    size_t *n, char *detail, size_t detail_cap);
void qm_imap_entries_free(qm_imap_entry *entries, size_t n);

/* The whole message with this UID (BODY.PEEK[]: does not set \Seen); QM_E_NOT_FOUND if absent. */
qm_err qm_imap_fetch(const qm_mailserver *s, const char *mailbox, const char *uid,
                     uint8_t **msg, size_t *len, char *detail, size_t detail_cap);
/* At most the first max bytes of the message with this UID (BODY.PEEK[]<0.max>: what the
 * inbox lists it from); a server answering with more is QM_E_TRANSPORT. */
qm_err qm_imap_fetch_prefix(const qm_mailserver *s, const char *mailbox, const char *uid,
                            size_t max, uint8_t **msg, size_t *len, char *detail,
                            size_t detail_cap);

#endif
