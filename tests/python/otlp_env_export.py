"""One span exported by the stock OTLP exporter, configured only through OTEL_* variables.

`python otlp_env_export.py PROTOCOL` with PROTOCOL `grpc` or `http/protobuf` builds the stock
exporter with no arguments, so it takes everything from the environment as a deployed service
would: OTEL_SERVICE_NAME (default `env-export`), OTEL_EXPORTER_OTLP_ENDPOINT (http:// or
https://), OTEL_EXPORTER_OTLP_HEADERS (e.g. `authorization=Bearer%20TOKEN` or
`x-scope-orgid=TENANT`), OTEL_EXPORTER_OTLP_CERTIFICATE (the CA to trust) and
OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE / OTEL_EXPORTER_OTLP_CLIENT_KEY (mutual TLS). It records one
span, exports it once and prints one JSON line:
{"result": "SUCCESS" | "FAILURE", "trace_id": ..., "span_id": ...}.
"""
import json
import logging
import os
import sys

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def main(protocol):
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        sys.exit(f"unknown protocol {protocol}")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    memory = InMemorySpanExporter()
    service = os.environ.get("OTEL_SERVICE_NAME", "env-export")
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer(service).start_as_current_span(f"export over {protocol}") as span:
        span.set_attribute("transport", protocol)
        context = span.get_span_context()
    result = OTLPSpanExporter().export(memory.get_finished_spans())
    print(json.dumps({
        "result": result.name,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
    }))


if __name__ == "__main__":
    main(sys.argv[1])
