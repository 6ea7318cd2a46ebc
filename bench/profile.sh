#!/usr/bin/env bash
# Profiles the server under the benchmark's saturation load, so each missed
# target in BENCHMARKS.md can say what limits it.
#
#   bench/profile.sh [testbed|realistic] [grpc|http] [seconds] [spans/s]
#
# Runs a release `sightline serve` on a fresh data directory, drives it with
# `sightline loadgen` at full speed (or at the given rate, e.g. 10000 for the
# CPU-at-10k target), samples it with `perf record` (DWARF
# call graphs; `valgrind --tool=callgrind` is the fallback where perf is not
# allowed), and writes bench/profiles/<profile>-<protocol>.txt: inclusive
# time per function, grouped into ingest stages at the top (with a rate:
# <profile>-<protocol>-<rate>.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-testbed}
protocol=${2:-grpc}
secs=${3:-10}
rate=${4:-}
bin=target/release/sightline
[ -x "$bin" ] || cargo build --release --locked -p sightline
command -v perf >/dev/null || { echo "error: perf not found (apt-get install linux-perf)" >&2; exit 1; }

work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
# Three distinct free ports: the probe sockets stay open until all are chosen.
read -r grpc http api < <(python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))')
"$bin" serve --data-dir "$work/data" --otlp-grpc-addr 127.0.0.1:$grpc --otlp-http-addr 127.0.0.1:$http \
  --http-addr 127.0.0.1:$api --zipkin-addr 127.0.0.1:0 --log-level warn > "$work/server.log" 2>&1 &
server=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$api/ready" >/dev/null && break; sleep 0.1; done
endpoint=127.0.0.1:$([ "$protocol" = grpc ] && echo $grpc || echo $http)
"$bin" loadgen --protocol "$protocol" --endpoint "$endpoint" --profile "$profile" --concurrency 8 \
  --duration $((secs + 4))s ${rate:+--rate "$rate"} > "$work/loadgen.txt" &
loadgen=$!
sleep 2
perf record -q -F 199 --call-graph dwarf,16384 -p "$server" -o "$work/perf.data" -- sleep "$secs" 2>/dev/null
wait "$loadgen"
kill "$server"; wait "$server" || true

mkdir -p bench/profiles
at=${rate:+$rate spans/s}
at=${at:-saturation}
out=bench/profiles/$profile-$protocol${rate:+-$rate}.txt
perf report -i "$work/perf.data" --children --stdio -g none --sort sym 2>/dev/null \
  | grep -E '^ +[0-9]' | sed -E 's/<.*//' | awk '{ $2=""; print }' \
  | grep -vE 'poll|call_once|catch_unwind|do_call|with_mut|closure|tokio::runtime|std::|clone3|start_thread|unknown|budget|enter_runtime|set_scheduler|try_with|__rust|run_worker| run$| with$| set$|run_task' \
  | sort -u -k2 | sort -rn | sed -n 1,80p > "$work/flat.txt"  # sed, not head: head would SIGPIPE sort under pipefail
{
  echo "# perf profile of sightline serve: $profile over $protocol, ${secs}s at $at ($(date -u +%F), $(git rev-parse --short HEAD))"
  echo "# load: $(cat "$work/loadgen.txt")"
  echo "# 1-minute load average at the end: $(cut -d' ' -f1 /proc/loadavg)"
  echo "# inclusive % of server samples per function (children included); stages:"
  stage() {
    local line
    line=$(grep -E "$2" "$work/flat.txt" | head -1 || true)
    if [ -n "$line" ]; then line=$(echo "$line" | awk '{print $1}'); else line="not sampled"; fi
    printf '#   %-34s %s\n' "$1" "$line"
  }
  stage "block write (flush, from protobuf)" 'sightline_block::otlp::write_otlp'
  stage "block compaction" 'sightline_block::compact::compact'
  stage "parquet encoding (in flush)" 'parquet::arrow::arrow_writer::ArrowWriter'
  stage "prost decode of requests" 'prost::encoding::message::merge_repeated'
  stage "OTLP -> model mapping" 'sightline_model::otlp::decode_request'
  stage "pipeline processors" 'sightline_pipeline::'
  stage "WAL writer thread" 'sightline_wal::writer::Writer::run'
  stage "head index (at append)" 'sightline_store::head::record::Record::index'
  echo
  cat "$work/flat.txt"
} > "$out"
echo "wrote $out"
head -14 "$out"
