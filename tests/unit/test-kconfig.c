/*
 * test-kconfig.c — k8s/kconfig.c: kubeconfig parsing (valid; each missing or invalid piece;
 * base64 garbage), file resolution relative to the kubeconfig, in-cluster config and
 * service-account token rotation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/macro.h"
#include "k8s/k8s-internal.h"
#include "tap.h"

#define PEM "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"

static char dir[] = "/tmp/test-kconfig-XXXXXX";

static void put(const char *name, const char *text)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static char *kc(const char *cluster_extra, const char *user, const char *ctx_extra)
{
    return xasprintf("apiVersion: v1\nkind: Config\ncurrent-context: ctx\n"
                     "clusters:\n- name: c\n  cluster:\n    server: https://10.0.0.1:6443/\n%s"
                     "contexts:\n- name: ctx\n  context:\n    cluster: c\n    user: u\n%s"
                     "users:\n- name: u\n  user:\n%s",
                     cluster_extra, ctx_extra, user);
}

static int parse(const char *text, struct k8s_config **ret, char *err, size_t errlen)
{
    return k8s_config_parse_kubeconfig(text, strlen(text), dir, NULL, ret, err, errlen);
}

static void expect_err(const char *text, const char *needle, const char *what)
{
    struct k8s_config *c = NULL;
    char err[512] = "";
    int r = parse(text, &c, err, sizeof err);
    ok(r == -EINVAL && c == NULL, "%s: refused (r=%d)", what, r);
    ok(strstr(err, needle) != NULL, "%s: message names it: \"%s\"", what, err);
    k8s_config_free(c);
}

int main(void)
{
    plan_no_plan();
    if (!mkdtemp(dir))
        skip_all("mkdtemp");
    put("ca.crt", PEM);
    put("tok", "  file-token-1\n");
    put("garbage", "not pem\n");
    size_t b64len;
    char *pem64 = sbx_base64_encode(PEM, strlen(PEM), &b64len);

    /* valid: CA file relative to the kubeconfig dir, static token, namespace */
    {
        char *t = kc("    certificate-authority: ca.crt\n", "    token: abc\n",
                     "    namespace: sbx\n");
        struct k8s_config *c = NULL;
        char err[512] = "";
        is_int(parse(t, &c, err, sizeof err), 0, "valid kubeconfig (%s)", err);
        is_str(k8s_config_server(c), "https://10.0.0.1:6443", "server, trailing / removed");
        is_str(k8s_config_namespace(c), "sbx", "namespace");
        char *tok = k8s_config_token(c);
        is_str(tok, "abc", "static token");
        free(tok);
        ok(c->ca_file && strstr(c->ca_file, dir) && !c->ca_data, "CA file resolved: %s",
           c->ca_file);
        ok(!k8s_config_insecure(c), "verify TLS by default");
        k8s_config_free(c);
        free(t);
    }
    /* valid: *-data, insecure, tokenFile, default namespace, explicit context */
    {
        _cleanup_free_ char *cl = xasprintf("    certificate-authority-data: %s\n"
                                            "    insecure-skip-tls-verify: true\n", pem64);
        _cleanup_free_ char *us = xasprintf("    tokenFile: tok\n    client-certificate-data: %s\n"
                                            "    client-key-data: %s\n", pem64, pem64);
        char *t = kc(cl, us, "");
        struct k8s_config *c = NULL;
        char err[512] = "";
        is_int(k8s_config_parse_kubeconfig(t, strlen(t), dir, "ctx", &c, err, sizeof err), 0,
               "valid kubeconfig with data fields (%s)", err);
        ok(c->ca_data && c->ca_len == strlen(PEM), "CA data decoded");
        ok(c->cert_data && c->key_data, "client cert/key data decoded");
        ok(k8s_config_insecure(c), "insecure-skip-tls-verify");
        is_str(k8s_config_namespace(c), "default", "namespace defaults to default");
        char *tok = k8s_config_token(c);
        is_str(tok, "file-token-1", "tokenFile read and stripped");
        free(tok);
        /* rotation: new content is picked up after the recheck interval */
        k8s_config_set_token_recheck(c, 0);
        put("tok", "file-token-2-longer\n");
        tok = k8s_config_token(c);
        is_str(tok, "file-token-2-longer", "rotated token re-read");
        free(tok);
        k8s_config_set_token_recheck(c, 3600);
        put("tok", "file-token-3\n");
        tok = k8s_config_token(c);
        is_str(tok, "file-token-2-longer", "not re-read before the recheck interval");
        free(tok);
        k8s_config_token_invalidate(c);
        tok = k8s_config_token(c);
        is_str(tok, "file-token-3", "re-read after invalidate (401)");
        free(tok);
        k8s_config_free(c);
        free(t);
    }

    /* each missing or invalid piece */
    char *t;
    t = xasprintf("apiVersion: v1\nclusters: []\n");
    expect_err(t, "current-context is not set", "no current-context");
    free(t);
    t = kc("", "    token: a\n", "");
    {
        struct k8s_config *c = NULL;
        char err[512] = "";
        is_int(k8s_config_parse_kubeconfig(t, strlen(t), dir, "nope", &c, err, sizeof err),
               -EINVAL, "unknown context refused");
        ok(strstr(err, "context \"nope\" not found") != NULL, "message: %s", err);
    }
    free(t);
    expect_err("current-context: ctx\ncontexts:\n- name: ctx\n  context: {cluster: zz, user: u}\n",
               "cluster \"zz\" (context \"ctx\") not found", "missing cluster");
    expect_err("current-context: ctx\ncontexts:\n- name: ctx\n  context: {user: u}\n",
               "has no cluster", "context without cluster");
    expect_err("current-context: ctx\ncontexts:\n- name: ctx\n  context: {cluster: c, user: u}\n"
               "clusters:\n- name: c\n  cluster: {}\n",
               "server is missing", "cluster without server");
    expect_err("current-context: ctx\ncontexts:\n- name: ctx\n  context: {cluster: c, user: x}\n"
               "clusters:\n- name: c\n  cluster: {server: 'https://h'}\nusers: []\n",
               "user \"x\" (context \"ctx\") not found", "missing user");
    t = kc("    certificate-authority-data: '%%%notbase64'\n", "    token: a\n", "");
    expect_err(t, "certificate-authority-data is not valid base64", "CA data base64 garbage");
    free(t);
    t = kc("    certificate-authority-data: aGVsbG8gd29ybGQ=\n", "    token: a\n", "");
    expect_err(t, "certificate-authority-data does not decode to PEM", "CA data not PEM");
    free(t);
    t = kc("    certificate-authority: missing.crt\n", "    token: a\n", "");
    expect_err(t, "certificate-authority", "CA file missing");
    free(t);
    t = kc("    certificate-authority: garbage\n", "    token: a\n", "");
    expect_err(t, "is not PEM", "CA file not PEM");
    free(t);
    t = kc("", "    client-certificate-data: '!!'\n    client-key-data: '!!'\n", "");
    expect_err(t, "client-certificate-data is not valid base64", "cert data garbage");
    free(t);
    t = kc("", "    client-certificate: ca.crt\n", "");
    expect_err(t, "client-certificate without client-key", "cert without key");
    free(t);
    t = kc("", "    tokenFile: nothere\n", "");
    expect_err(t, "tokenFile", "tokenFile missing");
    free(t);
    t = kc("    insecure-skip-tls-verify: perhaps\n", "    token: a\n", "");
    expect_err(t, "insecure-skip-tls-verify must be true or false", "bad bool");
    free(t);
    t = kc("", "    exec:\n      command: plugin\n", "");
    expect_err(t, "exec credential plugins", "exec plugin unsupported");
    free(t);
    expect_err("current-context: ctx\ncontexts:\n- name: ctx\n  context: {cluster: c}\n"
               "clusters:\n- name: c\n  cluster: {server: 'ftp://h'}\n",
               "is not an http(s) URL", "bad scheme");
    expect_err("current-context: ctx\ncontexts:\n- name: ctx\n  context: {cluster: c}\n"
               "clusters:\n- name: c\n  cluster: {server: [a, b]}\n",
               "server is missing", "server not a scalar");
    expect_err("key: [unterminated\n", "YAML error at line", "YAML syntax error");
    expect_err("- a\n- b\n", "not a YAML mapping", "not a mapping");

    /* kubeconfig file loading */
    {
        struct k8s_config *c = NULL;
        char err[512] = "";
        int r = k8s_config_kubeconfig("/nonexistent/kubeconfig", NULL, &c, err, sizeof err);
        ok(r == -ENOENT && strstr(err, "/nonexistent/kubeconfig"), "missing file named: %s", err);
        _cleanup_free_ char *good = kc("    certificate-authority: ca.crt\n", "    token: a\n", "");
        put("config", good);
        _cleanup_free_ char *path = xasprintf("%s/config", dir);
        _cleanup_free_ char *env = xasprintf("/nonexistent:%s", path);
        setenv("KUBECONFIG", env, 1);
        is_int(k8s_config_kubeconfig(NULL, NULL, &c, err, sizeof err), 0,
               "KUBECONFIG list: first existing file (%s)", err);
        k8s_config_free(c);
        c = NULL;
        unsetenv("KUBECONFIG");
    }

    /* in-cluster */
    {
        struct k8s_config *c = NULL;
        char err[512] = "";
        is_int(k8s_config_incluster_at(dir, NULL, "443", &c, err, sizeof err), -ENOENT,
               "in-cluster without host: not in a cluster");
        is_int(k8s_config_incluster_at(dir, "10.96.0.1", "https", &c, err, sizeof err), -EINVAL,
               "in-cluster with a bad port");
        char sa[300];
        snprintf(sa, sizeof sa, "%s/sa", dir);
        mkdir(sa, 0700);
        int r = k8s_config_incluster_at(sa, "10.96.0.1", "443", &c, err, sizeof err);
        ok(r < 0 && strstr(err, "sa/token"), "missing token file named: %s", err);
        put("sa/token", "sa-token-1\n");
        r = k8s_config_incluster_at(sa, "10.96.0.1", "443", &c, err, sizeof err);
        ok(r < 0 && strstr(err, "sa/ca.crt"), "missing CA named: %s", err);
        put("sa/ca.crt", PEM);
        put("sa/namespace", "sandboxes\n");
        is_int(k8s_config_incluster_at(sa, "fd00::1", "6443", &c, err, sizeof err), 0,
               "in-cluster config (%s)", err);
        is_str(k8s_config_server(c), "https://[fd00::1]:6443", "IPv6 host bracketed");
        is_str(k8s_config_namespace(c), "sandboxes", "namespace file");
        char *tok = k8s_config_token(c);
        is_str(tok, "sa-token-1", "service-account token");
        free(tok);
        k8s_config_set_token_recheck(c, 0);
        put("sa/token", "sa-token-2\n");
        struct timespec ts = { 0, 20000000 };
        nanosleep(&ts, NULL);
        tok = k8s_config_token(c);
        is_str(tok, "sa-token-2", "rotated service-account token re-read");
        free(tok);
        k8s_config_free(c);
    }
    free(pem64);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    (void)!system(cmd);
    return done();
}
