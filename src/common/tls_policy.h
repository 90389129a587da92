/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tls_policy.h - the one TLS policy of the project: which protocol versions
 * and suites every endpoint speaks.  The KME's listeners (SAE API, peer
 * channel, link intake) and the GnuTLS client of httpsc (libqkd014, the
 * KME's peer client) use the priority string; the libcurl clients (the link
 * simulator towards the KME, libqumail towards the mail servers) take the
 * same minimum version through libcurl's own option.  Change it here only.
 */
#ifndef QC_TLS_POLICY_H
#define QC_TLS_POLICY_H

/* TLS 1.3 as GnuTLS offers it (AEAD suites, (EC)DHE groups only); TLS 1.2
 * with AEAD suites (AES-GCM, ChaCha20-Poly1305) and ECDHE key exchange
 * only: no CBC suites (padding oracles, SHA-1 MACs), no static RSA key
 * exchange (no forward secrecy).  A GnuTLS priority string. */
#define QC_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2" \
    ":-CIPHER-ALL:+AES-256-GCM:+AES-128-GCM:+CHACHA20-POLY1305" \
    ":-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA"

/* The same minimum version for libcurl (CURLOPT_SSLVERSION): expands to
 * libcurl's constant, so only files that include <curl/curl.h> use it. */
#define QC_TLS_CURL_MIN_VERSION CURL_SSLVERSION_TLSv1_2

#endif
