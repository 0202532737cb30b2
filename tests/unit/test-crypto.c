/* test-crypto.c — common/crypto.c: digests (FIPS 180-2, RFC 4231), encodings, ids. */
#include "common/crypto.h"

#include <errno.h>
#include <string.h>

#include "common/macro.h"
#include "tests/unit/tap.h"

static void hex_of(const uint8_t *d, size_t n, char *out)
{
    sbx_hex(d, n, out);
}

static void test_sha256(void)
{
    static const struct {
        const char *in, *hex;
    } v[] = {
        { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
    };
    char hex[SBX_SHA256_HEX_LEN + 1];
    for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
        sbx_sha256_hex(v[i].in, strlen(v[i].in), hex);
        is_str(hex, v[i].hex, "sha256('%s')", v[i].in);
    }
    char *million = xmalloc(1000000);
    memset(million, 'a', 1000000);
    uint8_t d[SBX_SHA256_LEN];
    sbx_sha256(million, 1000000, d);
    hex_of(d, sizeof(d), hex);
    is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0",
           "sha256(1e6 x 'a')");
    free(million);
}

static void test_hmac(void)
{
    uint8_t k1[20], k3[20], d3[50], k4[25], d4[50], k6[131];
    memset(k1, 0x0b, sizeof(k1));
    memset(k3, 0xaa, sizeof(k3));
    memset(d3, 0xdd, sizeof(d3));
    for (size_t i = 0; i < sizeof(k4); i++)
        k4[i] = (uint8_t)(i + 1);
    memset(d4, 0xcd, sizeof(d4));
    memset(k6, 0xaa, sizeof(k6));
    static const char d6[] = "Test Using Larger Than Block-Size Key - Hash Key First";
    static const char d7[] = "This is a test using a larger than block-size key and a larger "
                             "than block-size data. The key needs to be hashed before being "
                             "used by the HMAC algorithm.";
    const struct {
        const void *key;
        size_t keylen;
        const void *data;
        size_t len;
        const char *hex;
    } v[] = {
        { k1, sizeof(k1), "Hi There", 8,
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7" },
        { "Jefe", 4, "what do ya want for nothing?", 28,
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843" },
        { k3, sizeof(k3), d3, sizeof(d3),
          "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe" },
        { k4, sizeof(k4), d4, sizeof(d4),
          "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b" },
        { k6, sizeof(k6), d6, sizeof(d6) - 1,
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54" },
        { k6, sizeof(k6), d7, sizeof(d7) - 1,
          "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2" },
    };
    static const int tc[] = { 1, 2, 3, 4, 6, 7 };
    for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
        uint8_t mac[SBX_SHA256_LEN];
        char hex[SBX_SHA256_HEX_LEN + 1];
        sbx_hmac_sha256(v[i].key, v[i].keylen, v[i].data, v[i].len, mac);
        hex_of(mac, sizeof(mac), hex);
        is_str(hex, v[i].hex, "HMAC-SHA256 RFC 4231 test case %d", tc[i]);
    }
}

static void test_base64(void)
{
    static const struct {
        const char *plain, *enc;
    } v[] = {
        { "", "" },         { "f", "Zg==" },        { "fo", "Zm8=" },         { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
        size_t n;
        _cleanup_free_ char *e = sbx_base64_encode(v[i].plain, strlen(v[i].plain), &n);
        is_str(e, v[i].enc, "base64('%s')", v[i].plain);
        is_int(n, strlen(v[i].enc), "base64('%s') length", v[i].plain);
        uint8_t *d = NULL;
        size_t dn = 0;
        is_int(sbx_base64_decode(e, n, 64, &d, &dn), 0, "decode '%s'", e);
        ok(dn == strlen(v[i].plain) && memcmp(d, v[i].plain, dn) == 0, "decode '%s' value", e);
        free(d);
    }

    /* all byte values round-trip, every length mod 3 */
    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    for (size_t len = 253; len <= 256; len++) {
        size_t n;
        _cleanup_free_ char *e = sbx_base64_encode(all, len, &n);
        uint8_t *d = NULL;
        size_t dn = 0;
        ok(sbx_base64_decode(e, n, 256, &d, &dn) == 0 && dn == len && memcmp(d, all, len) == 0,
           "round trip of %zu bytes", len);
        free(d);
    }

    /* padding is optional */
    uint8_t *d = NULL;
    size_t dn = 0;
    ok(sbx_base64_decode("Zm8", 3, 16, &d, &dn) == 0 && dn == 2 && memcmp(d, "fo", 2) == 0,
       "unpadded 'Zm8' decodes");
    free(d);
    d = NULL;
    ok(sbx_base64_decode("Zg", 2, 16, &d, &dn) == 0 && dn == 1 && d[0] == 'f',
       "unpadded 'Zg' decodes");
    free(d);

    static const char *const bad[] = {
        "Z",        /* 6 bits: not a byte */
        "Zm9vY",    /* 1 char into a quantum */
        "Zm9v!",    /* not in the alphabet */
        "Zm 9v",    /* whitespace */
        "Zm9v\n",   /* newline */
        "Zm-_",     /* base64url alphabet */
        "Zg=",      /* incomplete padding */
        "Zg===",    /* too much padding */
        "Zm9v=",    /* padding after a full quantum */
        "Zm9v====", /* a whole quantum of padding */
        "=",        /* padding only */
        "Zg==Zg==", /* padding in the middle */
        "Zh==",     /* non-zero bits after the last byte */
        "Zm9=",     /* non-zero bits after the last byte */
    };
    static uint8_t sentinel[1];
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        d = sentinel;
        is_int(sbx_base64_decode(bad[i], strlen(bad[i]), 64, &d, &dn), -EINVAL,
               "strict decode refuses bad[%zu]", i);
        ok(d == sentinel, "ret untouched for bad[%zu]", i);
    }
    is_int(sbx_base64_decode("Zm9vYmFy", 8, 5, &d, &dn), -E2BIG, "decoded size over max");
    d = NULL;
    is_int(sbx_base64_decode("Zm9vYmFy", 8, 6, &d, &dn), 0, "decoded size == max ok");
    free(d);
    d = NULL;
    is_int(sbx_base64_decode("Zm9v\0Zm9", 8, 6, &d, &dn), -EINVAL, "NUL byte refused");
}

static void test_misc(void)
{
    is_int(sbx_crc32("123456789", 9), 0xcbf43926u, "crc32('123456789')");
    is_int(sbx_crc32("", 0), 0, "crc32('')");

    char b[16];
    sbx_base62_u32(0, b, 6);
    is_str(b, "000000", "base62(0) width 6");
    sbx_base62_u32(61, b, 2);
    is_str(b, "0z", "base62(61) width 2");
    sbx_base62_u32(62, b, 2);
    is_str(b, "10", "base62(62) width 2");
    sbx_base62_u32(UINT32_MAX, b, 6);
    is_str(b, "4gfFC3", "base62(2^32-1) width 6");
    sbx_base62_u32(123456789, b, 8);
    is_str(b, "0008M0kX", "base62(123456789) width 8");
    sbx_base62_u32(UINT32_MAX, b, 3);
    is_str(b, "FC3", "base62 keeps the low digits when width is short");

    char r[33];
    sbx_random_base62(r, 32);
    is_int(strlen(r), 32, "random base62 length");
    is_int(strspn(r, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"), 32,
           "random base62 alphabet");

    char u1[37], u2[37];
    sbx_uuid4(u1);
    sbx_uuid4(u2);
    is_int(strlen(u1), 36, "uuid length");
    ok(sbx_uuid_valid(u1), "uuid4 is valid: %s", u1);
    ok(u1[8] == '-' && u1[13] == '-' && u1[18] == '-' && u1[23] == '-', "uuid dashes");
    ok(u1[14] == '4', "uuid version 4");
    ok(strchr("89ab", u1[19]) != NULL, "uuid variant 10xx");
    is_int(strspn(u1, "0123456789abcdef-"), 36, "uuid is lower-case hex");
    ok(strcmp(u1, u2) != 0, "two uuids differ");
    ok(sbx_uuid_valid("123E4567-E89B-12D3-A456-426614174000"), "upper-case uuid valid");
    ok(!sbx_uuid_valid("123e4567e89b12d3a456426614174000"), "uuid without dashes invalid");
    ok(!sbx_uuid_valid("123e4567-e89b-12d3-a456-42661417400"), "short uuid invalid");
    ok(!sbx_uuid_valid("123e4567-e89b-12d3-a456-4266141740000"), "long uuid invalid");
    ok(!sbx_uuid_valid("g23e4567-e89b-12d3-a456-426614174000"), "non-hex uuid invalid");
    ok(!sbx_uuid_valid("123e4567-e89b-12d3-a456_426614174000"), "misplaced dash invalid");
    ok(!sbx_uuid_valid(NULL), "NULL uuid invalid");

    ok(sbx_ct_equal("secret", 6, "secret", 6), "ct_equal equal");
    ok(!sbx_ct_equal("secret", 6, "secreT", 6), "ct_equal last byte differs");
    ok(!sbx_ct_equal("secret", 6, "secret!", 7), "ct_equal lengths differ");
    ok(!sbx_ct_equal("", 0, "a", 1), "ct_equal empty vs one");
    ok(sbx_ct_equal("", 0, "", 0), "ct_equal empty vs empty");

    uint8_t zero[4] = { 0 };
    char hex[9];
    sbx_hex(zero, 4, hex);
    is_str(hex, "00000000", "hex of zeros");
}

int main(void)
{
    plan_no_plan();
    test_sha256();
    test_hmac();
    test_base64();
    test_misc();
    return done();
}
