/* test-http.c — controller/http.c and validate.c: the error envelope, JSON body checks,
 * field validation, UTF-8 and e-mail shape. */
#include "controller/http.h"

#include <errno.h>
#include <string.h>

#include "common/json.h"
#include "controller/validate.h"
#include "tests/unit/tap.h"

static void test_envelope(void)
{
    size_t n;
    char *body = http_error_body(404, "not_found", "no \"such\" thing\n", "req-1", &n);
    yajl_val v = yajl_tree_parse(body, NULL, 0);
    ok(v != NULL, "envelope is JSON: %s", body);
    const char *code[] = { "error", "code", NULL }, *msg[] = { "error", "message", NULL },
               *rid[] = { "error", "request_id", NULL };
    is_str(YAJL_GET_STRING(yajl_tree_get(v, code, yajl_t_string)), "not_found", "code");
    is_str(YAJL_GET_STRING(yajl_tree_get(v, msg, yajl_t_string)), "no \"such\" thing\n",
           "message escaped and intact");
    is_str(YAJL_GET_STRING(yajl_tree_get(v, rid, yajl_t_string)), "req-1", "request id");
    ok(v && v->u.object.len == 1, "only the error member at top level");
    yajl_tree_free(v);
    free(body);

    struct http_response resp = { 0 };
    http_error(&resp, 422, "validation_error", "field '%s' bad", "x");
    is_int(resp.status, 422, "status");
    is_str(resp.error_code, "validation_error", "code kept for logs");
    is_str(resp.error_message, "field 'x' bad", "formatted message");
    http_response_free(&resp);
}

static int parse(const char *ct, const char *body, struct http_response *resp, yajl_val *v)
{
    struct http_request req = { 0 };
    sbx_buf_init(&req.body, 0);
    req.content_type = ct ? xstrdup(ct) : NULL;
    if (sbx_buf_puts(&req.body, body) < 0)
        return -ENOMEM;
    int r = http_parse_json_body(&req, resp, 8, v);
    http_request_free(&req);
    return r;
}

static void test_body(void)
{
    struct http_response resp = { 0 };
    yajl_val v = NULL;
    is_int(parse("application/json", "{\"a\":1}", &resp, &v), 0, "object body");
    yajl_tree_free(v);
    is_int(parse("application/json; charset=utf-8", "{}", &resp, &v), 0, "content type params");
    yajl_tree_free(v);
    parse("text/plain", "{}", &resp, &v);
    is_int(resp.status, 415, "wrong content type → 415");
    parse(NULL, "{}", &resp, &v);
    is_int(resp.status, 415, "missing content type → 415");
    parse("application/jsonx", "{}", &resp, &v);
    is_int(resp.status, 415, "content type prefix trick → 415");
    parse("application/json", "{\"a\":", &resp, &v);
    is_int(resp.status, 400, "truncated → 400");
    is_str(resp.error_code, "invalid_json", "invalid_json code");
    parse("application/json", "[1,2]", &resp, &v);
    is_int(resp.status, 422, "array body (well-formed, wrong type) → 422");
    parse("application/json", "{\"a\":\"\xff\"}", &resp, &v);
    is_int(resp.status, 400, "invalid UTF-8 → 400");
    parse("application/json", "[[[[[[[[[[[[1]]]]]]]]]]]]", &resp, &v);
    is_int(resp.status, 400, "too deep → 400");
    parse("application/json", "", &resp, &v);
    is_int(resp.status, 400, "empty → 400");
    http_response_free(&resp);
}

static void test_validate(void)
{
    yajl_val o = yajl_tree_parse("{\"s\":\"abc\",\"n\":5,\"b\":true,\"x\":1.5,\"m\":{\"K\":\"v\"},"
                                 "\"bad\":{\"K\":1}}",
                                 NULL, 0);
    struct http_response resp = { 0 };
    const char *s = NULL;
    long long n = 0;
    bool present = false, b = false;
    yajl_val m = NULL;
    is_int(v_string(o, "s", true, 1, 10, &s, &resp), 0, "string");
    is_str(s, "abc", "string value");
    is_int(v_string(o, "s", true, 1, 2, &s, &resp), -EINVAL, "string too long");
    is_int(resp.status, 422, "→ 422");
    is_int(v_string(o, "n", true, 1, 10, &s, &resp), -EINVAL, "number is not a string");
    is_int(v_string(o, "missing", true, 1, 10, &s, &resp), -EINVAL, "required missing");
    s = "untouched";
    is_int(v_string(o, "missing", false, 1, 10, &s, &resp), 0, "optional missing");
    is_str(s, "untouched", "optional missing leaves the default");
    is_int(v_int(o, "n", true, 1, 10, &n, &present, &resp), 0, "int");
    ok(n == 5 && present, "int value and presence");
    is_int(v_int(o, "n", true, 6, 10, &n, &present, &resp), -EINVAL, "int below range");
    is_int(v_int(o, "x", true, 0, 10, &n, &present, &resp), -EINVAL, "float is not an int");
    is_int(v_bool(o, "b", &b, &resp), 0, "bool");
    ok(b, "bool value");
    is_int(v_bool(o, "s", &b, &resp), -EINVAL, "string is not a bool");
    is_int(v_string_map(o, "m", 4, 10, &m, &resp), 0, "string map");
    is_int(v_string_map(o, "bad", 4, 10, &m, &resp), -EINVAL, "map with a non-string value");
    is_int(v_string_map(o, "m", 0, 10, &m, &resp), -EINVAL, "map over the entry limit");
    http_response_free(&resp);
    yajl_tree_free(o);

    ok(v_utf8("h\xc3\xa9llo", 6), "valid UTF-8");
    ok(!v_utf8("\xc3", 1), "truncated sequence");
    ok(!v_utf8("\xc0\xaf", 2), "overlong encoding");
    ok(!v_utf8("\xed\xa0\x80", 3), "surrogate");
    ok(!v_utf8("\xf4\x90\x80\x80", 4), "above U+10FFFF");
    ok(v_email("a.b+c@example.co"), "plain e-mail");
    ok(!v_email("no-at.example.com"), "missing @");
    ok(!v_email("a@b"), "domain without a dot");
    ok(!v_email("a@@b.co"), "two @");
    ok(!v_email("a b@c.co"), "space");
    ok(!v_email("@b.co"), "empty local part");
    ok(v_iso8601("2026-11-22"), "date");
    ok(v_iso8601("2026-11-22T01:02:03Z"), "date-time Z");
    ok(v_iso8601("2026-11-22T01:02:03.123456+01:00"), "fraction and offset");
    ok(v_iso8601("2026-11-22 01:02"), "space separator, no seconds");
    ok(!v_iso8601("yesterday"), "PostgreSQL's special words are not ISO 8601");
    ok(!v_iso8601("2026-11-22T"), "dangling T");
    ok(!v_iso8601("2026-1-22"), "one-digit month");
    ok(!v_iso8601("2026-11-22T01:02:03Zjunk"), "trailing junk");
    ok(v_not_blank(" a "), "not blank");
    ok(!v_not_blank(" \t\n"), "blank");
}

int main(void)
{
    plan_no_plan();
    test_envelope();
    test_body();
    test_validate();
    return done();
}
