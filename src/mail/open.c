/* SPDX-License-Identifier: Apache-2.0 */
/*
 * open.c - reading a message as its recipient (open.h): the KME client and
 * used-key store of an account, decryption with what a reader shows of a
 * message (the envelope's SAE IDs and key IDs, the attachment list), and
 * the read store around it.  Moved here from the qumail command so that
 * `qumail read` and the web client's Read page are one implementation.
 */
#include "mail/open.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/secret.h"
#include "common/uuid.h"
#include "mail/envelope.h"
#include "mail/mime.h"
#include "mail/parts.h"

qm_err qm_open_keys(qm_self *me, const qm_config *cfg, bool for_decrypt, char *msg,
                    size_t cap)
{
    char err[512];
    me->sae_id = cfg->sae_id;
    me->address = cfg->address;
    if (!me->kme) {
        qkd014_options o = { .version = QKD014_OPTIONS_VERSION,
                             .kme_url = cfg->kme_url, .cert_file = cfg->kme_cert,
                             .key_file = cfg->kme_key, .ca_file = cfg->kme_ca,
                             .expected_kme_id = cfg->kme_id };
        if (qkd014_options_check(&o, err, sizeof err) != QKD014_OK) {
            snprintf(msg, cap, "%s: [kme]: %s", cfg->path, err);
            return QM_E_CONFIG;
        }
        if (qkd014_client_new(&o, &me->kme) != QKD014_OK) {
            snprintf(msg, cap, "cannot create the KME client");
            return QM_E_NOMEM;
        }
    }
    if (for_decrypt && !me->used) {
        char path[PATH_MAX];
        if (qm_readstore_init(cfg->store_dir) != QM_OK) {
            snprintf(msg, cap, "cannot create the store directory %s: %s", cfg->store_dir,
                     strerror(errno));
            return QM_E_IO;
        }
        if (snprintf(path, sizeof path, "%s/usedkeys.db", cfg->store_dir) >= (int)sizeof path) {
            snprintf(msg, cap, "%s: [store] dir is too long", cfg->path);
            return QM_E_CONFIG;
        }
        qm_err rc = qm_usedkeys_open(path, &me->used);
        if (rc != QM_OK) {
            snprintf(msg, cap, "%s: %s", qm_strerror(rc), path);
            return rc;
        }
        me->store_dir = cfg->store_dir;   /* keys of a forged copy wait in pending/ */
    }
    return QM_OK;
}

void qm_open_close(qm_self *me)
{
    if (me->used)
        qm_usedkeys_close(me->used);
    if (me->kme)
        qkd014_client_free(me->kme);
    me->used = NULL;
    me->kme = NULL;
}

void qm_opened_free(qm_opened *o)
{
    if (o == NULL)
        return;
    free(o->outer);   /* ciphertext: not secret */
    qm_parts_free(&o->parts);
    if (o->plain)
        secret_wipe(o->plain, o->len);
    free(o->plain);
    secret_wipe(o, sizeof *o);   /* the meta holds attachment names */
}

/* " ID" of key k appended to meta (the first QM_READ_MAX_KEYS only). */
static void add_key(qm_read_meta *m, const uint8_t id[QM_KEY_ID_LEN])
{
    if (m->n_keys < QM_READ_MAX_KEYS)
        uuid_format(id, m->key_ids[m->n_keys]);
    m->n_keys++;
}

/* The envelope's SAE IDs and the key IDs this reader used, read again
 * from the outer message (it decrypted: it parses). */
static void envelope_facts(const qm_self *me, const uint8_t *outer, size_t len, qm_read_meta *m)
{
    uint8_t *env = NULL;
    size_t env_len = 0;
    qm_envelope e;
    qm_envelope_view v;
    if (qm_mime_parse(outer, len, &env, &env_len, NULL) != QM_OK)
        return;
    if (qm_envelope_parse(env, env_len, &e, &v) == QM_OK) {
        size_t n = 0;
        for (unsigned i = 0; i < e.n_recipients; i++) {
            int w = snprintf(m->recipients + n, sizeof m->recipients - n, "%s%s", i ? " " : "",
                             e.recipients[i].sae_id);
            if (w < 0 || (size_t)w >= sizeof m->recipients - n)
                break;
            n += (size_t)w;
        }
        int r = qm_envelope_find_recipient(&e, me->sae_id);
        const qm_group *g = r >= 0 ? &e.groups[e.recipients[r].group] : NULL;
        if (g && e.level == QM_LEVEL_1) {
            for (uint32_t k = 0; k < g->n_pad_keys; k++)
                add_key(m, g->pad_keys[k].id);
            add_key(m, e.recipients[r].mac_key.id);
        } else if (g && e.level == QM_LEVEL_2) {
            add_key(m, g->key.id);
        }
        snprintf(m->sender, sizeof m->sender, "%s", e.sender);
        qm_envelope_free(&e);
    }
    free(env);
}

qm_err qm_open_outer(qm_self *me, const qm_config *cfg, const uint8_t *outer, size_t len,
                     bool accept_unverified, qm_opened *o)
{
    memset(&o->meta, 0, sizeof o->meta);
    me->detail[0] = '\0';
    me->book = cfg;   /* From and Sender against the address book (mail/sender.h) */
    me->accept_unverified = accept_unverified;
    qm_err rc = qm_decrypt(me, outer, len, &o->plain, &o->len, &o->level);
    if (rc != QM_OK)
        return rc;
    qm_read_meta *m = &o->meta;
    m->forged_copy_seen = me->forged_copy_seen;
    snprintf(m->unverified, sizeof m->unverified, "%s", me->unverified);
    envelope_facts(me, outer, len, m);
    snprintf(m->kme, sizeof m->kme, "%s", cfg->kme_id ? cfg->kme_id : "");
    m->read_at = (long long)time(NULL);
    o->has_parts = qm_parts_read(o->plain, o->len, &o->parts) == QM_OK;
    if (o->has_parts)   /* else: no list to keep */
        qm_parts_list_attachments(&o->parts, m);
    return QM_OK;
}

/* The outer Message-ID from a bounded prefix ("" if none): no key. */
static void outer_msgid(const uint8_t *msg, size_t len, char *out, size_t cap)
{
    qm_mime_listing l;
    out[0] = '\0';
    if (qm_mime_listing_read(msg, len < QM_MIME_LIST_PREFIX ? len : QM_MIME_LIST_PREFIX,
                             &l) == QM_OK && l.message_id)
        snprintf(out, cap, "%s", l.message_id);
    qm_mime_listing_free(&l);
}

qm_err qm_open_stored(const qm_config *cfg, const qm_inbox *mb, size_t idx, qm_opened *o,
                      char *detail, size_t cap)
{
    char msgid[256];
    memset(o, 0, sizeof *o);
    qm_err rc = qm_inbox_fetch(mb, idx, &o->outer, &o->outer_len, detail, cap);
    if (rc != QM_OK)
        return rc;
    outer_msgid(o->outer, o->outer_len, msgid, sizeof msgid);
    qm_inbox_store_key(mb, idx, *msgid ? msgid : NULL, o->key, sizeof o->key);
    rc = qm_readstore_get_meta(cfg->store_dir, o->key, &o->level, &o->meta, &o->plain, &o->len);
    if (rc == QM_OK) {
        o->from_store = true;
        free(o->outer);
        o->outer = NULL;
        o->outer_len = 0;
    } else if (rc != QM_E_NOT_FOUND) {
        snprintf(detail, cap, "read store");
    }
    return rc;
}

qm_err qm_open_fresh(qm_self *me, const qm_config *cfg, qm_opened *o)
{
    /* Level 1 and 2 bind the sender; one that is not verified is kept
     * marked as such (the reader decides whether to show it). */
    qm_err rc = qm_open_outer(me, cfg, o->outer, o->outer_len, true, o);
    if (rc != QM_OK)
        return rc;
    /* The keys are spent now: keep the plaintext before anyone shows it. */
    o->kept = qm_readstore_put_meta(cfg->store_dir, o->key, o->level, &o->meta, o->plain,
                                    o->len);
    return QM_OK;
}

long qm_open_find(const qm_inbox *mb, const char *id)
{
    for (size_t i = 0; i < mb->n; i++)
        if (strcmp(qm_inbox_id(mb, i), id) == 0)
            return (long)i;
    return -1;
}
