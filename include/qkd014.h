/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qkd014.h - libqkd014, the SAE side of ETSI GS QKD 014 V1.1.1.
 *
 * A client talks to one KME over HTTPS with mutual TLS.  It verifies the
 * KME's certificate and host name always and, when an expected KME ID is
 * given, refuses a KME whose certificate subject CN names another
 * (QKD014_E_TLS, before any request is sent).  One TLS connection is kept
 * alive and reused across calls.  SAE IDs are percent-encoded in the path;
 * the simple forms are sent as GET, the others as POST with Content-Type
 * application/json.  Overview: docs/libqkd014.md; CLI: qkd014(1).
 *
 * Threading: a qkd014_client is not thread-safe.  Use one client per thread
 * (clients are cheap; each holds one connection).  qkd014_global_init() must
 * be called once before any thread creates a client.
 *
 * Key material is returned in locked memory that qkd014_keys_free() zeroes;
 * the library never logs it.
 *
 * Versioning and ABI (docs/libqkd014.md): the option structs begin with a
 * version member, set by their _INIT macro, so they can grow at the end
 * without breaking programs built against an older header.
 *
 *     qkd014_options o = QKD014_OPTIONS_INIT;
 *     o.kme_url = "https://localhost:8443";
 *     o.cert_file = "sae.crt"; o.key_file = "sae.key"; o.ca_file = "ca.crt";
 *     qkd014_client *c;
 *     if (qkd014_client_new(&o, &c) != QKD014_OK) ...
 *     qkd014_keys *k;
 *     if (qkd014_get_key(c, "SAE_B", NULL, &k) == QKD014_OK) { use k->keys[0]; qkd014_keys_free(k); }
 *     else fprintf(stderr, "%s\n", qkd014_errmsg(c));
 *     qkd014_client_free(c);
 */
#ifndef QKD014_H
#define QKD014_H

#include <stddef.h>
#include <stdint.h>

#include "qkd014_version.h" /* QKD014_VERSION_MAJOR, _MINOR, _PATCH, _STRING */

#ifdef __cplusplus
extern "C" {
#endif

#define QKD014_KEY_ID_LEN 36 /* UUID text, without NUL */

/* Marks the exported functions; the library is built with hidden default
 * visibility, so anything without it stays internal to the shared object. */
#if defined(__GNUC__)
#define QKD014_API __attribute__((visibility("default")))
#else
#define QKD014_API
#endif

/* Initialiser of a versioned struct: the version, every other member 0.
 * Designated in C (-Wmissing-field-initializers stays quiet); positional in
 * C++, where C++11 and later accept it (g++ -Wextra still notes the
 * members left out). */
#if defined(__cplusplus)
#define QKD014_STRUCT_INIT_(v) { (v) }
#else
#define QKD014_STRUCT_INIT_(v) { .version = (v) }
#endif

/* Marks every call that returns a qkd014_code: ignoring it is a bug (a
 * failed call leaves *out NULL).  Empty on compilers without the attribute.
 * Note that GCC warns even when the result is cast to (void). */
#if defined(__GNUC__) || defined(__clang__)
#define QKD014_WARN_UNUSED __attribute__((warn_unused_result))
#else
#define QKD014_WARN_UNUSED
#endif

/* Largest response body the client accepts; a bigger one is
 * QKD014_E_MALFORMED (1024 keys of 65536 bits need about 11 MiB). */
#define QKD014_MAX_RESPONSE (64u * 1024u * 1024u)

typedef enum qkd014_code {
    QKD014_OK = 0,
    QKD014_E_USAGE,        /* invalid argument from the caller */
    QKD014_E_NOMEM,
    QKD014_E_TRANSPORT,    /* cannot connect, timeout, connection lost */
    QKD014_E_TLS,          /* TLS failure: certificate, host name, KME ID */
    QKD014_E_UNAUTHORIZED, /* KME answered 401 */
    QKD014_E_BAD_REQUEST,  /* KME answered 400; message in qkd014_errmsg */
    QKD014_E_UNAVAILABLE,  /* KME answered 503: keys short or KME trouble */
    QKD014_E_MALFORMED,    /* KME's answer breaks the standard */
    QKD014_E_HTTP,         /* KME answered another status code */
    QKD014_E_VERSION,      /* an option struct's version is 0 (not set with
                            * its _INIT macro) or newer than this library */
} qkd014_code;

/* The version of the library the program runs with ("MAJOR.MINOR.PATCH"),
 * which may be newer than QKD014_VERSION_STRING of the header it was built
 * with.  A static string, valid for the life of the process. */
QKD014_API const char *qkd014_version(void);

/* Version of qkd014_options this header describes: a new version only adds
 * members at the end.  The library reads as many members as the version
 * the caller's struct says it has (members it lacks take their 0 default),
 * and refuses a version it does not know with QKD014_E_VERSION. */
#define QKD014_OPTIONS_VERSION 1
#define QKD014_OPTIONS_INIT QKD014_STRUCT_INIT_(QKD014_OPTIONS_VERSION)

typedef struct qkd014_options {
    unsigned int version;        /* QKD014_OPTIONS_VERSION (QKD014_OPTIONS_INIT) */
    const char *kme_url;         /* base URL, e.g. https://localhost:8443 */
    const char *cert_file;       /* SAE client certificate (PEM) */
    const char *key_file;        /* its private key (PEM) */
    const char *ca_file;         /* CA that signs the KME certificate (PEM) */
    const char *expected_kme_id; /* optional: required subject CN of the KME */
    long connect_timeout_ms;     /* 0: 5000 */
    long timeout_ms;             /* whole call; 0: 10000 */
} qkd014_options;

typedef struct qkd014_client qkd014_client;

typedef struct qkd014_status {
    char *source_kme_id, *target_kme_id, *master_sae_id, *slave_sae_id;
    int32_t key_size, stored_key_count, max_key_count, max_key_per_request;
    int32_t max_key_size, min_key_size, max_sae_id_count;
} qkd014_status;

typedef struct qkd014_key {
    char key_id[QKD014_KEY_ID_LEN + 1]; /* canonical lower case */
    uint8_t *key;                       /* key bytes (locked memory) */
    size_t key_len;                     /* bytes */
} qkd014_key;

typedef struct qkd014_keys {
    qkd014_key *keys;
    size_t n;
} qkd014_keys;

/* Optional members of a Key request; NULL request = all defaults.  Grows
 * like qkd014_options: start from QKD014_KEY_REQUEST_INIT. */
#define QKD014_KEY_REQUEST_VERSION 1
#define QKD014_KEY_REQUEST_INIT QKD014_STRUCT_INIT_(QKD014_KEY_REQUEST_VERSION)

typedef struct qkd014_key_request {
    unsigned int version;                 /* QKD014_KEY_REQUEST_VERSION */
    int32_t number;                       /* 0: KME default (1) */
    int32_t size;                         /* bits; 0: KME default key_size */
    const char *const *additional_slaves; /* multicast, may be NULL */
    size_t n_additional;
    const char *extension_mandatory_json; /* JSON array text, or NULL */
    const char *extension_optional_json;  /* JSON array text, or NULL */
} qkd014_key_request;

/* Once per process, before threads: initialises GnuTLS and libsodium. */
QKD014_API QKD014_WARN_UNUSED qkd014_code qkd014_global_init(void);
QKD014_API void qkd014_global_cleanup(void);

/* Make a client; no network traffic yet (the connection is opened by the
 * first call and then kept alive).  QKD014_E_USAGE if the options are
 * invalid: kme_url must be https://host[:port][/prefix] without query or
 * fragment; cert_file, key_file and ca_file are required and readable.
 * QKD014_E_VERSION if opt->version is 0 or unknown (see
 * QKD014_OPTIONS_VERSION).  The client keeps copies of what it needs: opt
 * and its strings may be freed after the call.  *out is NULL on failure. */
QKD014_API QKD014_WARN_UNUSED qkd014_code qkd014_client_new(const qkd014_options *opt, qkd014_client **out);

/* The check qkd014_client_new() makes on its options, with the reason in
 * err (capacity errlen) since a failed client_new has no client to ask. */
QKD014_API QKD014_WARN_UNUSED qkd014_code qkd014_options_check(const qkd014_options *opt,
                                            char *err, size_t errlen);
QKD014_API void qkd014_client_free(qkd014_client *c);

/*
 * Every call below first validates its arguments (QKD014_E_USAGE, with no
 * network traffic, for NULL or empty SAE IDs, a NULL out pointer, ...), then
 * sends one request on the kept-alive connection, then checks the answer
 * strictly: 200 with Content-Type application/json and a body that follows
 * the standard, else QKD014_E_MALFORMED.  Non-200 answers: 400 ->
 * QKD014_E_BAD_REQUEST, 401 -> QKD014_E_UNAUTHORIZED, 503 ->
 * QKD014_E_UNAVAILABLE (qkd014_errmsg() = the KME's "message", or "detail"),
 * any other status -> QKD014_E_HTTP.  *out is NULL unless QKD014_OK.
 */

/* Get status for the pair (caller as master, slave_sae_id as slave).  All
 * members must be present with their JSON types, integers in [0, 2^31), and
 * slave_SAE_ID must equal slave_sae_id.  Free with qkd014_status_free(). */
QKD014_API QKD014_WARN_UNUSED qkd014_code qkd014_get_status(qkd014_client *c, const char *slave_sae_id,
                              qkd014_status **out);
QKD014_API void qkd014_status_free(qkd014_status *s);

/* Get key (enc_keys) as master for slave_sae_id; req NULL = all defaults
 * (else QKD014_E_VERSION if req->version is 0 or unknown).
 * Sends GET .../enc_keys (with ?number=&size= when only those are set) and
 * POST with a JSON body when additional slaves or extensions are given.
 * number/size < 0, NULL/empty additional IDs, or extension text that is not
 * a JSON array of objects -> QKD014_E_USAGE.  The answer must hold exactly
 * number (default 1) keys with distinct UUID key IDs, each canonical base64
 * of size bits (rounded up to whole bytes; with the default size, all keys of
 * one non-zero length).  Free with qkd014_keys_free(). */
QKD014_API QKD014_WARN_UNUSED qkd014_code qkd014_get_key(qkd014_client *c, const char *slave_sae_id,
                           const qkd014_key_request *req, qkd014_keys **out);

/* Get key with key IDs (dec_keys) as slave, from master_sae_id; GET for
 * one ID, POST for more.  The n key IDs must be distinct UUIDs (either case;
 * sent as given), else QKD014_E_USAGE.  The answer must hold exactly these
 * keys (any order); they are returned in the order of key_ids. */
QKD014_API QKD014_WARN_UNUSED qkd014_code qkd014_get_key_with_ids(qkd014_client *c, const char *master_sae_id,
                                    const char *const *key_ids, size_t n,
                                    qkd014_keys **out);
QKD014_API void qkd014_keys_free(qkd014_keys *k);
/* (qkd014_keys_free zeroes the key bytes; a qkd014_keys comes only from this
 * library and must be released only with qkd014_keys_free.) */

/* Text of a code, and the last error of this client in detail (the KME's
 * own message for 400/503, or what went wrong); never NULL.  Lifetimes:
 * qkd014_strerror()'s text is static (valid for the life of the process);
 * qkd014_errmsg()'s lives in the client and is valid until the next call
 * that takes this client (any qkd014_get_*) or qkd014_client_free(), so
 * copy it to keep it. */
QKD014_API const char *qkd014_strerror(qkd014_code code);
QKD014_API const char *qkd014_errmsg(const qkd014_client *c);

/* HTTP status of the last call (0 if none was received). */
QKD014_API long qkd014_last_http_status(const qkd014_client *c);

/* KME ID (subject CN) of the KME certificate seen on the last connection,
 * or NULL if no connection was made yet.  It lives in the client: valid
 * until the next qkd014_get_* call on this client (which may connect anew
 * and overwrite it) or qkd014_client_free(). */
QKD014_API const char *qkd014_peer_kme_id(const qkd014_client *c);

#ifdef __cplusplus
}
#endif
#endif
