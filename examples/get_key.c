/* SPDX-License-Identifier: Apache-2.0 */
/*
 * get_key.c - example libqkd014 program: connect to a KME as a master SAE,
 * ask for the status of the pair, get one key and print its ID and size
 * (never the key bytes).  Prints the library's version first.
 *
 *   get_key KME_URL CERT KEY CA SLAVE_SAE_ID [EXPECTED_KME_ID]
 *
 * Build against an installed libqkd014:
 *   cc get_key.c $(pkg-config --cflags --libs qkd014) -o get_key
 */
#include <stdio.h>

#include <qkd014.h>

static int fail(qkd014_client *c, qkd014_code rc, const char *what)
{
    fprintf(stderr, "get_key: %s: %s: %s\n", what, qkd014_strerror(rc),
            qkd014_errmsg(c));
    return 1;
}

/* Status of the pair: how many keys the KME holds for us. */
static int show_status(qkd014_client *c, const char *slave)
{
    qkd014_status *s;
    qkd014_code rc = qkd014_get_status(c, slave, &s);
    if (rc != QKD014_OK)
        return fail(c, rc, "status");
    printf("KME %s (certificate CN %s): %d keys of %d bits for %s -> %s\n",
           s->source_kme_id, qkd014_peer_kme_id(c), (int)s->stored_key_count,
           (int)s->key_size, s->master_sae_id, s->slave_sae_id);
    qkd014_status_free(s);
    return 0;
}

/* One key as master; only its ID and size are printed. */
static int get_one_key(qkd014_client *c, const char *slave)
{
    qkd014_keys *k;
    qkd014_code rc = qkd014_get_key(c, slave, NULL, &k);
    if (rc != QKD014_OK)
        return fail(c, rc, "get key");
    printf("key_ID %s, %zu bits\n", k->keys[0].key_id, k->keys[0].key_len * 8);
    qkd014_keys_free(k); /* zeroes the key bytes */
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: get_key KME_URL CERT KEY CA SLAVE_SAE_ID [EXPECTED_KME_ID]\n");
        return 2;
    }
    /* start from _INIT: it sets the struct's version (docs/libqkd014.md) */
    qkd014_options o = QKD014_OPTIONS_INIT;
    o.kme_url = argv[1];
    o.cert_file = argv[2];
    o.key_file = argv[3];
    o.ca_file = argv[4];
    o.expected_kme_id = argc == 7 ? argv[6] : NULL;
    char err[256];
    qkd014_client *c;
    if (qkd014_global_init() != QKD014_OK)
        return 1;
    /* the library run with may be newer than the header built with */
    printf("libqkd014 %s (header %s)\n", qkd014_version(), QKD014_VERSION_STRING);
    if (qkd014_options_check(&o, err, sizeof err) != QKD014_OK) {
        fprintf(stderr, "get_key: %s\n", err);
        return 2;
    }
    if (qkd014_client_new(&o, &c) != QKD014_OK)
        return 1;
    int r = show_status(c, argv[5]);
    if (r == 0)
        r = get_one_key(c, argv[5]);
    qkd014_client_free(c);
    qkd014_global_cleanup();
    return r;
}
