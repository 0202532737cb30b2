/*
 * k8s-internal.h — shared between the k8s/ sources only (not part of the API).
 */
#pragma once

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "k8s/k8s.h"

struct k8s_config {
    char *server;            /* without trailing '/' */
    char *ns;
    bool insecure;
    char *tls_server_name;   /* NULL = from server */
    char *ca_file;           /* PEM file, or NULL */
    uint8_t *ca_data;        /* PEM from *-data (takes precedence), or NULL */
    size_t ca_len;
    char *cert_file, *key_file;
    uint8_t *cert_data, *key_data;
    size_t cert_len, key_len;
    char *token;             /* static token, or NULL */
    char *token_file;        /* re-read on change, or NULL */

    pthread_mutex_t lock;    /* guards the token cache below */
    char *token_cached;
    time_t token_checked;    /* CLOCK_MONOTONIC seconds of the last stat */
    struct timespec token_mtime;
    off_t token_size;
    ino_t token_ino;
    unsigned recheck_s;
};

struct k8s_client {
    struct k8s_config *cfg;
    struct k8s_client_opts opts;
    void *share;             /* CURLSH */
    pthread_mutex_t share_locks[8];
};

void k8s_error_set(struct k8s_error *err, enum k8s_err_type t, int http_status, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));
/* Fill err from an HTTP status and a (possibly Status) body. Returns the -errno. */
int k8s_error_from_http(struct k8s_error *err, long status, const char *body, size_t len,
                        unsigned retry_after_s);
/* Sets up TLS/auth on a curl easy handle (CURL *) for cfg. Returns the header list to free. */
struct curl_slist;
int k8s_curl_setup(struct k8s_client *c, void *curl, struct curl_slist **headers,
                   struct k8s_error *err);
char *k8s_urlescape(const char *s);
/* Writes data to a fresh 0600 temp file; returns its path (caller unlinks + frees). */
int k8s_write_tempfile(const void *data, size_t len, char **ret_path);
