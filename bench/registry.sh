#!/usr/bin/env bash
# Registry lookup speed: `portolan port 3389` against `getent services 3389`, whole-process
# time, in one hyperfine run. Prints the ratio; the target is portolan <= 1.5x getent's time,
# although portolan answers far more (every IANA row, range class and the knowledge base).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hyperfine >/dev/null || bash scripts/install-test-deps.sh
cargo build --release --locked -q -p portolan
bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/portolan"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
hyperfine -N --warmup 20 --runs "${RUNS:-300}" --export-json "$out/r.json" \
  -n portolan "$bin port 3389" \
  -n getent "getent services 3389" >/dev/null
python3 - "$out/r.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
p, g = r["portolan"], r["getent"]
ratio = p["median"] / g["median"]
print(f"portolan port 3389   median {p['median']*1e3:.3f} ms  mean {p['mean']*1e3:.3f} ms")
print(f"getent services 3389 median {g['median']*1e3:.3f} ms  mean {g['mean']*1e3:.3f} ms")
print(f"ratio portolan/getent (median): {ratio:.2f}x  (target <= 1.50x): {'PASS' if ratio <= 1.5 else 'FAIL'}")
PY
