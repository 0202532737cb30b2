/*
 * caps.h — the privilege drop, run by the contain child (as namespace root) just before the
 * seccomp filter and the exec of the init. Allocation-free.
 */
#pragma once

#include <sys/types.h>

/* setgroups(0) → drop the bounding set → setresgid/setresuid → clear ambient → capset(0) →
 * PR_SET_NO_NEW_PRIVS. On failure returns -errno and sets *step to a static name. */
int rt_drop_privileges(uid_t uid, gid_t gid, const char **step);
