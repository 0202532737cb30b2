/*
 * runtime.h — the sandbox runtime interface (local backend in runtime/, Kubernetes backend in k8s/).
 *
 * A runtime turns a sandbox id into an isolated, long-lived environment and runs commands and
 * file operations inside it. The controller owns exactly one `struct sbx_runtime` per backend and
 * calls its ops through the inline wrappers below.
 *
 * Threads: every op may be called concurrently from several worker threads, EXCEPT that the
 * lifecycle ops (create/stop/destroy) for the SAME id must not race each other (the controller
 * serialises per sandbox). Ops marked "blocking" may sleep (milliseconds normally, seconds
 * worst case) and must not be called from the event-loop thread. The exec fds are nonblocking
 * and may be polled from any thread (or adopted by libwebsockets).
 *
 * Errors (docs/internals/CONVENTIONS.md): 0 or a count on success, -errno on failure:
 *   -EINVAL   bad argument; for file ops ALSO "invalid path" (not under /workspace, NUL, `..`
 *             escaping, > 4096 bytes, or a symlink leading outside /workspace) → API 400
 *             invalid_path. Use sbx_path_check() first if the API must tell both apart.
 *   -ENOENT   sandbox (or file) does not exist / is not running
 *   -ENOTDIR, -EISDIR, -EACCES, -EROFS, -ENOSPC, -EFBIG  file op errors as the sandbox sees them
 *   -E2BIG    over a limit (argv/env size, file larger than max)
 *   -EIO      the runtime itself failed (init died, spawner gone, protocol violation)
 *   -ETIMEDOUT  a blocking op timed out
 * Output parameters are written only on success.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <sys/types.h>
#include <unistd.h>

#define SBX_ID_MAX 64          /* ids: [A-Za-z0-9_-]{1,64} (uuids) */
#define SBX_PATH_MAX 4096      /* file-op paths, cwd */

struct sbx_runtime;
struct sbx_exec;

/* Where and from what a cluster backend runs a sandbox (k8s: the pod's image,
 * runtimeClassName, nodeSelector, tolerations). Borrowed; the local backend ignores it. */
struct sbx_toleration {
    const char *key, *op, *value, *effect; /* op "Equal"/"Exists"; NULL = omitted */
};
struct sbx_placement {
    const char *image;                 /* NULL/"" = the backend's default image */
    const char *runtime_class;         /* NULL/"" = the backend's default */
    const char *const *node_selector;  /* "key=value", NULL-terminated or NULL */
    const struct sbx_toleration *tolerations;
    size_t n_tolerations;
};

struct sbx_sandbox_spec {
    const char *id;            /* [A-Za-z0-9_-]{1,64}; the caller keeps ownership */
    unsigned cpus_milli;       /* 0 = unlimited; 500 = half a CPU */
    uint64_t memory_bytes;     /* 0 = unlimited (memory + memsw) */
    unsigned pids_max;         /* 0 = unlimited */
    bool network;              /* reserved: the local backend always gives loopback only */
    const char *const *env;    /* KEY=VAL, NULL-terminated or NULL: default env for every exec */
    const char *org_id;        /* owner, for backends that label (k8s); NULL = unknown */
    const char *pool;          /* warm pool (template name) the sandbox may be claimed from
                                  when its shape matches (k8s); NULL = always a cold create */
    const struct sbx_placement *placement; /* NULL = the backend's defaults */
};

struct sbx_exec_spec {
    const char *const *argv;   /* NULL-terminated, argv[0] looked up in PATH; required */
    const char *const *env;    /* KEY=VAL overrides on top of the sandbox default env; may be NULL */
    const char *cwd;           /* absolute path inside the sandbox; NULL = /workspace */
    bool tty;                  /* true: one pty (pty_fd), stdout and stderr merged */
    unsigned rows, cols;       /* initial window size for tty (0 = 24x80) */
};

/*
 * A running command. The fds belong to the exec (closed by exec_free); they are nonblocking
 * and CLOEXEC. Callers may close stdin_fd early (set the field to -1) to send EOF.
 *   pipes mode: stdin_fd (write end), stdout_fd, stderr_fd (read ends); pty_fd = -1
 *   tty mode:   pty_fd (pty master, read+write); stdin/stdout/stderr = -1
 *   ctl_fd:     becomes readable when the exit status (or a runtime failure) arrives;
 *               then call exec_result(). Never read/write it directly.
 */
struct sbx_exec {
    int stdin_fd, stdout_fd, stderr_fd, pty_fd, ctl_fd;
    pid_t pid;                 /* pid inside the sandbox (informational) */
    void *priv;                /* backend data */
    const struct sbx_runtime_ops *ops;
};

struct sbx_exec_result {
    int exit_code;             /* valid when signal == 0 */
    int signal;                /* terminating signal, 0 if exited normally */
    bool oom;                  /* the sandbox's OOM-kill counter rose while it ran */
};

enum sbx_state {
    SBX_STATE_ABSENT = 0,      /* nothing on the host */
    SBX_STATE_RUNNING,         /* init alive and verified (pid + start time) */
    SBX_STATE_EXITED,          /* leftovers (cgroup dir, pidfile) but no live init: stop/destroy it */
    SBX_STATE_STOPPED,         /* only the workspace is kept (after stop) */
};
const char *sbx_state_name(enum sbx_state s);

struct sbx_sandbox_info {
    char id[SBX_ID_MAX + 1];
    enum sbx_state state;
    pid_t pid;                 /* host pid of the init, 0 if not running */
};

struct sbx_sandbox_stats {
    uint64_t cpu_usec;         /* total CPU consumed (cpuacct), 0 if unavailable */
    uint64_t memory_bytes;     /* current usage */
    uint64_t memory_peak_bytes;
    uint64_t pids_current;
    uint64_t oom_kills;        /* memory.oom_control oom_kill counter */
};

struct sbx_dirent {
    char *name;                /* owned by the array (sbx_dirents_free) */
    char type;                 /* 'f' file, 'd' dir, 'l' symlink, 'o' other */
    uint64_t size;
    unsigned mode;             /* permission bits */
    int64_t mtime;             /* unix seconds */
};

#define SBX_WRITE_MKDIRS 0x1   /* write_file: create missing parent directories (mode 0755) */

struct sbx_runtime_ops {
    const char *name;          /* "local", "kubernetes" */

    /* Create and start a sandbox; returns when it is ready for exec. Idempotent: an already
     * running sandbox with this id returns 0. Blocking (ms). err gets one human line (a runtime
     * step + errno) on failure. Errors: -EINVAL bad spec, -EIO set-up failed. */
    int (*create)(struct sbx_runtime *rt, const struct sbx_sandbox_spec *spec, char *err,
                  size_t errlen);

    /* Observed state of one sandbox (no side effects). Blocking (a few syscalls). ret_pid may
     * be NULL. */
    int (*status)(struct sbx_runtime *rt, const char *id, enum sbx_state *ret, pid_t *ret_pid);

    /* Start a command. Blocking until the init confirmed the fork (~1 ms). *ret is owned by the
     * caller: free with exec_free(). -ENOENT sandbox not running, -EINVAL bad cwd/argv,
     * -E2BIG argv/env over the protocol limits. */
    int (*exec_start)(struct sbx_runtime *rt, const char *id, const struct sbx_exec_spec *spec,
                      struct sbx_exec **ret);
    /* Nonblocking. 0 + *ret once ctl_fd signalled the exit; -EAGAIN if not yet; -EIO if the
     * init went away without a status (sandbox destroyed). Idempotent after completion. */
    int (*exec_result)(struct sbx_exec *e, struct sbx_exec_result *ret);
    /* Send a signal to the command's process group. Nonblocking; -ESRCH once it exited. */
    int (*signal)(struct sbx_exec *e, int sig);
    /* tty only: set the window size (SIGWINCH to the foreground group). -ENOTTY otherwise. */
    int (*resize)(struct sbx_exec *e, unsigned rows, unsigned cols);
    /* Close everything. If the command still runs, the init SIGKILLs its process group. */
    void (*exec_free)(struct sbx_exec *e);

    /* Kill all processes, remove cgroups/socket; keep the workspace. Idempotent (absent → 0).
     * Blocking (ms; up to ~5 s if an orphaned init is reaped slowly). */
    int (*stop)(struct sbx_runtime *rt, const char *id);
    /* stop + delete the workspace. Idempotent. Blocking. */
    int (*destroy)(struct sbx_runtime *rt, const char *id);
    /* Everything that exists on the host (running, exited leftovers, stopped workspaces), for
     * the reconciler. *ret is malloc'ed (free()), count returned. Blocking. */
    int (*list)(struct sbx_runtime *rt, struct sbx_sandbox_info **ret);
    /* Resource usage. -ENOENT if no cgroup. Blocking (reads a few files). */
    int (*stats)(struct sbx_runtime *rt, const char *id, struct sbx_sandbox_stats *ret);

    /* File operations run INSIDE the sandbox as its uid with its own view; paths are absolute
     * under /workspace or relative to it. All blocking. */
    /* Open a regular file for reading; *ret_fd is a CLOEXEC fd owned by the caller (read it
     * like any file), *ret_size its size. */
    int (*open_read)(struct sbx_runtime *rt, const char *id, const char *path, int *ret_fd,
                     uint64_t *ret_size);
    /* Create/truncate a regular file with mode (& 07777, no setuid/setgid: masked to 01777)
     * and return a CLOEXEC write fd owned by the caller; stream the content into it, then end
     * the write with sbx_rt_close_write() (never a bare close()). A backend may check the path
     * only when the content is complete: the errors listed above then come from
     * sbx_rt_close_write(). */
    int (*open_write)(struct sbx_runtime *rt, const char *id, const char *path, unsigned mode,
                      unsigned flags, int *ret_fd);
    /* Ends a write started by open_write: closes fd (always) and returns once the content is
     * in place, or the write's error. NULL: close() is all it takes (the write is complete
     * when the fd is). Blocking. */
    int (*close_write)(struct sbx_runtime *rt, const char *id, int fd);
    /* List a directory. *ret is owned by the caller (sbx_dirents_free). Returns the count. */
    int (*list_dir)(struct sbx_runtime *rt, const char *id, const char *path,
                    struct sbx_dirent **ret);
    /* mkdir -p. Existing directories are fine. */
    int (*mkdir_p)(struct sbx_runtime *rt, const char *id, const char *path, unsigned mode);

    /* Stop background helpers and free the runtime. Sandboxes keep running. */
    void (*free)(struct sbx_runtime *rt);
};

struct sbx_runtime {
    const struct sbx_runtime_ops *ops;
    void *priv;
};

/* ---- convenience (runtime/exec-buffered.c, runtime/rtutil.c; backend independent) ---- */

enum sbx_exec_reason { SBX_EXEC_EXITED = 0, SBX_EXEC_TIMEOUT, SBX_EXEC_OOM, SBX_EXEC_SIGNALED };
const char *sbx_exec_reason_name(enum sbx_exec_reason r);

struct sbx_exec_output {
    struct sbx_exec_result result;
    char *out, *err;           /* malloc'ed, NUL-terminated (binary safe with *_len) */
    size_t out_len, err_len;
    bool truncated;            /* output beyond max_output was discarded */
    enum sbx_exec_reason reason;
    uint64_t duration_us;
};

/* Run a command to completion: feed stdin_data, collect stdout/stderr up to max_output bytes
 * each (0 = 1 MiB), kill the process group with SIGKILL after timeout_ms (0 = none). Blocking;
 * any worker thread. ret is filled on success (free with sbx_exec_output_free). */
int sbx_exec_run_buffered(struct sbx_runtime *rt, const char *id, const struct sbx_exec_spec *spec,
                          const void *stdin_data, size_t stdin_len, unsigned timeout_ms,
                          size_t max_output, struct sbx_exec_output *ret);
void sbx_exec_output_free(struct sbx_exec_output *o);

/* Whole-file helpers on top of open_read/open_write. read: -EFBIG if larger than max. */
int sbx_read_file(struct sbx_runtime *rt, const char *id, const char *path, size_t max,
                  char **ret, size_t *ret_len);
int sbx_write_file(struct sbx_runtime *rt, const char *id, const char *path, const void *data,
                   size_t len, unsigned mode, unsigned flags);

/* Lexical path check shared by all backends: 0 if `path` (len bytes, may contain NUL → refused)
 * names /workspace or something under it after normalisation; *ret (may be NULL) receives the
 * normalised path RELATIVE to /workspace ("" for /workspace itself, malloc'ed). -EINVAL if not. */
int sbx_path_check(const char *path, size_t len, char **ret);
bool sbx_id_valid(const char *id);
void sbx_dirents_free(struct sbx_dirent *d, size_t n);

/* ---- inline wrappers ---- */
static inline int sbx_rt_create(struct sbx_runtime *rt, const struct sbx_sandbox_spec *s, char *err,
                                size_t errlen)
{
    return rt->ops->create(rt, s, err, errlen);
}
static inline int sbx_rt_close_write(struct sbx_runtime *rt, const char *id, int fd)
{
    if (rt->ops->close_write)
        return rt->ops->close_write(rt, id, fd);
    return close(fd) < 0 ? -errno : 0;
}
static inline int sbx_exec_start(struct sbx_runtime *rt, const char *id,
                                 const struct sbx_exec_spec *s, struct sbx_exec **ret)
{
    return rt->ops->exec_start(rt, id, s, ret);
}
static inline int sbx_exec_result(struct sbx_exec *e, struct sbx_exec_result *r)
{
    return e->ops->exec_result(e, r);
}
static inline int sbx_exec_signal(struct sbx_exec *e, int sig)
{
    return e->ops->signal(e, sig);
}
static inline int sbx_exec_resize(struct sbx_exec *e, unsigned rows, unsigned cols)
{
    return e->ops->resize(e, rows, cols);
}
static inline void sbx_exec_free(struct sbx_exec *e)
{
    if (e)
        e->ops->exec_free(e);
}
