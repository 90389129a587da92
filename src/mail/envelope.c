/* SPDX-License-Identifier: Apache-2.0 */
/*
 * envelope.c - build, serialise and strictly parse the QuMail envelope
 * (envelope.h, docs/qumail-format.md §2).
 *
 * One function, qm_envelope_check(), holds every rule that is not about
 * bytes, and both directions use it: the writer refuses to produce an
 * envelope the parser would reject, and the parser reads the fields with
 * bounds checks only, then applies the same rules.  The parser finally
 * re-derives the total length from the header and demands exact equality,
 * so trailing or missing bytes never pass.  Key IDs are checked for
 * duplicates by sorting a copy: a repeated key ID could make a reader
 * fetch (and burn) a key twice or use one key for two purposes.
 */
#include "mail/envelope.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------ */

const char *qm_level_alg(int level)
{
    switch (level) {
    case QM_LEVEL_1: return QM_ALG_LEVEL1;
    case QM_LEVEL_2: return QM_ALG_LEVEL2;
    case QM_LEVEL_4: return QM_ALG_LEVEL4;
    }
    return NULL;
}

/* SAE IDs go into logs and KME requests: printable ASCII without space. */
static bool sae_id_valid(const char *s, size_t len)
{
    if (len == 0 || len > QM_SAE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

static bool sae_id_cstr_valid(const char *s)
{
    return s != NULL && sae_id_valid(s, strnlen(s, QM_SAE_ID_MAX + 1));
}

static bool key_len_valid(uint32_t len)
{
    return len >= 1 && len <= QM_MAX_KEY_LEN;
}

/* ---- building ----------------------------------------------------------- */

qm_err qm_envelope_init(qm_envelope *e, int level, const char *sender, uint64_t msg_len)
{
    if (e == NULL)
        return QM_E_USAGE;
    memset(e, 0, sizeof *e);
    if (qm_level_alg(level) == NULL)
        return QM_E_LEVEL;
    if (!sae_id_cstr_valid(sender))
        return QM_E_USAGE;
    if (msg_len > QM_MAX_MESSAGE)
        return QM_E_TOO_BIG;
    e->version = QM_FORMAT_VERSION;
    e->level = (qm_level)level;
    memcpy(e->sender, sender, strlen(sender) + 1);
    e->msg_len = msg_len;
    return QM_OK;
}

qm_err qm_envelope_add_group(qm_envelope *e, const qm_key_ref *pad_keys, uint32_t n,
                             const qm_key_ref *level2_key, uint8_t *index)
{
    if (e == NULL || e->n_groups >= QM_MAX_GROUPS)
        return QM_E_USAGE;
    qm_group *g = &e->groups[e->n_groups];
    memset(g, 0, sizeof *g);
    if (e->level == QM_LEVEL_1) {
        if (n > QM_MAX_PAD_KEYS || (n > 0 && pad_keys == NULL))
            return QM_E_USAGE;
        if (n > 0) {
            g->pad_keys = malloc((size_t)n * sizeof *g->pad_keys);
            if (g->pad_keys == NULL)
                return QM_E_NOMEM;
            memcpy(g->pad_keys, pad_keys, (size_t)n * sizeof *g->pad_keys);
        }
        g->n_pad_keys = n;
    } else if (e->level == QM_LEVEL_2) {
        if (level2_key == NULL)
            return QM_E_USAGE;
        g->key = *level2_key;
    }
    if (index != NULL)
        *index = e->n_groups;
    e->n_groups++;
    return QM_OK;
}

qm_err qm_envelope_add_recipient(qm_envelope *e, const char *sae_id, uint8_t group,
                                 const qm_key_ref *mac_key)
{
    if (e == NULL || e->n_recipients >= QM_MAX_RECIPIENTS || !sae_id_cstr_valid(sae_id))
        return QM_E_USAGE;
    if ((e->level == QM_LEVEL_1) != (mac_key != NULL))
        return QM_E_USAGE;
    qm_recipient *r = &e->recipients[e->n_recipients];
    memset(r, 0, sizeof *r);
    memcpy(r->sae_id, sae_id, strlen(sae_id) + 1);
    r->group = group;
    if (mac_key != NULL)
        r->mac_key = *mac_key;
    e->n_recipients++;
    return QM_OK;
}

void qm_envelope_free(qm_envelope *e)
{
    if (e == NULL)
        return;
    for (size_t g = 0; g < QM_MAX_GROUPS; g++)
        free(e->groups[g].pad_keys);
    memset(e, 0, sizeof *e);
}

/* ---- the rules ------------------------------------------------------------ */

/* Level 1: the pad keys give at least msg_len bytes, and every key
 * contributes at least one (sum - last < msg_len).  Sums fit in 64 bits:
 * at most 2^16 keys of at most 2^28 bytes. */
static bool pad_covers(const qm_group *g, uint64_t msg_len)
{
    uint64_t sum = 0;

    for (uint32_t i = 0; i < g->n_pad_keys; i++) {
        if (!key_len_valid(g->pad_keys[i].len))
            return false;
        sum += g->pad_keys[i].len;
    }
    if (g->n_pad_keys == 0)
        return msg_len == 0;
    return sum >= msg_len && sum - g->pad_keys[g->n_pad_keys - 1].len < msg_len;
}

static bool groups_valid(const qm_envelope *e)
{
    if (e->n_groups < 1 || e->n_groups > QM_MAX_GROUPS)
        return false;
    if (e->level == QM_LEVEL_4 && e->n_groups != 1)
        return false;
    for (size_t i = 0; i < e->n_groups; i++) {
        const qm_group *g = &e->groups[i];
        if (e->level == QM_LEVEL_1) {
            if (g->n_pad_keys > QM_MAX_PAD_KEYS || !pad_covers(g, e->msg_len))
                return false;
        } else if (e->level == QM_LEVEL_2) {
            if (g->key.len != QM_L2_KEY_LEN)
                return false;
        } else if (g->n_pad_keys != 0) {
            return false;
        }
    }
    return true;
}

/* Recipients: valid distinct SAE IDs, valid group indices, every group
 * used (level 2: by exactly one recipient), 32-byte MAC keys at level 1. */
static bool recipients_valid(const qm_envelope *e)
{
    unsigned members[QM_MAX_GROUPS] = { 0 };

    if (e->n_recipients < 1 || e->n_recipients > QM_MAX_RECIPIENTS)
        return false;
    for (size_t i = 0; i < e->n_recipients; i++) {
        const qm_recipient *r = &e->recipients[i];
        if (!sae_id_cstr_valid(r->sae_id) || r->group >= e->n_groups)
            return false;
        if (e->level == QM_LEVEL_1 && r->mac_key.len != QM_MAC_KEY_LEN)
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(e->recipients[j].sae_id, r->sae_id) == 0)
                return false;
        members[r->group]++;
    }
    for (size_t g = 0; g < e->n_groups; g++)
        if (members[g] == 0 || (e->level == QM_LEVEL_2 && members[g] != 1))
            return false;
    return true;
}

static int key_id_order(const void *a, const void *b)
{
    return memcmp(a, b, QM_KEY_ID_LEN);
}

static size_t key_count(const qm_envelope *e)
{
    size_t n = 0;
    for (size_t g = 0; g < e->n_groups; g++)
        n += e->level == QM_LEVEL_1 ? e->groups[g].n_pad_keys
           : e->level == QM_LEVEL_2 ? 1 : 0;
    if (e->level == QM_LEVEL_1)
        n += e->n_recipients;
    return n;
}

/* Every key ID of the envelope, pad and MAC keys alike, appears once. */
static qm_err key_ids_distinct(const qm_envelope *e)
{
    size_t n = key_count(e), k = 0;
    if (n < 2)
        return QM_OK;
    uint8_t (*ids)[QM_KEY_ID_LEN] = malloc(n * QM_KEY_ID_LEN);
    if (ids == NULL)
        return QM_E_NOMEM;
    for (size_t g = 0; g < e->n_groups; g++) {
        if (e->level == QM_LEVEL_2)
            memcpy(ids[k++], e->groups[g].key.id, QM_KEY_ID_LEN);
        for (uint32_t i = 0; e->level == QM_LEVEL_1 && i < e->groups[g].n_pad_keys; i++)
            memcpy(ids[k++], e->groups[g].pad_keys[i].id, QM_KEY_ID_LEN);
    }
    for (size_t r = 0; e->level == QM_LEVEL_1 && r < e->n_recipients; r++)
        memcpy(ids[k++], e->recipients[r].mac_key.id, QM_KEY_ID_LEN);
    qsort(ids, n, QM_KEY_ID_LEN, key_id_order);
    qm_err rc = QM_OK;
    for (size_t i = 1; i < n && rc == QM_OK; i++)
        if (memcmp(ids[i - 1], ids[i], QM_KEY_ID_LEN) == 0)
            rc = QM_E_MALFORMED;
    free(ids);
    return rc;
}

qm_err qm_envelope_check(const qm_envelope *e)
{
    if (e == NULL)
        return QM_E_USAGE;
    if (e->version != QM_FORMAT_VERSION)
        return QM_E_VERSION;
    if (qm_level_alg(e->level) == NULL)
        return QM_E_LEVEL;
    if (e->msg_len > QM_MAX_MESSAGE)
        return QM_E_TOO_BIG;
    if (!sae_id_cstr_valid(e->sender) || !groups_valid(e) || !recipients_valid(e))
        return QM_E_MALFORMED;
    return key_ids_distinct(e);
}

/* ---- writing ---------------------------------------------------------------- */

/* Appends to out while it fits; with out == NULL it only counts. */
typedef struct writer {
    uint8_t *out;
    size_t cap, pos;
    bool overflow;
} writer;

static void put_bytes(writer *w, const void *p, size_t n)
{
    if (w->out != NULL) {
        if (n > w->cap - w->pos) {
            w->overflow = true;
            return;
        }
        memcpy(w->out + w->pos, p, n);
    }
    w->pos += n;
}

static void put_uint(writer *w, uint64_t v, size_t bytes)
{
    uint8_t b[8];
    for (size_t i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
    put_bytes(w, b, bytes);
}

static void put_string8(writer *w, const char *s)
{
    size_t n = strlen(s);
    put_uint(w, n, 1);
    put_bytes(w, s, n);
}

static void put_key_ref(writer *w, const qm_key_ref *k)
{
    put_bytes(w, k->id, QM_KEY_ID_LEN);
    put_uint(w, k->len, 4);
}

static void put_group(writer *w, const qm_envelope *e, const qm_group *g)
{
    if (e->level == QM_LEVEL_1) {
        put_uint(w, g->n_pad_keys, 4);
        for (uint32_t i = 0; i < g->n_pad_keys; i++)
            put_key_ref(w, &g->pad_keys[i]);
    } else if (e->level == QM_LEVEL_2) {
        put_key_ref(w, &g->key);
        put_bytes(w, g->salt, QM_SALT_LEN);
        put_bytes(w, g->nonce, QM_NONCE_LEN);
    }
}

static void put_header(writer *w, const qm_envelope *e)
{
    put_bytes(w, QM_MAGIC, QM_MAGIC_LEN);
    put_uint(w, e->version, 1);
    put_uint(w, e->level, 1);
    put_string8(w, qm_level_alg(e->level));
    put_string8(w, e->sender);
    put_uint(w, e->msg_len, 8);
    put_uint(w, e->n_groups, 1);
    put_uint(w, e->n_recipients, 1);
    for (size_t g = 0; g < e->n_groups; g++)
        put_group(w, e, &e->groups[g]);
    for (size_t r = 0; r < e->n_recipients; r++) {
        put_string8(w, e->recipients[r].sae_id);
        put_uint(w, e->recipients[r].group, 1);
        if (e->level == QM_LEVEL_1)
            put_key_ref(w, &e->recipients[r].mac_key);
    }
}

qm_err qm_header_len(const qm_envelope *e, size_t *len)
{
    if (e == NULL || len == NULL)
        return QM_E_USAGE;
    qm_err rc = qm_envelope_check(e);
    if (rc != QM_OK)
        return rc;
    writer w = { 0 };
    put_header(&w, e);
    *len = w.pos;
    return QM_OK;
}

qm_err qm_envelope_total_len(const qm_envelope *e, size_t header_len, size_t *total)
{
    if (e == NULL || total == NULL || e->msg_len > QM_MAX_MESSAGE)
        return QM_E_USAGE;
    uint64_t tags = e->level == QM_LEVEL_4 ? 0 : (uint64_t)e->n_recipients * QM_TAG_LEN;
    /* at most 16 * 2^30 + 16 * 16: no overflow in 64 bits */
    uint64_t body = (uint64_t)e->n_groups * e->msg_len + tags;
    if (body > SIZE_MAX - header_len)
        return QM_E_TOO_BIG;
    *total = header_len + (size_t)body;
    return QM_OK;
}

qm_err qm_header_write(const qm_envelope *e, uint8_t *out, size_t cap, size_t *len)
{
    if (e == NULL || out == NULL || len == NULL)
        return QM_E_USAGE;
    qm_err rc = qm_envelope_check(e);
    if (rc != QM_OK)
        return rc;
    writer w = { .out = out, .cap = cap };
    put_header(&w, e);
    if (w.overflow)
        return QM_E_USAGE;
    *len = w.pos;
    return QM_OK;
}

/* ---- parsing ---------------------------------------------------------------- */

/* Reads from the front of the input; every read checks what is left. */
typedef struct reader {
    const uint8_t *p;
    size_t left;
} reader;

static bool get_bytes(reader *rd, void *out, size_t n)
{
    if (n > rd->left)
        return false;
    memcpy(out, rd->p, n);
    rd->p += n;
    rd->left -= n;
    return true;
}

static bool get_uint(reader *rd, size_t bytes, uint64_t *v)
{
    uint8_t b[8];
    if (!get_bytes(rd, b, bytes))
        return false;
    *v = 0;
    for (size_t i = 0; i < bytes; i++)
        *v = *v << 8 | b[i];
    return true;
}

static bool get_u8(reader *rd, uint8_t *v)
{
    uint64_t x;
    if (!get_uint(rd, 1, &x))
        return false;
    *v = (uint8_t)x;
    return true;
}

/* A u8-length-prefixed SAE ID into out[QM_SAE_ID_MAX + 1]. */
static bool get_sae_id(reader *rd, char *out)
{
    uint8_t n;
    if (!get_u8(rd, &n) || !get_bytes(rd, out, n))
        return false;
    out[n] = '\0';
    return sae_id_valid(out, n);
}

static bool get_key_ref(reader *rd, qm_key_ref *k)
{
    uint64_t len;
    if (!get_bytes(rd, k->id, QM_KEY_ID_LEN) || !get_uint(rd, 4, &len))
        return false;
    k->len = (uint32_t)len;
    return key_len_valid(k->len);
}

/* The fixed start: magic, version, level, algorithm.  Distinguishes an
 * unknown version or level from a malformed envelope. */
static qm_err get_preamble(reader *rd, qm_envelope *e)
{
    uint8_t magic[QM_MAGIC_LEN], version, level, alg_len;
    char alg[256];

    if (!get_bytes(rd, magic, QM_MAGIC_LEN) || memcmp(magic, QM_MAGIC, QM_MAGIC_LEN) != 0)
        return QM_E_MALFORMED;
    if (!get_u8(rd, &version))
        return QM_E_MALFORMED;
    if (version != QM_FORMAT_VERSION)
        return QM_E_VERSION;
    if (!get_u8(rd, &level))
        return QM_E_MALFORMED;
    const char *expected = qm_level_alg(level);
    if (expected == NULL)
        return QM_E_LEVEL;
    if (!get_u8(rd, &alg_len) || !get_bytes(rd, alg, alg_len))
        return QM_E_MALFORMED;
    if (alg_len != strlen(expected) || memcmp(alg, expected, alg_len) != 0)
        return QM_E_MALFORMED;
    e->version = version;
    e->level = (qm_level)level;
    return QM_OK;
}

static qm_err get_group(reader *rd, const qm_envelope *e, qm_group *g)
{
    uint64_t n;

    if (e->level == QM_LEVEL_2) {
        if (!get_key_ref(rd, &g->key) || !get_bytes(rd, g->salt, QM_SALT_LEN)
            || !get_bytes(rd, g->nonce, QM_NONCE_LEN))
            return QM_E_MALFORMED;
        return QM_OK;
    }
    if (e->level != QM_LEVEL_1)
        return QM_OK;
    /* bound the count by the bytes present before allocating */
    if (!get_uint(rd, 4, &n) || n > QM_MAX_PAD_KEYS || n * (QM_KEY_ID_LEN + 4) > rd->left)
        return QM_E_MALFORMED;
    if (n > 0 && (g->pad_keys = calloc((size_t)n, sizeof *g->pad_keys)) == NULL)
        return QM_E_NOMEM;
    g->n_pad_keys = (uint32_t)n;
    for (uint32_t i = 0; i < g->n_pad_keys; i++)
        if (!get_key_ref(rd, &g->pad_keys[i]))
            return QM_E_MALFORMED;
    return QM_OK;
}

static bool get_recipient(reader *rd, const qm_envelope *e, qm_recipient *r)
{
    if (!get_sae_id(rd, r->sae_id) || !get_u8(rd, &r->group))
        return false;
    return e->level != QM_LEVEL_1 || get_key_ref(rd, &r->mac_key);
}

static qm_err get_header(reader *rd, qm_envelope *e)
{
    qm_err rc = get_preamble(rd, e);
    if (rc != QM_OK)
        return rc;
    if (!get_sae_id(rd, e->sender) || !get_uint(rd, 8, &e->msg_len))
        return QM_E_MALFORMED;
    if (e->msg_len > QM_MAX_MESSAGE)
        return QM_E_TOO_BIG;
    if (!get_u8(rd, &e->n_groups) || !get_u8(rd, &e->n_recipients)
        || e->n_groups < 1 || e->n_groups > QM_MAX_GROUPS
        || e->n_recipients < 1 || e->n_recipients > QM_MAX_RECIPIENTS)
        return QM_E_MALFORMED;
    for (size_t g = 0; g < e->n_groups; g++)
        if ((rc = get_group(rd, e, &e->groups[g])) != QM_OK)
            return rc;
    for (size_t r = 0; r < e->n_recipients; r++)
        if (!get_recipient(rd, e, &e->recipients[r]))
            return QM_E_MALFORMED;
    return qm_envelope_check(e);
}

static void set_view(const qm_envelope *e, const uint8_t *buf, size_t header_len,
                     qm_envelope_view *v)
{
    memset(v, 0, sizeof *v);
    v->header = buf;
    v->header_len = header_len;
    const uint8_t *p = buf + header_len;
    for (size_t g = 0; g < e->n_groups; g++, p += e->msg_len)
        v->ciphertext[g] = p;
    v->tags = e->level == QM_LEVEL_4 ? NULL : p;
}

qm_err qm_envelope_parse(const uint8_t *buf, size_t len, qm_envelope *e,
                         qm_envelope_view *v)
{
    if (e == NULL || v == NULL || (buf == NULL && len > 0))
        return QM_E_USAGE;
    memset(e, 0, sizeof *e);
    memset(v, 0, sizeof *v);
    reader rd = { buf, len };
    qm_err rc = get_header(&rd, e);
    size_t header_len = len - rd.left, total = 0;
    if (rc == QM_OK && (qm_envelope_total_len(e, header_len, &total) != QM_OK || total != len))
        rc = QM_E_MALFORMED;
    if (rc != QM_OK) {
        qm_envelope_free(e);
        return rc;
    }
    set_view(e, buf, header_len, v);
    return QM_OK;
}

int qm_envelope_find_recipient(const qm_envelope *e, const char *sae_id)
{
    if (e == NULL || sae_id == NULL)
        return -1;
    for (size_t r = 0; r < e->n_recipients; r++)
        if (strcmp(e->recipients[r].sae_id, sae_id) == 0)
            return (int)r;
    return -1;
}
