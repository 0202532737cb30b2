/*
 * http.h — the request and response objects handlers see, and response helpers.
 *
 * A `struct http_request` is filled on the event-loop thread (method, path, headers, body) and
 * then handed, whole, to one worker thread, which fills the `struct http_response`. The loop
 * writes the response after the worker is done. Handlers never see libwebsockets.
 *
 * Error envelope (every error, everywhere): {"error":{"code","message","request_id"}} via
 * http_error(). `code` is a stable machine-readable string; `message` is for the API user and
 * never carries internal detail.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "common/buf.h"

enum http_method {
    HTTP_GET,
    HTTP_POST,
    HTTP_PUT,
    HTTP_PATCH,
    HTTP_DELETE,
    HTTP_HEAD,
    HTTP_OPTIONS,
    _HTTP_METHOD_MAX,
};

const char *http_method_name(enum http_method m);

#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_QUERY 32
#define HTTP_REQUEST_ID_MAX 128

struct http_query_arg {
    char *name;
    char *value;
};

/* The caller identity established by auth.c (empty when the route needs no auth). */
struct auth_identity {
    bool authenticated;
    char key_id[37];  /* api_keys.id (uuid) */
    char org_id[37];  /* organization uuid */
    unsigned scopes;  /* AUTH_SCOPE_* bits */
    bool test_mode;   /* an sk_test_ key */
    bool jwt;         /* authenticated by a JWT (key_id is empty) */
    char subject[129]; /* JWT user claim (empty for API keys) */
};

struct http_request {
    enum http_method method;
    char *path;                              /* decoded, normalised by lws */
    char request_id[HTTP_REQUEST_ID_MAX + 1]; /* echoed or generated */
    char *authorization;                     /* raw header or NULL */
    char *org_header;                        /* X-Org-Id or NULL */
    char *content_type;                      /* or NULL */
    char *idempotency_key;                   /* or NULL */
    char *admin_token;                       /* X-Admin-Token or NULL (api-admin.c) */
    struct http_query_arg query[HTTP_MAX_QUERY];
    size_t n_query;
    struct sbx_buf body;
    /* Filled by the router: */
    const struct route *route;
    char *params[HTTP_MAX_PARAMS];
    size_t n_params;
    struct auth_identity who;
    uint64_t start_us;
};

/* Audit information a mutating handler leaves for the audit writer. */
struct http_audit {
    const char *action;       /* e.g. "api_key.create"; NULL = the route's default */
    const char *resource;     /* resource type, e.g. "api_key" */
    char resource_id[64];
    char sandbox_id[37];
    char *details_json;       /* optional JSON object text (owned) */
};

struct http_response {
    int status;
    const char *content_type;  /* static string */
    char *body;                /* owned */
    size_t body_len;
    /* A file body instead of body (large downloads): an open read-only fd, owned (closed by
     * http_response_free), of which body_fd_len bytes are sent from its current offset by the
     * event loop, one read() of at most 64 KiB per WRITEABLE. body_fd_set marks it in use
     * (0 is a valid fd). Set with http_body_fd(). */
    bool body_fd_set;
    int body_fd;
    uint64_t body_fd_len;
    const char *error_code;    /* set by http_error, for logs/audit */
    char *error_message;       /* owned; set by http_error */
    char *location;            /* optional Location header (owned) */
    unsigned retry_after;      /* seconds, 0 = none */
    bool idempotent_replayed;  /* Idempotent-Replayed: true (controller/idempotency.c) */
    struct {                   /* X-RateLimit-* headers (controller/ratelimit.c) */
        bool applied;
        uint32_t limit, remaining, reset, window;
    } ratelimit;
    struct http_audit audit;
    /* A streaming response (SSE / WebSocket hand-off) owned by the stream layer. */
    struct stream *stream;
};

/* Query argument by exact name, or NULL. */
const char *http_query(const struct http_request *req, const char *name);

/* Sets a JSON error response: status, code and a printf-style message for the API user. */
void http_error(struct http_response *resp, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Takes the finished document from g as a JSON response with the given status. */
void http_json(struct http_response *resp, int status, yajl_gen g);
/* {"success": true} */
void http_success(struct http_response *resp);
/* 200 with content_type and the file fd (ownership taken) as the body, len bytes. */
void http_body_fd(struct http_response *resp, const char *content_type, int fd, uint64_t len);
/* Sets a raw body (copied). */
void http_raw(struct http_response *resp, int status, const char *content_type, const char *body,
              size_t len);
/* Builds the envelope text for an error response (used by the loop for early errors). */
char *http_error_body(int status, const char *code, const char *message, const char *request_id,
                      size_t *ret_len);

void http_request_free(struct http_request *req);
void http_response_free(struct http_response *resp);

/* Parses the request body as a JSON object, enforcing content type, size and depth limits.
 * On failure, sets the error response (415 / 400) and returns a negative errno. */
int http_parse_json_body(const struct http_request *req, struct http_response *resp,
                         unsigned max_depth, yajl_val *ret);

/* The status line's reason phrase (lws only knows some). */
const char *http_reason(int status);
