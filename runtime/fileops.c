/*
 * fileops.c — see fileops.h. Requests (proto.h): r (open for read), w (create/truncate, optional
 * mkdir -p of parents), l (open directory), m (mkdir -p). Each reply is F a0=0|-errno [fd].
 * The process is a short-lived child of the init; it _exits after the reply.
 */
#include "runtime/fileops.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/runtime.h"

#define RESOLVE_FLAGS (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

int rt_relpath_ok(const char *rel)
{
    size_t len = strlen(rel);
    if (len > SBX_PATH_MAX || rel[0] == '/')
        return 0;
    if (len == 0)
        return 1;
    for (const char *p = rel;;) {
        const char *e = strchr(p, '/');
        size_t cl = e ? (size_t)(e - p) : strlen(p);
        if (cl == 0 || (cl == 1 && p[0] == '.') || (cl == 2 && p[0] == '.' && p[1] == '.'))
            return 0;
        if (!e)
            return 1;
        p = e + 1;
    }
}

static int oa2(int dirfd, const char *path, uint64_t flags, uint64_t mode)
{
    struct open_how how = { .flags = flags, .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
                            .resolve = RESOLVE_FLAGS };
    for (int i = 0; i < 16; i++) {
        long fd = syscall(SYS_openat2, dirfd, *path ? path : ".", &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
    }
    return -EAGAIN;
}

/* mkdir -p of rel (all components when last, else all but the last) below ws. */
static int mkdirs(int ws, const char *rel, mode_t mode, int include_last)
{
    char buf[SBX_PATH_MAX + 1];
    size_t len = strlen(rel);
    memcpy(buf, rel, len + 1);
    for (size_t i = 0; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        if (buf[i] == 0 && !include_last)
            break;
        char saved = buf[i];
        buf[i] = 0;
        /* resolve the parent safely, then mkdirat the last name */
        char *slash = strrchr(buf, '/');
        int pfd;
        const char *name;
        if (slash) {
            *slash = 0;
            pfd = oa2(ws, buf, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
            *slash = '/';
            name = slash + 1;
        } else {
            pfd = oa2(ws, "", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
            name = buf;
        }
        if (pfd < 0)
            return pfd;
        int r = mkdirat(pfd, name, mode) < 0 && errno != EEXIST ? -errno : 0;
        close(pfd);
        if (r < 0)
            return r;
        buf[i] = saved;
        if (saved == 0)
            break;
    }
    /* the whole chain must now resolve to a directory beneath the workspace */
    if (include_last) {
        int fd = oa2(ws, rel, O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
        if (fd < 0)
            return fd;
        close(fd);
    }
    return 0;
}

static _Noreturn void reply(int conn, int r, uint64_t size, int fd)
{
    int64_t a[RT_NARG] = { r, (int64_t)size };
    rt_msg_send(conn, RT_M_FILE, a, NULL, 0, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
    _exit(0);
}

_Noreturn void rt_fileop_child(int conn, const struct rt_msg *m)
{
    if (m->nstr != 1 || !rt_relpath_ok(m->str[0]))
        reply(conn, -EINVAL, 0, -1);
    const char *rel = m->str[0];
    int ws = open("/workspace", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (ws < 0)
        reply(conn, -errno, 0, -1);
    struct stat st;
    int fd, r;

    switch (m->type) {
    case RT_M_READ:
        fd = oa2(ws, rel, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
        if (fd < 0)
            reply(conn, fd, 0, -1);
        if (fstat(fd, &st) < 0)
            reply(conn, -errno, 0, -1);
        if (S_ISDIR(st.st_mode))
            reply(conn, -EISDIR, 0, -1);
        if (!S_ISREG(st.st_mode))
            reply(conn, -EINVAL, 0, -1);
        fcntl(fd, F_SETFL, 0);
        reply(conn, 0, (uint64_t)st.st_size, fd);
    case RT_M_WRITE: {
        mode_t mode = (mode_t)m->a[0] & 01777;
        if (!*rel)
            reply(conn, -EISDIR, 0, -1);
        if ((m->a[1] & SBX_WRITE_MKDIRS) && (r = mkdirs(ws, rel, 0755, 0)) < 0)
            reply(conn, r, 0, -1);
        fd = oa2(ws, rel, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode);
        if (fd < 0)
            reply(conn, fd, 0, -1);
        if (fstat(fd, &st) < 0)
            reply(conn, -errno, 0, -1);
        if (!S_ISREG(st.st_mode))
            reply(conn, -EINVAL, 0, -1);
        if (ftruncate(fd, 0) < 0 || fchmod(fd, mode) < 0)
            reply(conn, -errno, 0, -1);
        fcntl(fd, F_SETFL, 0);
        reply(conn, 0, 0, fd);
    }
    case RT_M_LISTDIR:
        fd = oa2(ws, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
        reply(conn, fd < 0 ? fd : 0, 0, fd);
    case RT_M_MKDIR:
        r = mkdirs(ws, rel, (mode_t)m->a[0] & 01777, 1);
        reply(conn, r, 0, -1);
    default:
        reply(conn, -EINVAL, 0, -1);
    }
}
