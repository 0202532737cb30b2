/*
 * templates.c — the template registry (see templates.h). Main thread at start-up, then
 * read-only.
 */
#include "controller/templates.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "common/json.h"
#include "common/log.h"
#include "common/macro.h"
#include "controller/config.h"
#include "controller/templates-k8s.h"

#define MAX_TEMPLATES 128

static struct sbx_template *tpls;
static size_t n_tpls;
static char names_text[4096];
static bool from_file;
static char default_image[600]; /* what a template without `image` runs: k8s.image, "" locally */

static const char *builtin_yaml =
    "templates:\n"
    "  - name: base\n"
    "    description: Shell only (POSIX sh and the host's core utilities).\n"
    "    runtime_notes: Local runtime - /bin/sh and /usr/bin tools of the host, read-only.\n"
    "    requires: /bin/sh\n"
    "  - name: default\n"
    "    description: Alias of base.\n"
    "    runtime_notes: Local runtime - /bin/sh and /usr/bin tools of the host, read-only.\n"
    "    requires: /bin/sh\n"
    "  - name: python-basic\n"
    "    description: Python 3 with the standard library.\n"
    "    runtime_notes: Local runtime - the host's /usr/bin/python3 and its installed packages, "
    "read-only.\n"
    "    requires: /usr/bin/python3\n"
    "    env:\n"
    "      PYTHONUNBUFFERED: \"1\"\n"
    "      PYTHONDONTWRITEBYTECODE: \"1\"\n"
    "  - name: node-basic\n"
    "    description: Node.js with npm's standard tooling.\n"
    "    runtime_notes: Local runtime - the host's /usr/bin/node, read-only.\n"
    "    requires: /usr/bin/node\n"
    "    env:\n"
    "      NODE_ENV: development\n";

static void tpl_free(struct sbx_template *t)
{
    free(t->name);
    free(t->description);
    free(t->image);
    free(t->runtime_notes);
    free(t->requires);
    templates_k8s_free(t);
    for (char **e = t->env; e && *e; e++)
        free(*e);
    free(t->env);
}

void templates_free(void)
{
    for (size_t i = 0; i < n_tpls; i++)
        tpl_free(&tpls[i]);
    free(tpls);
    tpls = NULL;
    n_tpls = 0;
}

static const char *scalar(yaml_document_t *doc, yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return false;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
              ((*c == '-' || *c == '_' || *c == '.') && c != s)))
            return false;
    return true;
}

#define FAIL(node, ...)                                                                           \
    do {                                                                                          \
        int _n = snprintf(err, errlen, "%s:%zu: ", src, (size_t)(node)->start_mark.line + 1);    \
        if (_n >= 0 && (size_t)_n < errlen)                                                       \
            snprintf(err + _n, errlen - (size_t)_n, __VA_ARGS__);                                 \
        r = -EINVAL;                                                                              \
        goto out;                                                                                 \
    } while (0)

static int parse(const char *src, const unsigned char *data, size_t len, char *err,
                 size_t errlen)
{
    yaml_parser_t p;
    yaml_document_t doc;
    int r = 0;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_string(&p, data, len);
    if (!yaml_parser_load(&p, &doc)) {
        snprintf(err, errlen, "%s:%zu: %s", src, (size_t)p.problem_mark.line + 1,
                 p.problem ? p.problem : "invalid YAML");
        yaml_parser_delete(&p);
        return -EINVAL;
    }
    struct sbx_template *list = NULL;
    size_t n = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *seq = NULL;
    if (!root) {
        snprintf(err, errlen, "%s: empty document", src);
        r = -EINVAL;
        goto out;
    }
    if (root->type != YAML_MAPPING_NODE)
        FAIL(root, "expected a mapping with the key 'templates'");
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
        const char *ks = scalar(&doc, k);
        if (!ks || strcmp(ks, "templates") != 0)
            FAIL(k, "unknown key '%s'", ks ? ks : "?");
        seq = yaml_document_get_node(&doc, pr->value);
    }
    if (!seq || seq->type != YAML_SEQUENCE_NODE)
        FAIL(root, "'templates' must be a list");
    for (yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
         it++) {
        yaml_node_t *m = yaml_document_get_node(&doc, *it);
        if (!m || m->type != YAML_MAPPING_NODE)
            FAIL(seq, "each template must be a mapping");
        if (n >= MAX_TEMPLATES)
            FAIL(m, "more than %d templates", MAX_TEMPLATES);
        list = xrealloc(list, (n + 1) * sizeof(*list));
        struct sbx_template *t = &list[n++];
        memset(t, 0, sizeof(*t));
        t->env = xcalloc(1, sizeof(char *));
        size_t n_env = 0;
        for (yaml_node_pair_t *pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top;
             pr++) {
            yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
            yaml_node_t *v = yaml_document_get_node(&doc, pr->value);
            const char *ks = scalar(&doc, k), *vs = scalar(&doc, v);
            if (!ks)
                FAIL(m, "keys must be strings");
            if (strcmp(ks, "env") == 0) {
                if (!v || v->type != YAML_MAPPING_NODE)
                    FAIL(v ? v : k, "'env' must be a mapping of strings");
                for (yaml_node_pair_t *e = v->data.mapping.pairs.start;
                     e < v->data.mapping.pairs.top; e++) {
                    const char *ek = scalar(&doc, yaml_document_get_node(&doc, e->key));
                    const char *ev = scalar(&doc, yaml_document_get_node(&doc, e->value));
                    if (!ek || !ev || !*ek || strchr(ek, '='))
                        FAIL(v, "'env' must be a mapping of names to strings");
                    t->env = xrealloc(t->env, (n_env + 2) * sizeof(char *));
                    t->env[n_env++] = xasprintf("%s=%s", ek, ev);
                    t->env[n_env] = NULL;
                }
                continue;
            }
            if (!v)
                FAIL(k, "'%s' has no value", ks);
            int pk = templates_k8s_parse_key(t, &doc, ks, v, src, err, errlen);
            if (pk < 0) {
                r = pk;
                goto out;
            }
            if (pk > 0)
                continue;
            if (!vs)
                FAIL(v, "'%s' must be a scalar", ks);
            if (strcmp(ks, "name") == 0) {
                if (!name_ok(vs))
                    FAIL(v, "invalid template name '%s'", vs);
                t->name = xstrdup(vs);
            } else if (strcmp(ks, "description") == 0) {
                t->description = xstrdup(vs);
            } else if (strcmp(ks, "runtime_notes") == 0) {
                t->runtime_notes = xstrdup(vs);
            } else if (strcmp(ks, "requires") == 0) {
                if (*vs && vs[0] != '/')
                    FAIL(v, "'requires' must be an absolute path");
                t->requires = xstrdup(vs);
            } else if (strcmp(ks, "cpus") == 0) {
                if (sbx_config_parse_cpus(vs, &t->cpus_milli) < 0 || !t->cpus_milli)
                    FAIL(v, "invalid cpus '%s'", vs);
            } else if (strcmp(ks, "memory") == 0) {
                if (sbx_config_parse_size(vs, &t->memory_bytes) < 0 ||
                    t->memory_bytes < 16 * 1024 * 1024)
                    FAIL(v, "invalid memory '%s' (at least 16Mi)", vs);
            } else if (strcmp(ks, "timeout") == 0) {
                if (sbx_config_parse_duration(vs, &t->timeout_s) < 0 || !t->timeout_s)
                    FAIL(v, "invalid timeout '%s'", vs);
            } else if (strcmp(ks, "allow_network") == 0) {
                if (sbx_config_parse_bool(vs, &t->allow_network) < 0)
                    FAIL(v, "invalid allow_network '%s'", vs);
            } else if (strcmp(ks, "warm_pool_size") == 0) {
                char *end;
                unsigned long w = strtoul(vs, &end, 10);
                if (!*vs || *end || w > 1000)
                    FAIL(v, "invalid warm_pool_size '%s' (0..1000)", vs);
                t->warm_pool_size = (uint32_t)w;
            } else {
                FAIL(k, "unknown template key '%s'", ks);
            }
        }
        if (!t->name)
            FAIL(m, "a template needs a name");
        for (size_t i = 0; i + 1 < n; i++)
            if (strcmp(list[i].name, t->name) == 0)
                FAIL(m, "duplicate template '%s'", t->name);
        if (!t->description)
            t->description = xstrdup("");
        if (!t->image)
            t->image = xstrdup("");
        if (!t->runtime_notes)
            t->runtime_notes = xstrdup("");
        if (!t->requires)
            t->requires = xstrdup("");
    }
    if (n == 0) {
        snprintf(err, errlen, "%s: no templates", src);
        r = -EINVAL;
        goto out;
    }
    templates_free();
    tpls = TAKE_PTR(list);
    n_tpls = n;
    n = 0;
out:
    for (size_t i = 0; i < n; i++)
        tpl_free(&list[i]);
    free(list);
    yaml_document_delete(&doc);
    yaml_parser_delete(&p);
    return r;
}

int templates_init(const struct sbx_config *cfg, char *err, size_t errlen)
{
    int r;
    const char *file = cfg->templates.file;
    if (file && *file) {
        FILE *f = fopen(file, "re");
        if (!f) {
            snprintf(err, errlen, "templates.file: cannot open %s", file);
            return -errno;
        }
        char *buf = xmalloc(SBX_CONFIG_MAX_FILE_BYTES + 1);
        size_t n = fread(buf, 1, SBX_CONFIG_MAX_FILE_BYTES + 1, f);
        fclose(f);
        if (n > SBX_CONFIG_MAX_FILE_BYTES) {
            free(buf);
            snprintf(err, errlen, "templates.file: %s is too large", file);
            return -E2BIG;
        }
        r = parse(file, (unsigned char *)buf, n, err, errlen);
        free(buf);
        from_file = true;
    } else {
        r = parse("built-in templates", (const unsigned char *)builtin_yaml,
                  strlen(builtin_yaml), err, errlen);
    }
    if (r < 0)
        return r;
    /* `requires` names a file of the host's /usr, which only local sandboxes see; pods run
     * the template's image (default k8s.image), whose contents the controller cannot check (its own image has no
     * interpreters), so on the k8s runtime every template is available. */
    bool local = strcmp(cfg->runtime.kind, "k8s") != 0;
    snprintf(default_image, sizeof default_image, "%s", local ? "" : cfg->k8s.image);
    size_t off = 0;
    names_text[0] = '\0';
    for (size_t i = 0; i < n_tpls; i++) {
        struct sbx_template *t = &tpls[i];
        t->available = !local || !t->requires[0] || access(t->requires, X_OK) == 0;
        if (!t->available) {
            snprintf(t->unavailable_reason, sizeof(t->unavailable_reason),
                     "%s is not installed on this host", t->requires);
            log_warn("template %s is unavailable: %s", t->name, t->unavailable_reason);
        }
        int w = snprintf(names_text + off, sizeof(names_text) - off, "%s%s", i ? ", " : "",
                         t->name);
        if (w > 0 && (size_t)w < sizeof(names_text) - off)
            off += (size_t)w;
    }
    return 0;
}

const struct sbx_template *templates_find(const char *name)
{
    for (size_t i = 0; name && i < n_tpls; i++)
        if (strcmp(tpls[i].name, name) == 0)
            return &tpls[i];
    return NULL;
}

size_t templates_count(void)
{
    return n_tpls;
}

const struct sbx_template *templates_at(size_t i)
{
    return i < n_tpls ? &tpls[i] : NULL;
}

const char *templates_names(void)
{
    return names_text;
}

void templates_json(yajl_gen g, const struct sbx_template *t)
{
    char b[32];
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "name", t->name);
    sbx_jgen_kstr(g, "description", t->description);
    sbx_jgen_kstr(g, "image", t->image[0] ? t->image : default_image);
    sbx_jgen_kstr(g, "runtime_notes", t->runtime_notes);
    sbx_jgen_kstr(g, "requires", t->requires[0] ? t->requires : NULL);
    if (t->cpus_milli) {
        sbx_config_format_cpus(t->cpus_milli, b, sizeof(b));
        sbx_jgen_kstr(g, "cpus", b);
    } else {
        sbx_jgen_knull(g, "cpus");
    }
    if (t->memory_bytes) {
        sbx_config_format_size(t->memory_bytes, b, sizeof(b));
        sbx_jgen_kstr(g, "memory", b);
    } else {
        sbx_jgen_knull(g, "memory");
    }
    if (t->timeout_s)
        sbx_jgen_kint(g, "timeout_seconds", (long long)t->timeout_s);
    else
        sbx_jgen_knull(g, "timeout_seconds");
    sbx_jgen_key(g, "env");
    yajl_gen_map_open(g);
    for (char **e = t->env; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        sbx_jgen_strn(g, *e, (size_t)(eq - *e));
        sbx_jgen_str(g, eq + 1);
    }
    yajl_gen_map_close(g);
    sbx_jgen_kbool(g, "allow_network", t->allow_network);
    sbx_jgen_kint(g, "warm_pool_size", t->warm_pool_size);
    templates_k8s_json(g, t);
    sbx_jgen_kbool(g, "available", t->available);
    sbx_jgen_kstr(g, "unavailable_reason", t->available ? NULL : t->unavailable_reason);
    sbx_jgen_kstr(g, "source", from_file ? "config" : "builtin");
    yajl_gen_map_close(g);
}

yajl_val templates_merge_env(const struct sbx_template *t, yajl_val request_env)
{
    if (!t->env || !t->env[0])
        return NULL;
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    for (char **e = t->env; *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq)
            continue;
        char name[256];
        snprintf(name, sizeof(name), "%.*s", (int)(eq - *e), *e);
        if (request_env && sbx_json_get(request_env, name))
            continue; /* the request wins */
        sbx_jgen_kstr(g, name, eq + 1);
    }
    for (size_t i = 0; request_env && YAJL_IS_OBJECT(request_env) && i < request_env->u.object.len;
         i++)
        sbx_jgen_kstr(g, request_env->u.object.keys[i],
                      YAJL_IS_STRING(request_env->u.object.values[i])
                          ? request_env->u.object.values[i]->u.string
                          : "");
    yajl_gen_map_close(g);
    size_t n;
    _cleanup_free_ char *text = sbx_jgen_take(g, &n);
    return yajl_tree_parse(text, NULL, 0);
}
