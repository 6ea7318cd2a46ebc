"""Seed 003's manual instrumentation, exported over OTLP/gRPC.

`python seed003_manual_spans.py GRPC_ENDPOINT` creates, with the stock SDK:
- a loan-application trace with typed attributes (str, int, float, bool, string array),
  events with attributes, a child span, and a span with a recorded exception and
  ERROR status;
- a producer -> consumer pair whose context crosses "message headers" (inject/extract,
  as in the seed's RabbitMQ example) into a consumer span of another service;
- 40 root spans under ParentBased(TraceIdRatioBased(0.5)), recording which were sampled.
It prints one JSON line describing what the server must now hold.
"""
import json
import sys

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBasedTraceIdRatio


def provider_for(service, endpoint, sampler=None):
    kwargs = {"resource": Resource.create({SERVICE_NAME: service, "deployment.environment": "ci"})}
    if sampler is not None:
        kwargs["sampler"] = sampler
    provider = TracerProvider(**kwargs)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    return provider


def hexid(n, width):
    return format(n, f"0{width}x")


def main(endpoint):
    out = {}
    api = provider_for("finance_lending_api", endpoint)
    worker = provider_for("finance_lending_worker", endpoint)
    sampled = provider_for("sampled_service", endpoint, ParentBasedTraceIdRatio(0.5))
    tracer = api.get_tracer("seed003")

    with tracer.start_as_current_span("process_loan_application", kind=trace.SpanKind.SERVER) as span:
        span.set_attribute("loan.amount", 50000)
        span.set_attribute("loan.rate", 3.75)
        span.set_attribute("loan.approved", True)
        span.set_attribute("loan.purpose", "car")
        span.set_attribute("loan.tags", ["new", "priority"])
        with tracer.start_as_current_span("credit_check") as credit:
            credit.set_attribute("credit.score", 750)
            credit.add_event("credit_check_completed", {"score": 750, "duration_ms": 145})
        span.add_event("loan_approved", {"reason": "good_credit"})
        with tracer.start_as_current_span("notify") as notify:
            try:
                raise ValueError("smtp unreachable")
            except ValueError as e:
                notify.record_exception(e)
                notify.set_status(trace.Status(trace.StatusCode.ERROR, str(e)))
        ctx = span.get_span_context()
        out["loan"] = {"trace_id": hexid(ctx.trace_id, 32), "root_span_id": hexid(ctx.span_id, 16)}

    # Producer/consumer across message headers.
    with tracer.start_as_current_span("publish loans", kind=trace.SpanKind.PRODUCER) as producer:
        headers = {}
        inject(headers)
        pctx = producer.get_span_context()
    consumer_tracer = worker.get_tracer("seed003.worker")
    with consumer_tracer.start_as_current_span(
        "process_loan_event", context=extract(headers), kind=trace.SpanKind.CONSUMER
    ) as consumer:
        consumer.set_attribute("loan.id", "loan-456")
        cctx = consumer.get_span_context()
    out["message"] = {
        "trace_id": hexid(pctx.trace_id, 32),
        "producer_span_id": hexid(pctx.span_id, 16),
        "consumer_span_id": hexid(cctx.span_id, 16),
        "traceparent": headers.get("traceparent"),
    }

    # Parent-based ratio sampling: record the SDK's own decisions.
    sampled_tracer = sampled.get_tracer("seed003.sampling")
    decisions = []
    for i in range(40):
        with sampled_tracer.start_as_current_span(f"job-{i}") as s:
            c = s.get_span_context()
            decisions.append({"trace_id": hexid(c.trace_id, 32), "sampled": c.trace_flags.sampled})
    out["sampling"] = decisions

    for p in (api, worker, sampled):
        p.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
