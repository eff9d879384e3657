#!/usr/bin/env bash
# The benchmarks: the snapshot (ours against `etcdctl snapshot save` on a real etcd), then the
# webhook (audit ingestion, admission latency, Redis commands per window, on real Redis), then the
# delta log's recovery point and writer cost (bench/delta.ts), then point-in-time replay speed
# (bench/replay.ts), then a restore drill against `etcdctl snapshot restore` + etcd start (bench/drill.ts).
# Our runner and the CLI are compiled to plain JS first (with the audit decode thread, which nothing imports) so that they run as in production, without
# the tsx loader. Env: BENCH_ONLY=snapshot|webhook|delta|replay|drill (default all); snapshot: BENCH_SIZE_MIB
# (default 256), BENCH_ROUNDS (default 3), BENCH_VARIANTS; webhook: see bench/webhook.ts.
set -euo pipefail
cd "$(dirname "$0")/.."
only="${BENCH_ONLY:-}"
case "$only" in
  ""|snapshot|webhook|delta|replay|drill) ;;
  *) echo "bench: BENCH_ONLY must be snapshot, webhook, delta, replay or drill (got \"$only\")" >&2; exit 2 ;;
esac
bash scripts/bootstrap.sh

build=.cache/bench
rm -rf "$build"
mkdir -p "$build"
cat >"$build/tsconfig.json" <<'JSON'
{
  "extends": "../../tsconfig.json",
  "compilerOptions": { "outDir": ".", "noEmit": false, "sourceMap": false, "noEmitOnError": false },
  "files": ["../../bench/run-ours.ts", "../../bench/run-drill.ts", "../../cli/main.ts", "../../webhook/audit-decode-thread.ts"],
  "include": []
}
JSON
echo "== compiling the runner and the CLI" >&2
# Type errors elsewhere in the tree must not block a benchmark: tsc still emits, and a missing
# output is caught just below.
npx tsc -p "$build/tsconfig.json" >"$build/tsc.log" 2>&1 || echo "bench: tsc reported errors (see $build/tsc.log); running what it emitted" >&2
for out in bench/run-ours.js bench/run-drill.js cli/main.js webhook/audit-decode-thread.js; do
  if [ ! -f "$build/$out" ]; then
    echo "bench: compiling produced no $build/$out; see $build/tsc.log" >&2
    exit 1
  fi
done

status=0
if [ -z "$only" ] || [ "$only" = snapshot ]; then
  BENCH_RUNNER_JS="$PWD/$build/bench/run-ours.js" BENCH_CLI_JS="$PWD/$build/cli/main.js" node --import tsx bench/snapshot.ts || status=$?
fi
if [ -z "$only" ] || [ "$only" = webhook ]; then
  [ "$only" = webhook ] || echo
  BENCH_CLI_JS="$PWD/$build/cli/main.js" node --import tsx bench/webhook.ts || status=$?
fi
if [ -z "$only" ] || [ "$only" = delta ]; then
  [ "$only" = delta ] || echo
  BENCH_CLI_JS="$PWD/$build/cli/main.js" node --import tsx bench/delta.ts || status=$?
fi
# point-in-time replay (issue 10, restore side)
if [ -z "$only" ] || [ "$only" = replay ]; then
  [ "$only" = replay ] || echo
  node --import tsx bench/replay.ts || status=$?
fi
# restore drill (issue 9): drill time and peak RSS against restore + etcd start of the same file
if [ -z "$only" ] || [ "$only" = drill ]; then
  [ "$only" = drill ] || echo
  BENCH_DRILL_JS="$PWD/$build/bench/run-drill.js" node --import tsx bench/drill.ts || status=$?
fi
exit "$status"
