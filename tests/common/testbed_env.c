/* SPDX-License-Identifier: Apache-2.0 */
/*
 * testbed_env.c - see testbed_env.h.
 */
#include "testbed_env.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void tb_sae_load(tb_sae *s, const char *dir, const char *name)
{
    char k[128];
    snprintf(k, sizeof k, "%s_ID", name);
    s->id = testbed_env_value(dir, k);
    snprintf(k, sizeof k, "%s_CERT", name);
    s->cert = testbed_env_value(dir, k);
    snprintf(k, sizeof k, "%s_KEY", name);
    s->key = testbed_env_value(dir, k);
}

void tb_sae_free(tb_sae *s)
{
    free(s->id);
    free(s->cert);
    free(s->key);
    memset(s, 0, sizeof *s);
}

int tb_from_env(char **dir, char **script)
{
    *dir = getenv("TESTBED_DIR");
    *script = getenv("TESTBED_SCRIPT");
    if (*dir && *script)
        return 0;
    fprintf(stderr, "TESTBED_DIR is not set: run through tests/system/run-with-testbed\n");
    return -1;
}

int tb_slack_factor(void)
{
    const char *san = getenv("QC_SANITIZED");
    return san && strcmp(san, "1") == 0 ? 3 : 1;
}

long tb_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void tb_pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int tb_run(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return system(cmd);
}

int tb_count_lines(const char *path, const char *text)
{
    FILE *f = fopen(path, "r");
    char line[16384]; /* longer lines are read in parts: keep it above any log line */
    int n = 0;
    while (f && fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    if (f)
        fclose(f);
    return n;
}

size_t tb_buf_append(char *p, size_t size, size_t n, void *buf)
{
    tb_buf *b = buf;
    char *grown = realloc(b->data, b->len + size * n + 1);
    if (!grown)
        return 0;
    b->data = grown;
    memcpy(b->data + b->len, p, size * n);
    b->len += size * n;
    b->data[b->len] = '\0';
    return size * n;
}

void tb_buf_free(tb_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
}
