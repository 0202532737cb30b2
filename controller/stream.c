/*
 * stream.c — the streaming bridge between a running command's pipes and a client connection:
 * server-sent events for POST /sandbox/:id/execute {"stream": true}, and the shared plumbing
 * of the WebSocket exec (ws-exec.c). Design: docs/internals/STREAMS.md.
 *
 * DESIGN
 * The worker starts the command (sbx_exec_start) and hands a `struct stream` to the loop in
 * resp->stream. The loop adopts the exec's fds into libwebsockets as raw-file wsis of the
 * protocol STREAM_RAW_PROTOCOL: stdout, stderr (or the pty), stdin (when there is something to
 * write), and a dup of ctl_fd, which becomes readable when the exit status arrives. Output is
 * read in RAW_RX_FILE, encoded (SSE event / WebSocket binary frame) into a FIFO of segments,
 * and written one segment per client WRITEABLE. Back-pressure: when the FIFO holds
 * STREAM_OUT_HIGH bytes the pipe reads stop (lws_rx_flow_control on the raw wsis) and the
 * command blocks on its full pipe; they resume below STREAM_OUT_LOW. lws_write() never
 * returns short, and WRITEABLE only comes once its own buffer drained, so per stream at most
 * the FIFO plus one segment is held.
 *
 * lws closes a raw wsi on POLLHUP without POLLIN, which also happens while reads are paused:
 * RAW_CLOSE_FILE therefore drains what is left in the pipe (bounded by the pipe size) before
 * the fd goes, so no byte is lost. The fds handed to lws are owned by lws (the exec's fields
 * are set to -1); ctl_fd and the pty stay with the exec (signal/resize use them) and lws gets
 * dups of them.
 *
 * A 100 ms timer on the client wsi ("tick") enforces the command timeout, notices an SSE
 * client that went away (recv MSG_PEEK: lws does not read an idle SSE socket), ends the wait
 * for pipes held open by background processes after the exit, and closes a stdin pipe whose
 * reader vanished (lws does not act on POLLERR of a pipe's write end).
 *
 * Lifetime: refs = client wsi + each raw wsi + a pending worker task. The execution row is
 * recorded exactly once, on a worker via server_submit(), when the exit is known or the
 * command was killed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/json.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "controller/events.h"
#include "controller/secrets.h"
#include "controller/sandbox.h"
#include "controller/server.h"
#include "controller/stream-internal.h"
#include "storage/db.h"

#define TICK_US 100000
#define EXIT_GRACE_US 200000       /* after the exit: wait this long for pipes held elsewhere */
#define CLOSE_DRAIN_MAX (1u << 20) /* bytes read from a pipe that is being closed */
#define READ_SSE (32 * 1024)
#define READ_WS (64 * 1024)

static struct app *g_app;
static struct stream *g_streams; /* registry, loop thread */
static unsigned g_count;
static unsigned char g_rbuf[READ_WS + 8]; /* loop thread scratch */

void stream_init(struct app *app)
{
    g_app = app;
}

struct app *stream_app(void)
{
    return g_app;
}

unsigned stream_count(void)
{
    return g_count;
}

/* ---- UTF-8 + JSON ------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available): 1..4, 0 = invalid,
 * -k (k = bytes available) when it is a valid but incomplete prefix. */
static int utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    int len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0)
        len = 2, min = 0x80, c &= 0x1f;
    else if ((c & 0xf0) == 0xe0)
        len = 3, min = 0x800, c &= 0x0f;
    else if ((c & 0xf8) == 0xf0)
        len = 4, min = 0x10000, c &= 0x07;
    else
        return 0;
    size_t have = MIN(n, (size_t)len);
    for (size_t i = 1; i < have; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if (have < (size_t)len) {
        /* Reject prefixes that can never become valid (overlong / surrogate / > U+10FFFF). */
        if (len == 3 && have >= 2) {
            unsigned top = ((unsigned)(s[0] & 0x0f) << 6) | (s[1] & 0x3f);
            if (top < 0x20 || (top >= 0x360 && top <= 0x37f))
                return 0;
        }
        if (len == 4 && have >= 2) {
            unsigned top = ((unsigned)(s[0] & 0x07) << 6) | (s[1] & 0x3f);
            if (top < 0x10 || top > 0x10f)
                return 0;
        }
        if (len == 2 && s[0] < 0xc2)
            return 0;
        if (len == 4 && s[0] > 0xf4)
            return 0;
        return -(int)have;
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    return len;
}

size_t json_escape_lossy(char *out, size_t *ret_len, const unsigned char *s, size_t n,
                         bool partial)
{
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (c < 0x80) {
            *o++ = '\\';
            switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            default:
                *o++ = 'u', *o++ = '0', *o++ = '0';
                *o++ = hex[c >> 4];
                *o++ = hex[c & 0xf];
            }
            i++;
            continue;
        }
        int l = utf8_seq(s + i, n - i);
        if (l < 0 && partial)
            break; /* incomplete at the end: carried over */
        if (l <= 0) {
            memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD for this one byte */
            o += 3;
            i++;
            continue;
        }
        memcpy(o, s + i, (size_t)l);
        o += l;
        i += (size_t)l;
    }
    *ret_len = (size_t)(o - out);
    return i;
}

char *utf8_lossy(const char *s, size_t n, size_t *ret_len)
{
    char *out = xmalloc(3 * n + 1);
    char *o = out;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        int l = u[i] < 0x80 ? 1 : utf8_seq(u + i, n - i);
        if (l <= 0) {
            memcpy(o, "\xef\xbf\xbd", 3);
            o += 3;
            i++;
            continue;
        }
        memcpy(o, u + i, (size_t)l);
        o += l;
        i += (size_t)l;
    }
    *o = '\0';
    if (ret_len)
        *ret_len = (size_t)(o - out);
    return out;
}

/* ---- segments ------------------------------------------------------------------------------- */

struct seg *seg_new(size_t cap)
{
    struct seg *s = xmalloc(sizeof(*s) + LWS_PRE + 16 + cap + 2);
    s->next = NULL;
    s->len = 0;
    s->off = 0;
    s->text = false;
    s->p = s->mem + LWS_PRE + 16;
    return s;
}

void segq_push(struct segq *q, struct seg *s)
{
    s->next = NULL;
    if (q->tail)
        q->tail->next = s;
    else
        q->head = s;
    q->tail = s;
    q->bytes += s->len;
}

struct seg *segq_pop(struct segq *q)
{
    struct seg *s = q->head;
    if (!s)
        return NULL;
    q->head = s->next;
    if (!q->head)
        q->tail = NULL;
    q->bytes -= s->len;
    s->next = NULL;
    return s;
}

void segq_clear(struct segq *q)
{
    struct seg *s;
    while ((s = segq_pop(q)))
        free(s);
    q->bytes = 0;
}

/* ---- life cycle ------------------------------------------------------------------------------ */

struct stream *stream_alloc(struct app *app, enum stream_kind kind)
{
    struct stream *st = xcalloc(1, sizeof(*st));
    st->app = app;
    st->kind = kind;
    st->t0_us = sbx_now_us();
    sbx_buf_init(&st->msg, STREAM_WS_MSG_MAX);
    return st;
}

void stream_register(struct stream *st)
{
    st->prev = NULL;
    st->next = g_streams;
    if (g_streams)
        g_streams->prev = st;
    g_streams = st;
    g_count++;
}

/* Kills the command (if still running) and frees everything the stream owns. */
static void release(struct stream *st)
{
    if (st->exec) {
        sbx_exec_signal(st->exec, SIGKILL);
        sbx_exec_free(st->exec);
    }
    segq_clear(&st->out);
    segq_clear(&st->in);
    sbx_buf_free(&st->msg);
    free(st->command_text);
    secret_scrubber_free(st->scrub[0]);
    secret_scrubber_free(st->scrub[1]);
    free(st->authorization);
    free(st->org_header);
    free(st->request_id);
    free(st);
}

yajl_gen stream_exit_json(const struct stream *st)
{
    yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "type", "exit");
    sbx_jgen_kint(g, "code", stream_exit_code(st));
    if (st->res.signal)
        sbx_jgen_kint(g, "signal", st->res.signal);
    else
        sbx_jgen_knull(g, "signal");
    sbx_jgen_kstr(g, "reason", stream_exit_reason(st));
    sbx_jgen_kint(g, "duration_ms", (long long)((sbx_now_us() - st->t0_us) / 1000));
    yajl_gen_map_close(g);
    return g;
}

static void stream_free(struct stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else if (g_streams == st)
        g_streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    g_count--;
    release(st);
}

void stream_ref(struct stream *st)
{
    st->refs++;
}

void stream_unref(struct stream *st)
{
    if (--st->refs == 0)
        stream_free(st);
}

struct stream *stream_new_exec(struct app *app, struct sbx_exec *e, const char *org_id,
                               const char *sandbox_id, const char *command_text,
                               unsigned timeout_ms, bool tty)
{
    struct stream *st = stream_alloc(app, STREAM_SSE);
    st->exec = e;
    st->tty = tty;
    st->timeout_ms = timeout_ms;
    snprintf(st->org_id, sizeof(st->org_id), "%s", org_id);
    snprintf(st->sandbox_id, sizeof(st->sandbox_id), "%s", sandbox_id);
    st->command_text = xstrdup(command_text ? command_text : "");
    return st;
}

void stream_set_stdin(struct stream *st, const char *data, size_t len)
{
    for (size_t off = 0; off < len;) {
        size_t n = MIN(len - off, (size_t)(64 * 1024));
        struct seg *s = seg_new(n);
        memcpy(s->p, data + off, n);
        s->len = n;
        segq_push(&st->in, s);
        off += n;
    }
    st->in_eof_wanted = true;
}

void stream_set_secrets(struct stream *st, const struct secret_set *set)
{
    for (int ch = 0; ch < 2; ch++) {
        secret_scrubber_free(st->scrub[ch]);
        st->scrub[ch] = secret_scrubber_new(set);
    }
}

void stream_discard(struct stream *st)
{
    if (!st)
        return;
    /* Never registered, never adopted: only the exec to kill. Any thread. */
    release(st);
}

/* ---- recording the execution (worker) ------------------------------------------------------- */

struct record_task {
    char org_id[40], sandbox_id[72];
    char *command_text;
    int exit_code;
    const char *reason;
    uint64_t duration_ms, out_bytes, err_bytes;
};

static void record_work(struct handler_ctx *ctx, void *arg)
{
    struct record_task *t = arg;
    struct http_response resp = { 0 };
    int r = handler_db(ctx, &resp);
    if (r >= 0)
        r = db_begin(ctx->db, t->org_id);
    if (r >= 0) {
        r = sandbox_record_exec(ctx->db, t->org_id, t->sandbox_id, t->command_text,
                                t->exit_code, t->reason, t->duration_ms, t->out_bytes,
                                t->err_bytes);
        if (r >= 0) {
            _cleanup_free_ char *data = events_command_data(t->command_text, true, t->exit_code,
                                                            t->reason, t->duration_ms);
            r = events_emit(ctx->db, t->org_id, t->sandbox_id,
                            t->exit_code == 0 && !t->reason ? "command.completed"
                                                            : "command.failed",
                            data);
        }
        if (r >= 0)
            r = db_commit(ctx->db);
        else
            db_rollback(ctx->db);
    }
    if (r < 0)
        log_error_errno(r, "recording a streamed execution in sandbox %s failed",
                        t->sandbox_id);
    http_response_free(&resp);
}

static void record_done(void *arg)
{
    struct record_task *t = arg;
    free(t->command_text);
    free(t);
}

int stream_exit_code(const struct stream *st)
{
    if (st->exit_r < 0)
        return -1;
    return st->res.signal ? 128 + st->res.signal : st->res.exit_code;
}

const char *stream_exit_reason(const struct stream *st)
{
    if (st->timed_out)
        return "timeout";
    if (st->exit_r == 0 && st->res.oom)
        return "oom";
    if (st->exit_r == 0 && st->res.signal)
        return "signal";
    return NULL;
}

static void stream_record(struct stream *st, const char *why)
{
    if (st->recorded || !st->org_id[0] || !g_app || !g_app->server)
        return;
    st->recorded = true;
    struct record_task *t = xcalloc(1, sizeof(*t));
    snprintf(t->org_id, sizeof(t->org_id), "%s", st->org_id);
    snprintf(t->sandbox_id, sizeof(t->sandbox_id), "%s", st->sandbox_id);
    t->command_text = xstrdup(st->command_text ? st->command_text : "");
    if (st->exited && st->exit_r == 0) {
        t->exit_code = stream_exit_code(st);
        t->reason = stream_exit_reason(st);
    } else {
        t->exit_code = -1;
        t->reason = why ? why : "killed";
    }
    t->duration_ms = (sbx_now_us() - st->t0_us) / 1000;
    t->out_bytes = st->out_bytes;
    t->err_bytes = st->err_bytes;
    server_submit(g_app->server, record_work, record_done, t);
}

/* ---- output encoding ----------------------------------------------------------------------- */

static void want_client_write(struct stream *st)
{
    if (st->client)
        lws_callback_on_writable(st->client);
}

static void push_out(struct stream *st, struct seg *s)
{
    segq_push(&st->out, s);
    want_client_write(st);
}

/* SSE event "data: {"type":<type>,"data":"<escaped>"}\n\n" for channel ch (0/1). */
static void sse_data_event(struct stream *st, int ch, const unsigned char *d, size_t n, bool last)
{
    static const char *pre[2] = { "data: {\"type\":\"stdout\",\"data\":\"",
                                   "data: {\"type\":\"stderr\",\"data\":\"" };
    static const char post[] = "\"}\n\n";
    const unsigned char *src = d;
    size_t total = n;
    unsigned char *tmp = NULL;
    if (st->carry_len[ch]) {
        tmp = xmalloc(st->carry_len[ch] + n);
        memcpy(tmp, st->carry[ch], st->carry_len[ch]);
        memcpy(tmp + st->carry_len[ch], d, n);
        src = tmp;
        total = st->carry_len[ch] + n;
        st->carry_len[ch] = 0;
    }
    size_t plen = strlen(pre[ch]);
    struct seg *s = seg_new(plen + JSON_ESCAPE_MAX(total) + sizeof(post));
    memcpy(s->p, pre[ch], plen);
    size_t elen;
    size_t used = json_escape_lossy((char *)s->p + plen, &elen, src, total, !last);
    if (used < total) {
        st->carry_len[ch] = total - used;
        memcpy(st->carry[ch], src + used, total - used);
    }
    free(tmp);
    if (elen == 0) {
        free(s);
        return;
    }
    memcpy(s->p + plen + elen, post, sizeof(post) - 1);
    s->len = plen + elen + sizeof(post) - 1;
    push_out(st, s);
}

static void ws_data_frame(struct stream *st, int ch, const unsigned char *d, size_t n)
{
    struct seg *s = seg_new(n + 1);
    s->p[0] = (unsigned char)(ch + 1);
    memcpy(s->p + 1, d, n);
    s->len = n + 1;
    push_out(st, s);
}

static void emit_raw(struct stream *st, int ch, const unsigned char *d, size_t n)
{
    if (st->kind == STREAM_SSE)
        sse_data_event(st, ch, d, n, false);
    else
        ws_data_frame(st, ch, d, n);
}

static void emit_output(struct stream *st, int ch, const unsigned char *d, size_t n)
{
    if (ch == 0)
        st->out_bytes += n;
    else
        st->err_bytes += n;
    if (st->scrub[ch]) {
        /* a value split across reads is held back until it is decided */
        struct sbx_buf b = SBX_BUF_INIT;
        secret_scrubber_feed(st->scrub[ch], d, n, &b);
        if (b.len)
            emit_raw(st, ch, (const unsigned char *)b.data, b.len);
        sbx_buf_free(&b);
        return;
    }
    emit_raw(st, ch, d, n);
}

static void flush_carry(struct stream *st, int ch)
{
    if (st->scrub[ch]) {
        struct sbx_buf b = SBX_BUF_INIT;
        secret_scrubber_flush(st->scrub[ch], &b);
        secret_scrubber_free(st->scrub[ch]);
        st->scrub[ch] = NULL;
        if (b.len)
            emit_raw(st, ch, (const unsigned char *)b.data, b.len);
        sbx_buf_free(&b);
    }
    if (st->kind == STREAM_SSE && st->carry_len[ch])
        sse_data_event(st, ch, (const unsigned char *)"", 0, true);
}

/* An SSE event from a finished JSON document. */
static void sse_json_event(struct stream *st, yajl_gen g)
{
    size_t n;
    _cleanup_free_ char *doc = sbx_jgen_take(g, &n);
    struct seg *s = seg_new(n + 8);
    memcpy(s->p, "data: ", 6);
    memcpy(s->p + 6, doc, n);
    memcpy(s->p + 6 + n, "\n\n", 2);
    s->len = n + 8;
    push_out(st, s);
}

static void sse_error_event(struct stream *st, const char *msg)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "type", "error");
    sbx_jgen_kstr(g, "error", msg);
    yajl_gen_map_close(g);
    sse_json_event(st, g);
}

static void sse_queue_final(struct stream *st, const char *error)
{
    if (st->final_queued)
        return;
    st->final_queued = true;
    flush_carry(st, 0);
    flush_carry(st, 1);
    if (error) {
        sse_error_event(st, error);
    } else if (st->exit_r < 0) {
        sse_error_event(st, "the sandbox runtime lost the command");
    } else {
        _cleanup_jgen_ yajl_gen g = stream_exit_json(st);
        sse_json_event(st, g);
    }
    static const char done[] = "data: {\"type\":\"done\"}\n\n";
    struct seg *s = seg_new(sizeof(done));
    memcpy(s->p, done, sizeof(done) - 1);
    s->len = sizeof(done) - 1;
    push_out(st, s);
}

/* Queues the final events once everything is known: exit status and both pipes at EOF. */
static void maybe_finish(struct stream *st)
{
    if (st->final_queued || !st->exited || !st->out_eof || !st->err_eof)
        return;
    stream_record(st, NULL);
    if (st->kind == STREAM_SSE)
        sse_queue_final(st, NULL);
    else
        ws_queue_final(st);
    if (st->exec && !st->raw_in && !st->raw_ctl) {
        sbx_exec_free(st->exec);
        st->exec = NULL;
    }
}

/* ---- the raw pipe wsis --------------------------------------------------------------------- */

static void set_out_paused(struct stream *st, bool pause)
{
    if (st->out_paused == pause)
        return;
    st->out_paused = pause;
    if (st->raw_out)
        lws_rx_flow_control(st->raw_out, pause ? 0 : 1);
    if (st->raw_err)
        lws_rx_flow_control(st->raw_err, pause ? 0 : 1);
}

void stream_out_drained(struct stream *st)
{
    if (st->out_paused && st->out.bytes < STREAM_OUT_LOW && !st->killed)
        set_out_paused(st, false);
}

static struct lws *adopt(struct stream *st, int fd)
{
    lws_adopt_desc_t info;
    memset(&info, 0, sizeof(info));
    info.vh = lws_get_vhost(st->client);
    info.type = LWS_ADOPT_RAW_FILE_DESC;
    info.fd.filefd = fd;
    info.vh_prot_name = STREAM_RAW_PROTOCOL;
    info.opaque = st;
    struct lws *w = lws_adopt_descriptor_vhost_via_info(&info);
    if (w)
        stream_ref(st);
    return w;
}

int stream_start(struct stream *st)
{
    struct sbx_exec *e = st->exec;
    if (!st->started) {
        st->started = true;
        st->t0_us = sbx_now_us();
        if (st->timeout_ms)
            st->deadline_us = st->t0_us + (uint64_t)st->timeout_ms * 1000;
    }
    int ctl = fcntl(e->ctl_fd, F_DUPFD_CLOEXEC, 0);
    if (ctl < 0)
        return -errno;
    st->raw_ctl = adopt(st, ctl);
    if (!st->raw_ctl)
        return -EIO;
    if (st->tty) {
        /* A dup: the exec keeps its pty fd for sbx_exec_resize(). */
        int fd = fcntl(e->pty_fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            return -errno;
        st->raw_out = adopt(st, fd);
        st->err_eof = true;
        if (!st->raw_out)
            return -EIO;
    } else {
        int fd = e->stdout_fd;
        e->stdout_fd = -1;
        st->raw_out = adopt(st, fd);
        fd = e->stderr_fd;
        e->stderr_fd = -1;
        st->raw_err = adopt(st, fd);
        if (!st->raw_out || !st->raw_err)
            return -EIO;
        if (st->kind == STREAM_WS || st->in.bytes) {
            fd = e->stdin_fd;
            e->stdin_fd = -1;
            st->raw_in = adopt(st, fd);
            if (!st->raw_in)
                return -EIO;
        } else {
            close(e->stdin_fd);
            e->stdin_fd = -1;
            st->in_closed = true;
        }
    }
    if (st->out.bytes >= STREAM_OUT_HIGH)
        set_out_paused(st, true);
    stream_stdin_kick(st);
    lws_set_timer_usecs(st->client, TICK_US);
    return 0;
}

static struct lws *stdin_wsi(struct stream *st)
{
    return st->tty ? st->raw_out : st->raw_in;
}

void stream_stdin_kick(struct stream *st)
{
    struct lws *w = stdin_wsi(st);
    if (w && !st->in_closed && (st->in.head || st->in_eof_wanted))
        lws_callback_on_writable(w);
}

/* RAW_WRITEABLE on the stdin pipe / pty. Returns -1 to close the wsi (stdin EOF). */
static int on_stdin_writeable(struct stream *st, struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    struct seg *s;
    while ((s = st->in.head)) {
        ssize_t n = write(fd, s->p + s->off, s->len - s->off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0) {
            /* Reader gone (EPIPE): nothing more can be written. */
            segq_clear(&st->in);
            st->in_closed = true;
            break;
        }
        s->off += (size_t)n;
        if (s->off == s->len) {
            st->in.bytes -= s->len;
            s->len = 0;
            free(segq_pop(&st->in));
        }
    }
    if (st->client_rx_paused && st->in.bytes < STREAM_IN_LOW && st->client) {
        st->client_rx_paused = false;
        lws_rx_flow_control(st->client, 1);
    }
    if (st->in.head) {
        /* lws clears POLLOUT of a raw file *after* this callback, so asking for WRITEABLE
         * here would be lost: re-arm from the next loop iteration (TIMER below). */
        lws_set_timer_usecs(wsi, 1);
        return 0;
    }
    if (st->in_eof_wanted && !st->tty && wsi == st->raw_in)
        return -1; /* closes the write end: EOF for the command */
    if (st->in_eof_wanted && st->tty) {
        st->in_eof_wanted = false;
        static const char eot = 0x04; /* ^D: EOF for the line discipline */
        if (write(fd, &eot, 1) < 0 && errno != EAGAIN)
            st->in_closed = true;
    }
    if (st->in_closed && !st->tty && wsi == st->raw_in)
        return -1;
    return 0;
}

static int on_output(struct stream *st, int ch, struct lws *wsi)
{
    if (st->killed)
        return -1;
    size_t cap = st->kind == STREAM_SSE ? READ_SSE : READ_WS;
    ssize_t n = read(lws_get_socket_fd(wsi), g_rbuf, cap);
    if (n > 0) {
        emit_output(st, ch, g_rbuf, (size_t)n);
        if (st->out.bytes >= STREAM_OUT_HIGH)
            set_out_paused(st, true);
        return 0;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    return -1; /* EOF (or EIO on a pty whose other side closed): RAW_CLOSE_FILE follows */
}

/* Reads what is left in a pipe that is being closed (bounded by the pipe's size in practice,
 * CLOSE_DRAIN_MAX at most). */
static void drain_closing(struct stream *st, int ch, int fd)
{
    size_t got = 0;
    size_t cap = st->kind == STREAM_SSE ? READ_SSE : READ_WS;
    while (got < CLOSE_DRAIN_MAX) {
        ssize_t n = read(fd, g_rbuf, cap);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        emit_output(st, ch, g_rbuf, (size_t)n);
        got += (size_t)n;
    }
}

static int on_ctl(struct stream *st)
{
    if (!st->exec || st->exited)
        return -1;
    int r = sbx_exec_result(st->exec, &st->res);
    if (r == -EAGAIN)
        return 0;
    st->exited = true;
    st->exit_r = r;
    st->exit_us = sbx_now_us();
    maybe_finish(st);
    return -1; /* our dup of ctl_fd is no longer needed */
}

static void on_raw_close(struct stream *st, struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    if (wsi == st->raw_out || wsi == st->raw_err) {
        int ch = wsi == st->raw_err;
        if (!st->killed && fd >= 0)
            drain_closing(st, ch, fd);
        flush_carry(st, ch);
        if (ch) {
            st->raw_err = NULL;
            st->err_eof = true;
        } else {
            st->raw_out = NULL;
            st->out_eof = true;
            if (st->tty) {
                st->in_closed = true;
                segq_clear(&st->in);
            }
        }
    } else if (wsi == st->raw_ctl) {
        st->raw_ctl = NULL;
        if (!st->exited && st->exec && !st->killed) {
            int r = sbx_exec_result(st->exec, &st->res);
            st->exited = true;
            st->exit_r = r == -EAGAIN ? -EIO : r;
            st->exit_us = sbx_now_us();
        }
    } else if (wsi == st->raw_in) {
        st->raw_in = NULL;
        st->in_closed = true;
        segq_clear(&st->in);
        if (st->client_rx_paused && st->client) {
            st->client_rx_paused = false;
            lws_rx_flow_control(st->client, 1);
        }
    }
    if (!st->killed)
        maybe_finish(st);
    if (st->exec && st->final_queued && !st->raw_in && !st->raw_ctl) {
        sbx_exec_free(st->exec);
        st->exec = NULL;
    }
}

int stream_raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len)
{
    struct stream *st = lws_get_opaque_user_data(wsi);
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (!st)
            return -1;
        if (wsi == st->raw_ctl)
            return on_ctl(st);
        if (wsi == st->raw_out)
            return on_output(st, 0, wsi);
        if (wsi == st->raw_err)
            return on_output(st, 1, wsi);
        return 0;
    case LWS_CALLBACK_RAW_WRITEABLE_FILE:
        if (st && !st->killed && wsi == stdin_wsi(st))
            return on_stdin_writeable(st, wsi);
        return 0;
    case LWS_CALLBACK_TIMER:
        if (st && !st->killed && wsi == stdin_wsi(st))
            stream_stdin_kick(st);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (st) {
            lws_set_opaque_user_data(wsi, NULL);
            on_raw_close(st, wsi);
            stream_unref(st);
        }
        return 0;
    default:
        return 0;
    }
}

/* ---- killing, ticking, closing ----------------------------------------------------------- */

static void close_raw(struct lws *w)
{
    if (w)
        lws_set_timeout(w, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
}

void stream_kill(struct stream *st, const char *why)
{
    if (st->killed)
        return;
    st->killed = true;
    stream_record(st, why);
    if (st->exec) {
        if (!st->exited)
            sbx_exec_signal(st->exec, SIGKILL);
        sbx_exec_free(st->exec);
        st->exec = NULL;
    }
    close_raw(st->raw_out);
    close_raw(st->raw_err);
    close_raw(st->raw_ctl);
    close_raw(st->raw_in);
    segq_clear(&st->in);
}

void stream_client_closed(struct stream *st)
{
    if (!st->client)
        return;
    lws_set_timer_usecs(st->client, LWS_SET_TIMER_USEC_CANCEL);
    lws_set_opaque_user_data(st->client, NULL);
    st->client = NULL;
    stream_kill(st, "client_disconnected");
    stream_unref(st);
}

/* True when the peer of an SSE connection has gone (EOF or reset). */
static bool sse_peer_gone(struct lws *wsi)
{
    char c;
    ssize_t n = recv(lws_get_socket_fd(wsi), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Returns true when the client must be closed now. */
static bool tick(struct stream *st)
{
    uint64_t now = sbx_now_us();
    if (st->kind == STREAM_SSE && sse_peer_gone(st->client))
        return true;
    if (st->started && !st->exited && !st->killed && st->deadline_us && now >= st->deadline_us &&
        !st->timed_out) {
        st->timed_out = true;
        if (st->exec)
            sbx_exec_signal(st->exec, SIGKILL);
    }
    if (st->exited && !st->killed && now - st->exit_us >= EXIT_GRACE_US && !st->out_paused) {
        /* Pipes still held by background processes: take what is there and stop. */
        close_raw(st->raw_out);
        close_raw(st->raw_err);
    }
    if (st->raw_in && !st->in_closed) {
        struct pollfd p = { .fd = lws_get_socket_fd(st->raw_in), .events = POLLOUT };
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP))) {
            st->in_closed = true;
            segq_clear(&st->in);
            close_raw(st->raw_in);
        }
    }
    lws_set_timer_usecs(st->client, TICK_US);
    return false;
}

void stream_tick(struct stream *st)
{
    (void)tick(st);
}

/* ---- SSE on the HTTP connection ------------------------------------------------------------ */

static int add_hdr(struct lws *wsi, const char *name, const char *value, unsigned char **p,
                   unsigned char *end)
{
    return lws_add_http_header_by_name(wsi, (const unsigned char *)name,
                                       (const unsigned char *)value, (int)strlen(value), p, end);
}

int stream_http_attach(struct stream *st, struct lws *wsi, const char *request_id)
{
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    if (lws_add_http_header_status(wsi, 200, &p, end) ||
        add_hdr(wsi, "content-type:", "text/event-stream", &p, end) ||
        add_hdr(wsi, "transfer-encoding:", "chunked", &p, end) ||
        add_hdr(wsi, "cache-control:", "no-cache", &p, end) ||
        add_hdr(wsi, "x-accel-buffering:", "no", &p, end) ||
        add_hdr(wsi, "x-request-id:", request_id, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end)) {
        stream_discard(st);
        return -1;
    }
    /* No request timeout for the stream's lifetime. (lws_http_mark_sse() only detaches the
     * header table on HTTP/1.1 and logs an error about h2 substreams.) */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    stream_register(st);
    st->client = wsi;
    stream_ref(st);
    lws_set_opaque_user_data(wsi, st);
    int r = stream_start(st);
    if (r < 0) {
        log_error_errno(r, "adopting the command's pipes failed");
        stream_kill(st, "error");
        sse_queue_final(st, "the command's output could not be attached");
    }
    want_client_write(st);
    return 0;
}

static int sse_writeable(struct stream *st, struct lws *wsi)
{
    struct seg *s = segq_pop(&st->out);
    if (s) {
        char hdr[16];
        int hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", s->len);
        unsigned char *w = s->p - hl;
        memcpy(w, hdr, (size_t)hl);
        memcpy(s->p + s->len, "\r\n", 2);
        size_t n = (size_t)hl + s->len + 2;
        int r = lws_write(wsi, w, n, LWS_WRITE_HTTP);
        free(s);
        if (r < (int)n)
            return -1;
        stream_out_drained(st);
        if (st->out.head || st->final_queued)
            lws_callback_on_writable(wsi);
        return 0;
    }
    if (!st->final_queued)
        return 0;
    static const char last[] = "0\r\n\r\n";
    unsigned char b[LWS_PRE + sizeof(last)];
    memcpy(b + LWS_PRE, last, sizeof(last) - 1);
    if (lws_write(wsi, b + LWS_PRE, sizeof(last) - 1, LWS_WRITE_HTTP_FINAL) < 0)
        return -1;
    /* Done: give the connection back to HTTP (keep-alive) and let go of the stream. */
    lws_set_timer_usecs(wsi, LWS_SET_TIMER_USEC_CANCEL);
    lws_set_opaque_user_data(wsi, NULL);
    st->client = NULL;
    stream_kill(st, NULL);
    stream_unref(st);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* A WebSocket upgrade arrives at protocols[0] first: only the exec path may upgrade. */
static int confirm_upgrade(struct lws *wsi, const char *in)
{
    if (!in || strcmp(in, "websocket") != 0)
        return -1; /* h2c: stay on HTTP/1.1 */
    char uri[512];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);
    char id[72];
    if (n > 0 && ws_path_sandbox_id(uri, id, sizeof(id)))
        return 0;
    static const char body[] =
        "{\"error\":{\"code\":\"not_found\",\"message\":\"no WebSocket endpoint here\"}}";
    unsigned char buf[LWS_PRE + 512 + sizeof(body)];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - 1;
    if (lws_add_http_common_headers(wsi, 404, "application/json", sizeof(body) - 1, &p, end) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    memcpy(p, body, sizeof(body) - 1);
    lws_write(wsi, p, sizeof(body) - 1, LWS_WRITE_HTTP_FINAL);
    return 1;
}

int stream_http_hook(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len, bool *handled)
{
    *handled = false;
    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        *handled = true;
        return confirm_upgrade(wsi, in);
    case LWS_CALLBACK_ESTABLISHED:
    case LWS_CALLBACK_RECEIVE:
    case LWS_CALLBACK_SERVER_WRITEABLE:
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        /* A WebSocket client that offered no subprotocol is bound to protocols[0]. */
        *handled = true;
        return ws_exec_hook(wsi, reason, user, in, len);
    case LWS_CALLBACK_TIMER:
    case LWS_CALLBACK_HTTP_WRITEABLE:
    case LWS_CALLBACK_CLOSED_HTTP:
        break;
    default:
        return 0;
    }
    struct stream *st = lws_get_opaque_user_data(wsi);
    if (!st)
        return 0;
    if (st->kind == STREAM_WS) {
        *handled = true;
        return ws_exec_hook(wsi, reason, user, in, len);
    }
    *handled = true;
    switch (reason) {
    case LWS_CALLBACK_TIMER:
        if (tick(st)) {
            stream_client_closed(st);
            return -1;
        }
        return 0;
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return sse_writeable(st, wsi);
    case LWS_CALLBACK_CLOSED_HTTP:
        stream_client_closed(st);
        return 0;
    default:
        return 0;
    }
}

/* ---- shutdown ------------------------------------------------------------------------------- */

void stream_shutdown_all(void)
{
    for (struct stream *st = g_streams; st; st = st->next) {
        if (st->shutting_down)
            continue;
        st->shutting_down = true;
        if (st->kind == STREAM_WS) {
            ws_shutdown(st);
            continue;
        }
        if (!st->client)
            continue;
        if (!st->final_queued) {
            stream_kill(st, "server_shutdown");
            sse_queue_final(st, "the server is shutting down");
        }
        want_client_write(st);
    }
}
