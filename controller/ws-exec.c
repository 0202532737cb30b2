/*
 * ws-exec.c — GET /api/v1/sandbox/:id/exec/ws: an interactive command over a WebSocket.
 * Protocol (docs/internals/STREAMS.md, "WebSocket exec"):
 *   client → {"type":"start","command":…,"env":…,"working_dir":…,"tty":bool,"rows":N,"cols":N,
 *             "timeout":ms,"api_key":"…"}            (first message, text)
 *   server → {"type":"started","pid":N}
 *   server → binary [channel][data…]  channel 1 stdout (also the tty), 2 stderr
 *   client → binary stdin bytes; text {"type":"stdin_eof"} | {"type":"resize","rows","cols"} |
 *             {"type":"signal","signal":"INT"|2}
 *   server → {"type":"exit","code":N,"signal":S|null,"reason":R|null,"duration_ms":D}, close 1000
 *   errors: {"type":"error","code":"…","message":"…"} then close 4400/4401/4403/4404/4409
 *           (1009 for a message over 1 MiB, 1011 server trouble, 1001 shutdown).
 *
 * Both bindings land here: the "sandboxd.exec.v1" subprotocol (ws_exec_callback) and clients
 * that offered no subprotocol, which lws binds to protocols[0] (server.c forwards through
 * stream_http_hook → ws_exec_hook). State lives in a `struct stream` on the wsi's opaque
 * pointer, never in pss. Authentication, the sandbox check and sbx_exec_start run on a worker
 * (server_submit); the WebSocket stops reading meanwhile.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "controller/events.h"
#include "controller/secrets.h"
#include "controller/apikey.h"
#include "controller/audit.h"
#include "controller/sandbox.h"
#include "controller/server.h"
#include "controller/lwshdr.h"
#include "controller/stream-internal.h"
#include "storage/db.h"

#define START_TIMEOUT_US (30 * 1000000ull)

bool ws_path_sandbox_id(const char *path, char *id, size_t idlen)
{
    static const char pre[] = "/api/v1/sandbox/";
    static const char post[] = "/exec/ws";
    if (strncmp(path, pre, sizeof(pre) - 1) != 0)
        return false;
    const char *s = path + sizeof(pre) - 1;
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || strcmp(slash, post) != 0)
        return false;
    size_t n = (size_t)(slash - s);
    if (n >= idlen || n > 128)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '~'))
            return false;
    }
    memcpy(id, s, n);
    id[n] = '\0';
    return true;
}

/* ---- sending ---------------------------------------------------------------------------------- */

static void queue_text(struct stream *st, yajl_gen g)
{
    size_t n;
    _cleanup_free_ char *doc = sbx_jgen_take(g, &n);
    struct seg *s = seg_new(n);
    memcpy(s->p, doc, n);
    s->len = n;
    s->text = true;
    segq_push(&st->out, s);
    if (st->client)
        lws_callback_on_writable(st->client);
}

static void update_rx(struct stream *st)
{
    if (st->client)
        lws_rx_flow_control(st->client,
                            (st->phase == WS_STARTING || st->client_rx_paused) ? 0 : 1);
}

/* Error message, then close with `code` once the queue is written. */
static void ws_fail(struct stream *st, int code, const char *errcode, const char *msg)
{
    if (st->phase == WS_CLOSING)
        return;
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "type", "error");
    sbx_jgen_kstr(g, "code", errcode);
    sbx_jgen_kstr(g, "message", msg);
    yajl_gen_map_close(g);
    queue_text(st, g);
    st->phase = WS_CLOSING;
    st->close_code = code;
    snprintf(st->close_reason, sizeof(st->close_reason), "%s", errcode);
    stream_kill(st, "error");
    st->client_rx_paused = false;
    update_rx(st);
}

void ws_queue_final(struct stream *st)
{
    if (st->phase == WS_CLOSING)
        return;
    st->final_queued = true;
    if (st->exit_r < 0) {
        ws_fail(st, 1011, "runtime_error", "the sandbox runtime lost the command");
        return;
    }
    _cleanup_jgen_ yajl_gen g = stream_exit_json(st);
    queue_text(st, g);
    st->phase = WS_CLOSING;
    st->close_code = 1000;
    snprintf(st->close_reason, sizeof(st->close_reason), "exited");
}

void ws_shutdown(struct stream *st)
{
    if (!st->client)
        return;
    if (st->phase == WS_CLOSING && st->close_code) {
        lws_callback_on_writable(st->client);
        return;
    }
    segq_clear(&st->out);
    st->phase = WS_CLOSING;
    st->close_code = 1001;
    snprintf(st->close_reason, sizeof(st->close_reason), "server shutting down");
    stream_kill(st, "server_shutdown");
    st->client_rx_paused = false;
    update_rx(st);
    lws_callback_on_writable(st->client);
}

static int ws_writeable(struct stream *st, struct lws *wsi)
{
    struct seg *s = segq_pop(&st->out);
    if (s) {
        int r = lws_write(wsi, s->p, s->len, s->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
        size_t n = s->len;
        free(s);
        if (r < (int)n)
            return -1;
        stream_out_drained(st);
        if (st->out.head || st->close_code)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (st->close_code) {
        lws_close_reason(wsi, (enum lws_close_status)st->close_code,
                         (unsigned char *)st->close_reason, strlen(st->close_reason));
        return -1;
    }
    return 0;
}

/* ---- the start task (worker) ---------------------------------------------------------------- */

struct start_task {
    struct stream *st;            /* loop side only (ref held) */
    /* inputs (copies) */
    char *authorization, *org_header, *sandbox_id, *msg;
    char request_id[HTTP_REQUEST_ID_MAX + 1];
    size_t msg_len;
    /* results */
    int close_code;
    char errcode[48];
    char errmsg[256];
    struct sbx_exec *exec;
    bool tty;
    unsigned timeout_ms;
    char *command_text;
    char org_id[40];
    struct secret_set *secrets;   /* injected secrets (scrubbed from the output) */
};

static int close_code_for(int status)
{
    switch (status) {
    case 401: return 4401;
    case 403: return 4403;
    case 404: return 4404;
    case 409: return 4409;
    default: return status >= 400 && status < 500 ? 4400 : 1011;
    }
}

static void task_fail_resp(struct start_task *t, const struct http_response *resp)
{
    t->close_code = close_code_for(resp->status);
    snprintf(t->errcode, sizeof(t->errcode), "%s", resp->error_code ? resp->error_code : "error");
    snprintf(t->errmsg, sizeof(t->errmsg), "%s", resp->error_message ? resp->error_message : "");
}

static void start_work(struct handler_ctx *ctx, void *arg)
{
    struct start_task *t = arg;
    struct app *app = ctx->app;
    struct http_request req;
    struct http_response resp;
    memset(&req, 0, sizeof(req));
    memset(&resp, 0, sizeof(resp));
    req.method = HTTP_GET;
    req.start_us = sbx_now_us();
    snprintf(req.request_id, sizeof(req.request_id), "%s", t->request_id);
    req.org_header = t->org_header;
    _cleanup_free_ char *auth_from_msg = NULL;
    _cleanup_free_ char *started = NULL;
    _cleanup_json_ yajl_val body = NULL;
    char err[128];
    char **env = NULL, **merged = NULL;
    struct exec_request er;
    memset(&er, 0, sizeof(er));

    if (sbx_json_parse(t->msg, t->msg_len, STREAM_WS_MSG_MAX, 16, &body, err, sizeof(err)) < 0 ||
        !YAJL_IS_OBJECT(body)) {
        t->close_code = 4400;
        snprintf(t->errcode, sizeof(t->errcode), "invalid_message");
        snprintf(t->errmsg, sizeof(t->errmsg), "the start message is not a JSON object");
        goto out;
    }
    req.authorization = t->authorization;
    const char *key = sbx_json_get_str(body, "api_key");
    if (!req.authorization && key) {
        size_t n = strlen(key) + 8;
        auth_from_msg = xmalloc(n);
        snprintf(auth_from_msg, n, "ApiKey %s", key);
        req.authorization = auth_from_msg;
    }
    if (dispatch_authenticate(ctx, &req, &resp) < 0) {
        task_fail_resp(t, &resp);
        goto out;
    }
    resp.audit.action = "command.execute";
    resp.audit.resource = "sandbox";
    snprintf(resp.audit.resource_id, sizeof(resp.audit.resource_id), "%s", t->sandbox_id);
    if ((req.who.scopes & AUTH_SCOPE_EXECUTE) != AUTH_SCOPE_EXECUTE) {
        http_error(&resp, 403, "insufficient_scope", "this API key lacks the 'execute' scope");
        task_fail_resp(t, &resp);
        audit_write(ctx, &req, &resp, false);
        goto out;
    }
    if (db_begin(ctx->db, req.who.org_id) < 0) {
        http_error(&resp, 503, "database_unavailable", "the database is not reachable");
        task_fail_resp(t, &resp);
        goto out;
    }
    if (sandbox_require_running(ctx, t->sandbox_id, &env, &resp) < 0)
        goto fail_tx;
    if (sbx_uuid_valid(t->sandbox_id))
        snprintf(resp.audit.sandbox_id, sizeof(resp.audit.sandbox_id), "%s", t->sandbox_id);
    if (exec_request_parse(app, body, true, &er, &resp) < 0)
        goto fail_tx;
    if (secrets_load_for_sandbox(ctx->db, req.who.org_id, t->sandbox_id, &t->secrets) < 0) {
        http_error(&resp, 503, "database_unavailable", "the database is not reachable");
        goto fail_tx;
    }
    if (t->secrets) {
        char **senv = secret_set_env(t->secrets, env);
        sandbox_env_free(env);
        env = senv;
        char *ct = secret_set_scrub(t->secrets, er.command_text, strlen(er.command_text), NULL);
        free(er.command_text);
        er.command_text = ct;
    }
    merged = exec_env_merge(env, er.env);
    struct sbx_exec_spec spec = {
        .argv = (const char *const *)er.argv,
        .env = (const char *const *)merged,
        .cwd = er.cwd,
        .tty = er.tty,
        .rows = er.rows,
        .cols = er.cols,
    };
    int r = sbx_exec_start(app->rt, t->sandbox_id, &spec, &t->exec);
    if (r < 0) {
        exec_start_error(r, er.cwd != NULL, &resp);
        goto fail_tx;
    }
    resp.status = 200;
    free(started);
    started = events_command_data(er.command_text, true, -1, NULL, 0);
    if (events_emit(ctx->db, req.who.org_id, t->sandbox_id, "command.started", started) < 0 ||
        audit_write(ctx, &req, &resp, true) < 0 || db_commit(ctx->db) < 0) {
        db_rollback(ctx->db);
        sbx_exec_free(t->exec);
        t->exec = NULL;
        http_error(&resp, 503, "database_unavailable", "the database is not reachable");
        task_fail_resp(t, &resp);
        goto out;
    }
    t->tty = er.tty;
    t->timeout_ms = er.timeout_ms;
    t->command_text = TAKE_PTR(er.command_text);
    snprintf(t->org_id, sizeof(t->org_id), "%s", req.who.org_id);
    goto out;

fail_tx:
    db_rollback(ctx->db);
    task_fail_resp(t, &resp);
    if (resp.status != 503)
        audit_write(ctx, &req, &resp, false);
out:
    exec_request_free(&er);
    exec_env_free(merged);
    sandbox_env_free(env);
    http_response_free(&resp);
}

static void start_task_free(struct start_task *t)
{
    free(t->authorization);
    free(t->org_header);
    free(t->sandbox_id);
    free(t->msg);
    free(t->command_text);
    secret_set_free(t->secrets);
    free(t);
}

static void start_done(void *arg)
{
    struct start_task *t = arg;
    struct stream *st = t->st;
    if (!st->client || st->killed || st->phase != WS_STARTING) {
        if (t->exec) {
            sbx_exec_signal(t->exec, SIGKILL);
            sbx_exec_free(t->exec);
        }
    } else if (t->close_code) {
        st->phase = WS_WAIT_START;
        ws_fail(st, t->close_code, t->errcode, t->errmsg);
    } else {
        st->exec = TAKE_PTR(t->exec);
        st->tty = t->tty;
        st->timeout_ms = t->timeout_ms;
        st->command_text = TAKE_PTR(t->command_text);
        stream_set_secrets(st, t->secrets);
        snprintf(st->org_id, sizeof(st->org_id), "%s", t->org_id);
        st->phase = WS_RUNNING;
        _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
        yajl_gen_map_open(g);
        sbx_jgen_kstr(g, "type", "started");
        sbx_jgen_kint(g, "pid", st->exec->pid);
        yajl_gen_map_close(g);
        queue_text(st, g);
        int r = stream_start(st);
        if (r < 0) {
            log_error_errno(r, "adopting the command's pipes failed");
            ws_fail(st, 1011, "internal_error", "the command could not be attached");
        }
        update_rx(st);
    }
    stream_unref(st);
    start_task_free(t);
}

/* ---- receiving -------------------------------------------------------------------------------- */

static int parse_signal(yajl_val v)
{
    static const struct {
        const char *name;
        int sig;
    } names[] = {
        { "INT", SIGINT },   { "TERM", SIGTERM }, { "KILL", SIGKILL }, { "HUP", SIGHUP },
        { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 }, { "STOP", SIGSTOP },
        { "CONT", SIGCONT }, { "WINCH", SIGWINCH }, { "ALRM", SIGALRM },
    };
    if (!v)
        return -EINVAL;
    if (YAJL_IS_INTEGER(v)) {
        long long s = YAJL_GET_INTEGER(v);
        return s > 0 && s < 65 ? (int)s : -EINVAL;
    }
    if (!YAJL_IS_STRING(v))
        return -EINVAL;
    const char *s = v->u.string;
    if (strncasecmp(s, "SIG", 3) == 0)
        s += 3;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strcasecmp(s, names[i].name) == 0)
            return names[i].sig;
    return -EINVAL;
}

static void on_start(struct stream *st)
{
    struct start_task *t = xcalloc(1, sizeof(*t));
    t->st = st;
    t->authorization = st->authorization ? xstrdup(st->authorization) : NULL;
    t->org_header = st->org_header ? xstrdup(st->org_header) : NULL;
    t->sandbox_id = xstrdup(st->sandbox_id);
    snprintf(t->request_id, sizeof(t->request_id), "%s", st->request_id);
    t->msg = sbx_buf_steal(&st->msg, &t->msg_len);
    sbx_buf_init(&st->msg, STREAM_WS_MSG_MAX);
    st->phase = WS_STARTING;
    stream_ref(st);
    update_rx(st);
    server_submit(stream_app()->server, start_work, start_done, t);
}

static void on_text(struct stream *st)
{
    char err[128];
    _cleanup_json_ yajl_val v = NULL;
    if (sbx_json_parse(st->msg.data ? st->msg.data : "", st->msg.len, STREAM_WS_MSG_MAX, 16, &v,
                       err, sizeof(err)) < 0 ||
        !YAJL_IS_OBJECT(v)) {
        ws_fail(st, 4400, "invalid_message", "control messages are JSON objects");
        return;
    }
    const char *type = sbx_json_get_str(v, "type");
    if (!type) {
        ws_fail(st, 4400, "invalid_message", "the message has no \"type\"");
        return;
    }
    if (st->phase == WS_WAIT_START) {
        if (strcmp(type, "start") != 0) {
            ws_fail(st, 4400, "invalid_message", "the first message must be {\"type\":\"start\"}");
            return;
        }
        on_start(st);
        return;
    }
    if (strcmp(type, "start") == 0) {
        ws_fail(st, 4400, "invalid_message", "the command was already started");
    } else if (strcmp(type, "stdin_eof") == 0) {
        st->in_eof_wanted = true;
        stream_stdin_kick(st);
    } else if (strcmp(type, "resize") == 0) {
        yajl_val r = sbx_json_get(v, "rows"), c = sbx_json_get(v, "cols");
        if (!sbx_json_is_int(r) || !sbx_json_is_int(c) || YAJL_GET_INTEGER(r) < 1 ||
            YAJL_GET_INTEGER(r) > 10000 || YAJL_GET_INTEGER(c) < 1 ||
            YAJL_GET_INTEGER(c) > 10000) {
            ws_fail(st, 4400, "invalid_message", "resize needs integer rows and cols (1..10000)");
            return;
        }
        if (st->exec && st->tty)
            sbx_exec_resize(st->exec, (unsigned)YAJL_GET_INTEGER(r),
                            (unsigned)YAJL_GET_INTEGER(c));
    } else if (strcmp(type, "signal") == 0) {
        int sig = parse_signal(sbx_json_get(v, "signal"));
        if (sig < 0) {
            ws_fail(st, 4400, "invalid_message", "unknown signal");
            return;
        }
        if (st->exec && !st->exited)
            sbx_exec_signal(st->exec, sig);
    } else {
        ws_fail(st, 4400, "invalid_message", "unknown message type");
    }
}

/* Stdin bytes: queued (bounded; the WebSocket stops reading above STREAM_IN_HIGH). */
static void on_stdin_data(struct stream *st, const void *in, size_t len)
{
    if (st->in_closed || st->in_eof_wanted || len == 0)
        return;
    struct seg *s = seg_new(len);
    memcpy(s->p, in, len);
    s->len = len;
    segq_push(&st->in, s);
    if (st->in.bytes >= STREAM_IN_HIGH && !st->client_rx_paused) {
        st->client_rx_paused = true;
        update_rx(st);
    }
    if (st->phase == WS_RUNNING)
        stream_stdin_kick(st);
}

static int on_receive(struct stream *st, struct lws *wsi, const void *in, size_t len)
{
    if (st->phase == WS_CLOSING)
        return 0;
    bool binary = lws_frame_is_binary(wsi);
    if (lws_is_first_fragment(wsi)) {
        st->msg_bytes = 0;
        st->msg_binary = binary;
        sbx_buf_reset(&st->msg);
    }
    st->msg_bytes += len;
    if (st->msg_bytes > STREAM_WS_MSG_MAX) {
        static const char why[] = "message too big";
        stream_kill(st, "error");
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
                         sizeof(why) - 1);
        return -1;
    }
    if (st->msg_binary) {
        if (st->phase == WS_WAIT_START) {
            ws_fail(st, 4400, "invalid_message", "send the start message first");
            return 0;
        }
        on_stdin_data(st, in, len);
        return 0;
    }
    if (sbx_buf_append(&st->msg, in, len) < 0) {
        static const char why[] = "message too big";
        stream_kill(st, "error");
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
                         sizeof(why) - 1);
        return -1;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0;
    on_text(st);
    sbx_buf_reset(&st->msg);
    return 0;
}

/* ---- connection ------------------------------------------------------------------------------- */

static int on_established(struct lws *wsi)
{
    char uri[512];
    char id[72];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    if (n <= 0 || !ws_path_sandbox_id(uri, id, sizeof(id))) {
        static const char why[] = "no such endpoint";
        lws_close_reason(wsi, 4404, (unsigned char *)why, sizeof(why) - 1);
        return -1;
    }
    struct app *app = stream_app();
    if (!app || atomic_load(&app->stopping)) {
        static const char why[] = "server shutting down";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)why, sizeof(why) - 1);
        return -1;
    }
    struct stream *st = stream_alloc(app, STREAM_WS);
    stream_register(st);
    st->refs = 1;
    st->client = wsi;
    st->phase = WS_WAIT_START;
    snprintf(st->sandbox_id, sizeof(st->sandbox_id), "%s", id);
    st->authorization = lwshdr_dup(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    st->org_header = lwshdr_custom_dup(wsi, "x-org-id:");
    char *rid = lwshdr_custom_dup(wsi, "x-request-id:");
    bool rid_ok = rid && rid[0] && strlen(rid) <= HTTP_REQUEST_ID_MAX;
    for (const char *c = rid; rid_ok && *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '-' || *c == '_' || *c == '.' || *c == ':'))
            rid_ok = false;
    if (rid_ok) {
        st->request_id = rid;
    } else {
        free(rid);
        st->request_id = xmalloc(40);
        sbx_uuid4(st->request_id);
    }
    lws_set_opaque_user_data(wsi, st);
    lws_set_timer_usecs(wsi, 100000);
    return 0;
}

int ws_exec_hook(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    if (reason == LWS_CALLBACK_ESTABLISHED)
        return on_established(wsi);
    struct stream *st = lws_get_opaque_user_data(wsi);
    if (!st || st->kind != STREAM_WS)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_RECEIVE:
        return on_receive(st, wsi, in, len);
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws_writeable(st, wsi);
    case LWS_CALLBACK_TIMER:
        if (st->phase == WS_WAIT_START && sbx_now_us() - st->t0_us > START_TIMEOUT_US)
            ws_fail(st, 4400, "start_timeout", "no start message within 30 seconds");
        stream_tick(st);
        return 0;
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        return 0;
    case LWS_CALLBACK_CLOSED:
        stream_client_closed(st);
        return 0;
    default:
        return 0;
    }
}

int ws_exec_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_TIMER:
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
    case LWS_CALLBACK_CLOSED:
        return ws_exec_hook(wsi, reason, user, in, len);
    default:
        return 0;
    }
}
