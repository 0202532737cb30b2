/*
 * test-jwt.c — controller/jwt.c: HS256, RS256 and ES256 verification, JWKS key selection by
 * kid, claim checks (exp, nbf, iss, aud, org, role), and the refusals: alg none, algorithm
 * confusion (HS256 keyed with the RSA public key PEM), wrong keys, malformed tokens.
 *
 * Tokens are built here with OpenSSL: keys are generated per run, ES256 signatures are
 * converted from OpenSSL's DER to the raw r||s that JWS uses.
 */
#include "controller/jwt.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"
#include "controller/apikey.h"
#include "tests/unit/tap.h"

#define ORG "4f1c2a3e-5b6d-4e7f-8a9b-0c1d2e3f4a5b"
#define NOW 1700000000LL
#define SECRET "unit-test-hs256-secret-0123456789"

static char *b64u(const void *data, size_t n)
{
    size_t len;
    char *s = sbx_base64_encode(data, n, &len);
    size_t j = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '=')
            break;
        s[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    s[j] = '\0';
    return s;
}

static char *b64u_str(const char *s)
{
    return b64u(s, strlen(s));
}

static char *bn_b64u(const BIGNUM *bn, int pad)
{
    int n = pad ? pad : BN_num_bytes(bn);
    unsigned char *buf = malloc((size_t)n);
    BN_bn2binpad(bn, buf, n);
    char *s = b64u(buf, (size_t)n);
    free(buf);
    return s;
}

/* header.payload (both JSON text) → "h.p." + signature by alg with key (NULL = no sig). */
enum sig_kind { SIG_NONE, SIG_HS256, SIG_RS256, SIG_ES256, SIG_ES256_DER };

static char *make_token(const char *header, const char *payload, enum sig_kind kind,
                        EVP_PKEY *pkey, const void *hkey, size_t hkeylen)
{
    char *h = b64u_str(header), *p = b64u_str(payload);
    size_t sl = strlen(h) + strlen(p) + 2;
    char *signing = malloc(sl);
    snprintf(signing, sl, "%s.%s", h, p);
    free(h);
    free(p);
    unsigned char sig[1024];
    size_t siglen = 0;
    if (kind == SIG_HS256) {
        sbx_hmac_sha256(hkey, hkeylen, signing, strlen(signing), sig);
        siglen = 32;
    } else if (kind != SIG_NONE) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned char der[1024];
        size_t dl = sizeof(der);
        if (EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1 ||
            EVP_DigestSign(md, der, &dl, (unsigned char *)signing, strlen(signing)) != 1)
            abort();
        EVP_MD_CTX_free(md);
        if (kind == SIG_ES256) {
            const unsigned char *q = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)dl);
            const BIGNUM *r, *s;
            ECDSA_SIG_get0(es, &r, &s);
            BN_bn2binpad(r, sig, 32);
            BN_bn2binpad(s, sig + 32, 32);
            ECDSA_SIG_free(es);
            siglen = 64;
        } else {
            memcpy(sig, der, dl);
            siglen = dl;
        }
    }
    char *s64 = b64u(sig, siglen);
    size_t tl = strlen(signing) + strlen(s64) + 2;
    char *tok = malloc(tl);
    snprintf(tok, tl, "%s.%s", signing, s64);
    free(signing);
    free(s64);
    return tok;
}

static char *pubkey_pem(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, pkey);
    char *data;
    long n = BIO_get_mem_data(bio, &data);
    char *s = strndup(data, (size_t)n);
    BIO_free(bio);
    return s;
}

static char *jwk_rsa(EVP_PKEY *pkey, const char *kid)
{
    BIGNUM *n = NULL, *e = NULL;
    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n);
    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e);
    char *n64 = bn_b64u(n, 0), *e64 = bn_b64u(e, 0);
    char *out;
    if (asprintf(&out, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}",
                 kid, n64, e64) < 0)
        abort();
    BN_free(n);
    BN_free(e);
    free(n64);
    free(e64);
    return out;
}

static char *jwk_ec(EVP_PKEY *pkey, const char *kid)
{
    BIGNUM *x = NULL, *y = NULL;
    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x);
    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y);
    char *x64 = bn_b64u(x, 32), *y64 = bn_b64u(y, 32);
    char *out;
    if (asprintf(&out, "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}",
                 kid, x64, y64) < 0)
        abort();
    BN_free(x);
    BN_free(y);
    free(x64);
    free(y64);
    return out;
}

static char *payload(const char *extra)
{
    char *out;
    if (asprintf(&out,
                 "{\"sub\":\"user-1\",\"org_id\":\"" ORG "\",\"role\":\"member\","
                 "\"iss\":\"https://issuer.test\",\"aud\":\"sandboxd\",\"exp\":%lld%s%s}",
                 NOW + 300, extra && *extra ? "," : "", extra ? extra : "") < 0)
        abort();
    return out;
}

static const char *HS = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
static const char *RS = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
static const char *ES = "{\"alg\":\"ES256\",\"typ\":\"JWT\"}";

static int verify(const struct jwt_verifier *v, const char *tok, struct jwt_claims *c)
{
    char err[256] = "";
    struct jwt_claims dummy;
    int r = jwt_verify(v, tok, NOW, c ? c : &dummy, err, sizeof(err));
    if (r < 0 && !err[0])
        diag("refusal without a reason");
    return r;
}

static EVP_PKEY *rsa1, *rsa2, *ec1, *ec2;

static void test_hs256(void)
{
    struct jwt_options o = {.hs256_secret = SECRET, .issuer = "https://issuer.test",
                            .audience = "sandboxd", .leeway = 5};
    struct jwt_verifier *v = NULL;
    char err[256];
    is_int(jwt_verifier_new(&o, &v, err, sizeof(err)), 0, "HS256 verifier");
    ok(jwt_verifier_enabled(v), "enabled");

    char *p = payload(NULL), *t;
    struct jwt_claims c;
    t = make_token(HS, p, SIG_HS256, NULL, SECRET, strlen(SECRET));
    is_int(verify(v, t, &c), 0, "HS256: valid token accepted");
    is_str(c.org_id, ORG, "org claim");
    is_str(c.subject, "user-1", "user claim");
    is_str(c.role, "member", "role claim");
    ok(c.scopes == (AUTH_SCOPE_READ | AUTH_SCOPE_WRITE | AUTH_SCOPE_EXECUTE), "member scopes");
    ok(jwt_looks_like(t), "jwt_looks_like");
    free(t);

    t = make_token(HS, p, SIG_HS256, NULL, "wrong-secret", 12);
    is_int(verify(v, t, NULL), -EPERM, "HS256: wrong secret refused");
    free(t);

    t = make_token("{\"alg\":\"none\",\"typ\":\"JWT\"}", p, SIG_NONE, NULL, NULL, 0);
    is_int(verify(v, t, NULL), -EPERM, "alg none refused");
    free(t);
    t = make_token("{\"alg\":\"None\"}", p, SIG_HS256, NULL, SECRET, strlen(SECRET));
    is_int(verify(v, t, NULL), -EPERM, "alg None (with a valid HMAC) refused");
    free(t);
    t = make_token("{\"alg\":\"HS512\"}", p, SIG_HS256, NULL, SECRET, strlen(SECRET));
    is_int(verify(v, t, NULL), -EPERM, "alg HS512 refused");
    free(t);
    t = make_token("{\"typ\":\"JWT\"}", p, SIG_HS256, NULL, SECRET, strlen(SECRET));
    is_int(verify(v, t, NULL), -EPERM, "missing alg refused");
    free(t);
    t = make_token("{\"alg\":\"HS256\",\"crit\":[\"b64\"],\"b64\":false}", p, SIG_HS256, NULL,
                   SECRET, strlen(SECRET));
    is_int(verify(v, t, NULL), -EPERM, "crit header refused");
    free(t);
    free(p);

    struct {
        const char *extra_or_payload;
        bool full;
        int want;
        const char *what;
    } claims[] = {
        {"\"exp\":1699999000", false, -ETIMEDOUT, "expired"},
        {"\"exp\":1699999997", false, 0, "expired 3 s ago, within 5 s leeway"},
        {"\"exp\":1699999995", false, -ETIMEDOUT, "expired exactly leeway ago"},
        {"\"nbf\":1700000100", false, -ETIMEDOUT, "not yet valid"},
        {"\"nbf\":1700000004", false, 0, "nbf within leeway"},
        {"\"aud\":\"someone-else\"", false, -EPERM, "wrong audience"},
        {"\"aud\":[\"x\",\"sandboxd\"]", false, 0, "audience array containing ours"},
        {"\"aud\":[\"x\",\"y\"]", false, -EPERM, "audience array without ours"},
        {"\"aud\":17", false, -EPERM, "numeric audience"},
        {"\"iss\":\"https://evil.test\"", false, -EPERM, "wrong issuer"},
        {"\"role\":\"owner\"", false, 0, "owner role"},
        {"\"role\":\"superuser\"", false, -EPERM, "unknown role"},
        {"\"role\":5", false, -EPERM, "non-string role"},
        {"\"org_id\":\"not-a-uuid\"", false, -EPERM, "org not a uuid"},
        {"\"sub\":\"\"", false, -EPERM, "empty subject"},
        {"\"exp\":\"1700000300\"", false, -EPERM, "string exp"},
        {"{\"sub\":\"u\",\"org_id\":\"" ORG "\",\"iss\":\"https://issuer.test\","
         "\"aud\":\"sandboxd\"}",
         true, -EPERM, "missing exp"},
        {"{\"sub\":\"u\",\"org_id\":\"" ORG "\",\"aud\":\"sandboxd\",\"exp\":1700000300}", true,
         -EPERM, "missing iss"},
        {"[1,2,3]", true, -EINVAL, "payload not an object"},
    };
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        /* Later duplicate keys win in yajl's tree? Build without duplicates instead. */
        char *pl;
        if (claims[i].full)
            pl = strdup(claims[i].extra_or_payload);
        else {
            /* Replace the claim named in extra in the default payload. */
            char name[32];
            const char *q = strchr(claims[i].extra_or_payload + 1, '"');
            snprintf(name, sizeof(name), "%.*s", (int)(q - claims[i].extra_or_payload - 1),
                     claims[i].extra_or_payload + 1);
            const char *defaults[][2] = {{"sub", "\"user-1\""},
                                         {"org_id", "\"" ORG "\""},
                                         {"role", "\"member\""},
                                         {"iss", "\"https://issuer.test\""},
                                         {"aud", "\"sandboxd\""},
                                         {"exp", "1700000300"}};
            char buf[1024] = "{";
            for (size_t d = 0; d < 6; d++) {
                if (strcmp(defaults[d][0], name) == 0)
                    continue;
                char kv[256];
                snprintf(kv, sizeof(kv), "\"%s\":%s,", defaults[d][0], defaults[d][1]);
                strcat(buf, kv);
            }
            strcat(buf, claims[i].extra_or_payload);
            strcat(buf, "}");
            pl = strdup(buf);
        }
        t = make_token(HS, pl, SIG_HS256, NULL, SECRET, strlen(SECRET));
        is_int(verify(v, t, NULL), claims[i].want, "claims: %s", claims[i].what);
        free(t);
        free(pl);
    }
    jwt_verifier_free(v);
}

static void test_rs256_and_confusion(void)
{
    char *pem = pubkey_pem(rsa1);
    struct jwt_options o = {.hs256_secret = SECRET, .public_key_pem = pem, .leeway = 0};
    struct jwt_verifier *v = NULL;
    char err[256];
    is_int(jwt_verifier_new(&o, &v, err, sizeof(err)), 0, "RS256 verifier from PEM");
    char *p = payload(NULL), *t;

    t = make_token(RS, p, SIG_RS256, rsa1, NULL, 0);
    is_int(verify(v, t, NULL), 0, "RS256: valid token accepted");
    free(t);
    t = make_token(RS, p, SIG_RS256, rsa2, NULL, 0);
    is_int(verify(v, t, NULL), -EPERM, "RS256: signed by another RSA key refused");
    free(t);
    t = make_token(HS, p, SIG_HS256, NULL, pem, strlen(pem));
    is_int(verify(v, t, NULL), -EPERM, "HS256 keyed with the RSA public key PEM refused");
    free(t);
    t = make_token(RS, p, SIG_HS256, NULL, pem, strlen(pem));
    is_int(verify(v, t, NULL), -EPERM, "RS256 header with an HMAC signature refused");
    free(t);
    t = make_token(ES, p, SIG_RS256, rsa1, NULL, 0);
    is_int(verify(v, t, NULL), -EPERM, "ES256 header with an RSA signature refused");
    free(t);
    free(p);
    jwt_verifier_free(v);

    /* Without an HS256 secret the PEM bytes must still not act as one. */
    struct jwt_options o2 = {.public_key_pem = pem};
    is_int(jwt_verifier_new(&o2, &v, err, sizeof(err)), 0, "RS256-only verifier");
    p = payload(NULL);
    t = make_token(HS, p, SIG_HS256, NULL, pem, strlen(pem));
    is_int(verify(v, t, NULL), -EPERM, "no secret: HS256 keyed with the PEM refused");
    free(t);
    t = make_token(HS, p, SIG_HS256, NULL, "", 0);
    is_int(verify(v, t, NULL), -EPERM, "no secret: HS256 keyed with the empty string refused");
    free(t);
    free(p);
    jwt_verifier_free(v);
    free(pem);

    /* Bad key material. */
    struct jwt_options o3 = {.public_key_pem = "-----BEGIN PUBLIC KEY-----\nAAAA\n"
                                                "-----END PUBLIC KEY-----\n"};
    v = NULL;
    is_int(jwt_verifier_new(&o3, &v, err, sizeof(err)), -EINVAL, "garbage PEM refused");
    ok(v == NULL, "no verifier on error");
    struct jwt_verifier *none = NULL;
    struct jwt_options o4 = {0};
    is_int(jwt_verifier_new(&o4, &none, err, sizeof(err)), 0, "empty verifier");
    ok(!jwt_verifier_enabled(none), "empty verifier is disabled");
    p = payload(NULL);
    t = make_token(HS, p, SIG_HS256, NULL, "", 0);
    is_int(verify(none, t, NULL), -EPERM, "disabled verifier refuses everything");
    free(t);
    free(p);
    jwt_verifier_free(none);
}

static void test_es256(void)
{
    char *pem = pubkey_pem(ec1);
    struct jwt_options o = {.public_key_pem = pem};
    struct jwt_verifier *v = NULL;
    char err[256];
    is_int(jwt_verifier_new(&o, &v, err, sizeof(err)), 0, "ES256 verifier from PEM");
    char *p = payload(NULL), *t;
    t = make_token(ES, p, SIG_ES256, ec1, NULL, 0);
    is_int(verify(v, t, NULL), 0, "ES256: valid raw r||s token accepted");
    free(t);
    t = make_token(ES, p, SIG_ES256_DER, ec1, NULL, 0);
    is_int(verify(v, t, NULL), -EPERM, "ES256: DER-encoded signature refused");
    free(t);
    t = make_token(ES, p, SIG_ES256, ec2, NULL, 0);
    is_int(verify(v, t, NULL), -EPERM, "ES256: signed by another P-256 key refused");
    free(t);
    t = make_token(RS, p, SIG_ES256, ec1, NULL, 0);
    is_int(verify(v, t, NULL), -EPERM, "RS256 header with an EC key only refused");
    free(t);
    /* All-zero r||s must not verify (nor crash). */
    char *h = b64u_str(ES), *pp = b64u_str(p);
    unsigned char zero[64] = {0};
    char *z = b64u(zero, sizeof(zero));
    char tok[4096];
    snprintf(tok, sizeof(tok), "%s.%s.%s", h, pp, z);
    is_int(verify(v, tok, NULL), -EPERM, "ES256: zero signature refused");
    free(h);
    free(pp);
    free(z);
    free(p);
    jwt_verifier_free(v);
    free(pem);

    /* A non-P-256 EC key is refused as key material. */
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "secp384r1");
    char *pem384 = pubkey_pem(p384);
    struct jwt_options o2 = {.public_key_pem = pem384};
    v = NULL;
    is_int(jwt_verifier_new(&o2, &v, err, sizeof(err)), -EINVAL, "P-384 key refused");
    free(pem384);
    EVP_PKEY_free(p384);
}

static void test_jwks(void)
{
    char *k1 = jwk_rsa(rsa1, "rsa-1"), *k2 = jwk_rsa(rsa2, "rsa-2"), *k3 = jwk_ec(ec1, "ec-1"),
         *k4 = jwk_ec(ec2, "ec-2");
    char *jwks;
    if (asprintf(&jwks,
                 "{\"keys\":[%s,%s,%s,%s,{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"},"
                 "{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
                 k1, k2, k3, k4) < 0)
        abort();
    struct jwt_options o = {.jwks_json = jwks};
    struct jwt_verifier *v = NULL;
    char err[256];
    is_int(jwt_verifier_new(&o, &v, err, sizeof(err)), 0, "JWKS with four keys (oct and enc ignored)");
    char *p = payload(NULL), *t;
    struct {
        const char *header;
        enum sig_kind kind;
        EVP_PKEY *key;
        int want;
        const char *what;
    } cases[] = {
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", SIG_RS256, NULL, 0, "kid rsa-1, key 1"},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-2\"}", SIG_RS256, NULL, 0, "kid rsa-2, key 2"},
        {"{\"alg\":\"RS256\",\"kid\":\"rsa-2\"}", SIG_RS256, NULL, -EPERM,
         "kid rsa-2 but signed by key 1"},
        {"{\"alg\":\"RS256\",\"kid\":\"nope\"}", SIG_RS256, NULL, -EPERM, "unknown kid"},
        {"{\"alg\":\"RS256\"}", SIG_RS256, NULL, 0, "no kid: every RSA key tried"},
        {"{\"alg\":\"ES256\",\"kid\":\"ec-2\"}", SIG_ES256, NULL, 0, "kid ec-2, key 2"},
        {"{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", SIG_ES256, NULL, -EPERM,
         "ES256 naming an RSA kid"},
        {"{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", SIG_HS256, NULL, -EPERM,
         "HS256 with a JWKS only"},
        {"{\"alg\":\"RS256\",\"kid\":7}", SIG_RS256, NULL, 0, "non-string kid treated as absent"},
    };
    EVP_PKEY *keys[] = {rsa1, rsa2, rsa1, rsa1, rsa2, ec2, ec1, NULL, rsa1};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        t = make_token(cases[i].header, p, cases[i].kind, keys[i], k1, strlen(k1));
        is_int(verify(v, t, NULL), cases[i].want, "JWKS: %s", cases[i].what);
        free(t);
    }
    free(p);
    jwt_verifier_free(v);

    const char *bad[] = {"not json", "{\"keys\":{}}", "{}",
                         "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"!!\",\"e\":\"AQAB\"}]}",
                         "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct jwt_options ob = {.jwks_json = bad[i]};
        v = NULL;
        is_int(jwt_verifier_new(&ob, &v, err, sizeof(err)), -EINVAL, "bad JWKS %zu refused", i);
    }
    free(jwks);
    free(k1);
    free(k2);
    free(k3);
    free(k4);
}

static void test_malformed(void)
{
    struct jwt_options o = {.hs256_secret = SECRET};
    struct jwt_verifier *v = NULL;
    char err[256];
    jwt_verifier_new(&o, &v, err, sizeof(err));
    char *p = payload(NULL);
    char *good = make_token(HS, p, SIG_HS256, NULL, SECRET, strlen(SECRET));
    is_int(verify(v, good, NULL), 0, "baseline accepted");

    const char *shapes[] = {"", "a", "a.b", "a.b.c.d", "..", "a..c", ".b.c", "a.b.",
                            "e30.e30.", "e30.e30.e30.e30"};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
        ok(verify(v, shapes[i], NULL) < 0, "shape '%s' refused", shapes[i]);
    is_int(jwt_verify(v, NULL, NOW, &(struct jwt_claims){0}, err, sizeof(err)), -EINVAL,
           "NULL token refused");

    /* One bad base64url character in each segment; padding; standard-base64 characters. */
    char *d1 = strchr(good, '.'), *d2 = strchr(d1 + 1, '.');
    size_t offs[] = {1, (size_t)(d1 - good) + 2, (size_t)(d2 - good) + 2};
    const char bads[] = {'+', '/', '=', ' ', '\x01', '\xff', '%'};
    for (size_t s = 0; s < 3; s++)
        for (size_t b = 0; b < sizeof(bads); b++) {
            char *t = strdup(good);
            t[offs[s]] = bads[b];
            ok(verify(v, t, NULL) < 0, "segment %zu char 0x%02x refused", s,
               (unsigned char)bads[b]);
            free(t);
        }
    {
        size_t n = strlen(good);
        char *t = malloc(n + 3);
        memcpy(t, good, n);
        memcpy(t + n, "==", 3);
        ok(verify(v, t, NULL) < 0, "padded signature refused");
        free(t);
        /* A segment of length 4k+1 cannot be base64. */
        t = strdup(good);
        t[n - 1] = '\0';
        ok(verify(v, t, NULL) < 0, "truncated signature refused");
        free(t);
    }
    /* Header that is not JSON / not an object. */
    char *t = make_token("not json", p, SIG_HS256, NULL, SECRET, strlen(SECRET));
    is_int(verify(v, t, NULL), -EINVAL, "header not JSON");
    free(t);
    t = make_token("\"HS256\"", p, SIG_HS256, NULL, SECRET, strlen(SECRET));
    is_int(verify(v, t, NULL), -EINVAL, "header a JSON string");
    free(t);

    /* Huge tokens: one over JWT_MAX_LEN, and a deeply nested payload within it. */
    size_t big = JWT_MAX_LEN + 100;
    char *huge = malloc(big + 1);
    memset(huge, 'A', big);
    huge[10] = '.';
    huge[20] = '.';
    huge[big] = '\0';
    is_int(verify(v, huge, NULL), -EINVAL, "token over JWT_MAX_LEN refused");
    free(huge);
    char *bigpl = malloc(6000);
    size_t k = 0;
    k += (size_t)sprintf(bigpl, "{\"sub\":\"u\",\"org_id\":\"" ORG "\",\"exp\":1700000300,\"x\":");
    for (int i = 0; i < 2000; i++)
        bigpl[k++] = '[';
    for (int i = 0; i < 2000; i++)
        bigpl[k++] = ']';
    bigpl[k++] = '}';
    bigpl[k] = '\0';
    t = make_token(HS, bigpl, SIG_HS256, NULL, SECRET, strlen(SECRET));
    ok(strlen(t) <= JWT_MAX_LEN, "nested token fits (%zu bytes)", strlen(t));
    is_int(verify(v, t, NULL), -EINVAL, "payload nested 2000 deep refused");
    free(t);
    free(bigpl);
    /* A long but legal claim value near the limit. */
    char *longsub = malloc(5000);
    memset(longsub, 'x', 4000);
    longsub[4000] = '\0';
    char *pl2;
    if (asprintf(&pl2, "{\"sub\":\"%s\",\"org_id\":\"" ORG "\",\"exp\":1700000300}", longsub) < 0)
        abort();
    t = make_token(HS, pl2, SIG_HS256, NULL, SECRET, strlen(SECRET));
    is_int(verify(v, t, NULL), -EPERM, "4000-byte subject refused (over 128)");
    free(t);
    free(pl2);
    free(longsub);

    free(good);
    free(p);
    jwt_verifier_free(v);
}

int main(void)
{
    plan_no_plan();
    rsa1 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa2 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    ec1 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec2 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!rsa1 || !rsa2 || !ec1 || !ec2)
        skip_all("OpenSSL key generation failed");
    test_hs256();
    test_rs256_and_confusion();
    test_es256();
    test_jwks();
    test_malformed();
    EVP_PKEY_free(rsa1);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(ec1);
    EVP_PKEY_free(ec2);
    return done();
}
