/*
 * apikey.h — API key format, generation and scope names. Pure functions; any thread.
 *
 * Format: sk_<mode>_<key_id>_<secret><check>
 *   mode    "live" | "test"
 *   key_id  APIKEY_ID_LEN base62 characters: public, indexes the one database row
 *   secret  APIKEY_SECRET_LEN base62 characters (≈190 bits): only its SHA-256 is stored
 *   check   APIKEY_CHECK_LEN base62 digits of CRC-32 over everything before it, so a mistyped
 *           or made-up key is refused before any database work.
 * Keys contain only [A-Za-z0-9_] — never '.', which SDKs take to mean a JWT.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define APIKEY_ID_LEN 12
#define APIKEY_SECRET_LEN 32
#define APIKEY_CHECK_LEN 6
#define APIKEY_MAX_LEN 64

enum {
    AUTH_SCOPE_READ = 1u << 0,    /* GET anything in the org */
    AUTH_SCOPE_WRITE = 1u << 1,   /* create/stop/delete sandboxes, write files */
    AUTH_SCOPE_EXECUTE = 1u << 2, /* run commands */
    AUTH_SCOPE_ADMIN = 1u << 3,   /* API keys, audit log, org settings */
    AUTH_SCOPE_ALL = 0xf,
};

struct apikey_parts {
    bool test_mode;
    char key_id[APIKEY_ID_LEN + 1];
    char secret[APIKEY_SECRET_LEN + 1];
};

/* Generates a new key. out holds APIKEY_MAX_LEN+1 bytes. */
void apikey_generate(bool test_mode, char *out, struct apikey_parts *ret_parts);
/* Validates shape and checksum. Returns 0 or -EINVAL; no database involved. */
int apikey_parse(const char *key, struct apikey_parts *ret);
/* The display prefix ("sk_live_<key_id>"), out holds 32 bytes. */
void apikey_prefix(const struct apikey_parts *parts, char *out, size_t outlen);

/* Scope name ↔ bit. Returns 0 for an unknown name. */
unsigned apikey_scope_bit(const char *name);
const char *apikey_scope_name(unsigned bit);
