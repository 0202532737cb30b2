/*
 * templates-k8s.c — the Kubernetes placement keys of a template: `runtime_class`,
 * `node_selector` (a mapping of label keys to values) and `tolerations` (a list of
 * {key, operator, value, effect}), read from the templates file by templates.c and checked
 * against the API server's syntax at load time, so that a mistake stops the daemon with
 * file:line instead of failing every create later. Main thread, before any other starts;
 * the results are read-only afterwards. The local runtime ignores them.
 */
#include <errno.h>
#include <string.h>

#include "common/json.h"
#include "common/macro.h"
#include "controller/templates-k8s.h"
#include "k8s/podspec.h"

#define PLACEMENT_MAX_ENTRIES 32

#define FAIL(node, ...)                                                                           \
    do {                                                                                          \
        int _n = snprintf(err, errlen, "%s:%zu: ", src, (size_t)(node)->start_mark.line + 1);    \
        if (_n >= 0 && (size_t)_n < errlen)                                                       \
            snprintf(err + _n, errlen - (size_t)_n, __VA_ARGS__);                                 \
        return -EINVAL;                                                                           \
    } while (0)

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static int parse_node_selector(struct sbx_template *t, yaml_document_t *doc, yaml_node_t *v,
                               const char *src, char *err, size_t errlen)
{
    if (v->type != YAML_MAPPING_NODE)
        FAIL(v, "'node_selector' must be a mapping of label keys to values");
    size_t n = 0;
    for (yaml_node_pair_t *e = v->data.mapping.pairs.start; e < v->data.mapping.pairs.top; e++) {
        const char *k = scalar(yaml_document_get_node(doc, e->key));
        const char *val = scalar(yaml_document_get_node(doc, e->value));
        if (!k || !val)
            FAIL(v, "'node_selector' must be a mapping of label keys to values");
        if (!k8s_label_key_ok(k))
            FAIL(v, "node_selector: invalid label key '%s'", k);
        if (*val && !k8s_label_value_ok(val))
            FAIL(v, "node_selector: invalid label value '%s' (at most 63 of [A-Za-z0-9_.-])",
                 val);
        if (++n > PLACEMENT_MAX_ENTRIES)
            FAIL(v, "node_selector: more than %d entries", PLACEMENT_MAX_ENTRIES);
        t->node_selector = xrealloc(t->node_selector, (n + 1) * sizeof(char *));
        t->node_selector[n - 1] = xasprintf("%s=%s", k, val);
        t->node_selector[n] = NULL;
    }
    return 0;
}

static int parse_toleration(struct sbx_toleration *tol, yaml_document_t *doc, yaml_node_t *m,
                            const char *src, char *err, size_t errlen)
{
    if (m->type != YAML_MAPPING_NODE)
        FAIL(m, "each toleration must be a mapping (key, operator, value, effect)");
    const char *key = NULL, *op = "Equal", *value = NULL, *effect = NULL;
    for (yaml_node_pair_t *e = m->data.mapping.pairs.start; e < m->data.mapping.pairs.top; e++) {
        const char *k = scalar(yaml_document_get_node(doc, e->key));
        const char *val = scalar(yaml_document_get_node(doc, e->value));
        if (!k || !val)
            FAIL(m, "toleration fields must be strings");
        if (strcmp(k, "key") == 0)
            key = val;
        else if (strcmp(k, "operator") == 0)
            op = val;
        else if (strcmp(k, "value") == 0)
            value = val;
        else if (strcmp(k, "effect") == 0)
            effect = val;
        else
            FAIL(m, "unknown toleration field '%s'", k);
    }
    if (strcmp(op, "Equal") != 0 && strcmp(op, "Exists") != 0)
        FAIL(m, "toleration: operator must be Equal or Exists, not '%s'", op);
    if (key && !k8s_label_key_ok(key))
        FAIL(m, "toleration: invalid key '%s'", key);
    if (!key && strcmp(op, "Exists") != 0)
        FAIL(m, "toleration: a toleration without a key needs operator Exists");
    if (value && strcmp(op, "Exists") == 0)
        FAIL(m, "toleration: operator Exists takes no value");
    if (value && *value && !k8s_label_value_ok(value))
        FAIL(m, "toleration: invalid value '%s'", value);
    if (effect && strcmp(effect, "NoSchedule") != 0 && strcmp(effect, "PreferNoSchedule") != 0 &&
        strcmp(effect, "NoExecute") != 0)
        FAIL(m, "toleration: effect must be NoSchedule, PreferNoSchedule or NoExecute");
    *tol = (struct sbx_toleration){
        .key = key ? xstrdup(key) : NULL,
        .op = xstrdup(op),
        .value = value ? xstrdup(value) : NULL,
        .effect = effect ? xstrdup(effect) : NULL,
    };
    return 0;
}

static int parse_tolerations(struct sbx_template *t, yaml_document_t *doc, yaml_node_t *v,
                             const char *src, char *err, size_t errlen)
{
    if (v->type != YAML_SEQUENCE_NODE)
        FAIL(v, "'tolerations' must be a list");
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        if (t->n_tolerations == PLACEMENT_MAX_ENTRIES)
            FAIL(v, "tolerations: more than %d entries", PLACEMENT_MAX_ENTRIES);
        t->tolerations = xrealloc(t->tolerations, (t->n_tolerations + 1) * sizeof(*t->tolerations));
        int r = parse_toleration(&t->tolerations[t->n_tolerations], doc,
                                 yaml_document_get_node(doc, *it), src, err, errlen);
        if (r < 0)
            return r;
        t->n_tolerations++;
    }
    return 0;
}

int templates_k8s_parse_key(struct sbx_template *t, yaml_document_t *doc, const char *key,
                            yaml_node_t *v, const char *src, char *err, size_t errlen)
{
    if (strcmp(key, "node_selector") == 0)
        return parse_node_selector(t, doc, v, src, err, errlen) < 0 ? -EINVAL : 1;
    if (strcmp(key, "tolerations") == 0)
        return parse_tolerations(t, doc, v, src, err, errlen) < 0 ? -EINVAL : 1;
    if (strcmp(key, "runtime_class") == 0) {
        const char *s = scalar(v);
        if (!s || (*s && !k8s_dns_subdomain_ok(s)))
            FAIL(v, "invalid runtime_class '%s' (a DNS-1123 subdomain)", s ? s : "?");
        free(t->runtime_class);
        t->runtime_class = xstrdup(s);
        return 1;
    }
    if (strcmp(key, "image") == 0) {
        const char *s = scalar(v);
        if (!s || strlen(s) > 512 || strpbrk(s, " \t\r\n"))
            FAIL(v, "invalid image '%s' (at most 512 characters, no white space)", s ? s : "?");
        free(t->image);
        t->image = xstrdup(s);
        return 1;
    }
    return 0;
}

void templates_k8s_free(struct sbx_template *t)
{
    free(t->runtime_class);
    for (char **e = t->node_selector; e && *e; e++)
        free(*e);
    free(t->node_selector);
    for (size_t i = 0; i < t->n_tolerations; i++) {
        free((char *)t->tolerations[i].key);
        free((char *)t->tolerations[i].op);
        free((char *)t->tolerations[i].value);
        free((char *)t->tolerations[i].effect);
    }
    free(t->tolerations);
}

void templates_k8s_json(yajl_gen g, const struct sbx_template *t)
{
    sbx_jgen_kstr(g, "runtime_class", t->runtime_class && t->runtime_class[0] ? t->runtime_class
                                                                              : NULL);
    sbx_jgen_key(g, "node_selector");
    yajl_gen_map_open(g);
    for (char **e = t->node_selector; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        sbx_jgen_strn(g, *e, (size_t)(eq - *e));
        sbx_jgen_str(g, eq + 1);
    }
    yajl_gen_map_close(g);
    sbx_jgen_key(g, "tolerations");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < t->n_tolerations; i++) {
        const struct sbx_toleration *tol = &t->tolerations[i];
        yajl_gen_map_open(g);
        if (tol->key)
            sbx_jgen_kstr(g, "key", tol->key);
        sbx_jgen_kstr(g, "operator", tol->op);
        if (tol->value)
            sbx_jgen_kstr(g, "value", tol->value);
        if (tol->effect)
            sbx_jgen_kstr(g, "effect", tol->effect);
        yajl_gen_map_close(g);
    }
    yajl_gen_array_close(g);
}

void templates_placement(const struct sbx_template *t, struct sbx_placement *out)
{
    *out = (struct sbx_placement){
        .image = t->image,
        .runtime_class = t->runtime_class,
        .node_selector = (const char *const *)t->node_selector,
        .tolerations = t->tolerations,
        .n_tolerations = t->n_tolerations,
    };
}
