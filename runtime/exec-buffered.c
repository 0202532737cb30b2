/*
 * exec-buffered.c — sbx_exec_run_buffered() and the whole-file helpers: backend-independent
 * loops over the runtime ops. Runs on the calling worker thread, blocking; poll()s the exec's
 * nonblocking fds, feeds stdin, caps output (the rest is drained and discarded so the command
 * never blocks on a full pipe), enforces the timeout with SIGKILL to the process group.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/timeutil.h"
#include "runtime/runtime.h"

#define DRAIN_GRACE_MS 200 /* after the exit status: how long background holders may keep pipes */

struct obuf {
    char *data;
    size_t len, cap, max;
    bool *truncated;
};

static int drain(int *fd, struct obuf *b)
{
    char tmp[65536];
    for (;;) {
        ssize_t n = read(*fd, tmp, sizeof tmp);
        if (n > 0) {
            size_t keep = b->len < b->max ? MIN((size_t)n, b->max - b->len) : 0;
            if (keep < (size_t)n)
                *b->truncated = true;
            if (keep) {
                if (b->len + keep + 1 > b->cap) {
                    b->cap = MAX(b->cap * 2, b->len + keep + 1);
                    b->data = xrealloc(b->data, b->cap);
                }
                memcpy(b->data + b->len, tmp, keep);
                b->len += keep;
            }
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            close(*fd);
            *fd = -1;
            return 0;
        }
        if (errno == EAGAIN)
            return 0;
    }
}

int sbx_exec_run_buffered(struct sbx_runtime *rt, const char *id, const struct sbx_exec_spec *spec,
                          const void *stdin_data, size_t stdin_len, unsigned timeout_ms,
                          size_t max_output, struct sbx_exec_output *ret)
{
    struct sbx_exec *e = NULL;
    struct sbx_exec_spec s = *spec;
    uint64_t t0 = sbx_now_ms(), t0us = sbx_now_us();
    s.tty = false; /* buffered execution uses pipes */
    int r = sbx_exec_start(rt, id, &s, &e);
    if (r < 0)
        return r;

    struct sbx_exec_output o = { 0 };
    if (!max_output)
        max_output = 1 << 20;
    struct obuf ob = { .max = max_output, .truncated = &o.truncated };
    struct obuf eb = { .max = max_output, .truncated = &o.truncated };
    size_t in_off = 0;
    bool exited = false, timed_out = false;
    uint64_t exit_at = 0;
    if (!stdin_data || stdin_len == 0) {
        close(e->stdin_fd);
        e->stdin_fd = -1;
    }

    for (;;) {
        uint64_t now = sbx_now_ms();
        if (exited && (e->stdout_fd < 0 && e->stderr_fd < 0))
            break;
        if (exited && now - exit_at >= DRAIN_GRACE_MS)
            break;
        if (!exited && !timed_out && timeout_ms && now - t0 >= timeout_ms) {
            timed_out = true;
            sbx_exec_signal(e, SIGKILL);
        }
        struct pollfd p[4];
        int n = 0, ii = -1, io = -1, ie = -1, ic = -1;
        if (e->stdin_fd >= 0) {
            ii = n;
            p[n++] = (struct pollfd){ .fd = e->stdin_fd, .events = POLLOUT };
        }
        if (e->stdout_fd >= 0) {
            io = n;
            p[n++] = (struct pollfd){ .fd = e->stdout_fd, .events = POLLIN };
        }
        if (e->stderr_fd >= 0) {
            ie = n;
            p[n++] = (struct pollfd){ .fd = e->stderr_fd, .events = POLLIN };
        }
        if (!exited) {
            ic = n;
            p[n++] = (struct pollfd){ .fd = e->ctl_fd, .events = POLLIN };
        }
        int wait = -1;
        if (exited)
            wait = (int)(DRAIN_GRACE_MS - (now - exit_at));
        else if (timeout_ms && !timed_out)
            wait = (int)(timeout_ms - (now - t0));
        else if (timed_out)
            wait = 100;
        if (poll(p, (nfds_t)n, wait) < 0 && errno != EINTR) {
            r = -errno;
            goto fail;
        }
        if (ii >= 0 && p[ii].revents) {
            if (p[ii].revents & (POLLERR | POLLHUP)) {
                close(e->stdin_fd);
                e->stdin_fd = -1;
            } else {
                ssize_t w = write(e->stdin_fd, (const char *)stdin_data + in_off, stdin_len - in_off);
                if (w > 0)
                    in_off += (size_t)w;
                if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == stdin_len) {
                    close(e->stdin_fd);
                    e->stdin_fd = -1;
                }
            }
        }
        if (io >= 0 && p[io].revents)
            drain(&e->stdout_fd, &ob);
        if (ie >= 0 && p[ie].revents)
            drain(&e->stderr_fd, &eb);
        if (ic >= 0 && p[ic].revents) {
            r = sbx_exec_result(e, &o.result);
            if (r == 0) {
                exited = true;
                exit_at = sbx_now_ms();
                if (e->stdin_fd >= 0) {
                    close(e->stdin_fd);
                    e->stdin_fd = -1;
                }
            } else if (r != -EAGAIN) {
                goto fail;
            }
        }
    }
    if (e->stdout_fd >= 0)
        drain(&e->stdout_fd, &ob);
    if (e->stderr_fd >= 0)
        drain(&e->stderr_fd, &eb);
    sbx_exec_free(e);

    o.out = ob.data ? ob.data : xmalloc(1);
    o.err = eb.data ? eb.data : xmalloc(1);
    o.out[ob.len] = 0;
    o.err[eb.len] = 0;
    o.out_len = ob.len;
    o.err_len = eb.len;
    o.duration_us = sbx_now_us() - t0us;
    o.reason = timed_out ? SBX_EXEC_TIMEOUT : o.result.oom ? SBX_EXEC_OOM
               : o.result.signal ? SBX_EXEC_SIGNALED : SBX_EXEC_EXITED;
    *ret = o;
    return 0;
fail:
    sbx_exec_free(e);
    free(ob.data);
    free(eb.data);
    return r;
}

void sbx_exec_output_free(struct sbx_exec_output *o)
{
    free(o->out);
    free(o->err);
    o->out = o->err = NULL;
}

int sbx_read_file(struct sbx_runtime *rt, const char *id, const char *path, size_t max,
                  char **ret, size_t *ret_len)
{
    int fd;
    uint64_t size;
    int r = rt->ops->open_read(rt, id, path, &fd, &size);
    if (r < 0)
        return r;
    if (size > max) {
        close(fd);
        return -EFBIG;
    }
    size_t cap = (size_t)size + 1, len = 0;
    char *buf = xmalloc(cap);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max) {
                free(buf);
                close(fd);
                return -EFBIG;
            }
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            free(buf);
            close(fd);
            return r;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            free(buf);
            close(fd);
            return -EFBIG;
        }
    }
    close(fd);
    buf[len] = 0;
    *ret = buf;
    *ret_len = len;
    return 0;
}

int sbx_write_file(struct sbx_runtime *rt, const char *id, const char *path, const void *data,
                   size_t len, unsigned mode, unsigned flags)
{
    int fd;
    int r = rt->ops->open_write(rt, id, path, mode, flags, &fd);
    if (r < 0)
        return r;
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, (const char *)data + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            (void)sbx_rt_close_write(rt, id, fd);
            return r;
        }
        off += (size_t)n;
    }
    return sbx_rt_close_write(rt, id, fd);
}
