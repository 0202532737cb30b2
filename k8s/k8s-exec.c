/*
 * k8s-exec.c — pods/exec over the Kubernetes WebSocket protocol (libwebsockets client).
 *
 * Each exec has its own lws context (TLS: our own client SSL_CTX built from the client's config,
 * see client_ssl_ctx() — lws 4.1.6 leaks the one it creates when contexts overlap) and two
 * threads:
 *   service thread: lws_service(); handshake (Authorization header, subprotocol read in
 *                   FILTER_PRE_ESTABLISH), receive (channel byte only on the first fragment of
 *                   a message: reassembly by lws_is_final_fragment), send (one message per
 *                   WRITEABLE: resize on channel 4, stdin on channel 0 in ≤ 32 KiB messages,
 *                   then [255, 0] on v5 once stdin reached EOF).
 *   pump thread:    moves bytes between the caller's socketpairs and the queues (blocking
 *                   poll); wakes the service thread with lws_cancel_service().
 * Backpressure: stdin is read only while < 256 KiB are queued for the socket; rx flow control
 * pauses the socket while > 1 MiB of output waits for the caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/macro.h"
#include "common/timeutil.h"
#include "k8s/k8s-internal.h"

#define MSG_MAX (32u * 1024u)
#define IN_HIGH (256u * 1024u)
#define OUT_HIGH (1u << 20)
#define OUT_LOW (256u * 1024u)
#define STATUS_MAX (64u * 1024u)
/* The upgrade request carries argv in its query. lws 4.1.6 formats the request line into 2048
 * bytes and silently truncates a longer one (the server then sees a broken request): a longer
 * path is refused here instead (measured: 2032 bytes still pass). */
#define PATH_MAX_BYTES 2000u

struct xq {
    uint8_t *data;
    size_t off, len, cap; /* valid bytes: data[off .. off+len) */
};

static void xq_push(struct xq *q, const void *p, size_t n)
{
    if (!n)
        return;
    if (q->off && q->off + q->len + n > q->cap) {
        memmove(q->data, q->data + q->off, q->len);
        q->off = 0;
    }
    if (q->off + q->len + n > q->cap) {
        q->cap = MAX(q->cap * 2, q->len + n + 4096);
        q->data = xrealloc(q->data, q->cap);
    }
    memcpy(q->data + q->off + q->len, p, n);
    q->len += n;
}

static void xq_pop(struct xq *q, size_t n)
{
    q->off += n;
    q->len -= n;
    if (!q->len)
        q->off = 0;
}

enum xstate { XS_CONNECTING, XS_ESTABLISHED, XS_CLOSED };

struct xpriv {
    struct k8s_exec pub;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    struct lws_context *ctx;
    SSL_CTX *ssl_ctx;                  /* ours, handed to lws as provided_client_ssl_ctx */
    struct lws *wsi;
    pthread_t svc, pump;
    bool svc_started, pump_started;
    int wake_fd;                       /* eventfd: wakes the pump */
    int in_fd, out_fd, err_fd, ctl_w;  /* our ends */

    /* under mu */
    enum xstate state;
    bool established;                  /* the handshake completed (even if closed since) */
    int proto;                         /* 5 or 4 */
    struct xq to_ws;                   /* stdin bytes for the socket */
    bool stdin_eof, stdin_eof_sent;
    struct xq outq, errq;
    bool out_dead, err_dead;           /* the caller closed its read end: discard */
    bool rx_paused, rx_resume;
    char resize[64];
    bool resize_pending;
    struct sbx_buf status;
    bool status_overflow;
    int cur_chan;                      /* channel of the message being received, -1 none */
    bool in_msg;
    int close_code;
    bool failed;                       /* handshake/transport failure */
    struct k8s_error ferr;
    bool timed_out;
    bool finished;                     /* socket closed, no more output will arrive */
    bool done;                         /* output flushed, ctl signalled */
    bool stop;                         /* k8s_exec_free */

    uint64_t deadline_ms;              /* 0 = none */
    void (*on_finish)(struct k8s_exec *e, void *userdata);
    void *finish_ud;
    char *auth;                        /* "Bearer …" */
    char *path, *host, *address;
    int port;
    bool tls, insecure;
    char *ca_tmp, *cert_tmp, *key_tmp;
    uint8_t sendbuf[LWS_PRE + MSG_MAX + 1];
};

static void wake_pump(struct xpriv *x)
{
    uint64_t one = 1;
    (void)!write(x->wake_fd, &one, sizeof one);
}

/* ---- service thread (lws callbacks) ----------------------------------------------------- */

static void route(struct xpriv *x, const uint8_t *p, size_t n)
{
    switch (x->cur_chan) {
    case 1:
        if (!x->out_dead)
            xq_push(&x->outq, p, n);
        break;
    case 2:
        if (!x->err_dead)
            xq_push(&x->errq, p, n);
        break;
    case 3:
        if (sbx_buf_append(&x->status, p, n) < 0)
            x->status_overflow = true;
        break;
    default:
        break; /* unknown channels are ignored, as the real server does */
    }
}

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct xpriv *x = lws_get_opaque_user_data(wsi);
    if (reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED) {
        /* no opaque data on the vhost's pseudo-wsi: find the exec through the context */
        x = lws_context_user(lws_get_context(wsi));
        if (!x)
            return 0;
        pthread_mutex_lock(&x->mu);
        if (x->wsi && x->state == XS_ESTABLISHED) {
            if (x->to_ws.len || (x->stdin_eof && !x->stdin_eof_sent) || x->resize_pending)
                lws_callback_on_writable(x->wsi);
            if (x->rx_resume) {
                x->rx_resume = false;
                x->rx_paused = false;
                lws_rx_flow_control(x->wsi, 1);
            }
        }
        pthread_mutex_unlock(&x->mu);
        return 0;
    }
    if (!x)
        return 0;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        unsigned char **p = in, *end = *p + len;
        if (x->auth &&
            lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
                                         (const unsigned char *)x->auth, (int)strlen(x->auth), p,
                                         end))
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_FILTER_PRE_ESTABLISH: {
        char proto[64] = "";
        lws_hdr_copy(wsi, proto, sizeof proto, WSI_TOKEN_PROTOCOL);
        pthread_mutex_lock(&x->mu);
        if (!strcmp(proto, "v5.channel.k8s.io"))
            x->proto = 5;
        else if (!strcmp(proto, "v4.channel.k8s.io"))
            x->proto = 4;
        else {
            x->failed = true;
            k8s_error_set(&x->ferr, K8S_PROTOCOL, 101, "exec: server chose subprotocol \"%s\"",
                          proto);
        }
        pthread_mutex_unlock(&x->mu);
        return x->proto ? 0 : -1;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        pthread_mutex_lock(&x->mu);
        x->state = XS_ESTABLISHED;
        x->established = true;
        if (x->resize_pending || x->to_ws.len || x->stdin_eof)
            lws_callback_on_writable(wsi);
        pthread_cond_broadcast(&x->cond);
        pthread_mutex_unlock(&x->mu);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
        unsigned st = lws_http_client_http_response(wsi);
        pthread_mutex_lock(&x->mu);
        if (!x->failed) {
            x->failed = true;
            if (st >= 400)
                k8s_error_from_http(&x->ferr, st, NULL, 0, 0);
            else
                k8s_error_set(&x->ferr, K8S_TRANSPORT, (int)st, "exec: %s",
                              in ? (const char *)in : "connection failed");
            if (st >= 400 && in)
                snprintf(x->ferr.message, sizeof x->ferr.message, "exec handshake: HTTP %u (%s)",
                         st, (const char *)in);
        }
        x->state = XS_CLOSED;
        x->finished = true;
        x->wsi = NULL;
        pthread_cond_broadcast(&x->cond);
        pthread_mutex_unlock(&x->mu);
        wake_pump(x);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        const uint8_t *p = in;
        pthread_mutex_lock(&x->mu);
        if (!x->in_msg) {
            x->cur_chan = len ? p[0] : -1;
            if (len) {
                p++;
                len--;
            }
            x->in_msg = true;
        }
        route(x, p, len);
        if (lws_is_final_fragment(wsi))
            x->in_msg = false;
        if (!x->rx_paused && x->outq.len + x->errq.len > OUT_HIGH) {
            x->rx_paused = true;
            lws_rx_flow_control(wsi, 0);
        }
        pthread_mutex_unlock(&x->mu);
        wake_pump(x);
        return 0;
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        uint8_t *b = x->sendbuf + LWS_PRE;
        size_t n = 0;
        bool more = false, wake = false;
        pthread_mutex_lock(&x->mu);
        if (x->resize_pending) {
            b[0] = 4;
            n = strlen(x->resize);
            memcpy(b + 1, x->resize, n);
            n++;
            x->resize_pending = false;
        } else if (x->to_ws.len) {
            size_t k = MIN(x->to_ws.len, (size_t)MSG_MAX);
            b[0] = 0;
            memcpy(b + 1, x->to_ws.data + x->to_ws.off, k);
            xq_pop(&x->to_ws, k);
            n = k + 1;
            wake = x->to_ws.len < IN_HIGH;
        } else if (x->stdin_eof && !x->stdin_eof_sent) {
            x->stdin_eof_sent = true;
            if (x->proto == 5) {
                b[0] = 255;
                b[1] = 0;
                n = 2;
            }
        }
        more = x->resize_pending || x->to_ws.len || (x->stdin_eof && !x->stdin_eof_sent);
        pthread_mutex_unlock(&x->mu);
        if (n && lws_write(wsi, b, n, LWS_WRITE_BINARY) < (int)n)
            return -1;
        if (more)
            lws_callback_on_writable(wsi);
        if (wake)
            wake_pump(x);
        return 0;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (len >= 2) {
            const uint8_t *p = in;
            pthread_mutex_lock(&x->mu);
            x->close_code = (p[0] << 8) | p[1];
            pthread_mutex_unlock(&x->mu);
        }
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        pthread_mutex_lock(&x->mu);
        x->state = XS_CLOSED;
        x->finished = true;
        x->wsi = NULL;
        pthread_cond_broadcast(&x->cond);
        pthread_mutex_unlock(&x->mu);
        wake_pump(x);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    { "k8s-exec", cb, 0, MSG_MAX + 1, 0, NULL, 0 },
    { NULL, NULL, 0, 0, 0, NULL, 0 },
};

static void *svc_main(void *u)
{
    struct xpriv *x = u;
    for (;;) {
        pthread_mutex_lock(&x->mu);
        bool end = x->stop || x->finished || x->timed_out;
        if (!end && x->deadline_ms && sbx_now_ms() >= x->deadline_ms) {
            x->timed_out = true;
            end = true;
        }
        pthread_mutex_unlock(&x->mu);
        if (end)
            break;
        lws_service(x->ctx, 100);
    }
    pthread_mutex_lock(&x->mu);
    x->finished = true;
    pthread_cond_broadcast(&x->cond);
    pthread_mutex_unlock(&x->mu);
    wake_pump(x);
    return NULL;
}

/* ---- pump thread ------------------------------------------------------------------------- */

/* Write from q to fd; returns false if the fd is dead (caller closed it). Called under mu. */
static bool flush_q(int fd, struct xq *q)
{
    while (q->len) {
        ssize_t n = send(fd, q->data + q->off, q->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            xq_pop(q, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return true;
        q->len = q->off = 0;
        return false;
    }
    return true;
}

static void *pump_main(void *u)
{
    struct xpriv *x = u;
    static __thread uint8_t buf[65536];
    for (;;) {
        pthread_mutex_lock(&x->mu);
        bool stop = x->stop;
        bool finished = x->finished;
        bool want_in = x->in_fd >= 0 && !finished && x->to_ws.len < IN_HIGH;
        bool out_p = x->outq.len > 0 && x->out_fd >= 0;
        bool err_p = x->errq.len > 0 && x->err_fd >= 0;
        pthread_mutex_unlock(&x->mu);
        if (stop)
            break;
        if (finished && !out_p && !err_p) {
            pthread_mutex_lock(&x->mu);
            if (x->out_fd >= 0) {
                shutdown(x->out_fd, SHUT_WR); /* EOF for the caller even while in_fd (tty) lives */
                close(x->out_fd);
            }
            if (x->err_fd >= 0)
                close(x->err_fd);
            x->out_fd = x->err_fd = -1;
            x->done = true;
            pthread_mutex_unlock(&x->mu);
            if (x->on_finish)
                x->on_finish(&x->pub, x->finish_ud);
            char c = 1;
            (void)!write(x->ctl_w, &c, 1);
            break;
        }
        struct pollfd p[4] = {
            { .fd = x->wake_fd, .events = POLLIN },
            { .fd = want_in ? x->in_fd : -1, .events = POLLIN },
            { .fd = out_p ? x->out_fd : -1, .events = POLLOUT },
            { .fd = err_p ? x->err_fd : -1, .events = POLLOUT },
        };
        int tmo = 1000;
        if (x->deadline_ms && !finished) {
            uint64_t now = sbx_now_ms();
            if (now >= x->deadline_ms) {
                /* lws_service() may sleep until network activity: wake it to end the exec */
                pthread_mutex_lock(&x->mu);
                x->timed_out = true;
                pthread_mutex_unlock(&x->mu);
                lws_cancel_service(x->ctx);
                tmo = 50;
            } else
                tmo = (int)MIN(x->deadline_ms - now, (uint64_t)1000);
        }
        if (poll(p, 4, tmo) < 0 && errno != EINTR)
            break;
        if (p[0].revents) {
            uint64_t v;
            (void)!read(x->wake_fd, &v, sizeof v);
        }
        bool kick = false;
        if (p[1].revents) {
            ssize_t n = read(x->in_fd, buf, sizeof buf);
            if (n > 0) {
                pthread_mutex_lock(&x->mu);
                xq_push(&x->to_ws, buf, (size_t)n);
                pthread_mutex_unlock(&x->mu);
                kick = true;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                pthread_mutex_lock(&x->mu);
                close(x->in_fd);
                x->in_fd = -1;
                x->stdin_eof = true;
                pthread_mutex_unlock(&x->mu);
                kick = true;
            }
        }
        if (p[2].revents || p[3].revents) {
            pthread_mutex_lock(&x->mu);
            if (p[2].revents && !flush_q(x->out_fd, &x->outq))
                x->out_dead = true;
            if (p[3].revents && !flush_q(x->err_fd, &x->errq))
                x->err_dead = true;
            if (x->rx_paused && x->outq.len + x->errq.len < OUT_LOW) {
                x->rx_resume = true;
                kick = true;
            }
            pthread_mutex_unlock(&x->mu);
        }
        if (kick)
            lws_cancel_service(x->ctx);
    }
    return NULL;
}

/* ---- API ------------------------------------------------------------------------------------ */

static int parse_server(struct xpriv *x, const char *server, struct k8s_error *err)
{
    const char *p;
    if (!strncmp(server, "https://", 8)) {
        x->tls = true;
        p = server + 8;
    } else if (!strncmp(server, "http://", 7))
        p = server + 7;
    else {
        k8s_error_set(err, K8S_PROTOCOL, 0, "exec: unsupported server URL");
        return -EINVAL;
    }
    const char *slash = strchr(p, '/');
    size_t hl = slash ? (size_t)(slash - p) : strlen(p);
    _cleanup_free_ char *hostport = xstrndup(p, hl);
    char *port = NULL;
    if (hostport[0] == '[') {
        char *rb = strchr(hostport, ']');
        if (!rb) {
            k8s_error_set(err, K8S_PROTOCOL, 0, "exec: bad IPv6 server address");
            return -EINVAL;
        }
        *rb = '\0';
        x->address = xstrdup(hostport + 1);
        port = rb[1] == ':' ? rb + 2 : NULL;
    } else {
        char *colon = strrchr(hostport, ':');
        if (colon) {
            *colon = '\0';
            port = colon + 1;
        }
        x->address = xstrdup(hostport);
    }
    x->port = port ? atoi(port) : (x->tls ? 443 : 80);
    x->host = xstrndup(p, hl);
    x->path = slash ? xstrdup(slash) : xstrdup("");
    size_t n = strlen(x->path);
    while (n && x->path[n - 1] == '/')
        x->path[--n] = '\0';
    return 0;
}

static void xpriv_free(struct xpriv *x)
{
    if (x->ctx)
        lws_context_destroy(x->ctx);
    if (x->ssl_ctx)
        SSL_CTX_free(x->ssl_ctx); /* after the context: its connection's SSL held a reference */
    int fds[] = { x->pub.stdin_fd, x->pub.stdout_fd, x->pub.stderr_fd, x->pub.tty_fd,
                  x->pub.ctl_fd,   x->in_fd,         x->out_fd,        x->err_fd,
                  x->ctl_w,        x->wake_fd };
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (x->ca_tmp)
        unlink(x->ca_tmp);
    if (x->cert_tmp)
        unlink(x->cert_tmp);
    if (x->key_tmp)
        unlink(x->key_tmp);
    free(x->ca_tmp);
    free(x->cert_tmp);
    free(x->key_tmp);
    free(x->to_ws.data);
    free(x->outq.data);
    free(x->errq.data);
    sbx_buf_free(&x->status);
    if (x->auth)
        explicit_bzero(x->auth, strlen(x->auth));
    free(x->auth);
    free(x->path);
    free(x->host);
    free(x->address);
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->cond);
    free(x);
}

void k8s_exec_free(struct k8s_exec *e)
{
    if (!e)
        return;
    struct xpriv *x = e->priv;
    pthread_mutex_lock(&x->mu);
    x->stop = true;
    pthread_mutex_unlock(&x->mu);
    if (x->ctx)
        lws_cancel_service(x->ctx);
    wake_pump(x);
    if (x->svc_started)
        pthread_join(x->svc, NULL);
    if (x->pump_started)
        pthread_join(x->pump, NULL);
    xpriv_free(x);
}

static int sockpair(int *ours, int *theirs)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    *theirs = sv[0];
    *ours = sv[1];
    return 0;
}

static char *build_path(struct xpriv *x, struct k8s_client *c, const struct k8s_exec_opts *o)
{
    _cleanup_free_ char *base = k8s_path(c, K8S_KIND_POD, o->ns, o->pod);
    struct sbx_buf b = SBX_BUF_INIT;
    int r = sbx_buf_printf(&b, "%s%s/exec?", x->path, base);
    for (size_t i = 0; r == 0 && o->argv[i]; i++) {
        _cleanup_free_ char *a = k8s_urlescape(o->argv[i]);
        r = sbx_buf_printf(&b, "%scommand=%s", i ? "&" : "", a);
    }
    if (r == 0 && o->container) {
        _cleanup_free_ char *cn = k8s_urlescape(o->container);
        r = sbx_buf_printf(&b, "&container=%s", cn);
    }
    if (r == 0)
        r = sbx_buf_printf(&b, "%s&stdout=true%s%s", o->no_stdin ? "" : "&stdin=true",
                           o->tty ? "" : "&stderr=true", o->tty ? "&tty=true" : "");
    return sbx_buf_steal(&b, NULL);
}

/* lws 4.1.6 also finds a connection's wsi in its certificate verify callback through an `SSL`
 * ex-data index that every lws_create_context() re-allocates (process-global): a context created
 * between a connection's SSL_new() and its handshake makes that callback find nothing, and the
 * handshake fails ("can't get wsi from ssl privdata") — any two concurrent TLS execs could. So
 * TLS contexts are created and their handshakes run one exec at a time: the gate is held from
 * lws_create_context() until the WebSocket handshake is over (established, failed or timed
 * out). Plain-http execs do not take it. */
static pthread_mutex_t tls_gate = PTHREAD_MUTEX_INITIALIZER;

/* The client SSL_CTX is ours, not lws': lws 4.1.6 finds the SSL_CTX it created again at vhost
 * destruction through an SSL_CTX ex-data index that is process-global and re-allocated by every
 * lws_create_context() (LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT). A context created before another
 * one (the kill exec of signal() while its exec runs; any two concurrent execs) looks its SSL_CTX
 * up with the newer index, finds nothing and never frees it (with the CA store: ~700 KB per
 * exec). A provided_client_ssl_ctx is never touched at destruction; xpriv_free() frees it.
 * Same trust as lws' own: the given CA (all certificates of the bundle) or, without one, the
 * system's default paths; lws still sets SSL_VERIFY_PEER and the host name per connection. */
static int client_ssl_ctx(const char *ca, const char *cert, const char *key, bool insecure,
                          SSL_CTX **ret, struct k8s_error *err)
{
    SSL_CTX *s = SSL_CTX_new(TLS_client_method());
    if (!s) {
        k8s_error_set(err, K8S_TRANSPORT, 0, "exec: cannot create the TLS context");
        return -EIO;
    }
    SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION);
    if (!insecure)
        SSL_CTX_set_verify(s, SSL_VERIFY_PEER, NULL); /* lws sets it per connection as well */
    const char *what = NULL;
    if (!insecure && ca && SSL_CTX_load_verify_locations(s, ca, NULL) != 1)
        what = "certificate authority";
    else if (!insecure && !ca && SSL_CTX_set_default_verify_paths(s) != 1)
        what = "system certificate authorities";
    else if (cert && SSL_CTX_use_certificate_chain_file(s, cert) != 1)
        what = "client certificate";
    else if (cert && (!key || SSL_CTX_use_PrivateKey_file(s, key, SSL_FILETYPE_PEM) != 1 ||
                      SSL_CTX_check_private_key(s) != 1))
        what = "client key";
    if (what) {
        SSL_CTX_free(s);
        k8s_error_set(err, K8S_TRANSPORT, 0, "exec: cannot load the %s (TLS)", what);
        return -EIO;
    }
    *ret = s;
    return 0;
}

int k8s_exec_start(struct k8s_client *c, const struct k8s_exec_opts *o, struct k8s_exec **ret,
                   struct k8s_error *err)
{
    struct k8s_error local;
    if (!err)
        err = &local;
    if (!o->pod || !*o->pod || !o->argv || !o->argv[0]) {
        k8s_error_set(err, K8S_BAD_REQUEST, 0, "exec: pod and argv are required");
        return -EINVAL;
    }
    /* Like kubectl: look the pod up first, so a missing pod is a typed NotFound (lws does not
     * hand us the body of a refused upgrade) — unless the caller knows the pod exists. */
    _cleanup_json_ yajl_val pod = NULL;
    _cleanup_free_ char *tok = NULL, *path = NULL;
    int r = o->no_lookup ? 0 : k8s_get(c, K8S_KIND_POD, o->ns, o->pod, &pod, err);
    if (r < 0)
        return r;

    bool gated = false; /* holding tls_gate */
    struct xpriv *x = xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->cond, NULL);
    x->pub = (struct k8s_exec){ .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1, .tty_fd = -1,
                                .ctl_fd = -1, .priv = x };
    x->in_fd = x->out_fd = x->err_fd = x->ctl_w = x->wake_fd = -1;
    x->cur_chan = -1;
    x->on_finish = o->on_finish;
    x->finish_ud = o->finish_userdata;
    sbx_buf_init(&x->status, STATUS_MAX);
    struct k8s_config *cfg = k8s_client_config(c);
    x->insecure = cfg->insecure;
    if ((r = parse_server(x, cfg->server, err)) < 0)
        goto fail;

    tok = k8s_config_token(cfg);
    if (tok)
        x->auth = xasprintf("Bearer %s", tok);
    if (o->tty) {
        /* one socket both ways, like a pty master: in_fd is a dup of our end (closed on
         * end-of-input while output still flows) */
        if ((r = sockpair(&x->out_fd, &x->pub.tty_fd)) < 0)
            goto fail_errno;
        if (!o->no_stdin && (x->in_fd = fcntl(x->out_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            r = -errno;
            goto fail_errno;
        }
    } else {
        if (!o->no_stdin && (r = sockpair(&x->in_fd, &x->pub.stdin_fd)) < 0)
            goto fail_errno;
        if ((r = sockpair(&x->out_fd, &x->pub.stdout_fd)) < 0)
            goto fail_errno;
        if ((r = sockpair(&x->err_fd, &x->pub.stderr_fd)) < 0)
            goto fail_errno;
        /* our ends: shut down the direction we never use */
        if (x->in_fd >= 0)
            shutdown(x->in_fd, SHUT_WR);
        shutdown(x->out_fd, SHUT_RD);
        shutdown(x->err_fd, SHUT_RD);
    }
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC | O_NONBLOCK) < 0) {
        r = -errno;
        goto fail_errno;
    }
    x->pub.ctl_fd = pfd[0];
    x->ctl_w = pfd[1];
    x->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (x->wake_fd < 0) {
        r = -errno;
        goto fail_errno;
    }
    if (o->rows && o->cols) {
        snprintf(x->resize, sizeof x->resize, "{\"Width\":%u,\"Height\":%u}\n", o->cols, o->rows);
        x->resize_pending = true;
    }

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.user = x;
    info.fd_limit_per_thread = 16;
    info.options = LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT; /* lws 4.1: also "this context uses TLS" */
    path = build_path(x, c, o);
    size_t plen = strlen(path);
    if (plen > PATH_MAX_BYTES) {
        k8s_error_set(err, K8S_BAD_REQUEST, 0, "exec: the request path exceeds %u bytes "
                      "(command too long)", PATH_MAX_BYTES);
        r = -E2BIG;
        goto fail;
    }

    if (x->tls) {
        const char *ca = NULL, *cert = NULL, *key = NULL;
        if (!x->insecure) {
            if (cfg->ca_data) {
                if ((r = k8s_write_tempfile(cfg->ca_data, cfg->ca_len, &x->ca_tmp)) < 0)
                    goto fail_errno;
                ca = x->ca_tmp;
            } else
                ca = cfg->ca_file;
        }
        if (cfg->cert_data || cfg->cert_file) {
            if (cfg->cert_data) {
                if ((r = k8s_write_tempfile(cfg->cert_data, cfg->cert_len, &x->cert_tmp)) < 0)
                    goto fail_errno;
                cert = x->cert_tmp;
            } else
                cert = cfg->cert_file;
            if (cfg->key_data) {
                if ((r = k8s_write_tempfile(cfg->key_data, cfg->key_len, &x->key_tmp)) < 0)
                    goto fail_errno;
                key = x->key_tmp;
            } else
                key = cfg->key_file;
        }
        if ((r = client_ssl_ctx(ca, cert, key, x->insecure, &x->ssl_ctx, err)) < 0)
            goto fail;
        info.provided_client_ssl_ctx = x->ssl_ctx;
        pthread_mutex_lock(&tls_gate);
        gated = true;
    }
    x->ctx = lws_create_context(&info);
    if (x->ctx == NULL) {
        k8s_error_set(err, K8S_TRANSPORT, 0, "exec: cannot create the WebSocket context (TLS)");
        r = -EIO;
        goto fail;
    }
    /* the files were loaded into the SSL_CTX: remove the temporary copies now */
    if (x->ca_tmp)
        unlink(x->ca_tmp);
    if (x->cert_tmp)
        unlink(x->cert_tmp);
    if (x->key_tmp)
        unlink(x->key_tmp);

    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = x->ctx;
    ci.address = x->address;
    ci.port = x->port;
    ci.path = path;
    ci.host = x->address;
    ci.origin = x->address;
    ci.protocol = o->force_v4 ? "v4.channel.k8s.io" : "v5.channel.k8s.io,v4.channel.k8s.io";
    ci.local_protocol_name = "k8s-exec";
    ci.opaque_user_data = x;
    if (x->tls) {
        ci.ssl_connection = LCCSCF_USE_SSL;
        if (x->insecure)
            ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                                 LCCSCF_ALLOW_INSECURE;
    }
    ci.pwsi = &x->wsi;
    if (!lws_client_connect_via_info(&ci)) {
        pthread_mutex_lock(&x->mu);
        bool f = x->failed;
        pthread_mutex_unlock(&x->mu);
        if (!f)
            k8s_error_set(err, K8S_TRANSPORT, 0, "exec: cannot connect to %s:%d", x->address,
                          x->port);
        else
            *err = x->ferr;
        r = f ? k8s_err_errno(x->ferr.type) : -ECONNREFUSED;
        goto fail;
    }
    if (pthread_create(&x->svc, NULL, svc_main, x)) {
        r = -EAGAIN;
        goto fail;
    }
    x->svc_started = true;

    unsigned cto = o->connect_timeout_ms ? o->connect_timeout_ms : 15000;
    uint64_t until = sbx_now_ms() + cto;
    pthread_mutex_lock(&x->mu);
    while (x->state == XS_CONNECTING && !x->finished) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&x->cond, &x->mu, &ts);
        if (sbx_now_ms() >= until)
            break;
    }
    bool ok = x->established;
    if (!ok) {
        if (x->failed)
            *err = x->ferr;
        else
            k8s_error_set(err, K8S_TIMEOUT, 0, "exec: WebSocket handshake timed out after %u ms",
                          cto);
        r = x->failed ? k8s_err_errno(x->ferr.type) : -ETIMEDOUT;
    }
    if (ok && o->timeout_ms)
        x->deadline_ms = sbx_now_ms() + o->timeout_ms;
    pthread_mutex_unlock(&x->mu);
    if (!ok) {
        if (r == 0)
            r = -EIO;
        goto fail_threads;
    }
    if (gated) { /* the TLS handshake is over */
        pthread_mutex_unlock(&tls_gate);
        gated = false;
    }
    if (pthread_create(&x->pump, NULL, pump_main, x)) {
        r = -EAGAIN;
        goto fail_threads;
    }
    x->pump_started = true;
    if (err)
        memset(err, 0, sizeof *err);
    *ret = &x->pub;
    return 0;

fail_errno:
    k8s_error_set(err, K8S_OTHER, 0, "exec: %s", strerror(-r));
fail_threads:
fail:
    k8s_exec_free(&x->pub); /* joins the service thread: no handshake runs any more */
    if (gated)
        pthread_mutex_unlock(&tls_gate);
    return r;
}

int k8s_exec_protocol(struct k8s_exec *e)
{
    struct xpriv *x = e->priv;
    pthread_mutex_lock(&x->mu);
    int p = x->proto;
    pthread_mutex_unlock(&x->mu);
    return p;
}

int k8s_exec_resize(struct k8s_exec *e, unsigned rows, unsigned cols)
{
    struct xpriv *x = e->priv;
    pthread_mutex_lock(&x->mu);
    bool closed = x->finished;
    if (!closed) {
        snprintf(x->resize, sizeof x->resize, "{\"Width\":%u,\"Height\":%u}\n", cols, rows);
        x->resize_pending = true;
    }
    pthread_mutex_unlock(&x->mu);
    if (closed)
        return -ENOTCONN;
    lws_cancel_service(x->ctx);
    return 0;
}

/* Decode the channel-3 metav1.Status. */
static int decode_status(const char *s, size_t n, struct k8s_exec_result *ret,
                         struct k8s_error *err)
{
    _cleanup_json_ yajl_val v = NULL;
    char perr[128];
    if (sbx_json_parse(s, n, STATUS_MAX, 32, &v, perr, sizeof perr) < 0) {
        k8s_error_set(err, K8S_PROTOCOL, 0, "exec: unparseable status: %s", perr);
        return -EPROTO;
    }
    const char *st = sbx_json_get_str(v, "status");
    if (st && !strcmp(st, "Success")) {
        ret->exit_code = 0;
        return 0;
    }
    const char *reason = sbx_json_get_str(v, "reason");
    const char *msg = sbx_json_get_str(v, "message");
    if (st && !strcmp(st, "Failure") && reason && !strcmp(reason, "NonZeroExitCode")) {
        yajl_val causes = sbx_json_get(sbx_json_get(v, "details"), "causes");
        for (size_t i = 0; causes && YAJL_IS_ARRAY(causes) && i < causes->u.array.len; i++) {
            yajl_val cz = causes->u.array.values[i];
            const char *cr = sbx_json_get_str(cz, "reason");
            const char *cm = sbx_json_get_str(cz, "message");
            if (cr && cm && !strcmp(cr, "ExitCode")) {
                char *end;
                errno = 0;
                unsigned long code = strtoul(cm, &end, 10);
                if (errno || *end || end == cm || code > 255)
                    break;
                ret->exit_code = (int)code;
                return 0;
            }
        }
        k8s_error_set(err, K8S_PROTOCOL, 0, "exec: NonZeroExitCode without a valid ExitCode cause");
        return -EPROTO;
    }
    yajl_val code = sbx_json_get(v, "code");
    k8s_error_from_http(err, code && YAJL_IS_INTEGER(code) ? YAJL_GET_INTEGER(code) : 500, s, n,
                        0);
    if (err && msg)
        snprintf(err->message, sizeof err->message, "%s", msg);
    return err ? k8s_err_errno(err->type) : -EIO;
}

int k8s_exec_result(struct k8s_exec *e, struct k8s_exec_result *ret, struct k8s_error *err)
{
    struct xpriv *x = e->priv;
    struct k8s_error local;
    if (!err)
        err = &local;
    pthread_mutex_lock(&x->mu);
    int r;
    if (!x->done)
        r = -EAGAIN;
    else if (x->timed_out) {
        k8s_error_set(err, K8S_TIMEOUT, 0, "exec: timed out");
        r = -ETIMEDOUT;
    } else if (x->status.len && !x->status_overflow) {
        struct k8s_exec_result res = { 0 };
        r = decode_status(x->status.data, x->status.len, &res, err);
        if (r == 0)
            *ret = res;
    } else if (x->status_overflow) {
        k8s_error_set(err, K8S_PROTOCOL, 0, "exec: status larger than %u bytes", STATUS_MAX);
        r = -EPROTO;
    } else if (x->failed) {
        *err = x->ferr;
        r = -EIO;
    } else {
        k8s_error_set(err, K8S_PROTOCOL, 0,
                      "exec: the stream ended without an exit status (close code %d)",
                      x->close_code);
        r = -EIO;
    }
    pthread_mutex_unlock(&x->mu);
    return r;
}

int k8s_exec_wait(struct k8s_exec *e, struct k8s_exec_result *ret, struct k8s_error *err)
{
    for (;;) {
        int r = k8s_exec_result(e, ret, err);
        if (r != -EAGAIN)
            return r;
        struct pollfd p = { .fd = e->ctl_fd, .events = POLLIN };
        poll(&p, 1, 1000);
    }
}
