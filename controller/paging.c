/* paging.c — cursor pagination for list endpoints (see paging.h). */
#include "controller/paging.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "controller/pgjson.h"

static bool cursor_parse(const char *c, char ts[21], char id[37])
{
    if (!c || strlen(c) != 20 + 1 + 36 || c[20] != '_')
        return false;
    for (int i = 0; i < 20; i++)
        if (c[i] < '0' || c[i] > '9')
            return false;
    memcpy(ts, c, 20);
    ts[20] = '\0';
    memcpy(id, c + 21, 37);
    return sbx_uuid_valid(id);
}

int page_query_parse(const struct http_request *req, struct page_query *ret,
                     struct http_response *resp)
{
    struct page_query q = { .limit = PAGE_DEFAULT_LIMIT };
    const char *v = http_query(req, "limit");
    if (v) {
        char *end;
        q.limit = strtoll(v, &end, 10);
        if (!*v || *end || q.limit < 1 || q.limit > PAGE_MAX_LIMIT) {
            http_error(resp, 400, "invalid_query", "limit must be an integer from 1 to %d",
                       PAGE_MAX_LIMIT);
            return -EINVAL;
        }
    }
    v = http_query(req, "cursor");
    if (v) {
        if (!cursor_parse(v, q.cursor_ts, q.cursor_id)) {
            http_error(resp, 400, "invalid_query", "invalid cursor");
            return -EINVAL;
        }
        q.has_cursor = true;
    }
    snprintf(q.limit_plus_one, sizeof(q.limit_plus_one), "%lld", q.limit + 1);
    *ret = q;
    return 0;
}

void page_emit(yajl_gen g, const char *key, const PGresult *res, const char *types,
               const struct page_query *q, int cursor_col, int id_col)
{
    int n = PQntuples(res);
    bool more = n > q->limit;
    if (more)
        n = (int)q->limit;
    sbx_jgen_key(g, key);
    yajl_gen_array_open(g);
    for (int i = 0; i < n; i++)
        pg_row_to_json(g, res, i, types);
    yajl_gen_array_close(g);
    sbx_jgen_kbool(g, "has_more", more);
    if (more) {
        char next[64];
        snprintf(next, sizeof(next), "%s_%s", PQgetvalue(res, n - 1, cursor_col),
                 PQgetvalue(res, n - 1, id_col));
        sbx_jgen_kstr(g, "next_cursor", next);
    } else {
        sbx_jgen_knull(g, "next_cursor");
    }
}
