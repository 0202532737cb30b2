/*
 * fuzz-tar.c — the strict tar reader (common/tar.c) on arbitrary bytes.
 *
 * The input is fed twice, once whole and once in chunks whose sizes come from the input's first
 * byte; both runs must reach the same verdict and see the same entries and data (the reader's
 * result must not depend on how the stream is split). Every accepted entry must satisfy the
 * invariants the callers rely on: relative, no ".." / "." / empty component, no NUL, under
 * the requested root "r" (or anything for the second root), type 'f' or 'd', no setuid/setgid,
 * data length = declared size. Errors must come with a message.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/tar.h"

struct seen {
    struct sbx_buf log;
    uint64_t want, got;
};

static void check_name(const char *n)
{
    if (n[0] == '/' || strstr(n, "//") || !strcmp(n, "..") || !strncmp(n, "../", 3) ||
        strstr(n, "/../") || (strlen(n) >= 3 && !strcmp(n + strlen(n) - 3, "/..")) ||
        !strncmp(n, "./", 2) || strstr(n, "/./"))
        abort();
    if (n[0] && n[strlen(n) - 1] == '/')
        abort();
}

static int f_entry(void *ud, const struct sbx_tar_entry *e)
{
    struct seen *s = ud;
    check_name(e->name);
    if (e->type != 'f' && e->type != 'd')
        abort();
    if (e->mode & 06000)
        abort();
    if (e->type == 'f' && e->name[0] == 0)
        abort();
    s->want = e->size;
    s->got = 0;
    if (sbx_buf_printf(&s->log, "%c%s:%llu|", e->type, e->name, (unsigned long long)e->size) < 0)
        abort();
    return 0;
}

static int f_data(void *ud, const void *p, size_t n)
{
    struct seen *s = ud;
    s->got += n;
    if (s->got > s->want)
        abort();
    unsigned h = 0;
    for (size_t i = 0; i < n; i++)
        h = h * 31 + ((const unsigned char *)p)[i];
    (void)h;
    return 0;
}

static int f_end(void *ud, const struct sbx_tar_entry *e)
{
    struct seen *s = ud;
    if (s->got != e->size)
        abort();
    return 0;
}

static const struct sbx_tar_ops ops = { f_entry, f_data, f_end };

static int run(const uint8_t *d, size_t n, size_t chunk, const char *root, struct seen *s)
{
    struct sbx_tar_limits lim = { .max_entry_size = 1 << 20, .max_total_size = 4 << 20,
                                  .max_entries = 64, .max_name = 1024 };
    struct sbx_tar_reader *r = sbx_tar_reader_new(root, &lim, &ops, s);
    int e = 0;
    for (size_t i = 0; i < n && e == 0; i += chunk)
        e = sbx_tar_reader_feed(r, d + i, n - i < chunk ? n - i : chunk);
    if (e == 0)
        e = sbx_tar_reader_finish(r);
    if (e < 0 && sbx_tar_reader_error(r)[0] == 0)
        abort();
    if (e < 0 && e != -EBADMSG && e != -EPERM && e != -EEXIST && e != -E2BIG)
        abort();
    sbx_tar_reader_free(r);
    return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = 1 + data[0] % 97;
    const char *roots[] = { "r", NULL };
    for (int k = 0; k < 2; k++) {
        struct seen a = { SBX_BUF_INIT, 0, 0 }, b = { SBX_BUF_INIT, 0, 0 };
        int ea = run(data + 1, size - 1, size, roots[k], &a);
        int eb = run(data + 1, size - 1, chunk, roots[k], &b);
        if (ea != eb || a.log.len != b.log.len ||
            (a.log.len && memcmp(a.log.data, b.log.data, a.log.len) != 0))
            abort();
        if (ea == 0 && k == 0 && a.log.len) {
            /* every accepted name is "r" or under "r/" */
            const char *p = a.log.data;
            while (*p) {
                if (strncmp(p + 1, "r", 1) != 0 || (p[2] != ':' && p[2] != '/'))
                    abort();
                p = strchr(p, '|') + 1;
            }
        }
        sbx_buf_free(&a.log);
        sbx_buf_free(&b.log);
    }
    return 0;
}
