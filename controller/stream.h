/*
 * stream.h — streaming command output: the SSE answer of POST /sandbox/:id/execute with
 * "stream": true, and the WebSocket interactive exec (GET /sandbox/:id/exec/ws). See
 * docs/internals/STREAMS.md for the design and the wire protocols.
 *
 * Threads: a `struct stream` is created on a worker (stream_new_exec(), after sbx_exec_start)
 * and handed to the event loop in `resp->stream`; from then on only the loop thread touches
 * it. Everything else in this header is loop-thread only unless marked.
 *
 * Hook points in controller/server.c (the only places server.c knows about streams):
 *   server_create():  stream_init(app) and STREAM_LWS_PROTOCOLS in the protocol table;
 *   http_callback():  stream_http_hook() first (WebSocket upgrades, SSE connections, and
 *                     WebSocket connections bound to protocols[0] when the client offered no
 *                     Sec-WebSocket-Protocol);
 *   on_writeable():   a job whose response carries a stream is handed to stream_http_attach();
 *   job_free():       a stream nobody attached is released with stream_discard();
 *   server_run():     stream_shutdown_all() at stop, and the drain waits for stream_count().
 */
#pragma once

#include <libwebsockets.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

#include "controller/app.h"

struct stream;
struct sbx_exec;

#define STREAM_RAW_PROTOCOL "sandboxd-stream-raw"
#define STREAM_WS_PROTOCOL "sandboxd.exec.v1"

int stream_raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len);
int ws_exec_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len);

/* Entries for the vhost's protocol table (after protocols[0], before the terminator). */
#define STREAM_LWS_PROTOCOLS                                                                      \
    { STREAM_RAW_PROTOCOL, stream_raw_callback, 0, 0, 0, NULL, 0 },                               \
    { STREAM_WS_PROTOCOL, ws_exec_callback, 0, 64 * 1024, 0, NULL, 0 }

/* Remembers the app (server_submit, limits). Called once by server_create(). */
void stream_init(struct app *app);

/* Called first by the HTTP protocol callback. Returns the callback's return value and sets
 * *handled when the stream layer took the event. */
int stream_http_hook(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len, bool *handled);

/* Takes over an HTTP connection whose worker produced resp->stream (status 200): writes the
 * SSE headers and starts streaming. Owns st afterwards in every case. Returns the callback's
 * return value (-1: close the connection). */
int stream_http_attach(struct stream *st, struct lws *wsi, const char *request_id);

/* Releases a stream whose response was never attached (client gone, error response). Kills
 * the command. Any thread. */
void stream_discard(struct stream *st);

/* Server stop: ends every stream (SSE: error + done events, WebSocket: close 1001) and kills
 * the commands. stream_count() is the number of streams not yet freed. */
void stream_shutdown_all(void);
unsigned stream_count(void);

/* ---- the execute request (shared by api-exec.c and ws-exec.c; worker threads) ---- */

struct exec_request {
    char **argv;          /* NULL-terminated, owned */
    char **env;           /* NULL-terminated KEY=VAL overrides, owned, or NULL */
    char *cwd;            /* owned or NULL */
    char *command_text;   /* for the executions row */
    unsigned timeout_ms;
    const char *stdin_data; /* points into the parsed body */
    size_t stdin_len;
    bool stream;
    bool base64;          /* "encoding": "base64" */
    bool tty;
    unsigned rows, cols;
};

/* Validates the execute body (HTTP) or the WebSocket start message (ws = true: tty, rows,
 * cols allowed; stdin/stream not). On failure sets resp (422 validation_error or 400
 * invalid_path) and returns -EINVAL. */
int exec_request_parse(const struct app *app, yajl_val body, bool ws, struct exec_request *ret,
                       struct http_response *resp);
void exec_request_free(struct exec_request *r);
/* sandbox default env + request overrides (the request wins) as one NULL-terminated array. */
char **exec_env_merge(char **sandbox_env, char **overrides);
void exec_env_free(char **env);
/* Maps an sbx_exec_start()/run error to a response. */
void exec_start_error(int r, bool had_cwd, struct http_response *resp);

/* Creates the stream for a started exec (worker thread); takes ownership of e. */
struct stream *stream_new_exec(struct app *app, struct sbx_exec *e, const char *org_id,
                               const char *sandbox_id, const char *command_text,
                               unsigned timeout_ms, bool tty);

/* Stdin for a streamed exec (worker, before the hand-off): written, then closed. */
void stream_set_stdin(struct stream *st, const char *data, size_t len);
/* Scrubs the values of set (may be NULL; copied) from the stream's output. Before hand-off. */
struct secret_set;
void stream_set_secrets(struct stream *st, const struct secret_set *set);

/* Writes s[0..n) to out as the body of a JSON string (no quotes): invalid UTF-8 becomes
 * U+FFFD per offending byte; control characters, '"' and '\\' are escaped. out must have
 * room for JSON_ESCAPE_MAX(n) bytes; *ret_len receives the bytes written. When `partial` is
 * true, an incomplete (but so far valid) multi-byte sequence at the very end is not consumed:
 * the return value is the number of input bytes used (the caller carries the rest over).
 * Any thread, pure. */
#define JSON_ESCAPE_MAX(n) (6 * (n))
size_t json_escape_lossy(char *out, size_t *ret_len, const unsigned char *s, size_t n,
                         bool partial);
/* s[0..n) with invalid sequences replaced by U+FFFD per byte (valid UTF-8, malloc'd). */
char *utf8_lossy(const char *s, size_t n, size_t *ret_len);
