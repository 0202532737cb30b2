/*
 * spawner.c — see spawner.h.
 *
 * Process: forked from the daemon (single-threaded at that time); loop = poll(daemon socket,
 * signalfd(SIGCHLD, SIGHUP)). States: SERVING → (daemon died: PDEATHSIG SIGHUP, or EOF on the
 * socket) → REAPER: only waitpid() for the sandboxes it created, exit when none is left. So
 * sandboxes outlive the daemon and are still reaped promptly (the host PID 1 may not reap). States per create request (all inside do_create, synchronous):
 *   workspace dir → cgroups + limits → listening socket bound at run/<id>.sock → socketpair →
 *   clone3(NEWUSER|NEWPID|NEWNS|NEWIPC|NEWUTS|NEWNET, CLONE_PIDFD) → uid/gid maps →
 *   cgroup attach → "G" → wait for "R" (init running) or "E<step>" → pidfile "pid starttime".
 * Any failure undoes in reverse (kill child, reap, remove cgroups, unlink socket).
 */
#include "runtime/spawner.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "runtime/cgroup.h"
#include "runtime/contain.h"
#include "runtime/proto.h"
#include "runtime/rtutil.h"
#include "runtime/runtime.h"

#define READY_TIMEOUT_MS 10000

static int write_maps(pid_t pid, uint32_t base)
{
    char p[64], v[64];
    snprintf(v, sizeof v, "0 %u 65536\n", base);
    snprintf(p, sizeof p, "/proc/%d/uid_map", (int)pid);
    int r = rt_write_str(p, v);
    if (r < 0)
        return r;
    snprintf(p, sizeof p, "/proc/%d/gid_map", (int)pid);
    return rt_write_str(p, v);
}

static int bind_listener(const char *state_dir, const char *id, const char *path, char *err,
                         size_t errlen)
{
    struct sockaddr_un sa;
    if (rt_sock_addr(state_dir, id, &sa) < 0) {
        snprintf(err, errlen, "socket path too long (state_dir too long)");
        return -ENAMETOOLONG;
    }
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    (void)unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(path, 0600) < 0 ||
        listen(fd, 128) < 0)
        goto fail;
    return fd;
fail:;
    int r = -errno;
    if (fd >= 0)
        close(fd);
    snprintf(err, errlen, "control socket: %s", strerror(-r));
    return r;
}

static int do_create(const struct rt_spawner_cfg *cfg, const struct rt_msg *m, pid_t *ret_pid,
                     uint64_t *ret_start, char *err, size_t errlen)
{
    const char *id = m->str[0];
    char ws[512], sock[512], pidf[512], tmp[600], root[512];
    int r, listen_fd = -1, sp[2] = { -1, -1 }, pidfd = -1;
    pid_t pid = -1;
    uint64_t envc = (uint64_t)m->a[3];

    if (!sbx_id_valid(id) || envc != m->nstr - 1u) {
        snprintf(err, errlen, "invalid request");
        return -EINVAL;
    }
    snprintf(ws, sizeof ws, RT_WORKSPACE_FMT, cfg->state_dir, id);
    snprintf(sock, sizeof sock, RT_SOCK_FMT, cfg->state_dir, id);
    snprintf(pidf, sizeof pidf, RT_PIDFILE_FMT, cfg->state_dir, id);
    snprintf(root, sizeof root, RT_ROOTFS_FMT, cfg->state_dir);

    uid_t hid = cfg->uid_base + RT_SANDBOX_UID;
    if ((r = rt_mkdir_p(ws, 0711)) < 0 || (chown(ws, hid, hid) < 0 && (r = -errno)) ||
        (chmod(ws, 0755) < 0 && (r = -errno))) {
        snprintf(err, errlen, "workspace: %s", strerror(-r));
        return r;
    }
    r = rt_cg_create(cfg->prefix, id, cfg->cg_avail, cfg->memsw, (unsigned)m->a[0],
                     (uint64_t)m->a[1], (unsigned)m->a[2], err, errlen);
    if (r < 0)
        goto out_cgroups;
    listen_fd = bind_listener(cfg->state_dir, id, sock, err, errlen);
    if (listen_fd < 0) {
        r = listen_fd;
        goto out_cgroups;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
        r = -errno;
        snprintf(err, errlen, "socketpair: %s", strerror(-r));
        goto out_socket;
    }

    struct clone_args ca = {
        .flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS |
                 CLONE_NEWNET | CLONE_PIDFD,
        .pidfd = (uint64_t)(uintptr_t)&pidfd,
        .exit_signal = SIGCHLD,
    };
    pid = (pid_t)syscall(SYS_clone3, &ca, sizeof ca);
    if (pid < 0) {
        r = -errno;
        snprintf(err, errlen, "clone3: %s", strerror(-r));
        goto out_socket;
    }
    if (pid == 0) {
        char *argv[] = { (char *)"sandboxd-init", NULL };
        char *envp[RT_NSTR_MAX + 1];
        for (uint64_t i = 0; i < envc; i++)
            envp[i] = (char *)m->str[1 + i];
        envp[envc] = NULL;
        struct rt_contain_args a = {
            .sync_fd = sp[1],
            .listen_fd = listen_fd,
            .init_fd = cfg->init_fd,
            .fs = { .root_dir = root, .workspace = ws, .tmp_size = cfg->tmp_size,
                    .cgroup_view = cfg->cgroup_view },
            .filter = &cfg->filter,
            .init_argv = argv,
            .init_envp = envp,
        };
        close(sp[0]);
        rt_contain_child(&a);
    }
    close(sp[1]);
    sp[1] = -1;

    if ((r = write_maps(pid, cfg->uid_base)) < 0) {
        snprintf(err, errlen, "id maps: %s", strerror(-r));
        goto out_kill;
    }
    if ((r = rt_cg_attach(cfg->prefix, id, cfg->cg_avail, pid, err, errlen)) < 0)
        goto out_kill;
    if (write(sp[0], "G", 1) != 1) {
        r = -errno;
        snprintf(err, errlen, "sync: %s", strerror(-r));
        goto out_kill;
    }
    struct pollfd pfd = { .fd = sp[0], .events = POLLIN };
    r = poll(&pfd, 1, READY_TIMEOUT_MS);
    if (r <= 0) {
        r = r == 0 ? -ETIMEDOUT : -errno;
        snprintf(err, errlen, "init did not become ready: %s", strerror(-r));
        goto out_kill;
    }
    char msg[200];
    ssize_t n = read(sp[0], msg, sizeof msg - 1);
    if (n <= 0) {
        r = -EIO;
        snprintf(err, errlen, "sandbox init exited during set-up");
        goto out_kill;
    }
    msg[n] = 0;
    if (msg[0] != 'R') {
        r = -EIO;
        snprintf(err, errlen, "sandbox set-up failed at %s", msg[0] == 'E' ? msg + 1 : "?");
        goto out_kill;
    }
    uint64_t st = 0;
    if ((r = rt_proc_starttime(pid, &st)) < 0) {
        snprintf(err, errlen, "starttime: %s", strerror(-r));
        goto out_kill;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", pidf);
    int pf = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (pf < 0 || dprintf(pf, "%d %llu\n", (int)pid, (unsigned long long)st) < 0 ||
        close(pf) < 0 || rename(tmp, pidf) < 0) {
        r = -errno;
        snprintf(err, errlen, "pidfile: %s", strerror(-r));
        goto out_kill;
    }
    close(sp[0]);
    close(listen_fd);
    close(pidfd);
    *ret_pid = pid;
    *ret_start = st;
    return 0;

out_kill:
    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    close(pidfd);
out_socket:
    if (sp[0] >= 0)
        close(sp[0]);
    if (sp[1] >= 0)
        close(sp[1]);
    if (listen_fd >= 0)
        close(listen_fd);
    unlink(sock);
out_cgroups:
    rt_cg_remove(cfg->prefix, id, 1000);
    return r;
}

/* The daemon is gone: stay alive only as the reaper of the sandboxes we created, so that their
 * exit is collected promptly (the host PID 1 may never reap), then exit. */
static _Noreturn void reaper_mode(int sock)
{
    close(sock);
    prctl(PR_SET_NAME, "sbx-reaper");
    for (;;) {
        if (waitpid(-1, NULL, 0) < 0 && errno == ECHILD)
            _exit(0);
    }
}

static _Noreturn void spawner_main(const struct rt_spawner_cfg *cfg, int sock, pid_t parent)
{
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGCHLD);
    sigaddset(&ss, SIGHUP);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    if (prctl(PR_SET_PDEATHSIG, SIGHUP) < 0 || getppid() != parent)
        reaper_mode(sock);
    prctl(PR_SET_NAME, "sbx-spawner");
    /* keep stdio, our socket and the init fd; everything else belongs to the daemon */
    int keep_lo = MIN(sock, cfg->init_fd), keep_hi = MAX(sock, cfg->init_fd);
    if (keep_lo > 3)
        syscall(SYS_close_range, 3, keep_lo - 1, 0);
    if (keep_hi > keep_lo + 1)
        syscall(SYS_close_range, keep_lo + 1, keep_hi - 1, 0);
    syscall(SYS_close_range, keep_hi + 1, ~0U, 0);
    /* The daemon's directory fd for socket addresses went with the close_range: reopen ours. */
    rt_sock_dir_forget();
    (void)rt_sock_dir_open(cfg->state_dir);

    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
    char *buf = xmalloc(RT_MSG_MAX);
    struct rt_msg *m = xmalloc(sizeof *m);

    for (;;) {
        struct pollfd p[2] = { { .fd = sock, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        if (p[1].revents) {
            struct signalfd_siginfo si;
            bool hup = false;
            while (read(sfd, &si, sizeof si) > 0)
                hup |= si.ssi_signo == SIGHUP;
            while (waitpid(-1, NULL, WNOHANG) > 0)
                ;
            if (hup)
                reaper_mode(sock);
        }
        if (!p[0].revents)
            continue;
        int r = rt_msg_recv(sock, buf, m);
        if (r == 0 || (r < 0 && r != -EAGAIN && r != -EBADMSG))
            reaper_mode(sock);
        if (r < 0)
            continue;
        rt_msg_close_fds(m);
        if (m->type != RT_M_CREATE || m->nstr < 1)
            continue;
        char err[512] = "";
        pid_t pid = 0;
        uint64_t st = 0;
        r = do_create(cfg, m, &pid, &st, err, sizeof err);
        int64_t a[RT_NARG] = { r, pid, (int64_t)st };
        const char *strs[] = { err };
        if (rt_msg_send(sock, RT_M_CREATED, a, strs, 1, NULL, 0) < 0)
            reaper_mode(sock);
    }
}

int rt_spawner_start(const struct rt_spawner_cfg *cfg, struct rt_spawner *ret)
{
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
        return -errno;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(sp[0]);
        close(sp[1]);
        return r;
    }
    if (pid == 0) {
        close(sp[0]);
        spawner_main(cfg, sp[1], parent);
    }
    close(sp[1]);
    ret->sock = sp[0];
    ret->pid = pid;
    pthread_mutex_init(&ret->lock, NULL);
    return 0;
}

int rt_spawner_create(struct rt_spawner *sp, const char *id, unsigned cpus_milli, uint64_t memory,
                      unsigned pids_max, const char *const *env, pid_t *ret_pid, char *err,
                      size_t errlen)
{
    const char *strs[RT_NSTR_MAX];
    size_t n = 0;
    strs[n++] = id;
    for (size_t i = 0; env && env[i]; i++) {
        if (n >= RT_NSTR_MAX) {
            snprintf(err, errlen, "too many environment variables");
            return -E2BIG;
        }
        strs[n++] = env[i];
    }
    int64_t a[RT_NARG] = { cpus_milli, (int64_t)memory, pids_max, (int64_t)(n - 1) };
    char *buf = xmalloc(RT_MSG_MAX);
    struct rt_msg *m = xmalloc(sizeof *m);
    int r;

    pthread_mutex_lock(&sp->lock);
    r = rt_msg_send(sp->sock, RT_M_CREATE, a, strs, n, NULL, 0);
    if (r == -E2BIG) {
        snprintf(err, errlen, "environment too large");
        goto out;
    }
    if (r < 0) {
        snprintf(err, errlen, "spawner unavailable: %s", strerror(-r));
        r = -EIO;
        goto out;
    }
    for (;;) {
        r = rt_msg_recv(sp->sock, buf, m);
        if (r == -EBADMSG)
            continue;
        break;
    }
    if (r <= 0) {
        snprintf(err, errlen, "spawner unavailable");
        r = -EIO;
        goto out;
    }
    rt_msg_close_fds(m);
    if (m->type != RT_M_CREATED || m->nstr != 1) {
        snprintf(err, errlen, "spawner protocol error");
        r = -EIO;
        goto out;
    }
    r = (int)m->a[0];
    if (r < 0)
        snprintf(err, errlen, "%s", m->str[0]);
    else
        *ret_pid = (pid_t)m->a[1];
out:
    pthread_mutex_unlock(&sp->lock);
    free(buf);
    free(m);
    return r;
}

void rt_spawner_stop(struct rt_spawner *sp)
{
    if (sp->sock >= 0)
        close(sp->sock);
    sp->sock = -1;
    /* The spawner now reaps its sandboxes until the last one exits (reaper_mode), so do not
     * wait for it; collect it if it is already gone. */
    if (sp->pid > 0)
        (void)waitpid(sp->pid, NULL, WNOHANG);
    sp->pid = 0;
    pthread_mutex_destroy(&sp->lock);
}
