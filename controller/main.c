/*
 * main.c — sandboxd's entry point.
 *
 * Order matters: configuration, then the runtime's spawner process (forked while the daemon is
 * still single-threaded), then migrations, then the server's threads. SIGTERM/SIGINT start a
 * graceful shutdown; the exit status is 0 after a clean shutdown and 1 for any start-up error,
 * which is logged with its reason.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "common/crypto.h"
#include "common/log.h"
#include "controller/app.h"
#include "controller/events.h"
#include "controller/leader.h"
#include "controller/loops.h"
#include "controller/secrets.h"
#include "controller/templates.h"
#include "controller/warmpool.h"
#include "controller/webhooks.h"
#include "controller/ratelimit.h"
#include "controller/server.h"
#include "k8s/k8s-runtime.h"
#include "runtime/local.h"
#include "storage/blobstore.h"
#include "storage/db.h"

extern char **environ;

static struct server *volatile running_server;

static void on_signal(int sig)
{
    (void)sig;
    if (running_server)
        server_request_stop(running_server);
}

/* mkdir -p with mode 0711 for created components. Returns 0 or -errno. */
static int mkdir_parents(const char *path)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0711) < 0 && errno != EEXIST)
                return -errno;
            *p = c;
            if (!c)
                return 0;
        }
    }
}

/* Starts the configured runtime. A runtime that cannot start is a documented degradation:
 * the API still serves, and sandbox endpoints answer 503 runtime_unavailable. */
static void start_runtime(struct app *app)
{
    const struct sbx_config *cfg = &app->cfg;
    bool k8s = strcmp(cfg->runtime.kind, "k8s") == 0;
    if (!k8s && strcmp(cfg->runtime.kind, "local") != 0) {
        snprintf(app->runtime_error, sizeof(app->runtime_error),
                 "runtime kind '%s' is not available in this build", cfg->runtime.kind);
        log_error("sandbox runtime unavailable: %s", app->runtime_error);
        return;
    }
    const char *init = cfg->runtime.init_path[0] ? cfg->runtime.init_path : NULL;
#ifdef SBX_BUILD_INIT_PATH
    if (!init && access(SBX_BUILD_INIT_PATH, X_OK) == 0)
        init = SBX_BUILD_INIT_PATH;
#endif
    /* Daemons with different state directories must never see each other's sandboxes (the
     * reconciler stops sandboxes it has no row for), so the cgroup prefix is qualified with a
     * hash of the state directory's absolute path; it also names this instance in the
     * sandboxes it creates (runtime_ref), so daemons sharing a database leave each other's
     * rows alone. */
    char abs_state[4096], hash[SBX_SHA256_HEX_LEN + 1];
    int mr = mkdir_parents(cfg->state_dir);
    if (mr < 0)
        log_error_errno(mr, "cannot create the state directory %s", cfg->state_dir);
    if (!realpath(cfg->state_dir, abs_state))
        snprintf(abs_state, sizeof(abs_state), "%s", cfg->state_dir);
    sbx_sha256_hex(abs_state, strlen(abs_state), hash);
    snprintf(app->instance, sizeof(app->instance), "%s-%.8s", cfg->runtime.cgroup_prefix, hash);
    if (k8s) {
        /* Kubernetes backend (docs/internals/K8S-RUNTIME.md): one pod per sandbox. */
        struct k8s_runtime_config kc = {
            .kubeconfig = cfg->k8s.kubeconfig,
            .ns = cfg->k8s.namespace,
            .image = cfg->k8s.image,
            .runtime_class = cfg->k8s.runtime_class,
            .timeout_s = cfg->limits.max_timeout,
        };
        char kerr[256] = "";
        int kr = k8s_runtime_start(&kc, &app->rt, kerr, sizeof(kerr));
        if (kr < 0) {
            app->rt = NULL;
            snprintf(app->runtime_error, sizeof(app->runtime_error), "%s", kerr);
            log_error("sandbox runtime unavailable (sandbox endpoints will answer 503): %s", kerr);
            return;
        }
        /* Every replica of a deployment must be the same instance, whatever its state dir
         * (the leader reaps and reconciles the sandboxes any replica created, and the pods are
         * the namespace's anyway): the instance is named after the namespace in k8s mode
         * (docs/internals/LEADER.md "Runtime instances"). */
        const char *ns = k8s_runtime_namespace(app->rt);
        _cleanup_free_ char *key = xasprintf("k8s:%s", ns);
        sbx_sha256_hex(key, strlen(key), hash);
        snprintf(app->instance, sizeof(app->instance), "%s-%.8s", cfg->runtime.cgroup_prefix,
                 hash);
        if (kerr[0])
            log_warn("sandbox runtime started with reduced features: %s", kerr);
        else
            log_info("sandbox runtime started: kubernetes (namespace %s, instance %s)", ns,
                     app->instance);
        return;
    }
    struct rt_local_config rc = {
        .state_dir = cfg->state_dir,
        .init_path = init,
        .cgroup_prefix = app->instance,
        .uid_base = cfg->runtime.uid_base,
    };
    char err[256] = "";
    int r = rt_local_start(&rc, &app->rt, err, sizeof(err));
    if (r < 0) {
        app->rt = NULL;
        snprintf(app->runtime_error, sizeof(app->runtime_error), "%s", err);
        log_error("sandbox runtime unavailable (sandbox endpoints will answer 503): %s", err);
        return;
    }
    if (err[0])
        log_warn("sandbox runtime started with reduced features: %s", err);
    else
        log_info("sandbox runtime started: local");
}

static void usage(FILE *f)
{
    fputs("usage: sandboxd [--config FILE] [--print-config] [--help]\n"
          "  --config FILE    YAML configuration (default: $SANDBOXD_CONFIG, else none)\n"
          "  --print-config   print the effective configuration and exit\n"
          "Every setting can also be set with SANDBOXD_<SECTION>_<KEY>; see "
          "docs/internals/CONFIG.md.\n",
          f);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "print-config", no_argument, NULL, 'p' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *config_path = getenv("SANDBOXD_CONFIG");
    bool print_config = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:ph", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'p':
            print_config = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    static struct app app;
    char err[512];
    sbx_config_defaults(&app.cfg);
    if (sbx_config_load(&app.cfg, config_path, environ, err, sizeof(err)) < 0) {
        log_error("invalid configuration: %s", err);
        return 1;
    }
    if (print_config) {
        sbx_config_dump(&app.cfg, stdout);
        sbx_config_free(&app.cfg);
        return 0;
    }
    enum sbx_log_level lvl;
    if (sbx_log_parse_level(app.cfg.log.level, &lvl) == 0)
        sbx_log_set_level(lvl);

    /* The runtime forks its spawner now, while this process is still single-threaded. */
    start_runtime(&app);

    /* The blob store (checkpoints, artifacts); a failure leaves the storage endpoints 503. */
    int br = sbx_blobstore_open(&app.cfg, &app.blobs, app.blobs_error, sizeof(app.blobs_error));
    if (br < 0)
        log_error_errno(br, "blob store unavailable: %s", app.blobs_error);
    else
        log_info("blob store: %s", app.blobs->ops->name);

    int r = db_migrate(app.cfg.database.migrate_url, app.cfg.database.migrations_dir, err,
                       sizeof(err));
    if (r < 0) {
        log_error("database migration failed: %s", err);
        sbx_config_free(&app.cfg);
        return 1;
    }
    log_info("database migrations applied: %d new", r);

    /* Webhooks, secrets, templates: read-only state loaded before any thread starts. */
    events_set_instance(app.instance);
    if ((r = secrets_init(&app.cfg, err, sizeof(err))) < 0 ||
        (r = webhooks_init(&app.cfg, err, sizeof(err))) < 0 ||
        (r = templates_init(&app.cfg, err, sizeof(err))) < 0 ||
        (r = leader_init(&app, err, sizeof(err))) < 0 ||
        (r = warmpool_start(&app, err, sizeof(err))) < 0) {
        log_error("start-up failed: %s", err);
        sbx_config_free(&app.cfg);
        return 1;
    }

    struct server_options so = {
        .address = app.cfg.listen.address,
        .port = app.cfg.listen.port,
        .workers = app.cfg.workers,
        .max_body_bytes = app.cfg.http.max_body_bytes,
        .max_header_bytes = (unsigned)app.cfg.http.max_header_bytes,
        .max_json_depth = app.cfg.http.max_json_depth,
        .idle_timeout_s = (unsigned)app.cfg.http.idle_timeout,
        .request_timeout_s = (unsigned)app.cfg.http.request_timeout,
        /* a buffered execute may run for exec_timeout_max, plus time to collect the output */
        .long_request_timeout_s = (unsigned)app.cfg.limits.exec_timeout_max + 30,
        .max_connections = app.cfg.http.max_connections,
    };
    struct server *srv = NULL;
    r = server_create(&so, &app, &srv, err, sizeof(err));
    if (r < 0) {
        log_error("cannot start the HTTP server: %s", err);
        sbx_config_free(&app.cfg);
        return 1;
    }
    app.server = srv;
    running_server = srv;
    install_signals();
    struct sbx_log_field f[] = {
        LF_STR("url", NULL),
        LF_INT("port", server_port(srv)),
        LF_INT("workers", app.cfg.workers),
    };
    char url[300];
    snprintf(url, sizeof(url), "http://%s:%u", app.cfg.listen.address, server_port(srv));
    f[0].v.s = url;
    sbx_log_fields(SBX_LOG_INFO, "sandboxd listening", f, ARRAY_SIZE(f));
    leader_start(&app); /* the loops below act only while leader (always, when disabled) */
    loops_start(&app);
    webhooks_start(&app);
    ratelimit_start(&app);

    server_run(srv);
    running_server = NULL;
    loops_stop();
    webhooks_stop();
    leader_stop(); /* after the loops: releases the Lease for a quick hand-over */
    server_free(srv);
    ratelimit_stop(); /* after the workers: merges what they consumed */
    if (app.rt)
        app.rt->ops->free(app.rt); /* sandboxes keep running; the next start adopts them */
    sbx_blobstore_free(app.blobs);
    log_info("sandboxd stopped");
    sbx_config_free(&app.cfg);
    return 0;
}
