/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_pending.c - libFuzzer target for the parser of pending-key files
 * (src/mail/pending.c, [store] dir/pending: key material kept for a
 * message whose copy failed verification).  The files are ours, but a
 * corrupted or planted one must give a clear error, never a crash.
 *
 * Beyond "no crash, no leak, no undefined behaviour": an accepted file's
 * keys are sorted by ID without repeats, lie inside the input without
 * overlap and cover exactly the bytes after the head; a rejected one hands
 * out nothing and says why.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/pending.h"

static const uint8_t *end_of(const uint8_t *data, size_t size)
{
    return data + size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qm_pending_entry e;
    char why[200] = "";
    qm_err err = qm_pending_parse(data, size, &e, why, sizeof why);
    if (err != QM_OK) {
        if (e.keys != NULL || e.n != 0 || (err == QM_E_PENDING && why[0] == '\0'))
            abort();
        return 0;
    }
    if (e.n == 0 || e.n > QM_PENDING_MAX_KEYS)
        abort();
    const uint8_t *first = end_of(data, size), *end = data + size;
    size_t total = 0;
    for (size_t i = 0; i < e.n; i++) {
        const qm_pending_key *k = &e.keys[i];
        if ((i > 0 && strcmp(e.keys[i - 1].id, k->id) >= 0) || strlen(k->id) != UUID_STR_LEN
            || k->len == 0 || k->data < data || k->len > (size_t)(end - k->data))
            abort();
        if (k->data < first)
            first = k->data;
        total += k->len;
    }
    if (total != (size_t)(end - first))   /* with no overlap: exactly the tail */
        abort();
    qm_pending_entry_free(&e);
    return 0;
}
