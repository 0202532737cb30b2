/*
 * proto.h — the wire format between the daemon and a sandbox init (and between the daemon and
 * the spawner). One message = one AF_UNIX SOCK_SEQPACKET datagram:
 *
 *   struct rt_msg_hdr { u32 magic; u32 type; i64 a[6]; u32 nstr; u32 pad; } + nstr NUL-terminated
 *   strings, back to back, nothing after the last NUL. fds ride along with SCM_RIGHTS.
 *
 * Every field is bounded: whole message <= RT_MSG_MAX, each string <= RT_STR_MAX, at most
 * RT_NSTR_MAX strings, at most RT_NFD_MAX fds; the decoder refuses anything else (-EBADMSG) and
 * closes fds it did not expect. No allocation: decoded strings point into the caller's buffer.
 * Used by the init (no libc beyond syscalls wrappers needed), the spawner and the daemon.
 *
 * Conversations (→ daemon to init, ← init to daemon); one connection per request:
 *   exec:  → X a0=tty a1=rows a2=cols a3=argc a4=envc strs: cwd argv... env...  fds: 0,1,2 (pipes)
 *          ← S a0=pid  [fd: pty master if tty]     or ← e a0=-errno
 *          → K a0=signal   (any number of times)
 *          ← E a0=exit_code a1=signal              (then the init closes the connection)
 *          daemon closing early = SIGKILL to the command's process group.
 *   files: → r strs: relpath                     ← F a0=0|-errno a1=size [fd O_RDONLY]
 *          → w a0=mode a1=flags strs: relpath    ← F a0=0|-errno [fd O_WRONLY]
 *          → l strs: relpath                     ← F a0=0|-errno [fd O_DIRECTORY]
 *          → m a0=mode strs: relpath             ← F a0=0|-errno
 *          (relpath is relative to /workspace and already lexically normalised by the daemon;
 *           the init re-checks it.)
 *   spawner: → C a0=cpus_milli a1=memory a2=pids_max a3=envc strs: id env...
 *            ← c a0=0|-errno a1=pid a2=starttime strs: error line
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RT_MSG_MAGIC 0x53425831u /* "SBX1" */
#define RT_MSG_MAX (160 * 1024)
#define RT_STR_MAX (128 * 1024)
#define RT_NSTR_MAX 2050
#define RT_NFD_MAX 3
#define RT_NARG 6

enum {
    RT_M_EXEC = 'X',
    RT_M_STARTED = 'S',
    RT_M_EXIT = 'E',
    RT_M_ERROR = 'e',
    RT_M_SIGNAL = 'K',
    RT_M_READ = 'r',
    RT_M_WRITE = 'w',
    RT_M_LISTDIR = 'l',
    RT_M_MKDIR = 'm',
    RT_M_FILE = 'F',
    RT_M_CREATE = 'C',
    RT_M_CREATED = 'c',
};

struct rt_msg_hdr {
    uint32_t magic;
    uint32_t type;
    int64_t a[RT_NARG];
    uint32_t nstr;
    uint32_t pad;
};

struct rt_msg {
    uint32_t type;
    int64_t a[RT_NARG];
    uint32_t nstr;
    const char *str[RT_NSTR_MAX];
    int fds[RT_NFD_MAX];
    unsigned nfds;
};

/* Encode into buf (size bufsize); returns the length or -E2BIG. */
ssize_t rt_msg_encode(char *buf, size_t bufsize, uint32_t type, const int64_t a[RT_NARG],
                      const char *const *strs, size_t nstr);
/* Send one message (blocking; MSG_NOSIGNAL). Returns 0 or -errno. */
int rt_msg_send(int sock, uint32_t type, const int64_t a[RT_NARG], const char *const *strs,
                size_t nstr, const int *fds, unsigned nfds);
/* Receive one message into buf (must be RT_MSG_MAX bytes). Returns 1 on a message, 0 on EOF,
 * -EAGAIN if nonblocking and nothing there, -EBADMSG on a malformed message, -errno else.
 * Received fds are CLOEXEC and owned by the caller (m->fds[0..nfds)). */
int rt_msg_recv(int sock, char *buf, struct rt_msg *m);
void rt_msg_close_fds(struct rt_msg *m);
/* Convenience: a message with only integer args. */
int rt_msg_send_ints(int sock, uint32_t type, int64_t a0, int64_t a1, int64_t a2);
