/* SPDX-License-Identifier: Apache-2.0 */
/*
 * errors.h - the result codes of libqumail's message core (envelope, levels).
 *
 * One enum for every function in src/mail, so that the qumail CLI can map a
 * failure to its exit code (tampered 7, malformed 8, ...) without knowing
 * which layer failed.  qm_strerror() gives the text for the user; the texts
 * never include key material or key IDs.
 */
#ifndef QM_ERRORS_H
#define QM_ERRORS_H

typedef enum qm_err {
    QM_OK = 0,
    QM_E_USAGE,         /* the caller broke an API contract */
    QM_E_NOMEM,
    QM_E_MALFORMED,     /* the envelope does not follow the format */
    QM_E_VERSION,       /* envelope format version we do not know */
    QM_E_LEVEL,         /* level 3 or an unknown level */
    QM_E_TOO_BIG,       /* message beyond the format's limits */
    QM_E_KEY_SHORT,     /* key material shorter (or other) than the envelope names */
    QM_E_NOT_RECIPIENT, /* this SAE is not among the envelope's recipients */
    QM_E_TAMPERED,      /* integrity check failed: no plaintext */
    QM_E_CRYPTO,        /* the crypto library failed */
    /* libqumail proper (keys, stores, transport); qumail exit code in [] */
    QM_E_CONFIG,        /* [2] configuration file missing or invalid */
    QM_E_KME,           /* [3] KME unreachable or answering badly */
    QM_E_AUTH,          /* [4] KME or mail server refused our credentials */
    QM_E_NO_KEYS,       /* [5] not enough key material (Level 2 needs less) */
    QM_E_KEY_USED,      /* [6] a key of the message was already used */
    QM_E_MIME,          /* [8] the outer MIME message is malformed */
    QM_E_TRANSPORT,     /* [9] SMTP, IMAP or Maildir failed */
    QM_E_IO,            /* [9] local file or store failed */
    QM_E_NOT_FOUND,     /* [2] no such message or address */
    QM_E_KEY_NOT_FOUND, /* [6] the KME does not have a key of the message (and we never
                           used it: issued to another reader, expired, or never issued) */
    QM_E_SENDER,        /* [10] the message verifies, but its From or Sender address is not
                           bound to the SAE that sent it (docs/qumail-format.md §6) */
    QM_E_PENDING,       /* [9] a file of [store] dir/pending is corrupt or not ours */
} qm_err;

/* Text of a code; never NULL. */
const char *qm_strerror(qm_err err);

#endif
