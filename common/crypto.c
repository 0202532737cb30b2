/* crypto.c — hashing, randomness, encodings on OpenSSL (see crypto.h). Any thread. */
#include "common/crypto.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "common/macro.h"

void sbx_sha256(const void *data, size_t len, uint8_t out[SBX_SHA256_LEN])
{
    unsigned int n = 0;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL))
        abort();
}

void sbx_hex(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * n] = '\0';
}

void sbx_sha256_hex(const void *data, size_t len, char out[SBX_SHA256_HEX_LEN + 1])
{
    uint8_t d[SBX_SHA256_LEN];
    sbx_sha256(data, len, d);
    sbx_hex(d, sizeof(d), out);
}

void sbx_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                     uint8_t out[SBX_SHA256_LEN])
{
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, data, len, out, &n))
        abort();
}

void sbx_random_bytes(void *out, size_t n)
{
    if (RAND_bytes(out, (int)n) != 1)
        abort();
}

static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

void sbx_random_base62(char *out, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t buf[64];
        sbx_random_bytes(buf, sizeof(buf));
        for (size_t j = 0; j < sizeof(buf) && i < n; j++)
            if (buf[j] < 248) /* 248 = 4*62: reject to keep the distribution uniform */
                out[i++] = b62[buf[j] % 62];
    }
    out[n] = '\0';
}

void sbx_uuid4(char out[37])
{
    uint8_t b[16];
    sbx_random_bytes(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
             b[13], b[14], b[15]);
}

bool sbx_uuid_valid(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
                     (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

bool sbx_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return false;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

uint32_t sbx_crc32(const void *data, size_t len)
{
    return (uint32_t)crc32(0L, data, (uInt)len);
}

void sbx_base62_u32(uint32_t v, char *out, size_t width)
{
    for (size_t i = width; i > 0; i--) {
        out[i - 1] = b62[v % 62];
        v /= 62;
    }
    out[width] = '\0';
}

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *sbx_base64_encode(const void *data, size_t len, size_t *ret_len)
{
    const uint8_t *in = data;
    size_t olen = 4 * ((len + 2) / 3);
    char *out = xmalloc(olen + 1), *p = out;
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = b64[v >> 18];
        *p++ = b64[(v >> 12) & 63];
        *p++ = b64[(v >> 6) & 63];
        *p++ = b64[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        *p++ = b64[v >> 18];
        *p++ = b64[(v >> 12) & 63];
        *p++ = i + 1 < len ? b64[(v >> 6) & 63] : '=';
        *p++ = '=';
    }
    *p = '\0';
    if (ret_len)
        *ret_len = (size_t)(p - out);
    return out;
}

static int b64val(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int sbx_base64_decode(const char *in, size_t inlen, size_t max, uint8_t **ret, size_t *ret_len)
{
    /* Strict: padding is absent or completes the last quantum (at most two '='). */
    size_t pad = 0;
    while (inlen > 0 && in[inlen - 1] == '=' && pad < 2) {
        inlen--;
        pad++;
    }
    if (pad && (inlen + pad) % 4 != 0)
        return -EINVAL;
    if (inlen % 4 == 1)
        return -EINVAL;
    size_t olen = inlen / 4 * 3 + (inlen % 4 ? inlen % 4 - 1 : 0);
    if (olen > max)
        return -E2BIG;
    uint8_t *out = xmalloc(olen + 1), *p = out;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < inlen; i++) {
        int v = b64val(in[i]);
        if (v < 0) {
            free(out);
            return -EINVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            *p++ = (uint8_t)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1)) { /* "Zh==": bits after the last byte must be zero */
        free(out);
        return -EINVAL;
    }
    *ret = out;
    *ret_len = (size_t)(p - out);
    return 0;
}
