#!/usr/bin/env bash
# Sightline's benchmark, in one run on this machine (see BENCHMARKS.md):
# durable ingest over gRPC and HTTP for both profiles against Rotel's
# blackhole and the bare decode loop, stored bytes per span, query latency,
# CPU and memory, a soak at half the sustained rate (10 minutes; not in
# --smoke), the log store (bytes per record, trace and body-search latency),
# durable OTLP logs ingest against Rotel's blackhole, and traces and logs
# together against --memory-limit. Results are appended to BENCHMARKS.md by
# bench/bench.py.
#
#   bench/run.sh            full run: 10 million realistic spans for storage and queries
#   bench/run.sh --quick    same steps, 1 million spans, shorter ingest and soak runs
#   bench/run.sh --smoke    a few seconds, debug binary, no Rotel; writes
#                           bench-results/smoke.md instead of BENCHMARKS.md (for CI)
#
# Other flags: --no-wait (do not wait for an idle machine), --max-wait SECS.
# With --smoke, SIGHTLINE_BENCH_BIN names an already built binary to use
# (.ci/run passes the one `cargo test` built) instead of building one.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
for arg in "$@"; do
  case "$arg" in
    --smoke) mode=smoke ;;
    --quick) mode=quick ;;
  esac
done

# Rotel (a Rust OTLP collector) ships its binary in a PyPI package; a venv
# keeps it away from the tests' venv. Pinned so runs compare like for like.
ROTEL_VERSION=0.0.1a15
venv=bench/.venv
if [ "$mode" != smoke ]; then
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import importlib.metadata as m; assert m.version('rotel') == '$ROTEL_VERSION'" 2>/dev/null; then
    echo "== installing rotel $ROTEL_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "rotel==$ROTEL_VERSION"
  fi
  rotel=$(echo "$venv"/lib/python3*/site-packages/rotel/rotel-agent)
  [ -x "$rotel" ] || { echo "error: rotel-agent not found in $venv" >&2; exit 1; }
  export SIGHTLINE_BENCH_ROTEL="$rotel"
  # The UI render benchmark drives headless Chromium like the UI tests.
  crates/sightline-ui/e2e/setup.sh
  echo "== cargo build --release -p sightline"
  cargo build --release --locked -p sightline
  export SIGHTLINE_BENCH_BIN=target/release/sightline
elif [ -n "${SIGHTLINE_BENCH_BIN:-}" ]; then
  # The smoke run checks the command still works, not its numbers. .ci/run
  # passes the debug binary its `cargo test --workspace` built: a
  # `cargo build -p sightline` here resolves the dependencies' features for
  # one package instead of the workspace (tokio, hyper, ... differ) and so
  # compiled most of the tree a second time.
  [ -x "$SIGHTLINE_BENCH_BIN" ] || { echo "error: SIGHTLINE_BENCH_BIN=$SIGHTLINE_BENCH_BIN is not executable" >&2; exit 1; }
else
  # The smoke run checks the command still works, not its numbers: the
  # debug binary is enough, and Rotel is skipped.
  cargo build --locked -p sightline
  export SIGHTLINE_BENCH_BIN=target/debug/sightline
fi

exec python3 bench/bench.py "$@"
