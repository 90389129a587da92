/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.h - the KME's configuration file (format: etc/kme.conf.example).
 *
 * Loaded and validated completely at start, before anything listens or any
 * file is opened for writing: every error names the file, the line and the
 * key, so an operator fixes it in one go.  The result is immutable while the
 * daemon runs.
 */
#ifndef QC_KME_CONFIG_H
#define QC_KME_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/log.h"
#include "kme/keystore.h"
#include "kme/netprefix.h"

#define KME_MAX_SAE_ID_COUNT 62 /* bound of [limits] max_sae_id_count: the key store
                                   holds at most 63 slaves per key */

typedef enum { KME_ID_CN = 0, KME_ID_URI_SAN = 1 } kme_identity_source;

typedef struct kme_addr {
    char *host;                 /* numeric IPv4/IPv6 address */
    uint16_t port;              /* 0: any free port (listeners only) */
} kme_addr;

/* allow_from: the client addresses a listener admits (others are dropped
 * before TLS). */
#define KME_ALLOW_MAX 64
typedef struct kme_allow {
    net_prefix *nets;
    size_t n;
} kme_allow;

/* A directly linked KME: [peer ID] */
typedef struct kme_peer {
    char *id;                   /* its KME ID (= CN of its certificate) */
    kme_addr address;           /* its [peer_api] listener */
    char **saes;                /* SAEs attached to it */
    size_t n_saes;
} kme_peer;

typedef enum { KME_LINK_SIDE_A = 0, KME_LINK_SIDE_B = 1 } kme_link_side;

/* A QKD link to a directly linked KME: [link] (one link, its ID in `id`)
 * or [link ID] (one section per link; docs/network.md).  Each has its own
 * intake listener, pool cap and link state; one link per peer. */
#define KME_MAX_LINKS 64
typedef struct kme_link {
    char *id;                   /* CN of the link's certificate */
    kme_addr listen;
    char *port_file;            /* optional */
    kme_link_side side;         /* which end of the link this KME is */
    char *peer;                 /* the KME at the other end (a [peer ID]) */
    int64_t pool_cap_bits;      /* per direction */
    int64_t block_ttl_ms;       /* unconfirmed blocks are dropped after this */
    unsigned per_ip_limit;
    kme_allow allow;            /* default: loopback, this host, the link's peer */
    unsigned line;              /* of its section header, for messages */
} kme_link;

typedef struct kme_config {
    char *path;                 /* the file it came from */
    /* [kme] */
    char *id;
    char *database;
    ks_sync sync;
    enum log_level log_level;
    char *audit_log;            /* optional: JSON lines of security events (events.h) */
    char *network_map;          /* optional: the network map file (docs/network.md) */
    struct netmap *map;         /* it, read and held to this file's sections; NULL without */
    /* [sae_api] */
    char *listen_host;          /* numeric IPv4/IPv6 address */
    uint16_t listen_port;       /* 0: any free port */
    char *cert, *key, *ca;      /* PEM file paths */
    char *crl;                  /* optional: PEM CRL of the SAE CA (crl.h) */
    kme_identity_source identity;
    unsigned threads;
    char *port_file;            /* optional */
    unsigned sae_per_ip_limit;  /* connections per client address; 0: none */
    /* [saes] */
    char **local_saes;
    size_t n_local_saes;
    /* [limits] */
    int64_t key_size, min_key_size, max_key_size;
    int64_t max_key_per_request, max_sae_id_count;
    int64_t key_ttl;
    int64_t local_pool_bits, local_rate_bps;
    int64_t maintenance_ms;
    int64_t handshake_timeout_ms; /* every listener: accept to authentication */
    int64_t sae_rate_bps;       /* per master SAE, enc_keys bits; 0: no limit */
    int64_t sae_burst_bits;     /* its bucket (0 in the file: one second's worth) */
    int64_t sae_unfetched_bits; /* per slave, held and not fetched; 0: no limit */
    int64_t key_reuse_window;   /* delivered (key, slave) pairs remembered; 0: off */
    double pool_low_ratio;      /* pool_low / pool_ok events below / above this
                                   share of a pool's capacity (pool_watch.h) */
    /* [alerts] (optional): the command run for alarm events (alerts.h) */
    char *alert_command;        /* absolute path of an executable, or NULL */
    unsigned alert_timeout_s;   /* killed when still running after this */
    unsigned alert_interval_s;  /* at most one run per kind and peer per interval */
    /* [peer_api]: the KME-to-KME listener (optional; required with peers) */
    bool has_peer_api;
    kme_addr peer_listen;
    char *peer_ca;              /* CA of KME certificates (peers, link) */
    char *peer_port_file;       /* optional */
    int64_t peer_timeout_ms;
    unsigned peer_threads;
    unsigned peer_per_ip_limit;
    kme_allow peer_allow;       /* default: the hosts of the [peer ID]s */
    /* [peer ID] sections */
    kme_peer *peers;
    size_t n_peers;
    /* [link] or [link ID] sections: the QKD links (optional) */
    kme_link *links;
    size_t n_links;
    bool has_link;              /* n_links > 0 */
    /* [admin]: metrics, health and status page (optional; docs/operations.md) */
    bool has_admin;
    kme_addr admin_listen;      /* plain HTTP: a loopback address only */
    char *admin_cert, *admin_key; /* HTTPS: all three of these, or none */
    char *admin_client_ca;      /* CA of the scrapers' client certificates */
    char *admin_port_file;      /* optional */
    /* Not read from the file: qkd-kme sets them at start from
     * RLIMIT_NOFILE (libmicrohttpd's connection limit per listener). */
    unsigned sae_max_connections, peer_max_connections, link_max_connections;
} kme_config;

/* Load and validate; on failure returns -1 with one message in err:
 * "FILE:LINE: [section] key: reason" for a bad value (also when keys
 * contradict each other: the key that breaks the relation), "FILE: [section]
 * key: reason" for a missing key or a default that breaks a relation, and
 * "FILE:LINE: reason" for a line that is no key (bad syntax, unknown section
 * or key, key outside a section). */
int kme_config_load(const char *path, kme_config *cfg, char *err, size_t errlen);
void kme_config_free(kme_config *cfg);

/* The i-th key of the table (0-based): its section and name; false past
 * the end.  For tests that hold the shipped example file to the table. */
bool kme_config_key(size_t i, const char **section, const char **name);

bool kme_config_is_local_sae(const kme_config *cfg, const char *sae_id);

/* The peer KME an SAE is attached to, or NULL (local or unknown). */
const kme_peer *kme_config_peer_of_sae(const kme_config *cfg, const char *sae_id);

/* The peer with this KME ID, or NULL. */
const kme_peer *kme_config_peer(const kme_config *cfg, const char *kme_id);

/* The KME an SAE sits behind: NULL when it is local, a peer's or unknown
 * to the network map; else the map's KME ID (a non-neighbour, reached by
 * relay). */
const char *kme_config_far_kme_of_sae(const kme_config *cfg, const char *sae_id);

/* The link to the peer KME peer_id, or NULL (no link to it). */
const kme_link *kme_config_link_to(const kme_config *cfg, const char *peer_id);

#endif
