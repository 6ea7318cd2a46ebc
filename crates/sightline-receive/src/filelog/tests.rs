//! The file receiver against real files: parsing, restart without
//! duplicates, rotation by rename and by copytruncate, cut lines, refusals.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::registry::Registry;
use serde_json::json;
use sightline_model::{ConsumeError, LogBatch, LogRecord, LogsConsumer, Value};

use super::parse::{Fields, Parsed, Parser, timestamp};
use super::{Filelog, Metrics, Options};
use crate::testing::metrics_text;

#[test]
fn a_seed_002_line_becomes_a_record_with_its_trace_context() {
    let fields = Fields::default();
    let mut parser = Parser::new(&fields, "unknown_service");
    let line = br#"{"timestamp": "2026-03-01T12:00:00.250000Z", "level": "ERROR", "service": "orders", "message": "payment declined", "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b7", "exception": "ValueError('card')", "order_id": 42}"#;
    let (r, parsed) = parser.parse(line, "app.log");
    assert_eq!(parsed, Parsed::Json);
    assert_eq!(r.time_unix_nano, 1_772_366_400_250_000_000);
    assert_eq!((r.severity_number, r.severity_text.as_str()), (17, "ERROR"));
    assert_eq!(r.service_name(), "orders");
    assert_eq!(r.body, Value::Str("payment declined".into()));
    assert_eq!(r.trace_id.unwrap().to_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(r.span_id.unwrap().to_hex(), "00f067aa0ba902b7");
    let attr = |k: &str| r.attributes.iter().find(|a| a.key == k).map(|a| a.value.clone());
    assert_eq!(attr("exception.stacktrace"), Some(Value::Str("ValueError('card')".into())));
    assert_eq!(attr("order_id"), Some(Value::Int(42)));
    assert_eq!(attr("log.file.name"), Some(Value::Str("app.log".into())));
    // The seed writes zeros outside a span: no trace context.
    let (r, _) = parser.parse(
        br#"{"level":"warning","message":"m","trace_id":"00000000000000000000000000000000","span_id":"0000000000000000"}"#,
        "app.log",
    );
    assert_eq!((r.trace_id, r.span_id, r.severity_number), (None, None, 13));
    assert_eq!(r.service_name(), "unknown_service");
    let (r, parsed) = parser.parse(b"Traceback (most recent call last):", "app.log");
    assert_eq!(parsed, Parsed::Text);
    assert_eq!(r.body, Value::Str("Traceback (most recent call last):".into()));
}

#[test]
fn field_names_are_configurable_and_timestamps_take_offsets_and_epochs() {
    let fields = Fields { message: "msg".into(), level: "severity".into(), ..Fields::default() };
    let mut parser = Parser::new(&fields, "svc");
    let (r, _) = parser.parse(br#"{"msg":"hi","severity":"INFO","message":"kept as attribute"}"#, "a.log");
    assert_eq!(r.body, Value::Str("hi".into()));
    assert_eq!(r.severity_number, 9);
    assert!(r.attributes.iter().any(|a| a.key == "message"));
    let utc = timestamp(&json!("2026-03-01T12:00:00Z")).unwrap();
    assert_eq!(timestamp(&json!("2026-03-01T14:00:00+02:00")), Some(utc));
    assert_eq!(timestamp(&json!("2026-03-01T07:30:00-04:30")), Some(utc));
    assert_eq!(timestamp(&json!(1_772_366_400)), Some(utc));
    assert_eq!(timestamp(&json!(1_772_366_400_000u64)), Some(utc));
    assert_eq!(timestamp(&json!(1_772_366_400.5)), Some(utc + 500_000_000));
    assert_eq!(timestamp(&json!("yesterday")), None);
}

// ------------------------------------------------------------ real files

/// Collects records; refuses the first `refuse` batches.
#[derive(Default)]
struct Sink {
    records: Mutex<Vec<LogRecord>>,
    refuse: Mutex<usize>,
}

#[async_trait]
impl LogsConsumer for Sink {
    async fn consume_logs(&self, batch: LogBatch) -> Result<(), ConsumeError> {
        {
            let mut refuse = self.refuse.lock().unwrap();
            if *refuse > 0 {
                *refuse -= 1;
                return Err(ConsumeError::Overloaded {
                    reason: "test".into(),
                    retry_after: Duration::from_millis(10),
                });
            }
        }
        self.records.lock().unwrap().extend(batch.records().iter().cloned());
        Ok(())
    }
}

impl Sink {
    fn bodies(&self) -> Vec<String> {
        self.records.lock().unwrap().iter().map(|r| r.body.to_text()).collect()
    }

    async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let bodies = self.bodies();
            if bodies.len() >= n {
                return bodies;
            }
            assert!(Instant::now() < deadline, "have {} of {n} records: {bodies:?}", bodies.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn options(dir: &Path, include: &str) -> Options {
    Options {
        include: vec![dir.join(include).display().to_string()],
        exclude: Vec::new(),
        start_at_beginning: true,
        poll_interval: Duration::from_millis(20),
        max_line_bytes: 1024,
        fields: Fields::default(),
        default_service: "unknown_service".into(),
        state_path: dir.join("state/filelog.json"),
        tenant: sightline_model::Tenant::default(),
    }
}

fn append(path: &Path, from: usize, to: usize) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    for i in from..to {
        writeln!(f, r#"{{"level":"INFO","service":"svc","message":"line {i}"}}"#).unwrap();
    }
}

fn lines(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("line {i}")).collect()
}

fn start(options: Options, sink: &Arc<Sink>) -> (Filelog, Metrics, Registry) {
    let mut registry = Registry::default();
    let metrics = Metrics::new(&mut registry);
    let f = Filelog::start("filelog", options, sink.clone(), metrics.clone()).unwrap();
    (f, metrics, registry)
}

#[tokio::test]
async fn a_restart_resumes_after_the_last_acknowledged_line_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, 0, 50);
    let sink = Arc::new(Sink::default());
    let (f, _, _) = start(options(dir.path(), "*.log"), &sink);
    assert_eq!(sink.wait_for(50).await, lines(0, 50));
    f.shutdown().await;
    // Written while the receiver is down, and after it is back.
    append(&log, 50, 80);
    let (f, _, _) = start(options(dir.path(), "*.log"), &sink);
    sink.wait_for(80).await;
    append(&log, 80, 90);
    assert_eq!(sink.wait_for(90).await, lines(0, 90));
    f.shutdown().await;
    f.shutdown().await;
    assert_eq!(sink.bodies(), lines(0, 90), "no duplicates");
}

#[tokio::test]
async fn rotation_by_rename_and_create_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, 0, 20);
    let sink = Arc::new(Sink::default());
    let (f, _, _) = start(options(dir.path(), "app.log"), &sink);
    sink.wait_for(20).await;
    // The writer keeps writing to its open file after the rename, and a
    // last line without its newline yet; then reopens the path.
    let mut old = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
    for i in 20..30 {
        writeln!(old, r#"{{"message":"line {i}"}}"#).unwrap();
    }
    write!(old, r#"{{"message":"line 30"}}"#).unwrap();
    drop(old);
    append(&log, 31, 40);
    let bodies = sink.wait_for(40).await;
    f.shutdown().await;
    assert_eq!(bodies, lines(0, 40), "in order, nothing lost or repeated");
}

#[tokio::test]
async fn copytruncate_is_noticed_and_the_file_read_again_from_its_start() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    append(&log, 0, 10);
    let sink = Arc::new(Sink::default());
    let (f, _, _) = start(options(dir.path(), "app.log"), &sink);
    sink.wait_for(10).await;
    std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
    append(&log, 10, 13);
    assert_eq!(sink.wait_for(13).await, lines(0, 13));
    f.shutdown().await;
}

#[tokio::test]
async fn long_lines_are_cut_bad_lines_kept_as_text_and_refusals_retried() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("app.log");
    {
        let mut f = std::fs::File::create(&log).unwrap();
        writeln!(f, r#"{{"message":"first"}}"#).unwrap();
        writeln!(f, "{}", "x".repeat(5000)).unwrap();
        writeln!(f, "not json").unwrap();
        writeln!(f).unwrap();
        writeln!(f, r#"{{"message":"last"}}"#).unwrap();
    }
    let sink = Arc::new(Sink::default());
    *sink.refuse.lock().unwrap() = 2;
    let mut opts = options(dir.path(), "app.log");
    opts.max_line_bytes = 100;
    let (f, _, registry) = start(opts, &sink);
    let bodies = sink.wait_for(4).await;
    f.shutdown().await;
    assert_eq!(bodies, ["first".to_owned(), "x".repeat(100), "not json".into(), "last".into()]);
    let text = metrics_text(&registry);
    for line in [
        r#"sightline_receive_filelog_lines_total{receiver="filelog",outcome="json"} 2"#,
        r#"sightline_receive_filelog_lines_total{receiver="filelog",outcome="text"} 1"#,
        r#"sightline_receive_filelog_lines_total{receiver="filelog",outcome="truncated"} 1"#,
        r#"sightline_receive_filelog_refused_total{receiver="filelog"} 2"#,
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
    }
}

#[tokio::test]
async fn start_at_end_skips_what_was_there_and_new_files_are_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("a.log"), 0, 5);
    let sink = Arc::new(Sink::default());
    let mut opts = options(dir.path(), "*.log");
    opts.start_at_beginning = false;
    opts.exclude = vec![dir.path().join("skip*.log").display().to_string()];
    let (f, _, _) = start(opts, &sink);
    // Give the first poll a chance to see a.log before more is written.
    wait_for_state(&dir.path().join("state/filelog.json")).await;
    append(&dir.path().join("a.log"), 5, 7);
    append(&dir.path().join("skip-me.log"), 100, 101);
    append(&dir.path().join("b.log"), 7, 9);
    let mut bodies = sink.wait_for(4).await;
    f.shutdown().await;
    bodies.sort();
    assert_eq!(bodies, lines(5, 9));
}

async fn wait_for_state(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(Instant::now() < deadline, "no state file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Positions of files gone while the receiver was stopped are dropped, so
/// the state file does not grow with every rotation.
#[tokio::test]
async fn positions_of_files_gone_while_stopped_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    append(&dir.path().join("a.log"), 0, 2);
    let sink = Arc::new(Sink::default());
    let (f, _, _) = start(options(dir.path(), "*.log"), &sink);
    sink.wait_for(2).await;
    f.shutdown().await;
    std::fs::rename(dir.path().join("a.log"), dir.path().join("a.log.1")).unwrap();
    let (f, _, _) = start(options(dir.path(), "*.log"), &sink);
    append(&dir.path().join("b.log"), 2, 3);
    assert_eq!(sink.wait_for(3).await, lines(0, 3));
    f.shutdown().await;
    let positions = super::state::load(&dir.path().join("state/filelog.json")).unwrap();
    let names: Vec<String> = positions.iter().map(|p| p.path.display().to_string()).collect();
    assert_eq!(names, [dir.path().join("b.log").display().to_string()]);
}
