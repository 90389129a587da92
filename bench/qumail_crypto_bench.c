/* SPDX-License-Identifier: Apache-2.0 */
/*
 * qumail_crypto_bench.c - throughput of the QuMail message ciphers
 * (src/mail: Level 1 one-time pad + Poly1305, Level 2 HKDF + AES-256-GCM),
 * sealing and opening 1 MiB and 16 MiB messages for one recipient, in
 * memory: no KME, no MIME.  The Level 1 pad comes as 8192-byte keys (the
 * testbed's max_key_size of 65536 bits), as a real message would.
 *
 *     qumail_crypto_bench [SECONDS_PER_CASE]     (default 1)
 *
 * Prints one line per case: MB/s of message (MB = 10^6 bytes).  The issue's
 * target for Level 1 is at least 1000 MB/s on the 2-core machine.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mail/envelope.h"
#include "mail/level1.h"
#include "mail/level2.h"

#define KEY_BYTES 8192u

typedef struct message {
    qm_envelope env;
    uint8_t *plain, *sealed, *opened, *key_bytes;
    size_t len, sealed_len;
    qm_key_bytes *pad, mac, l2_key;
} message;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *must_alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static void must(qm_err rc, const char *what)
{
    if (rc != QM_OK) {
        fprintf(stderr, "%s: %s\n", what, qm_strerror(rc));
        exit(1);
    }
}

/* Envelope and random keys for a message of len bytes at level. */
static void message_init(message *m, int level, size_t len)
{
    uint32_t n_pad = (uint32_t)((len + KEY_BYTES - 1) / KEY_BYTES);
    size_t hlen;

    memset(m, 0, sizeof *m);
    m->len = len;
    m->plain = must_alloc(len);
    m->opened = must_alloc(len);
    m->key_bytes = must_alloc(len + 64);
    randombytes_buf(m->plain, len);
    randombytes_buf(m->key_bytes, len + 64);
    must(qm_envelope_init(&m->env, level, "SAE_A1", len), "envelope");
    qm_key_ref mac_ref = { .len = QM_MAC_KEY_LEN };
    randombytes_buf(mac_ref.id, QM_KEY_ID_LEN);
    if (level == QM_LEVEL_1) {
        qm_key_ref *refs = must_alloc(n_pad * sizeof *refs);
        m->pad = must_alloc(n_pad * sizeof *m->pad);
        for (uint32_t i = 0; i < n_pad; i++) {
            size_t off = (size_t)i * KEY_BYTES, left = len - off;
            randombytes_buf(refs[i].id, QM_KEY_ID_LEN);
            refs[i].len = (uint32_t)(left < KEY_BYTES ? left : KEY_BYTES);
            m->pad[i] = (qm_key_bytes){ m->key_bytes + off, refs[i].len };
        }
        must(qm_envelope_add_group(&m->env, refs, n_pad, NULL, NULL), "group");
        must(qm_envelope_add_recipient(&m->env, "SAE_B1", 0, &mac_ref), "recipient");
        m->mac = (qm_key_bytes){ m->key_bytes + len, QM_MAC_KEY_LEN };
        free(refs);
    } else {
        must(qm_envelope_add_group(&m->env, NULL, 0, &mac_ref, NULL), "group");
        must(qm_envelope_add_recipient(&m->env, "SAE_B1", 0, NULL), "recipient");
        m->l2_key = (qm_key_bytes){ m->key_bytes + len, QM_L2_KEY_LEN };
    }
    must(qm_header_len(&m->env, &hlen), "header");
    must(qm_envelope_total_len(&m->env, hlen, &m->sealed_len), "length");
    m->sealed = must_alloc(m->sealed_len);
}

static void message_free(message *m)
{
    qm_envelope_free(&m->env);
    free(m->plain);
    free(m->sealed);
    free(m->opened);
    free(m->key_bytes);
    free(m->pad);
}

static void seal(message *m)
{
    size_t n;
    const qm_key_bytes *pads[1] = { m->pad };
    if (m->env.level == QM_LEVEL_1)
        must(qm_level1_seal(&m->env, m->plain, pads, &m->mac, m->sealed, m->sealed_len, &n),
             "seal");
    else
        must(qm_level2_seal(&m->env, m->plain, &m->l2_key, m->sealed, m->sealed_len, &n),
             "seal");
}

static void open_sealed(message *m)
{
    qm_envelope e;
    qm_envelope_view v;
    must(qm_envelope_parse(m->sealed, m->sealed_len, &e, &v), "parse");
    if (e.level == QM_LEVEL_1)
        must(qm_level1_open(&e, &v, 0, m->pad, &m->mac, m->opened, m->len), "open");
    else
        must(qm_level2_open(&e, &v, 0, &m->l2_key, m->opened, m->len), "open");
    qm_envelope_free(&e);
}

/* Run op for about seconds (at least 3 times); MB/s of message. */
static double throughput(message *m, void (*op)(message *), double seconds)
{
    op(m);  /* warm up: page faults, CPU dispatch */
    int runs = 0;
    double start = now(), elapsed;
    do {
        op(m);
        runs++;
        elapsed = now() - start;
    } while (elapsed < seconds || runs < 3);
    return (double)m->len * runs / elapsed / 1e6;
}

static void bench(int level, size_t len, double seconds)
{
    message m;
    message_init(&m, level, len);
    double enc = throughput(&m, seal, seconds);
    double dec = throughput(&m, open_sealed, seconds);
    if (memcmp(m.opened, m.plain, len) != 0) {
        fprintf(stderr, "round trip failed\n");
        exit(1);
    }
    printf("level %d  %-32s %3zu MiB  encrypt %8.0f MB/s  decrypt %8.0f MB/s\n", level,
           qm_level_alg(level), len >> 20, enc, dec);
    message_free(&m);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    if (seconds <= 0 || sodium_init() < 0) {
        fprintf(stderr, "usage: %s [SECONDS_PER_CASE]\n", argv[0]);
        return 2;
    }
    static const size_t sizes[] = { 1u << 20, 16u << 20 };
    for (int level = 1; level <= 2; level++)
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
            bench(level, sizes[i], seconds);
    return 0;
}
