/*
 * blobctl — drive a blob store from the command line (tests, benchmarks, operators).
 *
 *   blobctl BACKEND COMMAND ARGS...
 *   BACKEND:  --fs DIR [--signing-key K] [--public-url URL]
 *             --s3 --bucket B [--endpoint URL] [--region R] [--access-key-id ID]
 *                  [--secret-access-key S] [--session-token T] [--virtual-host] [--insecure]
 *                  [--ca-file F] [--multipart-threshold BYTES] [--part-size BYTES]
 *                  [--max-attempts N]   (credentials default to AWS_* variables)
 *   COMMAND:  put KEY FILE|- [--size N] [--sha256 HEX]   (FILE '-' = stdin, needs --size)
 *             get KEY FILE|-        head KEY        del KEY        list [PREFIX]
 *             presign KEY [SECONDS] verify TOKEN (fs)
 *
 * Exit 0 on success; otherwise prints "blobctl: CMD: MESSAGE [ERRNAME]" on stderr and exits
 * 1 (2 for usage errors). head prints one JSON object; list prints one key per line.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "storage/blobstore.h"

static _Noreturn void usage(void)
{
    fputs("usage: blobctl (--fs DIR | --s3 --bucket B [--endpoint URL] ...) "
          "put|get|head|del|list|presign|verify ARGS\n",
          stderr);
    exit(2);
}

static int fail(const char *cmd, int r, const char *msg)
{
    const char *name = strerrorname_np(-r);
    fprintf(stderr, "blobctl: %s: %s [%s]\n", cmd, msg && msg[0] ? msg : strerror(-r),
            name ? name : "?");
    return 1;
}

static uint64_t parse_u64(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end)
        usage();
    return v;
}

int main(int argc, char **argv)
{
    enum {
        O_FS = 256, O_S3, O_SK, O_URL, O_EP, O_REGION, O_BUCKET, O_AK, O_SECRET, O_TOKEN,
        O_VHOST, O_INSECURE, O_CA, O_THRESH, O_PART, O_SIZE, O_SHA, O_ATTEMPTS,
    };
    static const struct option opts[] = {
        { "fs", required_argument, NULL, O_FS },
        { "s3", no_argument, NULL, O_S3 },
        { "signing-key", required_argument, NULL, O_SK },
        { "public-url", required_argument, NULL, O_URL },
        { "endpoint", required_argument, NULL, O_EP },
        { "region", required_argument, NULL, O_REGION },
        { "bucket", required_argument, NULL, O_BUCKET },
        { "access-key-id", required_argument, NULL, O_AK },
        { "secret-access-key", required_argument, NULL, O_SECRET },
        { "session-token", required_argument, NULL, O_TOKEN },
        { "virtual-host", no_argument, NULL, O_VHOST },
        { "insecure", no_argument, NULL, O_INSECURE },
        { "ca-file", required_argument, NULL, O_CA },
        { "multipart-threshold", required_argument, NULL, O_THRESH },
        { "part-size", required_argument, NULL, O_PART },
        { "max-attempts", required_argument, NULL, O_ATTEMPTS },
        { "size", required_argument, NULL, O_SIZE },
        { "sha256", required_argument, NULL, O_SHA },
        { NULL, 0, NULL, 0 },
    };
    const char *fs_dir = NULL, *sk = "blobctl-default-signing-key", *url = NULL, *sha = NULL;
    bool s3 = false, have_size = false;
    uint64_t size = 0;
    struct sbx_blobstore_s3_opts so = { .path_style = true };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case O_FS: fs_dir = optarg; break;
        case O_S3: s3 = true; break;
        case O_SK: sk = optarg; break;
        case O_URL: url = optarg; break;
        case O_EP: so.endpoint = optarg; break;
        case O_REGION: so.region = optarg; break;
        case O_BUCKET: so.bucket = optarg; break;
        case O_AK: so.access_key_id = optarg; break;
        case O_SECRET: so.secret_access_key = optarg; break;
        case O_TOKEN: so.session_token = optarg; break;
        case O_VHOST: so.path_style = false; break;
        case O_INSECURE: so.insecure = true; break;
        case O_CA: so.ca_file = optarg; break;
        case O_THRESH: so.multipart_threshold = parse_u64(optarg); break;
        case O_PART: so.part_size = parse_u64(optarg); break;
        case O_ATTEMPTS: so.max_attempts = (unsigned)parse_u64(optarg); break;
        case O_SIZE: size = parse_u64(optarg); have_size = true; break;
        case O_SHA: sha = optarg; break;
        default: usage();
        }
    }
    if (optind >= argc || (!s3 == !fs_dir))
        usage();
    const char *cmd = argv[optind++];
    int nargs = argc - optind;
    char **args = argv + optind;

    struct sbx_blobstore *bs = NULL;
    char err[512] = "";
    int r;
    if (s3) {
        r = sbx_blobstore_s3_new(&so, &bs, err, sizeof(err));
    } else {
        struct sbx_blobstore_fs_opts fo = {
            .dir = fs_dir, .signing_key = sk, .signing_key_len = strlen(sk), .public_url = url,
        };
        r = sbx_blobstore_fs_new(&fo, &bs, err, sizeof(err));
    }
    if (r < 0)
        return fail("open", r, err);

    int ret = 0;
    if (strcmp(cmd, "put") == 0 && nargs == 2) {
        _cleanup_close_ int fd = -1;
        if (strcmp(args[1], "-") == 0) {
            if (!have_size)
                usage();
            fd = dup(STDIN_FILENO);
        } else {
            fd = open(args[1], O_RDONLY | O_CLOEXEC);
            struct stat st;
            if (fd >= 0 && !have_size && fstat(fd, &st) == 0)
                size = (uint64_t)st.st_size;
        }
        if (fd < 0)
            ret = fail(cmd, -errno, args[1]);
        else if ((r = bs->ops->put(bs, args[0], fd, size, sha, err, sizeof(err))) < 0)
            ret = fail(cmd, r, err);
    } else if (strcmp(cmd, "get") == 0 && nargs == 2) {
        _cleanup_close_ int fd = strcmp(args[1], "-") == 0
                                     ? dup(STDOUT_FILENO)
                                     : open(args[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        uint64_t got = 0;
        if (fd < 0)
            ret = fail(cmd, -errno, args[1]);
        else if ((r = bs->ops->get(bs, args[0], fd, &got, err, sizeof(err))) < 0)
            ret = fail(cmd, r, err);
    } else if (strcmp(cmd, "head") == 0 && nargs == 1) {
        struct sbx_blob_info info;
        if ((r = bs->ops->head(bs, args[0], &info)) < 0)
            ret = fail(cmd, r, NULL);
        else
            printf("{\"size\":%" PRIu64 ",\"sha256\":\"%s\",\"mtime\":%" PRId64 "}\n", info.size,
                   info.sha256, info.mtime);
    } else if (strcmp(cmd, "del") == 0 && nargs == 1) {
        if ((r = bs->ops->del(bs, args[0], err, sizeof(err))) < 0)
            ret = fail(cmd, r, err);
    } else if (strcmp(cmd, "list") == 0 && nargs <= 1) {
        char **keys = NULL;
        r = bs->ops->list(bs, nargs ? args[0] : "", &keys);
        if (r < 0) {
            ret = fail(cmd, r, NULL);
        } else {
            for (int i = 0; i < r; i++)
                puts(keys[i]);
            sbx_blob_keys_free(keys, (size_t)r);
        }
    } else if (strcmp(cmd, "presign") == 0 && (nargs == 1 || nargs == 2)) {
        _cleanup_free_ char *u = NULL;
        unsigned exp = nargs == 2 ? (unsigned)parse_u64(args[1]) : 3600;
        if ((r = bs->ops->presign_get(bs, args[0], exp, &u)) < 0)
            ret = fail(cmd, r, NULL);
        else
            puts(u);
    } else if (strcmp(cmd, "verify") == 0 && nargs == 1) {
        _cleanup_free_ char *key = NULL;
        if ((r = sbx_blobstore_fs_verify(bs, args[0], &key)) < 0)
            ret = fail(cmd, r, NULL);
        else
            puts(key);
    } else {
        sbx_blobstore_free(bs);
        usage();
    }
    sbx_blobstore_free(bs);
    return ret;
}
