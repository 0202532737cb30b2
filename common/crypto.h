/*
 * crypto.h — OpenSSL-backed primitives: SHA-256, HMAC-SHA256, random bytes and ids,
 * constant-time comparison, hex/base62/base64 encodings. All functions are thread-safe.
 * Random failures abort (a daemon that cannot get randomness must not hand out keys).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_SHA256_LEN 32
#define SBX_SHA256_HEX_LEN 64

void sbx_sha256(const void *data, size_t len, uint8_t out[SBX_SHA256_LEN]);
/* out must hold 65 bytes; lower-case hex, NUL-terminated. */
void sbx_sha256_hex(const void *data, size_t len, char out[SBX_SHA256_HEX_LEN + 1]);
void sbx_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                     uint8_t out[SBX_SHA256_LEN]);
void sbx_hex(const uint8_t *in, size_t n, char *out /* 2n+1 */);

void sbx_random_bytes(void *out, size_t n);
/* n random characters from [0-9A-Za-z], NUL-terminated (out holds n+1). */
void sbx_random_base62(char *out, size_t n);
/* A random UUID v4 string (out holds 37 bytes). */
void sbx_uuid4(char out[37]);
bool sbx_uuid_valid(const char *s);

/* Constant-time equality for equal-length secrets. Lengths differing → false. */
bool sbx_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

uint32_t sbx_crc32(const void *data, size_t len);
/* Encodes v as exactly `width` base62 digits (zero-padded), NUL-terminated. */
void sbx_base62_u32(uint32_t v, char *out, size_t width);

/* Standard base64 (RFC 4648, with padding). Encode returns malloc'd string. */
char *sbx_base64_encode(const void *data, size_t len, size_t *ret_len);
/* Decodes strict base64 (padding optional, no whitespace). Returns -EINVAL on bad input.
 * *ret is malloc'd; the decoded size is limited to max (else -E2BIG). */
int sbx_base64_decode(const char *in, size_t inlen, size_t max, uint8_t **ret, size_t *ret_len);
