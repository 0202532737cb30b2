/*
 * rtctl — manual test / benchmark CLI for the local runtime. Single-threaded.
 *   rtctl [-d STATE_DIR] create ID [MEM_MB [CPUS_MILLI [PIDS]]]
 *   rtctl [-p CGROUP_PREFIX] ...  (default prefix "sandboxd"; test tools use their own)
 *   rtctl -C ...                  (sandboxes created see their own cgroups read-only at
 *                                  /sys/fs/cgroup/{memory,cpuacct,pids}: the kube emulator)
 *   rtctl exec ID CMD...          (stdin forwarded, exit code propagated)
 *   rtctl exec-stdio ID CMD...    (streaming: stdin/stdout/stderr connected as they flow, stdin
 *                                  EOF forwarded; exit code, or 128+signal, propagated; 125 =
 *                                  the exec could not start)
 *   rtctl exec-tty ID ROWS COLS RESIZE_FD CMD...
 *                                 (exec-stdio with a pty: stdin → pty, pty → stdout; lines
 *                                  "ROWS COLS" read from the inherited fd RESIZE_FD resize it)
 *   rtctl write ID PATH < data    rtctl read ID PATH > data    rtctl ls ID PATH
 *   rtctl mkdir ID PATH           rtctl stop ID                rtctl destroy ID
 *   rtctl list                    rtctl stats ID
 *   rtctl bench ID N              (exec /bin/true via the init vs host fork+exec; create N)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/timeutil.h"
#include "runtime/local.h"

#ifndef RT_INIT_BUILD_PATH
#define RT_INIT_BUILD_PATH NULL
#endif

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_u64);
    printf("%-28s n=%d median %.3f ms  p99 %.3f ms  min %.3f ms\n", what, n, v[n / 2] / 1000.0,
           v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1000.0, v[0] / 1000.0);
}

static char *slurp_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *b = xmalloc(cap);
    for (;;) {
        if (n == cap)
            b = xrealloc(b, cap *= 2);
        ssize_t r = read(0, b + n, cap - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    return b;
}

/* exec-tty: "ROWS COLS" lines from the resize fd; false once it is closed. */
static bool tty_resize(struct sbx_exec *e, int fd)
{
    static char line[64];
    static size_t len;
    ssize_t k = read(fd, line + len, sizeof line - 1 - len);
    if (k <= 0)
        return k < 0 && (errno == EAGAIN || errno == EINTR);
    len += (size_t)k;
    char *nl;
    while ((nl = memchr(line, '\n', len))) {
        unsigned rows, cols;
        *nl = '\0';
        if (sscanf(line, "%u %u", &rows, &cols) == 2 && rows && cols && rows < 10000 &&
            cols < 10000)
            (void)sbx_exec_resize(e, rows, cols);
        len -= (size_t)(nl + 1 - line);
        memmove(line, nl + 1, len);
    }
    if (len == sizeof line - 1)
        len = 0; /* an overlong line: dropped */
    return true;
}

/* exec-stdio: pump our stdin into the command and its stdout/stderr to ours, unbuffered, until
 * the command exits and both of its outputs reached EOF. Blocking I/O on our side, nonblocking
 * on the exec's fds; a pending stdin chunk is kept until the command accepts it.
 * With tty (resize_fd >= 0): the pty is both the command's stdin and its (merged) output; our
 * stdin's EOF only stops reading (a terminal has no end of input), the pty's EIO after the
 * command's exit is its end of output. */
static int exec_stdio(struct sbx_runtime *rt, const char *id, char **argv, bool tty, unsigned rows,
                      unsigned cols, int resize_fd)
{
    struct sbx_exec_spec s = { .argv = (const char *const *)argv, .tty = tty, .rows = rows,
                               .cols = cols };
    struct sbx_exec *e;
    int r = sbx_exec_start(rt, id, &s, &e);
    if (r < 0) {
        fprintf(stderr, "exec-stdio: %s\n", strerror(-r));
        return 125;
    }
    signal(SIGPIPE, SIG_IGN);
    static char inbuf[65536], buf[65536];
    size_t inlen = 0, inoff = 0;
    bool in_open = true, out_open = true, err_open = !tty, done = false;
    int in_fd = tty ? e->pty_fd : e->stdin_fd, out_fd = tty ? e->pty_fd : e->stdout_fd;
    struct sbx_exec_result res = { 0 };
    while (!done || out_open || err_open) {
        struct pollfd p[6];
        int n = 0, i_in = -1, i_cin = -1, i_out = -1, i_err = -1, i_ctl = -1, i_rsz = -1;
        if (in_open && inlen == 0)
            p[i_in = n++] = (struct pollfd){ .fd = 0, .events = POLLIN };
        if (in_fd >= 0 && inlen > 0)
            p[i_cin = n++] = (struct pollfd){ .fd = in_fd, .events = POLLOUT };
        if (out_open)
            p[i_out = n++] = (struct pollfd){ .fd = out_fd, .events = POLLIN };
        if (err_open)
            p[i_err = n++] = (struct pollfd){ .fd = e->stderr_fd, .events = POLLIN };
        if (!done)
            p[i_ctl = n++] = (struct pollfd){ .fd = e->ctl_fd, .events = POLLIN };
        if (resize_fd >= 0 && !done)
            p[i_rsz = n++] = (struct pollfd){ .fd = resize_fd, .events = POLLIN };
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (i_rsz >= 0 && p[i_rsz].revents && !tty_resize(e, resize_fd))
            resize_fd = -1;
        if (i_in >= 0 && p[i_in].revents) {
            ssize_t k = read(0, inbuf, sizeof inbuf);
            if (k > 0) {
                inlen = (size_t)k, inoff = 0;
                if (in_fd < 0)
                    inlen = 0; /* the command closed its stdin: discard */
            } else if (k == 0 || errno != EINTR) {
                in_open = false;
                if (!tty && e->stdin_fd >= 0) {
                    close(e->stdin_fd);
                    e->stdin_fd = in_fd = -1;
                }
            }
        }
        if (i_cin >= 0 && p[i_cin].revents) {
            ssize_t k = write(in_fd, inbuf + inoff, inlen - inoff);
            if (k > 0) {
                inoff += (size_t)k;
                if (inoff == inlen)
                    inlen = inoff = 0;
            } else if (k < 0 && errno != EAGAIN && errno != EINTR) {
                /* EPIPE: the command does not read stdin any more (tty: the pty is gone) */
                if (!tty) {
                    close(e->stdin_fd);
                    e->stdin_fd = -1;
                }
                in_fd = -1;
                inlen = inoff = 0;
            }
        }
        for (int w = 0; w < 2; w++) {
            int idx = w ? i_err : i_out, fd = w ? e->stderr_fd : out_fd;
            bool *open_ = w ? &err_open : &out_open;
            if (idx < 0 || !p[idx].revents)
                continue;
            ssize_t k = read(fd, buf, sizeof buf);
            if (k > 0) {
                for (ssize_t o = 0; o < k;) {
                    ssize_t x = write(w ? 2 : 1, buf + o, (size_t)(k - o));
                    if (x < 0 && errno == EINTR)
                        continue;
                    if (x <= 0)
                        break; /* our reader went away: drop output, keep draining */
                    o += x;
                }
            } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                *open_ = false;
            }
        }
        if (i_ctl >= 0 && p[i_ctl].revents) {
            r = sbx_exec_result(e, &res);
            if (r == 0) {
                done = true;
            } else if (r != -EAGAIN) {
                fprintf(stderr, "exec-stdio: %s\n", strerror(-r));
                sbx_exec_free(e);
                return 125;
            }
        }
    }
    sbx_exec_free(e);
    return res.signal ? 128 + res.signal : res.exit_code;
}

int main(int argc, char **argv)
{
    const char *state = "/var/lib/sandboxd";
    const char *prefix = NULL;
    int opt;
    bool cgroup_view = false;
    while ((opt = getopt(argc, argv, "+Cd:p:")) != -1) {
        if (opt == 'C')
            cgroup_view = true;
        else if (opt == 'd')
            state = optarg;
        else if (opt == 'p')
            prefix = optarg;
    }
    argc -= optind;
    argv += optind;
    if (argc < 1) {
        fprintf(stderr, "usage: rtctl [-C] [-d state] [-p cgroup-prefix] create|exec|exec-stdio|exec-tty|write|read|ls|mkdir|stop|destroy|list|stats|bench ...\n");
        return 2;
    }
    const char *init = RT_INIT_BUILD_PATH;
    if (init && access(init, X_OK) < 0)
        init = NULL;
    if (getenv("SBX_INIT"))
        init = getenv("SBX_INIT");
    struct rt_local_config cfg = { .state_dir = state, .init_path = init,
                                   .cgroup_prefix = prefix, .cgroup_view = cgroup_view };
    struct sbx_runtime *rt;
    char err[512];
    int r = rt_local_start(&cfg, &rt, err, sizeof err);
    if (r < 0) {
        fprintf(stderr, "rtctl: %s\n", err);
        return 1;
    }
    const char *cmd = argv[0], *id = argc > 1 ? argv[1] : NULL;
    int rc = 0;

    if (strcmp(cmd, "create") == 0 && id) {
        struct sbx_sandbox_spec s = {
            .id = id,
            .memory_bytes = (argc > 2 ? strtoull(argv[2], NULL, 10) : 512) << 20,
            .cpus_milli = argc > 3 ? (unsigned)atoi(argv[3]) : 1000,
            .pids_max = argc > 4 ? (unsigned)atoi(argv[4]) : 256,
        };
        uint64_t t = sbx_now_us();
        r = sbx_rt_create(rt, &s, err, sizeof err);
        if (r < 0)
            fprintf(stderr, "create: %s (%s)\n", err, strerror(-r)), rc = 1;
        else
            printf("created %s in %.3f ms\n", id, (sbx_now_us() - t) / 1000.0);
    } else if (strcmp(cmd, "exec") == 0 && id && argc > 2) {
        size_t inlen = 0;
        char *in = isatty(0) ? NULL : slurp_stdin(&inlen);
        struct sbx_exec_spec s = { .argv = (const char *const *)argv + 2 };
        struct sbx_exec_output o;
        r = sbx_exec_run_buffered(rt, id, &s, in, inlen, 60000, 64 << 20, &o);
        free(in);
        if (r < 0) {
            fprintf(stderr, "exec: %s\n", strerror(-r));
            rc = 1;
        } else {
            fwrite(o.out, 1, o.out_len, stdout);
            fwrite(o.err, 1, o.err_len, stderr);
            fprintf(stderr, "[exit %d signal %d oom %d reason %s %.3f ms%s]\n", o.result.exit_code,
                    o.result.signal, o.result.oom, sbx_exec_reason_name(o.reason),
                    o.duration_us / 1000.0, o.truncated ? " truncated" : "");
            rc = o.result.signal ? 128 + o.result.signal : o.result.exit_code;
            sbx_exec_output_free(&o);
        }
    } else if (strcmp(cmd, "exec-stdio") == 0 && id && argc > 2) {
        rc = exec_stdio(rt, id, argv + 2, false, 0, 0, -1);
    } else if (strcmp(cmd, "exec-tty") == 0 && id && argc > 5) {
        int rfd = atoi(argv[4]);
        if (rfd < 3 || fcntl(rfd, F_SETFL, O_NONBLOCK) < 0) {
            fprintf(stderr, "exec-tty: bad resize fd %s\n", argv[4]);
            rc = 125;
        } else
            rc = exec_stdio(rt, id, argv + 5, true, (unsigned)atoi(argv[2]),
                            (unsigned)atoi(argv[3]), rfd);
    } else if (strcmp(cmd, "write") == 0 && argc > 2) {
        size_t len;
        char *d = slurp_stdin(&len);
        r = sbx_write_file(rt, id, argv[2], d, len, 0644, SBX_WRITE_MKDIRS);
        free(d);
        if (r < 0)
            fprintf(stderr, "write: %s\n", strerror(-r)), rc = 1;
    } else if (strcmp(cmd, "read") == 0 && argc > 2) {
        char *d;
        size_t len;
        r = sbx_read_file(rt, id, argv[2], 1u << 30, &d, &len);
        if (r < 0)
            fprintf(stderr, "read: %s\n", strerror(-r)), rc = 1;
        else
            fwrite(d, 1, len, stdout), free(d);
    } else if (strcmp(cmd, "ls") == 0 && argc > 2) {
        struct sbx_dirent *d;
        r = rt->ops->list_dir(rt, id, argv[2], &d);
        if (r < 0)
            fprintf(stderr, "ls: %s\n", strerror(-r)), rc = 1;
        for (int i = 0; i < r; i++)
            printf("%c %04o %10" PRIu64 " %s\n", d[i].type, d[i].mode, d[i].size, d[i].name);
        if (r >= 0)
            sbx_dirents_free(d, (size_t)r);
    } else if (strcmp(cmd, "mkdir") == 0 && argc > 2) {
        r = rt->ops->mkdir_p(rt, id, argv[2], 0755);
        if (r < 0)
            fprintf(stderr, "mkdir: %s\n", strerror(-r)), rc = 1;
    } else if ((strcmp(cmd, "stop") == 0 || strcmp(cmd, "destroy") == 0) && id) {
        uint64_t t = sbx_now_us();
        r = cmd[0] == 's' ? rt->ops->stop(rt, id) : rt->ops->destroy(rt, id);
        if (r < 0)
            fprintf(stderr, "%s: %s\n", cmd, strerror(-r)), rc = 1;
        else
            printf("%s %s in %.3f ms\n", cmd, id, (sbx_now_us() - t) / 1000.0);
    } else if (strcmp(cmd, "list") == 0) {
        struct sbx_sandbox_info *l;
        r = rt->ops->list(rt, &l);
        for (int i = 0; i < r; i++)
            printf("%s %s %d\n", l[i].id, sbx_state_name(l[i].state), (int)l[i].pid);
        if (r >= 0)
            free(l);
    } else if (strcmp(cmd, "stats") == 0 && id) {
        struct sbx_sandbox_stats s;
        r = rt->ops->stats(rt, id, &s);
        if (r < 0)
            fprintf(stderr, "stats: %s\n", strerror(-r)), rc = 1;
        else
            printf("cpu_usec %" PRIu64 " memory %" PRIu64 " peak %" PRIu64 " pids %" PRIu64
                   " oom_kills %" PRIu64 "\n", s.cpu_usec, s.memory_bytes, s.memory_peak_bytes,
                   s.pids_current, s.oom_kills);
    } else if (strcmp(cmd, "bench") == 0 && id && argc > 2) {
        int n = atoi(argv[2]);
        if (n < 1)
            n = 100;
        uint64_t *v = xcalloc((size_t)n, sizeof *v);
        const char *const targv[] = { "/bin/true", NULL };
        struct sbx_exec_spec s = { .argv = targv };
        for (int i = 0; i < n; i++) {
            struct sbx_exec_output o;
            uint64_t t = sbx_now_us();
            r = sbx_exec_run_buffered(rt, id, &s, NULL, 0, 10000, 0, &o);
            v[i] = sbx_now_us() - t;
            if (r < 0) {
                fprintf(stderr, "bench exec: %s\n", strerror(-r));
                return 1;
            }
            sbx_exec_output_free(&o);
        }
        report("exec /bin/true via init", v, n);
        for (int i = 0; i < n; i++) {
            uint64_t t = sbx_now_us();
            pid_t p = fork();
            if (p == 0) {
                execl("/bin/true", "true", (char *)NULL);
                _exit(127);
            }
            waitpid(p, NULL, 0);
            v[i] = sbx_now_us() - t;
        }
        report("host fork+exec /bin/true", v, n);
        for (int i = 0; i < n; i++) {
            char bid[64];
            snprintf(bid, sizeof bid, "bench-%d-%d", (int)getpid(), i);
            struct sbx_sandbox_spec cs = { .id = bid, .memory_bytes = 256 << 20, .pids_max = 64,
                                           .cpus_milli = 1000 };
            uint64_t t = sbx_now_us();
            r = sbx_rt_create(rt, &cs, err, sizeof err);
            v[i] = sbx_now_us() - t;
            if (r < 0) {
                fprintf(stderr, "bench create: %s\n", err);
                return 1;
            }
            rt->ops->destroy(rt, bid);
        }
        report("create->ready", v, n);
        free(v);
    } else {
        fprintf(stderr, "rtctl: bad command\n");
        rc = 2;
    }
    rt->ops->free(rt);
    return rc;
}
