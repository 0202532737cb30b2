/*
 * sigv4.h — AWS Signature Version 4 (HMAC-SHA256 via OpenSSL), header and presigned forms.
 *
 * Pure functions: no I/O, no clock (the caller passes the X-Amz-Date), thread-safe. The
 * canonicalizer parses what it is given strictly (percent escapes must be complete, header
 * names must be tokens, values must not hold CR/LF) and returns -EINVAL otherwise, so it is
 * safe to feed it untrusted text (tests/fuzz/fuzz-sigv4.c).
 *
 * Canonical URI: with SBX_SIGV4_S3 the path is decoded and re-encoded once (S3 neither
 * normalizes nor double-encodes); without it (other services, the AWS test suite) the path as
 * given is encoded once more. Canonical query: every name=value is decoded and re-encoded
 * with RFC 3986 unreserved characters kept, then sorted by name and value.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SBX_SIGV4_S3 0x1u
#define SBX_SIGV4_UNSIGNED_PAYLOAD "UNSIGNED-PAYLOAD"
#define SBX_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/* Limits of the canonicalizer (beyond them: -E2BIG). */
#define SBX_SIGV4_MAX_QUERY 16384
#define SBX_SIGV4_MAX_PARAMS 256
#define SBX_SIGV4_MAX_HEADERS 64

struct sbx_sigv4_header {
    const char *name;
    const char *value;
};

struct sbx_sigv4_request {
    const char *method;                     /* "GET", "PUT", ... */
    const char *path;                       /* "/bucket/key", as sent */
    const char *query;                      /* without '?'; NULL or "" = none */
    const struct sbx_sigv4_header *headers; /* every header to sign; must include host */
    size_t n_headers;
    const char *payload_hash;               /* hex SHA-256 of the body or UNSIGNED-PAYLOAD */
};

struct sbx_sigv4_credentials {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;              /* NULL/"" = none (presign adds X-Amz-Security-Token) */
    const char *region;                     /* "us-east-1" */
    const char *service;                    /* "s3" */
};

/* "YYYYMMDDTHHMMSSZ" for t (UTC). */
void sbx_sigv4_amz_date(time_t t, char out[17]);

/* RFC 3986 encoding as SigV4 wants it: A-Za-z0-9-._~ kept, everything else %XX (upper hex);
 * '/' kept when keep_slash. Returns a malloc'd string. */
char *sbx_sigv4_uri_encode(const char *s, size_t n, bool keep_slash);

/* The canonical request and the signed-headers list ("host;x-amz-date"). Both malloc'd.
 * -EINVAL malformed input or no host header, -E2BIG over the limits. */
int sbx_sigv4_canonical_request(const struct sbx_sigv4_request *req, unsigned flags,
                                char **ret_creq, char **ret_signed_headers);

/* The string to sign for a canonical request. malloc'd. -EINVAL bad date/scope. */
int sbx_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
                             const char *creq, char **ret);

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date8), region), service), "aws4_request"). */
void sbx_sigv4_signing_key(const char *secret, const char *date8, const char *region,
                           const char *service, uint8_t out[32]);

/* The Authorization header value ("AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
 * Signature=..."); *ret_signature (may be NULL) gets the 64 hex digits. Both malloc'd. */
int sbx_sigv4_authorization(const struct sbx_sigv4_request *req, unsigned flags,
                            const struct sbx_sigv4_credentials *c, const char *amz_date,
                            char **ret_auth, char **ret_signature);

/* Presigned query form: the query string to send (req->query's parameters plus
 * X-Amz-Algorithm/Credential/Date/Expires/SignedHeaders[/Security-Token], canonically encoded
 * and sorted, X-Amz-Signature last). req->payload_hash is ignored (UNSIGNED-PAYLOAD);
 * req->headers must hold host. expires_s 1..604800. malloc'd. */
int sbx_sigv4_presign_query(const struct sbx_sigv4_request *req, unsigned flags,
                            const struct sbx_sigv4_credentials *c, const char *amz_date,
                            unsigned expires_s, char **ret_query);
