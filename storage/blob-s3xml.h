/*
 * blob-s3xml.h — the small, strict XML reader the S3 backend needs (libxml2 is not a
 * dependency). It reads the S3 response documents (ListBucketResult, Error,
 * InitiateMultipartUploadResult, CompleteMultipartUploadResult) and nothing fancier:
 * elements, attributes (skipped), text, the five predefined entities, numeric character
 * references, CDATA, comments and the XML declaration. No DTDs, no processing instructions
 * besides the declaration. Bounded: depth <= 16, element names <= 128 bytes.
 */
#pragma once

#include <stddef.h>

#define SBX_S3XML_MAX_DEPTH 16

/* Called for every leaf element (one without child elements) with its slash-joined path
 * from the root ("ListBucketResult/Contents/Key") and its decoded text (NUL-terminated; len
 * excludes the NUL). A negative return stops parsing and is returned. */
typedef int (*sbx_s3xml_cb)(void *ud, const char *path, const char *text, size_t len);

/* 0, -EINVAL malformed (unbalanced, bad entity, junk after the root, NUL bytes), -E2BIG
 * deeper than SBX_S3XML_MAX_DEPTH, or the callback's error. *ret_root (may be NULL, 129
 * bytes) gets the root element's name. */
int sbx_s3xml_parse(const char *xml, size_t len, sbx_s3xml_cb cb, void *ud, char *ret_root);
