/*
 * caps.c — see caps.h. Order verified in reference §5: the bounding set must be dropped before
 * setresuid (afterwards PR_CAPBSET_DROP gives EPERM); setresuid to non-zero clears the permitted
 * and effective sets; capset(0) and the ambient clear make it explicit.
 */
#include "runtime/caps.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int rt_drop_privileges(uid_t uid, gid_t gid, const char **step)
{
    *step = "setgroups";
    if (setgroups(0, NULL) < 0)
        return -errno;
    *step = "capbset";
    for (int cap = 0; cap <= 63; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return -errno;
    *step = "setresgid";
    if (setresgid(gid, gid, gid) < 0)
        return -errno;
    *step = "setresuid";
    if (setresuid(uid, uid, uid) < 0)
        return -errno;
    *step = "ambient";
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -errno;
    *step = "capset";
    struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct d[2] = { { 0 } };
    if (syscall(SYS_capset, &h, d) < 0)
        return -errno;
    *step = "no_new_privs";
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    return 0;
}
