#!/usr/bin/env bash
# The long fuzz run, beside the benchmark command: the property-based
# harnesses `cargo test` runs with a bounded number of cases, run with many
# more. Writes its figures into BENCHMARKS.md (the "Fuzzing" block).
#
#   bench/fuzz.sh [CASES]      cases per property (default 50000)
#   FUZZ_PROFILE=release       build profile (default: dev, reusing the
#                              test build; release finds more per minute)
#
# Harnesses (issue 16 item 6):
#   sightline-wal      fuzz::  WAL recovery of damaged segments (flips,
#                              overwritten runs, inserted garbage, cut ends;
#                              every mode): no panic, only written records,
#                              in order, every untouched record kept
#   sightline-block    fuzz::  the block reader given damaged data.parquet and
#                              meta.json: no panic, intact data or a
#                              corruption error, never altered data
#   sightline-store    fuzz::  the manifest check: a damaged manifest is
#                              refused, never read as another one
#   sightline-receive  fuzz::  OTLP protobuf (arbitrary and mutated bodies,
#                              the decoded-size walk against prost), OTLP/JSON
#                              (trees of OTLP field names, arbitrary bytes),
#                              protobuf and JSON of one request decode alike
#   sightline-zipkin   fuzz::  Zipkin JSON and protobuf bodies
#   sightline (it)     fuzz::  query parameters against the real binary
# A failure prints the minimal failing input and proptest records it under
# proptest-regressions/ next to the harness, so `cargo test` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=${1:-50000}
profile=${FUZZ_PROFILE:-dev}
profile_flag=()
[ "$profile" = release ] && profile_flag=(--release)
export PROPTEST_CASES=$cases

rows=""
status=0
run() {
  local name=$1 scale=$2; shift 2
  local start secs result n
  # The block harness opens a Parquet file per case: fewer cases, same time.
  n=$((cases / scale))
  start=$SECONDS
  if PROPTEST_CASES=$n cargo test -q "${profile_flag[@]}" "$@" >"/tmp/sightline-fuzz-$name.log" 2>&1; then
    result=pass
  else
    result="**FAIL** (see /tmp/sightline-fuzz-$name.log)"
    status=1
  fi
  secs=$((SECONDS - start))
  local props
  props=$(grep -o '[0-9]* passed' "/tmp/sightline-fuzz-$name.log" | head -1 | cut -d' ' -f1)
  echo "== $name: $result, ${props:-?} properties × $n cases, ${secs} s"
  rows+="| $name | ${props:-?} | $n | ${secs} s | $result |"$'\n'
}

echo "== building the test binaries ($profile)"
cargo test -q "${profile_flag[@]}" --no-run -p sightline-wal -p sightline-block -p sightline-store \
  -p sightline-receive -p sightline-zipkin -p sightline >/dev/null 2>&1
run wal-recovery 1 -p sightline-wal --lib fuzz::
run block-reader 10 -p sightline-block --lib fuzz::
run manifest 1 -p sightline-store --lib fuzz::
run otlp 1 -p sightline-receive --lib fuzz::
run zipkin 1 -p sightline-zipkin --lib fuzz::
run query-params 1 -p sightline --test it fuzz::

commit=$(git rev-parse --short HEAD)$(git diff --quiet || echo +dirty)
block="<!-- fuzz: written by bench/fuzz.sh -->
## Fuzzing

Last \`bench/fuzz.sh $cases\` run: $(date -u '+%Y-%m-%d %H:%M UTC') · \`$commit\` · $profile build ·
$(nproc) cores (other work on the machine makes the seconds approximate).

| harness | properties | cases each | time | result |
|---|---|---|---|---|
$rows<!-- end of fuzz -->"
python3 - "$block" <<'PY'
import sys
block = sys.argv[1]
path = "BENCHMARKS.md"
text = open(path).read()
begin, end = "<!-- fuzz: written by bench/fuzz.sh -->", "<!-- end of fuzz -->"
if begin in text:
    a = text.index(begin)
    b = text.index(end, a) + len(end)
    text = text[:a] + block + text[b:]
else:
    anchor = "## History"
    i = text.index(anchor) if anchor in text else len(text)
    text = text[:i] + block + "\n\n" + text[i:]
open(path, "w").write(text)
PY
echo "== BENCHMARKS.md updated"
exit $status
