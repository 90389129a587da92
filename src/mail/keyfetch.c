/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyfetch.c - the ETSI GS QKD 014 calls of a QuMail message (keyfetch.h).
 *
 * Sender, Level 1: read each recipient's status for the KME's limits, group
 * the recipients (same kme_id -> one multicast pad, as many per group as
 * max_SAE_ID_count allows), plan each pad's key sizes (qm_pad_plan), fetch
 * them in runs of at most max_key_per_request keys, then one 256-bit MAC
 * key per recipient for that recipient alone.  Level 2: one 256-bit key per
 * recipient.  Reader: dec_keys in batches of max_key_per_request.
 */
#include "mail/keyfetch.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


#define KEY_NOT_FOUND_MSG "one or more keys specified are not found on KME"
#define KEY256_BITS 256
#define LEVEL2_HINT "; Level 2 needs only 256 bits per recipient (--level 2)"

/* ------------------------------------------------------------ narration */

void qm_trace(qm_self *me, const char *fmt, ...)
{
    if (me->trace == NULL)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    me->trace(me->trace_arg, line);
}

static void trace_keys(qm_self *me, const qkd014_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        qm_trace(me, "  key %s (%zu bits)", k->keys[i].key_id, k->keys[i].key_len * 8);
}

/* ------------------------------------------------------- error mapping */

typedef enum etsi_call { CALL_STATUS, CALL_ENC_KEYS, CALL_DEC_KEYS } etsi_call;

static const char *call_name(etsi_call call)
{
    return call == CALL_STATUS ? "status" : call == CALL_ENC_KEYS ? "enc_keys" : "dec_keys";
}

/* libqkd014's result of one call as a qm_err, with the reason in
 * me->detail (the KME's own message where it gave one). */
static qm_err map_error_msg(qm_self *me, qkd014_code code, etsi_call call, const char *sae,
                            const char *msg)
{
    const char *name = call_name(call);
    qm_err err;
    switch (code) {
    case QKD014_OK:           return QM_OK;
    case QKD014_E_NOMEM:      err = QM_E_NOMEM; break;
    case QKD014_E_USAGE:      err = QM_E_USAGE; break;
    case QKD014_E_TLS:
    case QKD014_E_UNAUTHORIZED: err = QM_E_AUTH; break;
    case QKD014_E_UNAVAILABLE:
        err = call == CALL_ENC_KEYS ? QM_E_NO_KEYS : QM_E_KME;
        break;
    case QKD014_E_BAD_REQUEST:
        err = call == CALL_DEC_KEYS && strcasestr(msg, KEY_NOT_FOUND_MSG) != NULL
                  ? QM_E_KEY_NOT_FOUND : QM_E_KME;
        break;
    default:                  err = QM_E_KME; break;
    }
    if (err == QM_E_NO_KEYS)
        snprintf(me->detail, sizeof me->detail,
                 "%s for %s: %s" LEVEL2_HINT, name, sae, msg);
    else if (err == QM_E_KEY_NOT_FOUND)   /* the caller's used-key store did not know them */
        snprintf(me->detail, sizeof me->detail, "%s from %s: %s (never read here: issued to "
                 "another reader, expired, or not a real key ID)", name, sae, msg);
    else
        snprintf(me->detail, sizeof me->detail, "%s %s %s: %s", name,
                 call == CALL_DEC_KEYS ? "from" : "for", sae, msg);
    qm_trace(me, "%s %s %s failed: %s", name, call == CALL_DEC_KEYS ? "master" : "slave", sae,
          msg);
    return err;
}

static qm_err map_error(qm_self *me, qkd014_code code, etsi_call call, const char *sae)
{
    return map_error_msg(me, code, call, sae, qkd014_errmsg(me->kme));
}

/* ------------------------------------------------------------ key sets */

void qm_key_set_free(qm_key_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_batches; i++)
        qkd014_keys_free(s->batches[i]);
    free(s->batches);
    free(s->views);
    free(s->refs);
    free(s->ids);
    memset(s, 0, sizeof *s);
}

void qm_key_plan_free(qm_key_plan *p)
{
    if (p == NULL)
        return;
    for (size_t g = 0; g < QM_MAX_GROUPS; g++)
        qm_key_set_free(&p->group_keys[g]);
    for (size_t r = 0; r < QM_MAX_RECIPIENTS; r++)
        qm_key_set_free(&p->mac_keys[r]);
    memset(p, 0, sizeof *p);
}

static qm_err grow(void **p, size_t n, size_t size)
{
    void *q = realloc(*p, n * size);
    if (q == NULL)
        return QM_E_NOMEM;
    *p = q;
    return QM_OK;
}

/* Append the keys of one ETSI call to s, which takes ownership of k (also
 * on failure, when k is freed). */
static qm_err set_append(qm_key_set *s, qkd014_keys *k)
{
    size_t n = s->n + k->n;
    if (grow((void **)&s->batches, s->n_batches + 1, sizeof *s->batches) != QM_OK) {
        qkd014_keys_free(k);
        return QM_E_NOMEM;
    }
    s->batches[s->n_batches++] = k;
    if (grow((void **)&s->views, n, sizeof *s->views) != QM_OK ||
        grow((void **)&s->refs, n, sizeof *s->refs) != QM_OK ||
        grow((void **)&s->ids, n, sizeof *s->ids) != QM_OK)
        return QM_E_NOMEM;
    for (size_t i = 0; i < k->n; i++) {
        const qkd014_key *key = &k->keys[i];
        if (key->key_len == 0 || key->key_len > QM_MAX_KEY_LEN ||
            uuid_parse(key->key_id, UUID_STR_LEN, s->refs[s->n + i].id) != 0)
            return QM_E_KME;
        s->refs[s->n + i].len = (uint32_t)key->key_len;
        s->views[s->n + i] = (qm_key_bytes){ .data = key->key, .len = key->key_len };
        uuid_format(s->refs[s->n + i].id, s->ids[s->n + i]);
    }
    s->n = n;
    return QM_OK;
}

/* ------------------------------------------------------------- enc_keys */

/* One enc_keys call: number keys of size_bits for slave (and extra, by
 * multicast), appended to s.  The sender refuses keys shorter (or other)
 * than it asked for. */
static qm_err enc_keys(qm_self *me, const char *slave, const char *const *extra, size_t n_extra,
                       int32_t number, int32_t size_bits, qm_key_set *s)
{
    char others[QM_MAX_RECIPIENTS * (QM_SAE_ID_MAX + 1) + 1] = "";
    for (size_t i = 0; i < n_extra; i++) {
        strcat(others, i ? "," : " additional_slave_SAE_IDs=");
        strcat(others, extra[i]);
    }
    qm_trace(me, "enc_keys slave=%s%s number=%d size=%d bits", slave, others, (int)number,
          (int)size_bits);
    qkd014_key_request req = { .version = QKD014_KEY_REQUEST_VERSION,
                               .number = number, .size = size_bits,
                               .additional_slaves = n_extra ? extra : NULL,
                               .n_additional = n_extra };
    qkd014_keys *k = NULL;
    qkd014_code code = qkd014_get_key(me->kme, slave, &req, &k);
    if (code != QKD014_OK)
        return map_error(me, code, CALL_ENC_KEYS, slave);
    trace_keys(me, k);
    bool sized = k->n == (size_t)number;
    for (size_t i = 0; i < k->n && sized; i++)
        sized = k->keys[i].key_len * 8 == (size_t)size_bits;
    if (!sized) {
        qkd014_keys_free(k);
        snprintf(me->detail, sizeof me->detail,
                 "enc_keys for %s: the KME returned other keys than requested", slave);
        return QM_E_KEY_SHORT;
    }
    qm_err err = set_append(s, k);
    if (err == QM_E_KME)
        snprintf(me->detail, sizeof me->detail, "enc_keys for %s: unusable key ID or size", slave);
    return err;
}

/* The KME's limits for one slave, from its status. */
typedef struct limits {
    int32_t min_bits, max_bits, max_per_request, max_sae_ids;
} limits;

static qm_err read_limits(qm_self *me, const char *slave, limits *l)
{
    qkd014_status *st = NULL;
    qkd014_code code = qkd014_get_status(me->kme, slave, &st);
    qm_trace(me, "status slave=%s", slave);
    if (code != QKD014_OK)
        return map_error(me, code, CALL_STATUS, slave);
    qm_trace(me, "  key_size=%d min_key_size=%d max_key_size=%d max_key_per_request=%d "
              "max_SAE_ID_count=%d stored_key_count=%d target_KME_ID=%s",
          (int)st->key_size, (int)st->min_key_size, (int)st->max_key_size,
          (int)st->max_key_per_request, (int)st->max_sae_id_count, (int)st->stored_key_count,
          st->target_kme_id);
    l->min_bits = st->min_key_size;
    l->max_bits = st->max_key_size > 0 ? st->max_key_size : st->key_size;
    l->max_per_request = st->max_key_per_request > 0 ? st->max_key_per_request : 1;
    l->max_sae_ids = st->max_sae_id_count;
    qkd014_status_free(st);
    return QM_OK;
}

/* Limits that hold for every member of a group. */
static limits merge_limits(limits a, limits b)
{
    return (limits){
        .min_bits = a.min_bits > b.min_bits ? a.min_bits : b.min_bits,
        .max_bits = a.max_bits < b.max_bits ? a.max_bits : b.max_bits,
        .max_per_request = a.max_per_request < b.max_per_request ? a.max_per_request
                                                                 : b.max_per_request,
        .max_sae_ids = a.max_sae_ids < b.max_sae_ids ? a.max_sae_ids : b.max_sae_ids,
    };
}

qm_err qm_pad_plan(uint64_t msg_len, int32_t min_key_bits, int32_t max_key_bits,
                   uint32_t *sizes, size_t cap, size_t *n)
{
    *n = 0;
    uint64_t maxb = max_key_bits > 0 ? (uint64_t)max_key_bits / 8 : 0;
    uint64_t minb = min_key_bits > 0 ? ((uint64_t)min_key_bits + 7) / 8 : 1;
    if (maxb > QM_MAX_KEY_LEN)
        maxb = QM_MAX_KEY_LEN;
    if (maxb == 0 || maxb < minb)
        return QM_E_KME;
    if (msg_len == 0)
        return QM_OK;
    /* One size for every pad key, so that the pad takes as few enc_keys
     * calls as max_key_per_request allows (one for a 100 KiB message): n =
     * ceil(L / max) keys of ceil(L / n) bytes.  The sum exceeds L by fewer
     * than n bytes (the discarded tail of the last key); each key but the
     * last is needed, since (n - 1) * size <= (n - 1) * max < L. */
    uint64_t count = (msg_len + maxb - 1) / maxb;
    uint64_t size = (msg_len + count - 1) / count;
    if (size < minb)
        size = minb;
    if (count > cap)
        return QM_E_TOO_BIG;
    for (uint64_t i = 0; i < count; i++)
        sizes[(*n)++] = (uint32_t)size;
    return QM_OK;
}

/* Fetch a pad for the group's slaves (slaves[0] the slave of the calls,
 * the rest multicast): runs of equal sizes, max_per_request keys a call. */
static qm_err fetch_pad(qm_self *me, const char *const *slaves, size_t n_slaves, limits l,
                        uint64_t msg_len, qm_key_set *s)
{
    uint32_t *sizes = malloc(QM_MAX_PAD_KEYS * sizeof *sizes);
    if (sizes == NULL)
        return QM_E_NOMEM;
    size_t n;
    qm_err err = qm_pad_plan(msg_len, l.min_bits, l.max_bits, sizes, QM_MAX_PAD_KEYS, &n);
    if (err == QM_E_KME)
        snprintf(me->detail, sizeof me->detail,
                 "the KME's key size limits (%d..%d bits) allow no key", (int)l.min_bits,
                 (int)l.max_bits);
    else if (err == QM_E_TOO_BIG)
        snprintf(me->detail, sizeof me->detail,
                 "the message needs more than %u pad keys", QM_MAX_PAD_KEYS);
    for (size_t i = 0; i < n && err == QM_OK;) {
        size_t run = 1;
        while (i + run < n && sizes[i + run] == sizes[i] && run < (size_t)l.max_per_request)
            run++;
        err = enc_keys(me, slaves[0], slaves + 1, n_slaves - 1, (int32_t)run,
                       (int32_t)(sizes[i] * 8), s);
        i += run;
    }
    free(sizes);
    return err;
}

/* Level 1 groups: recipients with one non-NULL kme_id together, at most
 * 1 + max_SAE_ID_count per group (the first one's limit), in order. */
static void make_groups(const qm_peer *to, size_t n_to, const limits *lim, qm_key_plan *p)
{
    bool placed[QM_MAX_RECIPIENTS] = { false };
    p->n_groups = 0;
    for (size_t r = 0; r < n_to; r++) {
        if (placed[r])
            continue;
        size_t g = p->n_groups++, members = 1;
        placed[r] = true;
        p->group_of[r] = g;
        size_t max_members = 1 + (lim[r].max_sae_ids > 0 ? (size_t)lim[r].max_sae_ids : 0);
        for (size_t o = r + 1; o < n_to && to[r].kme_id != NULL && members < max_members; o++) {
            if (placed[o] || to[o].kme_id == NULL || strcmp(to[o].kme_id, to[r].kme_id) != 0)
                continue;
            placed[o] = true;
            p->group_of[o] = g;
            members++;
        }
    }
}

static qm_err send_level1(qm_self *me, const qm_peer *to, size_t n_to, uint64_t msg_len,
                          qm_key_plan *p)
{
    limits lim[QM_MAX_RECIPIENTS];
    qm_err err = QM_OK;
    for (size_t r = 0; r < n_to && err == QM_OK; r++)
        err = read_limits(me, to[r].sae_id, &lim[r]);
    if (err != QM_OK)
        return err;
    make_groups(to, n_to, lim, p);
    for (size_t g = 0; g < p->n_groups && err == QM_OK; g++) {
        const char *slaves[QM_MAX_RECIPIENTS];
        size_t n_slaves = 0;
        limits l = { 0 };
        for (size_t r = 0; r < n_to; r++) {
            if (p->group_of[r] != g)
                continue;
            l = n_slaves == 0 ? lim[r] : merge_limits(l, lim[r]);
            slaves[n_slaves++] = to[r].sae_id;
        }
        qm_trace(me, "Level 1 pad %zu: %llu bytes for %zu recipient(s)", g,
              (unsigned long long)msg_len, n_slaves);
        err = fetch_pad(me, slaves, n_slaves, l, msg_len, &p->group_keys[g]);
    }
    for (size_t r = 0; r < n_to && err == QM_OK; r++) {
        qm_trace(me, "Level 1 MAC key for %s", to[r].sae_id);
        err = enc_keys(me, to[r].sae_id, NULL, 0, 1, QM_MAC_KEY_LEN * 8, &p->mac_keys[r]);
    }
    return err;
}

static qm_err send_level2(qm_self *me, const qm_peer *to, size_t n_to, qm_key_plan *p)
{
    qm_err err = QM_OK;
    p->n_groups = n_to;
    for (size_t r = 0; r < n_to && err == QM_OK; r++) {
        p->group_of[r] = r;
        qm_trace(me, "Level 2 key for %s", to[r].sae_id);
        err = enc_keys(me, to[r].sae_id, NULL, 0, 1, KEY256_BITS, &p->group_keys[r]);
    }
    return err;
}

qm_err qm_keyfetch_for_send(qm_self *me, int level, const qm_peer *to, size_t n_to,
                            uint64_t msg_len, qm_key_plan *p)
{
    if (me == NULL || me->kme == NULL || to == NULL || p == NULL || n_to == 0 ||
        n_to > QM_MAX_RECIPIENTS)
        return QM_E_USAGE;
    memset(p, 0, sizeof *p);
    p->level = level;
    qm_err err = level == QM_LEVEL_1   ? send_level1(me, to, n_to, msg_len, p)
                 : level == QM_LEVEL_2 ? send_level2(me, to, n_to, p)
                                       : QM_E_LEVEL;
    char *hint = strstr(me->detail, LEVEL2_HINT);
    if (level == QM_LEVEL_2 && err == QM_E_NO_KEYS && hint != NULL)
        *hint = '\0';   /* already at Level 2: nothing to suggest */
    if (err != QM_OK)
        qm_key_plan_free(p);
    return err;
}

/* ------------------------------------------------------------- dec_keys */

/* A 401 at dec_keys means either that the KME does not accept us at all or
 * that a key ID names a key issued to another SAE.  If status still works
 * our credentials are fine, so the envelope names someone else's keys. */
static bool credentials_work(qm_self *me, const char *master)
{
    qkd014_status *st = NULL;
    qm_trace(me, "dec_keys master=%s refused (401): status slave=%s to tell why", master, master);
    bool ok = qkd014_get_status(me->kme, master, &st) == QKD014_OK;
    qkd014_status_free(st);
    return ok;
}

static qm_err other_saes_keys(qm_self *me, const char *master)
{
    snprintf(me->detail, sizeof me->detail,
             "dec_keys from %s: the KME says the message names keys not issued to %s "
             "(tampered or misaddressed)", master, me->sae_id);
    qm_trace(me, "%s", me->detail);
    return QM_E_TAMPERED;
}

/* The KME's max_key_per_request for dec_keys from master, or 0 with
 * me->detail set. */
static size_t dec_limit(qm_self *me, const char *master, qm_err *err)
{
    qkd014_status *st = NULL;
    qm_trace(me, "status slave=%s (for max_key_per_request)", master);
    qkd014_code code = qkd014_get_status(me->kme, master, &st);
    if (code != QKD014_OK) {
        *err = map_error(me, code, CALL_STATUS, master);
        return 0;
    }
    size_t limit = st->max_key_per_request > 0 ? (size_t)st->max_key_per_request : 1;
    qm_trace(me, "  max_key_per_request=%zu", limit);
    qkd014_status_free(st);
    return limit;
}

/* All n keys are asked for in one dec_keys call first: a status call to
 * learn max_key_per_request would cost a round trip on every message, and a
 * KME that takes fewer key IDs per call refuses the whole call with 400
 * (a refused call delivers nothing), after which we ask and split; one that
 * refuses the body as too large (413) gets half as many key IDs a call. */
qm_err qm_keyfetch_by_ids(qm_self *me, const char *master, const char *const *ids, size_t n,
                          qm_key_set *s)
{
    if (me == NULL || me->kme == NULL || master == NULL || s == NULL || (n > 0 && ids == NULL))
        return QM_E_USAGE;
    memset(s, 0, sizeof *s);
    size_t per_call = n;
    bool asked = n <= 1;
    for (size_t off = 0; off < n;) {
        size_t cnt = n - off < per_call ? n - off : per_call;
        qm_trace(me, "dec_keys master=%s number=%zu", master, cnt);
        qkd014_keys *k = NULL;
        qkd014_code code = qkd014_get_key_with_ids(me->kme, master, ids + off, cnt, &k);
        if (code == QKD014_E_HTTP && cnt > 1 && strstr(qkd014_errmsg(me->kme), "HTTP 413")) {
            /* the request body (about 56 bytes a key ID) is larger than the KME takes
             * (64 KiB for qkd-kme: some 1,170 key IDs, an 8.9 MiB Level 1 message):
             * a refused call delivers nothing, so ask for half as many a call */
            qm_trace(me, "dec_keys: the KME refused %zu key IDs in one body (413): %zu a call",
                     cnt, cnt / 2);
            per_call = cnt / 2;
            continue;
        }
        if (code == QKD014_E_BAD_REQUEST && !asked &&
            strcasestr(qkd014_errmsg(me->kme), KEY_NOT_FOUND_MSG) == NULL) {
            char why[128]; /* the KME's message, kept across the status call */
            qm_err err = QM_OK;
            snprintf(why, sizeof why, "%s", qkd014_errmsg(me->kme));
            asked = true;
            size_t limit = dec_limit(me, master, &err);
            if (limit == 0)
                return err;
            if (limit < cnt) {
                per_call = limit;
                continue;
            }
            return map_error_msg(me, code, CALL_DEC_KEYS, master, why);
        }
        if (code == QKD014_E_UNAUTHORIZED && credentials_work(me, master))
            return other_saes_keys(me, master);
        if (code != QKD014_OK)
            return map_error(me, code, CALL_DEC_KEYS, master);
        trace_keys(me, k);
        qm_err err = set_append(s, k);
        if (err != QM_OK)
            return err;
        off += cnt;
        asked = true; /* a KME that took this many takes as many again */
    }
    return QM_OK;
}
