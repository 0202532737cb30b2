/*
 * k8s-watch.c — streamed watches: list (RESYNC) → watch from the list's resourceVersion, one
 * JSON event per line (bounded), resume from the last RV seen (events and BOOKMARKs), re-list on
 * 410 Gone, retry with backoff on other failures. Cancellation through curl's xferinfo callback.
 */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/macro.h"
#include "k8s/k8s-internal.h"

static const char *const wtype_names[] = {
    [K8S_WATCH_ADDED] = "ADDED",   [K8S_WATCH_MODIFIED] = "MODIFIED",
    [K8S_WATCH_DELETED] = "DELETED", [K8S_WATCH_BOOKMARK] = "BOOKMARK",
    [K8S_WATCH_RESYNC] = "RESYNC", [K8S_WATCH_ERROR] = "ERROR",
};

const char *k8s_watch_type_name(enum k8s_watch_type t)
{
    return (unsigned)t < ARRAY_SIZE(wtype_names) ? wtype_names[t] : "UNKNOWN";
}

int k8s_watch_parse_line(const char *line, size_t len, struct k8s_watch_event *ev,
                         yajl_val *ret_tree, char *err, size_t errlen)
{
    yajl_val v = NULL;
    int r = sbx_json_parse(line, len, 64u << 20, 64, &v, err, errlen);
    if (r < 0)
        return r;
    const char *t = sbx_json_get_str(v, "type");
    yajl_val obj = sbx_json_get(v, "object");
    if (!t || !obj || !YAJL_IS_OBJECT(obj)) {
        yajl_tree_free(v);
        snprintf(err, errlen, "watch event without type or object");
        return -EINVAL;
    }
    enum k8s_watch_type wt;
    if (!strcmp(t, "ADDED"))
        wt = K8S_WATCH_ADDED;
    else if (!strcmp(t, "MODIFIED"))
        wt = K8S_WATCH_MODIFIED;
    else if (!strcmp(t, "DELETED"))
        wt = K8S_WATCH_DELETED;
    else if (!strcmp(t, "BOOKMARK"))
        wt = K8S_WATCH_BOOKMARK;
    else if (!strcmp(t, "ERROR"))
        wt = K8S_WATCH_ERROR;
    else {
        snprintf(err, errlen, "unknown watch event type \"%.40s\"", t);
        yajl_tree_free(v);
        return -EINVAL;
    }
    memset(ev, 0, sizeof *ev);
    ev->type = wt;
    ev->object = obj;
    ev->resource_version = k8s_obj_resource_version(obj);
    *ret_tree = v;
    return 0;
}

/* ---- the loop ----------------------------------------------------------------------------- */

struct wstate {
    struct k8s_client *c;
    struct k8s_watch_opts o;
    k8s_watch_cb cb;
    void *ud;
    const volatile int *stop;
    atomic_int *astop;
    char *rv;                 /* last resourceVersion seen */
    struct sbx_buf line;
    int cb_ret;               /* non-zero: the callback asked to end */
    bool gone;                /* an ERROR 410 arrived in the stream */
    bool overflow;
    unsigned events;          /* events in the current request */
    CURL *h;                  /* the request in flight */
    struct sbx_buf *errbody;  /* a non-2xx answer's body */
};

static bool stopped(struct wstate *s)
{
    return (s->stop && *s->stop) || (s->astop && atomic_load(s->astop)) || s->cb_ret;
}

static void set_rv(struct wstate *s, const char *rv)
{
    if (!rv || !*rv)
        return;
    free(s->rv);
    s->rv = xstrdup(rv);
}

static void handle_line(struct wstate *s, const char *line, size_t len)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    if (!len || s->cb_ret)
        return;
    struct k8s_watch_event ev;
    _cleanup_json_ yajl_val tree = NULL;
    char perr[160];
    if (k8s_watch_parse_line(line, len, &ev, &tree, perr, sizeof perr) < 0)
        return; /* a malformed line is skipped; the RV does not move */
    s->events++;
    if (ev.type == K8S_WATCH_ERROR) {
        struct k8s_error e;
        yajl_val code = sbx_json_get(ev.object, "code");
        long st = code && YAJL_IS_INTEGER(code) ? YAJL_GET_INTEGER(code) : 500;
        k8s_error_from_http(&e, st, line, 0, 0);
        const char *msg = sbx_json_get_str(ev.object, "message");
        const char *reason = sbx_json_get_str(ev.object, "reason");
        snprintf(e.message, sizeof e.message, "%s", msg ? msg : "watch error");
        snprintf(e.reason, sizeof e.reason, "%s", reason ? reason : "");
        if (st == 410) {
            s->gone = true;
            return;
        }
        ev.err = &e;
        s->cb_ret = s->cb(&ev, s->ud);
        return;
    }
    set_rv(s, ev.resource_version);
    s->cb_ret = s->cb(&ev, s->ud);
}

static size_t wwrite(char *p, size_t sz, size_t n, void *u)
{
    struct wstate *s = u;
    size_t len = sz * n, off = 0;
    long st = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &st);
    if (st < 200 || st > 299) {
        (void)!sbx_buf_append(s->errbody, p, len); /* capped; the rest is dropped */
        return len;
    }
    while (off < len) {
        char *nl = memchr(p + off, '\n', len - off);
        size_t chunk = nl ? (size_t)(nl - (p + off)) : len - off;
        if (!s->overflow && sbx_buf_append(&s->line, p + off, chunk) < 0)
            s->overflow = true;
        off += chunk;
        if (nl) {
            off++;
            if (s->overflow)
                return 0; /* an oversized event: end this request (re-watch from the last RV) */
            handle_line(s, s->line.data, s->line.len);
            sbx_buf_reset(&s->line);
            if (s->cb_ret || s->gone)
                return 0;
        }
    }
    return len;
}

static int wprogress(void *u, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    return stopped(u) ? 1 : 0;
}

static void sleep_ms_stoppable(struct wstate *s, unsigned ms)
{
    while (ms && !stopped(s)) {
        unsigned step = MIN(ms, 50u);
        struct timespec ts = { 0, (long)step * 1000000L };
        nanosleep(&ts, NULL);
        ms -= step;
    }
}

/* One watch request from s->rv. Returns 0 when the stream ended normally (timeout), -ESTALE on
 * 410, other -errno on failure (err filled). */
static int watch_once(struct wstate *s, struct k8s_error *err)
{
    _cleanup_free_ char *p = k8s_path(s->c, s->o.kind, s->o.ns, NULL);
    _cleanup_buf_ struct sbx_buf q = SBX_BUF_INIT;
    int r = sbx_buf_printf(&q, "%s%s?watch=true&allowWatchBookmarks=true&timeoutSeconds=%u", s->c->cfg->server, p,
                           s->o.timeout_s ? s->o.timeout_s : 300);
    if (r == 0 && s->rv) {
        _cleanup_free_ char *e = k8s_urlescape(s->rv);
        r = sbx_buf_printf(&q, "&resourceVersion=%s", e);
    }
    if (r == 0 && s->o.label_selector) {
        _cleanup_free_ char *e = k8s_urlescape(s->o.label_selector);
        r = sbx_buf_printf(&q, "&labelSelector=%s", e);
    }
    if (r == 0 && s->o.field_selector) {
        _cleanup_free_ char *e = k8s_urlescape(s->o.field_selector);
        r = sbx_buf_printf(&q, "&fieldSelector=%s", e);
    }
    if (r < 0)
        return r;
    CURL *h = curl_easy_init();
    if (!h)
        return -EIO;
    struct curl_slist *hl = NULL;
    k8s_curl_setup(s->c, h, &hl, err);
    struct sbx_buf errbody = SBX_BUF_INIT;
    sbx_buf_init(&errbody, 1 << 16);
    sbx_buf_reset(&s->line);
    s->gone = s->overflow = false;
    s->events = 0;
    s->h = h;
    s->errbody = &errbody;
    curl_easy_setopt(h, CURLOPT_URL, q.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, wwrite);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, wprogress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, s);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 0L);
    /* the server ends the stream after timeoutSeconds; allow a margin, and detect a dead peer */
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     (long)((s->o.timeout_s ? s->o.timeout_s : 300) + 30) * 1000L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)(s->o.timeout_s ? s->o.timeout_s : 300) + 30);
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    s->h = NULL;
    s->errbody = NULL;
    if (s->gone) {
        sbx_buf_free(&errbody);
        return -ESTALE;
    }
    if (status && (status < 200 || status > 299)) {
        r = k8s_error_from_http(err, status, errbody.data, errbody.len, 0);
        sbx_buf_free(&errbody);
        return status == 410 ? -ESTALE : r;
    }
    sbx_buf_free(&errbody);
    if (s->cb_ret || stopped(s))
        return 0;
    if (cc == CURLE_OK || (cc == CURLE_WRITE_ERROR && s->overflow))
        return 0;
    k8s_error_set(err, cc == CURLE_OPERATION_TIMEDOUT ? K8S_TIMEOUT : K8S_TRANSPORT, 0,
                  "watch: %s", curl_easy_strerror(cc));
    return -ECONNRESET;
}

static int relist(struct wstate *s, struct k8s_error *err)
{
    _cleanup_json_ yajl_val list = NULL;
    int r = k8s_list(s->c, s->o.kind, s->o.ns, s->o.label_selector, s->o.field_selector, &list,
                     err);
    if (r < 0)
        return r;
    const char *rv = k8s_obj_resource_version(list);
    if (!rv || !*rv) {
        k8s_error_set(err, K8S_PROTOCOL, 200, "list without metadata.resourceVersion");
        return -EPROTO;
    }
    set_rv(s, rv);
    struct k8s_watch_event ev = { .type = K8S_WATCH_RESYNC, .object = list,
                                  .resource_version = rv };
    s->cb_ret = s->cb(&ev, s->ud);
    return 0;
}

static bool fatal(const struct k8s_error *e)
{
    return e->type == K8S_UNAUTHORIZED || e->type == K8S_FORBIDDEN ||
           e->type == K8S_NOT_FOUND || e->type == K8S_BAD_REQUEST || e->type == K8S_INVALID;
}

static int run_loop(struct wstate *s)
{
    unsigned backoff = 100;
    bool need_list = !s->rv;
    sbx_buf_init(&s->line, s->o.max_event_bytes ? s->o.max_event_bytes : (16u << 20));
    int ret = 0;
    while (!stopped(s)) {
        struct k8s_error e = { 0 };
        int r;
        if (need_list) {
            r = relist(s, &e);
            if (r == 0)
                need_list = false;
        } else {
            r = watch_once(s, &e);
            if (r == -ESTALE) {
                need_list = true;
                continue;
            }
        }
        if (s->cb_ret) {
            ret = s->cb_ret;
            break;
        }
        if (r == 0) {
            if (s->events)
                backoff = 100;
            else
                sleep_ms_stoppable(s, 20); /* an empty stream: do not spin */
            continue;
        }
        if (r == -ECONNRESET && s->events) {
            backoff = 100; /* a stream that carried events was dropped: resume at once */
            continue;
        }
        if (e.type != K8S_OK && e.type != K8S_TRANSPORT && e.type != K8S_TIMEOUT) {
            struct k8s_watch_event ev = { .type = K8S_WATCH_ERROR, .err = &e };
            s->cb_ret = s->cb(&ev, s->ud);
            if (s->cb_ret) {
                ret = s->cb_ret;
                break;
            }
        }
        if (fatal(&e)) {
            ret = r < 0 ? r : -EIO;
            break;
        }
        unsigned wait = backoff;
        if (e.retry_after_s)
            wait = MAX(wait, MIN(e.retry_after_s, 30u) * 1000u);
        sleep_ms_stoppable(s, wait);
        backoff = MIN(backoff * 2, 10000u);
    }
    sbx_buf_free(&s->line);
    return ret;
}

int k8s_watch_run(struct k8s_client *c, const struct k8s_watch_opts *o, k8s_watch_cb cb,
                  void *userdata, const volatile int *stop)
{
    struct wstate s = { .c = c, .o = *o, .cb = cb, .ud = userdata, .stop = stop };
    if (o->resource_version && *o->resource_version)
        s.rv = xstrdup(o->resource_version);
    int r = run_loop(&s);
    free(s.rv);
    return r;
}

struct k8s_watch {
    struct wstate s;
    pthread_t thread;
    atomic_int stop;
    atomic_bool done;
    char *ns, *ls, *fs;
};

static void *watch_thread(void *u)
{
    struct k8s_watch *w = u;
    run_loop(&w->s);
    atomic_store(&w->done, true);
    return NULL;
}

int k8s_watch_start(struct k8s_client *c, const struct k8s_watch_opts *o, k8s_watch_cb cb,
                    void *userdata, struct k8s_watch **ret)
{
    struct k8s_watch *w = xcalloc(1, sizeof *w);
    w->s.c = c;
    w->s.o = *o;
    w->s.cb = cb;
    w->s.ud = userdata;
    w->s.astop = &w->stop;
    /* own copies of the strings: the caller's may go away */
    w->ns = o->ns ? xstrdup(o->ns) : NULL;
    w->ls = o->label_selector ? xstrdup(o->label_selector) : NULL;
    w->fs = o->field_selector ? xstrdup(o->field_selector) : NULL;
    w->s.o.ns = w->ns;
    w->s.o.label_selector = w->ls;
    w->s.o.field_selector = w->fs;
    w->s.o.resource_version = NULL;
    if (o->resource_version && *o->resource_version)
        w->s.rv = xstrdup(o->resource_version);
    int r = pthread_create(&w->thread, NULL, watch_thread, w);
    if (r) {
        free(w->s.rv);
        free(w->ns);
        free(w->ls);
        free(w->fs);
        free(w);
        return -r;
    }
    *ret = w;
    return 0;
}

bool k8s_watch_done(struct k8s_watch *w)
{
    return atomic_load(&w->done);
}

void k8s_watch_stop(struct k8s_watch *w)
{
    if (!w)
        return;
    atomic_store(&w->stop, 1);
    pthread_join(w->thread, NULL);
    free(w->s.rv);
    free(w->ns);
    free(w->ls);
    free(w->fs);
    free(w);
}
