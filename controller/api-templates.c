/*
 * api-templates.c — GET /api/v1/templates → {templates: [...]}, GET /api/v1/templates/:name.
 * The registry is controller/templates.c (built-in or templates.file). Worker threads.
 */
#include <string.h>

#include "common/json.h"
#include "controller/api.h"
#include "controller/templates.h"

API_HANDLER(api_templates_list)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_key(g, "templates");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < templates_count(); i++)
        templates_json(g, templates_at(i));
    yajl_gen_array_close(g);
    yajl_gen_map_close(g);
    http_json(resp, 200, g);
}

API_HANDLER(api_templates_get)
{
    const struct sbx_template *t = templates_find(req->params[0]);
    if (!t) {
        http_error(resp, 404, "not_found", "no such template (valid: %s)", templates_names());
        return;
    }
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    templates_json(g, t);
    http_json(resp, 200, g);
}
