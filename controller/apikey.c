/* apikey.c — API key format (see apikey.h). Pure; any thread. */
#include "controller/apikey.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"

static const struct {
    unsigned bit;
    const char *name;
} scope_names[] = {
    { AUTH_SCOPE_READ, "read" },
    { AUTH_SCOPE_WRITE, "write" },
    { AUTH_SCOPE_EXECUTE, "execute" },
    { AUTH_SCOPE_ADMIN, "admin" },
};

unsigned apikey_scope_bit(const char *name)
{
    for (size_t i = 0; i < sizeof(scope_names) / sizeof(scope_names[0]); i++)
        if (strcmp(scope_names[i].name, name) == 0)
            return scope_names[i].bit;
    return 0;
}

const char *apikey_scope_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof(scope_names) / sizeof(scope_names[0]); i++)
        if (scope_names[i].bit == bit)
            return scope_names[i].name;
    return NULL;
}

static void checksum(const char *s, size_t n, char out[APIKEY_CHECK_LEN + 1])
{
    sbx_base62_u32(sbx_crc32(s, n), out, APIKEY_CHECK_LEN);
}

void apikey_generate(bool test_mode, char *out, struct apikey_parts *ret_parts)
{
    struct apikey_parts p = { .test_mode = test_mode };
    sbx_random_base62(p.key_id, APIKEY_ID_LEN);
    sbx_random_base62(p.secret, APIKEY_SECRET_LEN);
    int n = snprintf(out, APIKEY_MAX_LEN + 1, "sk_%s_%s_%s", test_mode ? "test" : "live",
                     p.key_id, p.secret);
    char check[APIKEY_CHECK_LEN + 1];
    checksum(out, (size_t)n, check);
    memcpy(out + n, check, APIKEY_CHECK_LEN + 1);
    if (ret_parts)
        *ret_parts = p;
}

static bool all_base62(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
            return false;
    }
    return true;
}

int apikey_parse(const char *key, struct apikey_parts *ret)
{
    const size_t want = 3 + 5 + APIKEY_ID_LEN + 1 + APIKEY_SECRET_LEN + APIKEY_CHECK_LEN;
    if (!key || strlen(key) != want)
        return -EINVAL;
    bool test;
    if (strncmp(key, "sk_live_", 8) == 0)
        test = false;
    else if (strncmp(key, "sk_test_", 8) == 0)
        test = true;
    else
        return -EINVAL;
    const char *id = key + 8, *sep = id + APIKEY_ID_LEN, *secret = sep + 1,
               *check = secret + APIKEY_SECRET_LEN;
    if (*sep != '_' || !all_base62(id, APIKEY_ID_LEN) ||
        !all_base62(secret, APIKEY_SECRET_LEN + APIKEY_CHECK_LEN))
        return -EINVAL;
    char expect[APIKEY_CHECK_LEN + 1];
    checksum(key, (size_t)(check - key), expect);
    if (memcmp(expect, check, APIKEY_CHECK_LEN) != 0)
        return -EINVAL;
    struct apikey_parts p = { .test_mode = test };
    memcpy(p.key_id, id, APIKEY_ID_LEN);
    memcpy(p.secret, secret, APIKEY_SECRET_LEN);
    *ret = p;
    return 0;
}

void apikey_prefix(const struct apikey_parts *parts, char *out, size_t outlen)
{
    snprintf(out, outlen, "sk_%s_%s", parts->test_mode ? "test" : "live", parts->key_id);
}
