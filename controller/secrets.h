/*
 * secrets.h — encryption at rest (AES-256-GCM) for user secrets and webhook signing secrets,
 * and the per-sandbox set of injected secrets: environment for commands, scrubbing of output.
 * See docs/internals/SECRETS.md.
 *
 * Keys: secrets_init() runs once on the main thread before any thread starts; afterwards the
 * key table is read-only and every function here is thread-safe. Values are never logged.
 *
 * Ciphertext text form: "sbxenc:v1:<key id hex16>:<base64(nonce 12 | ciphertext | tag 16)>",
 * AAD = a caller-chosen context string binding the value to its row ("secret:<org>:<name>").
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

struct db;
struct sbx_config;

#define SECRETS_KEY_ID_LEN 16

/* Loads the current key (secrets.key, or <state_dir>/secrets.key, created 0600 with a random
 * key when missing) and the previous keys. Returns 0 or -errno with a reason in err. */
int secrets_init(const struct sbx_config *cfg, char *err, size_t errlen);
/* The current key's id (hex). */
const char *secrets_key_id(void);

/* Encrypts len bytes; returns the malloc'd text form. */
char *secrets_encrypt(const void *plain, size_t len, const char *aad);
/* Decrypts a text form produced with any known key. *ret is malloc'd and NUL-terminated.
 * -EINVAL malformed, -ENOKEY unknown key id, -EBADMSG authentication failed. */
int secrets_decrypt(const char *enc, const char *aad, char **ret, size_t *ret_len);

/* The secrets injected into one sandbox, decrypted. */
struct secret_kv {
    char *name;
    char *value;
    size_t len;
};
struct secret_set {
    struct secret_kv *v;
    size_t n;
    size_t maxlen;
};

/* Loads the sandbox's injected, unexpired secrets inside the caller's org transaction.
 * *ret is NULL when there are none. Returns 0 or -errno. */
int secrets_load_for_sandbox(struct db *db, const char *org_id, const char *sandbox_id,
                             struct secret_set **ret);
void secret_set_free(struct secret_set *set);
/* env (KEY=VAL, may be NULL) plus the secrets as variables; the secrets win over env. Returns
 * a new malloc'd NULL-terminated array (free with exec_env_free / sandbox_env_free). */
char **secret_set_env(const struct secret_set *set, char *const *env);
/* Copy of data with every secret value replaced by "[REDACTED:<name>]" (malloc'd, NUL-
 * terminated; *ret_len without the NUL). NULL set → plain copy. */
char *secret_set_scrub(const struct secret_set *set, const void *data, size_t len,
                       size_t *ret_len);

/* Streaming scrubber: bytes that could be the start of a secret value are held back until the
 * next feed decides (values split across reads are still found). */
struct secret_scrubber;
struct secret_scrubber *secret_scrubber_new(const struct secret_set *set);
void secret_scrubber_free(struct secret_scrubber *s);
/* Appends the scrubbed output that is final to out. */
void secret_scrubber_feed(struct secret_scrubber *s, const void *data, size_t len,
                          struct sbx_buf *out);
/* End of the stream: releases what was held back. */
void secret_scrubber_flush(struct secret_scrubber *s, struct sbx_buf *out);
