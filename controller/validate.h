/*
 * validate.h — typed access to JSON request fields with limits. On a violation each function
 * sets a 422 `validation_error` response naming the field and returns -EINVAL; an absent
 * optional field returns 0 and leaves *ret untouched (and *present false when given).
 * Worker threads; pure.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_tree.h>

#include "controller/http.h"

int v_string(yajl_val obj, const char *key, bool required, size_t min_len, size_t max_len,
             const char **ret, struct http_response *resp);
int v_int(yajl_val obj, const char *key, bool required, long long min, long long max,
          long long *ret, bool *present, struct http_response *resp);
int v_bool(yajl_val obj, const char *key, bool *ret, struct http_response *resp);
/* An optional object of string values (env-style maps); max entries and value length. */
int v_string_map(yajl_val obj, const char *key, size_t max_entries, size_t max_len,
                 yajl_val *ret, struct http_response *resp);
/* Valid UTF-8 check for strings that came from elsewhere than yajl. */
bool v_utf8(const char *s, size_t n);
/* An ISO 8601 / RFC 3339 date or date-time: YYYY-MM-DD[(T| )hh:mm[:ss[.frac]][Z|±hh[:mm]]]. */
bool v_iso8601(const char *s);
/* A string with at least one non-whitespace character. */
bool v_not_blank(const char *s);
/* An e-mail address of a plausible shape: local@domain.tld, no spaces, ≤ 254 bytes. */
bool v_email(const char *s);
