use std::sync::Arc;
use std::time::Duration;

use sightline_model::{
    BodyMatcher, KeyValue, LogBatch, LogQuery, LogReader, LogRecord, LogsConsumer, MemoryBudget, Resource,
    Scope, SpanId, TagFilter, TraceId, Value,
};

use crate::block::{self, LogBlock, LogBlockMeta};
use crate::store::{COMPACT_MAX_RECORDS, COMPACT_MIN_INPUTS, plan_compaction, plan_retention};
use crate::{LogStore, Options};

const SEC: u64 = 1_000_000_000;
/// A fixed "now" a little in the past, so retention keeps everything.
fn base() -> u64 {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        (now - 3600 * SEC) / SEC * SEC
    })
}

fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource::new(
        vec![
            KeyValue { key: "service.name".into(), value: Value::Str(service.into()) },
            KeyValue { key: "host.name".into(), value: Value::Str("h1".into()) },
        ],
        0,
        String::new(),
    ))
}

fn scope() -> Arc<Scope> {
    Arc::new(Scope { name: "app.logger".into(), version: "1.0".into(), ..Scope::default() })
}

fn trace(n: u8) -> TraceId {
    TraceId::from_bytes([n; 16]).unwrap()
}

fn record(res: &Arc<Resource>, time: u64, severity: i32, body: &str, trace_n: Option<u8>) -> LogRecord {
    LogRecord {
        time_unix_nano: time,
        observed_time_unix_nano: time + 5,
        severity_number: severity,
        severity_text: match severity {
            17.. => "ERROR",
            13.. => "WARN",
            _ => "INFO",
        }
        .into(),
        body: Value::Str(body.into()),
        attributes: vec![
            KeyValue { key: "user".into(), value: Value::Str(format!("u{}", time / SEC % 4).into()) },
            // An integer (`sl-logs3` stores it apart from the rest), some negative.
            KeyValue { key: "n".into(), value: Value::Int((time / SEC % 1000) as i64 * 37 - 500) },
        ],
        dropped_attributes_count: 0,
        flags: 1,
        trace_id: trace_n.map(trace),
        span_id: trace_n.map(|n| SpanId::from_bytes([n; 8]).unwrap()),
        event_name: String::new(),
        resource: Arc::clone(res),
        scope: scope(),
    }
}

async fn open(dir: &std::path::Path) -> LogStore {
    let mut opts = Options::new(dir, Arc::new(MemoryBudget::new(256 << 20)));
    opts.row_group_rows = 16; // many row groups, so pruning is exercised
    LogStore::open(opts).await.unwrap()
}

/// 60 records: services a/b/c in turn, one second apart, every 7th an
/// error, trace ids cycling over 1..=5.
fn sample() -> Vec<LogRecord> {
    let t0 = base();
    let res = [resource("a"), resource("b"), resource("c")];
    (0..60u64)
        .map(|i| {
            let sev = if i % 7 == 0 { 17 } else { 9 };
            record(
                &res[(i % 3) as usize],
                t0 + i * SEC,
                sev,
                &format!("line {i} said hello"),
                Some((i % 5 + 1) as u8),
            )
        })
        .collect()
}

async fn ingest(store: &LogStore, records: &[LogRecord]) {
    for chunk in records.chunks(7) {
        store.consume_logs(LogBatch::from_records(chunk.to_vec())).await.unwrap();
    }
}

fn times(records: &[LogRecord]) -> Vec<u64> {
    records.iter().map(|r| (r.time_unix_nano - base()) / SEC).collect()
}

/// Every search answered the same from the head and from blocks, checked
/// against a filter over the sample.
async fn check_queries(store: &LogStore, all: &[LogRecord]) {
    let expect = |pred: &dyn Fn(&LogRecord) -> bool| {
        let mut v: Vec<LogRecord> = all.iter().filter(|r| pred(r)).cloned().collect();
        v.sort_by_key(|r| std::cmp::Reverse(r.time_unix_nano));
        v
    };
    let q = LogQuery { trace_id: Some(trace(3)), limit: 1000, ..LogQuery::default() };
    assert_eq!(store.find_logs(&q).await.unwrap().records, expect(&|r| r.trace_id == Some(trace(3))));
    let q = LogQuery { service: Some("b".into()), min_severity: 17, ..LogQuery::default() };
    assert_eq!(
        store.find_logs(&q).await.unwrap().records,
        expect(&|r| r.service_name() == "b" && r.severity_number >= 17)
    );
    let q = LogQuery { body: Some(BodyMatcher::new(|t| t.contains("line 4"))), ..LogQuery::default() };
    assert_eq!(store.find_logs(&q).await.unwrap().records, expect(&|r| r.body.to_text().contains("line 4")));
    // With the whole words a substring search derives, blocks skip row
    // groups by their word index: the answer must not change.
    let q = LogQuery {
        body: Some(BodyMatcher::new(|t| t.contains(" said hello"))),
        body_words: sightline_model::words_of_substring(" said hello"),
        ..LogQuery::default()
    };
    assert_eq!(q.body_words, ["said"]);
    assert_eq!(store.find_logs(&q).await.unwrap().records, expect(&|_| true));
    let q = LogQuery {
        body: Some(BodyMatcher::new(|t| t.contains("line 37 said"))),
        body_words: vec!["line".into(), "said".into()],
        ..LogQuery::default()
    };
    assert_eq!(
        store.find_logs(&q).await.unwrap().records,
        expect(&|r| r.body.to_text().contains("line 37 said"))
    );
    let q = LogQuery {
        body: Some(BodyMatcher::new(|t| t.contains(" zebra "))),
        body_words: vec!["zebra".into()],
        ..LogQuery::default()
    };
    assert!(store.find_logs(&q).await.unwrap().records.is_empty());
    let q = LogQuery {
        tags: vec![TagFilter { key: "user".into(), value: "u1".into() }],
        service: Some("c".into()),
        ..LogQuery::default()
    };
    let got = store.find_logs(&q).await.unwrap().records;
    assert!(!got.is_empty());
    assert_eq!(got, expect(&|r| r.service_name() == "c" && r.attributes[0].value.text_eq("u1")));
    let t0 = all[0].time_unix_nano;
    let q = LogQuery {
        start_unix_nanos: Some(t0 + 10 * SEC),
        end_unix_nanos: Some(t0 + 19 * SEC),
        ..LogQuery::default()
    };
    let got = store.find_logs(&q).await.unwrap().records;
    assert_eq!(times(&got).len(), 10);
    assert_eq!(got, expect(&|r| r.time_unix_nano >= t0 + 10 * SEC && r.time_unix_nano <= t0 + 19 * SEC));

    // Paging: pages of 7 cover everything once, newest first.
    let mut seen = Vec::new();
    let mut q = LogQuery { limit: 7, ..LogQuery::default() };
    loop {
        let page = store.find_logs(&q).await.unwrap();
        seen.extend(page.records);
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, expect(&|_| true));
}

#[tokio::test]
async fn searches_read_the_head_and_blocks_alike() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(crate::Metrics::default());
    let mut opts = Options::new(dir.path(), Arc::new(MemoryBudget::new(256 << 20)));
    opts.row_group_rows = 16;
    opts.metrics = Arc::clone(&metrics);
    let store = LogStore::open(opts).await.unwrap();
    let all = sample();
    ingest(&store, &all).await;
    assert!(store.blocks().is_empty());
    check_queries(&store, &all).await;

    store.flush_now().await.unwrap();
    let blocks = store.blocks();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].record_count, 60);
    assert_eq!(blocks[0].services, ["a", "b", "c"]);
    check_queries(&store, &all).await;
    assert_eq!(store.log_services().await.unwrap(), ["a", "b", "c"]);
    let m = &metrics;
    assert_eq!(m.records_appended.get(), 60);
    assert_eq!((m.blocks.get(), m.block_records.get(), m.head_records.get()), (1, 60, 0));
    assert_eq!(m.flushes.get(), 1);
    store.shutdown().await;
}

#[tokio::test]
async fn a_record_sent_twice_is_returned_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let all = sample();
    ingest(&store, &all[..10]).await;
    ingest(&store, &all[..10]).await;
    assert_eq!(store.find_logs(&LogQuery::default()).await.unwrap().records.len(), 10);
    store.flush_now().await.unwrap();
    ingest(&store, &all[..10]).await;
    assert_eq!(store.find_logs(&LogQuery::default()).await.unwrap().records.len(), 10);
    store.shutdown().await;
}

#[tokio::test]
async fn every_field_survives_a_block_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let res = resource("svc");
    let mut odd = record(&res, 0, 0, "", None);
    odd.observed_time_unix_nano = base();
    odd.body = Value::Map(vec![KeyValue {
        key: "k".into(),
        value: Value::Array(vec![Value::Int(1), Value::Bool(true)]),
    }]);
    odd.event_name = "evt".into();
    odd.dropped_attributes_count = 3;
    let mut empty = record(&res, base() + 1, 5, "", Some(9));
    empty.body = Value::Empty;
    let plain = record(&res, base() + 2, 21, "fatal thing", Some(9));
    let records = vec![odd, empty, plain];
    let meta = block::write(dir.path(), "b1", records.clone(), 2).unwrap();
    assert_eq!(meta.record_count, 3);
    let block = LogBlock::open(&dir.path().join("b1")).unwrap();
    let mut got = block::read::all_records(&block);
    got.sort_by_key(LogRecord::timestamp);
    let mut want = records;
    want.sort_by_key(LogRecord::timestamp);
    assert_eq!(got, want);
}

/// A flush builds rows from the OTLP bytes of the head (`block/wire.rs`):
/// every field comes back as a flush of the decoded records wrote it,
/// records sent twice are stored once, and a record in a shape left to
/// `prost` (a body sent twice, which `prost` merges) is written as
/// `prost` reads it.
#[tokio::test]
async fn every_field_survives_a_flush_from_otlp_bytes() {
    use opentelemetry_proto::tonic::logs::v1 as pl;
    use prost::Message as _;
    use prost::encoding::{WireType, encode_key, encode_varint};

    let dir = tempfile::tempdir().unwrap();
    let res = resource("svc");
    let mut odd = record(&res, 0, 0, "", None);
    odd.observed_time_unix_nano = base();
    odd.body = Value::Map(vec![KeyValue {
        key: "k".into(),
        value: Value::Array(vec![Value::Int(1), Value::Bool(true)]),
    }]);
    odd.event_name = "evt".into();
    odd.dropped_attributes_count = 3;
    let mut empty = record(&res, base() + 1, 5, "", Some(9));
    empty.body = Value::Empty;
    let mut number = record(&resource("other"), base() + 1, 9, "", Some(3));
    number.body = Value::Int(42);
    number.flags = 0;
    let plain = record(&res, base() + 2, 21, "fatal thing", Some(9));
    // Same service and time as `plain`, other content: both kept.
    let tie = record(&res, base() + 2, 21, "another thing", Some(9));
    let records = vec![odd, empty, number, plain.clone(), tie];
    let first = LogBatch::from_records(records[..3].to_vec());
    // `plain` again in the second request: a retried export.
    let second = LogBatch::from_records(vec![records[3].clone(), records[4].clone(), plain]);
    let requests = [first.otlp_bytes().as_ref(), second.otlp_bytes().as_ref()];
    let metas = block::write_requests(dir.path(), &["w".to_owned()], &requests, 2).unwrap();
    assert_eq!(metas.len(), 1);
    assert_eq!(metas[0].record_count, 5);
    let read = |id: &str| {
        let block = LogBlock::open(&dir.path().join(id)).unwrap();
        let mut got = block::read::all_records(&block);
        got.sort_by_key(|r| (r.timestamp(), r.fingerprint()));
        got
    };
    let mut want = records;
    want.sort_by_key(|r| (r.timestamp(), r.fingerprint()));
    assert_eq!(read("w"), want);

    // Split into two blocks (a big head's flush on two threads): runs of
    // the one sorted, deduplicated order, together the same records.
    let ids = ["s-0".to_owned(), "s-1".to_owned()];
    let metas = block::write_requests(dir.path(), &ids, &requests, 2).unwrap();
    assert_eq!(metas.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["s-0", "s-1"]);
    assert_eq!(metas.iter().map(|m| m.record_count).collect::<Vec<_>>(), [3, 2]);
    let key = |r: &LogRecord| (r.service_name().to_owned(), r.timestamp());
    let (low, high) = (read("s-0"), read("s-1"));
    assert!(low.iter().map(key).max() <= high.iter().map(key).min(), "{low:?} then {high:?}");
    let mut both: Vec<LogRecord> = low.into_iter().chain(high).collect();
    both.sort_by_key(|r| (r.timestamp(), r.fingerprint()));
    assert_eq!(both, want);

    // A record whose body field comes twice: prost merges (the second
    // string wins); the wire reader leaves the flush to prost.
    let len_field = |out: &mut Vec<u8>, n: u32, bytes: &[u8]| {
        encode_key(n, WireType::LengthDelimited, out);
        encode_varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    };
    let one = LogBatch::from_records(vec![want[4].clone()]);
    let request = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest::decode(
        one.otlp_bytes().clone(),
    )
    .unwrap();
    let rl = &request.resource_logs[0];
    let sl = &rl.scope_logs[0];
    let mut rec = sl.log_records[0].encode_to_vec();
    let second_body = sightline_model::otlp::encode_value(&Value::Str("second".into())).encode_to_vec();
    len_field(&mut rec, 5, &second_body);
    let mut scope_logs = pl::ScopeLogs { log_records: Vec::new(), ..sl.clone() }.encode_to_vec();
    len_field(&mut scope_logs, 2, &rec);
    let mut resource_logs = pl::ResourceLogs { scope_logs: Vec::new(), ..rl.clone() }.encode_to_vec();
    len_field(&mut resource_logs, 2, &scope_logs);
    let mut bytes = Vec::new();
    len_field(&mut bytes, 1, &resource_logs);
    block::write_requests(dir.path(), &["m".to_owned()], &[&bytes], 2).unwrap();
    let got = read("m");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, Value::Str("second".into()));
    assert_eq!(got[0].attributes, want[4].attributes);
}

#[tokio::test]
async fn acknowledged_records_survive_a_restart_from_the_wal_and_from_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let all = sample();
    {
        let store = open(dir.path()).await;
        ingest(&store, &all[..30]).await;
        store.flush_now().await.unwrap();
        ingest(&store, &all[30..]).await;
        // No shutdown: what a crash leaves (the WAL was synced per append).
        drop(store);
    }
    // The dropped WAL's writer thread releases the folder lock shortly.
    let mut store = None;
    for _ in 0..100 {
        let mut opts = Options::new(dir.path(), Arc::new(MemoryBudget::new(256 << 20)));
        opts.row_group_rows = 16;
        match LogStore::open(opts).await {
            Ok(s) => {
                store = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let store = store.expect("reopen");
    assert_eq!(store.blocks().len(), 1);
    check_queries(&store, &all).await;
    // A second flush covers the replayed segments; nothing is lost or doubled.
    store.flush_now().await.unwrap();
    assert_eq!(store.blocks().iter().map(|b| b.record_count).sum::<u64>(), 60);
    check_queries(&store, &all).await;
    let wal_files = std::fs::read_dir(dir.path().join("wal")).unwrap().count();
    assert!(wal_files <= 3, "covered WAL segments are deleted ({wal_files} files)");
    store.shutdown().await;
}

#[tokio::test]
async fn a_damaged_block_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let all = sample();
    ingest(&store, &all).await;
    store.flush_now().await.unwrap();
    let id = store.blocks()[0].id.clone();
    let data = dir.path().join("blocks").join(&id).join("data.parquet");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let page = store.find_logs(&LogQuery::default()).await.unwrap();
    assert!(page.records.is_empty());
    assert_eq!(page.warnings.len(), 1, "{:?}", page.warnings);
    assert!(page.warnings[0].contains("checksum"), "{:?}", page.warnings);
    store.shutdown().await;
}

#[tokio::test]
async fn the_tail_sees_acknowledged_batches() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let mut rx = store.subscribe_logs();
    let all = sample();
    store.consume_logs(LogBatch::from_records(all[..3].to_vec())).await.unwrap();
    let got = rx.recv().await.unwrap();
    assert_eq!(got.records(), &all[..3]);
    store.shutdown().await;
}

#[test]
fn retention_deletes_old_blocks_then_the_oldest_over_the_size_limit() {
    let meta = |id: &str, max: u64, size: u64| LogBlockMeta {
        id: id.into(),
        format: block::FORMAT_VERSION.into(),
        record_count: 1,
        min_time_unix_nanos: 0,
        max_time_unix_nanos: max * SEC,
        services: vec![],
        size_bytes: size,
        compaction_level: 0,
        words_crc32c: None,
    };
    let blocks = [meta("old", 10, 5), meta("mid", 100, 50), meta("new", 200, 60), meta("newest", 300, 10)];
    let now = 400 * SEC;
    assert_eq!(plan_retention(&blocks, Some(Duration::from_secs(350)), None, now), ["old"]);
    assert_eq!(plan_retention(&blocks, Some(Duration::from_secs(350)), Some(70), now), ["old", "mid"]);
    assert_eq!(plan_retention(&blocks, None, Some(1000), now), Vec::<String>::new());
    assert_eq!(plan_retention(&blocks, None, Some(10), now), ["old", "mid", "new"]);
}

/// The writer half of the kill -9 test, run in a child process (the test
/// binary itself): ingests batches of 10 records forever, printing the
/// number of each batch once it was acknowledged, and flushes blocks now
/// and then so the kill can land in a flush too.
#[tokio::test]
#[ignore = "the child process of acknowledged_records_survive_kill_9"]
async fn kill_9_writer() {
    let Ok(dir) = std::env::var("SIGHTLINE_LOGSTORE_KILL_DIR") else { return };
    use std::io::Write as _;
    let store = open(std::path::Path::new(&dir)).await;
    let res = resource("crash");
    for i in 0u64.. {
        let records: Vec<LogRecord> =
            (0..10).map(|j| record(&res, base() + i * 10 + j, 9, &format!("rec {i}-{j}"), None)).collect();
        store.consume_logs(LogBatch::from_records(records)).await.unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "acked {i}").unwrap();
        out.flush().unwrap();
        if i % 16 == 15 {
            store.flush_now().await.unwrap();
        }
    }
}

#[tokio::test]
async fn acknowledged_records_survive_kill_9() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "tests::kill_9_writer", "--nocapture", "--test-threads=1"])
        .env("SIGHTLINE_LOGSTORE_KILL_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut acked: Option<u64> = None;
    while acked.is_none_or(|a| a < 40) {
        let line = lines.next().expect("the writer stopped early").unwrap();
        if let Some(n) = line.strip_prefix("acked ") {
            acked = Some(n.parse().unwrap());
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let acked = acked.unwrap();

    let store = open(dir.path()).await;
    let mut bodies = std::collections::HashSet::new();
    let mut q = LogQuery { service: Some("crash".into()), limit: 1000, ..LogQuery::default() };
    loop {
        let page = store.find_logs(&q).await.unwrap();
        assert!(page.warnings.is_empty(), "{:?}", page.warnings);
        bodies.extend(page.records.iter().map(|r| r.body.to_text()));
        match page.next {
            Some(c) => q.after = Some(c),
            None => break,
        }
    }
    for i in 0..=acked {
        for j in 0..10 {
            assert!(
                bodies.contains(&format!("rec {i}-{j}")),
                "acknowledged record {i}-{j} lost ({acked} acked)"
            );
        }
    }
    assert!(!store.blocks().is_empty(), "the writer flushed blocks before the kill");
    store.shutdown().await;
}

#[tokio::test]
async fn memory_pressure_flushes_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let memory = Arc::new(MemoryBudget::new(256 << 20));
    let store = LogStore::open(Options::new(dir.path(), Arc::clone(&memory))).await.unwrap();
    ingest(&store, &sample()).await;
    assert!(store.blocks().is_empty(), "a small head waits for its size or age");
    memory.set_pressure(sightline_model::Pressure::Soft);
    let mut waited = 0;
    while store.blocks().is_empty() {
        assert!(waited < 500, "the head was not flushed under memory pressure");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += 1;
    }
    assert_eq!(store.blocks()[0].record_count, 60);
    assert!(store.health().detail.contains("0 records in the head"), "{}", store.health().detail);
    store.shutdown().await;
}

/// Two flushes at once (the background task's and `flush_now`) must not
/// write the same frozen head into the same block folder together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_flushes_write_each_block_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let all = sample();
    for round in 0..20u64 {
        let shifted: Vec<LogRecord> = all
            .iter()
            .map(|r| LogRecord { time_unix_nano: r.time_unix_nano + round * 100 * SEC, ..r.clone() })
            .collect();
        ingest(&store, &shifted).await;
        let (a, b) = tokio::join!(store.flush_now(), store.flush_now());
        a.unwrap();
        b.unwrap();
    }
    assert_eq!(store.blocks().iter().map(|b| b.record_count).sum::<u64>(), 20 * 60);
    store.shutdown().await;
}

#[tokio::test]
async fn merged_blocks_answer_as_their_inputs_did() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(dir.path(), Arc::new(MemoryBudget::new(256 << 20)));
    opts.row_group_rows = 16;
    opts.background_compaction = false;
    let store = LogStore::open(opts).await.unwrap();
    let all = sample();
    // Five flushes of 12 records each, the last twice (a retried export).
    for chunk in all.chunks(12) {
        ingest(&store, chunk).await;
        store.flush_now().await.unwrap();
    }
    ingest(&store, &all[48..]).await;
    store.flush_now().await.unwrap();
    assert_eq!(store.blocks().len(), 6);
    store.compact_now().await.unwrap();
    let blocks = store.blocks();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0].record_count, 60, "the repeated records are stored once");
    assert_eq!(blocks[0].compaction_level, 1);
    assert_eq!(blocks[0].services, ["a", "b", "c"]);
    check_queries(&store, &all).await;
    let on_disk = std::fs::read_dir(dir.path().join("blocks")).unwrap().count();
    assert_eq!(on_disk, 1, "merged inputs are deleted");
    store.shutdown().await;
    // The manifest lists the merged block: a restart serves it.
    let store = open(dir.path()).await;
    check_queries(&store, &all).await;
    store.shutdown().await;
}

/// A store opened over `records` written as four blocks of an older
/// format by `write` (which must stamp them `format`), with row groups of
/// 4 records and no background merges.
async fn open_over_old_blocks(
    dir: &std::path::Path,
    records: &[LogRecord],
    write: fn(&std::path::Path, &str, Vec<LogRecord>, usize) -> Result<LogBlockMeta, crate::Error>,
    format: &str,
) -> LogStore {
    use sightline_store::{BlockStorage as _, LocalFolder, ManifestState};
    let folder = LocalFolder::new(dir).unwrap();
    let mut ids = Vec::new();
    for (i, chunk) in records.chunks(records.len().div_ceil(4)).enumerate() {
        let id = format!("lold{i}");
        let meta = write(folder.staging_dir(), &id, chunk.to_vec(), 4).unwrap();
        assert_eq!(meta.format, format);
        folder.publish(&id).unwrap();
        ids.push(id);
    }
    let manifest = ManifestState { blocks: ids, ..ManifestState::default() };
    folder.swap_manifest(None, &manifest).unwrap();
    drop(folder);
    let mut opts = Options::new(dir, Arc::new(MemoryBudget::new(256 << 20)));
    opts.row_group_rows = 4;
    opts.background_compaction = false;
    LogStore::open(opts).await.unwrap()
}

/// Blocks of the first format (`sl-logs1`, with a stored fingerprint
/// column) written by an older build are read as before and merged with
/// current blocks into a current one.
#[tokio::test]
async fn blocks_of_the_first_format_are_read_and_merged_into_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let all = sample();
    let store = open_over_old_blocks(dir.path(), &all[..48], block::write_v1, block::FORMAT_V1).await;
    assert_eq!(store.blocks().len(), 4);
    check_queries(&store, &all[..48]).await;
    // One current block beside them, then a merge of all five.
    ingest(&store, &all[48..]).await;
    store.flush_now().await.unwrap();
    check_queries(&store, &all).await;
    store.compact_now().await.unwrap();
    let blocks = store.blocks();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!((blocks[0].format.as_str(), blocks[0].record_count), (block::FORMAT_VERSION, 60));
    check_queries(&store, &all).await;
    store.shutdown().await;
}

/// Blocks of the second format (`sl-logs2`, the body as one column)
/// written by an older build are read and searched as before (body text
/// included) and merged with current blocks into a current one.
#[tokio::test]
async fn blocks_of_the_second_format_are_read_and_merged_into_the_current_one() {
    let dir = tempfile::tempdir().unwrap();
    let all = sample();
    let store = open_over_old_blocks(dir.path(), &all[..48], block::write_v2, block::FORMAT_V2).await;
    assert_eq!(store.blocks().len(), 4);
    check_queries(&store, &all[..48]).await;
    ingest(&store, &all[48..]).await;
    store.flush_now().await.unwrap();
    assert_eq!(store.blocks().iter().filter(|b| b.format == block::FORMAT_VERSION).count(), 1);
    check_queries(&store, &all).await;
    store.compact_now().await.unwrap();
    let blocks = store.blocks();
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!((blocks[0].format.as_str(), blocks[0].record_count), (block::FORMAT_VERSION, 60));
    check_queries(&store, &all).await;
    store.shutdown().await;
}

#[test]
fn compaction_merges_the_oldest_small_blocks_within_the_size_limit() {
    let meta = |id: &str, max: u64, records: u64| LogBlockMeta {
        id: id.into(),
        format: block::FORMAT_VERSION.into(),
        record_count: records,
        min_time_unix_nanos: 0,
        max_time_unix_nanos: max,
        services: vec![],
        size_bytes: records * 50,
        compaction_level: 0,
        words_crc32c: None,
    };
    let small =
        |n: usize| (0..n).map(|i| meta(&format!("b{i:02}"), 100 - i as u64, 1000)).collect::<Vec<_>>();
    let width = COMPACT_MIN_INPUTS;
    assert_eq!(plan_compaction(&small(width - 1), width), None, "too few to merge");
    let full = plan_compaction(&small(width), width).unwrap();
    assert_eq!(full.len(), width);
    let oldest = [format!("b{:02}", width - 1), format!("b{:02}", width - 2)];
    assert_eq!(full[..2], oldest, "oldest first");
    assert_eq!(plan_compaction(&small(width + 4), width).unwrap().len(), width, "at most {width} inputs");
    let mut blocks = small(width + 1);
    blocks.push(meta("big", 0, COMPACT_MAX_RECORDS));
    assert!(
        !plan_compaction(&blocks, COMPACT_MIN_INPUTS).unwrap().contains(&"big".to_owned()),
        "big blocks are left alone"
    );
    let halfs: Vec<LogBlockMeta> =
        (0..4).map(|i| meta(&format!("h{i}"), i, COMPACT_MAX_RECORDS / 2 - 1)).collect();
    assert_eq!(
        plan_compaction(&halfs, COMPACT_MIN_INPUTS).unwrap(),
        ["h0", "h1"],
        "two that make a full block merge"
    );
    let thirds: Vec<LogBlockMeta> =
        (0..2).map(|i| meta(&format!("t{i}"), i, COMPACT_MAX_RECORDS / 5)).collect();
    assert_eq!(
        plan_compaction(&thirds, COMPACT_MIN_INPUTS),
        None,
        "two that make a block still merged again wait"
    );
    assert_eq!(plan_compaction(&small(3), 2).unwrap().len(), 3, "compact_now merges any run of two or more");
}

#[test]
fn the_word_index_skips_row_groups_without_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = sample();
    records[50].body = Value::Str("payment declined by the issuer".into());
    block::write(dir.path(), "w", records, 16).unwrap();
    let block = LogBlock::open(&dir.path().join("w")).unwrap();
    let top = crate::topk::TopK::new(100);
    let groups = |words: &[&str]| {
        let q =
            LogQuery { body_words: words.iter().map(|w| (*w).to_owned()).collect(), ..LogQuery::default() };
        block.candidates(&q, &top).unwrap().len()
    };
    assert_eq!(groups(&[]), 4);
    assert_eq!(groups(&["said"]), 4);
    assert_eq!(groups(&["zebra"]), 0);
    assert_eq!(groups(&["declined", "issuer"]), 1);
    assert_eq!(groups(&["declined", "zebra"]), 0);
}

/// A needle that may be part of a longer word (an id searched alone) has
/// no whole word, but its grams skip row groups: the one row group whose
/// body holds it inside a longer word is read, and the answer is the full
/// scan's.
#[tokio::test]
async fn the_word_index_grams_skip_row_groups_without_a_needle_inside_a_word() {
    let dir = tempfile::tempdir().unwrap();
    let mut records = sample();
    records[50].body = Value::Str("payment ref=TX98765432 declined".into());
    block::write(dir.path(), "g", records.clone(), 16).unwrap();
    let block = LogBlock::open(&dir.path().join("g")).unwrap();
    let top = crate::topk::TopK::new(100);
    let search = |needle: &'static str| {
        let q = LogQuery {
            body: Some(BodyMatcher::new(move |t| t.contains(needle))),
            body_words: sightline_model::words_of_substring(needle),
            body_grams: sightline_model::grams_of_substring(needle),
            ..LogQuery::default()
        };
        assert!(q.body_words.is_empty(), "{needle} has no whole word");
        let groups = block.candidates(&q, &top).unwrap().len();
        let mut found = crate::topk::TopK::new(100);
        block.search(&q, &mut found).unwrap();
        (groups, found.into_page(Vec::new()).records.len())
    };
    assert_eq!(search("X987654"), (1, 1), "inside a longer word, any case in the index");
    assert_eq!(search("8765432"), (1, 1));
    assert_eq!(search("123456"), (0, 0));
    assert_eq!(search("aid hel"), (4, 59), "no run of six word characters: every row group");

    // An index written before grams (words only) never skips by grams.
    block::write_words_v1(dir.path(), "w1", records, 16).unwrap();
    let old = LogBlock::open(&dir.path().join("w1")).unwrap();
    let q = LogQuery { body_grams: sightline_model::grams_of_substring("8765432"), ..LogQuery::default() };
    assert_eq!(old.candidates(&q, &top).unwrap().len(), 4);
    let q = LogQuery { body_words: vec!["zebra".into()], ..LogQuery::default() };
    assert_eq!(old.candidates(&q, &top).unwrap().len(), 0, "its words still skip");
}

/// A flush does not wait for a merge (or retention) in progress: frozen
/// heads waiting for one refuse ingest. The timeout only turns a hang
/// into a failure.
#[tokio::test]
async fn flushes_do_not_wait_for_a_running_merge() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let merging = store.hold_maintenance().await;
    ingest(&store, &sample()).await;
    tokio::time::timeout(Duration::from_secs(120), store.flush_now())
        .await
        .expect("the flush waited for the merge")
        .unwrap();
    assert_eq!(store.blocks().len(), 1);
    drop(merging);
    store.shutdown().await;
}

/// The head stays within its bound while flushes run: appends cut it
/// themselves, and are refused (retryably) while every frozen slot waits
/// for a flush.
#[tokio::test]
async fn the_head_stays_within_its_bound_while_flushes_run() {
    let dir = tempfile::tempdir().unwrap();
    let opts = small_head_options(dir.path());
    let store = LogStore::open(opts).await.unwrap();
    let res = resource("bounded");
    let mut largest_batch = 0;
    let mut refused = 0;
    for i in 0..200u64 {
        let records: Vec<LogRecord> = (0..20)
            .map(|j| record(&res, base() + i * 20 + j, 9, &format!("line {i}-{j} {}", "x".repeat(200)), None))
            .collect();
        let batch = LogBatch::from_records(records);
        largest_batch = largest_batch.max(batch.otlp_bytes().len() + 20 * 64);
        while store.consume_logs(batch.clone()).await.is_err() {
            refused += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let live = store.live_bytes();
        assert!(live < (16 << 10) + largest_batch, "live head {live} B after batch {i}");
    }
    store.flush_now().await.unwrap();
    assert_eq!(store.blocks().iter().map(|b| b.record_count).sum::<u64>(), 4000);
    println!("refused {refused} times");
    store.shutdown().await;
}

/// The log WAL reports under its own names, beside the trace WAL's.
#[tokio::test]
async fn the_log_wal_reports_as_sightline_log_wal() {
    let mut registry = prometheus_client::registry::Registry::default();
    let _traces = sightline_wal::Metrics::new(&mut registry);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(dir.path(), Arc::new(MemoryBudget::new(256 << 20)));
    opts.metrics = Arc::new(crate::Metrics::new(&mut registry));
    let store = LogStore::open(opts).await.unwrap();
    ingest(&store, &sample()).await;
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    // 60 records in batches of 7: 9 WAL records.
    assert!(text.lines().any(|l| l == "sightline_log_wal_records_total 9"), "{text}");
    assert!(text.lines().any(|l| l == "sightline_wal_records_total 0"), "{text}");
    store.shutdown().await;
}

/// `verify` finds a flipped byte in a log block and names it; `repair`
/// quarantines the block, says what it held, and the store then opens
/// with the other blocks and answers from them.
#[tokio::test]
async fn verify_finds_a_damaged_log_block_and_repair_quarantines_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    let all = sample();
    ingest(&store, &all[..30]).await;
    store.flush_now().await.unwrap();
    ingest(&store, &all[30..]).await;
    store.flush_now().await.unwrap();
    let blocks = store.blocks();
    store.shutdown().await;
    drop(store);
    let clean = crate::verify(dir.path()).unwrap();
    assert_eq!(clean.damage_count(), 0, "{clean}");
    assert_eq!(clean.blocks.len(), 2);

    let bad = &blocks[0].id;
    let data = dir.path().join("blocks").join(bad).join("data.parquet");
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&data, bytes).unwrap();
    let found = crate::verify(dir.path()).unwrap();
    assert_eq!(found.damage_count(), 1, "{found}");
    let text = found.to_string();
    assert!(text.contains(&format!("block {bad}: DAMAGED")) && text.contains("30 records"), "{text}");

    let repaired = crate::repair(dir.path()).unwrap();
    assert_eq!(repaired.quarantined.len(), 1);
    assert!(repaired.manifest_rewritten);
    assert!(dir.path().join(crate::QUARANTINE_DIR).join(bad).is_dir());
    assert_eq!(crate::verify(dir.path()).unwrap().damage_count(), 0);
    let store = open(dir.path()).await;
    let page = store.find_logs(&LogQuery { limit: 1000, ..LogQuery::default() }).await.unwrap();
    assert_eq!(page.records.len(), 30);
    assert!(page.warnings.is_empty(), "{:?}", page.warnings);
    store.shutdown().await;
}

/// A batch of `n` records of ~250 B each for `the_head_*` tests.
fn wide_batch(res: &Arc<Resource>, i: u64, n: u64) -> LogBatch {
    let records: Vec<LogRecord> = (0..n)
        .map(|j| record(res, base() + i * n + j, 9, &format!("line {i}-{j} {}", "x".repeat(200)), None))
        .collect();
    LogBatch::from_records(records)
}

/// Fills a store whose flushes are held until the live head is full and
/// every frozen slot is taken: the next append finds no room.
async fn fill_while_flushes_are_held(store: &LogStore, res: &Arc<Resource>) -> u64 {
    let mut i = 0;
    // Each append that fills the live head cuts it while a frozen slot is
    // free (two slots by default): three heads' worth, then no room.
    while store.live_bytes() < (16 << 10) || store.frozen_heads() < 2 {
        store.consume_logs(wide_batch(res, i, 20)).await.unwrap();
        i += 1;
    }
    i
}

/// Options with a 16 KiB head and no background compaction, so a few
/// batches fill the head and only the test decides when blocks merge.
fn small_head_options(dir: &std::path::Path) -> Options {
    let mut opts = Options::new(dir, Arc::new(MemoryBudget::new(256 << 20)));
    opts.head_max_bytes = 16 << 10;
    opts.background_compaction = false;
    opts
}

/// An append that finds the head full and every frozen slot waiting for a
/// flush waits for it (up to `flush_wait`) instead of sending the client
/// away for a whole retry delay; the records are all stored. Fails with
/// the append refused at once.
#[tokio::test]
async fn an_append_waits_for_a_running_flush_instead_of_refusing() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_head_options(dir.path());
    // Long enough that only a failed flush could make it time out.
    opts.flush_wait = Duration::from_secs(120);
    let store = LogStore::open(opts).await.unwrap();
    let res = resource("waiting");
    let held = store.hold_flushes().await;
    let n = fill_while_flushes_are_held(&store, &res).await;
    let waiting = {
        let store = store.clone();
        let batch = wide_batch(&res, n, 20);
        tokio::spawn(async move { store.consume_logs(batch).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(held);
    waiting.await.unwrap().expect("the append waited for the flush");
    assert_eq!(store.metrics().refusals(crate::metrics::Refusal::head_full), 0);
    store.flush_now().await.unwrap();
    assert_eq!(store.blocks().iter().map(|b| b.record_count).sum::<u64>(), (n + 1) * 20);
    store.shutdown().await;
}

/// A store that fails while an append waits for a flush refuses it as
/// failed (`reason="failed"`, unavailable), not as a full head that a quick
/// retry could get past. Fails with the refusal counted as `head_full`.
#[tokio::test]
async fn a_store_failing_during_the_wait_refuses_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = small_head_options(dir.path());
    opts.flush_wait = Duration::from_secs(2);
    let store = LogStore::open(opts).await.unwrap();
    let res = resource("failing");
    let held = store.hold_flushes().await;
    let n = fill_while_flushes_are_held(&store, &res).await;
    // Flushes fail from now on: the block folder is a file (root ignores
    // permissions, so a read-only folder would not do).
    let blocks = dir.path().join("blocks");
    std::fs::rename(&blocks, dir.path().join("blocks.away")).unwrap();
    std::fs::write(&blocks, b"not a folder").unwrap();
    let waiting = {
        let store = store.clone();
        let batch = wide_batch(&res, n, 20);
        tokio::spawn(async move { store.consume_logs(batch).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(held);
    let refused = waiting.await.unwrap();
    assert!(
        matches!(&refused, Err(sightline_model::ConsumeError::Unavailable { reason, .. }) if reason.contains("log store failed")),
        "{refused:?}"
    );
    assert_eq!(store.metrics().refusals(crate::metrics::Refusal::failed), 1);
    assert_eq!(store.metrics().refusals(crate::metrics::Refusal::head_full), 0);
    store.shutdown().await;
}

/// When no flush ends within `flush_wait`, the append is refused
/// retryably and the refusal is counted under its reason (`head_full`),
/// so an operator can tell a store that cannot flush fast enough from a
/// full disk (`wal`).
#[tokio::test]
async fn a_refusal_for_a_full_head_is_counted_under_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    let mut opts = small_head_options(dir.path());
    opts.flush_wait = Duration::ZERO;
    opts.metrics = Arc::new(crate::Metrics::new(&mut registry));
    let store = LogStore::open(opts).await.unwrap();
    let res = resource("refused");
    let held = store.hold_flushes().await;
    let n = fill_while_flushes_are_held(&store, &res).await;
    let refused = store.consume_logs(wide_batch(&res, n, 20)).await;
    assert!(
        matches!(&refused, Err(sightline_model::ConsumeError::Overloaded { reason, .. }) if reason.contains("head is full")),
        "{refused:?}"
    );
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(text.lines().any(|l| l == r#"sightline_logstore_refused_total{reason="head_full"} 1"#), "{text}");
    drop(held);
    store.flush_now().await.unwrap();
    assert_eq!(store.blocks().iter().map(|b| b.record_count).sum::<u64>(), n * 20);
    store.shutdown().await;
}

/// A flush makes one group (resource, scope, `origin`) per distinct
/// source, reused by later `ResourceLogs` with the same bytes; a source
/// that differs only in its scope or a schema URL keeps its own. Fails if
/// reuse ignores any of the four.
#[tokio::test]
async fn a_flush_reuses_groups_of_the_same_source_only() {
    let dir = tempfile::tempdir().unwrap();
    let res = resource("svc");
    let other_url = Arc::new(Resource::new(res.attributes().to_vec(), 0, "https://schema/1".into()));
    let other_scope = Arc::new(Scope { name: "other.logger".into(), ..(*scope()).clone() });
    let scope_url = Arc::new(Scope { schema_url: "https://scope/1".into(), ..(*scope()).clone() });
    let mut records = Vec::new();
    // Sources alternate record by record: a `ResourceLogs` each.
    for i in 0..12u64 {
        let mut r = record(&res, base() + i * SEC, 9, &format!("line {i}"), Some(1));
        match i % 4 {
            1 => r.resource = Arc::clone(&other_url),
            2 => r.scope = Arc::clone(&other_scope),
            3 => r.scope = Arc::clone(&scope_url),
            _ => {}
        }
        records.push(r);
    }
    let batch = LogBatch::from_records(records.clone());
    block::write_requests(dir.path(), &["g".to_owned()], &[batch.otlp_bytes().as_ref()], 4).unwrap();
    let block = LogBlock::open(&dir.path().join("g")).unwrap();
    let mut got = block::read::all_records(&block);
    got.sort_by_key(|r| r.timestamp());
    assert_eq!(got, records);
}

/// A store whose caches hold about one block's footer and filters
/// answers every search, trace lookup and merge as one that keeps them
/// all, and the caches stay within their bounds; dropped blocks leave
/// nothing in them.
#[tokio::test]
async fn blocks_behind_a_small_cache_answer_the_same_within_its_bound() {
    let all = sample();
    // One block's parts, to size the cache by.
    let probe = tempfile::tempdir().unwrap();
    let store = open(probe.path()).await;
    ingest(&store, &all[..12]).await;
    store.flush_now().await.unwrap();
    let one = store.block_memory().unwrap();
    store.shutdown().await;

    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(dir.path(), Arc::new(MemoryBudget::new(256 << 20)));
    opts.row_group_rows = 16;
    opts.background_compaction = false;
    let cache = Arc::new(sightline_block::FooterCache::new((one.total() - one.words) * 3 / 2));
    opts.block_cache = Arc::clone(&cache);
    let words = Arc::new(sightline_block::FooterCache::new(one.words * 3 / 2));
    opts.word_cache = Arc::clone(&words);
    let store = LogStore::open(opts).await.unwrap();
    for chunk in all.chunks(12) {
        ingest(&store, chunk).await;
        store.flush_now().await.unwrap();
    }
    assert_eq!(store.blocks().len(), 5);
    for _ in 0..2 {
        check_queries(&store, &all).await;
        for c in [&cache, &words] {
            let stats = c.stats();
            assert!(stats.used_bytes <= c.capacity(), "{stats:?}");
        }
    }
    for c in [&cache, &words] {
        let stats = c.stats();
        assert!(stats.evictions > 0 && stats.misses > 0, "nothing was evicted and read again: {stats:?}");
    }
    // What the blocks hold is their summaries plus what the caches hold.
    let held = cache.stats().used_bytes + words.stats().used_bytes;
    assert!(store.block_memory_size() <= held + 5 * 4096, "{held}");
    assert!(store.block_memory_size() < store.block_memory().unwrap().total());
    // The scrape shows the caches under the log store's prefix.
    let mut registry = prometheus_client::registry::Registry::default();
    for (name, c) in [("block_cache", &cache), ("word_cache", &words)] {
        sightline_store::register_cache_as(&mut registry, "sightline_logstore", name, "parts", Arc::clone(c));
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for (name, c) in [("block_cache", &cache), ("word_cache", &words)] {
        let stats = c.stats();
        for line in [
            format!("sightline_logstore_{name}_bytes {}", stats.used_bytes),
            format!("sightline_logstore_{name}_capacity_bytes {}", c.capacity()),
            format!("sightline_logstore_{name}_misses_total {}", stats.misses),
            format!("sightline_logstore_{name}_evictions_total {}", stats.evictions),
        ] {
            assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
        }
    }
    store.compact_now().await.unwrap();
    assert_eq!(store.blocks().len(), 1);
    check_queries(&store, &all).await;
    store.shutdown().await;
    drop(store);
    for c in [&cache, &words] {
        assert_eq!(c.stats().used_bytes, 0, "{:?}", c.stats());
    }
}

/// Body searches read every block's word filters; in a cache of their own
/// too small for them all, they push out nothing a trace lookup reads:
/// after the searches, lookups find every block's footer and trace id
/// filters still cached (with one cache for all parts, of the same total
/// size, the searches evicted them and lookups read them again).
#[tokio::test]
async fn body_searches_do_not_evict_what_trace_lookups_read() {
    let all = sample();
    let dir = tempfile::tempdir().unwrap();
    let open_with = |blocks: usize, words: usize| {
        let mut opts = Options::new(dir.path(), Arc::new(MemoryBudget::new(256 << 20)));
        opts.row_group_rows = 16;
        opts.background_compaction = false;
        opts.block_cache = Arc::new(sightline_block::FooterCache::new(blocks));
        opts.word_cache = Arc::new(sightline_block::FooterCache::new(words));
        let caches = (Arc::clone(&opts.block_cache), Arc::clone(&opts.word_cache));
        async move { (LogStore::open(opts).await.unwrap(), caches) }
    };
    let lookups = |store: &LogStore| {
        let store = store.clone();
        async move {
            for n in 1..=5 {
                let q = LogQuery { trace_id: Some(trace(n)), limit: 1000, ..LogQuery::default() };
                assert_eq!(store.find_logs(&q).await.unwrap().records.len(), 12);
            }
        }
    };
    let searches = |store: &LogStore| {
        let store = store.clone();
        async move {
            for needle in [" said hello", "line 37 said", " zebra "] {
                let q = LogQuery {
                    body: Some(BodyMatcher::new(move |t| t.contains(needle))),
                    body_words: sightline_model::words_of_substring(needle),
                    ..LogQuery::default()
                };
                store.find_logs(&q).await.unwrap();
            }
        }
    };
    // Five blocks; what their parts take in each cache, all held.
    let (store, (cache, words)) = open_with(usize::MAX, usize::MAX).await;
    for chunk in all.chunks(12) {
        ingest(&store, chunk).await;
        store.flush_now().await.unwrap();
    }
    lookups(&store).await;
    searches(&store).await;
    let (lookup_bytes, word_bytes) = (cache.stats().used_bytes, words.stats().used_bytes);
    store.shutdown().await;
    drop(store);

    // Room for every block's footer and trace id filters; for about two
    // blocks' word filters of five.
    let (store, (cache, words)) = open_with(lookup_bytes, word_bytes * 2 / 5).await;
    assert_eq!(store.blocks().len(), 5);
    lookups(&store).await;
    let before = cache.stats();
    searches(&store).await;
    assert!(words.stats().evictions > 0, "the searches fit the word cache: {:?}", words.stats());
    lookups(&store).await;
    let after = cache.stats();
    assert_eq!((after.misses, after.evictions), (before.misses, 0), "{before:?} {after:?}");
    assert!(after.hits > before.hits, "{before:?} {after:?}");
    store.shutdown().await;
}

/// A bucket's tenants for discovery, counting the `has` requests (a HEAD
/// each in a real bucket); `with_logs` have log blocks.
#[derive(Debug, Default)]
struct CountingBlocks {
    tenants: Vec<sightline_model::Tenant>,
    with_logs: Vec<sightline_model::Tenant>,
    has_calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl sightline_store::TenantBlocks for CountingBlocks {
    async fn storage(
        &self,
        _tenant: &sightline_model::Tenant,
        dir: &std::path::Path,
    ) -> Result<Arc<dyn sightline_store::BlockStorage>, sightline_store::Error> {
        Ok(Arc::new(sightline_store::LocalFolder::new(dir).unwrap()))
    }

    async fn tenants(&self) -> Result<Vec<sightline_model::Tenant>, sightline_store::Error> {
        Ok(self.tenants.clone())
    }

    async fn has(&self, tenant: &sightline_model::Tenant) -> Result<bool, sightline_store::Error> {
        self.has_calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(self.with_logs.contains(tenant))
    }
}

/// Discovery rounds ask the bucket about a tenant without logs once, not
/// every round; a query for its logs still asks.
#[tokio::test]
async fn discovery_does_not_ask_every_round_about_tenants_without_logs() {
    use sightline_store::TenantOpener as _;
    let dir = tempfile::tempdir().unwrap();
    let tenant = |n: &str| sightline_model::Tenant::new(n).unwrap();
    let blocks = Arc::new(CountingBlocks {
        tenants: vec![tenant("quiet"), tenant("loud")],
        with_logs: vec![tenant("loud")],
        ..CountingBlocks::default()
    });
    let opener =
        crate::LogOpener::new(dir.path(), Options::new(dir.path(), Arc::new(MemoryBudget::new(256 << 20))))
            .with_blocks(Arc::clone(&blocks) as Arc<dyn sightline_store::TenantBlocks>);
    let calls = || blocks.has_calls.load(std::sync::atomic::Ordering::Relaxed);
    for _ in 0..3 {
        assert_eq!(opener.existing().await.unwrap(), [tenant("loud")]);
    }
    // "loud" is asked each round until its store is opened (a local
    // folder then answers); "quiet" once.
    assert_eq!(calls(), 3 + 1);
    assert!(!opener.exists(&tenant("quiet")).await.unwrap());
    assert_eq!(calls(), 5, "a query asks the bucket itself");
}

/// A search takes each block's footer from the cache once, however many
/// of its row groups it reads: with a cache that keeps nothing (a footer
/// bigger than what the cache admits), taking it per row group read the
/// footer again from the file for every one.
#[tokio::test]
async fn a_search_reads_a_blocks_footer_once() {
    let all = sample();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = Options::new(dir.path(), Arc::new(MemoryBudget::new(256 << 20)));
    opts.row_group_rows = 16;
    opts.background_compaction = false;
    let cache = Arc::new(sightline_block::FooterCache::new(0));
    opts.block_cache = Arc::clone(&cache);
    let store = LogStore::open(opts).await.unwrap();
    ingest(&store, &all).await;
    store.flush_now().await.unwrap();
    assert_eq!(store.blocks().len(), 1);
    let before = cache.stats().misses;
    let page = store.find_logs(&LogQuery { limit: 1000, ..LogQuery::default() }).await.unwrap();
    assert_eq!(page.records.len(), all.len());
    assert_eq!(cache.stats().misses - before, 1, "the footer was read once per row group");
    store.shutdown().await;
}

/// Options whose background tasks run only when a step of the test wakes
/// them (a flush, [`LogStore::wake_now`]), with background merges on.
fn driven_options(dir: &std::path::Path) -> Options {
    let mut opts = Options::new(dir, Arc::new(MemoryBudget::new(256 << 20)));
    opts.tick = Duration::from_secs(3600);
    opts.maintenance_interval = Duration::from_secs(3600);
    opts
}

/// Waits (up to 30 s: only a hang reaches it) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Flushed blocks, `n` of them, of 5 records each, through `flush_now`.
async fn flushed_blocks(store: &LogStore, res: &Arc<Resource>, n: u64) {
    for i in 0..n {
        store.consume_logs(wide_batch(res, i, 5)).await.unwrap();
        store.flush_now().await.unwrap();
    }
}

/// Merges run while heads wait in the frozen queue: at saturation ingest
/// refills it as fast as it is flushed, and merges scheduled only after
/// the flush queue emptied never ran (no merge in a minute, ~10 new blocks
/// a second). Here the queue stays non-empty throughout (flushes held);
/// the sixteen flushed blocks are merged anyway. Fails (times out) with
/// merges behind the flush round.
#[tokio::test]
async fn merges_run_while_frozen_heads_wait_for_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(driven_options(dir.path())).await.unwrap();
    let res = resource("busy");
    flushed_blocks(&store, &res, COMPACT_MIN_INPUTS as u64).await;
    let held = store.hold_flushes().await;
    store.consume_logs(wide_batch(&res, 100, 5)).await.unwrap();
    store.cut_now().await.unwrap();
    store.wake_now();
    eventually("a merge", || store.metrics().compactions.get() == 1).await;
    assert_eq!(store.frozen_heads(), 1, "the frozen head waited throughout");
    assert_eq!(store.blocks().len(), 1);
    assert_eq!(store.blocks()[0].record_count, 5 * COMPACT_MIN_INPUTS as u64);
    drop(held);
    store.flush_now().await.unwrap();
    assert_eq!(
        store.blocks().iter().map(|b| b.record_count).sum::<u64>(),
        5 * (COMPACT_MIN_INPUTS as u64 + 1)
    );
    store.shutdown().await;
}

/// The write stall: with `compaction_stall_blocks` small blocks waiting
/// for a merge, a background flush waits until merges catch up, so that
/// at saturation blocks cannot pile up faster than they are merged (at
/// two cores they did: 600+ blocks in a minute). Merges are held here;
/// once let go, the stalled flush's merge runs below the full width and
/// the flush follows. Fails (times out) with flushes that never stall.
#[tokio::test]
async fn flushes_wait_while_too_many_blocks_wait_for_a_merge() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = driven_options(dir.path());
    opts.compaction_stall_blocks = 4;
    let store = LogStore::open(opts).await.unwrap();
    let res = resource("stalled");
    let merging = store.hold_maintenance().await;
    // `flush_now` never stalls (tests, shutdown).
    flushed_blocks(&store, &res, 4).await;
    store.consume_logs(wide_batch(&res, 100, 5)).await.unwrap();
    store.cut_now().await.unwrap();
    store.wake_now();
    eventually("the stall", || store.metrics().flush_stalled.get() == 1).await;
    assert_eq!(store.frozen_heads(), 1);
    assert_eq!(store.blocks().len(), 4);
    drop(merging);
    eventually("the stalled flush", || store.frozen_heads() == 0).await;
    assert_eq!(store.metrics().compactions.get(), 1, "four blocks, merged below the full width");
    let blocks = store.blocks();
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert_eq!(blocks.iter().map(|b| b.record_count).sum::<u64>(), 25);
    assert_eq!(store.metrics().flush_stalled.get(), 0);
    assert!(store.metrics().flush_stall_seconds.get() > 0.0);
    store.shutdown().await;
}
