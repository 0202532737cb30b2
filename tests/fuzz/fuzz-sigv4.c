/*
 * fuzz-sigv4.c — the SigV4 canonicalizer (storage/sigv4.c) and the S3 XML reader
 * (storage/blob-s3xml.c) on untrusted text.
 *
 * Input: first byte selects the target.
 *   'x' + document          → sbx_s3xml_parse(); the callback checks each path/text is
 *                             NUL-terminated and bounded by the input.
 *   anything else + lines   → METHOD\nPATH\nQUERY\nname:value\n... → canonical request,
 *                             authorization and presigned query. Invariants: success is
 *                             deterministic (same input, same signature) and the presigned
 *                             query re-canonicalizes to itself (it is already canonical).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/blob-s3xml.h"
#include "storage/sigv4.h"

static int xml_cb(void *ud, const char *path, const char *text, size_t len)
{
    size_t max = *(size_t *)ud;
    if (strlen(text) != len || len > max || strlen(path) > SBX_S3XML_MAX_DEPTH * 129)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > 65536)
        return 0;
    if (data[0] == 'x') {
        size_t max = size;
        char root[129];
        (void)sbx_s3xml_parse((const char *)data + 1, size - 1, xml_cb, &max, root);
        return 0;
    }
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    char *lines[3 + SBX_SIGV4_MAX_HEADERS + 2];
    size_t n = 0;
    for (char *p = s; n < sizeof(lines) / sizeof(lines[0]);) {
        lines[n++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    if (n < 3) {
        free(s);
        return 0;
    }
    struct sbx_sigv4_header hs[SBX_SIGV4_MAX_HEADERS + 1];
    size_t nh = 0;
    for (size_t i = 3; i < n && nh < SBX_SIGV4_MAX_HEADERS + 1; i++) {
        char *colon = strchr(lines[i], ':');
        if (!colon)
            continue;
        *colon = '\0';
        hs[nh++] = (struct sbx_sigv4_header){ lines[i], colon + 1 };
    }
    struct sbx_sigv4_request rq = {
        .method = lines[0], .path = lines[1], .query = lines[2], .headers = hs,
        .n_headers = nh, .payload_hash = SBX_SIGV4_EMPTY_SHA256,
    };
    struct sbx_sigv4_credentials c = {
        .access_key_id = "AKIDEXAMPLE", .secret_access_key = "secret", .region = "us-east-1",
        .service = "s3",
    };
    for (unsigned flags = 0; flags <= SBX_SIGV4_S3; flags++) {
        char *a1 = NULL, *a2 = NULL, *s1 = NULL, *s2 = NULL;
        int r1 = sbx_sigv4_authorization(&rq, flags, &c, "20150830T123600Z", &a1, &s1);
        int r2 = sbx_sigv4_authorization(&rq, flags, &c, "20150830T123600Z", &a2, &s2);
        if (r1 != r2 || (r1 == 0 && strcmp(a1, a2) != 0))
            abort();
        free(a1);
        free(a2);
        free(s1);
        free(s2);
        char *q = NULL;
        if (sbx_sigv4_presign_query(&rq, flags, &c, "20150830T123600Z", 60, &q) == 0) {
            char *creq = NULL, *sh = NULL;
            struct sbx_sigv4_request r2q = rq;
            r2q.query = q;
            if (sbx_sigv4_canonical_request(&r2q, flags, &creq, &sh) != 0)
                abort(); /* our own output must canonicalize */
            free(creq);
            free(sh);
            free(q);
        }
    }
    free(s);
    return 0;
}
