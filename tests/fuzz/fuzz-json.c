/*
 * fuzz-json.c — sbx_json_parse() on arbitrary bytes, then regeneration (common/json.c).
 *
 * An accepted document is regenerated with sbx_jgen_value(); the output must parse again
 * (with the same depth limit) and regenerate to the same bytes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

#define MAX_DEPTH 64

static char *regen(yajl_val v, size_t *len)
{
    yajl_gen g = sbx_jgen_new();
    sbx_jgen_value(g, v);
    char *out = sbx_jgen_take(g, len);
    yajl_gen_free(g);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    yajl_val v = NULL;
    char err[256] = "";
    int r = sbx_json_parse((const char *)data, size, 1 << 20, MAX_DEPTH, &v, err, sizeof(err));
    if (r < 0) {
        if (v || err[0] == '\0' || (r != -EINVAL && r != -ELOOP && r != -E2BIG))
            abort();
        return 0;
    }
    size_t len1, len2;
    char *out1 = regen(v, &len1);
    yajl_val v2 = NULL;
    r = sbx_json_parse(out1, len1, SIZE_MAX, MAX_DEPTH, &v2, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "regenerated JSON does not parse (%s): %s\n", err, out1);
        abort();
    }
    char *out2 = regen(v2, &len2);
    if (len1 != len2 || memcmp(out1, out2, len1) != 0) {
        fprintf(stderr, "regeneration not stable:\n%s\n%s\n", out1, out2);
        abort();
    }
    free(out1);
    free(out2);
    yajl_tree_free(v2);
    yajl_tree_free(v);
    return 0;
}
