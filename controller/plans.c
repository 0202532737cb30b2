/* plans.c — the plan table (see plans.h). */
#include "controller/plans.h"

#include <string.h>

#define GiB (1024ull * 1024 * 1024)

static const struct plan_limits plans[] = {
    { "free", 2000, 4 * GiB, 3600, 10 },
    { "pro", 4000, 8 * GiB, 24 * 3600, 50 },
    { "team", 8000, 16 * GiB, 24 * 3600, 200 },
    { "enterprise", 16000, 64 * GiB, 7 * 24 * 3600, 1000 },
};

const struct plan_limits *plan_lookup(const char *name)
{
    for (size_t i = 0; i < sizeof(plans) / sizeof(plans[0]); i++)
        if (name && strcmp(plans[i].name, name) == 0)
            return &plans[i];
    return &plans[0];
}
