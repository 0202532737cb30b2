/*
 * config.h — the daemon's configuration: a YAML file plus SANDBOXD_* environment overrides.
 *
 * One schema table (config.c, exported by sbx_config_schema()) drives everything: the
 * defaults, YAML parsing, environment overrides, sbx_config_dump() and the table in
 * docs/internals/CONFIG.md (sbx_config_doc_table()). Every field of struct sbx_config has a
 * default, so the daemon runs with no file at all.
 *
 * Field names mirror the dotted setting path: "http.max_body_bytes" is cfg->http.max_body_bytes.
 * Units are fixed by the setting's type:
 *   string    char *, owned by the struct (never NULL after sbx_config_defaults())
 *   int/uint  int64_t / uint32_t, range-checked
 *   bool      bool  ("true/false", "yes/no", "on/off", "1/0")
 *   size      uint64_t bytes  ("16777216", "512Ki", "16Mi", "1Gi", "10MB", "64KiB")
 *   duration  uint64_t seconds ("30", "30s", "5m", "1h", "1d", "1h30m")
 *   cpus      uint32_t milli-CPUs ("4", "0.5", "1.25", "500m" → 4000, 500, 1250, 500)
 *
 * Environment: SANDBOXD_ + the path upper-cased with '.' → '_' (SANDBOXD_LISTEN_PORT=9000,
 * SANDBOXD_HTTP_MAX_BODY_BYTES=1Mi). Other SANDBOXD_* variables are ignored (they are not
 * settings, e.g. SANDBOXD_CONFIG may name the file). Values use the same syntax as the file.
 *
 * Not thread-safe: load once at start-up on the main thread, then treat as read-only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Config files larger than this are refused (-E2BIG). */
#define SBX_CONFIG_MAX_FILE_BYTES (1024 * 1024)
/* Mappings nested deeper than this are refused (the schema itself needs 2 levels). */
#define SBX_CONFIG_MAX_DEPTH 8
/* Longest accepted string value, in bytes. */
#define SBX_CONFIG_MAX_STRING 4096

/* Plans (issue 8, controller/plans.h): one block per plan; 0 = unlimited where noted. */
struct sbx_plan_config {
    uint32_t monthly_sandboxes; /* plans.<p>.monthly_sandboxes (0 = unlimited) */
    uint32_t max_concurrent;    /* plans.<p>.max_concurrent (0 = unlimited) */
    uint64_t max_duration;      /* plans.<p>.max_duration (seconds, 0 = unlimited) */
    uint64_t storage;           /* plans.<p>.storage (bytes, 0 = unlimited) */
    uint32_t max_cpus;          /* plans.<p>.max_cpus (milli-CPUs) */
    uint64_t max_memory;        /* plans.<p>.max_memory (bytes) */
    uint32_t rate_limit;        /* plans.<p>.rate_limit (requests/s per key, 0 = off) */
    uint32_t rate_burst;        /* plans.<p>.rate_burst (bucket size per key) */
    uint32_t org_rate_limit;    /* plans.<p>.org_rate_limit (requests/s per org, 0 = off) */
    uint32_t org_rate_burst;    /* plans.<p>.org_rate_burst */
};

struct sbx_config {
    struct {
        char *address;  /* listen.address: IP address or host name to bind */
        uint32_t port;  /* listen.port */
    } listen;
    struct {
        char *url;            /* database.url: libpq conninfo of the application role */
        char *migrate_url;    /* database.migrate_url: conninfo of the owner role (migrations) */
        char *migrations_dir; /* database.migrations_dir: directory of NNNN_*.sql files */
    } database;
    uint32_t workers;         /* workers: worker threads (each owns one DB connection) */
    struct {
        char *level;          /* log.level: "debug" | "info" | "warn" | "error" */
    } log;
    struct {
        uint64_t max_body_bytes;   /* http.max_body_bytes (bytes) */
        uint64_t max_header_bytes; /* http.max_header_bytes (bytes) */
        uint32_t max_json_depth;   /* http.max_json_depth */
        uint64_t idle_timeout;     /* http.idle_timeout (seconds) */
        uint64_t request_timeout;  /* http.request_timeout (seconds) */
        uint32_t max_connections;  /* http.max_connections */
    } http;
    char *state_dir;               /* state_dir */
    struct {
        char *kind;                /* runtime.kind: "local" | "k8s" */
        char *init_path;           /* runtime.init_path: "" = built-in init */
        char *cgroup_prefix;       /* runtime.cgroup_prefix */
        uint32_t uid_base;         /* runtime.uid_base: first host uid of the id map */
        bool allow_network;        /* runtime.allow_network */
    } runtime;
    struct {
        char *kubeconfig;          /* k8s.kubeconfig: "" = in-cluster / $KUBECONFIG */
        char *namespace;           /* k8s.namespace: "" = the config's */
        char *image;               /* k8s.image */
        char *runtime_class;       /* k8s.runtime_class: "" = none */
        uint64_t warm_pool_max_age; /* k8s.warm_pool_max_age (seconds) */
    } k8s;
    struct {
        uint32_t max_cpus;              /* limits.max_cpus (milli-CPUs) */
        uint64_t max_memory;            /* limits.max_memory (bytes) */
        uint32_t default_cpus;          /* limits.default_cpus (milli-CPUs) */
        uint64_t default_memory;        /* limits.default_memory (bytes) */
        uint64_t max_timeout;           /* limits.max_timeout (seconds) */
        uint64_t default_timeout;       /* limits.default_timeout (seconds) */
        uint32_t max_sandboxes_per_org; /* limits.max_sandboxes_per_org */
        uint64_t exec_output_max;       /* limits.exec_output_max (bytes) */
        uint64_t exec_timeout_max;      /* limits.exec_timeout_max (seconds) */
        uint32_t max_files_per_request; /* limits.max_files_per_request */
        uint64_t max_file_bytes;        /* limits.max_file_bytes (bytes) */
    } limits;
    struct {
        uint64_t interval; /* reaper.interval (seconds) */
    } reaper;
    struct {
        uint64_t interval; /* reconciler.interval (seconds) */
    } reconciler;
    struct {
        bool enabled;            /* leader.enabled */
        char *lease_name;        /* leader.lease_name */
        uint64_t lease_duration; /* leader.lease_duration (seconds) */
        uint64_t renew_interval; /* leader.renew_interval (seconds) */
    } leader;
    struct {
        uint64_t max_workspace_bytes; /* checkpoints.max_workspace_bytes (bytes) */
        uint32_t max_files;           /* checkpoints.max_files */
        uint64_t org_quota_bytes;     /* checkpoints.org_quota_bytes (bytes) */
    } checkpoints;
    struct {
        char *kind;          /* storage.kind: "fs" | "s3" */
        char *fs_dir;        /* storage.fs_dir: "" = <state_dir>/blobs */
        char *signing_key;   /* storage.signing_key: "" = <state_dir>/blob-signing.key */
        char *public_url;    /* storage.public_url: "" = http://<listen.address>:<listen.port> */
        struct {
            char *endpoint;              /* storage.s3.endpoint: "" = AWS for the region */
            char *region;                /* storage.s3.region */
            char *bucket;                /* storage.s3.bucket */
            char *access_key_id;         /* storage.s3.access_key_id: "" = $AWS_ACCESS_KEY_ID */
            char *secret_access_key;     /* storage.s3.secret_access_key */
            char *session_token;         /* storage.s3.session_token */
            bool path_style;             /* storage.s3.path_style */
            bool verify_tls;             /* storage.s3.verify_tls */
            char *ca_file;               /* storage.s3.ca_file: "" = system CAs */
            uint64_t multipart_threshold; /* storage.s3.multipart_threshold (bytes) */
            uint64_t part_size;          /* storage.s3.part_size (bytes) */
        } s3;
    } storage;
    struct {
        struct sbx_plan_config free, pro, team, enterprise;
    } plans;
    struct {
        uint32_t cpu_vcpu_hour;     /* rates.cpu_vcpu_hour (millicents) */
        uint32_t memory_gb_hour;    /* rates.memory_gb_hour (millicents) */
        uint32_t storage_gb_month;  /* rates.storage_gb_month (millicents) */
        uint32_t network_gb;        /* rates.network_gb (millicents) */
    } rates;
    struct {
        char *token;                /* admin.token: operator token; "" = admin API disabled */
    } admin;
    struct {
        bool enabled;               /* ratelimit.enabled */
        uint64_t sync_interval;     /* ratelimit.sync_interval (seconds) */
    } ratelimit;
    struct {
        uint64_t ttl;               /* idempotency.ttl (seconds) */
    } idempotency;
    struct {
        uint64_t retention;         /* test_mode.retention (seconds) */
    } test_mode;
    struct {
        char *hs256_secret;         /* jwt.hs256_secret ("" = HS256 off) */
        char *public_key_file;      /* jwt.public_key_file: PEM (RSA or EC P-256) */
        char *jwks_file;            /* jwt.jwks_file: JWKS document (keys chosen by kid) */
        char *issuer;               /* jwt.issuer ("" = not checked) */
        char *audience;             /* jwt.audience ("" = not checked) */
        uint64_t leeway;            /* jwt.leeway (seconds of clock skew for exp/nbf) */
        char *org_claim;            /* jwt.org_claim */
        char *user_claim;           /* jwt.user_claim */
        char *role_claim;           /* jwt.role_claim */
    } jwt;
    struct {
        char *allow_cidrs;          /* webhooks.allow_cidrs: comma-separated CIDRs exempt from SSRF */
        char *retry_schedule;       /* webhooks.retry_schedule: comma-separated durations */
        uint32_t disable_after_failures; /* webhooks.disable_after_failures (0 = never by count) */
        uint64_t disable_after;     /* webhooks.disable_after (seconds failing continuously) */
        uint64_t poll_interval;     /* webhooks.poll_interval (seconds) */
        uint64_t lease;             /* webhooks.lease (seconds a delivery stays claimed) */
    } webhooks;
    struct {
        char *key;                  /* secrets.key: base64 of 32 bytes ("" = state_dir file) */
        char *previous_keys;        /* secrets.previous_keys: comma-separated base64 keys */
    } secrets;
    struct {
        char *file;                 /* templates.file: YAML registry ("" = built-in) */
    } templates;
};

enum sbx_config_type {
    SBX_CONFIG_STRING,
    SBX_CONFIG_INT,      /* int64_t */
    SBX_CONFIG_UINT,     /* uint32_t */
    SBX_CONFIG_BOOL,     /* bool */
    SBX_CONFIG_SIZE,     /* uint64_t bytes */
    SBX_CONFIG_DURATION, /* uint64_t seconds */
    SBX_CONFIG_CPUS,     /* uint32_t milli-CPUs */
    _SBX_CONFIG_TYPE_MAX,
};

/* One row of the schema. min/max are inclusive, in stored units; for strings they bound the
 * length in bytes. choices (NULL-terminated) restricts a string to a fixed set. */
struct sbx_config_key {
    const char *path;        /* dotted path, e.g. "listen.port" */
    enum sbx_config_type type;
    size_t offset;           /* into struct sbx_config */
    const char *def;         /* default, in the same syntax as the file */
    int64_t min, max;
    const char *const *choices;
    bool secret;             /* conninfo/URL: passwords are redacted by sbx_config_dump() */
    bool secret_whole;       /* with secret: the whole value (a key, a token) is redacted */
    const char *doc_default; /* shown in docs instead of def (NULL = def) */
    const char *doc;         /* one-line description for docs */
};

/** The schema rows in documentation order. Static storage; never fails. */
const struct sbx_config_key *sbx_config_schema(size_t *ret_n);

/** Sets every field to its default (allocates the strings). Any previous content of *cfg is
 * overwritten without being freed: call on a zeroed/fresh struct or after sbx_config_free().
 * Never fails (a default that does not parse is a programming error and aborts). */
void sbx_config_defaults(struct sbx_config *cfg);

/**
 * Applies the YAML file at `path` (NULL = no file), then the SANDBOXD_* variables of `envp`
 * (NULL = none), on top of *cfg, which must hold a valid configuration (sbx_config_defaults()
 * or an earlier load). All-or-nothing: on failure *cfg is unchanged and one line is written
 * to err, naming the file, line, column and setting ("sandboxd.yaml:3:3: unknown setting
 * 'listen.prot'"), or the environment variable.
 * Returns 0, -EINVAL (bad content), -E2BIG (file over SBX_CONFIG_MAX_FILE_BYTES), or the
 * -errno of open/read.
 */
int sbx_config_load(struct sbx_config *cfg, const char *path, char *const *envp, char *err,
                    size_t errlen);

/**
 * Like sbx_config_load() for a YAML document held in memory (no environment). `name` is used
 * in messages in place of a file name. data need not be NUL-terminated. Same errors.
 */
int sbx_config_load_buffer(struct sbx_config *cfg, const char *name, const void *data,
                           size_t len, char *err, size_t errlen);

/** Frees the strings and zeroes *cfg. Accepts a zeroed struct; idempotent. */
void sbx_config_free(struct sbx_config *cfg);

/** Deep copy of src into *dst (dst is overwritten without being freed). */
void sbx_config_copy(struct sbx_config *dst, const struct sbx_config *src);

/**
 * Prints the effective configuration as YAML that sbx_config_load_buffer() accepts (for
 * `sandboxd --print-config`). Passwords in database URLs are replaced by "********".
 */
void sbx_config_dump(const struct sbx_config *cfg, FILE *f);

/** Prints the Markdown settings table that docs/internals/CONFIG.md contains verbatim. */
void sbx_config_doc_table(FILE *f);

/* Value syntax helpers, also useful for API inputs. Return 0 or -EINVAL (malformed) /
 * -ERANGE (overflows the type). Whole-string parses: no surrounding whitespace. */
int sbx_config_parse_size(const char *s, uint64_t *ret);
int sbx_config_parse_duration(const char *s, uint64_t *ret);
int sbx_config_parse_cpus(const char *s, uint32_t *ret);
int sbx_config_parse_bool(const char *s, bool *ret);
/* Canonical text for a value ("16Mi", "5m", "0.5"); out holds at least 32 bytes. */
void sbx_config_format_size(uint64_t v, char *out, size_t outlen);
void sbx_config_format_duration(uint64_t v, char *out, size_t outlen);
void sbx_config_format_cpus(uint32_t v, char *out, size_t outlen);
