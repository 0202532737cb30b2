/*
 * local.h — the local (namespaces + cgroup v1 + seccomp) runtime backend.
 *
 * rt_local_start() MUST be called while the process is still single-threaded: it forks the
 * spawner (runtime/spawner.c), the only process that ever clones sandboxes. After that the
 * returned runtime is used from any number of threads (see runtime.h).
 *
 * Features (checked at start, docs/internals/RUNTIME.md):
 *   fatal:    running as root, user namespaces, cgroup v1 memory and pids controllers,
 *             seccomp filter support, the init binary.
 *   degraded: cpu (no CPU limit), cpuacct (no cpu_usec in stats), memsw (memory limit without
 *             the swap part), cgroup2 unified (kill-all falls back to pidfd SIGKILL of the init).
 *   A degraded feature is named in rt_local_features() and in err (still returning 0).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "runtime/runtime.h"

struct rt_local_config {
    const char *state_dir;       /* required-ish: default "/var/lib/sandboxd"; must be short
                                  * (socket paths <state_dir>/run/<id>.sock must fit 107 bytes) */
    const char *init_path;       /* NULL = "sandboxd-init" next to /proc/self/exe, else SBX_INIT_PATH */
    const char *cgroup_prefix;   /* NULL = "sandboxd" */
    uint32_t uid_base;           /* 0 = 100000; sandbox uid 1000 = uid_base + 1000 on the host */
    uint64_t tmp_size;           /* /tmp tmpfs size; 0 = 64 MiB */
    bool cgroup_view;            /* sandboxes see their own cgroups read-only at
                                  * /sys/fs/cgroup/{memory,cpuacct,pids}, as containers on a
                                  * cgroup v1 node do (rtctl -C: the kube emulator's pods);
                                  * false (the daemon): no /sys at all */
};

/* Degraded-feature bits */
#define RT_DEGRADED_CPU      0x1
#define RT_DEGRADED_CPUACCT  0x2
#define RT_DEGRADED_MEMSW    0x4
#define RT_DEGRADED_UNIFIED  0x8

/* Check features, fork the spawner, return the runtime. On failure returns -errno and writes a
 * line naming what is missing into err. On success err may carry a "degraded: ..." note. */
int rt_local_start(const struct rt_local_config *cfg, struct sbx_runtime **ret, char *err,
                   size_t errlen);
unsigned rt_local_features(struct sbx_runtime *rt); /* RT_DEGRADED_* bits */
