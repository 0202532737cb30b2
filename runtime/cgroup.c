/*
 * cgroup.c — see cgroup.h. cgroup v1 limits: memory.limit_in_bytes then memory.memsw (a new
 * directory starts unlimited, so lowering the limit first keeps memsw >= limit), cfs quota with a
 * 100 ms period, pids.max. Attaching writes the init's pid to each cgroup.procs once (only the init
 * migrates; execs are its children — reference §3 attach latency).
 */
#include "runtime/cgroup.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/rtutil.h"

static const char *const ctrl_name[RT_CG_N] = { "memory", "pids", "cpu", "cpuacct", "unified" };

void rt_cg_path(char *buf, size_t len, enum rt_cg_ctrl c, const char *prefix, const char *id,
                const char *file)
{
    snprintf(buf, len, RT_CG_ROOT "/%s/%s%s%s%s%s", ctrl_name[c], prefix, id ? "/" : "",
             id ? id : "", file ? "/" : "", file ? file : "");
}

unsigned rt_cg_probe(const char *prefix, int *ret_memsw)
{
    unsigned avail = 0;
    char p[256];
    for (int c = 0; c < RT_CG_N; c++) {
        snprintf(p, sizeof p, RT_CG_ROOT "/%s/cgroup.procs", ctrl_name[c]);
        if (access(p, W_OK) == 0)
            avail |= 1u << c;
    }
    if (ret_memsw) {
        snprintf(p, sizeof p, RT_CG_ROOT "/memory/memory.memsw.limit_in_bytes");
        *ret_memsw = access(p, W_OK) == 0;
    }
    (void)prefix;
    return avail;
}

int rt_cg_init_prefix(const char *prefix, unsigned avail)
{
    char p[256];
    for (int c = 0; c < RT_CG_N; c++) {
        if (!(avail & (1u << c)))
            continue;
        rt_cg_path(p, sizeof p, c, prefix, NULL, NULL);
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            return -errno;
    }
    return 0;
}

static int wr(const char *prefix, const char *id, enum rt_cg_ctrl c, const char *file,
              const char *val, char *err, size_t errlen)
{
    char p[512];
    rt_cg_path(p, sizeof p, c, prefix, id, file);
    int r = rt_write_str(p, val);
    if (r < 0)
        snprintf(err, errlen, "cgroup %s %s=%s: %s", ctrl_name[c], file, val, strerror(-r));
    return r;
}

int rt_cg_create(const char *prefix, const char *id, unsigned avail, int memsw, unsigned cpus_milli,
                 uint64_t memory, unsigned pids_max, char *err, size_t errlen)
{
    char p[512], v[64];
    int r;
    for (int c = 0; c < RT_CG_N; c++) {
        if (!(avail & (1u << c)))
            continue;
        rt_cg_path(p, sizeof p, c, prefix, id, NULL);
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            r = -errno;
            snprintf(err, errlen, "cgroup %s mkdir: %s", ctrl_name[c], strerror(-r));
            return r;
        }
    }
    if (memory > 0) {
        snprintf(v, sizeof v, "%" PRIu64, memory);
        if ((r = wr(prefix, id, RT_CG_MEMORY, "memory.limit_in_bytes", v, err, errlen)) < 0)
            return r;
        if (memsw && (r = wr(prefix, id, RT_CG_MEMORY, "memory.memsw.limit_in_bytes", v, err,
                             errlen)) < 0)
            return r;
    }
    if (avail & (1u << RT_CG_CPU)) {
        if ((r = wr(prefix, id, RT_CG_CPU, "cpu.cfs_period_us", "100000", err, errlen)) < 0)
            return r;
        snprintf(v, sizeof v, "%lld", cpus_milli ? (long long)cpus_milli * 100 : -1LL);
        if ((r = wr(prefix, id, RT_CG_CPU, "cpu.cfs_quota_us", v, err, errlen)) < 0)
            return r;
    }
    if (pids_max > 0) {
        snprintf(v, sizeof v, "%u", pids_max);
        if ((r = wr(prefix, id, RT_CG_PIDS, "pids.max", v, err, errlen)) < 0)
            return r;
    }
    return 0;
}

int rt_cg_attach(const char *prefix, const char *id, unsigned avail, pid_t pid, char *err,
                 size_t errlen)
{
    char v[32];
    snprintf(v, sizeof v, "%d", (int)pid);
    for (int c = 0; c < RT_CG_N; c++) {
        if (!(avail & (1u << c)))
            continue;
        int r = wr(prefix, id, c, "cgroup.procs", v, err, errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

int rt_cg_kill(const char *prefix, const char *id)
{
    char p[512];
    rt_cg_path(p, sizeof p, RT_CG_UNIFIED, prefix, id, "cgroup.kill");
    return rt_write_str(p, "1");
}

int rt_cg_exists(const char *prefix, const char *id)
{
    char p[512];
    for (int c = 0; c < RT_CG_N; c++) {
        rt_cg_path(p, sizeof p, c, prefix, id, NULL);
        if (access(p, F_OK) == 0)
            return 1;
    }
    return 0;
}

int rt_cg_remove(const char *prefix, const char *id, unsigned timeout_ms)
{
    char p[512];
    int last = 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t deadline = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + timeout_ms;
    for (int c = 0; c < RT_CG_N; c++) {
        rt_cg_path(p, sizeof p, c, prefix, id, NULL);
        for (unsigned delay = 1;; delay = delay < 50 ? delay * 2 : 50) {
            if (rmdir(p) == 0 || errno == ENOENT)
                break;
            if (errno != EBUSY) {
                last = -errno;
                break;
            }
            clock_gettime(CLOCK_MONOTONIC, &ts);
            if ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 >= deadline) {
                last = -EBUSY;
                break;
            }
            usleep(delay * 1000);
        }
    }
    return last;
}

int rt_cg_procs(const char *prefix, const char *id, pid_t *pids, size_t max)
{
    char p[512], buf[8192];
    rt_cg_path(p, sizeof p, RT_CG_PIDS, prefix, id, "cgroup.procs");
    ssize_t n = rt_read_str(p, buf, sizeof buf);
    if (n < 0)
        return (int)n;
    size_t k = 0;
    for (char *s = buf; *s && k < max;) {
        char *e;
        long v = strtol(s, &e, 10);
        if (e == s)
            break;
        pids[k++] = (pid_t)v;
        s = e;
        while (*s == '\n')
            s++;
    }
    return (int)k;
}
