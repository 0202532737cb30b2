/*
 * contain.h — the ordered set-up steps of a new sandbox, run in the clone3 child (PID 1 of the
 * new pid namespace) forked by the spawner. The child never returns: it execs the init or
 * reports "E<step>: <error>" on sync_fd and _exits(127).
 *
 * fds handed to the init: 0-2 /dev/null (inside), 3 = listening control socket, 4 = sync socket
 * (the init writes "R" on it once it runs, then closes it).
 */
#pragma once

#include "runtime/ns-mount.h"
#include "runtime/seccomp.h"

struct rt_contain_args {
    int sync_fd;
    int listen_fd;
    int init_fd;                /* O_PATH of the init binary */
    struct rt_rootfs fs;
    const struct rt_seccomp *filter;
    char *const *init_argv;
    char *const *init_envp;
};

#define RT_SANDBOX_UID 1000
#define RT_INIT_LISTEN_FD 3
#define RT_INIT_SYNC_FD 4

_Noreturn void rt_contain_child(const struct rt_contain_args *a);
