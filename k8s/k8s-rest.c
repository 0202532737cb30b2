/*
 * k8s-rest.c — REST calls over libcurl: TLS from the config, bearer token or client
 * certificate, metav1.Status → typed errors, bounded retries with backoff on idempotent verbs.
 * A fresh easy handle per call; connections/DNS/TLS sessions are shared through a CURLSH with
 * per-data-type mutexes, so every thread reuses the client's connections.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/macro.h"
#include "k8s/k8s-internal.h"

#define MAX_BODY (64u << 20)
#define MAX_DEPTH 64

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char *const type_names[] = {
    [K8S_OK] = "OK",
    [K8S_BAD_REQUEST] = "BadRequest",
    [K8S_UNAUTHORIZED] = "Unauthorized",
    [K8S_FORBIDDEN] = "Forbidden",
    [K8S_NOT_FOUND] = "NotFound",
    [K8S_ALREADY_EXISTS] = "AlreadyExists",
    [K8S_CONFLICT] = "Conflict",
    [K8S_GONE] = "Gone",
    [K8S_INVALID] = "Invalid",
    [K8S_TOO_MANY_REQUESTS] = "TooManyRequests",
    [K8S_SERVER_ERROR] = "ServerError",
    [K8S_TIMEOUT] = "Timeout",
    [K8S_TRANSPORT] = "Transport",
    [K8S_PROTOCOL] = "Protocol",
    [K8S_OTHER] = "Other",
};

const char *k8s_err_type_name(enum k8s_err_type t)
{
    return (unsigned)t < ARRAY_SIZE(type_names) && type_names[t] ? type_names[t] : "Unknown";
}

int k8s_err_errno(enum k8s_err_type t)
{
    switch (t) {
    case K8S_OK: return 0;
    case K8S_NOT_FOUND: return -ENOENT;
    case K8S_ALREADY_EXISTS: return -EEXIST;
    case K8S_CONFLICT: return -EBUSY;
    case K8S_INVALID:
    case K8S_BAD_REQUEST: return -EINVAL;
    case K8S_FORBIDDEN: return -EPERM;
    case K8S_UNAUTHORIZED: return -EACCES;
    case K8S_GONE: return -ESTALE;
    case K8S_TOO_MANY_REQUESTS: return -EAGAIN;
    case K8S_TIMEOUT: return -ETIMEDOUT;
    case K8S_TRANSPORT: return -ECONNREFUSED;
    case K8S_PROTOCOL: return -EPROTO;
    case K8S_SERVER_ERROR:
    case K8S_OTHER:
    default: return -EIO;
    }
}

void k8s_error_set(struct k8s_error *err, enum k8s_err_type t, int http_status, const char *fmt,
                   ...)
{
    if (!err)
        return;
    memset(err, 0, sizeof *err);
    err->type = t;
    err->http_status = http_status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

static enum k8s_err_type type_for(long status, const char *reason)
{
    switch (status) {
    case 400: return K8S_BAD_REQUEST;
    case 401: return K8S_UNAUTHORIZED;
    case 403: return K8S_FORBIDDEN;
    case 404: return K8S_NOT_FOUND;
    case 409: return reason && !strcmp(reason, "AlreadyExists") ? K8S_ALREADY_EXISTS : K8S_CONFLICT;
    case 410: return K8S_GONE;
    case 422: return K8S_INVALID;
    case 429: return K8S_TOO_MANY_REQUESTS;
    default: return status >= 500 && status <= 599 ? K8S_SERVER_ERROR : K8S_OTHER;
    }
}

int k8s_error_from_http(struct k8s_error *err, long status, const char *body, size_t len,
                        unsigned retry_after_s)
{
    _cleanup_json_ yajl_val v = NULL;
    char perr[128];
    const char *reason = NULL, *msg = NULL;
    long code = status;
    if (body && len && sbx_json_parse(body, len, MAX_BODY, MAX_DEPTH, &v, perr, sizeof perr) == 0) {
        const char *kind = sbx_json_get_str(v, "kind");
        if (!kind || !strcmp(kind, "Status")) {
            reason = sbx_json_get_str(v, "reason");
            msg = sbx_json_get_str(v, "message");
            yajl_val c = sbx_json_get(v, "code");
            if (c && YAJL_IS_INTEGER(c) && status == 0)
                code = YAJL_GET_INTEGER(c);
            yajl_val d = sbx_json_get(v, "details");
            yajl_val ra = d ? sbx_json_get(d, "retryAfterSeconds") : NULL;
            if (ra && YAJL_IS_INTEGER(ra) && !retry_after_s && YAJL_GET_INTEGER(ra) > 0)
                retry_after_s = (unsigned)MIN(YAJL_GET_INTEGER(ra), 3600);
        }
    }
    enum k8s_err_type t = type_for(code, reason);
    if (err) {
        memset(err, 0, sizeof *err);
        err->type = t;
        err->http_status = (int)code;
        err->retry_after_s = retry_after_s;
        if (reason)
            snprintf(err->reason, sizeof err->reason, "%s", reason);
        if (msg)
            snprintf(err->message, sizeof err->message, "%s", msg);
        else
            snprintf(err->message, sizeof err->message, "HTTP %ld", code);
    }
    return k8s_err_errno(t);
}

char *k8s_urlescape(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = xmalloc(n * 3 + 1), *p = o;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.' || ch == '~')
            *p++ = (char)ch;
        else {
            *p++ = '%';
            *p++ = hex[ch >> 4];
            *p++ = hex[ch & 15];
        }
    }
    *p = '\0';
    return o;
}

int k8s_write_tempfile(const void *data, size_t len, char **ret_path)
{
    const char *tmp = getenv("TMPDIR");
    char *path = xasprintf("%s/k8s-tls-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC); /* 0600 */
    if (fd < 0) {
        int r = -errno;
        free(path);
        return r;
    }
    const char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int r = n < 0 ? -errno : -EIO;
            close(fd);
            unlink(path);
            free(path);
            return r;
        }
        off += (size_t)n;
    }
    close(fd);
    *ret_path = path;
    return 0;
}

/* ---- client ------------------------------------------------------------------------------ */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access a, void *u)
{
    struct k8s_client *c = u;
    pthread_mutex_lock(&c->share_locks[(unsigned)data % ARRAY_SIZE(c->share_locks)]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *u)
{
    struct k8s_client *c = u;
    pthread_mutex_unlock(&c->share_locks[(unsigned)data % ARRAY_SIZE(c->share_locks)]);
}

int k8s_client_new(struct k8s_config *cfg, const struct k8s_client_opts *opts,
                   struct k8s_client **ret, char *err, size_t errlen)
{
    pthread_once(&curl_once, curl_init_once);
    struct k8s_client *c = xcalloc(1, sizeof *c);
    c->cfg = cfg;
    if (opts)
        c->opts = *opts;
    if (!c->opts.timeout_ms)
        c->opts.timeout_ms = 30000;
    if (!c->opts.connect_timeout_ms)
        c->opts.connect_timeout_ms = 10000;
    if (!c->opts.max_retries)
        c->opts.max_retries = 4;
    else if (c->opts.max_retries == K8S_NO_RETRIES)
        c->opts.max_retries = 0;
    if (!c->opts.backoff_ms)
        c->opts.backoff_ms = 200;
    if (!c->opts.user_agent)
        c->opts.user_agent = "sandboxd-k8s/0.1";
    for (size_t i = 0; i < ARRAY_SIZE(c->share_locks); i++)
        pthread_mutex_init(&c->share_locks[i], NULL);
    CURLSH *sh = curl_share_init();
    if (!sh) {
        snprintf(err, errlen, "curl_share_init failed");
        k8s_client_free(c);
        return -EIO;
    }
    curl_share_setopt(sh, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(sh, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(sh, CURLSHOPT_USERDATA, c);
    curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    c->share = sh;
    *ret = c;
    return 0;
}

void k8s_client_free(struct k8s_client *c)
{
    if (!c)
        return;
    if (c->share)
        curl_share_cleanup(c->share);
    for (size_t i = 0; i < ARRAY_SIZE(c->share_locks); i++)
        pthread_mutex_destroy(&c->share_locks[i]);
    k8s_config_free(c->cfg);
    free(c);
}

struct k8s_config *k8s_client_config(struct k8s_client *c)
{
    return c->cfg;
}

const char *k8s_client_namespace(struct k8s_client *c)
{
    return k8s_config_namespace(c->cfg);
}

int k8s_curl_setup(struct k8s_client *c, void *curl, struct curl_slist **headers,
                   struct k8s_error *err)
{
    struct k8s_config *cfg = c->cfg;
    CURL *h = curl;
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->opts.user_agent);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)c->opts.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    if (cfg->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    } else {
        if (cfg->ca_data) {
            struct curl_blob b = { .data = cfg->ca_data, .len = cfg->ca_len,
                                   .flags = CURL_BLOB_COPY };
            curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
        } else if (cfg->ca_file)
            curl_easy_setopt(h, CURLOPT_CAINFO, cfg->ca_file);
    }
    if (cfg->cert_data) {
        struct curl_blob b = { .data = cfg->cert_data, .len = cfg->cert_len,
                               .flags = CURL_BLOB_COPY };
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    } else if (cfg->cert_file)
        curl_easy_setopt(h, CURLOPT_SSLCERT, cfg->cert_file);
    if (cfg->key_data) {
        struct curl_blob b = { .data = cfg->key_data, .len = cfg->key_len,
                               .flags = CURL_BLOB_COPY };
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    } else if (cfg->key_file)
        curl_easy_setopt(h, CURLOPT_SSLKEY, cfg->key_file);

    struct curl_slist *hl = NULL;
    _cleanup_free_ char *tok = k8s_config_token(cfg);
    if (tok) {
        _cleanup_free_ char *a = xasprintf("Authorization: Bearer %s", tok);
        hl = curl_slist_append(hl, a);
        explicit_bzero(a, strlen(a));
        explicit_bzero(tok, strlen(tok));
    }
    hl = curl_slist_append(hl, "Accept: application/json");
    *headers = hl;
    return 0;
}

/* ---- request ----------------------------------------------------------------------------- */

struct resp {
    struct sbx_buf body;
    unsigned retry_after;
};

static size_t write_cb(char *p, size_t sz, size_t n, void *u)
{
    struct resp *r = u;
    if (sbx_buf_append(&r->body, p, sz * n) < 0)
        return 0;
    return sz * n;
}

static size_t header_cb(char *p, size_t sz, size_t n, void *u)
{
    struct resp *r = u;
    size_t len = sz * n;
    if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
        long v = strtol(p + 12, NULL, 10);
        if (v > 0)
            r->retry_after = (unsigned)MIN(v, 3600);
    }
    return len;
}

static bool idempotent(const char *method)
{
    return !strcmp(method, "GET") || !strcmp(method, "PUT") || !strcmp(method, "DELETE") ||
           !strcmp(method, "HEAD");
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int do_once(struct k8s_client *c, const char *method, const char *url,
                   const char *content_type, const char *body, size_t body_len, yajl_val *ret_obj,
                   struct k8s_error *err)
{
    CURL *h = curl_easy_init();
    if (!h) {
        k8s_error_set(err, K8S_TRANSPORT, 0, "curl_easy_init failed");
        return -EIO;
    }
    struct curl_slist *hl = NULL;
    k8s_curl_setup(c, h, &hl, err);
    if (body) {
        _cleanup_free_ char *ct = xasprintf("Content-Type: %s",
                                            content_type ? content_type : "application/json");
        hl = curl_slist_append(hl, ct);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    hl = curl_slist_append(hl, "Expect:");
    struct resp rs = { .body = SBX_BUF_INIT };
    sbx_buf_init(&rs.body, MAX_BODY);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &rs);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &rs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->opts.timeout_ms);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    int r;
    if (cc != CURLE_OK) {
        enum k8s_err_type t = cc == CURLE_OPERATION_TIMEDOUT ? K8S_TIMEOUT : K8S_TRANSPORT;
        if (cc == CURLE_WRITE_ERROR)
            t = K8S_PROTOCOL;
        k8s_error_set(err, t, 0, "%s %s: %s", method, url, curl_easy_strerror(cc));
        r = cc == CURLE_WRITE_ERROR ? -E2BIG : k8s_err_errno(t);
    } else if (status < 200 || status > 299) {
        r = k8s_error_from_http(err, status, rs.body.data, rs.body.len, rs.retry_after);
    } else {
        r = 0;
        if (ret_obj) {
            *ret_obj = NULL;
            if (rs.body.len) {
                char perr[160];
                yajl_val v = NULL;
                int pr = sbx_json_parse(rs.body.data, rs.body.len, MAX_BODY, MAX_DEPTH, &v, perr,
                                        sizeof perr);
                if (pr < 0) {
                    k8s_error_set(err, K8S_PROTOCOL, (int)status, "%s %s: %s", method, url, perr);
                    r = -EPROTO;
                } else
                    *ret_obj = v;
            }
        }
        if (r == 0 && err)
            memset(err, 0, sizeof *err);
    }
    sbx_buf_free(&rs.body);
    return r;
}

int k8s_request(struct k8s_client *c, const char *method, const char *path,
                const char *content_type, const char *body, size_t body_len, yajl_val *ret_obj,
                struct k8s_error *err)
{
    struct k8s_error local;
    if (!err)
        err = &local;
    _cleanup_free_ char *url = xasprintf("%s%s", c->cfg->server, path);
    unsigned backoff = c->opts.backoff_ms;
    bool reauth_done = false;
    for (unsigned attempt = 0;; attempt++) {
        int r = do_once(c, method, url, content_type, body, body_len, ret_obj, err);
        if (r >= 0)
            return r;
        if (err->type == K8S_UNAUTHORIZED && c->cfg->token_file && !reauth_done) {
            /* rotated token: re-read now and retry once (any verb: the request was refused) */
            reauth_done = true;
            k8s_config_token_invalidate(c->cfg);
            continue;
        }
        bool retryable = err->type == K8S_TOO_MANY_REQUESTS || err->type == K8S_TRANSPORT ||
                         (err->type == K8S_SERVER_ERROR && err->http_status != 501) ||
                         (err->type == K8S_TIMEOUT);
        /* 429 means the request was not processed: retrying is safe for any verb */
        if (!retryable || attempt >= c->opts.max_retries ||
            (!idempotent(method) && err->type != K8S_TOO_MANY_REQUESTS))
            return r;
        unsigned wait = backoff + (unsigned)(rand() % (int)(backoff / 2 + 1));
        if (err->retry_after_s)
            wait = MAX(wait, MIN(err->retry_after_s, 30u) * 1000u);
        sleep_ms(wait);
        backoff = MIN(backoff * 2, 5000u);
    }
}

/* ---- typed helpers ---------------------------------------------------------------------- */

static const struct {
    const char *prefix; /* "/api/v1" */
    const char *plural;
    bool namespaced;
} kinds[] = {
    [K8S_KIND_POD] = { "/api/v1", "pods", true },
    [K8S_KIND_LEASE] = { "/apis/coordination.k8s.io/v1", "leases", true },
    [K8S_KIND_NETWORKPOLICY] = { "/apis/networking.k8s.io/v1", "networkpolicies", true },
    [K8S_KIND_NAMESPACE] = { "/api/v1", "namespaces", false },
};

char *k8s_path(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name)
{
    if ((unsigned)kind >= _K8S_KIND_MAX)
        kind = K8S_KIND_POD;
    _cleanup_free_ char *n = name ? k8s_urlescape(name) : NULL;
    _cleanup_free_ char *base = NULL;
    if (kinds[kind].namespaced) {
        _cleanup_free_ char *e = k8s_urlescape(ns && *ns ? ns : k8s_client_namespace(c));
        base = xasprintf("%s/namespaces/%s/%s", kinds[kind].prefix, e, kinds[kind].plural);
    } else
        base = xasprintf("%s/%s", kinds[kind].prefix, kinds[kind].plural);
    return n ? xasprintf("%s/%s", base, n) : TAKE_PTR(base);
}

int k8s_create(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *json,
               yajl_val *ret, struct k8s_error *err)
{
    _cleanup_free_ char *p = k8s_path(c, kind, ns, NULL);
    return k8s_request(c, "POST", p, NULL, json, strlen(json), ret, err);
}

int k8s_get(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
            yajl_val *ret, struct k8s_error *err)
{
    _cleanup_free_ char *p = k8s_path(c, kind, ns, name);
    return k8s_request(c, "GET", p, NULL, NULL, 0, ret, err);
}

int k8s_update(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
               const char *json, yajl_val *ret, struct k8s_error *err)
{
    _cleanup_free_ char *p = k8s_path(c, kind, ns, name);
    return k8s_request(c, "PUT", p, NULL, json, strlen(json), ret, err);
}

int k8s_patch_merge(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
                    const char *json, yajl_val *ret, struct k8s_error *err)
{
    _cleanup_free_ char *p = k8s_path(c, kind, ns, name);
    return k8s_request(c, "PATCH", p, "application/merge-patch+json", json, strlen(json), ret,
                       err);
}

int k8s_delete(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
               const struct k8s_delete_opts *opts, struct k8s_error *err)
{
    _cleanup_free_ char *p = k8s_path(c, kind, ns, name);
    _cleanup_buf_ struct sbx_buf b = SBX_BUF_INIT;
    if (opts && (opts->grace_period_s >= 0 || opts->precondition_uid || opts->precondition_rv)) {
        int r = sbx_buf_puts(&b, "{\"kind\":\"DeleteOptions\",\"apiVersion\":\"v1\"");
        if (r == 0 && opts->grace_period_s >= 0)
            r = sbx_buf_printf(&b, ",\"gracePeriodSeconds\":%d", opts->grace_period_s);
        if (r == 0 && (opts->precondition_uid || opts->precondition_rv)) {
            r = sbx_buf_puts(&b, ",\"preconditions\":{");
            if (r == 0 && opts->precondition_uid) {
                r = sbx_buf_puts(&b, "\"uid\":");
                if (r == 0)
                    r = sbx_buf_json_str(&b, opts->precondition_uid,
                                         strlen(opts->precondition_uid));
            }
            if (r == 0 && opts->precondition_rv) {
                r = sbx_buf_puts(&b, opts->precondition_uid ? ",\"resourceVersion\":"
                                                            : "\"resourceVersion\":");
                if (r == 0)
                    r = sbx_buf_json_str(&b, opts->precondition_rv, strlen(opts->precondition_rv));
            }
            if (r == 0)
                r = sbx_buf_puts(&b, "}");
        }
        if (r == 0)
            r = sbx_buf_puts(&b, "}");
        if (r < 0)
            return r;
    }
    return k8s_request(c, "DELETE", p, NULL, b.len ? b.data : NULL, b.len, NULL, err);
}

int k8s_list(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *label_selector,
             const char *field_selector, yajl_val *ret, struct k8s_error *err)
{
    _cleanup_free_ char *p = k8s_path(c, kind, ns, NULL);
    _cleanup_free_ char *ls = label_selector ? k8s_urlescape(label_selector) : NULL;
    _cleanup_free_ char *fs = field_selector ? k8s_urlescape(field_selector) : NULL;
    _cleanup_free_ char *full = xasprintf("%s?%s%s%s%s", p, ls ? "labelSelector=" : "",
                                          ls ? ls : "", fs ? (ls ? "&fieldSelector=" : "fieldSelector=") : "",
                                          fs ? fs : "");
    size_t n = strlen(full);
    if (full[n - 1] == '?')
        full[n - 1] = '\0';
    return k8s_request(c, "GET", full, NULL, NULL, 0, ret, err);
}

/* ---- object accessors ------------------------------------------------------------------- */

const char *k8s_obj_str(yajl_val obj, ...)
{
    va_list ap;
    va_start(ap, obj);
    yajl_val v = obj;
    const char *k;
    while ((k = va_arg(ap, const char *)) && v)
        v = sbx_json_get(v, k);
    va_end(ap);
    return v && YAJL_IS_STRING(v) ? YAJL_GET_STRING(v) : NULL;
}

const char *k8s_obj_name(yajl_val obj)
{
    return k8s_obj_str(obj, "metadata", "name", NULL);
}

const char *k8s_obj_uid(yajl_val obj)
{
    return k8s_obj_str(obj, "metadata", "uid", NULL);
}

const char *k8s_obj_resource_version(yajl_val obj)
{
    return k8s_obj_str(obj, "metadata", "resourceVersion", NULL);
}

const char *k8s_obj_label(yajl_val obj, const char *key)
{
    yajl_val l = sbx_json_get(sbx_json_get(obj, "metadata"), "labels");
    return l ? sbx_json_get_str(l, key) : NULL;
}

yajl_val k8s_list_items(yajl_val list)
{
    yajl_val v = sbx_json_get(list, "items");
    return v && YAJL_IS_ARRAY(v) ? v : NULL;
}
