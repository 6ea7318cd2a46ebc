#!/usr/bin/env python3
"""One targeted comparison of object-storage mode with local-disk mode:
ingest (realistic profile, gRPC), trace by id and search, on this machine,
against a real S3 server (SeaweedFS from the tests' venv) on loopback.

    cargo build --release -p sightline
    python3 bench/objstore.py [--spans N]       # default 1,000,000 spans

For each mode: ingest N spans into a fresh node, stop it (final flush),
start it again (for S3: an empty block cache, so the first queries are
cold), run the query benchmark twice (cold, then warm), and read the
object-store request counters from /metrics. Prints one Markdown table
row per mode; BENCHMARKS.md keeps the rows with the command and the
machine's load. Not part of bench/run.sh (see BENCHMARKS.md)."""

import argparse
import json
import re
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the helpers of bench/run.sh)

ROOT = bench.ROOT
WEED = os.environ.get("SIGHTLINE_WEED", os.path.join(ROOT, ".venv", "bin", "weed"))
KEY, SECRET = "sightline-bench", "sightline-bench-secret"


def free_pair():
    """A port free together with its gRPC twin (+10000), as weed binds both."""
    while True:
        p = bench.free_port()
        if p < 55000 and bench.port_open(p + 10000) is False:
            return p


def start_weed(work):
    ports = {name: free_pair() for name in ("master", "volume", "filer", "s3", "admin")}
    args = [WEED, "mini", f"-dir={work}/weed", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3.port.iceberg=0",
            "-s3.port.lance=0", "-webdav=false", "-admin.ui=false", "-master.telemetry=false", "-bucket=bench"]
    for name, p in ports.items():
        args += [f"-{name}.port={p}", f"-{name}.port.grpc={p + 10000}"]
    os.makedirs(f"{work}/weed")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
    log = open(f"{work}/weed.log", "ab")
    proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    bench.wait_until(lambda: bench.port_open(ports["s3"]), 30, "SeaweedFS S3 port")
    time.sleep(1)  # the bucket is created just after the port opens
    return proc, f"http://127.0.0.1:{ports['s3']}"


def run(b, mode, spans, endpoint, work, idle):
    data = os.path.join(work, f"data-{mode}")
    extra = []
    if mode == "s3":
        extra = ["--storage", f"s3://bench/{int(time.time())}"]
        os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1",
                          AWS_ENDPOINT_URL=endpoint, AWS_ALLOW_HTTP="true")
    samples = os.path.join(work, f"samples-{mode}.json")
    proc = b.sightline(data, extra)
    try:
        cpu0 = proc.cpu_seconds()
        ingest = b.loadgen("--protocol", "grpc", "--endpoint", f"127.0.0.1:{proc.ports['grpc']}",
                           "--profile", "realistic", "--pool", 0, "--spans", spans, "--concurrency", 4,
                           "--samples-out", samples, "--json")
        cpu = proc.cpu_seconds() - cpu0
        peak = proc.peak_rss_mib()
        m_ingest = b.metrics(proc)
    finally:
        t0 = time.time()
        proc.stop()
        shutdown = time.time() - t0
    proc = b.sightline(data, extra)
    try:
        settled, _ = b.settle(proc)
        before = b.metrics(proc)
        cold = b.loadgen("query-bench", "--http-addr", f"127.0.0.1:{proc.ports['api']}", "--samples", samples,
                         "--lookups", 200, "--searches", 20, "--json")
        mid = b.metrics(proc)
        warm = b.loadgen("query-bench", "--http-addr", f"127.0.0.1:{proc.ports['api']}", "--samples", samples,
                         "--lookups", 200, "--searches", 20, "--json")
        after = b.metrics(proc)
        time.sleep(idle)
        idle_end = b.metrics(proc)
    finally:
        proc.stop()
        shutil.rmtree(data, ignore_errors=True)

    def requests(m):
        return sum(v for k, v in m.items() if k.startswith("sightline_objstore_requests_total"))

    def by_op(m0, m1):
        """Request counts between two scrapes, by operation."""
        ops = {}
        for k, v in m1.items():
            found = re.match(r'sightline_objstore_requests_total\{.*op="([a-z_]+)"', k)
            if found:
                ops[found.group(1)] = ops.get(found.group(1), 0) + v - m0.get(k, 0)
        return {op: n for op, n in sorted(ops.items()) if n}

    return {
        "mode": mode,
        "spans": ingest["spans_acked"],
        "spans_per_sec": ingest["spans_per_sec"],
        "server_cpu_us_per_span": cpu / max(ingest["spans_acked"], 1) * 1e6,
        "peak_rss_mib": peak,
        "shutdown_secs": shutdown,
        "ingest_requests": requests(m_ingest),
        "ingest_by_op": by_op({}, m_ingest),
        "ingest_otlp_bytes": ingest.get("bytes_acked", 0),
        "cold_by_op": by_op(before, mid),
        "idle_secs": idle,
        "idle_by_op": by_op(after, idle_end),
        "ingest_uploaded_mib": m_ingest.get("sightline_objstore_uploaded_bytes_total", 0) / bench.MIB,
        "settled": settled,
        "cold": cold,
        "warm": warm,
        "cold_requests": requests(mid) - requests(before),
        "warm_requests": requests(after) - requests(mid),
        "blocks": after.get("sightline_store_blocks", 0),
    }


def row(r):
    c, w = r["cold"], r["warm"]
    return (f"| {r['mode']} | {r['spans']:,} | {r['spans_per_sec']:,.0f} | {r['server_cpu_us_per_span']:.1f} | "
            f"{r['peak_rss_mib']:.0f} | {c['by_id_p50_ms']:.1f} / {c['by_id_p99_ms']:.1f} | "
            f"{w['by_id_p50_ms']:.1f} / {w['by_id_p99_ms']:.1f} | {c['search_p95_ms']:.0f} / {w['search_p95_ms']:.0f} | "
            f"{c['tag_p95_ms']:.0f} / {w['tag_p95_ms']:.0f} | {r['ingest_requests']:.0f} ({r['ingest_uploaded_mib']:.0f} MiB) | "
            f"{r['cold_requests']:.0f} / {r['warm_requests']:.0f} |")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--modes", default="local,s3", help="which of local,s3 to run")
    parser.add_argument("--idle", type=int, default=60, help="seconds of no load at the end, to count the "
                        "background requests (heartbeat, lease, manifest poll)")
    args = parser.parse_args()
    b = bench.Bench(argparse.Namespace(mode="quick", no_wait=True, max_wait=0))
    b.bin = os.environ.get("SIGHTLINE_BENCH_BIN", os.path.join(ROOT, "target", "release", "sightline"))
    work = tempfile.mkdtemp(prefix="sightline-objstore-bench-")
    weed, endpoint = start_weed(work)
    results = []
    try:
        for mode in args.modes.split(","):
            bench.log(f"{mode}: 1-minute load {bench.load1():.2f}")
            results.append(run(b, mode, args.spans, endpoint, work, args.idle))
            bench.log(json.dumps(results[-1]))
    finally:
        weed.kill()
        weed.wait()
        shutil.rmtree(work, ignore_errors=True)
    print("| storage | spans | ingest spans/s | server CPU µs/span | peak RSS MiB | by id p50/p99 ms, cold | "
          "by id p50/p99 ms, warm | search p95 ms cold/warm | attribute search p95 ms cold/warm | "
          "S3 requests for ingest | S3 requests per query run cold/warm |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(row(r))
    for r in results:
        if r["mode"] == "s3":
            print()
            print(cost(r))


# S3 Standard list prices (us-east-1): PUT, COPY, POST, LIST per 1,000
# requests; GET, HEAD and the rest per 1,000; storage per GB-month.
# DELETE is free. A multipart `upload` is counted once by Sightline but
# billed as create + parts + complete: at most 3 + size/part requests.
PRICE_WRITE, PRICE_READ, PRICE_GB_MONTH = 0.005 / 1000, 0.0004 / 1000, 0.023
WRITE_OPS, READ_OPS = ("put", "upload", "list"), ("get", "get_range", "head", "poll")


def dollars(ops):
    return (sum(n for op, n in ops.items() if op in WRITE_OPS) * PRICE_WRITE
            + sum(n for op, n in ops.items() if op in READ_OPS) * PRICE_READ)


def cost(r):
    gb = r["ingest_otlp_bytes"] / 1e9
    lines = [f"S3 requests by operation: ingest {r['ingest_by_op']} for {gb:.3f} GB of OTLP; "
             f"one cold query run {r['cold_by_op']}; {r['idle_secs']} s idle {r['idle_by_op']}"]
    if gb:
        lines.append(f"- ingest: ${dollars(r['ingest_by_op']) / gb:.4f} per GB of OTLP received "
                     f"({sum(r['ingest_by_op'].values()) / gb:.0f} requests/GB)")
    lines.append(f"- one cold query run ({r['cold']['lookups']} lookups + searches): ${dollars(r['cold_by_op']):.6f}")
    if r["idle_secs"]:
        per_month = dollars(r["idle_by_op"]) / r["idle_secs"] * 86400 * 30
        lines.append(f"- background (heartbeat, lease, manifest poll), one node alone: ${per_month:.2f} per month")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
