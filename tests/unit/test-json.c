/* test-json.c — common/json.c: bounded parsing and generation helpers. */
#include "common/json.h"

#include <errno.h>
#include <string.h>

#include "tests/unit/tap.h"

static int parse(const char *s, size_t len, size_t max_bytes, unsigned max_depth, yajl_val *ret,
                 char *err, size_t errlen)
{
    *ret = NULL;
    err[0] = '\0';
    return sbx_json_parse(s, len, max_bytes, max_depth, ret, err, errlen);
}

static void expect_parse(const char *s, size_t len, int want, const char *what)
{
    yajl_val v = NULL;
    char err[256];
    int r = parse(s, len, 1 << 20, 32, &v, err, sizeof(err));
    is_int(r, want, "%s", what);
    if (want < 0) {
        ok(v == NULL, "%s: no value on error", what);
        ok(err[0] != '\0', "%s: message set (%s)", what, err);
    }
    yajl_tree_free(v);
}

static char *nested(unsigned depth, char open, char close)
{
    char *s = xmalloc(2 * depth + 1);
    memset(s, open, depth);
    memset(s + depth, close, depth);
    s[2 * depth] = '\0';
    return s;
}

static void test_parse(void)
{
    yajl_val v;
    char err[256];

    static const char doc[] = "{\"a\":1,\"b\":\"x\",\"c\":[true,false,null],\"d\":{\"e\":1.5}}";
    is_int(parse(doc, strlen(doc), 1024, 8, &v, err, sizeof(err)), 0, "valid document parses");
    ok(v && YAJL_IS_OBJECT(v), "root is an object");
    ok(sbx_json_is_int(sbx_json_get(v, "a")), "a is an int");
    is_int(YAJL_GET_INTEGER(sbx_json_get(v, "a")), 1, "a == 1");
    is_str(sbx_json_get_str(v, "b"), "x", "get_str b");
    ok(sbx_json_get_str(v, "a") == NULL, "get_str on a non-string is NULL");
    ok(sbx_json_get(v, "zz") == NULL, "absent key is NULL");
    ok(sbx_json_get(sbx_json_get(v, "c"), "x") == NULL, "get on an array is NULL");
    ok(sbx_json_get(NULL, "x") == NULL, "get on NULL is NULL");
    ok(!sbx_json_is_int(sbx_json_get(sbx_json_get(v, "d"), "e")), "1.5 is not an int");
    yajl_tree_free(v);

    /* depth limit */
    _cleanup_free_ char *d32 = nested(32, '[', ']');
    _cleanup_free_ char *d33 = nested(33, '[', ']');
    is_int(parse(d32, strlen(d32), 1 << 20, 32, &v, err, sizeof(err)), 0, "depth 32 of 32 ok");
    yajl_tree_free(v);
    is_int(parse(d33, strlen(d33), 1 << 20, 32, &v, err, sizeof(err)), -ELOOP,
           "depth 33 of 32 → -ELOOP");
    is_str(err, "JSON nesting exceeds depth 32", "depth message");
    _cleanup_free_ char *deep = nested(1000000, '[', ']');
    is_int(parse(deep, strlen(deep), 1 << 22, 32, &v, err, sizeof(err)), -ELOOP,
           "depth 1e6 → -ELOOP without recursion");
    static const char mixed[] = "{\"a\":[{\"b\":[{}]}]}";
    is_int(parse(mixed, strlen(mixed), 1024, 4, &v, err, sizeof(err)), -ELOOP,
           "objects and arrays both count");
    is_int(parse(mixed, strlen(mixed), 1024, 5, &v, err, sizeof(err)), 0, "depth 5 of 5 ok");
    yajl_tree_free(v);
    static const char brackets_in_str[] = "{\"a\":\"[[[[[[[[[[\\\"[[[[\"}";
    is_int(parse(brackets_in_str, strlen(brackets_in_str), 1024, 1, &v, err, sizeof(err)), 0,
           "brackets inside strings (and after \\\") do not count");
    yajl_tree_free(v);

    /* size limit */
    static const char s10[] = "[1,2,3,45]";
    is_int(parse(s10, 10, 10, 8, &v, err, sizeof(err)), 0, "exactly max_bytes ok");
    yajl_tree_free(v);
    is_int(parse(s10, 10, 9, 8, &v, err, sizeof(err)), -E2BIG, "max_bytes + 1 → -E2BIG");
    is_str(err, "JSON document exceeds 9 bytes", "size message");

    /* malformed */
    expect_parse("{\"a\":\"\xff\"}", 8, -EINVAL, "invalid UTF-8 in a string → -EINVAL");
    expect_parse("{\"a\":\"\xc0\xaf\"}", 9, -EINVAL, "overlong UTF-8 → -EINVAL");
    expect_parse("{\"a\":\"\xed\xa0\x80\"}", 10, -EINVAL, "UTF-8 surrogate → -EINVAL");
    expect_parse("{\"a\":1}\0", 8, -EINVAL, "trailing NUL byte → -EINVAL");
    expect_parse("{\"a\":\"x\0y\"}", 11, -EINVAL, "NUL inside a string → -EINVAL");
    expect_parse("[\"a\\u0000b\"]", 12, -EINVAL, "\\u0000 escape → -EINVAL (no truncation)");
    expect_parse("[\"a\\\\u0000b\"]", 13, 0, "escaped backslash before u0000 is fine");
    expect_parse("{\"a\":1} x", 9, -EINVAL, "trailing garbage → -EINVAL");
    expect_parse("{\"a\":1}{}", 9, -EINVAL, "two documents → -EINVAL");
    expect_parse("{\"a\":1} \n\t", 10, 0, "trailing whitespace ok");
    expect_parse("", 0, -EINVAL, "empty input → -EINVAL");
    expect_parse("{\"a\":}", 6, -EINVAL, "missing value → -EINVAL");
    expect_parse("{\"a\":1,}", 8, -EINVAL, "trailing comma → -EINVAL");
    expect_parse("[1", 2, -EINVAL, "truncated → -EINVAL");
    expect_parse("{'a':1}", 7, -EINVAL, "single quotes → -EINVAL");
    expect_parse("\"abc\\", 5, -EINVAL, "ends in a backslash → -EINVAL");
    expect_parse("[\"\\u00e9\\ud83d\\ude00\"]", 22, 0, "\\u escapes and surrogate pairs ok");
    expect_parse("{\"a\":1}", 3, -EINVAL, "len is honoured (no NUL needed)");

    is_int(parse("{\"a\":1} x", 9, 1024, 8, &v, err, sizeof(err)), -EINVAL, "garbage again");
    ok(strchr(err, '\n') == NULL, "message is one line (%s)", err);
    char tiny[4];
    is_int(parse("[", 1, 1024, 8, &v, tiny, sizeof(tiny)), -EINVAL, "tiny errbuf");
    is_int(strlen(tiny), 3, "tiny errbuf truncated");
}

static char *gen_take(yajl_gen g)
{
    return sbx_jgen_take(g, NULL);
}

static void test_generate(void)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "s", "q\"b\\s/n\nt\tc\x01 \xc3\xa9");
    sbx_jgen_kstr(g, "null", NULL);
    sbx_jgen_kint(g, "i", -42);
    sbx_jgen_kdbl(g, "d", 0.5);
    sbx_jgen_kbool(g, "t", true);
    sbx_jgen_kbool(g, "f", false);
    sbx_jgen_knull(g, "n");
    sbx_jgen_kstr(g, "bad", "ab\xff");
    sbx_jgen_key(g, "arr");
    yajl_gen_array_open(g);
    sbx_jgen_strn(g, "\xe2\x82", 2);
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    size_t len;
    _cleanup_free_ char *out = sbx_jgen_take(g, &len);
    is_str(out,
           "{\"s\":\"q\\\"b\\\\s/n\\nt\\tc\\u0001 \xc3\xa9\",\"null\":null,\"i\":-42,\"d\":0.5,"
           "\"t\":true,\"f\":false,\"n\":null,\"bad\":\"\xef\xbf\xbd\",\"arr\":["
           "\"\xef\xbf\xbd\"]}",
           "generation escapes and replaces invalid UTF-8 with U+FFFD");
    is_int(len, strlen(out), "take returns the length");

    /* the output parses back */
    yajl_val v;
    char err[256];
    is_int(parse(out, len, 1 << 20, 8, &v, err, sizeof(err)), 0, "generated JSON parses");
    is_str(sbx_json_get_str(v, "s"), "q\"b\\s/n\nt\tc\x01 \xc3\xa9", "string round-trips");

    /* sbx_jgen_value deep-copies a parsed tree */
    _cleanup_jgen_ yajl_gen g2 = sbx_jgen_new();
    sbx_jgen_value(g2, v);
    _cleanup_free_ char *out2 = gen_take(g2);
    is_str(out2, out, "jgen_value regenerates the same document");
    yajl_tree_free(v);

    static const char nums[] = "[1e400,-0,12345678901234567890123,0.1,-9223372036854775808]";
    is_int(parse(nums, strlen(nums), 1024, 8, &v, err, sizeof(err)), 0, "numbers parse");
    _cleanup_jgen_ yajl_gen g3 = sbx_jgen_new();
    sbx_jgen_value(g3, v);
    _cleanup_free_ char *out3 = gen_take(g3);
    yajl_val v3;
    is_int(parse(out3, strlen(out3), 1024, 8, &v3, err, sizeof(err)), 0,
           "regenerated numbers parse (%s)", out3);
    yajl_tree_free(v3);
    yajl_tree_free(v);

    /* An embedded NUL is generated as \u0000 (and refused by the parser, see above). */
    _cleanup_jgen_ yajl_gen g5 = sbx_jgen_new();
    sbx_jgen_strn(g5, "a\0b", 3);
    _cleanup_free_ char *out5 = gen_take(g5);
    is_str(out5, "\"a\\u0000b\"", "NUL generated as \\u0000");

    /* An invalid-UTF-8 key must not break the document. */
    _cleanup_jgen_ yajl_gen g4 = sbx_jgen_new();
    yajl_gen_map_open(g4);
    sbx_jgen_kstr(g4, "k\xff", "v");
    yajl_gen_map_close(g4);
    _cleanup_free_ char *out4 = gen_take(g4);
    is_str(out4, "{\"\xef\xbf\xbd\":\"v\"}", "invalid UTF-8 key replaced");
}

int main(void)
{
    plan_no_plan();
    test_parse();
    test_generate();
    return done();
}
