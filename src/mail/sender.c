/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sender.c - the sender binding of sender.h: the From and Sender addresses
 * of a decrypted message against the address book and the envelope's
 * sender SAE.
 *
 * The addresses are read by GMime from a copy of the header section only
 * (the body may be a gigabyte).  Lines that look like a From or Sender
 * header are also counted by hand: a header GMime did not see as one (after
 * a broken line, say) could still be what another mail program shows, so a
 * difference in the counts is refused rather than ignored.
 */
#include "mail/sender.h"

#include <gmime/gmime.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/secret.h"
#include "common/termsafe.h"

static pthread_once_t gmime_once = PTHREAD_ONCE_INIT;

static void gmime_init_once(void)
{
    g_mime_init();   /* counted by GMime: mime.c's call and ours both hold */
}

/* Bytes of the header section: up to the first empty line (LF or CRLF), or
 * all of msg. */
static size_t header_section_len(const uint8_t *msg, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (msg[i] != '\n')
            continue;
        if (i + 1 < len && msg[i + 1] == '\n')
            return i + 1;
        if (i + 2 < len && msg[i + 1] == '\r' && msg[i + 2] == '\n')
            return i + 1;
    }
    return len;
}

/* "From" or "Sender" if the header line at p (up to end) is one: the name,
 * optional blanks, a colon. */
static const char *binding_header(const uint8_t *p, const uint8_t *end)
{
    static const char *const names[] = { "From", "Sender" };
    for (size_t k = 0; k < 2; k++) {
        size_t nl = strlen(names[k]);
        if ((size_t)(end - p) <= nl || strncasecmp((const char *)p, names[k], nl) != 0)
            continue;
        const uint8_t *q = p + nl;
        while (q < end && (*q == ' ' || *q == '\t'))
            q++;
        if (q < end && *q == ':')
            return names[k];
    }
    return NULL;
}

/* From and Sender header lines, counted by hand. */
static size_t count_binding_lines(const uint8_t *h, size_t len)
{
    size_t count = 0;
    for (size_t i = 0; i < len; i++)
        if ((i == 0 || h[i - 1] == '\n') && binding_header(h + i, h + len) != NULL)
            count++;
    return count;
}

typedef struct addr_list {
    char **v;
    size_t n;
    const char *kind;   /* header being read: "From" or "Sender" */
} addr_list;

/* Each entry is "HEADER ADDRESS": which header an address came from is
 * named when it is refused. */
static bool push(addr_list *l, const char *addr)
{
    char **g = realloc(l->v, (l->n + 1) * sizeof *g);
    if (g == NULL)
        return false;
    l->v = g;
    size_t cap = strlen(l->kind) + strlen(addr) + 2;
    if ((l->v[l->n] = malloc(cap)) == NULL)
        return false;
    snprintf(l->v[l->n], cap, "%s %s", l->kind, addr);
    l->n++;
    return true;
}

/* Every mailbox of list (members of groups too); *count how many. */
static bool collect(InternetAddressList *list, addr_list *out, size_t *count)
{
    int n = list != NULL ? internet_address_list_length(list) : 0;
    for (int i = 0; i < n; i++) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_GROUP(ia)) {
            if (!collect(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), out,
                         count))
                return false;
            continue;
        }
        const char *a = INTERNET_ADDRESS_IS_MAILBOX(ia)
                            ? internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia))
                            : NULL;
        if (a == NULL || a[0] == '\0')
            continue;
        if (!push(out, a))
            return false;
        (*count)++;
    }
    return true;
}

static GMimeMessage *parse_headers(const uint8_t *msg, size_t len, size_t *hlen)
{
    pthread_once(&gmime_once, gmime_init_once);
    *hlen = header_section_len(msg, len);
    uint8_t *copy = malloc(*hlen + 2);
    if (copy == NULL)
        return NULL;
    if (*hlen > 0)
        memcpy(copy, msg, *hlen);
    memcpy(copy + *hlen, "\n\n", 2);
    GMimeStream *stream = g_mime_stream_mem_new_with_buffer((const char *)copy, *hlen + 2);
    secret_wipe(copy, *hlen + 2);
    free(copy);
    GMimeParser *parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    GMimeMessage *m = g_mime_parser_construct_message(parser, NULL);
    g_object_unref(parser);
    GByteArray *bytes = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(stream));
    if (bytes != NULL)
        secret_wipe(bytes->data, bytes->len);
    g_object_unref(stream);
    return m;
}

qm_err qm_sender_addresses(const uint8_t *msg, size_t len, char ***addrs, size_t *n,
                           const char **bad)
{
    if (addrs == NULL || n == NULL || bad == NULL || (msg == NULL && len > 0))
        return QM_E_USAGE;
    *addrs = NULL;
    *n = 0;
    *bad = NULL;
    size_t hlen;
    if (msg == NULL)
        msg = (const uint8_t *)"";
    GMimeMessage *m = parse_headers(msg, len, &hlen);
    if (m == NULL)   /* not a header section at all: fine if it claims no author */
        return count_binding_lines(msg, hlen) == 0 ? QM_OK : QM_E_MIME;
    GMimeHeaderList *hl = g_mime_object_get_header_list(GMIME_OBJECT(m));
    int count = hl != NULL ? g_mime_header_list_get_count(hl) : 0;
    addr_list out = { 0 };
    size_t seen = 0;
    bool ok = true;
    for (int i = 0; i < count && ok; i++) {
        GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
        const char *name = g_mime_header_get_name(h);
        bool from = strcasecmp(name, "From") == 0, sender = strcasecmp(name, "Sender") == 0;
        if (!from && !sender)
            continue;
        seen++;
        out.kind = from ? "From" : "Sender";
        const char *value = g_mime_header_get_value(h);
        InternetAddressList *l = internet_address_list_parse(NULL, value ? value : "");
        size_t got = 0;
        ok = collect(l, &out, &got);
        if (l != NULL)
            g_object_unref(l);
        if (got == 0 && *bad == NULL)
            *bad = from ? "From" : "Sender";
    }
    g_object_unref(m);
    if (ok && seen != count_binding_lines(msg, hlen) && *bad == NULL)
        *bad = "From";   /* a From or Sender line the parser did not take as a header */
    if (!ok) {
        qm_sender_addresses_free(out.v, out.n);
        return QM_E_NOMEM;
    }
    *addrs = out.v;
    *n = out.n;
    return QM_OK;
}

void qm_sender_addresses_free(char **addrs, size_t n)
{
    for (size_t i = 0; addrs != NULL && i < n; i++)
        free(addrs[i]);
    free(addrs);
}

/* One "HEADER ADDRESS" against the sender SAE; a line in why if it is not
 * bound. */
static bool address_bound(const qm_config *cfg, const char *entry, const char *sender_sae,
                          const char *sent_by, char *why, size_t cap)
{
    const char *addr = strchr(entry, ' ') + 1;
    const qm_contact *ct = qm_config_contact(cfg, addr);
    if (ct != NULL && strcmp(ct->sae_id, sender_sae) == 0)
        return true;
    if (ct != NULL)
        snprintf(why, cap, "sent by SAE %s, but %s is SAE %s in your address book",
                 sent_by, entry, ct->sae_id);
    else
        snprintf(why, cap, "sent by SAE %s, but %s is not in your address book", sent_by,
                 entry);
    return false;
}

qm_err qm_sender_verify(const qm_config *cfg, const char *sender_sae, const uint8_t *inner,
                        size_t len, char *why, size_t why_cap, const char **who)
{
    if (cfg == NULL || sender_sae == NULL || why == NULL || (inner == NULL && len > 0))
        return QM_E_USAGE;
    why[0] = '\0';
    char **addrs = NULL, sent_by[600];
    size_t n = 0;
    const char *bad = NULL;
    const qm_contact *self = qm_config_contact_by_sae(cfg, sender_sae);
    if (self != NULL)
        snprintf(sent_by, sizeof sent_by, "%s (%s)", sender_sae, self->address);
    else
        snprintf(sent_by, sizeof sent_by, "%s, which is not in your address book", sender_sae);
    qm_err err = qm_sender_addresses(inner, len, &addrs, &n, &bad);
    if (err == QM_E_MIME) {
        snprintf(why, why_cap, "sent by SAE %s; its headers cannot be read", sent_by);
        return QM_E_SENDER;
    }
    if (err != QM_OK)
        return err;
    if (bad != NULL)
        snprintf(why, why_cap, "sent by SAE %s; a %s header has no address that can be checked",
                 sent_by, bad);
    for (size_t i = 0; i < n && bad == NULL; i++)
        if (!address_bound(cfg, addrs[i], sender_sae, sent_by, why, why_cap))
            bad = addrs[i];
    if (bad == NULL && self == NULL)
        snprintf(why, why_cap, "sent by SAE %s", sent_by);
    qm_sender_addresses_free(addrs, n);
    if (why[0] != '\0') {
        /* addresses come from the message: no terminal control gets through */
        char raw[1024];
        snprintf(raw, sizeof raw, "%s", why);
        termsafe_copy(why, why_cap, raw, strlen(raw), TERMSAFE_LINE);
        return QM_E_SENDER;
    }
    if (who != NULL)
        *who = self->address;
    return QM_OK;
}
