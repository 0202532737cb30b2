/* test-apikey.c — controller/apikey.c: key format, checksum, scopes. */
#include "controller/apikey.h"

#include <errno.h>
#include <string.h>

#include "tests/unit/tap.h"

static void test_roundtrip(void)
{
    char key[APIKEY_MAX_LEN + 1], prefix[32];
    struct apikey_parts gen, parsed;
    apikey_generate(false, key, &gen);
    ok(strncmp(key, "sk_live_", 8) == 0, "live key prefix: %s", key);
    ok(strchr(key, '.') == NULL, "no '.' in a key (SDKs treat dotted tokens as JWTs)");
    for (const char *c = key; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              *c == '_')) {
            ok(0, "key character set");
            return;
        }
    is_int(apikey_parse(key, &parsed), 0, "generated key parses");
    is_str(parsed.key_id, gen.key_id, "key id survives");
    is_str(parsed.secret, gen.secret, "secret survives");
    ok(!parsed.test_mode, "live mode");
    apikey_prefix(&parsed, prefix, sizeof(prefix));
    ok(strncmp(key, prefix, strlen(prefix)) == 0 && strlen(prefix) == 8 + APIKEY_ID_LEN,
       "display prefix is sk_live_<key_id>");

    apikey_generate(true, key, &gen);
    ok(strncmp(key, "sk_test_", 8) == 0, "test key prefix");
    is_int(apikey_parse(key, &parsed), 0, "test key parses");
    ok(parsed.test_mode, "test mode");

    char other[APIKEY_MAX_LEN + 1];
    apikey_generate(false, other, NULL);
    ok(strcmp(key, other) != 0, "two keys differ");
}

static void test_rejects(void)
{
    char key[APIKEY_MAX_LEN + 1];
    struct apikey_parts p;
    apikey_generate(false, key, NULL);
    size_t n = strlen(key);

    /* Every single-character substitution must break the checksum or the shape. */
    int caught = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        char k2[APIKEY_MAX_LEN + 1];
        memcpy(k2, key, n + 1);
        k2[i] = k2[i] == 'A' ? 'B' : 'A';
        total++;
        if (apikey_parse(k2, &p) == -EINVAL)
            caught++;
    }
    is_int(caught, total, "all %d one-character corruptions refused", total);

    is_int(apikey_parse("", &p), -EINVAL, "empty");
    is_int(apikey_parse(NULL, &p), -EINVAL, "NULL");
    char k3[APIKEY_MAX_LEN + 2];
    snprintf(k3, sizeof(k3), "%sx", key);
    is_int(apikey_parse(k3, &p), -EINVAL, "one character too long");
    k3[n - 1] = '\0';
    is_int(apikey_parse(k3, &p), -EINVAL, "one character too short");
    memcpy(k3, key, n + 1);
    memcpy(k3, "sk_prod_", 8);
    is_int(apikey_parse(k3, &p), -EINVAL, "unknown mode");
    memcpy(k3, key, n + 1);
    k3[8 + APIKEY_ID_LEN] = '.';
    is_int(apikey_parse(k3, &p), -EINVAL, "separator must be '_'");
    is_int(apikey_parse("sk_live_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbcccccc", &p), -EINVAL,
           "well-shaped key with a wrong checksum");
}

static void test_scopes(void)
{
    is_int(apikey_scope_bit("read"), AUTH_SCOPE_READ, "read");
    is_int(apikey_scope_bit("write"), AUTH_SCOPE_WRITE, "write");
    is_int(apikey_scope_bit("execute"), AUTH_SCOPE_EXECUTE, "execute");
    is_int(apikey_scope_bit("admin"), AUTH_SCOPE_ADMIN, "admin");
    is_int(apikey_scope_bit("root"), 0, "unknown scope");
    is_int(apikey_scope_bit("READ"), 0, "scope names are case-sensitive");
    is_str(apikey_scope_name(AUTH_SCOPE_EXECUTE), "execute", "name of a bit");
    ok(apikey_scope_name(0x100) == NULL, "no name for an unknown bit");
}

int main(void)
{
    plan_no_plan();
    test_roundtrip();
    test_rejects();
    test_scopes();
    return done();
}
