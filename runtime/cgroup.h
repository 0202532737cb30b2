/*
 * cgroup.h — per-sandbox cgroups: v1 memory/cpu/cpuacct/pids for limits and accounting, plus a
 * cgroup2 directory under /sys/fs/cgroup/unified for cgroup.kill. Layout:
 * /sys/fs/cgroup/<ctrl>/<prefix>/<id>. Used by the spawner (create, attach) and the daemon
 * threads (kill, remove, stats). Stateless: everything is derived from (prefix, id).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RT_CG_ROOT "/sys/fs/cgroup"

enum rt_cg_ctrl { RT_CG_MEMORY, RT_CG_PIDS, RT_CG_CPU, RT_CG_CPUACCT, RT_CG_UNIFIED, RT_CG_N };

/* Which controllers exist (bit per enum rt_cg_ctrl) and whether memsw exists. */
unsigned rt_cg_probe(const char *prefix, int *ret_memsw);
void rt_cg_path(char *buf, size_t len, enum rt_cg_ctrl c, const char *prefix, const char *id,
                const char *file);
/* mkdir the prefix dirs (at start). */
int rt_cg_init_prefix(const char *prefix, unsigned avail);
/* mkdir + limits. err gets "cgroup <ctrl> <file>: <errno>". */
int rt_cg_create(const char *prefix, const char *id, unsigned avail, int memsw, unsigned cpus_milli,
                 uint64_t memory, unsigned pids_max, char *err, size_t errlen);
int rt_cg_attach(const char *prefix, const char *id, unsigned avail, pid_t pid, char *err,
                 size_t errlen);
/* cgroup.kill on the unified dir: -ENOENT if absent. */
int rt_cg_kill(const char *prefix, const char *id);
/* true if any controller dir for id exists */
int rt_cg_exists(const char *prefix, const char *id);
/* rmdir all; retries EBUSY until timeout_ms. 0 or the last error. */
int rt_cg_remove(const char *prefix, const char *id, unsigned timeout_ms);
/* Pids in the pids controller's cgroup.procs; returns count (<= max). */
int rt_cg_procs(const char *prefix, const char *id, pid_t *pids, size_t max);
