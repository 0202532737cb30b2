/*
 * blob-s3xml.c — strict bounded XML reader for S3 responses (see blob-s3xml.h).
 */
#include "storage/blob-s3xml.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/macro.h"

#define NAME_MAX_LEN 128

struct px {
    const char *p, *end;
    char path[SBX_S3XML_MAX_DEPTH * (NAME_MAX_LEN + 1) + 1];
    size_t plen[SBX_S3XML_MAX_DEPTH + 1]; /* path length at each depth */
    unsigned depth;
    bool had_child[SBX_S3XML_MAX_DEPTH + 1];
    struct sbx_buf text;
};

static bool starts(const struct px *x, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

static bool name_start(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || c >= 0x80;
}

static bool name_char(unsigned char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void skip_space(struct px *x)
{
    while (x->p < x->end && is_space(*x->p))
        x->p++;
}

/* Reads a name at x->p into out (NUL-terminated). */
static int read_name(struct px *x, char out[NAME_MAX_LEN + 1])
{
    size_t n = 0;
    if (x->p >= x->end || !name_start((unsigned char)*x->p))
        return -EINVAL;
    while (x->p < x->end && name_char((unsigned char)*x->p)) {
        if (n == NAME_MAX_LEN)
            return -E2BIG;
        out[n++] = *x->p++;
    }
    out[n] = '\0';
    return 0;
}

static void put_utf8(struct sbx_buf *b, uint32_t cp, int *r)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | cp >> 6);
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | cp >> 12);
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | cp >> 18);
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    *r |= sbx_buf_append(b, u, n);
}

/* x->p at '&': decodes one reference into text. */
static int entity(struct px *x)
{
    static const struct {
        const char *name;
        char c;
    } ents[] = { { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' }, { "apos;", '\'' } };
    x->p++;
    int r = 0;
    for (size_t i = 0; i < ARRAY_SIZE(ents); i++)
        if (starts(x, ents[i].name)) {
            x->p += strlen(ents[i].name);
            return sbx_buf_append(&x->text, &ents[i].c, 1);
        }
    if (x->p >= x->end || *x->p != '#')
        return -EINVAL;
    x->p++;
    bool hex = x->p < x->end && *x->p == 'x';
    if (hex)
        x->p++;
    uint32_t cp = 0;
    int digits = 0;
    while (x->p < x->end && *x->p != ';') {
        char c = *x->p++;
        int v = c >= '0' && c <= '9' ? c - '0'
                : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                              : -1;
        if (v < 0 || ++digits > 8)
            return -EINVAL;
        cp = cp * (hex ? 16 : 10) + (uint32_t)v;
    }
    if (x->p >= x->end || digits == 0 || cp == 0 || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -EINVAL;
    x->p++; /* ';' */
    put_utf8(&x->text, cp, &r);
    return r;
}

/* Skips attributes up to '>' or '/>'; returns 1 for a self-closing tag. */
static int skip_attrs(struct px *x)
{
    for (;;) {
        skip_space(x);
        if (x->p >= x->end)
            return -EINVAL;
        if (*x->p == '>') {
            x->p++;
            return 0;
        }
        if (starts(x, "/>")) {
            x->p += 2;
            return 1;
        }
        char name[NAME_MAX_LEN + 1];
        int r = read_name(x, name);
        if (r < 0)
            return r;
        skip_space(x);
        if (x->p >= x->end || *x->p != '=')
            return -EINVAL;
        x->p++;
        skip_space(x);
        if (x->p >= x->end || (*x->p != '"' && *x->p != '\''))
            return -EINVAL;
        char q = *x->p++;
        const char *e = memchr(x->p, q, (size_t)(x->end - x->p));
        if (!e || memchr(x->p, '<', (size_t)(e - x->p)))
            return -EINVAL;
        x->p = e + 1;
    }
}

static int skip_misc(struct px *x)
{
    for (;;) {
        skip_space(x);
        if (starts(x, "<!--")) {
            const char *e = memmem(x->p + 4, (size_t)(x->end - x->p - 4), "-->", 3);
            if (!e)
                return -EINVAL;
            x->p = e + 3;
        } else {
            return 0;
        }
    }
}

int sbx_s3xml_parse(const char *xml, size_t len, sbx_s3xml_cb cb, void *ud, char *ret_root)
{
    if (memchr(xml, '\0', len))
        return -EINVAL;
    struct px *x = xcalloc(1, sizeof(*x));
    x->p = xml;
    x->end = xml + len;
    sbx_buf_init(&x->text, len + 1);
    int r = 0;
    bool seen_root = false;

    if (starts(x, "\xef\xbb\xbf"))
        x->p += 3;
    if (starts(x, "<?xml")) {
        const char *e = memmem(x->p, len - (size_t)(x->p - xml), "?>", 2);
        if (!e) {
            r = -EINVAL;
            goto out;
        }
        x->p = e + 2;
    }
    r = skip_misc(x);
    if (r < 0)
        goto out;
    while (x->p < x->end) {
        if (x->depth == 0) {
            r = skip_misc(x);
            if (r < 0)
                goto out;
            if (x->p >= x->end)
                break;
            if (seen_root || *x->p != '<') {
                r = -EINVAL; /* junk or a second root */
                goto out;
            }
        }
        char c = *x->p;
        if (c != '<') {
            if (c == '&') {
                r = entity(x);
            } else {
                const char *s = x->p;
                while (x->p < x->end && *x->p != '<' && *x->p != '&')
                    x->p++;
                r = sbx_buf_append(&x->text, s, (size_t)(x->p - s));
            }
            if (r < 0)
                goto out;
            continue;
        }
        if (starts(x, "<!--")) {
            const char *e = memmem(x->p + 4, (size_t)(x->end - x->p - 4), "-->", 3);
            if (!e) {
                r = -EINVAL;
                goto out;
            }
            x->p = e + 3;
            continue;
        }
        if (starts(x, "<![CDATA[")) {
            const char *s = x->p + 9;
            const char *e = memmem(s, (size_t)(x->end - s), "]]>", 3);
            if (!e || x->depth == 0) {
                r = -EINVAL;
                goto out;
            }
            r = sbx_buf_append(&x->text, s, (size_t)(e - s));
            if (r < 0)
                goto out;
            x->p = e + 3;
            continue;
        }
        if (starts(x, "</")) {
            x->p += 2;
            char name[NAME_MAX_LEN + 1];
            r = read_name(x, name);
            if (r < 0)
                goto out;
            skip_space(x);
            if (x->p >= x->end || *x->p != '>' || x->depth == 0) {
                r = -EINVAL;
                goto out;
            }
            x->p++;
            size_t start = x->depth > 1 ? x->plen[x->depth - 1] + 1 : 0;
            if (strcmp(x->path + start, name) != 0) {
                r = -EINVAL; /* mismatched end tag */
                goto out;
            }
            if (!x->had_child[x->depth]) {
                size_t tl;
                r = sbx_buf_append(&x->text, "", 1); /* NUL */
                if (r < 0)
                    goto out;
                tl = x->text.len - 1;
                r = cb ? cb(ud, x->path, x->text.data, tl) : 0;
                if (r < 0)
                    goto out;
            }
            sbx_buf_reset(&x->text);
            x->depth--;
            x->path[x->depth ? x->plen[x->depth] : 0] = '\0';
            continue;
        }
        if (starts(x, "<!") || starts(x, "<?")) {
            r = -EINVAL; /* DTDs, processing instructions */
            goto out;
        }
        /* start tag */
        x->p++;
        char name[NAME_MAX_LEN + 1];
        r = read_name(x, name);
        if (r < 0)
            goto out;
        if (x->depth == SBX_S3XML_MAX_DEPTH) {
            r = -E2BIG;
            goto out;
        }
        int self = skip_attrs(x);
        if (self < 0) {
            r = self;
            goto out;
        }
        if (x->depth == 0) {
            seen_root = true;
            if (ret_root)
                snprintf(ret_root, NAME_MAX_LEN + 1, "%s", name);
        }
        if (x->depth > 0)
            x->had_child[x->depth] = true;
        size_t at = x->depth ? x->plen[x->depth] : 0;
        if (x->depth)
            x->path[at++] = '/';
        memcpy(x->path + at, name, strlen(name) + 1);
        x->depth++;
        x->plen[x->depth] = at + strlen(name);
        x->had_child[x->depth] = false;
        sbx_buf_reset(&x->text);
        if (self) {
            r = cb ? cb(ud, x->path, "", 0) : 0;
            if (r < 0)
                goto out;
            x->depth--;
            x->path[x->depth ? x->plen[x->depth] : 0] = '\0';
        }
    }
    if (x->depth != 0 || !seen_root)
        r = -EINVAL;
out:
    sbx_buf_free(&x->text);
    free(x);
    return r;
}
