/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_netmap.c - libFuzzer target for the network map (src/kme/netmap.c)
 * and the routing table over it (src/kme/route.c).
 *
 * The input is a whole map file.  A refusal is one line naming the file.
 * A map that loads must keep the limits and its own structure: links join
 * two different KMEs of the map, adjacency is symmetric and sorted, every
 * SAE is found behind its KME; the map agrees with the configuration a KME
 * would derive from it (netmap_check_against); and the routing table of
 * its first KME holds only loopless paths of at most 16 hops, from that KME
 * to their destination, over the links they name.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kme/netmap.h"
#include "kme/route.h"

static void check_refusal(const char *err)
{
    if (strncmp(err, "fuzz.ini", 8) != 0 || strchr(err, '\n'))
        abort();
}

static void check_structure(const netmap *m)
{
    if (m->n_kmes < 1 || m->n_kmes > NETMAP_MAX_KMES || m->n_links > NETMAP_MAX_LINKS)
        abort();
    for (size_t i = 0; i < m->n_links; i++) {
        const netmap_link *l = &m->links[i];
        if (l->kme[0] >= m->n_kmes || l->kme[1] >= m->n_kmes || l->kme[0] == l->kme[1]
            || netmap_link_by_id(m, l->id) != l)
            abort();
    }
    for (size_t i = 0; i < m->n_kmes; i++) {
        const netmap_kme *k = &m->kmes[i];
        if (netmap_kme_by_id(m, k->id) != k || k->n_adj > NETMAP_MAX_LINKS_PER_KME)
            abort();
        for (size_t j = 0; j < k->n_saes; j++)
            if (netmap_kme_of_sae(m, k->saes[j]) != k)
                abort();
        for (size_t j = 0; j < k->n_adj; j++) {
            const netmap_link *l = &m->links[k->adj[j].link];
            uint16_t other = l->kme[0] == i ? l->kme[1] : l->kme[0];
            if ((l->kme[0] != i && l->kme[1] != i) || other != k->adj[j].kme
                || (j && k->adj[j - 1].kme >= k->adj[j].kme))
                abort();
        }
    }
}

/* The configuration KME 0 would have if it followed the map. */
static void check_self_view(const netmap *m)
{
    const netmap_kme *k = &m->kmes[0];
    netmap_peer_view peers[NETMAP_MAX_LINKS_PER_KME];
    netmap_link_view links[NETMAP_MAX_LINKS_PER_KME];
    for (size_t j = 0; j < k->n_adj; j++) {
        const netmap_kme *p = &m->kmes[k->adj[j].kme];
        peers[j] = (netmap_peer_view){ p->id, { p->saes, p->n_saes } };
        links[j] = (netmap_link_view){ m->links[k->adj[j].link].id, p->id };
    }
    netmap_sae_list local = { k->saes, k->n_saes };
    char err[1024];
    if (netmap_check_against(m, k->id, &local, peers, k->n_adj, links, k->n_adj, err,
                             sizeof err) != 0)
        abort();
}

static void check_routes(const netmap *m)
{
    route_table *t = NULL;
    char err[512];
    if (route_build(m, m->kmes[0].id, &t, err, sizeof err) != 0)
        return; /* out of memory only */
    for (size_t d = 0; d < m->n_kmes; d++) {
        const route_path *p;
        size_t n = route_paths_to(t, d, &p);
        if (n > ROUTE_MAX_PATHS || (d == 0 && n))
            abort();
        for (size_t i = 0; i < n; i++) {
            if (p[i].n_hops < 1 || p[i].n_hops > ROUTE_MAX_HOPS || p[i].kme[0] != 0
                || p[i].kme[p[i].n_hops] != d)
                abort();
            bool seen[NETMAP_MAX_KMES] = { false };
            for (unsigned h = 0; h <= p[i].n_hops; h++) {
                if (seen[p[i].kme[h]])
                    abort();
                seen[p[i].kme[h]] = true;
                const netmap_link *l = h < p[i].n_hops ? &m->links[p[i].link[h]] : NULL;
                if (l && !((l->kme[0] == p[i].kme[h] && l->kme[1] == p[i].kme[h + 1])
                           || (l->kme[1] == p[i].kme[h] && l->kme[0] == p[i].kme[h + 1])))
                    abort();
            }
        }
    }
    route_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    netmap *m = NULL;
    char err[2048] = "";
    int rc = netmap_read(f, "fuzz.ini", &m, err, sizeof err);
    fclose(f);
    if (rc != 0) {
        if (m)
            abort();
        check_refusal(err);
        return 0;
    }
    check_structure(m);
    check_self_view(m);
    check_routes(m);
    netmap_free(m);
    return 0;
}
