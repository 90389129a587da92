/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_sender.c - libFuzzer target for the sender binding's header reader
 * (src/mail/sender.c): the From and Sender headers of a decrypted message,
 * written by whoever sent it, through GMime and the line count beside it.
 *
 * Beyond "no crash, no leak, no undefined behaviour": every address handed
 * out is "From ADDR" or "Sender ADDR" with a non-empty address, and a
 * failed read hands out nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mail/sender.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char **addrs = NULL;
    size_t n = 0;
    const char *bad = NULL;
    qm_err err = qm_sender_addresses(data, size, &addrs, &n, &bad);
    if (err != QM_OK) {
        if (addrs != NULL || n != 0)
            abort();
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        const char *a = addrs[i];
        size_t skip = strncmp(a, "From ", 5) == 0 ? 5 : strncmp(a, "Sender ", 7) == 0 ? 7 : 0;
        if (skip == 0 || a[skip] == '\0')
            abort();
    }
    qm_sender_addresses_free(addrs, n);
    return 0;
}
