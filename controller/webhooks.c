/*
 * webhooks.c — outbox fan-out and delivery (see webhooks.h, docs/internals/WEBHOOKS.md).
 *
 * DESIGN
 * Every poll_interval (or when kicked) the dispatcher thread:
 *   1. fans out this instance's undispatched events (sbx_webhook_events_pending_for): in the
 *      event's org, one delivery row per enabled endpoint subscribed to the event (and created
 *      before it), then dispatched_at — one transaction, so an event is fanned out exactly once;
 *   2. attempts this instance's due deliveries (sbx_webhook_deliveries_due_for) one by one.
 * An attempt first claims the row in its own transaction (status delivering, attempts + 1,
 * locked_until = now + lease), then sends without any transaction open, then records the
 * outcome. A daemon killed mid-attempt leaves a leased row that becomes due again when the
 * lease ends: at-least-once, with the same webhook-id (the event id) on every attempt.
 * SSRF: the host is resolved here, every address is classified (netaddr.h) unless
 * webhooks.allow_cidrs covers it, and curl is pinned to the checked addresses with
 * CURLOPT_RESOLVE; the socket address is checked again in CURLOPT_OPENSOCKETFUNCTION.
 */
#include "controller/webhooks.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "common/timeutil.h"
#include "controller/app.h"
#include "controller/leader.h"
#include "controller/netaddr.h"
#include "controller/pgjson.h"
#include "controller/sandbox.h"
#include "controller/secrets.h"
#include "storage/db.h"

#define MAX_SCHEDULE 32
#define SNIPPET_MAX 1024
#define RESPONSE_MAX (256 * 1024)
#define BATCH 50
#define MAX_RETRY_AFTER_S (24 * 3600)

static struct netaddr_cidr *allow;
static size_t n_allow;
static uint64_t schedule[MAX_SCHEDULE];
static size_t n_schedule;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static bool stop_requested, kicked, started;
static atomic_bool aborting;
static pthread_t thread;

int webhooks_init(const struct sbx_config *cfg, char *err, size_t errlen)
{
    char e[128] = "";
    if (netaddr_cidr_list_parse(cfg->webhooks.allow_cidrs, &allow, &n_allow, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "webhooks.allow_cidrs: %s", e);
        return -EINVAL;
    }
    n_schedule = 0;
    const char *p = cfg->webhooks.retry_schedule;
    while (p && *p) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        if (!len)
            break;
        char item[32];
        uint64_t v;
        if (len >= sizeof(item) || n_schedule >= MAX_SCHEDULE) {
            snprintf(err, errlen, "webhooks.retry_schedule: too long");
            return -EINVAL;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (sbx_config_parse_duration(item, &v) < 0 || v == 0) {
            snprintf(err, errlen, "webhooks.retry_schedule: invalid duration '%s'", item);
            return -EINVAL;
        }
        schedule[n_schedule++] = v;
        p += len;
    }
    if (!n_schedule) {
        snprintf(err, errlen, "webhooks.retry_schedule: at least one delay is needed");
        return -EINVAL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "libcurl could not be initialised");
        return -EIO;
    }
    return 0;
}

int webhooks_default_retries(void)
{
    return (int)MIN(n_schedule ? n_schedule : 3, (size_t)20);
}

int webhooks_url_valid(const char *url, char *err, size_t errlen)
{
    if (!url || !*url || strlen(url) > 2048) {
        snprintf(err, errlen, "field 'url' must be 1 to 2048 characters");
        return -EINVAL;
    }
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
            snprintf(err, errlen, "field 'url' must not contain spaces or control characters");
            return -EINVAL;
        }
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
        snprintf(err, errlen, "field 'url' must be an http:// or https:// URL");
        return -EINVAL;
    }
    CURLU *u = curl_url();
    char *user = NULL, *pass = NULL, *host = NULL, *frag = NULL;
    int r = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
        snprintf(err, errlen, "field 'url' is not a valid URL");
        r = -EINVAL;
    } else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
               curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
        snprintf(err, errlen, "field 'url' must not contain credentials (use headers)");
        r = -EINVAL;
    } else if (curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
        snprintf(err, errlen, "field 'url' must not contain a fragment");
        r = -EINVAL;
    } else if (strlen(host) > 253) {
        snprintf(err, errlen, "field 'url' has a host name that is too long");
        r = -EINVAL;
    }
    curl_free(user);
    curl_free(pass);
    curl_free(host);
    curl_free(frag);
    curl_url_cleanup(u);
    return r;
}

/* ---- one HTTP attempt ------------------------------------------------------------------- */

struct sink {
    struct sbx_buf snippet;
    size_t total;
};

static size_t on_body(char *p, size_t sz, size_t nm, void *arg)
{
    struct sink *s = arg;
    size_t n = sz * nm;
    if (s->snippet.len < SNIPPET_MAX) {
        size_t take = MIN(n, SNIPPET_MAX - s->snippet.len);
        if (sbx_buf_append(&s->snippet, p, take) < 0)
            return 0;
    }
    s->total += n;
    return s->total > RESPONSE_MAX ? 0 : n;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)arg, (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&aborting) ? 1 : 0;
}

/* The address actually being connected to is checked again. */
static curl_socket_t on_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    (void)arg;
    struct netaddr na;
    if (purpose != CURLSOCKTYPE_IPCXN || netaddr_from_sockaddr(&a->addr, &na) < 0)
        return CURL_SOCKET_BAD;
    if (netaddr_blocked(&na) && !netaddr_cidr_list_contains(allow, n_allow, &na))
        return CURL_SOCKET_BAD;
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static bool header_name_reserved(const char *k)
{
    static const char *const r[] = { "host", "content-type", "content-length", "webhook-id",
                                     "webhook-timestamp", "webhook-signature",
                                     "x-sandbox-signature", "x-sandbox-event", "transfer-encoding",
                                     "connection", "expect", "user-agent" };
    for (size_t i = 0; i < ARRAY_SIZE(r); i++)
        if (strcasecmp(k, r[i]) == 0)
            return true;
    return false;
}

/* Resolves and checks the destination; fills the CURLOPT_RESOLVE entry (empty for literal
 * addresses, which curl connects to directly). */
static int check_destination(const char *url, char *resolve, size_t rlen, char *err,
                             size_t errlen)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL;
    int r = 0;
    resolve[0] = '\0';
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(err, errlen, "invalid URL");
        r = -EINVAL;
        goto out;
    }
    char name[256];
    size_t hl = strlen(host);
    if (hl >= sizeof(name)) {
        snprintf(err, errlen, "invalid host");
        r = -EINVAL;
        goto out;
    }
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memcpy(name, host + 1, hl - 2);
        name[hl - 2] = '\0';
        char *pct = strchr(name, '%');
        if (pct)
            *pct = '\0';
    } else {
        snprintf(name, sizeof(name), "%s", host);
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int gr = getaddrinfo(name, port, &hints, &res);
    if (gr != 0 || !res) {
        snprintf(err, errlen, "the host name could not be resolved");
        r = -EHOSTUNREACH;
        goto out;
    }
    struct netaddr probe;
    bool literal = netaddr_parse(name, &probe) == 0;
    struct sbx_buf list = SBX_BUF_INIT;
    int br = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        struct netaddr na;
        if (netaddr_from_sockaddr(ai->ai_addr, &na) < 0)
            continue;
        const char *why = netaddr_blocked(&na);
        if (why && !netaddr_cidr_list_contains(allow, n_allow, &na)) {
            snprintf(err, errlen, "destination refused: %s", why);
            r = -EACCES;
            break;
        }
        char txt[64];
        netaddr_format(&na, txt, sizeof(txt));
        if (na.family == AF_INET6)
            br |= sbx_buf_printf(&list, "%s[%s]", list.len ? "," : "", txt);
        else
            br |= sbx_buf_printf(&list, "%s%s", list.len ? "," : "", txt);
    }
    freeaddrinfo(res);
    if (r == 0 && !list.len) {
        snprintf(err, errlen, "the host name has no usable address");
        r = -EHOSTUNREACH;
    }
    if (r == 0 && !literal)
        snprintf(resolve, rlen, "%s:%s:%s", name, port, list.data);
    (void)br;
    sbx_buf_free(&list);
out:
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return r;
}

struct http_result {
    long status;
    long latency_ms;
    long retry_after_s;
    char error[256];
    struct sbx_buf snippet;
};

static void post(const char *url, const char *headers_json, const char *body, size_t body_len,
                 const char *secret, const char *event_id, const char *event, long timeout_ms,
                 struct http_result *out)
{
    char resolve[1024];
    out->status = 0;
    out->retry_after_s = -1;
    uint64_t t0 = sbx_now_ms();
    if (check_destination(url, resolve, sizeof(resolve), out->error, sizeof(out->error)) < 0) {
        out->latency_ms = 0;
        return;
    }
    /* signatures */
    uint8_t mac[SBX_SHA256_LEN];
    char hex[2 * SBX_SHA256_LEN + 1];
    sbx_hmac_sha256(secret, strlen(secret), body, body_len, mac);
    sbx_hex(mac, sizeof(mac), hex);
    char ts[32];
    snprintf(ts, sizeof(ts), "%lld", (long long)time(NULL));
    struct sbx_buf signed_content = SBX_BUF_INIT;
    if (sbx_buf_printf(&signed_content, "%s.%s.", event_id, ts) < 0 ||
        sbx_buf_append(&signed_content, body, body_len) < 0)
        abort();
    /* Standard Webhooks: the key is the base64 part after whsec_ when it decodes, else the
     * whole secret's bytes. */
    const uint8_t *key = (const uint8_t *)secret;
    size_t keylen = strlen(secret);
    uint8_t *dec = NULL;
    size_t declen = 0;
    if (strncmp(secret, "whsec_", 6) == 0 &&
        sbx_base64_decode(secret + 6, strlen(secret + 6), 1024, &dec, &declen) == 0 && declen) {
        key = dec;
        keylen = declen;
    }
    sbx_hmac_sha256(key, keylen, signed_content.data, signed_content.len, mac);
    sbx_buf_free(&signed_content);
    if (dec) {
        explicit_bzero(dec, declen);
        free(dec);
    }
    _cleanup_free_ char *b64 = sbx_base64_encode(mac, sizeof(mac), NULL);

    struct curl_slist *h = NULL;
    _cleanup_free_ char *h1 = xasprintf("X-Sandbox-Signature: sha256=%s", hex);
    _cleanup_free_ char *h2 = xasprintf("webhook-id: %s", event_id);
    _cleanup_free_ char *h3 = xasprintf("webhook-timestamp: %s", ts);
    _cleanup_free_ char *h4 = xasprintf("webhook-signature: v1,%s", b64);
    _cleanup_free_ char *h5 = xasprintf("X-Sandbox-Event: %s", event);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "User-Agent: sandboxd-webhooks/1");
    h = curl_slist_append(h, "Expect:");
    h = curl_slist_append(h, h1);
    h = curl_slist_append(h, h2);
    h = curl_slist_append(h, h3);
    h = curl_slist_append(h, h4);
    h = curl_slist_append(h, h5);
    _cleanup_json_ yajl_val hv = NULL;
    if (headers_json && sbx_json_parse(headers_json, strlen(headers_json), 65536, 4, &hv, NULL,
                                       0) == 0 && YAJL_IS_OBJECT(hv))
        for (size_t i = 0; i < hv->u.object.len; i++) {
            yajl_val v = hv->u.object.values[i];
            if (!YAJL_IS_STRING(v) || header_name_reserved(hv->u.object.keys[i]))
                continue;
            _cleanup_free_ char *line = xasprintf("%s: %s", hv->u.object.keys[i], v->u.string);
            h = curl_slist_append(h, line);
        }
    struct curl_slist *rs = resolve[0] ? curl_slist_append(NULL, resolve) : NULL;
    struct sink sink = { .snippet = SBX_BUF_INIT };
    char ebuf[CURL_ERROR_SIZE] = "";
    CURL *c = curl_easy_init();
    if (!c)
        abort();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, MIN(timeout_ms, 10000L));
    curl_easy_setopt(c, CURLOPT_RESOLVE, rs);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 0L);
    CURLcode cr = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_off_t ra = -1;
    if (curl_easy_getinfo(c, CURLINFO_RETRY_AFTER, &ra) == CURLE_OK && ra > 0)
        out->retry_after_s = (long)MIN(ra, (curl_off_t)MAX_RETRY_AFTER_S);
    out->status = code;
    out->latency_ms = (long)(sbx_now_ms() - t0);
    if (cr != CURLE_OK && !(cr == CURLE_WRITE_ERROR && code > 0)) {
        /* no URL or address in the message: the delivery log is shown to API users */
        const char *what = cr == CURLE_OPERATION_TIMEDOUT      ? "timed out"
                           : cr == CURLE_COULDNT_CONNECT        ? "connection refused"
                           : cr == CURLE_ABORTED_BY_CALLBACK    ? "aborted (daemon stopping)"
                           : cr == CURLE_SSL_CONNECT_ERROR      ? "TLS handshake failed"
                           : cr == CURLE_PEER_FAILED_VERIFICATION ? "TLS certificate not trusted"
                           : cr == CURLE_GOT_NOTHING            ? "empty reply"
                           : cr == CURLE_COULDNT_RESOLVE_HOST   ? "the host name could not be resolved"
                                                                : curl_easy_strerror(cr);
        snprintf(out->error, sizeof(out->error), "%s", what);
        if (cr == CURLE_COULDNT_CONNECT && strstr(ebuf, "socket"))
            snprintf(out->error, sizeof(out->error), "destination refused");
    } else if (code < 200 || code > 299) {
        snprintf(out->error, sizeof(out->error), "endpoint answered HTTP %ld", code);
    }
    out->snippet = sink.snippet;
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    curl_slist_free_all(rs);
}

/* ---- claim, attempt, record --------------------------------------------------------------- */

static uint64_t backoff_s(int attempts)
{
    size_t i = attempts <= 0 ? 0 : MIN((size_t)attempts - 1, n_schedule - 1);
    uint64_t base = schedule[i];
    /* ±20 % jitter */
    uint32_t rnd;
    sbx_random_bytes(&rnd, sizeof(rnd));
    double f = 0.8 + 0.4 * ((double)rnd / 4294967295.0);
    uint64_t v = (uint64_t)((double)base * f + 0.5);
    return v ? v : 1;
}

static void lossy_ascii(struct sbx_buf *b)
{
    if (!b->data)
        return;
    char *s = b->data;
    size_t n = b->len;
    /* keep valid UTF-8 only: replace any byte outside printable ASCII/newline/tab by '?' if it
     * is not part of a valid sequence; cheap and safe for a snippet */
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == 0 || (ch < 0x20 && ch != '\n' && ch != '\t' && ch != '\r') || ch >= 0x80)
            s[i] = '?';
    }
}

int webhooks_attempt(struct app *app, struct db *db, const char *org_id, const char *id,
                     bool force, struct webhook_attempt *ret)
{
    struct webhook_attempt a = { 0 };
    char lease[32];
    snprintf(lease, sizeof(lease), "%llu", (unsigned long long)app->cfg.webhooks.lease);
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_begin(db, org_id);
    if (r < 0)
        return r;
    r = db_query(db,
                 "WITH c AS (UPDATE webhook_deliveries d SET status = 'delivering', "
                 "    attempts = attempts + 1, last_attempt_at = now(), "
                 "    locked_until = now() + make_interval(secs => $2::int) "
                 "  WHERE d.id = $1::uuid AND d.status IN ('pending', 'delivering') "
                 "    AND ($3::bool OR ((d.locked_until IS NULL OR d.locked_until <= now()) "
                 "         AND d.next_attempt_at <= now())) "
                 "  RETURNING d.id, d.webhook_id, d.event_id, d.attempts) "
                 "SELECT c.attempts, w.id, w.url, w.secret, w.headers::text, w.timeout_ms, "
                 "    w.retry_count, w.enabled, e.id, e.event, e.sandbox_id, e.payload::text, "
                 "    " SQL_TS("e.created_at") ", w.retry_delay_ms "
                 "  FROM c JOIN webhooks w ON w.id = c.webhook_id "
                 "  JOIN webhook_events e ON e.id = c.event_id",
                 3, (const char *[]){ id, lease, force ? "true" : "false" }, &res);
    if (r >= 0)
        r = db_commit(db);
    else
        db_rollback(db);
    if (r < 0)
        return r;
    if (PQntuples(res) == 0) {
        if (ret)
            *ret = a;
        return 0;
    }
    a.done = true;
    int attempts = atoi(PQgetvalue(res, 0, 0));
    const char *webhook_id = PQgetvalue(res, 0, 1);
    const char *url = PQgetvalue(res, 0, 2);
    bool enabled = strcmp(PQgetvalue(res, 0, 7), "t") == 0;
    int retry_count = atoi(PQgetvalue(res, 0, 6));
    long timeout_ms = atol(PQgetvalue(res, 0, 5));
    long retry_delay_ms = atol(PQgetvalue(res, 0, 13));
    const char *event_id = PQgetvalue(res, 0, 8);
    const char *event = PQgetvalue(res, 0, 9);

    struct http_result hr = { .snippet = SBX_BUF_INIT };
    _cleanup_free_ char *secret = NULL;
    _cleanup_free_ char *aad = xasprintf("webhook:%s:%s", org_id, webhook_id);
    if (!enabled) {
        snprintf(hr.error, sizeof(hr.error), "the endpoint is disabled");
    } else if (secrets_decrypt(PQgetvalue(res, 0, 3), aad, &secret, NULL) < 0) {
        snprintf(hr.error, sizeof(hr.error), "the signing secret could not be decrypted");
        log_error("webhook %s: signing secret cannot be decrypted (secrets key missing?)",
                  webhook_id);
    } else {
        /* body: {id, event, timestamp, sandboxId, orgId, data} */
        _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
        _cleanup_json_ yajl_val data = NULL;
        const char *payload = PQgetvalue(res, 0, 11);
        sbx_json_parse(payload, strlen(payload), 1 << 20, 64, &data, NULL, 0);
        yajl_gen_map_open(g);
        sbx_jgen_kstr(g, "id", event_id);
        sbx_jgen_kstr(g, "event", event);
        sbx_jgen_kstr(g, "timestamp", PQgetvalue(res, 0, 12));
        sbx_jgen_kstr(g, "sandboxId",
                      PQgetisnull(res, 0, 10) ? NULL : PQgetvalue(res, 0, 10));
        sbx_jgen_kstr(g, "orgId", org_id);
        sbx_jgen_key(g, "data");
        if (data)
            sbx_jgen_value(g, data);
        else {
            yajl_gen_map_open(g);
            yajl_gen_map_close(g);
        }
        yajl_gen_map_close(g);
        size_t blen;
        _cleanup_free_ char *body = sbx_jgen_take(g, &blen);
        post(url, PQgetvalue(res, 0, 4), body, blen, secret, event_id, event, timeout_ms, &hr);
        explicit_bzero(secret, strlen(secret));
    }
    a.response_status = (int)hr.status;
    a.latency_ms = hr.latency_ms;
    a.success = enabled && hr.status >= 200 && hr.status <= 299;
    bool gone = hr.status == 410;
    bool final = a.success || !enabled || gone || attempts > retry_count;
    const char *status = a.success ? "success" : final ? "failed" : "pending";
    snprintf(a.status, sizeof(a.status), "%s", status);
    snprintf(a.error, sizeof(a.error), "%s", a.success ? "" : hr.error);
    uint64_t delay = backoff_s(attempts);
    if ((uint64_t)retry_delay_ms / 1000 > delay)
        delay = (uint64_t)retry_delay_ms / 1000;
    if (hr.retry_after_s > 0 && (uint64_t)hr.retry_after_s > delay)
        delay = (uint64_t)hr.retry_after_s;
    char delay_s[32], code_s[16], lat_s[32];
    snprintf(delay_s, sizeof(delay_s), "%llu", (unsigned long long)delay);
    snprintf(code_s, sizeof(code_s), "%ld", hr.status);
    snprintf(lat_s, sizeof(lat_s), "%ld", hr.latency_ms);
    lossy_ascii(&hr.snippet);

    if ((r = db_begin(db, org_id)) < 0) {
        sbx_buf_free(&hr.snippet);
        return r;
    }
    r = db_query(db,
                 "UPDATE webhook_deliveries SET status = $2, locked_until = NULL, "
                 "  next_attempt_at = now() + make_interval(secs => $3::int), "
                 "  response_status = NULLIF($4::int, 0), error = NULLIF($5, ''), "
                 "  latency_ms = $6::int, response_snippet = $7 WHERE id = $1::uuid",
                 7,
                 (const char *[]){ id, status, delay_s, code_s, a.error, lat_s,
                                   hr.snippet.len ? hr.snippet.data : NULL },
                 NULL);
    if (r >= 0 && enabled) {
        char max_fail[16], after[32];
        snprintf(max_fail, sizeof(max_fail), "%u", app->cfg.webhooks.disable_after_failures);
        snprintf(after, sizeof(after), "%llu",
                 (unsigned long long)app->cfg.webhooks.disable_after);
        if (a.success)
            r = db_query(db,
                         "UPDATE webhooks SET failure_count = 0, failing_since = NULL "
                         " WHERE id = $1::uuid AND (failure_count <> 0 OR failing_since IS NOT NULL)",
                         1, (const char *[]){ webhook_id }, NULL);
        else
            r = db_query(db,
                         "UPDATE webhooks SET failure_count = failure_count + 1, "
                         "  failing_since = COALESCE(failing_since, now()), "
                         "  enabled = CASE WHEN $2 OR ($3::int > 0 AND failure_count + 1 >= $3::int) "
                         "    OR COALESCE(failing_since, now()) <= now() - make_interval(secs => $4::bigint) "
                         "    THEN false ELSE enabled END, "
                         "  disabled_at = CASE WHEN $2 OR ($3::int > 0 AND failure_count + 1 >= $3::int) "
                         "    OR COALESCE(failing_since, now()) <= now() - make_interval(secs => $4::bigint) "
                         "    THEN now() ELSE disabled_at END, "
                         "  disabled_reason = CASE WHEN $2 THEN 'the endpoint answered 410 Gone' "
                         "    WHEN ($3::int > 0 AND failure_count + 1 >= $3::int) "
                         "    THEN 'disabled after ' || (failure_count + 1) || ' failed attempts in a row' "
                         "    WHEN COALESCE(failing_since, now()) <= now() - make_interval(secs => $4::bigint) "
                         "    THEN 'disabled after failing continuously since ' || "
                         "         to_char(failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
                         "    ELSE disabled_reason END "
                         " WHERE id = $1::uuid",
                         4, (const char *[]){ webhook_id, gone ? "true" : "false", max_fail, after },
                         NULL);
    }
    if (r >= 0)
        r = db_commit(db);
    else
        db_rollback(db);
    sbx_buf_free(&hr.snippet);
    if (r < 0)
        return r;
    log_debug("webhook delivery %s: attempt %d %s (HTTP %ld, %ld ms)", id, attempts, status,
              hr.status, hr.latency_ms);
    if (ret)
        *ret = a;
    return 0;
}

/* ---- the dispatcher thread -------------------------------------------------------------- */

static int fan_out(struct app *app, struct db *db)
{
    _cleanup_pgres_ PGresult *ev = NULL;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", BATCH);
    int r = db_query(db, "SELECT id, org_id FROM sbx_webhook_events_pending_for($1, $2::int)", 2,
                     (const char *[]){ app->instance, lim }, &ev);
    if (r <= 0)
        return r;
    for (int i = 0; i < PQntuples(ev); i++) {
        const char *eid = PQgetvalue(ev, i, 0), *org = PQgetvalue(ev, i, 1);
        if ((r = db_begin(db, org)) < 0)
            return r;
        r = db_query(db,
                     "INSERT INTO webhook_deliveries (org_id, webhook_id, event_id, event, "
                     "    instance) "
                     "SELECT e.org_id, w.id, e.id, e.event, e.instance "
                     "  FROM webhook_events e JOIN webhooks w ON w.enabled "
                     "   AND w.created_at <= e.created_at "
                     "   AND ('*' = ANY (w.events) OR e.event = ANY (w.events)) "
                     " WHERE e.id = $1::uuid AND e.dispatched_at IS NULL "
                     "ON CONFLICT (webhook_id, event_id) DO NOTHING",
                     1, (const char *[]){ eid }, NULL);
        if (r >= 0)
            r = db_query(db, "UPDATE webhook_events SET dispatched_at = now() WHERE id = $1::uuid",
                         1, (const char *[]){ eid }, NULL);
        if (r >= 0)
            r = db_commit(db);
        else
            db_rollback(db);
        if (r < 0)
            return r;
    }
    return 0;
}

static int deliver_due(struct app *app, struct db *db)
{
    _cleanup_pgres_ PGresult *due = NULL;
    char lim[16];
    snprintf(lim, sizeof(lim), "%d", BATCH);
    int r = db_query(db,
                     "SELECT id, org_id FROM sbx_webhook_deliveries_due_for(now(), $1, $2::int)",
                     2, (const char *[]){ app->instance, lim }, &due);
    if (r <= 0)
        return r;
    for (int i = 0; i < PQntuples(due) && !atomic_load(&aborting); i++) {
        r = webhooks_attempt(app, db, PQgetvalue(due, i, 1), PQgetvalue(due, i, 0), false, NULL);
        if (r < 0)
            return r;
    }
    return PQntuples(due);
}

static bool nap(uint64_t secs)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(secs ? secs : 1);
    pthread_mutex_lock(&lock);
    while (!stop_requested && !kicked)
        if (pthread_cond_timedwait(&wake, &lock, &until) == ETIMEDOUT)
            break;
    kicked = false;
    bool go_on = !stop_requested;
    pthread_mutex_unlock(&lock);
    return go_on;
}

static void *dispatcher_main(void *arg)
{
    struct app *app = arg;
    struct db *db = NULL;
    char err[256];
    do {
        if (!db && db_open(app->cfg.database.url, &db, err, sizeof(err)) == 0)
            leader_attach(db); /* every dispatcher transaction is fenced */
        if (!db) {
            log_error("webhook dispatcher: database unavailable: %s", err);
            db = NULL;
            continue;
        }
        if (!leader_is_leader())
            continue; /* only the leader dispatches (leader.h) */
        int r = fan_out(app, db);
        int n = r >= 0 ? deliver_due(app, db) : r;
        if (r < 0 || n < 0)
            log_error_errno(r < 0 ? r : n, "webhook dispatcher pass failed");
        if (n >= BATCH)
            continue; /* more due right away */
    } while (nap(app->cfg.webhooks.poll_interval));
    db_close(db);
    return NULL;
}

void webhooks_kick(void)
{
    pthread_mutex_lock(&lock);
    kicked = true;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
}

void webhooks_start(struct app *app)
{
    stop_requested = false;
    atomic_store(&aborting, false);
    if (pthread_create(&thread, NULL, dispatcher_main, app) != 0) {
        log_error("cannot start the webhook dispatcher thread");
        return;
    }
    started = true;
}

void webhooks_stop(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&lock);
    stop_requested = true;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    atomic_store(&aborting, true);
    pthread_join(thread, NULL);
    started = false;
    free(allow);
    allow = NULL;
    n_allow = 0;
    curl_global_cleanup();
}
