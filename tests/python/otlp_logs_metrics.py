"""The stock OpenTelemetry Python SDK's logs and metrics exporters against
Sightline, as a service configured with OTEL_EXPORTER_OTLP_ENDPOINT would
send them: Python `logging` records through the SDK's LoggingHandler
(inside a span, so they carry its trace context), a counter and a
histogram through a periodic metric reader.

Usage: otlp_logs_metrics.py grpc|http ENDPOINT SERVICE
Prints one JSON line: every export result, and the span's ids.
"""
import json
import logging
import sys

from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider

protocol, endpoint, service = sys.argv[1], sys.argv[2], sys.argv[3]
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

    log_args = metric_args = {"endpoint": endpoint, "insecure": True}
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

    log_args = {"endpoint": f"{endpoint}/v1/logs"}
    metric_args = {"endpoint": f"{endpoint}/v1/metrics"}

results = {"logs": [], "metrics": []}


class Logs(OTLPLogExporter):
    def export(self, batch):
        result = super().export(batch)
        results["logs"].append(result.name)
        return result


class Metrics(OTLPMetricExporter):
    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        results["metrics"].append(result.name)
        return result


resource = Resource.create({SERVICE_NAME: service, "deployment.environment": "ci"})
tracer = TracerProvider(resource=resource).get_tracer("checkout")
logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(SimpleLogRecordProcessor(Logs(**log_args)))
log = logging.getLogger("checkout")
log.setLevel(logging.INFO)
log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))

reader = PeriodicExportingMetricReader(Metrics(**metric_args), export_interval_millis=60_000)
meter = MeterProvider(resource=resource, metric_readers=[reader]).get_meter("checkout.meter")
orders = meter.create_counter("orders.placed", unit="{order}", description="Orders placed")
latency = meter.create_histogram("checkout.duration", unit="ms", description="Checkout duration")

with tracer.start_as_current_span("checkout") as span:
    log.info("order placed", extra={"order.id": "A-17"})
    log.error("payment declined for order %s", "A-17")
    orders.add(3, {"payment.method": "card"})
    latency.record(42.0, {"payment.method": "card"})
    ctx = span.get_span_context()
log.warning("no span here")

reader.force_flush()
logger_provider.shutdown()
reader.shutdown()
print(
    json.dumps(
        {
            "results": results,
            "trace_id": format(ctx.trace_id, "032x"),
            "span_id": format(ctx.span_id, "016x"),
        }
    )
)
