/* http.c — request/response helpers shared by all handlers (see http.h). Worker threads. */
#include "controller/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/json.h"
#include "controller/validate.h"

static const char *const method_names[_HTTP_METHOD_MAX] = {
    [HTTP_GET] = "GET",       [HTTP_POST] = "POST", [HTTP_PUT] = "PUT",
    [HTTP_PATCH] = "PATCH",   [HTTP_DELETE] = "DELETE", [HTTP_HEAD] = "HEAD",
    [HTTP_OPTIONS] = "OPTIONS",
};

const char *http_method_name(enum http_method m)
{
    return m < _HTTP_METHOD_MAX ? method_names[m] : "?";
}

const char *http_query(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_query; i++)
        if (strcmp(req->query[i].name, name) == 0)
            return req->query[i].value;
    return NULL;
}

char *http_error_body(int status, const char *code, const char *message, const char *request_id,
                      size_t *ret_len)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    (void)status;
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "error");
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "code", code);
    sbx_jgen_kstr(g, "message", message);
    sbx_jgen_kstr(g, "request_id", request_id);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    return sbx_jgen_take(g, ret_len);
}

void http_error(struct http_response *resp, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    free(resp->body);
    free(resp->error_message);
    resp->status = status;
    resp->error_code = code;
    resp->error_message = xstrdup(msg);
    resp->content_type = "application/json";
    resp->body = NULL; /* the envelope is built when the request id is known: see server.c */
    resp->body_len = 0;
}

void http_json(struct http_response *resp, int status, yajl_gen g)
{
    free(resp->body);
    resp->status = status;
    resp->content_type = "application/json";
    resp->body = sbx_jgen_take(g, &resp->body_len);
}

void http_success(struct http_response *resp)
{
    http_raw(resp, 200, "application/json", "{\"success\":true}", 16);
}

void http_raw(struct http_response *resp, int status, const char *content_type, const char *body,
              size_t len)
{
    free(resp->body);
    resp->status = status;
    resp->content_type = content_type;
    resp->body = xmalloc(len + 1);
    memcpy(resp->body, body, len);
    resp->body[len] = '\0';
    resp->body_len = len;
}

void http_request_free(struct http_request *req)
{
    free(req->path);
    free(req->authorization);
    free(req->org_header);
    free(req->content_type);
    free(req->idempotency_key);
    free(req->admin_token);
    for (size_t i = 0; i < req->n_query; i++) {
        free(req->query[i].name);
        free(req->query[i].value);
    }
    for (size_t i = 0; i < req->n_params; i++)
        free(req->params[i]);
    sbx_buf_free(&req->body);
}

void http_body_fd(struct http_response *resp, const char *content_type, int fd, uint64_t len)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    if (resp->body_fd_set)
        close(resp->body_fd);
    resp->status = 200;
    resp->content_type = content_type;
    resp->body_fd_set = true;
    resp->body_fd = fd;
    resp->body_fd_len = len;
}

void http_response_free(struct http_response *resp)
{
    if (resp->body_fd_set) {
        close(resp->body_fd);
        resp->body_fd_set = false;
    }
    free(resp->body);
    free(resp->error_message);
    free(resp->location);
    free(resp->audit.details_json);
}

int http_parse_json_body(const struct http_request *req, struct http_response *resp,
                         unsigned max_depth, yajl_val *ret)
{
    const char *ct = req->content_type;
    if (!ct || strncasecmp(ct, "application/json", 16) != 0 ||
        (ct[16] != '\0' && ct[16] != ';' && ct[16] != ' ')) {
        http_error(resp, 415, "unsupported_media_type",
                   "request body must be application/json");
        return -EINVAL;
    }
    if (req->body.len == 0) {
        http_error(resp, 400, "invalid_json", "request body is empty; a JSON object is required");
        return -EINVAL;
    }
    if (!v_utf8(req->body.data, req->body.len)) {
        http_error(resp, 400, "invalid_json", "request body is not valid UTF-8");
        return -EINVAL;
    }
    char err[256];
    yajl_val v = NULL;
    int r = sbx_json_parse(req->body.data, req->body.len, SIZE_MAX, max_depth, &v, err,
                           sizeof(err));
    if (r < 0) {
        http_error(resp, 400, "invalid_json", "%s", err);
        return r;
    }
    if (!YAJL_IS_OBJECT(v)) {
        yajl_tree_free(v);
        http_error(resp, 422, "validation_error", "request body must be a JSON object");
        return -EINVAL;
    }
    *ret = v;
    return 0;
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
    }
}
