/*
 * fuzz-jwt.c — JWT verification (controller/jwt.c).
 *
 * The first input byte picks what the rest is:
 *   0: a token, verified as is by a verifier with an HS256 secret, an RSA and a P-256 key;
 *   1: "header JSON" NUL "payload JSON": the harness signs it with the HS256 secret, so the
 *      claim checks (exp, nbf, iss, aud, org, user, role) are reached;
 *   2: a JWKS document, loaded as key material (and a fixed token verified against it).
 * Properties: no crash or leak; a verified token always yields a uuid organization, a
 * subject and non-empty scopes; the return value is one of 0, -EINVAL, -EPERM, -ETIMEDOUT.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "controller/jwt.h"

#define SECRET "fuzz-hs256-secret"
#define NOW 1700000000

/* A fixed RSA-2048 public key so that runs are reproducible. */
static const char RSA_PEM[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA6jjNgRQp0UDHvHitG6k4\n"
    "Yt7vSvuihsPhqv9yVyuUtuY/CMgQn5hMV52oKAljEqskRu8z/8UHybipZkMQdV6e\n"
    "G65QQ1guKHOFZBekoxcgDgZrO3fNInomOFvuK98YQLFIHvyxGH9bZzyM933icmia\n"
    "OnzWF+a+no4ze/YAWE7M2bq6udPu8915/nkCGMbGF8W++enfszpQ+e+E582psGkg\n"
    "0AyR838XhXj+XUrtqG8frjyKsVpE+d3PqGGzKG6mt1M2tndmASl1tysVnlxwwtfK\n"
    "lGofdR7TxMa3hC4gbjmmDt4Gn1/EdorlTjjb1QEiWIxCINZqxfjYV/loFVxLErDA\n"
    "uwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static struct jwt_verifier *v;

static void setup(void)
{
    if (v)
        return;
    struct jwt_options o = {.hs256_secret = SECRET,
                            .public_key_pem = RSA_PEM,
                            .issuer = "https://issuer.test",
                            .audience = "sandboxd",
                            .leeway = 30};
    char err[256];
    if (jwt_verifier_new(&o, &v, err, sizeof(err)) < 0) {
        fprintf(stderr, "fixed key refused: %s\n", err);
        abort();
    }
}

static char *b64u(const void *data, size_t n)
{
    size_t len;
    char *s = sbx_base64_encode(data, n, &len);
    size_t j = 0;
    for (size_t i = 0; i < len && s[i] != '='; i++)
        s[j++] = s[i] == '+' ? '-' : s[i] == '/' ? '_' : s[i];
    s[j] = '\0';
    return s;
}

static void check(const struct jwt_verifier *ver, const char *tok)
{
    struct jwt_claims c;
    char err[256] = "";
    int r = jwt_verify(ver, tok, NOW, &c, err, sizeof(err));
    if (r == 0) {
        if (!sbx_uuid_valid(c.org_id) || !c.subject[0] || !c.scopes || !c.role[0])
            abort();
    } else if (r != -EINVAL && r != -EPERM && r != -ETIMEDOUT) {
        abort();
    } else if (!err[0]) {
        abort(); /* every refusal says why */
    }
    (void)jwt_looks_like(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 1 || size > 3 * JWT_MAX_LEN)
        return 0;
    uint8_t mode = data[0] % 3;
    data++, size--;
    if (mode == 0) {
        char *tok = malloc(size + 1);
        memcpy(tok, data, size);
        tok[size] = '\0';
        check(v, tok);
        free(tok);
    } else if (mode == 1) {
        const uint8_t *nul = memchr(data, 0, size);
        size_t hl = nul ? (size_t)(nul - data) : size;
        const uint8_t *pl = nul ? nul + 1 : data + size;
        size_t pll = nul ? size - hl - 1 : 0;
        char *h = b64u(data, hl), *p = b64u(pl, pll);
        size_t sl = strlen(h) + strlen(p) + 2;
        char *signing = malloc(sl + 64);
        snprintf(signing, sl, "%s.%s", h, p);
        uint8_t mac[32];
        sbx_hmac_sha256(SECRET, strlen(SECRET), signing, strlen(signing), mac);
        char *s = b64u(mac, sizeof(mac));
        size_t tl = strlen(signing) + strlen(s) + 2;
        char *tok = malloc(tl);
        snprintf(tok, tl, "%s.%s", signing, s);
        check(v, tok);
        free(tok);
        free(s);
        free(signing);
        free(h);
        free(p);
    } else {
        char *jwks = malloc(size + 1);
        memcpy(jwks, data, size);
        jwks[size] = '\0';
        struct jwt_options o = {.jwks_json = jwks};
        struct jwt_verifier *jv = NULL;
        char err[256] = "";
        int r = jwt_verifier_new(&o, &jv, err, sizeof(err));
        if (r == 0) {
            check(jv, "eyJhbGciOiJSUzI1NiIsImtpZCI6ImEifQ.eyJleHAiOjJ9.AAAA");
            check(jv, "eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjJ9.AAAA");
            jwt_verifier_free(jv);
        } else if (!err[0] || jv) {
            abort();
        }
        free(jwks);
    }
    return 0;
}
