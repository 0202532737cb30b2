/*
 * events.c — the webhook outbox writer (see events.h). Worker threads and background loops,
 * always inside the caller's org transaction.
 */
#include "controller/events.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/macro.h"
#include "controller/secrets.h"
#include "storage/db.h"

#define MAX_DATA_BYTES (64 * 1024)

const char *const events_names[] = {
    "sandbox.created",     "sandbox.ready",       "sandbox.stopped",    "sandbox.error",
    "sandbox.timeout",     "command.started",     "command.completed",  "command.failed",
    "file.written",        "checkpoint.created",  "checkpoint.restored", "checkpoint.cloned",
    "checkpoint.deleted",  "artifact.uploaded",   "artifact.deleted",   "resource.warning",
    "resource.critical",   "webhook.test",        NULL,
};

static char instance[128];

void events_set_instance(const char *name)
{
    snprintf(instance, sizeof(instance), "%s", name ? name : "");
}

bool events_name_valid(const char *name)
{
    if (!name)
        return false;
    for (size_t i = 0; events_names[i]; i++)
        if (strcmp(events_names[i], name) == 0)
            return true;
    return false;
}

/* data_json with the sandbox's injected secret values replaced, in raw and JSON-escaped form
 * (NULL when nothing was injected or nothing matched). */
static char *scrub(struct db *db, const char *org_id, const char *sandbox_id,
                   const char *data_json)
{
    struct secret_set *set = NULL;
    if (secrets_load_for_sandbox(db, org_id, sandbox_id, &set) < 0 || !set)
        return NULL;
    struct secret_set both = { .v = xcalloc(set->n * 2, sizeof(struct secret_kv)) };
    for (size_t i = 0; i < set->n; i++) {
        both.v[both.n++] = set->v[i];
        _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
        sbx_jgen_strn(g, set->v[i].value, set->v[i].len);
        size_t n;
        char *q = sbx_jgen_take(g, &n);
        if (n >= 2 && (n - 2 != set->v[i].len || memcmp(q + 1, set->v[i].value, n - 2) != 0)) {
            memmove(q, q + 1, n - 2);
            q[n - 2] = '\0';
            both.v[both.n++] = (struct secret_kv){ set->v[i].name, q, n - 2 };
        } else {
            free(q);
        }
    }
    for (size_t i = 0; i < both.n; i++)
        both.maxlen = MAX(both.maxlen, both.v[i].len);
    char *out = secret_set_scrub(&both, data_json, strlen(data_json), NULL);
    /* the escaped copies are ours; the raw values belong to set */
    for (size_t i = 0; i < both.n; i++) {
        bool owned = true;
        for (size_t k = 0; k < set->n; k++)
            if (both.v[i].value == set->v[k].value)
                owned = false;
        if (owned) {
            explicit_bzero(both.v[i].value, both.v[i].len);
            free(both.v[i].value);
        }
    }
    free(both.v);
    secret_set_free(set);
    if (strcmp(out, data_json) == 0) {
        free(out);
        return NULL;
    }
    return out;
}

int events_emit(struct db *db, const char *org_id, const char *sandbox_id, const char *event,
                const char *data_json)
{
    if (!db || !org_id || !events_name_valid(event))
        return -EINVAL;
    if (!data_json)
        data_json = "{}";
    size_t n = strlen(data_json);
    if (n > MAX_DATA_BYTES)
        return -E2BIG;
    /* The payload must be an object: checked here so a bad caller cannot abort the
     * transaction it shares with the change being announced. */
    _cleanup_json_ yajl_val v = NULL;
    if (sbx_json_parse(data_json, n, MAX_DATA_BYTES, 32, &v, NULL, 0) < 0 || !YAJL_IS_OBJECT(v))
        return -EINVAL;
    /* No endpoint, no row: the outbox only holds what someone will receive. Endpoints created
     * later do not get earlier events (the dispatcher also compares created_at). Most orgs
     * have none, so that is asked first: one round trip, and no secrets are loaded. */
    _cleanup_pgres_ PGresult *any = NULL;
    int r = db_query(db, "SELECT 1 FROM webhooks WHERE enabled LIMIT 1", 0, NULL, &any);
    if (r <= 0)
        return r;
    _cleanup_free_ char *scrubbed = sandbox_id ? scrub(db, org_id, sandbox_id, data_json) : NULL;
    r = db_query(db,
                     "INSERT INTO webhook_events (org_id, sandbox_id, event, payload, instance) "
                     "SELECT $1, $2, $3, $4::jsonb, $5 "
                     " WHERE EXISTS (SELECT 1 FROM webhooks WHERE enabled)",
                     5,
                     (const char *[]){ org_id, sandbox_id, event,
                                       scrubbed ? scrubbed : data_json, instance },
                     NULL);
    return r < 0 ? r : 0;
}

char *events_data_reason(const char *reason)
{
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    if (reason)
        sbx_jgen_kstr(g, "reason", reason);
    yajl_gen_map_close(g);
    return sbx_jgen_take(g, NULL);
}

char *events_command_data(const char *command, bool stream, int exit_code, const char *reason,
                          unsigned long long duration_ms)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s", command ? command : "");
    /* cut on a UTF-8 boundary */
    size_t n = strlen(cmd);
    while (n > 0 && ((unsigned char)cmd[n - 1] & 0xc0) == 0x80)
        n--;
    if (n > 0 && ((unsigned char)cmd[n - 1] & 0x80) && strlen(cmd) == sizeof(cmd) - 1)
        cmd[n - 1] = '\0';
    _cleanup_jgen_ yajl_gen g = sbx_jgen_new();
    yajl_gen_map_open(g);
    sbx_jgen_kstr(g, "command", cmd);
    sbx_jgen_kbool(g, "stream", stream);
    if (exit_code >= 0 || reason || duration_ms) {
        sbx_jgen_kint(g, "exit_code", exit_code);
        sbx_jgen_kstr(g, "reason", reason);
        sbx_jgen_kint(g, "duration_ms", (long long)duration_ms);
    }
    yajl_gen_map_close(g);
    return sbx_jgen_take(g, NULL);
}
