/* jwt.c — JWT verification with OpenSSL (see jwt.h). */
#include "controller/jwt.h"

#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "controller/apikey.h"
#include "controller/config.h"

#define MAX_KEYS 32
#define PART_MAX 4096

enum key_kind { KEY_RSA, KEY_EC };

struct jwt_key {
    enum key_kind kind;
    char kid[128]; /* "" = none */
    EVP_PKEY *pkey;
};

struct jwt_verifier {
    char *secret;
    size_t secret_len;
    struct jwt_key keys[MAX_KEYS];
    size_t n_keys;
    char *issuer, *audience, *org_claim, *user_claim, *role_claim;
    uint64_t leeway;
};

bool jwt_looks_like(const char *s)
{
    const char *d1 = s ? strchr(s, '.') : NULL;
    return d1 && strchr(d1 + 1, '.') != NULL;
}

/* base64url (no padding) → bytes. Returns -EINVAL on any other character or bad length. */
static int b64url_decode(const char *in, size_t n, uint8_t **ret, size_t *ret_len)
{
    if (n % 4 == 1 || n > PART_MAX * 2)
        return -EINVAL;
    char *tmp = xmalloc(n + 4);
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '-')
            c = '+';
        else if (c == '_')
            c = '/';
        else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            free(tmp);
            return -EINVAL;
        }
        tmp[i] = c;
    }
    size_t m = n;
    while (m % 4)
        tmp[m++] = '=';
    tmp[m] = '\0';
    int r = sbx_base64_decode(tmp, m, PART_MAX * 2, ret, ret_len);
    free(tmp);
    return r < 0 ? -EINVAL : 0;
}

static void fail(char *err, size_t errlen, const char *msg)
{
    if (errlen)
        snprintf(err, errlen, "%s", msg);
}

static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pkey = NULL;
    if (pctx && EVP_PKEY_fromdata_init(pctx) > 0)
        if (EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
            pkey = NULL;
    EVP_PKEY_CTX_free(pctx);
    return pkey;
}

static EVP_PKEY *jwk_rsa(yajl_val k)
{
    const char *n64 = sbx_json_get_str(k, "n"), *e64 = sbx_json_get_str(k, "e");
    uint8_t *n = NULL, *e = NULL;
    size_t nl, el;
    EVP_PKEY *pkey = NULL;
    if (!n64 || !e64 || b64url_decode(n64, strlen(n64), &n, &nl) < 0 ||
        b64url_decode(e64, strlen(e64), &e, &el) < 0)
        goto out;
    BIGNUM *bn = BN_bin2bn(n, (int)nl, NULL), *be = BN_bin2bn(e, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) &&
        (params = OSSL_PARAM_BLD_to_param(bld)))
        pkey = pkey_from_params("RSA", params);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
out:
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *jwk_ec(yajl_val k)
{
    const char *crv = sbx_json_get_str(k, "crv"), *x64 = sbx_json_get_str(k, "x"),
               *y64 = sbx_json_get_str(k, "y");
    uint8_t *x = NULL, *y = NULL;
    size_t xl, yl;
    EVP_PKEY *pkey = NULL;
    if (!crv || strcmp(crv, "P-256") != 0 || !x64 || !y64 ||
        b64url_decode(x64, strlen(x64), &x, &xl) < 0 ||
        b64url_decode(y64, strlen(y64), &y, &yl) < 0 || xl != 32 || yl != 32)
        goto out;
    uint8_t pub[65];
    pub[0] = 0x04;
    memcpy(pub + 1, x, 32);
    memcpy(pub + 33, y, 32);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)),
        OSSL_PARAM_construct_end(),
    };
    pkey = pkey_from_params("EC", params);
out:
    free(x);
    free(y);
    return pkey;
}

/* Adds a key; EC keys must be P-256. */
static int add_key(struct jwt_verifier *v, EVP_PKEY *pkey, const char *kid, char *err,
                   size_t errlen)
{
    if (v->n_keys >= MAX_KEYS) {
        EVP_PKEY_free(pkey);
        fail(err, errlen, "too many JWT keys");
        return -E2BIG;
    }
    struct jwt_key *k = &v->keys[v->n_keys];
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        if (EVP_PKEY_get_bits(pkey) < 2048) {
            EVP_PKEY_free(pkey);
            fail(err, errlen, "RSA JWT keys must have at least 2048 bits");
            return -EINVAL;
        }
        k->kind = KEY_RSA;
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        char group[64] = "";
        size_t gl = 0;
        if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                            sizeof(group), &gl) ||
            strcmp(group, "prime256v1") != 0) {
            EVP_PKEY_free(pkey);
            fail(err, errlen, "EC JWT keys must be P-256 (ES256)");
            return -EINVAL;
        }
        k->kind = KEY_EC;
    } else {
        EVP_PKEY_free(pkey);
        fail(err, errlen, "JWT keys must be RSA or EC P-256 public keys");
        return -EINVAL;
    }
    snprintf(k->kid, sizeof(k->kid), "%s", kid ? kid : "");
    k->pkey = pkey;
    v->n_keys++;
    return 0;
}

static int load_jwks(struct jwt_verifier *v, const char *json, char *err, size_t errlen)
{
    yajl_val doc = NULL;
    if (sbx_json_parse(json, strlen(json), 1024 * 1024, 16, &doc, NULL, 0) < 0) {
        fail(err, errlen, "the JWKS is not valid JSON");
        return -EINVAL;
    }
    yajl_val keys = sbx_json_get(doc, "keys");
    int r = 0;
    if (!keys || !YAJL_IS_ARRAY(keys)) {
        fail(err, errlen, "the JWKS has no 'keys' array");
        r = -EINVAL;
    }
    for (size_t i = 0; r == 0 && i < keys->u.array.len; i++) {
        yajl_val k = keys->u.array.values[i];
        const char *kty = sbx_json_get_str(k, "kty"), *use = sbx_json_get_str(k, "use");
        if (!kty || (use && strcmp(use, "sig") != 0))
            continue;
        EVP_PKEY *pkey = strcmp(kty, "RSA") == 0  ? jwk_rsa(k)
                         : strcmp(kty, "EC") == 0 ? jwk_ec(k)
                                                  : NULL;
        if (!pkey) {
            if (strcmp(kty, "RSA") == 0 || strcmp(kty, "EC") == 0) {
                fail(err, errlen, "a JWKS key could not be read");
                r = -EINVAL;
            }
            continue;
        }
        r = add_key(v, pkey, sbx_json_get_str(k, "kid"), err, errlen);
    }
    yajl_tree_free(doc);
    return r;
}

void jwt_verifier_free(struct jwt_verifier *v)
{
    if (!v)
        return;
    for (size_t i = 0; i < v->n_keys; i++)
        EVP_PKEY_free(v->keys[i].pkey);
    if (v->secret)
        OPENSSL_cleanse(v->secret, v->secret_len);
    free(v->secret);
    free(v->issuer);
    free(v->audience);
    free(v->org_claim);
    free(v->user_claim);
    free(v->role_claim);
    free(v);
}

int jwt_verifier_new(const struct jwt_options *opt, struct jwt_verifier **ret, char *err,
                     size_t errlen)
{
    struct jwt_verifier *v = xcalloc(1, sizeof(*v));
    if (opt->hs256_secret && *opt->hs256_secret) {
        v->secret = xstrdup(opt->hs256_secret);
        v->secret_len = strlen(v->secret);
    }
    v->issuer = opt->issuer && *opt->issuer ? xstrdup(opt->issuer) : NULL;
    v->audience = opt->audience && *opt->audience ? xstrdup(opt->audience) : NULL;
    v->org_claim = xstrdup(opt->org_claim ? opt->org_claim : "org_id");
    v->user_claim = xstrdup(opt->user_claim ? opt->user_claim : "sub");
    v->role_claim = xstrdup(opt->role_claim ? opt->role_claim : "role");
    v->leeway = opt->leeway;
    int r = 0;
    if (opt->public_key_pem && *opt->public_key_pem) {
        BIO *bio = BIO_new_mem_buf(opt->public_key_pem, -1);
        EVP_PKEY *pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
        BIO_free(bio);
        if (!pkey) {
            fail(err, errlen, "the JWT public key is not a PEM public key");
            r = -EINVAL;
        } else
            r = add_key(v, pkey, NULL, err, errlen);
    }
    if (r == 0 && opt->jwks_json && *opt->jwks_json)
        r = load_jwks(v, opt->jwks_json, err, errlen);
    if (r < 0) {
        jwt_verifier_free(v);
        return r;
    }
    *ret = v;
    return 0;
}

bool jwt_verifier_enabled(const struct jwt_verifier *v)
{
    return v && (v->secret || v->n_keys);
}

static bool verify_hs256(const struct jwt_verifier *v, const char *signed_part, size_t n,
                         const uint8_t *sig, size_t sl)
{
    uint8_t mac[32];
    if (!v->secret || sl != sizeof(mac))
        return false;
    sbx_hmac_sha256(v->secret, v->secret_len, signed_part, n, mac);
    return CRYPTO_memcmp(mac, sig, sizeof(mac)) == 0;
}

static bool verify_pkey(EVP_PKEY *pkey, const char *data, size_t n, const uint8_t *sig,
                        size_t sl)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) == 1 &&
              EVP_DigestVerify(md, sig, sl, (const unsigned char *)data, n) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

/* ES256 signatures are r||s (32 bytes each); OpenSSL wants DER. */
static bool verify_es256(EVP_PKEY *pkey, const char *data, size_t n, const uint8_t *sig,
                         size_t sl)
{
    if (sl != 64)
        return false;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL), *s = BN_bin2bn(sig + 32, 32, NULL);
    if (!es || !r || !s || !ECDSA_SIG_set0(es, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return false;
    }
    unsigned char *der = NULL;
    int dl = i2d_ECDSA_SIG(es, &der);
    ECDSA_SIG_free(es);
    bool ok = dl > 0 && verify_pkey(pkey, data, n, der, (size_t)dl);
    OPENSSL_free(der);
    return ok;
}

static unsigned role_scopes(const char *role)
{
    if (!role || strcmp(role, "member") == 0 || strcmp(role, "developer") == 0)
        return AUTH_SCOPE_READ | AUTH_SCOPE_WRITE | AUTH_SCOPE_EXECUTE;
    if (strcmp(role, "owner") == 0 || strcmp(role, "admin") == 0)
        return AUTH_SCOPE_ALL;
    if (strcmp(role, "viewer") == 0 || strcmp(role, "readonly") == 0 ||
        strcmp(role, "read_only") == 0)
        return AUTH_SCOPE_READ;
    return 0;
}

static bool num_claim(yajl_val payload, const char *name, bool *present, double *ret)
{
    yajl_val v = sbx_json_get(payload, name);
    *present = v != NULL;
    if (!v)
        return true;
    if (!YAJL_IS_NUMBER(v))
        return false;
    *ret = YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v) : YAJL_GET_DOUBLE(v);
    return true;
}

int jwt_verify(const struct jwt_verifier *v, const char *token, int64_t now,
               struct jwt_claims *ret, char *err, size_t errlen)
{
    if (!jwt_verifier_enabled(v)) {
        fail(err, errlen, "bearer tokens are not accepted by this server");
        return -EPERM;
    }
    size_t len = token ? strnlen(token, JWT_MAX_LEN + 1) : 0;
    const char *d1 = token ? memchr(token, '.', len) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (len == 0 || len > JWT_MAX_LEN || !d1 || !d2 ||
        memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token))) {
        fail(err, errlen, "the token is not a well-formed JWT");
        return -EINVAL;
    }
    uint8_t *hdr = NULL, *pl = NULL, *sig = NULL;
    size_t hl, pll, sl;
    yajl_val h = NULL, p = NULL;
    int r = -EINVAL;
    if (b64url_decode(token, (size_t)(d1 - token), &hdr, &hl) < 0 ||
        b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &pl, &pll) < 0 ||
        b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - token), &sig, &sl) < 0 ||
        sbx_json_parse((const char *)hdr, hl, PART_MAX, 8, &h, NULL, 0) < 0 ||
        sbx_json_parse((const char *)pl, pll, PART_MAX * 2, 8, &p, NULL, 0) < 0 ||
        !YAJL_IS_OBJECT(h) || !YAJL_IS_OBJECT(p)) {
        fail(err, errlen, "the token is not a well-formed JWT");
        goto out;
    }
    r = -EPERM;
    const char *alg = sbx_json_get_str(h, "alg");
    yajl_val kidv = sbx_json_get(h, "kid");
    const char *kid = kidv && YAJL_IS_STRING(kidv) ? kidv->u.string : NULL;
    if (sbx_json_get(h, "crit")) {
        fail(err, errlen, "the token uses unsupported critical header parameters");
        goto out;
    }
    size_t signed_len = (size_t)(d2 - token);
    bool verified = false;
    if (alg && strcmp(alg, "HS256") == 0) {
        verified = verify_hs256(v, token, signed_len, sig, sl);
    } else if (alg && (strcmp(alg, "RS256") == 0 || strcmp(alg, "ES256") == 0)) {
        enum key_kind want = alg[0] == 'R' ? KEY_RSA : KEY_EC;
        for (size_t i = 0; i < v->n_keys && !verified; i++) {
            const struct jwt_key *k = &v->keys[i];
            if (k->kind != want || (kid && k->kid[0] && strcmp(kid, k->kid) != 0))
                continue;
            verified = want == KEY_RSA ? verify_pkey(k->pkey, token, signed_len, sig, sl)
                                       : verify_es256(k->pkey, token, signed_len, sig, sl);
        }
    } else {
        fail(err, errlen, "the token's algorithm is not accepted");
        goto out;
    }
    if (!verified) {
        fail(err, errlen, "the token's signature is not valid");
        goto out;
    }
    double exp = 0, nbf = 0;
    bool has_exp, has_nbf;
    if (!num_claim(p, "exp", &has_exp, &exp) || !num_claim(p, "nbf", &has_nbf, &nbf) ||
        !has_exp) {
        fail(err, errlen, "the token must carry a numeric 'exp' claim");
        goto out;
    }
    if ((double)now >= exp + (double)v->leeway) {
        fail(err, errlen, "the token has expired");
        r = -ETIMEDOUT;
        goto out;
    }
    if (has_nbf && (double)now + (double)v->leeway < nbf) {
        fail(err, errlen, "the token is not valid yet");
        r = -ETIMEDOUT;
        goto out;
    }
    if (v->issuer) {
        const char *iss = sbx_json_get_str(p, "iss");
        if (!iss || strcmp(iss, v->issuer) != 0) {
            fail(err, errlen, "the token's issuer is not accepted");
            goto out;
        }
    }
    if (v->audience) {
        yajl_val aud = sbx_json_get(p, "aud");
        bool match = false;
        if (aud && YAJL_IS_STRING(aud))
            match = strcmp(aud->u.string, v->audience) == 0;
        else if (aud && YAJL_IS_ARRAY(aud))
            for (size_t i = 0; i < aud->u.array.len && !match; i++)
                match = YAJL_IS_STRING(aud->u.array.values[i]) &&
                        strcmp(aud->u.array.values[i]->u.string, v->audience) == 0;
        if (!match) {
            fail(err, errlen, "the token's audience is not accepted");
            goto out;
        }
    }
    const char *org = sbx_json_get_str(p, v->org_claim);
    const char *sub = sbx_json_get_str(p, v->user_claim);
    yajl_val rolev = sbx_json_get(p, v->role_claim);
    const char *role = rolev && YAJL_IS_STRING(rolev) ? rolev->u.string : NULL;
    if (!org || !sbx_uuid_valid(org)) {
        fail(err, errlen, "the token has no valid organization claim");
        goto out;
    }
    if (!sub || !*sub || strlen(sub) > 128) {
        fail(err, errlen, "the token has no valid user claim");
        goto out;
    }
    unsigned scopes = (rolev && !role) ? 0 : role_scopes(role);
    if (!scopes || (role && strlen(role) >= sizeof(ret->role))) {
        fail(err, errlen, "the token's role is not known");
        goto out;
    }
    memset(ret, 0, sizeof(*ret));
    snprintf(ret->org_id, sizeof(ret->org_id), "%s", org);
    snprintf(ret->subject, sizeof(ret->subject), "%s", sub);
    snprintf(ret->role, sizeof(ret->role), "%s", role ? role : "member");
    ret->scopes = scopes;
    r = 0;
out:
    yajl_tree_free(h);
    yajl_tree_free(p);
    free(hdr);
    free(pl);
    free(sig);
    return r;
}

/* ---- the daemon's verifier ------------------------------------------------------------ */

static pthread_once_t once = PTHREAD_ONCE_INIT;
static const struct sbx_config *once_cfg;
static struct jwt_verifier *daemon_verifier;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    struct sbx_buf b = SBX_BUF_INIT;
    sbx_buf_init(&b, 1024 * 1024);
    char chunk[4096];
    size_t n;
    int r = 0;
    while (r == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        r = sbx_buf_append(&b, chunk, n);
    fclose(f);
    if (r < 0) {
        sbx_buf_free(&b);
        return NULL;
    }
    return sbx_buf_steal(&b, NULL);
}

static void build_once(void)
{
    const struct sbx_config *cfg = once_cfg;
    _cleanup_free_ char *pem = NULL, *jwks = NULL;
    if (cfg->jwt.public_key_file[0] && !(pem = slurp(cfg->jwt.public_key_file))) {
        log_error("jwt.public_key_file %s cannot be read; JWT authentication is off",
                  cfg->jwt.public_key_file);
        return;
    }
    if (cfg->jwt.jwks_file[0] && !(jwks = slurp(cfg->jwt.jwks_file))) {
        log_error("jwt.jwks_file %s cannot be read; JWT authentication is off",
                  cfg->jwt.jwks_file);
        return;
    }
    struct jwt_options o = {
        .hs256_secret = cfg->jwt.hs256_secret,
        .public_key_pem = pem,
        .jwks_json = jwks,
        .issuer = cfg->jwt.issuer,
        .audience = cfg->jwt.audience,
        .leeway = cfg->jwt.leeway,
        .org_claim = cfg->jwt.org_claim,
        .user_claim = cfg->jwt.user_claim,
        .role_claim = cfg->jwt.role_claim,
    };
    char err[256];
    if (jwt_verifier_new(&o, &daemon_verifier, err, sizeof(err)) < 0)
        log_error("JWT key material refused (%s); JWT authentication is off", err);
}

const struct jwt_verifier *jwt_from_config(const struct sbx_config *cfg)
{
    once_cfg = cfg;
    pthread_once(&once, build_once);
    return daemon_verifier;
}
