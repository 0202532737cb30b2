/*
 * templates.h — the sandbox template registry: built-in defaults (base, python-basic,
 * node-basic, and "default" as an alias of base) or the YAML file named by templates.file.
 * Loaded once on the main thread before any thread starts; read-only afterwards (any thread).
 *
 * On the local runtime every template runs on the host's /usr mounted read-only, so a
 * template names the interpreter it needs (`requires`); one whose interpreter is missing is
 * listed as unavailable and refused on create. On the k8s runtime a template's pods run its
 * `image` (default k8s.image: the Containerfile's `sandbox` stage has python3 and node) with
 * its runtime_class, node_selector and tolerations (templates-k8s.c); the controller cannot
 * inspect the image, so `requires` is not checked there.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

#include "runtime/runtime.h"

struct sbx_config;

struct sbx_template {
    char *name;
    char *description;
    char *image;           /* k8s: the pods' image ("" = k8s.image) */
    char *runtime_notes;   /* what it provides on the local runtime */
    char *requires;        /* absolute path of the interpreter it needs ("" = none) */
    uint32_t cpus_milli;   /* 0 = the configured default */
    uint64_t memory_bytes; /* 0 = the configured default */
    uint64_t timeout_s;    /* 0 = the configured default */
    char **env;            /* KEY=VAL, NULL-terminated (never NULL) */
    bool allow_network;
    uint32_t warm_pool_size;
    char *runtime_class;   /* k8s: runtimeClassName ("" = k8s.runtime_class); templates-k8s.c */
    char **node_selector;  /* k8s: "key=value", NULL-terminated or NULL */
    struct sbx_toleration *tolerations; /* k8s: owned strings */
    size_t n_tolerations;
    bool available;
    char unavailable_reason[128];
};

/* Loads cfg->templates.file (or the built-ins) and checks availability. Returns 0 or -errno
 * with file:line and reason in err. */
int templates_init(const struct sbx_config *cfg, char *err, size_t errlen);
void templates_free(void);

const struct sbx_template *templates_find(const char *name);
size_t templates_count(void);
const struct sbx_template *templates_at(size_t i);
/* "base, node-basic, python-basic" (static buffer filled by templates_init). */
const char *templates_names(void);
/* The template's env overlaid with the request's env object (may be NULL) as a new tree
 * (free with yajl_tree_free); NULL when the template has no env (use the request's). */
yajl_val templates_merge_env(const struct sbx_template *t, yajl_val request_env);
/* The Template JSON object. */
void templates_json(yajl_gen g, const struct sbx_template *t);

/* Org-private templates promoted from checkpoints (rows of the `templates` table with
 * checkpoint_id; controller/api-templates.c). Names: 1-64 of [a-z0-9._-], first a-z0-9. */
#define TEMPLATE_NAME_MAX 64
bool templates_name_valid(const char *name);
struct db;
/* In the open org transaction: the checkpoint behind org template `name`. 0, -ENOENT or
 * -errno from the database. */
int templates_org_checkpoint(struct db *db, const char *name, char ret_ckpt_id[37]);
