"""The stock OpenTelemetry Python SDK's metrics, as its OTLP exporters
encode them: a counter and a histogram recorded over two collections,
each collection written as an ExportMetricsServiceRequest (protobuf).

Usage: metrics_export.py cumulative|delta SERVICE OUT_DIR
Writes OUT_DIR/export-1.pb and OUT_DIR/export-2.pb.
"""

import sys
import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import Resource

temporality, service, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
chosen = AggregationTemporality.DELTA if temporality == "delta" else AggregationTemporality.CUMULATIVE
reader = InMemoryMetricReader(preferred_temporality={Counter: chosen, Histogram: chosen})
resource = Resource.create(
    {
        "service.name": service,
        "service.instance.id": f"{service}-1",
        "deployment.environment": "test",
    }
)
provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = provider.get_meter("checkout.meter", "1.2.3")
requests = meter.create_counter("http.server.requests", unit="{request}", description="Requests served")
duration = meter.create_histogram("http.server.duration", unit="ms", description="Request duration")

attrs = {"http.route": "/pay", "http.request.method": "POST"}
requests.add(3, attrs)
duration.record(3, attrs)
(out / "export-1.pb").write_bytes(encode_metrics(reader.get_metrics_data()).SerializeToString())

time.sleep(0.05)
requests.add(4, attrs)
duration.record(30, attrs)
duration.record(300, attrs)
(out / "export-2.pb").write_bytes(encode_metrics(reader.get_metrics_data()).SerializeToString())
provider.shutdown()
