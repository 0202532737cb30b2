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
    _cleanup_free_ char *scrubbed = NULL;
    /* No endpoint, no row: the outbox only holds what someone will receive. Endpoints created
     * later do not get earlier events (the dispatcher also compares created_at). */
    int r = db_query(db,
                     "INSERT INTO webhook_events (org_id, sandbox_id, event, payload, instance) "
                     "SELECT $1, $2, $3, $4::jsonb, $5 "
                     " WHERE EXISTS (SELECT 1 FROM webhooks WHERE enabled)",
                     5,
                     (const char *[]){ org_id, sandbox_id, event,
                                       scrubbed ? scrubbed : data_json, instance },
                     NULL);
    return r < 0 ? r : 0;
}
