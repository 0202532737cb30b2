/*
 * ns-mount.h — builds the sandbox's root filesystem inside the new mount namespace and pivots
 * into it. Runs in the contain child (namespace root, after the id maps and setresuid(0)).
 */
#pragma once

#include <stdint.h>

struct rt_rootfs {
    const char *root_dir;   /* empty host directory used as the tmpfs mount point */
    const char *workspace;  /* host workspace directory (chowned to the mapped uid) */
    uint64_t tmp_size;      /* /tmp and /dev/shm size */
};

/* Returns 0 or -errno with *step naming the failed mount step (static string). */
int rt_rootfs_setup(const struct rt_rootfs *fs, const char **step);
