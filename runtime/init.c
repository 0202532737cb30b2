/*
 * init.c — sandboxd-init, PID 1 of every sandbox. Single-threaded, built without sanitizers.
 *
 * Started by the contain child (contain.c) already inside all namespaces, as uid 1000, with no
 * capabilities, no_new_privs and the seccomp filter. fds: 0-2 /dev/null, 3 the listening control
 * socket (bound on a host path the sandbox cannot see), 4 the set-up sync socket ("R" = ready).
 * Environment = the sandbox's default env for execs.
 *
 * Loop: poll(listen socket, signalfd, connections). Per connection (one request each, proto.h):
 *   NEW     → X: fork the command (setsid, stdio/pty, chdir, close_range, execvpe) → RUNNING
 *           → r/w/l/m: fork a file-op child that answers on the connection → closed here
 *   RUNNING → K: signal the command's process group; EOF: SIGKILL the group → ORPHAN
 *           → on the child's exit: send E(code, signal), close
 *   ORPHAN  → on the child's exit: free the slot
 * SIGCHLD: waitpid(-1, WNOHANG) loop (reaps re-parented orphans too). SIGTERM/SIGINT/SIGHUP are
 * honoured only when sent from outside the pid namespace (ssi_pid == 0): exit → kernel kills all.
 * PR_SET_DUMPABLE 0 keeps sandbox code (same uid) away from our fds and memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "runtime/fileops.h"
#include "runtime/proto.h"
#include "runtime/runtime.h"

#define LISTEN_FD 3
#define SYNC_FD 4
#define MAX_CONNS 512

extern char **environ;

enum cstate { C_FREE, C_NEW, C_RUNNING, C_ORPHAN };
struct conn {
    enum cstate st;
    int fd;
    pid_t pid;
};

static struct conn conns[MAX_CONNS];
static char msgbuf[RT_MSG_MAX];
static struct rt_msg msg;

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->st = C_FREE;
    c->pid = 0;
}

static int cwd_ok(const char *cwd)
{
    /* absolute, normalised-enough, not into /proc */
    if (cwd[0] != '/' || strlen(cwd) > SBX_PATH_MAX)
        return 0;
    for (const char *p = cwd; *p;) {
        while (*p == '/')
            p++;
        const char *e = strchrnul(p, '/');
        size_t cl = (size_t)(e - p);
        if (cl == 2 && p[0] == '.' && p[1] == '.')
            return 0;
        if (p == cwd + 1 && cl == 4 && memcmp(p, "proc", 4) == 0)
            return 0;
        p = e;
    }
    return 1;
}

/* default env (ours) overridden by the request's KEY=VAL entries */
static char **merge_env(const char *const *req, size_t n)
{
    size_t base = 0;
    while (environ[base])
        base++;
    char **env = calloc(base + n + 1, sizeof *env);
    if (!env)
        _exit(127);
    size_t k = 0;
    for (size_t i = 0; i < base; i++) {
        const char *eq = strchr(environ[i], '=');
        size_t kl = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        int overridden = 0;
        for (size_t j = 0; j < n && !overridden; j++)
            overridden = strncmp(req[j], environ[i], kl) == 0 && req[j][kl] == '=';
        if (!overridden)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < n; j++)
        if (strchr(req[j], '='))
            env[k++] = (char *)req[j];
    env[k] = NULL;
    return env;
}

static void child_reset_signals(void)
{
    sigset_t all;
    sigemptyset(&all);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &all, NULL);
}

static _Noreturn void child_fail(const char *what, const char *arg, int err, int code)
{
    dprintf(2, "sandboxd-init: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(err));
    _exit(code);
}

static void handle_exec(struct conn *c)
{
    int64_t tty = msg.a[0], rows = msg.a[1], cols = msg.a[2], argc = msg.a[3], envc = msg.a[4];
    int master = -1;
    char slave_name[64];

    if (argc < 1 || envc < 0 || (uint64_t)msg.nstr != 1 + (uint64_t)argc + (uint64_t)envc ||
        (tty ? msg.nfds != 0 : msg.nfds != 3))
        goto einval;
    const char *cwd = *msg.str[0] ? msg.str[0] : "/workspace";
    if (!cwd_ok(cwd))
        goto einval;
    if (tty) {
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || unlockpt(master) < 0 || ptsname_r(master, slave_name, sizeof slave_name))
            goto fail_errno;
        struct winsize ws = { .ws_row = rows > 0 ? (unsigned short)rows : 24,
                              .ws_col = cols > 0 ? (unsigned short)cols : 80 };
        ioctl(master, TIOCSWINSZ, &ws);
    }
    pid_t pid = fork();
    if (pid < 0)
        goto fail_errno;
    if (pid == 0) {
        child_reset_signals();
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (setsid() < 0)
            child_fail("setsid", NULL, errno, 127);
        if (tty) {
            int s = open(slave_name, O_RDWR);
            if (s < 0)
                _exit(127);
            ioctl(s, TIOCSCTTY, 0);
            if (dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0)
                _exit(127);
        } else {
            /* received fds are >= 5 (CLOEXEC); dup2 onto 0..2 clears CLOEXEC */
            if (dup2(msg.fds[0], 0) < 0 || dup2(msg.fds[1], 1) < 0 || dup2(msg.fds[2], 2) < 0)
                _exit(127);
        }
        syscall(SYS_close_range, 3, ~0U, 0);
        if (chdir(cwd) < 0)
            child_fail("chdir", cwd, errno, 126);
        char **argv = calloc((size_t)argc + 1, sizeof *argv);
        if (!argv)
            _exit(127);
        for (int64_t i = 0; i < argc; i++)
            argv[i] = (char *)msg.str[1 + i];
        char **env = merge_env(msg.str + 1 + argc, (size_t)envc);
        if (tty && !getenv("TERM")) {
            /* TERM from the request or the default env wins; else xterm */
            int has = 0;
            for (char **e = env; *e; e++)
                has |= strncmp(*e, "TERM=", 5) == 0;
            if (!has) {
                size_t n = 0;
                while (env[n])
                    n++;
                char **e2 = realloc(env, (n + 2) * sizeof *env);
                if (e2) {
                    e2[n] = (char *)"TERM=xterm";
                    e2[n + 1] = NULL;
                    env = e2;
                }
            }
        }
        /* execvpe searches the PATH of the *new* environment */
        for (char **e = env; *e; e++)
            if (strncmp(*e, "PATH=", 5) == 0)
                setenv("PATH", *e + 5, 1);
        execvpe(argv[0], argv, env);
        child_fail("exec", argv[0], errno, errno == ENOENT ? 127 : 126);
    }
    rt_msg_close_fds(&msg);
    int r = rt_msg_send(c->fd, RT_M_STARTED, (int64_t[RT_NARG]){ pid }, NULL, 0,
                        master >= 0 ? &master : NULL, master >= 0 ? 1 : 0);
    if (master >= 0)
        close(master);
    c->pid = pid;
    if (r < 0) {
        kill(-pid, SIGKILL);
        close(c->fd);
        c->fd = -1;
        c->st = C_ORPHAN;
        return;
    }
    c->st = C_RUNNING;
    return;

einval:
    errno = EINVAL;
fail_errno:;
    int e = errno;
    if (master >= 0)
        close(master);
    rt_msg_close_fds(&msg);
    rt_msg_send_ints(c->fd, RT_M_ERROR, -e, 0, 0);
    conn_close(c);
}

static void handle_request(struct conn *c)
{
    int r = rt_msg_recv(c->fd, msgbuf, &msg);
    if (r == -EAGAIN)
        return;
    if (r <= 0) {
        if (c->st == C_RUNNING) {
            kill(-c->pid, SIGKILL);
            close(c->fd);
            c->fd = -1;
            c->st = C_ORPHAN;
        } else {
            conn_close(c);
        }
        return;
    }
    if (c->st == C_RUNNING) {
        rt_msg_close_fds(&msg);
        if (msg.type == RT_M_SIGNAL && msg.a[0] > 0 && msg.a[0] < NSIG) {
            if (kill(-c->pid, (int)msg.a[0]) < 0)
                kill(c->pid, (int)msg.a[0]);
        }
        return;
    }
    switch (msg.type) {
    case RT_M_EXEC:
        handle_exec(c);
        return;
    case RT_M_READ:
    case RT_M_WRITE:
    case RT_M_LISTDIR:
    case RT_M_MKDIR: {
        rt_msg_close_fds(&msg);
        pid_t pid = fork();
        if (pid == 0) {
            child_reset_signals();
            int fd = dup3(c->fd, 3, 0) < 0 ? c->fd : 3;
            syscall(SYS_close_range, fd + 1, ~0U, 0);
            rt_fileop_child(fd, &msg);
        }
        if (pid < 0)
            rt_msg_send_ints(c->fd, RT_M_FILE, -errno, 0, 0);
        conn_close(c);
        return;
    }
    default:
        rt_msg_close_fds(&msg);
        conn_close(c);
    }
}

static void reap(void)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            return;
        for (int i = 0; i < MAX_CONNS; i++) {
            struct conn *c = &conns[i];
            if ((c->st != C_RUNNING && c->st != C_ORPHAN) || c->pid != pid)
                continue;
            if (c->st == C_RUNNING) {
                int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
                int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
                rt_msg_send_ints(c->fd, RT_M_EXIT, code, sig, 0);
            }
            conn_close(c);
            break;
        }
    }
}

int main(void)
{
    prctl(PR_SET_DUMPABLE, 0);
    umask(022);
    signal(SIGPIPE, SIG_IGN);
    sigset_t ss;
    sigfillset(&ss);
    sigdelset(&ss, SIGPIPE);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    sigemptyset(&ss);
    sigaddset(&ss, SIGCHLD);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigaddset(&ss, SIGHUP);
    int sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        (void)!write(SYNC_FD, "Esignalfd", 9);
        return 127;
    }
    fcntl(LISTEN_FD, F_SETFD, FD_CLOEXEC);
    if (chdir("/workspace") < 0)
        (void)!chdir("/");
    for (int i = 0; i < MAX_CONNS; i++)
        conns[i] = (struct conn){ .st = C_FREE, .fd = -1 };
    (void)!write(SYNC_FD, "R", 1);
    close(SYNC_FD);

    static struct pollfd pfd[MAX_CONNS + 2];
    static int idx[MAX_CONNS + 2];
    for (;;) {
        int n = 0;
        pfd[n++] = (struct pollfd){ .fd = LISTEN_FD, .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
        for (int i = 0; i < MAX_CONNS; i++) {
            if (conns[i].st == C_NEW || conns[i].st == C_RUNNING) {
                idx[n] = i;
                pfd[n++] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
            }
        }
        if (poll(pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (pfd[1].revents) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGCHLD)
                    continue;
                if (si.ssi_pid == 0) /* from outside our pid namespace: the host */
                    _exit(0);
            }
            reap();
        }
        for (int k = 2; k < n; k++)
            if (pfd[k].revents)
                handle_request(&conns[idx[k]]);
        if (pfd[0].revents & POLLIN) {
            int fd = accept4(LISTEN_FD, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                int slot = -1;
                for (int i = 0; i < MAX_CONNS && slot < 0; i++)
                    if (conns[i].st == C_FREE)
                        slot = i;
                if (slot < 0)
                    close(fd);
                else
                    conns[slot] = (struct conn){ .st = C_NEW, .fd = fd };
            }
        }
    }
}
