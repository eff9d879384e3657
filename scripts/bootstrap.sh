#!/usr/bin/env bash
# Installs what etcd-autobackup needs on a Debian/Ubuntu machine, only what is missing:
# Debian's etcd-server, etcd-client, zstd, isal, age, prometheus (for promtool) and redis-server, then the npm
# packages. With --browser also Debian's chromium, which the browser tests drive through playwright-core (it never downloads one).
set -euo pipefail
cd "$(dirname "$0")/.."

browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) browser=1 ;;
    *) echo "bootstrap: unknown option $arg (known: --browser)" >&2; exit 2 ;;
  esac
done

# Node.js 20.19+ (the LTS lines 20, 22 and 24 all qualify).
node_ok() { command -v node >/dev/null 2>&1 && node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; }
need=()
node_ok || need+=(nodejs npm)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The zstd codec (the default) runs Debian's zstd binary.
command -v zstd >/dev/null 2>&1 || need+=(zstd)
# gzip levels 1-3 (gzip's default) run ISA-L's igzip (Debian's isal).
command -v igzip >/dev/null 2>&1 || need+=(isal)
# age: tests prove our objects decrypt with the reference tool, and that its files restore.
command -v age >/dev/null 2>&1 || need+=(age)
# promtool (in Debian's prometheus package): the chart's alert rules are checked and unit-tested with it.
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian packages start system-wide services on the default ports; we run our own on
  # loopback, so stop those to leave the ports free (no-op without systemd).
  $SUDO systemctl disable --now etcd redis-server prometheus >/dev/null 2>&1 || true
fi
# The browser is optional: without it the browser tests skip and say why, so a failed install
# only warns.
if [ "$browser" -eq 1 ] && [ ! -x /usr/bin/chromium ]; then
  echo "bootstrap: installing Debian package chromium (for the browser tests)" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null; }; then
    echo "bootstrap: could not install chromium; the browser tests will be skipped (and fail under CI=true)" >&2
  fi
fi
if ! node_ok; then
  echo "bootstrap: Node.js 20.19 or newer is needed (found: $(node --version 2>/dev/null || echo none)); install a current LTS, e.g. from nodejs.org or with nvm, then run this again" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
