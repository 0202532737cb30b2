/*
 * server.h — the HTTP/WebSocket front end: one libwebsockets event-loop thread plus a pool of
 * worker threads that run handlers.
 *
 * Lifecycle: server_create() (main thread, before the loop) → server_run() (blocks the calling
 * thread, which becomes the event-loop thread, until server_request_stop()) → server_free().
 * server_request_stop() is async-signal-safe enough to call from a signal handler: it sets a
 * flag and wakes the loop.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct app;
struct server;

struct server_options {
    const char *address;
    unsigned port;
    unsigned workers;
    size_t max_body_bytes;
    unsigned max_header_bytes;
    unsigned max_json_depth;
    unsigned idle_timeout_s;
    unsigned request_timeout_s;
    unsigned long_request_timeout_s; /* routes marked long_running (buffered execute) */
    unsigned max_connections;
};

int server_create(const struct server_options *opt, struct app *app, struct server **ret,
                  char *err, size_t errlen);
/* Runs until stopped; then stops accepting, lets in-flight requests finish (up to a grace
 * period), closes streams with 1001, joins the workers. Returns 0 or -errno. */
int server_run(struct server *srv);
void server_request_stop(struct server *srv);
void server_free(struct server *srv);
struct handler_ctx;
/* Event-loop thread only: runs work(ctx, arg) on a worker thread (with that worker's database
 * connection), then done(arg) back on the event-loop thread. Used by WebSocket and stream code
 * that needs blocking work (auth, exec start) without blocking the loop. done is always called,
 * also during shutdown (before the workers are joined). */
void server_submit(struct server *srv, void (*work)(struct handler_ctx *ctx, void *arg),
                   void (*done)(void *arg), void *arg);
/* The port actually bound (useful with port 0). */
unsigned server_port(const struct server *srv);
