#!/usr/bin/env python3
"""The cost of `--durability bucket` (each WAL group commit also PUT to the
object store before the OK): ack latency and object-store requests per
ingested MiB, with and without it, against a real S3 server (SeaweedFS from
the tests' venv) on loopback.

    cargo build -p sightline      # or --release; SIGHTLINE_BENCH_BIN picks it
    SIGHTLINE_BENCH_BIN=target/debug/sightline python3 bench/walmirror.py [--spans N] [--concurrency C] [--spans-per-request K]

For each mode a fresh node on a fresh prefix takes N spans of the realistic
profile over OTLP/gRPC from `sightline loadgen` (C requests in flight), then
its /metrics give the object-store requests by operation. Latency is the
loadgen's per-request ack latency (p50/p99). Not part of bench/run.sh."""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
import objstore  # noqa: E402  (start_weed, the credentials)


def run(b, durability, spans, concurrency, per_request, endpoint, work):
    data = os.path.join(work, f"data-{durability}")
    os.environ.update(AWS_ACCESS_KEY_ID=objstore.KEY, AWS_SECRET_ACCESS_KEY=objstore.SECRET,
                      AWS_REGION="us-east-1", AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true")
    extra = ["--storage", f"s3://bench/{durability}-{int(time.time())}", "--durability", durability]
    proc = b.sightline(data, extra)
    try:
        before = b.metrics(proc)
        ingest = b.loadgen("--protocol", "grpc", "--endpoint", f"127.0.0.1:{proc.ports['grpc']}",
                           "--profile", "realistic", "--pool", 0, "--spans", spans,
                           "--concurrency", concurrency, "--spans-per-request", per_request, "--json")
        after = b.metrics(proc)
    finally:
        proc.stop()
        shutil.rmtree(data, ignore_errors=True)

    def by_op(m):
        out = {}
        for k, v in m.items():
            if k.startswith("sightline_objstore_requests_total"):
                op = k.split('op="')[1].split('"')[0]
                out[op] = out.get(op, 0) + v
        return out

    b0, a0 = by_op(before), by_op(after)
    ops = {op: a0[op] - b0.get(op, 0) for op in a0 if a0[op] - b0.get(op, 0) > 0}
    wal_mib = (after.get("sightline_wal_appended_bytes_total", 0)
               - before.get("sightline_wal_appended_bytes_total", 0)) / bench.MIB
    return {"durability": durability, "spans": ingest["spans_acked"], "wal_mib": wal_mib,
            "p50_ms": ingest["latency_p50_ms"], "p99_ms": ingest["latency_p99_ms"],
            "spans_per_sec": ingest["spans_per_sec"], "requests": ops,
            "requests_per_mib": sum(ops.values()) / wal_mib if wal_mib else 0.0}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--spans-per-request", type=int, default=512)
    args = parser.parse_args()
    b = bench.Bench(argparse.Namespace(mode="quick", no_wait=True, max_wait=0))
    b.bin = os.environ.get("SIGHTLINE_BENCH_BIN", os.path.join(bench.ROOT, "target", "release", "sightline"))
    work = tempfile.mkdtemp(prefix="sightline-walmirror-bench-")
    weed, endpoint = objstore.start_weed(work)
    try:
        for durability in ("local", "bucket"):
            load = bench.load1()
            r = run(b, durability, args.spans, args.concurrency, args.spans_per_request, endpoint, work)
            r["load1"] = load
            print(json.dumps(r), flush=True)
    finally:
        weed.kill()
        weed.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
