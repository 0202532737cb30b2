/*
 * fileops.h — file operations executed INSIDE a sandbox, in a child the init forks per request
 * (uid 1000, the sandbox's namespaces, seccomp). The child resolves the path with
 * openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS|RESOLVE_NO_XDEV) from a /workspace dirfd, so
 * `..` and symlinks that lead outside /workspace fail with EXDEV/ELOOP, and answers with one
 * RT_M_FILE message carrying an opened fd: the daemon streams the content itself (no size limit
 * in the protocol, no copy through the init). Part of the sandboxd-init binary only.
 */
#pragma once

#include "runtime/proto.h"

/* true if rel is a normalised relative path: no leading '/', no "", "." or ".." components,
 * <= 4096 bytes. "" (the workspace itself) is valid. */
int rt_relpath_ok(const char *rel);
/* Runs in the forked child; conn is the request's connection. Never returns. */
_Noreturn void rt_fileop_child(int conn, const struct rt_msg *m);
