/*
 * spawner.h — the single-threaded helper process that creates sandboxes.
 *
 * The daemon forks it in rt_local_start() before any thread exists. It owns nothing but a
 * socketpair to the daemon. When the daemon dies (PR_SET_PDEATHSIG SIGHUP) or closes the socket,
 * it stops serving and only reaps the sandboxes it created, exiting when the last one is gone;
 * the sandboxes keep running and are adopted by the next daemon through pidfile + socket.
 * The spawner reaps its children (inits) on SIGCHLD. Daemon-side calls are serialised by a
 * mutex (one request in flight), so any worker thread may call rt_spawner_create().
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/seccomp.h"

struct rt_spawner_cfg {
    const char *state_dir;
    const char *prefix;
    uint32_t uid_base;
    uint64_t tmp_size;
    bool cgroup_view;           /* rt_local_config.cgroup_view */
    unsigned cg_avail;
    int memsw;
    int init_fd;                /* O_PATH|O_CLOEXEC of sandboxd-init */
    struct rt_seccomp filter;
};

struct rt_spawner {
    int sock;                   /* daemon end */
    pid_t pid;
    pthread_mutex_t lock;
};

int rt_spawner_start(const struct rt_spawner_cfg *cfg, struct rt_spawner *ret);
/* Ask the spawner to create sandbox id. env: NULL-terminated default env for the init. */
int rt_spawner_create(struct rt_spawner *sp, const char *id, unsigned cpus_milli, uint64_t memory,
                      unsigned pids_max, const char *const *env, pid_t *ret_pid, char *err,
                      size_t errlen);
void rt_spawner_stop(struct rt_spawner *sp);
