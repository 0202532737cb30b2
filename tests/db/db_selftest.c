/*
 * db-selftest — checks storage/db.c against a live, migrated database:
 *   db-selftest APP_CONNINFO SQL_DIR
 * Prints TAP; exit status 0 iff every check passed. Run by tests/db/test_rls.py (which starts
 * Postgres and migrates it); it creates two orgs with random ids and leaves their rows behind.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/crypto.h"
#include "storage/db.h"

static int n_test, n_fail;

static void ok(bool cond, const char *what, const struct db *db)
{
    n_test++;
    if (cond) {
        printf("ok %d - %s\n", n_test, what);
        return;
    }
    n_fail++;
    printf("not ok %d - %s\n", n_test, what);
    if (db) {
        const struct db_error *e = db_last_error(db);
        printf("# last error: %s (SQLSTATE %s, constraint %s)\n", e->message, e->sqlstate,
               e->constraint);
    }
}

#define EXPECT(db, expr, want, what)                                                              \
    do {                                                                                          \
        int _r = (expr);                                                                          \
        if (_r != (want))                                                                         \
            printf("# %s: got %d (%s), want %d\n", what, _r, strerror(_r < 0 ? -_r : 0), want);   \
        ok(_r == (want), what, db);                                                               \
    } while (0)

static void errmap(void)
{
    static const struct {
        const char *s;
        int e;
    } t[] = {
        { "23505", -EEXIST },    { "23503", -ENOENT }, { "23514", -EINVAL },
        { "23502", -EINVAL },    { "22P02", -EINVAL }, { "22001", -EINVAL },
        { "42501", -EACCES },    { "40001", -EAGAIN }, { "40P01", -EAGAIN },
        { "55P03", -EAGAIN },    { "57014", -ETIMEDOUT }, { "08006", -EIO },
        { "42P01", -EIO },       { "", -EIO },         { NULL, -EIO },
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
        char what[64];
        snprintf(what, sizeof(what), "sqlstate %s maps to %d", t[i].s ? t[i].s : "(null)", t[i].e);
        ok(db_errno_from_sqlstate(t[i].s) == t[i].e, what, NULL);
    }
}

static int make_org(struct db *db, const char *org, const char *slug)
{
    const char *p[] = { org, slug };
    int r = db_begin(db, org);
    if (r < 0)
        return r;
    r = db_query(db, "INSERT INTO orgs (id, name, slug) VALUES ($1, 'Org ' || $2, $2)", 2, p,
                 NULL);
    if (r < 0) {
        db_rollback(db);
        return r;
    }
    return db_commit(db);
}

int main(int argc, char **argv)
{
    char err[512] = "", a[37], b[37], slug_a[40], slug_b[40], email[80], sbx[37];
    _cleanup_db_ struct db *db = NULL;
    PGresult *res = NULL;

    if (argc != 3) {
        fprintf(stderr, "usage: db-selftest APP_CONNINFO SQL_DIR\n");
        return 2;
    }
    errmap();

    ok(db_open("host=127.0.0.1 port=1 connect_timeout=2", &db, err, sizeof(err)) == -EIO,
       "db_open to a closed port fails with -EIO", NULL);
    ok(err[0] != '\0', "... and says why", NULL);
    ok(db_open("not a = conninfo '", &db, err, sizeof(err)) == -EINVAL,
       "malformed conninfo is -EINVAL", NULL);
    if (db_open(argv[1], &db, err, sizeof(err)) < 0) {
        printf("Bail out! db_open: %s\n", err);
        return 1;
    }
    ok(db_ping(db), "db_ping", db);
    EXPECT(db, db_migrations_current(db, argv[2]), 0, "migrations are current (as app)");

    sbx_uuid4(a);
    sbx_uuid4(b);
    snprintf(slug_a, sizeof(slug_a), "st-%.8s", a);
    snprintf(slug_b, sizeof(slug_b), "st-%.8s", b);
    EXPECT(db, make_org(db, a, slug_a), 0, "registration: insert org A with its id set");
    EXPECT(db, make_org(db, b, slug_b), 0, "registration: insert org B");
    {
        char c[37];
        sbx_uuid4(c);
        EXPECT(db, make_org(db, c, slug_a), -EEXIST, "duplicate slug across orgs is -EEXIST");
    }

    EXPECT(db, db_begin(db, "not-a-uuid"), -EINVAL, "db_begin rejects a bad org id");
    EXPECT(db, db_begin(db, "'; DROP TABLE orgs; --xxxxxxxxxxxxxxx"), -EINVAL,
           "db_begin rejects injection");

    /* org A: users, sandboxes, error mapping */
    snprintf(email, sizeof(email), "u-%.8s@example.com", a);
    EXPECT(db, db_begin(db, a), 0, "begin org A");
    EXPECT(db, db_begin(db, a), -EBUSY, "nested begin is -EBUSY");
    {
        const char *p[] = { a, email };
        EXPECT(db, db_query(db, "INSERT INTO users (org_id, email, role) VALUES ($1, $2, 'owner')",
                            2, p, NULL), 1, "insert user in org A");
        EXPECT(db, db_query(db, "INSERT INTO sandboxes (org_id, status) VALUES ($1, 'running') "
                                "RETURNING id", 1, p, &res), 1, "insert sandbox in org A");
        if (res) {
            snprintf(sbx, sizeof(sbx), "%s", PQgetvalue(res, 0, 0));
            PQclear(res);
            res = NULL;
        }
    }
    EXPECT(db, db_commit(db), 0, "commit org A");

    {
        const char *p[] = { b, email };
        EXPECT(db, db_begin(db, b), 0, "begin org B");
        EXPECT(db, db_query(db, "INSERT INTO users (org_id, email) VALUES ($1, $2)", 2, p, NULL),
               -EEXIST, "same email in another org is -EEXIST (unique across RLS)");
        EXPECT(db, db_commit(db), -EEXIST, "commit after a failed statement returns its error");
        ok(!db_in_transaction(db), "... and ends the transaction", db);
    }

    struct {
        const char *sql;
        const char *p1, *p2;
        int want;
        const char *what;
    } cases[] = {
        { "INSERT INTO sandboxes (org_id, status) VALUES ($1, 'bogus')", a, NULL, -EINVAL,
          "check violation (status enum) is -EINVAL" },
        { "SELECT * FROM sandboxes WHERE id = $1", "nope", NULL, -EINVAL,
          "bad uuid text is -EINVAL" },
        { "INSERT INTO executions (org_id, sandbox_id, command) VALUES ($1, $1, 'ls')", a, NULL,
          -ENOENT, "missing referenced sandbox is -ENOENT" },
        { "INSERT INTO sandboxes (org_id) VALUES ($1)", b, NULL, -EACCES,
          "inserting a row of org B while org A is set is -EACCES" },
        { "INSERT INTO users (org_id, email) VALUES ($1, $2)", a, NULL, -EINVAL,
          "not null is -EINVAL" },
        { "SELECT pg_sleep(2)", NULL, NULL, -ETIMEDOUT, "statement_timeout is -ETIMEDOUT" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        const char *p[] = { cases[i].p1, cases[i].p2 };
        int np = strchr(cases[i].sql, '$') ? (strstr(cases[i].sql, "$2") ? 2 : 1) : 0;
        EXPECT(db, db_begin(db, a), 0, "begin org A");
        if (np == 0)
            db_query(db, "SET LOCAL statement_timeout = '100ms'", 0, NULL, NULL);
        EXPECT(db, db_query(db, cases[i].sql, np, p, NULL), cases[i].want, cases[i].what);
        ok(db_last_error(db)->sqlstate[0] != '\0', "... db_last_error has the SQLSTATE", db);
        db_rollback(db);
    }

    /* cross-org reads */
    {
        const char *p[] = { sbx };
        EXPECT(db, db_begin(db, b), 0, "begin org B");
        EXPECT(db, db_query(db, "SELECT id FROM sandboxes WHERE id = $1", 1, p, NULL), 0,
               "org B cannot see org A's sandbox");
        EXPECT(db, db_query(db, "UPDATE sandboxes SET status = 'error' WHERE id = $1", 1, p, NULL),
               0, "org B cannot update org A's sandbox");
        EXPECT(db, db_commit(db), 0, "commit org B");
        EXPECT(db, db_begin(db, NULL), 0, "begin without org");
        EXPECT(db, db_query(db, "SELECT id FROM sandboxes", 0, NULL, NULL), 0,
               "no org: no sandboxes visible");
        EXPECT(db, db_query(db, "SELECT id FROM sbx_sandboxes_active() WHERE id = $1", 1, p, NULL),
               1, "no org: sbx_sandboxes_active() sees it");
        db_rollback(db);
        EXPECT(db, db_query(db, "SELECT 1", 0, NULL, NULL), 1, "autocommit query outside a tx");
    }

    /* connection loss: -EIO, then the next call reconnects */
    EXPECT(db, db_begin(db, a), 0, "begin before losing the connection");
    EXPECT(db, db_query(db, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, NULL), -EIO,
           "connection lost is -EIO");
    db_rollback(db);
    ok(!db_in_transaction(db), "no transaction after a lost connection", db);
    EXPECT(db, db_begin(db, a), 0, "next db_begin reconnects");
    EXPECT(db, db_query(db, "SELECT id FROM sandboxes", 0, NULL, NULL), 1,
           "org A sees its sandbox after reconnecting");
    EXPECT(db, db_commit(db), 0, "commit after reconnect");
    EXPECT(db, db_query(db, "SELECT pg_terminate_backend(pg_backend_pid())", 0, NULL, NULL), -EIO,
           "connection lost outside a tx is -EIO");
    ok(db_ping(db), "db_ping reconnects", db);

    printf("1..%d\n", n_test);
    return n_fail ? 1 : 0;
}
