/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_read.c - what a reader of mail parses after decryption: the read
 * store's file head with its metadata (src/mail/readstore.c: SAE IDs, key
 * IDs, the attachment list) and an inner message's headers, text, HTML
 * parts and attachments (src/mail/parts.c, GMime).  Checks that a head
 * read is one the store could have written (every value printable, counts
 * consistent) and that every part listed can be fetched, none past the
 * bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/parts.h"
#include "mail/readstore.h"

static void check_head(const uint8_t *data, size_t size)
{
    static qm_read_meta m;
    int level;
    size_t off;
    if (qm_readstore_parse_head(data, size, &level, &m, &off) != QM_OK)
        return;
    if (off > size || level < 0 || level > 9)
        abort();
    for (const char *p = m.sender; *p; p++)
        if (*p <= 0x20 || *p >= 0x7F)
            abort();
    unsigned listed = m.n_attachments < QM_READ_MAX_ATTACH ? m.n_attachments : QM_READ_MAX_ATTACH;
    for (unsigned i = 0; i < listed; i++)
        if (m.attachments[i].name[0] == '\0')
            abort();
}

static void check_parts(const uint8_t *data, size_t size)
{
    qm_parts p;
    if (qm_parts_read(data, size, &p) != QM_OK)
        return;
    if (p.n_parts > QM_PARTS_MAX_LEAVES)
        abort();
    size_t attachments = 0;
    for (size_t i = 0; i < p.n_parts; i++) {
        attachments += p.parts[i].kind == QM_PART_ATTACHMENT;
        if (i < 4) {   /* each fetch parses again: a few are enough */
            uint8_t *b = NULL;
            size_t n = 0;
            if (qm_parts_content(data, size, p.parts[i].index, &b, &n) != QM_OK)
                abort();
            free(b);
        }
    }
    if (attachments != p.n_attachments)
        abort();
    qm_parts_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_head(data, size);
    check_parts(data, size);
    return 0;
}
