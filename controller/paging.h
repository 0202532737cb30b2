/*
 * paging.h — cursor pagination shared by the list endpoints (sandboxes, checkpoints,
 * artifacts). Lists are ordered by (created_at DESC, id DESC); a cursor is
 * "<YYYYMMDDHH24MISSUS of created_at>_<uuid>" of the last row returned. Worker threads; pure.
 *
 * SQL pattern (parameters from struct page_query):
 *   AND ($N::text IS NULL OR (created_at, id) <
 *        (to_timestamp($N, 'YYYYMMDDHH24MISSUS') AT TIME ZONE 'UTC', $M::uuid))
 *   ORDER BY created_at DESC, id DESC LIMIT <limit_plus_one>
 */
#pragma once

#include <libpq-fe.h>
#include <stdbool.h>
#include <yajl/yajl_gen.h>

#include "controller/http.h"

#define PAGE_MAX_LIMIT 200
#define PAGE_DEFAULT_LIMIT 50

struct page_query {
    long long limit;
    char limit_plus_one[24]; /* the LIMIT parameter: one more row tells whether there is more */
    bool has_cursor;
    char cursor_ts[21];
    char cursor_id[37];
};

/* Reads ?limit= and ?cursor=. On bad input sets a 400 invalid_query and returns -EINVAL. */
int page_query_parse(const struct http_request *req, struct page_query *ret,
                     struct http_response *resp);
/* SQL parameters for the cursor (NULL when there is none). */
static inline const char *page_cursor_ts(const struct page_query *q)
{
    return q->has_cursor ? q->cursor_ts : NULL;
}
static inline const char *page_cursor_id(const struct page_query *q)
{
    return q->has_cursor ? q->cursor_id : NULL;
}

/* Emits `"<key>": [rows...], "has_more": b, "next_cursor": s|null` into an open map. The
 * result has up to limit+1 rows; cursor_col is the column with the created_at cursor text and
 * id_col the row's id. */
void page_emit(yajl_gen g, const char *key, const PGresult *res, const char *types,
               const struct page_query *q, int cursor_col, int id_col);
