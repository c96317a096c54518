#!/usr/bin/env bash
# Runs every Portolan test. This is the test command README.md gives; CI (.ci/run) calls it.
# It installs the outside tools the tests use (nmap, xmllint, ndiff, PostgreSQL, ...) when they
# are missing, starts a throwaway PostgreSQL server (scripts/pg.sh), then runs the whole
# workspace's tests; a test whose prerequisite is missing fails, so none can pass by skipping.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
python3 data/iana/xml2csv.py --check

# A throwaway PostgreSQL server for the store's PostgreSQL backend, stopped however we exit.
pgdir="${TMPDIR:-/tmp}/portolan-test-pg"
trap 'bash scripts/pg.sh stop "$pgdir"' EXIT
eval "$(bash scripts/pg.sh start "$pgdir")"

# a missing prerequisite fails its test (PORTOLAN_SKIP_MISSING is not set here)
unset PORTOLAN_SKIP_MISSING
cargo test --workspace --locked "$@"
