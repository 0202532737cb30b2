/*
 * contain.c — see contain.h. Order (reference §1, §2, §5; every step verified):
 *   wait for "G" (the spawner wrote uid_map/gid_map and attached the cgroups)
 *   → setgroups(0), setresgid(0), setresuid(0)  (become the mapped ns root)
 *   → unshare(CLONE_NEWCGROUP)                   (after the attach: cgroup view is "/")
 *   → root filesystem + pivot_root               (ns-mount.c)
 *   → sethostname, bring lo up
 *   → stdio = /dev/null inside, fds 3/4/5 arranged, close_range(6..)
 *   → drop privileges + no_new_privs (caps.c) → seccomp (seccomp.c)
 *   → execveat(init_fd, "", AT_EMPTY_PATH)
 * Runs in a fork-like clone3 child of the single-threaded spawner; no locks are held, so libc is
 * usable, but the path stays allocation-light.
 */
#include "runtime/contain.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <grp.h>

#include "runtime/caps.h"

#define MIN_(a, b) ((a) < (b) ? (a) : (b))

static _Noreturn void fail(int sync_fd, const char *step, int err)
{
    char msg[256];
    int n = snprintf(msg, sizeof msg, "E%s: %s", step, strerror(err));
    if (n > 0)
        (void)!write(sync_fd, msg, (size_t)MIN_(n, (int)sizeof msg - 1));
    _exit(127);
}
static int lo_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "lo");
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int saved = errno;
    close(s);
    errno = saved;
    return r;
}

/* Move fd to target, clearing CLOEXEC unless cloexec. Works when fd == target. */
static int place(int fd, int target, int cloexec)
{
    if (fd == target)
        return fcntl(fd, F_SETFD, cloexec ? FD_CLOEXEC : 0);
    return dup3(fd, target, cloexec ? O_CLOEXEC : 0);
}

_Noreturn void rt_contain_child(const struct rt_contain_args *a)
{
    int sync_fd = a->sync_fd;
    const char *step = "sync";
    char c;
    ssize_t n;

    do
        n = read(sync_fd, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1 || c != 'G')
        _exit(127); /* the spawner gave up on us */

    /* Resolve the host directories while our fsuid is still the host root's. */
    struct rt_rootfs_fds fds;
    int r = rt_rootfs_open(&a->fs, &fds);
    if (r < 0)
        fail(sync_fd, "open state dirs", -r);
    if (setgroups(0, NULL) < 0)
        fail(sync_fd, "setgroups(0)", errno);
    if (setresgid(0, 0, 0) < 0)
        fail(sync_fd, "setresgid(0)", errno);
    if (setresuid(0, 0, 0) < 0)
        fail(sync_fd, "setresuid(0)", errno);
    if (unshare(CLONE_NEWCGROUP) < 0)
        fail(sync_fd, "unshare(cgroup)", errno);

    r = rt_rootfs_setup(&a->fs, &fds, &step);
    if (r < 0)
        fail(sync_fd, step, -r);
    if (sethostname("sandbox", 7) < 0)
        fail(sync_fd, "sethostname", errno);
    if (lo_up() < 0)
        fail(sync_fd, "lo up", errno);

    /* stdio: the daemon's stdio must not leak in (reference §7) */
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null < 0)
        fail(sync_fd, "open /dev/null", errno);
    /* move the three fds we keep out of the way first, then into place */
    int l = fcntl(a->listen_fd, F_DUPFD_CLOEXEC, 100);
    int s = fcntl(sync_fd, F_DUPFD_CLOEXEC, 100);
    int i = fcntl(a->init_fd, F_DUPFD_CLOEXEC, 100);
    if (l < 0 || s < 0 || i < 0)
        fail(sync_fd, "dup", errno);
    sync_fd = s;
    if (dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
        fail(sync_fd, "stdio", errno);
    if (place(l, RT_INIT_LISTEN_FD, 0) < 0 || place(s, RT_INIT_SYNC_FD, 0) < 0 ||
        place(i, 5, 1) < 0)
        fail(sync_fd, "fd layout", errno);
    sync_fd = RT_INIT_SYNC_FD;
    if (syscall(SYS_close_range, 6, ~0U, 0) < 0)
        fail(sync_fd, "close_range", errno);

    r = rt_drop_privileges(RT_SANDBOX_UID, RT_SANDBOX_UID, &step);
    if (r < 0)
        fail(sync_fd, step, -r);
    r = rt_seccomp_install(a->filter);
    if (r < 0)
        fail(sync_fd, "seccomp", -r);

    syscall(SYS_execveat, 5, "", a->init_argv, a->init_envp, AT_EMPTY_PATH);
    fail(sync_fd, "exec init", errno);
}
