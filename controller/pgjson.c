/* pgjson.c — libpq rows to JSON (see pgjson.h). */
#include "controller/pgjson.h"

#include <stdlib.h>
#include <string.h>

#include "common/json.h"

/* Emits a PostgreSQL one-dimensional text[] literal as a JSON array of strings. */
static void emit_text_array(yajl_gen g, const char *s)
{
    yajl_gen_array_open(g);
    if (*s == '{')
        s++;
    while (*s && *s != '}') {
        char item[1024];
        size_t n = 0;
        if (*s == '"') {
            s++;
            while (*s && *s != '"') {
                if (*s == '\\' && s[1])
                    s++;
                if (n < sizeof(item) - 1)
                    item[n++] = *s;
                s++;
            }
            if (*s == '"')
                s++;
        } else {
            while (*s && *s != ',' && *s != '}') {
                if (n < sizeof(item) - 1)
                    item[n++] = *s;
                s++;
            }
        }
        item[n] = '\0';
        sbx_jgen_str(g, item);
        if (*s == ',')
            s++;
    }
    yajl_gen_array_close(g);
}

void pg_row_members(yajl_gen g, const PGresult *res, int row, const char *types)
{
    int cols = PQnfields(res);
    for (int c = 0; c < cols && types[c]; c++) {
        char t = types[c];
        if (t == '-')
            continue;
        sbx_jgen_key(g, PQfname(res, c));
        if (PQgetisnull(res, row, c)) {
            yajl_gen_null(g);
            continue;
        }
        const char *v = PQgetvalue(res, row, c);
        switch (t) {
        case 'i':
            yajl_gen_integer(g, strtoll(v, NULL, 10));
            break;
        case 'd':
            yajl_gen_double(g, strtod(v, NULL));
            break;
        case 'b':
            yajl_gen_bool(g, v[0] == 't');
            break;
        case 'a':
            emit_text_array(g, v);
            break;
        case 'j': {
            yajl_val tree = yajl_tree_parse(v, NULL, 0);
            sbx_jgen_value(g, tree);
            yajl_tree_free(tree);
            break;
        }
        default:
            sbx_jgen_str(g, v);
        }
    }
}

void pg_row_to_json(yajl_gen g, const PGresult *res, int row, const char *types)
{
    yajl_gen_map_open(g);
    pg_row_members(g, res, row, types);
    yajl_gen_map_close(g);
}
