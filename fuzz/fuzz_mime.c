/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_mime.c - libFuzzer target for the outer QuMail message parser
 * (src/mail/mime.c, docs/qumail-format.md §1) and the envelope parser
 * behind it: together they see every byte of a received message before
 * any key is fetched.  The same bytes also go to the inner summary, which
 * reads the headers of decrypted (sender-controlled) plaintext, and to the
 * inbox listing (the bounded header-section reader, the clear headers and
 * the envelope header's level, the Level 4 subject).
 *
 * Beyond "no crash, no leak, no undefined behaviour" the target checks the
 * contract: a failed parse hands out nothing; an accepted message rebuilt
 * from its clear-text headers and envelope (when those are valid builder
 * input) parses again to the same envelope and addresses; the header
 * section never exceeds its bounds, a section past them is refused by the
 * listing too, and a listing claims a level only for a QuMail message.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/envelope.h"
#include "mail/mime.h"

static void check_rebuild(const qm_outer_info *info, const uint8_t *env, size_t env_len)
{
    uint8_t *again, *env2;
    size_t again_len, env2_len;
    qm_outer_info info2;
    if (info->n_to == 0
        || qm_mime_build(info->from, (const char *const *)info->to, info->n_to, info->date,
                         env, env_len, &again, &again_len) != QM_OK)
        return;   /* not every accepted address or date is one we would write */
    if (qm_mime_parse(again, again_len, &env2, &env2_len, &info2) != QM_OK
        || env2_len != env_len || (env_len && memcmp(env, env2, env_len) != 0)
        || strcmp(info2.from, info->from) != 0 || info2.n_to != info->n_to)
        abort();
    for (size_t i = 0; i < info->n_to; i++)
        if (strcmp(info2.to[i], info->to[i]) != 0)
            abort();
    free(env2);
    free(again);
    qm_outer_info_free(&info2);
}

static void check_envelope(const uint8_t *env, size_t env_len)
{
    qm_envelope e;
    qm_envelope_view v;
    if (qm_envelope_parse(env, env_len, &e, &v) != QM_OK)
        return;
    if (v.header != env || v.header_len > env_len)
        abort();
    qm_envelope_free(&e);
}

static void check_inner(const uint8_t *data, size_t size)
{
    qm_inner_summary s;
    if (qm_mime_inner_summary(data, size, &s) != QM_OK)
        return;
    for (size_t i = 0; i < s.n_to; i++)
        if (s.to[i] == NULL)
            abort();
    qm_inner_summary_free(&s);
}

static void check_listing(const uint8_t *data, size_t size)
{
    size_t h = 0;
    qm_err hs = qm_mime_header_section(data, size, &h);
    if (hs == QM_OK && (h > size || h > QM_MIME_MAX_HEADER_BYTES + 2))
        abort();
    qm_mime_listing l;
    qm_err err = qm_mime_listing_read(data, size, &l);
    if (hs != QM_OK && err != hs)
        abort();
    if (err != QM_OK) {
        if (l.from != NULL || l.date != NULL || l.message_id != NULL || l.subject != NULL
            || l.level != 0)
            abort();
        return;
    }
    if (l.level != 0 && (!l.qumail || (l.level != 1 && l.level != 2 && l.level != 4)))
        abort();
    if (l.qumail && l.level != 4 && l.subject != NULL)
        abort();
    qm_mime_listing_free(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *env = NULL;
    size_t env_len = 0;
    qm_outer_info info;
    qm_err err = qm_mime_parse(data, size, &env, &env_len, &info);
    if (err != QM_OK) {
        if (env != NULL || env_len != 0 || info.from != NULL || info.to != NULL
            || info.n_to != 0 || info.date != NULL || info.message_id != NULL)
            abort();
    } else {
        if (env == NULL || info.from == NULL)
            abort();
        check_envelope(env, env_len);
        check_rebuild(&info, env, env_len);
        free(env);
        qm_outer_info_free(&info);
    }
    check_inner(data, size);
    check_listing(data, size);
    return 0;
}
