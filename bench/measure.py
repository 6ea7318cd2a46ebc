#!/usr/bin/env python3
"""Single targeted measurements, for when the machine is too busy for
bench/run.sh: CPU seconds per span and bytes are robust to other load,
rates and latencies are not. Each step starts a fresh server.

    bench/measure.py target/release/sightline STEP...

Steps:
    head_bytes            resident bytes per realistic head span (RssAnon slope
                          at 5k spans/s, --head-max-size 1GiB)
    fixed:PROFILE[:SECS]  server CPU and minor page faults per span at 10k
                          spans/s over gRPC (default 60 s)
    saturation:PROFILE    gRPC saturation, 8 senders, 40 s after 20 s
    wide_queries          20 parallel limit=100000 searches while 4 senders
                          ingest, on 20 s of stored realistic spans: peak RSS
    storage[:SPANS]       stored bytes per realistic span and query latency
                          (default 1M spans, --pool 0), as bench.py measures
    logs_ingest[:SECS[:WHO]]
                          durable OTLP/gRPC logs ingest at saturation as
                          bench.py's logs_ingest step (8 senders, a
                          SECS-second run, default 40, rate over its last
                          half as in bench.py's full mode; CPU over all of
                          it), Sightline then Rotel's blackhole (WHO: sightline,
                          rotel or both, the default; Rotel from
                          $SIGHTLINE_BENCH_ROTEL or bench/.venv, which
                          bench/run.sh installs): records/s, server CPU per
                          record, peak RSS, refusals, and the ratio
    traces_and_logs[:SECS[:LIMIT_MIB]]
                          bench.py's traces_and_logs step: realistic spans
                          and log records at saturation at once (8 senders
                          each, SECS seconds, default 40, half of it warm-up)
                          into one server with --memory-limit LIMIT_MIB
                          (default 256): peak RSS against the limit, rates,
                          refusals
"""
import glob, json, os, re, socket, subprocess, sys, tempfile, time, urllib.request, concurrent.futures

BIN = sys.argv[1]
TICKS = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


class Server:
    def __init__(self, extra=()):
        self.dir = tempfile.mkdtemp(prefix="sl-measure-")
        self.grpc, self.http, self.api = free_port(), free_port(), free_port()
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.p = subprocess.Popen([BIN, "serve", "--data-dir", os.path.join(self.dir, "data"),
                                   "--otlp-grpc-addr", f"127.0.0.1:{self.grpc}", "--otlp-http-addr", f"127.0.0.1:{self.http}",
                                   "--http-addr", f"127.0.0.1:{self.api}", "--zipkin-addr", f"127.0.0.1:{free_port()}",
                                   "--log-level", "warn", *extra], stdout=self.log, stderr=self.log)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.api}/ready", timeout=1)
                return
            except Exception:
                time.sleep(0.1)
        raise SystemExit("server did not start")

    def cpu(self):
        f = open(f"/proc/{self.p.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / TICKS

    def minor_faults(self):
        return int(open(f"/proc/{self.p.pid}/stat").read().rsplit(")", 1)[1].split()[7])

    def status(self, key):
        for line in open(f"/proc/{self.p.pid}/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def metric(self, name):
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.api}/metrics", timeout=10).read().decode()
        for line in body.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.split()[-1])
        return 0.0

    def stop(self):
        self.p.terminate(); self.p.wait(300); self.log.close()
        subprocess.run(["rm", "-rf", self.dir])


def loadgen(*args, wait=True):
    cmd = [BIN, "loadgen", *map(str, args), "--json"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return p
    out, err = p.communicate()
    if p.returncode:
        raise SystemExit(err)
    return json.loads(out.strip().splitlines()[-1])


def head_bytes():
    s = Server(["--memory-limit", "2GiB", "--head-max-size", "1GiB"])
    try:
        lg = loadgen("--protocol", "grpc", "--endpoint", f"127.0.0.1:{s.grpc}", "--profile", "realistic",
                     "--rate", 5000, "--duration", "30s", wait=False)
        time.sleep(8)
        a = (s.status("RssAnon"), s.metric("sightline_store_spans_appended_total"), s.metric("sightline_store_head_bytes"))
        time.sleep(20)
        b = (s.status("RssAnon"), s.metric("sightline_store_spans_appended_total"), s.metric("sightline_store_head_bytes"))
        lg.wait()
        spans = b[1] - a[1]
        print(json.dumps({"step": "head_bytes", "spans": spans, "rss_anon_per_span": (b[0] - a[0]) / spans,
                          "estimated_per_span": (b[2] - a[2]) / spans}))
    finally:
        s.stop()


def fixed(profile, secs=60):
    s = Server()
    try:
        time.sleep(1)
        c0, t0, f0 = s.cpu(), time.time(), s.minor_faults()
        r = loadgen("--protocol", "grpc", "--endpoint", f"127.0.0.1:{s.grpc}", "--profile", profile,
                    "--rate", 10000, "--concurrency", 8, "--duration", f"{secs}s")
        c1, t1, f1 = s.cpu(), time.time(), s.minor_faults()
        print(json.dumps({"step": f"fixed_{profile}", "cpu_percent": (c1 - c0) / (t1 - t0) * 100,
                          "cpu_us_per_span": (c1 - c0) / r["spans_acked"] * 1e6,
                          "minor_faults_per_span": (f1 - f0) / r["spans_acked"], "acked_per_sec": r["spans_per_sec"],
                          "rss_mib": s.status("VmRSS") / 2**20, "retries": r["retries"]}))
    finally:
        s.stop()


def saturation(profile, secs=40, warmup=20):
    s = Server()
    try:
        c0, t0 = s.cpu(), time.time()
        r = loadgen("--protocol", "grpc", "--endpoint", f"127.0.0.1:{s.grpc}", "--profile", profile,
                    "--concurrency", 8, "--duration", f"{secs}s", "--warmup", f"{warmup}s")
        c1, t1 = s.cpu(), time.time()
        print(json.dumps({"step": f"saturation_{profile}", "spans_per_sec": r["spans_per_sec"],
                          "server_cores": (c1 - c0) / (t1 - t0), "cpu_us_per_span_all": (c1 - c0) / max(1, s.metric("sightline_store_spans_appended_total")) * 1e6,
                          "peak_rss_mib": s.status("VmHWM") / 2**20, "retries": r["retries"],
                          "blocks": s.metric("sightline_store_blocks")}))
    finally:
        s.stop()


def wide_queries():
    s = Server()
    try:
        loadgen("--protocol", "grpc", "--endpoint", f"127.0.0.1:{s.grpc}", "--profile", "realistic",
                "--concurrency", 4, "--duration", "20s")
        stored = s.metric("sightline_store_spans_appended_total")
        hwm0 = s.status("VmHWM")
        lg = loadgen("--protocol", "grpc", "--endpoint", f"127.0.0.1:{s.grpc}", "--profile", "realistic",
                     "--concurrency", 4, "--duration", "30s", wait=False)
        time.sleep(3)
        url = f"http://127.0.0.1:{s.api}/api/traces?service=frontend&limit=100000&lookback=1h"

        def q(_):
            t = time.time()
            try:
                with urllib.request.urlopen(url, timeout=120) as r:
                    body = json.loads(r.read())
                    return r.status, len(body.get("data") or []), time.time() - t
            except urllib.error.HTTPError as e:
                return e.code, 0, time.time() - t

        peak = 0
        with concurrent.futures.ThreadPoolExecutor(20) as ex:
            fut = [ex.submit(q, i) for i in range(20)]
            while not all(f.done() for f in fut):
                peak = max(peak, s.status("VmRSS")); time.sleep(0.05)
            res = [f.result() for f in fut]
        out, err = lg.communicate()
        r = json.loads(out.strip().splitlines()[-1])
        print(json.dumps({"step": "wide_queries", "stored_spans_before": stored, "peak_rss_mib_during": peak / 2**20,
                          "vmhwm_mib": s.status("VmHWM") / 2**20, "hwm_before_mib": hwm0 / 2**20,
                          "statuses": sorted({x[0] for x in res}), "traces_per_query": sorted({x[1] for x in res}),
                          "query_secs_max": max(x[2] for x in res), "ingest_retries": r["retries"],
                          "ingest_acked": r["spans_acked"], "truncated": s.metric("sightline_store_query_results_truncated_total")}))
    finally:
        s.stop()




def storage(n="1000000"):
    s = Server()
    samples = os.path.join(s.dir, "samples.json")
    try:
        r = loadgen("--protocol", "grpc", "--endpoint", f"127.0.0.1:{s.grpc}", "--profile", "realistic",
                    "--pool", 0, "--spans", int(n), "--concurrency", 4, "--samples-out", samples)
        peak = s.status("VmHWM")
        s.p.terminate(); s.p.wait(300)
        s.p = subprocess.Popen([BIN, "serve", "--data-dir", os.path.join(s.dir, "data"),
                                "--otlp-grpc-addr", f"127.0.0.1:{s.grpc}", "--otlp-http-addr", f"127.0.0.1:{s.http}",
                                "--http-addr", f"127.0.0.1:{s.api}", "--zipkin-addr", f"127.0.0.1:{free_port()}",
                                "--log-level", "warn"], stdout=s.log, stderr=s.log)
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{s.api}/ready", timeout=1); break
            except Exception:
                time.sleep(0.1)
        last, since = None, time.time()
        while time.time() - since < 65:
            state = (s.metric("sightline_store_blocks"), s.metric("sightline_store_frozen_heads"))
            if state != last:
                last, since = state, time.time()
            time.sleep(2)
        bb, bs = s.metric("sightline_store_block_bytes"), s.metric("sightline_store_block_spans")
        q = loadgen("query-bench", "--http-addr", f"127.0.0.1:{s.api}", "--samples", samples,
                    "--lookups", 200, "--searches", 20)
        print(json.dumps({"step": "storage", "spans": r["spans_acked"], "ingest_peak_rss_mib": peak / 2**20,
                          "bytes_per_span": bb / bs if bs else 0, "block_spans": bs, "blocks": s.metric("sightline_store_blocks"),
                          "queries": q}))
    finally:
        s.stop()


def rotel_bin():
    path = os.environ.get("SIGHTLINE_BENCH_ROTEL")
    if path:
        return path
    here = os.path.dirname(os.path.abspath(__file__))
    found = glob.glob(os.path.join(here, ".venv/lib/python3*/site-packages/rotel/rotel-agent"))
    if not found:
        raise SystemExit("rotel-agent not found: set SIGHTLINE_BENCH_ROTEL or run bench/run.sh once")
    return found[0]


class Rotel:
    """Rotel's blackhole exporter, as bench.py starts it."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sl-measure-rotel-")
        self.grpc, self.http = free_port(), free_port()
        self.log = open(os.path.join(self.dir, "log"), "w")
        self.p = subprocess.Popen([rotel_bin(), "start", "--exporter", "blackhole",
                                   "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc}",
                                   "--otlp-http-endpoint", f"127.0.0.1:{self.http}",
                                   "--pid-file", os.path.join(self.dir, "rotel.pid")], stdout=self.log, stderr=self.log)
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", self.grpc), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("rotel did not start")

    cpu = Server.cpu
    status = Server.status

    def stop(self):
        self.p.terminate(); self.p.wait(300); self.log.close()
        subprocess.run(["rm", "-rf", self.dir])


def logs_ingest(secs="40", who="both"):
    """bench.py's logs_ingest: 8 senders over gRPC, the rate over the last
    half of the run (bench.py's full mode: 20 s of 40), server CPU over the
    whole run divided by the records acknowledged."""
    secs = int(secs)
    rates = {}
    for target in (["sightline", "rotel"] if who == "both" else [who]):
        s = Server() if target == "sightline" else Rotel()
        try:
            c0, t0 = s.cpu(), time.time()
            r = loadgen("--signal", "logs", "--protocol", "grpc", "--endpoint", f"127.0.0.1:{s.grpc}",
                        "--concurrency", 8, "--duration", f"{secs}s", "--warmup", f"{secs // 2}s")
            c1, t1 = s.cpu(), time.time()
            out = {"step": f"logs_ingest_{target}", "records_per_sec": round(r["spans_per_sec"]),
                   "server_cores": round((c1 - c0) / (t1 - t0), 2),
                   "cpu_us_per_record": round((c1 - c0) * 1e6 / max(1, r["spans_acked"]), 2),
                   "peak_rss_mib": round(s.status("VmHWM") / 2**20), "refusals": r["retries"],
                   "load1": os.getloadavg()[0]}
            if target == "sightline":
                appended = s.metric("sightline_logstore_records_appended_total")
                out["blocks"] = s.metric("sightline_logstore_blocks")
                out["merges"] = s.metric("sightline_logstore_compactions_total")
                if appended < r["spans_acked"]:
                    out["error"] = f"{r['spans_acked']} acknowledged, {appended:.0f} appended to the WAL"
            rates[target] = r["spans_per_sec"]
            print(json.dumps(out), flush=True)
        finally:
            s.stop()
    if len(rates) == 2 and rates["rotel"]:
        print(json.dumps({"step": "logs_ingest_ratio", "sightline_over_rotel": round(rates["sightline"] / rates["rotel"], 3)}))


def traces_and_logs(secs="40", limit_mib="256"):
    """bench.py's traces_and_logs: spans and log records at saturation at
    once against one server with an explicit --memory-limit."""
    secs = int(secs)
    s = Server(["--memory-limit", f"{limit_mib}MiB"])
    try:
        common = ("--protocol", "grpc", "--endpoint", f"127.0.0.1:{s.grpc}", "--concurrency", 8,
                  "--duration", f"{secs}s", "--warmup", f"{secs // 2}s")
        c0, t0 = s.cpu(), time.time()
        procs = [loadgen("--profile", "realistic", *common, wait=False), loadgen("--signal", "logs", *common, wait=False)]
        traces, logs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
        c1, t1 = s.cpu(), time.time()
        print(json.dumps({"step": "traces_and_logs", "memory_limit_mib": int(limit_mib),
                          "peak_rss_mib": round(s.status("VmHWM") / 2**20, 1),
                          "spans_per_sec": round(traces["spans_per_sec"]), "records_per_sec": round(logs["spans_per_sec"]),
                          "server_cores": round((c1 - c0) / (t1 - t0), 2), "traces_refusals": traces["retries"],
                          "logs_refusals": logs["retries"], "dropped": traces["spans_dropped"] + logs["spans_dropped"],
                          "log_block_cache_bytes": s.metric("sightline_logstore_block_cache_bytes"),
                          "log_word_cache_bytes": s.metric("sightline_logstore_word_cache_bytes"),
                          "load1": os.getloadavg()[0]}), flush=True)
    finally:
        s.stop()


for step in sys.argv[2:]:
    name, *args = step.split(":")
    {"head_bytes": head_bytes, "fixed": fixed, "saturation": saturation, "wide_queries": wide_queries,
     "storage": storage, "logs_ingest": logs_ingest, "traces_and_logs": traces_and_logs}[name](*args)
