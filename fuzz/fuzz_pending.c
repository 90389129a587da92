/*
 * fuzz_pending.c - libFuzzer target for the parser of pending-key files
 * (src/mail/pending.c, [store] dir/pending: key material kept for a
 * message whose copy failed verification).  The files are ours, but a
 * corrupted or planted one must give a clear error, never a crash.
 *
 * Beyond "no crash, no leak, no undefined behaviour": an accepted file's
 * keys lie inside the input, in order, without overlap, and cover exactly
 * the bytes after the head; a rejected one hands out nothing and says why.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/pending.h"

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
    const uint8_t *next = e.keys[0].data, *end = data + size;
    for (size_t i = 0; i < e.n; i++) {
        if (e.keys[i].data != next || e.keys[i].len == 0 || e.keys[i].len > (size_t)(end - next)
            || strlen(e.keys[i].id) != UUID_STR_LEN)
            abort();
        next += e.keys[i].len;
    }
    if (next != end)
        abort();
    qm_pending_entry_free(&e);
    return 0;
}
