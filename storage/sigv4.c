/*
 * sigv4.c — AWS Signature Version 4 (see sigv4.h).
 *
 * https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html: canonical
 * request → string to sign → HMAC chain of the secret over date/region/service → signature.
 * Everything here is string work over bounded input; parsing is strict (-EINVAL) so the
 * function is a fuzz target.
 */
#include "storage/sigv4.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/macro.h"

void sbx_sigv4_amz_date(time_t t, char out[17])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

char *sbx_sigv4_uri_encode(const char *s, size_t n, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = xmalloc(n * 3 + 1), *o = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Strict percent-decoding of s[0..n) into a malloc'd buffer (NULs refused). */
static int pct_decode(const char *s, size_t n, char **ret, size_t *ret_len)
{
    char *out = xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return -EINVAL;
            }
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0') {
            free(out);
            return -EINVAL;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    *ret = out;
    *ret_len = o;
    return 0;
}

static char *canonical_uri(const char *path, unsigned flags, int *r)
{
    if (!path || !path[0])
        path = "/";
    if (path[0] != '/' || strlen(path) > SBX_SIGV4_MAX_QUERY) {
        *r = strlen(path) > SBX_SIGV4_MAX_QUERY ? -E2BIG : -EINVAL;
        return NULL;
    }
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#') {
            *r = -EINVAL;
            return NULL;
        }
    if (!(flags & SBX_SIGV4_S3))
        return sbx_sigv4_uri_encode(path, strlen(path), true);
    _cleanup_free_ char *dec = NULL;
    size_t n;
    *r = pct_decode(path, strlen(path), &dec, &n);
    if (*r < 0)
        return NULL;
    return sbx_sigv4_uri_encode(dec, n, true);
}

struct param {
    char *name, *value; /* encoded */
};

static int cmp_param(const void *a, const void *b)
{
    const struct param *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static void params_free(struct param *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
}

/* Parses query into params (decoded, re-encoded). */
static int parse_query(const char *q, struct param *ps, size_t *np)
{
    size_t n = 0;
    if (!q || !*q) {
        *np = 0;
        return 0;
    }
    if (strlen(q) > SBX_SIGV4_MAX_QUERY)
        return -E2BIG;
    const char *p = q;
    for (;;) {
        size_t len = strcspn(p, "&");
        if (len == 0) {
            params_free(ps, n);
            return -EINVAL; /* "a&&b", "&a", "a&" */
        }
        if (n == SBX_SIGV4_MAX_PARAMS) {
            params_free(ps, n);
            return -E2BIG;
        }
        const char *eq = memchr(p, '=', len);
        size_t nlen = eq ? (size_t)(eq - p) : len;
        const char *v = eq ? eq + 1 : p + len;
        size_t vlen = eq ? len - nlen - 1 : 0;
        for (size_t i = 0; i < len; i++)
            if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f || p[i] == '#') {
                params_free(ps, n);
                return -EINVAL;
            }
        _cleanup_free_ char *dn = NULL, *dv = NULL;
        size_t dnl, dvl;
        if (nlen == 0 || pct_decode(p, nlen, &dn, &dnl) < 0 || pct_decode(v, vlen, &dv, &dvl) < 0) {
            params_free(ps, n);
            return -EINVAL;
        }
        ps[n].name = sbx_sigv4_uri_encode(dn, dnl, false);
        ps[n].value = sbx_sigv4_uri_encode(dv, dvl, false);
        n++;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    qsort(ps, n, sizeof(*ps), cmp_param);
    *np = n;
    return 0;
}

static char *join_params(const struct param *ps, size_t n)
{
    struct sbx_buf b = SBX_BUF_INIT;
    int r = sbx_buf_puts(&b, "");
    for (size_t i = 0; i < n; i++)
        r |= sbx_buf_printf(&b, "%s%s=%s", i ? "&" : "", ps[i].name, ps[i].value);
    if (r)
        abort();
    return sbx_buf_steal(&b, NULL);
}

struct hdr {
    char *name;  /* lower case */
    char *value; /* trimmed, spaces collapsed */
    size_t idx;  /* original order, for a stable sort */
};

static int cmp_hdr(const void *a, const void *b)
{
    const struct hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static bool tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int canon_header(const struct sbx_sigv4_header *h, size_t idx, struct hdr *out)
{
    if (!h->name || !h->value || !h->name[0] || strlen(h->name) > 256 ||
        strlen(h->value) > SBX_SIGV4_MAX_QUERY)
        return h->name && h->value && strlen(h->value) > SBX_SIGV4_MAX_QUERY ? -E2BIG : -EINVAL;
    size_t nl = strlen(h->name);
    char *name = xmalloc(nl + 1);
    for (size_t i = 0; i < nl; i++) {
        unsigned char c = (unsigned char)h->name[i];
        if (!tchar(c)) {
            free(name);
            return -EINVAL;
        }
        name[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    name[nl] = '\0';
    const char *v = h->value;
    size_t vl = strlen(v);
    char *val = xmalloc(vl + 1), *o = val;
    bool space = false;
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '\r' || c == '\n' || c == '\0') {
            free(name);
            free(val);
            return -EINVAL;
        }
        if (c == ' ' || c == '\t') {
            space = o != val;
            continue;
        }
        if (space)
            *o++ = ' ';
        space = false;
        *o++ = (char)c;
    }
    *o = '\0';
    out->name = name;
    out->value = val;
    out->idx = idx;
    return 0;
}

int sbx_sigv4_canonical_request(const struct sbx_sigv4_request *req, unsigned flags,
                                char **ret_creq, char **ret_signed_headers)
{
    if (!req || !req->method || !req->method[0] || !req->payload_hash)
        return -EINVAL;
    for (const char *m = req->method; *m; m++)
        if (*m < 'A' || *m > 'Z')
            return -EINVAL;
    if (req->n_headers > SBX_SIGV4_MAX_HEADERS)
        return -E2BIG;
    int r = 0;
    _cleanup_free_ char *uri = canonical_uri(req->path, flags, &r);
    if (!uri)
        return r;

    struct param *ps = xcalloc(SBX_SIGV4_MAX_PARAMS, sizeof(*ps));
    size_t np = 0;
    r = parse_query(req->query, ps, &np);
    if (r < 0) {
        free(ps);
        return r;
    }
    _cleanup_free_ char *query = join_params(ps, np);
    params_free(ps, np);
    free(ps);

    struct hdr hs[SBX_SIGV4_MAX_HEADERS];
    size_t nh = 0;
    bool host = false;
    for (size_t i = 0; i < req->n_headers; i++) {
        r = canon_header(&req->headers[i], i, &hs[nh]);
        if (r < 0)
            goto out_free_headers;
        host |= strcmp(hs[nh].name, "host") == 0;
        nh++;
    }
    if (!host) {
        r = -EINVAL;
        goto out_free_headers;
    }
    qsort(hs, nh, sizeof(*hs), cmp_hdr);

    struct sbx_buf c = SBX_BUF_INIT, sh = SBX_BUF_INIT;
    int br = sbx_buf_printf(&c, "%s\n%s\n%s\n", req->method, uri, query);
    for (size_t i = 0; i < nh; i++) {
        if (i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0) {
            br |= sbx_buf_printf(&c, ",%s", hs[i].value); /* repeated header: values joined */
            continue;
        }
        br |= sbx_buf_printf(&c, "%s%s:%s", i ? "\n" : "", hs[i].name, hs[i].value);
        br |= sbx_buf_printf(&sh, "%s%s", sh.len ? ";" : "", hs[i].name);
    }
    br |= sbx_buf_printf(&c, "\n\n%s\n%s", sh.data, req->payload_hash);
    if (br)
        abort();
    *ret_creq = sbx_buf_steal(&c, NULL);
    *ret_signed_headers = sbx_buf_steal(&sh, NULL);
    r = 0;

out_free_headers:
    for (size_t i = 0; i < nh; i++) {
        free(hs[i].name);
        free(hs[i].value);
    }
    return r;
}

static bool amz_date_valid(const char *d)
{
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++)
        if (i != 8 && (d[i] < '0' || d[i] > '9'))
            return false;
    return true;
}

static bool scope_part_valid(const char *s)
{
    if (!s || !s[0] || strlen(s) > 64)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_'))
            return false;
    return true;
}

int sbx_sigv4_string_to_sign(const char *amz_date, const char *region, const char *service,
                             const char *creq, char **ret)
{
    if (!amz_date_valid(amz_date) || !scope_part_valid(region) || !scope_part_valid(service) ||
        !creq)
        return -EINVAL;
    char h[65];
    sbx_sha256_hex(creq, strlen(creq), h);
    *ret = xasprintf("AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", amz_date, amz_date,
                     region, service, h);
    return 0;
}

void sbx_sigv4_signing_key(const char *secret, const char *date8, const char *region,
                           const char *service, uint8_t out[32])
{
    _cleanup_free_ char *k = xasprintf("AWS4%s", secret);
    uint8_t a[32], b[32];
    sbx_hmac_sha256(k, strlen(k), date8, 8, a);
    sbx_hmac_sha256(a, 32, region, strlen(region), b);
    sbx_hmac_sha256(b, 32, service, strlen(service), a);
    sbx_hmac_sha256(a, 32, "aws4_request", 12, out);
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    memset(k, 0, strlen(k));
}

static int sign(const char *creq, const struct sbx_sigv4_credentials *c, const char *amz_date,
                char sig[65])
{
    _cleanup_free_ char *sts = NULL;
    int r = sbx_sigv4_string_to_sign(amz_date, c->region, c->service, creq, &sts);
    if (r < 0)
        return r;
    uint8_t key[32], mac[32];
    sbx_sigv4_signing_key(c->secret_access_key, amz_date, c->region, c->service, key);
    sbx_hmac_sha256(key, 32, sts, strlen(sts), mac);
    memset(key, 0, sizeof(key));
    sbx_hex(mac, 32, sig);
    return 0;
}

static bool creds_valid(const struct sbx_sigv4_credentials *c)
{
    if (!c || !c->access_key_id || !c->access_key_id[0] || !c->secret_access_key)
        return false;
    for (const char *p = c->access_key_id; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == '/' || *p == ',' || *p == 0x7f)
            return false;
    return true;
}

int sbx_sigv4_authorization(const struct sbx_sigv4_request *req, unsigned flags,
                            const struct sbx_sigv4_credentials *c, const char *amz_date,
                            char **ret_auth, char **ret_signature)
{
    if (!creds_valid(c))
        return -EINVAL;
    _cleanup_free_ char *creq = NULL, *sh = NULL;
    int r = sbx_sigv4_canonical_request(req, flags, &creq, &sh);
    if (r < 0)
        return r;
    char sig[65];
    r = sign(creq, c, amz_date, sig);
    if (r < 0)
        return r;
    *ret_auth = xasprintf("AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
                          "SignedHeaders=%s, Signature=%s",
                          c->access_key_id, amz_date, c->region, c->service, sh, sig);
    if (ret_signature)
        *ret_signature = xstrdup(sig);
    return 0;
}

int sbx_sigv4_presign_query(const struct sbx_sigv4_request *req, unsigned flags,
                            const struct sbx_sigv4_credentials *c, const char *amz_date,
                            unsigned expires_s, char **ret_query)
{
    if (!creds_valid(c) || !req || expires_s == 0 || expires_s > 604800 ||
        !amz_date_valid(amz_date) || !scope_part_valid(c->region) ||
        !scope_part_valid(c->service))
        return -EINVAL;
    _cleanup_free_ char *cred = xasprintf("%s/%.8s/%s/%s/aws4_request", c->access_key_id,
                                          amz_date, c->region, c->service);
    _cleanup_free_ char *ecred = sbx_sigv4_uri_encode(cred, strlen(cred), false);
    _cleanup_free_ char *etok = NULL;
    if (c->session_token && c->session_token[0])
        etok = sbx_sigv4_uri_encode(c->session_token, strlen(c->session_token), false);

    /* signed headers: the lower-cased names of req->headers */
    _cleanup_free_ char *creq0 = NULL, *sh = NULL;
    struct sbx_sigv4_request probe = *req;
    probe.query = NULL;
    probe.payload_hash = SBX_SIGV4_UNSIGNED_PAYLOAD;
    int r = sbx_sigv4_canonical_request(&probe, flags, &creq0, &sh);
    if (r < 0)
        return r;
    _cleanup_free_ char *esh = sbx_sigv4_uri_encode(sh, strlen(sh), false);

    _cleanup_free_ char *q = xasprintf(
        "%s%sX-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s&X-Amz-Date=%s"
        "&X-Amz-Expires=%u%s%s&X-Amz-SignedHeaders=%s",
        req->query && req->query[0] ? req->query : "", req->query && req->query[0] ? "&" : "",
        ecred, amz_date, expires_s, etok ? "&X-Amz-Security-Token=" : "", etok ? etok : "", esh);
    struct sbx_sigv4_request full = *req;
    full.query = q;
    full.payload_hash = SBX_SIGV4_UNSIGNED_PAYLOAD;
    _cleanup_free_ char *creq = NULL, *sh2 = NULL;
    r = sbx_sigv4_canonical_request(&full, flags, &creq, &sh2);
    if (r < 0)
        return r;
    char sig[65];
    r = sign(creq, c, amz_date, sig);
    if (r < 0)
        return r;
    /* the canonical query line is the second line after the URI */
    const char *l1 = strchr(creq, '\n');
    const char *l2 = l1 ? strchr(l1 + 1, '\n') : NULL;
    const char *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
    if (!l3)
        return -EINVAL;
    *ret_query = xasprintf("%.*s&X-Amz-Signature=%s", (int)(l3 - l2 - 1), l2 + 1, sig);
    return 0;
}
