/*
 * stream-internal.h — what stream.c (SSE, raw pipes, shutdown) and ws-exec.c (the WebSocket
 * protocol) share. Event-loop thread only, except where marked.
 */
#pragma once

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>

#include "common/buf.h"
#include "controller/stream.h"
#include "runtime/runtime.h"

/* Bounds (docs/internals/STREAMS.md, "Back-pressure"). */
#define STREAM_OUT_HIGH (256 * 1024) /* queued for the client: stop reading the pipes */
#define STREAM_OUT_LOW (64 * 1024)   /* ... and read again below this */
#define STREAM_IN_HIGH (256 * 1024)  /* queued for stdin: stop reading the WebSocket */
#define STREAM_IN_LOW (64 * 1024)
#define STREAM_WS_MSG_MAX (1024 * 1024) /* largest WebSocket message accepted (else 1009) */

struct seg {
    struct seg *next;
    size_t len;        /* payload bytes at p */
    size_t off;        /* bytes already consumed (stdin) */
    bool text;         /* WebSocket text frame */
    unsigned char *p;  /* payload; LWS_PRE + 16 bytes of headroom before it, 2 after */
    unsigned char mem[];
};

struct segq {
    struct seg *head, *tail;
    size_t bytes;
};

enum stream_kind { STREAM_SSE, STREAM_WS };

enum ws_phase {
    WS_WAIT_START, /* connected, waiting for the start message */
    WS_STARTING,   /* auth + exec start running on a worker */
    WS_RUNNING,    /* exec adopted */
    WS_CLOSING,    /* close frame queued */
};

struct stream {
    struct stream *next, *prev; /* registry of live streams */
    enum stream_kind kind;
    struct app *app;
    unsigned refs;              /* client wsi + raw wsis + pending worker task */

    struct sbx_exec *exec;      /* NULL once freed (command killed or finished) */
    bool tty;
    struct lws *client;         /* the HTTP (SSE) or WebSocket connection */
    struct lws *raw_out, *raw_err, *raw_ctl, *raw_in; /* tty: raw_out is the pty, both ways */

    struct segq out;            /* frames/events for the client */
    bool out_paused;            /* pipe reads stopped (client behind) */
    struct segq in;             /* stdin bytes not yet written */
    bool in_eof_wanted;         /* close stdin once `in` is written */
    bool in_closed;
    bool client_rx_paused;      /* WebSocket reads stopped (stdin pipe full) */

    unsigned char carry[2][4];  /* SSE: incomplete UTF-8 sequence held over per channel */
    size_t carry_len[2];

    bool started;               /* fds adopted */
    bool out_eof, err_eof;
    bool exited;                /* exit status (or runtime failure) known */
    int exit_r;                 /* 0, or -errno when the runtime lost the command */
    struct sbx_exec_result res;
    bool timed_out;
    bool final_queued;          /* exit (or error) + done queued */
    bool killed;
    bool shutting_down;
    int close_code;             /* WebSocket close code once the queue drained (0 = none) */
    char close_reason[64];

    uint64_t t0_us, deadline_us, exit_us;
    unsigned timeout_ms;
    uint64_t out_bytes, err_bytes;
    char org_id[40], sandbox_id[72];
    char *command_text;
    bool recorded;
    struct secret_scrubber *scrub[2]; /* injected secrets removed from output (secrets.h) */

    /* WebSocket */
    enum ws_phase phase;
    char *authorization, *org_header, *request_id;
    struct sbx_buf msg;         /* text message being reassembled */
    size_t msg_bytes;           /* size of the current message (text or binary) */
    bool msg_binary;
};

/* stream.c */
struct stream *stream_alloc(struct app *app, enum stream_kind kind);
/* Adds st to the registry (stream_count, shutdown); stream_free removes it. */
void stream_register(struct stream *st);
struct app *stream_app(void);
void stream_ref(struct stream *st);
void stream_unref(struct stream *st);
/* Adopts the exec's fds into lws (st->client and st->exec set). Returns 0 or -errno. */
int stream_start(struct stream *st);
/* Client gone or shutting down: kill the command, close the pipes, record the execution. */
void stream_kill(struct stream *st, const char *why);
/* The client connection closed: forget it, kill what is left. */
void stream_client_closed(struct stream *st);
void stream_tick(struct stream *st);
struct seg *seg_new(size_t cap);
void segq_push(struct segq *q, struct seg *s);
struct seg *segq_pop(struct segq *q);
void segq_clear(struct segq *q);
/* Writes the stdin queue to the pipe/pty (called when it may be writable). */
void stream_stdin_kick(struct stream *st);
/* Resumes the pipe reads when the out queue drained below the low mark. */
void stream_out_drained(struct stream *st);
/* Exit code (128+signal when killed), signal (0), reason string (NULL) of a finished exec. */
int stream_exit_code(const struct stream *st);
const char *stream_exit_reason(const struct stream *st);
/* The {"type":"exit","code","signal","reason","duration_ms"} object (caller frees). */
yajl_gen stream_exit_json(const struct stream *st);

/* ws-exec.c */
int ws_exec_hook(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len);
void ws_queue_final(struct stream *st);
void ws_shutdown(struct stream *st);
bool ws_path_sandbox_id(const char *path, char *id, size_t idlen);
