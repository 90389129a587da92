/*
 * http.h - the KME's HTTPS listener for SAEs (ETSI GS QKD 014 over mTLS).
 *
 * libmicrohttpd with GnuTLS, TLS 1.2 and 1.3 only.  The client certificate
 * is verified against the SAE CA once per TLS connection, and the caller's
 * SAE ID derived from it (subject CN, or a URI SAN) is cached with the
 * connection.  A connection without a valid certificate of a known SAE gets
 * a 401 JSON answer and is closed.
 */
#ifndef QC_KME_HTTP_H
#define QC_KME_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "kme/api.h"
#include "kme/config.h"

typedef struct kme_http kme_http;

/* Start listening and serving; returns NULL with a reason in err. */
kme_http *kme_http_start(const kme_config *cfg, const kme_api *api, char *err, size_t errlen);

/* The port actually bound (useful with "listen = 127.0.0.1:0"). */
uint16_t kme_http_port(const kme_http *h);

/* Stop accepting, finish or close connections, release everything. */
void kme_http_stop(kme_http *h);

#endif
