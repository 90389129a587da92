/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testbed_env.c - see testbed_env.h.
 */
#include "testbed_env.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *testbed_env_value(const char *dir, const char *key)
{
    char path[4096], line[4096];
    snprintf(path, sizeof path, "%s/testbed.env", dir);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return NULL;
    size_t kl = strlen(key);
    char *val = NULL;
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
            free(val);
            val = strdup(line + kl + 1);
        }
    }
    fclose(f);
    return val;
}
