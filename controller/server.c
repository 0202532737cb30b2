/*
 * server.c — libwebsockets front end and the worker pool.
 *
 * DESIGN
 * One event-loop thread (the caller of server_run) owns every socket. For each HTTP request it
 * builds a `struct job` (request copied out of lws' header table, body accumulated under the
 * body limit), routes it (pure, cheap), and either answers at once (404/405/411/413 and other
 * framing errors) or queues the job for the worker pool with rx flow control off, as measured in
 * shared/reference/libwebsockets-server.md §2. A worker runs dispatch_request() (auth, database,
 * handler, audit), moves the job to the done queue and wakes the loop with lws_cancel_service().
 * The loop drains the done queue in EVENT_WAIT_CANCELLED, re-enables rx and asks for WRITEABLE,
 * where the response is written in chunks of WRITE_CHUNK bytes (back-pressure: one chunk per
 * WRITEABLE).
 *
 * Job states: READING (loop) → QUEUED (worker owns req/resp) → DONE (in the done queue) →
 * WRITING (loop) → freed. A client that disconnects while the job is QUEUED or DONE only marks
 * it orphaned (under the lock); the drain frees orphaned jobs. The worker never touches a wsi.
 *
 * Shutdown: server_request_stop() sets `stopping` and wakes the loop; new connections are
 * refused, queued work finishes (grace period), workers are joined, then the context is
 * destroyed.
 */
#include "controller/server.h"

#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "controller/app.h"
#include "controller/lwshdr.h"
#include "controller/metrics.h"
#include "controller/stream.h"

#define WRITE_CHUNK (64 * 1024)
#define SHUTDOWN_GRACE_US (10 * 1000000ull)
#define HEADER_BUF 4096

enum job_state { JOB_READING, JOB_QUEUED, JOB_DONE, JOB_WRITING };

struct job {
    struct job *next;
    struct server *srv;
    /* A task (server_submit) instead of an HTTP request: work on a worker, done on the loop. */
    void (*task_work)(struct handler_ctx *ctx, void *arg);
    void (*task_done)(void *arg);
    void *task_arg;
    struct lws *wsi;
    enum job_state state;
    bool orphaned;
    bool early;       /* answered by the loop without a worker */
    bool headers_sent;
    bool logged;
    size_t body_sent;
    char allow[64];
    struct http_request req;
    struct http_response resp;
};

struct pss {
    struct job *job;
};

struct server {
    struct server_options opt;
    struct app *app;
    struct lws_context *ctx;
    unsigned port;

    pthread_mutex_t lock;
    pthread_cond_t work_cond;
    struct job *work_head, *work_tail; /* guarded by lock */
    struct job *done_head, *done_tail; /* guarded by lock */
    bool workers_exit;                 /* guarded by lock */
    pthread_t *threads;
    unsigned n_threads;

    atomic_bool stopping;
    unsigned live_jobs; /* jobs not yet freed; loop thread only */
};

static void job_free(struct job *job)
{
    if (!job)
        return;
    job->srv->live_jobs--;
    if (job->resp.stream) /* stream hook: a stream nobody took over */
        stream_discard(TAKE_PTR(job->resp.stream));
    http_request_free(&job->req);
    http_response_free(&job->resp);
    free(job);
}

/* ---- request log and metrics -------------------------------------------------------------- */

static void job_finish_log(struct job *job, int status)
{
    if (job->logged)
        return;
    job->logged = true;
    const char *route = job->req.route ? job->req.route->pattern : "unmatched";
    const char *method = http_method_name(job->req.method);
    uint64_t dur = sbx_now_us() - job->req.start_us;
    metrics_observe(route, method, status, dur);
    struct sbx_log_field f[] = {
        LF_STR("request_id", job->req.request_id),
        LF_STR("method", method),
        LF_STR("route", route),
        LF_STR("path", job->req.path),
        LF_INT("status", status),
        LF_DBL("duration_ms", (double)dur / 1000.0),
        LF_STR("org_id", job->req.who.authenticated ? job->req.who.org_id : NULL),
        LF_STR("key_id", job->req.who.authenticated ? job->req.who.key_id : NULL),
        LF_STR("error", job->resp.error_code),
    };
    sbx_log_fields(status >= 500 ? SBX_LOG_ERROR : SBX_LOG_INFO, "request", f, ARRAY_SIZE(f));
}

/* ---- writing responses (loop thread) ------------------------------------------------------ */

static void ensure_error_body(struct job *job)
{
    struct http_response *resp = &job->resp;
    if (resp->body || !resp->error_code)
        return;
    resp->body = http_error_body(resp->status, resp->error_code,
                                 resp->error_message ? resp->error_message : "",
                                 job->req.request_id, &resp->body_len);
    resp->content_type = "application/json";
}

static int add_header(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                      unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

/* Writes the status line and headers. Returns 0 or -1 (close). */
static int write_headers(struct lws *wsi, struct job *job)
{
    struct http_response *resp = &job->resp;
    unsigned char buf[LWS_PRE + HEADER_BUF];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    char num[32];

    ensure_error_body(job);
    if (lws_add_http_header_status(wsi, (unsigned)resp->status, &p, end))
        return -1;
    if (add_header(wsi, "content-type:", resp->content_type ? resp->content_type
                                                             : "application/json",
                   &p, end))
        return -1;
    if (lws_add_http_header_content_length(
            wsi, resp->body_fd_set ? (lws_filepos_t)resp->body_fd_len : resp->body_len, &p, end))
        return -1;
    if (add_header(wsi, "x-request-id:", job->req.request_id, &p, end))
        return -1;
    if (add_header(wsi, "cache-control:", "no-store", &p, end))
        return -1;
    if (resp->location && add_header(wsi, "location:", resp->location, &p, end))
        return -1;
    if (resp->retry_after) {
        snprintf(num, sizeof(num), "%u", resp->retry_after);
        if (add_header(wsi, "retry-after:", num, &p, end))
            return -1;
    }
    if (resp->status == 405 && job->allow[0] && add_header(wsi, "allow:", job->allow, &p, end))
        return -1;
    if (job->req.who.authenticated && job->req.who.test_mode &&
        (add_header(wsi, "x-sandbox-test-mode:", "true", &p, end) ||
         add_header(wsi, "x-sandbox-billing-status:", "sandbox", &p, end)))
        return -1;
    if (resp->idempotent_replayed && add_header(wsi, "idempotent-replayed:", "true", &p, end))
        return -1;
    if (resp->ratelimit.applied) {
        char rl[128];
        snprintf(num, sizeof(num), "%u", resp->ratelimit.limit);
        if (add_header(wsi, "x-ratelimit-limit:", num, &p, end))
            return -1;
        snprintf(num, sizeof(num), "%u", resp->ratelimit.remaining);
        if (add_header(wsi, "x-ratelimit-remaining:", num, &p, end))
            return -1;
        snprintf(num, sizeof(num), "%u", resp->ratelimit.reset);
        if (add_header(wsi, "x-ratelimit-reset:", num, &p, end))
            return -1;
        snprintf(rl, sizeof(rl), "%u;w=%u", resp->ratelimit.limit, resp->ratelimit.window);
        if (add_header(wsi, "ratelimit-policy:", rl, &p, end))
            return -1;
        snprintf(rl, sizeof(rl), "limit=%u, remaining=%u, reset=%u", resp->ratelimit.limit,
                 resp->ratelimit.remaining, resp->ratelimit.reset);
        if (add_header(wsi, "ratelimit:", rl, &p, end))
            return -1;
    }
    if (lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    job->headers_sent = true;
    return 0;
}

/* A file body: one read() of at most WRITE_CHUNK per WRITEABLE (regular files do not block in
 * practice; lws buffers what the socket does not take and asks for WRITEABLE only once that
 * drained, so at most about two chunks are in memory per connection). A file shorter than
 * announced closes the connection (the client sees a short body). */
static int write_step_fd(struct lws *wsi, struct job *job)
{
    /* One buffer for the loop thread (the only caller): no allocation per chunk. */
    static unsigned char chunk[LWS_PRE + WRITE_CHUNK];
    uint64_t left = job->resp.body_fd_len - job->body_sent;
    size_t n = (size_t)MIN(left, (uint64_t)WRITE_CHUNK);
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(job->resp.body_fd, chunk + LWS_PRE + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    if (got < n) {
        log_warn("request %s: file body ended early (%llu of %llu bytes sent)",
                 job->req.request_id, (unsigned long long)(job->body_sent + got),
                 (unsigned long long)job->resp.body_fd_len);
        return -1;
    }
    int w = lws_write(wsi, chunk + LWS_PRE, n, n == left ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    if (w < (int)n)
        return -1;
    job->body_sent += n;
    return job->body_sent == job->resp.body_fd_len ? 1 : 0;
}

/* One WRITEABLE step. Returns 1 when the response is complete, 0 to continue, -1 to close. */
static int write_step(struct lws *wsi, struct job *job)
{
    if (!job->headers_sent) {
        if (write_headers(wsi, job) < 0)
            return -1;
        if (job->req.method == HTTP_HEAD ||
            (job->resp.body_fd_set ? job->resp.body_fd_len : job->resp.body_len) == 0)
            return 1;
        return 0;
    }
    if (job->resp.body_fd_set)
        return write_step_fd(wsi, job);
    size_t left = job->resp.body_len - job->body_sent;
    size_t n = MIN(left, (size_t)WRITE_CHUNK);
    unsigned char *chunk = xmalloc(LWS_PRE + n);
    memcpy(chunk + LWS_PRE, job->resp.body + job->body_sent, n);
    int w = lws_write(wsi, chunk + LWS_PRE, n, n == left ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    free(chunk);
    if (w < (int)n)
        return -1;
    job->body_sent += n;
    return job->body_sent == job->resp.body_len ? 1 : 0;
}

/* Writes a whole (small) response immediately from the current callback; used for errors
 * after which the connection is closed (the caller returns -1). */
static void write_now_and_close(struct lws *wsi, struct job *job)
{
    int r;
    job->req.who.authenticated = false;
    do {
        r = write_step(wsi, job);
    } while (r == 0);
    job_finish_log(job, job->resp.status);
}

/* ---- worker pool ---------------------------------------------------------------------------- */

static void *worker_main(void *arg)
{
    struct server *srv = ((void **)arg)[0];
    unsigned id = (unsigned)(uintptr_t)((void **)arg)[1];
    free(arg);
    struct handler_ctx ctx;
    handler_ctx_init(&ctx, srv->app, id);

    for (;;) {
        pthread_mutex_lock(&srv->lock);
        while (!srv->work_head && !srv->workers_exit)
            pthread_cond_wait(&srv->work_cond, &srv->lock);
        struct job *job = srv->work_head;
        if (!job) {
            pthread_mutex_unlock(&srv->lock);
            break;
        }
        srv->work_head = job->next;
        if (!srv->work_head)
            srv->work_tail = NULL;
        bool skip = job->orphaned;
        pthread_mutex_unlock(&srv->lock);

        job->next = NULL;
        if (job->task_work)
            job->task_work(&ctx, job->task_arg);
        else if (!skip)
            dispatch_request(&ctx, &job->req, &job->resp);

        pthread_mutex_lock(&srv->lock);
        job->state = JOB_DONE;
        if (srv->done_tail)
            srv->done_tail->next = job;
        else
            srv->done_head = job;
        srv->done_tail = job;
        pthread_mutex_unlock(&srv->lock);
        lws_cancel_service(srv->ctx);
    }
    handler_ctx_done(&ctx);
    return NULL;
}

static void push_work(struct server *srv, struct job *job)
{
    pthread_mutex_lock(&srv->lock);
    job->state = JOB_QUEUED;
    job->next = NULL;
    if (srv->work_tail)
        srv->work_tail->next = job;
    else
        srv->work_head = job;
    srv->work_tail = job;
    pthread_cond_signal(&srv->work_cond);
    pthread_mutex_unlock(&srv->lock);
}

static void enqueue(struct server *srv, struct job *job)
{
    push_work(srv, job);
    lws_rx_flow_control(job->wsi, 0);
    unsigned t = job->req.route && job->req.route->long_running
                     ? MAX(srv->opt.request_timeout_s, srv->opt.long_request_timeout_s)
                     : srv->opt.request_timeout_s;
    lws_set_timeout(job->wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)t);
}

static void drain_done(struct server *srv)
{
    pthread_mutex_lock(&srv->lock);
    struct job *list = srv->done_head;
    srv->done_head = srv->done_tail = NULL;
    pthread_mutex_unlock(&srv->lock);

    while (list) {
        struct job *job = list;
        list = job->next;
        job->next = NULL;
        if (job->task_work) {
            if (job->task_done)
                job->task_done(job->task_arg);
            job_free(job);
            continue;
        }
        if (job->orphaned) {
            job_finish_log(job, 499);
            job_free(job);
            continue;
        }
        job->state = JOB_WRITING;
        lws_rx_flow_control(job->wsi, 1);
        lws_callback_on_writable(job->wsi);
    }
}

/* ---- reading requests (loop thread) --------------------------------------------------------- */

static bool request_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > HTTP_REQUEST_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == ':'))
            return false;
    }
    return true;
}

static bool map_method(int m, enum http_method *ret)
{
    switch (m) {
    case LWSHUMETH_GET: *ret = HTTP_GET; return true;
    case LWSHUMETH_POST: *ret = HTTP_POST; return true;
    case LWSHUMETH_PUT: *ret = HTTP_PUT; return true;
    case LWSHUMETH_PATCH: *ret = HTTP_PATCH; return true;
    case LWSHUMETH_DELETE: *ret = HTTP_DELETE; return true;
    case LWSHUMETH_HEAD: *ret = HTTP_HEAD; return true;
    case LWSHUMETH_OPTIONS: *ret = HTTP_OPTIONS; return true;
    default: return false;
    }
}

/* Copies query arguments. Returns -E2BIG when there are too many. */
static int read_query(struct lws *wsi, struct http_request *req)
{
    int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    if (total <= 0)
        return 0;
    char *buf = xmalloc((size_t)total + 1);
    int r = 0;
    for (int i = 0;; i++) {
        int n = lws_hdr_copy_fragment(wsi, buf, total + 1, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            break;
        if (req->n_query == HTTP_MAX_QUERY) {
            r = -E2BIG;
            break;
        }
        char *eq = strchr(buf, '=');
        struct http_query_arg *a = &req->query[req->n_query++];
        a->name = eq ? xstrndup(buf, (size_t)(eq - buf)) : xstrdup(buf);
        a->value = xstrdup(eq ? eq + 1 : "");
    }
    free(buf);
    return r;
}

/* Parses Content-Length strictly (digits only). Returns -1 absent, -2 invalid. */
static long long content_length(struct lws *wsi)
{
    _cleanup_free_ char *cl = lwshdr_dup(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
    if (!cl)
        return -1;
    if (!cl[0] || strlen(cl) > 18)
        return -2;
    long long v = 0;
    for (const char *c = cl; *c; c++) {
        if (*c < '0' || *c > '9')
            return -2;
        v = v * 10 + (*c - '0');
    }
    return v;
}

/* Handles LWS_CALLBACK_HTTP. Returns the callback's return value. */
static int on_http(struct server *srv, struct lws *wsi, struct pss *pss, const char *in,
                   size_t len)
{
    char *uri = NULL;
    int ulen = 0;
    int m = lws_http_get_uri_and_method(wsi, &uri, &ulen);
    struct job *job = xcalloc(1, sizeof(*job));
    job->srv = srv;
    srv->live_jobs++;
    job->wsi = wsi;
    job->state = JOB_READING;
    job->req.start_us = sbx_now_us();
    sbx_buf_init(&job->req.body, srv->opt.max_body_bytes);
    pss->job = job;

    _cleanup_free_ char *rid = lwshdr_custom_dup(wsi, "x-request-id:");
    if (rid && request_id_ok(rid))
        snprintf(job->req.request_id, sizeof(job->req.request_id), "%s", rid);
    else
        sbx_uuid4(job->req.request_id);

    bool method_ok = map_method(m, &job->req.method);
    job->req.path = xstrndup(in ? in : "", in ? strnlen(in, len) : 0);
    if (!method_ok) {
        job->req.method = HTTP_GET;
        http_error(&job->resp, 405, "method_not_allowed", "method not allowed");
        write_now_and_close(wsi, job);
        return -1;
    }
    if (!in || strlen(in) != len) {
        http_error(&job->resp, 400, "invalid_path", "request path contains a NUL byte");
        write_now_and_close(wsi, job);
        return -1;
    }
    if (srv->stopping) {
        http_error(&job->resp, 503, "shutting_down", "server is shutting down");
        job->resp.retry_after = 1;
        write_now_and_close(wsi, job);
        return -1;
    }

    job->req.authorization = lwshdr_dup(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    job->req.content_type = lwshdr_dup(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE);
    job->req.org_header = lwshdr_custom_dup(wsi, "x-org-id:");
    job->req.idempotency_key = lwshdr_custom_dup(wsi, "idempotency-key:");
    job->req.admin_token = lwshdr_custom_dup(wsi, "x-admin-token:");
    if (read_query(wsi, &job->req) < 0) {
        http_error(&job->resp, 400, "invalid_query", "too many query arguments (max %d)",
                   HTTP_MAX_QUERY);
        write_now_and_close(wsi, job);
        return -1;
    }

    int r = router_match(routes, n_routes, job->req.method, job->req.path, &job->req.route,
                         job->req.params, &job->req.n_params, job->allow, sizeof(job->allow));
    if (r == -ENOENT) {
        job->early = true;
        http_error(&job->resp, 404, "not_found", "no such endpoint");
    } else if (r == -EPERM) {
        job->early = true;
        http_error(&job->resp, 405, "method_not_allowed", "method %s not allowed here",
                   http_method_name(job->req.method));
    }

    /* Body framing: lws cannot read chunked bodies; duplicate lengths are smuggling shapes.
     * When the body cannot be read, answer (routing errors first) and close. */
    bool has_te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
    long long cl = content_length(wsi);
    bool wants_body = job->req.method == HTTP_POST || job->req.method == HTTP_PUT ||
                      job->req.method == HTTP_PATCH;
    if (has_te || (wants_body && cl == -1) || cl == -2) {
        if (!job->early && cl == -2)
            http_error(&job->resp, 400, "invalid_request", "invalid Content-Length header");
        else if (!job->early)
            http_error(&job->resp, 411, "length_required",
                       "a Content-Length header is required (chunked bodies are not supported)");
        write_now_and_close(wsi, job);
        return -1;
    }
    if (cl > (long long)srv->opt.max_body_bytes) {
        if (!job->early)
            http_error(&job->resp, 413, "payload_too_large",
                       "request body exceeds the limit of %zu bytes", srv->opt.max_body_bytes);
        write_now_and_close(wsi, job);
        return -1;
    }

    if (cl > 0) {
        if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_EXPECT) > 0) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            unsigned char b[LWS_PRE + sizeof(cont)];
            memcpy(b + LWS_PRE, cont, sizeof(cont) - 1);
            lws_write(wsi, b + LWS_PRE, sizeof(cont) - 1, LWS_WRITE_HTTP);
        }
        lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)srv->opt.request_timeout_s);
        return 0; /* wait for HTTP_BODY / HTTP_BODY_COMPLETION */
    }
    if (job->early) {
        job->state = JOB_WRITING;
        lws_callback_on_writable(wsi);
        return 0;
    }
    enqueue(srv, job);
    return 0;
}

static int on_body(struct server *srv, struct lws *wsi, struct pss *pss, const void *in,
                   size_t len)
{
    struct job *job = pss->job;
    if (!job || job->state != JOB_READING)
        return 0;
    if (sbx_buf_append(&job->req.body, in, len) < 0) {
        http_error(&job->resp, 413, "payload_too_large",
                   "request body exceeds the limit of %zu bytes", srv->opt.max_body_bytes);
        write_now_and_close(wsi, job);
        return -1;
    }
    return 0;
}

static int on_body_complete(struct server *srv, struct lws *wsi, struct pss *pss)
{
    struct job *job = pss->job;
    if (!job || job->state != JOB_READING)
        return 0; /* lws may repeat this while a job is pending: idempotent */
    if (job->early) {
        job->state = JOB_WRITING;
        lws_callback_on_writable(wsi);
        return 0;
    }
    enqueue(srv, job);
    return 0;
}

static int on_writeable(struct server *srv, struct lws *wsi, struct pss *pss)
{
    struct job *job = pss->job;
    if (!job || job->state != JOB_WRITING)
        return 0;
    if (job->resp.stream && job->resp.status == 200 && !job->headers_sent) {
        /* stream hook: the connection now belongs to the stream layer (SSE) */
        struct stream *st = TAKE_PTR(job->resp.stream);
        job_finish_log(job, 200);
        pss->job = NULL;
        int sr = stream_http_attach(st, wsi, job->req.request_id);
        job_free(job);
        return sr;
    }
    int r = write_step(wsi, job);
    if (r < 0)
        return -1;
    if (r == 0) {
        lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, (int)srv->opt.idle_timeout_s);
        lws_callback_on_writable(wsi);
        return 0;
    }
    job_finish_log(job, job->resp.status);
    pss->job = NULL;
    job_free(job);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static void on_closed(struct server *srv, struct pss *pss)
{
    struct job *job = pss ? pss->job : NULL;
    if (!job)
        return;
    pss->job = NULL;
    pthread_mutex_lock(&srv->lock);
    bool with_worker = job->state == JOB_QUEUED || job->state == JOB_DONE;
    if (with_worker)
        job->orphaned = true;
    pthread_mutex_unlock(&srv->lock);
    if (!with_worker) {
        job_finish_log(job, 499);
        job_free(job);
    }
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    struct lws_context *lctx = lws_get_context(wsi);
    struct server *srv = lws_context_user(lctx);
    struct pss *pss = user;

    bool stream_handled; /* stream hook: WebSocket upgrades/connections, SSE connections */
    int sr = stream_http_hook(wsi, reason, user, in, len, &stream_handled);
    if (stream_handled)
        return sr;

    switch (reason) {
    case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
        return atomic_load(&srv->stopping) ? -1 : 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        /* Stay on HTTP/1.1 (h2c would lose custom headers); WebSocket is for stream routes. */
        if (in && strcmp(in, "websocket") == 0)
            return 0;
        return -1;
    case LWS_CALLBACK_HTTP:
        return on_http(srv, wsi, pss, in, len);
    case LWS_CALLBACK_HTTP_BODY:
        return on_body(srv, wsi, pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return on_body_complete(srv, wsi, pss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return pss ? on_writeable(srv, wsi, pss) : 0;
    case LWS_CALLBACK_CLOSED_HTTP:
        on_closed(srv, pss);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain_done(srv);
        return 0;
    default:
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    }
}

static const struct lws_protocols protocols[] = {
    { "http", http_callback, sizeof(struct pss), 0, 0, NULL, 0 },
    STREAM_LWS_PROTOCOLS,
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void lws_log_emit(int level, const char *line)
{
    char msg[300];
    snprintf(msg, sizeof(msg), "%s", line);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    sbx_log(level == LLL_ERR ? SBX_LOG_ERROR : SBX_LOG_WARN, "libwebsockets: %s", msg);
}

int server_create(const struct server_options *opt, struct app *app, struct server **ret,
                  char *err, size_t errlen)
{
    struct server *srv = xcalloc(1, sizeof(*srv));
    srv->opt = *opt;
    srv->app = app;
    stream_init(app);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->work_cond, NULL);

    lws_set_log_level(LLL_ERR | LLL_WARN, lws_log_emit);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = (int)opt->port;
    info.iface = opt->address;
    info.protocols = protocols;
    info.user = srv;
    info.options = LWS_SERVER_OPTION_HTTP_HEADERS_SECURITY_BEST_PRACTICES_ENFORCE * 0 |
                   LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.keepalive_timeout = (int)opt->idle_timeout_s;
    info.timeout_secs = opt->request_timeout_s;
    info.timeout_secs_ah_idle = opt->idle_timeout_s;
    info.max_http_header_data = (unsigned short)MIN(opt->max_header_bytes, 65535u);
    info.max_http_header_pool = (unsigned short)MIN(opt->max_connections, 65535u);
    info.fd_limit_per_thread = opt->max_connections + 64;
    info.pt_serv_buf_size = 64 * 1024;
    info.server_string = "sandboxd";

    srv->ctx = lws_create_context(&info);
    if (!srv->ctx) {
        snprintf(err, errlen, "cannot listen on %s:%u (address in use or not available)",
                 opt->address, opt->port);
        pthread_mutex_destroy(&srv->lock);
        pthread_cond_destroy(&srv->work_cond);
        free(srv);
        return -EADDRINUSE;
    }
    struct lws_vhost *vh = lws_get_vhost_by_name(srv->ctx, "default");
    srv->port = vh ? (unsigned)lws_get_vhost_listen_port(vh) : opt->port;

    srv->n_threads = opt->workers;
    srv->threads = xcalloc(srv->n_threads, sizeof(pthread_t));
    for (unsigned i = 0; i < srv->n_threads; i++) {
        void **arg = xmalloc(2 * sizeof(void *));
        arg[0] = srv;
        arg[1] = (void *)(uintptr_t)i;
        int r = pthread_create(&srv->threads[i], NULL, worker_main, arg);
        if (r != 0)
            abort();
    }
    *ret = srv;
    return 0;
}

void server_submit(struct server *srv, void (*work)(struct handler_ctx *ctx, void *arg),
                   void (*done)(void *arg), void *arg)
{
    struct job *job = xcalloc(1, sizeof(*job));
    job->srv = srv;
    srv->live_jobs++;
    job->task_work = work;
    job->task_done = done;
    job->task_arg = arg;
    push_work(srv, job);
}

unsigned server_port(const struct server *srv)
{
    return srv->port;
}

void server_request_stop(struct server *srv)
{
    atomic_store(&srv->stopping, true);
    lws_cancel_service(srv->ctx);
}

int server_run(struct server *srv)
{
    while (!atomic_load(&srv->stopping))
        if (lws_service(srv->ctx, 0) < 0)
            break;

    /* Drain: finish what workers hold, let the loop write the answers, end streams. */
    uint64_t deadline = sbx_now_us() + SHUTDOWN_GRACE_US;
    stream_shutdown_all();
    while ((srv->live_jobs > 0 || stream_count() > 0) && sbx_now_us() < deadline) {
        lws_service(srv->ctx, 0);
        stream_shutdown_all(); /* streams attached during the drain */
    }

    pthread_mutex_lock(&srv->lock);
    srv->workers_exit = true;
    pthread_cond_broadcast(&srv->work_cond);
    pthread_mutex_unlock(&srv->lock);
    for (unsigned i = 0; i < srv->n_threads; i++)
        pthread_join(srv->threads[i], NULL);
    srv->n_threads = 0;
    drain_done(srv);
    return 0;
}

void server_free(struct server *srv)
{
    if (!srv)
        return;
    if (srv->ctx)
        lws_context_destroy(srv->ctx);
    /* Jobs still queued (shutdown timed out) belong to no one now. */
    for (struct job *j = srv->work_head; j;) {
        struct job *n = j->next;
        job_free(j);
        j = n;
    }
    free(srv->threads);
    pthread_mutex_destroy(&srv->lock);
    pthread_cond_destroy(&srv->work_cond);
    free(srv);
}
