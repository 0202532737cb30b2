/*
 * tar.h — a strict streaming tar reader for HOSTILE archives, and a small writer.
 *
 * Knows nothing about Kubernetes. The reader is push-based: feed it bytes as they arrive
 * (any chunking), it calls back once per accepted entry and for its data, and it refuses —
 * with one human line in sbx_tar_reader_error() and a -errno — anything that is not a plain
 * file or directory strictly under the requested path:
 *
 *   -EBADMSG  malformed: bad checksum, bad numeric field, not ustar/pax/gnu magic, truncated
 *             archive (finish() before the end-of-archive marker), data after the end marker,
 *             bad pax record, base-256 numbers
 *   -EPERM    refused by policy: absolute name, `..` or `.` or empty component, NUL byte in a
 *             name, entry outside the requested path, symlink, hardlink, device, FIFO,
 *             contiguous/sparse/multi-volume/other GNU types, pax global headers, setuid or
 *             setgid bits, an entry under a non-directory, a file over a directory
 *   -EEXIST   duplicate entry
 *   -E2BIG    over a limit: name length, component length, depth, entry size, total size,
 *             entry count, pax header size
 *   other     whatever a callback returned (passed through unchanged)
 *
 * After the first error every later feed()/finish() returns the same error. Nothing is ever
 * written anywhere by the reader itself: the callbacks decide what to do with the bytes.
 * Not thread-safe; one owner.
 *
 * Accepted formats: POSIX ustar ("ustar\0" "00"), pax extended headers ('x': path, size,
 * mtime; linkpath is ignored because links are refused; GNU.sparse.* refused), and GNU tar's
 * default format ("ustar  \0", with 'L' long names) because that is what `tar -c` writes on
 * most images.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_TAR_BLOCK 512

struct sbx_tar_limits {
    uint64_t max_entry_size;   /* bytes of one file (0 = 1 GiB) */
    uint64_t max_total_size;   /* bytes of all files (0 = 1 GiB) */
    unsigned max_entries;      /* 0 = 10000 */
    size_t max_name;           /* bytes of a full name (0 = 4096) */
};

struct sbx_tar_entry {
    const char *name;          /* normalised full name ("a/b", no "./", no trailing "/") */
    const char *rel;           /* name relative to the requested root ("" = the root itself) */
    char type;                 /* 'f' regular file, 'd' directory */
    uint64_t size;             /* 0 for directories */
    unsigned mode;             /* permission bits & 01777 (setuid/setgid are refused) */
    int64_t mtime;             /* unix seconds */
};

struct sbx_tar_ops {
    /* An entry was accepted; data() follows for files (possibly zero times), then end(). */
    int (*entry)(void *ud, const struct sbx_tar_entry *e);
    int (*data)(void *ud, const void *p, size_t n);
    int (*end)(void *ud, const struct sbx_tar_entry *e);
};

struct sbx_tar_reader;

/* root: the requested path, relative ("dir/file"); every entry must be it or under it.
 * NULL or "" accepts any (safe) relative name. lim may be NULL (defaults). ops may be NULL
 * (validate only). */
struct sbx_tar_reader *sbx_tar_reader_new(const char *root, const struct sbx_tar_limits *lim,
                                          const struct sbx_tar_ops *ops, void *ud);
int sbx_tar_reader_feed(struct sbx_tar_reader *r, const void *data, size_t len);
/* The input ended: 0 only if the end-of-archive marker was seen. */
int sbx_tar_reader_finish(struct sbx_tar_reader *r);
const char *sbx_tar_reader_error(const struct sbx_tar_reader *r);
unsigned sbx_tar_reader_entries(const struct sbx_tar_reader *r);
void sbx_tar_reader_free(struct sbx_tar_reader *r);

/* ---- writer ---- */

/* Header block(s) for one entry: a pax 'x' header first when the name is longer than 100
 * bytes, then a ustar header. type 'f' or 'd'. name: relative, no "..", no NUL, checked like
 * the reader checks it. *ret is malloc'ed (a multiple of 512 bytes). -EINVAL bad name/type. */
int sbx_tar_write_header(const char *name, char type, unsigned mode, uint64_t size,
                         int64_t mtime, char **ret, size_t *ret_len);
/* Zero bytes that must follow `size` bytes of file data. */
static inline size_t sbx_tar_padding(uint64_t size)
{
    return (size_t)((SBX_TAR_BLOCK - size % SBX_TAR_BLOCK) % SBX_TAR_BLOCK);
}
/* The end-of-archive marker: two zero blocks. */
#define SBX_TAR_END_LEN (2 * SBX_TAR_BLOCK)
