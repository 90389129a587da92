/* SPDX-License-Identifier: Apache-2.0 */
/*
 * status_page.h - the style sheet of the status page (status_page.c),
 * served by admin.c as /status.css so that the page's CSP can stay
 * style-src 'self'.
 */
#ifndef QC_KME_STATUS_PAGE_H
#define QC_KME_STATUS_PAGE_H

extern const char STATUS_CSS[];

#endif
