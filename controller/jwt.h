/*
 * jwt.h — JSON Web Token verification for dashboard backends (`Authorization: Bearer <JWT>`).
 *
 * Accepted algorithms: HS256 (a shared secret), RS256 (RSA public keys) and ES256 (EC P-256
 * public keys), from a PEM public key and/or a JWKS document (a key is chosen by the token's
 * `kid`; without a kid every key of the algorithm's type is tried). The algorithm is taken
 * from the header but the key decides: HS256 only ever uses the configured secret, RS256 only
 * RSA keys, ES256 only P-256 keys, so `alg: none` and algorithm confusion (HS256 signed with
 * the RSA public key) fail. Checks: exp (required) and nbf with `leeway` seconds of skew, iss
 * and aud when configured, the organization claim (a uuid), the user claim, and the role
 * claim (owner/admin → all scopes; member/developer → read, write, execute; viewer/readonly
 * → read; absent → member). Pure apart from OpenSSL; any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbx_config;
struct jwt_verifier;

struct jwt_options {
    const char *hs256_secret;   /* NULL/"" = HS256 off */
    const char *public_key_pem; /* NULL = none */
    const char *jwks_json;      /* NULL = none */
    const char *issuer;         /* NULL/"" = not checked */
    const char *audience;       /* NULL/"" = not checked */
    uint64_t leeway;
    const char *org_claim, *user_claim, *role_claim; /* NULL = org_id, sub, role */
};

struct jwt_claims {
    char org_id[37];
    char subject[129];
    char role[32];
    unsigned scopes; /* AUTH_SCOPE_* */
};

#define JWT_MAX_LEN 8192

/* Builds a verifier (parses the PEM/JWKS). -EINVAL with a message for bad key material. */
int jwt_verifier_new(const struct jwt_options *opt, struct jwt_verifier **ret, char *err,
                     size_t errlen);
void jwt_verifier_free(struct jwt_verifier *v);
/* Whether any algorithm is configured. */
bool jwt_verifier_enabled(const struct jwt_verifier *v);

/* Verifies token at UNIX time `now`. Returns 0 and fills *ret, or -EINVAL (malformed),
 * -EPERM (algorithm/signature/claim refused), -ETIMEDOUT (expired / not yet valid); err gets
 * a short reason suitable for the API user. */
int jwt_verify(const struct jwt_verifier *v, const char *token, int64_t now,
               struct jwt_claims *ret, char *err, size_t errlen);

/* The daemon's verifier from the jwt.* settings (files read once, on first use). NULL when
 * none is configured or the key files are unusable (logged). */
const struct jwt_verifier *jwt_from_config(const struct sbx_config *cfg);

/* True when s looks like a JWT (two dots), as SDKs decide. */
bool jwt_looks_like(const char *s);
