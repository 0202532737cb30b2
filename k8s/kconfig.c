/*
 * kconfig.c — Kubernetes client configuration: in-cluster service account, or a kubeconfig
 * parsed with libyaml (document API). Every failure names the file, context and field.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "common/crypto.h"
#include "common/macro.h"
#include "k8s/k8s-internal.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define MAX_FILE (4u << 20)

static struct k8s_config *config_new(void)
{
    struct k8s_config *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->lock, NULL);
    c->recheck_s = 60;
    return c;
}

void k8s_config_free(struct k8s_config *c)
{
    if (!c)
        return;
    free(c->server);
    free(c->ns);
    free(c->tls_server_name);
    free(c->ca_file);
    free(c->ca_data);
    free(c->cert_file);
    free(c->key_file);
    free(c->cert_data);
    free(c->key_data);
    if (c->token)
        explicit_bzero(c->token, strlen(c->token));
    free(c->token);
    free(c->token_file);
    if (c->token_cached)
        explicit_bzero(c->token_cached, strlen(c->token_cached));
    free(c->token_cached);
    pthread_mutex_destroy(&c->lock);
    free(c);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(struct k8s_config *, k8s_config_free)

static int read_file(const char *path, size_t max, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if ((uint64_t)st.st_size > max)
        return -E2BIG;
    size_t cap = (size_t)st.st_size + 1, len = 0;
    _cleanup_free_ char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max)
                return -E2BIG;
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *ret = TAKE_PTR(buf);
    if (ret_len)
        *ret_len = len;
    return 0;
}

static char *strip(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static bool looks_pem(const uint8_t *d, size_t n)
{
    return n >= 11 && memmem(d, n, "-----BEGIN ", 11) != NULL;
}

/* Token file: read, strip, must be non-empty. */
static int read_token(const char *path, char **ret, struct stat *ret_st)
{
    _cleanup_free_ char *raw = NULL;
    int r = read_file(path, 1u << 20, &raw, NULL);
    if (r < 0)
        return r;
    char *t = strip(raw);
    if (!*t || strpbrk(t, "\r\n"))
        return -EINVAL;
    if (ret_st && stat(path, ret_st) < 0)
        return -errno;
    *ret = xstrdup(t);
    explicit_bzero(raw, strlen(raw));
    return 0;
}

static time_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

static void remember_stat(struct k8s_config *c, const struct stat *st)
{
    c->token_mtime = st->st_mtim;
    c->token_size = st->st_size;
    c->token_ino = st->st_ino;
    c->token_checked = mono_s();
}

char *k8s_config_token(struct k8s_config *c)
{
    if (!c->token_file)
        return c->token ? xstrdup(c->token) : NULL;
    pthread_mutex_lock(&c->lock);
    time_t now = mono_s();
    if (!c->token_cached || now - c->token_checked >= (time_t)c->recheck_s) {
        struct stat st;
        c->token_checked = now;
        bool changed = !c->token_cached;
        if (stat(c->token_file, &st) == 0 &&
            (st.st_mtim.tv_sec != c->token_mtime.tv_sec ||
             st.st_mtim.tv_nsec != c->token_mtime.tv_nsec || st.st_size != c->token_size ||
             st.st_ino != c->token_ino))
            changed = true;
        if (changed) {
            char *t = NULL;
            if (read_token(c->token_file, &t, &st) == 0) {
                if (c->token_cached)
                    explicit_bzero(c->token_cached, strlen(c->token_cached));
                free(c->token_cached);
                c->token_cached = t;
                remember_stat(c, &st);
            } /* else: keep the previous token (the kubelet rewrites atomically) */
        }
    }
    char *r = c->token_cached ? xstrdup(c->token_cached) : NULL;
    pthread_mutex_unlock(&c->lock);
    return r;
}

void k8s_config_set_token_recheck(struct k8s_config *c, unsigned seconds)
{
    pthread_mutex_lock(&c->lock);
    c->recheck_s = seconds;
    pthread_mutex_unlock(&c->lock);
}

void k8s_config_token_invalidate(struct k8s_config *c)
{
    pthread_mutex_lock(&c->lock);
    c->token_checked = 0;
    c->token_mtime.tv_sec = -1;
    pthread_mutex_unlock(&c->lock);
}

const char *k8s_config_server(const struct k8s_config *c)
{
    return c->server;
}

const char *k8s_config_namespace(const struct k8s_config *c)
{
    return c->ns ? c->ns : "default";
}

bool k8s_config_insecure(const struct k8s_config *c)
{
    return c->insecure;
}

/* ---- in-cluster ------------------------------------------------------------------------- */

int k8s_config_incluster_at(const char *sa_dir, const char *host, const char *port,
                            struct k8s_config **ret, char *err, size_t errlen)
{
    if (!host || !*host || !port || !*port) {
        snprintf(err, errlen, "not in a cluster: KUBERNETES_SERVICE_HOST/PORT not set");
        return -ENOENT;
    }
    for (const char *p = port; *p; p++)
        if (!isdigit((unsigned char)*p)) {
            snprintf(err, errlen, "KUBERNETES_SERVICE_PORT is not a port number");
            return -EINVAL;
        }
    _cleanup_(k8s_config_freep) struct k8s_config *c = config_new();
    bool v6 = strchr(host, ':') || strchr(host, '%');
    c->server = xasprintf("https://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);

    _cleanup_free_ char *tok = xasprintf("%s/token", sa_dir);
    struct stat st;
    int r = read_token(tok, &c->token_cached, &st);
    if (r < 0) {
        snprintf(err, errlen, "service-account token %s: %s", tok,
                 r == -EINVAL ? "empty or malformed" : strerror(-r));
        return r == -ENOENT ? -EINVAL : r;
    }
    remember_stat(c, &st);
    c->token_file = TAKE_PTR(tok);

    _cleanup_free_ char *ca = xasprintf("%s/ca.crt", sa_dir);
    _cleanup_free_ char *cadata = NULL;
    size_t calen = 0;
    r = read_file(ca, MAX_FILE, &cadata, &calen);
    if (r < 0) {
        snprintf(err, errlen, "service-account CA %s: %s", ca, strerror(-r));
        return r == -ENOENT ? -EINVAL : r;
    }
    if (!looks_pem((uint8_t *)cadata, calen)) {
        snprintf(err, errlen, "service-account CA %s: not a PEM certificate", ca);
        return -EINVAL;
    }
    c->ca_file = TAKE_PTR(ca);

    const char *pns = getenv("POD_NAMESPACE");
    if (pns && *pns)
        c->ns = xstrdup(pns);
    else {
        _cleanup_free_ char *nsf = xasprintf("%s/namespace", sa_dir);
        _cleanup_free_ char *nsd = NULL;
        if (read_file(nsf, 4096, &nsd, NULL) == 0 && *strip(nsd))
            c->ns = xstrdup(strip(nsd));
    }
    *ret = TAKE_PTR(c);
    return 0;
}

int k8s_config_incluster(struct k8s_config **ret, char *err, size_t errlen)
{
    return k8s_config_incluster_at(SA_DIR, getenv("KUBERNETES_SERVICE_HOST"),
                                   getenv("KUBERNETES_SERVICE_PORT"), ret, err, errlen);
}

/* ---- kubeconfig ------------------------------------------------------------------------- */

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *m, const char *key)
{
    if (!m || m->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(d, p->key);
        if (k && k->type == YAML_SCALAR_NODE && strlen(key) == k->data.scalar.length &&
            memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
            return yaml_document_get_node(d, p->value);
    }
    return NULL;
}

/* Scalar value (NUL-terminated by libyaml); NULL if absent; -EINVAL via *bad if not a scalar. */
static const char *scalar(yaml_node_t *n, bool *bad)
{
    if (!n)
        return NULL;
    if (n->type != YAML_SCALAR_NODE) {
        *bad = true;
        return NULL;
    }
    if (strlen((char *)n->data.scalar.value) != n->data.scalar.length) {
        *bad = true; /* embedded NUL */
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

/* Find the element of the list `list` whose "name" is name and return its `inner` mapping. */
static yaml_node_t *named(yaml_document_t *d, yaml_node_t *root, const char *list,
                          const char *inner, const char *name)
{
    yaml_node_t *l = map_get(d, root, list);
    if (!l || l->type != YAML_SEQUENCE_NODE)
        return NULL;
    for (yaml_node_item_t *i = l->data.sequence.items.start; i < l->data.sequence.items.top; i++) {
        yaml_node_t *e = yaml_document_get_node(d, *i);
        bool bad = false;
        const char *n = scalar(map_get(d, e, "name"), &bad);
        if (n && strcmp(n, name) == 0) {
            yaml_node_t *in = map_get(d, e, inner);
            return in ? in : e; /* present but empty → the element (no fields) */
        }
    }
    return NULL;
}

static char *resolve(const char *basedir, const char *p)
{
    if (p[0] == '/' || !basedir || !*basedir)
        return xstrdup(p);
    return xasprintf("%s/%s", basedir, p);
}

static int decode_b64_pem(const char *in, const char *what, const char *ctxdesc, uint8_t **ret,
                          size_t *ret_len, char *err, size_t errlen)
{
    size_t n = strlen(in);
    _cleanup_free_ char *clean = xmalloc(n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)in[i]))
            clean[j++] = in[i];
    clean[j] = '\0';
    uint8_t *out = NULL;
    size_t outlen = 0;
    int r = sbx_base64_decode(clean, j, MAX_FILE, &out, &outlen);
    if (r < 0 || outlen == 0) {
        snprintf(err, errlen, "%s: %s is not valid base64", ctxdesc, what);
        return -EINVAL;
    }
    if (!looks_pem(out, outlen)) {
        free(out);
        snprintf(err, errlen, "%s: %s does not decode to PEM", ctxdesc, what);
        return -EINVAL;
    }
    *ret = out;
    *ret_len = outlen;
    return 0;
}

static int check_file(const char *path, const char *what, const char *ctxdesc, bool pem, char *err,
                      size_t errlen)
{
    _cleanup_free_ char *d = NULL;
    size_t n = 0;
    int r = read_file(path, MAX_FILE, &d, &n);
    if (r < 0) {
        snprintf(err, errlen, "%s: %s %s: %s", ctxdesc, what, path, strerror(-r));
        return -EINVAL;
    }
    if (pem && !looks_pem((uint8_t *)d, n)) {
        snprintf(err, errlen, "%s: %s %s is not PEM", ctxdesc, what, path);
        return -EINVAL;
    }
    return 0;
}

static bool parse_bool(const char *s, bool *ret)
{
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE")) {
        *ret = true;
        return true;
    }
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE")) {
        *ret = false;
        return true;
    }
    return false;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(yaml_parser_t *, yaml_parser_delete)
DEFINE_TRIVIAL_CLEANUP_FUNC(yaml_document_t *, yaml_document_delete)

#define BAD(fmt, ...)                                                                             \
    do {                                                                                          \
        snprintf(err, errlen, fmt, ##__VA_ARGS__);                                                \
        return -EINVAL;                                                                           \
    } while (0)

int k8s_config_parse_kubeconfig(const char *data, size_t len, const char *basedir,
                                const char *context, struct k8s_config **ret, char *err,
                                size_t errlen)
{
    if (len > MAX_FILE)
        BAD("kubeconfig: larger than %u bytes", MAX_FILE);
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser))
        abort();
    _cleanup_(yaml_parser_deletep) yaml_parser_t *pp = &parser;
    yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
    if (!yaml_parser_load(&parser, &doc))
        BAD("kubeconfig: YAML error at line %zu: %s", parser.problem_mark.line + 1,
            parser.problem ? parser.problem : "parse error");
    _cleanup_(yaml_document_deletep) yaml_document_t *dp = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root || root->type != YAML_MAPPING_NODE)
        BAD("kubeconfig: not a YAML mapping");

    bool bad = false;
    const char *ctxname = context;
    if (!ctxname || !*ctxname) {
        ctxname = scalar(map_get(&doc, root, "current-context"), &bad);
        if (bad || !ctxname || !*ctxname)
            BAD("kubeconfig: current-context is not set");
    }
    yaml_node_t *ctx = named(&doc, root, "contexts", "context", ctxname);
    if (!ctx)
        BAD("kubeconfig: context \"%s\" not found in contexts", ctxname);
    const char *clname = scalar(map_get(&doc, ctx, "cluster"), &bad);
    const char *uname = scalar(map_get(&doc, ctx, "user"), &bad);
    const char *ns = scalar(map_get(&doc, ctx, "namespace"), &bad);
    if (bad)
        BAD("kubeconfig: context \"%s\": cluster/user/namespace must be strings", ctxname);
    if (!clname || !*clname)
        BAD("kubeconfig: context \"%s\" has no cluster", ctxname);

    char cdesc[256];
    snprintf(cdesc, sizeof cdesc, "kubeconfig: cluster \"%.100s\"", clname);
    yaml_node_t *cl = named(&doc, root, "clusters", "cluster", clname);
    if (!cl)
        BAD("kubeconfig: cluster \"%s\" (context \"%s\") not found in clusters", clname, ctxname);

    _cleanup_(k8s_config_freep) struct k8s_config *c = config_new();
    const char *server = scalar(map_get(&doc, cl, "server"), &bad);
    if (bad || !server || !*server)
        BAD("%s: server is missing", cdesc);
    if (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0)
        BAD("%s: server \"%.200s\" is not an http(s) URL", cdesc, server);
    if (strpbrk(server, " \t\r\n\"'\\"))
        BAD("%s: server contains whitespace or quotes", cdesc);
    const char *hostpart = strstr(server, "://") + 3;
    if (!*hostpart || *hostpart == '/')
        BAD("%s: server \"%.200s\" has no host", cdesc, server);
    c->server = xstrdup(server);
    size_t sl = strlen(c->server);
    while (sl && c->server[sl - 1] == '/')
        c->server[--sl] = '\0';

    const char *v;
    if ((v = scalar(map_get(&doc, cl, "insecure-skip-tls-verify"), &bad)) &&
        !parse_bool(v, &c->insecure))
        BAD("%s: insecure-skip-tls-verify must be true or false", cdesc);
    if ((v = scalar(map_get(&doc, cl, "tls-server-name"), &bad)) && *v)
        c->tls_server_name = xstrdup(v);
    const char *cad = scalar(map_get(&doc, cl, "certificate-authority-data"), &bad);
    const char *caf = scalar(map_get(&doc, cl, "certificate-authority"), &bad);
    if (bad)
        BAD("%s: a field has the wrong type (expected a string)", cdesc);
    int r;
    if (cad && *cad) {
        r = decode_b64_pem(cad, "certificate-authority-data", cdesc, &c->ca_data, &c->ca_len, err,
                           errlen);
        if (r < 0)
            return r;
    } else if (caf && *caf) {
        c->ca_file = resolve(basedir, caf);
        r = check_file(c->ca_file, "certificate-authority", cdesc, true, err, errlen);
        if (r < 0)
            return r;
    }

    if (uname && *uname) {
        char udesc[256];
        snprintf(udesc, sizeof udesc, "kubeconfig: user \"%.100s\"", uname);
        yaml_node_t *u = named(&doc, root, "users", "user", uname);
        if (!u)
            BAD("kubeconfig: user \"%s\" (context \"%s\") not found in users", uname, ctxname);
        const char *tok = scalar(map_get(&doc, u, "token"), &bad);
        const char *tokf = scalar(map_get(&doc, u, "tokenFile"), &bad);
        const char *ccd = scalar(map_get(&doc, u, "client-certificate-data"), &bad);
        const char *ccf = scalar(map_get(&doc, u, "client-certificate"), &bad);
        const char *ckd = scalar(map_get(&doc, u, "client-key-data"), &bad);
        const char *ckf = scalar(map_get(&doc, u, "client-key"), &bad);
        if (bad)
            BAD("%s: a field has the wrong type (expected a string)", udesc);
        if (map_get(&doc, u, "exec") || map_get(&doc, u, "auth-provider"))
            if (!tok && !tokf && !ccd && !ccf)
                BAD("%s: exec credential plugins and auth-providers are not supported", udesc);
        if (tok && *tok) {
            if (strpbrk(tok, "\r\n"))
                BAD("%s: token contains a newline", udesc);
            c->token = xstrdup(tok);
        } else if (tokf && *tokf) {
            c->token_file = resolve(basedir, tokf);
            struct stat st;
            r = read_token(c->token_file, &c->token_cached, &st);
            if (r < 0)
                BAD("%s: tokenFile %s: %s", udesc, c->token_file,
                    r == -EINVAL ? "empty or malformed" : strerror(-r));
            remember_stat(c, &st);
        }
        bool have_cert = (ccd && *ccd) || (ccf && *ccf);
        bool have_key = (ckd && *ckd) || (ckf && *ckf);
        if (have_cert != have_key)
            BAD("%s: %s without %s", udesc, have_cert ? "client-certificate" : "client-key",
                have_cert ? "client-key" : "client-certificate");
        if (ccd && *ccd) {
            r = decode_b64_pem(ccd, "client-certificate-data", udesc, &c->cert_data, &c->cert_len,
                               err, errlen);
            if (r < 0)
                return r;
        } else if (ccf && *ccf) {
            c->cert_file = resolve(basedir, ccf);
            if ((r = check_file(c->cert_file, "client-certificate", udesc, true, err, errlen)) < 0)
                return r;
        }
        if (ckd && *ckd) {
            r = decode_b64_pem(ckd, "client-key-data", udesc, &c->key_data, &c->key_len, err,
                               errlen);
            if (r < 0)
                return r;
        } else if (ckf && *ckf) {
            c->key_file = resolve(basedir, ckf);
            if ((r = check_file(c->key_file, "client-key", udesc, true, err, errlen)) < 0)
                return r;
        }
    }
    if (ns && *ns)
        c->ns = xstrdup(ns);
    *ret = TAKE_PTR(c);
    return 0;
}

int k8s_config_kubeconfig(const char *path, const char *context, struct k8s_config **ret,
                          char *err, size_t errlen)
{
    _cleanup_free_ char *chosen = NULL;
    if (path && *path)
        chosen = xstrdup(path);
    else {
        const char *env = getenv("KUBECONFIG");
        if (env && *env) {
            _cleanup_free_ char *list = xstrdup(env);
            char *save = NULL;
            for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save))
                if (access(p, F_OK) == 0) {
                    chosen = xstrdup(p);
                    break;
                }
            if (!chosen) {
                snprintf(err, errlen, "KUBECONFIG: none of the files exists (%.200s)", env);
                return -ENOENT;
            }
        } else {
            const char *home = getenv("HOME");
            if (!home || !*home) {
                snprintf(err, errlen, "no kubeconfig: KUBECONFIG and HOME are not set");
                return -ENOENT;
            }
            chosen = xasprintf("%s/.kube/config", home);
        }
    }
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    int r = read_file(chosen, MAX_FILE, &data, &len);
    if (r < 0) {
        snprintf(err, errlen, "kubeconfig %s: %s", chosen, strerror(-r));
        return r;
    }
    _cleanup_free_ char *dircopy = xstrdup(chosen);
    char *dir = dirname(dircopy);
    char inner[400] = "";
    r = k8s_config_parse_kubeconfig(data, len, dir, context, ret, inner, sizeof inner);
    if (r < 0)
        snprintf(err, errlen, "%s (%s)", inner, chosen);
    return r;
}

int k8s_config_auto(const char *kubeconfig_path, struct k8s_config **ret, char *err, size_t errlen)
{
    const char *h = getenv("KUBERNETES_SERVICE_HOST");
    if (h && *h && !(kubeconfig_path && *kubeconfig_path))
        return k8s_config_incluster(ret, err, errlen);
    return k8s_config_kubeconfig(kubeconfig_path, NULL, ret, err, errlen);
}
