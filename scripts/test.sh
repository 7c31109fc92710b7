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

step "cargo clippy --workspace --all-targets -- -D warnings (lints)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace (unit, conformance and end-to-end tests)"
cargo test --workspace

echo
echo "==> all checks passed"
