/*
 * ns-mount.h — builds the sandbox's root filesystem inside the new mount namespace and pivots
 * into it. Runs in the contain child (namespace root, after the id maps and setresuid(0)).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct rt_rootfs {
    const char *root_dir;   /* empty host directory used as the tmpfs mount point */
    const char *workspace;  /* host workspace directory (chowned to the mapped uid) */
    uint64_t tmp_size;      /* /tmp and /dev/shm size */
    bool cgroup_view;       /* read-only /sys/fs/cgroup/{memory,cpuacct,pids} (local.h) */
};

/* Host directories the contain child resolves while it still has the host root's fsuid
 * (before setresuid into the namespace): the mapped root could not traverse a state_dir below
 * a 0700 directory (/root, pytest's /tmp/pytest-of-root). */
struct rt_rootfs_fds {
    int root_parent_fd;     /* O_PATH of dirname(root_dir) */
    const char *root_name;  /* basename(root_dir), looked up from root_parent_fd */
    int workspace_fd;       /* O_PATH of workspace, bound through /proc/self/fd */
};

/* Opens the fds above; call before setresuid(0) in the child. Allocation-free: root_name
 * points into root_dir. Returns 0 or -errno. */
int rt_rootfs_open(const struct rt_rootfs *fs, struct rt_rootfs_fds *ret);
/* Returns 0 or -errno with *step naming the failed mount step (static string). */
int rt_rootfs_setup(const struct rt_rootfs *fs, const struct rt_rootfs_fds *fds,
                    const char **step);
