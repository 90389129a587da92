/*
 * config.c - reads and validates the KME configuration file.
 *
 * The file is INI: "[section]" headers and "key = value" lines.  A table
 * (config_keys) names every key the KME knows, its section, its type and its
 * range; the parser fills a kme_config from it and then checks the relations
 * between keys (key_size within [min_key_size, max_key_size], ...).  Unknown
 * sections or keys, repeated keys, values out of range and unreadable files
 * are errors with the file, line and key named: a KME with a typo in its
 * configuration must not start with a default in its place.
 */
#include "kme/config.h"

#include "common/ini.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

typedef enum {
    T_STRING,   /* any non-empty text */
    T_ID,       /* printable, no spaces (KME ID) */
    T_FILE,     /* readable file */
    T_PATH,     /* path whose directory exists */
    T_INT,      /* integer in [min, max] */
    T_SYNC,     /* normal | full */
    T_LOGLEVEL, /* error | warn | info | debug */
    T_IDENTITY, /* cn | uri-san */
    T_LISTEN,   /* address:port of the SAE API */
    T_ADDR,     /* address:port into a kme_addr */
    T_UINT,     /* unsigned in [min, max] */
    T_SIDE,     /* A | B */
    T_LIST,     /* space-separated SAE IDs (local, or of the current peer) */
    T_NETS,     /* space-separated ADDR[/PREFIX] into a kme_allow */
} key_type;

/* Where a key's offset points: the kme_config, or the kme_peer of the
 * [peer ID] section being read. */
typedef enum { IN_CONFIG = 0, IN_PEER = 1 } key_scope;

typedef struct config_key {
    const char *section;
    const char *name;
    key_type type;
    bool required;
    size_t offset;           /* into kme_config */
    int64_t min, max;        /* T_INT */
    const char *dflt;        /* value used when absent (NULL: none) */
    key_scope scope;
} config_key;

#define OFF(m) offsetof(kme_config, m)
#define POFF(m) offsetof(kme_peer, m)
#define I31 ((int64_t)INT32_MAX)

static const config_key config_keys[] = {
    { "kme", "id", T_ID, true, OFF(id), 0, 0, NULL, IN_CONFIG },
    { "kme", "database", T_PATH, true, OFF(database), 0, 0, NULL, IN_CONFIG },
    { "kme", "sync", T_SYNC, false, OFF(sync), 0, 0, "normal", IN_CONFIG },
    { "kme", "log_level", T_LOGLEVEL, false, OFF(log_level), 0, 0, "info", IN_CONFIG },
    { "sae_api", "listen", T_LISTEN, true, 0, 0, 0, NULL, IN_CONFIG },
    { "sae_api", "cert", T_FILE, true, OFF(cert), 0, 0, NULL, IN_CONFIG },
    { "sae_api", "key", T_FILE, true, OFF(key), 0, 0, NULL, IN_CONFIG },
    { "sae_api", "ca", T_FILE, true, OFF(ca), 0, 0, NULL, IN_CONFIG },
    { "sae_api", "identity", T_IDENTITY, false, OFF(identity), 0, 0, "cn", IN_CONFIG },
    { "sae_api", "threads", T_INT, false, OFF(threads), 0, 256, "0", IN_CONFIG },
    { "sae_api", "port_file", T_PATH, false, OFF(port_file), 0, 0, NULL, IN_CONFIG },
    { "sae_api", "crl", T_FILE, false, OFF(crl), 0, 0, NULL, IN_CONFIG },
    { "sae_api", "per_ip_limit", T_UINT, false, OFF(sae_per_ip_limit), 0, 1000000, "0", IN_CONFIG },
    { "saes", "local", T_LIST, true, 0, 0, 0, NULL, IN_CONFIG },
    { "limits", "key_size", T_INT, false, OFF(key_size), 8, I31, "256", IN_CONFIG },
    { "limits", "min_key_size", T_INT, false, OFF(min_key_size), 8, I31, "64", IN_CONFIG },
    { "limits", "max_key_size", T_INT, false, OFF(max_key_size), 8, I31, "65536", IN_CONFIG },
    { "limits", "max_key_per_request", T_INT, false, OFF(max_key_per_request), 1, 1000000, "1024", IN_CONFIG },
    { "limits", "max_sae_id_count", T_INT, false, OFF(max_sae_id_count), 0, KME_MAX_SAE_ID_COUNT, "4", IN_CONFIG },
    { "limits", "key_ttl", T_INT, false, OFF(key_ttl), 1, 365LL * 86400, "3600", IN_CONFIG },
    { "limits", "local_pool_bits", T_INT, false, OFF(local_pool_bits), 8, INT64_MAX / 2, "268435456", IN_CONFIG },
    { "limits", "local_rate_bps", T_INT, false, OFF(local_rate_bps), 0, INT64_MAX / 2, "100000000", IN_CONFIG },
    { "limits", "maintenance_ms", T_INT, false, OFF(maintenance_ms), 10, 3600000, "1000", IN_CONFIG },
    { "limits", "handshake_timeout_ms", T_INT, false, OFF(handshake_timeout_ms), 100, 600000, "3000", IN_CONFIG },
    { "limits", "sae_rate_bps", T_INT, false, OFF(sae_rate_bps), 0, INT64_MAX / 2, "1000000000", IN_CONFIG },
    { "limits", "sae_burst_bits", T_INT, false, OFF(sae_burst_bits), 0, INT64_MAX / 2, "0", IN_CONFIG },
    { "limits", "sae_unfetched_bits", T_INT, false, OFF(sae_unfetched_bits), 0, INT64_MAX / 2, "268435456", IN_CONFIG },
    /* optional sections: their required keys apply when the section is given */
    { "peer_api", "listen", T_ADDR, true, OFF(peer_listen), 0, 0, NULL, IN_CONFIG },
    { "peer_api", "ca", T_FILE, true, OFF(peer_ca), 0, 0, NULL, IN_CONFIG },
    { "peer_api", "port_file", T_PATH, false, OFF(peer_port_file), 0, 0, NULL, IN_CONFIG },
    { "peer_api", "timeout_ms", T_INT, false, OFF(peer_timeout_ms), 10, 600000, "2000", IN_CONFIG },
    { "peer_api", "threads", T_UINT, false, OFF(peer_threads), 1, 256, "2", IN_CONFIG },
    { "peer_api", "per_ip_limit", T_UINT, false, OFF(peer_per_ip_limit), 0, 1000000, "0", IN_CONFIG },
    { "peer_api", "allow_from", T_NETS, false, OFF(peer_allow), 0, 0, NULL, IN_CONFIG },
    { "peer", "address", T_ADDR, true, POFF(address), 0, 0, NULL, IN_PEER },
    { "peer", "saes", T_LIST, true, 0, 0, 0, NULL, IN_PEER },
    { "link", "listen", T_ADDR, true, OFF(link_listen), 0, 0, NULL, IN_CONFIG },
    { "link", "port_file", T_PATH, false, OFF(link_port_file), 0, 0, NULL, IN_CONFIG },
    { "link", "id", T_ID, true, OFF(link_id), 0, 0, NULL, IN_CONFIG },
    { "link", "side", T_SIDE, true, OFF(link_side), 0, 0, NULL, IN_CONFIG },
    { "link", "peer", T_ID, true, OFF(link_peer), 0, 0, NULL, IN_CONFIG },
    { "link", "pool_cap_bits", T_INT, false, OFF(link_pool_cap_bits), 8, INT64_MAX / 2, "268435456", IN_CONFIG },
    { "link", "block_ttl_ms", T_INT, false, OFF(link_block_ttl_ms), 1000, 86400000, "60000", IN_CONFIG },
    { "link", "per_ip_limit", T_UINT, false, OFF(link_per_ip_limit), 0, 1000000, "0", IN_CONFIG },
    { "link", "allow_from", T_NETS, false, OFF(link_allow), 0, 0, NULL, IN_CONFIG },
};

/* Sections that may be left out; [peer ID] may appear any number of times. */
static bool optional_section(const char *s)
{
    return strcmp(s, "peer_api") == 0 || strcmp(s, "link") == 0 || strcmp(s, "peer") == 0;
}
#define N_KEYS (sizeof config_keys / sizeof config_keys[0])

typedef struct parse_state {
    kme_config *cfg;
    const char *file;
    bool seen[N_KEYS];
    unsigned lines[N_KEYS];  /* line of each key given (0: default) */
    bool peer_api_seen, link_seen;
    kme_peer *peer;          /* the [peer ID] being read, or NULL */
    unsigned peer_line;      /* line of its header */
    char *err;
    size_t errlen;
} parse_state;

#if defined(__GNUC__)
__attribute__((format(printf, 4, 5)))
#endif
static int fail(parse_state *ps, unsigned line, const config_key *k, const char *fmt, ...)
{
    char reason[1024]; /* may quote two paths */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    ini_format_error(ps->err, ps->errlen, ps->file, line, k ? k->section : NULL,
                     k ? k->name : NULL, reason);
    return -1;
}

/* The struct a key's offset points into. */
static char *slot_base(parse_state *ps, const config_key *k)
{
    return k->scope == IN_PEER ? (char *)ps->peer : (char *)ps->cfg;
}

static int set_string(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    char **slot = (char **)(slot_base(ps, k) + k->offset);
    if (!*v)
        return fail(ps, line, k, "empty value");
    if (k->type == T_ID && !ini_is_id(v))
        return fail(ps, line, k, "'%s' must be printable text without spaces", v);
    char why[600];
    if (k->type == T_FILE && ini_check_file(v, why, sizeof why) != 0)
        return fail(ps, line, k, "%s", why);
    if (k->type == T_PATH) {
        /* the directory the file goes in: its part before the last '/',
         * "/" for a file in the root, "." for a bare file name */
        char *dir = strdup(v);
        if (!dir)
            return fail(ps, line, k, "out of memory");
        char *slash = strrchr(dir, '/');
        const char *d = dir;
        if (!slash)
            d = ".";
        else if (slash == dir)
            d = "/";
        else
            *slash = '\0';
        struct stat st;
        int rc = 0;
        if (stat(d, &st) != 0)
            rc = fail(ps, line, k, "directory '%s' of '%s': %s", d, v, strerror(errno));
        else if (!S_ISDIR(st.st_mode))
            rc = fail(ps, line, k, "'%s' in '%s' is not a directory", d, v);
        else if (access(d, W_OK | X_OK) != 0)
            rc = fail(ps, line, k, "directory '%s' is not writable: %s", d, strerror(errno));
        free(dir);
        if (rc != 0)
            return rc;
    }
    free(*slot);
    *slot = strdup(v);
    return *slot ? 0 : fail(ps, line, k, "out of memory");
}

/* "IPV4:PORT" or "[IPV6]:PORT".  An IPv6 address without brackets is
 * refused: in "::1:8443" the port cannot be told from the address. */
static int set_listen(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    const char *hs, *he, *port_s;
    if (v[0] == '[') {
        hs = v + 1;
        he = strchr(hs, ']');
        if (!he)
            return fail(ps, line, k, "'%s' lacks the ']' of [IPV6]:PORT", v);
        if (he[1] != ':')
            return fail(ps, line, k, "'%s' has no port (ADDRESS:PORT, IPv6 as [ADDRESS]:PORT)", v);
        port_s = he + 2;
    } else {
        const char *colon = strchr(v, ':');
        if (!colon)
            return fail(ps, line, k, "'%s' has no port (ADDRESS:PORT, IPv6 as [ADDRESS]:PORT)", v);
        if (strchr(colon + 1, ':'))
            return fail(ps, line, k, "'%s': write an IPv6 address in brackets, [ADDRESS]:PORT", v);
        hs = v;
        he = colon;
        port_s = colon + 1;
    }
    int64_t port;
    if (!*port_s)
        return fail(ps, line, k, "'%s' has no port (ADDRESS:PORT, IPv6 as [ADDRESS]:PORT)", v);
    if (ini_parse_uint(port_s, &port) != 0 || port > 65535)
        return fail(ps, line, k, "port '%s' is not a number in 0..65535", port_s);
    size_t hl = (size_t)(he - hs);
    char h[INET6_ADDRSTRLEN + 1];
    if (hl == 0)
        return fail(ps, line, k, "'%s' has no address", v);
    if (hl >= sizeof h)
        return fail(ps, line, k, "address in '%s' is too long", v);
    memcpy(h, hs, hl);
    h[hl] = '\0';
    unsigned char buf[16];
    if (v[0] == '[' ? inet_pton(AF_INET6, h, buf) != 1
                    : inet_pton(AF_INET, h, buf) != 1)
        return fail(ps, line, k, "'%s' is not a numeric %s address", h,
                    v[0] == '[' ? "IPv6" : "IPv4");
    char **host_slot;
    uint16_t *port_slot;
    if (k->type == T_LISTEN) {
        host_slot = &ps->cfg->listen_host;
        port_slot = &ps->cfg->listen_port;
    } else {
        kme_addr *a = (kme_addr *)(slot_base(ps, k) + k->offset);
        host_slot = &a->host;
        port_slot = &a->port;
    }
    free(*host_slot);
    *host_slot = strdup(h);
    *port_slot = (uint16_t)port;
    return *host_slot ? 0 : fail(ps, line, k, "out of memory");
}

static bool sae_known(const kme_config *c, const char *id)
{
    return kme_config_is_local_sae(c, id) || kme_config_peer_of_sae(c, id) != NULL;
}

static int set_list(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    kme_config *c = ps->cfg;
    char ***list = k->scope == IN_PEER ? &ps->peer->saes : &c->local_saes;
    size_t *count = k->scope == IN_PEER ? &ps->peer->n_saes : &c->n_local_saes;
    char *copy = strdup(v), *save = NULL;
    if (!copy)
        return fail(ps, line, k, "out of memory");
    for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (strlen(tok) > 256) { /* not quoted: the message stays short */
            fail(ps, line, k, "an SAE ID of %zu characters (at most 256)", strlen(tok));
            free(copy);
            return -1;
        }
        if (!ini_is_id(tok)) {
            fail(ps, line, k, "'%s' is not a valid SAE ID", tok);
            free(copy);
            return -1;
        }
        if (sae_known(c, tok)) {
            fail(ps, line, k, "SAE ID '%s' listed twice", tok);
            free(copy);
            return -1;
        }
        char **grown = realloc(*list, (*count + 1) * sizeof *grown);
        if (!grown || !(grown[*count] = strdup(tok))) {
            *list = grown ? grown : *list;
            free(copy);
            return fail(ps, line, k, "out of memory");
        }
        *list = grown;
        (*count)++;
    }
    free(copy);
    if (*count == 0)
        return fail(ps, line, k, "no SAE IDs given");
    return 0;
}

static int allow_add(kme_allow *a, const net_prefix *p)
{
    net_prefix *grown = realloc(a->nets, (a->n + 1) * sizeof *grown);
    if (!grown)
        return -1;
    a->nets = grown;
    a->nets[a->n++] = *p;
    return 0;
}

/* "ADDR[/PREFIX] ..." (netprefix.h); each entry is checked, the first bad
 * one named. */
static int set_nets(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    kme_allow *a = (kme_allow *)(slot_base(ps, k) + k->offset);
    char *copy = strdup(v), *save = NULL;
    if (!copy)
        return fail(ps, line, k, "out of memory");
    int rc = 0;
    for (char *tok = strtok_r(copy, " \t", &save); tok && rc == 0; tok = strtok_r(NULL, " \t", &save)) {
        net_prefix p;
        char why[160];
        if (net_prefix_parse(tok, &p, why, sizeof why) != 0)
            rc = fail(ps, line, k, "%s", why);
        else if (a->n >= KME_ALLOW_MAX)
            rc = fail(ps, line, k, "more than %d entries", KME_ALLOW_MAX);
        else if (allow_add(a, &p) != 0)
            rc = fail(ps, line, k, "out of memory");
    }
    free(copy);
    return rc;
}

static int set_value(parse_state *ps, unsigned line, const config_key *k, const char *v)
{
    kme_config *c = ps->cfg;
    int64_t x;
    if (!*v)
        return fail(ps, line, k, "empty value");
    switch (k->type) {
    case T_STRING: case T_ID: case T_FILE: case T_PATH:
        return set_string(ps, line, k, v);
    case T_LISTEN: case T_ADDR:
        return set_listen(ps, line, k, v);
    case T_UINT:
        if (ini_parse_uint(v, &x) != 0 || x < k->min || x > k->max)
            return fail(ps, line, k, "'%s' is not an integer in %lld..%lld", v,
                        (long long)k->min, (long long)k->max);
        *(unsigned *)(slot_base(ps, k) + k->offset) = (unsigned)x;
        return 0;
    case T_SIDE:
        if (strcmp(v, "A") == 0) c->link_side = KME_LINK_SIDE_A;
        else if (strcmp(v, "B") == 0) c->link_side = KME_LINK_SIDE_B;
        else return fail(ps, line, k, "'%s' is not one of: A, B", v);
        return 0;
    case T_LIST:
        return set_list(ps, line, k, v);
    case T_NETS:
        return set_nets(ps, line, k, v);
    case T_INT:
        if (ini_parse_uint(v, &x) != 0 || x < k->min || x > k->max)
            return fail(ps, line, k, "'%s' is not an integer in %lld..%lld", v,
                        (long long)k->min, (long long)k->max);
        if (k->offset == OFF(threads))
            c->threads = (unsigned)x;
        else
            *(int64_t *)((char *)c + k->offset) = x;
        return 0;
    case T_SYNC:
        if (strcmp(v, "normal") == 0) c->sync = KS_SYNC_NORMAL;
        else if (strcmp(v, "full") == 0) c->sync = KS_SYNC_FULL;
        else return fail(ps, line, k, "'%s' is not one of: normal, full", v);
        return 0;
    case T_LOGLEVEL:
        if (log_level_parse(v, &c->log_level) != 0)
            return fail(ps, line, k, "'%s' is not one of: error, warn, info, debug", v);
        return 0;
    case T_IDENTITY:
        if (strcmp(v, "cn") == 0) c->identity = KME_ID_CN;
        else if (strcmp(v, "uri-san") == 0) c->identity = KME_ID_URI_SAN;
        else return fail(ps, line, k, "'%s' is not one of: cn, uri-san", v);
        return 0;
    }
    return fail(ps, line, k, "internal: unknown type");
}

static const config_key *find_key(const char *section, const char *name, size_t *idx)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(config_keys[i].section, section) == 0 && strcmp(config_keys[i].name, name) == 0) {
            *idx = i;
            return &config_keys[i];
        }
    return NULL;
}

static bool known_section(const char *s)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(config_keys[i].section, s) == 0)
            return true;
    return false;
}

/* The [peer ID] just read is complete: its required keys were given.  The
 * seen flags of peer keys then start afresh for the next one. */
static int finish_peer(parse_state *ps)
{
    if (!ps->peer)
        return 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        if (config_keys[i].scope != IN_PEER)
            continue;
        if (config_keys[i].required && !ps->seen[i])
            return fail(ps, ps->peer_line, NULL, "[peer %s]: missing key '%s' (required)",
                        ps->peer->id, config_keys[i].name);
        ps->seen[i] = false;
        ps->lines[i] = 0;
    }
    ps->peer = NULL;
    return 0;
}

static int begin_peer(parse_state *ps, unsigned line, const char *id)
{
    kme_config *c = ps->cfg;
    if (!ini_is_id(id))
        return fail(ps, line, NULL, "[peer %s]: a KME ID must be printable text without spaces", id);
    if (kme_config_peer(c, id))
        return fail(ps, line, NULL, "[peer %s] given twice", id);
    kme_peer *grown = realloc(c->peers, (c->n_peers + 1) * sizeof *grown);
    if (!grown)
        return fail(ps, line, NULL, "out of memory");
    c->peers = grown;
    memset(&c->peers[c->n_peers], 0, sizeof c->peers[0]);
    if (!(c->peers[c->n_peers].id = strdup(id)))
        return fail(ps, line, NULL, "out of memory");
    ps->peer = &c->peers[c->n_peers++];
    ps->peer_line = line;
    return 0;
}

/* "[name]" or "[peer ID]" (starting a peer). */
static int on_section(void *ud, unsigned line, const char *name, const char *arg)
{
    parse_state *ps = ud;
    if (finish_peer(ps) != 0)
        return -1;
    if (strcmp(name, "peer") == 0) {
        if (!*arg)
            return fail(ps, line, NULL, "[peer] needs the peer's KME ID: [peer KME-B]");
        if (begin_peer(ps, line, arg) != 0)
            return -1;
    } else if (*arg || !known_section(name)) {
        return fail(ps, line, NULL, "unknown section [%s%s%s]", name, *arg ? " " : "", arg);
    }
    ps->peer_api_seen |= strcmp(name, "peer_api") == 0;
    ps->link_seen |= strcmp(name, "link") == 0;
    return 0;
}

static int on_pair(void *ud, unsigned line, const char *section, const char *name, char *value)
{
    parse_state *ps = ud;
    size_t idx;
    const config_key *k = find_key(section, name, &idx);
    if (!k)
        return fail(ps, line, NULL, "unknown key '%s' in [%s]", name, section);
    if (ps->seen[idx])
        return fail(ps, line, k, "given twice (first on line %u)", ps->lines[idx]);
    ps->seen[idx] = true;
    ps->lines[idx] = line;
    return set_value(ps, line, k, value);
}

static int on_error(void *ud, unsigned line, const char *why)
{
    return fail(ud, line, NULL, "%s", why);
}

static const ini_handler kme_ini = { on_section, on_pair, on_error };

static int apply_defaults(parse_state *ps)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const config_key *k = &config_keys[i];
        if (ps->seen[i] || k->scope == IN_PEER)
            continue;
        bool section_given = !optional_section(k->section)
            || (strcmp(k->section, "peer_api") == 0 && ps->peer_api_seen)
            || (strcmp(k->section, "link") == 0 && ps->link_seen);
        if (k->required && section_given)
            return fail(ps, 0, k, "missing (required)");
        if (k->required)
            continue;
        if (k->dflt && set_value(ps, 0, k, k->dflt) != 0)
            return -1;
    }
    return 0;
}

/* The key named name, and the line it was given on (0: its default). */
static const config_key *key_at(parse_state *ps, const char *name, unsigned *line)
{
    size_t idx = 0;
    const config_key *k = find_key("limits", name, &idx);
    *line = k ? ps->lines[idx] : 0;
    return k;
}

/* Relations between keys: the error names the key that breaks one, on the
 * line it was given (a key left at its default has no line). */
/* threads = 0: a worker blocks while its commit reaches the disk, so in
 * full sync mode the size of a commit group is bounded by the number of
 * workers; a worker also blocks while the peer KME confirms a reservation,
 * so with peers more of them keep the cores busy; otherwise normal mode
 * never waits and needs one per core. */
static void resolve_auto(kme_config *c)
{
    if (c->threads == 0)
        c->threads = c->sync == KS_SYNC_FULL ? 32 : c->n_peers ? 16 : 2;
}

/* The host of a numeric address into a (a listener bound to the
 * unspecified address names no host: skipped). */
static int allow_host(kme_allow *a, const char *host)
{
    net_prefix p;
    if (net_prefix_host(host, &p) != 0)
        return 0;
    static const uint8_t zero[16];
    if (memcmp(p.addr, zero, sizeof zero) == 0)
        return 0;
    return allow_add(a, &p);
}

/* allow_from left out: [peer_api] admits the hosts of the configured
 * peers; [link] admits loopback, its own listen address and the host of
 * the [link] peer (the link's devices sit at one of the two KMEs). */
static int default_allow_lists(parse_state *ps)
{
    kme_config *c = ps->cfg;
    int rc = 0;
    if (c->has_peer_api && !c->peer_allow.n)
        for (size_t i = 0; i < c->n_peers && rc == 0; i++)
            rc = allow_host(&c->peer_allow, c->peers[i].address.host);
    if (c->has_link && !c->link_allow.n) {
        net_prefix v4, v6;
        char why[128];
        rc = rc ? rc : net_prefix_parse("127.0.0.0/8", &v4, why, sizeof why);
        rc = rc ? rc : net_prefix_parse("::1", &v6, why, sizeof why);
        rc = rc ? rc : allow_add(&c->link_allow, &v4);
        rc = rc ? rc : allow_add(&c->link_allow, &v6);
        rc = rc ? rc : allow_host(&c->link_allow, c->link_listen.host);
        const kme_peer *lp = kme_config_peer(c, c->link_peer);
        rc = rc ? rc : lp ? allow_host(&c->link_allow, lp->address.host) : 0;
    }
    return rc == 0 ? 0 : fail(ps, 0, NULL, "out of memory");
}

/* Peers, the peer listener and the link must fit together. */
static int check_topology(parse_state *ps)
{
    kme_config *c = ps->cfg;
    c->has_peer_api = ps->peer_api_seen;
    c->has_link = ps->link_seen;
    for (size_t i = 0; i < c->n_peers; i++)
        if (strcmp(c->peers[i].id, c->id) == 0)
            return fail(ps, 0, NULL, "[peer %s] is this KME's own ID", c->peers[i].id);
    if (c->n_peers && !c->has_peer_api)
        return fail(ps, 0, NULL, "[peer_api] is required when [peer ...] sections are given");
    if (c->has_link && !kme_config_peer(c, c->link_peer))
        return fail(ps, 0, NULL, "[link] peer: '%s' is not a configured [peer ...]", c->link_peer);
    return default_allow_lists(ps);
}

/* The per-SAE limits must let one key of max_key_size through, else some
 * valid request could never be served; a burst of 0 means one second of
 * the rate, at least one such key. */
static int check_sae_limits(parse_state *ps)
{
    kme_config *c = ps->cfg;
    unsigned line;
    const config_key *k;
    if (c->sae_rate_bps > 0 && c->sae_burst_bits == 0)
        c->sae_burst_bits = c->sae_rate_bps > c->max_key_size ? c->sae_rate_bps : c->max_key_size;
    if (c->sae_rate_bps > 0 && c->sae_burst_bits < c->max_key_size) {
        k = key_at(ps, "sae_burst_bits", &line);
        return fail(ps, line, k, "%lld cannot hold one key of max_key_size (%lld)",
                    (long long)c->sae_burst_bits, (long long)c->max_key_size);
    }
    if (c->sae_unfetched_bits > 0 && c->sae_unfetched_bits < c->max_key_size) {
        k = key_at(ps, "sae_unfetched_bits", &line);
        return fail(ps, line, k, "%lld cannot hold one key of max_key_size (%lld)",
                    (long long)c->sae_unfetched_bits, (long long)c->max_key_size);
    }
    return 0;
}

static int check_relations(parse_state *ps)
{
    kme_config *c = ps->cfg;
    resolve_auto(c);
    if (check_topology(ps) != 0)
        return -1;
    static const char *const sizes[] = { "min_key_size", "max_key_size", "key_size" };
    const int64_t values[] = { c->min_key_size, c->max_key_size, c->key_size };
    unsigned line;
    const config_key *k;
    for (size_t i = 0; i < 3; i++)
        if (values[i] % 8) {
            k = key_at(ps, sizes[i], &line);
            return fail(ps, line, k, "%lld is not a multiple of 8", (long long)values[i]);
        }
    if (c->min_key_size > c->max_key_size) {
        k = key_at(ps, "min_key_size", &line);
        return fail(ps, line, k, "%lld exceeds max_key_size (%lld)",
                    (long long)c->min_key_size, (long long)c->max_key_size);
    }
    if (c->key_size < c->min_key_size || c->key_size > c->max_key_size) {
        k = key_at(ps, "key_size", &line);
        return fail(ps, line, k, "%lld is outside min_key_size..max_key_size (%lld..%lld)",
                    (long long)c->key_size, (long long)c->min_key_size, (long long)c->max_key_size);
    }
    if (c->local_pool_bits < c->max_key_size) {
        k = key_at(ps, "local_pool_bits", &line);
        return fail(ps, line, k, "%lld cannot hold one key of max_key_size (%lld)",
                    (long long)c->local_pool_bits, (long long)c->max_key_size);
    }
    return check_sae_limits(ps);
}

int kme_config_load(const char *path, kme_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    parse_state ps = { .cfg = cfg, .file = path, .err = err, .errlen = errlen };
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    cfg->path = strdup(path);
    if (!cfg->path) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int rc = ini_read(f, &kme_ini, &ps);
    if (rc == 0)
        rc = finish_peer(&ps);
    fclose(f);
    if (rc == 0)
        rc = apply_defaults(&ps);
    if (rc == 0)
        rc = check_relations(&ps);
    if (rc != 0)
        kme_config_free(cfg);
    return rc;
}

void kme_config_free(kme_config *cfg)
{
    free(cfg->path);
    free(cfg->id);
    free(cfg->database);
    free(cfg->listen_host);
    free(cfg->cert);
    free(cfg->key);
    free(cfg->ca);
    free(cfg->crl);
    free(cfg->port_file);
    for (size_t i = 0; i < cfg->n_local_saes; i++)
        free(cfg->local_saes[i]);
    free(cfg->local_saes);
    free(cfg->peer_listen.host);
    free(cfg->peer_ca);
    free(cfg->peer_port_file);
    free(cfg->peer_allow.nets);
    free(cfg->link_allow.nets);
    for (size_t i = 0; i < cfg->n_peers; i++) {
        kme_peer *p = &cfg->peers[i];
        free(p->id);
        free(p->address.host);
        for (size_t j = 0; j < p->n_saes; j++)
            free(p->saes[j]);
        free(p->saes);
    }
    free(cfg->peers);
    free(cfg->link_listen.host);
    free(cfg->link_port_file);
    free(cfg->link_id);
    free(cfg->link_peer);
    memset(cfg, 0, sizeof *cfg);
}

const kme_peer *kme_config_peer_of_sae(const kme_config *cfg, const char *sae_id)
{
    for (size_t i = 0; i < cfg->n_peers; i++)
        for (size_t j = 0; j < cfg->peers[i].n_saes; j++)
            if (strcmp(cfg->peers[i].saes[j], sae_id) == 0)
                return &cfg->peers[i];
    return NULL;
}

const kme_peer *kme_config_peer(const kme_config *cfg, const char *kme_id)
{
    for (size_t i = 0; i < cfg->n_peers; i++)
        if (strcmp(cfg->peers[i].id, kme_id) == 0)
            return &cfg->peers[i];
    return NULL;
}

bool kme_config_is_local_sae(const kme_config *cfg, const char *sae_id)
{
    for (size_t i = 0; i < cfg->n_local_saes; i++)
        if (strcmp(cfg->local_saes[i], sae_id) == 0)
            return true;
    return false;
}

bool kme_config_key(size_t i, const char **section, const char **name)
{
    if (i >= N_KEYS)
        return false;
    *section = config_keys[i].section;
    *name = config_keys[i].name;
    return true;
}
