/*
 * templates-k8s.h — a template's Kubernetes placement (image, runtime_class, node_selector,
 * tolerations): parsing for templates.c, JSON for the Template object, and the placement a
 * create hands to the runtime. See templates-k8s.c.
 */
#pragma once

#include <yaml.h>
#include <yajl/yajl_gen.h>

#include "controller/templates.h"
#include "runtime/runtime.h"

/* One key of a template mapping: 1 handled (stored in t), 0 not a placement key, -EINVAL
 * with "src:line: reason" in err. */
int templates_k8s_parse_key(struct sbx_template *t, yaml_document_t *doc, const char *key,
                            yaml_node_t *v, const char *src, char *err, size_t errlen);
/* Frees what templates_k8s_parse_key stored (not t itself). */
void templates_k8s_free(struct sbx_template *t);
/* The keys runtime_class, node_selector, tolerations of the Template object (open map). */
void templates_k8s_json(yajl_gen g, const struct sbx_template *t);
/* The placement of t's sandboxes; borrows t's strings (templates live as long as the daemon). */
void templates_placement(const struct sbx_template *t, struct sbx_placement *out);
