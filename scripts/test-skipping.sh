#!/usr/bin/env bash
# Runs the tests without their outside prerequisites: a test whose tool, privilege or server is
# missing is skipped instead of failing (PORTOLAN_SKIP_MISSING=1), and the skips are counted at
# the end. For a developer's machine; CI runs scripts/test.sh, where nothing may be skipped.
#   bash scripts/test-skipping.sh [cargo test arguments]
set -uo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp "${TMPDIR:-/tmp}/portolan-skips.XXXXXX")
trap 'rm -f "$log"' EXIT
PORTOLAN_SKIP_MISSING=1 PORTOLAN_SKIP_LOG="$log" cargo test --workspace "$@"
rc=$?
n=$(wc -l <"$log")
if [ "$n" -gt 0 ]; then
  echo "test-skipping: $n test(s) skipped for a missing prerequisite; they did not run:" >&2
  sort "$log" | sed 's/^/  /' >&2
fi
exit $rc
