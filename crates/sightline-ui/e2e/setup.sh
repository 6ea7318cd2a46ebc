#!/usr/bin/env bash
# Installs what the UI's browser tests and render benchmark need, when
# missing: Debian's chromium and npm's playwright-core (pinned by
# package-lock.json). Idempotent and quick when both are there. Called by
# run.sh (the tests) and bench/run.sh (the render benchmark).
set -euo pipefail
cd "$(dirname "$0")"

if [ -z "${CHROMIUM:-}" ] && [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium (Debian package)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }
fi

stamp=node_modules/.package-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -d node_modules/playwright-core ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== npm ci (crates/sightline-ui/e2e)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
