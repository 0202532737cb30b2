/* test-config.c — controller/config.c: defaults, file, environment, errors, value syntax. */
#include "controller/config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>

#include "common/macro.h"
#include "tests/unit/tap.h"

/* envp is char *const * (like environ); the tables below are const char *[]. */
#define ENVP(e) ((char *const *)(e))

static char tmpdir[] = "/tmp/test-config-XXXXXX";

static char *write_tmp(const char *name, const void *data, size_t len)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

/* Loads yaml (as "t.yaml") over defaults; checks the return code and the message. */
static void expect(const char *yaml, int want_r, const char *want_err, const char *what)
{
    struct sbx_config cfg;
    char err[512] = "";
    sbx_config_defaults(&cfg);
    int r = sbx_config_load_buffer(&cfg, "t.yaml", yaml, strlen(yaml), err, sizeof(err));
    is_int(r, want_r, "%s: return code", what);
    if (want_err)
        is_str(err, want_err, "%s: message", what);
    if (r < 0)
        ok(cfg.listen.port == 8080 && cfg.workers == 4 &&
               strcmp(cfg.listen.address, "127.0.0.1") == 0,
           "%s: config unchanged after error", what);
    sbx_config_free(&cfg);
}

static bool config_equal(const struct sbx_config *a, const struct sbx_config *b, bool secrets)
{
    size_t n;
    const struct sbx_config_key *keys = sbx_config_schema(&n);
    for (size_t i = 0; i < n; i++) {
        const char *pa = (const char *)a + keys[i].offset, *pb = (const char *)b + keys[i].offset;
        bool same;
        switch (keys[i].type) {
        case SBX_CONFIG_STRING:
            same = (keys[i].secret && !secrets) ||
                   strcmp(*(char *const *)pa, *(char *const *)pb) == 0;
            break;
        case SBX_CONFIG_BOOL:
            same = *(const bool *)pa == *(const bool *)pb;
            break;
        case SBX_CONFIG_UINT:
        case SBX_CONFIG_CPUS:
            same = *(const uint32_t *)pa == *(const uint32_t *)pb;
            break;
        default:
            same = *(const uint64_t *)pa == *(const uint64_t *)pb;
        }
        if (!same) {
            diag("differs: %s", keys[i].path);
            return false;
        }
    }
    return true;
}

static char *dump_to_string(const struct sbx_config *cfg, size_t *ret_len)
{
    char *s = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&s, &n);
    sbx_config_dump(cfg, f);
    fclose(f);
    if (ret_len)
        *ret_len = n;
    return s;
}

static void test_defaults(void)
{
    struct sbx_config c;
    sbx_config_defaults(&c);
    is_str(c.listen.address, "127.0.0.1", "default listen.address");
    is_int(c.listen.port, 8080, "default listen.port");
    is_str(c.database.url, "host=127.0.0.1 port=55432 dbname=sandboxd user=sandboxd_app",
           "default database.url");
    is_str(c.database.migrate_url,
           "host=127.0.0.1 port=55432 dbname=sandboxd user=sandboxd_owner",
           "default database.migrate_url");
    is_str(c.database.migrations_dir, SBX_SOURCE_DIR "/sql", "default database.migrations_dir");
    is_int(c.workers, 4, "default workers");
    is_str(c.log.level, "info", "default log.level");
    is_int(c.http.max_body_bytes, 16 << 20, "default http.max_body_bytes");
    is_int(c.http.max_header_bytes, 8192, "default http.max_header_bytes");
    is_int(c.http.max_json_depth, 32, "default http.max_json_depth");
    is_int(c.http.idle_timeout, 30, "default http.idle_timeout");
    is_int(c.http.request_timeout, 60, "default http.request_timeout");
    is_int(c.http.max_connections, 1024, "default http.max_connections");
    is_str(c.state_dir, "./.state/sandboxd", "default state_dir");
    is_str(c.runtime.kind, "local", "default runtime.kind");
    is_str(c.runtime.init_path, "", "default runtime.init_path");
    is_str(c.runtime.cgroup_prefix, "sandboxd", "default runtime.cgroup_prefix");
    is_int(c.runtime.uid_base, 100000, "default runtime.uid_base");
    ok(!c.runtime.allow_network, "default runtime.allow_network");
    is_int(c.limits.max_cpus, 4000, "default limits.max_cpus (milli)");
    is_int(c.limits.max_memory, 8LL << 30, "default limits.max_memory");
    is_int(c.limits.default_cpus, 1000, "default limits.default_cpus");
    is_int(c.limits.default_memory, 512LL << 20, "default limits.default_memory");
    is_int(c.limits.max_timeout, 86400, "default limits.max_timeout");
    is_int(c.limits.default_timeout, 300, "default limits.default_timeout");
    is_int(c.limits.max_sandboxes_per_org, 20, "default limits.max_sandboxes_per_org");
    is_int(c.limits.exec_output_max, 1 << 20, "default limits.exec_output_max");
    is_int(c.limits.exec_timeout_max, 600, "default limits.exec_timeout_max");
    is_int(c.limits.max_files_per_request, 1000, "default limits.max_files_per_request");
    is_int(c.limits.max_file_bytes, 64 << 20, "default limits.max_file_bytes");
    is_int(c.reaper.interval, 1, "default reaper.interval");
    is_int(c.reconciler.interval, 5, "default reconciler.interval");

    size_t n;
    sbx_config_schema(&n);
    is_int(n, 59 + 58 + 5 + 4, "schema has one row per setting"); /* 41 + 15 storage.* + 3 webhooks.* + 58 issue 8 + 5 k8s.* + 4 leader.* */
    /* Plans (issue 8): the defaults the issue fixes. */
    is_int(c.plans.free.monthly_sandboxes, 50, "default plans.free.monthly_sandboxes");
    is_int(c.plans.free.max_concurrent, 2, "default plans.free.max_concurrent");
    is_int(c.plans.free.max_duration, 300, "default plans.free.max_duration");
    is_int(c.plans.free.storage, 1LL << 30, "default plans.free.storage");
    is_int(c.plans.pro.monthly_sandboxes, 1000, "default plans.pro.monthly_sandboxes");
    is_int(c.plans.pro.max_concurrent, 10, "default plans.pro.max_concurrent");
    is_int(c.plans.pro.max_duration, 3600, "default plans.pro.max_duration");
    is_int(c.plans.pro.storage, 50LL << 30, "default plans.pro.storage");
    is_int(c.plans.team.monthly_sandboxes, 10000, "default plans.team.monthly_sandboxes");
    is_int(c.plans.team.max_concurrent, 50, "default plans.team.max_concurrent");
    is_int(c.plans.team.max_duration, 7200, "default plans.team.max_duration");
    is_int(c.plans.team.storage, 500LL << 30, "default plans.team.storage");
    is_int(c.plans.enterprise.monthly_sandboxes, 0, "default plans.enterprise: unlimited");
    is_int(c.plans.enterprise.max_concurrent + c.plans.enterprise.max_duration +
               c.plans.enterprise.storage, 0, "default plans.enterprise: unlimited");

    /* No file, no environment: the defaults stand. */
    struct sbx_config d;
    char err[256] = "";
    sbx_config_defaults(&d);
    is_int(sbx_config_load(&d, NULL, NULL, err, sizeof(err)), 0, "load with nothing succeeds");
    ok(config_equal(&c, &d, true), "load with nothing keeps defaults");
    sbx_config_free(&d);
    sbx_config_free(&c);
    sbx_config_free(&c);
    ok(c.listen.address == NULL, "free is idempotent and zeroes");
}

static const char full_yaml[] =
    "# every setting\n"
    "listen:\n"
    "  address: 0.0.0.0\n"
    "  port: 9443\n"
    "database:\n"
    "  url: \"host=db port=5432 dbname=x user=app\"\n"
    "  migrate_url: 'host=db port=5432 dbname=x user=owner'\n"
    "  migrations_dir: /usr/share/sandboxd/sql\n"
    "workers: 16\n"
    "log:\n"
    "  level: debug\n"
    "http:\n"
    "  max_body_bytes: 10MB\n"
    "  max_header_bytes: 16Ki\n"
    "  max_json_depth: 64\n"
    "  idle_timeout: 2m\n"
    "  request_timeout: 90\n"
    "  max_connections: 5000\n"
    "state_dir: /var/lib/sandboxd\n"
    "runtime:\n"
    "  kind: local\n"
    "  init_path: /usr/libexec/sandboxd-init\n"
    "  cgroup_prefix: sbx\n"
    "  uid_base: 200000\n"
    "  allow_network: yes\n"
    "limits:\n"
    "  max_cpus: 8.5\n"
    "  max_memory: 1Ti\n"
    "  default_cpus: 500m\n"
    "  default_memory: 1Gi\n"
    "  max_timeout: 2d\n"
    "  default_timeout: 1h30m\n"
    "  max_sandboxes_per_org: 0\n"
    "  exec_output_max: 4MiB\n"
    "  exec_timeout_max: 1h\n"
    "  max_files_per_request: 10\n"
    "  max_file_bytes: 1Gi\n"
    "reaper:\n"
    "  interval: 2s\n"
    "reconciler: {interval: 10s}\n";

static void check_full(const struct sbx_config *c, const char *what)
{
    is_str(c->listen.address, "0.0.0.0", "%s: listen.address", what);
    is_int(c->listen.port, 9443, "%s: listen.port", what);
    is_str(c->database.url, "host=db port=5432 dbname=x user=app", "%s: database.url", what);
    is_str(c->database.migrate_url, "host=db port=5432 dbname=x user=owner",
           "%s: database.migrate_url", what);
    is_str(c->database.migrations_dir, "/usr/share/sandboxd/sql", "%s: migrations_dir", what);
    is_int(c->workers, 16, "%s: workers", what);
    is_str(c->log.level, "debug", "%s: log.level", what);
    is_int(c->http.max_body_bytes, 10000000, "%s: http.max_body_bytes", what);
    is_int(c->http.max_header_bytes, 16384, "%s: http.max_header_bytes", what);
    is_int(c->http.max_json_depth, 64, "%s: http.max_json_depth", what);
    is_int(c->http.idle_timeout, 120, "%s: http.idle_timeout", what);
    is_int(c->http.request_timeout, 90, "%s: http.request_timeout", what);
    is_int(c->http.max_connections, 5000, "%s: http.max_connections", what);
    is_str(c->state_dir, "/var/lib/sandboxd", "%s: state_dir", what);
    is_str(c->runtime.kind, "local", "%s: runtime.kind", what);
    is_str(c->runtime.init_path, "/usr/libexec/sandboxd-init", "%s: runtime.init_path", what);
    is_str(c->runtime.cgroup_prefix, "sbx", "%s: runtime.cgroup_prefix", what);
    is_int(c->runtime.uid_base, 200000, "%s: runtime.uid_base", what);
    ok(c->runtime.allow_network, "%s: runtime.allow_network", what);
    is_int(c->limits.max_cpus, 8500, "%s: limits.max_cpus", what);
    is_int(c->limits.max_memory, 1LL << 40, "%s: limits.max_memory", what);
    is_int(c->limits.default_cpus, 500, "%s: limits.default_cpus", what);
    is_int(c->limits.default_memory, 1LL << 30, "%s: limits.default_memory", what);
    is_int(c->limits.max_timeout, 2 * 86400, "%s: limits.max_timeout", what);
    is_int(c->limits.default_timeout, 5400, "%s: limits.default_timeout", what);
    is_int(c->limits.max_sandboxes_per_org, 0, "%s: limits.max_sandboxes_per_org", what);
    is_int(c->limits.exec_output_max, 4 << 20, "%s: limits.exec_output_max", what);
    is_int(c->limits.exec_timeout_max, 3600, "%s: limits.exec_timeout_max", what);
    is_int(c->limits.max_files_per_request, 10, "%s: limits.max_files_per_request", what);
    is_int(c->limits.max_file_bytes, 1LL << 30, "%s: limits.max_file_bytes", what);
    is_int(c->reaper.interval, 2, "%s: reaper.interval", what);
    is_int(c->reconciler.interval, 10, "%s: reconciler.interval", what);
}

static void test_full_file(void)
{
    struct sbx_config c;
    char err[512] = "";
    _cleanup_free_ char *path = write_tmp("full.yaml", full_yaml, sizeof(full_yaml) - 1);
    sbx_config_defaults(&c);
    int r = sbx_config_load(&c, path, NULL, err, sizeof(err));
    if (!is_int(r, 0, "full file loads"))
        diag("%s", err);
    check_full(&c, "file");

    /* dump → load reproduces the config */
    size_t len;
    _cleanup_free_ char *dump = dump_to_string(&c, &len);
    struct sbx_config d;
    sbx_config_defaults(&d);
    r = sbx_config_load_buffer(&d, "dump", dump, len, err, sizeof(err));
    if (!is_int(r, 0, "dump of full config loads back"))
        diag("%s\n%s", err, dump);
    ok(config_equal(&c, &d, true), "dump round-trips the full config");
    sbx_config_free(&d);

    /* flat dotted keys are accepted too */
    sbx_config_defaults(&d);
    static const char flat[] = "listen.port: 1234\nlimits.max_cpus: 2\n";
    is_int(sbx_config_load_buffer(&d, "t.yaml", flat, sizeof(flat) - 1, err, sizeof(err)), 0,
           "flat dotted keys load");
    is_int(d.listen.port, 1234, "flat listen.port");
    is_int(d.limits.max_cpus, 2000, "flat limits.max_cpus");
    sbx_config_free(&d);

    /* empty inputs */
    static const char *const empties[] = { "", "# only a comment\n", "---\n", "~\n",
                                           "listen:\nhttp:\n", "{}\n" };
    for (size_t i = 0; i < ARRAY_SIZE(empties); i++) {
        sbx_config_defaults(&d);
        r = sbx_config_load_buffer(&d, "t.yaml", empties[i], strlen(empties[i]), err,
                                   sizeof(err));
        is_int(r, 0, "empty input %zu accepted", i);
        is_int(d.listen.port, 8080, "empty input %zu keeps defaults", i);
        sbx_config_free(&d);
    }

    /* a load applies on top of the previous state */
    static const char more[] = "workers: 2\n";
    is_int(sbx_config_load_buffer(&c, "more", more, sizeof(more) - 1, err, sizeof(err)), 0,
           "second load succeeds");
    is_int(c.workers, 2, "second load changes workers");
    is_int(c.listen.port, 9443, "second load keeps earlier values");
    sbx_config_free(&c);
}

static void test_errors(void)
{
    expect("listen:\n  prot: 9000\n", -EINVAL, "t.yaml:2:3: unknown setting 'listen.prot'",
           "unknown key");
    expect("listn:\n  port: 1\n", -EINVAL, "t.yaml:1:1: unknown setting 'listn'",
           "unknown section");
    expect("workers: 2\nfoo.bar: 1\n", -EINVAL, "t.yaml:2:1: unknown setting 'foo.bar'",
           "unknown flat key");
    expect("listen:\n  port: abc\n", -EINVAL,
           "t.yaml:2:9: 'listen.port': expected a non-negative integer, got 'abc'", "wrong type");
    expect("listen:\n  port: -1\n", -EINVAL,
           "t.yaml:2:9: 'listen.port': expected a non-negative integer, got '-1'",
           "negative uint");
    expect("listen:\n  port: 70000\n", -EINVAL,
           "t.yaml:2:9: 'listen.port': 70000 is out of range (1..65535)", "out of range");
    expect("workers: 0\n", -EINVAL, "t.yaml:1:10: 'workers': 0 is out of range (1..64)",
           "workers 0");
    expect("workers: 65\n", -EINVAL, "t.yaml:1:10: 'workers': 65 is out of range (1..64)",
           "workers 65");
    expect("http:\n  max_body_bytes: 2Gi\n", -EINVAL,
           "t.yaml:2:19: 'http.max_body_bytes': 2Gi is out of range (1Ki..1Gi)",
           "size out of range");
    expect("http:\n  max_body_bytes: 16Mx\n", -EINVAL,
           "t.yaml:2:19: 'http.max_body_bytes': expected a size (bytes, or with a suffix: "
           "512Ki, 16Mi, 1Gi, 10MB), got '16Mx'",
           "bad size");
    expect("limits:\n  max_memory: 99999999999999999999Gi\n", -EINVAL,
           "t.yaml:2:15: 'limits.max_memory': '99999999999999999999Gi' is too large",
           "size overflow");
    expect("http:\n  idle_timeout: 5x\n", -EINVAL,
           "t.yaml:2:17: 'http.idle_timeout': expected a duration (seconds, or 30s, 5m, 1h, "
           "1d), got '5x'",
           "bad duration");
    expect("http:\n  idle_timeout: 2h\n", -EINVAL,
           "t.yaml:2:17: 'http.idle_timeout': 2h is out of range (1s..1h)",
           "duration out of range");
    expect("runtime:\n  allow_network: maybe\n", -EINVAL,
           "t.yaml:2:18: 'runtime.allow_network': expected a boolean (true/false), got 'maybe'",
           "bad bool");
    expect("limits:\n  max_cpus: 0.0001\n", -EINVAL,
           "t.yaml:2:13: 'limits.max_cpus': expected a CPU count (2, 0.5, 500m), got '0.0001'",
           "bad cpus");
    expect("log:\n  level: verbose\n", -EINVAL,
           "t.yaml:2:10: 'log.level': expected one of debug, info, warn, error, got 'verbose'",
           "bad choice");
    expect("listen:\n  address: \"\"\n", -EINVAL,
           "t.yaml:2:12: 'listen.address': must not be empty", "empty string");
    expect("listen:\n  port:\n", -EINVAL,
           "t.yaml:2:8: 'listen.port': missing value (use \"\" for an empty string)",
           "null value");
    expect("state_dir: \"a\\0b\"\n", -EINVAL,
           "t.yaml:1:12: 'state_dir': value contains a NUL byte", "NUL in string");
    expect("listen: 5\n", -EINVAL,
           "t.yaml:1:9: 'listen' is a section and must be a mapping, found a scalar",
           "scalar where section expected");
    expect("listen:\n  - port\n", -EINVAL,
           "t.yaml:2:3: 'listen' is a section and must be a mapping, found a sequence",
           "sequence where section expected");
    expect("listen:\n  port:\n    x: 1\n", -EINVAL,
           "t.yaml:3:5: 'listen.port': expected a non-negative integer, found a mapping",
           "mapping where value expected");
    expect("workers: [1]\n", -EINVAL,
           "t.yaml:1:10: 'workers': expected a non-negative integer, found a sequence",
           "sequence where value expected");
    expect("- a\n- b\n", -EINVAL,
           "t.yaml:1:1: the top level must be a mapping of settings, found a sequence",
           "top-level sequence");
    expect("hello\n", -EINVAL,
           "t.yaml:1:1: the top level must be a mapping of settings, found a scalar",
           "top-level scalar");
    expect("listen:\n  port: 1\n  port: 2\n", -EINVAL,
           "t.yaml:3:3: duplicate setting 'listen.port' (first set on line 2)", "duplicate key");
    expect("listen:\n  port: 1\nworkers: 2\nlisten:\n  address: x\n", -EINVAL,
           "t.yaml:4:1: duplicate section 'listen' (first set on line 1)", "duplicate section");
    expect("listen:\n  port: 1\nlisten.port: 2\n", -EINVAL,
           "t.yaml:3:1: duplicate setting 'listen.port' (first set on line 2)",
           "duplicate via flat key");
    expect("listen:\n  address: &a x\n  port: *a\n", -EINVAL,
           "t.yaml:3:9: 'listen.port': YAML aliases are not supported", "alias");
    expect("? [a]\n: 1\n", -EINVAL, "t.yaml:1:3: keys must be scalars, found a sequence",
           "complex key");
    expect("workers: 2\n---\nworkers: 3\n", -EINVAL,
           "t.yaml:2:1: only one YAML document is allowed", "two documents");
    expect("listen:\n  port: 1\n address: x\n", -EINVAL,
           "t.yaml:3:2: YAML syntax error: did not find expected key while parsing a block mapping",
           "YAML syntax error");
    expect("listen:\n\tport: 1\n", -EINVAL, NULL, "tab indentation");
    expect("workers: \"unterminated\n", -EINVAL, NULL, "unterminated quote");
    expect("limits:\n  default_cpus: 5\n", -EINVAL,
           "t.yaml: limits.default_cpus (5) exceeds limits.max_cpus (4)", "default > max cpus");
    expect("limits:\n  default_memory: 9Gi\n", -EINVAL,
           "t.yaml: limits.default_memory (9Gi) exceeds limits.max_memory (8Gi)",
           "default > max memory");
    expect("limits:\n  default_timeout: 25h\n", -EINVAL,
           "t.yaml: limits.default_timeout (25h) exceeds limits.max_timeout (1d)",
           "default > max timeout");

    /* Deep nesting and long keys: refused quickly, without crashing. */
    size_t n = 100000;
    char *deep = xmalloc(2 * n + 16);
    memset(deep, '[', n);
    memset(deep + n, ']', n);
    deep[2 * n] = '\0';
    expect(deep, -EINVAL,
           "t.yaml:1:1: the top level must be a mapping of settings, found a sequence",
           "deeply nested flow sequence");
    char *p = deep;
    for (int i = 0; i < 50; i++)
        p += sprintf(p, "%*slisten:\n", 2 * i, "");
    expect(deep, -EINVAL, "t.yaml:2:3: unknown setting 'listen.listen'", "deep block mapping");
    memset(deep, 'k', 1000);
    strcpy(deep + 1000, ": 1\n");
    expect(deep, -EINVAL,
           "t.yaml:1:1: unknown setting 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...'",
           "long key is truncated in the message");
    free(deep);
    expect("workers: \xff\n", -EINVAL,
           "t.yaml: YAML syntax error: invalid leading UTF-8 octet at byte 9", "invalid UTF-8");
    expect("state_dir: \"\\ud800\"\n", -EINVAL, NULL, "lone surrogate escape");

    /* Size limit: exactly the limit is fine, one more byte is not. */
    char *big = xmalloc(SBX_CONFIG_MAX_FILE_BYTES + 2);
    memset(big, '#', SBX_CONFIG_MAX_FILE_BYTES + 1);
    big[0] = '#';
    big[SBX_CONFIG_MAX_FILE_BYTES] = '\0';
    expect(big, 0, NULL, "a 1 MiB comment is accepted");
    big[SBX_CONFIG_MAX_FILE_BYTES] = '#';
    big[SBX_CONFIG_MAX_FILE_BYTES + 1] = '\0';
    expect(big, -E2BIG, "t.yaml: file exceeds 1048576 bytes", "over 1 MiB refused");
    _cleanup_free_ char *bigpath = write_tmp("big.yaml", big, SBX_CONFIG_MAX_FILE_BYTES + 1);
    free(big);

    struct sbx_config c;
    char err[512] = "", want[600];
    sbx_config_defaults(&c);
    is_int(sbx_config_load(&c, bigpath, NULL, err, sizeof(err)), -E2BIG, "big file: -E2BIG");
    snprintf(want, sizeof(want), "%s: file exceeds 1048576 bytes", bigpath);
    is_str(err, want, "big file: message names the file");

    _cleanup_free_ char *missing = xasprintf("%s/missing.yaml", tmpdir);
    is_int(sbx_config_load(&c, missing, NULL, err, sizeof(err)), -ENOENT, "missing file");
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", missing);
    is_str(err, want, "missing file: message");
    is_int(sbx_config_load(&c, tmpdir, NULL, err, sizeof(err)), -EISDIR, "directory refused");

    static const char bad[] = "listen:\n  address: x\n  prot: 1\n";
    _cleanup_free_ char *badpath = write_tmp("bad.yaml", bad, sizeof(bad) - 1);
    is_int(sbx_config_load(&c, badpath, NULL, err, sizeof(err)), -EINVAL, "bad file");
    snprintf(want, sizeof(want), "%s:3:3: unknown setting 'listen.prot'", badpath);
    is_str(err, want, "bad file: message names file:line:col and key");
    is_str(c.listen.address, "127.0.0.1", "bad file: nothing applied");

    /* A tiny err buffer is truncated, never overrun. */
    char tiny[8];
    is_int(sbx_config_load(&c, badpath, NULL, tiny, sizeof(tiny)), -EINVAL, "tiny err buffer");
    is_int(strlen(tiny), 7, "tiny err buffer: truncated");
    sbx_config_free(&c);
}

static void test_env(void)
{
    struct sbx_config c;
    char err[512] = "";
    static const char file[] = "listen:\n  port: 7000\n  address: 10.0.0.1\n";
    _cleanup_free_ char *path = write_tmp("env.yaml", file, sizeof(file) - 1);

    const char *env[] = {
        "PATH=/usr/bin",
        "SANDBOXD_LISTEN_PORT=9000",
        "SANDBOXD_DATABASE_URL=host=h dbname=d user=u",
        "SANDBOXD_HTTP_MAX_BODY_BYTES=1Mi",
        "SANDBOXD_RUNTIME_ALLOW_NETWORK=on",
        "SANDBOXD_LIMITS_MAX_CPUS=8.5",
        "SANDBOXD_LIMITS_DEFAULT_TIMEOUT=90",
        "SANDBOXD_RUNTIME_INIT_PATH=",
        "SANDBOXD_STATE_DIR=/srv/state",
        "SANDBOXD_CONFIG=/etc/sandboxd.yaml", /* not a setting: ignored */
        "SANDBOXD_LISTEN_PORTX=1",            /* not a setting: ignored */
        "SANDBOXD_LISTEN_PORT",               /* malformed entry: ignored */
        NULL,
    };
    sbx_config_defaults(&c);
    int r = sbx_config_load(&c, path, ENVP(env), err, sizeof(err));
    if (!is_int(r, 0, "env load"))
        diag("%s", err);
    is_int(c.listen.port, 9000, "env overrides the file");
    is_str(c.listen.address, "10.0.0.1", "file value without env stays");
    is_str(c.database.url, "host=h dbname=d user=u", "SANDBOXD_DATABASE_URL");
    is_int(c.http.max_body_bytes, 1 << 20, "SANDBOXD_HTTP_MAX_BODY_BYTES");
    ok(c.runtime.allow_network, "SANDBOXD_RUNTIME_ALLOW_NETWORK");
    is_int(c.limits.max_cpus, 8500, "SANDBOXD_LIMITS_MAX_CPUS");
    is_int(c.limits.default_timeout, 90, "SANDBOXD_LIMITS_DEFAULT_TIMEOUT");
    is_str(c.runtime.init_path, "", "empty SANDBOXD_RUNTIME_INIT_PATH");
    is_str(c.state_dir, "/srv/state", "SANDBOXD_STATE_DIR (top-level key)");
    sbx_config_free(&c);

    const char *env_nofile[] = { "SANDBOXD_WORKERS=8", NULL };
    sbx_config_defaults(&c);
    is_int(sbx_config_load(&c, NULL, ENVP(env_nofile), err, sizeof(err)), 0, "env without a file");
    is_int(c.workers, 8, "SANDBOXD_WORKERS");
    sbx_config_free(&c);

    static const struct {
        const char *var, *msg;
    } bad[] = {
        { "SANDBOXD_LISTEN_PORT=abc",
          "environment variable SANDBOXD_LISTEN_PORT (listen.port): expected a non-negative "
          "integer, got 'abc'" },
        { "SANDBOXD_LISTEN_PORT=70000",
          "environment variable SANDBOXD_LISTEN_PORT (listen.port): 70000 is out of range "
          "(1..65535)" },
        { "SANDBOXD_LISTEN_PORT=",
          "environment variable SANDBOXD_LISTEN_PORT (listen.port): expected a non-negative "
          "integer, got ''" },
        { "SANDBOXD_LISTEN_PORT= 80",
          "environment variable SANDBOXD_LISTEN_PORT (listen.port): expected a non-negative "
          "integer, got ' 80'" },
        { "SANDBOXD_HTTP_IDLE_TIMEOUT=forever",
          "environment variable SANDBOXD_HTTP_IDLE_TIMEOUT (http.idle_timeout): expected a "
          "duration (seconds, or 30s, 5m, 1h, 1d), got 'forever'" },
        { "SANDBOXD_LOG_LEVEL=trace",
          "environment variable SANDBOXD_LOG_LEVEL (log.level): expected one of debug, info, "
          "warn, error, got 'trace'" },
        { "SANDBOXD_LISTEN_ADDRESS=",
          "environment variable SANDBOXD_LISTEN_ADDRESS (listen.address): must not be empty" },
        { "SANDBOXD_STATE_DIR=\xc3\x28",
          "environment variable SANDBOXD_STATE_DIR (state_dir): value is not valid UTF-8" },
        { "SANDBOXD_LIMITS_DEFAULT_CPUS=16",
          "configuration: limits.default_cpus (16) exceeds limits.max_cpus (4)" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        const char *e[] = { bad[i].var, NULL };
        sbx_config_defaults(&c);
        r = sbx_config_load(&c, NULL, ENVP(e), err, sizeof(err));
        is_int(r, -EINVAL, "bad env %s", bad[i].var);
        is_str(err, bad[i].msg, "bad env %s: message", bad[i].var);
        sbx_config_free(&c);
    }

    /* A bad environment value undoes the file as well. */
    const char *e2[] = { "SANDBOXD_WORKERS=100", NULL };
    sbx_config_defaults(&c);
    is_int(sbx_config_load(&c, path, ENVP(e2), err, sizeof(err)), -EINVAL, "bad env after good file");
    is_int(c.listen.port, 8080, "bad env: file not applied either");
    sbx_config_free(&c);
}

static void test_values(void)
{
    static const struct {
        const char *s;
        int r;
        uint64_t v;
    } sizes[] = {
        { "16777216", 0, 16777216 },
        { "16Mi", 0, 16 << 20 },
        { "512Ki", 0, 512 << 10 },
        { "1Gi", 0, 1 << 30 },
        { "10MB", 0, 10000000 },
        { "64KiB", 0, 65536 },
        { "2k", 0, 2000 },
        { "3GB", 0, 3000000000ULL },
        { "1Ti", 0, 1ULL << 40 },
        { "0", 0, 0 },
        { "7B", 0, 7 },
        { "18446744073709551615", 0, UINT64_MAX },
        { "16777215Ti", 0, 16777215ULL << 40 },
        { "18446744073709551616", -ERANGE, 0 },
        { "99999999999999999999999", -ERANGE, 0 },
        { "16777216Ti", -ERANGE, 0 },
        { "17179869184Gi", -ERANGE, 0 },
        { "", -EINVAL, 0 },
        { "Mi", -EINVAL, 0 },
        { "16 Mi", -EINVAL, 0 },
        { " 16", -EINVAL, 0 },
        { "-1", -EINVAL, 0 },
        { "+1", -EINVAL, 0 },
        { "1.5Gi", -EINVAL, 0 },
        { "16mi", -EINVAL, 0 },
        { "16Mx", -EINVAL, 0 },
        { "0x10", -EINVAL, 0 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
        uint64_t v = 12345;
        int r = sbx_config_parse_size(sizes[i].s, &v);
        is_int(r, sizes[i].r, "size '%s' → %d", sizes[i].s, sizes[i].r);
        if (r == 0)
            ok(v == sizes[i].v, "size '%s' value", sizes[i].s);
        else
            is_int(v, 12345, "size '%s': ret untouched on error", sizes[i].s);
    }

    static const struct {
        const char *s;
        int r;
        uint64_t v;
    } durs[] = {
        { "30", 0, 30 },
        { "30s", 0, 30 },
        { "5m", 0, 300 },
        { "1h", 0, 3600 },
        { "1d", 0, 86400 },
        { "1h30m", 0, 5400 },
        { "1m30s", 0, 90 },
        { "0", 0, 0 },
        { "18446744073709551615s", 0, UINT64_MAX },
        { "18446744073709551615m", -ERANGE, 0 },
        { "18446744073709551615s1s", -ERANGE, 0 },
        { "99999999999999999999", -ERANGE, 0 },
        { "", -EINVAL, 0 },
        { "s", -EINVAL, 0 },
        { "5x", -EINVAL, 0 },
        { "5ms", -EINVAL, 0 },
        { "1h30", -EINVAL, 0 },
        { "-1", -EINVAL, 0 },
        { "1.5h", -EINVAL, 0 },
        { "5 m", -EINVAL, 0 },
        { "5M", -EINVAL, 0 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(durs); i++) {
        uint64_t v = 12345;
        int r = sbx_config_parse_duration(durs[i].s, &v);
        is_int(r, durs[i].r, "duration '%s' → %d", durs[i].s, durs[i].r);
        if (r == 0)
            ok(v == durs[i].v, "duration '%s' value", durs[i].s);
        else
            is_int(v, 12345, "duration '%s': ret untouched on error", durs[i].s);
    }

    static const struct {
        const char *s;
        int r;
        uint32_t v;
    } cpus[] = {
        { "4", 0, 4000 },       { "4.0", 0, 4000 },         { "0.5", 0, 500 },
        { "1.25", 0, 1250 },    { "0.001", 0, 1 },          { "500m", 0, 500 },
        { "0", 0, 0 },          { "4294967", 0, 4294967000U }, { "4294967295m", 0, UINT32_MAX },
        { "4294968", -ERANGE, 0 }, { "4294967296m", -ERANGE, 0 }, { "0.0001", -EINVAL, 0 },
        { ".5", -EINVAL, 0 },   { "1.", -EINVAL, 0 },       { "1.5m", -EINVAL, 0 },
        { "m", -EINVAL, 0 },    { "abc", -EINVAL, 0 },      { "-1", -EINVAL, 0 },
        { "", -EINVAL, 0 },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cpus); i++) {
        uint32_t v = 12345;
        int r = sbx_config_parse_cpus(cpus[i].s, &v);
        is_int(r, cpus[i].r, "cpus '%s' → %d", cpus[i].s, cpus[i].r);
        if (r == 0)
            is_int(v, cpus[i].v, "cpus '%s' value", cpus[i].s);
    }

    static const char *const yes[] = { "true", "True", "YES", "on", "1" };
    static const char *const no[] = { "false", "FALSE", "no", "Off", "0" };
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        bool b = false, nb = true;
        ok(sbx_config_parse_bool(yes[i], &b) == 0 && b, "bool '%s'", yes[i]);
        ok(sbx_config_parse_bool(no[i], &nb) == 0 && !nb, "bool '%s'", no[i]);
    }
    bool b;
    is_int(sbx_config_parse_bool("2", &b), -EINVAL, "bool '2' refused");
    is_int(sbx_config_parse_bool("", &b), -EINVAL, "bool '' refused");

    char out[32];
    static const struct {
        uint64_t v;
        const char *s;
    } fsz[] = { { 0, "0" }, { 1500, "1500" }, { 1024, "1Ki" }, { 16 << 20, "16Mi" },
                { 3ULL << 40, "3Ti" }, { 1536, "1536" } };
    for (size_t i = 0; i < ARRAY_SIZE(fsz); i++) {
        sbx_config_format_size(fsz[i].v, out, sizeof(out));
        is_str(out, fsz[i].s, "format size %llu", (unsigned long long)fsz[i].v);
    }
    static const struct {
        uint64_t v;
        const char *s;
    } fdur[] = { { 0, "0s" }, { 90, "90s" }, { 300, "5m" }, { 7200, "2h" }, { 172800, "2d" } };
    for (size_t i = 0; i < ARRAY_SIZE(fdur); i++) {
        sbx_config_format_duration(fdur[i].v, out, sizeof(out));
        is_str(out, fdur[i].s, "format duration %llu", (unsigned long long)fdur[i].v);
    }
    static const struct {
        uint32_t v;
        const char *s;
    } fcpu[] = { { 0, "0" }, { 4000, "4" }, { 500, "0.5" }, { 1250, "1.25" }, { 1, "0.001" },
                 { 1010, "1.01" } };
    for (size_t i = 0; i < ARRAY_SIZE(fcpu); i++) {
        sbx_config_format_cpus(fcpu[i].v, out, sizeof(out));
        is_str(out, fcpu[i].s, "format cpus %u", fcpu[i].v);
        uint32_t back;
        ok(sbx_config_parse_cpus(out, &back) == 0 && back == fcpu[i].v, "cpus %s parses back",
           out);
    }
}

static void test_dump(void)
{
    struct sbx_config c, d;
    char err[512] = "";
    sbx_config_defaults(&c);
    size_t len;
    char *s = dump_to_string(&c, &len);
    ok(strstr(s, "listen:\n  address: \"127.0.0.1\"\n  port: 8080\n") != NULL,
       "dump shows sections");
    ok(strstr(s, "\nworkers: 4\n") != NULL, "dump shows top-level keys");
    ok(strstr(s, "  max_body_bytes: 16Mi\n") != NULL, "dump formats sizes");
    ok(strstr(s, "  max_timeout: 1d\n") != NULL, "dump formats durations");
    ok(strstr(s, "  max_cpus: 4\n") != NULL, "dump formats cpus");
    sbx_config_defaults(&d);
    is_int(sbx_config_load_buffer(&d, "dump", s, len, err, sizeof(err)), 0, "defaults dump loads");
    ok(config_equal(&c, &d, true), "defaults round-trip");
    sbx_config_free(&d);
    free(s);

    /* Awkward strings survive the round trip. */
    const char *env[] = {
        "SANDBOXD_STATE_DIR=a\"b\\c\nd\te\x01\x7f \xc3\xa9 \xe2\x80\xa8 \xc2\x85 \xef\xbb\xbf "
        "\xf0\x9f\x98\x80 # : - ' ",
        "SANDBOXD_RUNTIME_INIT_PATH=  leading and trailing  ",
        NULL,
    };
    is_int(sbx_config_load(&c, NULL, ENVP(env), err, sizeof(err)), 0, "awkward strings via env");
    s = dump_to_string(&c, &len);
    sbx_config_defaults(&d);
    int r = sbx_config_load_buffer(&d, "dump", s, len, err, sizeof(err));
    if (!is_int(r, 0, "awkward dump loads"))
        diag("%s", err);
    ok(config_equal(&c, &d, true), "awkward strings round-trip");
    sbx_config_free(&d);
    free(s);

    /* Passwords are redacted. */
    const char *env2[] = {
        "SANDBOXD_DATABASE_URL=host=h password=s3cr3t user=u",
        "SANDBOXD_DATABASE_MIGRATE_URL=postgresql://owner:hunter2@db:5432/x?sslmode=require&"
        "password=other",
        NULL,
    };
    is_int(sbx_config_load(&c, NULL, ENVP(env2), err, sizeof(err)), 0, "secret urls via env");
    s = dump_to_string(&c, &len);
    ok(!strstr(s, "s3cr3t") && !strstr(s, "hunter2") && !strstr(s, "other"),
       "no password in dump");
    ok(strstr(s, "url: \"host=h password=******** user=u\"") != NULL, "conninfo redacted");
    ok(strstr(s, "migrate_url: \"postgresql://owner:********@db:5432/x?sslmode=require&"
                 "password=********\"") != NULL,
       "URI redacted");
    free(s);

    const char *env3[] = { "SANDBOXD_DATABASE_URL=host=h password = 'a b\\' c' user=u", NULL };
    is_int(sbx_config_load(&c, NULL, ENVP(env3), err, sizeof(err)), 0, "quoted password via env");
    s = dump_to_string(&c, &len);
    ok(strstr(s, "url: \"host=h password = '********' user=u\"") != NULL,
       "quoted conninfo password redacted");
    free(s);
    sbx_config_free(&c);
}

static void test_doc(void)
{
    char *table = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&table, &tlen);
    sbx_config_doc_table(f);
    fclose(f);

    FILE *doc = fopen(SBX_SOURCE_DIR "/docs/internals/CONFIG.md", "r");
    if (!ok(doc != NULL, "docs/internals/CONFIG.md exists")) {
        free(table);
        return;
    }
    char *text = xmalloc(256 * 1024);
    size_t n = fread(text, 1, 256 * 1024 - 1, doc);
    text[n] = '\0';
    fclose(doc);
    if (!ok(strstr(text, table) != NULL, "CONFIG.md contains the generated table verbatim"))
        diag("regenerate with sbx_config_doc_table(); expected:\n%s", table);
    free(text);
    free(table);
}

int main(void)
{
    if (!mkdtemp(tmpdir))
        abort();
    plan_no_plan();
    test_defaults();
    test_full_file();
    test_errors();
    test_env();
    test_values();
    test_dump();
    test_doc();
    static const char *const files[] = { "full.yaml", "big.yaml", "bad.yaml", "env.yaml" };
    for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
        _cleanup_free_ char *p = xasprintf("%s/%s", tmpdir, files[i]);
        unlink(p);
    }
    rmdir(tmpdir);
    return done();
}
