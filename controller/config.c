/*
 * config.c — YAML configuration file and SANDBOXD_* environment overrides (see config.h).
 *
 * DESIGN
 * The schema table below is the single source of truth: one row per setting with its dotted
 * path, type, offset into struct sbx_config, default (as text, parsed by the same code as the
 * file), range and documentation. Defaults, parsing, environment overrides, copying, freeing,
 * sbx_config_dump() and the docs table are all loops over it; adding a setting is one row
 * plus one struct field (the SLOT() macro refuses to compile when the field's C type does not
 * match the row's type).
 *
 * The YAML file is read with libyaml's event parser, not its document loader, so nothing is
 * built in memory and the first problem stops parsing: an unknown key, a wrong type, a
 * duplicate, an alias or a mapping nested deeper than SBX_CONFIG_MAX_DEPTH is reported with
 * the file name, 1-based line and column, and the setting's path. Dotted keys may also be
 * written flat at the top level ("listen.port: 9000").
 *
 * Loading is all-or-nothing: the file and the environment are applied to a deep copy of the
 * caller's struct, cross-field checks run, and only then is the copy moved into place.
 */
#include "controller/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

#include "common/buf.h"
#include "common/macro.h"

#ifdef SBX_SOURCE_DIR
#define DEFAULT_MIGRATIONS_DIR SBX_SOURCE_DIR "/sql"
#else
#define DEFAULT_MIGRATIONS_DIR "sql"
#endif

#define KiB (INT64_C(1) << 10)
#define MiB (INT64_C(1) << 20)
#define GiB (INT64_C(1) << 30)
#define TiB (INT64_C(1) << 40)
#define MINUTE INT64_C(60)
#define HOUR INT64_C(3600)
#define DAY INT64_C(86400)

/* Offset of `field`, refusing to compile unless the field has C type `ctype`. */
#define SLOT(field, ctype)                                                                        \
    (offsetof(struct sbx_config, field) +                                                         \
     0 * sizeof(_Generic(((struct sbx_config *)0)->field, ctype: 1)))

#define ROW(p, t, ctype, field, d, mn, mx, ...)                                                   \
    {                                                                                             \
        .path = (p), .type = (t), .offset = SLOT(field, ctype), .def = (d), .min = (mn),          \
        .max = (mx), __VA_ARGS__                                                                  \
    }
#define STR(p, f, d, minlen, ...)                                                                 \
    ROW(p, SBX_CONFIG_STRING, char *, f, d, minlen, SBX_CONFIG_MAX_STRING, __VA_ARGS__)
#define UINT(p, f, d, mn, mx, ...) ROW(p, SBX_CONFIG_UINT, uint32_t, f, d, mn, mx, __VA_ARGS__)
#define BOOL(p, f, d, ...) ROW(p, SBX_CONFIG_BOOL, bool, f, d, 0, 1, __VA_ARGS__)
#define SIZE(p, f, d, mn, mx, ...) ROW(p, SBX_CONFIG_SIZE, uint64_t, f, d, mn, mx, __VA_ARGS__)
#define DUR(p, f, d, mn, mx, ...) ROW(p, SBX_CONFIG_DURATION, uint64_t, f, d, mn, mx, __VA_ARGS__)
#define CPUS(p, f, d, mn, mx, ...) ROW(p, SBX_CONFIG_CPUS, uint32_t, f, d, mn, mx, __VA_ARGS__)

/* The ten settings of one plan (plans.<name>.*). */
#define PLAN_ROWS(name, mo, conc, dur, stor, cpus, mem, rl, rb, orl, orb)                          \
    UINT("plans." #name ".monthly_sandboxes", plans.name.monthly_sandboxes, mo, 0, 100000000,     \
         .doc = "Sandboxes the plan may create per calendar month; 0 = unlimited."),              \
    UINT("plans." #name ".max_concurrent", plans.name.max_concurrent, conc, 0, 1000000,           \
         .doc = "Live sandboxes at once; 0 = unlimited (`limits.max_sandboxes_per_org` applies)."),\
    DUR("plans." #name ".max_duration", plans.name.max_duration, dur, 0, 365 * DAY,               \
        .doc = "Longest sandbox lifetime; 0 = unlimited (`limits.max_timeout` applies)."),        \
    SIZE("plans." #name ".storage", plans.name.storage, stor, 0, 1024 * TiB,                      \
         .doc = "Checkpoint and artifact storage; 0 = unlimited."),                               \
    CPUS("plans." #name ".max_cpus", plans.name.max_cpus, cpus, 1, 1024000,                       \
         .doc = "Most CPUs one sandbox of the plan may request."),                                \
    SIZE("plans." #name ".max_memory", plans.name.max_memory, mem, MiB, 16 * TiB,                 \
         .doc = "Most memory one sandbox of the plan may request."),                              \
    UINT("plans." #name ".rate_limit", plans.name.rate_limit, rl, 0, 1000000,                     \
         .doc = "Requests per second per API key (bucket refill); 0 = no limit."),                \
    UINT("plans." #name ".rate_burst", plans.name.rate_burst, rb, 1, 10000000,                    \
         .doc = "Token-bucket size per API key (the burst)."),                                    \
    UINT("plans." #name ".org_rate_limit", plans.name.org_rate_limit, orl, 0, 1000000,            \
         .doc = "Requests per second per organization; 0 = no limit."),                           \
    UINT("plans." #name ".org_rate_burst", plans.name.org_rate_burst, orb, 1, 10000000,           \
         .doc = "Token-bucket size per organization.")

static const char *const log_levels[] = { "debug", "info", "warn", "error", NULL };
static const char *const runtime_kinds[] = { "local", "k8s", NULL };
static const char *const storage_kinds[] = { "fs", "s3", NULL };

static const struct sbx_config_key schema[] = {
    STR("listen.address", listen.address, "127.0.0.1", 1,
        .doc = "Address (IP or host name) the HTTP/WebSocket server binds."),
    UINT("listen.port", listen.port, "8080", 1, 65535, .doc = "TCP port of the server."),
    STR("database.url", database.url,
        "host=127.0.0.1 port=55432 dbname=sandboxd user=sandboxd_app", 1, .secret = true,
        .doc = "libpq conninfo of the application role (DML only)."),
    STR("database.migrate_url", database.migrate_url,
        "host=127.0.0.1 port=55432 dbname=sandboxd user=sandboxd_owner", 1, .secret = true,
        .doc = "libpq conninfo of the owner role, used only to run migrations."),
    STR("database.migrations_dir", database.migrations_dir, DEFAULT_MIGRATIONS_DIR, 1,
        .doc_default = "`<source>/sql` (`sql` without `-DSBX_SOURCE_DIR`)",
        .doc = "Directory holding the forward-only `NNNN_*.sql` migrations."),
    UINT("workers", workers, "4", 1, 64,
         .doc = "Worker threads; each owns one database connection."),
    STR("log.level", log.level, "info", 1, .choices = log_levels,
        .doc = "Lowest level that is logged."),
    SIZE("http.max_body_bytes", http.max_body_bytes, "16Mi", KiB, GiB,
         .doc = "Largest accepted request body."),
    SIZE("http.max_header_bytes", http.max_header_bytes, "8192", KiB, MiB,
         .doc = "Largest accepted request line plus headers."),
    UINT("http.max_json_depth", http.max_json_depth, "32", 1, 128, /* yajl_gen nests at most 128 */
         .doc = "Deepest nesting accepted in a JSON body."),
    DUR("http.idle_timeout", http.idle_timeout, "30s", 1, HOUR,
        .doc = "An idle keep-alive connection is closed after this."),
    DUR("http.request_timeout", http.request_timeout, "60s", 1, HOUR,
        .doc = "A request must be received completely within this."),
    UINT("http.max_connections", http.max_connections, "1024", 1, 1000000,
         .doc = "Concurrent client connections; more are refused."),
    STR("state_dir", state_dir, "./.state/sandboxd", 1,
        .doc = "Directory for the daemon's local state (sockets, sandbox roots)."),
    STR("runtime.kind", runtime.kind, "local", 1, .choices = runtime_kinds,
        .doc = "Sandbox runtime back-end."),
    STR("runtime.init_path", runtime.init_path, "", 0,
        .doc = "Init binary run as PID 1 in a sandbox; empty = the built-in init."),
    STR("runtime.cgroup_prefix", runtime.cgroup_prefix, "sandboxd", 1,
        .doc = "cgroup v2 directory (under the daemon's own) holding one child per sandbox."),
    UINT("runtime.uid_base", runtime.uid_base, "100000", 1, UINT32_MAX - 65536,
         .doc = "First host uid/gid of the 65536-id range mapped into sandboxes."),
    BOOL("runtime.allow_network", runtime.allow_network, "false",
         .doc = "Give sandboxes network access (otherwise only loopback)."),
    STR("k8s.kubeconfig", k8s.kubeconfig, "", 0,
        .doc = "runtime.kind k8s: kubeconfig file; empty = in-cluster config, else $KUBECONFIG."),
    STR("k8s.namespace", k8s.namespace, "", 0,
        .doc = "runtime.kind k8s: namespace of the sandbox pods; empty = the config's."),
    STR("k8s.image", k8s.image, "docker.io/library/python:3.12-slim", 1,
        .doc = "runtime.kind k8s: sandbox image (needs sh, tar, find, readlink, sha256sum)."),
    STR("k8s.runtime_class", k8s.runtime_class, "", 0,
        .doc = "runtime.kind k8s: runtimeClassName of sandbox pods (gvisor, kata); empty = none."),
    DUR("k8s.warm_pool_max_age", k8s.warm_pool_max_age, "1h", 1, 30 * DAY,
        .doc = "runtime.kind k8s: idle warm-pool pods older than this are replaced "
               "(pool sizes: the templates' `warm_pool_size`)."),
    CPUS("limits.max_cpus", limits.max_cpus, "4", 1, 1024000,
         .doc = "Most CPUs one sandbox may request."),
    SIZE("limits.max_memory", limits.max_memory, "8Gi", MiB, 16 * TiB,
         .doc = "Most memory one sandbox may request."),
    CPUS("limits.default_cpus", limits.default_cpus, "1", 1, 1024000,
         .doc = "CPUs of a sandbox that requests none (at most `limits.max_cpus`)."),
    SIZE("limits.default_memory", limits.default_memory, "512Mi", MiB, 16 * TiB,
         .doc = "Memory of a sandbox that requests none (at most `limits.max_memory`)."),
    DUR("limits.max_timeout", limits.max_timeout, "24h", 1, 365 * DAY,
        .doc = "Longest lifetime a sandbox may request."),
    DUR("limits.default_timeout", limits.default_timeout, "5m", 1, 365 * DAY,
        .doc = "Lifetime of a sandbox that requests none (at most `limits.max_timeout`)."),
    UINT("limits.max_sandboxes_per_org", limits.max_sandboxes_per_org, "20", 0, 1000000,
         .doc = "Live sandboxes one organisation may have; 0 = none allowed."),
    SIZE("limits.exec_output_max", limits.exec_output_max, "1Mi", KiB, GiB,
         .doc = "Output kept per stream of a non-streaming exec."),
    DUR("limits.exec_timeout_max", limits.exec_timeout_max, "10m", 1, 365 * DAY,
        .doc = "Longest timeout an exec may request."),
    UINT("limits.max_files_per_request", limits.max_files_per_request, "1000", 1, 1000000,
         .doc = "Most files in one upload/download request."),
    SIZE("limits.max_file_bytes", limits.max_file_bytes, "64Mi", 1, 16 * GiB,
         .doc = "Largest single file accepted by the files API."),
    DUR("reaper.interval", reaper.interval, "1s", 1, HOUR,
        .doc = "How often expired sandboxes are looked for."),
    DUR("reconciler.interval", reconciler.interval, "5s", 1, HOUR,
        .doc = "How often desired and actual sandbox state are compared."),
    BOOL("leader.enabled", leader.enabled, "false",
         .doc = "Elect one leader through a Lease (`k8s.*`); only it runs the background loops."),
    STR("leader.lease_name", leader.lease_name, "sandboxd-leader", 1,
        .doc = "Name of the coordination.k8s.io/v1 Lease (namespace: `k8s.namespace`)."),
    DUR("leader.lease_duration", leader.lease_duration, "15s", 2, HOUR,
        .doc = "A leader that has not renewed for this long may be replaced."),
    DUR("leader.renew_interval", leader.renew_interval, "5s", 1, HOUR,
        .doc = "How often the leader renews (and a follower retries); below the duration."),
    SIZE("checkpoints.max_workspace_bytes", checkpoints.max_workspace_bytes, "1Gi", 1, 16 * TiB,
         .doc = "Most file bytes one checkpoint may hold (413 `workspace_too_large`)."),
    UINT("checkpoints.max_files", checkpoints.max_files, "100000", 1, 10000000,
         .doc = "Most entries (files, directories, symlinks) in one checkpoint (422)."),
    SIZE("checkpoints.org_quota_bytes", checkpoints.org_quota_bytes, "10Gi", 0, 1024 * TiB,
         .doc = "Distinct checkpoint content one organisation may store (429)."),
    STR("storage.kind", storage.kind, "fs", 1, .choices = storage_kinds,
        .doc = "Blob store for checkpoints and artifacts (docs/internals/STORAGE.md)."),
    STR("storage.fs_dir", storage.fs_dir, "", 0,
        .doc = "Directory of the fs blob store; empty = `<state_dir>/blobs`."),
    STR("storage.signing_key", storage.signing_key, "", 0, .secret = true, .secret_whole = true,
        .doc = "HMAC key of fs download URLs; empty = generated once into "
               "`<state_dir>/blob-signing.key` (0600)."),
    STR("storage.public_url", storage.public_url, "", 0,
        .doc = "Base of fs download URLs; empty = `http://<listen.address>:<listen.port>`."),
    STR("storage.s3.endpoint", storage.s3.endpoint, "", 0,
        .doc = "S3 endpoint `http(s)://host[:port]`; empty = AWS for `storage.s3.region`."),
    STR("storage.s3.region", storage.s3.region, "us-east-1", 1,
        .doc = "S3 region (part of the SigV4 scope)."),
    STR("storage.s3.bucket", storage.s3.bucket, "", 0,
        .doc = "S3 bucket (required when `storage.kind` is `s3`)."),
    STR("storage.s3.access_key_id", storage.s3.access_key_id, "", 0,
        .doc = "S3 access key id; empty = `AWS_ACCESS_KEY_ID`."),
    STR("storage.s3.secret_access_key", storage.s3.secret_access_key, "", 0, .secret = true,
        .secret_whole = true, .doc = "S3 secret key; empty = `AWS_SECRET_ACCESS_KEY`."),
    STR("storage.s3.session_token", storage.s3.session_token, "", 0, .secret = true,
        .secret_whole = true, .doc = "S3 session token; empty = `AWS_SESSION_TOKEN`."),
    BOOL("storage.s3.path_style", storage.s3.path_style, "true",
         .doc = "Path-style URLs (`endpoint/bucket/key`); false = virtual-hosted (`bucket.host`)."),
    BOOL("storage.s3.verify_tls", storage.s3.verify_tls, "true",
         .doc = "Verify the endpoint's TLS certificate and host name."),
    STR("storage.s3.ca_file", storage.s3.ca_file, "", 0,
        .doc = "PEM CA bundle for the endpoint; empty = the system's CAs."),
    SIZE("storage.s3.multipart_threshold", storage.s3.multipart_threshold, "16Mi", 5 * MiB, GiB,
         .doc = "Objects of at least this size are sent as multipart uploads."),
    SIZE("storage.s3.part_size", storage.s3.part_size, "8Mi", 5 * MiB, GiB,
         .doc = "Part size of multipart uploads (one part is held in memory per upload)."),
    PLAN_ROWS(free, "50", "2", "5m", "1Gi", "2", "4Gi", "20", "100", "50", "200"),
    PLAN_ROWS(pro, "1000", "10", "1h", "50Gi", "4", "8Gi", "50", "200", "100", "500"),
    PLAN_ROWS(team, "10000", "50", "2h", "500Gi", "8", "16Gi", "100", "500", "200", "1000"),
    PLAN_ROWS(enterprise, "0", "0", "0", "0", "16", "64Gi", "500", "2000", "1000", "5000"),
    UINT("rates.cpu_vcpu_hour", rates.cpu_vcpu_hour, "5000", 0, 100000000,
         .doc = "Price of one vCPU-hour, in millicents (1/1000 cent), for estimated costs."),
    UINT("rates.memory_gb_hour", rates.memory_gb_hour, "500", 0, 100000000,
         .doc = "Price of one GB-hour of memory, in millicents."),
    UINT("rates.storage_gb_month", rates.storage_gb_month, "10000", 0, 100000000,
         .doc = "Price of one GB-month of checkpoint/artifact storage, in millicents."),
    UINT("rates.network_gb", rates.network_gb, "5000", 0, 100000000,
         .doc = "Price of one GB of network traffic, in millicents."),
    STR("admin.token", admin.token, "", 0, .secret = true, .secret_whole = true,
        .doc = "Operator token for the admin API (`X-Admin-Token`); empty = admin API off."),
    BOOL("ratelimit.enabled", ratelimit.enabled, "true",
         .doc = "Enforce the per-key and per-organization request rate limits."),
    DUR("ratelimit.sync_interval", ratelimit.sync_interval, "1s", 1, HOUR,
        .doc = "How often rate-limit buckets are merged with the database snapshot."),
    DUR("idempotency.ttl", idempotency.ttl, "24h", 60, 30 * DAY,
        .doc = "How long a stored `Idempotency-Key` response is replayed."),
    DUR("test_mode.retention", test_mode.retention, "7d", 1, 365 * DAY,
        .doc = "Test-mode sandboxes, checkpoints and artifacts older than this are deleted."),
    STR("jwt.hs256_secret", jwt.hs256_secret, "", 0, .secret = true, .secret_whole = true,
        .doc = "Shared secret for HS256 JWTs (`Authorization: Bearer`); empty = HS256 off."),
    STR("jwt.public_key_file", jwt.public_key_file, "", 0,
        .doc = "PEM public key (RSA → RS256, EC P-256 → ES256) for JWTs; empty = none."),
    STR("jwt.jwks_file", jwt.jwks_file, "", 0,
        .doc = "JWKS file of RS256/ES256 public keys, chosen by the token's `kid`."),
    STR("jwt.issuer", jwt.issuer, "", 0, .doc = "Required `iss` of JWTs; empty = not checked."),
    STR("jwt.audience", jwt.audience, "", 0, .doc = "Required `aud` of JWTs; empty = not checked."),
    DUR("jwt.leeway", jwt.leeway, "30s", 0, HOUR,
        .doc = "Clock skew allowed when checking a JWT's `exp` and `nbf`."),
    STR("jwt.org_claim", jwt.org_claim, "org_id", 1,
        .doc = "JWT claim holding the organization id."),
    STR("jwt.user_claim", jwt.user_claim, "sub", 1, .doc = "JWT claim holding the user id."),
    STR("jwt.role_claim", jwt.role_claim, "role", 1,
        .doc = "JWT claim holding the role (owner/admin: all scopes; member; viewer: read)."),
    STR("webhooks.allow_cidrs", webhooks.allow_cidrs, "", 0,
        .doc = "Comma-separated CIDRs webhook URLs may resolve to although private/loopback."),
    STR("webhooks.retry_schedule", webhooks.retry_schedule, "5s,5m,30m,2h,5h,10h,14h,20h,24h", 1,
        .doc = "Delays between delivery attempts (jittered); the attempt count is this + 1."),
    UINT("webhooks.disable_after_failures", webhooks.disable_after_failures, "0", 0, 1000000,
         .doc = "Disable an endpoint after this many failed deliveries in a row; 0 = never."),
    DUR("webhooks.disable_after", webhooks.disable_after, "5d", 1, 365 * DAY,
        .doc = "Disable an endpoint that has failed continuously for this long."),
    DUR("webhooks.poll_interval", webhooks.poll_interval, "1s", 1, HOUR,
        .doc = "How often the dispatcher looks for new events and due deliveries."),
    DUR("webhooks.lease", webhooks.lease, "2m", 1, DAY,
        .doc = "A claimed delivery is retried by anyone after this (crash recovery)."),
    STR("secrets.key", secrets.key, "", 0, .secret = true,
        .doc = "Base64 of the 32-byte AES-256-GCM key; empty = `<state_dir>/secrets.key`."),
    STR("secrets.previous_keys", secrets.previous_keys, "", 0, .secret = true,
        .doc = "Comma-separated base64 keys still accepted for decryption (rotation)."),
    STR("templates.file", templates.file, "", 0,
        .doc = "YAML file of sandbox templates; empty = the built-in templates."),
};

#define N_KEYS ARRAY_SIZE(schema)

static const char *const type_names[_SBX_CONFIG_TYPE_MAX] = {
    [SBX_CONFIG_STRING] = "string", [SBX_CONFIG_INT] = "int",       [SBX_CONFIG_UINT] = "uint",
    [SBX_CONFIG_BOOL] = "bool",     [SBX_CONFIG_SIZE] = "size",     [SBX_CONFIG_DURATION] = "duration",
    [SBX_CONFIG_CPUS] = "cpus",
};

const struct sbx_config_key *sbx_config_schema(size_t *ret_n)
{
    if (ret_n)
        *ret_n = N_KEYS;
    return schema;
}

static void *slot(struct sbx_config *cfg, const struct sbx_config_key *k)
{
    return (char *)cfg + k->offset;
}

static const void *cslot(const struct sbx_config *cfg, const struct sbx_config_key *k)
{
    return (const char *)cfg + k->offset;
}

/* ---- value syntax ------------------------------------------------------------------------ */

/* Parses one or more decimal digits at *pp into *ret, advancing *pp. */
static int parse_digits(const char **pp, uint64_t *ret)
{
    const char *p = *pp;
    uint64_t v = 0;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *pp = p;
    *ret = v;
    return 0;
}

int sbx_config_parse_size(const char *s, uint64_t *ret)
{
    static const struct {
        const char *sfx;
        uint64_t mul;
    } units[] = {
        { "", 1 },          { "B", 1 },
        { "k", 1000 },      { "K", 1000 },       { "kB", 1000 },       { "KB", 1000 },
        { "Ki", KiB },      { "KiB", KiB },
        { "M", 1000000 },   { "MB", 1000000 },   { "Mi", MiB },        { "MiB", MiB },
        { "G", 1000000000 }, { "GB", 1000000000 }, { "Gi", GiB },       { "GiB", GiB },
        { "T", UINT64_C(1000000000000) }, { "TB", UINT64_C(1000000000000) },
        { "Ti", TiB },      { "TiB", TiB },
    };
    const char *p = s;
    uint64_t v;
    int r = parse_digits(&p, &v);
    if (r < 0)
        return r;
    for (size_t i = 0; i < ARRAY_SIZE(units); i++)
        if (strcmp(p, units[i].sfx) == 0) {
            if (v > UINT64_MAX / units[i].mul)
                return -ERANGE;
            *ret = v * units[i].mul;
            return 0;
        }
    return -EINVAL;
}

int sbx_config_parse_duration(const char *s, uint64_t *ret)
{
    const char *p = s;
    uint64_t total = 0;
    bool first = true;
    while (first || *p) {
        uint64_t v, mul;
        int r = parse_digits(&p, &v);
        if (r < 0)
            return r;
        switch (*p) {
        case '\0':
            if (!first)
                return -EINVAL; /* "1h30": a bare number only on its own */
            mul = 1;
            break;
        case 's':
            mul = 1;
            break;
        case 'm':
            mul = MINUTE;
            break;
        case 'h':
            mul = HOUR;
            break;
        case 'd':
            mul = DAY;
            break;
        default:
            return -EINVAL;
        }
        if (*p)
            p++;
        if (v > UINT64_MAX / mul || v * mul > UINT64_MAX - total)
            return -ERANGE;
        total += v * mul;
        first = false;
    }
    *ret = total;
    return 0;
}

int sbx_config_parse_cpus(const char *s, uint32_t *ret)
{
    const char *p = s;
    uint64_t whole, milli;
    int r = parse_digits(&p, &whole);
    if (r < 0)
        return r;
    if (p[0] == 'm' && p[1] == '\0') {
        milli = whole; /* "500m" */
    } else {
        uint64_t frac = 0;
        if (*p == '.') {
            p++;
            int nd = 0;
            for (; *p >= '0' && *p <= '9'; p++, nd++) {
                if (nd == 3)
                    return -EINVAL; /* finer than a milli-CPU */
                frac = frac * 10 + (uint64_t)(*p - '0');
            }
            if (nd == 0)
                return -EINVAL;
            for (; nd < 3; nd++)
                frac *= 10;
        }
        if (*p)
            return -EINVAL;
        if (whole > UINT32_MAX / 1000)
            return -ERANGE;
        milli = whole * 1000 + frac;
    }
    if (milli > UINT32_MAX)
        return -ERANGE;
    *ret = (uint32_t)milli;
    return 0;
}

int sbx_config_parse_bool(const char *s, bool *ret)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_int(const char *s, int64_t *ret)
{
    const char *p = s;
    bool neg = *p == '-';
    uint64_t v;
    if (neg)
        p++;
    int r = parse_digits(&p, &v);
    if (r < 0)
        return r;
    if (*p)
        return -EINVAL;
    if (v > (uint64_t)INT64_MAX + neg)
        return -ERANGE;
    *ret = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

void sbx_config_format_size(uint64_t v, char *out, size_t outlen)
{
    static const struct {
        const char *sfx;
        uint64_t mul;
    } units[] = { { "Ti", TiB }, { "Gi", GiB }, { "Mi", MiB }, { "Ki", KiB } };
    for (size_t i = 0; v && i < ARRAY_SIZE(units); i++)
        if (v % units[i].mul == 0) {
            snprintf(out, outlen, "%" PRIu64 "%s", v / units[i].mul, units[i].sfx);
            return;
        }
    snprintf(out, outlen, "%" PRIu64, v);
}

void sbx_config_format_duration(uint64_t v, char *out, size_t outlen)
{
    if (v && v % DAY == 0)
        snprintf(out, outlen, "%" PRIu64 "d", v / DAY);
    else if (v && v % HOUR == 0)
        snprintf(out, outlen, "%" PRIu64 "h", v / HOUR);
    else if (v && v % MINUTE == 0)
        snprintf(out, outlen, "%" PRIu64 "m", v / MINUTE);
    else
        snprintf(out, outlen, "%" PRIu64 "s", v);
}

void sbx_config_format_cpus(uint32_t v, char *out, size_t outlen)
{
    unsigned frac = v % 1000;
    if (frac == 0)
        snprintf(out, outlen, "%u", v / 1000);
    else if (frac % 100 == 0)
        snprintf(out, outlen, "%u.%u", v / 1000, frac / 100);
    else if (frac % 10 == 0)
        snprintf(out, outlen, "%u.%02u", v / 1000, frac / 10);
    else
        snprintf(out, outlen, "%u.%03u", v / 1000, frac);
}

/* Formats a numeric value of row k (in stored units) the way a user would write it. */
static void format_number(const struct sbx_config_key *k, int64_t v, char *out, size_t outlen)
{
    switch (k->type) {
    case SBX_CONFIG_SIZE:
        sbx_config_format_size((uint64_t)v, out, outlen);
        break;
    case SBX_CONFIG_DURATION:
        sbx_config_format_duration((uint64_t)v, out, outlen);
        break;
    case SBX_CONFIG_CPUS:
        sbx_config_format_cpus((uint32_t)v, out, outlen);
        break;
    default:
        snprintf(out, outlen, "%" PRId64, v);
    }
}

/* Strict UTF-8 check: no overlong forms, no surrogates, nothing above U+10FFFF. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* Copies user text into out for an error message: quoted, truncated, non-printables → '?'. */
static const char *quote(const char *s, size_t n, char *out, size_t outlen)
{
    size_t max = 40, o = 0;
    if (outlen < 8) {
        if (outlen)
            out[0] = '\0';
        return out;
    }
    out[o++] = '\'';
    for (size_t i = 0; i < n && i < max && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
    }
    if (n > max && o + 5 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '\'';
    out[o] = '\0';
    return out;
}

static const char *type_hint(enum sbx_config_type t)
{
    switch (t) {
    case SBX_CONFIG_INT:
        return "an integer";
    case SBX_CONFIG_UINT:
        return "a non-negative integer";
    case SBX_CONFIG_BOOL:
        return "a boolean (true/false)";
    case SBX_CONFIG_SIZE:
        return "a size (bytes, or with a suffix: 512Ki, 16Mi, 1Gi, 10MB)";
    case SBX_CONFIG_DURATION:
        return "a duration (seconds, or 30s, 5m, 1h, 1d)";
    case SBX_CONFIG_CPUS:
        return "a CPU count (2, 0.5, 500m)";
    default:
        return "a string";
    }
}

/*
 * Parses text (n bytes, NUL-terminated at n) as the value of row k and stores it in cfg.
 * On error writes a message without location (the caller adds it) and leaves cfg unchanged.
 */
static int set_value(struct sbx_config *cfg, const struct sbx_config_key *k, const char *text,
                     size_t n, char *msg, size_t msglen)
{
    char q[64];
    void *p = slot(cfg, k);

    if (memchr(text, '\0', n)) {
        snprintf(msg, msglen, "value contains a NUL byte");
        return -EINVAL;
    }
    if (k->type == SBX_CONFIG_STRING) {
        if (!utf8_valid((const unsigned char *)text, n)) {
            snprintf(msg, msglen, "value is not valid UTF-8");
            return -EINVAL;
        }
        if ((int64_t)n < k->min || (int64_t)n > k->max) {
            if (n == 0)
                snprintf(msg, msglen, "must not be empty");
            else
                snprintf(msg, msglen, "value is longer than %" PRId64 " bytes", k->max);
            return -EINVAL;
        }
        if (k->choices) {
            size_t i;
            for (i = 0; k->choices[i]; i++)
                if (strcmp(text, k->choices[i]) == 0)
                    break;
            if (!k->choices[i]) {
                struct sbx_buf b = SBX_BUF_INIT;
                for (i = 0; k->choices[i]; i++)
                    if (sbx_buf_printf(&b, "%s%s", i ? ", " : "", k->choices[i]) < 0)
                        break;
                snprintf(msg, msglen, "expected one of %s, got %s", b.data ? b.data : "",
                         k->secret ? "(redacted)" : quote(text, n, q, sizeof(q)));
                sbx_buf_free(&b);
                return -EINVAL;
            }
        }
        char **sp = p;
        free(*sp);
        *sp = xstrndup(text, n);
        return 0;
    }

    int64_t v = 0;
    int r;
    switch (k->type) {
    case SBX_CONFIG_BOOL: {
        bool b = false;
        r = sbx_config_parse_bool(text, &b);
        v = b;
        break;
    }
    case SBX_CONFIG_INT:
        r = parse_int(text, &v);
        break;
    case SBX_CONFIG_UINT:
    case SBX_CONFIG_SIZE:
    case SBX_CONFIG_DURATION: {
        uint64_t u = 0;
        if (k->type == SBX_CONFIG_SIZE)
            r = sbx_config_parse_size(text, &u);
        else if (k->type == SBX_CONFIG_DURATION)
            r = sbx_config_parse_duration(text, &u);
        else {
            const char *e = text;
            r = parse_digits(&e, &u);
            if (r == 0 && *e)
                r = -EINVAL;
        }
        if (r == 0 && u > INT64_MAX)
            r = -ERANGE;
        v = (int64_t)u;
        break;
    }
    case SBX_CONFIG_CPUS: {
        uint32_t c = 0;
        r = sbx_config_parse_cpus(text, &c);
        v = c;
        break;
    }
    default:
        r = -EINVAL;
    }
    if (r == -ERANGE) {
        snprintf(msg, msglen, "%s is too large", quote(text, n, q, sizeof(q)));
        return -EINVAL;
    }
    if (r < 0) {
        snprintf(msg, msglen, "expected %s, got %s", type_hint(k->type),
                 quote(text, n, q, sizeof(q)));
        return -EINVAL;
    }
    if (v < k->min || v > k->max) {
        char got[32], lo[32], hi[32];
        format_number(k, v, got, sizeof(got));
        format_number(k, k->min, lo, sizeof(lo));
        format_number(k, k->max, hi, sizeof(hi));
        snprintf(msg, msglen, "%s is out of range (%s..%s)", got, lo, hi);
        return -EINVAL;
    }
    switch (k->type) {
    case SBX_CONFIG_BOOL:
        *(bool *)p = v != 0;
        break;
    case SBX_CONFIG_INT:
        *(int64_t *)p = v;
        break;
    case SBX_CONFIG_UINT:
    case SBX_CONFIG_CPUS:
        *(uint32_t *)p = (uint32_t)v;
        break;
    default:
        *(uint64_t *)p = (uint64_t)v;
    }
    return 0;
}

/* ---- defaults, copy, free ---------------------------------------------------------------- */

void sbx_config_defaults(struct sbx_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_KEYS; i++) {
        char msg[256];
        if (set_value(cfg, &schema[i], schema[i].def, strlen(schema[i].def), msg,
                      sizeof(msg)) < 0) {
            fprintf(stderr, "BUG: default of %s: %s\n", schema[i].path, msg);
            abort();
        }
    }
}

void sbx_config_free(struct sbx_config *cfg)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (schema[i].type == SBX_CONFIG_STRING)
            free(*(char **)slot(cfg, &schema[i]));
    memset(cfg, 0, sizeof(*cfg));
}

void sbx_config_copy(struct sbx_config *dst, const struct sbx_config *src)
{
    memcpy(dst, src, sizeof(*dst));
    for (size_t i = 0; i < N_KEYS; i++)
        if (schema[i].type == SBX_CONFIG_STRING) {
            char **sp = slot(dst, &schema[i]);
            *sp = *sp ? xstrdup(*sp) : NULL;
        }
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct sbx_config *, sbx_config_free)

static const struct sbx_config_key *find_key(const char *path)
{
    for (size_t i = 0; i < N_KEYS; i++)
        if (strcmp(schema[i].path, path) == 0)
            return &schema[i];
    return NULL;
}

/* A section is a proper prefix of some key's path; returns the first such row. */
static const struct sbx_config_key *find_section(const char *path)
{
    size_t n = strlen(path);
    for (size_t i = 0; i < N_KEYS; i++)
        if (strncmp(schema[i].path, path, n) == 0 && schema[i].path[n] == '.')
            return &schema[i];
    return NULL;
}

/* ---- YAML -------------------------------------------------------------------------------- */

struct yctx {
    yaml_parser_t parser;
    struct sbx_config *cfg;
    const char *name;
    char *err;
    size_t errlen;
    size_t key_line[N_KEYS];     /* 1-based line a key was set on; 0 = not yet */
    size_t section_line[N_KEYS]; /* indexed by the section's first row */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(yaml_event_t *, yaml_event_delete)

static int failf(struct yctx *c, yaml_mark_t m, const char *fmt, ...) _printf_(3, 4);
static int failf(struct yctx *c, yaml_mark_t m, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s:%zu:%zu: %s", c->name, m.line + 1, m.column + 1, msg);
    return -EINVAL;
}

static int next_event(struct yctx *c, yaml_event_t *ev)
{
    if (yaml_parser_parse(&c->parser, ev))
        return 0;
    yaml_mark_t m = c->parser.problem_mark;
    if (c->parser.error == YAML_READER_ERROR) {
        m.line = 0; /* the reader knows only a byte offset */
        m.column = 0;
        snprintf(c->err, c->errlen, "%s: YAML syntax error: %s at byte %zu", c->name,
                 c->parser.problem ? c->parser.problem : "unreadable input",
                 c->parser.problem_offset);
        return -EINVAL;
    }
    if (c->parser.error == YAML_MEMORY_ERROR)
        abort();
    if (c->parser.context)
        return failf(c, m, "YAML syntax error: %s %s",
                     c->parser.problem ? c->parser.problem : "parse error", c->parser.context);
    return failf(c, m, "YAML syntax error: %s",
                 c->parser.problem ? c->parser.problem : "parse error");
}

static bool is_null_scalar(const yaml_event_t *ev)
{
    if (ev->type != YAML_SCALAR_EVENT || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)ev->data.scalar.value;
    return ev->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

static const char *node_kind(const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
        return "a sequence";
    case YAML_ALIAS_EVENT:
        return "an alias";
    default:
        return "a scalar";
    }
}

static int parse_mapping(struct yctx *c, const char *prefix, unsigned depth);

static int parse_entry(struct yctx *c, const char *prefix, unsigned depth, yaml_event_t *key)
{
    char q[64];
    const char *kt = (const char *)key->data.scalar.value;
    size_t kn = key->data.scalar.length;
    _cleanup_free_ char *path = prefix ? xasprintf("%s.%s", prefix, kt) : xstrdup(kt);
    const struct sbx_config_key *k = NULL, *sec = NULL;

    if (!memchr(kt, '\0', kn)) {
        k = find_key(path);
        sec = k ? NULL : find_section(path);
    }
    if (!k && !sec) {
        /* quote() the raw bytes: the key may hold anything, even NULs */
        size_t pn = prefix ? strlen(prefix) + 1 : 0;
        _cleanup_free_ char *raw = xmalloc(pn + kn + 1);
        if (prefix) {
            memcpy(raw, prefix, pn - 1);
            raw[pn - 1] = '.';
        }
        memcpy(raw + pn, kt, kn);
        raw[pn + kn] = '\0';
        return failf(c, key->start_mark, "unknown setting %s",
                     quote(raw, pn + kn, q, sizeof(q)));
    }
    size_t *line = k ? &c->key_line[k - schema] : &c->section_line[sec - schema];
    if (*line)
        return failf(c, key->start_mark, "duplicate %s '%s' (first set on line %zu)",
                     k ? "setting" : "section", path, *line);
    *line = key->start_mark.line + 1;

    _cleanup_(yaml_event_deletep) yaml_event_t *val = NULL;
    yaml_event_t ev;
    int r = next_event(c, &ev);
    if (r < 0)
        return r;
    val = &ev;
    if (ev.type == YAML_ALIAS_EVENT)
        return failf(c, ev.start_mark, "'%s': YAML aliases are not supported", path);

    if (k) {
        if (ev.type != YAML_SCALAR_EVENT)
            return failf(c, ev.start_mark, "'%s': expected %s, found %s", path,
                         type_hint(k->type), node_kind(&ev));
        if (is_null_scalar(&ev))
            return failf(c, ev.start_mark, "'%s': missing value (use \"\" for an empty string)",
                         path);
        char msg[256];
        r = set_value(c->cfg, k, (const char *)ev.data.scalar.value, ev.data.scalar.length, msg,
                      sizeof(msg));
        if (r < 0)
            return failf(c, ev.start_mark, "'%s': %s", path, msg);
        return 0;
    }

    /* a section */
    if (is_null_scalar(&ev))
        return 0; /* "listen:" with nothing under it */
    if (ev.type != YAML_MAPPING_START_EVENT)
        return failf(c, ev.start_mark, "'%s' is a section and must be a mapping, found %s", path,
                     node_kind(&ev));
    if (depth + 1 > SBX_CONFIG_MAX_DEPTH)
        return failf(c, ev.start_mark, "'%s': nesting deeper than %d levels", path,
                     SBX_CONFIG_MAX_DEPTH);
    return parse_mapping(c, path, depth + 1);
}

/* Called after MAPPING-START; consumes up to and including MAPPING-END. */
static int parse_mapping(struct yctx *c, const char *prefix, unsigned depth)
{
    for (;;) {
        _cleanup_(yaml_event_deletep) yaml_event_t *key = NULL;
        yaml_event_t ev;
        int r = next_event(c, &ev);
        if (r < 0)
            return r;
        key = &ev;
        if (ev.type == YAML_MAPPING_END_EVENT)
            return 0;
        if (ev.type != YAML_SCALAR_EVENT)
            return failf(c, ev.start_mark, "%s%s%skeys must be scalars, found %s",
                         prefix ? "'" : "", prefix ? prefix : "", prefix ? "': " : "",
                         node_kind(&ev));
        r = parse_entry(c, prefix, depth, &ev);
        if (r < 0)
            return r;
    }
}

static int parse_stream(struct yctx *c)
{
    yaml_event_t ev;
    int r;

    r = next_event(c, &ev);
    if (r < 0)
        return r;
    yaml_event_delete(&ev); /* STREAM-START */

    r = next_event(c, &ev);
    if (r < 0)
        return r;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        return 0; /* empty file, or only comments */
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */

    r = next_event(c, &ev);
    if (r < 0)
        return r;
    if (ev.type == YAML_MAPPING_START_EVENT) {
        yaml_event_delete(&ev);
        r = parse_mapping(c, NULL, 1);
        if (r < 0)
            return r;
    } else if (is_null_scalar(&ev)) {
        yaml_event_delete(&ev);
    } else {
        r = failf(c, ev.start_mark, "the top level must be a mapping of settings, found %s",
                  node_kind(&ev));
        yaml_event_delete(&ev);
        return r;
    }

    r = next_event(c, &ev);
    if (r < 0)
        return r;
    yaml_event_delete(&ev); /* DOCUMENT-END */

    r = next_event(c, &ev);
    if (r < 0)
        return r;
    if (ev.type != YAML_STREAM_END_EVENT) {
        r = failf(c, ev.start_mark, "only one YAML document is allowed");
        yaml_event_delete(&ev);
        return r;
    }
    yaml_event_delete(&ev);
    return 0;
}

static int apply_yaml(struct sbx_config *cfg, const char *name, const void *data, size_t len,
                      char *err, size_t errlen)
{
    if (len > SBX_CONFIG_MAX_FILE_BYTES) {
        snprintf(err, errlen, "%s: file exceeds %d bytes", name, SBX_CONFIG_MAX_FILE_BYTES);
        return -E2BIG;
    }
    _cleanup_free_ struct yctx *c = xcalloc(1, sizeof(*c));
    c->cfg = cfg;
    c->name = name;
    c->err = err;
    c->errlen = errlen;
    if (!yaml_parser_initialize(&c->parser))
        abort();
    yaml_parser_set_input_string(&c->parser, data, len);
    int r = parse_stream(c);
    yaml_parser_delete(&c->parser);
    return r;
}

static void env_name(const struct sbx_config_key *k, char *out, size_t outlen)
{
    size_t o = (size_t)snprintf(out, outlen, "SANDBOXD_");
    for (const char *p = k->path; *p && o + 1 < outlen; p++)
        out[o++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    out[o] = '\0';
}

static int apply_env(struct sbx_config *cfg, char *const *envp, char *err, size_t errlen)
{
    if (!envp)
        return 0;
    for (size_t i = 0; i < N_KEYS; i++) {
        char name[128];
        env_name(&schema[i], name, sizeof(name));
        size_t n = strlen(name);
        const char *val = NULL;
        for (char *const *e = envp; *e; e++)
            if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
                val = *e + n + 1; /* the last one wins, as with getenv() on most libcs */
        if (!val)
            continue;
        char msg[256];
        int r = set_value(cfg, &schema[i], val, strlen(val), msg, sizeof(msg));
        if (r < 0) {
            snprintf(err, errlen, "environment variable %s (%s): %s", name, schema[i].path, msg);
            return r;
        }
    }
    return 0;
}

/* Checks that involve more than one setting. */
static int validate(const struct sbx_config *cfg, const char *name, char *err, size_t errlen)
{
    char a[32], b[32];
    const char *what = NULL, *limit = NULL;
    if (cfg->limits.default_cpus > cfg->limits.max_cpus) {
        what = "limits.default_cpus", limit = "limits.max_cpus";
        sbx_config_format_cpus(cfg->limits.default_cpus, a, sizeof(a));
        sbx_config_format_cpus(cfg->limits.max_cpus, b, sizeof(b));
    } else if (cfg->limits.default_memory > cfg->limits.max_memory) {
        what = "limits.default_memory", limit = "limits.max_memory";
        sbx_config_format_size(cfg->limits.default_memory, a, sizeof(a));
        sbx_config_format_size(cfg->limits.max_memory, b, sizeof(b));
    } else if (cfg->limits.default_timeout > cfg->limits.max_timeout) {
        what = "limits.default_timeout", limit = "limits.max_timeout";
        sbx_config_format_duration(cfg->limits.default_timeout, a, sizeof(a));
        sbx_config_format_duration(cfg->limits.max_timeout, b, sizeof(b));
    } else if (cfg->leader.renew_interval > cfg->leader.lease_duration) {
        what = "leader.renew_interval", limit = "leader.lease_duration";
        sbx_config_format_duration(cfg->leader.renew_interval, a, sizeof(a));
        sbx_config_format_duration(cfg->leader.lease_duration, b, sizeof(b));
    }
    if (!what)
        return 0;
    snprintf(err, errlen, "%s: %s (%s) exceeds %s (%s)", name, what, a, limit, b);
    return -EINVAL;
}

int sbx_config_load_buffer(struct sbx_config *cfg, const char *name, const void *data,
                           size_t len, char *err, size_t errlen)
{
    struct sbx_config tmp;
    _cleanup_(sbx_config_freep) struct sbx_config *tmpp = &tmp;
    sbx_config_copy(&tmp, cfg);
    int r = apply_yaml(&tmp, name, data, len, err, errlen);
    if (r < 0)
        return r;
    r = validate(&tmp, name, err, errlen);
    if (r < 0)
        return r;
    sbx_config_free(cfg);
    *cfg = tmp;
    tmpp = NULL; /* moved into *cfg */
    return 0;
}

/* Reads at most max+1 bytes so that an oversized (or endless) file is detected. */
static int read_file(const char *path, size_t max, char **ret, size_t *ret_len, char *err,
                     size_t errlen)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        int r = -errno;
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-r));
        return r;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: is a directory", path);
        return -EISDIR;
    }
    _cleanup_buf_ struct sbx_buf b = SBX_BUF_INIT;
    char chunk[16384];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int r = -errno;
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-r));
            return r;
        }
        if (n == 0)
            break;
        if (b.len + (size_t)n > max) {
            snprintf(err, errlen, "%s: file exceeds %zu bytes", path, max);
            return -E2BIG;
        }
        if (sbx_buf_append(&b, chunk, (size_t)n) < 0)
            abort(); /* unlimited buffer: cannot fail */
    }
    *ret = sbx_buf_steal(&b, ret_len);
    return 0;
}

int sbx_config_load(struct sbx_config *cfg, const char *path, char *const *envp, char *err,
                    size_t errlen)
{
    struct sbx_config tmp;
    _cleanup_(sbx_config_freep) struct sbx_config *tmpp = &tmp;
    sbx_config_copy(&tmp, cfg);
    int r;
    if (path) {
        _cleanup_free_ char *data = NULL;
        size_t len = 0;
        r = read_file(path, SBX_CONFIG_MAX_FILE_BYTES, &data, &len, err, errlen);
        if (r < 0)
            return r;
        r = apply_yaml(&tmp, path, data, len, err, errlen);
        if (r < 0)
            return r;
    }
    r = apply_env(&tmp, envp, err, errlen);
    if (r < 0)
        return r;
    r = validate(&tmp, path ? path : "configuration", err, errlen);
    if (r < 0)
        return r;
    sbx_config_free(cfg);
    *cfg = tmp;
    tmpp = NULL; /* moved into *cfg */
    return 0;
}

/* ---- output ------------------------------------------------------------------------------ */

/* Replaces password values in a libpq conninfo ("password=x", "password='x y'") or URI
 * ("postgresql://u:x@h/db", "?password=x"). Returns a malloc'd string. */
static char *redact(const char *s)
{
    static const char mask[] = "********";
    struct sbx_buf b = SBX_BUF_INIT;
    const char *p = s;
    int r = 0;

    const char *scheme = strstr(s, "://");
    if (scheme && strcspn(s, " =") > (size_t)(scheme - s)) {
        const char *auth = scheme + 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at = memrchr(auth, '@', alen);
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon) {
            r |= sbx_buf_append(&b, s, (size_t)(colon + 1 - s));
            r |= sbx_buf_puts(&b, mask);
            p = at;
        }
    }
    while (*p) {
        const char *hit = strstr(p, "password");
        if (!hit)
            break;
        bool at_word = hit == s || strchr(" \t?&", hit[-1]);
        const char *q = hit + 8;
        while (*q == ' ' || *q == '\t')
            q++;
        if (!at_word || *q != '=') {
            r |= sbx_buf_append(&b, p, (size_t)(hit + 8 - p));
            p = hit + 8;
            continue;
        }
        q++;
        while (*q == ' ' || *q == '\t')
            q++;
        r |= sbx_buf_append(&b, p, (size_t)(q - p));
        if (*q == '\'') {
            q++;
            while (*q && *q != '\'')
                q += (q[0] == '\\' && q[1]) ? 2 : 1;
            if (*q)
                q++;
            r |= sbx_buf_printf(&b, "'%s'", mask);
        } else {
            q += strcspn(q, " \t&#");
            r |= sbx_buf_puts(&b, mask);
        }
        p = q;
    }
    r |= sbx_buf_puts(&b, p);
    if (r)
        abort(); /* unlimited buffer: cannot fail */
    return sbx_buf_steal(&b, NULL);
}

/* Writes s as a YAML double-quoted scalar that libyaml reads back byte for byte. */
static void put_yaml_str(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    while (*p) {
        unsigned c = *p;
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
        uint32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
        for (size_t j = 1; j < len && p[j]; j++)
            cp = cp << 6 | (p[j] & 0x3f);
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
        } else if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
            fprintf(f, "\\x%02x", cp);
        } else if (cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe ||
                   cp == 0xffff) {
            fprintf(f, "\\u%04x", cp); /* line separators would be folded; others unprintable */
        } else {
            fwrite(p, 1, len, f);
        }
        for (size_t j = 0; j < len && *p; j++)
            p++;
    }
    fputc('"', f);
}

static void format_value(const struct sbx_config *cfg, const struct sbx_config_key *k,
                         char *out, size_t outlen)
{
    const void *p = cslot(cfg, k);
    switch (k->type) {
    case SBX_CONFIG_BOOL:
        snprintf(out, outlen, "%s", *(const bool *)p ? "true" : "false");
        break;
    case SBX_CONFIG_INT:
        snprintf(out, outlen, "%" PRId64, *(const int64_t *)p);
        break;
    case SBX_CONFIG_UINT:
        snprintf(out, outlen, "%" PRIu32, *(const uint32_t *)p);
        break;
    case SBX_CONFIG_CPUS:
        sbx_config_format_cpus(*(const uint32_t *)p, out, outlen);
        break;
    case SBX_CONFIG_SIZE:
        sbx_config_format_size(*(const uint64_t *)p, out, outlen);
        break;
    case SBX_CONFIG_DURATION:
        sbx_config_format_duration(*(const uint64_t *)p, out, outlen);
        break;
    default:
        snprintf(out, outlen, "?");
    }
}

void sbx_config_dump(const struct sbx_config *cfg, FILE *f)
{
    const char *section = NULL;
    size_t section_len = 0;
    fputs("# sandboxd effective configuration\n", f);
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct sbx_config_key *k = &schema[i];
        const char *dot = strchr(k->path, '.');
        const char *leaf = k->path;
        if (dot) {
            size_t n = (size_t)(dot - k->path);
            if (!section || n != section_len || strncmp(section, k->path, n) != 0)
                fprintf(f, "%.*s:\n", (int)n, k->path);
            section = k->path;
            section_len = n;
            leaf = dot + 1;
            fputs("  ", f);
        } else {
            section = NULL;
        }
        fprintf(f, "%s: ", leaf);
        if (k->type == SBX_CONFIG_STRING) {
            const char *s = *(char *const *)cslot(cfg, k);
            if (k->secret && (k->secret_whole || strncmp(k->path, "secrets.", 8) == 0)) {
                put_yaml_str(f, s && *s ? "********" : "");
            } else if (k->secret) {
                _cleanup_free_ char *red = redact(s ? s : "");
                put_yaml_str(f, red);
            } else {
                put_yaml_str(f, s ? s : "");
            }
        } else {
            char v[64];
            format_value(cfg, k, v, sizeof(v));
            fputs(v, f);
        }
        fputc('\n', f);
    }
}

void sbx_config_doc_table(FILE *f)
{
    fputs("| Setting | Type | Default | Allowed | Environment | Description |\n", f);
    fputs("|---|---|---|---|---|---|\n", f);
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct sbx_config_key *k = &schema[i];
        char env[128], allowed[256], lo[32], hi[32];
        env_name(k, env, sizeof(env));
        if (k->type == SBX_CONFIG_STRING) {
            if (k->choices) {
                size_t o = 0;
                allowed[0] = '\0';
                for (size_t j = 0; k->choices[j] && o < sizeof(allowed); j++)
                    o += (size_t)snprintf(allowed + o, sizeof(allowed) - o, "%s`%s`",
                                          j ? ", " : "", k->choices[j]);
            } else {
                snprintf(allowed, sizeof(allowed), "%s", k->min > 0 ? "non-empty" : "any");
            }
        } else if (k->type == SBX_CONFIG_BOOL) {
            snprintf(allowed, sizeof(allowed), "`true`, `false`");
        } else {
            format_number(k, k->min, lo, sizeof(lo));
            format_number(k, k->max, hi, sizeof(hi));
            snprintf(allowed, sizeof(allowed), "%s..%s", lo, hi);
        }
        if (k->doc_default)
            fprintf(f, "| `%s` | %s | %s | %s | `%s` | %s |\n", k->path, type_names[k->type],
                    k->doc_default, allowed, env, k->doc);
        else
            fprintf(f, "| `%s` | %s | `%s` | %s | `%s` | %s |\n", k->path, type_names[k->type],
                    k->def[0] ? k->def : "\"\"", allowed, env, k->doc);
    }
}
