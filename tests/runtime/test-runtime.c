/*
 * test-runtime.c — end-to-end TAP test of the local runtime: creates real sandboxes and checks
 * the isolation from inside via exec, file ops, limits, destroy and recovery after daemon loss.
 * Needs root and user namespaces (exit 77 = skip otherwise). Uses a private state dir in /tmp
 * and the cgroup prefix "sbxtest-<pid>".
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/timeutil.h"
#include "runtime/local.h"

static int tap_n, tap_fail;
static char state[64], prefix[64];

__attribute__((format(printf, 2, 3))) static void ok(int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (!cond)
        tap_fail++;
}

__attribute__((format(printf, 1, 2))) static void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

static int sh(struct sbx_runtime *rt, const char *id, const char *script, const char *in,
              unsigned timeout_ms, struct sbx_exec_output *o)
{
    const char *argv[] = { "/bin/sh", "-c", script, NULL };
    struct sbx_exec_spec s = { .argv = argv };
    int r = sbx_exec_run_buffered(rt, id, &s, in, in ? strlen(in) : 0, timeout_ms, 1 << 20, o);
    if (r < 0) {
        diag("exec '%s' failed: %s", script, strerror(-r));
        memset(o, 0, sizeof *o);
        o->out = xstrdup("");
        o->err = xstrdup("");
        o->result.exit_code = -1;
    }
    return r;
}

/* run script; returns exit code (or 128+sig), output in out (caller frees) */
static int shx(struct sbx_runtime *rt, const char *id, const char *script, char **out)
{
    struct sbx_exec_output o;
    sh(rt, id, script, NULL, 30000, &o);
    int rc = o.result.signal ? 128 + o.result.signal : o.result.exit_code;
    if (out)
        *out = xstrdup(o.out);
    if (rc != 0 && o.err_len)
        diag("stderr of '%s': %.300s", script, o.err);
    sbx_exec_output_free(&o);
    return rc;
}

static bool cg_exists(const char *ctrl, const char *id)
{
    char p[256];
    snprintf(p, sizeof p, "/sys/fs/cgroup/%s/%s/%s", ctrl, prefix, id);
    return access(p, F_OK) == 0;
}

static int create(struct sbx_runtime *rt, const char *id, uint64_t mem, unsigned pids)
{
    char err[512] = "";
    struct sbx_sandbox_spec s = { .id = id, .memory_bytes = mem, .pids_max = pids,
                                  .cpus_milli = 1000 };
    const char *env[] = { "SBX_TEST=1", NULL };
    s.env = env;
    int r = sbx_rt_create(rt, &s, err, sizeof err);
    if (r < 0)
        diag("create %s: %s (%s)", id, err, strerror(-r));
    return r;
}

static int start_rt(struct sbx_runtime **rt)
{
    char err[512] = "";
    struct rt_local_config cfg = { .state_dir = state, .init_path = RT_INIT_BUILD_PATH,
                                   .cgroup_prefix = prefix };
    int r = rt_local_start(&cfg, rt, err, sizeof err);
    if (r < 0)
        diag("rt_local_start: %s", err);
    else if (*err)
        diag("%s", err);
    return r;
}

struct thr { struct sbx_runtime *rt; int fails; };
static void *exec_thread(void *arg)
{
    struct thr *t = arg;
    for (int i = 0; i < 15; i++) {
        char script[64], *out = NULL;
        snprintf(script, sizeof script, "echo %d", i);
        if (shx(t->rt, "main", script, &out) != 0 || atoi(out) != i)
            t->fails++;
        free(out);
    }
    return NULL;
}

static void test_basic(struct sbx_runtime *rt)
{
    char *out = NULL;
    struct sbx_exec_output o;

    ok(create(rt, "main", 512ull << 20, 128) == 0, "create sandbox");
    ok(create(rt, "main", 512ull << 20, 128) == 0, "create is idempotent");
    enum sbx_state st;
    ok(rt->ops->status(rt, "main", &st, NULL) == 0 && st == SBX_STATE_RUNNING, "status running");

    shx(rt, "main", "cat /proc/self/status", &out);
    ok(strstr(out, "\nUid:\t1000\t1000\t1000\t1000") != NULL, "uid is 1000");
    ok(strstr(out, "\nCapEff:\t0000000000000000") && strstr(out, "\nCapBnd:\t0000000000000000"),
       "CapEff and CapBnd are 0");
    ok(strstr(out, "\nNoNewPrivs:\t1") != NULL, "NoNewPrivs 1");
    ok(strstr(out, "\nSeccomp:\t2") != NULL, "Seccomp 2");
    free(out);

    shx(rt, "main", "ls /proc | grep -c '^[0-9]'", &out);
    ok(atoi(out) >= 1 && atoi(out) <= 4, "only sandbox pids visible in /proc (%d)", atoi(out));
    free(out);
    char script[128];
    int rc = shx(rt, "main", "ps -e | wc -l", &out);
    ok(rc == 0 && atoi(out) <= 5, "ps shows few processes (%d)", atoi(out));
    free(out);

    ok(shx(rt, "main", "touch /usr/x 2>/dev/null", NULL) != 0, "/usr is read-only");
    ok(shx(rt, "main", "touch /x 2>/dev/null", NULL) != 0, "/ is read-only");
    ok(shx(rt, "main", "echo 1 > /etc/y 2>/dev/null", NULL) != 0, "/etc is read-only");
    ok(shx(rt, "main", "echo a > /workspace/w && echo b > /tmp/t && cat /workspace/w /tmp/t", &out) == 0 &&
       strcmp(out, "a\nb\n") == 0, "/workspace and /tmp writable");
    free(out);
    ok(shx(rt, "main", "echo $SBX_TEST $HOME $USER", &out) == 0 && strcmp(out, "1 /workspace sandbox\n") == 0,
       "default env from the spec");
    free(out);
    ok(shx(rt, "main", "cat /dev/null && head -c 4 /dev/urandom | wc -c && test -c /dev/pts/ptmx", &out) == 0 &&
       atoi(out) == 4, "/dev minimal nodes work");
    free(out);

    /* network: a host listener on 127.0.0.1 is not reachable */
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t sl = sizeof sa;
    bind(ls, (struct sockaddr *)&sa, sizeof sa);
    listen(ls, 4);
    getsockname(ls, (struct sockaddr *)&sa, &sl);
    snprintf(script, sizeof script,
             "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", %d), 2)' 2>&1",
             ntohs(sa.sin_port));
    shx(rt, "main", script, &out);
    ok(strstr(out, "ConnectionRefused") != NULL, "host 127.0.0.1 listener refused from inside");
    free(out);
    close(ls);
    ok(shx(rt, "main", "grep -c : /proc/net/dev", &out) == 0 && atoi(out) == 1 &&
           shx(rt, "main", "grep -q lo: /proc/net/dev", NULL) == 0, "only lo interface");
    free(out);

    ok(shx(rt, "main", "unshare -U true 2>/dev/null", NULL) != 0, "unshare denied");
    ok(shx(rt, "main", "unshare -r true 2>/dev/null", NULL) != 0, "unshare -r denied");
    ok(shx(rt, "main", "mount -t tmpfs x /tmp 2>/dev/null", NULL) != 0, "mount denied");
    ok(shx(rt, "main", "python3 -c 'import ctypes,sys; l=ctypes.CDLL(None); sys.exit(0 if l.syscall(435,0,0)==-1 and ctypes.get_errno()==0 or True else 1)'", NULL) == 0,
       "python3 runs under the filter");
    ok(shx(rt, "main", "python3 -c 'import threading; t=threading.Thread(target=print); t.start(); t.join()'", NULL) == 0,
       "threads work (clone3 -> ENOSYS fallback)");

    sh(rt, "main", "exit 7", NULL, 5000, &o);
    ok(o.result.exit_code == 7 && o.result.signal == 0 && o.reason == SBX_EXEC_EXITED, "exit code 7");
    sbx_exec_output_free(&o);
    sh(rt, "main", "kill -TERM $$", NULL, 5000, &o);
    ok(o.result.signal == SIGTERM && o.reason == SBX_EXEC_SIGNALED, "signal reported");
    sbx_exec_output_free(&o);
    sh(rt, "main", "cat; echo err >&2", "hello stdin", 5000, &o);
    ok(strcmp(o.out, "hello stdin") == 0 && strcmp(o.err, "err\n") == 0, "stdin and stderr");
    sbx_exec_output_free(&o);
    const char *nox[] = { "/no/such/bin", NULL };
    struct sbx_exec_spec ns = { .argv = nox };
    sbx_exec_run_buffered(rt, "main", &ns, NULL, 0, 5000, 0, &o);
    ok(o.result.exit_code == 127, "missing binary exits 127");
    sbx_exec_output_free(&o);
    const char *pw[] = { "pwd", NULL };
    struct sbx_exec_spec cw = { .argv = pw, .cwd = "/tmp" };
    sbx_exec_run_buffered(rt, "main", &cw, NULL, 0, 5000, 0, &o);
    ok(strcmp(o.out, "/tmp\n") == 0, "cwd honoured");
    sbx_exec_output_free(&o);
    struct sbx_exec *e = NULL;
    cw.cwd = "/proc/1";
    ok(sbx_exec_start(rt, "main", &cw, &e) == -EINVAL, "cwd under /proc refused");

    uint64_t t0 = sbx_now_ms();
    sh(rt, "main", "sleep 30 & sleep 30", NULL, 300, &o);
    ok(o.reason == SBX_EXEC_TIMEOUT && sbx_now_ms() - t0 < 3000, "timeout kills the process group");
    sbx_exec_output_free(&o);
    sh(rt, "main", "head -c 3000000 /dev/zero", NULL, 5000, &o);
    ok(o.truncated && o.out_len == 1 << 20 && o.result.exit_code == 0, "output cap + truncated flag");
    sbx_exec_output_free(&o);

    /* tty */
    const char *targv[] = { "/bin/sh", "-c", "tty; stty size", NULL };
    struct sbx_exec_spec ts = { .argv = targv, .tty = true, .rows = 30, .cols = 100 };
    if (sbx_exec_start(rt, "main", &ts, &e) == 0) {
        char buf[256] = "";
        size_t len = 0;
        struct sbx_exec_result res;
        uint64_t t = sbx_now_ms();
        while (sbx_now_ms() - t < 5000) {
            ssize_t n = read(e->pty_fd, buf + len, sizeof buf - 1 - len);
            if (n > 0)
                len += (size_t)n;
            else if (n < 0 && errno != EAGAIN)
                break; /* EIO: slave closed */
            else
                usleep(2000);
        }
        buf[len] = 0;
        while (sbx_exec_result(e, &res) == -EAGAIN && sbx_now_ms() - t < 5000)
            usleep(1000);
        ok(strstr(buf, "/dev/pts/0") && strstr(buf, "30 100"), "tty: controlling pty with size");
        sbx_exec_free(e);
    } else {
        ok(0, "tty exec start");
    }

    /* concurrency: several threads exec at once */
    pthread_t th[4];
    struct thr ts4[4];
    for (int i = 0; i < 4; i++) {
        ts4[i] = (struct thr){ .rt = rt };
        pthread_create(&th[i], NULL, exec_thread, &ts4[i]);
    }
    int fails = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        fails += ts4[i].fails;
    }
    ok(fails == 0, "60 concurrent execs from 4 threads");
}

static void test_files(struct sbx_runtime *rt)
{
    size_t n = 1 << 20;
    char *data = xmalloc(n), *back = NULL;
    size_t blen = 0;
    for (size_t i = 0; i < n; i++)
        data[i] = (char)(rand() & 0xff);
    ok(sbx_write_file(rt, "main", "/workspace/dir/sub/blob.bin", data, n, 0640, SBX_WRITE_MKDIRS) == 0,
       "write_file 1 MiB with mkdir -p");
    ok(sbx_read_file(rt, "main", "dir/sub/blob.bin", 2 << 20, &back, &blen) == 0 && blen == n &&
       memcmp(back, data, n) == 0, "read_file byte-identical");
    free(back);
    char *out = NULL;
    shx(rt, "main", "stat -c '%a %u' /workspace/dir/sub/blob.bin", &out);
    ok(strcmp(out, "640 1000\n") == 0, "mode and owner as written (%s)", out);
    free(out);
    shx(rt, "main", "ln -s /etc/passwd /workspace/pw; ln -s / /workspace/root; ln -s ../.. /workspace/dir/up", NULL);
    ok(sbx_read_file(rt, "main", "pw", 1 << 20, &back, &blen) == -EINVAL, "symlink to /etc/passwd refused");
    ok(sbx_read_file(rt, "main", "root/etc/passwd", 1 << 20, &back, &blen) == -EINVAL, "symlink to / refused");
    ok(sbx_read_file(rt, "main", "dir/up/etc/passwd", 1 << 20, &back, &blen) == -EINVAL, "relative escape refused");
    ok(sbx_write_file(rt, "main", "root/tmp/evil", "x", 1, 0644, 0) == -EINVAL, "write through symlink refused");
    ok(sbx_write_file(rt, "main", "pw", "x", 1, 0644, 0) == -EINVAL, "write onto outside symlink refused");
    ok(sbx_read_file(rt, "main", "../etc/passwd", 1 << 20, &back, &blen) == -EINVAL, "../ refused");
    ok(sbx_read_file(rt, "main", "/workspace/../etc/passwd", 1 << 20, &back, &blen) == -EINVAL, "/workspace/.. refused");
    ok(sbx_read_file(rt, "main", "/etc/passwd", 1 << 20, &back, &blen) == -EINVAL, "absolute outside refused");
    ok(sbx_path_check("a\0b", 3, NULL) == -EINVAL, "NUL refused");
    char *longp = xmalloc(5000);
    memset(longp, 'a', 4999);
    longp[4999] = 0;
    ok(sbx_path_check(longp, 4999, NULL) == -EINVAL, "over 4096 bytes refused");
    free(longp);
    char *rel = NULL;
    ok(sbx_path_check("/workspace/./a//b/../c", 22, &rel) == 0 && strcmp(rel, "a/c") == 0, "normalisation");
    free(rel);
    ok(rt->ops->mkdir_p(rt, "main", "m1/m2/m3", 0755) == 0 && rt->ops->mkdir_p(rt, "main", "m1/m2", 0755) == 0,
       "mkdir -p");
    struct sbx_dirent *d = NULL;
    int k = rt->ops->list_dir(rt, "main", "/workspace", &d);
    bool has_dir = false, has_pw = false;
    for (int i = 0; i < k; i++) {
        has_dir |= strcmp(d[i].name, "dir") == 0 && d[i].type == 'd';
        has_pw |= strcmp(d[i].name, "pw") == 0 && d[i].type == 'l';
    }
    ok(k >= 4 && has_dir && has_pw, "list_dir");
    if (k >= 0)
        sbx_dirents_free(d, (size_t)k);
    ok(rt->ops->list_dir(rt, "main", "root", &d) == -EINVAL, "list_dir through symlink refused");
    ok(sbx_read_file(rt, "main", "nope", 10, &back, &blen) == -ENOENT, "missing file -ENOENT");
    ok(sbx_read_file(rt, "main", "dir", 10, &back, &blen) == -EISDIR, "directory -EISDIR");
    free(data);
}

static void test_limits(struct sbx_runtime *rt)
{
    struct sbx_exec_output o;
    ok(create(rt, "lim", 64ull << 20, 32) == 0, "create limited sandbox (64 MiB, 32 pids)");
    sh(rt, "lim", "python3 -c 'b = bytearray(300 << 20); print(len(b))'", NULL, 20000, &o);
    ok(o.result.oom && o.reason == SBX_EXEC_OOM, "300 MiB allocation is OOM-killed and reported (exit %d sig %d)",
       o.result.exit_code, o.result.signal);
    sbx_exec_output_free(&o);
    sh(rt, "lim", "b() { b & b & wait; }; b", NULL, 2000, &o);
    ok(1, "fork bomb ended (reason %s, exit %d)", sbx_exec_reason_name(o.reason), o.result.exit_code);
    sbx_exec_output_free(&o);
    struct sbx_sandbox_stats st;
    char p[256];
    uint64_t peak = 0;
    snprintf(p, sizeof p, "/sys/fs/cgroup/pids/%s/lim/pids.peak", prefix);
    FILE *f = fopen(p, "r");
    if (f) {
        if (fscanf(f, "%lu", &peak) != 1)
            peak = 0;
        fclose(f);
    }
    ok(peak > 0 && peak <= 32, "pids stayed within the limit (peak %lu)", (unsigned long)peak);
    int rc = -1;
    for (int i = 0; i < 50 && rc != 0; i++) {
        rc = shx(rt, "lim", "true", NULL);
        if (rc)
            usleep(100000);
    }
    ok(rc == 0, "sandbox usable after the fork bomb");
    int sr = rt->ops->stats(rt, "lim", &st);
    ok(sr == 0 && st.oom_kills >= 1 && st.memory_peak_bytes > 0,
       "stats (oom_kills %lu, peak %lu, cpu %lu us)", (unsigned long)st.oom_kills,
       (unsigned long)st.memory_peak_bytes, (unsigned long)st.cpu_usec);
    ok(getppid() > 0 && kill(getpid(), 0) == 0, "test process fine");
}

static void test_destroy(struct sbx_runtime *rt, const char *id)
{
    enum sbx_state s;
    pid_t pid = 0;
    rt->ops->status(rt, id, &s, &pid);
    ok(rt->ops->destroy(rt, id) == 0, "destroy %s", id);
    char p[64];
    snprintf(p, sizeof p, "/proc/%d", (int)pid);
    /* destroy killed the init; an init orphaned by a killed daemon is reaped by whoever
     * adopted it (PID 1 here), asynchronously — give that up to 10 s on a loaded machine */
    for (int i = 0; i < 1000 && pid > 0 && access(p, F_OK) == 0; i++) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        usleep(10000);
    }
    ok(pid > 0 && access(p, F_OK) < 0, "init %d gone", (int)pid);
    ok(!cg_exists("memory", id) && !cg_exists("pids", id) && !cg_exists("cpu", id) &&
       !cg_exists("unified", id), "no cgroup dirs left");
    ok(rt->ops->status(rt, id, &s, NULL) == 0 && s == SBX_STATE_ABSENT, "status absent after destroy");
}

static void test_recovery(struct sbx_runtime *rt)
{
    int pfd[2];
    if (pipe(pfd) < 0)
        abort();
    pid_t child = fork();
    if (child == 0) {
        /* the "daemon": own runtime + spawner, creates a sandbox, then dies with SIGKILL */
        close(pfd[0]);
        struct sbx_runtime *rt2;
        if (start_rt(&rt2) < 0 || create(rt2, "rec", 128ull << 20, 64) < 0)
            _exit(1);
        (void)!write(pfd[1], "x", 1);
        pause();
        _exit(0);
    }
    close(pfd[1]);
    char c;
    bool created = read(pfd[0], &c, 1) == 1;
    close(pfd[0]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    ok(created, "sandbox created by a daemon that was then SIGKILLed");
    usleep(50000);

    struct sbx_sandbox_info *l = NULL;
    int n = rt->ops->list(rt, &l);
    bool found = false;
    for (int i = 0; i < n; i++)
        found |= strcmp(l[i].id, "rec") == 0 && l[i].state == SBX_STATE_RUNNING;
    free(l);
    ok(found, "list finds the orphaned sandbox running");
    char *out = NULL;
    ok(shx(rt, "rec", "echo adopted", &out) == 0 && strcmp(out, "adopted\n") == 0, "exec works after recovery");
    free(out);
    test_destroy(rt, "rec");
}

int main(void)
{
    if (geteuid() != 0) {
        printf("1..0 # SKIP needs root\n");
        return 77;
    }
    unsigned long maxns = 0;
    FILE *f = fopen("/proc/sys/user/max_user_namespaces", "r");
    if (!f || fscanf(f, "%lu", &maxns) != 1 || maxns == 0) {
        printf("1..0 # SKIP no user namespaces\n");
        return 77;
    }
    fclose(f);
    /* orphaned inits of the recovery test are re-parented to us: we reap them */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    snprintf(state, sizeof state, "/tmp/sbxt-%d", (int)getpid());
    snprintf(prefix, sizeof prefix, "sbxtest-%d", (int)getpid());
    struct sbx_runtime *rt;
    if (start_rt(&rt) < 0) {
        printf("1..0 # SKIP runtime unavailable\n");
        return 77;
    }
    uint64_t t = sbx_now_us();
    test_basic(rt);
    diag("basic: %.1f ms", (sbx_now_us() - t) / 1000.0);
    test_files(rt);
    test_limits(rt);
    test_destroy(rt, "lim");
    test_destroy(rt, "main");
    test_recovery(rt);
    rt->ops->free(rt);
    char p[128];
    for (const char *const *c = (const char *const[]){ "memory", "pids", "cpu", "cpuacct", "unified", NULL }; *c; c++) {
        snprintf(p, sizeof p, "/sys/fs/cgroup/%s/%s", *c, prefix);
        rmdir(p);
    }
    snprintf(p, sizeof p, "rm -rf %s", state);
    if (system(p) != 0)
        diag("cleanup of %s failed", state);
    printf("1..%d\n", tap_n);
    return tap_fail ? 1 : 0;
}
