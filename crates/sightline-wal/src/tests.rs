//! Tests: round trips, group commit, and recovery from damaged real files
//! (truncated, zero-filled, garbage-appended, byte-flipped).

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use prometheus_client::registry::Registry;
use tempfile::TempDir;

use crate::format::{HEADER_LEN, RECORD_HEADER_LEN, encode_record, header, segment_file_name};
use crate::writer::try_reserve;
use crate::*;

// ---------- helpers ----------

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(segment_file_name(SegmentId(id)))
}

fn strings(records: &[Bytes]) -> Vec<String> {
    records.iter().map(|r| String::from_utf8(r.to_vec()).unwrap()).collect()
}

/// Segment ids and their records as strings.
fn layout(rec: &Recovered) -> Vec<(u64, Vec<String>)> {
    rec.segments.iter().map(|s| (s.id.0, strings(&s.records))).collect()
}

/// Writes `segments` through the WAL (rotating between them) and closes it.
/// The first group goes to segment 1 of an empty directory; the last group
/// stays in the active segment, which is the last file on disk.
async fn write_segments(dir: &Path, segments: &[&[&str]]) {
    let (wal, _) = Wal::open(dir, Options::default()).unwrap();
    for (i, records) in segments.iter().enumerate() {
        for r in *records {
            wal.append(b(r)).await.unwrap();
        }
        if i + 1 < segments.len() {
            wal.rotate().await.unwrap();
        }
    }
    wal.close().await.unwrap();
}

/// Byte offset of record `index` in a segment holding `records`.
fn record_offset(records: &[&str], index: usize) -> u64 {
    (HEADER_LEN + records[..index].iter().map(|r| RECORD_HEADER_LEN + r.len()).sum::<usize>()) as u64
}

fn append_bytes(path: &Path, extra: &[u8]) {
    let mut data = fs::read(path).unwrap();
    data.extend_from_slice(extra);
    fs::write(path, data).unwrap();
}

fn flip_byte(path: &Path, offset: u64) {
    let mut data = fs::read(path).unwrap();
    data[offset as usize] ^= 0x40;
    fs::write(path, data).unwrap();
}

fn truncate(path: &Path, len: u64) {
    fs::File::options().write(true).open(path).unwrap().set_len(len).unwrap();
}

fn open(dir: &Path) -> Result<(Wal, Recovered), Error> {
    Wal::open(dir, Options::default())
}

fn open_mode(dir: &Path, recovery: RecoveryMode) -> Result<(Wal, Recovered), Error> {
    Wal::open(dir, Options { recovery, ..Options::default() })
}

/// Reads `dir` under the default mode without changing it.
fn read(dir: &Path) -> Result<Recovered, Error> {
    read_dir(dir, RecoveryMode::default())
}

const STRICT: RecoveryMode = RecoveryMode::TolerateTornTail;

fn corruption(err: Error) -> Corruption {
    assert!(err.is_corruption(), "expected corruption, got {err}");
    err.corruption().unwrap().clone()
}

fn encode_segment(records: &[&[u8]]) -> Vec<u8> {
    let mut buf = header().to_vec();
    for r in records {
        encode_record(&mut buf, r);
    }
    buf
}

/// Tiny seeded PRNG (xorshift64*), so tests need no extra dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

// ---------- round trips ----------

#[tokio::test]
async fn records_round_trip_across_rotations_and_reopens() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path().join("wal");
    let (wal, rec) = open(&dir).unwrap();
    assert_eq!(rec, Recovered::default());
    assert_eq!(wal.active_segment(), SegmentId(1));

    assert_eq!(wal.append(b("a1")).await.unwrap(), SegmentId(1));
    assert_eq!(wal.append(b("a2")).await.unwrap(), SegmentId(1));
    assert_eq!(wal.rotate().await.unwrap(), SegmentId(1));
    assert_eq!(wal.append(b("b1")).await.unwrap(), SegmentId(2));
    assert_eq!(wal.rotate().await.unwrap(), SegmentId(2));
    assert_eq!(wal.rotate().await.unwrap(), SegmentId(3));
    assert_eq!(wal.append(b("d1")).await.unwrap(), SegmentId(4));
    assert_eq!(wal.append(b("d2")).await.unwrap(), SegmentId(4));
    assert_eq!(wal.append(b("d3")).await.unwrap(), SegmentId(4));
    wal.close().await.unwrap();
    assert!(seg_path(&dir, 4).is_file());
    assert_eq!(seg_path(&dir, 4).file_name().unwrap(), "00000000000000000004.wal");

    let (wal, rec) = open(&dir).unwrap();
    let expected = vec![
        (1, vec!["a1".to_owned(), "a2".to_owned()]),
        (2, vec!["b1".to_owned()]),
        (3, vec![]),
        (4, vec!["d1".to_owned(), "d2".to_owned(), "d3".to_owned()]),
    ];
    assert_eq!(layout(&rec), expected);
    assert_eq!(rec.torn_tail, None);
    assert_eq!(rec.record_count(), 6);
    assert_eq!(wal.active_segment(), SegmentId(5));
    assert_eq!(wal.append(b("e1")).await.unwrap(), SegmentId(5));
    wal.close().await.unwrap();

    let (wal, rec) = open(&dir).unwrap();
    let mut expected = expected;
    expected.push((5, vec!["e1".to_owned()]));
    assert_eq!(layout(&rec), expected);
    assert_eq!(wal.active_segment(), SegmentId(6));
    wal.close().await.unwrap();
}

#[tokio::test]
async fn records_are_readable_when_append_resolves() {
    let tmp = TempDir::new().unwrap();
    let (wal, _) = open(tmp.path()).unwrap();
    wal.append(b("first")).await.unwrap();
    wal.append(b("second")).await.unwrap();
    // Read with a second, WAL-free reader while the writer is still alive.
    let seen = read(tmp.path()).unwrap();
    assert_eq!(layout(&seen), vec![(1, vec!["first".to_owned(), "second".to_owned()])]);
    assert_eq!(seen.torn_tail, None);
    assert_eq!(wal.metrics().fsyncs(), 2);
    wal.close().await.unwrap();
}

#[tokio::test]
async fn second_open_of_a_live_directory_is_refused() {
    let tmp = TempDir::new().unwrap();
    let (wal, _) = open(tmp.path()).unwrap();
    let err = open(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err}");
    wal.close().await.unwrap();
    let (wal, rec) = open(tmp.path()).unwrap();
    assert_eq!(layout(&rec), vec![(1, vec![])]);
    wal.close().await.unwrap();
}

#[tokio::test]
async fn close_is_idempotent_and_later_calls_fail_closed() {
    let tmp = TempDir::new().unwrap();
    let (wal, _) = open(tmp.path()).unwrap();
    wal.append(b("kept")).await.unwrap();
    wal.close().await.unwrap();
    wal.close().await.unwrap();
    assert!(matches!(wal.append(b("late")).await, Err(Error::Closed)));
    assert!(matches!(wal.rotate().await, Err(Error::Closed)));
    let rec = read(tmp.path()).unwrap();
    assert_eq!(layout(&rec), vec![(1, vec!["kept".to_owned()])]);
}

#[tokio::test]
async fn empty_and_oversized_payloads_are_rejected() {
    let tmp = TempDir::new().unwrap();
    let (wal, _) = open(tmp.path()).unwrap();
    assert!(matches!(wal.append(Bytes::new()).await, Err(Error::EmptyPayload)));
    // Zeroed allocation: the pages are never touched.
    let huge = Bytes::from(vec![0u8; MAX_RECORD_LEN + 1]);
    let err = wal.append(huge).await.unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { len, max } if len == MAX_RECORD_LEN + 1 && max == MAX_RECORD_LEN)
    );
    wal.close().await.unwrap();
    assert_eq!(read(tmp.path()).unwrap().record_count(), 0);
}

#[tokio::test]
async fn dropping_the_wal_still_writes_what_was_acknowledged() {
    let tmp = TempDir::new().unwrap();
    let (wal, _) =
        Wal::open(tmp.path(), Options { fsync: FsyncPolicy::Never, ..Options::default() }).unwrap();
    wal.append(b("x")).await.unwrap();
    drop(wal);
    assert_eq!(layout(&read(tmp.path()).unwrap()), vec![(1, vec!["x".to_owned()])]);
}

// ---------- group commit and fsync policies ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_all_recovered_and_group_committed() {
    const TASKS: usize = 64;
    const PER_TASK: usize = 100;
    let tmp = TempDir::new().unwrap();
    let (wal, _) = open(tmp.path()).unwrap();
    let wal = Arc::new(wal);
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let wal = Arc::clone(&wal);
        handles.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..PER_TASK {
                let payload = format!("t{t}-{i}");
                let segment = wal.append(b(&payload)).await.unwrap();
                acked.push((segment, payload));
            }
            acked
        }));
    }
    let rotator = {
        let wal = Arc::clone(&wal);
        tokio::spawn(async move {
            for _ in 0..5 {
                wal.rotate().await.unwrap();
                tokio::task::yield_now().await;
            }
        })
    };
    let mut acked = Vec::new();
    for h in handles {
        acked.extend(h.await.unwrap());
    }
    rotator.await.unwrap();
    let fsyncs = wal.metrics().fsyncs();
    assert_eq!(wal.metrics().records(), (TASKS * PER_TASK) as u64);
    assert!(
        fsyncs < (TASKS * PER_TASK) as u64,
        "{fsyncs} fsyncs for {} records: no grouping",
        TASKS * PER_TASK
    );
    wal.close().await.unwrap();

    let (wal2, rec) = open(tmp.path()).unwrap();
    assert_eq!(rec.torn_tail, None);
    assert_eq!(rec.segments.len(), 6);
    assert_eq!(rec.record_count(), TASKS * PER_TASK);
    // Every acknowledged record is in the segment its append reported, and
    // each task's records keep their order.
    for (segment, payload) in &acked {
        let seg = rec.segments.iter().find(|s| s.id == *segment).unwrap();
        assert!(seg.records.iter().any(|r| r == payload.as_bytes()), "{payload}");
    }
    for t in 0..TASKS {
        let prefix = format!("t{t}-");
        let order: Vec<String> = rec
            .segments
            .iter()
            .flat_map(|s| strings(&s.records))
            .filter(|r| r.starts_with(&prefix))
            .collect();
        let expected: Vec<String> = (0..PER_TASK).map(|i| format!("t{t}-{i}")).collect();
        assert_eq!(order, expected);
    }
    wal2.close().await.unwrap();
}

/// Opens a WAL whose writer waits for a token after taking each round's first
/// command, so commands can be queued behind it deterministically.
fn open_gated(dir: &Path, options: Options) -> (Wal, mpsc::Sender<()>) {
    let (gate_tx, gate_rx) = mpsc::channel();
    let (wal, _) = Wal::open_with_gate(dir, options, Some(gate_rx)).unwrap();
    (wal, gate_tx)
}

async fn wait_pending(wal: &Wal, bytes: usize) {
    while wal.pending_bytes() != bytes {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn queued_appends_share_one_fsync() {
    let tmp = TempDir::new().unwrap();
    let (wal, gate) = open_gated(tmp.path(), Options::default());
    let wal = Arc::new(wal);
    let mut handles = Vec::new();
    for i in 0..10 {
        let wal = Arc::clone(&wal);
        handles.push(tokio::spawn(async move { wal.append(b(&format!("r{i}"))).await }));
    }
    // All ten are queued (reserve and send happen in one poll).
    wait_pending(&wal, 10 * (2 + RECORD_HEADER_LEN)).await;
    // One token per append: a writer that failed to group would run ten
    // rounds (and fail the fsync count below) instead of hanging.
    for _ in 0..10 {
        gate.send(()).unwrap();
    }
    for h in handles {
        assert_eq!(h.await.unwrap().unwrap(), SegmentId(1));
    }
    assert_eq!(wal.metrics().fsyncs(), 1);
    assert_eq!(wal.metrics().records(), 10);
    assert_eq!(wal.pending_bytes(), 0);
    drop(gate);
    wal.close().await.unwrap();
    assert_eq!(read(tmp.path()).unwrap().record_count(), 10);
}

#[tokio::test]
async fn full_queue_refuses_fast_and_recovers() {
    let tmp = TempDir::new().unwrap();
    let (wal, gate) = open_gated(tmp.path(), Options { max_pending_bytes: 100, ..Options::default() });
    let wal = Arc::new(wal);
    let payload = Bytes::from(vec![b'x'; 50]);
    let first = {
        let (wal, payload) = (Arc::clone(&wal), payload.clone());
        tokio::spawn(async move { wal.append(payload).await })
    };
    wait_pending(&wal, 58).await;
    let err = wal.append(payload.clone()).await.unwrap_err();
    assert!(err.is_retryable());
    assert!(matches!(err, Error::Full { pending: 58, limit: 100 }));
    drop(gate); // let the writer run freely
    assert_eq!(first.await.unwrap().unwrap(), SegmentId(1));
    assert_eq!(wal.pending_bytes(), 0);
    assert_eq!(wal.append(payload).await.unwrap(), SegmentId(1));
    wal.close().await.unwrap();
    assert_eq!(read(tmp.path()).unwrap().record_count(), 2);
}

#[test]
fn reservation_accounting() {
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = |c: &Arc<std::sync::atomic::AtomicUsize>| c.load(std::sync::atomic::Ordering::SeqCst);
    // An empty queue admits a record larger than the bound.
    let big = try_reserve(&counter, 500, 100).unwrap();
    assert_eq!(load(&counter), 500);
    assert_eq!(try_reserve(&counter, 1, 100).unwrap_err(), 500);
    drop(big);
    assert_eq!(load(&counter), 0);
    let a = try_reserve(&counter, 60, 100).unwrap();
    let b = try_reserve(&counter, 40, 100).unwrap(); // exactly at the bound
    assert_eq!(try_reserve(&counter, 1, 100).unwrap_err(), 100);
    drop(a);
    let c = try_reserve(&counter, 60, 100).unwrap();
    assert_eq!(load(&counter), 100);
    drop((b, c));
    assert_eq!(load(&counter), 0);
}

#[tokio::test]
async fn always_policy_syncs_each_awaited_append() {
    let tmp = TempDir::new().unwrap();
    let (wal, _) = open(tmp.path()).unwrap();
    for i in 0..3 {
        wal.append(b(&format!("{i}"))).await.unwrap();
    }
    assert_eq!(wal.metrics().fsyncs(), 3);
    // Nothing unsynced: rotation and close add no data fsync.
    wal.rotate().await.unwrap();
    wal.close().await.unwrap();
    assert_eq!(wal.metrics().fsyncs(), 3);
}

#[tokio::test]
async fn never_policy_syncs_only_on_rotate_and_close() {
    let tmp = TempDir::new().unwrap();
    let (wal, _) =
        Wal::open(tmp.path(), Options { fsync: FsyncPolicy::Never, ..Options::default() }).unwrap();
    for i in 0..3 {
        wal.append(b(&format!("{i}"))).await.unwrap();
    }
    assert_eq!(wal.metrics().fsyncs(), 0);
    assert_eq!(wal.rotate().await.unwrap(), SegmentId(1));
    assert_eq!(wal.metrics().fsyncs(), 1);
    wal.append(b("3")).await.unwrap();
    assert_eq!(wal.metrics().fsyncs(), 1);
    wal.close().await.unwrap();
    assert_eq!(wal.metrics().fsyncs(), 2);
    let rec = read(tmp.path()).unwrap();
    assert_eq!(
        layout(&rec),
        vec![(1, vec!["0".to_owned(), "1".to_owned(), "2".to_owned()]), (2, vec!["3".to_owned()])]
    );
}

#[tokio::test]
async fn interval_policy_syncs_in_the_background() {
    let tmp = TempDir::new().unwrap();
    let (wal, _) = Wal::open(
        tmp.path(),
        Options { fsync: FsyncPolicy::Interval(Duration::from_millis(5)), ..Options::default() },
    )
    .unwrap();
    wal.append(b("a")).await.unwrap();
    // Wait (without a deadline assertion) for the background fsync.
    while wal.metrics().fsyncs() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(wal.metrics().fsyncs(), 1);
    wal.close().await.unwrap();
    assert_eq!(wal.metrics().fsyncs(), 1);
    assert_eq!(read(tmp.path()).unwrap().record_count(), 1);
}

#[test]
fn fsync_policy_parses_documented_forms() {
    let ok = [
        ("always", FsyncPolicy::Always),
        (" NEVER ", FsyncPolicy::Never),
        ("interval:100ms", FsyncPolicy::Interval(Duration::from_millis(100))),
        ("250ms", FsyncPolicy::Interval(Duration::from_millis(250))),
        ("2s", FsyncPolicy::Interval(Duration::from_secs(2))),
        ("interval:1s", FsyncPolicy::Interval(Duration::from_secs(1))),
    ];
    for (input, expected) in ok {
        assert_eq!(input.parse::<FsyncPolicy>().unwrap(), expected, "{input}");
        assert_eq!(expected.to_string().parse::<FsyncPolicy>().unwrap(), expected);
    }
    for bad in ["", "sometimes", "0ms", "interval:", "10m", "-5ms", "1.5s", "interval:0s"] {
        let err = bad.parse::<FsyncPolicy>().unwrap_err().to_string();
        assert!(err.contains("\"always\""), "{err}");
        assert!(err.contains("interval:100ms"), "{err}");
    }
    assert_eq!("point-in-time".parse::<RecoveryMode>().unwrap(), RecoveryMode::PointInTime);
    assert_eq!("tolerate-torn-tail".parse::<RecoveryMode>().unwrap(), RecoveryMode::TolerateTornTail);
    assert!("lenient".parse::<RecoveryMode>().is_err());
}

// ---------- remove_through and metrics ----------

fn disk_bytes(dir: &Path) -> i64 {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .map(|p| fs::metadata(p).unwrap().len() as i64)
        .sum()
}

#[tokio::test]
async fn remove_through_deletes_only_sealed_segments() {
    let tmp = TempDir::new().unwrap();
    let (wal, _) = open(tmp.path()).unwrap();
    for i in 1..=3 {
        wal.append(b(&format!("s{i}"))).await.unwrap();
        assert_eq!(wal.rotate().await.unwrap(), SegmentId(i));
    }
    wal.append(b("s4")).await.unwrap();
    assert_eq!(wal.active_segment(), SegmentId(4));
    assert_eq!(wal.metrics().segments.get(), 4);

    wal.remove_through(SegmentId(2)).unwrap();
    assert!(!seg_path(tmp.path(), 1).exists());
    assert!(!seg_path(tmp.path(), 2).exists());
    assert!(seg_path(tmp.path(), 3).exists());
    assert_eq!(wal.metrics().segments.get(), 2);

    // Far beyond the active segment: the active one survives.
    wal.remove_through(SegmentId(100)).unwrap();
    assert!(!seg_path(tmp.path(), 3).exists());
    assert!(seg_path(tmp.path(), 4).exists());
    assert_eq!(wal.metrics().segments.get(), 1);
    assert_eq!(wal.metrics().disk_bytes.get(), disk_bytes(tmp.path()));
    // Nothing left to remove is fine.
    wal.remove_through(SegmentId(3)).unwrap();
    wal.append(b("s4b")).await.unwrap();
    wal.close().await.unwrap();

    let (wal, rec) = open(tmp.path()).unwrap();
    assert_eq!(layout(&rec), vec![(4, vec!["s4".to_owned(), "s4b".to_owned()])]);
    assert_eq!(wal.active_segment(), SegmentId(5));
    wal.close().await.unwrap();
}

#[tokio::test]
async fn metrics_are_registered_and_track_disk_usage() {
    let tmp = TempDir::new().unwrap();
    write_segments(tmp.path(), &[&["old"]]).await;
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let (wal, _) =
        Wal::open(tmp.path(), Options { metrics: Some(Arc::clone(&metrics)), ..Options::default() }).unwrap();
    assert!(Arc::ptr_eq(wal.metrics(), &metrics));
    assert_eq!(metrics.segments.get(), 2);
    assert_eq!(metrics.disk_bytes.get(), disk_bytes(tmp.path()));
    wal.append(b("hello")).await.unwrap();
    wal.rotate().await.unwrap();
    assert_eq!(metrics.disk_bytes.get(), disk_bytes(tmp.path()));
    assert_eq!(metrics.segments.get(), 3);

    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for line in [
        "sightline_wal_appended_bytes_total 13",
        "sightline_wal_records_total 1",
        "sightline_wal_fsyncs_total 1",
        "sightline_wal_fsync_seconds_count 1",
        "sightline_wal_group_commit_records_count 1",
        "sightline_wal_group_commit_records_sum 1.0",
        "sightline_wal_segments 3",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("# TYPE sightline_wal_disk_bytes gauge"));
    wal.close().await.unwrap();
}

// ---------- torn tails ----------

const RECORDS: &[&str] = &["alpha", "bravo-bravo", "charlie"];

/// Writes [s1: x] [s2: RECORDS] and returns the path of s2, the last segment.
async fn two_segments(dir: &Path) -> PathBuf {
    write_segments(dir, &[&["x"], RECORDS]).await;
    seg_path(dir, 2)
}

/// Opens, checks the survivors of segment 2 and the torn tail, then checks
/// the repair: the file is cut, a second open agrees, appends work and
/// survive another reopen.
async fn assert_torn(dir: &Path, survivors: &[&str], expected: TornTail) {
    let path = seg_path(dir, 2);
    let (wal, rec) = open(dir).unwrap();
    let survivors: Vec<String> = survivors.iter().map(|s| s.to_string()).collect();
    assert_eq!(layout(&rec), vec![(1, vec!["x".to_owned()]), (2, survivors.clone())]);
    assert_eq!(rec.torn_tail, Some(expected.clone()));
    assert_eq!(rec.torn_segment(), Some(SegmentId(2)));
    let kept = expected.offset.max(HEADER_LEN as u64);
    assert_eq!(fs::metadata(&path).unwrap().len(), kept);
    wal.append(b("after")).await.unwrap();
    wal.close().await.unwrap();

    for _ in 0..2 {
        let (wal, rec) = open(dir).unwrap();
        assert_eq!(rec.torn_tail, None);
        assert_eq!(rec.segments[1].id, SegmentId(2));
        assert_eq!(strings(&rec.segments[1].records), survivors);
        assert_eq!(rec.segments[2].id, SegmentId(3));
        assert_eq!(strings(&rec.segments[2].records), vec!["after".to_owned()]);
        wal.close().await.unwrap();
    }
}

#[tokio::test]
async fn torn_record_header_is_truncated() {
    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    let at = record_offset(RECORDS, 2);
    truncate(&path, at + 3);
    let expected = TornTail {
        offset: at,
        discarded_bytes: 3,
        reason: Damage::TruncatedRecord { needed: 8, available: 3 },
    };
    assert_torn(tmp.path(), &RECORDS[..2], expected).await;
}

#[tokio::test]
async fn torn_payload_is_truncated() {
    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    let at = record_offset(RECORDS, 2);
    truncate(&path, at + 8 + 2);
    let expected = TornTail {
        offset: at,
        discarded_bytes: 10,
        reason: Damage::TruncatedRecord { needed: 8 + "charlie".len() as u64, available: 10 },
    };
    assert_torn(tmp.path(), &RECORDS[..2], expected).await;
}

#[tokio::test]
async fn zero_fill_after_valid_records_is_truncated() {
    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    let end = fs::metadata(&path).unwrap().len();
    append_bytes(&path, &[0u8; 4096]);
    let expected = TornTail { offset: end, discarded_bytes: 4096, reason: Damage::ZeroFill };
    assert_torn(tmp.path(), RECORDS, expected).await;
}

#[tokio::test]
async fn garbage_after_valid_records_is_truncated() {
    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    let end = fs::metadata(&path).unwrap().len();
    // A plausible length (5) with a wrong checksum, then more junk.
    let garbage = b"\x05\x00\x00\x00\xde\xad\xbe\xefhello, not a record at all";
    append_bytes(&path, garbage);
    let Some(TornTail { reason, .. }) = read(tmp.path()).unwrap().torn_tail else {
        panic!("no torn tail reported");
    };
    assert!(matches!(reason, Damage::ChecksumMismatch { stored: 0xefbe_adde, .. }));
    let expected = TornTail { offset: end, discarded_bytes: garbage.len() as u64, reason };
    assert_torn(tmp.path(), RECORDS, expected).await;
}

#[tokio::test]
async fn random_garbage_tails_never_lose_valid_records() {
    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    let clean = fs::read(&path).unwrap();
    let mut rng = XorShift(0x5eed);
    for _ in 0..200 {
        let len = 1 + rng.below(300);
        let garbage: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let mut data = clean.clone();
        data.extend_from_slice(&garbage);
        fs::write(&path, &data).unwrap();
        let rec = read(tmp.path()).unwrap();
        assert_eq!(strings(&rec.segments[1].records), RECORDS);
        let torn = rec.torn_tail.unwrap();
        assert_eq!(torn.offset, clean.len() as u64);
        assert_eq!(torn.discarded_bytes, len as u64);
    }
}

#[tokio::test]
async fn checksum_mismatch_in_final_record_is_a_torn_tail() {
    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    let at = record_offset(RECORDS, 2);
    flip_byte(&path, at + 8 + 3);
    let Some(TornTail { reason, .. }) = read(tmp.path()).unwrap().torn_tail else {
        panic!("no torn tail reported");
    };
    assert!(matches!(reason, Damage::ChecksumMismatch { .. }));
    let expected = TornTail { offset: at, discarded_bytes: 8 + "charlie".len() as u64, reason };
    assert_torn(tmp.path(), &RECORDS[..2], expected).await;
}

#[tokio::test]
async fn torn_segment_header_becomes_an_empty_segment() {
    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    truncate(&path, 3);
    let expected = TornTail { offset: 0, discarded_bytes: 3, reason: Damage::IncompleteHeader { len: 3 } };
    assert_torn(tmp.path(), &[], expected).await;
    assert_eq!(fs::read(&path).unwrap(), header());
}

#[tokio::test]
async fn zero_length_and_zero_filled_last_segments_are_torn() {
    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    truncate(&path, 0);
    let expected = TornTail { offset: 0, discarded_bytes: 0, reason: Damage::IncompleteHeader { len: 0 } };
    assert_torn(tmp.path(), &[], expected).await;

    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    fs::write(&path, [0u8; 512]).unwrap();
    let expected = TornTail { offset: 0, discarded_bytes: 512, reason: Damage::ZeroFill };
    assert_torn(tmp.path(), &[], expected).await;
}

// ---------- corruption ----------

/// Asserts a strict `open` fails with `kind` at `offset` of segment `id`
/// and changed nothing on disk.
fn assert_corrupt(dir: &Path, id: u64, offset: u64, kind: Damage) -> Corruption {
    let before = fs::read(seg_path(dir, id)).unwrap();
    let files_before = fs::read_dir(dir).unwrap().count();
    let c = corruption(open_mode(dir, STRICT).unwrap_err());
    assert_eq!(c.path.as_deref(), Some(seg_path(dir, id).as_path()));
    assert_eq!(c.segment, Some(SegmentId(id)));
    assert_eq!(c.offset, offset);
    assert_eq!(c.kind, kind);
    assert_eq!(fs::read(seg_path(dir, id)).unwrap(), before, "file was modified");
    assert_eq!(fs::read_dir(dir).unwrap().count(), files_before);
    let again = corruption(read_dir(dir, STRICT).unwrap_err());
    assert_eq!(again, c);
    c
}

fn checksum_kind(path: &Path, offset: u64) -> Damage {
    let data = fs::read(path).unwrap();
    let rest = &data[offset as usize..];
    let stored = u32::from_le_bytes(rest[4..8].try_into().unwrap());
    let len = u32::from_le_bytes(rest[..4].try_into().unwrap()) as usize;
    let computed = crate::format::record_crc(rest[..4].try_into().unwrap(), &rest[8..8 + len]);
    Damage::ChecksumMismatch { stored, computed }
}

#[tokio::test]
async fn flipped_byte_in_sealed_segment_is_checksum_mismatch() {
    let tmp = TempDir::new().unwrap();
    write_segments(tmp.path(), &[RECORDS, &["y"]]).await;
    let path = seg_path(tmp.path(), 1);
    let at = record_offset(RECORDS, 1);
    flip_byte(&path, at + 8 + 4);
    let kind = checksum_kind(&path, at);
    let c = assert_corrupt(tmp.path(), 1, at, kind);
    let msg = Error::Corruption(Box::new(c)).to_string();
    assert!(msg.contains("WAL segment 1 ("), "{msg}");
    assert!(msg.contains(&format!("at byte {at}")), "{msg}");
    assert!(msg.contains("move the file out of the WAL directory"), "{msg}");
}

#[tokio::test]
async fn flipped_final_record_of_sealed_segment_is_corruption_too() {
    let tmp = TempDir::new().unwrap();
    write_segments(tmp.path(), &[RECORDS, &["y"]]).await;
    let path = seg_path(tmp.path(), 1);
    let at = record_offset(RECORDS, 2);
    flip_byte(&path, at + 8);
    let kind = checksum_kind(&path, at);
    assert_corrupt(tmp.path(), 1, at, kind);
}

#[tokio::test]
async fn damaged_record_followed_by_valid_data_in_last_segment_is_corruption() {
    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    let at = record_offset(RECORDS, 1);
    flip_byte(&path, at + 8 + 2);
    let kind = checksum_kind(&path, at);
    assert_corrupt(tmp.path(), 2, at, kind.clone());

    // Point-in-time recovery is the explicit way to cut there anyway.
    let options = Options { recovery: RecoveryMode::PointInTime, ..Options::default() };
    let (wal, rec) = Wal::open(tmp.path(), options).unwrap();
    assert_eq!(strings(&rec.segments[1].records), &RECORDS[..1]);
    let file_len = record_offset(RECORDS, 3);
    assert_eq!(rec.torn_tail, Some(TornTail { offset: at, discarded_bytes: file_len - at, reason: kind }));
    wal.close().await.unwrap();
    assert_eq!(fs::metadata(&path).unwrap().len(), at);
}

#[tokio::test]
async fn truncated_sealed_segment_is_corruption() {
    let tmp = TempDir::new().unwrap();
    write_segments(tmp.path(), &[RECORDS, &["y"]]).await;
    let at = record_offset(RECORDS, 2);
    truncate(&seg_path(tmp.path(), 1), at + 5);
    let kind = Damage::TruncatedRecord { needed: 8, available: 5 };
    assert_corrupt(tmp.path(), 1, at, kind);
}

#[tokio::test]
async fn bad_header_is_corruption_even_in_the_last_segment() {
    let tmp = TempDir::new().unwrap();
    write_segments(tmp.path(), &[RECORDS, &["y"]]).await;
    flip_byte(&seg_path(tmp.path(), 1), 0);
    assert_corrupt(tmp.path(), 1, 0, Damage::BadHeader);

    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    flip_byte(&path, 2);
    assert_corrupt(tmp.path(), 2, 0, Damage::BadHeader);

    let tmp = TempDir::new().unwrap();
    write_segments(tmp.path(), &[RECORDS, &["y"]]).await;
    let path = seg_path(tmp.path(), 1);
    let mut data = fs::read(&path).unwrap();
    data[6..8].copy_from_slice(&2u16.to_le_bytes());
    fs::write(&path, data).unwrap();
    assert_corrupt(tmp.path(), 1, 0, Damage::UnsupportedVersion { version: 2 });

    // A sealed segment shorter than its header.
    let tmp = TempDir::new().unwrap();
    write_segments(tmp.path(), &[RECORDS, &["y"]]).await;
    truncate(&seg_path(tmp.path(), 1), 0);
    assert_corrupt(tmp.path(), 1, 0, Damage::IncompleteHeader { len: 0 });
}

fn set_length(path: &Path, offset: u64, length: u32) {
    let mut data = fs::read(path).unwrap();
    data[offset as usize..offset as usize + 4].copy_from_slice(&length.to_le_bytes());
    fs::write(path, data).unwrap();
}

#[tokio::test]
async fn absurd_length_mid_file_is_invalid_length() {
    let tmp = TempDir::new().unwrap();
    write_segments(tmp.path(), &[RECORDS, &["y"]]).await;
    let at = record_offset(RECORDS, 1);
    set_length(&seg_path(tmp.path(), 1), at, 0xffff_fff0);
    assert_corrupt(tmp.path(), 1, at, Damage::InvalidLength { length: 0xffff_fff0 });

    let tmp = TempDir::new().unwrap();
    let path = two_segments(tmp.path()).await;
    let at = record_offset(RECORDS, 1);
    set_length(&path, at, 0);
    assert_corrupt(tmp.path(), 2, at, Damage::InvalidLength { length: 0 });
}

#[tokio::test]
async fn zero_fill_in_sealed_segment_is_corruption() {
    let tmp = TempDir::new().unwrap();
    write_segments(tmp.path(), &[RECORDS, &["y"]]).await;
    let path = seg_path(tmp.path(), 1);
    let end = fs::metadata(&path).unwrap().len();
    append_bytes(&path, &[0u8; 16]);
    assert_corrupt(tmp.path(), 1, end, Damage::ZeroFill);
}

#[tokio::test]
async fn file_names_are_checked() {
    let tmp = TempDir::new().unwrap();
    write_segments(tmp.path(), &[RECORDS]).await;
    // Unrelated files and files moved aside are ignored.
    fs::write(tmp.path().join("notes.txt"), b"hi").unwrap();
    fs::write(tmp.path().join("00000000000000000009.wal.bad"), b"junk").unwrap();
    fs::create_dir(tmp.path().join("00000000000000000010.wal")).unwrap();
    let rec = read(tmp.path()).unwrap();
    assert_eq!(layout(&rec), vec![(1, strings(&RECORDS.iter().map(|r| b(r)).collect::<Vec<_>>()))]);

    fs::write(tmp.path().join("42.wal"), b"").unwrap();
    let err = open(tmp.path()).unwrap_err();
    assert!(err.is_corruption());
    assert!(matches!(&err, Error::InvalidFileName { path } if path.ends_with("42.wal")), "{err}");
}

// ---------- skipping damaged records (the default) ----------

/// Record `i` of the 900-record log: ~1-3 KiB of bytes shaped like OTLP
/// protobuf (tags, small varints, zero bytes), so lengths that look
/// plausible occur inside payloads as they do in real segments.
fn otlp_like(i: usize) -> Bytes {
    let mut rng = XorShift(0x9e37_79b9 ^ (i as u64 + 1).wrapping_mul(0x1000_0001));
    let len = 1024 + rng.below(2048);
    let mut v = format!("trace-{i:04}:").into_bytes();
    while v.len() < len {
        match rng.below(4) {
            0 => v.extend_from_slice(&[0x0a, rng.below(120) as u8]),
            1 => v.extend_from_slice(&[0x10, 0, 0, 0]),
            2 => v.push(0),
            _ => v.push(rng.next() as u8),
        }
    }
    Bytes::from(v)
}

/// Writes `count` OTLP-like records into segment 2 (segment 1 holds "x"),
/// rotating after them if `seal`, and returns the records and their offsets.
async fn write_many(dir: &Path, count: usize, seal: bool) -> (Vec<Bytes>, Vec<u64>) {
    let (wal, _) = open(dir).unwrap();
    wal.append(b("x")).await.unwrap();
    wal.rotate().await.unwrap();
    let records: Vec<Bytes> = (0..count).map(otlp_like).collect();
    let mut offsets = Vec::with_capacity(count);
    let mut at = HEADER_LEN as u64;
    for r in &records {
        offsets.push(at);
        at += (RECORD_HEADER_LEN + r.len()) as u64;
        assert_eq!(wal.append(r.clone()).await.unwrap(), SegmentId(2));
    }
    if seal {
        wal.rotate().await.unwrap();
    }
    wal.close().await.unwrap();
    (records, offsets)
}

fn without(records: &[Bytes], lost: &[usize]) -> Vec<Bytes> {
    records.iter().enumerate().filter(|(i, _)| !lost.contains(i)).map(|(_, r)| r.clone()).collect()
}

/// Opens with the default mode and checks segment 2 holds `expected`, with
/// exactly `skips` (offset, bytes) skipped, counted in the metrics; then
/// that the files were left as they were and a second open agrees.
async fn assert_skipped(dir: &Path, expected: &[Bytes], skips: &[(u64, u64)]) {
    let before = fs::read(seg_path(dir, 2)).unwrap();
    let metrics = Arc::new(Metrics::default());
    for round in 0..2 {
        let options = Options { metrics: Some(Arc::clone(&metrics)), ..Options::default() };
        let (wal, rec) = Wal::open(dir, options).unwrap();
        let seg = rec.segments.iter().find(|s| s.id == SegmentId(2)).unwrap();
        assert_eq!(seg.records.len(), expected.len());
        assert!(seg.records == expected, "records differ");
        let got: Vec<(u64, u64)> = seg.skipped.iter().map(|s| (s.offset, s.bytes)).collect();
        assert_eq!(got, skips);
        assert_eq!(rec.torn_tail, None);
        assert_eq!(rec.skipped_count(), skips.len());
        assert_eq!(rec.skipped_bytes(), skips.iter().map(|s| s.1).sum::<u64>());
        assert_eq!(metrics.skipped(), (skips.len() * (round + 1)) as u64);
        wal.append(b("after")).await.unwrap();
        wal.close().await.unwrap();
        assert_eq!(fs::read(seg_path(dir, 2)).unwrap(), before, "a skipped segment is left as it was");
    }
}

#[tokio::test]
async fn one_flipped_byte_loses_one_record_of_900_not_the_rest() {
    // The case: a byte flipped in record 800 of 900 used to cost
    // records 800..900 (point-in-time, the only way to start).
    for seal in [false, true] {
        let tmp = TempDir::new().unwrap();
        let (records, offsets) = write_many(tmp.path(), 900, seal).await;
        let victim = 800;
        let size = (RECORD_HEADER_LEN + records[victim].len()) as u64;
        flip_byte(&seg_path(tmp.path(), 2), offsets[victim] + 8 + size / 2);
        assert_skipped(tmp.path(), &without(&records, &[victim]), &[(offsets[victim], size)]).await;
    }
}

#[tokio::test]
async fn damaged_length_checksum_or_header_field_loses_only_its_record() {
    // Length bytes: low (a slightly wrong length), high (a length past the
    // end of the file), and the checksum field.
    for (field_byte, mask) in [(0u64, 0x01u8), (1, 0x10), (2, 0x80), (3, 0x01), (5, 0xff)] {
        for seal in [false, true] {
            let tmp = TempDir::new().unwrap();
            let (records, offsets) = write_many(tmp.path(), 200, seal).await;
            let victim = 120;
            let path = seg_path(tmp.path(), 2);
            let mut data = fs::read(&path).unwrap();
            data[(offsets[victim] + field_byte) as usize] ^= mask;
            fs::write(&path, data).unwrap();
            let size = (RECORD_HEADER_LEN + records[victim].len()) as u64;
            assert_skipped(tmp.path(), &without(&records, &[victim]), &[(offsets[victim], size)]).await;
        }
    }
}

#[tokio::test]
async fn garbage_between_records_and_zeroed_pages_are_skipped() {
    let tmp = TempDir::new().unwrap();
    let (records, offsets) = write_many(tmp.path(), 300, true).await;
    let path = seg_path(tmp.path(), 2);
    let mut data = fs::read(&path).unwrap();
    // A page of zeros over records 40..: what a file system may leave.
    let zero_at = offsets[40] as usize + 100;
    data[zero_at..zero_at + 4096].fill(0);
    let first_after_zeros = offsets.iter().position(|&o| o as usize >= zero_at + 4096).unwrap();
    // Garbage inserted between records 200 and 201.
    let mut rng = XorShift(7);
    let garbage: Vec<u8> = (0..1000).map(|_| rng.next() as u8).collect();
    let insert_at = offsets[201] as usize;
    data.splice(insert_at..insert_at, garbage.iter().copied());
    fs::write(&path, &data).unwrap();

    let lost: Vec<usize> = (40..first_after_zeros).collect();
    let zero_skip = (offsets[40], offsets[first_after_zeros] - offsets[40]);
    assert_skipped(tmp.path(), &without(&records, &lost), &[zero_skip, (offsets[201], 1000)]).await;
}

#[tokio::test]
async fn damaged_segment_magic_keeps_every_record() {
    let tmp = TempDir::new().unwrap();
    let (records, _) = write_many(tmp.path(), 50, true).await;
    flip_byte(&seg_path(tmp.path(), 2), 1);
    assert_skipped(tmp.path(), &records, &[(0, HEADER_LEN as u64)]).await;

    // An unknown format version is never guessed at.
    let path = seg_path(tmp.path(), 2);
    let mut data = fs::read(&path).unwrap();
    data[1] ^= 0x40;
    data[6..8].copy_from_slice(&9u16.to_le_bytes());
    fs::write(&path, data).unwrap();
    let c = corruption(open(tmp.path()).unwrap_err());
    assert_eq!(c.kind, Damage::UnsupportedVersion { version: 9 });
}

#[tokio::test]
async fn damage_and_a_torn_tail_in_one_segment() {
    let tmp = TempDir::new().unwrap();
    let (records, offsets) = write_many(tmp.path(), 100, false).await;
    let path = seg_path(tmp.path(), 2);
    flip_byte(&path, offsets[10] + 20);
    flip_byte(&path, offsets[60] + 2);
    let end = fs::metadata(&path).unwrap().len();
    truncate(&path, end - 5);
    let (wal, rec) = open(tmp.path()).unwrap();
    let seg = &rec.segments[1];
    assert!(seg.records == without(&records, &[10, 60, 99]));
    let size = |i: usize| (RECORD_HEADER_LEN + records[i].len()) as u64;
    let got: Vec<(u64, u64)> = seg.skipped.iter().map(|s| (s.offset, s.bytes)).collect();
    assert_eq!(got, vec![(offsets[10], size(10)), (offsets[60], size(60))]);
    let torn = rec.torn_tail.clone().unwrap();
    assert_eq!((torn.offset, torn.discarded_bytes), (offsets[99], size(99) - 5));
    wal.close().await.unwrap();
    // The tail was cut; the damage before it stays where it is.
    assert_eq!(fs::metadata(&path).unwrap().len(), offsets[99]);
    assert_eq!(read(tmp.path()).unwrap().skipped_count(), 2);
}

// ---------- scan_segment ----------

#[test]
fn every_truncation_of_a_segment_recovers_a_prefix() {
    let records: [&[u8]; 4] = [b"one", b"two-two", b"3", b"four four four"];
    let data = encode_segment(&records);
    let mut boundaries = vec![HEADER_LEN];
    for r in records {
        boundaries.push(boundaries.last().unwrap() + RECORD_HEADER_LEN + r.len());
    }
    for cut in 0..=data.len() {
        let part = &data[..cut];
        let complete = boundaries.iter().filter(|&&b| b <= cut).count().saturating_sub(1);
        let on_boundary = boundaries.contains(&cut);
        for mode in [RecoveryMode::SkipDamaged, STRICT, RecoveryMode::PointInTime] {
            let got = scan_segment(part, true, mode).unwrap();
            assert_eq!(got.records.len(), complete, "cut at {cut}");
            for (g, r) in got.records.iter().zip(records) {
                assert_eq!(g.as_ref(), r);
            }
            assert!(got.skipped.is_empty(), "a cut end is a torn tail, not a skip");
            assert_eq!(got.torn_tail.is_none(), on_boundary, "cut at {cut}");
            if let Some(t) = got.torn_tail {
                let expected_offset = if cut < HEADER_LEN { 0 } else { boundaries[complete] };
                assert_eq!(t.offset, expected_offset as u64);
                assert_eq!(t.discarded_bytes, (cut - expected_offset) as u64);
            }
        }
        // A strict read of a sealed segment accepts only cuts on a record
        // boundary; skipping reads the complete records and reports the rest.
        assert_eq!(scan_segment(part, false, STRICT).is_ok(), on_boundary, "cut at {cut}");
        let sealed = scan_segment(part, false, RecoveryMode::SkipDamaged).unwrap();
        assert_eq!(sealed.records.len(), complete, "cut at {cut}");
        assert_eq!(sealed.torn_tail, None);
        let skipped: u64 = sealed.skipped.iter().map(|s| s.bytes).sum();
        let kept = if cut < HEADER_LEN { 0 } else { boundaries[complete] };
        assert_eq!(skipped, (cut - kept) as u64, "cut at {cut}");
    }
}

#[test]
fn every_single_byte_flip_is_caught() {
    let records: [&[u8]; 3] = [b"first record", b"second", b"third and last"];
    let data = encode_segment(&records);
    let starts = [
        HEADER_LEN,
        HEADER_LEN + RECORD_HEADER_LEN + records[0].len(),
        data.len() - RECORD_HEADER_LEN - records[2].len(),
    ];
    let last_start = starts[2];
    for pos in 0..data.len() {
        let mut damaged = data.clone();
        damaged[pos] ^= 0x01;
        let sealed = scan_segment(&damaged, false, STRICT);
        assert!(sealed.unwrap_err().is_corruption(), "flip at {pos}");
        let last = scan_segment(&damaged, true, STRICT);
        let hit = starts.iter().rposition(|&s| s <= pos);
        if pos >= last_start {
            let got = last.unwrap();
            assert_eq!(got.records.len(), 2, "flip at {pos}");
            assert_eq!(got.torn_tail.unwrap().offset, last_start as u64);
        } else {
            let c = corruption(last.unwrap_err());
            let expected = hit.map_or(0, |i| starts[i]);
            assert_eq!(c.offset, expected as u64, "flip at {pos}");
            assert_eq!(c.path, None);
        }

        // Skipping loses exactly the record the flip hit, in any segment.
        for is_last in [false, true] {
            let got = scan_segment(&damaged, is_last, RecoveryMode::SkipDamaged);
            if (6..8).contains(&pos) {
                // The format version: never guessed at.
                assert!(got.unwrap_err().is_corruption(), "flip at {pos}");
                continue;
            }
            let got = got.unwrap();
            let lost = hit.unwrap_or(usize::MAX);
            let kept: Vec<&[u8]> =
                records.iter().enumerate().filter(|(i, _)| *i != lost).map(|(_, r)| *r).collect();
            let got_records: Vec<&[u8]> = got.records.iter().map(|r| r.as_ref()).collect();
            assert_eq!(got_records, kept, "flip at {pos}, last {is_last}");
            let (offset, bytes) = match hit {
                None => (0, HEADER_LEN),
                Some(i) => (starts[i], RECORD_HEADER_LEN + records[i].len()),
            };
            if is_last && hit == Some(2) {
                // Nothing valid follows: a torn tail, as in every mode.
                assert!(got.skipped.is_empty());
                assert_eq!(got.torn_tail.unwrap().offset, offset as u64);
            } else {
                assert_eq!(got.torn_tail, None, "flip at {pos}");
                assert_eq!(got.skipped.len(), 1, "flip at {pos}");
                assert_eq!(got.skipped[0].offset, offset as u64, "flip at {pos}");
                assert_eq!(got.skipped[0].bytes, bytes as u64, "flip at {pos}");
            }
        }
    }
}

#[test]
fn scan_segment_survives_random_input() {
    let mut rng = XorShift(0x0123_4567_89ab_cdef);
    let valid = encode_segment(&[b"alpha", b"beta", b"gamma delta"]);
    for round in 0..4000 {
        let input: Vec<u8> = match round % 4 {
            // Pure noise.
            0 => (0..rng.below(200)).map(|_| rng.next() as u8).collect(),
            // A valid header, then noise.
            1 => {
                let mut v = header().to_vec();
                v.extend((0..rng.below(200)).map(|_| rng.next() as u8));
                v
            }
            // A valid segment with a few random bytes overwritten.
            2 => {
                let mut v = valid.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(v.len());
                    v[i] = rng.next() as u8;
                }
                v
            }
            // A valid segment cut short, then noise or small lengths.
            _ => {
                let mut v = valid[..rng.below(valid.len())].to_vec();
                for _ in 0..rng.below(40) {
                    v.push((rng.next() % 4) as u8);
                }
                v
            }
        };
        for is_last in [false, true] {
            for mode in [RecoveryMode::SkipDamaged, STRICT, RecoveryMode::PointInTime] {
                match scan_segment(&input, is_last, mode) {
                    Ok(got) => {
                        assert!(got.records.iter().all(|r| !r.is_empty()));
                        let used: usize = got.records.iter().map(|r| r.len() + RECORD_HEADER_LEN).sum();
                        let skipped: u64 = got.skipped.iter().map(|s| s.bytes).sum();
                        let torn = got.torn_tail.as_ref().map_or(0, |t| t.discarded_bytes);
                        let header = if got.skipped.first().is_some_and(|s| s.offset == 0)
                            || got.torn_tail.as_ref().is_some_and(|t| t.offset == 0)
                        {
                            0
                        } else {
                            HEADER_LEN
                        };
                        // Every byte is a header, a record, skipped or torn.
                        assert_eq!(
                            (header + used) as u64 + skipped + torn,
                            input.len() as u64,
                            "{mode:?} {input:?}"
                        );
                        if let Some(t) = got.torn_tail {
                            assert!(is_last, "torn tail in a sealed segment");
                            assert_eq!(t.offset + t.discarded_bytes, input.len() as u64);
                        }
                        if mode != RecoveryMode::SkipDamaged {
                            assert!(got.skipped.is_empty());
                        }
                    }
                    Err(e) => {
                        let c = corruption(e);
                        assert!(c.offset <= input.len() as u64);
                    }
                }
            }
        }
    }
}

#[test]
fn wal_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Wal>();
    check::<Error>();
    check::<Recovered>();
}

/// CPU time this thread has run, in ns (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    let text = fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// What resynchronising costs on a full 32 MiB segment of OTLP-like
/// records: intact, one damaged length field early on (the search runs
/// through a whole record of plausible-looking lengths), and every record
/// after the header overwritten with garbage (the search runs to the end).
/// `cargo test --release -p sightline-wal -- --ignored resync_cost --nocapture`.
#[test]
#[ignore]
fn resync_cost() {
    let mut records: Vec<Bytes> = Vec::new();
    let mut size = 0;
    while size < 32 << 20 {
        let r = otlp_like(records.len());
        size += r.len() + RECORD_HEADER_LEN;
        records.push(r);
    }
    let refs: Vec<&[u8]> = records.iter().map(|r| r.as_ref()).collect();
    let clean = encode_segment(&refs);
    let mut length = clean.clone();
    length[HEADER_LEN + 10 * 3000 + 3] ^= 0x01; // inside an early record's header area
    let mut garbage = clean.clone();
    let mut rng = XorShift(99);
    for b in &mut garbage[HEADER_LEN..] {
        *b = if rng.below(3) == 0 { 0 } else { rng.next() as u8 };
    }
    for (name, data) in [("intact", &clean), ("damaged length", &length), ("all garbage", &garbage)] {
        let t = thread_cpu_ns();
        let got = scan_segment(data, false, RecoveryMode::SkipDamaged).unwrap();
        let ms = (thread_cpu_ns() - t) as f64 / 1e6;
        println!(
            "{name:>15}: {ms:8.1} ms CPU for {} MiB, {} of {} records, {} skipped",
            data.len() >> 20,
            got.records.len(),
            records.len(),
            got.skipped.len()
        );
    }
}

// ---------- mirror ----------

/// Keeps every copy; fails while `fail` is set.
#[derive(Debug, Default)]
struct Copies {
    images: std::sync::Mutex<Vec<(SegmentId, u64, Vec<u8>)>>,
    removed: std::sync::Mutex<Vec<SegmentId>>,
    fail: std::sync::atomic::AtomicBool,
}

impl Mirror for Copies {
    fn put(&self, segment: SegmentId, offset: u64, image: &[u8]) -> Result<(), String> {
        if self.fail.load(std::sync::atomic::Ordering::Acquire) {
            return Err("bucket down".into());
        }
        self.images.lock().unwrap().push((segment, offset, image.to_vec()));
        Ok(())
    }

    fn remove_through(&self, through: SegmentId) {
        self.removed.lock().unwrap().push(through);
    }
}

#[tokio::test]
async fn mirror_gets_every_acknowledged_record_as_a_readable_segment_image() {
    let dir = TempDir::new().unwrap();
    let copies = Arc::new(Copies::default());
    let options = Options { mirror: Some(Arc::clone(&copies) as Arc<dyn Mirror>), ..Options::default() };
    let (wal, _) = Wal::open(dir.path(), options).unwrap();
    wal.append(b("one")).await.unwrap();
    wal.append(b("two")).await.unwrap();
    let sealed = wal.rotate().await.unwrap();
    wal.append(b("three")).await.unwrap();

    // A failed copy fails the append retryably: nothing is acknowledged
    // that is not in the mirror.
    copies.fail.store(true, std::sync::atomic::Ordering::Release);
    let err = wal.append(b("lost")).await.unwrap_err();
    assert!(matches!(err, Error::Unwritable { .. }), "{err}");
    copies.fail.store(false, std::sync::atomic::Ordering::Release);
    wal.append(b("four")).await.unwrap();

    let images = copies.images.lock().unwrap().clone();
    let mut mirrored = Vec::new();
    for (segment, offset, image) in &images {
        assert!(*offset >= HEADER_LEN as u64);
        let scanned = scan_segment(image, true, RecoveryMode::TolerateTornTail).unwrap();
        assert!(scanned.torn_tail.is_none());
        mirrored.extend(strings(&scanned.records).into_iter().map(|r| (segment.0, r)));
    }
    let s = sealed.0;
    let expected: Vec<(u64, String)> = [(s, "one"), (s, "two"), (s + 1, "three"), (s + 1, "four")]
        .iter()
        .map(|(i, r)| (*i, r.to_string()))
        .collect();
    assert_eq!(mirrored, expected);

    wal.remove_through(sealed).unwrap();
    assert_eq!(*copies.removed.lock().unwrap(), vec![sealed]);
    wal.close().await.unwrap();
}
