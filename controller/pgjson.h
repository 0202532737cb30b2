/*
 * pgjson.h — turn libpq result rows into JSON objects, and SQL snippets shared by handlers.
 *
 * Column names become JSON keys (use SQL aliases). `types` has one letter per column:
 *   s string (NULL → null)     i integer      d double      b boolean
 *   j JSON text (jsonb column) a text[] (→ array of strings)  - skip the column
 * Worker threads; pure.
 */
#pragma once

#include <libpq-fe.h>
#include <yajl/yajl_gen.h>

/* SQL expression formatting a timestamptz as RFC 3339 UTC with microseconds. */
#define SQL_TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

void pg_row_to_json(yajl_gen g, const PGresult *res, int row, const char *types);
/* Emits the members of the row into an already open map (no map open/close). */
void pg_row_members(yajl_gen g, const PGresult *res, int row, const char *types);
