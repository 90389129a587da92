/* SPDX-License-Identifier: Apache-2.0 */
/*
 * imap_reader.c - the IMAP response reader (see imap_reader.h): lines of at
 * most IMAP_LINE_MAX bytes, literals of at most IMAP_LITERAL_MAX taken by
 * their byte count whatever they hold, and of the FETCH responses only the
 * BODY[] literal of the UID asked for.
 */
#include "mail/imap_reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mail/mailserver_internal.h"

/* More bytes into buf (compacting it first). */
static qm_err imap_fill(imap_reader *c)
{
    if (c->start > 0) {
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    size_t got = 0;
    qm_err err = c->fill(c->ctx, c->buf + c->end, sizeof c->buf - c->end, &got);
    if (err == QM_OK)
        c->end += got;
    return err;
}

/* One response line without its CRLF, NUL-terminated, in *line (grown as
 * needed, *cap its size). */
static qm_err imap_line(imap_reader *c, char **line, size_t *cap)
{
    size_t len = 0;
    for (;;) {
        uint8_t *lf = memchr(c->buf + c->start, '\n', c->end - c->start);
        size_t take = lf != NULL ? (size_t)(lf - (c->buf + c->start)) + 1 : c->end - c->start;
        if (len + take + 1 > IMAP_LINE_MAX) {
            qm_detail_set(c->detail, c->cap, "IMAP %s: a response line is too long", c->shown);
            return QM_E_TRANSPORT;
        }
        if (len + take + 1 > *cap) {
            size_t ncap = *cap < 1024 ? 1024 : *cap;
            while (ncap < len + take + 1)
                ncap *= 2;
            char *n = realloc(*line, ncap);
            if (n == NULL)
                return QM_E_NOMEM;
            *line = n;
            *cap = ncap;
        }
        memcpy(*line + len, c->buf + c->start, take);
        len += take;
        c->start += take;
        if (lf != NULL)
            break;
        qm_err err = imap_fill(c);
        if (err != QM_OK)
            return err;
    }
    len--;                                  /* the LF */
    if (len > 0 && (*line)[len - 1] == '\r')
        len--;
    (*line)[len] = '\0';
    return QM_OK;
}

/* Exactly n bytes of a literal into out (or dropped if out is NULL). */
static qm_err imap_literal(imap_reader *c, uint8_t *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        if (c->start == c->end) {
            c->start = c->end = 0;
            qm_err err = imap_fill(c);
            if (err != QM_OK)
                return err;
        }
        size_t take = c->end - c->start;
        if (take > n - got)
            take = n - got;
        if (out != NULL)
            memcpy(out + got, c->buf + c->start, take);
        got += take;
        c->start += take;
    }
    return QM_OK;
}

/* The size of the literal announced at the end of line ("... {123}"), or
 * -1 if the line announces none. */
static long long literal_size(const char *line)
{
    size_t n = strlen(line);
    if (n < 3 || line[n - 1] != '}')
        return -1;
    size_t i = n - 1;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
        i--;
    if (i == 0 || i == n - 1 || line[i - 1] != '{' || n - 1 - i > 12)
        return -1;
    return strtoll(line + i, NULL, 10);
}

static qm_err add_search_uids(imap_result *r, const char *p)
{
    while (*p == ' ')
        p++;
    while (*p != '\0') {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno != 0 || v == 0 || v > UINT32_MAX || (*end != ' ' && *end != '\0'))
            return QM_E_TRANSPORT;
        if (r->n_uids == r->cap_uids) {
            size_t ncap = r->cap_uids < 64 ? 64 : r->cap_uids * 2;
            uint32_t *n = realloc(r->uids, ncap * sizeof *n);
            if (n == NULL)
                return QM_E_NOMEM;
            r->uids = n;
            r->cap_uids = ncap;
        }
        r->uids[r->n_uids++] = (uint32_t)v;
        p = end;
        while (*p == ' ')
            p++;
    }
    return QM_OK;
}

/* Does this FETCH response line end in the BODY[] literal of our message?
 * A UID FETCH of one UID returns only that message's data (other FETCH
 * responses are flag updates without a body); the UID, when written before
 * the body, must be ours. */
static bool is_our_body(const char *line, const char *uid, bool prefix)
{
    if (strncmp(line, "* ", 2) != 0 || strstr(line, " FETCH (") == NULL)
        return false;
    const char *body = strstr(line, prefix ? "BODY[]<0> {" : "BODY[] {");
    if (body == NULL)
        return false;
    const char *u = strstr(line, "UID ");
    if (u == NULL || u > body)
        return true;
    size_t n = strlen(uid);
    return strncmp(u + 4, uid, n) == 0 && (u[4 + n] == ' ' || u[4 + n] == ')');
}

/* Read every response up to the tagged one (see imap_reader.h). */
qm_err imap_read_responses(imap_reader *c, const char *tag, imap_result *r, bool *refused)
{
    char *line = NULL;
    size_t cap = 0, tag_len = strlen(tag);
    qm_err err = QM_OK;
    *refused = false;
    while (err == QM_OK) {
        err = imap_line(c, &line, &cap);
        if (err != QM_OK)
            break;
        if (strncmp(line, tag, tag_len) == 0 && line[tag_len] == ' ') {
            const char *status = line + tag_len + 1;
            if (strncmp(status, "OK", 2) != 0) {
                *refused = true;
                qm_detail_set(c->detail, c->cap, "IMAP %s: %.200s", c->shown, status);
            }
            break;
        }
        if (r != NULL && strncmp(line, "* SEARCH", 8) == 0 && (line[8] == ' ' || line[8] == '\0')) {
            err = add_search_uids(r, line + 8);
            if (err == QM_E_TRANSPORT)
                qm_detail_set(c->detail, c->cap, "IMAP %s: malformed SEARCH response", c->shown);
            continue;
        }
        /* A literal may follow any response line; the line goes on after
         * it.  Only our message's BODY[] is kept. */
        long long size;
        while (err == QM_OK && (size = literal_size(line)) >= 0) {
            bool ours = r != NULL && r->want_uid != NULL && !r->have_body &&
                        is_our_body(line, r->want_uid, r->max_body > 0);
            if ((unsigned long long)size > IMAP_LITERAL_MAX
                || (ours && r->max_body > 0 && (unsigned long long)size > r->max_body)) {
                qm_detail_set(c->detail, c->cap, "IMAP %s: a literal of %lld bytes is beyond our limit",
                              c->shown, size);
                err = QM_E_TRANSPORT;
                break;
            }
            uint8_t *data = NULL;
            if (ours && (data = malloc(size > 0 ? (size_t)size : 1)) == NULL) {
                err = QM_E_NOMEM;
                break;
            }
            err = imap_literal(c, data, (size_t)size);
            if (err == QM_OK && ours) {
                r->body = data;
                r->body_len = (size_t)size;
                r->have_body = true;
            } else {
                free(data);
            }
            if (err == QM_OK)
                err = imap_line(c, &line, &cap);     /* the rest of the response */
        }
    }
    free(line);
    return err;
}
