#!/usr/bin/env bash
# The UI's tests, for CI (.ci/run calls this after `cargo test`): installs
# what they need when missing (setup.sh: Debian's chromium, npm's
# playwright-core), then runs the unit tests of the UI logic and the
# end-to-end tests against the real binary in headless Chromium, with this
# crate's UI and with the real Jaeger UI. Exits
# non-zero on any failure.
#
#   SIGHTLINE_BIN  the binary to test (default: target/debug/sightline,
#                  built first if missing or older than the UI's sources)
#   CHROMIUM       the browser (default: /usr/bin/chromium)
#   JAEGER_UI_DIR  the Jaeger UI build (default: ../shared/peers/jaeger-ui
#                  beside the checkout)
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../../.. && pwd)

./setup.sh

if [ -z "${SIGHTLINE_BIN:-}" ]; then
  bin="$root/target/debug/sightline"
  # The UI is embedded at compile time: a binary older than web/ would test stale assets.
  if [ ! -x "$bin" ] || [ -n "$(find ../web ../src ../build.rs -newer "$bin" -print -quit)" ]; then
    echo "== cargo build -p sightline"
    (cd "$root" && cargo build -p sightline --locked)
  fi
  export SIGHTLINE_BIN="$bin"
fi

echo "== UI unit tests (node --test)"
node --test unit/
echo "== UI end-to-end tests (headless Chromium, $SIGHTLINE_BIN)"
node --test --test-concurrency=1 e2e.test.mjs
# The real Jaeger UI (../shared/peers/jaeger-ui, or $JAEGER_UI_DIR) against
# the same binary: about 20 s.
echo "== Jaeger UI v2.20 end-to-end tests"
node --test --test-concurrency=1 jaeger-ui.test.mjs
