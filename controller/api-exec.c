/*
 * api-exec.c — POST /api/v1/sandbox/:id/execute. Worker thread, inside the caller's
 * organization transaction (dispatch commits on success).
 *
 * Body: {command: string | [argv], env?: {K: V}, working_dir?, timeout?: ms, stdin?: string,
 *        stream?: bool, encoding?: "base64"}
 * Buffered (default): runs the command to completion on this worker with
 * sbx_exec_run_buffered() and answers {stdout, stderr, exit_code, duration_ms, truncated,
 * reason, signal} (+ stdout_base64 / stderr_base64 with "encoding": "base64"). Output that is
 * not UTF-8 is made valid with U+FFFD per offending byte.
 * Streamed ("stream": true): starts the command and hands a stream to the event loop, which
 * answers text/event-stream (stream.c). The execution row is then written at the exit.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/api.h"
#include "controller/events.h"
#include "controller/secrets.h"
#include "controller/sandbox.h"
#include "controller/stream.h"
#include "controller/validate.h"
#include "runtime/runtime.h"
#include "storage/db.h"

#define ARGV_MAX 1024
#define ARGV_BYTES_MAX (256 * 1024)
#define ENV_MAX 256
#define ENV_VALUE_MAX (32 * 1024)
#define DEFAULT_TIMEOUT_MS 60000

static int invalid(struct http_response *resp, const char *msg)
{
    http_error(resp, 422, "validation_error", "%s", msg);
    return -EINVAL;
}

static char *join_argv(char **argv)
{
    struct sbx_buf b = SBX_BUF_INIT;
    for (size_t i = 0; argv[i]; i++)
        if ((i && sbx_buf_puts(&b, " ") < 0) || sbx_buf_puts(&b, argv[i]) < 0)
            abort();
    return sbx_buf_steal(&b, NULL);
}

static int parse_command(yajl_val body, struct exec_request *r, struct http_response *resp)
{
    yajl_val c = sbx_json_get(body, "command");
    if (!c || YAJL_IS_NULL(c))
        return invalid(resp, "field 'command' is required");
    if (YAJL_IS_STRING(c)) {
        size_t n = strlen(c->u.string);
        if (n == 0)
            return invalid(resp, "field 'command' must not be empty");
        if (n > ARGV_BYTES_MAX)
            return invalid(resp, "field 'command' must be at most 262144 bytes");
        r->argv = xcalloc(4, sizeof(char *));
        r->argv[0] = xstrdup("/bin/sh");
        r->argv[1] = xstrdup("-c");
        r->argv[2] = xstrdup(c->u.string);
        r->command_text = xstrdup(c->u.string);
        return 0;
    }
    if (!YAJL_IS_ARRAY(c))
        return invalid(resp, "field 'command' must be a string or an array of strings");
    size_t n = c->u.array.len, total = 0;
    if (n == 0)
        return invalid(resp, "field 'command' must not be empty");
    if (n > ARGV_MAX)
        return invalid(resp, "field 'command' has more than 1024 entries");
    for (size_t i = 0; i < n; i++) {
        yajl_val e = c->u.array.values[i];
        if (!YAJL_IS_STRING(e))
            return invalid(resp, "field 'command' must be a string or an array of strings");
        total += strlen(e->u.string) + 1;
    }
    if (total > ARGV_BYTES_MAX)
        return invalid(resp, "field 'command' must be at most 262144 bytes in total");
    if (!c->u.array.values[0]->u.string[0])
        return invalid(resp, "field 'command' must start with a non-empty program name");
    r->argv = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        r->argv[i] = xstrdup(c->u.array.values[i]->u.string);
    r->command_text = join_argv(r->argv);
    return 0;
}

static int parse_env(yajl_val body, struct exec_request *r, struct http_response *resp)
{
    yajl_val m = NULL;
    if (v_string_map(body, "env", ENV_MAX, ENV_VALUE_MAX, &m, resp) < 0)
        return -EINVAL;
    if (!m || m->u.object.len == 0)
        return 0;
    r->env = xcalloc(m->u.object.len + 1, sizeof(char *));
    for (size_t i = 0; i < m->u.object.len; i++) {
        const char *k = m->u.object.keys[i];
        if (!k[0] || strchr(k, '='))
            return invalid(resp, "field 'env' has an invalid variable name");
        const char *v = m->u.object.values[i]->u.string;
        size_t n = strlen(k) + strlen(v) + 2;
        r->env[i] = xmalloc(n);
        snprintf(r->env[i], n, "%s=%s", k, v);
    }
    return 0;
}

static bool has_proc_component(const char *p)
{
    for (const char *s = strstr(p, "/proc"); s; s = strstr(s + 1, "/proc"))
        if (s[5] == '\0' || s[5] == '/')
            return true;
    return false;
}

int exec_request_parse(const struct app *app, yajl_val body, bool ws, struct exec_request *ret,
                       struct http_response *resp)
{
    struct exec_request r;
    memset(&r, 0, sizeof(r));
    long long timeout = 0;
    bool has_timeout = false;
    long long max_ms = (long long)app->cfg.limits.exec_timeout_max * 1000;
    const char *cwd = NULL, *stdin_s = NULL, *encoding = NULL;

    if (parse_command(body, &r, resp) < 0 || parse_env(body, &r, resp) < 0)
        goto fail;
    yajl_val wd = sbx_json_get(body, "working_dir");
    if (wd && !YAJL_IS_NULL(wd)) {
        if (!YAJL_IS_STRING(wd)) {
            invalid(resp, "field 'working_dir' must be a string");
            goto fail;
        }
        cwd = wd->u.string;
        if (cwd[0] != '/' || strlen(cwd) > SBX_PATH_MAX || has_proc_component(cwd)) {
            http_error(resp, 400, "invalid_path",
                       "working_dir must be an absolute path of at most 4096 bytes outside /proc");
            goto fail;
        }
        r.cwd = xstrdup(cwd);
    }
    if (v_int(body, "timeout", false, 1, max_ms, &timeout, &has_timeout, resp) < 0)
        goto fail;
    r.timeout_ms = has_timeout ? (unsigned)timeout
                               : (unsigned)(ws ? max_ms : MIN(max_ms, DEFAULT_TIMEOUT_MS));
    if (!ws) {
        if (v_string(body, "stdin", false, 0, app->cfg.http.max_body_bytes, &stdin_s, resp) < 0 ||
            v_bool(body, "stream", &r.stream, resp) < 0 ||
            v_string(body, "encoding", false, 1, 16, &encoding, resp) < 0)
            goto fail;
        if (stdin_s) {
            r.stdin_data = stdin_s;
            r.stdin_len = strlen(stdin_s);
        }
        if (encoding && strcmp(encoding, "base64") != 0 && strcmp(encoding, "utf-8") != 0 &&
            strcmp(encoding, "utf8") != 0) {
            invalid(resp, "field 'encoding' must be 'utf-8' or 'base64'");
            goto fail;
        }
        r.base64 = encoding && strcmp(encoding, "base64") == 0;
    } else {
        long long rows = 24, cols = 80;
        if (v_bool(body, "tty", &r.tty, resp) < 0 ||
            v_int(body, "rows", false, 1, 10000, &rows, NULL, resp) < 0 ||
            v_int(body, "cols", false, 1, 10000, &cols, NULL, resp) < 0)
            goto fail;
        r.rows = (unsigned)rows;
        r.cols = (unsigned)cols;
    }
    *ret = r;
    return 0;
fail:
    exec_request_free(&r);
    return -EINVAL;
}

void exec_env_free(char **env)
{
    if (!env)
        return;
    for (size_t i = 0; env[i]; i++)
        free(env[i]);
    free(env);
}

void exec_request_free(struct exec_request *r)
{
    exec_env_free(r->argv);
    exec_env_free(r->env);
    free(r->cwd);
    free(r->command_text);
    memset(r, 0, sizeof(*r));
}

static bool env_overridden(const char *kv, char **over)
{
    const char *eq = strchr(kv, '=');
    size_t n = eq ? (size_t)(eq - kv) : strlen(kv);
    for (size_t i = 0; over && over[i]; i++)
        if (strncmp(over[i], kv, n) == 0 && over[i][n] == '=')
            return true;
    return false;
}

char **exec_env_merge(char **sandbox_env, char **overrides)
{
    size_t a = 0, b = 0;
    while (sandbox_env && sandbox_env[a])
        a++;
    while (overrides && overrides[b])
        b++;
    if (a + b == 0)
        return NULL;
    char **out = xcalloc(a + b + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < a; i++)
        if (!env_overridden(sandbox_env[i], overrides))
            out[k++] = xstrdup(sandbox_env[i]);
    for (size_t i = 0; i < b; i++)
        out[k++] = xstrdup(overrides[i]);
    return out;
}

void exec_start_error(int r, bool had_cwd, struct http_response *resp)
{
    switch (r) {
    case -ENOENT:
        http_error(resp, 409, "sandbox_not_running", "the sandbox is not running");
        break;
    case -EINVAL:
        if (had_cwd)
            http_error(resp, 400, "invalid_path", "working_dir is not usable in the sandbox");
        else
            http_error(resp, 422, "validation_error", "the command cannot be started");
        break;
    case -E2BIG:
        http_error(resp, 422, "validation_error", "the command or its environment is too large");
        break;
    default:
        log_error_errno(r, "starting a command failed");
        http_error(resp, 502, "runtime_error", "the sandbox runtime could not run the command");
        break;
    }
}

static void gen_output(yajl_gen g, const char *key, const char *data, size_t len)
{
    sbx_jgen_key(g, key);
    size_t n;
    _cleanup_free_ char *s = utf8_lossy(data, len, &n);
    yajl_gen_string(g, (const unsigned char *)s, n);
}

static void gen_base64(yajl_gen g, const char *key, const char *data, size_t len)
{
    sbx_jgen_key(g, key);
    size_t n;
    _cleanup_free_ char *s = sbx_base64_encode(data, len, &n);
    yajl_gen_string(g, (const unsigned char *)s, n);
}

API_HANDLER(api_exec)
{
    struct app *app = ctx->app;
    const char *id = req->params[0];
    _cleanup_json_ yajl_val body = NULL;
    struct exec_request er;
    memset(&er, 0, sizeof(er));
    char **env = NULL, **merged = NULL;
    struct secret_set *secrets = NULL;
    _cleanup_free_ char *started = NULL;
    _cleanup_jgen_ yajl_gen g = NULL;

    resp->audit.resource = "sandbox";
    snprintf(resp->audit.resource_id, sizeof(resp->audit.resource_id), "%s", id);
    if (http_parse_json_body(req, resp, app->cfg.http.max_json_depth, &body) < 0)
        return;
    if (sandbox_require_running(ctx, id, &env, resp) < 0)
        return;
    snprintf(resp->audit.sandbox_id, sizeof(resp->audit.sandbox_id), "%s", id);
    if (exec_request_parse(app, body, false, &er, resp) < 0)
        goto out;
    /* Injected secrets: environment for the command, scrubbed from what comes back. */
    if (secrets_load_for_sandbox(ctx->db, req->who.org_id, id, &secrets) < 0) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        goto out;
    }
    if (secrets) {
        char **senv = secret_set_env(secrets, env);
        sandbox_env_free(env);
        env = senv;
        char *ct = secret_set_scrub(secrets, er.command_text, strlen(er.command_text), NULL);
        free(er.command_text);
        er.command_text = ct;
    }
    merged = exec_env_merge(env, er.env);
    struct sbx_exec_spec spec = {
        .argv = (const char *const *)er.argv,
        .env = (const char *const *)merged,
        .cwd = er.cwd,
    };

    started = events_command_data(er.command_text, er.stream, -1, NULL, 0);
    if (events_emit(ctx->db, req->who.org_id, id, "command.started", started) < 0) {
        http_error(resp, 503, "database_unavailable", "the database is not reachable");
        goto out;
    }
    if (er.stream) {
        struct sbx_exec *e = NULL;
        int r = sbx_exec_start(app->rt, id, &spec, &e);
        if (r < 0) {
            exec_start_error(r, er.cwd != NULL, resp);
            goto out;
        }
        struct stream *st = stream_new_exec(app, e, req->who.org_id, id, er.command_text,
                                            er.timeout_ms, false);
        if (er.stdin_len)
            stream_set_stdin(st, er.stdin_data, er.stdin_len);
        stream_set_secrets(st, secrets);
        resp->stream = st;
        resp->status = 200;
        resp->content_type = "text/event-stream";
        goto out;
    }

    struct sbx_exec_output o;
    int r = sbx_exec_run_buffered(app->rt, id, &spec, er.stdin_data, er.stdin_len, er.timeout_ms,
                                  (size_t)app->cfg.limits.exec_output_max, &o);
    if (r < 0) {
        exec_start_error(r, er.cwd != NULL, resp);
        goto out;
    }
    const char *reason = o.reason == SBX_EXEC_TIMEOUT ? "timeout"
                         : o.reason == SBX_EXEC_OOM   ? "oom"
                         : o.reason == SBX_EXEC_SIGNALED ? "signal"
                                                         : NULL;
    int code = o.result.signal ? 128 + o.result.signal : o.result.exit_code;
    uint64_t dur_ms = o.duration_us / 1000;
    r = sandbox_record_exec(ctx->db, req->who.org_id, id, er.command_text, code, reason, dur_ms,
                            o.out_len, o.err_len);
    if (r >= 0) {
        _cleanup_free_ char *done = events_command_data(er.command_text, false, code, reason, dur_ms);
        r = events_emit(ctx->db, req->who.org_id, id,
                        code == 0 && !reason ? "command.completed" : "command.failed", done);
    }
    if (secrets) {
        size_t n;
        char *s = secret_set_scrub(secrets, o.out, o.out_len, &n);
        free(o.out);
        o.out = s;
        o.out_len = n;
        s = secret_set_scrub(secrets, o.err, o.err_len, &n);
        free(o.err);
        o.err = s;
        o.err_len = n;
    }
    if (r < 0) {
        sbx_exec_output_free(&o);
        log_error_errno(r, "recording an execution failed");
        http_error(resp, 503, "database_unavailable", "the execution could not be recorded");
        goto out;
    }
    g = sbx_jgen_new();
    yajl_gen_map_open(g);
    gen_output(g, "stdout", o.out, o.out_len);
    gen_output(g, "stderr", o.err, o.err_len);
    if (er.base64) {
        gen_base64(g, "stdout_base64", o.out, o.out_len);
        gen_base64(g, "stderr_base64", o.err, o.err_len);
    }
    sbx_jgen_kint(g, "exit_code", code);
    sbx_jgen_kint(g, "duration_ms", (long long)dur_ms);
    sbx_jgen_kbool(g, "truncated", o.truncated);
    sbx_jgen_kstr(g, "reason", reason);
    if (o.result.signal)
        sbx_jgen_kint(g, "signal", o.result.signal);
    else
        sbx_jgen_knull(g, "signal");
    yajl_gen_map_close(g);
    sbx_exec_output_free(&o);
    http_json(resp, 200, g);
out:
    exec_request_free(&er);
    exec_env_free(merged);
    sandbox_env_free(env);
    secret_set_free(secrets);
}

/* GET /api/v1/sandbox/:id/exec/ws without an Upgrade header. */
API_HANDLER(api_exec_ws_plain)
{
    http_error(resp, 426, "upgrade_required",
               "this endpoint speaks WebSocket (subprotocol sandboxd.exec.v1)");
}
