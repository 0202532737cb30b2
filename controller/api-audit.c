/*
 * api-audit.c — GET /api/v1/audit: the organization's audit records, newest first, with
 * filters (sandbox_id, action, outcome, start_time, end_time) and limit/offset pagination.
 * Worker thread, inside the caller's organization transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/pgjson.h"
#include "controller/validate.h"
#include "storage/db.h"

#define AUDIT_MAX_LIMIT 1000

static bool parse_uint(const char *s, long long max, long long *ret)
{
    if (!s || !*s || strlen(s) > 12)
        return false;
    long long v = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9')
            return false;
        v = v * 10 + (*c - '0');
    }
    if (v > max)
        return false;
    *ret = v;
    return true;
}

API_HANDLER(api_audit_list)
{
    long long limit = 100, offset = 0;
    const char *q;
    if ((q = http_query(req, "limit")) && !parse_uint(q, AUDIT_MAX_LIMIT, &limit)) {
        http_error(resp, 400, "invalid_query", "limit must be an integer from 1 to %d",
                   AUDIT_MAX_LIMIT);
        return;
    }
    if (limit == 0)
        limit = 1;
    if ((q = http_query(req, "offset")) && !parse_uint(q, 1000000000, &offset)) {
        http_error(resp, 400, "invalid_query", "offset must be a non-negative integer");
        return;
    }
    const char *sandbox_id = http_query(req, "sandbox_id");
    if (sandbox_id && !sbx_uuid_valid(sandbox_id)) {
        http_error(resp, 400, "invalid_query", "sandbox_id must be a UUID");
        return;
    }
    const char *outcome = http_query(req, "outcome");
    if (outcome && strcmp(outcome, "success") != 0 && strcmp(outcome, "failure") != 0) {
        http_error(resp, 400, "invalid_query", "outcome must be 'success' or 'failure'");
        return;
    }
    const char *action = http_query(req, "action");
    if (action && strlen(action) > 100) {
        http_error(resp, 400, "invalid_query", "action is too long");
        return;
    }
    const char *start = http_query(req, "start_time"), *end = http_query(req, "end_time");
    if ((start && !v_iso8601(start)) || (end && !v_iso8601(end))) {
        http_error(resp, 400, "invalid_query", "start_time and end_time must be ISO 8601");
        return;
    }
    char limit_s[16], offset_s[16];
    snprintf(limit_s, sizeof(limit_s), "%lld", limit);
    snprintf(offset_s, sizeof(offset_s), "%lld", offset);

    _cleanup_pgres_ PGresult *res = NULL;
    const char *params[] = { sandbox_id, action, outcome, start, end, limit_s, offset_s };
    int r = db_query(
        ctx->db,
        "SELECT id, " SQL_TS("created_at") " AS timestamp, sandbox_id, org_id, user_id, "
        "  session_id, actor_key_id, request_id, action, resource_type AS resource, "
        "  resource_id, details, outcome, error_message, duration_ms AS duration, "
        "  count(*) OVER () AS total "
        "  FROM audit_logs "
        " WHERE ($1::uuid IS NULL OR sandbox_id = $1::uuid) "
        "   AND ($2::text IS NULL OR action = $2) "
        "   AND ($3::text IS NULL OR outcome = $3) "
        "   AND ($4::timestamptz IS NULL OR created_at >= $4::timestamptz) "
        "   AND ($5::timestamptz IS NULL OR created_at <= $5::timestamptz) "
        " ORDER BY created_at DESC, id DESC LIMIT $6::int OFFSET $7::int",
        7, params, &res);
    if (r == -EINVAL) {
        http_error(resp, 400, "invalid_query", "start_time and end_time must be ISO 8601");
        return;
    }
    if (r < 0) {
        log_error_errno(r, "audit query failed");
        http_error(resp, r == -EIO ? 503 : 500,
                   r == -EIO ? "database_unavailable" : "internal_error",
                   r == -EIO ? "the database is not reachable" : "internal error");
        return;
    }
    long long total = 0;
    int n = PQntuples(res);
    if (n > 0) {
        total = strtoll(PQgetvalue(res, 0, 15), NULL, 10);
    } else if (offset > 0) {
        /* Past the end: count separately so "total" stays right. */
        _cleanup_pgres_ PGresult *cnt = NULL;
        if (db_query(ctx->db,
                     "SELECT count(*) FROM audit_logs "
                     " WHERE ($1::uuid IS NULL OR sandbox_id = $1::uuid) "
                     "   AND ($2::text IS NULL OR action = $2) "
                     "   AND ($3::text IS NULL OR outcome = $3) "
                     "   AND ($4::timestamptz IS NULL OR created_at >= $4::timestamptz) "
                     "   AND ($5::timestamptz IS NULL OR created_at <= $5::timestamptz)",
                     5, params, &cnt) > 0)
            total = strtoll(PQgetvalue(cnt, 0, 0), NULL, 10);
    }
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "events");
    yajl_gen_array_open(g);
    for (int i = 0; i < n; i++)
        pg_row_to_json(g, res, i, "sssssssssssjssi-");
    yajl_gen_array_close(g);
    sbx_jgen_kint(g, "total", total);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}
