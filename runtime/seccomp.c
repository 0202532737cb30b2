/*
 * seccomp.c — see seccomp.h. Filter (reference §5, verified on the target machine):
 *   - ERRNO(EPERM): mount umount2 pivot_root chroot ptrace kexec_* bpf keyctl add_key request_key
 *     unshare setns *_module perf_event_open userfaultfd open_by_handle_at, the new mount API,
 *     io_uring_setup swapon swapoff reboot acct quotactl settimeofday clock_settime, and (as in
 *     Docker without CAP_SYS_PTRACE) pidfd_getfd process_vm_readv process_vm_writev kcmp;
 *   - clone with any CLONE_NEW* flag → EPERM (one MASKED_EQ rule per flag);
 *   - clone3 → ENOSYS (glibc then falls back to clone; EPERM would break pthread_create);
 *   - ioctl TIOCSTI / TIOCLINUX compared on the low 32 bits (the kernel truncates the command);
 *   - personality: any bit outside 0x20008 (UNAME26|PER_LINUX32 allowed) → EPERM;
 *   - bad arch (int 0x80 / x32) → KILL_PROCESS.
 */
#include "runtime/seccomp.h"

#include <errno.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <unistd.h>

static const char *const deny_eperm[] = {
    "mount", "umount2", "pivot_root", "chroot", "ptrace", "kexec_load", "kexec_file_load", "bpf",
    "keyctl", "add_key", "request_key", "unshare", "setns", "init_module", "finit_module",
    "delete_module", "perf_event_open", "userfaultfd", "open_by_handle_at", "fsopen", "fsconfig",
    "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr", "io_uring_setup", "swapon",
    "swapoff", "reboot", "acct", "quotactl", "settimeofday", "clock_settime",
    "pidfd_getfd", "process_vm_readv", "process_vm_writev", "kcmp",
};

static const unsigned long clone_ns_flags[] = {
    CLONE_NEWNS, CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
    CLONE_NEWNET,
};

int rt_seccomp_build(struct rt_seccomp *ret, char *err, size_t errlen)
{
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    int r, fd = -1;
    const char *what = "seccomp_init";

    if (!ctx) {
        r = -ENOMEM;
        goto out;
    }
    what = "badarch";
    if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS)) < 0)
        goto out;
    for (size_t i = 0; i < sizeof deny_eperm / sizeof *deny_eperm; i++) {
        int nr = seccomp_syscall_resolve_name(deny_eperm[i]);
        if (nr == __NR_SCMP_ERROR)
            continue; /* unknown to this libseccomp: kernel/ABI lacks it */
        what = deny_eperm[i];
        if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) < 0)
            goto out;
    }
    what = "clone";
    for (size_t i = 0; i < sizeof clone_ns_flags / sizeof *clone_ns_flags; i++)
        if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i],
                                          clone_ns_flags[i]))) < 0)
            goto out;
    what = "clone3";
    if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0)
        goto out;
    what = "ioctl";
    if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCSTI))) < 0)
        goto out;
    if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, TIOCLINUX))) < 0)
        goto out;
    what = "personality";
    for (unsigned bit = 0; bit < 32; bit++) {
        unsigned long m = 1ul << bit;
        if (m & 0x20008ul)
            continue;
        if ((r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(personality), 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, m, m))) < 0)
            goto out;
    }

    what = "export";
    fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    if ((r = seccomp_export_bpf(ctx, fd)) < 0)
        goto out;
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % sizeof(struct sock_filter) || size / sizeof(struct sock_filter) > 4096) {
        r = -EIO;
        goto out;
    }
    struct sock_filter *insns = malloc((size_t)size);
    if (!insns)
        abort();
    if (pread(fd, insns, (size_t)size, 0) != size) {
        free(insns);
        r = -EIO;
        goto out;
    }
    ret->insns = insns;
    ret->len = (unsigned short)(size / sizeof(struct sock_filter));
    r = 0;
out:
    if (r < 0)
        snprintf(err, errlen, "seccomp filter (%s): %s", what, strerror(-r));
    if (fd >= 0)
        close(fd);
    if (ctx)
        seccomp_release(ctx);
    return r;
}

int rt_seccomp_install(const struct rt_seccomp *f)
{
    struct sock_fprog prog = { .len = f->len, .filter = f->insns };
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
        return -errno;
    return 0;
}

void rt_seccomp_free(struct rt_seccomp *f)
{
    free(f->insns);
    f->insns = NULL;
    f->len = 0;
}
