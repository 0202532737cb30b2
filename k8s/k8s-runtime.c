/*
 * k8s-runtime.c — the Kubernetes runtime backend. See docs/internals/K8S-RUNTIME.md.
 *
 * State comes from ONE pod watch (label app=sandboxd) that feeds a cache; create waits on a
 * condition variable for the watch to report Running+Ready (no polling). Exec goes through the
 * client's pods/exec WebSocket; every command runs through a `sh` script, sent on stdin (the
 * request path is short), that sets the cwd and env (the exec API has neither) and records its
 * pid for signal() and the container's OOM-kill count for the result. Files move as tar
 * streams through exec; what comes back from the pod is parsed by the strict reader
 * (common/tar.h) into an unlinked temp file and nothing else; a write ends in close_write,
 * which waits for the pod's verified answer. The warm pool (k8s-pool.c) is fed by the same
 * watch; create claims a pool pod when the sandbox's shape matches one, and a sandbox's pod is
 * always found by its annotation (a claimed pod keeps its pool name).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/crypto.h"
#include "common/json.h"
#include "common/log.h"
#include "common/tar.h"
#include "k8s/k8s-pool.h"
#include "k8s/k8s-runtime.h"
#include "k8s/k8s.h"
#include "k8s/podspec.h"

#define CREATE_TIMEOUT_S K8S_RUNTIME_CREATE_TIMEOUT_S
#define CREATE_POST_ATTEMPTS 6
#define DELETE_TIMEOUT_S 60
#define FILE_MAX (8ULL << 30)
#define DONE_MAX 128  /* finished execs remembered per pod (their files are removed later) */
#define DONE_FLUSH 16 /* removed by the next exec's script once this many have finished */

struct pod {
    char id[SBX_ID_MAX + 1];
    char name[K8S_POD_NAME_MAX];
    bool present;          /* in the API (as far as the watch knows) */
    bool running, ready, terminating, finished;
    bool deleting;         /* we asked for the delete */
    char reason[16];       /* typed reason, "" = none */
    char **env;            /* the sandbox default env (from create) */
    char done[DONE_MAX][33]; /* finished execs whose file the next exec's script removes */
    unsigned n_done;
};

struct upload;

struct krt {
    struct k8s_client *c;
    char *ns, *image, *runtime_class;
    uint32_t uid;
    uint64_t timeout_s;
    struct k8s_watch *w;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool synced;
    struct pod *pods;
    size_t n, cap;
    k8s_runtime_event_cb cb;
    void *cb_ud;
    struct k8s_pool *pool;  /* warm pool (k8s-pool.c): fed by the same watch */
    struct upload *uploads; /* open_write … close_write */
};

#define K(rt) ((struct krt *)(rt)->priv)

/* ---- cache ---- */

static struct pod *pod_find(struct krt *k, const char *id)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->pods[i].id, id) == 0)
            return &k->pods[i];
    return NULL;
}

static struct pod *pod_get(struct krt *k, const char *id)
{
    struct pod *p = pod_find(k, id);
    if (p)
        return p;
    if (k->n == k->cap) {
        k->cap = k->cap ? k->cap * 2 : 16;
        k->pods = xrealloc(k->pods, k->cap * sizeof *k->pods);
    }
    p = &k->pods[k->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    k8s_pod_name(id, p->name);
    return p;
}

static enum sbx_state pod_state(const struct pod *p)
{
    if (!p || !p->present)
        return SBX_STATE_ABSENT;
    if (p->running && p->ready && !p->terminating)
        return SBX_STATE_RUNNING;
    if (p->finished || p->terminating || p->reason[0])
        return SBX_STATE_EXITED;
    return SBX_STATE_ABSENT; /* pending: not there yet */
}

static void notify(struct krt *k, struct pod *p)
{
    if (k->cb)
        k->cb(p->id, pod_state(p), p->reason, k->cb_ud);
}

static const char *waiting_reason(yajl_val cs)
{
    /* containerStatuses[*].state.waiting.reason / state.terminated.reason */
    if (!cs || !YAJL_IS_ARRAY(cs))
        return NULL;
    for (size_t i = 0; i < cs->u.array.len; i++) {
        yajl_val c = cs->u.array.values[i];
        const char *w = k8s_obj_str(c, "state", "waiting", "reason", NULL);
        if (w && (!strcmp(w, "ErrImagePull") || !strcmp(w, "ImagePullBackOff") ||
                  !strcmp(w, "InvalidImageName") || !strcmp(w, "ErrImageNeverPull")))
            return "image_pull";
        const char *t = k8s_obj_str(c, "state", "terminated", "reason", NULL);
        if (t && !strcmp(t, "OOMKilled"))
            return "oom";
        t = k8s_obj_str(c, "lastState", "terminated", "reason", NULL);
        if (t && !strcmp(t, "OOMKilled"))
            return "oom";
    }
    return NULL;
}

/* What a pod object says: p's present/running/ready/terminating/finished and its typed reason
 * (written only when there is one). */
static void pod_observe(struct pod *p, yajl_val obj)
{
    const char *phase = k8s_obj_str(obj, "status", "phase", NULL);
    p->present = true;
    p->terminating = k8s_obj_str(obj, "metadata", "deletionTimestamp", NULL) != NULL;
    p->running = phase && !strcmp(phase, "Running");
    p->finished = phase && (!strcmp(phase, "Failed") || !strcmp(phase, "Succeeded"));
    p->ready = false;
    yajl_val conds = sbx_json_get(sbx_json_get(obj, "status"), "conditions");
    for (size_t i = 0; conds && YAJL_IS_ARRAY(conds) && i < conds->u.array.len; i++) {
        const char *t = sbx_json_get_str(conds->u.array.values[i], "type");
        const char *s = sbx_json_get_str(conds->u.array.values[i], "status");
        if (t && s && !strcmp(t, "Ready"))
            p->ready = !strcmp(s, "True");
    }
    const char *why = waiting_reason(sbx_json_get(sbx_json_get(obj, "status"),
                                                  "containerStatuses"));
    const char *sr = k8s_obj_str(obj, "status", "reason", NULL);
    if (!why && sr && !strcmp(sr, "Evicted"))
        why = "evicted";
    if (!why && sr && !strcmp(sr, "DeadlineExceeded"))
        why = "timeout";
    if (!why && p->finished)
        why = "failed";
    if (why)
        snprintf(p->reason, sizeof p->reason, "%s", why);
}

static void pod_update(struct krt *k, yajl_val obj)
{
    const char *id = k8s_obj_str(obj, "metadata", "annotations", K8S_ANNOTATION_SANDBOX, NULL);
    if (!id || !sbx_id_valid(id))
        return;
    struct pod *p = pod_get(k, id);
    const char *name = k8s_obj_name(obj);
    if (name)
        snprintf(p->name, sizeof p->name, "%s", name);
    pod_observe(p, obj);
    notify(k, p);
}

static void pod_gone(struct krt *k, struct pod *p)
{
    if (!p->present)
        return;
    p->present = p->running = p->ready = p->terminating = p->finished = false;
    if (!p->deleting && !p->reason[0])
        snprintf(p->reason, sizeof p->reason, "deleted");
    notify(k, p);
}

static int watch_cb(const struct k8s_watch_event *ev, void *ud)
{
    struct krt *k = ud;
    pthread_mutex_lock(&k->mu);
    k8s_pool_observe(k->pool, ev->type, ev->object);
    switch (ev->type) {
    case K8S_WATCH_RESYNC: {
        yajl_val items = k8s_list_items(ev->object);
        for (size_t i = 0; i < k->n; i++) {
            bool found = false;
            for (size_t j = 0; items && YAJL_IS_ARRAY(items) && j < items->u.array.len; j++) {
                const char *id = k8s_obj_str(items->u.array.values[j], "metadata", "annotations",
                                             K8S_ANNOTATION_SANDBOX, NULL);
                found |= id && !strcmp(id, k->pods[i].id);
            }
            if (!found)
                pod_gone(k, &k->pods[i]);
        }
        for (size_t j = 0; items && YAJL_IS_ARRAY(items) && j < items->u.array.len; j++)
            pod_update(k, items->u.array.values[j]);
        k->synced = true;
        break;
    }
    case K8S_WATCH_ADDED:
    case K8S_WATCH_MODIFIED:
        pod_update(k, ev->object);
        break;
    case K8S_WATCH_DELETED: {
        const char *id = k8s_obj_str(ev->object, "metadata", "annotations",
                                     K8S_ANNOTATION_SANDBOX, NULL);
        struct pod *p = id ? pod_find(k, id) : NULL;
        if (p)
            pod_gone(k, p);
        break;
    }
    default:
        break;
    }
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    return 0;
}

/* Waits (mu held) until pred or the deadline; returns false on timeout. */
static bool wait_until(struct krt *k, time_t deadline)
{
    struct timespec ts = { .tv_sec = deadline };
    return pthread_cond_timedwait(&k->cv, &k->mu, &ts) == 0 || time(NULL) < deadline;
}

/* ---- lifecycle ---- */

static int kerr(int r, const struct k8s_error *e, char *err, size_t errlen, const char *step)
{
    if (err && errlen)
        snprintf(err, errlen, "%s: %s (%s)", step, e->message[0] ? e->message : strerror(-r),
                 k8s_err_type_name(e->type));
    return r;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* POSTs the sandbox's pod. Its name is deterministic, so a retry cannot make a second pod:
 * AlreadyExists (an earlier attempt whose answer was lost) is success. Retried: no answer
 * (transport, timeout) and 5xx (an API server restarting, etcd trouble) with a doubling backoff
 * that honours Retry-After; 429 the client retries itself. Anything else is final. */
static int post_pod(struct krt *k, const char *json, struct k8s_error *e)
{
    unsigned backoff = 250;
    for (int attempt = 1;; attempt++) {
        int r = k8s_pod_create(k->c, k->ns, json, NULL, e);
        if (r >= 0 || e->type == K8S_ALREADY_EXISTS)
            return 0;
        bool again = e->type == K8S_TRANSPORT || e->type == K8S_TIMEOUT ||
                     (e->type == K8S_SERVER_ERROR && e->http_status != 501);
        if (!again || attempt >= CREATE_POST_ATTEMPTS)
            return r;
        unsigned wait = backoff + (unsigned)(rand() % (int)(backoff / 2 + 1));
        if (e->retry_after_s)
            wait = MAX(wait, MIN(e->retry_after_s, 30u) * 1000u);
        sleep_ms(wait);
        backoff = MIN(backoff * 2, 4000u);
    }
}

static int k_destroy(struct sbx_runtime *rt, const char *id);

/* Waits for the pod's Running + Ready through the watch; a typed reason fails at once. */
static int wait_ready(struct krt *k, const char *id, const char *name, char *err, size_t errlen)
{
    pthread_mutex_lock(&k->mu);
    time_t dl = time(NULL) + CREATE_TIMEOUT_S;
    int r = -ETIMEDOUT;
    for (;;) {
        struct pod *p = pod_find(k, id);
        if (p && pod_state(p) == SBX_STATE_RUNNING) {
            r = 0;
            break;
        }
        if (p && p->reason[0]) {
            snprintf(err, errlen, "pod %s: %s", name, p->reason);
            r = -EIO;
            break;
        }
        if (time(NULL) >= dl) {
            snprintf(err, errlen, "pod %s: not ready after %d s", name, CREATE_TIMEOUT_S);
            break;
        }
        wait_until(k, dl);
    }
    pthread_mutex_unlock(&k->mu);
    return r;
}

static int k_create(struct sbx_runtime *rt, const struct sbx_sandbox_spec *spec, char *err,
                    size_t errlen)
{
    struct krt *k = K(rt);
    if (!spec || !sbx_id_valid(spec->id))
        return -EINVAL;
    struct k8s_pod_opts o = {
        .sandbox_id = spec->id,
        .org_id = spec->org_id,
        .image = k->image,
        .runtime_class = k->runtime_class,
        .cpus_milli = spec->cpus_milli,
        .memory_bytes = spec->memory_bytes,
        .timeout_s = k->timeout_s,
        .uid = k->uid,
        .network = spec->network,
        .env = spec->env,
    };
    struct k8s_toleration tols[K8S_TOLERATIONS_MAX];
    int r = k8s_placement_apply(spec->placement, &o, tols);
    if (r < 0) {
        snprintf(err, errlen, "pod spec: more than %d tolerations", K8S_TOLERATIONS_MAX);
        return r;
    }
    _cleanup_free_ char *json = NULL;
    size_t len;
    r = k8s_podspec_pod(&o, &json, &len);
    if (r < 0) {
        snprintf(err, errlen, "pod spec: invalid options");
        return r;
    }
    pthread_mutex_lock(&k->mu);
    struct pod *p = pod_get(k, spec->id);
    p->reason[0] = 0;
    p->deleting = false;
    for (size_t i = 0; p->env && p->env[i]; i++)
        free(p->env[i]);
    free(p->env);
    p->env = NULL;
    size_t ne = 0;
    while (spec->env && spec->env[ne])
        ne++;
    p->env = xcalloc(ne + 1, sizeof(char *));
    for (size_t i = 0; i < ne; i++)
        p->env[i] = xstrdup(spec->env[i]);
    char name[K8S_POD_NAME_MAX];
    snprintf(name, sizeof name, "%s", p->name);
    bool have_pod = p->present; /* create is idempotent: a claimed pod is not claimed twice */
    pthread_mutex_unlock(&k->mu);

    /* a ready pod of the warm pool takes on the sandbox's identity, else a cold create */
    if (!have_pod && (r = k8s_pool_claim(k->pool, spec, name, err, errlen)) != -ENOENT) {
        if (r < 0)
            return r;
        pthread_mutex_lock(&k->mu);
        snprintf(pod_get(k, spec->id)->name, sizeof name, "%s", name);
        pthread_mutex_unlock(&k->mu);
    } else if (!have_pod) {
        struct k8s_error e = { 0 };
        r = post_pod(k, json, &e) < 0 ? kerr(-EIO, &e, err, errlen, "create pod") : 0;
    }
    if (r >= 0)
        r = wait_ready(k, spec->id, name, err, errlen);
    /* A failed create leaves no pod behind (an unanswered POST may have made one; the typed
     * reason stays in the cache). What cannot be deleted now, the reconciler's orphan pass
     * deletes later. */
    if (r < 0 && k_destroy(rt, spec->id) < 0)
        log_debug("k8s runtime: pod %s of a failed create not deleted", name);
    return r;
}

static int k_status(struct sbx_runtime *rt, const char *id, enum sbx_state *ret, pid_t *ret_pid)
{
    struct krt *k = K(rt);
    pthread_mutex_lock(&k->mu);
    *ret = pod_state(pod_find(k, id));
    pthread_mutex_unlock(&k->mu);
    if (ret_pid)
        *ret_pid = 0;
    return 0;
}

static int k_destroy(struct sbx_runtime *rt, const char *id)
{
    struct krt *k = K(rt);
    if (!sbx_id_valid(id))
        return -EINVAL;
    char name[K8S_POD_NAME_MAX]; /* the watch's: a claimed pool pod has its own name */
    pthread_mutex_lock(&k->mu);
    struct pod *p = pod_get(k, id);
    p->deleting = true;
    snprintf(name, sizeof name, "%s", p->name);
    pthread_mutex_unlock(&k->mu);
    struct k8s_delete_opts o = { .grace_period_s = 0 };
    struct k8s_error e = { 0 };
    int r = k8s_pod_delete(k->c, k->ns, name, &o, &e);
    if (r < 0 && e.type != K8S_NOT_FOUND)
        return -EIO;
    pthread_mutex_lock(&k->mu);
    time_t dl = time(NULL) + DELETE_TIMEOUT_S;
    while ((p = pod_find(k, id)) && p->present && time(NULL) < dl)
        wait_until(k, dl);
    r = p && p->present ? -ETIMEDOUT : 0;
    pthread_mutex_unlock(&k->mu);
    return r;
}

static int k_list(struct sbx_runtime *rt, struct sbx_sandbox_info **ret)
{
    struct krt *k = K(rt);
    pthread_mutex_lock(&k->mu);
    time_t dl = time(NULL) + 10;
    while (!k->synced && time(NULL) < dl)
        wait_until(k, dl);
    if (!k->synced) {
        pthread_mutex_unlock(&k->mu);
        return -EIO;
    }
    struct sbx_sandbox_info *a = xcalloc(k->n + 1, sizeof *a);
    int n = 0;
    for (size_t i = 0; i < k->n; i++) {
        if (!k->pods[i].present)
            continue;
        snprintf(a[n].id, sizeof a[n].id, "%s", k->pods[i].id);
        enum sbx_state st = pod_state(&k->pods[i]);
        a[n].state = st == SBX_STATE_ABSENT ? SBX_STATE_EXITED : st; /* pending counts */
        n++;
    }
    pthread_mutex_unlock(&k->mu);
    *ret = a;
    return n;
}

/* ---- exec ---- */

/* Every command runs through a script that records its pid (for signal()), sets the tty size,
 * enters the cwd, exports the env and execs argv (all single-quoted). The request path holds
 * argv and is short (k8s_exec_start: 2000 bytes), so the script goes through stdin: the command
 * in the path is only BOOT, which reads "LEN\n" and LEN bytes of script (GNU head -c reads no
 * further) and evals it; what follows on stdin is the command's own. A tty would echo and cook
 * the script: tty execs carry it in the path (a command of about 1.5 KB at most). */
static const char BOOT[] =
    "IFS= read -r n || exit 126; s=$(head -c \"$n\") || exit 126; eval \"$s\"";
#define SCRIPT_MAX (1u << 20)
/* The container's OOM-kill counter: cgroup v2, else the v1 memory controller. */
/* $o = the container's OOM-kill counter (cgroup v2, else the v1 memory controller), "" when
 * neither is readable; shell builtins only (every exec runs it). */
#define OOM_READ \
    "o=; for f in /sys/fs/cgroup/memory.events /sys/fs/cgroup/memory/memory.oom_control; do " \
    "[ -r $f ] && while read -r k v; do [ \"$k\" = oom_kill ] && o=$v; done < $f; done; "
#define EXEC_DIR "/tmp/.sbx-exec"

static const struct sbx_runtime_ops k8s_ops;

struct kexec {
    struct k8s_exec *ke;
    struct krt *k;
    char id[SBX_ID_MAX + 1];
    char token[33];
    atomic_int sent_sig;   /* the last signal signal() delivered, 0 = none */
    atomic_bool finished;  /* exec_finished() has set res/rerr */
    struct sbx_exec_result res;
    int rerr;
};

/* 'str' for sh: every ' becomes '\'' (no NUL can occur in a C string). */
static int sh_quote(struct sbx_buf *b, const char *str)
{
    int r = sbx_buf_puts(b, " '");
    for (const char *q; r == 0 && (q = strchr(str, '\'')); str = q + 1) {
        r = sbx_buf_append(b, str, (size_t)(q - str));
        if (r == 0)
            r = sbx_buf_puts(b, "'\\''");
    }
    if (r == 0)
        r = sbx_buf_puts(b, str);
    return r == 0 ? sbx_buf_puts(b, "'") : r;
}

/* The exec's script (mu held: p is the pod's cache entry, whose finished execs' files it
 * removes). */
static int exec_script(struct sbx_buf *b, const char *token, const struct sbx_exec_spec *spec,
                       const char *cwd, struct pod *p)
{
    int r = 0;
    if (p->n_done >= DONE_FLUSH) {
        r = sbx_buf_puts(b, "rm -f --");
        for (unsigned i = 0; r == 0 && i < p->n_done; i++)
            r = sbx_buf_printf(b, " " EXEC_DIR "/%s", p->done[i]);
        if (r == 0)
            r = sbx_buf_puts(b, "; ");
        p->n_done = 0;
    }
    char *const *denv = p->env;
    if (r == 0)
        r = sbx_buf_printf(b, "[ -d " EXEC_DIR " ] || mkdir -p " EXEC_DIR " 2>/dev/null; "
                           OOM_READ "echo \"$$ $o\" > " EXEC_DIR "/%s; ", token);
    if (r == 0 && spec->tty)
        r = sbx_buf_printf(b, "stty rows %u cols %u 2>/dev/null; ", spec->rows ? spec->rows : 24,
                           spec->cols ? spec->cols : 80);
    if (r == 0)
        r = sbx_buf_puts(b, "cd --");
    if (r == 0)
        r = sh_quote(b, cwd);
    if (r == 0)
        r = sbx_buf_puts(b, " || exit 126; ");
    for (size_t i = 0; r == 0 && denv && denv[i]; i++) {
        r = sbx_buf_puts(b, "export");
        if (r == 0)
            r = sh_quote(b, denv[i]);
        if (r == 0)
            r = sbx_buf_puts(b, "; ");
    }
    for (size_t i = 0; r == 0 && spec->env && spec->env[i]; i++) {
        r = sbx_buf_puts(b, "export");
        if (r == 0)
            r = sh_quote(b, spec->env[i]);
        if (r == 0)
            r = sbx_buf_puts(b, "; ");
    }
    if (r == 0)
        r = sbx_buf_puts(b, "exec");
    for (size_t i = 0; r == 0 && spec->argv[i]; i++)
        r = sh_quote(b, spec->argv[i]);
    return r < 0 ? -E2BIG : 0;
}

/* Writes all of p to the exec's stdin socket (nonblocking) unless the exec ends first. */
static int send_all(int fd, int ctl_fd, const char *p, size_t n)
{
    time_t dl = time(NULL) + 60;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN)
            return -errno;
        if (time(NULL) >= dl)
            return -ETIMEDOUT;
        struct pollfd q[2] = { { .fd = fd, .events = POLLOUT }, { .fd = ctl_fd, .events = POLLIN } };
        if (poll(q, 2, 1000) > 0 && q[1].revents)
            return -EIO;
    }
    return 0;
}

/* Whether the container's OOM-kill counter rose since the exec's script recorded it (another
 * exec; it also removes the exec's file). */
static bool oom_since_start(struct kexec *x)
{
    const char *argv[] = {
        "sh", "-c",
        "f=" EXEC_DIR "/$1; { read p b < \"$f\"; } 2>/dev/null; rm -f -- \"$f\"; "
        OOM_READ "[ -n \"$b\" ] && [ -n \"$o\" ] && [ \"$o\" -gt \"$b\" ]",
        "sbx", x->token, NULL,
    };
    struct sbx_runtime tmp = { .ops = &k8s_ops, .priv = x->k };
    struct sbx_exec_spec es = { .argv = argv };
    struct sbx_exec_output out;
    if (sbx_exec_run_buffered(&tmp, x->id, &es, NULL, 0, 15000, 4096, &out) < 0)
        return false;
    bool oom = out.reason == SBX_EXEC_EXITED && out.result.exit_code == 0;
    sbx_exec_output_free(&out);
    return oom;
}

/* k8s_exec on_finish (the exec's pump thread, before ctl_fd is readable): the result. pods/exec
 * reports only an exit code, 128 + N for a death by signal N. When N is the signal signal()
 * delivered, that is the signal (as the local runtime's wait status says). Any other exit
 * above 128 may be the OOM killer's SIGKILL (of the command or of a child its shell reports):
 * the container's counter tells, as the local runtime's does. */
static void exec_finished(struct k8s_exec *ke, void *userdata)
{
    struct kexec *x = userdata;
    struct k8s_exec_result kr = { 0 };
    struct k8s_error e = { 0 };
    int r = k8s_exec_result(ke, &kr, &e);
    x->rerr = r < 0 ? -EIO : 0;
    x->res.exit_code = kr.exit_code;
    int sig = atomic_load(&x->sent_sig);
    if (r == 0 && sig > 0 && kr.exit_code == 128 + sig)
        x->res.signal = sig;
    else if (r == 0 && kr.exit_code > 128) {
        if (oom_since_start(x)) {
            x->res.oom = true;
            if (kr.exit_code == 128 + SIGKILL)
                x->res.signal = SIGKILL;
        }
    } else {
        /* the next exec's script removes its file (a full list leaves it: bounded leftovers) */
        pthread_mutex_lock(&x->k->mu);
        struct pod *p = pod_find(x->k, x->id);
        if (p && p->n_done < DONE_MAX)
            snprintf(p->done[p->n_done++], sizeof p->done[0], "%s", x->token);
        pthread_mutex_unlock(&x->k->mu);
    }
    atomic_store(&x->finished, true);
}

static int k_exec_start(struct sbx_runtime *rt, const char *id, const struct sbx_exec_spec *spec,
                        struct sbx_exec **ret)
{
    struct krt *k = K(rt);
    if (!spec || !spec->argv || !spec->argv[0] || !sbx_id_valid(id))
        return -EINVAL;
    const char *cwd = spec->cwd ? spec->cwd : "/workspace";
    if (cwd[0] != '/')
        return -EINVAL;
    struct kexec *x = xcalloc(1, sizeof *x);
    x->k = k;
    snprintf(x->id, sizeof x->id, "%s", id);
    uint8_t rnd[16];
    sbx_random_bytes(rnd, sizeof rnd);
    for (int b = 0; b < 16; b++)
        snprintf(x->token + 2 * b, 3, "%02x", rnd[b]);
    _cleanup_buf_ struct sbx_buf script = SBX_BUF_INIT;
    sbx_buf_init(&script, SCRIPT_MAX);
    char name[K8S_POD_NAME_MAX];
    pthread_mutex_lock(&k->mu);
    struct pod *p = pod_find(k, id);
    int r = pod_state(p) == SBX_STATE_RUNNING ? 0 : -ENOENT;
    if (r == 0) {
        snprintf(name, sizeof name, "%s", p->name);
        r = exec_script(&script, x->token, spec, cwd, p);
    }
    pthread_mutex_unlock(&k->mu);
    if (r < 0) {
        free(x);
        return r;
    }
    const char *argv[] = { "sh", "-c", spec->tty ? script.data : BOOT, NULL };
    struct k8s_exec_opts o = {
        .ns = k->ns, .pod = name, .container = K8S_CONTAINER_NAME, .argv = argv,
        .tty = spec->tty, .rows = spec->tty ? (spec->rows ? spec->rows : 24) : 0,
        .cols = spec->tty ? (spec->cols ? spec->cols : 80) : 0,
        .on_finish = exec_finished, .finish_userdata = x,
        .no_lookup = true, /* the watch says it runs: no GET per exec */
    };
    struct k8s_error e = { 0 };
    r = k8s_exec_start(k->c, &o, &x->ke, &e);
    if (r < 0) {
        free(x);
        return r == -E2BIG ? r : e.type == K8S_NOT_FOUND ? -ENOENT : -EIO;
    }
    if (!spec->tty) {
        char hdr[24];
        int hl = snprintf(hdr, sizeof hdr, "%zu\n", script.len);
        r = send_all(x->ke->stdin_fd, x->ke->ctl_fd, hdr, (size_t)hl);
        if (r == 0)
            r = send_all(x->ke->stdin_fd, x->ke->ctl_fd, script.data, script.len);
        if (r < 0) {
            log_debug("k8s runtime: exec in %s: sending the command failed: %s", id,
                      strerror(-r));
            k8s_exec_free(x->ke);
            free(x);
            return -EIO;
        }
    }
    struct sbx_exec *se = xcalloc(1, sizeof *se);
    se->stdin_fd = x->ke->stdin_fd;
    se->stdout_fd = x->ke->stdout_fd;
    se->stderr_fd = x->ke->stderr_fd;
    se->pty_fd = x->ke->tty_fd;
    se->ctl_fd = x->ke->ctl_fd;
    se->priv = x;
    se->ops = rt->ops;
    *ret = se;
    return 0;
}

static int k_exec_result(struct sbx_exec *se, struct sbx_exec_result *ret)
{
    struct kexec *x = se->priv;
    if (!atomic_load(&x->finished))
        return -EAGAIN;
    if (x->rerr < 0)
        return x->rerr;
    *ret = x->res;
    return 0;
}

static int k_signal(struct sbx_exec *se, int sig)
{
    struct kexec *x = se->priv;
    if (atomic_load(&x->finished))
        return -ESRCH;
    char s[16];
    snprintf(s, sizeof s, "%d", sig);
    const char *argv[] = {
        "sh", "-c",
        "{ read p o < " EXEC_DIR "/$2; } 2>/dev/null || exit 3; "
        "pg=$(sed 's/.*) //' /proc/$p/stat 2>/dev/null | cut -d' ' -f3); "
        "if [ \"$pg\" = \"$p\" ]; then kill -s $1 -- -$p 2>/dev/null || kill -s $1 $p; "
        "else kill -s $1 $p; fi",
        "sbx", s, x->token, NULL,
    };
    /* kill -s takes a name or a number in dash/busybox: numbers are portable enough */
    /* set before the kill: the command's exit may be seen before this exec returns */
    int prev = atomic_exchange(&x->sent_sig, sig);
    struct sbx_runtime tmp = { .ops = se->ops, .priv = x->k };
    struct sbx_exec_spec es = { .argv = argv };
    struct sbx_exec_output out;
    int r = sbx_exec_run_buffered(&tmp, x->id, &es, NULL, 0, 15000, 4096, &out);
    if (r == 0) {
        r = out.result.exit_code == 0 ? 0 : -ESRCH;
        sbx_exec_output_free(&out);
    }
    if (r < 0)
        atomic_store(&x->sent_sig, prev);
    return r;
}

static int k_resize(struct sbx_exec *se, unsigned rows, unsigned cols)
{
    struct kexec *x = se->priv;
    if (se->pty_fd < 0)
        return -ENOTTY;
    return k8s_exec_resize(x->ke, rows, cols) < 0 ? -ESRCH : 0;
}

static void k_exec_free(struct sbx_exec *se)
{
    if (!se)
        return;
    struct kexec *x = se->priv;
    /* the caller may have closed fds (set to -1): don't close them twice */
    x->ke->stdin_fd = se->stdin_fd;
    x->ke->stdout_fd = se->stdout_fd;
    x->ke->stderr_fd = se->stderr_fd;
    x->ke->tty_fd = se->pty_fd;
    k8s_exec_free(x->ke);
    free(x);
    free(se);
}

/* ---- helpers: run a script in the pod ---- */

static int script_errno(int code)
{
    switch (code) {
    case 0: return 0;
    case 10: return -ENOENT;
    case 11: return -EISDIR;
    case 12: return -EINVAL; /* outside /workspace (symlink) */
    case 13: return -ENOTDIR;
    case 14: return -EACCES;
    case 15: return -ENOSPC;
    default: return -EIO;
    }
}

/* Shared shell prelude: chk P → exit 12 unless P (or its longest existing ancestor) resolves
 * under /workspace. */
#define CHK "chk() { a=$1; while [ ! -e \"$a\" ] && [ ! -L \"$a\" ]; do a=$(dirname -- \"$a\"); done; " \
            "r=$(readlink -f -- \"$a\") || exit 12; " \
            "case \"$r\" in /workspace|/workspace/*) ;; *) exit 12;; esac; }; "

static int run_script(struct sbx_runtime *rt, const char *id, const char *script,
                      const char *const *args, const void *in, size_t inlen, size_t max_out,
                      struct sbx_exec_output *out)
{
    const char *argv[16] = { "sh", "-c", script, "sbx" };
    size_t i = 4;
    for (size_t j = 0; args && args[j] && i < 15; j++)
        argv[i++] = args[j];
    argv[i] = NULL;
    struct sbx_exec_spec es = { .argv = argv };
    int r = sbx_exec_run_buffered(rt, id, &es, in, inlen, 120000, max_out, out);
    if (r < 0)
        return r;
    if (out->reason == SBX_EXEC_TIMEOUT) {
        sbx_exec_output_free(out);
        return -ETIMEDOUT;
    }
    return 0;
}

static int abspath(const char *path, char **ret)
{
    if (!path)
        return -EINVAL;
    _cleanup_free_ char *rel = NULL;
    int r = sbx_path_check(path, strlen(path), &rel);
    if (r < 0)
        return r;
    *ret = rel[0] ? xasprintf("/workspace/%s", rel) : xstrdup("/workspace");
    return 0;
}

/* ---- open_read: tar -c in the pod, strict reader here ---- */

struct rsink {
    int fd;
    uint64_t written;
    int entries;
    char type;
    unsigned mode;
};

static int rs_entry(void *ud, const struct sbx_tar_entry *e)
{
    struct rsink *s = ud;
    /* exactly one entry, a single name component (the basename of the file the pod resolved;
     * the reader has already refused absolute names, "..", links and devices) */
    if (++s->entries > 1 || !e->rel[0] || strchr(e->rel, '/'))
        return -EPERM;
    s->type = e->type;
    s->mode = e->mode;
    return e->type == 'f' ? 0 : -EISDIR;
}

static int rs_data(void *ud, const void *p, size_t n)
{
    struct rsink *s = ud;
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(s->fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        c += w;
        n -= (size_t)w;
        s->written += (uint64_t)w;
    }
    return 0;
}

static int tmpfile_fd(void)
{
    int fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0)
        fd = memfd_create("sbx-k8s-file", MFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* Parses a tar stream (hostile) arriving on an exec's stdout into *fd. */
int k8s_runtime_read_tar_fd(int in_fd, const char *name, int out_fd, uint64_t *ret_size,
                            unsigned *ret_mode, char *err, size_t errlen);
int k8s_runtime_read_tar_fd(int in_fd, const char *name, int out_fd, uint64_t *ret_size,
                            unsigned *ret_mode, char *err, size_t errlen)
{
    struct rsink s = { .fd = out_fd };
    static const struct sbx_tar_ops ops = { .entry = rs_entry, .data = rs_data };
    struct sbx_tar_limits lim = { .max_entry_size = FILE_MAX, .max_total_size = FILE_MAX,
                                  .max_entries = 1 };
    struct sbx_tar_reader *r = sbx_tar_reader_new(name, &lim, &ops, &s);
    int e = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = read(in_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd p = { .fd = in_fd, .events = POLLIN };
            poll(&p, 1, 1000);
            continue;
        }
        if (n < 0) {
            e = -errno;
            break;
        }
        if (n == 0) {
            e = sbx_tar_reader_finish(r);
            break;
        }
        e = sbx_tar_reader_feed(r, buf, (size_t)n);
        if (e < 0)
            break;
    }
    if (e < 0 && err)
        snprintf(err, errlen, "%s", sbx_tar_reader_error(r)[0] ? sbx_tar_reader_error(r)
                                                                : strerror(-e));
    if (e == 0 && s.entries != 1) {
        e = -ENOENT;
        if (err)
            snprintf(err, errlen, "the archive does not hold the requested file");
    }
    sbx_tar_reader_free(r);
    if (e == 0) {
        *ret_size = s.written;
        if (ret_mode)
            *ret_mode = s.mode;
    }
    return e;
}

static int k_open_read(struct sbx_runtime *rt, const char *id, const char *path, int *ret_fd,
                       uint64_t *ret_size)
{
    _cleanup_free_ char *abs = NULL;
    int r = abspath(path, &abs);
    if (r < 0)
        return r;
    /* resolve inside the pod, refuse what leads outside /workspace, then tar the one file */
    static const char script[] = CHK
        "chk \"$1\"; [ -e \"$1\" ] || exit 10; [ -d \"$r\" ] && exit 11; [ -f \"$r\" ] || exit 12; "
        "cd -- \"$(dirname -- \"$r\")\" || exit 14; exec tar -c -f - -- \"$(basename -- \"$r\")\"";
    const char *argv[] = { "sh", "-c", script, "sbx", abs, NULL };
    struct sbx_exec_spec es = { .argv = argv };
    struct sbx_exec *e = NULL;
    r = k_exec_start(rt, id, &es, &e);
    if (r < 0)
        return r;
    close(e->stdin_fd);
    e->stdin_fd = -1;
    int fd = tmpfile_fd();
    if (fd < 0) {
        k_exec_free(e);
        return fd;
    }
    /* the archive's one entry is named like the resolved file: accept any single name and
     * check it is the root entry (rel == "") by passing the basename as the root */
    _cleanup_free_ char *base = NULL;
    {
        const char *b = strrchr(abs, '/');
        base = xstrdup(b ? b + 1 : abs);
    }
    /* the pod resolved symlinks: the entry name is the basename of the resolved path, which
     * may differ from ours; read with no root, then rs_entry requires exactly one file */
    uint64_t size = 0;
    unsigned rmode = 0644;
    char err[256] = "";
    int tr = k8s_runtime_read_tar_fd(e->stdout_fd, NULL, fd, &size, &rmode, err, sizeof err);
    /* drain stderr (bounded) and wait for the status */
    struct pollfd p = { .fd = e->ctl_fd, .events = POLLIN };
    struct sbx_exec_result res = { 0 };
    int rr;
    time_t dl = time(NULL) + 60;
    while ((rr = k_exec_result(e, &res)) == -EAGAIN && time(NULL) < dl) {
        char junk[4096];
        while (e->stderr_fd >= 0 && read(e->stderr_fd, junk, sizeof junk) > 0) {
        }
        poll(&p, 1, 200);
    }
    k_exec_free(e);
    if (rr == -EAGAIN)
        rr = -ETIMEDOUT;
    if (rr == 0 && res.exit_code != 0)
        rr = script_errno(res.exit_code);
    if (rr == 0 && tr < 0) {
        log_debug("open_read %s in %s: hostile or broken archive: %s", abs, id, err);
        rr = tr == -EISDIR ? -EISDIR : -EIO;
    }
    if (rr < 0) {
        close(fd);
        return rr;
    }
    lseek(fd, 0, SEEK_SET);
    /* callers fstat() the fd for the file's mode: give it the archived permission bits */
    if (fchmod(fd, rmode & 0777) < 0)
        log_debug("open_read %s in %s: fchmod: %s", abs, id, strerror(errno));
    *ret_fd = fd;
    if (ret_size)
        *ret_size = size;
    return 0;
}

/* ---- open_write: pipe → temp file (sha256) → one exec: checks, tar -x, verified ---- */

/* One write between open_write and close_write (in krt.uploads, under mu). */
struct upload {
    struct upload *next;
    struct sbx_runtime *rt;
    char id[SBX_ID_MAX + 1];
    char *dir, *base;
    unsigned mode, flags;
    int rfd, wfd;          /* the pipe: ours, the caller's */
    bool done;             /* the thread finished: result is set */
    int result;
};

static void upload_free(struct upload *u)
{
    free(u->dir);
    free(u->base);
    free(u);
}

static int upload_run(struct upload *u)
{
    int tfd = tmpfile_fd();
    if (tfd < 0)
        return tfd;
    _cleanup_close_ int fd = tfd;
    uint64_t size = 0;
    char buf[65536];
    for (;;) {
        ssize_t n = read(u->rfd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        if (write(fd, buf, (size_t)n) != n)
            return -EIO;
        size += (uint64_t)n;
        if (size > FILE_MAX)
            return -EFBIG;
    }
    /* sha256 of what we got */
    char hex[SBX_SHA256_HEX_LEN + 1];
    {
        void *m = size ? mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
        if (size && m == MAP_FAILED)
            return -EIO;
        sbx_sha256_hex(m ? m : "", (size_t)size, hex);
        if (m)
            munmap(m, size);
    }
    char *hdr;
    size_t hl;
    int r = sbx_tar_write_header(u->base, 'f', u->mode & 0777, size, time(NULL), &hdr, &hl);
    if (r < 0)
        return r;
    /* stream: header, data, padding, end marker */
    size_t total = hl + (size_t)size + sbx_tar_padding(size) + SBX_TAR_END_LEN;
    char *stream = xcalloc(1, total);
    memcpy(stream, hdr, hl);
    free(hdr);
    if (size && pread(fd, stream + hl, (size_t)size, 0) != (ssize_t)size) {
        free(stream);
        return -EIO;
    }
    /* the parent (created with $4 = 1), resolved under /workspace; the target, followed when
     * it is a symlink (as an open() would), must be a regular file or absent; the content goes
     * through the shell's redirection into it */
    static const char script[] = CHK
        "d=$1; b=$2; m=$3; chk \"$d\"; if [ ! -e \"$d\" ]; then [ \"$4\" = 1 ] || exit 10; "
        "mkdir -p -- \"$d\" || exit 14; chk \"$d\"; fi; [ -d \"$r\" ] || exit 13; "
        "cd -- \"$r\" || exit 14; t=$b; if [ -L \"$b\" ]; then chk \"$r/$b\"; t=$r; fi; "
        "[ -d \"$t\" ] && exit 11; [ -e \"$t\" ] && [ ! -f \"$t\" ] && exit 12; "
        "tar -x -O -f - -- \"$b\" > \"$t\" || exit 15; chmod \"$m\" -- \"$t\" || exit 14; "
        "sha256sum < \"$t\"";
    char mode[16];
    snprintf(mode, sizeof mode, "%o", u->mode & 01777);
    const char *args[] = { u->dir, u->base, mode, (u->flags & SBX_WRITE_MKDIRS) ? "1" : "0",
                           NULL };
    struct sbx_exec_output out;
    r = run_script(u->rt, u->id, script, args, stream, total, 4096, &out);
    free(stream);
    if (r < 0)
        return r;
    r = script_errno(out.result.exit_code);
    if (r == 0 && (out.out_len < SBX_SHA256_HEX_LEN || memcmp(out.out, hex, SBX_SHA256_HEX_LEN)))
        r = -EIO; /* the pod does not hold what we sent */
    sbx_exec_output_free(&out);
    return r;
}

static void *upload_thread(void *arg)
{
    struct upload *u = arg;
    struct krt *k = K(u->rt);
    int r = upload_run(u);
    if (r < 0)
        log_debug("k8s runtime: write of %s/%s into sandbox %s failed: %s", u->dir, u->base,
                  u->id, strerror(-r));
    close(u->rfd); /* a writer still writing gets EPIPE */
    pthread_mutex_lock(&k->mu);
    u->rfd = -1;
    u->result = r;
    u->done = true;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

static int k_open_write(struct sbx_runtime *rt, const char *id, const char *path, unsigned mode,
                        unsigned flags, int *ret_fd)
{
    struct krt *k = K(rt);
    _cleanup_free_ char *abs = NULL;
    int r = abspath(path, &abs);
    if (r < 0)
        return r;
    if (strcmp(abs, "/workspace") == 0)
        return -EISDIR;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    char *slash = strrchr(abs, '/');
    struct upload *u = xcalloc(1, sizeof *u);
    u->rt = rt;
    snprintf(u->id, sizeof u->id, "%s", id);
    u->dir = xstrndup(abs, (size_t)(slash - abs));
    u->base = xstrdup(slash + 1);
    u->mode = mode & 01777;
    u->flags = flags;
    u->rfd = p[0];
    u->wfd = p[1];
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&k->mu);
    u->next = k->uploads;
    k->uploads = u;
    r = pthread_create(&t, &at, upload_thread, u) == 0 ? 0 : -EAGAIN;
    if (r < 0)
        k->uploads = u->next;
    pthread_mutex_unlock(&k->mu);
    pthread_attr_destroy(&at);
    if (r < 0) {
        close(p[0]);
        close(p[1]);
        upload_free(u);
        return r;
    }
    *ret_fd = p[1];
    return 0;
}

/* The upload thread saw EOF on the pipe, ran the exec and set the result: wait for it. */
static int k_close_write(struct sbx_runtime *rt, const char *id, int fd)
{
    struct krt *k = K(rt);
    pthread_mutex_lock(&k->mu);
    struct upload **pp = &k->uploads;
    while (*pp && ((*pp)->wfd != fd || strcmp((*pp)->id, id) != 0))
        pp = &(*pp)->next;
    struct upload *u = *pp;
    close(fd); /* end of content (after the lookup: the number may be reused at once) */
    if (!u) {
        pthread_mutex_unlock(&k->mu);
        return -EBADF;
    }
    while (!u->done)
        pthread_cond_wait(&k->cv, &k->mu);
    for (pp = &k->uploads; *pp != u; pp = &(*pp)->next) /* the list may have changed */
        ;
    *pp = u->next;
    pthread_mutex_unlock(&k->mu);
    int r = u->result;
    upload_free(u);
    return r;
}

/* ---- list_dir, mkdir_p, stats ---- */

static int k_list_dir(struct sbx_runtime *rt, const char *id, const char *path,
                      struct sbx_dirent **ret)
{
    _cleanup_free_ char *abs = NULL;
    int r = abspath(path, &abs);
    if (r < 0)
        return r;
    static const char script[] = CHK
        "[ -e \"$1\" ] || [ -L \"$1\" ] || exit 10; chk \"$1\"; [ -d \"$r\" ] || exit 13; "
        "find \"$r\" -mindepth 1 -maxdepth 1 -printf '%y\\t%s\\t%m\\t%T@\\t%f\\0' | head -z -n 100000";
    const char *args[] = { abs, NULL };
    struct sbx_exec_output out;
    r = run_script(rt, id, script, args, NULL, 0, 64u << 20, &out);
    if (r < 0)
        return r;
    r = script_errno(out.result.exit_code);
    if (r < 0) {
        sbx_exec_output_free(&out);
        return r;
    }
    struct sbx_dirent *a = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < out.out_len;) {
        const char *rec = out.out + i;
        size_t rl = strnlen(rec, out.out_len - i);
        i += rl + 1;
        char type;
        unsigned long long size;
        unsigned mode;
        double mt;
        int off = 0;
        if (sscanf(rec, "%c\t%llu\t%o\t%lf\t%n", &type, &size, &mode, &mt, &off) != 4 || off <= 0 ||
            (size_t)off >= rl)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            a = xrealloc(a, cap * sizeof *a);
        }
        a[n].name = xstrndup(rec + off, rl - (size_t)off);
        a[n].type = type == 'f' ? 'f' : type == 'd' ? 'd' : type == 'l' ? 'l' : 'o';
        a[n].size = size;
        a[n].mode = mode & 07777;
        a[n].mtime = (int64_t)mt;
        n++;
    }
    sbx_exec_output_free(&out);
    *ret = a;
    return (int)n;
}

static int k_mkdir_p(struct sbx_runtime *rt, const char *id, const char *path, unsigned mode)
{
    _cleanup_free_ char *abs = NULL;
    int r = abspath(path, &abs);
    if (r < 0)
        return r;
    /* every directory it creates gets mode (less the umask), as the local runtime's mkdirat() */
    static const char script[] = CHK
        "chk \"$1\"; m=$(printf %o $(( 0$2 & ~0$(umask) ))); p=/workspace; IFS=/; set -f; "
        "for c in ${1#/workspace}; do [ -n \"$c\" ] || continue; p=$p/$c; "
        "[ -d \"$p\" ] || mkdir -m \"$m\" -- \"$p\" 2>/dev/null || [ -d \"$p\" ] || exit 13; "
        "done; chk \"$1\"; [ -d \"$r\" ] || exit 13";
    char m[16];
    snprintf(m, sizeof m, "%o", mode & 01777);
    const char *args[] = { abs, m, NULL };
    struct sbx_exec_output out;
    r = run_script(rt, id, script, args, NULL, 0, 4096, &out);
    if (r < 0)
        return r;
    r = script_errno(out.result.exit_code);
    sbx_exec_output_free(&out);
    return r;
}

/* Best effort: the container's own cgroup (v2) files read through exec. */
static int k_stats(struct sbx_runtime *rt, const char *id, struct sbx_sandbox_stats *ret)
{
    enum sbx_state st;
    k_status(rt, id, &st, NULL);
    if (st != SBX_STATE_RUNNING)
        return -ENOENT;
    /* cgroup v2 (one directory), else the v1 controllers a container sees (cpuacct in ns) */
    static const char script[] =
        "c=/sys/fs/cgroup; if [ -r $c/cpu.stat ]; then "
        "u=$(sed -n 's/^usage_usec //p' $c/cpu.stat); m=$(cat $c/memory.current); "
        "p=$(cat $c/memory.peak); n=$(cat $c/pids.current); "
        "else u=$(cat $c/cpuacct/cpuacct.usage); u=$(( ${u:-0} / 1000 )); "
        "m=$(cat $c/memory/memory.usage_in_bytes); p=$(cat $c/memory/memory.max_usage_in_bytes); "
        "n=$(cat $c/pids/pids.current); fi 2>/dev/null; " OOM_READ
        "echo \"${u:-0} ${m:-0} ${p:-0} ${n:-0} ${o:-0}\"";
    struct sbx_exec_output out;
    int r = run_script(rt, id, script, NULL, NULL, 0, 4096, &out);
    if (r < 0)
        return r;
    struct sbx_sandbox_stats s = { 0 };
    unsigned long long v[5] = { 0 };
    if (out.out && sscanf(out.out, "%llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                          &v[4]) >= 1) {
        s.cpu_usec = v[0];
        s.memory_bytes = v[1];
        s.memory_peak_bytes = v[2];
        s.pids_current = v[3];
        s.oom_kills = v[4];
    }
    sbx_exec_output_free(&out);
    *ret = s;
    return 0;
}

static void k_free(struct sbx_runtime *rt)
{
    if (!rt)
        return;
    struct krt *k = K(rt);
    k8s_watch_stop(k->w);
    k8s_pool_free(k->pool); /* after the watch (it feeds the pool), before the client */
    k8s_client_free(k->c);
    for (size_t i = 0; i < k->n; i++) {
        for (size_t j = 0; k->pods[i].env && k->pods[i].env[j]; j++)
            free(k->pods[i].env[j]);
        free(k->pods[i].env);
    }
    free(k->pods);
    free(k->ns);
    free(k->image);
    free(k->runtime_class);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k);
    free(rt);
}

static const struct sbx_runtime_ops k8s_ops = {
    .name = "kubernetes",
    .create = k_create,
    .status = k_status,
    .exec_start = k_exec_start,
    .exec_result = k_exec_result,
    .signal = k_signal,
    .resize = k_resize,
    .exec_free = k_exec_free,
    .stop = k_destroy,    /* a pod's emptyDir workspace cannot outlive it: stop = destroy */
    .destroy = k_destroy,
    .list = k_list,
    .stats = k_stats,
    .open_read = k_open_read,
    .open_write = k_open_write,
    .close_write = k_close_write,
    .list_dir = k_list_dir,
    .mkdir_p = k_mkdir_p,
    .free = k_free,
};

void k8s_runtime_reason(struct sbx_runtime *rt, const char *id, char *buf, size_t len)
{
    struct krt *k = K(rt);
    pthread_mutex_lock(&k->mu);
    struct pod *p = pod_find(k, id);
    snprintf(buf, len, "%s", p ? p->reason : "");
    pthread_mutex_unlock(&k->mu);
}

int k8s_runtime_status_live(struct sbx_runtime *rt, const char *id, enum sbx_state *ret)
{
    struct krt *k = K(rt);
    if (!sbx_id_valid(id))
        return -EINVAL;
    char name[K8S_POD_NAME_MAX];
    k8s_pod_name(id, name);
    _cleanup_json_ yajl_val obj = NULL;
    struct k8s_error e = { 0 };
    int r = k8s_pod_get(k->c, k->ns, name, &obj, &e);
    if (r < 0 && e.type != K8S_NOT_FOUND)
        return -EIO;
    /* evaluated, not cached: the watch stays the cache's only writer, so this answer cannot
     * overwrite a newer event */
    struct pod seen = { 0 };
    if (r >= 0)
        pod_observe(&seen, obj);
    *ret = pod_state(&seen);
    return 0;
}

const char *k8s_runtime_namespace(struct sbx_runtime *rt)
{
    return K(rt)->ns; /* set once at start */
}

void k8s_runtime_set_callback(struct sbx_runtime *rt, k8s_runtime_event_cb cb, void *userdata)
{
    struct krt *k = K(rt);
    pthread_mutex_lock(&k->mu);
    k->cb = cb;
    k->cb_ud = userdata;
    pthread_mutex_unlock(&k->mu);
}

int k8s_runtime_pool_start(struct sbx_runtime *rt, const struct k8s_pool_spec *pools, size_t n,
                           uint64_t max_age_s, bool (*may_fill)(void), char *err, size_t errlen)
{
    return k8s_pool_start(K(rt)->pool, pools, n, max_age_s, may_fill, err, errlen);
}

size_t k8s_runtime_pool_stats(struct sbx_runtime *rt, struct k8s_pool_stat *out, size_t max)
{
    return k8s_pool_stats(K(rt)->pool, out, max);
}

int k8s_runtime_start(const struct k8s_runtime_config *c, struct sbx_runtime **ret, char *err,
                      size_t errlen)
{
    if (!c->image || !c->image[0]) {
        snprintf(err, errlen, "k8s.image is not set");
        return -EINVAL;
    }
    struct k8s_config *cfg = NULL;
    int r = c->kubeconfig && c->kubeconfig[0]
                ? k8s_config_kubeconfig(c->kubeconfig, NULL, &cfg, err, errlen)
                : k8s_config_auto(NULL, &cfg, err, errlen);
    if (r < 0)
        return r;
    struct krt *k = xcalloc(1, sizeof *k);
    r = k8s_client_new(cfg, NULL, &k->c, err, errlen);
    if (r < 0) {
        free(k);
        return r;
    }
    k->ns = xstrdup(c->ns && c->ns[0] ? c->ns : k8s_client_namespace(k->c));
    k->image = xstrdup(c->image);
    k->runtime_class = c->runtime_class && c->runtime_class[0] ? xstrdup(c->runtime_class) : NULL;
    k->uid = c->uid;
    k->timeout_s = c->timeout_s;
    struct k8s_pool_base pb = { .c = k->c, .ns = k->ns, .image = k->image,
                                .runtime_class = k->runtime_class, .uid = k->uid,
                                .timeout_s = k->timeout_s };
    k->pool = k8s_pool_new(&pb);
    pthread_mutex_init(&k->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_REALTIME);
    pthread_cond_init(&k->cv, &ca);
    pthread_condattr_destroy(&ca);
    struct sbx_runtime *rt = xcalloc(1, sizeof *rt);
    rt->ops = &k8s_ops;
    rt->priv = k;

    /* NetworkPolicies: idempotent; failure is a warning (RBAC may not allow it) */
    char warn[256] = "";
    for (int i = 0; i < 2; i++) {
        _cleanup_free_ char *json = NULL;
        size_t len;
        if (i == 0)
            k8s_podspec_netpol_deny(&json, &len);
        else
            k8s_podspec_netpol_egress(c->allow_private_egress, &json, &len);
        struct k8s_error e = { 0 };
        if (k8s_networkpolicy_create(k->c, k->ns, json, NULL, &e) < 0 &&
            e.type != K8S_ALREADY_EXISTS)
            snprintf(warn, sizeof warn, "NetworkPolicy not created: %.200s", e.message);
    }

    struct k8s_watch_opts wo = {
        .kind = K8S_KIND_POD, .ns = k->ns, .label_selector = K8S_LABEL_APP "=" K8S_APP_VALUE,
    };
    r = k8s_watch_start(k->c, &wo, watch_cb, k, &k->w);
    if (r < 0) {
        snprintf(err, errlen, "pod watch: %s", strerror(-r));
        k_free(rt);
        return r;
    }
    pthread_mutex_lock(&k->mu);
    time_t dl = time(NULL) + 30;
    while (!k->synced && time(NULL) < dl)
        wait_until(k, dl);
    bool synced = k->synced;
    pthread_mutex_unlock(&k->mu);
    if (!synced) {
        snprintf(err, errlen, "pod watch: no initial list within 30 s");
        k_free(rt);
        return -ETIMEDOUT;
    }
    snprintf(err, errlen, "%s", warn);
    *ret = rt;
    return 0;
}
