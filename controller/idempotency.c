/* idempotency.c — Idempotency-Key claims, stored responses and replays (see idempotency.h). */
#include "controller/idempotency.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/buf.h"
#include "common/log.h"
#include "storage/db.h"

static void fingerprint(const struct http_request *req, char out[SBX_SHA256_HEX_LEN + 1])
{
    struct sbx_buf b = SBX_BUF_INIT;
    int r = sbx_buf_printf(&b, "%s|%s|", http_method_name(req->method), req->path);
    if (req->body.len)
        r |= sbx_buf_append(&b, req->body.data, req->body.len);
    if (r < 0)
        abort();
    sbx_sha256_hex(b.data, b.len, out);
    sbx_buf_free(&b);
}

static bool key_ok(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > IDEM_KEY_MAX)
        return false;
    for (const char *c = k; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c == 0x7f)
            return false;
    return true;
}

static void db_down(struct http_response *resp)
{
    http_error(resp, 503, "database_unavailable", "the database is not reachable");
    resp->retry_after = 1;
}

/* The stored body with its error envelope's request_id replaced by this request's. */
static void replay(const struct http_request *req, struct http_response *resp, int status,
                   const char *body)
{
    _cleanup_free_ char *out = NULL;
    if (status >= 400) {
        yajl_val v = NULL;
        if (sbx_json_parse(body, strlen(body), strlen(body) + 1, 64, &v, NULL, 0) == 0) {
            const char *old = sbx_json_get_str(sbx_json_get(v, "error"), "request_id");
            if (old) {
                _cleanup_free_ char *needle = xasprintf("\"request_id\":\"%s\"", old);
                const char *hit = strstr(body, needle);
                if (hit)
                    out = xasprintf("%.*s\"request_id\":\"%s\"%s", (int)(hit - body), body,
                                    req->request_id, hit + strlen(needle));
            }
            yajl_tree_free(v);
        }
    }
    const char *b = out ? out : body;
    http_raw(resp, status, "application/json", b, strlen(b));
    resp->idempotent_replayed = true;
}

enum idem_result idem_claim(struct handler_ctx *ctx, struct http_request *req,
                            struct http_response *resp, bool *ret_claimed)
{
    *ret_claimed = false;
    if (req->method != HTTP_POST || !req->idempotency_key)
        return IDEM_PROCEED;
    if (!key_ok(req->idempotency_key)) {
        http_error(resp, 400, "invalid_idempotency_key",
                   "Idempotency-Key must be 1 to %d printable characters", IDEM_KEY_MAX);
        return IDEM_DONE;
    }
    char fp[SBX_SHA256_HEX_LEN + 1], lock_s[32];
    fingerprint(req, fp);
    /* how long an unfinished claim blocks retries (then it may be taken over) */
    uint64_t lock_for = req->route->long_running ? ctx->app->cfg.limits.exec_timeout_max + 60
                                                 : 300;
    snprintf(lock_s, sizeof(lock_s), "%llu", (unsigned long long)lock_for);
    char ttl_s[32];
    snprintf(ttl_s, sizeof(ttl_s), "%llu", (unsigned long long)ctx->app->cfg.idempotency.ttl);
    const char *params[] = { req->who.org_id, req->idempotency_key, fp, lock_s };
    _cleanup_pgres_ PGresult *ins = NULL, *cur = NULL;
    if (db_begin(ctx->db, req->who.org_id) < 0) {
        db_down(resp);
        return IDEM_DONE;
    }
    int r = db_query(ctx->db,
                     "INSERT INTO idempotency_keys (org_id, key, fingerprint, state, locked_until) "
                     "VALUES ($1, $2, $3, 'in_progress', now() + make_interval(secs => $4::int)) "
                     "ON CONFLICT (org_id, key) DO NOTHING RETURNING 1",
                     4, params, &ins);
    if (r > 0) {
        if (db_commit(ctx->db) < 0) {
            db_down(resp);
            return IDEM_DONE;
        }
        *ret_claimed = true;
        return IDEM_PROCEED;
    }
    if (r == 0)
        r = db_query(ctx->db,
                     "SELECT fingerprint, state, response_status, response_body, "
                     "  GREATEST(ceil(extract(epoch FROM locked_until - now())), 1)::int, "
                     "  locked_until IS NOT NULL AND locked_until <= now(), "
                     "  created_at < now() - make_interval(secs => $3::int) "
                     "  FROM idempotency_keys WHERE org_id = $1 AND key = $2 FOR UPDATE",
                     3, (const char *[]){ req->who.org_id, req->idempotency_key, ttl_s },
                     &cur);
    if (r < 0) {
        db_rollback(ctx->db);
        db_down(resp);
        return IDEM_DONE;
    }
    if (r == 0) { /* pruned between the two statements: treat as in progress */
        db_rollback(ctx->db);
        http_error(resp, 409, "idempotency_in_progress",
                   "a request with this Idempotency-Key is still being processed");
        resp->retry_after = 1;
        return IDEM_DONE;
    }
    bool same = sbx_ct_equal(fp, SBX_SHA256_HEX_LEN, PQgetvalue(cur, 0, 0),
                             (size_t)PQgetlength(cur, 0, 0));
    bool done = strcmp(PQgetvalue(cur, 0, 1), "done") == 0;
    bool stale_lock = strcmp(PQgetvalue(cur, 0, 5), "t") == 0;
    bool expired = strcmp(PQgetvalue(cur, 0, 6), "t") == 0;
    if (expired || (!done && stale_lock && same)) {
        /* older than the TTL (not pruned yet), or an abandoned claim (crash): take it over */
        r = db_query(ctx->db,
                     "UPDATE idempotency_keys SET fingerprint = $3, state = 'in_progress', "
                     "  response_status = NULL, response_body = NULL, created_at = now(), "
                     "  locked_until = now() + make_interval(secs => $4::int) "
                     " WHERE org_id = $1 AND key = $2",
                     4, params, NULL);
        if (r < 0 || db_commit(ctx->db) < 0) {
            db_rollback(ctx->db);
            db_down(resp);
            return IDEM_DONE;
        }
        *ret_claimed = true;
        return IDEM_PROCEED;
    }
    db_rollback(ctx->db);
    if (!same) {
        http_error(resp, 422, "idempotency_key_reused",
                   "this Idempotency-Key was already used with a different request");
        return IDEM_DONE;
    }
    if (!done) {
        http_error(resp, 409, "idempotency_in_progress",
                   "a request with this Idempotency-Key is still being processed");
        resp->retry_after = (unsigned)atoi(PQgetvalue(cur, 0, 4));
        if (resp->retry_after == 0 || resp->retry_after > 5)
            resp->retry_after = 1;
        return IDEM_DONE;
    }
    replay(req, resp, atoi(PQgetvalue(cur, 0, 2)), PQgetvalue(cur, 0, 3));
    return IDEM_DONE;
}

void idem_finish(struct handler_ctx *ctx, struct http_request *req, struct http_response *resp)
{
    bool release = resp->status == 503 || resp->stream != NULL || resp->status == 0;
    if (!release && !resp->body && resp->error_code)
        resp->body = http_error_body(resp->status, resp->error_code,
                                     resp->error_message ? resp->error_message : "",
                                     req->request_id, &resp->body_len);
    char status[16];
    snprintf(status, sizeof(status), "%d", resp->status);
    _cleanup_free_ char *body =
        resp->body ? xstrndup(resp->body, resp->body_len) : xstrdup("");
    const char *params[] = { req->who.org_id, req->idempotency_key, status, body,
                             resp->audit.resource_id[0] && sbx_uuid_valid(resp->audit.resource_id)
                                 ? resp->audit.resource_id
                                 : NULL };
    int r = db_begin(ctx->db, req->who.org_id);
    if (r >= 0) {
        if (release)
            r = db_query(ctx->db, "DELETE FROM idempotency_keys WHERE org_id = $1 AND key = $2",
                         2, params, NULL);
        else
            r = db_query(ctx->db,
                         "UPDATE idempotency_keys SET state = 'done', response_status = $3::int, "
                         "  response_body = $4, resource_id = $5::uuid, locked_until = NULL "
                         " WHERE org_id = $1 AND key = $2",
                         5, params, NULL);
        if (r >= 0)
            r = db_commit(ctx->db);
        else
            db_rollback(ctx->db);
    }
    if (r < 0)
        log_error_errno(r, "storing the idempotent response of request %s failed",
                        req->request_id);
}
