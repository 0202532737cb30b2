/*
 * k8sctl — a small CLI over the k8s/ client library, for tests and debugging.
 *
 *   k8sctl [--kubeconfig F] [--context C] [--incluster] [-n NS] [--no-retries] CMD ...
 *     config                          print server / namespace / auth kind
 *     get KIND NAME                   print the object (JSON)
 *     list KIND [-l SEL] [--field-selector SEL]   print name per line (+ "rv=" line first)
 *     create KIND FILE|-              create from JSON, print the created object
 *     update KIND NAME FILE|-         PUT
 *     patch KIND NAME JSON            merge patch
 *     delete KIND NAME [--grace N] [--uid UID]
 *     watch KIND [-l SEL] [--rv RV] [--count N] [--timeout S]
 *                                     one line per event: "TYPE name rv" (RESYNC: "RESYNC n rv")
 *     exec POD [--v4] [--no-stdin] [--container C] [--timeout-ms MS] -- ARGV...
 *                                     stdin → pod, pod stdout/stderr → ours; exit code = the
 *                                     command's; 255 + message on stderr for client errors
 *   KIND: pod, lease, networkpolicy, namespace.
 * Errors: "error: <Type> (<http>): <message>" on stderr, exit 1 (exec: 255); retry-after shown.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/macro.h"
#include "k8s/k8s.h"

static int parse_kind(const char *s, enum k8s_kind *ret)
{
    static const char *const names[] = { "pod", "lease", "networkpolicy", "namespace" };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        size_t n = strlen(names[i]);
        if (!strncmp(s, names[i], n) && (!s[n] || !strcmp(s + n, "s"))) {
            *ret = (enum k8s_kind)i;
            return 0;
        }
    }
    if (!strcmp(s, "po")) {
        *ret = K8S_KIND_POD;
        return 0;
    }
    fprintf(stderr, "error: unknown kind %s\n", s);
    return -EINVAL;
}

static int fail(const struct k8s_error *e, int r)
{
    if (e && e->type != K8S_OK) {
        fprintf(stderr, "error: %s (%d): %s", k8s_err_type_name(e->type), e->http_status,
                e->message);
        if (e->reason[0])
            fprintf(stderr, " [reason=%s]", e->reason);
        if (e->retry_after_s)
            fprintf(stderr, " [retry-after=%u]", e->retry_after_s);
        fputc('\n', stderr);
    } else
        fprintf(stderr, "error: %s\n", strerror(-r));
    return 1;
}

static void print_json(yajl_val v)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    sbx_jgen_value(g, v);
    size_t n;
    _cleanup_free_ char *s = sbx_jgen_take(g, &n);
    fwrite(s, 1, n, stdout);
    fputc('\n', stdout);
}

static char *read_all(const char *path)
{
    int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0)
        return NULL;
    struct sbx_buf b = SBX_BUF_INIT;
    char tmp[65536];
    ssize_t n;
    while ((n = read(fd, tmp, sizeof tmp)) > 0)
        if (sbx_buf_append(&b, tmp, (size_t)n) < 0)
            break;
    if (fd)
        close(fd);
    return sbx_buf_steal(&b, NULL);
}

struct wctx {
    long count, seen;
};

static int watch_cb(const struct k8s_watch_event *ev, void *u)
{
    struct wctx *w = u;
    if (ev->type == K8S_WATCH_RESYNC) {
        yajl_val items = k8s_list_items(ev->object);
        printf("RESYNC %zu %s\n", items ? items->u.array.len : 0,
               ev->resource_version ? ev->resource_version : "-");
        for (size_t i = 0; items && i < items->u.array.len; i++)
            printf("  item %s\n", k8s_obj_name(items->u.array.values[i]) ?: "-");
    } else if (ev->type == K8S_WATCH_ERROR) {
        printf("ERROR %s %s\n", ev->err ? k8s_err_type_name(ev->err->type) : "-",
               ev->err ? ev->err->message : "-");
    } else {
        printf("%s %s %s\n", k8s_watch_type_name(ev->type),
               k8s_obj_name(ev->object) ?: "-", ev->resource_version ?: "-");
        if (ev->type == K8S_WATCH_BOOKMARK) {
            fflush(stdout);
            return 0; /* bookmarks do not count */
        }
    }
    fflush(stdout);
    if (ev->type != K8S_WATCH_ERROR)
        w->seen++;
    return w->count > 0 && w->seen >= w->count ? 1 : 0;
}

static volatile int watch_stop;
static void on_alarm(int sig)
{
    watch_stop = 1;
}

/* Bridges our stdin/stdout/stderr with the exec's fds. */
static int do_exec(struct k8s_client *c, const char *ns, int argc, char **argv)
{
    struct k8s_exec_opts o = { .ns = ns };
    static const struct option lo[] = {
        { "v4", no_argument, NULL, '4' },
        { "no-stdin", no_argument, NULL, 'I' },
        { "container", required_argument, NULL, 'c' },
        { "timeout-ms", required_argument, NULL, 't' },
        { "tty", no_argument, NULL, 'T' },
        {},
    };
    int ch;
    if (argc < 2) {
        fprintf(stderr, "usage: k8sctl exec POD [opts] -- ARGV...\n");
        return 255;
    }
    o.pod = argv[1];
    argc--;
    argv++;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "+c:", lo, NULL)) != -1) {
        switch (ch) {
        case '4': o.force_v4 = true; break;
        case 'I': o.no_stdin = true; break;
        case 'c': o.container = optarg; break;
        case 't': o.timeout_ms = (unsigned)strtoul(optarg, NULL, 10); break;
        case 'T': o.tty = true; break;
        default: return 255;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: k8sctl exec POD [opts] -- ARGV...\n");
        return 255;
    }
    o.argv = (const char *const *)argv + optind;
    struct k8s_exec *e = NULL;
    struct k8s_error err = { 0 };
    int r = k8s_exec_start(c, &o, &e, &err);
    if (r < 0) {
        fail(&err, r);
        return 255;
    }
    fprintf(stderr, "# protocol v%d\n", k8s_exec_protocol(e));
    signal(SIGPIPE, SIG_IGN);
    static char inbuf[65536];
    size_t in_len = 0, in_off = 0;
    bool in_eof = o.no_stdin;
    bool out_open = true, err_open = e->stderr_fd >= 0;
    int in_fd = o.tty ? e->tty_fd : e->stdin_fd, out_fd = o.tty ? e->tty_fd : e->stdout_fd;
    for (;;) {
        struct pollfd p[4] = {
            { .fd = -1 }, { .fd = -1 }, { .fd = -1 }, { .fd = -1 },
        };
        if (!in_eof && in_len == 0)
            p[0] = (struct pollfd){ .fd = 0, .events = POLLIN };
        if (in_len && in_fd >= 0)
            p[1] = (struct pollfd){ .fd = in_fd, .events = POLLOUT };
        if (out_open)
            p[2] = (struct pollfd){ .fd = out_fd, .events = POLLIN };
        if (err_open)
            p[3] = (struct pollfd){ .fd = e->stderr_fd, .events = POLLIN };
        if (!out_open && !err_open)
            break;
        if (poll(p, 4, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents) {
            ssize_t n = read(0, inbuf, sizeof inbuf);
            if (n <= 0) {
                in_eof = true;
                if (o.tty && in_fd >= 0)
                    shutdown(in_fd, SHUT_WR);
                else if (e->stdin_fd >= 0) {
                    close(e->stdin_fd);
                    e->stdin_fd = -1;
                }
                in_fd = -1;
            } else {
                in_len = (size_t)n;
                in_off = 0;
            }
        }
        if (p[1].revents & (POLLOUT | POLLERR | POLLHUP)) {
            ssize_t n = write(in_fd, inbuf + in_off, in_len - in_off);
            if (n > 0) {
                in_off += (size_t)n;
                if (in_off == in_len)
                    in_len = in_off = 0;
            } else if (n < 0 && errno != EAGAIN) {
                in_len = 0;
                in_eof = true;
            }
        }
        for (int i = 2; i < 4; i++) {
            if (!p[i].revents)
                continue;
            char buf[65536];
            ssize_t n = read(p[i].fd, buf, sizeof buf);
            if (n > 0) {
                int ofd = i == 2 ? 1 : 2;
                size_t off = 0;
                while (off < (size_t)n) {
                    ssize_t w = write(ofd, buf + off, (size_t)n - off);
                    if (w < 0 && errno == EINTR)
                        continue;
                    if (w <= 0)
                        break;
                    off += (size_t)w;
                }
            } else if (n == 0 || errno != EAGAIN) {
                if (i == 2)
                    out_open = false;
                else
                    err_open = false;
            }
        }
    }
    struct k8s_exec_result res;
    r = k8s_exec_wait(e, &res, &err);
    k8s_exec_free(e);
    if (r < 0) {
        fail(&err, r);
        return 255;
    }
    return res.exit_code;
}

int main(int argc, char **argv)
{
    const char *kubeconfig = NULL, *context = NULL, *ns = NULL;
    bool incluster = false, no_retries = false;
    static const struct option lo[] = {
        { "kubeconfig", required_argument, NULL, 'k' },
        { "context", required_argument, NULL, 'C' },
        { "incluster", no_argument, NULL, 'i' },
        { "namespace", required_argument, NULL, 'n' },
        { "no-retries", no_argument, NULL, 'R' },
        {},
    };
    int ch;
    lws_set_log_level(LLL_ERR, NULL);
    while ((ch = getopt_long(argc, argv, "+n:", lo, NULL)) != -1) {
        switch (ch) {
        case 'k': kubeconfig = optarg; break;
        case 'C': context = optarg; break;
        case 'i': incluster = true; break;
        case 'n': ns = optarg; break;
        case 'R': no_retries = true; break;
        default: return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: k8sctl [--kubeconfig F] [-n NS] CMD ...\n");
        return 2;
    }
    char cerr[512] = "";
    struct k8s_config *cfg = NULL;
    int r = incluster ? k8s_config_incluster(&cfg, cerr, sizeof cerr)
                      : k8s_config_kubeconfig(kubeconfig, context, &cfg, cerr, sizeof cerr);
    if (r < 0) {
        fprintf(stderr, "config error: %s\n", cerr);
        return 3;
    }
    struct k8s_client_opts copts = { .max_retries = no_retries ? K8S_NO_RETRIES : 0,
                                     .backoff_ms = 50 };
    struct k8s_client *c = NULL;
    if ((r = k8s_client_new(cfg, &copts, &c, cerr, sizeof cerr)) < 0) {
        fprintf(stderr, "client error: %s\n", cerr);
        return 3;
    }
    char **av = argv + optind;
    int ac = argc - optind;
    const char *cmd = av[0];
    struct k8s_error err = { 0 };
    _cleanup_json_ yajl_val v = NULL;
    enum k8s_kind kind = K8S_KIND_POD;
    int rc = 0;

    if (!strcmp(cmd, "config")) {
        _cleanup_free_ char *tok = k8s_config_token(k8s_client_config(c));
        printf("server %s\nnamespace %s\ntoken %s\ninsecure %d\n",
               k8s_config_server(k8s_client_config(c)), k8s_client_namespace(c),
               tok ? "yes" : "no", k8s_config_insecure(k8s_client_config(c)));
    } else if (!strcmp(cmd, "exec")) {
        rc = do_exec(c, ns, ac, av);
    } else if (ac < 2 || parse_kind(av[1], &kind) < 0) {
        fprintf(stderr, "usage: k8sctl %s KIND ...\n", cmd);
        rc = 2;
    } else if (!strcmp(cmd, "get") && ac >= 3) {
        r = k8s_get(c, kind, ns, av[2], &v, &err);
        rc = r < 0 ? fail(&err, r) : (print_json(v), 0);
    } else if (!strcmp(cmd, "list")) {
        const char *ls = NULL, *fs = NULL;
        for (int i = 2; i + 1 < ac; i += 2) {
            if (!strcmp(av[i], "-l"))
                ls = av[i + 1];
            else if (!strcmp(av[i], "--field-selector"))
                fs = av[i + 1];
        }
        r = k8s_list(c, kind, ns, ls, fs, &v, &err);
        if (r < 0)
            rc = fail(&err, r);
        else {
            printf("rv=%s\n", k8s_obj_resource_version(v) ?: "-");
            yajl_val items = k8s_list_items(v);
            for (size_t i = 0; items && i < items->u.array.len; i++)
                printf("%s\n", k8s_obj_name(items->u.array.values[i]) ?: "-");
        }
    } else if (!strcmp(cmd, "create") && ac >= 3) {
        _cleanup_free_ char *body = read_all(av[2]);
        if (!body)
            rc = fail(NULL, -errno);
        else {
            r = k8s_create(c, kind, ns, body, &v, &err);
            rc = r < 0 ? fail(&err, r) : (print_json(v), 0);
        }
    } else if (!strcmp(cmd, "update") && ac >= 4) {
        _cleanup_free_ char *body = read_all(av[3]);
        if (!body)
            rc = fail(NULL, -errno);
        else {
            r = k8s_update(c, kind, ns, av[2], body, &v, &err);
            rc = r < 0 ? fail(&err, r) : (print_json(v), 0);
        }
    } else if (!strcmp(cmd, "patch") && ac >= 4) {
        r = k8s_patch_merge(c, kind, ns, av[2], av[3], &v, &err);
        rc = r < 0 ? fail(&err, r) : (print_json(v), 0);
    } else if (!strcmp(cmd, "delete") && ac >= 3) {
        struct k8s_delete_opts d = { .grace_period_s = -1 };
        for (int i = 3; i + 1 < ac; i += 2) {
            if (!strcmp(av[i], "--grace"))
                d.grace_period_s = atoi(av[i + 1]);
            else if (!strcmp(av[i], "--uid"))
                d.precondition_uid = av[i + 1];
        }
        r = k8s_delete(c, kind, ns, av[2], &d, &err);
        rc = r < 0 ? fail(&err, r) : (printf("deleted\n"), 0);
    } else if (!strcmp(cmd, "watch")) {
        struct k8s_watch_opts wo = { .kind = kind, .ns = ns, .timeout_s = 30 };
        struct wctx w = { .count = 0 };
        unsigned timeout = 60;
        for (int i = 2; i + 1 < ac; i += 2) {
            if (!strcmp(av[i], "-l"))
                wo.label_selector = av[i + 1];
            else if (!strcmp(av[i], "--rv"))
                wo.resource_version = av[i + 1];
            else if (!strcmp(av[i], "--count"))
                w.count = atol(av[i + 1]);
            else if (!strcmp(av[i], "--timeout"))
                timeout = (unsigned)atoi(av[i + 1]);
            else if (!strcmp(av[i], "--server-timeout"))
                wo.timeout_s = (unsigned)atoi(av[i + 1]);
        }
        signal(SIGALRM, on_alarm);
        alarm(timeout);
        r = k8s_watch_run(c, &wo, watch_cb, &w, &watch_stop);
        if (r < 0)
            rc = fail(NULL, r);
        else if (watch_stop) {
            fprintf(stderr, "error: watch timed out after %u events\n", (unsigned)w.seen);
            rc = 4;
        }
    } else {
        fprintf(stderr, "unknown command or missing arguments: %s\n", cmd);
        rc = 2;
    }
    k8s_client_free(c);
    return rc;
}
