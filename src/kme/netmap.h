/* SPDX-License-Identifier: Apache-2.0 */
/*
 * netmap.h - the network map of a QKD network: `[kme] network_map = FILE`
 * (format and rules: docs/network.md §1).
 *
 * The map names every KME of the network with the SAEs behind it, and
 * every QKD link with its two KMEs; it is the same file at every KME.  It
 * is read through the one INI engine (common/ini.h), validated completely,
 * and then immutable: lookups need no lock.  route.h computes paths over it;
 * netmap_check_against() holds it to a KME's own configuration.
 *
 * Indices: KMEs are kept sorted by ID (strcmp), so comparing two KME
 * indices compares their IDs; links are sorted by ID too.  Both fit in 16
 * bits (the limits below).
 */
#ifndef QC_KME_NETMAP_H
#define QC_KME_NETMAP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NETMAP_MAX_KMES 1024
#define NETMAP_MAX_LINKS 8192
#define NETMAP_MAX_LINKS_PER_KME 64
#define NETMAP_MAX_ID_LEN 256            /* KME, link and SAE IDs, in bytes */
#define NETMAP_MAX_VERSION 9007199254740991LL /* 2^53 - 1: exact in any JSON reader */

/* A neighbour of a KME and the link that joins them. */
typedef struct netmap_adj {
    uint16_t kme, link;
} netmap_adj;

typedef struct netmap_kme {
    char *id;
    char **saes;                /* the SAEs behind it, in file order */
    size_t n_saes;
    netmap_adj *adj;            /* its links, sorted by the neighbour's ID */
    size_t n_adj;
    unsigned line, saes_line;   /* of its [kme ID] header and its saes (0: none) */
} netmap_kme;

typedef struct netmap_link {
    char *id;
    uint16_t kme[2];            /* its two KMEs, as the file names them */
    unsigned line, kmes_line;   /* of its [link ID] header and its kmes */
} netmap_link;

struct netmap_sae;              /* the SAE index: sorted (SAE ID, KME) */

typedef struct netmap {
    char *path;                 /* the file it came from (for messages) */
    int64_t version;            /* [network] version */
    netmap_kme *kmes;           /* sorted by ID */
    size_t n_kmes;
    netmap_link *links;         /* sorted by ID */
    size_t n_links;
    struct netmap_sae *sae_index;
    size_t n_saes;
} netmap;

/* Read and validate the map in path.  0 and *out (free with netmap_free),
 * or -1 and one message in err: "FILE:LINE: [section] key: reason" for a
 * bad value, "FILE:LINE: reason" for a bad line or section, "FILE: reason"
 * for what no line holds (a missing [network] version, no KME at all). */
int netmap_load(const char *path, netmap **out, char *err, size_t errlen);

/* The same from an open stream; name stands for the file in messages. */
int netmap_read(FILE *f, const char *name, netmap **out, char *err, size_t errlen);

void netmap_free(netmap *m);

/* The index of the KME with this ID, or -1. */
int netmap_kme_index(const netmap *m, const char *kme_id);

/* The KME with this ID, or NULL. */
const netmap_kme *netmap_kme_by_id(const netmap *m, const char *kme_id);

/* The KME an SAE sits behind, or NULL. */
const netmap_kme *netmap_kme_of_sae(const netmap *m, const char *sae_id);

/* The link with this ID, or NULL. */
const netmap_link *netmap_link_by_id(const netmap *m, const char *link_id);

/* The i-th neighbour of k (i < k->n_adj), in ID order. */
const netmap_kme *netmap_neighbour(const netmap *m, const netmap_kme *k, size_t i);

/* ---------------------------------------------------------------------
 * The map against one KME's own configuration (docs/network.md §1): this
 * KME is in the map with exactly its local SAEs; each of its peers is in
 * the map with exactly the SAEs the configuration gives it; the map's
 * links of this KME are exactly its configured links, by ID and peer.
 * The argument types hold only what the rules need, so that this file
 * does not depend on config.h.
 * --------------------------------------------------------------------- */

typedef struct netmap_sae_list {
    char *const *ids;
    size_t n;
} netmap_sae_list;

typedef struct netmap_peer_view {
    const char *id;             /* the [peer ID] */
    netmap_sae_list saes;       /* its saes */
} netmap_peer_view;

typedef struct netmap_link_view {
    const char *id;             /* the link's ID */
    const char *peer;           /* the KME at its other end */
} netmap_link_view;

/* 0 when the map and the configuration agree; else -1 and the first
 * contradiction in err, naming the map file (and the map's line where
 * one holds the contradiction). */
int netmap_check_against(const netmap *m, const char *self_id, const netmap_sae_list *local,
                         const netmap_peer_view *peers, size_t n_peers,
                         const netmap_link_view *links, size_t n_links,
                         char *err, size_t errlen);

#endif
