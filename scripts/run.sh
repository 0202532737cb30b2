#!/usr/bin/env bash
# scripts/run.sh — install, build and run sandboxd on this machine (Debian bookworm, as root).
#
#   1. installs the Debian packages it needs (skipped when they are all present);
#   2. builds build/ (meson + ninja);
#   3. starts (or reuses) a private Postgres 15 under .state/pg on port 55432 (scripts/pg.sh);
#   4. runs build/controller/sandboxd in the foreground on 127.0.0.1:8080 with the embedded defaults.
#
# Running it again is safe: packages and the build are checked, a running Postgres is reused.
# Overrides: SANDBOXD_LISTEN_ADDRESS, SANDBOXD_LISTEN_PORT (8080), SBX_PG_PORT (55432),
# SBX_PG_DIR (.state/pg), and every other SANDBOXD_* setting (docs/internals/CONFIG.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SBX_ROOT"

pg_port=${SBX_PG_PORT:-55432}
addr=${SANDBOXD_LISTEN_ADDRESS:-127.0.0.1}
port=${SANDBOXD_LISTEN_PORT:-8080}

sbx_install_deps
sbx_build build
pg_dir=${SBX_PG_DIR:-$(sbx_pg_dir pg)}

sbx_log "starting Postgres ($pg_dir, port $pg_port)"
bash scripts/pg.sh start "$pg_dir" "$pg_port"
app_url=$(bash scripts/pg.sh url "$pg_dir" "$pg_port" app)
owner_url=$(bash scripts/pg.sh url "$pg_dir" "$pg_port" owner)

mkdir -p .state/sandboxd
export SANDBOXD_LISTEN_ADDRESS=$addr
export SANDBOXD_LISTEN_PORT=$port
export SANDBOXD_DATABASE_URL=${SANDBOXD_DATABASE_URL:-$app_url}
export SANDBOXD_DATABASE_MIGRATE_URL=${SANDBOXD_DATABASE_MIGRATE_URL:-$owner_url}
export SANDBOXD_DATABASE_MIGRATIONS_DIR=${SANDBOXD_DATABASE_MIGRATIONS_DIR:-$SBX_ROOT/sql}
export SANDBOXD_STATE_DIR=${SANDBOXD_STATE_DIR:-$SBX_ROOT/.state/sandboxd}

base="http://$addr:$port"
cat >&2 <<MSG

  sandboxd is starting on $base  (Ctrl-C stops it; Postgres keeps running:
  'scripts/pg.sh stop $pg_dir' stops it)

  Register an organization and get an API key:

    curl -sS -X POST $base/api/v1/register \\
      -H 'Content-Type: application/json' \\
      -d '{"email":"you@example.com","organization_name":"My Org"}'

  Then call the API with it:

    curl -sS $base/api/v1/api-keys -H 'Authorization: ApiKey sk_live_...'

MSG
exec build/controller/sandboxd "$@"
