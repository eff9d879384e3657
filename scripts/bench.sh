#!/usr/bin/env bash
# The snapshot benchmark: our snapshot against `etcdctl snapshot save` on a real etcd, in one run.
# Our runner is compiled to plain JS first so its peak RSS is what production has, without the tsx
# loader. Env: BENCH_SIZE_MIB (default 256), BENCH_ROUNDS (default 3), BENCH_VARIANTS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

build=.cache/bench
rm -rf "$build"
mkdir -p "$build"
cat >"$build/tsconfig.json" <<'JSON'
{
  "extends": "../../tsconfig.json",
  "compilerOptions": { "outDir": ".", "noEmit": false, "sourceMap": false, "noEmitOnError": false },
  "files": ["../../bench/run-ours.ts"],
  "include": []
}
JSON
echo "== compiling the runner" >&2
# Type errors elsewhere in the tree must not block a benchmark: tsc still emits, and a missing
# output is caught just below.
npx tsc -p "$build/tsconfig.json" >"$build/tsc.log" 2>&1 || echo "bench: tsc reported errors (see $build/tsc.log); running what it emitted" >&2
if [ ! -f "$build/bench/run-ours.js" ]; then
  echo "bench: compiling bench/run-ours.ts produced no output; see $build/tsc.log" >&2
  exit 1
fi

BENCH_RUNNER_JS="$PWD/$build/bench/run-ours.js" exec node --import tsx bench/snapshot.ts
