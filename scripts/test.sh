#!/usr/bin/env bash
# scripts/test.sh — everything CI runs (.ci/run execs this), on a fresh Debian bookworm as root.
#
#   1. installs the Debian packages it needs (skipped when they are all present);
#   2. builds build/ (plain) and build-asan/ (AddressSanitizer + UndefinedBehaviorSanitizer);
#   3. runs `meson test` in each (unit + runtime suites, TAP);
#   4. starts (or reuses) a private test Postgres (.state/pg-test, port 55433; never the one
#      scripts/run.sh uses) and runs the pytest API suite once against each daemon binary, and
#      tests/api once more per SBX_K8S_FLAVORS with the Kubernetes runtime (through the
#      Kubernetes API emulator, SANDBOXD_TEST_RUNTIME=k8s);
#   5. prints one closing line "N passed, N failed[, N skipped]" adding up every run
#      (tests/run-summary.py) and exits non-zero when anything failed.
#
# Works unattended (CI=true, no stdin). Environment knobs:
#   SBX_TEST_FLAVORS   "plain asan" (default) — which builds to test
#   SBX_K8S_FLAVORS    "plain asan" (default) — which of those also run tests/api on the
#                      Kubernetes runtime ("" = none)
#   SBX_PYTEST_ARGS    extra pytest arguments (e.g. "-k register -x")
#   SBX_SKIP_MESON=1   skip the meson (C) suites; SBX_SKIP_API=1 skip the pytest suites
#   SBX_SKIP_PACKAGING=1   skip tests/packaging (Containerfile, Helm chart, manifests/)
#   SBX_SKIP_IMAGE=1   skip tests/packaging/test_image.py (builds the images with Podman: about
#                      1.5 min the first time on a 2-core machine, seconds when they are current)
#   SBX_TEST_PG_DIR / SBX_TEST_PG_PORT   the test Postgres (.state/pg-test, 55433)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$SBX_ROOT" || exit 1
exec </dev/null

started=$SECONDS
results=$SBX_ROOT/.state/test-results
rm -rf "$results"
mkdir -p "$results"
failed_steps=()
flavors=${SBX_TEST_FLAVORS:-plain asan}

elapsed() { printf '%dm%02ds' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)); }

if ! sbx_install_deps; then
    echo "package installation failed" >&2
    /usr/bin/python3 "$SBX_ROOT/tests/run-summary.py" --fail install-packages 2>/dev/null \
        || echo "0 passed, 1 failed"
    exit 1
fi

# The S3-compatible test server of tests/storage (npm; a missing one only skips those tests).
sbx_install_s3rver || sbx_log "s3rver not installed: the S3 storage tests will be skipped"

builddir() { case $1 in plain) echo build ;; asan) echo build-asan ;; esac; }

# --- build ---------------------------------------------------------------------------------
declare -A built=()
for fl in $flavors; do
    dir=$(builddir "$fl")
    case $fl in
        plain) opts=() ;;
        asan)  opts=(-Db_sanitize=address,undefined) ;;
        *) echo "unknown flavor $fl" >&2; failed_steps+=("flavor-$fl"); continue ;;
    esac
    if sbx_build "$dir" "${opts[@]}"; then
        built[$fl]=1
    else
        failed_steps+=("build-$fl")
    fi
    sbx_log "[$(elapsed)] build $fl done"
done

# --- meson (C unit + runtime suites) -------------------------------------------------------
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:print_summary=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:print_summary=1}
if [[ ${SBX_SKIP_MESON:-0} != 1 ]]; then
    for fl in $flavors; do
        [[ -n ${built[$fl]:-} ]] || continue
        dir=$(builddir "$fl")
        mult=1; [[ $fl == asan ]] && mult=3
        sbx_log "meson test ($dir)"
        rm -f "$dir/meson-logs/testlog.json"
        meson test -C "$dir" --no-rebuild --print-errorlogs --timeout-multiplier "$mult" \
            --num-processes "$(sbx_jobs)"
        rc=$?
        if [[ -s $dir/meson-logs/testlog.json ]]; then
            cp "$dir/meson-logs/testlog.json" "$results/meson-$fl.json"
        elif ((rc != 0)); then
            failed_steps+=("meson-test-$fl")
        fi
        sbx_log "[$(elapsed)] meson test $fl done (exit $rc)"
    done
fi

# --- pytest (black-box API suites against a real daemon and Postgres) ----------------------
pg_dir=${SBX_TEST_PG_DIR:-$(sbx_pg_dir pg-test)}
# The default port, unless another cluster (not ours) already listens there: then any free one.
pg_port_free() {
    /usr/bin/python3 -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)' "$1"
}
pg_port=${SBX_TEST_PG_PORT:-55433}
if [[ -z ${SBX_TEST_PG_PORT:-} ]] && ! pg_port_free "$pg_port" \
        && ! grep -qx "$pg_port" <(sed -n 4p "$pg_dir/postmaster.pid" 2>/dev/null); then
    pg_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    sbx_log "port 55433 is taken by another cluster; the test Postgres uses $pg_port"
fi
pg_started_here=0
stop_pg() {
    if ((pg_started_here)); then
        bash scripts/pg.sh stop "$pg_dir" >/dev/null 2>&1 || true
    fi
}
trap stop_pg EXIT

pg_running() {
    local pid
    [[ -f $pg_dir/postmaster.pid ]] || return 1
    pid=$(head -n 1 "$pg_dir/postmaster.pid" 2>/dev/null) || return 1
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

# Starts (or reuses) the test Postgres once, for the API and the packaging suites; sets pg_ok.
pg_ok=
start_test_pg() {
    [[ -n $pg_ok ]] && return
    pg_ok=1
    if pg_running; then
        sbx_log "reusing the test Postgres in $pg_dir"
    else
        sbx_log "starting the test Postgres ($pg_dir, port $pg_port)"
    fi
    local was_running=0
    pg_running && was_running=1
    if bash scripts/pg.sh start "$pg_dir" "$pg_port"; then
        ((was_running)) || pg_started_here=1
    else
        pg_ok=0
        failed_steps+=("test-postgres")
    fi
    export SANDBOXD_TEST_PG_DIR=$pg_dir SANDBOXD_TEST_PG_PORT=$pg_port
}

if [[ ${SBX_SKIP_API:-0} != 1 ]]; then
    start_test_pg

    api_paths=()
    for p in tests/api tests/db tests/storage; do
        [[ -d $p ]] && api_paths+=("$p")
    done
    timeout_args=()
    /usr/bin/python3 -c 'import pytest_timeout' 2>/dev/null && timeout_args=(--timeout=300)
    # shellcheck disable=SC2206
    extra=(${SBX_PYTEST_ARGS:-})

    # Each suite runs in its own pytest process: tests/api and tests/db both have a conftest.py,
    # and helpers import theirs by module name.
    for fl in $flavors; do
        ((pg_ok)) || break
        # A flavor that did not build has already counted as failed; there is no daemon to test.
        [[ -n ${built[$fl]:-} ]] || continue
        dir=$(builddir "$fl")
        bin=$SBX_ROOT/$dir/controller/sandboxd
        for suite_path in "${api_paths[@]}"; do
            suite=$(basename "$suite_path")
            xml=$results/pytest-$fl-$suite.xml
            sbx_log "pytest $suite_path against $bin"
            SANDBOXD_BIN=$bin SANDBOXD_TEST_FLAVOR=$fl PYTHONDONTWRITEBYTECODE=1 \
                SBX_DBMIGRATE=${SBX_DBMIGRATE:-$SBX_ROOT/$dir/storage/dbmigrate} \
                SBX_BLOBCTL=$SBX_ROOT/$dir/storage/blobctl \
                timeout --kill-after=30 1500 \
                /usr/bin/python3 -m pytest "$suite_path" -p no:cacheprovider -rfEs \
                -o junit_family=xunit2 --junitxml="$xml" "${timeout_args[@]}" "${extra[@]}"
            rc=$?
            case $rc in
                0) ;;
                5) sbx_log "pytest collected no tests ($fl, $suite)"; rm -f "$xml" ;;
                *) [[ -s $xml ]] || failed_steps+=("pytest-$fl-$suite (exit $rc)") ;;
            esac
            sbx_log "[$(elapsed)] pytest $fl $suite done (exit $rc)"
        done
    done
fi

# --- pytest tests/api on the Kubernetes runtime (SANDBOXD_TEST_RUNTIME=k8s: the harness starts
# the Kubernetes API emulator once and puts every daemon on it; the emulator runs the pods as
# local sandboxes with the plain build's rtctl) ---------------------------------------------
k8s_flavors=${SBX_K8S_FLAVORS-plain asan}
if [[ ${SBX_SKIP_API:-0} != 1 && -d tests/api && -d tests/kube-emulator ]] && ((${pg_ok:-0})); then
    for fl in $k8s_flavors; do
        [[ -n ${built[$fl]:-} ]] || continue
        dir=$(builddir "$fl")
        rtctl=$SBX_ROOT/build/runtime/rtctl
        [[ -x $rtctl ]] || rtctl=$SBX_ROOT/$dir/runtime/rtctl
        xml=$results/pytest-$fl-api-k8s.xml
        sbx_log "pytest tests/api against $SBX_ROOT/$dir/controller/sandboxd on the Kubernetes runtime"
        SANDBOXD_TEST_RUNTIME=k8s KUBE_EMULATOR_RTCTL=$rtctl \
            SANDBOXD_BIN=$SBX_ROOT/$dir/controller/sandboxd SANDBOXD_TEST_FLAVOR=$fl \
            PYTHONDONTWRITEBYTECODE=1 \
            timeout --kill-after=30 1500 \
            /usr/bin/python3 -m pytest tests/api -p no:cacheprovider -rfEs \
            -o junit_family=xunit2 --junitxml="$xml" "${timeout_args[@]}" "${extra[@]}"
        rc=$?
        case $rc in
            0) ;;
            5) sbx_log "pytest collected no tests ($fl, api-k8s)"; rm -f "$xml" ;;
            *) [[ -s $xml ]] || failed_steps+=("pytest-$fl-api-k8s (exit $rc)") ;;
        esac
        sbx_log "[$(elapsed)] pytest $fl api-k8s done (exit $rc)"
    done
fi

# --- pytest tests/kube-emulator (the Kubernetes API emulator against real kubectl and
# python-kubernetes; needs only rtctl from the plain build — no daemon, no Postgres) ----------
if [[ ${SBX_SKIP_API:-0} != 1 && -n ${built[plain]:-} && -d tests/kube-emulator ]]; then
    xml=$results/pytest-plain-kube-emulator.xml
    sbx_log "pytest tests/kube-emulator (rtctl: build/runtime/rtctl)"
    kto=(); /usr/bin/python3 -c 'import pytest_timeout' 2>/dev/null && kto=(--timeout=120)
    # shellcheck disable=SC2206
    kextra=(${SBX_PYTEST_ARGS:-})
    KUBE_EMULATOR_RTCTL=$SBX_ROOT/build/runtime/rtctl PYTHONDONTWRITEBYTECODE=1 \
        timeout --kill-after=30 600 \
        /usr/bin/python3 -m pytest tests/kube-emulator -p no:cacheprovider -rfEsx \
        -o junit_family=xunit2 --junitxml="$xml" "${kto[@]}" "${kextra[@]}"
    rc=$?
    case $rc in
        0) ;;
        5) sbx_log "pytest collected no tests (kube-emulator)"; rm -f "$xml" ;;
        *) [[ -s $xml ]] || failed_steps+=("pytest-kube-emulator (exit $rc)") ;;
    esac
    sbx_log "[$(elapsed)] pytest kube-emulator done (exit $rc)"
fi

# --- pytest tests/k8s (the C Kubernetes client k8s/ through k8s/k8sctl against the emulator;
# needs build/k8s/k8sctl and build/runtime/rtctl from the plain build) --------------------------
if [[ ${SBX_SKIP_API:-0} != 1 && -n ${built[plain]:-} && -d tests/k8s ]]; then
    xml=$results/pytest-plain-k8s.xml
    sbx_log "pytest tests/k8s (k8sctl: build/k8s/k8sctl)"
    kto=(); /usr/bin/python3 -c 'import pytest_timeout' 2>/dev/null && kto=(--timeout=120)
    # shellcheck disable=SC2206
    kextra=(${SBX_PYTEST_ARGS:-})
    K8SCTL=$SBX_ROOT/build/k8s/k8sctl KUBE_EMULATOR_RTCTL=$SBX_ROOT/build/runtime/rtctl \
        PYTHONDONTWRITEBYTECODE=1 timeout --kill-after=30 900 \
        /usr/bin/python3 -m pytest tests/k8s -p no:cacheprovider -rfEsx \
        -o junit_family=xunit2 --junitxml="$xml" "${kto[@]}" "${kextra[@]}"
    rc=$?
    case $rc in
        0) ;;
        5) sbx_log "pytest collected no tests (k8s)"; rm -f "$xml" ;;
        *) [[ -s $xml ]] || failed_steps+=("pytest-k8s (exit $rc)") ;;
    esac
    sbx_log "[$(elapsed)] pytest k8s done (exit $rc)"
fi

# --- pytest tests/packaging (Containerfile, Helm chart, kustomize base: helm lint/template,
# schema validation; installs its npm packages itself and fails when it cannot; test_image.py
# builds the images with scripts/build-image.sh and runs them as the manifests do, against the
# test Postgres and the Kubernetes API emulator — SBX_SKIP_IMAGE=1 skips that part) -------------
if [[ ${SBX_SKIP_PACKAGING:-0} != 1 && -n ${built[plain]:-} && -d tests/packaging ]]; then
    xml=$results/pytest-plain-packaging.xml
    [[ ${SBX_SKIP_IMAGE:-0} == 1 ]] || start_test_pg
    sbx_log "pytest tests/packaging"
    if [[ ! -d tests/packaging/node_modules/kubernetes-models ]]; then
        sbx_log "installing the packaging tools (npm ci --prefix tests/packaging)"
        npm ci --prefix tests/packaging --no-audit --no-fund --loglevel=error >&2 \
            || sbx_log "npm ci --prefix tests/packaging failed: the packaging tests will fail"
    fi
    pto=(); /usr/bin/python3 -c 'import pytest_timeout' 2>/dev/null && pto=(--timeout=300)
    # shellcheck disable=SC2206
    pextra=(${SBX_PYTEST_ARGS:-})
    SANDBOXD_BIN=$SBX_ROOT/build/controller/sandboxd SBX_PACKAGING_BUILD=$SBX_ROOT/build \
        KUBE_EMULATOR_RTCTL=$SBX_ROOT/build/runtime/rtctl \
        PYTHONDONTWRITEBYTECODE=1 timeout --kill-after=30 2400 \
        /usr/bin/python3 -m pytest tests/packaging -p no:cacheprovider -rfEs \
        -o junit_family=xunit2 --junitxml="$xml" "${pto[@]}" "${pextra[@]}"
    rc=$?
    case $rc in
        0) ;;
        5) sbx_log "pytest collected no tests (packaging)"; rm -f "$xml" ;;
        *) [[ -s $xml ]] || failed_steps+=("pytest-packaging (exit $rc)") ;;
    esac
    sbx_log "[$(elapsed)] pytest packaging done (exit $rc)"
fi

# --- summary -------------------------------------------------------------------------------
fail_args=()
for s in "${failed_steps[@]}"; do fail_args+=(--fail "$s"); done
shopt -s nullglob
reports=("$results"/*)
echo
echo "Test results ($(elapsed)):"
/usr/bin/python3 tests/run-summary.py "${fail_args[@]}" "${reports[@]}"
exit $?
