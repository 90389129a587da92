/* SPDX-License-Identifier: Apache-2.0 */
/*
 * addressbook.c - contacts found by address and by SAE ID in constant time
 * (addressbook.h).
 *
 * Each index is a table of slots holding a contact's position + 1 (0: an
 * empty slot), linear probing, at most half full (rebuilt at twice the
 * size).  Addresses hash in lower case, since they compare case-
 * insensitively; the SAE table keeps the first contact of an SAE ID, as
 * the linear search did.  A configuration built by hand, without indexes,
 * is searched linearly.
 */
#include "mail/addressbook.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct qm_contact_index {
    size_t *by_address, *by_sae; /* slot -> position + 1, or 0 */
    size_t slots;                /* a power of two */
    size_t cap;                  /* room in cfg->contacts */
};

/* FNV-1a, 64 bits; lower case for addresses. */
static uint64_t hash(const char *s, bool fold)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= fold ? (unsigned char)tolower(*p) : *p;
        h *= 1099511628211ull;
    }
    return h;
}

static const char *key_of(const qm_contact *c, bool by_address)
{
    return by_address ? c->address : c->sae_id;
}

static bool same_key(const char *a, const char *b, bool by_address)
{
    return by_address ? strcasecmp(a, b) == 0 : strcmp(a, b) == 0;
}

/* The slot of key in table: where it is, or the empty slot where it would
 * go. */
static size_t slot_of(const size_t *table, size_t slots, const qm_contact *contacts,
                      const char *key, bool by_address)
{
    size_t mask = slots - 1, i = (size_t)hash(key, by_address) & mask;
    while (table[i] != 0 && !same_key(key_of(&contacts[table[i] - 1], by_address), key,
                                      by_address))
        i = (i + 1) & mask;
    return i;
}

/* Enter contact pos into table unless its key is there already (the first
 * one stays). */
static void enter(size_t *table, size_t slots, const qm_contact *contacts, size_t pos,
                  bool by_address)
{
    size_t i = slot_of(table, slots, contacts, key_of(&contacts[pos], by_address), by_address);
    if (table[i] == 0)
        table[i] = pos + 1;
}

/* Tables of twice as many slots (at least 64), with every contact. */
static bool rehash(struct qm_contact_index *ix, const qm_contact *contacts, size_t n)
{
    size_t slots = ix->slots ? ix->slots * 2 : 64;
    size_t *a = calloc(slots, sizeof *a), *s = calloc(slots, sizeof *s);
    if (a == NULL || s == NULL) {
        free(a);
        free(s);
        return false;
    }
    for (size_t pos = 0; pos < n; pos++) {
        enter(a, slots, contacts, pos, true);
        enter(s, slots, contacts, pos, false);
    }
    free(ix->by_address);
    free(ix->by_sae);
    ix->by_address = a;
    ix->by_sae = s;
    ix->slots = slots;
    return true;
}

/* Room for one more contact, in the array and in the tables. */
static bool make_room(qm_config *cfg)
{
    struct qm_contact_index *ix = cfg->contact_index;
    if (ix == NULL && (ix = cfg->contact_index = calloc(1, sizeof *ix)) == NULL)
        return false;
    if (cfg->n_contacts == ix->cap) {
        size_t cap = ix->cap ? ix->cap * 2 : 16;
        qm_contact *grown = realloc(cfg->contacts, cap * sizeof *grown);
        if (grown == NULL)
            return false;
        cfg->contacts = grown;
        ix->cap = cap;
    }
    return 2 * (cfg->n_contacts + 1) <= ix->slots || rehash(ix, cfg->contacts, cfg->n_contacts);
}

qm_err qm_addressbook_add(qm_config *cfg, const char *address, const char *sae_id,
                          const char *kme_id, unsigned line)
{
    if (!make_room(cfg))
        return QM_E_NOMEM;
    qm_contact ct = { strdup(address), strdup(sae_id), kme_id ? strdup(kme_id) : NULL, line };
    if (ct.address == NULL || ct.sae_id == NULL || (kme_id != NULL && ct.kme_id == NULL)) {
        free(ct.address);
        free(ct.sae_id);
        free(ct.kme_id);
        return QM_E_NOMEM;
    }
    struct qm_contact_index *ix = cfg->contact_index;
    size_t pos = cfg->n_contacts++;
    cfg->contacts[pos] = ct;
    enter(ix->by_address, ix->slots, cfg->contacts, pos, true);
    enter(ix->by_sae, ix->slots, cfg->contacts, pos, false);
    return QM_OK;
}

static const qm_contact *find(const qm_config *cfg, const char *key, bool by_address)
{
    const struct qm_contact_index *ix = cfg->contact_index;
    if (key == NULL)
        return NULL;
    if (ix == NULL || ix->slots == 0) {   /* built by hand: no index */
        for (size_t i = 0; i < cfg->n_contacts; i++) {
            const char *k = key_of(&cfg->contacts[i], by_address);
            if (k != NULL && same_key(k, key, by_address))
                return &cfg->contacts[i];
        }
        return NULL;
    }
    const size_t *table = by_address ? ix->by_address : ix->by_sae;
    size_t i = slot_of(table, ix->slots, cfg->contacts, key, by_address);
    return table[i] ? &cfg->contacts[table[i] - 1] : NULL;
}

const qm_contact *qm_addressbook_by_address(const qm_config *cfg, const char *address)
{
    return find(cfg, address, true);
}

const qm_contact *qm_addressbook_by_sae(const qm_config *cfg, const char *sae_id)
{
    return find(cfg, sae_id, false);
}

void qm_addressbook_free(qm_config *cfg)
{
    for (size_t i = 0; i < cfg->n_contacts; i++) {
        free(cfg->contacts[i].address);
        free(cfg->contacts[i].sae_id);
        free(cfg->contacts[i].kme_id);
    }
    free(cfg->contacts);
    if (cfg->contact_index != NULL) {
        free(cfg->contact_index->by_address);
        free(cfg->contact_index->by_sae);
        free(cfg->contact_index);
    }
    cfg->contacts = NULL;
    cfg->n_contacts = 0;
    cfg->contact_index = NULL;
}
