#!/bin/bash
# pg.sh — a private PostgreSQL 15 instance for sandboxd development and tests.
#
#   scripts/pg.sh start DATADIR PORT [--fast]   initialise (first time) and start; idempotent
#   scripts/pg.sh stop DATADIR                  stop (fast shutdown); no-op if not running
#   scripts/pg.sh status DATADIR                exit 0 if running, 3 if not
#   scripts/pg.sh url DATADIR PORT owner|app    print a libpq connection URI
#
# The server listens on 127.0.0.1:PORT and on a unix socket inside DATADIR only. On first start
# it creates database `sandboxd`, role `sandboxd_owner` (owns the schema, runs migrations,
# BYPASSRLS so that migrations and the SECURITY DEFINER functions see every org) and role
# `sandboxd_app` (what the daemon uses: no ownership, no BYPASSRLS, only the grants the
# migrations give it). Both log in with random passwords (scram-sha-256) kept in
# DATADIR/sandboxd-credentials (mode 0600, postgres-owned); `url` prints them. The superuser
# `postgres` is reachable only through the socket in DATADIR (mode 0700), with trust.
#
# --fast (or SBX_PG_FAST=1) turns fsync, synchronous_commit and full_page_writes off: test
# instances only — a crash can corrupt such a cluster.
#
# Run as root (CI): initdb/pg_ctl run as the `postgres` user through runuser; the DATADIR's
# parent directories must be traversable by that user. Run as any other user: everything runs
# as that user. Never reads stdin.
set -euo pipefail

PGBIN=${SBX_PGBIN:-/usr/lib/postgresql/15/bin}
DBNAME=sandboxd
OWNER=sandboxd_owner
APP=sandboxd_app

die() { echo "pg.sh: $*" >&2; exit 1; }
usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ -x "$PGBIN/pg_ctl" ] || die "no PostgreSQL binaries in $PGBIN (set SBX_PGBIN)"

if [ "$(id -u)" -eq 0 ]; then
    PGUSER_OS=postgres
    as_pg_in() { (cd / && runuser -u "$PGUSER_OS" -- "$@"); }
else
    PGUSER_OS=$(id -un)
    as_pg_in() { (cd / && "$@"); }
fi
# as_pg never reads the caller's stdin (CI runs us without one); as_pg_in passes it on.
as_pg() { as_pg_in "$@" </dev/null; }

abspath() {
    case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$(pwd)" "$1" ;;
    esac
}

check_port() {
    case "$1" in
    '' | *[!0-9]*) die "bad port '$1'" ;;
    esac
    [ "$1" -ge 1 ] && [ "$1" -le 65535 ] || die "bad port '$1'"
}

# The pid of the postmaster serving DATADIR, or nothing. A postmaster.pid whose pid is dead, or
# belongs to a process that is not a postgres running in DATADIR (pid reuse after a crash or a
# container restart), is stale.
live_pid() {
    local d=$1 pid cwd
    [ -f "$d/postmaster.pid" ] || return 0
    pid=$(head -n1 "$d/postmaster.pid" 2>/dev/null || true)
    case "$pid" in '' | *[!0-9]*) return 0 ;; esac
    [ -d "/proc/$pid" ] || return 0
    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || true)
    [ "$cwd" = "$(readlink -f "$d")" ] || return 0
    printf '%s\n' "$pid"
}

running_port() { sed -n '4p' "$1/postmaster.pid" 2>/dev/null || true; }

gen_password() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

cred() { sed -n "s/^$2=//p" "$1/sandboxd-credentials" 2>/dev/null | head -n1; }

psql_super() {
    local d=$1 port=$2
    shift 2
    as_pg_in "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$d" -p "$port" -U postgres "$@"
}

do_init() {
    local d=$1 parent
    parent=$(dirname "$d")
    mkdir -p "$d"
    if [ "$(id -u)" -eq 0 ]; then
        chown "$PGUSER_OS:" "$d"
        as_pg test -x "$parent" || die "$parent is not traversable by user $PGUSER_OS"
    fi
    chmod 700 "$d"
    [ -z "$(ls -A "$d")" ] || die "$d is not empty and holds no cluster"
    as_pg "$PGBIN/initdb" -D "$d" -U postgres --auth-local=trust --auth-host=reject \
        -E UTF8 --locale=C.UTF-8 >"$d.initdb.log" 2>&1 ||
        { cat "$d.initdb.log" >&2; die "initdb failed"; }
    rm -f "$d.initdb.log"
    cat >"$d/pg_hba.conf" <<EOF
# written by sandboxd scripts/pg.sh
# TYPE  DATABASE  USER                          ADDRESS        METHOD
local   all       postgres                                     trust
local   $DBNAME   $OWNER,$APP                                  scram-sha-256
host    $DBNAME   $OWNER,$APP                   127.0.0.1/32   scram-sha-256
EOF
    printf "owner=%s\napp=%s\n" "$(gen_password)" "$(gen_password)" >"$d/sandboxd-credentials"
    echo "include_if_exists = 'sandboxd.conf'" >>"$d/postgresql.conf"
    if [ "$(id -u)" -eq 0 ]; then chown "$PGUSER_OS:" "$d/pg_hba.conf" "$d/sandboxd-credentials"; fi
    chmod 600 "$d/sandboxd-credentials"
}

write_conf() {
    local d=$1 port=$2 fast=$3
    {
        echo "# written by sandboxd scripts/pg.sh on every start"
        echo "listen_addresses = '127.0.0.1'"
        echo "port = $port"
        echo "unix_socket_directories = '$d'"
        echo "unix_socket_permissions = 0700"
        echo "password_encryption = 'scram-sha-256'"
        echo "max_connections = 200"
        echo "log_min_messages = warning"
        echo "log_min_error_statement = error"
        if [ "$fast" = 1 ]; then
            echo "fsync = off"
            echo "synchronous_commit = off"
            echo "full_page_writes = off"
        fi
    } >"$d/sandboxd.conf"
    if [ "$(id -u)" -eq 0 ]; then chown "$PGUSER_OS:" "$d/sandboxd.conf"; fi
}

# Roles and database: idempotent, and passwords are (re)set from the credentials file.
bootstrap() {
    local d=$1 port=$2 owner_pw app_pw
    owner_pw=$(cred "$d" owner)
    app_pw=$(cred "$d" app)
    [ -n "$owner_pw" ] && [ -n "$app_pw" ] || die "$d/sandboxd-credentials is missing or incomplete"
    psql_super "$d" "$port" -d postgres >/dev/null <<EOF
SELECT 'CREATE ROLE $OWNER' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$OWNER') \gexec
SELECT 'CREATE ROLE $APP' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$APP') \gexec
ALTER ROLE $OWNER LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE BYPASSRLS PASSWORD '$owner_pw';
ALTER ROLE $APP LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD '$app_pw';
SELECT 'CREATE DATABASE $DBNAME OWNER $OWNER ENCODING ''UTF8'' TEMPLATE template0'
  WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DBNAME') \gexec
REVOKE ALL ON DATABASE $DBNAME FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE $DBNAME TO $OWNER;
GRANT CONNECT ON DATABASE $DBNAME TO $APP;
EOF
    # PG15: schema public belongs to pg_database_owner (= sandboxd_owner) and PUBLIC has no
    # CREATE on it; make that explicit and keep the app role out of DDL.
    psql_super "$d" "$port" -d "$DBNAME" >/dev/null <<EOF
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
ALTER SCHEMA public OWNER TO $OWNER;
EOF
}

cmd_start() {
    [ $# -ge 2 ] || usage
    local d port fast=${SBX_PG_FAST:-0} pid cur
    d=$(abspath "$1")
    port=$2
    shift 2
    check_port "$port"
    for a in "$@"; do
        case "$a" in
        --fast) fast=1 ;;
        *) die "unknown option $a" ;;
        esac
    done
    if [ ! -f "$d/PG_VERSION" ]; then
        do_init "$d"
    fi
    pid=$(live_pid "$d")
    if [ -n "$pid" ]; then
        cur=$(running_port "$d")
        if [ "$cur" = "$port" ]; then
            bootstrap "$d" "$port"
            echo "pg.sh: reusing server pid $pid on 127.0.0.1:$port ($d)" >&2
            return 0
        fi
        echo "pg.sh: server running on port $cur, restarting on $port" >&2
        as_pg "$PGBIN/pg_ctl" -D "$d" -m fast -w stop >/dev/null
    else
        # Stale lock files from a crashed or killed server: postgres may refuse to start if the
        # recorded pid now belongs to some other process.
        rm -f "$d/postmaster.pid" "$d"/.s.PGSQL.*.lock
    fi
    write_conf "$d" "$port" "$fast"
    if ! as_pg "$PGBIN/pg_ctl" -D "$d" -l "$d/server.log" -w -t 60 start >/dev/null; then
        tail -n 20 "$d/server.log" >&2 || true
        die "server did not start (see $d/server.log)"
    fi
    bootstrap "$d" "$port"
    echo "pg.sh: started on 127.0.0.1:$port ($d)" >&2
}

cmd_stop() {
    [ $# -ge 1 ] || usage
    local d
    d=$(abspath "$1")
    [ -f "$d/PG_VERSION" ] || die "$d holds no cluster"
    if [ -z "$(live_pid "$d")" ]; then
        echo "pg.sh: not running ($d)" >&2
        return 0
    fi
    as_pg "$PGBIN/pg_ctl" -D "$d" -m fast -w -t 60 stop >/dev/null
    echo "pg.sh: stopped ($d)" >&2
}

cmd_status() {
    [ $# -ge 1 ] || usage
    local d
    d=$(abspath "$1")
    if [ -n "$(live_pid "$d")" ]; then
        echo "running on port $(running_port "$d")"
        return 0
    fi
    echo "not running"
    return 3
}

cmd_url() {
    [ $# -ge 3 ] || usage
    local d port role user pw
    d=$(abspath "$1")
    port=$2
    role=$3
    check_port "$port"
    case "$role" in
    owner) user=$OWNER ;;
    app) user=$APP ;;
    *) die "role must be owner or app" ;;
    esac
    pw=$(cred "$d" "$role")
    [ -n "$pw" ] || die "no credentials in $d (start the server first)"
    printf 'postgresql://%s:%s@127.0.0.1:%s/%s\n' "$user" "$pw" "$port" "$DBNAME"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
url) cmd_url "$@" ;;
*) usage ;;
esac
