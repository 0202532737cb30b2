/*
 * tar.c — strict streaming tar reader (hostile input) and a small ustar/pax writer.
 * See tar.h for the contract.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macro.h"
#include "common/tar.h"

#define PAX_MAX (64 * 1024)    /* one pax 'x' header or GNU 'L' long name */
#define COMPONENT_MAX 255
#define DEPTH_MAX 128

enum rstate { R_HEADER, R_EXT, R_DATA, R_PAD, R_END };

struct nameset {
    char **keys;
    char *kinds;               /* 'f', 'd', or 'p' (implicit parent) */
    size_t cap, n;
};

struct sbx_tar_reader {
    char *root;                /* normalised root, "" = any */
    struct sbx_tar_limits lim;
    const struct sbx_tar_ops *ops;
    void *ud;

    enum rstate st;
    unsigned char blk[SBX_TAR_BLOCK];
    size_t blen;               /* bytes of blk filled (R_HEADER, R_END) */

    /* R_EXT: collecting a pax / GNU long-name payload */
    char ext_type;
    char *ext;
    size_t ext_len, ext_want;
    uint64_t ext_pad;

    /* overrides from an 'x' / 'L' header for the next entry */
    bool have_pending;
    char *pend_path;
    size_t pend_path_len;
    bool pend_has_size, pend_has_mtime;
    uint64_t pend_size;
    int64_t pend_mtime;

    /* current entry */
    struct sbx_tar_entry cur;
    char *cur_name;
    uint64_t remaining, pad;

    unsigned entries;
    uint64_t total;
    struct nameset names;

    int error;
    char errmsg[256];
};

_printf_(3, 4) static int fail(struct sbx_tar_reader *r, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
    va_end(ap);
    r->error = err;
    return err;
}

/* ---- name set (open addressing, FNV-1a) ---- */

static uint64_t fnv(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static size_t ns_slot(const struct nameset *ns, const char *k)
{
    size_t i = (size_t)(fnv(k) & (ns->cap - 1));
    while (ns->keys[i] && strcmp(ns->keys[i], k) != 0)
        i = (i + 1) & (ns->cap - 1);
    return i;
}

static char *ns_find(struct nameset *ns, const char *k)
{
    if (!ns->cap)
        return NULL;
    size_t i = ns_slot(ns, k);
    return ns->keys[i] ? &ns->kinds[i] : NULL;
}

static void ns_put(struct nameset *ns, const char *k, char kind)
{
    if ((ns->n + 1) * 2 > ns->cap) {
        struct nameset n2 = { .cap = ns->cap ? ns->cap * 2 : 64 };
        n2.keys = xcalloc(n2.cap, sizeof *n2.keys);
        n2.kinds = xcalloc(n2.cap, 1);
        for (size_t i = 0; i < ns->cap; i++)
            if (ns->keys[i]) {
                size_t j = ns_slot(&n2, ns->keys[i]);
                n2.keys[j] = ns->keys[i];
                n2.kinds[j] = ns->kinds[i];
            }
        n2.n = ns->n;
        free(ns->keys);
        free(ns->kinds);
        *ns = n2;
    }
    size_t i = ns_slot(ns, k);
    if (!ns->keys[i]) {
        ns->keys[i] = xstrdup(k);
        ns->n++;
    }
    ns->kinds[i] = kind;
}

static void ns_free(struct nameset *ns)
{
    for (size_t i = 0; i < ns->cap; i++)
        free(ns->keys[i]);
    free(ns->keys);
    free(ns->kinds);
    memset(ns, 0, sizeof *ns);
}

/* ---- names ---- */

/* Normalise a name of len bytes (may contain NUL → refused). Writes a malloc'ed "a/b/c" (no
 * "./" prefix, no trailing "/", "" for "." / "./") to *ret and whether it had a trailing "/". */
static int name_normalise(const char *s, size_t len, size_t max, char **ret, bool *ret_slash,
                          char *msg, size_t msglen)
{
    if (len == 0) {
        snprintf(msg, msglen, "empty entry name");
        return -EPERM;
    }
    if (len > max) {
        snprintf(msg, msglen, "entry name longer than %zu bytes", max);
        return -E2BIG;
    }
    if (memchr(s, 0, len)) {
        snprintf(msg, msglen, "NUL byte in entry name");
        return -EPERM;
    }
    if (s[0] == '/') {
        snprintf(msg, msglen, "absolute entry name '%.*s'", (int)MIN(len, 200), s);
        return -EPERM;
    }
    bool slash = s[len - 1] == '/';
    char *out = xmalloc(len + 1);
    size_t o = 0, i = 0, depth = 0;
    bool leading = true;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != '/')
            j++;
        size_t cl = j - i;
        const char *c = s + i;
        bool last = j >= len || j + 1 == len; /* this component ends the name (maybe with "/") */
        if (cl == 1 && c[0] == '.' && leading) {
            /* leading "./" (GNU tar -C dir .) */
        } else if (cl == 0) {
            free(out);
            snprintf(msg, msglen, "empty path component in '%.*s'", (int)MIN(len, 200), s);
            return -EPERM;
        } else if ((cl == 1 && c[0] == '.') || (cl == 2 && c[0] == '.' && c[1] == '.')) {
            free(out);
            snprintf(msg, msglen, "'%.*s' component in '%.*s'", (int)cl, c, (int)MIN(len, 200),
                     s);
            return -EPERM;
        } else if (cl > COMPONENT_MAX) {
            free(out);
            snprintf(msg, msglen, "path component longer than %d bytes", COMPONENT_MAX);
            return -E2BIG;
        } else {
            leading = false;
            if (++depth > DEPTH_MAX) {
                free(out);
                snprintf(msg, msglen, "entry name deeper than %d components", DEPTH_MAX);
                return -E2BIG;
            }
            if (o)
                out[o++] = '/';
            memcpy(out + o, c, cl);
            o += cl;
        }
        if (last)
            break;
        i = j + 1;
    }
    out[o] = 0;
    *ret = out;
    *ret_slash = slash;
    return 0;
}

/* ---- numeric fields ---- */

static int parse_octal(const unsigned char *f, size_t n, uint64_t *ret)
{
    if (f[0] & 0x80)
        return -EBADMSG; /* base-256 (GNU): only needed for > 8 GiB, over any cap here */
    size_t i = 0;
    while (i < n && f[i] == ' ')
        i++;
    uint64_t v = 0;
    size_t digits = 0;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v >> 60)
            return -EBADMSG;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    if (!digits)
        return -EBADMSG;
    for (; i < n; i++)
        if (f[i] != ' ' && f[i] != 0)
            return -EBADMSG;
    *ret = v;
    return 0;
}

static bool all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

/* ---- pax ---- */

static int pax_parse(struct sbx_tar_reader *r, const char *p, size_t len)
{
    size_t i = 0;
    while (i < len) {
        /* "LEN key=value\n", LEN counts the whole record */
        size_t j = i, reclen = 0;
        while (j < len && p[j] >= '0' && p[j] <= '9' && j - i < 8)
            reclen = reclen * 10 + (size_t)(p[j++] - '0');
        if (j == i || j >= len || p[j] != ' ' || reclen < 5 || reclen > len - i ||
            p[i + reclen - 1] != '\n')
            return fail(r, -EBADMSG, "malformed pax extended header record");
        const char *key = p + j + 1, *end = p + i + reclen - 1;
        const char *eq = memchr(key, '=', (size_t)(end - key));
        if (!eq || eq == key)
            return fail(r, -EBADMSG, "malformed pax extended header record");
        size_t klen = (size_t)(eq - key), vlen = (size_t)(end - eq - 1);
        const char *val = eq + 1;
#define KEYIS(s) (klen == strlen(s) && memcmp(key, s, klen) == 0)
        if (KEYIS("path")) {
            free(r->pend_path);
            r->pend_path = xmalloc(vlen + 1);
            memcpy(r->pend_path, val, vlen);
            r->pend_path[vlen] = 0;
            r->pend_path_len = vlen;
        } else if (KEYIS("size")) {
            uint64_t v = 0;
            if (vlen == 0 || vlen > 19)
                return fail(r, -EBADMSG, "bad pax size");
            for (size_t k = 0; k < vlen; k++) {
                if (val[k] < '0' || val[k] > '9')
                    return fail(r, -EBADMSG, "bad pax size");
                v = v * 10 + (uint64_t)(val[k] - '0');
            }
            r->pend_size = v;
            r->pend_has_size = true;
        } else if (KEYIS("mtime")) {
            int64_t v = 0;
            size_t k = 0;
            bool neg = vlen > 0 && val[0] == '-';
            if (neg)
                k++;
            size_t d0 = k;
            for (; k < vlen && val[k] >= '0' && val[k] <= '9' && k - d0 < 18; k++)
                v = v * 10 + (val[k] - '0');
            if (k == d0 || (k < vlen && val[k] != '.'))
                return fail(r, -EBADMSG, "bad pax mtime");
            for (k = k < vlen ? k + 1 : k; k < vlen; k++)
                if (val[k] < '0' || val[k] > '9')
                    return fail(r, -EBADMSG, "bad pax mtime");
            r->pend_mtime = neg ? -v : v;
            r->pend_has_mtime = true;
        } else if (klen >= 11 && memcmp(key, "GNU.sparse.", 11) == 0) {
            return fail(r, -EPERM, "GNU sparse file refused");
        }
        /* everything else (uid, uname, atime, xattrs, linkpath, ...) is ignored */
#undef KEYIS
        i += reclen;
    }
    return 0;
}

/* ---- entries ---- */

static int check_tree(struct sbx_tar_reader *r, const char *name, char type)
{
    /* parents must not be files; every parent becomes an implicit 'p' */
    size_t n = strlen(name);
    _cleanup_free_ char *tmp = xstrdup(name);
    for (size_t i = 0; i < n; i++) {
        if (tmp[i] != '/')
            continue;
        tmp[i] = 0;
        char *k = ns_find(&r->names, tmp);
        if (k && *k == 'f')
            return fail(r, -EPERM, "entry '%.200s' is under the file '%.200s'", name, tmp);
        if (!k)
            ns_put(&r->names, tmp, 'p');
        tmp[i] = '/';
    }
    char *k = ns_find(&r->names, name);
    if (k && (*k == 'f' || *k == 'd'))
        return fail(r, -EEXIST, "duplicate entry '%.200s'", name);
    if (k && *k == 'p' && type == 'f')
        return fail(r, -EPERM, "file '%.200s' over a directory", name);
    ns_put(&r->names, name, type);
    if (r->names.n > (size_t)r->lim.max_entries * 4 + 1024)
        return fail(r, -E2BIG, "too many path components");
    return 0;
}

static int begin_entry(struct sbx_tar_reader *r, const unsigned char *h)
{
    char tf = (char)h[156];
    const char *what = NULL;
    switch (tf) {
    case '0': case '\0': case '5': case 'x': case 'L':
        break;
    case '1': what = "hard link"; break;
    case '2': what = "symbolic link"; break;
    case '3': what = "character device"; break;
    case '4': what = "block device"; break;
    case '6': what = "FIFO"; break;
    case '7': what = "contiguous file"; break;
    case 'g': what = "pax global header"; break;
    case 'S': what = "GNU sparse file"; break;
    case 'K': what = "GNU long link name"; break;
    default: what = "unsupported entry type"; break;
    }
    if (what)
        return fail(r, -EPERM, "%s refused (type '%c')", what, tf >= 32 && tf < 127 ? tf : '?');

    bool posix = memcmp(h + 257, "ustar\0" "00", 8) == 0;
    bool gnu = memcmp(h + 257, "ustar  \0", 8) == 0;
    if (!posix && !gnu)
        return fail(r, -EBADMSG, "not a ustar/pax archive (bad magic)");

    uint64_t sum_want, size, mode, mtime;
    if (parse_octal(h + 148, 8, &sum_want) < 0)
        return fail(r, -EBADMSG, "bad header checksum field");
    uint64_t sum = 0;
    for (size_t i = 0; i < SBX_TAR_BLOCK; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    if (sum != sum_want)
        return fail(r, -EBADMSG, "header checksum mismatch");
    if (parse_octal(h + 124, 12, &size) < 0)
        return fail(r, -EBADMSG, "bad size field");
    if (parse_octal(h + 100, 8, &mode) < 0)
        return fail(r, -EBADMSG, "bad mode field");
    if (parse_octal(h + 136, 12, &mtime) < 0)
        return fail(r, -EBADMSG, "bad mtime field");

    if (tf == 'x' || tf == 'L') {
        if (r->have_pending)
            return fail(r, -EBADMSG, "two extended headers in a row");
        if (size > PAX_MAX)
            return fail(r, -E2BIG, "extended header larger than %d bytes", PAX_MAX);
        r->st = R_EXT;
        r->ext_type = tf;
        r->ext_want = (size_t)size;
        r->ext_len = 0;
        r->ext = xrealloc(r->ext, r->ext_want + 1);
        r->ext_pad = sbx_tar_padding(size);
        if (r->ext_want == 0) {
            r->st = R_HEADER;
            r->have_pending = true;
        }
        return 0;
    }

    /* the name: pax/L override, else prefix + name (POSIX) or name (GNU) */
    char namebuf[256 + 1 + 100 + 1];
    const char *nm;
    size_t nlen;
    if (r->pend_path) {
        nm = r->pend_path;
        nlen = r->pend_path_len;
    } else {
        const unsigned char *nf = h, *nul = memchr(nf, 0, 100);
        size_t fl = nul ? (size_t)(nul - nf) : 100;
        if (nul && !all_zero(nf + fl, 100 - fl))
            return fail(r, -EPERM, "NUL byte in entry name");
        size_t o = 0;
        if (posix && h[345]) {
            const unsigned char *pf = h + 345, *pnul = memchr(pf, 0, 155);
            size_t pl = pnul ? (size_t)(pnul - pf) : 155;
            if (pnul && !all_zero(pf + pl, 155 - pl))
                return fail(r, -EPERM, "NUL byte in entry name");
            memcpy(namebuf, pf, pl);
            o = pl;
            namebuf[o++] = '/';
        }
        memcpy(namebuf + o, nf, fl);
        o += fl;
        namebuf[o] = 0;
        nm = namebuf;
        nlen = o;
    }
    if (r->pend_has_size)
        size = r->pend_size;
    if (r->pend_has_mtime)
        mtime = (uint64_t)r->pend_mtime;

    char msg[256];
    _cleanup_free_ char *norm = NULL;
    bool slash = false;
    int e = name_normalise(nm, nlen, r->lim.max_name, &norm, &slash, msg, sizeof msg);
    if (e < 0)
        return fail(r, e, "%s", msg);

    char type = tf == '5' ? 'd' : 'f';
    if (type == 'f' && slash)
        return fail(r, -EPERM, "file entry '%.200s' ends with '/'", norm);
    if (type == 'f' && norm[0] == 0)
        return fail(r, -EPERM, "file entry named '.'");
    if (type == 'd' && size != 0)
        return fail(r, -EBADMSG, "directory entry '%.200s' with a size", norm);
    if (mode & 06000)
        return fail(r, -EPERM, "setuid/setgid entry '%.200s' refused", norm);

    size_t rl = strlen(r->root);
    if (rl && !(strncmp(norm, r->root, rl) == 0 && (norm[rl] == 0 || norm[rl] == '/')))
        return fail(r, -EPERM, "entry '%.200s' is outside the requested path '%.200s'", norm,
                    r->root);

    if (++r->entries > r->lim.max_entries)
        return fail(r, -E2BIG, "more than %u entries", r->lim.max_entries);
    if (size > r->lim.max_entry_size)
        return fail(r, -E2BIG, "entry '%.200s' larger than %" PRIu64 " bytes", norm,
                    r->lim.max_entry_size);
    if (size > r->lim.max_total_size - r->total)
        return fail(r, -E2BIG, "archive content larger than %" PRIu64 " bytes",
                    r->lim.max_total_size);
    r->total += size;

    e = check_tree(r, norm, type);
    if (e < 0)
        return e;

    /* consume the overrides */
    free(r->pend_path);
    r->pend_path = NULL;
    r->have_pending = r->pend_has_size = r->pend_has_mtime = false;

    free(r->cur_name);
    r->cur_name = TAKE_PTR(norm);
    r->cur = (struct sbx_tar_entry){
        .name = r->cur_name,
        .type = type,
        .size = size,
        .mode = (unsigned)(mode & 01777),
        .mtime = (int64_t)mtime,
    };
    r->cur.rel = rl == 0 ? r->cur_name : r->cur_name[rl] ? r->cur_name + rl + 1 : r->cur_name + rl;
    r->remaining = size;
    r->pad = sbx_tar_padding(size);
    if (r->ops && r->ops->entry) {
        e = r->ops->entry(r->ud, &r->cur);
        if (e < 0)
            return fail(r, e, "entry '%.200s' refused by the consumer", r->cur_name);
    }
    if (size == 0) {
        if (r->ops && r->ops->end) {
            e = r->ops->end(r->ud, &r->cur);
            if (e < 0)
                return fail(r, e, "entry '%.200s' refused by the consumer", r->cur_name);
        }
        r->st = R_HEADER;
    } else
        r->st = R_DATA;
    return 0;
}

static int ext_done(struct sbx_tar_reader *r)
{
    r->have_pending = true;
    if (r->ext_type == 'L') {
        /* GNU long name: the name plus (usually) one NUL */
        size_t n = r->ext_len;
        if (n && r->ext[n - 1] == 0)
            n--;
        free(r->pend_path);
        r->pend_path = xmalloc(n + 1);
        memcpy(r->pend_path, r->ext, n);
        r->pend_path[n] = 0;
        r->pend_path_len = n; /* an embedded NUL is refused by name_normalise */
        return 0;
    }
    return pax_parse(r, r->ext, r->ext_len);
}

/* ---- public ---- */

struct sbx_tar_reader *sbx_tar_reader_new(const char *root, const struct sbx_tar_limits *lim,
                                          const struct sbx_tar_ops *ops, void *ud)
{
    struct sbx_tar_reader *r = xcalloc(1, sizeof *r);
    if (lim)
        r->lim = *lim;
    if (!r->lim.max_entry_size)
        r->lim.max_entry_size = 1ULL << 30;
    if (!r->lim.max_total_size)
        r->lim.max_total_size = 1ULL << 30;
    if (!r->lim.max_entries)
        r->lim.max_entries = 10000;
    if (!r->lim.max_name)
        r->lim.max_name = 4096;
    r->ops = ops;
    r->ud = ud;
    r->st = R_HEADER;
    if (root && root[0]) {
        bool slash;
        char msg[256];
        if (name_normalise(root, strlen(root), 4096, &r->root, &slash, msg, sizeof msg) < 0)
            fail(r, -EINVAL, "invalid requested path: %s", msg);
    }
    if (!r->root)
        r->root = xstrdup("");
    return r;
}

int sbx_tar_reader_feed(struct sbx_tar_reader *r, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0 && !r->error) {
        switch (r->st) {
        case R_HEADER: {
            size_t n = MIN(len, SBX_TAR_BLOCK - r->blen);
            memcpy(r->blk + r->blen, p, n);
            r->blen += n;
            p += n;
            len -= n;
            if (r->blen < SBX_TAR_BLOCK)
                break;
            r->blen = 0;
            if (all_zero(r->blk, SBX_TAR_BLOCK)) {
                if (r->have_pending)
                    return fail(r, -EBADMSG, "extended header without an entry");
                r->st = R_END;
                break;
            }
            int e = begin_entry(r, r->blk);
            if (e < 0)
                return e;
            break;
        }
        case R_EXT: {
            if (r->ext_len < r->ext_want) {
                size_t n = MIN(len, r->ext_want - r->ext_len);
                memcpy(r->ext + r->ext_len, p, n);
                r->ext_len += n;
                p += n;
                len -= n;
            }
            if (r->ext_len == r->ext_want && r->ext_pad > 0) {
                size_t n = (size_t)MIN((uint64_t)len, r->ext_pad);
                r->ext_pad -= n;
                p += n;
                len -= n;
            }
            if (r->ext_len == r->ext_want && r->ext_pad == 0) {
                r->st = R_HEADER;
                int e = ext_done(r);
                if (e < 0)
                    return e;
            }
            break;
        }
        case R_DATA: {
            size_t n = (size_t)MIN((uint64_t)len, r->remaining);
            if (r->ops && r->ops->data) {
                int e = r->ops->data(r->ud, p, n);
                if (e < 0)
                    return fail(r, e, "writing entry '%.200s' failed", r->cur_name);
            }
            r->remaining -= n;
            p += n;
            len -= n;
            if (r->remaining == 0) {
                if (r->ops && r->ops->end) {
                    int e = r->ops->end(r->ud, &r->cur);
                    if (e < 0)
                        return fail(r, e, "entry '%.200s' refused by the consumer",
                                    r->cur_name);
                }
                r->st = r->pad ? R_PAD : R_HEADER;
            }
            break;
        }
        case R_PAD: {
            size_t n = (size_t)MIN((uint64_t)len, r->pad);
            r->pad -= n;
            p += n;
            len -= n;
            if (r->pad == 0)
                r->st = R_HEADER;
            break;
        }
        case R_END:
            if (!all_zero(p, len))
                return fail(r, -EBADMSG, "data after the end-of-archive marker");
            len = 0;
            break;
        }
    }
    return r->error;
}

int sbx_tar_reader_finish(struct sbx_tar_reader *r)
{
    if (r->error)
        return r->error;
    if (r->st != R_END)
        return fail(r, -EBADMSG, "truncated archive (no end-of-archive marker)");
    return 0;
}

const char *sbx_tar_reader_error(const struct sbx_tar_reader *r)
{
    return r->error ? r->errmsg : "";
}

unsigned sbx_tar_reader_entries(const struct sbx_tar_reader *r)
{
    return r->entries;
}

void sbx_tar_reader_free(struct sbx_tar_reader *r)
{
    if (!r)
        return;
    ns_free(&r->names);
    free(r->root);
    free(r->ext);
    free(r->pend_path);
    free(r->cur_name);
    free(r);
}

/* ---- writer ---- */

static void put_octal(unsigned char *f, size_t n, uint64_t v)
{
    /* n-1 digits, zero-padded, NUL */
    for (size_t i = n - 1; i-- > 0;) {
        f[i] = (unsigned char)('0' + (v & 7));
        v >>= 3;
    }
    f[n - 1] = 0;
}

static void fill_header(unsigned char *h, const char *name, size_t nlen, char tf, unsigned mode,
                        uint64_t size, int64_t mtime)
{
    memset(h, 0, SBX_TAR_BLOCK);
    memcpy(h, name, MIN(nlen, (size_t)100));
    put_octal(h + 100, 8, mode & 01777);
    put_octal(h + 108, 8, 0);
    put_octal(h + 116, 8, 0);
    put_octal(h + 124, 12, size);
    put_octal(h + 136, 12, mtime < 0 ? 0 : (uint64_t)mtime);
    h[156] = (unsigned char)tf;
    memcpy(h + 257, "ustar\0" "00", 8);
    memset(h + 148, ' ', 8);
    uint64_t sum = 0;
    for (size_t i = 0; i < SBX_TAR_BLOCK; i++)
        sum += h[i];
    put_octal(h + 148, 7, sum);
    h[155] = ' ';
}

int sbx_tar_write_header(const char *name, char type, unsigned mode, uint64_t size,
                         int64_t mtime, char **ret, size_t *ret_len)
{
    if (type != 'f' && type != 'd')
        return -EINVAL;
    if (type == 'd')
        size = 0;
    if (size > 077777777777ULL)
        return -E2BIG; /* > 8 GiB: would need a pax size record; not needed here */
    char msg[128];
    _cleanup_free_ char *norm = NULL;
    bool slash;
    int r = name_normalise(name, strlen(name), 4096, &norm, &slash, msg, sizeof msg);
    if (r < 0 || !norm[0])
        return -EINVAL;
    _cleanup_free_ char *full = type == 'd' ? xasprintf("%s/", norm) : xstrdup(norm);
    size_t flen = strlen(full);
    char tf = type == 'd' ? '5' : '0';
    if (flen <= 100) {
        unsigned char *h = xmalloc(SBX_TAR_BLOCK);
        fill_header(h, full, flen, tf, mode, size, mtime);
        *ret = (char *)h;
        *ret_len = SBX_TAR_BLOCK;
        return 0;
    }
    /* pax record "LEN path=<full>\n" where LEN includes its own digits */
    size_t body = strlen(" path=") + flen + 1, total = body + 1;
    for (;;) {
        int d = snprintf(NULL, 0, "%zu", total);
        if (body + (size_t)d == total)
            break;
        total = body + (size_t)d;
    }
    _cleanup_free_ char *rec = xasprintf("%zu path=%s\n", total, full);
    size_t plen = strlen(rec);
    size_t out_len = SBX_TAR_BLOCK + plen + sbx_tar_padding(plen) + SBX_TAR_BLOCK;
    unsigned char *out = xcalloc(1, out_len);
    fill_header(out, "PaxHeader", 9, 'x', 0644, plen, mtime);
    memcpy(out + SBX_TAR_BLOCK, rec, plen);
    /* the ustar name field gets a truncated (harmless) name; the pax path wins */
    fill_header(out + out_len - SBX_TAR_BLOCK, full, 100, tf, mode, size, mtime);
    *ret = (char *)out;
    *ret_len = out_len;
    return 0;
}
