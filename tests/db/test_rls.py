"""Tenant isolation, ownership and migration behaviour of sql/ + storage/db*.c.

Needs a private Postgres (started by the `pg` fixture through scripts/pg.sh) and the built
dbmigrate / db-selftest; see conftest.py and docs/internals/DATABASE.md.
"""
import os
import shutil
import uuid

import psycopg2
import psycopg2.errors
import pytest

from conftest import PG, SQL_DIR, free_port, run

# Tables that deliberately have no org_id (and so no tenant policy). A new global table must be
# added here consciously, with a reason.
NON_TENANT_TABLES = {
    "schema_migrations",  # migration bookkeeping, written only by the owner
    "leader_epochs",      # leader-election fence: one row per deployment, not per org (0007)
}


def tenant_tables(cur):
    cur.execute("""
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                        AND a.attname = 'org_id' AND NOT a.attisdropped)
         ORDER BY 1""")
    return [r[0] for r in cur.fetchall()]


def all_tables(cur):
    cur.execute("""
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
           AND c.relkind IN ('r', 'p') ORDER BY 1""")
    return [r[0] for r in cur.fetchall()]


def seed_org(conn, org):
    """One row in every tenant table, as the app role with the org set (registration style)."""
    o = str(org)
    with conn.cursor() as cur:
        cur.execute("SELECT set_config('sbx.org_id', %s, true)", (o,))
        cur.execute("INSERT INTO orgs (id, name, slug) VALUES (%s, 'T', %s)", (o, "t-" + o[:8]))
        cur.execute("INSERT INTO users (org_id, email, role) VALUES (%s, %s, 'owner') RETURNING id",
                    (o, "u-%s@example.com" % o[:8]))
        user = cur.fetchone()[0]
        cur.execute("""INSERT INTO api_keys (org_id, key_id, key_prefix, key_hash, created_by_user)
                       VALUES (%s, %s, 'sbx_live_x', decode(repeat('ab', 32), 'hex'), %s)
                       RETURNING id""", (o, "K" + o.replace("-", "")[:11], user))
        key = cur.fetchone()[0]
        cur.execute("INSERT INTO templates (org_id, name) VALUES (%s, 'py')", (o,))
        cur.execute("""INSERT INTO sandboxes (org_id, status, expires_at, created_by_key)
                       VALUES (%s, 'running', now() - interval '1 minute', %s) RETURNING id""",
                    (o, key))
        sbx = cur.fetchone()[0]
        cur.execute("INSERT INTO executions (org_id, sandbox_id, command) VALUES (%s, %s, 'ls')",
                    (o, sbx))
        cur.execute("""INSERT INTO blobs (org_id, sha256, size, storage_key)
                       VALUES (%s, repeat('a', 64), 1, 'k') RETURNING id""", (o,))
        blob = cur.fetchone()[0]
        cur.execute("""INSERT INTO checkpoints (org_id, sandbox_id, name) VALUES (%s, %s, 'c')
                       RETURNING id""", (o, sbx))
        cur.execute("""INSERT INTO checkpoint_blobs (org_id, checkpoint_id, blob_id)
                       VALUES (%s, %s, %s)""", (o, cur.fetchone()[0], blob))
        cur.execute("""INSERT INTO artifacts (org_id, sandbox_id, path, remote_path)
                       VALUES (%s, %s, '/workspace/a', 'k')""", (o, sbx))
        cur.execute("""INSERT INTO webhooks (org_id, url, secret) VALUES (%s, 'https://x.test/h',
                       'whsec_x') RETURNING id""", (o,))
        hook = cur.fetchone()[0]
        cur.execute("""INSERT INTO webhook_events (org_id, event, sandbox_id)
                       VALUES (%s, 'sandbox.created', %s) RETURNING id""", (o, sbx))
        ev = cur.fetchone()[0]
        cur.execute("""INSERT INTO webhook_deliveries (org_id, webhook_id, event_id, event)
                       VALUES (%s, %s, %s, 'sandbox.created')""", (o, hook, ev))
        cur.execute("""INSERT INTO usage_events (org_id, sandbox_id, kind, quantity)
                       VALUES (%s, %s, 'sandbox_created', 1)""", (o, sbx))
        cur.execute("""INSERT INTO audit_logs (org_id, action, outcome, sandbox_id)
                       VALUES (%s, 'sandbox.create', 'success', %s)""", (o, sbx))
        cur.execute("""INSERT INTO idempotency_keys (org_id, key, fingerprint)
                       VALUES (%s, 'idem-1', repeat('0', 64))""", (o,))
        cur.execute("""INSERT INTO secrets (org_id, name, value_enc, key_id)
                       VALUES (%s, 'S1', 'sbxenc:v1:x', '0123456789abcdef') RETURNING id""", (o,))
        cur.execute("""INSERT INTO sandbox_secrets (org_id, sandbox_id, secret_id)
                       VALUES (%s, %s, %s)""", (o, sbx, cur.fetchone()[0]))
        cur.execute("""INSERT INTO rate_limit_buckets (org_id, bucket, tokens)
                       VALUES (%s, 'org', 10)""", (o,))
    conn.commit()
    return {"sandbox": sbx, "key_id": "K" + o.replace("-", "")[:11]}


@pytest.fixture(scope="module")
def orgs(pg):
    a, b = uuid.uuid4(), uuid.uuid4()
    conn = pg.connect("app")
    try:
        info = {"a": a, "b": b, "a_rows": seed_org(conn, a), "b_rows": seed_org(conn, b)}
    finally:
        conn.close()
    return info


@pytest.fixture
def app(pg):
    conn = pg.connect("app")
    yield conn
    conn.rollback()
    conn.close()


@pytest.fixture
def owner(pg):
    conn = pg.connect("owner")
    yield conn
    conn.rollback()
    conn.close()


def set_org(cur, org):
    cur.execute("SELECT set_config('sbx.org_id', %s, true)", (str(org) if org else "",))


# ---- (a) no org: nothing visible --------------------------------------------------------------

def test_every_tenant_table_is_seeded(owner, orgs):
    # the owner bypasses RLS: make sure (a) and (b) test real rows, not empty tables
    with owner.cursor() as cur:
        for t in tenant_tables(cur) + ["orgs"]:
            cur.execute('SELECT count(*) FROM "%s"' % t)
            assert cur.fetchone()[0] >= 2, t


@pytest.mark.parametrize("how", ["unset", "empty"])
def test_no_org_sees_nothing(app, orgs, how):
    with app.cursor() as cur:
        tables = tenant_tables(cur) + ["orgs"]
        if how == "empty":
            set_org(cur, None)
        for t in tables:
            cur.execute('SELECT count(*) FROM "%s"' % t)
            assert cur.fetchone()[0] == 0, "%s visible without an org" % t


def test_no_org_cannot_insert(app, orgs):
    with app.cursor() as cur:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("INSERT INTO sandboxes (org_id) VALUES (%s)", (str(orgs["a"]),))


# ---- (b) org A set: B invisible, B's id refused ------------------------------------------------

def test_org_sees_only_its_rows(app, orgs):
    with app.cursor() as cur:
        set_org(cur, orgs["a"])
        for t in tenant_tables(cur):
            cur.execute('SELECT DISTINCT org_id::text FROM "%s"' % t)
            assert [r[0] for r in cur.fetchall()] == [str(orgs["a"])], t
        cur.execute("SELECT id::text FROM orgs")
        assert [r[0] for r in cur.fetchall()] == [str(orgs["a"])]


@pytest.mark.parametrize("sql", [
    "INSERT INTO sandboxes (org_id) VALUES (%(b)s)",
    "INSERT INTO users (org_id, email) VALUES (%(b)s, 'x-' || %(b)s || '@e.com')",
    "INSERT INTO audit_logs (org_id, action, outcome) VALUES (%(b)s, 'sandbox.create', 'success')",
    "INSERT INTO usage_events (org_id, kind, quantity) VALUES (%(b)s, 'exec_count', 1)",
    "INSERT INTO idempotency_keys (org_id, key, fingerprint) VALUES (%(b)s, 'k', repeat('0', 64))",
    "INSERT INTO webhooks (org_id, url, secret) VALUES (%(b)s, 'https://e.test', 's')",
    "INSERT INTO orgs (id, name, slug) VALUES (%(b2)s, 'x', 'x-' || left(%(b2)s, 8))",
    "UPDATE sandboxes SET org_id = %(b)s",            # moving a row to another org
])
def test_cross_org_write_refused(app, orgs, sql):
    with app.cursor() as cur:
        set_org(cur, orgs["a"])
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(sql, {"b": str(orgs["b"]), "b2": str(uuid.uuid4())})


def test_cross_org_update_delete_touch_nothing(app, orgs):
    with app.cursor() as cur:
        set_org(cur, orgs["a"])
        sb = str(orgs["b_rows"]["sandbox"])
        cur.execute("UPDATE sandboxes SET status = 'error' WHERE id = %s", (sb,))
        assert cur.rowcount == 0
        cur.execute("DELETE FROM sandboxes WHERE id = %s", (sb,))
        assert cur.rowcount == 0


def test_cross_org_reference_refused(app, orgs):
    # composite foreign keys: org A cannot point at org B's sandbox
    with app.cursor() as cur:
        set_org(cur, orgs["a"])
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            cur.execute("INSERT INTO executions (org_id, sandbox_id, command) VALUES (%s, %s, 'x')",
                        (str(orgs["a"]), str(orgs["b_rows"]["sandbox"])))


def test_setting_does_not_outlive_transaction(app, orgs):
    with app.cursor() as cur:
        set_org(cur, orgs["a"])
        cur.execute("SELECT count(*) FROM sandboxes")
        assert cur.fetchone()[0] == 1
        app.commit()
        cur.execute("SELECT count(*) FROM sandboxes")
        assert cur.fetchone()[0] == 0


def test_unique_constraints_work_across_rls(app, orgs):
    with app.cursor() as cur:
        c = str(uuid.uuid4())
        set_org(cur, c)
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("INSERT INTO orgs (id, name, slug) VALUES (%s, 'x', %s)",
                        (c, "t-" + str(orgs["a"])[:8]))


def test_email_stored_lowercase(app, orgs):
    with app.cursor() as cur:
        set_org(cur, orgs["a"])
        with pytest.raises(psycopg2.errors.CheckViolation):
            cur.execute("INSERT INTO users (org_id, email) VALUES (%s, 'Mixed@Example.com')",
                        (str(orgs["a"]),))


# ---- definer functions -------------------------------------------------------------------------

def test_auth_key_without_org(app, orgs):
    with app.cursor() as cur:
        cur.execute("SELECT id, org_id::text, length(key_hash), mode, revoked_at "
                    "FROM sbx_auth_key(%s)", (orgs["a_rows"]["key_id"],))
        rows = cur.fetchall()
        assert len(rows) == 1 and rows[0][1] == str(orgs["a"]) and rows[0][2] == 32
        cur.execute("SELECT count(*) FROM sbx_auth_key('nosuchkey0')")
        assert cur.fetchone()[0] == 0


def test_reconciler_functions_without_org(app, orgs):
    with app.cursor() as cur:
        cur.execute("SELECT org_id::text FROM sbx_sandboxes_active()")
        seen = {r[0] for r in cur.fetchall()}
        assert {str(orgs["a"]), str(orgs["b"])} <= seen
        cur.execute("SELECT id FROM sbx_sandboxes_expired(now())")
        ids = {r[0] for r in cur.fetchall()}
        assert {str(orgs["a_rows"]["sandbox"]), str(orgs["b_rows"]["sandbox"])} <= ids
        cur.execute("SELECT count(*) FROM sbx_webhook_events_pending(100)")
        assert cur.fetchone()[0] >= 2
        cur.execute("SELECT count(*) FROM sbx_webhook_deliveries_due(now(), 100)")
        assert cur.fetchone()[0] >= 2


def test_definer_functions_fixed_search_path_and_not_public(owner):
    with owner.cursor() as cur:
        cur.execute("""SELECT p.proname, p.proconfig, p.proacl::text, pg_get_userbyid(p.proowner)
                         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                        WHERE n.nspname = 'public' AND p.prosecdef""")
        rows = cur.fetchall()
        assert {r[0] for r in rows} >= {"sbx_auth_key", "sbx_sandboxes_active",
                                        "sbx_sandboxes_expired"}
        for name, config, acl, ownr in rows:
            assert any(c.startswith("search_path=") for c in (config or [])), name
            grantees = {e.split("=")[0] for e in acl.strip("{}").split(",")} if acl else None
            # no PUBLIC ("" grantee, which NULL acl also implies); only owner and app
            assert grantees and grantees <= {"sandboxd_owner", "sandboxd_app"}, (name, acl)
            assert ownr == "sandboxd_owner", name


def test_app_cannot_call_rls_helper_or_ddl(app):
    with app.cursor() as cur:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("SELECT sbx_enable_tenant_rls('orgs')")
    app.rollback()
    with app.cursor() as cur:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("CREATE TABLE evil (id int)")
    app.rollback()
    with app.cursor() as cur:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("ALTER TABLE sandboxes DISABLE ROW LEVEL SECURITY")
    app.rollback()
    with app.cursor() as cur:
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("INSERT INTO schema_migrations VALUES (999, 'x', repeat('0', 64))")


# ---- (c) every tenant table: RLS enabled, forced, with a policy --------------------------------

def test_every_tenant_table_enforces_rls(owner):
    with owner.cursor() as cur:
        tables = tenant_tables(cur)
        assert len(tables) >= 14
        for t in all_tables(cur):
            assert t in tables or t == "orgs" or t in NON_TENANT_TABLES, \
                "table %s has no org_id: add one (and RLS) or list it in NON_TENANT_TABLES" % t
        for t in tables + ["orgs"]:
            cur.execute("""SELECT c.relrowsecurity, c.relforcerowsecurity,
                                  (SELECT count(*) FROM pg_policies p
                                    WHERE p.schemaname = 'public' AND p.tablename = c.relname),
                                  -- every PERMISSIVE policy (they OR together) is scoped to
                                  -- the org; RESTRICTIVE ones (ANDed, e.g. test/live mode
                                  -- isolation) can only narrow what those allow
                                  (SELECT bool_and(p.qual LIKE '%%sbx_current_org()%%'
                                                   AND coalesce(p.with_check, p.qual)
                                                       LIKE '%%sbx_current_org()%%')
                                     FROM pg_policies p
                                    WHERE p.schemaname = 'public' AND p.tablename = c.relname
                                      AND p.permissive = 'PERMISSIVE')
                             FROM pg_class c WHERE c.oid = %s::regclass""", ('public."%s"' % t,))
            enabled, forced, npol, scoped = cur.fetchone()
            assert enabled, "%s: RLS not enabled" % t
            assert forced, "%s: RLS not forced" % t
            assert npol >= 1, "%s: no policy" % t
            assert scoped, "%s: a policy does not compare with sbx_current_org()" % t


# ---- (d) roles ---------------------------------------------------------------------------------

def test_app_role_owns_nothing_and_cannot_bypass(owner):
    with owner.cursor() as cur:
        cur.execute("""SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb
                         FROM pg_roles WHERE rolname = 'sandboxd_app'""")
        assert cur.fetchone() == (False, False, False, False)
        cur.execute("""SELECT relname FROM pg_class
                        WHERE relowner = 'sandboxd_app'::regrole""")
        assert cur.fetchall() == []
        cur.execute("SELECT proname FROM pg_proc WHERE proowner = 'sandboxd_app'::regrole")
        assert cur.fetchall() == []
        cur.execute("SELECT nspname FROM pg_namespace WHERE nspowner = 'sandboxd_app'::regrole")
        assert cur.fetchall() == []
        cur.execute("SELECT pg_has_role('sandboxd_app', 'sandboxd_owner', 'MEMBER')")
        assert cur.fetchone()[0] is False
        cur.execute("""SELECT DISTINCT pg_get_userbyid(relowner) FROM pg_class c
                         JOIN pg_namespace n ON n.oid = c.relnamespace
                        WHERE n.nspname = 'public'""")
        assert [r[0] for r in cur.fetchall()] == ["sandboxd_owner"]


# ---- (e), (f) migrations -----------------------------------------------------------------------

def _migrations(cur):
    cur.execute("SELECT version, name, checksum, applied_at FROM schema_migrations ORDER BY 1")
    return cur.fetchall()


def test_rerun_is_noop(pg, owner, dbmigrate):
    with owner.cursor() as cur:
        before = _migrations(cur)
    owner.rollback()
    out = run([dbmigrate, pg.url("owner"), SQL_DIR])
    assert "0 migration(s) applied" in out.stdout
    with owner.cursor() as cur:
        assert _migrations(cur) == before
    assert run([dbmigrate, "--check", pg.url("app"), SQL_DIR]).returncode == 0


def _copy_sql(tmp_path):
    d = tmp_path / "sql"
    shutil.copytree(SQL_DIR, str(d))
    return d


def test_broken_migration_rolls_back_and_names_file(pg, owner, dbmigrate, tmp_path):
    d = _copy_sql(tmp_path)
    (d / "0900_broken.sql").write_text(
        "CREATE TABLE broken_probe (id int);\n"
        "-- a comment\n"
        "SELECT no_such_function();\n")
    app_check = run([dbmigrate, "--check", pg.url("app"), str(d)], check=False)
    assert app_check.returncode == 3           # pending
    p = run([dbmigrate, pg.url("owner"), str(d)], check=False)
    assert p.returncode != 0
    assert "0900_broken.sql" in p.stderr
    assert "no_such_function" in p.stderr and "line 3" in p.stderr
    with owner.cursor() as cur:
        cur.execute("SELECT to_regclass('public.broken_probe')")
        assert cur.fetchone()[0] is None      # rolled back
        cur.execute("SELECT count(*) FROM schema_migrations WHERE version = 900")
        assert cur.fetchone()[0] == 0


def test_changed_applied_migration_is_refused(pg, dbmigrate, tmp_path):
    d = _copy_sql(tmp_path)
    with open(str(d / "0001_init.sql"), "a") as f:
        f.write("\n-- edited after release\n")
    p = run([dbmigrate, pg.url("owner"), str(d)], check=False)
    assert p.returncode != 0 and "0001_init.sql" in p.stderr and "changed" in p.stderr
    assert run([dbmigrate, "--check", pg.url("app"), str(d)], check=False).returncode == 3


def test_badly_named_migration_is_refused(pg, dbmigrate, tmp_path):
    d = _copy_sql(tmp_path)
    (d / "2_oops.sql").write_text("SELECT 1;")
    p = run([dbmigrate, pg.url("owner"), str(d)], check=False)
    assert p.returncode != 0 and "2_oops.sql" in p.stderr


def test_unknown_applied_version_is_refused(pg, dbmigrate, tmp_path):
    # a database migrated by a newer build than this sql dir
    d = tmp_path / "empty"
    d.mkdir()
    p = run([dbmigrate, pg.url("owner"), str(d)], check=False)
    assert p.returncode != 0 and "newer" in p.stderr


def test_new_migration_applies(pg, owner, dbmigrate, tmp_path):
    d = _copy_sql(tmp_path)
    (d / "0901_probe.sql").write_text(
        "CREATE TABLE probe_items (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
        " org_id uuid NOT NULL REFERENCES orgs (id));\n"
        "SELECT sbx_enable_tenant_rls('probe_items');\n")
    try:
        p = run([dbmigrate, pg.url("owner"), str(d)])
        assert "1 migration(s) applied" in p.stdout
        with owner.cursor() as cur:
            cur.execute("SELECT relforcerowsecurity FROM pg_class WHERE relname = 'probe_items'")
            assert cur.fetchone()[0] is True
    finally:
        with owner.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS probe_items")
            cur.execute("DELETE FROM schema_migrations WHERE version = 901")
        owner.commit()


# ---- storage/db.c against the live database ----------------------------------------------------

def test_db_layer_selftest(pg, db_selftest):
    p = run([db_selftest, pg.url("app"), SQL_DIR], check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "not ok" not in p.stdout


# ---- scripts/pg.sh -----------------------------------------------------------------------------

def test_pg_sh_start_is_idempotent(pg):
    p = pg.start()
    assert "reusing" in p.stderr
    c = pg.connect("app")
    c.close()


def test_pg_sh_recovers_from_stale_pidfile(workdir):
    inst = PG(os.path.join(workdir, "stale"), free_port())
    inst.start()
    try:
        inst.stop()
        # a postmaster.pid left behind whose pid now belongs to an unrelated live process
        with open(os.path.join(inst.datadir, "postmaster.pid"), "w") as f:
            f.write("%d\n%s\n0\n%d\n" % (os.getpid(), inst.datadir, inst.port))
        assert "started" in inst.start().stderr
        c = inst.connect("owner")
        c.close()
        # a different port restarts the running server on that port
        inst.port = free_port()
        inst.start()
        inst.connect("app").close()
        assert run([os.path.join(os.path.dirname(SQL_DIR), "scripts", "pg.sh"), "status",
                    inst.datadir]).stdout.strip() == "running on port %d" % inst.port
    finally:
        inst.stop()
