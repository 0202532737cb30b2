/*
 * blob-internal.h — helpers shared by the blob store backends (not part of the interface).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/blobstore.h"

/* A list prefix: "" or characters a key may hold, at most SBX_BLOB_KEY_MAX bytes. */
bool sbx_blob_prefix_valid(const char *prefix);
/* 64 lower- or upper-case hex digits. */
bool sbx_blob_sha256_hex_valid(const char *hex);
/* Sorts keys (strcmp order). */
void sbx_blob_keys_sort(char **keys, size_t n);
/* Writes all of buf to fd (retries EINTR and short writes). 0 or -errno. */
int sbx_blob_write_all(int fd, const void *buf, size_t len);
/* Reads exactly len bytes (fewer only at EOF). Returns the count or -errno. */
ssize_t sbx_blob_read_full(int fd, void *buf, size_t len);
/* base64url without padding; malloc'd. */
char *sbx_blob_base64url(const void *data, size_t len);
/* Decodes base64url (no padding). -EINVAL malformed, -E2BIG over max. *ret malloc'd. */
int sbx_blob_base64url_decode(const char *in, size_t max, uint8_t **ret, size_t *ret_len);
