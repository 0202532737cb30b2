/*
 * local.c — the local backend's vtable (daemon side; any worker thread).
 *
 * Owns: the spawner handle (create), per-sandbox host state derived from the id (socket,
 * pidfile, cgroups, workspace). Holds no per-sandbox memory: after a daemon restart a new runtime
 * object sees exactly the same things (list/status scan the host), which is what makes recovery
 * trivial — every exec and file op opens its own connection to run/<id>.sock.
 *
 * Exec: connect → X (+ pipe ends) → S(pid[, pty master]) → later E(code, signal). The ctl fd is
 * that connection. oom = memory.oom_control oom_kill grew between start and exit.
 * Destroy: pidfd_open(init) (verified by start time) → cgroup.kill (unified) + pidfd SIGKILL →
 * wait for exit (pidfd POLLIN) → rmdir cgroups (retry EBUSY) → unlink socket/pidfile
 * [→ rm -rf sandboxes/<id>].
 */
#include "runtime/local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "common/macro.h"
#include "runtime/cgroup.h"
#include "runtime/proto.h"
#include "runtime/rtutil.h"
#include "runtime/spawner.h"

#ifndef SBX_INIT_PATH
#define SBX_INIT_PATH "/usr/libexec/sandboxd/sandboxd-init"
#endif

struct local {
    char *state_dir;
    char *prefix;
    uint32_t uid_base;
    unsigned cg_avail;
    unsigned degraded;
    struct rt_spawner sp;
    struct rt_spawner_cfg cfg;
};

struct lexec {
    int64_t oom_before;
    bool done;
    struct sbx_exec_result res;
    char id[SBX_ID_MAX + 1];
    struct local *l;
};

static const struct sbx_runtime_ops local_ops;

static struct local *L(struct sbx_runtime *rt)
{
    return rt->priv;
}

/* ---- host state ---- */

static int read_pidfile(struct local *l, const char *id, pid_t *pid, uint64_t *st)
{
    char p[512], buf[128];
    snprintf(p, sizeof p, RT_PIDFILE_FMT, l->state_dir, id);
    ssize_t n = rt_read_str(p, buf, sizeof buf);
    if (n < 0)
        return (int)n;
    int ipid;
    unsigned long long s;
    if (sscanf(buf, "%d %llu", &ipid, &s) != 2 || ipid <= 1)
        return -EIO;
    *pid = ipid;
    *st = s;
    return 0;
}

/* pidfd of the verified live init, or -ENOENT */
static int open_init(struct local *l, const char *id, pid_t *ret_pid)
{
    pid_t pid = 0;
    uint64_t st = 0, now = 0;
    int r = read_pidfile(l, id, &pid, &st);
    if (r < 0)
        return -ENOENT;
    int fd = pidfd_open(pid, 0);
    if (fd < 0)
        return -ENOENT;
    /* opened first, then verified: the pidfd cannot be recycled under us */
    if (rt_proc_starttime(pid, &now) < 0 || now != st || !rt_proc_is_ns_init(pid)) {
        close(fd);
        return -ENOENT;
    }
    if (ret_pid)
        *ret_pid = pid;
    return fd;
}

static int local_status(struct sbx_runtime *rt, const char *id, enum sbx_state *ret, pid_t *ret_pid)
{
    struct local *l = L(rt);
    if (!sbx_id_valid(id))
        return -EINVAL;
    pid_t pid = 0;
    int fd = open_init(l, id, &pid);
    enum sbx_state s;
    char p[512];
    if (fd >= 0) {
        close(fd);
        s = SBX_STATE_RUNNING;
    } else {
        pid = 0;
        snprintf(p, sizeof p, RT_PIDFILE_FMT, l->state_dir, id);
        if (rt_cg_exists(l->prefix, id) || access(p, F_OK) == 0)
            s = SBX_STATE_EXITED;
        else {
            snprintf(p, sizeof p, RT_SBXDIR_FMT, l->state_dir, id);
            s = access(p, F_OK) == 0 ? SBX_STATE_STOPPED : SBX_STATE_ABSENT;
        }
    }
    *ret = s;
    if (ret_pid)
        *ret_pid = pid;
    return 0;
}

static int local_create(struct sbx_runtime *rt, const struct sbx_sandbox_spec *spec, char *err,
                        size_t errlen)
{
    struct local *l = L(rt);
    enum sbx_state s;
    if (!spec || !sbx_id_valid(spec->id)) {
        snprintf(err, errlen, "invalid sandbox id");
        return -EINVAL;
    }
    int r = local_status(rt, spec->id, &s, NULL);
    if (r < 0)
        return r;
    if (s == SBX_STATE_RUNNING)
        return 0;
    if (s == SBX_STATE_EXITED) {
        /* leftovers of a dead sandbox: clean them, keep the workspace */
        r = rt->ops->stop(rt, spec->id);
        if (r < 0) {
            snprintf(err, errlen, "cleaning up a previous instance failed: %s", strerror(-r));
            return -EIO;
        }
    }
    /* default env first, spec env after (later entries win in the init's merge? no: the init
     * keeps its environ as the base, so resolve duplicates here: spec overrides defaults) */
    static const char *const defaults[] = {
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME=/workspace", "USER=sandbox", "LOGNAME=sandbox", "LANG=C.UTF-8",
        "SHELL=/bin/sh", "HOSTNAME=sandbox",
    };
    size_t nspec = 0;
    while (spec->env && spec->env[nspec])
        nspec++;
    const char **env = xcalloc(ARRAY_SIZE(defaults) + nspec + 1, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < ARRAY_SIZE(defaults); i++) {
        size_t kl = (size_t)(strchr(defaults[i], '=') - defaults[i]) + 1;
        bool over = false;
        for (size_t j = 0; j < nspec && !over; j++)
            over = strncmp(spec->env[j], defaults[i], kl) == 0;
        if (!over)
            env[k++] = defaults[i];
    }
    for (size_t j = 0; j < nspec; j++) {
        if (!strchr(spec->env[j], '=')) {
            free(env);
            snprintf(err, errlen, "env entry without '='");
            return -EINVAL;
        }
        env[k++] = spec->env[j];
    }
    env[k] = NULL;
    pid_t pid;
    r = rt_spawner_create(&l->sp, spec->id, spec->cpus_milli, spec->memory_bytes, spec->pids_max,
                          env, &pid, err, errlen);
    free(env);
    return r;
}

static int wait_exit(int pidfd, unsigned timeout_ms)
{
    struct pollfd p = { .fd = pidfd, .events = POLLIN };
    int r = poll(&p, 1, (int)timeout_ms);
    return r > 0 ? 0 : r == 0 ? -ETIMEDOUT : -errno;
}

static int kill_and_clean(struct local *l, const char *id)
{
    pid_t pid = 0;
    int pidfd = open_init(l, id, &pid);
    int r = 0;
    (void)rt_cg_kill(l->prefix, id);
    if (pidfd >= 0) {
        pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
        if (wait_exit(pidfd, 5000) < 0)
            r = -ETIMEDOUT;
        close(pidfd);
    }
    /* anything else still in the cgroup (should be nothing: the pid ns died with its init) */
    pid_t pids[256];
    int n = rt_cg_procs(l->prefix, id, pids, ARRAY_SIZE(pids));
    for (int i = 0; i < n; i++)
        kill(pids[i], SIGKILL);
    int rr = rt_cg_remove(l->prefix, id, 5000);
    if (rr < 0 && r == 0)
        r = rr;
    char p[512];
    snprintf(p, sizeof p, RT_SOCK_FMT, l->state_dir, id);
    unlink(p);
    snprintf(p, sizeof p, RT_PIDFILE_FMT, l->state_dir, id);
    unlink(p);
    return r;
}

static int local_stop(struct sbx_runtime *rt, const char *id)
{
    if (!sbx_id_valid(id))
        return -EINVAL;
    return kill_and_clean(L(rt), id);
}

static int local_destroy(struct sbx_runtime *rt, const char *id)
{
    if (!sbx_id_valid(id))
        return -EINVAL;
    struct local *l = L(rt);
    int r = kill_and_clean(l, id);
    char p[512];
    snprintf(p, sizeof p, RT_SBXDIR_FMT, l->state_dir, id);
    int rr = rt_rm_rf(p);
    return r < 0 ? r : rr;
}

static void add_info(struct sbx_sandbox_info **arr, size_t *n, size_t *cap, const char *id)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*arr)[i].id, id) == 0)
            return;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        *arr = xrealloc(*arr, *cap * sizeof **arr);
    }
    memset(&(*arr)[*n], 0, sizeof **arr);
    snprintf((*arr)[*n].id, sizeof (*arr)[*n].id, "%s", id);
    (*n)++;
}

static void scan_dir(const char *dir, const char *suffix, bool dirs_only,
                     struct sbx_sandbox_info **arr, size_t *n, size_t *cap)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char name[SBX_ID_MAX + 16];
        if (de->d_name[0] == '.' || strlen(de->d_name) >= sizeof name)
            continue;
        if (dirs_only && de->d_type != DT_DIR)
            continue;
        strcpy(name, de->d_name);
        if (suffix) {
            size_t nl = strlen(name), sl = strlen(suffix);
            if (nl <= sl || strcmp(name + nl - sl, suffix) != 0)
                continue;
            name[nl - sl] = 0;
        }
        if (sbx_id_valid(name))
            add_info(arr, n, cap, name);
    }
    closedir(d);
}

static int local_list(struct sbx_runtime *rt, struct sbx_sandbox_info **ret)
{
    struct local *l = L(rt);
    struct sbx_sandbox_info *arr = NULL;
    size_t n = 0, cap = 0;
    char p[512];
    for (int c = 0; c < RT_CG_N; c++) {
        rt_cg_path(p, sizeof p, c, l->prefix, NULL, NULL);
        scan_dir(p, NULL, true, &arr, &n, &cap);
    }
    snprintf(p, sizeof p, "%s/run", l->state_dir);
    scan_dir(p, ".pid", false, &arr, &n, &cap);
    scan_dir(p, ".sock", false, &arr, &n, &cap);
    snprintf(p, sizeof p, "%s/sandboxes", l->state_dir);
    scan_dir(p, NULL, true, &arr, &n, &cap);
    for (size_t i = 0; i < n; i++)
        local_status(rt, arr[i].id, &arr[i].state, &arr[i].pid);
    *ret = arr;
    return (int)n;
}

static int local_stats(struct sbx_runtime *rt, const char *id, struct sbx_sandbox_stats *ret)
{
    struct local *l = L(rt);
    char p[512];
    struct sbx_sandbox_stats s = { 0 };
    if (!sbx_id_valid(id))
        return -EINVAL;
    rt_cg_path(p, sizeof p, RT_CG_MEMORY, l->prefix, id, "memory.usage_in_bytes");
    int r = rt_read_u64(p, &s.memory_bytes);
    if (r < 0)
        return r == -ENOENT ? -ENOENT : r;
    rt_cg_path(p, sizeof p, RT_CG_MEMORY, l->prefix, id, "memory.max_usage_in_bytes");
    (void)rt_read_u64(p, &s.memory_peak_bytes);
    rt_cg_path(p, sizeof p, RT_CG_MEMORY, l->prefix, id, "memory.oom_control");
    (void)rt_read_kv_u64(p, "oom_kill", &s.oom_kills);
    rt_cg_path(p, sizeof p, RT_CG_PIDS, l->prefix, id, "pids.current");
    (void)rt_read_u64(p, &s.pids_current);
    rt_cg_path(p, sizeof p, RT_CG_CPUACCT, l->prefix, id, "cpuacct.usage");
    uint64_t ns = 0;
    if (rt_read_u64(p, &ns) == 0)
        s.cpu_usec = ns / 1000;
    *ret = s;
    return 0;
}

/* ---- connections to the init ---- */

static int connect_init(struct local *l, const char *id)
{
    struct sockaddr_un sa;
    if (!sbx_id_valid(id))
        return -EINVAL;
    int n = rt_sock_addr(l->state_dir, id, &sa);
    if (n < 0)
        return n;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int r = errno;
        close(fd);
        return r == ENOENT || r == ECONNREFUSED ? -ENOENT : -r;
    }
    return fd;
}

/* blocking receive with a timeout */
static int recv_timeout(int fd, char *buf, struct rt_msg *m, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r = poll(&p, 1, timeout_ms);
    if (r == 0)
        return -ETIMEDOUT;
    if (r < 0)
        return -errno;
    return rt_msg_recv(fd, buf, m);
}

static int64_t read_oom(struct local *l, const char *id)
{
    char p[512];
    uint64_t v;
    rt_cg_path(p, sizeof p, RT_CG_MEMORY, l->prefix, id, "memory.oom_control");
    return rt_read_kv_u64(p, "oom_kill", &v) == 0 ? (int64_t)v : -1;
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int local_exec_start(struct sbx_runtime *rt, const char *id, const struct sbx_exec_spec *spec,
                            struct sbx_exec **ret)
{
    struct local *l = L(rt);
    if (!spec || !spec->argv || !spec->argv[0])
        return -EINVAL;
    if (spec->cwd && strlen(spec->cwd) > SBX_PATH_MAX)
        return -EINVAL;
    size_t argc = 0, envc = 0;
    while (spec->argv[argc])
        argc++;
    while (spec->env && spec->env[envc])
        envc++;
    if (1 + argc + envc > RT_NSTR_MAX)
        return -E2BIG;

    int conn = connect_init(l, id);
    if (conn < 0)
        return conn;
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, er[2] = { -1, -1 };
    int r;
    const char **strs = xcalloc(1 + argc + envc, sizeof *strs);
    strs[0] = spec->cwd ? spec->cwd : "";
    for (size_t i = 0; i < argc; i++)
        strs[1 + i] = spec->argv[i];
    for (size_t i = 0; i < envc; i++)
        strs[1 + argc + i] = spec->env[i];
    int64_t a[RT_NARG] = { spec->tty, spec->rows, spec->cols, (int64_t)argc, (int64_t)envc };

    int64_t oom = read_oom(l, id);
    if (!spec->tty) {
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 || pipe2(er, O_CLOEXEC) < 0) {
            r = -errno;
            goto out;
        }
        int fds[3] = { in[0], out[1], er[1] };
        r = rt_msg_send(conn, RT_M_EXEC, a, strs, 1 + argc + envc, fds, 3);
    } else {
        r = rt_msg_send(conn, RT_M_EXEC, a, strs, 1 + argc + envc, NULL, 0);
    }
    if (r < 0)
        goto out;
    char *buf = xmalloc(RT_MSG_MAX);
    struct rt_msg *m = xmalloc(sizeof *m);
    r = recv_timeout(conn, buf, m, 10000);
    if (r == 0)
        r = -EIO;
    if (r > 0) {
        if (m->type == RT_M_ERROR) {
            r = m->a[0] < 0 ? (int)m->a[0] : -EIO;
            rt_msg_close_fds(m);
        } else if (m->type != RT_M_STARTED || m->nfds != (spec->tty ? 1u : 0u)) {
            rt_msg_close_fds(m);
            r = -EIO;
        } else {
            r = 0;
        }
    }
    if (r == 0) {
        struct sbx_exec *e = xcalloc(1, sizeof *e);
        struct lexec *x = xcalloc(1, sizeof *x);
        x->oom_before = oom;
        x->l = l;
        snprintf(x->id, sizeof x->id, "%s", id);
        e->priv = x;
        e->ops = &local_ops;
        e->pid = (pid_t)m->a[0];
        e->stdin_fd = e->stdout_fd = e->stderr_fd = e->pty_fd = -1;
        if (spec->tty) {
            e->pty_fd = m->fds[0];
            set_nonblock(e->pty_fd);
        } else {
            e->stdin_fd = TAKE_FD(in[1]);
            e->stdout_fd = TAKE_FD(out[0]);
            e->stderr_fd = TAKE_FD(er[0]);
            set_nonblock(e->stdin_fd);
            set_nonblock(e->stdout_fd);
            set_nonblock(e->stderr_fd);
        }
        set_nonblock(conn);
        e->ctl_fd = TAKE_FD(conn);
        *ret = e;
    }
    free(buf);
    free(m);
out:
    free(strs);
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
        if (er[i] >= 0)
            close(er[i]);
    }
    if (conn >= 0)
        close(conn);
    return r == -EPIPE || r == -ECONNRESET ? -EIO : r;
}

static int local_exec_result(struct sbx_exec *e, struct sbx_exec_result *ret)
{
    struct lexec *x = e->priv;
    if (!x->done) {
        char *buf = xmalloc(RT_MSG_MAX);
        struct rt_msg *m = xmalloc(sizeof *m);
        int r;
        for (;;) {
            r = rt_msg_recv(e->ctl_fd, buf, m);
            if (r > 0) {
                rt_msg_close_fds(m);
                if (m->type != RT_M_EXIT)
                    continue;
            }
            break;
        }
        if (r > 0) {
            x->res.exit_code = (int)m->a[0];
            x->res.signal = (int)m->a[1];
            int64_t after = read_oom(x->l, x->id);
            x->res.oom = x->oom_before >= 0 && after > x->oom_before;
            x->done = true;
        }
        free(buf);
        free(m);
        if (!x->done)
            return r == -EAGAIN ? -EAGAIN : -EIO;
    }
    *ret = x->res;
    return 0;
}

static int local_signal(struct sbx_exec *e, int sig)
{
    struct lexec *x = e->priv;
    if (x->done)
        return -ESRCH;
    if (sig <= 0 || sig >= NSIG)
        return -EINVAL;
    int r = rt_msg_send_ints(e->ctl_fd, RT_M_SIGNAL, sig, 0, 0);
    return r == -EPIPE || r == -ECONNRESET ? -ESRCH : r;
}

static int local_resize(struct sbx_exec *e, unsigned rows, unsigned cols)
{
    if (e->pty_fd < 0)
        return -ENOTTY;
    struct winsize ws = { .ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols };
    return ioctl(e->pty_fd, TIOCSWINSZ, &ws) < 0 ? -errno : 0;
}

static void local_exec_free(struct sbx_exec *e)
{
    int *fds[] = { &e->stdin_fd, &e->stdout_fd, &e->stderr_fd, &e->pty_fd, &e->ctl_fd };
    for (size_t i = 0; i < ARRAY_SIZE(fds); i++)
        if (*fds[i] >= 0)
            close(*fds[i]);
    free(e->priv);
    free(e);
}

/* ---- file operations ---- */

static int file_request(struct local *l, const char *id, uint32_t type, const char *path,
                        int64_t a0, int64_t a1, int *ret_fd, uint64_t *ret_size)
{
    _cleanup_free_ char *rel = NULL;
    if (!path || sbx_path_check(path, strlen(path), &rel) < 0)
        return -EINVAL;
    int conn = connect_init(l, id);
    if (conn < 0)
        return conn;
    int64_t a[RT_NARG] = { a0, a1 };
    const char *strs[] = { rel };
    int r = rt_msg_send(conn, type, a, strs, 1, NULL, 0);
    char *buf = xmalloc(RT_MSG_MAX);
    struct rt_msg *m = xmalloc(sizeof *m);
    if (r == 0) {
        r = recv_timeout(conn, buf, m, 30000);
        if (r == 0)
            r = -EIO;
    }
    if (r > 0) {
        if (m->type != RT_M_FILE) {
            rt_msg_close_fds(m);
            r = -EIO;
        } else if (m->a[0] < 0) {
            rt_msg_close_fds(m);
            r = (int)m->a[0];
            if (r == -EXDEV || r == -ELOOP)
                r = -EINVAL; /* leads outside /workspace: invalid path */
        } else if (ret_fd && m->nfds != 1) {
            rt_msg_close_fds(m);
            r = -EIO;
        } else {
            if (ret_fd)
                *ret_fd = m->fds[0];
            else
                rt_msg_close_fds(m);
            if (ret_size)
                *ret_size = (uint64_t)m->a[1];
            r = 0;
        }
    }
    free(buf);
    free(m);
    close(conn);
    return r == -EPIPE || r == -ECONNRESET ? -EIO : r;
}

static int local_open_read(struct sbx_runtime *rt, const char *id, const char *path, int *ret_fd,
                           uint64_t *ret_size)
{
    uint64_t size = 0;
    int fd = -1;
    int r = file_request(L(rt), id, RT_M_READ, path, 0, 0, &fd, &size);
    if (r < 0)
        return r;
    *ret_fd = fd;
    if (ret_size)
        *ret_size = size;
    return 0;
}

static int local_open_write(struct sbx_runtime *rt, const char *id, const char *path, unsigned mode,
                            unsigned flags, int *ret_fd)
{
    return file_request(L(rt), id, RT_M_WRITE, path, mode & 01777, flags, ret_fd, NULL);
}

static int local_mkdir_p(struct sbx_runtime *rt, const char *id, const char *path, unsigned mode)
{
    return file_request(L(rt), id, RT_M_MKDIR, path, mode & 01777, 0, NULL, NULL);
}

static int local_list_dir(struct sbx_runtime *rt, const char *id, const char *path,
                          struct sbx_dirent **ret)
{
    int fd = -1;
    int r = file_request(L(rt), id, RT_M_LISTDIR, path, 0, 0, &fd, NULL);
    if (r < 0)
        return r;
    DIR *d = fdopendir(fd);
    if (!d) {
        r = -errno;
        close(fd);
        return r;
    }
    struct sbx_dirent *arr = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        struct stat st;
        /* single-name lookup, never follows: safe on the host side */
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            arr = xrealloc(arr, cap * sizeof *arr);
        }
        arr[n].name = xstrdup(de->d_name);
        arr[n].type = S_ISREG(st.st_mode) ? 'f' : S_ISDIR(st.st_mode) ? 'd'
                      : S_ISLNK(st.st_mode) ? 'l' : 'o';
        arr[n].size = (uint64_t)st.st_size;
        arr[n].mode = st.st_mode & 07777;
        arr[n].mtime = st.st_mtim.tv_sec;
        n++;
        if (n > 100000)
            break;
    }
    closedir(d);
    *ret = arr;
    return (int)n;
}

static void local_free(struct sbx_runtime *rt)
{
    if (!rt)
        return;
    struct local *l = L(rt);
    rt_spawner_stop(&l->sp);
    if (l->cfg.init_fd >= 0)
        close(l->cfg.init_fd);
    rt_seccomp_free(&l->cfg.filter);
    free(l->state_dir);
    free(l->prefix);
    free(l);
    free(rt);
}

static const struct sbx_runtime_ops local_ops = {
    .name = "local",
    .create = local_create,
    .status = local_status,
    .exec_start = local_exec_start,
    .exec_result = local_exec_result,
    .signal = local_signal,
    .resize = local_resize,
    .exec_free = local_exec_free,
    .stop = local_stop,
    .destroy = local_destroy,
    .list = local_list,
    .stats = local_stats,
    .open_read = local_open_read,
    .open_write = local_open_write,
    .list_dir = local_list_dir,
    .mkdir_p = local_mkdir_p,
    .free = local_free,
};

/* ---- start ---- */

static char *default_init_path(void)
{
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            char *p = xasprintf("%s/sandboxd-init", self);
            if (access(p, X_OK) == 0)
                return p;
            free(p);
            p = xasprintf("%s/runtime/sandboxd-init", self);
            if (access(p, X_OK) == 0)
                return p;
            free(p);
        }
    }
    return xstrdup(SBX_INIT_PATH);
}

int rt_local_start(const struct rt_local_config *cfg, struct sbx_runtime **ret, char *err,
                   size_t errlen)
{
    static const struct rt_local_config defcfg = { 0 };
    if (!cfg)
        cfg = &defcfg;
    const char *state = cfg->state_dir ? cfg->state_dir : "/var/lib/sandboxd";
    const char *prefix = cfg->cgroup_prefix ? cfg->cgroup_prefix : "sandboxd";
    int r, memsw = 0;
    char p[512];

    if (err && errlen)
        err[0] = 0;
    if (geteuid() != 0) {
        snprintf(err, errlen, "local runtime: must run as root (needs to write id maps and cgroups)");
        return -EPERM;
    }
    uint64_t maxns = 0;
    if (rt_read_u64("/proc/sys/user/max_user_namespaces", &maxns) < 0 || maxns == 0) {
        snprintf(err, errlen, "local runtime: user namespaces unavailable "
                              "(/proc/sys/user/max_user_namespaces is 0 or missing)");
        return -EOPNOTSUPP;
    }
    if (!sbx_id_valid(prefix)) {
        snprintf(err, errlen, "local runtime: invalid cgroup prefix");
        return -EINVAL;
    }
    unsigned avail = rt_cg_probe(prefix, &memsw);
    if (!(avail & (1u << RT_CG_MEMORY)) || !(avail & (1u << RT_CG_PIDS))) {
        snprintf(err, errlen, "local runtime: cgroup v1 controller(s) missing:%s%s "
                              "(need /sys/fs/cgroup/memory and /sys/fs/cgroup/pids)",
                 avail & (1u << RT_CG_MEMORY) ? "" : " memory",
                 avail & (1u << RT_CG_PIDS) ? "" : " pids");
        return -EOPNOTSUPP;
    }
    if (prctl(PR_GET_SECCOMP) < 0) {
        snprintf(err, errlen, "local runtime: seccomp unavailable");
        return -EOPNOTSUPP;
    }
    if (strlen(state) > 2048) {
        snprintf(err, errlen, "local runtime: state_dir is too long");
        return -ENAMETOOLONG;
    }

    struct local *l = xcalloc(1, sizeof *l);
    l->state_dir = xstrdup(state);
    l->prefix = xstrdup(prefix);
    l->uid_base = cfg->uid_base ? cfg->uid_base : 100000;
    l->cg_avail = avail;
    l->cfg.init_fd = -1;
    if (!(avail & (1u << RT_CG_CPU)))
        l->degraded |= RT_DEGRADED_CPU;
    if (!(avail & (1u << RT_CG_CPUACCT)))
        l->degraded |= RT_DEGRADED_CPUACCT;
    if (!memsw)
        l->degraded |= RT_DEGRADED_MEMSW;
    if (!(avail & (1u << RT_CG_UNIFIED)))
        l->degraded |= RT_DEGRADED_UNIFIED;

    _cleanup_free_ char *init = cfg->init_path ? xstrdup(cfg->init_path) : default_init_path();
    r = rt_seccomp_build(&l->cfg.filter, err, errlen);
    if (r < 0)
        goto fail;
    l->cfg.init_fd = open(init, O_PATH | O_CLOEXEC);
    if (l->cfg.init_fd < 0 || access(init, X_OK) < 0) {
        r = -errno;
        snprintf(err, errlen, "local runtime: init binary %s: %s", init, strerror(-r));
        goto fail;
    }
    snprintf(p, sizeof p, "%s/run/rootfs", state);
    if ((r = rt_mkdir_p(p, 0711)) < 0) {
        snprintf(err, errlen, "local runtime: state dir %s: %s", state, strerror(-r));
        goto fail;
    }
    snprintf(p, sizeof p, "%s/run", state);
    chmod(p, 0711);
    if ((r = rt_sock_dir_open(state)) < 0) {
        snprintf(err, errlen, "local runtime: state dir %s/run: %s", state, strerror(-r));
        goto fail;
    }
    snprintf(p, sizeof p, "%s/sandboxes", state);
    if ((r = rt_mkdir_p(p, 0711)) < 0) {
        snprintf(err, errlen, "local runtime: state dir %s: %s", state, strerror(-r));
        goto fail;
    }
    chmod(p, 0711);
    if ((r = rt_cg_init_prefix(prefix, avail)) < 0) {
        snprintf(err, errlen, "local runtime: cgroup prefix %s: %s", prefix, strerror(-r));
        goto fail;
    }
    l->cfg.state_dir = l->state_dir;
    l->cfg.prefix = l->prefix;
    l->cfg.uid_base = l->uid_base;
    l->cfg.tmp_size = cfg->tmp_size ? cfg->tmp_size : 64ull << 20;
    l->cfg.cgroup_view = cfg->cgroup_view;
    l->cfg.cg_avail = avail;
    l->cfg.memsw = memsw;
    if ((r = rt_spawner_start(&l->cfg, &l->sp)) < 0) {
        snprintf(err, errlen, "local runtime: fork spawner: %s", strerror(-r));
        goto fail;
    }
    if (l->degraded)
        snprintf(err, errlen, "local runtime degraded:%s%s%s%s",
                 l->degraded & RT_DEGRADED_CPU ? " no cpu controller (no CPU limit)" : "",
                 l->degraded & RT_DEGRADED_CPUACCT ? " no cpuacct (no cpu stats)" : "",
                 l->degraded & RT_DEGRADED_MEMSW ? " no memsw (swap not limited)" : "",
                 l->degraded & RT_DEGRADED_UNIFIED ? " no cgroup2 (kill via init only)" : "");
    struct sbx_runtime *rt = xcalloc(1, sizeof *rt);
    rt->ops = &local_ops;
    rt->priv = l;
    *ret = rt;
    return 0;
fail:
    if (l->cfg.init_fd >= 0)
        close(l->cfg.init_fd);
    rt_seccomp_free(&l->cfg.filter);
    free(l->state_dir);
    free(l->prefix);
    free(l);
    return r;
}

unsigned rt_local_features(struct sbx_runtime *rt)
{
    return L(rt)->degraded;
}
