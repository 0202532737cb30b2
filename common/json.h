/*
 * json.h — JSON parsing (yajl tree) with limits, and generation helpers on yajl_gen.
 *
 * Parsing: sbx_json_parse() refuses inputs over max_bytes, nested deeper than max_depth, with
 * invalid UTF-8, or with trailing garbage; it never recurses on attacker-controlled depth before
 * the depth check. Errors: -E2BIG (too large), -ELOOP (too deep), -EINVAL (malformed); a short
 * human message is written to errbuf. Any thread.
 *
 * Generation: thin wrappers over yajl_gen that keep call sites short. sbx_jgen_new() returns a
 * generator that validates UTF-8; sbx_jgen_take() copies out the finished document.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "common/macro.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(yajl_val, yajl_tree_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(yajl_gen, yajl_gen_free)
#define _cleanup_json_ _cleanup_(yajl_tree_freep)
#define _cleanup_jgen_ _cleanup_(yajl_gen_freep)

int sbx_json_parse(const char *data, size_t len, size_t max_bytes, unsigned max_depth,
                   yajl_val *ret, char *errbuf, size_t errlen);

/* Object member lookup (NULL if obj is not an object or key absent). */
yajl_val sbx_json_get(yajl_val obj, const char *key);
/* Typed lookups: return the value or NULL/false when absent or of another type. */
const char *sbx_json_get_str(yajl_val obj, const char *key);
bool sbx_json_is_int(yajl_val v);

yajl_gen sbx_jgen_new(void);
void sbx_jgen_str(yajl_gen g, const char *s);
void sbx_jgen_strn(yajl_gen g, const char *s, size_t n);
void sbx_jgen_kstr(yajl_gen g, const char *k, const char *v); /* v NULL → null */
void sbx_jgen_kint(yajl_gen g, const char *k, long long v);
void sbx_jgen_kdbl(yajl_gen g, const char *k, double v);
void sbx_jgen_kbool(yajl_gen g, const char *k, bool v);
void sbx_jgen_knull(yajl_gen g, const char *k);
void sbx_jgen_key(yajl_gen g, const char *k);
/* Emits a parsed value (deep copy) — used to echo metadata objects back. */
void sbx_jgen_value(yajl_gen g, yajl_val v);
/* Copies the finished document out (caller frees). */
char *sbx_jgen_take(yajl_gen g, size_t *ret_len);
