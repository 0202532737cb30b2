/*
 * warmpool.h — the Kubernetes runtime's warm pools as configured by the templates
 * (`warm_pool_size`, controller/templates.h) and their /metrics figures.
 * docs/internals/K8S-RUNTIME.md "Warm pool".
 */
#pragma once

#include <stddef.h>

#include "common/buf.h"

struct app;
struct sbx_template;

/* With runtime.kind k8s and a running runtime: hands every available template with a
 * warm_pool_size to the runtime (shape = the template's cpus and memory, else the configured
 * defaults; network as a create of the template gets it) and starts the filler, which acts
 * only on the leader. Also with no pool at all (it then deletes leftover pool pods). After
 * templates_init() and leader_init(). Returns 0 or -errno with a message in err. */
int warmpool_start(struct app *app, char *err, size_t errlen);

/* The pool a create may claim from: the template's name, "default" for a create without a
 * template (its shape then decides), NULL for an organization's own template. */
const char *warmpool_key(const char *requested, const struct sbx_template *tpl);

/* Appends the sandboxd_warm_pool_* series to a /metrics body (nothing without pools). */
int warmpool_metrics(struct app *app, struct sbx_buf *out);
