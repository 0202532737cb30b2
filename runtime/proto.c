/*
 * proto.c — encoder/decoder for the init/spawner wire protocol (see proto.h). Pure functions plus
 * sendmsg/recvmsg; runs in the daemon (any thread), the spawner and the init. No allocation.
 */
#include "runtime/proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

ssize_t rt_msg_encode(char *buf, size_t bufsize, uint32_t type, const int64_t a[RT_NARG],
                      const char *const *strs, size_t nstr)
{
    struct rt_msg_hdr h = { .magic = RT_MSG_MAGIC, .type = type, .nstr = (uint32_t)nstr };
    size_t off = sizeof h;

    if (nstr > RT_NSTR_MAX || bufsize < sizeof h)
        return -E2BIG;
    if (a)
        memcpy(h.a, a, sizeof h.a);
    for (size_t i = 0; i < nstr; i++) {
        size_t l = strlen(strs[i]);
        if (l > RT_STR_MAX || off + l + 1 > bufsize || off + l + 1 > RT_MSG_MAX)
            return -E2BIG;
        memcpy(buf + off, strs[i], l + 1);
        off += l + 1;
    }
    memcpy(buf, &h, sizeof h);
    return (ssize_t)off;
}

static int send_buf(int sock, const char *buf, size_t len, const int *fds, unsigned nfds)
{
    union {
        char b[CMSG_SPACE(sizeof(int) * RT_NFD_MAX)];
        struct cmsghdr align;
    } cb;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (nfds > RT_NFD_MAX)
        return -EINVAL;
    if (nfds > 0) {
        memset(&cb, 0, sizeof cb);
        mh.msg_control = cb.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        return n == (ssize_t)len ? 0 : -EIO;
    }
}

int rt_msg_send(int sock, uint32_t type, const int64_t a[RT_NARG], const char *const *strs,
                size_t nstr, const int *fds, unsigned nfds)
{
    char *buf = malloc(RT_MSG_MAX);
    if (!buf)
        abort();
    ssize_t len = rt_msg_encode(buf, RT_MSG_MAX, type, a, strs, nstr);
    int r = len < 0 ? (int)len : send_buf(sock, buf, (size_t)len, fds, nfds);
    free(buf);
    return r;
}

int rt_msg_send_ints(int sock, uint32_t type, int64_t a0, int64_t a1, int64_t a2)
{
    int64_t a[RT_NARG] = { a0, a1, a2 };
    char buf[sizeof(struct rt_msg_hdr)];
    ssize_t len = rt_msg_encode(buf, sizeof buf, type, a, NULL, 0);
    if (len < 0)
        return (int)len;
    return send_buf(sock, buf, (size_t)len, NULL, 0);
}

void rt_msg_close_fds(struct rt_msg *m)
{
    for (unsigned i = 0; i < m->nfds; i++)
        if (m->fds[i] >= 0)
            close(m->fds[i]);
    m->nfds = 0;
}

int rt_msg_recv(int sock, char *buf, struct rt_msg *m)
{
    union {
        char b[CMSG_SPACE(sizeof(int) * (RT_NFD_MAX + 1))];
        struct cmsghdr align;
    } cb;
    struct iovec iov = { .iov_base = buf, .iov_len = RT_MSG_MAX };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b,
                         .msg_controllen = sizeof cb.b };
    ssize_t n;

    m->nfds = 0;
    do
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;

    /* Collect fds first so that they are closed on every error path. */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int tmp[RT_NFD_MAX + 1];
        if (k > RT_NFD_MAX + 1)
            k = RT_NFD_MAX + 1;
        memcpy(tmp, CMSG_DATA(c), k * sizeof(int));
        for (size_t i = 0; i < k; i++) {
            if (m->nfds < RT_NFD_MAX)
                m->fds[m->nfds++] = tmp[i];
            else
                close(tmp[i]);
        }
    }
    if (n == 0 && m->nfds == 0)
        return 0;
    if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
        goto bad;
    if ((size_t)n < sizeof(struct rt_msg_hdr))
        goto bad;

    struct rt_msg_hdr h;
    memcpy(&h, buf, sizeof h);
    if (h.magic != RT_MSG_MAGIC || h.nstr > RT_NSTR_MAX)
        goto bad;
    m->type = h.type;
    memcpy(m->a, h.a, sizeof m->a);
    m->nstr = h.nstr;
    size_t off = sizeof h;
    for (uint32_t i = 0; i < h.nstr; i++) {
        const char *s = buf + off;
        const char *z = memchr(s, 0, (size_t)n - off);
        if (!z || (size_t)(z - s) > RT_STR_MAX)
            goto bad;
        m->str[i] = s;
        off += (size_t)(z - s) + 1;
    }
    if (off != (size_t)n)
        goto bad;
    return 1;
bad:
    rt_msg_close_fds(m);
    return -EBADMSG;
}
