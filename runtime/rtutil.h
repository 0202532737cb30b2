/*
 * rtutil.h — small helpers shared by the runtime's processes (daemon, spawner, contain child):
 * whole-file reads/writes of sysfs/procfs values, /proc/PID/stat start time, NSpid.
 * All functions are async-signal-unsafe but allocation-free unless noted; any thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Write s to an existing file (O_WRONLY|O_CLOEXEC, one write). 0 or -errno. */
int rt_write_str(const char *path, const char *s);
/* Read up to len-1 bytes, NUL-terminate. Returns the length or -errno. */
ssize_t rt_read_str(const char *path, char *buf, size_t len);
/* Parse the first integer of a file. */
int rt_read_u64(const char *path, uint64_t *ret);
/* Value of "key <n>" line in a key/value file (memory.oom_control, pids.events). */
int rt_read_kv_u64(const char *path, const char *key, uint64_t *ret);
/* Field 22 of /proc/PID/stat (start time in clock ticks); -ESRCH for a zombie. */
int rt_proc_starttime(pid_t pid, uint64_t *ret);
/* true if the last NSpid of /proc/PID/status is 1 (a pid-namespace init). */
bool rt_proc_is_ns_init(pid_t pid);
/* mkdir -p (host paths). */
int rt_mkdir_p(const char *path, mode_t mode);
/* rm -rf without following symlinks or crossing mounts. */
int rt_rm_rf(const char *path);

struct sockaddr_un;
/* Opens <state_dir>/run as the directory sockets are addressed through (call once, before the
 * spawner forks, after the directory exists). Returns 0 or -errno. */
int rt_sock_dir_open(const char *state_dir);
/* Fills sa for the control socket of id. When "<state_dir>/run/<id>.sock" does not fit
 * sun_path (108 bytes), the address goes through the open directory fd instead:
 * "/proc/self/fd/<fd>/<id>.sock", so a deep state_dir still works. Returns 0 or -errno. */
/* In a forked child that closed every inherited fd: forget the (now closed) directory fd. */
void rt_sock_dir_forget(void);
int rt_sock_addr(const char *state_dir, const char *id, struct sockaddr_un *sa);

/* State layout under state_dir: run/<id>.sock, run/<id>.pid, run/rootfs (empty mount point),
 * sandboxes/<id>/workspace. */
#define RT_SOCK_FMT "%s/run/%s.sock"
#define RT_PIDFILE_FMT "%s/run/%s.pid"
#define RT_ROOTFS_FMT "%s/run/rootfs"
#define RT_SBXDIR_FMT "%s/sandboxes/%s"
#define RT_WORKSPACE_FMT "%s/sandboxes/%s/workspace"
