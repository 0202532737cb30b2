/*
 * plans.h — per-plan maximums (cpus, memory, timeout, concurrent sandboxes). The effective
 * limit of a request is the smaller of the plan's and the daemon configuration's. Pure.
 */
#pragma once

#include <stdint.h>

struct plan_limits {
    const char *name;
    uint32_t max_cpus_milli;
    uint64_t max_memory_bytes;
    uint64_t max_timeout_s;
    uint32_t max_concurrent;
};

/* The limits of a plan by name; unknown names get the most restrictive plan ("free"). */
const struct plan_limits *plan_lookup(const char *name);
