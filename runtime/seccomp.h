/*
 * seccomp.h — the sandbox syscall filter. Built once with libseccomp in the spawner at start
 * (rt_seccomp_build) and exported as raw BPF; the contain child installs it with
 * prctl(PR_SET_SECCOMP) right before exec'ing the init (no allocation, 2x faster than
 * seccomp_load). Default ALLOW; deny list from docs/internals/RUNTIME.md §seccomp.
 */
#pragma once

#include <linux/filter.h>
#include <stddef.h>

struct rt_seccomp {
    struct sock_filter *insns; /* malloc'ed */
    unsigned short len;
};

int rt_seccomp_build(struct rt_seccomp *ret, char *err, size_t errlen);
/* Requires no_new_privs. Allocation-free. */
int rt_seccomp_install(const struct rt_seccomp *f);
void rt_seccomp_free(struct rt_seccomp *f);
