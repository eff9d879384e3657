#!/usr/bin/env bash
# The whole test suite: bootstrap, type-check, lint, then every test file with Node's test runner
# against real etcd, Redis and s3rver started by the tests on free loopback ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --browser

if [ "${1:-}" != "--no-checks" ]; then
  echo "== typecheck" >&2
  npx tsc -p tsconfig.json --noEmit
  echo "== lint" >&2
  npx eslint .
  echo "== format (prettier --check; npm run format fixes it)" >&2
  npx prettier --check --log-level warn "**/*.{ts,js}"
  echo "== unused files, exports and dependencies (knip; knip.jsonc says what is exempt and why)" >&2
  npx knip --no-progress
else
  shift
fi

if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
echo "== tests (${#files[@]} files)" >&2
# Two files at a time: most of a file's time is spent waiting on etcd fsyncs and process starts, not CPU (node's
# default is one fewer than the cores: one on CI's two). Ports are reserved across files (test/support/ports.ts).
exec node --import tsx --test --test-concurrency="${TEST_CONCURRENCY:-2}" --test-reporter=spec --test-timeout=300000 "${files[@]}"
