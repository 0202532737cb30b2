/*
 * test-tar.c — common/tar.c: the strict reader against crafted hostile archives (every refusal
 * has its own archive, built here), byte-at-a-time feeding, real GNU tar output, and the writer
 * round trip.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/tar.h"
#include "tap.h"

/* ---- archive builder ---- */

struct ar {
    unsigned char *d;
    size_t len;
};

static void ar_raw(struct ar *a, const void *p, size_t n)
{
    a->d = realloc(a->d, a->len + n);
    memcpy(a->d + a->len, p, n);
    a->len += n;
}

static void ar_zero(struct ar *a, size_t n)
{
    a->d = realloc(a->d, a->len + n);
    memset(a->d + a->len, 0, n);
    a->len += n;
}

static void octal(unsigned char *f, size_t n, uint64_t v)
{
    for (size_t i = n - 1; i-- > 0;) {
        f[i] = (unsigned char)('0' + (v & 7));
        v >>= 3;
    }
    f[n - 1] = 0;
}

static void fix_sum(unsigned char *h)
{
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += h[i];
    octal(h + 148, 7, sum);
    h[155] = ' ';
}

/* A header; name copied raw (up to 100 bytes, nlen may include NULs). gnu: GNU magic. */
static void mkhdr(unsigned char *h, const char *name, size_t nlen, char tf, unsigned mode,
                  uint64_t size, int gnu)
{
    memset(h, 0, 512);
    memcpy(h, name, nlen > 100 ? 100 : nlen);
    octal(h + 100, 8, mode);
    octal(h + 108, 8, 1000);
    octal(h + 116, 8, 1000);
    octal(h + 124, 12, size);
    octal(h + 136, 12, 1700000000);
    h[156] = (unsigned char)tf;
    memcpy(h + 257, gnu ? "ustar  \0" : "ustar\0" "00", 8);
    fix_sum(h);
}

static void ar_entry(struct ar *a, const char *name, char tf, unsigned mode, const char *data,
                     size_t size)
{
    unsigned char h[512];
    mkhdr(h, name, strlen(name), tf, mode, size, 0);
    ar_raw(a, h, 512);
    if (size) {
        ar_raw(a, data, size);
        ar_zero(a, sbx_tar_padding(size));
    }
}

static void ar_paxn(struct ar *a, const char *records, size_t n)
{
    unsigned char h[512];
    mkhdr(h, "PaxHeader", 9, 'x', 0644, n, 0);
    ar_raw(a, h, 512);
    ar_raw(a, records, n);
    ar_zero(a, sbx_tar_padding(n));
}

static void ar_pax(struct ar *a, const char *records)
{
    ar_paxn(a, records, strlen(records));
}

/* One record "LEN key=value\n" with LEN computed; value may contain NUL. */
static size_t pax_rec(char *out, const char *key, const char *val, size_t vlen)
{
    size_t body = 1 + strlen(key) + 1 + vlen + 1, total = body + 1;
    for (;;) {
        size_t d = (size_t)snprintf(NULL, 0, "%zu", total);
        if (body + d == total)
            break;
        total = body + d;
    }
    int h = sprintf(out, "%zu %s=", total, key);
    memcpy(out + h, val, vlen);
    out[h + vlen] = '\n';
    out[h + vlen + 1] = 0;
    return total;
}

static void ar_end(struct ar *a)
{
    ar_zero(a, 1024);
}

/* ---- collecting consumer ---- */

struct sink {
    struct sbx_buf names; /* "type:rel:size\n" */
    struct sbx_buf data;
};

static int s_entry(void *ud, const struct sbx_tar_entry *e)
{
    struct sink *s = ud;
    return sbx_buf_printf(&s->names, "%c:%s:%llu\n", e->type, e->rel,
                          (unsigned long long)e->size);
}

static int s_data(void *ud, const void *p, size_t n)
{
    struct sink *s = ud;
    return sbx_buf_append(&s->data, p, n);
}

static const struct sbx_tar_ops sink_ops = { .entry = s_entry, .data = s_data };

/* Runs the reader over the archive; chunk 0 = all at once. Returns the error; *msg copied. */
static int run(const struct ar *a, const char *root, const struct sbx_tar_limits *lim,
               size_t chunk, struct sink *s, char *msg, size_t msglen)
{
    struct sbx_tar_reader *r = sbx_tar_reader_new(root, lim, s ? &sink_ops : NULL, s);
    int e = 0;
    if (chunk == 0)
        e = sbx_tar_reader_feed(r, a->d, a->len);
    else
        for (size_t i = 0; i < a->len && e == 0; i += chunk)
            e = sbx_tar_reader_feed(r, a->d + i, a->len - i < chunk ? a->len - i : chunk);
    if (e == 0)
        e = sbx_tar_reader_finish(r);
    if (msg)
        snprintf(msg, msglen, "%s", sbx_tar_reader_error(r));
    /* sticky */
    if (e < 0 && sbx_tar_reader_feed(r, "x", 1) != e)
        e = 12345;
    sbx_tar_reader_free(r);
    return e;
}

static void refused(const struct ar *a, const char *root, int want, const char *needle,
                    const char *what)
{
    char msg[256];
    int e = run(a, root, NULL, 0, NULL, msg, sizeof msg);
    ok(e == want && strstr(msg, needle) != NULL, "%s: %d '%s'", what, e, msg);
    /* the same result byte by byte */
    int e2 = run(a, root, NULL, 1, NULL, NULL, 0);
    ok(e2 == want, "%s (byte by byte): %d", what, e2);
}

static void ar_free(struct ar *a)
{
    free(a->d);
    a->d = NULL;
    a->len = 0;
}

int main(void)
{
    plan_no_plan();
    struct ar a = { 0 };

    /* ---- accepted ---- */
    ar_entry(&a, "dir/", '5', 0755, NULL, 0);
    ar_entry(&a, "dir/hello.txt", '0', 0644, "hello\n", 6);
    ar_entry(&a, "dir/sub/", '5', 0700, NULL, 0);
    ar_entry(&a, "./dir/sub/empty", '0', 0600, NULL, 0);
    ar_end(&a);
    for (size_t chunk = 0; chunk <= 7; chunk += 1) {
        struct sink s = { SBX_BUF_INIT, SBX_BUF_INIT };
        char msg[256];
        int e = run(&a, "dir", NULL, chunk == 0 ? 0 : chunk == 7 ? 511 : chunk, &s, msg,
                    sizeof msg);
        ok(e == 0, "valid archive, chunk %zu: %d %s", chunk, e, msg);
        is_str(s.names.data ? s.names.data : "", "d::0\nf:hello.txt:6\nd:sub:0\nf:sub/empty:0\n",
               "entries relative to the root");
        ok(s.data.len == 6 && memcmp(s.data.data, "hello\n", 6) == 0, "data");
        sbx_buf_free(&s.names);
        sbx_buf_free(&s.data);
    }
    ok(run(&a, NULL, NULL, 0, NULL, NULL, 0) == 0, "no root: any safe name");
    refused(&a, "other", -EPERM, "outside the requested path", "entries outside the root");
    refused(&a, "di", -EPERM, "outside the requested path", "root is a name prefix only");
    ar_free(&a);

    /* a pax path longer than 100 bytes */
    {
        char longname[300], rec[400];
        memset(longname, 'a', 250);
        memcpy(longname, "f/", 2);
        longname[250] = 0;
        ar_paxn(&a, rec, pax_rec(rec, "path", longname, strlen(longname)));
        ar_entry(&a, "truncated-name", '0', 0644, "x", 1);
        ar_end(&a);
        struct sink s = { SBX_BUF_INIT, SBX_BUF_INIT };
        int e = run(&a, "f", NULL, 3, &s, NULL, 0);
        ok(e == 0 && s.names.data && strncmp(s.names.data, "f:aaaa", 6) == 0,
           "pax path record used: %d", e);
        sbx_buf_free(&s.names);
        sbx_buf_free(&s.data);
        ar_free(&a);
    }

    /* ---- every refusal ---- */
    ar_entry(&a, "/etc/passwd", '0', 0644, "x", 1);
    ar_end(&a);
    refused(&a, NULL, -EPERM, "absolute", "absolute path");
    ar_free(&a);

    ar_entry(&a, "dir/../../etc/passwd", '0', 0644, "x", 1);
    ar_end(&a);
    refused(&a, "dir", -EPERM, "'..' component", "dotdot component");
    ar_free(&a);

    ar_entry(&a, "..", '5', 0755, NULL, 0);
    ar_end(&a);
    refused(&a, NULL, -EPERM, "'..' component", "bare dotdot");
    ar_free(&a);

    ar_entry(&a, "a/./b", '0', 0644, "x", 1);
    ar_end(&a);
    refused(&a, NULL, -EPERM, "'.' component", "inner dot component");
    ar_free(&a);

    ar_entry(&a, "a//b", '0', 0644, "x", 1);
    ar_end(&a);
    refused(&a, NULL, -EPERM, "empty path component", "empty component");
    ar_free(&a);

    {
        unsigned char h[512];
        mkhdr(h, "evil\0/../../x", 13, '0', 0644, 0, 0);
        ar_raw(&a, h, 512);
        ar_end(&a);
        refused(&a, NULL, -EPERM, "NUL byte", "NUL byte in the ustar name field");
        ar_free(&a);
        char rec[64];
        ar_paxn(&a, rec, pax_rec(rec, "path", "ok\0/../x", 9));
        ar_entry(&a, "ok", '0', 0644, NULL, 0);
        ar_end(&a);
        refused(&a, NULL, -EPERM, "NUL byte", "NUL byte in a pax path");
        ar_free(&a);
        ar_paxn(&a, rec, pax_rec(rec, "path", "/etc/shadow", 11));
        ar_entry(&a, "harmless", '0', 0644, NULL, 0);
        ar_end(&a);
        refused(&a, NULL, -EPERM, "absolute", "pax path overriding a harmless name");
        ar_free(&a);
    }

    {
        char big[5000], rec[5100];
        memset(big, 'b', sizeof big - 1);
        big[sizeof big - 1] = 0;
        ar_paxn(&a, rec, pax_rec(rec, "path", big, strlen(big)));
        ar_entry(&a, "x", '0', 0644, NULL, 0);
        ar_end(&a);
        refused(&a, NULL, -E2BIG, "longer than", "name over the limit");
        ar_free(&a);
        struct sbx_tar_limits lim = { .max_name = 10 };
        ar_entry(&a, "abcdefghijk", '0', 0644, NULL, 0);
        ar_end(&a);
        char msg[256];
        ok(run(&a, NULL, &lim, 0, NULL, msg, sizeof msg) == -E2BIG, "configured name limit: %s",
           msg);
        ar_free(&a);
    }

    struct {
        char tf;
        const char *needle;
    } types[] = {
        { '1', "hard link" },      { '2', "symbolic link" }, { '3', "character device" },
        { '4', "block device" },   { '6', "FIFO" },          { '7', "contiguous" },
        { 'S', "GNU sparse" },     { 'g', "pax global" },    { 'K', "long link" },
        { 'V', "unsupported" },    { 'M', "unsupported" },   { 'Z', "unsupported" },
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        unsigned char h[512];
        mkhdr(h, "dir/x", 5, types[i].tf, 0644, 0, types[i].tf == 'S');
        if (types[i].tf == '1' || types[i].tf == '2')
            memcpy(h + 157, "/etc/passwd", 11), fix_sum(h);
        ar_raw(&a, h, 512);
        ar_end(&a);
        char what[64];
        snprintf(what, sizeof what, "type '%c' refused", types[i].tf);
        refused(&a, "dir", -EPERM, types[i].needle, what);
        ar_free(&a);
    }

    {
        char rec[64];
        ar_paxn(&a, rec, pax_rec(rec, "GNU.sparse.major", "1", 1));
    }
    ar_entry(&a, "x", '0', 0644, NULL, 0);
    ar_end(&a);
    refused(&a, NULL, -EPERM, "sparse", "pax GNU sparse");
    ar_free(&a);

    ar_entry(&a, "suid", '0', 04755, "x", 1);
    ar_end(&a);
    refused(&a, NULL, -EPERM, "setuid", "setuid bit");
    ar_free(&a);
    ar_entry(&a, "sgid", '5', 02755, NULL, 0);
    ar_end(&a);
    refused(&a, NULL, -EPERM, "setuid/setgid", "setgid bit on a directory");
    ar_free(&a);

    ar_entry(&a, "f", '0', 0644, "a", 1);
    ar_entry(&a, "f", '0', 0644, "b", 1);
    ar_end(&a);
    refused(&a, NULL, -EEXIST, "duplicate", "duplicate file");
    ar_free(&a);
    ar_entry(&a, "f", '0', 0644, "a", 1);
    ar_entry(&a, "./f", '0', 0644, "b", 1);
    ar_end(&a);
    refused(&a, NULL, -EEXIST, "duplicate", "duplicate spelled differently");
    ar_free(&a);
    ar_entry(&a, "f", '0', 0644, "a", 1);
    ar_entry(&a, "f/g", '0', 0644, "b", 1);
    ar_end(&a);
    refused(&a, NULL, -EPERM, "under the file", "entry under a file");
    ar_free(&a);
    ar_entry(&a, "d/g", '0', 0644, "b", 1);
    ar_entry(&a, "d", '0', 0644, "a", 1);
    ar_end(&a);
    refused(&a, NULL, -EPERM, "over a directory", "file over a directory");
    ar_free(&a);

    {
        struct sbx_tar_limits lim = { .max_entry_size = 4 };
        ar_entry(&a, "f", '0', 0644, "12345", 5);
        ar_end(&a);
        char msg[256];
        int e = run(&a, NULL, &lim, 0, NULL, msg, sizeof msg);
        ok(e == -E2BIG && strstr(msg, "larger than"), "entry size over the cap: %s", msg);
        ar_free(&a);
        struct sbx_tar_limits lim2 = { .max_total_size = 8 };
        ar_entry(&a, "f", '0', 0644, "12345", 5);
        ar_entry(&a, "g", '0', 0644, "12345", 5);
        ar_end(&a);
        e = run(&a, NULL, &lim2, 0, NULL, msg, sizeof msg);
        ok(e == -E2BIG && strstr(msg, "archive content larger"), "total size over the cap: %s",
           msg);
        ar_free(&a);
        /* a header claiming 8 GiB - 1: refused before any data is expected */
        unsigned char h[512];
        mkhdr(h, "huge", 4, '0', 0644, 077777777777ULL, 0);
        ar_raw(&a, h, 512);
        refused(&a, NULL, -E2BIG, "larger than", "huge size header");
        ar_free(&a);
        struct sbx_tar_limits lim3 = { .max_entries = 3 };
        for (int i = 0; i < 4; i++) {
            char n[8];
            snprintf(n, sizeof n, "f%d", i);
            ar_entry(&a, n, '0', 0644, NULL, 0);
        }
        ar_end(&a);
        e = run(&a, NULL, &lim3, 0, NULL, msg, sizeof msg);
        ok(e == -E2BIG && strstr(msg, "more than 3 entries"), "entry count over the cap: %s",
           msg);
        ar_free(&a);
    }

    /* truncated: in a header, in data, in padding, without the end marker, in a pax header */
    ar_entry(&a, "f", '0', 0644, "hello", 5);
    ar_end(&a);
    {
        size_t cuts[] = { 0, 100, 512 + 3, 1000, 1024 };
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            struct ar t = { a.d, cuts[i] };
            char what[64];
            snprintf(what, sizeof what, "truncated at %zu", cuts[i]);
            refused(&t, NULL, -EBADMSG, "truncated", what);
        }
        struct ar t = { a.d, 1024 + 512 };
        ok(run(&t, NULL, NULL, 0, NULL, NULL, 0) == 0, "one zero block is an end marker");
    }
    ar_free(&a);
    ar_pax(&a, "12 path=abc\n");
    {
        struct ar t = { a.d, 512 + 6 };
        refused(&t, NULL, -EBADMSG, "truncated", "truncated in a pax header");
    }
    ar_end(&a);
    refused(&a, NULL, -EBADMSG, "extended header without an entry", "pax header then end");
    ar_free(&a);

    /* bad checksum, bad magic, bad numbers, garbage after the end, bad pax records */
    {
        unsigned char h[512];
        mkhdr(h, "f", 1, '0', 0644, 0, 0);
        h[0] = 'g'; /* not re-summed */
        ar_raw(&a, h, 512);
        ar_end(&a);
        refused(&a, NULL, -EBADMSG, "checksum mismatch", "bad checksum");
        ar_free(&a);
        mkhdr(h, "f", 1, '0', 0644, 0, 0);
        memcpy(h + 257, "xxxxx\0" "00", 8);
        fix_sum(h);
        ar_raw(&a, h, 512);
        ar_end(&a);
        refused(&a, NULL, -EBADMSG, "bad magic", "V7 / unknown magic");
        ar_free(&a);
        mkhdr(h, "f", 1, '0', 0644, 0, 0);
        memcpy(h + 124, "0000000009a\0", 12);
        fix_sum(h);
        ar_raw(&a, h, 512);
        ar_end(&a);
        refused(&a, NULL, -EBADMSG, "bad size", "non-octal size");
        ar_free(&a);
        mkhdr(h, "f", 1, '0', 0644, 0, 0);
        h[124] = 0x80;
        fix_sum(h);
        ar_raw(&a, h, 512);
        ar_end(&a);
        refused(&a, NULL, -EBADMSG, "bad size", "base-256 size");
        ar_free(&a);
    }
    ar_entry(&a, "f", '0', 0644, "x", 1);
    ar_end(&a);
    {
        unsigned char junk = 'j';
        ar_raw(&a, &junk, 1);
        refused(&a, NULL, -EBADMSG, "after the end-of-archive", "data after the end marker");
    }
    ar_free(&a);
    ar_pax(&a, "99 path=abc\n");
    ar_entry(&a, "f", '0', 0644, NULL, 0);
    ar_end(&a);
    refused(&a, NULL, -EBADMSG, "malformed pax", "pax length beyond the header");
    ar_free(&a);
    ar_pax(&a, "12 pathabcd\n");
    ar_entry(&a, "f", '0', 0644, NULL, 0);
    ar_end(&a);
    refused(&a, NULL, -EBADMSG, "malformed pax", "pax record without '='");
    ar_free(&a);
    ar_pax(&a, "12 path=abc\n");
    ar_pax(&a, "12 path=abd\n");
    ar_entry(&a, "f", '0', 0644, NULL, 0);
    ar_end(&a);
    refused(&a, NULL, -EBADMSG, "two extended headers", "two pax headers in a row");
    ar_free(&a);
    {
        unsigned char h[512];
        mkhdr(h, "PaxHeader", 9, 'x', 0644, 1 << 20, 0);
        ar_raw(&a, h, 512);
        refused(&a, NULL, -E2BIG, "extended header larger", "huge pax header");
        ar_free(&a);
    }
    ar_entry(&a, "d/", '5', 0755, NULL, 0);
    {
        unsigned char h[512];
        mkhdr(h, "d2/", 3, '5', 0755, 5, 0);
        ar_raw(&a, h, 512);
        ar_zero(&a, 512);
        ar_end(&a);
        refused(&a, NULL, -EBADMSG, "with a size", "directory with a size");
    }
    ar_free(&a);
    ar_entry(&a, "f/", '0', 0644, NULL, 0);
    ar_end(&a);
    refused(&a, NULL, -EPERM, "ends with", "file name with a trailing slash");
    ar_free(&a);

    /* a consumer error is passed through */
    {
        ar_entry(&a, "f", '0', 0644, "xx", 2);
        ar_end(&a);
        struct sink s = { SBX_BUF_INIT, SBX_BUF_INIT };
        sbx_buf_init(&s.data, 1);
        int e = run(&a, NULL, NULL, 0, &s, NULL, 0);
        ok(e == -E2BIG, "consumer error passed through: %d", e);
        sbx_buf_free(&s.names);
        sbx_buf_free(&s.data);
        ar_free(&a);
    }

    /* ---- real GNU tar output (gnu, ustar and pax formats) ---- */
    if (system("command -v tar >/dev/null 2>&1") == 0) {
        char dir[] = "/tmp/test-tar-XXXXXX";
        if (mkdtemp(dir)) {
            char cmd[1024];
            snprintf(cmd, sizeof cmd,
                     "cd %s && mkdir -p src/sub && printf 'abc' > src/a && "
                     "head -c 70000 /dev/urandom > src/sub/b && "
                     "touch src/sub/%0150d && ln -s /etc/passwd link && "
                     "tar --format=gnu -cf gnu.tar src && tar --format=pax -cf pax.tar src && "
                     "tar --format=ustar -cf ustar.tar src/a src/sub/b && "
                     "tar -cf link.tar link && tar -C src -cf dot.tar .",
                     dir, 0);
            if (system(cmd) == 0) {
                const char *files[] = { "gnu.tar", "pax.tar", "ustar.tar", "dot.tar" };
                for (size_t i = 0; i < 4; i++) {
                    char p[512];
                    snprintf(p, sizeof p, "%s/%s", dir, files[i]);
                    FILE *f = fopen(p, "rb");
                    struct ar t = { 0 };
                    unsigned char buf[4096];
                    size_t n;
                    while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
                        ar_raw(&t, buf, n);
                    if (f)
                        fclose(f);
                    struct sink s = { SBX_BUF_INIT, SBX_BUF_INIT };
                    char msg[256];
                    int e = run(&t, i == 3 ? NULL : "src", NULL, 1000, &s, msg, sizeof msg);
                    ok(e == 0 && s.data.len == (i == 3 || i != 2 ? 70003u : 70003u),
                       "GNU tar %s accepted: %d %s (%zu bytes)", files[i], e, msg, s.data.len);
                    sbx_buf_free(&s.names);
                    sbx_buf_free(&s.data);
                    ar_free(&t);
                }
                char p[512];
                snprintf(p, sizeof p, "%s/link.tar", dir);
                FILE *f = fopen(p, "rb");
                struct ar t = { 0 };
                unsigned char buf[4096];
                size_t n;
                while (f && (n = fread(buf, 1, sizeof buf, f)) > 0)
                    ar_raw(&t, buf, n);
                if (f)
                    fclose(f);
                refused(&t, "link", -EPERM, "symbolic link", "GNU tar symlink refused");
                ar_free(&t);
            } else
                diag("could not build archives with tar; skipped");
            snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
            if (system(cmd) != 0)
                diag("cleanup failed");
        }
    }

    /* ---- writer: round trip through the reader (and through GNU tar) ---- */
    {
        struct ar t = { 0 };
        char *h;
        size_t hl;
        ok(sbx_tar_write_header("dir", 'd', 0755, 0, 1, &h, &hl) == 0 && hl == 512, "dir header");
        ar_raw(&t, h, hl);
        free(h);
        char longname[200];
        memset(longname, 'L', sizeof longname);
        memcpy(longname, "dir/", 4);
        longname[150] = 0;
        ok(sbx_tar_write_header(longname, 'f', 0640, 3, 1, &h, &hl) == 0 && hl == 1536,
           "long name → pax header (%zu)", hl);
        ar_raw(&t, h, hl);
        free(h);
        ar_raw(&t, "xyz", 3);
        ar_zero(&t, sbx_tar_padding(3));
        ar_zero(&t, SBX_TAR_END_LEN);
        struct sink s = { SBX_BUF_INIT, SBX_BUF_INIT };
        char msg[256];
        int e = run(&t, "dir", NULL, 0, &s, msg, sizeof msg);
        char want[400];
        snprintf(want, sizeof want, "d::0\nf:%s:3\n", longname + 4);
        ok(e == 0 && s.names.data && strcmp(s.names.data, want) == 0, "writer round trip: %s",
           msg);
        sbx_buf_free(&s.names);
        sbx_buf_free(&s.data);
        ok(sbx_tar_write_header("../x", 'f', 0644, 0, 0, &h, &hl) == -EINVAL, "writer: '..'");
        ok(sbx_tar_write_header("/x", 'f', 0644, 0, 0, &h, &hl) == -EINVAL, "writer: absolute");
        ok(sbx_tar_write_header("x", 'l', 0644, 0, 0, &h, &hl) == -EINVAL, "writer: bad type");
        /* GNU tar reads it */
        char dir[] = "/tmp/test-tarw-XXXXXX";
        if (system("command -v tar >/dev/null 2>&1") == 0 && mkdtemp(dir)) {
            char p[512], cmd[1024];
            snprintf(p, sizeof p, "%s/w.tar", dir);
            FILE *f = fopen(p, "wb");
            if (f) {
                fwrite(t.d, 1, t.len, f);
                fclose(f);
            }
            snprintf(cmd, sizeof cmd, "cd %s && tar -xf w.tar && test \"$(cat dir/%s)\" = xyz",
                     dir, longname + 4);
            ok(system(cmd) == 0, "GNU tar extracts the writer's archive");
            snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
            if (system(cmd) != 0)
                diag("cleanup failed");
        }
        ar_free(&t);
    }

    return done();
}
