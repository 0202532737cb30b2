/*
 * k8s.h — a small Kubernetes API client: configuration (in-cluster / kubeconfig), REST over
 * libcurl, streamed watches, and pods/exec over the WebSocket protocol (libwebsockets).
 * See docs/internals/K8S-CLIENT.md.
 *
 * Conventions (docs/internals/CONVENTIONS.md): functions return 0 (or a count) / -errno.
 * Where the API server answered, the optional `struct k8s_error *err` (may be NULL) gets the
 * typed error, the HTTP status, the Status reason and message. The library never logs above debug.
 *
 * Threads: everything here is BLOCKING (callers are worker threads or the backend's own
 * threads, never the event loop). A struct k8s_client is thread-safe: each call uses its own
 * curl easy handle; connections, DNS and TLS sessions are shared through a curl share handle,
 * so calls from any thread reuse connections. Watches run on their own thread; execs have their
 * own libwebsockets context and two helper threads (see k8s_exec_start).
 *
 * JSON: objects come back as yajl trees (yajl_val, free with yajl_tree_free / _cleanup_json_);
 * bodies go in as JSON text.
 *
 * Errno mapping of API errors (struct k8s_error.type says it exactly):
 *   K8S_NOT_FOUND -ENOENT, K8S_ALREADY_EXISTS -EEXIST, K8S_CONFLICT -EBUSY, K8S_INVALID and
 *   K8S_BAD_REQUEST -EINVAL, K8S_FORBIDDEN -EPERM, K8S_UNAUTHORIZED -EACCES, K8S_GONE -ESTALE,
 *   K8S_TOO_MANY_REQUESTS -EAGAIN (after the retries), K8S_SERVER_ERROR -EIO,
 *   K8S_TIMEOUT -ETIMEDOUT, K8S_TRANSPORT -ECONNREFUSED (connection/TLS failure),
 *   K8S_PROTOCOL -EPROTO (unparseable answer).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_tree.h>

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                      */

enum k8s_err_type {
    K8S_OK = 0,
    K8S_BAD_REQUEST,        /* 400 */
    K8S_UNAUTHORIZED,       /* 401 */
    K8S_FORBIDDEN,          /* 403 */
    K8S_NOT_FOUND,          /* 404 */
    K8S_ALREADY_EXISTS,     /* 409 reason AlreadyExists */
    K8S_CONFLICT,           /* 409 (other reasons) */
    K8S_GONE,               /* 410 (Gone / Expired) */
    K8S_INVALID,            /* 422 */
    K8S_TOO_MANY_REQUESTS,  /* 429; retry_after_s from Retry-After / details.retryAfterSeconds */
    K8S_SERVER_ERROR,       /* 5xx */
    K8S_TIMEOUT,            /* client-side timeout */
    K8S_TRANSPORT,          /* connect / TLS / connection lost */
    K8S_PROTOCOL,           /* unexpected answer (bad JSON, wrong subprotocol, no exec status) */
    K8S_OTHER,              /* any other HTTP status */
};

struct k8s_error {
    enum k8s_err_type type;
    int http_status;        /* 0 if no HTTP answer */
    unsigned retry_after_s; /* 429 / 503: seconds the server asked to wait (0 = not given) */
    char reason[64];        /* metav1.Status reason ("NotFound", …) or "" */
    char message[512];      /* Status message, or a client-side description */
};

const char *k8s_err_type_name(enum k8s_err_type t); /* "NotFound", "Conflict", … */
int k8s_err_errno(enum k8s_err_type t);              /* the -errno above; 0 for K8S_OK */

/* ------------------------------------------------------------------------------------------ */
/* Configuration (k8s/kconfig.c)                                                               */

struct k8s_config;

/* In-cluster: KUBERNETES_SERVICE_HOST/PORT + /var/run/secrets/kubernetes.io/serviceaccount/
 * {token,ca.crt,namespace} (POD_NAMESPACE overrides the namespace). -ENOENT if not in a cluster
 * (env unset), -EINVAL/-EACCES with a message naming the file otherwise. */
int k8s_config_incluster(struct k8s_config **ret, char *err, size_t errlen);
/* Same with another service-account directory and explicit host/port (tests). */
int k8s_config_incluster_at(const char *sa_dir, const char *host, const char *port,
                            struct k8s_config **ret, char *err, size_t errlen);
/* kubeconfig: path NULL → $KUBECONFIG (first existing file of the ':' list), else
 * ~/.kube/config. context NULL → current-context. */
int k8s_config_kubeconfig(const char *path, const char *context, struct k8s_config **ret,
                          char *err, size_t errlen);
/* Parse kubeconfig text; relative file paths resolve against basedir (NULL = cwd). */
int k8s_config_parse_kubeconfig(const char *data, size_t len, const char *basedir,
                                const char *context, struct k8s_config **ret, char *err,
                                size_t errlen);
/* in-cluster if KUBERNETES_SERVICE_HOST is set, else the kubeconfig (path may be NULL). */
int k8s_config_auto(const char *kubeconfig_path, struct k8s_config **ret, char *err, size_t errlen);
void k8s_config_free(struct k8s_config *c);

const char *k8s_config_server(const struct k8s_config *c);    /* "https://host:port[/prefix]" */
const char *k8s_config_namespace(const struct k8s_config *c); /* never NULL ("default") */
bool k8s_config_insecure(const struct k8s_config *c);
/* The current bearer token (NULL if none), copied (free()). A tokenFile / service-account token
 * is re-read when its mtime/size changed, checked at most every token_recheck_s seconds
 * (default 60; k8s_config_set_token_recheck). Thread-safe. */
char *k8s_config_token(struct k8s_config *c);
void k8s_config_set_token_recheck(struct k8s_config *c, unsigned seconds);
/* Force a re-read on the next k8s_config_token() (after a 401). */
void k8s_config_token_invalidate(struct k8s_config *c);

/* ------------------------------------------------------------------------------------------ */
/* REST (k8s/k8s-rest.c)                                                                       */

struct k8s_client;

struct k8s_client_opts {
    unsigned timeout_ms;         /* whole request; 0 = 30000 */
    unsigned connect_timeout_ms; /* 0 = 10000 */
    unsigned max_retries;        /* retries of idempotent verbs on 429/5xx/connection errors;
                                    0 = default 4; K8S_NO_RETRIES for none */
    unsigned backoff_ms;         /* first backoff (doubles, jittered, capped at 5 s); 0 = 200 */
    const char *user_agent;      /* NULL = "sandboxd-k8s/0.1" */
};
#define K8S_NO_RETRIES 0xffffffffu

/* Takes ownership of cfg (also on failure). */
int k8s_client_new(struct k8s_config *cfg, const struct k8s_client_opts *opts,
                   struct k8s_client **ret, char *err, size_t errlen);
void k8s_client_free(struct k8s_client *c);
struct k8s_config *k8s_client_config(struct k8s_client *c);
const char *k8s_client_namespace(struct k8s_client *c);

/* Raw request. path begins with '/' and may carry a query. body may be NULL. On 2xx: 0 and
 * *ret_obj (may be NULL to ignore) is the parsed JSON answer (NULL when the body is empty).
 * Retries apply to GET/PUT/DELETE (and PATCH/POST never). content_type NULL = application/json. */
int k8s_request(struct k8s_client *c, const char *method, const char *path,
                const char *content_type, const char *body, size_t body_len, yajl_val *ret_obj,
                struct k8s_error *err);

enum k8s_kind {
    K8S_KIND_POD = 0,
    K8S_KIND_LEASE,          /* coordination.k8s.io/v1 */
    K8S_KIND_NETWORKPOLICY,  /* networking.k8s.io/v1 */
    K8S_KIND_NAMESPACE,      /* cluster-scoped: ns is ignored */
    _K8S_KIND_MAX,
};

/* "/api/v1/namespaces/NS/pods[/NAME]" (names are URL-escaped). ns NULL = client namespace.
 * Returns a malloc'd string. */
char *k8s_path(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name);

int k8s_create(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *json,
               yajl_val *ret, struct k8s_error *err);
int k8s_get(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
            yajl_val *ret, struct k8s_error *err);
/* PUT; json must carry metadata.resourceVersion for optimistic concurrency (409 → K8S_CONFLICT). */
int k8s_update(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
               const char *json, yajl_val *ret, struct k8s_error *err);
/* PATCH application/merge-patch+json. */
int k8s_patch_merge(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
                    const char *json, yajl_val *ret, struct k8s_error *err);

struct k8s_delete_opts {
    int grace_period_s;             /* <0 = server default; 0 = immediate */
    const char *precondition_uid;   /* NULL = none; mismatch → K8S_CONFLICT */
    const char *precondition_rv;
};
int k8s_delete(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *name,
               const struct k8s_delete_opts *opts, struct k8s_error *err);

/* List; selectors may be NULL. *ret is the whole List object (items + metadata.resourceVersion). */
int k8s_list(struct k8s_client *c, enum k8s_kind kind, const char *ns, const char *label_selector,
             const char *field_selector, yajl_val *ret, struct k8s_error *err);

/* Convenience wrappers for what the runtime backend uses. */
static inline int k8s_pod_create(struct k8s_client *c, const char *ns, const char *json,
                                 yajl_val *ret, struct k8s_error *err)
{ return k8s_create(c, K8S_KIND_POD, ns, json, ret, err); }
static inline int k8s_pod_get(struct k8s_client *c, const char *ns, const char *name,
                              yajl_val *ret, struct k8s_error *err)
{ return k8s_get(c, K8S_KIND_POD, ns, name, ret, err); }
static inline int k8s_pod_delete(struct k8s_client *c, const char *ns, const char *name,
                                 const struct k8s_delete_opts *o, struct k8s_error *err)
{ return k8s_delete(c, K8S_KIND_POD, ns, name, o, err); }
static inline int k8s_pod_list(struct k8s_client *c, const char *ns, const char *label_selector,
                               yajl_val *ret, struct k8s_error *err)
{ return k8s_list(c, K8S_KIND_POD, ns, label_selector, NULL, ret, err); }
static inline int k8s_pod_patch(struct k8s_client *c, const char *ns, const char *name,
                                const char *merge_json, yajl_val *ret, struct k8s_error *err)
{ return k8s_patch_merge(c, K8S_KIND_POD, ns, name, merge_json, ret, err); }
static inline int k8s_lease_create(struct k8s_client *c, const char *ns, const char *json,
                                   yajl_val *ret, struct k8s_error *err)
{ return k8s_create(c, K8S_KIND_LEASE, ns, json, ret, err); }
static inline int k8s_lease_get(struct k8s_client *c, const char *ns, const char *name,
                                yajl_val *ret, struct k8s_error *err)
{ return k8s_get(c, K8S_KIND_LEASE, ns, name, ret, err); }
static inline int k8s_lease_update(struct k8s_client *c, const char *ns, const char *name,
                                   const char *json, yajl_val *ret, struct k8s_error *err)
{ return k8s_update(c, K8S_KIND_LEASE, ns, name, json, ret, err); }
static inline int k8s_lease_delete(struct k8s_client *c, const char *ns, const char *name,
                                   struct k8s_error *err)
{ return k8s_delete(c, K8S_KIND_LEASE, ns, name, NULL, err); }
static inline int k8s_networkpolicy_create(struct k8s_client *c, const char *ns,
                                           const char *json, yajl_val *ret,
                                           struct k8s_error *err)
{ return k8s_create(c, K8S_KIND_NETWORKPOLICY, ns, json, ret, err); }

/* Small accessors on objects (NULL when absent). */
const char *k8s_obj_name(yajl_val obj);
const char *k8s_obj_uid(yajl_val obj);
const char *k8s_obj_resource_version(yajl_val obj);
const char *k8s_obj_label(yajl_val obj, const char *key);
/* items array of a List (NULL if none). */
yajl_val k8s_list_items(yajl_val list);
/* Path lookup: k8s_obj_str(o, "status", "phase", NULL). */
const char *k8s_obj_str(yajl_val obj, ...) __attribute__((sentinel));

/* ------------------------------------------------------------------------------------------ */
/* Watch (k8s/k8s-watch.c)                                                                     */

enum k8s_watch_type {
    K8S_WATCH_ADDED = 0,
    K8S_WATCH_MODIFIED,
    K8S_WATCH_DELETED,
    K8S_WATCH_BOOKMARK,   /* only moves the resourceVersion; object has metadata only */
    K8S_WATCH_RESYNC,     /* a full list: at start (no resource_version given) and after 410
                             Gone. `object` is the List; reconcile against k8s_list_items(). */
    K8S_WATCH_ERROR,      /* informational: a watch request failed (err says why); the watch
                             retries with backoff unless the callback returns non-zero */
};
const char *k8s_watch_type_name(enum k8s_watch_type t);

struct k8s_watch_event {
    enum k8s_watch_type type;
    yajl_val object;                /* valid during the callback only */
    const char *resource_version;   /* the object's (or list's) RV; may be NULL */
    const struct k8s_error *err;    /* K8S_WATCH_ERROR only */
};

/* Return 0 to continue, non-zero to end the watch (k8s_watch_run returns that value). */
typedef int (*k8s_watch_cb)(const struct k8s_watch_event *ev, void *userdata);

struct k8s_watch_opts {
    enum k8s_kind kind;
    const char *ns;                 /* NULL = client namespace */
    const char *label_selector;     /* NULL = all */
    const char *field_selector;
    const char *resource_version;   /* NULL/"" = list first (RESYNC), then watch from the list RV */
    unsigned timeout_s;             /* server-side timeoutSeconds per watch request; 0 = 300 */
    size_t max_event_bytes;         /* one line; 0 = 16 MiB; a longer line ends that request */
};

struct k8s_watch;
/* Starts a thread that lists/watches until k8s_watch_stop(). Callbacks run on that thread. */
int k8s_watch_start(struct k8s_client *c, const struct k8s_watch_opts *o, k8s_watch_cb cb,
                    void *userdata, struct k8s_watch **ret);
/* Cancels the transfer in flight (≤ ~100 ms), joins the thread, frees. NULL is fine. Must not
 * be called from the callback (return non-zero there instead). */
void k8s_watch_stop(struct k8s_watch *w);
/* true once the watch thread ended (callback returned non-zero). */
bool k8s_watch_done(struct k8s_watch *w);
/* The same loop on the calling thread: returns the callback's non-zero value, or -errno for a
 * fatal error (401/403/404 are fatal; 410 → relist; others retry). *stop (may be NULL) is
 * polled between chunks. */
int k8s_watch_run(struct k8s_client *c, const struct k8s_watch_opts *o, k8s_watch_cb cb,
                  void *userdata, const volatile int *stop);

/* One watch line (without the newline) → event. *ret_tree owns ev->object (free it).
 * -EINVAL (with message) if it is not {"type":T,"object":{…}} with a known T. Exposed for the
 * fuzz target. ERROR events come back as type K8S_WATCH_ERROR with the Status as object. */
int k8s_watch_parse_line(const char *line, size_t len, struct k8s_watch_event *ev,
                         yajl_val *ret_tree, char *err, size_t errlen);

/* ------------------------------------------------------------------------------------------ */
/* Exec (k8s/k8s-exec.c)                                                                       */

struct k8s_exec;

struct k8s_exec_opts {
    const char *ns;                 /* NULL = client namespace */
    const char *pod;
    const char *container;          /* NULL = let the server pick */
    const char *const *argv;        /* NULL-terminated, ≥ 1 element */
    bool no_stdin;                  /* true: stdin=false (stdin_fd = -1) */
    bool tty;                       /* tty=true: stderr merged into stdout by the server */
    unsigned rows, cols;            /* initial size for tty (sent on channel 4), 0 = none */
    bool force_v4;                  /* offer only v4.channel.k8s.io (tests) */
    bool no_lookup;                 /* skip the pod GET before the handshake (the caller knows
                                       the pod from a watch); a missing pod is then a refused
                                       upgrade (K8S_PROTOCOL), not a typed NotFound */
    unsigned connect_timeout_ms;    /* handshake; 0 = 15000 */
    unsigned timeout_ms;            /* whole exec; 0 = none. Expiry → -ETIMEDOUT, never success */
    /* Called once on the exec's pump thread when it finished (k8s_exec_result() has its final
     * answer, all output is written), before ctl_fd becomes readable: a caller that needs to
     * learn more about the end (another exec) does it here. May block (it delays ctl_fd);
     * must not call k8s_exec_free(). NULL = none. */
    void (*on_finish)(struct k8s_exec *e, void *userdata);
    void *finish_userdata;
};

/*
 * A running exec, shaped like runtime/runtime.h struct sbx_exec: the fds belong to the exec
 * (closed by k8s_exec_free), are nonblocking and CLOEXEC (UNIX socketpairs bridged by the
 * exec's service thread).
 *   stdin_fd:  write end; close it (and set it to -1) to send end-of-input: v5 sends the close
 *              frame [255, 0]; v4 has no such frame — see k8s_exec_protocol() (the library then
 *              can only keep stdin open; commands must not wait for EOF on v4).
 *   stdout_fd, stderr_fd: read ends; EOF after the last byte.
 *   tty_fd:    tty=true only (stdin_fd, stdout_fd, stderr_fd are -1 then): one read+write fd
 *              like a pty master — writes are stdin, reads the terminal's output (EOF after the
 *              last byte); shutting down its write side is end-of-input. -1 without tty.
 *   ctl_fd:    readable once the exec finished (status received and all output written to
 *              stdout_fd/stderr_fd/tty_fd, or failed); then call k8s_exec_result().
 */
struct k8s_exec {
    int stdin_fd, stdout_fd, stderr_fd, tty_fd, ctl_fd;
    void *priv;
};

struct k8s_exec_result {
    int exit_code;                  /* 0..255 */
};

/* Connects (blocking until the WebSocket is established or refused). Handshake errors (pod not
 * found, 401, …) come back typed in err. argv travels in the request path, which may be at most
 * 2000 bytes URL-escaped (libwebsockets 4.1.6): -E2BIG (K8S_BAD_REQUEST) beyond. One libwebsockets context per exec (its TLS settings
 * come from the client's config); a service thread and a pump thread per exec. */
int k8s_exec_start(struct k8s_client *c, const struct k8s_exec_opts *o, struct k8s_exec **ret,
                   struct k8s_error *err);
/* Nonblocking: -EAGAIN while running; 0 + exit code after a channel-3 status (Success → 0,
 * NonZeroExitCode → the ExitCode cause); -EIO (err: K8S_PROTOCOL/TRANSPORT) if the stream ended
 * without a status, -ETIMEDOUT after timeout_ms, or the Status error (e.g. InternalError). */
int k8s_exec_result(struct k8s_exec *e, struct k8s_exec_result *ret, struct k8s_error *err);
/* Blocks until finished (polls ctl_fd); same returns as k8s_exec_result. */
int k8s_exec_wait(struct k8s_exec *e, struct k8s_exec_result *ret, struct k8s_error *err);
/* Channel 4 {"Width":cols,"Height":rows}. -ENOTCONN once finished. */
int k8s_exec_resize(struct k8s_exec *e, unsigned rows, unsigned cols);
/* 5 or 4: the negotiated subprotocol version. */
int k8s_exec_protocol(struct k8s_exec *e);
/* Closes the WebSocket if still open, joins the threads, closes the fds. NULL is fine. */
void k8s_exec_free(struct k8s_exec *e);
