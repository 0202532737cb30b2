/*
 * events.h — the webhook outbox: lifecycle events written in the same transaction as the change
 * they announce (transactional outbox). The dispatcher (controller/webhooks.c) fans every row
 * out into one delivery per matching endpoint and delivers it; see docs/internals/WEBHOOKS.md.
 *
 * Threads: any thread with its own struct db and an open org transaction (db_begin(db, org)).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct db;

/* Every event name an endpoint may subscribe to (besides "*"), NULL-terminated. */
extern const char *const events_names[];

/* The daemon instance recorded with every event (its dispatcher delivers it). Called once by
 * main() before any thread starts. */
void events_set_instance(const char *name);

/* True if name is one of events_names (not "*"). */
bool events_name_valid(const char *name);

/* Inserts one outbox row inside the caller's open transaction, so the event commits (or rolls
 * back) with the change it announces. org_id: the transaction's org; sandbox_id may be NULL;
 * data_json: JSON object text (NULL → {}). Secret values injected into the sandbox are
 * replaced by [REDACTED:name] in the stored payload. Returns 0, -EINVAL (bad name or data
 * that is not an object), or the db_query error. Never logs the payload. */
int events_emit(struct db *db, const char *org_id, const char *sandbox_id, const char *event,
                const char *data_json);

/* {"reason": reason} (reason may be NULL → {}), malloc'd. */
char *events_data_reason(const char *reason);

/* {"command", "stream", "exit_code"?, "reason"?, "duration_ms"?} for command.* events
 * (exit_code < 0 and duration 0 with no reason: command.started). Command text capped at 1 KiB. */
char *events_command_data(const char *command, bool stream, int exit_code, const char *reason,
                          unsigned long long duration_ms);
