/* SPDX-License-Identifier: Apache-2.0 */
/*
 * errors.c - texts of the qm_err codes (errors.h), phrased for the person
 * reading the mail: what went wrong, not which function noticed it.
 */
#include "mail/errors.h"

const char *qm_strerror(qm_err err)
{
    switch (err) {
    case QM_OK:              return "ok";
    case QM_E_USAGE:         return "invalid argument";
    case QM_E_NOMEM:         return "out of memory";
    case QM_E_MALFORMED:     return "malformed message envelope";
    case QM_E_VERSION:       return "unsupported message format version";
    case QM_E_LEVEL:         return "unsupported security level";
    case QM_E_TOO_BIG:       return "message too large for the format";
    case QM_E_KEY_SHORT:     return "key material too short for the message";
    case QM_E_NOT_RECIPIENT: return "this SAE is not a recipient of the message";
    case QM_E_TAMPERED:      return "message tampered with: integrity check failed";
    case QM_E_CRYPTO:        return "cryptographic library failure";
    case QM_E_CONFIG:        return "invalid configuration";
    case QM_E_KME:           return "key management entity unreachable";
    case QM_E_AUTH:          return "authentication refused";
    case QM_E_NO_KEYS:       return "not enough key material (try --level 2)";
    case QM_E_KEY_USED:      return "key already used";
    case QM_E_MIME:          return "malformed message";
    case QM_E_TRANSPORT:     return "mail transport failed";
    case QM_E_IO:            return "local storage failed";
    case QM_E_NOT_FOUND:     return "not found";
    case QM_E_KEY_NOT_FOUND: return "key not found at the KME";
    case QM_E_SENDER:        return "sender not verified";
    case QM_E_PENDING:       return "corrupt pending-key file";
    }
    return "unknown error";
}
