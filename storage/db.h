/*
 * db.h — the libpq layer: one blocking Postgres connection per thread, transactions scoped to an
 * organization (row-level security), error mapping to -errno, and schema migrations.
 *
 * Threads: a `struct db` belongs to one thread at a time and is never shared (each worker and
 * each background loop opens its own). All calls block. Nothing here logs above debug level.
 *
 * Tenancy: the daemon connects as the role sandboxd_app, which owns no table and cannot bypass
 * RLS. Every tenant table's policy compares org_id with the transaction-local setting
 * `sbx.org_id`; db_begin(db, org_id) sets it. Without an org (db_begin(db, NULL)) tenant tables
 * look empty and inserts fail; only the SECURITY DEFINER functions (sbx_auth_key,
 * sbx_sandboxes_active, sbx_sandboxes_expired, sbx_webhook_events_pending,
 * sbx_webhook_deliveries_due, sbx_idempotency_prune — see sql/0001_init.sql) work across orgs.
 * See docs/internals/DATABASE.md.
 *
 * Errors (db_query and friends return a -errno; db_last_error() has the details):
 *   -EEXIST     23505 unique_violation (e.g. duplicate email, slug, idempotency key)
 *   -ENOENT     23503 foreign_key_violation (referenced row missing or not in this org)
 *   -EINVAL     22xxx data exceptions (22P02 bad uuid/number text, 22001 too long, …),
 *               23514 check_violation, 23502 not_null_violation; also bad arguments
 *   -EACCES     42501 insufficient_privilege, incl. an RLS WITH CHECK violation (row of
 *               another org, or no org set)
 *   -EAGAIN     40001 serialization_failure, 40P01 deadlock_detected, 55P03 lock_not_available:
 *               roll back and retry the transaction
 *   -ETIMEDOUT  57014 query_canceled (statement_timeout)
 *   -EIO        connection lost (the next db_begin/db_query reconnects) and anything else
 * SQL text, SQLSTATEs and constraint names are for logs only, never for API users.
 */
#pragma once

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/macro.h"

struct db;

/* Details of the last failed call on this connection (all strings empty if none). */
struct db_error {
    char sqlstate[6];       /* "23505"; "" when the failure was not a server error */
    char message[512];      /* server's primary message or libpq's connection error */
    char constraint[64];    /* constraint name, when the server reported one */
    char table[64];         /* table name, when the server reported one */
};

/* Connects with a libpq conninfo string or URI. The connection gets statement_timeout 30 s and
 * idle_in_transaction_session_timeout 60 s unless the conninfo sets them (options=-c ...).
 * On failure returns -EIO (-EINVAL for a malformed conninfo) and writes a one-line reason to
 * err (never the password). */
int db_open(const char *conninfo, struct db **ret, char *err, size_t errlen);
/* Closes the connection (rolling back an open transaction). NULL is allowed. */
void db_close(struct db *db);

/* Opens a transaction. org_id: the organization every statement is confined to (a UUID,
 * validated: -EINVAL otherwise), or NULL for none (then only definer functions see rows).
 * Reconnects first if the connection was lost. -EBUSY if a transaction is already open. */
int db_begin(struct db *db, const char *org_id);
/* Commits. If a statement in the transaction failed, rolls back instead and returns that
 * statement's error. A failed COMMIT (serialization) returns its mapped error. Either way the
 * transaction is over when db_commit returns. */
int db_commit(struct db *db);
/* Rolls back the open transaction, if any; never fails (a lost connection is reset later). */
void db_rollback(struct db *db);
/* True while db_begin'd and not yet committed/rolled back. */
bool db_in_transaction(const struct db *db);

/* Runs one statement (no multi-statement strings) with nparams text parameters ($1…; NULL
 * element = SQL NULL; bytea as '\x<hex>'), results in text format. On success returns the
 * number of rows returned (SELECT/… RETURNING) or affected (INSERT/UPDATE/DELETE), and, if ret
 * is non-NULL, hands over the result (free with PQclear or _cleanup_pgres_). Outside a
 * transaction the statement runs on its own (autocommit). Inside one, after an error the
 * transaction is aborted: the caller must db_rollback (or db_commit, which rolls back). */
int db_query(struct db *db, const char *sql, int nparams, const char *const *params,
             PGresult **ret);

/* A check run inside every transaction this connection opens, right after BEGIN (the leader
 * fence, controller/leader.h). It may db_query; a negative return rolls the transaction back
 * and db_begin returns it. While a hook is set, a db_query outside a transaction runs in its
 * own db_begin(db, NULL) … db_commit, so the hook guards autocommit statements too.
 * hook NULL removes it. */
typedef int (*db_begin_hook_t)(struct db *db, void *arg);
void db_set_begin_hook(struct db *db, db_begin_hook_t hook, void *arg);

/* SELECT 1 round trip; reconnects if needed. false if the server is unreachable. */
bool db_ping(struct db *db);

/* The last error on this connection (valid until the next call on db). */
const struct db_error *db_last_error(const struct db *db);

/* SQLSTATE → -errno as listed above (NULL/empty → -EIO). Exposed for tests. */
int db_errno_from_sqlstate(const char *sqlstate);

/* Applies the migrations in sql_dir (files NNNN_name.sql, applied in numeric order) as the
 * owner role: takes a session advisory lock (concurrent daemons wait), creates
 * schema_migrations(version, name, checksum, applied_at) if needed, applies each file not yet
 * recorded in its own transaction and records version, name and sha256 checksum. A failing file
 * is rolled back and the call returns -EIO with "NNNN_x.sql: <server message> (SQLSTATE …, line
 * N)" in err; earlier files stay applied. Re-running is a no-op. Errors also: -EINVAL a badly
 * named .sql file or duplicate version, or an applied file whose checksum changed (-EBADMSG),
 * -ESTALE the database has a migration this sql_dir does not know (newer schema),
 * -ENOENT/-EACCES sql_dir unreadable. Returns the number of files applied on success. */
int db_migrate(const char *owner_conninfo, const char *sql_dir, char *err, size_t errlen);

/* For readiness checks (works as sandboxd_app): 0 if every file in sql_dir is applied with the
 * same checksum, -ESTALE if some are pending or differ (or schema_migrations is missing), -EIO
 * on a database error, -ENOENT/-EACCES/-EINVAL for the directory. */
int db_migrations_current(struct db *db, const char *sql_dir);

DEFINE_TRIVIAL_CLEANUP_FUNC(PGresult *, PQclear);
#define _cleanup_pgres_ _cleanup_(PQclearp)
DEFINE_TRIVIAL_CLEANUP_FUNC(struct db *, db_close);
#define _cleanup_db_ _cleanup_(db_closep)
