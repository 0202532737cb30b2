"""Fixtures for the database tests: a private Postgres started with scripts/pg.sh, migrated with
the built `dbmigrate`. Run with Debian's interpreter:

    /usr/bin/python3 -m pytest tests/db -q

SBX_DBMIGRATE may point at the built dbmigrate (default: build-db/storage/dbmigrate, then
build/storage/dbmigrate); db-selftest is looked up next to it.
"""
import os
import shutil
import socket
import subprocess
import tempfile

import psycopg2
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PG_SH = os.path.join(ROOT, "scripts", "pg.sh")
SQL_DIR = os.path.join(ROOT, "sql")


def _find_dbmigrate():
    env = os.environ.get("SBX_DBMIGRATE")
    if env:
        return env
    for b in ("build-db", "build"):
        p = os.path.join(ROOT, b, "storage", "dbmigrate")
        if os.access(p, os.X_OK):
            return p
    pytest.skip("dbmigrate not built (set SBX_DBMIGRATE or build build-db/)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, check=True, **kw):
    p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=120, **kw)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (args[0], p.returncode, p.stdout, p.stderr))
    return p


class PG:
    def __init__(self, datadir, port):
        self.datadir, self.port = datadir, port

    def start(self):
        return run([PG_SH, "start", self.datadir, str(self.port), "--fast"])

    def stop(self):
        return run([PG_SH, "stop", self.datadir], check=False)

    def url(self, role):
        return run([PG_SH, "url", self.datadir, str(self.port), role]).stdout.strip()

    def connect(self, role):
        c = psycopg2.connect(self.url(role))
        c.autocommit = False
        return c


@pytest.fixture(scope="session")
def workdir():
    # postgres (the OS user pg.sh runs the server as when we are root) must traverse it
    d = tempfile.mkdtemp(prefix="sbx-dbtest-")
    os.chmod(d, 0o711)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def dbmigrate():
    return _find_dbmigrate()


@pytest.fixture(scope="session")
def db_selftest(dbmigrate):
    p = os.path.join(os.path.dirname(dbmigrate), "db-selftest")
    if not os.access(p, os.X_OK):
        pytest.skip("db-selftest not built")
    return p


@pytest.fixture(scope="session")
def pg(workdir, dbmigrate):
    inst = PG(os.path.join(workdir, "data"), free_port())
    inst.start()
    try:
        out = run([dbmigrate, inst.url("owner"), SQL_DIR])
        assert "applied" in out.stdout
        yield inst
    finally:
        inst.stop()
