"""Sends span trees through the stock OpenTelemetry Python SDK (OTLP/HTTP).

`python send_spans.py ENDPOINT` reads a JSON plan on stdin: a list of root
spans, each {"service", "name", "kind", "start_ms", "end_ms", "error"?,
"attributes"?, "children"?: [...]}; times are ms after the moment the
script starts. Every root is its own trace. Spans are exported with one
TracerProvider per service (the service is a resource attribute), flushed,
and the script prints one JSON line: {"traces": [trace id of each root, in
plan order]}.

The e2e tests use it so the UI is tested on what a real SDK sends.
"""
import json
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

KINDS = {
    "server": trace.SpanKind.SERVER,
    "client": trace.SpanKind.CLIENT,
    "internal": trace.SpanKind.INTERNAL,
    "producer": trace.SpanKind.PRODUCER,
    "consumer": trace.SpanKind.CONSUMER,
}


def main(endpoint):
    plan = json.load(sys.stdin)
    base = time.time_ns()
    providers = {}

    def tracer(service):
        if service not in providers:
            provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
            provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
            providers[service] = provider
        return providers[service].get_tracer("sightline-ui-e2e")

    def emit(node, context):
        ns = lambda ms: base + int(ms * 1_000_000)
        span = tracer(node["service"]).start_span(
            node["name"],
            context=context,
            kind=KINDS[node.get("kind", "internal")],
            start_time=ns(node["start_ms"]),
            attributes=node.get("attributes") or {},
        )
        if node.get("error"):
            span.set_status(trace.Status(trace.StatusCode.ERROR, node["error"]))
        child_context = trace.set_span_in_context(span)
        for child in node.get("children", []):
            emit(child, child_context)
        span.end(end_time=ns(node["end_ms"]))
        return span

    ids = []
    for root in plan:
        span = emit(root, None)
        ids.append(format(span.get_span_context().trace_id, "032x"))
    for provider in providers.values():
        if not provider.force_flush(10_000):
            raise SystemExit("flush timed out")
        provider.shutdown()
    print(json.dumps({"traces": ids}))


if __name__ == "__main__":
    main(sys.argv[1])
