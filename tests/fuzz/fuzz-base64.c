/*
 * fuzz-base64.c — strict base64 decoding and encoding (common/crypto.c).
 *
 *  - decode(input) succeeding means input is canonical: encode(decoded) equals the input
 *    once padding is ignored;
 *  - decode(encode(input)) returns the input.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/crypto.h"

static size_t unpadded(const char *s, size_t n)
{
    while (n > 0 && s[n - 1] == '=')
        n--;
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *dec = NULL;
    size_t dlen = 0;
    int r = sbx_base64_decode((const char *)data, size, 1 << 20, &dec, &dlen);
    if (r == 0) {
        size_t elen;
        char *enc = sbx_base64_encode(dec, dlen, &elen);
        size_t a = unpadded(enc, elen), b = unpadded((const char *)data, size);
        if (a != b || memcmp(enc, data, a) != 0) {
            fprintf(stderr, "accepted a non-canonical encoding\n");
            abort();
        }
        free(enc);
        free(dec);
    } else if (r != -EINVAL && r != -E2BIG) {
        abort();
    }

    size_t elen;
    char *enc = sbx_base64_encode(data, size, &elen);
    if (elen != 4 * ((size + 2) / 3) || strlen(enc) != elen)
        abort();
    dec = NULL;
    r = sbx_base64_decode(enc, elen, size, &dec, &dlen);
    if (r != 0 || dlen != size || (size && memcmp(dec, data, size) != 0)) {
        fprintf(stderr, "round trip failed (r=%d)\n", r);
        abort();
    }
    free(dec);
    free(enc);
    return 0;
}
