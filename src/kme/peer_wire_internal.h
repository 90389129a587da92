/* SPDX-License-Identifier: Apache-2.0 */
/*
 * peer_wire_internal.h - the reading and writing helpers of peer_wire.c
 * that the relay's wire format (relay_wire.c) shares: a strict member
 * lookup, UUIDs, strings into the document's arena, arrays, segments and
 * the keys of a reservation.  Include only from peer_wire.c and
 * relay_wire.c.
 */
#ifndef QC_KME_PEER_WIRE_INTERNAL_H
#define QC_KME_PEER_WIRE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/jsonscan.h"
#include "common/jsonw.h"
#include "kme/peer_wire.h"

/* Up to 64 bytes of text a peer sent, printable ASCII only ('?' else). */
const char *pwi_shown(const char *in, size_t len, char out[65]);
/* A scanner at `at` (NULL: the document's start). */
jscan pwi_cursor(const pw_doc *d, const char *at);
/* Where each of names' values starts in the object at `at` (NULL: absent);
 * an unknown member, or a missing one of the first `required`, is a 400
 * naming it. */
int pwi_members(const pw_doc *d, const char *at, const char *const *names, size_t n,
                size_t required, const char **val, const char *where, kme_err *e);
bool pwi_uuid(const pw_doc *d, const char *at, uint8_t out[16]);
/* A string value decoded into the document's arena (NULL: not a string). */
const char *pwi_string(pw_doc *d, const char *at);
bool pwi_array_size(const pw_doc *d, const char *at, size_t *n);
/* A non-empty array of n segments at `at` into dst. */
int pwi_segments(const pw_doc *d, const char *at, size_t n, ks_segment *dst,
                 const char *where, kme_err *e);
/* keys of a reservation ([{"key_ID", "segments"}], 1..100000) into r. */
int pwi_keys(const pw_doc *d, const char *at, pw_resv *r, kme_err *e);

void pwi_uuid_text(jsonw *w, const uint8_t id[16]);
void pwi_segments_text(jsonw *w, const ks_segment *segs, size_t n);
/* ,"keys":[{"key_ID": UUID, "segments": [...]}, ...] of a reservation made
 * here (key IDs and segments only, never the key bytes). */
void pwi_reservation_keys_text(jsonw *w, const ks_reservation *r);

#endif
