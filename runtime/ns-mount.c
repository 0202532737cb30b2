/*
 * ns-mount.c — the root filesystem of a sandbox (reference §2, order verified):
 *   1. / → MS_REC|MS_PRIVATE
 *   2. tmpfs on root_dir (nosuid,nodev, 16m); dirs usr etc workspace tmp proc dev; symlinks
 *      bin lib lib64 sbin → usr/...
 *   3. /usr and /etc: rbind, then remount ro repeating the source's locked nosuid/nodev/noexec
 *   4. generated /etc/passwd and /etc/group (root, sandbox=1000, nobody) bound read-only
 *   5. /workspace: bind of the host dir, remount nosuid,nodev
 *   6. /tmp tmpfs mode 1777; /proc (hidepid=invisible); /dev tmpfs with bound device nodes,
 *      devpts newinstance, /dev/shm, then /dev read-only; with cgroup_view only: the memory,
 *      cpuacct (when the host has it) and pids hierarchies mounted read-only at
 *      /sys/fs/cgroup/<name> — in the sandbox's cgroup namespace their root is its own cgroup
 *   7. pivot_root(".", "."), detach the old root, remount / read-only
 * Runs only in the contain child; allocation-free apart from snprintf on the stack.
 */
#include "runtime/ns-mount.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TRY(name, expr)                                                                           \
    do {                                                                                          \
        *step = (name);                                                                           \
        if ((expr) < 0)                                                                           \
            return -errno;                                                                        \
    } while (0)

static unsigned long locked_flags(const char *src)
{
    struct statvfs sv;
    unsigned long f = 0;
    if (statvfs(src, &sv) < 0)
        return MS_NOSUID | MS_NODEV;
    if (sv.f_flag & ST_NOSUID)
        f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV)
        f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC)
        f |= MS_NOEXEC;
    return f;
}

static int bind_ro(const char *src, const char *dst, unsigned long extra, const char **step)
{
    TRY(dst, mount(src, dst, NULL, MS_BIND | MS_REC, NULL));
    TRY(dst, mount(NULL, dst, NULL,
                   MS_BIND | MS_REMOUNT | MS_RDONLY | extra | locked_flags(src), NULL));
    return 0;
}

static int write_file(const char *path, const char *content)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t len = strlen(content);
    ssize_t n = write(fd, content, len);
    close(fd);
    if (n != (ssize_t)len) {
        errno = EIO;
        return -1;
    }
    return 0;
}

static int touch(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

int rt_rootfs_open(const struct rt_rootfs *fs, struct rt_rootfs_fds *ret)
{
    char parent[4096];
    const char *slash = strrchr(fs->root_dir, '/');
    size_t n = slash ? (size_t)(slash - fs->root_dir) : 0;
    if (!slash || n >= sizeof parent || !slash[1])
        return -EINVAL;
    memcpy(parent, fs->root_dir, n);
    parent[n ? n : 1] = '\0';
    if (!n)
        parent[0] = '/';
    int pfd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (pfd < 0)
        return -errno;
    int wfd = open(fs->workspace, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (wfd < 0) {
        int r = -errno;
        close(pfd);
        return r;
    }
    *ret = (struct rt_rootfs_fds){ .root_parent_fd = pfd, .root_name = slash + 1,
                                   .workspace_fd = wfd };
    return 0;
}

int rt_rootfs_setup(const struct rt_rootfs *fs, const struct rt_rootfs_fds *fds,
                    const char **step)
{
    char opts[64], ws_src[40];
    static const char *const devs[] = { "null", "zero", "full", "random", "urandom", "tty" };

    TRY("private", mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL));
    TRY("chdir state", fchdir(fds->root_parent_fd));
    TRY("root tmpfs", mount("tmpfs", fds->root_name, "tmpfs", MS_NOSUID | MS_NODEV,
                            "size=16m,mode=0755"));
    TRY("chdir root", chdir(fds->root_name));
    static const char *const dirs[] = { "usr", "etc", "workspace", "tmp", "proc", "dev", ".gen" };
    for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++)
        TRY("mkdir", mkdir(dirs[i], 0755));
    TRY("symlink", symlink("usr/bin", "bin"));
    TRY("symlink", symlink("usr/sbin", "sbin"));
    TRY("symlink", symlink("usr/lib", "lib"));
    if (access("/lib64", F_OK) == 0)
        TRY("symlink", symlink("usr/lib64", "lib64"));

    int r;
    if ((r = bind_ro("/usr", "usr", MS_NODEV, step)) < 0)
        return r;
    if ((r = bind_ro("/etc", "etc", MS_NOSUID | MS_NODEV, step)) < 0)
        return r;

    TRY("passwd", write_file(".gen/passwd",
                             "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                             "sandbox:x:1000:1000:sandbox:/workspace:/bin/sh\n"
                             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"));
    TRY("group", write_file(".gen/group", "root:x:0:\nsandbox:x:1000:\nnogroup:x:65534:\n"));
    if (access("etc/passwd", F_OK) == 0)
        if ((r = bind_ro(".gen/passwd", "etc/passwd", MS_NOSUID | MS_NODEV, step)) < 0)
            return r;
    if (access("etc/group", F_OK) == 0)
        if ((r = bind_ro(".gen/group", "etc/group", MS_NOSUID | MS_NODEV, step)) < 0)
            return r;

    snprintf(ws_src, sizeof ws_src, "/proc/self/fd/%d", fds->workspace_fd);
    TRY("workspace bind", mount(ws_src, "workspace", NULL, MS_BIND, NULL));
    TRY("workspace remount", mount(NULL, "workspace", NULL,
                                   MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV |
                                       locked_flags("workspace"), NULL));

    snprintf(opts, sizeof opts, "size=%llu,mode=1777", (unsigned long long)fs->tmp_size);
    TRY("tmp", mount("tmpfs", "tmp", "tmpfs", MS_NOSUID | MS_NODEV, opts));
    TRY("proc", mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      "hidepid=invisible"));

    TRY("dev tmpfs", mount("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755"));
    for (size_t i = 0; i < sizeof devs / sizeof *devs; i++) {
        char src[32], dst[32];
        snprintf(src, sizeof src, "/dev/%s", devs[i]);
        snprintf(dst, sizeof dst, "dev/%s", devs[i]);
        TRY("dev node", touch(dst));
        TRY("dev bind", mount(src, dst, NULL, MS_BIND, NULL));
    }
    TRY("dev pts", mkdir("dev/pts", 0755));
    TRY("devpts", mount("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                        "newinstance,ptmxmode=0666,mode=0620"));
    TRY("dev shm", mkdir("dev/shm", 0755));
    TRY("shm", mount("tmpfs", "dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts));
    TRY("dev links", symlink("pts/ptmx", "dev/ptmx"));
    TRY("dev links", symlink("/proc/self/fd", "dev/fd"));
    TRY("dev links", symlink("/proc/self/fd/0", "dev/stdin"));
    TRY("dev links", symlink("/proc/self/fd/1", "dev/stdout"));
    TRY("dev links", symlink("/proc/self/fd/2", "dev/stderr"));
    TRY("dev ro", mount(NULL, "dev", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC,
                        NULL));

    if (fs->cgroup_view) {
        static const char *const cgs[] = { "memory", "cpuacct", "pids" };
        TRY("sys", mkdir("sys", 0755));
        TRY("sys", mkdir("sys/fs", 0755));
        TRY("sys", mkdir("sys/fs/cgroup", 0755));
        for (size_t i = 0; i < sizeof cgs / sizeof *cgs; i++) {
            char dst[32];
            snprintf(dst, sizeof dst, "sys/fs/cgroup/%s", cgs[i]);
            TRY("cgroup view", mkdir(dst, 0755));
            /* cpuacct is optional on the host (local.h: degraded), memory and pids are not */
            if (mount("cgroup", dst, "cgroup", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                      cgs[i]) < 0 && strcmp(cgs[i], "cpuacct") != 0) {
                *step = "cgroup view";
                return -errno;
            }
        }
    }

    TRY("pivot_root", syscall(SYS_pivot_root, ".", "."));
    TRY("detach old root", umount2(".", MNT_DETACH));
    close(fds->root_parent_fd);
    close(fds->workspace_fd);
    TRY("chdir /", chdir("/"));
    /* the generated files stay alive through their bind mounts */
    unlink("/.gen/passwd");
    unlink("/.gen/group");
    rmdir("/.gen");
    TRY("root ro", mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV,
                         NULL));
    return 0;
}
