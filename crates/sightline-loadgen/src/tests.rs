use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord as OtlpRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use sightline_model::{Batch, ConsumeError, LogBatch, LogsConsumer, TracesConsumer};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::client::{Answer, Signal, grpc_failure, http_answer};
use crate::generate::Rng;
use crate::template::{Patch, Template};
use crate::{DataArgs, Generator, Profile, Protocol, SendArgs, Shape};

fn spans_of(request: &ExportTraceServiceRequest) -> Vec<&Span> {
    request.resource_spans.iter().flat_map(|rs| &rs.scope_spans).flat_map(|ss| &ss.spans).collect()
}

fn data(profile: Profile) -> DataArgs {
    DataArgs {
        profile,
        spans_per_request: 512,
        spans_per_trace: None,
        depth: None,
        fanout: None,
        seed: 1,
        pool: 4,
    }
}

#[test]
fn shapes_put_parents_before_children_and_respect_depth() {
    let parents = Shape { spans_per_trace: 12, depth: 3, fanout: 3 }.parents();
    assert_eq!(parents.len(), 12);
    assert_eq!(parents[0], None);
    for (i, p) in parents.iter().enumerate().skip(1) {
        assert!(p.is_some_and(|p| p < i), "span {i} has parent {p:?}");
    }
    // depth 1, fan-out 2 holds three spans, whatever was asked.
    assert_eq!(Shape { spans_per_trace: 50, depth: 1, fanout: 2 }.parents(), vec![None, Some(0), Some(0)]);
    assert_eq!(Shape::default_for(Profile::Testbed).parents(), vec![None]);
    // A bigger testbed trace gets a one-level tree unless told otherwise.
    let wide = DataArgs { spans_per_trace: Some(5), ..data(Profile::Testbed) }.shape();
    assert_eq!(wide.parents().len(), 5);
}

#[test]
fn requests_are_deterministic_per_seed_and_number() {
    let g = Generator::new(Profile::Realistic, Shape::default_for(Profile::Realistic), 9);
    let a = g.request(3, 100, 1_000).0.encode_to_vec();
    let b = g.request(3, 100, 1_000).0.encode_to_vec();
    let c = g.request(4, 100, 1_000).0.encode_to_vec();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let other_seed = Generator::new(Profile::Realistic, Shape::default_for(Profile::Realistic), 10);
    assert_ne!(a, other_seed.request(3, 100, 1_000).0.encode_to_vec());
}

#[test]
fn profiles_have_the_documented_sizes_and_content() {
    for (profile, range) in [(Profile::Testbed, 120.0..=180.0), (Profile::Realistic, 300.0..=500.0)] {
        let g = Generator::new(profile, Shape::default_for(profile), 1);
        let (mut bytes, mut spans, mut attrs, mut events, mut errors) = (0, 0, 0, 0, 0);
        let mut services = HashSet::new();
        for k in 0..40 {
            let (request, _) = g.request(k, 512, 1_700_000_000_000_000_000);
            bytes += request.encoded_len();
            for rs in &request.resource_spans {
                for kv in &rs.resource.as_ref().unwrap().attributes {
                    if kv.key == "service.name" {
                        services.insert(format!("{:?}", kv.value));
                    }
                }
            }
            let list = spans_of(&request);
            assert_eq!(list.len(), 512, "a request holds exactly the asked spans");
            spans += list.len();
            for s in list {
                attrs += s.attributes.len();
                events += s.events.len();
                errors += usize::from(s.status.as_ref().is_some_and(|st| st.code == 2));
                assert!(s.end_time_unix_nano >= s.start_time_unix_nano);
            }
        }
        let per_span = bytes as f64 / spans as f64;
        println!(
            "{profile:?}: {per_span:.0} B/span, {:.1} attributes, {:.2} events",
            attrs as f64 / spans as f64,
            events as f64 / spans as f64
        );
        assert!(range.contains(&per_span), "{profile:?}: {per_span:.0} B/span");
        match profile {
            Profile::Testbed => {
                assert_eq!(attrs, spans * 2);
                assert_eq!(events, 0);
                assert_eq!(errors, 0);
            }
            Profile::Realistic => {
                let mean = attrs as f64 / spans as f64;
                assert!((9.0..=12.0).contains(&mean), "{mean} attributes per span");
                let ev = events as f64 / spans as f64;
                assert!((1.0..=2.0).contains(&ev), "{ev} events per span");
                let err = errors as f64 / spans as f64;
                assert!((0.002..=0.09).contains(&err), "{err} error spans");
                assert!(services.len() >= 6, "{services:?}");
            }
        }
    }
}

#[test]
fn every_trace_is_a_tree_within_its_request() {
    let g = Generator::new(Profile::Realistic, Shape::default_for(Profile::Realistic), 5);
    let (request, samples) = g.request(0, 100, 0);
    let mut by_trace: HashMap<Vec<u8>, Vec<&Span>> = HashMap::new();
    for s in spans_of(&request) {
        by_trace.entry(s.trace_id.clone()).or_default().push(s);
    }
    assert_eq!(by_trace.len(), samples.len());
    for spans in by_trace.values() {
        let ids: HashSet<&[u8]> = spans.iter().map(|s| s.span_id.as_slice()).collect();
        let roots = spans.iter().filter(|s| s.parent_span_id.is_empty()).count();
        assert_eq!(roots, 1);
        assert!(
            spans.iter().all(|s| s.parent_span_id.is_empty() || ids.contains(s.parent_span_id.as_slice()))
        );
    }
}

#[test]
fn a_patched_template_is_new_traces_with_the_same_structure() {
    let g = Generator::new(Profile::Realistic, Shape::default_for(Profile::Realistic), 2);
    let (request, samples) = g.request(0, 64, 1_000_000_000);
    let template = Template::new(&request, samples.clone()).unwrap();
    assert_eq!(template.spans(), 64);
    assert_eq!(template.render(&Patch::IDENTITY), request.encode_to_vec());

    let patch = Patch::for_request(1, 77, 5_000);
    let patched = ExportTraceServiceRequest::decode(template.render(&patch)).unwrap();
    let (before, after) = (spans_of(&request), spans_of(&patched));
    assert_eq!(before.len(), after.len());
    for (b, a) in before.iter().zip(&after) {
        let xor = |x: &[u8], m: &[u8]| x.iter().zip(m).map(|(x, m)| x ^ m).collect::<Vec<u8>>();
        assert_eq!(a.trace_id, xor(&b.trace_id, &patch.trace_mask));
        assert_eq!(a.span_id, xor(&b.span_id, &patch.span_mask));
        if b.parent_span_id.is_empty() {
            assert!(a.parent_span_id.is_empty());
        } else {
            assert_eq!(a.parent_span_id, xor(&b.parent_span_id, &patch.span_mask));
        }
        assert_eq!(a.start_time_unix_nano, b.start_time_unix_nano + 5_000);
        assert_eq!(a.end_time_unix_nano, b.end_time_unix_nano + 5_000);
        for (be, ae) in b.events.iter().zip(&a.events) {
            assert_eq!(ae.time_unix_nano, be.time_unix_nano + 5_000);
        }
        // Everything else is untouched.
        assert_eq!((&a.name, &a.attributes, &a.status), (&b.name, &b.attributes, &b.status));
    }
    assert_eq!(template.min_start() + 5_000, after.iter().map(|s| s.start_time_unix_nano).min().unwrap());
    assert_eq!(patch.trace_id(&samples[0].trace_id).as_slice(), after[0].trace_id.as_slice());
    assert_ne!(Patch::for_request(1, 77, 0), Patch::for_request(1, 78, 0));
}

#[test]
fn replies_map_to_retry_fail_or_ok_as_otlp_says() {
    let refused = http_answer(
        Signal::Traces,
        http::StatusCode::TOO_MANY_REQUESTS,
        Some(Duration::from_secs(2)),
        Bytes::new(),
    );
    assert!(matches!(refused, Answer::Retry { after: Some(d), .. } if d == Duration::from_secs(2)));
    assert!(matches!(
        http_answer(Signal::Traces, http::StatusCode::SERVICE_UNAVAILABLE, None, Bytes::new()),
        Answer::Retry { after: None, .. }
    ));
    assert!(matches!(
        http_answer(Signal::Traces, http::StatusCode::BAD_REQUEST, None, Bytes::from_static(b"bad")),
        Answer::Fail { .. }
    ));
    let partial = ExportTraceServiceResponse {
        partial_success: Some(ExportTracePartialSuccess { rejected_spans: 3, error_message: "ids".into() }),
    };
    assert_eq!(
        http_answer(Signal::Traces, http::StatusCode::OK, None, partial.encode_to_vec().into()),
        Answer::Ok { rejected: 3 }
    );

    let with_info = tonic::Status::with_error_details(
        tonic::Code::Unavailable,
        "busy",
        ErrorDetails::with_retry_info(Some(Duration::from_millis(1500))),
    );
    assert!(
        matches!(grpc_failure(&with_info), Answer::Retry { after: Some(d), .. } if d == Duration::from_millis(1500))
    );
    assert!(matches!(grpc_failure(&tonic::Status::resource_exhausted("big")), Answer::Fail { .. }));
    let exhausted_retry = tonic::Status::with_error_details(
        tonic::Code::ResourceExhausted,
        "later",
        ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
    );
    assert!(matches!(grpc_failure(&exhausted_retry), Answer::Retry { .. }));
    assert!(matches!(grpc_failure(&tonic::Status::invalid_argument("no")), Answer::Fail { .. }));
}

#[test]
fn rng_ids_are_never_zero() {
    let mut rng = Rng::new(0);
    for _ in 0..1000 {
        let id: [u8; 8] = rng.id();
        assert!(id.iter().any(|b| *b != 0));
    }
}

/// Refuses the first `refuse` batches (retryably), then takes everything.
struct Flaky {
    refuse: AtomicUsize,
    spans: std::sync::Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
}

impl Flaky {
    fn refused(&self) -> Result<(), ConsumeError> {
        match self.refuse.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)) {
            Ok(_) => Err(ConsumeError::Overloaded {
                reason: "test refusal".into(),
                retry_after: Duration::from_millis(200),
            }),
            Err(_) => Ok(()),
        }
    }
}

/// Log records are kept as (trace id, span id) like spans.
#[async_trait]
impl LogsConsumer for Flaky {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        self.refused()?;
        let mut spans = self.spans.lock().unwrap();
        for r in batch.records() {
            let trace = r.trace_id.map(|t| t.as_bytes().to_vec()).unwrap_or_default();
            let span = r.span_id.map(|s| s.as_bytes().to_vec()).unwrap_or_default();
            spans.push((trace, span));
        }
        Ok(())
    }
}

#[async_trait]
impl TracesConsumer for Flaky {
    async fn consume_traces(&self, batch: Batch) -> Result<(), ConsumeError> {
        self.refused()?;
        let mut spans = self.spans.lock().unwrap();
        for s in batch.spans() {
            spans.push((s.trace_id.as_bytes().to_vec(), s.span_id.as_bytes().to_vec()));
        }
        Ok(())
    }
}

/// A receiver with default options and its own metrics, handing traces
/// to `traces`.
fn receiver(traces: Arc<dyn TracesConsumer>) -> sightline_receive::Receiver {
    sightline_receive::Receiver::new(
        traces,
        sightline_receive::Options::default(),
        Arc::new(sightline_receive::Metrics::new(&mut prometheus_client::registry::Registry::default())),
    )
}

/// A receiver served over one protocol on a free loopback port.
struct Served {
    protocol: Protocol,
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
}

impl Served {
    async fn start(protocol: Protocol, receiver: sightline_receive::Receiver) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let shutdown = async {
            let _ = stopped.await;
        };
        let server = match protocol {
            Protocol::Grpc => tokio::spawn(async move {
                sightline_receive::serve_grpc(listener, receiver, shutdown).await.unwrap();
            }),
            Protocol::Http => tokio::spawn(async move {
                sightline_receive::serve_http(listener, receiver, shutdown).await.unwrap();
            }),
        };
        Self { protocol, addr, stop, server }
    }

    /// A run of `items` items of `signal` to this server, two at a time,
    /// retrying for up to 30 s.
    fn send_args(&self, signal: Signal, items: u64, data: DataArgs) -> SendArgs {
        SendArgs {
            protocol: self.protocol,
            endpoint: self.addr.to_string(),
            concurrency: 2,
            rate: None,
            duration: None,
            spans: Some(items),
            warmup: None,
            retry_timeout: "30s".parse().unwrap(),
            json: false,
            samples_out: None,
            signal,
            data,
        }
    }

    /// Stops the server and waits for it to finish.
    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap();
    }
}

/// Sends through the real Sightline receivers over sockets, with refusals:
/// every span ends up acknowledged exactly once, retries are counted, and
/// pool patching makes every request new traces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_through_real_receivers_and_honours_refusals() {
    for protocol in [Protocol::Grpc, Protocol::Http] {
        let consumer = Arc::new(Flaky { refuse: AtomicUsize::new(2), spans: Default::default() });
        let served =
            Served::start(protocol, receiver(Arc::clone(&consumer) as Arc<dyn TracesConsumer>)).await;
        let data = DataArgs { spans_per_request: 100, pool: 3, ..data(Profile::Realistic) };
        let report = crate::run(&served.send_args(Signal::Traces, 10 * 100, data)).await.unwrap();
        served.stop().await;

        assert_eq!(report.spans_acked, 1000, "{protocol:?}: {report}");
        assert_eq!(report.requests_ok, 10);
        assert_eq!(report.retries, 2, "{report}");
        assert_eq!(report.spans_retried, 200);
        assert_eq!((report.spans_rejected, report.spans_dropped), (0, 0));
        assert!(report.bytes_acked > 300 * 1000, "{report}");
        let stored = consumer.spans.lock().unwrap();
        assert_eq!(stored.len(), 1000);
        let distinct: HashSet<&(Vec<u8>, Vec<u8>)> = stored.iter().collect();
        assert_eq!(distinct.len(), 1000, "patched copies of the 3 templates are new spans");
        let traces: HashSet<&Vec<u8>> = stored.iter().map(|(t, _)| t).collect();
        assert!(traces.len() >= 10 * 100 / 12, "{} traces", traces.len());
    }
}

fn records_of(request: &ExportLogsServiceRequest) -> Vec<&OtlpRecord> {
    request.resource_logs.iter().flat_map(|rl| &rl.scope_logs).flat_map(|sl| &sl.log_records).collect()
}

#[test]
fn a_patched_logs_template_is_new_records_with_the_same_traces() {
    let generator = crate::logs::Generator::new(0);
    let request = crate::logs_wire::request(&generator, 2, 64, 1_000_000_000);
    let template = Template::for_logs(&request).unwrap();
    assert_eq!(template.spans(), 64);
    assert_eq!(template.min_start(), 1_000_000_000);
    assert_eq!(template.render(&Patch::IDENTITY), request.encode_to_vec());

    let patch = Patch::for_request(1, 77, 5_000);
    let patched = ExportLogsServiceRequest::decode(template.render(&patch)).unwrap();
    let (before, after) = (records_of(&request), records_of(&patched));
    assert_eq!(before.len(), 64);
    assert_eq!(after.len(), 64);
    let xor = |x: &[u8], m: &[u8]| x.iter().zip(m).map(|(x, m)| x ^ m).collect::<Vec<u8>>();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b.trace_id.len(), 16);
        assert_eq!(a.trace_id, xor(&b.trace_id, &patch.trace_mask));
        assert_eq!(a.span_id, xor(&b.span_id, &patch.span_mask));
        assert_eq!(a.time_unix_nano, b.time_unix_nano + 5_000);
        assert_eq!(a.observed_time_unix_nano, b.observed_time_unix_nano + 5_000);
        assert_eq!((&a.body, &a.attributes, a.severity_number), (&b.body, &b.attributes, b.severity_number));
    }
    // 64 records are 8 whole traces of 8 records, before and after.
    for records in [&before, &after] {
        let mut traces: HashMap<&[u8], usize> = HashMap::new();
        for r in records {
            *traces.entry(r.trace_id.as_slice()).or_default() += 1;
        }
        assert_eq!(traces.len(), 8);
        assert!(traces.values().all(|n| *n == 8), "{traces:?}");
    }
}

/// `--signal logs` through the real OTLP logs receivers over sockets, with
/// refusals: every record acknowledged once, as new records per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_logs_through_real_receivers_and_honours_refusals() {
    for (protocol, pool) in [(Protocol::Grpc, 3), (Protocol::Http, 3), (Protocol::Grpc, 0)] {
        let consumer = Arc::new(Flaky { refuse: AtomicUsize::new(2), spans: Default::default() });
        // The traces consumer is there because a receiver needs one; logs
        // go to the logs consumer.
        let traces = Arc::new(Flaky { refuse: AtomicUsize::new(0), spans: Default::default() });
        let receiver = receiver(traces).logs(Arc::clone(&consumer) as Arc<dyn LogsConsumer>);
        let served = Served::start(protocol, receiver).await;
        let data = DataArgs { spans_per_request: 96, pool, ..data(Profile::Realistic) };
        let report = crate::run(&served.send_args(Signal::Logs, 10 * 96, data)).await.unwrap();
        served.stop().await;

        let what = format!("{protocol:?} pool {pool}: {report}");
        assert_eq!(report.spans_acked, 960, "{what}");
        assert_eq!(report.requests_ok, 10, "{what}");
        assert_eq!(report.retries, 2, "{what}");
        assert_eq!((report.spans_rejected, report.spans_dropped), (0, 0), "{what}");
        assert_eq!(report.to_json()["records_acked"], 960);
        assert!(report.bytes_acked > 150 * 960, "{what}");
        let stored = consumer.spans.lock().unwrap();
        assert_eq!(stored.len(), 960, "{what}");
        let distinct: HashSet<&(Vec<u8>, Vec<u8>)> = stored.iter().collect();
        assert_eq!(distinct.len(), 960, "{what}: every request is new records");
        let mut traces: HashMap<&Vec<u8>, usize> = HashMap::new();
        for (t, _) in stored.iter() {
            *traces.entry(t).or_default() += 1;
        }
        assert_eq!(traces.len(), 120, "{what}");
        assert!(traces.values().all(|n| *n == 8), "{what}: a trace's records keep one id");
    }
}
