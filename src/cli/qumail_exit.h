/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qumail_exit.h - the exit statuses of the qumail command.  The numbers are
 * an interface: docs/qumail.md (Exit status) and docs/qumail.1 (EXIT STATUS)
 * list them and the mail tests check them, so a new code gets a new number
 * and an old number never changes its meaning.  qkd014 has its own
 * (qkd014_exit.h): the same number means different things in the two.
 */
#ifndef QUMAIL_EXIT_H
#define QUMAIL_EXIT_H

typedef enum qumail_exit {
    EX_OK = 0,
    EX_INTERNAL = 1,   /* out of memory, crypto library failure */
    EX_USAGE = 2,      /* usage or configuration (also: unknown recipient,
                        * no such message, Level 3) */
    EX_KME = 3,        /* KME unreachable, or its answer breaks the standard */
    EX_AUTH = 4,       /* authentication refused (KME or mail server) */
    EX_NO_KEYS = 5,    /* not enough key material */
    EX_KEY_USED = 6,   /* a key of the message was already used (or not found) */
    EX_TAMPERED = 7,   /* integrity check failed */
    EX_MALFORMED = 8,  /* malformed message, or not addressed to us */
    EX_TRANSPORT = 9,  /* mail transport or local storage */
    EX_SENDER = 10,    /* verified message whose From/Sender is not its sender SAE's */
} qumail_exit;

#endif
