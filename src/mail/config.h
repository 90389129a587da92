/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h - the qumail user configuration (docs/qumail.md, etc/qumail.conf.example).
 *
 * One INI file per user: who I am ([user]), my KME ([kme]), where my local
 * state lives ([store]), how mail travels ([mail], [smtp], [imap]) and whom I
 * can write to ([addressbook]: address = SAE_ID [KME_ID]).  It is checked
 * completely when loaded, with the same lexical rules as the KME's files
 * (common/ini.h): an unknown section or key, a missing required key, a bad
 * value or an unreadable file is QM_E_CONFIG with "FILE:LINE: [section] key:
 * reason" in err.  Passwords are read from their password_file at load time;
 * such a file must not be accessible to group or others.
 */
#ifndef QM_CONFIG_H
#define QM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "mail/errors.h"

typedef enum { QM_SEND_MAILDIR = 0, QM_SEND_SMTP } qm_send_mode;
typedef enum { QM_INBOX_MAILDIR = 0, QM_INBOX_IMAP } qm_inbox_mode;

/* One [addressbook] entry. */
typedef struct qm_contact {
    char *address;  /* lower case */
    char *sae_id;
    char *kme_id;   /* or NULL */
    unsigned line;  /* where it was given */
} qm_contact;

/* [smtp] or [imap]; every member NULL when the section is not given. */
typedef struct qm_server_config {
    char *url;
    char *username;
    char *password;   /* first line of password_file; wiped by qm_config_free */
    char *ca;         /* CA file of the server certificate, or NULL (system store) */
    char *mailbox;    /* [imap] only: default INBOX */
} qm_server_config;

typedef struct qm_config {
    char *path;           /* the file read */
    char *address;        /* [user] address, lower case */
    char *sae_id;         /* [user] sae_id */
    char *kme_url;        /* [kme] url, https://... */
    char *kme_id;         /* [kme] kme_id, or NULL */
    char *kme_cert, *kme_key, *kme_ca;
    char *store_dir;      /* [store] dir */
    qm_send_mode send;    /* [mail] send (default maildir) */
    qm_inbox_mode inbox;  /* [mail] inbox (default maildir) */
    char *maildir_root;   /* [mail] maildir_root, or NULL when neither mode uses it */
    qm_server_config smtp, imap;
    qm_contact *contacts; /* [addressbook], in the file's order */
    size_t n_contacts;
    struct qm_contact_index *contact_index; /* private (mail/addressbook.c) */
} qm_config;

/* Read and check path into *cfg (zeroed first).  QM_OK, or QM_E_CONFIG with
 * the message in err (cfg is then empty), or QM_E_NOMEM. */
qm_err qm_config_load(const char *path, qm_config *cfg, char *err, size_t errlen);

/* Free everything (passwords wiped first); safe on a zeroed struct, twice. */
void qm_config_free(qm_config *cfg);

/* The i-th key of the table (0-based): its section and name; false past
 * the end.  For tests that hold the shipped example file to the table. */
bool qm_config_key(size_t i, const char **section, const char **name);

/* The address-book entry of address (compared case-insensitively), or NULL. */
const qm_contact *qm_config_contact(const qm_config *cfg, const char *address);

/* The address-book entry whose SAE ID is sae_id, or NULL. */
const qm_contact *qm_config_contact_by_sae(const qm_config *cfg, const char *sae_id);

/* An e-mail address qumail accepts: local@domain, printable ASCII without
 * spaces, quotes, angle brackets or '/', not starting with '.', at most 254
 * characters.  (It also names a Maildir directory, hence no '/'.) */
bool qm_address_valid(const char *address);

#endif
