#!/usr/bin/env bash
# Developer entry point. `bash scripts/dev.sh demo` runs the quick-start demo;
# `bash scripts/dev.sh test` installs everything and runs lint, types and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

setup() {
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
    fi
    # pip's and setuptools' chatter is shown only when the install fails.
    local log
    log=$(mktemp)
    if ! { "$VENV/bin/python" -m pip install -q --upgrade pip && "$VENV/bin/python" -m pip install -q -e ".[dev]"; } >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        echo "error: installing syncd into $VENV failed (output above)" >&2
        exit 1
    fi
    rm -f "$log"
}

services() {
    # The PostgreSQL store tests and the worker cluster test (tests/worker: real `syncd worker`
    # processes, each test in a database of its own) use the machine's server; start it when it
    # is down and wait until it accepts connections, so those tests do not find it starting.
    if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start || true
        for _ in $(seq 1 30); do
            pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null && break
            sleep 1
        done
    fi
    # hledger and ledger-cli check the ledger journals; tmux runs `syncd sync` in a real terminal (tests/cli/test_tmux.py).
    if { ! command -v hledger || ! command -v ledger || ! command -v tmux; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hledger ledger tmux) >/dev/null 2>&1 \
            || echo "warning: could not install hledger, ledger and tmux" >&2
    fi
}

case "${1:-}" in
    demo)
        setup
        "$VENV/bin/syncd" demo "${@:2}"
        ;;
    test)
        setup
        services
        "$VENV/bin/ruff" check .
        "$VENV/bin/mypy"
        "$VENV/bin/python" -m pytest "${@:2}"
        ;;
    *)
        echo "usage: bash scripts/dev.sh demo|test [args]" >&2
        exit 2
        ;;
esac
