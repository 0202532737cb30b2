/* blob-s3.c — placeholder until the S3 backend lands (same session). */
#include <errno.h>
#include <stdio.h>

#include "storage/blobstore.h"

int sbx_blobstore_s3_new(const struct sbx_blobstore_s3_opts *o, struct sbx_blobstore **ret,
                         char *err, size_t errlen)
{
    if (err && errlen)
        snprintf(err, errlen, "the s3 blob store is not built yet");
    return -EOPNOTSUPP;
}
