/*
 * warmpool.c — templates → the Kubernetes runtime's warm pools, and their metrics (see
 * warmpool.h). The pool mechanics (claim, filler) are in k8s/k8s-pool.c.
 */
#include "controller/warmpool.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "controller/app.h"
#include "controller/leader.h"
#include "controller/templates.h"
#include "controller/templates-k8s.h"
#include "k8s/k8s-runtime.h"
#include "runtime/runtime.h"

static bool is_k8s(const struct app *app)
{
    return app->rt && strcmp(app->rt->ops->name, "kubernetes") == 0;
}

int warmpool_start(struct app *app, char *err, size_t errlen)
{
    if (!is_k8s(app))
        return 0;
    const struct sbx_config *cfg = &app->cfg;
    struct k8s_pool_spec specs[K8S_POOL_MAX];
    static struct sbx_placement placements[K8S_POOL_MAX]; /* live as long as the pools */
    size_t n = 0;
    for (size_t i = 0; i < templates_count(); i++) {
        const struct sbx_template *t = templates_at(i);
        if (!t->warm_pool_size || !t->available)
            continue;
        if (n == K8S_POOL_MAX) {
            snprintf(err, errlen, "more than %d templates have a warm_pool_size", K8S_POOL_MAX);
            return -E2BIG;
        }
        /* the shape a create of this template gets when it asks for nothing else
         * (controller/api-sandboxes.c) */
        templates_placement(t, &placements[n]);
        specs[n] = (struct k8s_pool_spec){
            .template = t->name,
            .size = t->warm_pool_size,
            .cpus_milli = t->cpus_milli ? t->cpus_milli : cfg->limits.default_cpus,
            .memory_bytes = t->memory_bytes ? t->memory_bytes : cfg->limits.default_memory,
            .network = t->allow_network && cfg->runtime.allow_network,
            .placement = &placements[n],
        };
        n++;
        log_info("warm pool %s: %u pods", t->name, t->warm_pool_size);
    }
    return k8s_runtime_pool_start(app->rt, specs, n, cfg->k8s.warm_pool_max_age,
                                  leader_is_leader, err, errlen);
}

const char *warmpool_key(const char *requested, const struct sbx_template *tpl)
{
    if (tpl)
        return tpl->name;
    return requested ? NULL : "default";
}

int warmpool_metrics(struct app *app, struct sbx_buf *out)
{
    if (!is_k8s(app))
        return 0;
    struct k8s_pool_stat st[K8S_POOL_MAX];
    size_t n = MIN(k8s_runtime_pool_stats(app->rt, st, K8S_POOL_MAX), (size_t)K8S_POOL_MAX);
    if (n == 0)
        return 0;
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        { "sandboxd_warm_pool_size", "gauge", "Idle pods the template's warm pool keeps." },
        { "sandboxd_warm_pool_ready", "gauge", "Idle ready pods of the warm pool (claimable)." },
        { "sandboxd_warm_pool_starting", "gauge", "Idle pods of the warm pool not ready yet." },
        { "sandboxd_warm_pool_claims_total", "counter",
          "Creates this replica served from the warm pool." },
        { "sandboxd_warm_pool_misses_total", "counter",
          "Creates of the pool's shape this replica had to make cold (no ready pod)." },
    };
    int r = 0;
    for (size_t s = 0; s < ARRAY_SIZE(series); s++) {
        r |= sbx_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", series[s].name, series[s].help,
                            series[s].name, series[s].type);
        for (size_t i = 0; i < n; i++) {
            unsigned long long v = s == 0 ? st[i].size : s == 1 ? st[i].ready
                                   : s == 2 ? st[i].starting : s == 3 ? st[i].claims
                                                                       : st[i].misses;
            /* template names are [A-Za-z0-9._-]: nothing to escape in the label */
            r |= sbx_buf_printf(out, "%s{template=\"%s\"} %llu\n", series[s].name,
                                st[i].template, v);
        }
    }
    return r < 0 ? -E2BIG : 0;
}
