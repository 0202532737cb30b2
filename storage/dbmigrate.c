/*
 * dbmigrate.c — forward-only schema migrations from a directory of NNNN_name.sql files.
 * Contracts in db.h (db_migrate, db_migrations_current); file rules in docs/internals/DATABASE.md.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/crypto.h"
#include "common/log.h"
#include "storage/db_internal.h"

/* Arbitrary constant: the session advisory lock serialising migrators ("SBXMIGR"). */
#define MIGRATE_LOCK_KEY "6076765254486354"
#define MIGRATION_MAX_BYTES (16u << 20)

struct migration {
    int version;
    char *name; /* file name, e.g. 0001_init.sql */
    char *sql;  /* contents, NUL-terminated */
    char checksum[SBX_SHA256_HEX_LEN + 1];
};

struct migration_set {
    struct migration *v;
    size_t n;
};

static void set_free(struct migration_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
        free(s->v[i].sql);
    }
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static void _printf_(3, 4) errf(char *err, size_t errlen, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;

    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    db_oneline(err, errlen, tmp);
}

/* NNNN_[a-z0-9_]+.sql → version, or -1 if the name doesn't follow the rule. */
static int parse_name(const char *name)
{
    size_t len = strlen(name);
    int v = 0;

    if (len < 10 || strcmp(name + len - 4, ".sql") != 0)
        return -1;
    for (int i = 0; i < 4; i++) {
        if (name[i] < '0' || name[i] > '9')
            return -1;
        v = v * 10 + (name[i] - '0');
    }
    if (name[4] != '_' || v == 0)
        return -1;
    for (size_t i = 5; i < len - 4; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return -1;
    }
    return v;
}

static int read_file_at(int dfd, const char *name, char **ret, size_t *ret_len)
{
    _cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;

    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if ((size_t)st.st_size > MIGRATION_MAX_BYTES)
        return -E2BIG;
    _cleanup_free_ char *buf = xmalloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            break;
        got += (size_t)k;
    }
    buf[got] = '\0';
    if (strlen(buf) != got)
        return -EINVAL; /* NUL byte in a SQL file */
    *ret_len = got;
    *ret = TAKE_PTR(buf);
    return 0;
}

static int cmp_migration(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* Loads every *.sql file of dir, sorted by version. Other files are ignored; a .sql file with a
 * bad name or a duplicate version is an error (a typo must not silently skip a migration). */
static int load_dir(const char *dir, struct migration_set *ret, char *err, size_t errlen)
{
    struct migration_set s = { 0 };
    DIR *d;
    struct dirent *de;
    int r = 0;

    d = opendir(dir);
    if (!d) {
        r = -errno;
        errf(err, errlen, "cannot open migrations directory %s: %s", dir, strerror(-r));
        return r;
    }
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.' || len < 4 || strcmp(de->d_name + len - 4, ".sql") != 0)
            continue;
        int v = parse_name(de->d_name);
        if (v < 0) {
            errf(err, errlen, "%s: migration files are named NNNN_lowercase_name.sql", de->d_name);
            r = -EINVAL;
            goto out;
        }
        struct migration m = { .version = v };
        size_t sz = 0;
        r = read_file_at(dirfd(d), de->d_name, &m.sql, &sz);
        if (r < 0) {
            errf(err, errlen, "%s: cannot read: %s", de->d_name, strerror(-r));
            goto out;
        }
        m.name = xstrdup(de->d_name);
        sbx_sha256_hex(m.sql, sz, m.checksum);
        s.v = xrealloc(s.v, (s.n + 1) * sizeof(*s.v));
        s.v[s.n++] = m;
    }
    if (s.n > 1)
        qsort(s.v, s.n, sizeof(*s.v), cmp_migration);
    for (size_t i = 1; i < s.n; i++) {
        if (s.v[i].version == s.v[i - 1].version) {
            errf(err, errlen, "%s and %s have the same version", s.v[i - 1].name, s.v[i].name);
            r = -EINVAL;
            goto out;
        }
    }
    *ret = s;
    s = (struct migration_set){ 0 };
    r = 0;
out:
    closedir(d);
    set_free(&s);
    return r;
}

static const struct migration *find_version(const struct migration_set *s, int version)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].version == version)
            return &s->v[i];
    return NULL;
}

/* 1-based line of a 1-based character position in text (server positions count characters;
 * for UTF-8 text counting bytes that don't start a code point is skipped). */
static int line_of(const char *text, long pos)
{
    int line = 1;
    long chars = 0;

    for (const char *p = text; *p && chars < pos - 1; p++) {
        if (((unsigned char)*p & 0xC0) == 0x80)
            continue;
        chars++;
        if (*p == '\n')
            line++;
    }
    return line;
}

/* Compares the recorded migrations with the files. Returns 0 if consistent so far (pending files
 * allowed), -EBADMSG on a checksum change, -ESTALE if the db knows a version the dir lacks. */
static int check_applied(const PGresult *res, const struct migration_set *s, char *err,
                         size_t errlen)
{
    for (int i = 0; i < PQntuples(res); i++) {
        int version = atoi(PQgetvalue(res, i, 0));
        const char *name = PQgetvalue(res, i, 1);
        const char *sum = PQgetvalue(res, i, 2);
        const struct migration *m = find_version(s, version);
        if (!m) {
            errf(err, errlen, "database has migration %04d (%s), which %s does not have: "
                 "the schema is newer than this build", version, name, "the sql directory");
            return -ESTALE;
        }
        if (strcmp(m->checksum, sum) != 0) {
            errf(err, errlen, "%s was changed after it was applied (checksum %.12s…, applied "
                 "%.12s…); migrations are forward-only: add a new file instead", m->name,
                 m->checksum, sum);
            return -EBADMSG;
        }
    }
    return 0;
}

static bool is_applied(const PGresult *res, int version)
{
    for (int i = 0; i < PQntuples(res); i++)
        if (atoi(PQgetvalue(res, i, 0)) == version)
            return true;
    return false;
}

static int apply_one(struct db *db, const struct migration *m, char *err, size_t errlen)
{
    char version[16];
    int r;

    PGresult *res = PQexec(db->conn, "BEGIN");
    PQclear(res);
    /* the file runs as one simple-protocol query string: several statements, one transaction */
    res = PQexec(db->conn, m->sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
        char where[32] = "";
        if (pos)
            snprintf(where, sizeof(where), ", line %d", line_of(m->sql, atol(pos)));
        r = db_record_error(db, res);
        PQclear(res);
        errf(err, errlen, "%s: %s (SQLSTATE %s%s)", m->name, db->err.message,
             db->err.sqlstate[0] ? db->err.sqlstate : "none", where);
        res = PQexec(db->conn, "ROLLBACK");
        PQclear(res);
        return r < 0 ? r : -EIO;
    }
    PQclear(res);

    snprintf(version, sizeof(version), "%d", m->version);
    const char *params[] = { version, m->name, m->checksum };
    res = PQexecParams(db->conn,
                       "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                       3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        goto fail;
    PQclear(res);
    res = PQexec(db->conn, "COMMIT");
    if (PQresultStatus(res) != PGRES_COMMAND_OK || strcmp(PQcmdStatus(res), "COMMIT") != 0)
        goto fail;
    PQclear(res);
    return 0;
fail:
    r = db_record_error(db, res);
    PQclear(res);
    errf(err, errlen, "%s: recording the migration failed: %s (SQLSTATE %s)", m->name,
         db->err.message, db->err.sqlstate);
    res = PQexec(db->conn, "ROLLBACK");
    PQclear(res);
    return r < 0 ? r : -EIO;
}

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " version integer PRIMARY KEY CHECK (version > 0),"
    " name text NOT NULL,"
    " checksum text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'),"
    " applied_at timestamptz NOT NULL DEFAULT now())";

static const char select_applied_sql[] =
    "SELECT version, name, checksum FROM schema_migrations ORDER BY version";

int db_migrate(const char *owner_conninfo, const char *sql_dir, char *err, size_t errlen)
{
    _cleanup_db_ struct db *db = NULL;
    _cleanup_(set_free) struct migration_set set = { 0 };
    _cleanup_pgres_ PGresult *applied = NULL;
    int r, count = 0;

    if (!owner_conninfo || !sql_dir)
        return -EINVAL;
    r = load_dir(sql_dir, &set, err, errlen);
    if (r < 0)
        return r;
    r = db_open(owner_conninfo, &db, err, errlen);
    if (r < 0)
        return r;
    /* migrations may legitimately run longer than a request */
    r = db_query(db, "SET statement_timeout = 0", 0, NULL, NULL);
    if (r >= 0)
        r = db_query(db, "SELECT pg_advisory_lock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL);
    if (r >= 0)
        r = db_query(db, create_table_sql, 0, NULL, NULL);
    if (r >= 0)
        r = db_query(db, select_applied_sql, 0, NULL, &applied);
    if (r < 0) {
        errf(err, errlen, "preparing migrations: %s (SQLSTATE %s)", db->err.message,
             db->err.sqlstate[0] ? db->err.sqlstate : "none");
        return r;
    }
    r = check_applied(applied, &set, err, errlen);
    if (r < 0)
        return r;
    for (size_t i = 0; i < set.n; i++) {
        if (is_applied(applied, set.v[i].version))
            continue;
        log_debug("db: applying migration %s", set.v[i].name);
        r = apply_one(db, &set.v[i], err, errlen);
        if (r < 0)
            return r;
        count++;
    }
    /* the lock goes with the session; unlock explicitly anyway */
    (void)db_query(db, "SELECT pg_advisory_unlock(" MIGRATE_LOCK_KEY ")", 0, NULL, NULL);
    return count;
}

int db_migrations_current(struct db *db, const char *sql_dir)
{
    _cleanup_(set_free) struct migration_set set = { 0 };
    _cleanup_pgres_ PGresult *applied = NULL;
    char err[256];
    int r;

    if (!db || !sql_dir)
        return -EINVAL;
    r = load_dir(sql_dir, &set, err, sizeof(err));
    if (r < 0)
        return r;
    r = db_query(db, select_applied_sql, 0, NULL, &applied);
    if (r < 0)
        return strcmp(db->err.sqlstate, "42P01") == 0 ? -ESTALE : r;
    r = check_applied(applied, &set, err, sizeof(err));
    if (r < 0)
        return -ESTALE;
    for (size_t i = 0; i < set.n; i++)
        if (!is_applied(applied, set.v[i].version))
            return -ESTALE;
    return 0;
}
