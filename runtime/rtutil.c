/*
 * rtutil.c — shared helpers (see rtutil.h) plus the backend-independent pieces of runtime.h:
 * id validation, lexical path checks, state/reason names.
 */
#define _FILE_OFFSET_BITS 64
#include "runtime/rtutil.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/macro.h"
#include "runtime/runtime.h"

int rt_write_str(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(s);
    ssize_t n = write(fd, s, len);
    int r = n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
    close(fd);
    return r;
}

ssize_t rt_read_str(const char *path, char *buf, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t off = 0;
    while (off + 1 < len) {
        ssize_t n = read(fd, buf + off, len - 1 - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int r = -errno;
            close(fd);
            return r;
        }
        if (n == 0)
            break;
        off += (size_t)n;
    }
    buf[off] = 0;
    close(fd);
    return (ssize_t)off;
}

int rt_read_u64(const char *path, uint64_t *ret)
{
    char buf[64];
    ssize_t n = rt_read_str(path, buf, sizeof buf);
    if (n < 0)
        return (int)n;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(buf, &end, 10);
    if (errno || end == buf)
        return -EIO;
    *ret = v;
    return 0;
}

int rt_read_kv_u64(const char *path, const char *key, uint64_t *ret)
{
    char buf[4096];
    ssize_t n = rt_read_str(path, buf, sizeof buf);
    if (n < 0)
        return (int)n;
    size_t kl = strlen(key);
    for (char *l = buf; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, key, kl) == 0 && l[kl] == ' ') {
            *ret = strtoull(l + kl + 1, NULL, 10);
            return 0;
        }
    }
    return -ENOENT;
}

int rt_proc_starttime(pid_t pid, uint64_t *ret)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    ssize_t n = rt_read_str(path, buf, sizeof buf);
    if (n < 0)
        return (int)n;
    char *p = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
    if (!p || !p[1] || !p[2])
        return -EIO;
    p++;
    if (p[1] == 'Z' || p[1] == 'X')
        return -ESRCH; /* dead: a zombie is not a running sandbox */
    /* after ')' comes field 3 (state); we want field 22 */
    for (int field = 3; field < 22; field++) {
        p = strchr(p + 1, ' ');
        if (!p)
            return -EIO;
    }
    *ret = strtoull(p + 1, NULL, 10);
    return 0;
}

bool rt_proc_is_ns_init(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    if (rt_read_str(path, buf, sizeof buf) < 0)
        return false;
    char *l = strstr(buf, "\nNSpid:");
    if (!l)
        return false;
    char *e = strchr(l + 1, '\n');
    if (!e)
        return false;
    *e = 0;
    char *last = strrchr(l, '\t');
    return last && strcmp(last + 1, "1") == 0;
}

int rt_mkdir_p(const char *path, mode_t mode)
{
    char tmp[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof tmp)
        return -EINVAL;
    memcpy(tmp, path, len + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)f;
    if (flag == FTW_DP)
        return rmdir(p) < 0 && errno != ENOENT ? -1 : 0;
    return unlink(p) < 0 && errno != ENOENT ? -1 : 0;
}

int rt_rm_rf(const char *path)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
        return errno ? -errno : -EIO;
    return 0;
}

/* ---- runtime.h helpers ---- */

bool sbx_id_valid(const char *id)
{
    if (!id || !*id)
        return false;
    size_t n = 0;
    for (const char *p = id; *p; p++, n++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_') || n >= SBX_ID_MAX)
            return false;
    return true;
}

int sbx_path_check(const char *path, size_t len, char **ret)
{
    if (!path || len > SBX_PATH_MAX || memchr(path, 0, len))
        return -EINVAL;
    bool abs = len > 0 && path[0] == '/';
    char *out = xmalloc(len + 1);
    size_t olen = 0, n = 0;

    for (size_t i = 0; i < len;) {
        while (i < len && path[i] == '/')
            i++;
        size_t s = i;
        while (i < len && path[i] != '/')
            i++;
        size_t cl = i - s;
        if (cl == 0 || (cl == 1 && path[s] == '.'))
            continue;
        if (cl == 2 && path[s] == '.' && path[s + 1] == '.') {
            if (n == 0)
                goto bad; /* escapes the root (absolute) or /workspace (relative) */
            while (olen > 0 && out[olen - 1] != '/')
                olen--;
            if (olen > 0)
                olen--;
            n--;
            continue;
        }
        if (n > 0)
            out[olen++] = '/';
        memcpy(out + olen, path + s, cl);
        olen += cl;
        n++;
    }
    out[olen] = 0;
    if (abs) {
        if (n == 0 || strncmp(out, "workspace", 9) != 0 || (out[9] != 0 && out[9] != '/'))
            goto bad;
        size_t skip = out[9] ? 10 : 9;
        memmove(out, out + skip, olen - skip + 1);
    }
    if (ret)
        *ret = out;
    else
        free(out);
    return 0;
bad:
    free(out);
    return -EINVAL;
}

void sbx_dirents_free(struct sbx_dirent *d, size_t n)
{
    for (size_t i = 0; d && i < n; i++)
        free(d[i].name);
    free(d);
}

const char *sbx_state_name(enum sbx_state s)
{
    switch (s) {
    case SBX_STATE_RUNNING: return "running";
    case SBX_STATE_EXITED: return "exited";
    case SBX_STATE_STOPPED: return "stopped";
    default: return "absent";
    }
}

const char *sbx_exec_reason_name(enum sbx_exec_reason r)
{
    switch (r) {
    case SBX_EXEC_TIMEOUT: return "timeout";
    case SBX_EXEC_OOM: return "oom";
    case SBX_EXEC_SIGNALED: return "signal";
    default: return "exited";
    }
}

static int sock_dirfd = -1;

int rt_sock_dir_open(const char *state_dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/run", state_dir) >= (int)sizeof p)
        return -ENAMETOOLONG;
    int fd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (sock_dirfd >= 0 && sock_dirfd != fd)
        close(sock_dirfd);
    sock_dirfd = fd;
    return 0;
}

int rt_sock_addr(const char *state_dir, const char *id, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    int n = snprintf(sa->sun_path, sizeof sa->sun_path, RT_SOCK_FMT, state_dir, id);
    if (n >= 0 && (size_t)n < sizeof sa->sun_path)
        return 0;
    if (sock_dirfd < 0)
        return -ENAMETOOLONG;
    n = snprintf(sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/%s.sock", sock_dirfd, id);
    return n >= 0 && (size_t)n < sizeof sa->sun_path ? 0 : -ENAMETOOLONG;
}

void rt_sock_dir_forget(void)
{
    sock_dirfd = -1;
}
