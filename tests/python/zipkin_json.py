"""A small trace exported with the stock Zipkin JSON exporter (issue 6, Zipkin receiver).

`python zipkin_json.py ZIPKIN_URL` (e.g. http://127.0.0.1:9411/api/v2/spans) creates, with the
stock OpenTelemetry SDK and opentelemetry-exporter-zipkin-json (Zipkin v2 JSON), one trace of
service `zipkin-checkout`:
- a SERVER root span `POST /checkout` with string, int, float, bool and array attributes and an
  event `stock.reserved` with attributes;
- an INTERNAL child `reserve-stock` with one attribute;
- a CLIENT child `GET /payments` that ends with ERROR status "card declined".
All three go in one POST (batch processor, flushed at shutdown); the script exits non-zero if the
exporter reports a failure. It prints one JSON line with the ids and the expected parent links.
"""
import json
import sys

from opentelemetry import trace
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult


class CheckedZipkinExporter(ZipkinExporter):
    """The stock exporter, remembering every export's result."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.results = []

    def export(self, spans):
        result = super().export(spans)
        self.results.append((len(spans), result))
        return result


def hexid(n, width):
    return format(n, f"0{width}x")


def main(url):
    exporter = CheckedZipkinExporter(endpoint=url, local_node_ipv4="192.0.2.10", local_node_port=8080)
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: "zipkin-checkout", "deployment.environment": "ci"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("checkout.tests", "1.0")

    with tracer.start_as_current_span("POST /checkout", kind=trace.SpanKind.SERVER) as root:
        root.set_attribute("http.request.method", "POST")
        root.set_attribute("order.items", 3)
        root.set_attribute("order.total", 42.5)
        root.set_attribute("order.express", True)
        root.set_attribute("order.skus", ["A-1", "B-2"])
        with tracer.start_as_current_span("reserve-stock") as reserve:
            reserve.set_attribute("stock.warehouse", "north")
        root.add_event("stock.reserved", {"sku": "A-1", "qty": 2})
        with tracer.start_as_current_span("GET /payments", kind=trace.SpanKind.CLIENT) as pay:
            pay.set_status(trace.Status(trace.StatusCode.ERROR, "card declined"))

    provider.shutdown()
    exported = sum(n for n, r in exporter.results if r is SpanExportResult.SUCCESS)
    failed = [(n, r.name) for n, r in exporter.results if r is not SpanExportResult.SUCCESS]
    if failed or exported != 3:
        print(f"export failed: {failed}, exported {exported} of 3", file=sys.stderr)
        sys.exit(1)

    rctx, sctx, pctx = root.get_span_context(), reserve.get_span_context(), pay.get_span_context()
    root_id = hexid(rctx.span_id, 16)
    print(
        json.dumps(
            {
                "trace_id": hexid(rctx.trace_id, 32),
                "service": "zipkin-checkout",
                "posts": len(exporter.results),
                "spans": [
                    {"name": "POST /checkout", "span_id": root_id, "parent_span_id": None},
                    {"name": "reserve-stock", "span_id": hexid(sctx.span_id, 16), "parent_span_id": root_id},
                    {"name": "GET /payments", "span_id": hexid(pctx.span_id, 16), "parent_span_id": root_id},
                ],
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
