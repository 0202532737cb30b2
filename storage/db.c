/*
 * db.c — one blocking libpq connection, org-scoped transactions, SQLSTATE → -errno.
 * Contracts in db.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"
#include "common/log.h"
#include "storage/db_internal.h"

void db_oneline(char *dst, size_t dstlen, const char *s)
{
    size_t i = 0;

    if (dstlen == 0)
        return;
    for (; s && *s && i + 1 < dstlen; s++) {
        char c = *s;
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        dst[i++] = c;
    }
    /* drop the trailing space a final newline leaves */
    while (i > 0 && dst[i - 1] == ' ')
        i--;
    dst[i] = '\0';
}

static void errf(char *err, size_t errlen, const char *msg)
{
    if (err && errlen)
        db_oneline(err, errlen, msg);
}

int db_errno_from_sqlstate(const char *s)
{
    if (!s || strlen(s) != 5)
        return -EIO;
    if (strcmp(s, "23505") == 0)
        return -EEXIST;
    if (strcmp(s, "23503") == 0)
        return -ENOENT;
    if (strcmp(s, "23514") == 0 || strcmp(s, "23502") == 0 || strncmp(s, "22", 2) == 0)
        return -EINVAL;
    if (strcmp(s, "42501") == 0)
        return -EACCES;
    if (strcmp(s, "40001") == 0 || strcmp(s, "40P01") == 0 || strcmp(s, "55P03") == 0)
        return -EAGAIN;
    if (strcmp(s, "57014") == 0)
        return -ETIMEDOUT;
    /* 08xxx connection exceptions, 57P01 admin shutdown, everything else */
    return -EIO;
}

static void copy_field(char *dst, size_t n, const PGresult *res, int field)
{
    const char *v = res ? PQresultErrorField(res, field) : NULL;
    db_oneline(dst, n, v ? v : "");
}

int db_record_error(struct db *db, const PGresult *res)
{
    memset(&db->err, 0, sizeof(db->err));
    if (res && PQresultErrorField(res, PG_DIAG_SQLSTATE)) {
        copy_field(db->err.sqlstate, sizeof(db->err.sqlstate), res, PG_DIAG_SQLSTATE);
        copy_field(db->err.message, sizeof(db->err.message), res, PG_DIAG_MESSAGE_PRIMARY);
        copy_field(db->err.constraint, sizeof(db->err.constraint), res, PG_DIAG_CONSTRAINT_NAME);
        copy_field(db->err.table, sizeof(db->err.table), res, PG_DIAG_TABLE_NAME);
    } else {
        db_oneline(db->err.message, sizeof(db->err.message),
                   db->conn ? PQerrorMessage(db->conn) : "not connected");
    }
    if (!db->conn || PQstatus(db->conn) != CONNECTION_OK)
        return -EIO;
    return db_errno_from_sqlstate(db->err.sqlstate);
}

/* Applies the default timeouts unless the conninfo's options already set them. */
static int apply_session_defaults(PGconn *conn)
{
    static const char sql[] =
        "SELECT set_config('statement_timeout', '30s', false) "
        " WHERE current_setting('statement_timeout') = '0'";
    static const char sql2[] =
        "SELECT set_config('idle_in_transaction_session_timeout', '60s', false) "
        " WHERE current_setting('idle_in_transaction_session_timeout') = '0'";
    const char *q[] = { sql, sql2 };

    for (size_t i = 0; i < ARRAY_SIZE(q); i++) {
        _cleanup_pgres_ PGresult *res = PQexec(conn, q[i]);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            return -EIO;
    }
    return 0;
}

/* libpq prints NOTICEs on stderr by default; the daemon's stdout/stderr carry JSON logs. */
static void notice_processor(void *arg, const char *message)
{
    char line[512];
    db_oneline(line, sizeof(line), message);
    log_debug("db: server notice: %s", line);
}

static int connect_conn(const char *conninfo, PGconn **ret, char *err, size_t errlen)
{
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);

    if (!opts) {
        errf(err, errlen, perr ? perr : "malformed connection string");
        PQfreemem(perr);
        return -EINVAL;
    }
    PQconninfoFree(opts);

    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        errf(err, errlen, PQerrorMessage(conn));
        PQfinish(conn);
        return -EIO;
    }
    PQsetNoticeProcessor(conn, notice_processor, NULL);
    if (apply_session_defaults(conn) < 0) {
        errf(err, errlen, PQerrorMessage(conn));
        PQfinish(conn);
        return -EIO;
    }
    *ret = conn;
    return 0;
}

int db_open(const char *conninfo, struct db **ret, char *err, size_t errlen)
{
    PGconn *conn = NULL;
    int r;

    if (!conninfo || !ret)
        return -EINVAL;
    r = connect_conn(conninfo, &conn, err, errlen);
    if (r < 0)
        return r;
    struct db *db = xcalloc(1, sizeof(*db));
    db->conn = conn;
    db->conninfo = xstrdup(conninfo);
    *ret = db;
    return 0;
}

void db_close(struct db *db)
{
    if (!db)
        return;
    if (db->conn)
        PQfinish(db->conn); /* the server rolls back an open transaction */
    if (db->conninfo) {
        explicit_bzero(db->conninfo, strlen(db->conninfo)); /* may hold a password */
        free(db->conninfo);
    }
    free(db);
}

int db_ensure_connected(struct db *db)
{
    PGconn *conn = NULL;
    char err[256];
    int r;

    if (db->conn && PQstatus(db->conn) == CONNECTION_OK)
        return 0;
    if (db->conn) {
        PQfinish(db->conn);
        db->conn = NULL;
    }
    db->in_tx = false;
    db->tx_error = 0;
    r = connect_conn(db->conninfo, &conn, err, sizeof(err));
    if (r < 0) {
        memset(&db->err, 0, sizeof(db->err));
        db_oneline(db->err.message, sizeof(db->err.message), err);
        log_debug("db: reconnect failed: %s", err);
        return -EIO;
    }
    log_debug("db: reconnected");
    db->conn = conn;
    return 0;
}

bool db_in_transaction(const struct db *db)
{
    return db && db->in_tx;
}

const struct db_error *db_last_error(const struct db *db)
{
    return &db->err;
}

int db_begin(struct db *db, const char *org_id)
{
    char sql[160];
    int r;

    if (!db)
        return -EINVAL;
    if (org_id && !sbx_uuid_valid(org_id))
        return -EINVAL;
    if (db->in_tx)
        return -EBUSY;
    r = db_ensure_connected(db);
    if (r < 0)
        return r;
    /* org_id is a validated UUID (hex and dashes only), so it can be spliced into the text:
     * one round trip instead of two. The setting is transaction-local; '' means no org and is
     * set explicitly so that a session-level SET can never leak in. */
    snprintf(sql, sizeof(sql), "BEGIN; SELECT set_config('sbx.org_id', '%s', true)",
             org_id ? org_id : "");
    _cleanup_pgres_ PGresult *res = PQexec(db->conn, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        r = db_record_error(db, res);
        if (PQstatus(db->conn) == CONNECTION_OK) {
            PGresult *rb = PQexec(db->conn, "ROLLBACK");
            PQclear(rb);
        }
        return r;
    }
    db->in_tx = true;
    db->tx_error = 0;
    if (db->begin_hook && !db->in_hook) {
        db->in_hook = true;
        r = db->begin_hook(db, db->begin_hook_arg);
        db->in_hook = false;
        if (r < 0) {
            db_rollback(db);
            return r;
        }
    }
    return 0;
}

void db_set_begin_hook(struct db *db, db_begin_hook_t hook, void *arg)
{
    if (!db)
        return;
    db->begin_hook = hook;
    db->begin_hook_arg = arg;
}

void db_rollback(struct db *db)
{
    if (!db || !db->in_tx)
        return;
    db->in_tx = false;
    db->tx_error = 0;
    if (db->conn && PQstatus(db->conn) == CONNECTION_OK) {
        PGresult *res = PQexec(db->conn, "ROLLBACK");
        PQclear(res);
    }
}

int db_commit(struct db *db)
{
    int r;

    if (!db || !db->in_tx)
        return -EINVAL;
    if (db->tx_error) {
        r = db->tx_error;
        db_rollback(db);
        return r;
    }
    db->in_tx = false;
    _cleanup_pgres_ PGresult *res = PQexec(db->conn, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return db_record_error(db, res);
    /* COMMIT of an aborted transaction reports success with tag ROLLBACK */
    if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
        memset(&db->err, 0, sizeof(db->err));
        snprintf(db->err.message, sizeof(db->err.message), "transaction was rolled back");
        return -EIO;
    }
    return 0;
}

int db_query(struct db *db, const char *sql, int nparams, const char *const *params,
             PGresult **ret)
{
    int r;

    if (!db || !sql || nparams < 0 || (nparams > 0 && !params))
        return -EINVAL;
    if (db->in_tx && db->tx_error)
        return db->tx_error; /* aborted transaction: don't bother the server */
    if (!db->in_tx && db->begin_hook && !db->in_hook) {
        /* a hooked connection runs every statement in a checked transaction */
        r = db_begin(db, NULL);
        if (r < 0)
            return r;
        PGresult *res = NULL;
        r = db_query(db, sql, nparams, params, ret ? &res : NULL);
        int c = db_commit(db);
        if (r >= 0 && c < 0)
            r = c;
        if (r >= 0 && ret)
            *ret = res;
        else
            PQclear(res);
        return r;
    }
    if (!db->in_tx) {
        r = db_ensure_connected(db);
        if (r < 0)
            return r;
    }
    _cleanup_pgres_ PGresult *res =
        PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    switch (PQresultStatus(res)) {
    case PGRES_TUPLES_OK:
        r = PQntuples(res);
        break;
    case PGRES_COMMAND_OK: {
        const char *n = PQcmdTuples(res);
        r = (n && *n) ? atoi(n) : 0;
        break;
    }
    default:
        r = db_record_error(db, res);
        log_debug("db: query failed: %s (SQLSTATE %s)", db->err.message, db->err.sqlstate);
        if (db->in_tx) {
            db->tx_error = r;
            if (PQstatus(db->conn) != CONNECTION_OK) {
                /* the transaction is gone with the connection */
                db->in_tx = false;
                db->tx_error = 0;
            }
        }
        return r;
    }
    if (ret)
        *ret = TAKE_PTR(res);
    return r;
}

bool db_ping(struct db *db)
{
    if (!db)
        return false;
    if (db->in_tx)
        return PQstatus(db->conn) == CONNECTION_OK;
    if (db_ensure_connected(db) < 0)
        return false;
    _cleanup_pgres_ PGresult *res = PQexec(db->conn, "SELECT 1");
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        return true;
    db_record_error(db, res);
    /* a dead connection is noticed only now: try once more on a fresh one */
    if (PQstatus(db->conn) != CONNECTION_OK && db_ensure_connected(db) == 0) {
        _cleanup_pgres_ PGresult *res2 = PQexec(db->conn, "SELECT 1");
        return PQresultStatus(res2) == PGRES_TUPLES_OK;
    }
    return false;
}
