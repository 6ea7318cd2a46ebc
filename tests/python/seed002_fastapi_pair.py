"""Seed 002's FastAPI caller -> httpx -> FastAPI server pair, exported over OTLP/HTTP.

Run as a driver: `python seed002_fastapi_pair.py OTLP_HTTP_ENDPOINT`. It starts the
two services as subprocesses (each with its own TracerProvider, as two real services
would), probes their /health endpoints (excluded from tracing, as in the seed), calls
caller's /dispatch, stops both gracefully so their BatchSpanProcessors flush, and
prints one JSON line: {"trace_id": ..., "caller_port": ..., "server_port": ...}.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx


def init_tracing(service_name, app):
    """The seed's init_tracing, unchanged in substance."""
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"]
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument()
    # exclude_spans drops the ASGI send/receive internal spans so the trace is
    # exactly the seed's three spans.
    FastAPIInstrumentor.instrument_app(app, excluded_urls="health", exclude_spans=["send", "receive"])
    return provider


def service(role, port, server_url):
    import uvicorn
    from fastapi import FastAPI
    from opentelemetry import trace

    app = FastAPI()
    provider = init_tracing("my-caller" if role == "caller" else "my-server", app)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    if role == "server":
        @app.post("/command")
        async def handle_command(payload: dict):
            return {"status": "ok"}
    else:
        @app.post("/dispatch")
        async def dispatch(payload: dict):
            async with httpx.AsyncClient() as client:
                resp = await client.post(f"{server_url}/command", json=payload)
            ctx = trace.get_current_span().get_span_context()
            return {"upstream_status": resp.status_code, "trace_id": format(ctx.trace_id, "032x")}

    @app.on_event("shutdown")
    def flush():
        provider.shutdown()

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url, proc):
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"service exited early with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} never became healthy")


def driver(endpoint):
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    server_port, caller_port = free_port(), free_port()
    server_url = f"http://127.0.0.1:{server_port}"
    caller_url = f"http://127.0.0.1:{caller_port}"
    procs = [
        subprocess.Popen([sys.executable, __file__, "--service", "server", str(server_port), ""], env=env),
        subprocess.Popen([sys.executable, __file__, "--service", "caller", str(caller_port), server_url], env=env),
    ]
    try:
        wait_healthy(f"{server_url}/health", procs[0])
        wait_healthy(f"{caller_url}/health", procs[1])
        for _ in range(3):  # load-balancer style probes: must not create traces
            httpx.get(f"{server_url}/health")
            httpx.get(f"{caller_url}/health")
        resp = httpx.post(f"{caller_url}/dispatch", json={"command": "go"}, timeout=10)
        resp.raise_for_status()
        body = resp.json()
        assert body["upstream_status"] == 200, body
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
    print(json.dumps({"trace_id": body["trace_id"], "caller_port": caller_port, "server_port": server_port}))


if __name__ == "__main__":
    if sys.argv[1] == "--service":
        service(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        driver(sys.argv[1])
