/*
 * api-audit-summary.c — GET /api/v1/sandbox/:id/audit/summary: counts of the sandbox's audit
 * records → {sandbox_id, total_events, commands_executed, files_written, files_read,
 * secrets_accessed, errors, duration, first_event_at, last_event_at}; duration is the
 * sandbox's lifetime in seconds (to its stop, or to now while it runs). 404 for an unknown or
 * foreign id. Worker thread, inside the caller's organization transaction.
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
#include "storage/db.h"

API_HANDLER(api_audit_summary)
{
    const char *id = req->params[0];
    if (!sbx_uuid_valid(id)) {
        http_error(resp, 404, "not_found", "no such sandbox");
        return;
    }
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(ctx->db,
                     "SELECT s.id, "
                     "  (SELECT count(*) FROM audit_logs a WHERE a.sandbox_id = s.id), "
                     "  (SELECT count(*) FROM audit_logs a WHERE a.sandbox_id = s.id "
                     "     AND a.action = 'command.execute'), "
                     "  (SELECT count(*) FROM audit_logs a WHERE a.sandbox_id = s.id "
                     "     AND a.action = 'file.write'), "
                     "  (SELECT count(*) FROM audit_logs a WHERE a.sandbox_id = s.id "
                     "     AND a.action = 'file.read'), "
                     "  (SELECT count(*) FROM audit_logs a WHERE a.sandbox_id = s.id "
                     "     AND a.action IN ('secret.access', 'secret.inject')), "
                     "  (SELECT count(*) FROM audit_logs a WHERE a.sandbox_id = s.id "
                     "     AND a.outcome = 'failure'), "
                     "  extract(epoch FROM COALESCE(s.stopped_at, now()) - "
                     "          COALESCE(s.started_at, s.created_at))::double precision, "
                     "  (SELECT " SQL_TS("min(a.created_at)") " FROM audit_logs a "
                     "     WHERE a.sandbox_id = s.id), "
                     "  (SELECT " SQL_TS("max(a.created_at)") " FROM audit_logs a "
                     "     WHERE a.sandbox_id = s.id) "
                     "  FROM sandboxes s WHERE s.id = $1 AND s.deleted_at IS NULL",
                     1, (const char *[]){ id }, &res);
    if (r < 0) {
        log_error_errno(r, "audit summary query failed");
        http_error(resp, r == -EIO ? 503 : 500,
                   r == -EIO ? "database_unavailable" : "internal_error",
                   r == -EIO ? "the database is not reachable" : "internal error");
        return;
    }
    if (r == 0) {
        http_error(resp, 404, "not_found", "no such sandbox");
        return;
    }
    double duration = strtod(PQgetvalue(res, 0, 7), NULL);
    if (duration < 0)
        duration = 0;
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "sandbox_id", PQgetvalue(res, 0, 0));
    static const char *const names[] = { "total_events",  "commands_executed", "files_written",
                                         "files_read",    "secrets_accessed",  "errors" };
    for (int i = 0; i < 6; i++)
        sbx_jgen_kint(g, names[i], strtoll(PQgetvalue(res, 0, 1 + i), NULL, 10));
    sbx_jgen_kdbl(g, "duration", duration);
    sbx_jgen_kstr(g, "first_event_at",
                  PQgetisnull(res, 0, 8) ? NULL : PQgetvalue(res, 0, 8));
    sbx_jgen_kstr(g, "last_event_at", PQgetisnull(res, 0, 9) ? NULL : PQgetvalue(res, 0, 9));
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}
