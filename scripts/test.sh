#!/usr/bin/env bash
# The one test command: formatting, lints, then every test of the workspace.
#
#   bash scripts/test.sh
#
# The first failing step stops the run (set -e) and the last line names it.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

current=""
step() {
    current="$*"
    echo
    echo "==> $current"
}
stop_broker() { :; }
trap 'status=$?; stop_broker; if [ "$status" -ne 0 ]; then echo; echo "==> FAILED (exit $status): $current" >&2; fi' EXIT

# A cold build and the tests need a few GiB; say so plainly instead of failing in the linker.
free_kib=$(df -Pk . | awk 'NR == 2 { print $4 }')
if [ -n "$free_kib" ] && [ "$free_kib" -lt $((4 * 1024 * 1024)) ]; then
    echo "warning: only $((free_kib / 1024)) MiB free on $(df -P . | awk 'NR == 2 { print $6 }');" \
        "a cold build and the tests need about 4 GiB (hint: cargo clean, or free space)" >&2
fi

step "cargo fmt --all -- --check (formatting)"
cargo fmt --all -- --check

# --- Kafka broker ----------------------------------------------------------------------------
# The Kafka tests run against a real broker. Without RETURNS_KAFKA_BOOTSTRAP set by the caller,
# scripts/kafka.sh starts a clean single-node broker on 127.0.0.1 (stopped again on exit if this
# run started it). If it cannot start, the run fails here: Kafka tests never pass without one.
# The broker is started before the lints so that every step compiles with the same cfg
# (crates/*/build.rs turn the Kafka tests on when RETURNS_KAFKA_BOOTSTRAP is set).
if [ -z "${RETURNS_KAFKA_BOOTSTRAP:-}" ]; then
    step "scripts/kafka.sh start (a real Kafka broker for the Kafka tests)"
    if ! bash scripts/kafka.sh status >/dev/null 2>&1; then
        started_broker=1
    fi
    RETURNS_KAFKA_BOOTSTRAP=$(bash scripts/kafka.sh start | tail -n 1)
    if [ -z "$RETURNS_KAFKA_BOOTSTRAP" ]; then
        echo "the Kafka broker did not start; see kafka-cache/run/broker.log" >&2
        exit 1
    fi
    export RETURNS_KAFKA_BOOTSTRAP
fi
stop_broker() {
    if [ -n "${started_broker:-}" ]; then
        bash scripts/kafka.sh stop >/dev/null 2>&1 || true
    fi
}
echo "Kafka tests use the broker at $RETURNS_KAFKA_BOOTSTRAP"
# ------------------------------------------------------------------------------------------------

# --- Chromium and chromedriver ------------------------------------------------------------------
# The dashboard's test (crates/cli/tests/it/dashboard.rs) drives a real headless Chromium through
# chromedriver. Without RETURNS_CHROMEDRIVER set by the caller, it uses Debian's chromium and
# chromium-driver, installed here if /usr/bin/chromedriver is missing (as root). If they cannot
# be installed, the run fails here: the browser test never passes without a browser. Set before
# the lints so that every step compiles with the same cfg (crates/cli/build.rs turns the browser
# test on when RETURNS_CHROMEDRIVER is set).
if [ -z "${RETURNS_CHROMEDRIVER:-}" ]; then
    if [ ! -x /usr/bin/chromedriver ]; then
        step "apt-get install chromium chromium-driver (a headless browser for the dashboard test)"
        if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
            echo "chromedriver is missing and cannot be installed here (needs root and apt-get)." >&2
            echo "hint: sudo apt-get install chromium chromium-driver, or set RETURNS_CHROMEDRIVER" \
                "to a chromedriver that matches an installed Chromium" >&2
            exit 1
        fi
        if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
            --no-install-recommends chromium chromium-driver; }; then
            echo "apt-get could not install chromium and chromium-driver; see its output above" >&2
            echo "hint: set RETURNS_CHROMEDRIVER to a chromedriver that matches an installed Chromium" >&2
            exit 1
        fi
    fi
    export RETURNS_CHROMEDRIVER=/usr/bin/chromedriver
fi
echo "Browser tests use the chromedriver at $RETURNS_CHROMEDRIVER"
# ------------------------------------------------------------------------------------------------

step "cargo clippy --workspace --all-targets -- -D warnings (lints)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace (unit, conformance and end-to-end tests)"
cargo test --workspace

echo
echo "==> all checks passed"
