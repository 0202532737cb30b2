/*
 * secrets.c — AES-256-GCM at rest, injected secret sets, output scrubbing (see secrets.h).
 */
#include "controller/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/log.h"
#include "controller/config.h"
#include "storage/db.h"

#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
#define MAX_KEYS 16
#define PREFIX "sbxenc:v1:"

struct key {
    uint8_t k[KEY_LEN];
    char id[SECRETS_KEY_ID_LEN + 1];
};

static struct key keys[MAX_KEYS];
static size_t n_keys;

static void key_id(const uint8_t *k, char out[SECRETS_KEY_ID_LEN + 1])
{
    uint8_t h[SBX_SHA256_LEN];
    static const char label[] = "sandboxd secrets key id v1";
    sbx_hmac_sha256(k, KEY_LEN, label, sizeof(label) - 1, h);
    sbx_hex(h, SECRETS_KEY_ID_LEN / 2, out);
}

static int add_key_b64(const char *b64, size_t len, char *err, size_t errlen, const char *what)
{
    while (len && (b64[len - 1] == '\n' || b64[len - 1] == '\r' || b64[len - 1] == ' '))
        len--;
    uint8_t *k = NULL;
    size_t klen = 0;
    if (sbx_base64_decode(b64, len, 64, &k, &klen) < 0 || klen != KEY_LEN) {
        free(k);
        snprintf(err, errlen, "%s is not the base64 of 32 bytes", what);
        return -EINVAL;
    }
    if (n_keys >= MAX_KEYS) {
        free(k);
        snprintf(err, errlen, "too many secrets keys (at most %d)", MAX_KEYS);
        return -E2BIG;
    }
    memcpy(keys[n_keys].k, k, KEY_LEN);
    key_id(k, keys[n_keys].id);
    explicit_bzero(k, klen);
    free(k);
    n_keys++;
    return 0;
}

static int key_from_file(const char *state_dir, char *err, size_t errlen)
{
    _cleanup_free_ char *path = xasprintf("%s/secrets.key", state_dir);
    char text[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT) {
        uint8_t k[KEY_LEN];
        sbx_random_bytes(k, sizeof(k));
        _cleanup_free_ char *b64 = sbx_base64_encode(k, sizeof(k), NULL);
        explicit_bzero(k, sizeof(k));
        int wfd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (wfd >= 0) {
            size_t n = strlen(b64);
            bool okw = write(wfd, b64, n) == (ssize_t)n && write(wfd, "\n", 1) == 1 &&
                       fsync(wfd) == 0;
            close(wfd);
            explicit_bzero(b64, n);
            if (!okw) {
                unlink(path);
                snprintf(err, errlen, "cannot write the secrets key file in the state directory");
                return -EIO;
            }
            log_info("generated a new secrets key in the state directory (secrets.key)");
        } else if (errno != EEXIST) {
            snprintf(err, errlen, "cannot create the secrets key file in the state directory");
            return -errno;
        }
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0) {
        snprintf(err, errlen, "cannot read the secrets key file in the state directory");
        return -errno;
    }
    struct stat stt;
    if (fstat(fd, &stt) == 0 && (stt.st_mode & 077))
        log_warn("the secrets key file is readable by group or others; chmod 600 it");
    ssize_t n = read(fd, text, sizeof(text) - 1);
    close(fd);
    if (n <= 0) {
        snprintf(err, errlen, "the secrets key file is empty or unreadable");
        return -EINVAL;
    }
    int r = add_key_b64(text, (size_t)n, err, errlen, "the secrets key file");
    explicit_bzero(text, sizeof(text));
    return r;
}

int secrets_init(const struct sbx_config *cfg, char *err, size_t errlen)
{
    int r;
    n_keys = 0;
    if (cfg->secrets.key && cfg->secrets.key[0])
        r = add_key_b64(cfg->secrets.key, strlen(cfg->secrets.key), err, errlen, "secrets.key");
    else
        r = key_from_file(cfg->state_dir, err, errlen);
    if (r < 0)
        return r;
    const char *p = cfg->secrets.previous_keys ? cfg->secrets.previous_keys : "";
    while (*p) {
        while (*p == ',' || *p == ' ')
            p++;
        size_t len = strcspn(p, ", ");
        if (len && (r = add_key_b64(p, len, err, errlen, "an entry of secrets.previous_keys")) < 0)
            return r;
        p += len;
    }
    return 0;
}

const char *secrets_key_id(void)
{
    return n_keys ? keys[0].id : "";
}

char *secrets_encrypt(const void *plain, size_t len, const char *aad)
{
    if (!n_keys)
        abort(); /* secrets_init() is called before any request */
    size_t total = NONCE_LEN + len + TAG_LEN;
    uint8_t *blob = xmalloc(total);
    sbx_random_bytes(blob, NONCE_LEN);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0, tmpl = 0;
    if (!c || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(c, NULL, NULL, keys[0].k, blob) != 1 ||
        (aad && EVP_EncryptUpdate(c, NULL, &tmpl, (const uint8_t *)aad, (int)strlen(aad)) != 1) ||
        EVP_EncryptUpdate(c, blob + NONCE_LEN, &outl, plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(c, blob + NONCE_LEN + outl, &tmpl) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, blob + NONCE_LEN + len) != 1)
        abort(); /* OpenSSL failing on AES-GCM is not recoverable */
    EVP_CIPHER_CTX_free(c);
    _cleanup_free_ char *b64 = sbx_base64_encode(blob, total, NULL);
    free(blob);
    return xasprintf(PREFIX "%s:%s", keys[0].id, b64);
}

int secrets_decrypt(const char *enc, const char *aad, char **ret, size_t *ret_len)
{
    if (!enc || strncmp(enc, PREFIX, strlen(PREFIX)) != 0)
        return -EINVAL;
    const char *id = enc + strlen(PREFIX);
    const char *colon = strchr(id, ':');
    if (!colon || colon - id != SECRETS_KEY_ID_LEN)
        return -EINVAL;
    const struct key *k = NULL;
    for (size_t i = 0; i < n_keys; i++)
        if (memcmp(keys[i].id, id, SECRETS_KEY_ID_LEN) == 0)
            k = &keys[i];
    if (!k)
        return -ENOKEY;
    uint8_t *blob = NULL;
    size_t n = 0;
    int r = sbx_base64_decode(colon + 1, strlen(colon + 1), 1 << 20, &blob, &n);
    if (r < 0)
        return -EINVAL;
    if (n < NONCE_LEN + TAG_LEN) {
        free(blob);
        return -EINVAL;
    }
    size_t len = n - NONCE_LEN - TAG_LEN;
    char *out = xmalloc(len + 1);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int outl = 0, tmpl = 0;
    bool good = c && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
                EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) == 1 &&
                EVP_DecryptInit_ex(c, NULL, NULL, k->k, blob) == 1 &&
                (!aad || EVP_DecryptUpdate(c, NULL, &tmpl, (const uint8_t *)aad,
                                           (int)strlen(aad)) == 1) &&
                EVP_DecryptUpdate(c, (uint8_t *)out, &outl, blob + NONCE_LEN, (int)len) == 1 &&
                EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN,
                                    blob + NONCE_LEN + len) == 1 &&
                EVP_DecryptFinal_ex(c, (uint8_t *)out + outl, &tmpl) == 1;
    EVP_CIPHER_CTX_free(c);
    free(blob);
    if (!good) {
        explicit_bzero(out, len + 1);
        free(out);
        return -EBADMSG;
    }
    out[len] = '\0';
    *ret = out;
    if (ret_len)
        *ret_len = len;
    return 0;
}

/* ---- injected sets ---------------------------------------------------------------------- */

int secrets_load_for_sandbox(struct db *db, const char *org_id, const char *sandbox_id,
                             struct secret_set **ret)
{
    _cleanup_pgres_ PGresult *res = NULL;
    int r = db_query(db,
                     "SELECT s.name, s.value_enc FROM sandbox_secrets ss "
                     "  JOIN secrets s ON s.id = ss.secret_id "
                     " WHERE ss.sandbox_id = $1::uuid "
                     "   AND (s.expires_at IS NULL OR s.expires_at > now()) "
                     " ORDER BY s.name",
                     1, (const char *[]){ sandbox_id }, &res);
    if (r < 0)
        return r;
    if (r == 0) {
        *ret = NULL;
        return 0;
    }
    struct secret_set *set = xcalloc(1, sizeof(*set));
    set->v = xcalloc((size_t)r, sizeof(*set->v));
    for (int i = 0; i < r; i++) {
        const char *name = PQgetvalue(res, i, 0);
        _cleanup_free_ char *aad = xasprintf("secret:%s:%s", org_id, name);
        char *val = NULL;
        size_t len = 0;
        if (secrets_decrypt(PQgetvalue(res, i, 1), aad, &val, &len) < 0) {
            log_error("secret %s of the organization could not be decrypted (key missing?)",
                      name);
            continue;
        }
        if (len == 0) {
            free(val);
            continue;
        }
        struct secret_kv *kv = &set->v[set->n++];
        kv->name = xstrdup(name);
        kv->value = val;
        kv->len = len;
        set->maxlen = MAX(set->maxlen, len);
    }
    if (set->n == 0) {
        secret_set_free(set);
        set = NULL;
    }
    *ret = set;
    return 0;
}

void secret_set_free(struct secret_set *set)
{
    if (!set)
        return;
    for (size_t i = 0; i < set->n; i++) {
        explicit_bzero(set->v[i].value, set->v[i].len);
        free(set->v[i].value);
        free(set->v[i].name);
    }
    free(set->v);
    free(set);
}

char **secret_set_env(const struct secret_set *set, char *const *env)
{
    size_t a = 0;
    while (env && env[a])
        a++;
    size_t b = set ? set->n : 0;
    char **out = xcalloc(a + b + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < a; i++) {
        size_t nl = strcspn(env[i], "=");
        bool shadowed = false;
        for (size_t j = 0; j < b; j++)
            if (strlen(set->v[j].name) == nl && strncmp(set->v[j].name, env[i], nl) == 0)
                shadowed = true;
        if (!shadowed)
            out[k++] = xstrdup(env[i]);
    }
    for (size_t j = 0; j < b; j++)
        out[k++] = xasprintf("%s=%s", set->v[j].name, set->v[j].value);
    return out;
}

/* Index of the longest secret matching at p (n bytes available), or -1. */
static int match_at(const struct secret_set *set, const uint8_t *p, size_t n)
{
    int best = -1;
    for (size_t j = 0; j < set->n; j++)
        if (set->v[j].len <= n && memcmp(p, set->v[j].value, set->v[j].len) == 0 &&
            (best < 0 || set->v[j].len > set->v[best].len))
            best = (int)j;
    return best;
}

/* True if the n bytes at p are a proper prefix of some secret value. */
static bool prefix_of_any(const struct secret_set *set, const uint8_t *p, size_t n)
{
    for (size_t j = 0; j < set->n; j++)
        if (n < set->v[j].len && memcmp(p, set->v[j].value, n) == 0)
            return true;
    return false;
}

/* Scrubs data into out; with hold, stops at the first position whose tail could still become
 * a secret and returns that offset (else len). */
static size_t scrub_into(const struct secret_set *set, const uint8_t *d, size_t len, bool hold,
                         struct sbx_buf *out)
{
    size_t i = 0, run = 0;
    int r = 0;
    while (i < len) {
        int m = match_at(set, d + i, len - i);
        if (m >= 0) {
            r |= sbx_buf_append(out, d + run, i - run);
            r |= sbx_buf_printf(out, "[REDACTED:%s]", set->v[m].name);
            i += set->v[m].len;
            run = i;
            continue;
        }
        if (hold && len - i < set->maxlen && prefix_of_any(set, d + i, len - i))
            break;
        i++;
    }
    r |= sbx_buf_append(out, d + run, i - run);
    if (r < 0)
        abort(); /* unlimited buffers only fail on allocation, which aborts first */
    return i;
}

char *secret_set_scrub(const struct secret_set *set, const void *data, size_t len,
                       size_t *ret_len)
{
    struct sbx_buf b = SBX_BUF_INIT;
    if (set && set->n)
        scrub_into(set, data, len, false, &b);
    else if (sbx_buf_append(&b, data, len) < 0)
        abort();
    if (!b.data && sbx_buf_append(&b, "", 0) < 0)
        abort();
    return sbx_buf_steal(&b, ret_len);
}

struct secret_scrubber {
    struct secret_set set; /* deep copy */
    struct sbx_buf held;
};

struct secret_scrubber *secret_scrubber_new(const struct secret_set *set)
{
    if (!set || !set->n)
        return NULL;
    struct secret_scrubber *s = xcalloc(1, sizeof(*s));
    s->set.v = xcalloc(set->n, sizeof(*s->set.v));
    for (size_t i = 0; i < set->n; i++) {
        s->set.v[i].name = xstrdup(set->v[i].name);
        s->set.v[i].value = xmalloc(set->v[i].len + 1);
        memcpy(s->set.v[i].value, set->v[i].value, set->v[i].len + 1);
        s->set.v[i].len = set->v[i].len;
    }
    s->set.n = set->n;
    s->set.maxlen = set->maxlen;
    return s;
}

void secret_scrubber_free(struct secret_scrubber *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->set.n; i++) {
        explicit_bzero(s->set.v[i].value, s->set.v[i].len);
        free(s->set.v[i].value);
        free(s->set.v[i].name);
    }
    free(s->set.v);
    if (s->held.data)
        explicit_bzero(s->held.data, s->held.len);
    sbx_buf_free(&s->held);
    free(s);
}

void secret_scrubber_feed(struct secret_scrubber *s, const void *data, size_t len,
                          struct sbx_buf *out)
{
    if (sbx_buf_append(&s->held, data, len) < 0)
        abort();
    if (!s->held.data)
        return;
    size_t used = scrub_into(&s->set, (const uint8_t *)s->held.data, s->held.len, true, out);
    size_t rest = s->held.len - used;
    memmove(s->held.data, s->held.data + used, rest);
    s->held.len = rest;
    s->held.data[rest] = '\0';
}

void secret_scrubber_flush(struct secret_scrubber *s, struct sbx_buf *out)
{
    if (!s || !s->held.len)
        return;
    scrub_into(&s->set, (const uint8_t *)s->held.data, s->held.len, false, out);
    s->held.len = 0;
    s->held.data[0] = '\0';
}
