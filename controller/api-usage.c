/*
 * api-usage.c — GET /api/v1/usage/current (this calendar month so far) and
 * GET /api/v1/usage/history?granularity=hourly|daily|monthly&start_date=&end_date=, summing the
 * organization's usage_events. Running sandboxes are metered by the reaper loop every interval,
 * so "current" lags by at most that. Worker threads, in the org transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/pgjson.h"
#include "controller/validate.h"
#include "storage/db.h"

/* estimated_cost_cents: the rates.* settings (millicents per vCPU-hour, GB-hour of memory,
 * GB of network) applied to the sums; usage of test-mode keys (billing_status 'sandbox') is
 * reported to test keys only and never mixed into live totals. */
static void rate_params(const struct app *app, char r[3][24])
{
    snprintf(r[0], 24, "%u", app->cfg.rates.cpu_vcpu_hour);
    snprintf(r[1], 24, "%u", app->cfg.rates.memory_gb_hour);
    snprintf(r[2], 24, "%u", app->cfg.rates.network_gb);
}

#define SUMS                                                                                      \
    "COALESCE(sum(quantity) FILTER (WHERE kind = 'cpu_seconds'), 0) / 3600.0 AS cpu_hours, "      \
    "COALESCE(sum(quantity) FILTER (WHERE kind = 'memory_gb_seconds'), 0) / 3600.0 "              \
    "  AS memory_gb_hours, "                                                                      \
    "COALESCE(sum(quantity) FILTER (WHERE kind = 'network_bytes'), 0) / 1e9 AS network_gb, "      \
    "COALESCE(sum(quantity) FILTER (WHERE kind = 'sandbox_created'), 0)::bigint "                 \
    "  AS sandbox_creations, "                                                                    \
    "COALESCE(sum(quantity) FILTER (WHERE kind = 'sandbox_seconds'), 0) / 3600.0 "                \
    "  AS sandbox_hours, "                                                                        \
    "COALESCE(sum(quantity) FILTER (WHERE kind = 'exec_count'), 0)::bigint AS exec_count, "       \
    "COALESCE(max(quantity) FILTER (WHERE kind = 'memory_peak_bytes'), 0)::bigint "               \
    "  AS memory_peak_bytes"

static void failed(struct http_response *resp, int r)
{
    log_error_errno(r, "usage query failed");
    http_error(resp, r == -EIO ? 503 : 500, r == -EIO ? "database_unavailable" : "internal_error",
               r == -EIO ? "the database is not reachable" : "internal error");
}

API_HANDLER(api_usage_current)
{
    _cleanup_pgres_ PGresult *res = NULL;
    char rates[3][24];
    rate_params(ctx->app, rates);
    int r = db_query(ctx->db,
                     "WITH p AS (SELECT date_trunc('month', now() AT TIME ZONE 'UTC') AS s) "
                     "SELECT " SQL_TS("(p.s AT TIME ZONE 'UTC')") " AS period_start, "
                     SQL_TS("((p.s + interval '1 month') AT TIME ZONE 'UTC')") " AS period_end, "
                     SUMS ", round((COALESCE(sum(quantity) FILTER (WHERE kind = 'cpu_seconds'), 0) "
                     "  / 3600.0 * $2 + COALESCE(sum(quantity) FILTER (WHERE kind = "
                     "  'memory_gb_seconds'), 0) / 3600.0 * $3 + COALESCE(sum(quantity) FILTER "
                     "  (WHERE kind = 'network_bytes'), 0) / 1e9 * $4) / 1000.0)::bigint "
                     " FROM p LEFT JOIN usage_events u "
                     "  ON u.created_at >= (p.s AT TIME ZONE 'UTC') AND u.billing_status = $1 "
                     " GROUP BY p.s",
                     4,
                     (const char *[]){ req->who.test_mode ? "sandbox" : "live", rates[0],
                                       rates[1], rates[2] },
                     &res);
    if (r <= 0)
        return failed(resp, r < 0 ? r : -EIO);
    double cpu_h = strtod(PQgetvalue(res, 0, 2), NULL);
    double mem_h = strtod(PQgetvalue(res, 0, 3), NULL);
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    pg_row_members(g, res, 0, "ssddd---");
    sbx_jgen_kint(g, "sandbox_creations", strtoll(PQgetvalue(res, 0, 5), NULL, 10));
    sbx_jgen_kint(g, "estimated_cost_cents", strtoll(PQgetvalue(res, 0, 9), NULL, 10));
    sbx_jgen_kstr(g, "billing_status", req->who.test_mode ? "sandbox" : "live");
    sbx_jgen_key(g, "breakdown");
    yajl_gen_map_open(g);
    sbx_jgen_kdbl(g, "sandbox_hours", strtod(PQgetvalue(res, 0, 6), NULL));
    sbx_jgen_kint(g, "exec_count", strtoll(PQgetvalue(res, 0, 7), NULL, 10));
    sbx_jgen_kint(g, "memory_peak_bytes", strtoll(PQgetvalue(res, 0, 8), NULL, 10));
    sbx_jgen_kdbl(g, "cpu_hours", cpu_h);
    sbx_jgen_kdbl(g, "memory_gb_hours", mem_h);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

API_HANDLER(api_usage_history)
{
    const char *gran = http_query(req, "granularity");
    if (!gran)
        gran = "daily";
    const char *unit = strcmp(gran, "hourly") == 0    ? "hour"
                       : strcmp(gran, "daily") == 0   ? "day"
                       : strcmp(gran, "monthly") == 0 ? "month"
                                                      : NULL;
    if (!unit) {
        http_error(resp, 400, "invalid_query", "granularity must be hourly, daily or monthly");
        return;
    }
    const char *start = http_query(req, "start_date"), *end = http_query(req, "end_date");
    if ((start && !v_iso8601(start)) || (end && !v_iso8601(end))) {
        http_error(resp, 400, "invalid_query", "start_date and end_date must be ISO 8601");
        return;
    }
    _cleanup_pgres_ PGresult *range = NULL, *res = NULL;
    const char *p[] = { start, end, unit };
    int r = db_query(ctx->db,
                     "WITH r AS (SELECT COALESCE($1::timestamptz, date_trunc($3, now()) - "
                     "    CASE $3 WHEN 'hour' THEN interval '24 hours' "
                     "            WHEN 'day' THEN interval '30 days' ELSE interval '12 months' END) "
                     "    AS s, COALESCE($2::timestamptz, now()) AS e) "
                     "SELECT s, e, " SQL_TS("s") ", " SQL_TS("e") " FROM r",
                     3, p, &range);
    if (r == -EINVAL) {
        http_error(resp, 400, "invalid_query", "start_date and end_date must be ISO 8601");
        return;
    }
    if (r <= 0)
        return failed(resp, r < 0 ? r : -EIO);
    char rates[3][24];
    rate_params(ctx->app, rates);
    const char *p2[] = { PQgetvalue(range, 0, 0), PQgetvalue(range, 0, 1), unit,
                         req->who.test_mode ? "sandbox" : "live", rates[0], rates[1], rates[2] };
    r = db_query(ctx->db,
                 "WITH b AS (SELECT date_trunc($3, created_at AT TIME ZONE 'UTC') AS s, * "
                 "             FROM usage_events "
                 "            WHERE created_at >= $1::timestamptz AND created_at < $2::timestamptz "
                 "              AND billing_status = $4) "
                 "SELECT " SQL_TS("(s AT TIME ZONE 'UTC')") " AS period_start, "
                 SQL_TS("((s + ('1 ' || $3)::interval) AT TIME ZONE 'UTC')") " AS period_end, "
                 SUMS ", round((COALESCE(sum(quantity) FILTER (WHERE kind = 'cpu_seconds'), 0) "
                 "  / 3600.0 * $5 + COALESCE(sum(quantity) FILTER (WHERE kind = "
                 "  'memory_gb_seconds'), 0) / 3600.0 * $6 + COALESCE(sum(quantity) FILTER "
                 "  (WHERE kind = 'network_bytes'), 0) / 1e9 * $7) / 1000.0)::bigint "
                 "  AS estimated_cost_cents "
                 " FROM b GROUP BY s ORDER BY s",
                 7, p2, &res);
    if (r < 0)
        return failed(resp, r);
    if (PQntuples(res) > 10000) {
        http_error(resp, 400, "invalid_query", "the range has too many periods");
        return;
    }
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "granularity", gran);
    sbx_jgen_kstr(g, "start_date", PQgetvalue(range, 0, 2));
    sbx_jgen_kstr(g, "end_date", PQgetvalue(range, 0, 3));
    sbx_jgen_key(g, "data");
    yajl_gen_array_open(g);
    for (int i = 0; i < PQntuples(res); i++)
        pg_row_to_json(g, res, i, "ssdddidiii");
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}
