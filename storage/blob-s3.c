/*
 * blob-s3.c — the S3 blob store backend (any S3-compatible service), over libcurl.
 *
 * DESIGN
 * Every call is blocking and runs on the caller's (worker) thread. Easy handles are kept in a
 * small mutex-protected pool so connections are reused across calls and threads; a handle is
 * used by one thread at a time. Requests are signed with SigV4 (sigv4.c) in the header form,
 * with x-amz-content-sha256 always set to the real payload hash (no UNSIGNED-PAYLOAD), so
 * the service checks the body it received.
 *
 * put: below the multipart threshold the object is read into memory (bounded by the
 * threshold), hashed and compared with the caller's digest *before* anything is sent (a
 * mismatch is -EBADMSG with nothing written), then sent in one PUT with
 * x-amz-content-sha256, x-amz-checksum-sha256 (base64) and x-amz-meta-sha256 (hex, so later
 * reads can verify: S3's own checksum of a multipart object is a checksum of checksums).
 * From the threshold up: CreateMultipartUpload, then one part at a time read from the fd
 * (one part in memory), each with its own x-amz-content-sha256 / x-amz-checksum-sha256,
 * then the whole-object digest is compared and CompleteMultipartUpload lists the parts with
 * their checksums. Any failure (including a digest mismatch) sends AbortMultipartUpload.
 *
 * get streams the body to the fd while hashing it and fails with -EBADMSG when the object's
 * x-amz-meta-sha256 disagrees. list is ListObjectsV2 with continuation tokens, parsed by the
 * strict reader in blob-s3xml.c.
 *
 * Retries: connection failures, timeouts, 5xx and 429/SlowDown are retried up to
 * max_attempts with exponential backoff (100 ms doubling, jittered, at most 2 s between
 * tries) as long as nothing has been written to the caller's fd; bodies are in memory so a
 * retry resends them. Timeouts: connect_timeout_ms, and a transfer slower than 1 KiB/s for
 * low_speed_timeout_s fails (no total timeout: objects may be large).
 */
#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/macro.h"
#include "storage/blob-internal.h"
#include "storage/blob-s3xml.h"
#include "storage/blobstore.h"
#include "storage/sigv4.h"

#define POOL_MAX 16
#define ERRBODY_MAX (64 * 1024)
#define LIST_BODY_MAX (8 * 1024 * 1024)
#define MAX_PARTS 10000
#define PRESIGN_MAX_S 604800u

struct s3_store {
    struct sbx_blobstore bs;
    char *scheme, *host, *bucket, *region, *ak, *sk, *token, *ca_file;
    bool path_style, insecure;
    uint64_t threshold, part_size;
    unsigned max_attempts, connect_timeout_ms, low_speed_s;
    pthread_mutex_t lock;
    CURL *pool[POOL_MAX];
    size_t npool;
};

static const struct sbx_blobstore_ops s3_ops;

DEFINE_TRIVIAL_CLEANUP_FUNC(EVP_MD_CTX *, EVP_MD_CTX_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct curl_slist *, curl_slist_free_all)

static void seterr(char *err, size_t errlen, const char *fmt, ...) _printf_(3, 4);
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static struct s3_store *S3(struct sbx_blobstore *bs)
{
    return (struct s3_store *)bs;
}

static CURL *handle_get(struct s3_store *s)
{
    CURL *h = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->npool > 0)
        h = s->pool[--s->npool];
    pthread_mutex_unlock(&s->lock);
    if (!h && !(h = curl_easy_init()))
        abort();
    return h;
}

static void handle_put(struct s3_store *s, CURL *h)
{
    pthread_mutex_lock(&s->lock);
    if (s->npool < POOL_MAX) {
        s->pool[s->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (h)
        curl_easy_cleanup(h);
}

/* ---- one HTTP exchange ------------------------------------------------------------------ */

struct s3_resp {
    long status;
    char etag[128];
    char meta_sha[65];
    char checksum[64];
    uint64_t content_length;
    bool has_length;
    int64_t mtime;
    struct sbx_buf body;      /* XML answers and error documents (capped) */
    /* streaming to a file descriptor (GET) */
    int out_fd;
    int out_err;              /* -errno of a failed write to out_fd */
    uint64_t written;
    EVP_MD_CTX *md;
    CURL *h;
};

struct s3_upload {
    const uint8_t *data;
    size_t len, off;
};

static size_t read_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct s3_upload *u = ud;
    size_t want = size * n, left = u->len - u->off;
    size_t k = want < left ? want : left;
    memcpy(buf, u->data + u->off, k);
    u->off += k;
    return k;
}

/* curl rewinds the body when it resends on a new connection (a reused connection that died
 * mid-body); the body is in memory, so any offset is fine. */
static int seek_cb(void *ud, curl_off_t offset, int origin)
{
    struct s3_upload *u = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > u->len)
        return CURL_SEEKFUNC_CANTSEEK;
    u->off = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *ptr, size_t size, size_t n, void *ud)
{
    struct s3_resp *r = ud;
    size_t len = size * n;
    long code = 0;
    curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &code);
    if (r->out_fd >= 0 && code >= 200 && code < 300) {
        int e = sbx_blob_write_all(r->out_fd, ptr, len);
        if (e < 0) {
            r->out_err = e;
            return 0; /* aborts the transfer */
        }
        if (r->md)
            EVP_DigestUpdate(r->md, ptr, len);
        r->written += len;
        return len;
    }
    if (sbx_buf_append(&r->body, ptr, len) < 0)
        return 0; /* over the cap: abort */
    return len;
}

static void copy_header_value(const char *v, size_t vlen, char *out, size_t outlen)
{
    while (vlen > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (vlen >= outlen)
        vlen = outlen - 1;
    memcpy(out, v, vlen);
    out[vlen] = '\0';
}

static size_t header_cb(char *buf, size_t size, size_t n, void *ud)
{
    struct s3_resp *r = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* a new response (after 100-continue): forget the previous headers */
        r->etag[0] = r->meta_sha[0] = r->checksum[0] = '\0';
        r->has_length = false;
        r->mtime = 0;
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon)
        return len;
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vl = len - nl - 1;
    char tmp[128];
    if (nl == 4 && strncasecmp(buf, "etag", 4) == 0) {
        copy_header_value(v, vl, r->etag, sizeof(r->etag));
    } else if (nl == 17 && strncasecmp(buf, "x-amz-meta-sha256", 17) == 0) {
        copy_header_value(v, vl, tmp, sizeof(tmp));
        if (sbx_blob_sha256_hex_valid(tmp))
            for (int i = 0; i <= 64; i++)
                r->meta_sha[i] = (char)(tmp[i] >= 'A' && tmp[i] <= 'F' ? tmp[i] + 32 : tmp[i]);
    } else if (nl == 21 && strncasecmp(buf, "x-amz-checksum-sha256", 21) == 0) {
        copy_header_value(v, vl, r->checksum, sizeof(r->checksum));
    } else if (nl == 14 && strncasecmp(buf, "content-length", 14) == 0) {
        copy_header_value(v, vl, tmp, sizeof(tmp));
        char *end;
        unsigned long long x = strtoull(tmp, &end, 10);
        if (end != tmp && !*end) {
            r->content_length = x;
            r->has_length = true;
        }
    } else if (nl == 13 && strncasecmp(buf, "last-modified", 13) == 0) {
        copy_header_value(v, vl, tmp, sizeof(tmp));
        time_t t = curl_getdate(tmp, NULL);
        r->mtime = t > 0 ? (int64_t)t : 0;
    }
    return len;
}

struct s3_call {
    const char *method;
    const char *key;                /* NULL = the bucket itself */
    const char *query;              /* "a=b&c=d" (encoded), NULL = none */
    const struct sbx_sigv4_header *extra;
    size_t nextra;
    const void *body;               /* PUT/POST body in memory */
    size_t blen;
    const char *body_sha;           /* its hex digest (NULL: computed) */
    const char *content_type;       /* POST */
    int out_fd;                     /* -1: the body goes to resp.body */
    EVP_MD_CTX *md;                 /* hashes what goes to out_fd */
};

/* The S3 error code of an error document ("NoSuchKey"), or "". */
struct errdoc {
    char code[64];
    char message[160];
};

static int errdoc_cb(void *ud, const char *path, const char *text, size_t len)
{
    struct errdoc *e = ud;
    if (strcmp(path, "Error/Code") == 0)
        snprintf(e->code, sizeof(e->code), "%s", text);
    else if (strcmp(path, "Error/Message") == 0)
        snprintf(e->message, sizeof(e->message), "%s", text);
    return 0;
}

static void parse_errdoc(const struct sbx_buf *b, struct errdoc *e)
{
    e->code[0] = e->message[0] = '\0';
    if (b->len > 0)
        (void)sbx_s3xml_parse(b->data, b->len, errdoc_cb, e, NULL);
    for (char *p = e->message; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
}

static int map_status(long status, const char *code)
{
    if (status == 404)
        return -ENOENT;
    if (status == 403 || status == 401)
        return -EACCES;
    if (strcmp(code, "BadDigest") == 0 || strcmp(code, "XAmzContentSHA256Mismatch") == 0 ||
        strcmp(code, "InvalidDigest") == 0)
        return -EBADMSG;
    return -EIO;
}

static bool retryable_curl(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SEND_FAIL_REWIND:
    case CURLE_SSL_CONNECT_ERROR:
        return true;
    default:
        return false;
    }
}

static void backoff(unsigned attempt)
{
    unsigned ms = 100u << (attempt < 5 ? attempt : 5);
    if (ms > 2000)
        ms = 2000;
    uint8_t rnd;
    sbx_random_bytes(&rnd, 1);
    ms += rnd % 100;
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* Path (encoded) and Host of a request for key (NULL = bucket). */
static void target(const struct s3_store *s, const char *key, char **ret_path, char **ret_host)
{
    _cleanup_free_ char *ek = key ? sbx_sigv4_uri_encode(key, strlen(key), true) : xstrdup("");
    if (s->path_style) {
        *ret_path = xasprintf("/%s%s%s", s->bucket, key ? "/" : "", ek);
        *ret_host = xstrdup(s->host);
    } else {
        *ret_path = xasprintf("/%s", ek);
        *ret_host = xasprintf("%s.%s", s->bucket, s->host);
    }
}

static int s3_call(struct s3_store *s, const struct s3_call *c, struct s3_resp *resp, char *err,
                   size_t errlen)
{
    _cleanup_free_ char *path = NULL, *host = NULL;
    target(s, c->key, &path, &host);
    _cleanup_free_ char *url = xasprintf("%s://%s%s%s%s", s->scheme, host, path,
                                         c->query ? "?" : "", c->query ? c->query : "");
    char body_sha[65];
    if (c->body_sha)
        snprintf(body_sha, sizeof(body_sha), "%s", c->body_sha);
    else
        sbx_sha256_hex(c->body ? c->body : "", c->blen, body_sha);

    CURL *h = handle_get(s);
    int r = -EIO;
    char cerr[CURL_ERROR_SIZE];
    for (unsigned attempt = 0; attempt < s->max_attempts; attempt++) {
        if (attempt > 0)
            backoff(attempt - 1);
        char date[17];
        sbx_sigv4_amz_date(time(NULL), date);
        struct sbx_sigv4_header hs[24];
        size_t nh = 0;
        hs[nh++] = (struct sbx_sigv4_header){ "host", host };
        hs[nh++] = (struct sbx_sigv4_header){ "x-amz-date", date };
        hs[nh++] = (struct sbx_sigv4_header){ "x-amz-content-sha256", body_sha };
        if (s->token)
            hs[nh++] = (struct sbx_sigv4_header){ "x-amz-security-token", s->token };
        for (size_t i = 0; i < c->nextra && nh < ARRAY_SIZE(hs); i++)
            hs[nh++] = c->extra[i];
        struct sbx_sigv4_request rq = {
            .method = c->method, .path = path, .query = c->query, .headers = hs,
            .n_headers = nh, .payload_hash = body_sha,
        };
        struct sbx_sigv4_credentials cr = {
            .access_key_id = s->ak, .secret_access_key = s->sk, .region = s->region,
            .service = "s3",
        };
        _cleanup_free_ char *auth = NULL;
        r = sbx_sigv4_authorization(&rq, SBX_SIGV4_S3, &cr, date, &auth, NULL);
        if (r < 0) {
            seterr(err, errlen, "cannot sign the request (%s)", strerror(-r));
            break;
        }
        _cleanup_(curl_slist_free_allp) struct curl_slist *list = NULL;
        char line[4200];
        for (size_t i = 0; i < nh; i++) {
            snprintf(line, sizeof(line), "%s: %s", hs[i].name, hs[i].value);
            list = curl_slist_append(list, line);
        }
        _cleanup_free_ char *al = xasprintf("Authorization: %s", auth);
        list = curl_slist_append(list, al);
        list = curl_slist_append(list, "Expect:");
        if (c->content_type) {
            snprintf(line, sizeof(line), "Content-Type: %s", c->content_type);
            list = curl_slist_append(list, line);
        } else {
            list = curl_slist_append(list, "Content-Type:");
        }
        if (!list)
            abort();

        curl_easy_reset(h);
        struct s3_upload up = { .data = c->body, .len = c->blen };
        sbx_buf_reset(&resp->body);
        resp->status = 0;
        resp->etag[0] = resp->meta_sha[0] = resp->checksum[0] = '\0';
        resp->has_length = false;
        resp->out_fd = c->out_fd;
        resp->out_err = 0;
        resp->md = c->md;
        resp->h = h;
        if (c->md && resp->written == 0)
            EVP_DigestInit_ex(c->md, EVP_sha256(), NULL);
        cerr[0] = '\0';
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)s->connect_timeout_ms);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)s->low_speed_s);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
        curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, s->insecure ? 0L : 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, s->insecure ? 0L : 2L);
        if (s->ca_file)
            curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
        if (strcmp(c->method, "HEAD") == 0) {
            curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
        } else if (strcmp(c->method, "PUT") == 0) {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
            curl_easy_setopt(h, CURLOPT_READDATA, &up);
            curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
            curl_easy_setopt(h, CURLOPT_SEEKDATA, &up);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->blen);
        } else if (strcmp(c->method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body ? (const char *)c->body : "");
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)c->blen);
        } else if (strcmp(c->method, "GET") != 0) {
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
        }

        CURLcode cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        if (resp->out_err < 0) {
            r = resp->out_err;
            seterr(err, errlen, "%s: writing to the destination: %s", c->key ? c->key : "",
                   strerror(-r));
            break;
        }
        if (cc != CURLE_OK) {
            r = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
            seterr(err, errlen, "%s %s: %s", c->method, s->host,
                   cerr[0] ? cerr : curl_easy_strerror(cc));
            if (retryable_curl(cc) && resp->written == 0)
                continue;
            break;
        }
        if (resp->status >= 200 && resp->status < 300) {
            r = 0;
            break;
        }
        struct errdoc e;
        parse_errdoc(&resp->body, &e);
        r = map_status(resp->status, e.code);
        seterr(err, errlen, "%s %s: HTTP %ld%s%s%s%s", c->method, c->key ? c->key : s->bucket,
               resp->status, e.code[0] ? " " : "", e.code, e.message[0] ? ": " : "", e.message);
        if ((resp->status >= 500 || resp->status == 429 || strcmp(e.code, "SlowDown") == 0) &&
            resp->written == 0)
            continue;
        break;
    }
    handle_put(s, h);
    return r;
}

static void resp_init(struct s3_resp *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    sbx_buf_init(&r->body, cap);
    r->out_fd = -1;
}

/* ---- operations --------------------------------------------------------------------------- */

static void b64_of_hex(const char *hex, char out[64])
{
    uint8_t bin[32];
    for (int i = 0; i < 32; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        bin[i] = (uint8_t)v;
    }
    _cleanup_free_ char *b = sbx_base64_encode(bin, 32, NULL);
    snprintf(out, 64, "%s", b);
}

static void hex_of_md(EVP_MD_CTX *md, char out[65])
{
    uint8_t dig[32];
    EVP_DigestFinal_ex(md, dig, NULL);
    sbx_hex(dig, 32, out);
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'F')
            *s = (char)(*s + 32);
}

static int put_single(struct s3_store *s, const char *key, int fd, uint64_t len,
                      const char *want, char *err, size_t errlen)
{
    _cleanup_free_ uint8_t *buf = xmalloc(len ? (size_t)len : 1);
    ssize_t got = sbx_blob_read_full(fd, buf, (size_t)len);
    if (got < 0) {
        seterr(err, errlen, "%s: reading the source: %s", key, strerror((int)-got));
        return (int)got;
    }
    if ((uint64_t)got != len) {
        seterr(err, errlen, "%s: the source ended after %zd of %llu bytes", key, got,
               (unsigned long long)len);
        return -EIO;
    }
    char hex[65], b64[64];
    sbx_sha256_hex(buf, (size_t)len, hex);
    if (want && strcmp(hex, want) != 0) {
        seterr(err, errlen, "%s: sha256 mismatch (expected %s, got %s)", key, want, hex);
        return -EBADMSG;
    }
    b64_of_hex(hex, b64);
    const struct sbx_sigv4_header extra[] = {
        { "x-amz-checksum-sha256", b64 },
        { "x-amz-meta-sha256", hex },
    };
    struct s3_call c = {
        .method = "PUT", .key = key, .extra = extra, .nextra = ARRAY_SIZE(extra), .body = buf,
        .blen = (size_t)len, .body_sha = hex, .out_fd = -1,
    };
    struct s3_resp resp;
    resp_init(&resp, ERRBODY_MAX);
    int r = s3_call(s, &c, &resp, err, errlen);
    if (r == 0 && resp.checksum[0] && strcmp(resp.checksum, b64) != 0) {
        seterr(err, errlen, "%s: the store reports checksum %s, sent %s", key, resp.checksum, b64);
        r = -EBADMSG;
    }
    sbx_buf_free(&resp.body);
    return r;
}

struct part {
    char etag[128];
    char checksum[64];
};

static int upload_id_cb(void *ud, const char *path, const char *text, size_t len)
{
    if (strcmp(path, "InitiateMultipartUploadResult/UploadId") == 0 && len > 0 && len < 1024)
        snprintf(ud, 1024, "%s", text);
    return 0;
}

static void abort_upload(struct s3_store *s, const char *key, const char *eid)
{
    _cleanup_free_ char *q = xasprintf("uploadId=%s", eid);
    struct s3_call c = { .method = "DELETE", .key = key, .query = q, .out_fd = -1 };
    struct s3_resp resp;
    resp_init(&resp, ERRBODY_MAX);
    char e[256];
    (void)s3_call(s, &c, &resp, e, sizeof(e));
    sbx_buf_free(&resp.body);
}

static int complete_upload(struct s3_store *s, const char *key, const char *eid,
                           const struct part *parts, size_t nparts, char *err, size_t errlen)
{
    struct s3_resp resp;
    int r;
    struct sbx_buf x = SBX_BUF_INIT;
    int br = sbx_buf_puts(&x, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (size_t i = 0; i < nparts; i++) {
        /* ETags are quoted hex; escape anything XML-special anyway */
        br |= sbx_buf_printf(&x, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
        for (const char *p = parts[i].etag; *p; p++)
            br |= *p == '&'   ? sbx_buf_puts(&x, "&amp;")
                  : *p == '<' ? sbx_buf_puts(&x, "&lt;")
                  : *p == '>' ? sbx_buf_puts(&x, "&gt;")
                  : *p == '"' ? sbx_buf_puts(&x, "&quot;")
                              : sbx_buf_append(&x, p, 1);
        br |= sbx_buf_printf(&x, "</ETag><ChecksumSHA256>%s</ChecksumSHA256></Part>",
                             parts[i].checksum);
    }
    br |= sbx_buf_puts(&x, "</CompleteMultipartUpload>");
    if (br)
        abort();
    _cleanup_free_ char *cq = xasprintf("uploadId=%s", eid);
    struct s3_call cc = {
        .method = "POST", .key = key, .query = cq, .body = x.data, .blen = x.len,
        .content_type = "application/xml", .out_fd = -1,
    };
    resp_init(&resp, ERRBODY_MAX);
    r = s3_call(s, &cc, &resp, err, errlen);
    sbx_buf_free(&x);
    if (r == 0) {
        /* a 200 may still carry an <Error> document */
        char root[129] = "";
        struct errdoc e = { "", "" };
        int pr = sbx_s3xml_parse(resp.body.data ? resp.body.data : "", resp.body.len, errdoc_cb,
                                 &e, root);
        if (pr < 0 || strcmp(root, "Error") == 0) {
            r = strcmp(e.code, "BadDigest") == 0 || strcmp(e.code, "InvalidPart") == 0 ? -EBADMSG
                                                                                        : -EIO;
            seterr(err, errlen, "%s: CompleteMultipartUpload failed: %s %s", key,
                   e.code[0] ? e.code : "malformed answer", e.message);
        }
    }
    sbx_buf_free(&resp.body);
    return r;
}

static int put_multipart(struct s3_store *s, const char *key, int fd, uint64_t len,
                         const char *want, char *err, size_t errlen)
{
    uint64_t psize = s->part_size;
    if ((len + psize - 1) / psize > MAX_PARTS)
        psize = ((len + MAX_PARTS - 1) / MAX_PARTS + (1 << 20) - 1) & ~(uint64_t)((1 << 20) - 1);
    size_t nparts = (size_t)((len + psize - 1) / psize);

    /* CreateMultipartUpload */
    struct sbx_sigv4_header cextra[2] = { { "x-amz-checksum-algorithm", "SHA256" } };
    size_t ncextra = 1;
    if (want)
        cextra[ncextra++] = (struct sbx_sigv4_header){ "x-amz-meta-sha256", want };
    struct s3_call c = {
        .method = "POST", .key = key, .query = "uploads=", .extra = cextra, .nextra = ncextra,
        .out_fd = -1,
    };
    struct s3_resp resp;
    resp_init(&resp, ERRBODY_MAX);
    int r = s3_call(s, &c, &resp, err, errlen);
    char upload_id[1024] = "";
    if (r == 0) {
        char root[129] = "";
        r = sbx_s3xml_parse(resp.body.data ? resp.body.data : "", resp.body.len, upload_id_cb,
                            upload_id, root);
        if (r < 0 || !upload_id[0]) {
            seterr(err, errlen, "%s: CreateMultipartUpload: no UploadId in the answer", key);
            r = -EIO;
        }
    }
    sbx_buf_free(&resp.body);
    if (r < 0)
        return r;
    _cleanup_free_ char *eid = sbx_sigv4_uri_encode(upload_id, strlen(upload_id), false);

    _cleanup_free_ struct part *parts = xcalloc(nparts ? nparts : 1, sizeof(*parts));
    _cleanup_free_ uint8_t *buf = xmalloc((size_t)psize);
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
        abort();
    uint64_t left = len;
    for (size_t i = 0; i < nparts; i++) {
        size_t want_n = (size_t)(left < psize ? left : psize);
        ssize_t got = sbx_blob_read_full(fd, buf, want_n);
        if (got < 0 || (size_t)got != want_n) {
            r = got < 0 ? (int)got : -EIO;
            seterr(err, errlen, "%s: the source ended after %llu of %llu bytes", key,
                   (unsigned long long)(len - left + (uint64_t)(got > 0 ? got : 0)),
                   (unsigned long long)len);
            goto out_abort;
        }
        EVP_DigestUpdate(md, buf, want_n);
        char hex[65];
        sbx_sha256_hex(buf, want_n, hex);
        b64_of_hex(hex, parts[i].checksum);
        const struct sbx_sigv4_header pextra[] = { { "x-amz-checksum-sha256", parts[i].checksum } };
        _cleanup_free_ char *pq = xasprintf("partNumber=%zu&uploadId=%s", i + 1, eid);
        struct s3_call pc = {
            .method = "PUT", .key = key, .query = pq, .extra = pextra, .nextra = 1, .body = buf,
            .blen = want_n, .body_sha = hex, .out_fd = -1,
        };
        resp_init(&resp, ERRBODY_MAX);
        r = s3_call(s, &pc, &resp, err, errlen);
        if (r == 0 && !resp.etag[0]) {
            seterr(err, errlen, "%s: UploadPart %zu: no ETag in the answer", key, i + 1);
            r = -EIO;
        }
        if (r == 0 && resp.checksum[0] && strcmp(resp.checksum, parts[i].checksum) != 0) {
            seterr(err, errlen, "%s: part %zu: the store reports another checksum", key, i + 1);
            r = -EBADMSG;
        }
        snprintf(parts[i].etag, sizeof(parts[i].etag), "%s", resp.etag);
        sbx_buf_free(&resp.body);
        if (r < 0)
            goto out_abort;
        left -= want_n;
    }
    char hex[65];
    hex_of_md(md, hex);
    if (want && strcmp(hex, want) != 0) {
        seterr(err, errlen, "%s: sha256 mismatch (expected %s, got %s)", key, want, hex);
        r = -EBADMSG;
        goto out_abort;
    }

    r = complete_upload(s, key, eid, parts, nparts, err, errlen);
    if (r < 0)
        goto out_abort;
    return 0;

out_abort:
    abort_upload(s, key, eid);
    return r;
}

static int s3_put(struct sbx_blobstore *bs, const char *key, int fd, uint64_t len,
                  const char *sha256_hex, char *err, size_t errlen)
{
    struct s3_store *s = S3(bs);
    if (!sbx_blob_key_valid(key)) {
        seterr(err, errlen, "invalid blob key");
        return -EINVAL;
    }
    char want[65];
    if (sha256_hex) {
        if (!sbx_blob_sha256_hex_valid(sha256_hex)) {
            seterr(err, errlen, "invalid sha256");
            return -EINVAL;
        }
        snprintf(want, sizeof(want), "%s", sha256_hex);
        lower(want);
    }
    if (len < s->threshold)
        return put_single(s, key, fd, len, sha256_hex ? want : NULL, err, errlen);
    return put_multipart(s, key, fd, len, sha256_hex ? want : NULL, err, errlen);
}

static int s3_get(struct sbx_blobstore *bs, const char *key, int fd, uint64_t *ret_size,
                  char *err, size_t errlen)
{
    struct s3_store *s = S3(bs);
    if (!sbx_blob_key_valid(key)) {
        seterr(err, errlen, "invalid blob key");
        return -EINVAL;
    }
    _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        abort();
    struct s3_call c = { .method = "GET", .key = key, .out_fd = fd, .md = md };
    struct s3_resp resp;
    resp_init(&resp, ERRBODY_MAX);
    int r = s3_call(s, &c, &resp, err, errlen);
    if (r == 0) {
        char hex[65];
        hex_of_md(md, hex);
        if (resp.has_length && resp.content_length != resp.written) {
            seterr(err, errlen, "%s: short body (%llu of %llu bytes)", key,
                   (unsigned long long)resp.written, (unsigned long long)resp.content_length);
            r = -EIO;
        } else if (resp.meta_sha[0] && strcmp(resp.meta_sha, hex) != 0) {
            seterr(err, errlen, "%s: sha256 mismatch on read (stored %s, read %s)", key,
                   resp.meta_sha, hex);
            r = -EBADMSG;
        } else if (ret_size) {
            *ret_size = resp.written;
        }
    }
    sbx_buf_free(&resp.body);
    return r;
}

static int s3_head(struct sbx_blobstore *bs, const char *key, struct sbx_blob_info *ret)
{
    struct s3_store *s = S3(bs);
    if (!sbx_blob_key_valid(key))
        return -EINVAL;
    struct s3_call c = { .method = "HEAD", .key = key, .out_fd = -1 };
    struct s3_resp resp;
    resp_init(&resp, ERRBODY_MAX);
    char e[256];
    int r = s3_call(s, &c, &resp, e, sizeof(e));
    if (r == 0 && ret) {
        ret->size = resp.content_length;
        ret->mtime = resp.mtime;
        snprintf(ret->sha256, sizeof(ret->sha256), "%s", resp.meta_sha);
    }
    sbx_buf_free(&resp.body);
    return r;
}

static int s3_del(struct sbx_blobstore *bs, const char *key, char *err, size_t errlen)
{
    struct s3_store *s = S3(bs);
    if (!sbx_blob_key_valid(key)) {
        seterr(err, errlen, "invalid blob key");
        return -EINVAL;
    }
    struct s3_call c = { .method = "DELETE", .key = key, .out_fd = -1 };
    struct s3_resp resp;
    resp_init(&resp, ERRBODY_MAX);
    int r = s3_call(s, &c, &resp, err, errlen);
    sbx_buf_free(&resp.body);
    return r == -ENOENT ? 0 : r;
}

struct list_ctx {
    char **v;
    size_t n, cap;
    bool truncated;
    char *next;
    int err;
};

static int list_cb(void *ud, const char *path, const char *text, size_t len)
{
    struct list_ctx *l = ud;
    if (strcmp(path, "ListBucketResult/Contents/Key") == 0) {
        if (!sbx_blob_key_valid(text))
            return 0; /* not ours (written by another tool): skip */
        if (l->n == l->cap) {
            l->cap = l->cap ? l->cap * 2 : 256;
            l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
        }
        l->v[l->n++] = xstrndup(text, len);
    } else if (strcmp(path, "ListBucketResult/IsTruncated") == 0) {
        l->truncated = strcmp(text, "true") == 0;
    } else if (strcmp(path, "ListBucketResult/NextContinuationToken") == 0) {
        free(l->next);
        l->next = len > 0 && len < 4096 ? xstrndup(text, len) : NULL;
    }
    return 0;
}

static int s3_list(struct sbx_blobstore *bs, const char *prefix, char ***ret)
{
    struct s3_store *s = S3(bs);
    if (!prefix)
        prefix = "";
    if (!sbx_blob_prefix_valid(prefix))
        return -EINVAL;
    struct list_ctx l = { 0 };
    _cleanup_free_ char *ep = sbx_sigv4_uri_encode(prefix, strlen(prefix), false);
    _cleanup_free_ char *token = NULL;
    int r = 0;
    for (unsigned page = 0; page < 100000; page++) {
        _cleanup_free_ char *et = token ? sbx_sigv4_uri_encode(token, strlen(token), false) : NULL;
        _cleanup_free_ char *q = xasprintf("%s%s%slist-type=2&max-keys=1000&prefix=%s",
                                           et ? "continuation-token=" : "", et ? et : "",
                                           et ? "&" : "", ep);
        struct s3_call c = { .method = "GET", .key = NULL, .query = q, .out_fd = -1 };
        struct s3_resp resp;
        resp_init(&resp, LIST_BODY_MAX);
        char e[256];
        r = s3_call(s, &c, &resp, e, sizeof(e));
        if (r == 0) {
            char root[129] = "";
            l.truncated = false;
            free(l.next);
            l.next = NULL;
            r = sbx_s3xml_parse(resp.body.data ? resp.body.data : "", resp.body.len, list_cb, &l,
                                root);
            if (r == 0 && strcmp(root, "ListBucketResult") != 0)
                r = -EIO;
            if (r < 0)
                r = -EIO;
        }
        sbx_buf_free(&resp.body);
        if (r < 0)
            break;
        if (!l.truncated)
            break;
        if (!l.next) {
            r = -EIO; /* truncated without a token: cannot go on */
            break;
        }
        free(token);
        token = TAKE_PTR(l.next);
    }
    free(l.next);
    if (r < 0) {
        sbx_blob_keys_free(l.v, l.n);
        return r;
    }
    if (l.n > INT32_MAX) {
        sbx_blob_keys_free(l.v, l.n);
        return -E2BIG;
    }
    sbx_blob_keys_sort(l.v, l.n);
    *ret = l.v ? l.v : xcalloc(1, sizeof(char *));
    return (int)l.n;
}

static int s3_presign_get(struct sbx_blobstore *bs, const char *key, unsigned expires_s,
                          char **ret)
{
    struct s3_store *s = S3(bs);
    if (!sbx_blob_key_valid(key) || expires_s == 0 || expires_s > PRESIGN_MAX_S)
        return -EINVAL;
    _cleanup_free_ char *path = NULL, *host = NULL, *q = NULL;
    target(s, key, &path, &host);
    char date[17];
    sbx_sigv4_amz_date(time(NULL), date);
    const struct sbx_sigv4_header h[] = { { "host", host } };
    struct sbx_sigv4_request rq = {
        .method = "GET", .path = path, .headers = h, .n_headers = 1,
    };
    struct sbx_sigv4_credentials cr = {
        .access_key_id = s->ak, .secret_access_key = s->sk, .session_token = s->token,
        .region = s->region, .service = "s3",
    };
    int r = sbx_sigv4_presign_query(&rq, SBX_SIGV4_S3, &cr, date, expires_s, &q);
    if (r < 0)
        return r;
    *ret = xasprintf("%s://%s%s?%s", s->scheme, host, path, q);
    return 0;
}

static void s3_free(struct sbx_blobstore *bs)
{
    struct s3_store *s = S3(bs);
    for (size_t i = 0; i < s->npool; i++)
        curl_easy_cleanup(s->pool[i]);
    pthread_mutex_destroy(&s->lock);
    if (s->sk)
        OPENSSL_cleanse(s->sk, strlen(s->sk));
    if (s->token)
        OPENSSL_cleanse(s->token, strlen(s->token));
    free(s->scheme);
    free(s->host);
    free(s->bucket);
    free(s->region);
    free(s->ak);
    free(s->sk);
    free(s->token);
    free(s->ca_file);
    free(s);
}

static const struct sbx_blobstore_ops s3_ops = {
    .name = "s3",
    .put = s3_put,
    .get = s3_get,
    .head = s3_head,
    .del = s3_del,
    .list = s3_list,
    .presign_get = s3_presign_get,
    .free = s3_free,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static const char *nonempty(const char *s)
{
    return s && s[0] ? s : NULL;
}

/* Bucket names as S3 allows them (3..63, [a-z0-9.-]); dots are refused for virtual-hosted
 * style over TLS by AWS, but S3-compatible services accept them. */
static bool bucket_valid(const char *b)
{
    size_t n = strlen(b);
    if (n < 3 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '.' ||
              b[i] == '-'))
            return false;
    return true;
}

static bool host_valid(const char *h)
{
    if (!h[0])
        return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              strchr(".-:[]_", *p)))
            return false;
    return true;
}

int sbx_blobstore_s3_new(const struct sbx_blobstore_s3_opts *o, struct sbx_blobstore **ret,
                         char *err, size_t errlen)
{
    if (!o || !nonempty(o->bucket) || !bucket_valid(o->bucket)) {
        seterr(err, errlen, "s3 blob store: a valid bucket name is required");
        return -EINVAL;
    }
    const char *region = nonempty(o->region) ? o->region : "us-east-1";
    for (const char *p = region; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-')) {
            seterr(err, errlen, "s3 blob store: invalid region '%s'", region);
            return -EINVAL;
        }
    _cleanup_free_ char *def_ep = xasprintf("https://s3.%s.amazonaws.com", region);
    const char *ep = nonempty(o->endpoint) ? o->endpoint : def_ep;
    const char *scheme;
    if (strncmp(ep, "http://", 7) == 0)
        scheme = "http";
    else if (strncmp(ep, "https://", 8) == 0)
        scheme = "https";
    else {
        seterr(err, errlen, "s3 blob store: endpoint must start with http:// or https://");
        return -EINVAL;
    }
    const char *hp = ep + strlen(scheme) + 3;
    size_t hl = strcspn(hp, "/?#");
    if (hp[hl] && strcmp(hp + hl, "/") != 0) {
        seterr(err, errlen, "s3 blob store: the endpoint must not have a path");
        return -EINVAL;
    }
    _cleanup_free_ char *host = xstrndup(hp, hl);
    if (!host_valid(host)) {
        seterr(err, errlen, "s3 blob store: invalid endpoint host");
        return -EINVAL;
    }
    const char *ak = nonempty(o->access_key_id), *sk = nonempty(o->secret_access_key);
    const char *tok = nonempty(o->session_token);
    if (!ak && !sk) {
        ak = nonempty(getenv("AWS_ACCESS_KEY_ID"));
        sk = nonempty(getenv("AWS_SECRET_ACCESS_KEY"));
        if (!tok)
            tok = nonempty(getenv("AWS_SESSION_TOKEN"));
    }
    if (!ak || !sk) {
        seterr(err, errlen, "s3 blob store: no credentials (storage.s3.access_key_id/"
                            "secret_access_key or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)");
        return -EINVAL;
    }
    for (const char *p = ak; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == '/' || *p == ',') {
            seterr(err, errlen, "s3 blob store: invalid access key id");
            return -EINVAL;
        }
    if (strpbrk(sk, "\r\n") || (tok && strpbrk(tok, "\r\n"))) {
        seterr(err, errlen, "s3 blob store: invalid secret or session token");
        return -EINVAL;
    }
    uint64_t part = o->part_size ? o->part_size : 8u << 20;
    uint64_t thr = o->multipart_threshold ? o->multipart_threshold : 16u << 20;
    if (part < (5u << 20) || part > (5ull << 30) || thr > (5ull << 30)) {
        seterr(err, errlen, "s3 blob store: part size must be 5 MiB..5 GiB, threshold <= 5 GiB");
        return -EINVAL;
    }
    pthread_once(&curl_once, curl_init_once);

    struct s3_store *s = xcalloc(1, sizeof(*s));
    s->bs.ops = &s3_ops;
    s->bs.priv = s;
    s->scheme = xstrdup(scheme);
    s->host = TAKE_PTR(host);
    s->bucket = xstrdup(o->bucket);
    s->region = xstrdup(region);
    s->ak = xstrdup(ak);
    s->sk = xstrdup(sk);
    s->token = tok ? xstrdup(tok) : NULL;
    s->ca_file = nonempty(o->ca_file) ? xstrdup(o->ca_file) : NULL;
    s->path_style = o->path_style;
    s->insecure = o->insecure;
    s->threshold = thr;
    s->part_size = part;
    s->max_attempts = o->max_attempts ? o->max_attempts : 4;
    s->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : 5000;
    s->low_speed_s = o->low_speed_timeout_s ? o->low_speed_timeout_s : 30;
    pthread_mutex_init(&s->lock, NULL);
    *ret = &s->bs;
    return 0;
}
