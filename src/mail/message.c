/* SPDX-License-Identifier: Apache-2.0 */
/*
 * message.c - encrypting and decrypting a QuMail envelope (message.h,
 * docs/qumail-format.md §2-4): keys from keyfetch.c, the envelope from
 * envelope.c, the ciphers from level1.c and level2.c.  mime.c builds and
 * parses the outer MIME message around the envelope.
 *
 * Decrypting follows the order the format page requires: parse strictly
 * (malformed input never reaches the KME), find our recipient entry, refuse
 * key IDs the used-key store already holds (a replay costs no KME call),
 * fetch the keys, record them as used, and only then open, which verifies
 * the tag before it writes any plaintext.
 */
#include "mail/message.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/secret.h"
#include "common/uuid.h"
#include "mail/envelope.h"
#include "mail/keyfetch.h"
#include "mail/level1.h"
#include "mail/level2.h"
#include "mail/mime.h"
#include "mail/pending.h"
#include "mail/sender.h"

static qm_err fail(qm_self *me, qm_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static qm_err fail(qm_self *me, qm_err err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(me->detail, sizeof me->detail, fmt, ap);
    va_end(ap);
    return err;
}

/* Level 3 is reserved, anything else unknown. */
static qm_err check_level(qm_self *me, int level)
{
    if (level == QM_LEVEL_1 || level == QM_LEVEL_2 || level == QM_LEVEL_4)
        return QM_OK;
    if (level == 3)
        return fail(me, QM_E_LEVEL,
                    "Level 3 (post-quantum public-key encryption) does not exist yet; "
                    "use Level 1 or 2");
    return fail(me, QM_E_LEVEL, "no security level %d (levels: 1, 2, 4)", level);
}

/* An SAE ID the envelope can carry (docs/qumail-format.md §2): 1..255
 * printable ASCII characters, no space. */
static bool sae_id_ok(const char *id)
{
    size_t n = id != NULL ? strlen(id) : 0;
    if (n == 0 || n > QM_SAE_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x21 || (unsigned char)id[i] > 0x7E)
            return false;
    return true;
}

/* Everything the envelope would refuse is refused before a key is
 * fetched, so that no key is spent on a message that cannot be built. */
static qm_err check_send_args(qm_self *me, int level, const qm_peer *to, size_t n_to,
                              const uint8_t *inner, size_t inner_len)
{
    if (to == NULL || n_to == 0 || (inner == NULL && inner_len > 0))
        return fail(me, QM_E_USAGE, "no recipient or no message");
    if (!sae_id_ok(me->sae_id))
        return fail(me, QM_E_USAGE, "the sender's SAE ID is missing or not printable ASCII");
    if (n_to > QM_MAX_RECIPIENTS)
        return fail(me, QM_E_USAGE, "at most %d recipients", QM_MAX_RECIPIENTS);
    for (size_t r = 0; r < n_to; r++) {
        if (!sae_id_ok(to[r].sae_id))
            return fail(me, QM_E_USAGE,
                        "recipient %zu: SAE ID missing or not printable ASCII", r + 1);
        for (size_t o = 0; o < r; o++)
            if (strcmp(to[o].sae_id, to[r].sae_id) == 0)
                return fail(me, QM_E_USAGE, "recipient SAE %s is listed twice", to[r].sae_id);
    }
    if ((uint64_t)inner_len > QM_MAX_MESSAGE)
        return fail(me, QM_E_TOO_BIG, "message larger than %llu bytes",
                    (unsigned long long)QM_MAX_MESSAGE);
    if (level != QM_LEVEL_4 && me->kme == NULL)
        return fail(me, QM_E_USAGE, "no KME client");
    return check_level(me, level);
}

/* The envelope naming the planned keys (or none, at level 4). */
static qm_err build_envelope(qm_self *me, int level, const qm_peer *to, size_t n_to,
                             uint64_t msg_len, const qm_key_plan *p, qm_envelope *e)
{
    qm_err err = qm_envelope_init(e, level, me->sae_id, msg_len);
    size_t n_groups = level == QM_LEVEL_4 ? 1 : p->n_groups;
    for (size_t g = 0; g < n_groups && err == QM_OK; g++) {
        uint8_t index;
        if (level == QM_LEVEL_1)
            err = qm_envelope_add_group(e, p->group_keys[g].refs,
                                        (uint32_t)p->group_keys[g].n, NULL, &index);
        else if (level == QM_LEVEL_2)
            err = qm_envelope_add_group(e, NULL, 0, &p->group_keys[g].refs[0], &index);
        else
            err = qm_envelope_add_group(e, NULL, 0, NULL, &index);
    }
    for (size_t r = 0; r < n_to && err == QM_OK; r++)
        err = qm_envelope_add_recipient(e, to[r].sae_id,
                                        level == QM_LEVEL_4 ? 0 : (uint8_t)p->group_of[r],
                                        level == QM_LEVEL_1 ? &p->mac_keys[r].refs[0] : NULL);
    if (err == QM_OK)
        err = qm_envelope_check(e);
    if (err != QM_OK && me->detail[0] == '\0')
        fail(me, err, "cannot build the envelope: %s", qm_strerror(err));
    return err;
}

/* Level 4: the header, then the plaintext as it is. */
static qm_err write_plain(const qm_envelope *e, const uint8_t *inner, uint8_t *out, size_t cap,
                          size_t *out_len)
{
    size_t hlen;
    qm_err err = qm_header_write(e, out, cap, &hlen);
    if (err != QM_OK)
        return err;
    if (e->msg_len > 0)
        memcpy(out + hlen, inner, e->msg_len);
    *out_len = hlen + e->msg_len;
    return QM_OK;
}

static qm_err seal(const qm_envelope *ec, int level, const qm_key_plan *p, const uint8_t *inner,
                   uint8_t *out, size_t cap, size_t *out_len)
{
    qm_envelope *e = (qm_envelope *)ec;   /* level 2 writes salts and nonces */
    if (level == QM_LEVEL_4)
        return write_plain(e, inner, out, cap, out_len);
    if (level == QM_LEVEL_2) {
        qm_key_bytes keys[QM_MAX_GROUPS];
        for (size_t g = 0; g < e->n_groups; g++)
            keys[g] = p->group_keys[g].views[0];
        qm_err err = qm_level2_seal(e, inner, keys, out, cap, out_len);
        secret_wipe(keys, sizeof keys);
        return err;
    }
    const qm_key_bytes *pads[QM_MAX_GROUPS];
    qm_key_bytes macs[QM_MAX_RECIPIENTS];
    for (size_t g = 0; g < e->n_groups; g++)
        pads[g] = p->group_keys[g].views;
    for (size_t r = 0; r < e->n_recipients; r++)
        macs[r] = p->mac_keys[r].views[0];
    qm_err err = qm_level1_seal(e, inner, pads, macs, out, cap, out_len);
    secret_wipe(macs, sizeof macs);
    return err;
}

static const uint8_t EMPTY[1];

qm_err qm_encrypt_envelope(qm_self *me, int level, const qm_peer *to, size_t n_to,
                           const uint8_t *inner, size_t inner_len,
                           uint8_t **envelope, size_t *envelope_len)
{
    if (me == NULL || envelope == NULL || envelope_len == NULL)
        return QM_E_USAGE;
    *envelope = NULL;
    *envelope_len = 0;
    me->detail[0] = '\0';
    qm_err err = check_send_args(me, level, to, n_to, inner, inner_len);
    if (err != QM_OK)
        return err;
    if (inner == NULL)
        inner = EMPTY;
    qm_trace(me, "encrypt: Level %d, %zu bytes, %zu recipient(s)", level, inner_len, n_to);
    qm_key_plan plan = { 0 };
    if (level != QM_LEVEL_4 &&
        (err = qm_keyfetch_for_send(me, level, to, n_to, inner_len, &plan)) != QM_OK)
        return err;
    qm_envelope e = { 0 };
    size_t hlen = 0, total = 0;
    uint8_t *out = NULL;
    err = build_envelope(me, level, to, n_to, inner_len, &plan, &e);
    if (err == QM_OK)
        err = qm_header_len(&e, &hlen);
    if (err == QM_OK)
        err = qm_envelope_total_len(&e, hlen, &total);
    if (err == QM_OK && (out = malloc(total)) == NULL)
        err = QM_E_NOMEM;
    if (err == QM_OK)
        err = seal(&e, level, &plan, inner, out, total, envelope_len);
    if (err == QM_OK) {
        qm_trace(me, "envelope: %zu bytes (header %zu), %u group(s), %u recipient(s)", total, hlen,
            e.n_groups, e.n_recipients);
        *envelope = out;
        out = NULL;
    } else {
        if (me->detail[0] == '\0')
            fail(me, err, "sealing failed: %s", qm_strerror(err));
        *envelope_len = 0;
    }
    if (out != NULL) {
        secret_wipe(out, total);
        free(out);
    }
    qm_envelope_free(&e);
    qm_key_plan_free(&plan);   /* keys of a failed message are gone for good */
    return err;
}

/* ------------------------------------------------------------- decrypt */

/* Text IDs of the keys recipient r reads, in the order its level takes
 * them: the group's pad keys then its MAC key (1), the group key (2). */
static qm_err reader_key_ids(const qm_envelope *e, size_t r, char (**ids)[UUID_STR_LEN + 1],
                             size_t *n)
{
    const qm_group *g = &e->groups[e->recipients[r].group];
    size_t count = e->level == QM_LEVEL_1 ? (size_t)g->n_pad_keys + 1 : 1;
    *ids = calloc(count, sizeof **ids);
    if (*ids == NULL)
        return QM_E_NOMEM;
    if (e->level == QM_LEVEL_1) {
        for (uint32_t i = 0; i < g->n_pad_keys; i++)
            uuid_format(g->pad_keys[i].id, (*ids)[i]);
        uuid_format(e->recipients[r].mac_key.id, (*ids)[count - 1]);
    } else {
        uuid_format(g->key.id, (*ids)[0]);
    }
    *n = count;
    return QM_OK;
}

/* A key ID in the used-key store: "key already used (read on DATE)". */
static qm_err refuse_used(qm_self *me, const char *const *ids, size_t n)
{
    bool any = false;
    size_t which = 0;
    long long when = 0;
    char date[64] = "on a date not recorded";
    if (qm_usedkeys_any(me->used, ids, n, &any, &which) != QM_OK)
        return fail(me, QM_E_IO, "cannot read the used-key store");
    if (!any)
        return QM_OK;
    qm_trace(me, "key %s is in the used-key store: no KME call", ids[which]);
    if (qm_usedkeys_when(me->used, ids[which], &when) == QM_OK) {
        time_t t = (time_t)when;
        struct tm tm;
        if (gmtime_r(&t, &tm) != NULL)
            strftime(date, sizeof date, "on %Y-%m-%d %H:%M:%S UTC", &tm);
    }
    return fail(me, QM_E_KEY_USED, "read %s (key %s)", date, ids[which]);
}

/* The keys of one message as the reader gets them: some kept in pending/
 * by an earlier copy, the rest fetched now; views in envelope order. */
typedef struct reader_keys {
    qm_pending_found pending;
    qm_key_set fetched;
    qm_key_bytes *views;
} reader_keys;

static void reader_keys_free(reader_keys *k, size_t n)
{
    qm_pending_found_free(&k->pending);
    qm_key_set_free(&k->fetched);
    if (k->views != NULL)
        secret_wipe(k->views, n * sizeof *k->views);
    free(k->views);
    memset(k, 0, sizeof *k);
}

static long long pending_ttl(const qm_self *me)
{
    return me->pending_ttl > 0 ? me->pending_ttl : QM_PENDING_TTL_DEFAULT;
}

static qm_err find_pending(qm_self *me, const qm_envelope *e, const char *const *ids, size_t n,
                           qm_pending_found *f)
{
    char detail[sizeof me->detail];
    if (me->store_dir == NULL)
        return QM_OK;
    qm_err err = qm_pending_find(me->store_dir, e->sender, me->sae_id, ids, n,
                                 (long long)time(NULL), pending_ttl(me), f, detail,
                                 sizeof detail);
    if (err == QM_E_PENDING)
        return fail(me, err, "%s (not used; delete it to go on)", detail);
    if (err != QM_OK)
        return fail(me, err, "cannot read %s/pending", me->store_dir);
    return QM_OK;
}

/* Keys the KME handed out for a message that gave no plaintext: kept in
 * pending/ for an intact copy, or (without a store, or if that fails)
 * recorded as used, since the KME will not hand them out again. */
static qm_err park_fetched(qm_self *me, const qm_envelope *e, const qm_key_set *s,
                           qm_pending_reason reason, bool *kept)
{
    *kept = false;
    if (s->n == 0)
        return QM_OK;
    const char **ids = malloc(s->n * sizeof *ids);
    if (ids == NULL)
        return QM_E_NOMEM;
    for (size_t i = 0; i < s->n; i++)
        ids[i] = s->ids[i];
    qm_err err = QM_E_USAGE;
    if (me->store_dir != NULL)
        err = qm_pending_save(me->store_dir, e->sender, me->sae_id, reason,
                              (long long)time(NULL), ids, s->views, s->n);
    *kept = err == QM_OK;
    if (err == QM_OK)
        qm_trace(me, "kept %zu key(s) in %s/pending for an intact copy", s->n, me->store_dir);
    else
        err = qm_usedkeys_record(me->used, ids, s->n, e->sender);
    free(ids);
    return err;
}

/* Keys missing from pending/, fetched from the KME in envelope order. */
static qm_err fetch_missing(qm_self *me, const qm_envelope *e, const char *const *ids, size_t n,
                            reader_keys *k)
{
    const char **missing = malloc(n * sizeof *missing);
    size_t m = 0;
    if (missing == NULL)
        return QM_E_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (qm_pending_lookup(&k->pending, ids[i], NULL) == NULL)
            missing[m++] = ids[i];
    if (m < n)
        qm_trace(me, "%zu of %zu key(s) from %s/pending (kept from an earlier copy): "
                 "no KME call for them", n - m, n, me->store_dir);
    qm_err err = m > 0 ? qm_keyfetch_by_ids(me, e->sender, missing, m, &k->fetched) : QM_OK;
    if (err == QM_OK && k->fetched.n != m)
        err = fail(me, QM_E_KME, "the KME returned %zu of %zu keys", k->fetched.n, m);
    for (size_t j = 0; err == QM_OK && j < m; j++)
        if (strcmp(k->fetched.ids[j], missing[j]) != 0)
            err = fail(me, QM_E_KME, "the KME returned key %s for key %s", k->fetched.ids[j],
                       missing[j]);
    free(missing);
    return err;
}

/* views[i]: key ids[i], from pending/ or from the fetched set (in order). */
static qm_err assemble(reader_keys *k, const char *const *ids, size_t n)
{
    if ((k->views = calloc(n, sizeof *k->views)) == NULL)
        return QM_E_NOMEM;
    for (size_t i = 0, j = 0; i < n; i++) {
        const qm_pending_key *p = qm_pending_lookup(&k->pending, ids[i], NULL);
        k->views[i] = p != NULL ? (qm_key_bytes){ p->data, p->len } : k->fetched.views[j++];
    }
    return QM_OK;
}

static qm_err open_keys(const qm_envelope *e, const qm_envelope_view *v, size_t r,
                        const qm_key_bytes *views, size_t n, uint8_t *out, size_t cap)
{
    if (e->level == QM_LEVEL_2)
        return qm_level2_open(e, v, r, &views[0], out, cap);
    return qm_level1_open(e, v, r, views, &views[n - 1], out, cap);
}

/* The message verified: its keys are used now, and leave pending/. */
static qm_err keys_used(qm_self *me, const qm_envelope *e, const char *const *ids, size_t n,
                        const reader_keys *k)
{
    if (qm_usedkeys_record(me->used, ids, n, e->sender) != QM_OK)
        return fail(me, QM_E_IO, "cannot record used keys in the used-key store");
    qm_trace(me, "recorded %zu key ID(s) as used", n);
    if (k->pending.n > 0 && qm_pending_consume(me->store_dir, &k->pending, ids, n) != QM_OK)
        qm_trace(me, "cannot erase the used keys from %s/pending (erased at expiry)",
                 me->store_dir);
    me->forged_copy_seen = k->pending.forged_copy_seen;
    return QM_OK;
}

/* Levels 1 and 2: the inner From and Sender against me->book.  QM_E_SENDER
 * only if the caller does not take such a message. */
static qm_err bind_sender(qm_self *me, const qm_envelope *e, const uint8_t *inner, size_t len)
{
    const char *who = NULL;
    if (me->book == NULL)
        return QM_OK;
    qm_err err = qm_sender_verify(me->book, e->sender, inner, len, me->unverified,
                                  sizeof me->unverified, &who);
    if (err == QM_OK) {
        qm_trace(me, "sender verified: SAE %s is %s in the address book", e->sender, who);
        return QM_OK;
    }
    if (err != QM_E_SENDER)   /* out of memory: not verified either */
        snprintf(me->unverified, sizeof me->unverified, "sent by SAE %s; %s", e->sender,
                 qm_strerror(err));
    qm_trace(me, "sender not verified: %s", me->unverified);
    return me->accept_unverified ? QM_OK : QM_E_SENDER;
}

/* Keys from pending/ or the KME, open, then record.  *out receives
 * msg_len bytes. */
static qm_err decrypt_keyed(qm_self *me, const qm_envelope *e, const qm_envelope_view *v,
                            size_t r, uint8_t *out, size_t cap)
{
    char (*idtext)[UUID_STR_LEN + 1] = NULL;
    size_t n = 0;
    qm_err err = reader_key_ids(e, r, &idtext, &n);
    if (err != QM_OK)
        return err;
    const char **ids = malloc(n * sizeof *ids);
    if (ids == NULL) {
        free(idtext);
        return QM_E_NOMEM;
    }
    for (size_t i = 0; i < n; i++)
        ids[i] = idtext[i];
    reader_keys k = { 0 };
    bool kept = false;
    err = refuse_used(me, ids, n);
    if (err == QM_OK)
        err = find_pending(me, e, ids, n, &k.pending);
    if (err == QM_OK && (err = fetch_missing(me, e, ids, n, &k)) != QM_OK &&
        park_fetched(me, e, &k.fetched, QM_PENDING_INCOMPLETE, &kept) != QM_OK) {
        char why[sizeof me->detail];
        snprintf(why, sizeof why, "%s", me->detail);
        fail(me, err, "%.200s; the keys handed out could not be kept", why);
    }
    if (err == QM_OK)
        err = assemble(&k, ids, n);
    if (err == QM_OK && (err = open_keys(e, v, r, k.views, n, out, cap)) != QM_OK) {
        bool tampered = err == QM_E_TAMPERED || err == QM_E_KEY_SHORT;
        qm_err park = park_fetched(me, e, &k.fetched,
                                   tampered ? QM_PENDING_TAMPERED : QM_PENDING_INCOMPLETE, &kept);
        if (tampered)
            err = fail(me, QM_E_TAMPERED, "no plaintext was written%s",
                       park != QM_OK ? "; its keys could not be kept or recorded"
                       : kept || k.pending.n > 0
                           ? "; its keys wait in [store] dir/pending for an intact copy" : "");
    }
    /* the reason is in me->unverified; the detail says what became of the keys */
    if (err == QM_OK && (err = bind_sender(me, e, out, cap)) == QM_E_SENDER) {
        qm_err park = park_fetched(me, e, &k.fetched, QM_PENDING_UNVERIFIED, &kept);
        fail(me, QM_E_SENDER, "no plaintext was written%s",
             park != QM_OK ? "; its keys could not be kept or recorded"
             : kept || k.pending.n > 0 ? "; its keys wait in [store] dir/pending" : "");
    }
    if (err == QM_OK)
        err = keys_used(me, e, ids, n, &k);
    reader_keys_free(&k, n);
    free(ids);
    free(idtext);
    return err;
}

qm_err qm_decrypt_envelope(qm_self *me, const uint8_t *envelope, size_t envelope_len,
                           uint8_t **inner, size_t *inner_len, int *level)
{
    if (me == NULL || inner == NULL || inner_len == NULL)
        return QM_E_USAGE;
    *inner = NULL;
    *inner_len = 0;
    me->detail[0] = '\0';
    me->forged_copy_seen = false;
    me->unverified[0] = '\0';
    me->sender[0] = '\0';
    if (envelope == NULL || me->sae_id == NULL || me->used == NULL)
        return fail(me, QM_E_USAGE, "no message, SAE ID or used-key store");
    qm_envelope e = { 0 };
    qm_envelope_view v;
    qm_err err = qm_envelope_parse(envelope, envelope_len, &e, &v);
    if (err != QM_OK)
        return fail(me, err, "%s", qm_strerror(err));
    if (level != NULL)
        *level = (int)e.level;
    snprintf(me->sender, sizeof me->sender, "%s", e.sender);
    int r = qm_envelope_find_recipient(&e, me->sae_id);
    qm_trace(me, "envelope: Level %d from %s, %llu bytes, %u recipient(s)", (int)e.level, e.sender,
        (unsigned long long)e.msg_len, e.n_recipients);
    if (r < 0) {
        qm_envelope_free(&e);
        return fail(me, QM_E_NOT_RECIPIENT, "%s is not a recipient of this message", me->sae_id);
    }
    if (e.level != QM_LEVEL_4 && me->kme == NULL) {
        qm_envelope_free(&e);
        return fail(me, QM_E_USAGE, "no KME client");
    }
    size_t cap = (size_t)e.msg_len;
    uint8_t *out = malloc(cap ? cap : 1);
    if (out == NULL)
        err = QM_E_NOMEM;
    else if (e.level == QM_LEVEL_4) {
        qm_trace(me, "Level 4: the message was not encrypted");
        if (cap > 0)
            memcpy(out, v.ciphertext[0], cap);
    } else {
        err = decrypt_keyed(me, &e, &v, (size_t)r, out, cap);
    }
    if (err == QM_OK) {
        *inner = out;
        *inner_len = cap;
    } else if (out != NULL) {
        secret_wipe(out, cap);
        free(out);
    }
    qm_envelope_free(&e);
    return err;
}

/* ------------------------------------------------------- outer message */

/* Addresses are checked before any key is fetched: keys are never spent
 * on a message that cannot be addressed. */
static qm_err check_addresses(qm_self *me, const qm_peer *to, size_t n_to)
{
    if (me->address == NULL || me->address[0] == '\0')
        return fail(me, QM_E_USAGE, "no sender address");
    for (size_t r = 0; to != NULL && r < n_to; r++)
        if (to[r].address == NULL || to[r].address[0] == '\0')
            return fail(me, QM_E_USAGE, "recipient %zu has no address", r + 1);
    return QM_OK;
}

qm_err qm_encrypt(qm_self *me, int level, const qm_peer *to, size_t n_to,
                  const uint8_t *inner, size_t inner_len, uint8_t **outer, size_t *outer_len)
{
    if (me == NULL || outer == NULL || outer_len == NULL)
        return QM_E_USAGE;
    *outer = NULL;
    *outer_len = 0;
    me->detail[0] = '\0';
    qm_err err = check_addresses(me, to, n_to);
    if (err != QM_OK)
        return err;
    uint8_t *env = NULL;
    size_t env_len = 0;
    err = qm_encrypt_envelope(me, level, to, n_to, inner, inner_len, &env, &env_len);
    if (err != QM_OK)
        return err;
    const char *addrs[QM_MAX_RECIPIENTS];
    for (size_t r = 0; r < n_to; r++)
        addrs[r] = to[r].address;
    err = qm_mime_build(me->address, addrs, n_to, NULL, env, env_len, outer, outer_len);
    if (err != QM_OK)
        fail(me, err, "cannot build the outer message: %s", qm_strerror(err));
    else
        qm_trace(me, "outer message: %zu bytes", *outer_len);
    secret_wipe(env, env_len);   /* a Level 4 envelope holds the plaintext */
    free(env);
    return err;
}

qm_err qm_decrypt(qm_self *me, const uint8_t *outer, size_t outer_len,
                  uint8_t **inner, size_t *inner_len, int *level)
{
    if (me == NULL || inner == NULL || inner_len == NULL)
        return QM_E_USAGE;
    *inner = NULL;
    *inner_len = 0;
    me->detail[0] = '\0';
    if (outer == NULL)
        return fail(me, QM_E_USAGE, "no message");
    uint8_t *env = NULL;
    size_t env_len = 0;
    qm_err err = qm_mime_parse(outer, outer_len, &env, &env_len, NULL);
    if (err != QM_OK)
        return fail(me, err, "%s", err == QM_E_VERSION
                                       ? "the message's format version is not 1"
                                       : "not a QuMail message (outer MIME structure)");
    err = qm_decrypt_envelope(me, env, env_len, inner, inner_len, level);
    secret_wipe(env, env_len);
    free(env);
    return err;
}
