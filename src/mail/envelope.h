/* SPDX-License-Identifier: Apache-2.0 */
/*
 * envelope.h - the QuMail envelope (docs/qumail-format.md §2): build it,
 * serialise its header canonically, and parse received bytes strictly.
 *
 * The envelope names everything a reader needs before it may fetch a key:
 * level, algorithm, sender (the master SAE of every key), the key groups
 * (level 1 pads; level 2 key, salt, nonce), the recipients with their MAC
 * keys, and the message length.  The header is authenticated along with
 * the ciphertext, so the parser accepts only the one canonical encoding of
 * each envelope: whatever qm_envelope_parse() accepts, qm_header_write()
 * reproduces byte for byte.  level1.c and level2.c seal and open the body.
 * No network and no MIME here.
 */
#ifndef QM_ENVELOPE_H
#define QM_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "mail/errors.h"

#define QM_FORMAT_VERSION  1
#define QM_MAGIC           "QUMAIL"
#define QM_MAGIC_LEN       6
#define QM_MAX_GROUPS      16
#define QM_MAX_RECIPIENTS  16
#define QM_MAX_PAD_KEYS    65536u
#define QM_MAX_KEY_LEN     (1u << 28)              /* bytes: 2^31 bits, ETSI's int32 */
#define QM_MAX_MESSAGE     ((uint64_t)1 << 30)      /* bytes */
#define QM_SAE_ID_MAX      255
#define QM_KEY_ID_LEN      16
#define QM_MAC_KEY_LEN     32                      /* Poly1305 r || s */
#define QM_L2_KEY_LEN      32                      /* one 256-bit QKD key */
#define QM_SALT_LEN        32
#define QM_NONCE_LEN       12
#define QM_TAG_LEN         16

#define QM_ALG_LEVEL1 "OTP-QKD-ETSI-014"
#define QM_ALG_LEVEL2 "AES-256-GCM-HKDF-SHA256-QKD"
#define QM_ALG_LEVEL4 "NONE"

typedef enum qm_level { QM_LEVEL_1 = 1, QM_LEVEL_2 = 2, QM_LEVEL_4 = 4 } qm_level;

/* A key as the envelope names it: the KME's UUID (binary) and its length. */
typedef struct qm_key_ref {
    uint8_t id[QM_KEY_ID_LEN];
    uint32_t len;   /* bytes */
} qm_key_ref;

/* The recipients that share one ciphertext. */
typedef struct qm_group {
    qm_key_ref *pad_keys;    /* level 1: in pad order; owned by the envelope */
    uint32_t n_pad_keys;
    qm_key_ref key;          /* level 2 */
    uint8_t salt[QM_SALT_LEN];
    uint8_t nonce[QM_NONCE_LEN];
} qm_group;

typedef struct qm_recipient {
    char sae_id[QM_SAE_ID_MAX + 1];  /* NUL-terminated */
    uint8_t group;                   /* index into groups */
    qm_key_ref mac_key;              /* level 1: its own 32-byte key */
} qm_recipient;

typedef struct qm_envelope {
    uint8_t version;
    qm_level level;
    char sender[QM_SAE_ID_MAX + 1];
    uint64_t msg_len;
    uint8_t n_groups;
    uint8_t n_recipients;
    qm_group groups[QM_MAX_GROUPS];
    qm_recipient recipients[QM_MAX_RECIPIENTS];
} qm_envelope;

/* Where the parts of a parsed envelope lie in the received bytes. */
typedef struct qm_envelope_view {
    const uint8_t *header;       /* the authenticated header */
    size_t header_len;
    const uint8_t *ciphertext[QM_MAX_GROUPS];  /* msg_len bytes each */
    const uint8_t *tags;         /* n_recipients * QM_TAG_LEN; NULL at level 4 */
} qm_envelope_view;

/* Algorithm name of a level, or NULL if the level does not exist. */
const char *qm_level_alg(int level);

/* --- building ----------------------------------------------------------- */

/* Empty envelope of the given level for msg_len bytes from sender. */
qm_err qm_envelope_init(qm_envelope *e, int level, const char *sender, uint64_t msg_len);

/* Append a group; *index receives its number.  Level 1: pad keys are
 * copied (n may be 0 for an empty message).  Level 2: key only; the salt
 * and nonce are drawn when the message is sealed.  Level 4: no keys. */
qm_err qm_envelope_add_group(qm_envelope *e, const qm_key_ref *pad_keys, uint32_t n,
                             const qm_key_ref *level2_key, uint8_t *index);

/* Append a recipient in group; mac_key for level 1, NULL otherwise. */
qm_err qm_envelope_add_recipient(qm_envelope *e, const char *sae_id, uint8_t group,
                                 const qm_key_ref *mac_key);

/* Free the pad key lists; the envelope becomes empty.  Safe twice. */
void qm_envelope_free(qm_envelope *e);

/* Every rule of docs/qumail-format.md §2 that does not depend on the
 * bytes: ranges, SAE IDs, group membership, distinct key IDs, pad
 * coverage.  QM_OK or QM_E_MALFORMED / QM_E_VERSION / QM_E_LEVEL /
 * QM_E_TOO_BIG / QM_E_NOMEM. */
qm_err qm_envelope_check(const qm_envelope *e);

/* --- serialising ---------------------------------------------------------- */

/* Length of the header of a checked envelope. */
qm_err qm_header_len(const qm_envelope *e, size_t *len);

/* Length of the whole envelope (header, ciphertexts, tags). */
qm_err qm_envelope_total_len(const qm_envelope *e, size_t header_len, size_t *total);

/* Check e, then write its header into out (capacity cap). */
qm_err qm_header_write(const qm_envelope *e, uint8_t *out, size_t cap, size_t *len);

/* --- parsing -------------------------------------------------------------- */

/* Parse exactly len bytes.  On QM_OK, e (free with qm_envelope_free) and v
 * describe them; v points into buf.  On error e is empty. */
qm_err qm_envelope_parse(const uint8_t *buf, size_t len, qm_envelope *e,
                         qm_envelope_view *v);

/* Index of the recipient with this SAE ID, or -1. */
int qm_envelope_find_recipient(const qm_envelope *e, const char *sae_id);

#endif
