/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qkd014_exit.h - the exit statuses of the qkd014 command, one per kind of
 * failure a shell script may want to tell apart.  The numbers are an
 * interface: docs/qkd014.1 (EXIT STATUS), docs/libqkd014.md (Errors) and
 * tests/sae/test-cli rely on them, so a new code gets a new number and an
 * old number never changes its meaning.  qumail has its own (qumail_exit.h).
 */
#ifndef QKD014_EXIT_H
#define QKD014_EXIT_H

typedef enum qkd014_exit {
    QKD014_EXIT_OK = 0,
    QKD014_EXIT_OTHER = 1,     /* out of memory, cannot write the key file or output */
    QKD014_EXIT_USAGE = 2,     /* bad option, missing connection option or KME ID,
                                * a key ID that is not a UUID */
    QKD014_EXIT_TRANSPORT = 3, /* cannot connect, timeout, connection lost */
    QKD014_EXIT_AUTH = 4,      /* TLS failure (certificates, host name) or 401 */
    QKD014_EXIT_BADREQ = 5,    /* 400 Bad Request: the KME's message on stderr */
    QKD014_EXIT_UNAVAIL = 6,   /* 503 (keys short, KME trouble) or another status */
    QKD014_EXIT_MALFORMED = 7, /* the KME's answer breaks the standard */
    QKD014_EXIT_KME_ID = 8,    /* the server's certificate names another KME */
} qkd014_exit;

#endif
