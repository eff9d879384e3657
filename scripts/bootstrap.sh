#!/usr/bin/env bash
# Installs what etcd-autobackup needs on a Debian/Ubuntu machine, only what is missing:
# Debian's etcd-server, etcd-client and redis-server, then the npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# Node.js 20.19+ (the LTS lines 20, 22 and 24 all qualify).
node_ok() { command -v node >/dev/null 2>&1 && node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; }
need=()
node_ok || need+=(nodejs npm)
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || need+=(etcd-client)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  echo "bootstrap: installing Debian packages: ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The Debian packages start system-wide services on the default ports; we run our own on
  # loopback, so stop those to leave the ports free (no-op without systemd).
  $SUDO systemctl disable --now etcd redis-server >/dev/null 2>&1 || true
fi
if ! node_ok; then
  echo "bootstrap: Node.js 20.19 or newer is needed (found: $(node --version 2>/dev/null || echo none)); install a current LTS, e.g. from nodejs.org or with nvm, then run this again" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "bootstrap: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
