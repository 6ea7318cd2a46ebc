//! Tests for the block format. Table of contents:
//! - round trip: every field, several row groups, shared resources
//! - trace(): row-group positions, split traces, absent ids, duplicates
//! - search(): each condition, AND-on-one-span, limit/order, brute force
//! - compact(): merge with overlaps and duplicates
//! - meta: exact operations/dependencies/counts
//! - damage: truncated/garbage/unknown-format files give typed errors
//! - fixture: the checked-in `test-data/sl1` block still reads
//! - size: bytes per realistic span (printed, not asserted)
//! - otlp: blocks from protobuf bytes equal blocks from decoded spans

pub(crate) mod datagen;
mod otlp;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use sightline_model::{Span, TagFilter, TraceId, TraceQuery, span_matches};

use crate::{Block, BlockMeta, Error, WriteOptions, compact, write};

fn options(row_group_spans: usize) -> WriteOptions {
    WriteOptions { row_group_spans, zstd_level: 3, compaction_level: 0 }
}

/// What a block must hold for `spans`: first copy of each (trace, span)
/// kept, sorted by (trace id, start) stably.
fn expected(spans: &[Span]) -> Vec<Span> {
    let mut seen = HashSet::new();
    let mut out: Vec<Span> = spans.iter().filter(|s| seen.insert((s.trace_id, s.span_id))).cloned().collect();
    out.sort_by_key(|s| (s.trace_id, s.start_time_unix_nano));
    out
}

fn write_open(dir: &Path, id: &str, spans: Vec<Span>, opts: &WriteOptions) -> Block {
    write(dir, id, spans, opts).unwrap();
    Block::open(&dir.join(id)).unwrap()
}

/// The blocks `ids` under `dir`, opened.
fn open_blocks(dir: &Path, ids: &[&str]) -> Vec<Block> {
    ids.iter().map(|id| Block::open(&dir.join(id)).unwrap()).collect()
}

/// Three merge inputs cut from `all`: a and b overlap, b also holds
/// copies of 40 of a's spans renamed "from b" (a's copy must win, a being
/// first), c overlaps both and repeats 10 of a's spans.
fn overlapping_inputs(all: &[Span]) -> [Vec<Span>; 3] {
    let a: Vec<Span> = all.iter().step_by(2).cloned().collect();
    let mut b: Vec<Span> = all.iter().skip(1).step_by(3).cloned().collect();
    for s in a.iter().take(40) {
        let mut copy = s.clone();
        copy.name = "from b".to_owned();
        b.push(copy);
    }
    let c: Vec<Span> = all.iter().skip(1).step_by(2).chain(a.iter().skip(100).take(10)).cloned().collect();
    [a, b, c]
}

// ---------------------------------------------------------------- round trip

#[test]
fn round_trip_every_field_across_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let spans = datagen::every_field();
    let block = write_open(dir.path(), "b1", spans.clone(), &options(4));
    assert_eq!(block.footer().unwrap().reader_meta.metadata().num_row_groups(), 4); // 13 spans / 4
    let back = block.read_all().unwrap();
    assert_eq!(back, expected(&spans));
    // Streaming yields the same spans, never splitting a trace.
    let mut streamed = Vec::new();
    for chunk in block.spans().unwrap() {
        let chunk = chunk.unwrap();
        assert!(chunk.windows(2).all(|w| w[0].trace_id <= w[1].trace_id));
        streamed.extend(chunk);
    }
    assert_eq!(streamed, back);
}

#[test]
fn round_trip_shares_resources_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let block = write_open(dir.path(), "b", datagen::every_field(), &options(1024));
    // Three distinct resource contents: `resource` and its copy are one.
    assert_eq!(block.footer().unwrap().resources.len(), 2);
    assert_eq!(block.footer().unwrap().scopes.len(), 2);
    let back = block.read_all().unwrap();
    let api: Vec<&Span> = back.iter().filter(|s| s.service_name() == "api").collect();
    assert_eq!(api.len(), 11);
    assert!(api.iter().all(|s| Arc::ptr_eq(&s.resource, &api[0].resource)));
    let distinct_scopes: HashSet<*const sightline_model::Scope> =
        back.iter().map(|s| Arc::as_ptr(&s.scope)).collect();
    assert_eq!(distinct_scopes.len(), 2);
}

#[test]
fn nan_round_trip_keeps_bits() {
    let dir = tempfile::tempdir().unwrap();
    let mut span = datagen::every_field().remove(1);
    let payload = f64::from_bits(0x7ff8_0000_0000_1234);
    span.attributes = vec![datagen::kv("nan", payload), datagen::kv("nan.neg", -f64::NAN)];
    let block = write_open(dir.path(), "b", vec![span], &options(16));
    let back = block.read_all().unwrap();
    let bits: Vec<u64> = back[0]
        .attributes
        .iter()
        .map(|kv| match kv.value {
            sightline_model::Value::Double(d) => d.to_bits(),
            _ => 0,
        })
        .collect();
    assert_eq!(bits, vec![0x7ff8_0000_0000_1234, (-f64::NAN).to_bits()]);
}

#[test]
fn realistic_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let spans = datagen::realistic(300, 7, 1_700_000_000_000_000_000);
    let block = write_open(dir.path(), "b", spans.clone(), &options(1000));
    assert!(block.footer().unwrap().reader_meta.metadata().num_row_groups() > 3);
    assert_eq!(block.read_all().unwrap(), expected(&spans));
}

/// Writes a realistic block to `$SIGHTLINE_DEMO_DIR` for trying other
/// tools on it: `SIGHTLINE_DEMO_DIR=/tmp/demo cargo test -p sightline-block
/// -- --ignored demo_block`.
#[test]
#[ignore]
fn demo_block() {
    let dir = std::env::var("SIGHTLINE_DEMO_DIR").unwrap();
    let spans = datagen::realistic(2_000, 42, 1_700_000_000_000_000_000);
    write(Path::new(&dir), "demo", spans, &WriteOptions::default()).unwrap();
}

#[test]
fn empty_block() {
    let dir = tempfile::tempdir().unwrap();
    let block = write_open(dir.path(), "empty", Vec::new(), &options(16));
    assert_eq!(block.meta().span_count, 0);
    assert_eq!(block.read_all().unwrap(), Vec::<Span>::new());
    assert_eq!(block.trace(TraceId::from_bytes([1; 16]).unwrap()).unwrap(), Vec::<Span>::new());
    assert_eq!(block.search(&TraceQuery { limit: 10, ..Default::default() }).unwrap(), vec![]);
}

// ------------------------------------------------------------------ size

/// Prints bytes per span of a realistic workload and a per-column
/// breakdown (`cargo test -p sightline-block size_per -- --nocapture`); the numbers guide the schema, so nothing is asserted on
/// them, but the block must round-trip.
#[test]
fn size_per_realistic_span() {
    use prost::Message as _;
    let dir = tempfile::tempdir().unwrap();
    let spans = datagen::realistic(6_000, 42, 1_700_000_000_000_000_000);
    let n = spans.len() as f64;
    let raw: usize = spans.iter().map(|s| sightline_model::otlp::encode_span(s).encoded_len()).sum();
    // SIGHTLINE_SIZE_ZSTD=15 shows what compaction at a higher level gets.
    let zstd_level = std::env::var("SIGHTLINE_SIZE_ZSTD").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let opts = WriteOptions { zstd_level, ..WriteOptions::default() };
    let meta = write(dir.path(), "size", spans.clone(), &opts).unwrap();
    let block = Block::open(&dir.path().join("size")).unwrap();
    let footer = block.footer().unwrap();
    let md = footer.reader_meta.metadata();
    let mut by_column: Vec<(String, i64)> = Vec::new();
    for (i, c) in md.file_metadata().schema_descr().columns().iter().enumerate() {
        let bytes: i64 = md.row_groups().iter().map(|rg| rg.column(i).compressed_size()).sum();
        let bloom: i64 =
            md.row_groups().iter().map(|rg| i64::from(rg.column(i).bloom_filter_length().unwrap_or(0))).sum();
        by_column.push((format!("{} (+bloom {:.2})", c.path(), bloom as f64 / n), bytes));
    }
    by_column.sort_by_key(|(_, b)| -b);
    println!(
        "{} spans, {} row groups: {:.1} B/span on disk, raw OTLP span (no resource) {:.1} B/span, metadata in memory {} B",
        spans.len(),
        md.num_row_groups(),
        meta.size_bytes as f64 / n,
        raw as f64 / n,
        block.memory_size(),
    );
    for (name, bytes) in by_column {
        println!("  {:>7.2} B/span  {name}", bytes as f64 / n);
    }
    assert_eq!(meta.span_count, spans.len() as u64);
    assert_eq!(block.read_all().unwrap(), expected(&spans));
}

/// CPU time this thread has run, in ns (`/proc/thread-self/schedstat`):
/// unlike wall time, not inflated by other work on a busy machine.
fn thread_cpu_ns() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    text.split_whitespace().next().unwrap().parse().unwrap()
}

/// Minor page faults this thread has taken (`/proc/thread-self/stat`,
/// field 10): fresh memory the kernel had to hand it, whatever else runs.
fn thread_minor_faults() -> u64 {
    let text = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // The fields after the command name (which may hold spaces) start at
    // field 3, the state.
    text.rsplit_once(')').unwrap().1.split_whitespace().nth(7).unwrap().parse().unwrap()
}

/// What verifying every read costs: the same realistic block read with
/// and without its checksums (`cargo test --release -p sightline-block --
/// --ignored checksum_cost --nocapture`). Prints CPU ns per lookup, per
/// search and per full read, alternating the two variants.
#[test]
#[ignore]
fn checksum_cost() {
    let dir = tempfile::tempdir().unwrap();
    let spans = datagen::realistic(20_000, 5, 1_700_000_000_000_000_000);
    let count = spans.len();
    let ids: Vec<TraceId> = {
        let mut seen: Vec<TraceId> = spans.iter().map(|s| s.trace_id).collect();
        seen.dedup();
        seen.into_iter().step_by(37).take(300).collect()
    };
    write(dir.path(), "sum", spans.clone(), &WriteOptions::default()).unwrap();
    write(dir.path(), "plain", spans, &WriteOptions::default()).unwrap();
    strip_checksums(&dir.path().join("plain"));
    let blocks = [
        ("checksummed", Block::open(&dir.path().join("sum")).unwrap()),
        ("plain", Block::open(&dir.path().join("plain")).unwrap()),
    ];
    let q = TraceQuery { limit: 20, tags: vec![tag("http.status_code", "500")], ..Default::default() };
    let mut totals = [[0u64; 3]; 2];
    for _round in 0..5 {
        for (i, (_, block)) in blocks.iter().enumerate() {
            let t = thread_cpu_ns();
            for id in &ids {
                assert!(!block.trace(*id).unwrap().is_empty());
            }
            let t2 = thread_cpu_ns();
            for _ in 0..10 {
                block.search(&q).unwrap();
            }
            let t3 = thread_cpu_ns();
            assert_eq!(block.read_all().unwrap().len(), count);
            let t4 = thread_cpu_ns();
            totals[i][0] += t2 - t;
            totals[i][1] += t3 - t2;
            totals[i][2] += t4 - t3;
        }
    }
    for (i, (name, block)) in blocks.iter().enumerate() {
        println!(
            "{name:>12}: trace by id {:>7} ns, search {:>9} ns, read_all {:>11} ns ({count} spans, {} B, {} B in memory)",
            totals[i][0] / (5 * ids.len() as u64),
            totals[i][1] / 50,
            totals[i][2] / 5,
            block.meta().size_bytes,
            block.memory_size(),
        );
    }
}

// ---------------------------------------------------------------- trace()

/// A realistic block with `row_group_spans`-row groups, and its spans as
/// stored.
fn realistic_block(dir: &Path, traces: usize, row_group_spans: usize) -> (Block, Vec<Span>) {
    let spans = datagen::realistic(traces, 11, 1_700_000_000_000_000_000);
    let block = write_open(dir, "r", spans.clone(), &options(row_group_spans));
    (block, expected(&spans))
}

fn trace_of(stored: &[Span], id: TraceId) -> Vec<Span> {
    let mut out: Vec<Span> = stored.iter().filter(|s| s.trace_id == id).cloned().collect();
    out.sort_by_key(|s| s.start_time_unix_nano);
    out
}

#[test]
fn trace_hits_first_middle_last_and_split_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 300, 500);
    let groups = block.footer().unwrap().reader_meta.metadata().num_row_groups();
    assert!(groups >= 6, "{groups} row groups");
    let first = stored[0].trace_id;
    let middle = stored[stored.len() / 2].trace_id;
    let last = stored[stored.len() - 1].trace_id;
    // A trace with rows on both sides of the row-group boundary at 1000.
    let split = stored[1000].trace_id;
    assert_eq!(stored[999].trace_id, split, "pick another boundary: trace does not straddle it");
    for id in [first, middle, last, split] {
        let got = block.trace(id).unwrap();
        assert!(!got.is_empty());
        assert_eq!(got, trace_of(&stored, id));
    }
    // Every 25th trace too.
    let ids: Vec<TraceId> =
        stored.iter().map(|s| s.trace_id).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    for id in ids.iter().step_by(25) {
        assert_eq!(block.trace(*id).unwrap(), trace_of(&stored, *id));
    }
}

#[test]
fn traces_reads_many_ids_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 300, 500);
    let ids: Vec<TraceId> =
        stored.iter().map(|s| s.trace_id).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    // Ids from several row groups, one twice, one absent, unsorted.
    let mut absent = *ids[3].as_bytes();
    absent[15] ^= 0x80;
    let absent = TraceId::from_bytes(absent).unwrap();
    let wanted = vec![ids[200], ids[0], ids[120], ids[0], absent, ids[299]];
    let got = block.traces(&wanted).unwrap();
    let mut expected: Vec<Span> = Vec::new();
    for id in [ids[0], ids[120], ids[200], ids[299]] {
        expected.extend(trace_of(&stored, id));
    }
    assert_eq!(got, expected);
    assert_eq!(block.traces(&[absent]).unwrap(), Vec::<Span>::new());
    assert_eq!(block.traces(&[]).unwrap(), Vec::<Span>::new());
}

/// Many ids spread over row groups and pages: a trace split by a row-group
/// boundary, one split by a page boundary, duplicates, absent ids inside
/// and outside the block's range, in no order. The one-pass read returns
/// exactly the per-id reads, concatenated in trace id order, and both are
/// what was written.
#[test]
fn traces_of_many_ids_equal_the_per_id_reads() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 2_000, 9_000);
    let md = Arc::clone(block.footer().unwrap().reader_meta.metadata());
    assert!(md.num_row_groups() >= 3, "{} row groups", md.num_row_groups());
    let rows = md.row_group(0).num_rows() as usize;
    assert!(rows > 2 * crate::schema::PAGE_ROWS, "{rows} rows: need several pages per row group");
    let straddles = |at: usize| stored[at - 1].trace_id == stored[at].trace_id;
    // Traces on both sides of the first row-group boundary and of the
    // first page boundary of row group 1, wherever such a trace exists.
    let group_split = (rows - 6..rows + 6).find(|&at| straddles(at)).map(|at| stored[at].trace_id);
    let page = md.page_index().unwrap().page_locations(1, block.leaves.trace_id).unwrap()[1].first_row_index;
    let page_split = rows + page as usize;
    let all: Vec<TraceId> =
        stored.iter().map(|s| s.trace_id).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut absent = *all[7].as_bytes();
    absent[15] ^= 0x80;
    let absent = TraceId::from_bytes(absent).unwrap();
    assert!(!all.contains(&absent));
    let beyond = TraceId::from_bytes([0xff; 16]).unwrap();
    let mut wanted: Vec<TraceId> = all.iter().rev().step_by(97).copied().collect();
    wanted.extend([stored[page_split].trace_id, stored[page_split - 1].trace_id, all[0], all[all.len() - 1]]);
    wanted.extend(group_split);
    wanted.extend([absent, beyond, all[0], wanted[3]]);

    let got = block.traces(&wanted).unwrap();
    let mut unique: Vec<TraceId> = wanted.clone();
    unique.sort_unstable();
    unique.dedup();
    let mut per_id = Vec::new();
    let mut truth = Vec::new();
    for id in &unique {
        per_id.extend(block.trace(*id).unwrap());
        truth.extend(trace_of(&stored, *id));
    }
    assert!(got.len() > 200, "{} spans", got.len());
    assert_eq!(got, per_id);
    assert_eq!(got, truth);
    // The ids from row groups both sides of a boundary alone, and nothing
    // but absent ids.
    if let Some(id) = group_split {
        assert_eq!(
            block.traces(&[id, all[0]]).unwrap(),
            [trace_of(&stored, all[0]), trace_of(&stored, id)].concat()
        );
    }
    assert_eq!(block.traces(&[absent, beyond, absent]).unwrap(), Vec::<Span>::new());
}

/// A many-id read asks its source for each row group's pages in a few
/// coalesced reads, not one read per page of every column.
#[test]
fn traces_of_many_ids_read_in_few_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 1_500, 4_000);
    let data = std::fs::read(dir.path().join("r").join("data.parquet")).unwrap();
    let meta_json = std::fs::read(dir.path().join("r").join("meta.json")).unwrap();
    let source = Arc::new(CountingSource {
        bytes: data.into(),
        read: Default::default(),
        calls: Default::default(),
        pages: Default::default(),
    });
    let remote = Block::open_source(Path::new("remote/r"), &meta_json, Arc::clone(&source) as _).unwrap();
    let groups = block.footer().unwrap().reader_meta.metadata().num_row_groups();
    assert!(groups >= 4, "{groups} row groups");
    let all: Vec<TraceId> =
        stored.iter().map(|s| s.trace_id).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let wanted: Vec<TraceId> = all.iter().step_by(all.len() / 8).copied().collect();
    let _ = remote.trace(all[0]).unwrap(); // bloom filters read and cached
    source.calls.store(0, std::sync::atomic::Ordering::Relaxed);
    let got = remote.traces(&wanted).unwrap();
    assert_eq!(got, block.traces(&wanted).unwrap());
    let calls = source.calls.load(std::sync::atomic::Ordering::Relaxed) as usize;
    // ~70 leaf columns: a read per page would be hundreds per row group.
    assert!(calls <= 12 * groups, "{calls} reads for {groups} row groups");
}

/// Damage between the pages a lookup needs, inside the span a many-id
/// read fetches in one go, does not fail the lookup: only damage to a page
/// the trace needs does (salvage relies on it to name exactly what is lost).
#[test]
fn damage_between_needed_pages_does_not_fail_a_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 1_500, 20_000);
    let md = Arc::clone(block.footer().unwrap().reader_meta.metadata());
    let index = md.page_index().unwrap();
    let group = md.row_group(0);
    assert!(group.num_rows() as usize > 2 * crate::schema::PAGE_ROWS);
    // The trace at row 10 needs each column's dictionary and first page.
    let id = stored[10].trace_id;
    let mut needed: Vec<(u64, u64)> = (0..group.num_columns())
        .map(|c| {
            let first = &index.page_locations(0, c).unwrap()[0];
            (group.column(c).byte_range().0, first.offset as u64 + first.compressed_page_size as u64)
        })
        .collect();
    needed.sort_unstable();
    // A whole 4 KiB chunk in a gap of less than 16 KiB between two needed
    // ranges (other pages of a column): a coalesced read spans it.
    let chunk = needed
        .windows(2)
        .filter(|w| w[1].0 - w[0].1 < 16 << 10)
        .find_map(|w| {
            let c = w[0].1.div_ceil(4096);
            ((c + 1) * 4096 <= w[1].0).then_some(c)
        })
        .expect("no chunk between needed pages");
    let path = dir.path().join("r").join("data.parquet");
    let mut data = std::fs::read(&path).unwrap();
    data[(chunk * 4096 + 2048) as usize] ^= 0x40;
    std::fs::write(&path, &data).unwrap();
    let damaged = Block::open(&dir.path().join("r")).unwrap();
    assert_eq!(damaged.trace(id).unwrap(), trace_of(&stored, id));
    assert_eq!(damaged.traces(&[id]).unwrap(), trace_of(&stored, id));
    assert!(damaged.verify().unwrap().iter().any(|m| m.start == chunk * 4096));
}

#[test]
fn trace_absent_id_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 50, 100);
    let mut absent = *stored[10].trace_id.as_bytes();
    absent[15] ^= 0x80; // inside the id range, not in the block
    let absent = TraceId::from_bytes(absent).unwrap();
    assert!(stored.iter().all(|s| s.trace_id != absent));
    assert_eq!(block.trace(absent).unwrap(), Vec::<Span>::new());
    assert_eq!(block.trace(TraceId::from_bytes([0xff; 16]).unwrap()).unwrap(), Vec::<Span>::new());
    assert_eq!(
        block.trace(TraceId::from_bytes([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]).unwrap()).unwrap(),
        vec![]
    );
}

#[test]
fn trace_selects_pages_inside_a_row_group() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 1_500, 20_000);
    let md = Arc::clone(block.footer().unwrap().reader_meta.metadata());
    let rows = md.row_group(0).num_rows() as usize;
    assert!(rows > 3 * crate::schema::PAGE_ROWS, "{rows} rows: need several pages");
    let id = stored[rows / 2].trace_id;
    let pages = block.trace_pages(&md, 0, id.as_bytes(), rows);
    let selected: usize = pages.iter().map(|r| r.len()).sum();
    assert!(selected <= 2 * crate::schema::PAGE_ROWS + 1024, "selected {selected} of {rows} rows");
    assert_eq!(block.trace(id).unwrap(), trace_of(&stored, id));
}

#[test]
fn duplicates_are_dropped_keeping_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut spans = datagen::realistic(5, 3, 1_000);
    let mut dup = spans[3].clone();
    dup.name = "second copy".to_owned();
    dup.start_time_unix_nano = 1; // would sort first if it were kept
    spans.push(dup);
    let first_copy = spans[3].clone();
    let block = write_open(dir.path(), "d", spans.clone(), &options(4));
    assert_eq!(block.meta().span_count, spans.len() as u64 - 1);
    let trace = block.trace(first_copy.trace_id).unwrap();
    assert_eq!(
        trace.iter().filter(|s| s.span_id == first_copy.span_id).collect::<Vec<_>>(),
        vec![&first_copy]
    );
    assert!(block.read_all().unwrap().iter().all(|s| s.name != "second copy"));
}

/// The key-only sort and dedupe the flush streams with keeps exactly the
/// first copy (smallest index) of each `(trace id, span id)` in `(trace
/// id, start, index)` order, in short runs and long ones (over 32 spans:
/// the hashing path) alike, with duplicates in several runs compacted in
/// place.
#[test]
fn sort_dedup_keys_keeps_the_first_copy_in_order() {
    use sightline_model::SpanId;

    use crate::write::{SortKey, sort_dedup_keys};
    let trace = |n: u8| TraceId::from_bytes([n; 16]).unwrap();
    let span = |n: u64| SpanId::from_bytes((n + 1).to_be_bytes()).unwrap();
    let mut keys = Vec::new();
    let mut index = 0u32;
    let mut push = |t: u8, id: u64, start: u64| {
        keys.push(SortKey { trace_id: trace(t), start, index, span_id: span(id) });
        index += 1;
    };
    // Given out of order: a long run with repeats, two short runs with
    // repeats, a run without; starts tie and repeat.
    for i in 0..50 {
        push(3, i % 37, 1_000 - (i % 7));
    }
    for i in 0..6 {
        push(1, i % 4, 5);
    }
    for i in 0..5 {
        push(2, i, i);
    }
    for i in 0..40 {
        push(3, i % 11, 10 + i);
    }
    for i in 0..3 {
        push(1, 2, 100 - i);
    }
    let mut expected = keys.clone();
    expected.sort();
    let all = expected.clone();
    expected.retain(|k| {
        !all.iter().any(|j| j.trace_id == k.trace_id && j.span_id == k.span_id && j.index < k.index)
    });
    let got = sort_dedup_keys(keys);
    assert_eq!(got, expected);
    assert_eq!(got.len(), 37 + 4 + 5);
}

/// A data file served from memory, counting the bytes read.
#[derive(Debug)]
struct CountingSource {
    bytes: bytes::Bytes,
    read: std::sync::atomic::AtomicU64,
    /// `read_at` calls.
    calls: std::sync::atomic::AtomicU64,
    pages: std::sync::Mutex<std::collections::BTreeSet<u64>>,
}

impl crate::BlockSource for CountingSource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<bytes::Bytes> {
        // Distinct bytes, counted in 4 KiB pages: reads are verified by
        // whole checksum chunks, so neighbouring pages re-read a chunk,
        // which a remote source's cache serves.
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut pages = self.pages.lock().unwrap();
        for page in offset / 4096..(offset + len as u64).div_ceil(4096) {
            if pages.insert(page) {
                self.read.fetch_add(4096, std::sync::atomic::Ordering::Relaxed);
            }
        }
        let start = offset as usize;
        self.bytes
            .get(start..start + len)
            .map(|_| self.bytes.slice(start..start + len))
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "past the end"))
    }
}

#[test]
fn a_block_read_through_a_source_answers_like_the_file_and_reads_only_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 1_500, 4_000);
    let data = std::fs::read(dir.path().join("r").join("data.parquet")).unwrap();
    let meta_json = std::fs::read(dir.path().join("r").join("meta.json")).unwrap();
    let source = Arc::new(CountingSource {
        bytes: data.clone().into(),
        read: Default::default(),
        calls: Default::default(),
        pages: Default::default(),
    });
    let remote = Block::open_source(Path::new("remote/r"), &meta_json, Arc::clone(&source) as _).unwrap();
    assert!(remote.is_checksummed());
    let opened = source.read.swap(0, std::sync::atomic::Ordering::Relaxed);
    source.pages.lock().unwrap().clear();
    assert!(opened < data.len() as u64 / 4, "opening read {opened} of {} bytes", data.len());

    let id = stored[stored.len() / 3].trace_id;
    assert_eq!(remote.trace(id).unwrap(), block.trace(id).unwrap());
    let looked_up = source.read.swap(0, std::sync::atomic::Ordering::Relaxed);
    source.pages.lock().unwrap().clear();
    assert!(looked_up < data.len() as u64 / 4, "a lookup read {looked_up} of {} bytes", data.len());

    let q = TraceQuery { service: Some(stored[0].resource.service_name().to_owned()), ..query(20) };
    assert_eq!(remote.search(&q).unwrap(), block.search(&q).unwrap());
    assert_eq!(remote.read_all().unwrap(), stored);

    // A size that disagrees with meta.json is corruption, as for a file.
    let short = Arc::new(CountingSource {
        bytes: data[..data.len() - 1].to_vec().into(),
        read: Default::default(),
        calls: Default::default(),
        pages: Default::default(),
    });
    let err = Block::open_source(Path::new("remote/r"), &meta_json, short).unwrap_err();
    assert!(err.is_corruption(), "{err}");

    // Reads through a source are checked like reads of a file: a flipped
    // byte is found by verify, named by its range.
    let mut flipped = data.clone();
    let at = flipped.len() / 2;
    flipped[at] ^= 0x20;
    let damaged = Arc::new(CountingSource {
        bytes: flipped.into(),
        read: Default::default(),
        calls: Default::default(),
        pages: Default::default(),
    });
    let remote = Block::open_source(Path::new("remote/r"), &meta_json, damaged).unwrap();
    let found = remote.verify().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].start <= at as u64 && (at as u64) < found[0].end, "{found:?}");
}

// ---------------------------------------------------------------- search()

/// The reference: `span_matches` over every stored span.
fn brute_force(stored: &[Span], q: &TraceQuery) -> Vec<(TraceId, u64)> {
    let mut latest: HashMap<TraceId, u64> = HashMap::new();
    for s in stored.iter().filter(|s| span_matches(s, q)) {
        let e = latest.entry(s.trace_id).or_insert(s.start_time_unix_nano);
        *e = (*e).max(s.start_time_unix_nano);
    }
    let mut out: Vec<(TraceId, u64)> = latest.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(q.limit);
    out
}

fn tag(key: &str, value: &str) -> TagFilter {
    TagFilter { key: key.to_owned(), value: value.to_owned() }
}

fn query(limit: usize) -> TraceQuery {
    TraceQuery { limit, ..TraceQuery::default() }
}

/// Small hand-made traces for exact search semantics.
fn search_fixture() -> Vec<Span> {
    use datagen::kv;
    use sightline_model::{Event, Resource, SpanKind, Status, StatusCode};
    let web =
        Arc::new(Resource::new(vec![kv("service.name", "web"), kv("host.name", "h1")], 0, String::new()));
    let db = Arc::new(Resource::new(vec![kv("service.name", "db"), kv("host.name", "h2")], 0, String::new()));
    let scope =
        Arc::new(sightline_model::Scope { name: "lib".into(), version: "9".into(), ..Default::default() });
    let mk = |t: u8, s: u8, start: u64, dur: u64, res: &Arc<Resource>| {
        datagen::plain_span(t, s, start, start + dur, res, &scope)
    };
    let mut spans = Vec::new();
    // Trace 1: two spans that each satisfy half of {code=500, kind=server}.
    let mut a = mk(1, 1, 100, 10, &web);
    a.attributes = vec![kv("http.status_code", 500i64)];
    let mut b = mk(1, 2, 110, 10, &web);
    b.kind = SpanKind::Server;
    spans.extend([a, b]);
    // Trace 2: one span satisfying both, an error with an exception event.
    let mut c = mk(2, 1, 200, 50, &web);
    c.kind = SpanKind::Server;
    c.name = "GET /x".into();
    c.attributes = vec![kv("http.status_code", 500i64), kv("user.id", "u-42"), kv("user.id", "u-43")];
    c.status = Status { code: StatusCode::Error, message: "failed".into() };
    c.events = vec![Event {
        time_unix_nano: 210,
        name: "exception".into(),
        attributes: vec![kv("exception.type", "Timeout")],
        dropped_attributes_count: 0,
    }];
    spans.push(c);
    // Trace 3: db spans with a string status code and a bool and a double.
    let mut d = mk(3, 1, 300, 1_000, &db);
    d.kind = SpanKind::Client;
    d.attributes = vec![kv("http.status_code", "500"), kv("cache.hit", true), kv("ratio", 0.5f64)];
    spans.push(d);
    // Traces 4..=8: increasing starts for limit/order tests.
    for t in 4..=8u8 {
        let mut s = mk(t, 1, 1_000 * u64::from(t), 5, &web);
        s.name = "tick".into();
        spans.push(s);
        let mut s = mk(t, 2, 1_000 * u64::from(t) - 500, 5, &web);
        s.name = "tick".into();
        spans.push(s);
    }
    spans
}

fn ids(result: &[(TraceId, u64)]) -> Vec<u8> {
    result.iter().map(|(t, _)| t.as_bytes()[0]).collect()
}

#[test]
fn search_semantics() {
    let dir = tempfile::tempdir().unwrap();
    let spans = search_fixture();
    let stored = expected(&spans);
    // Small row groups so the traces spread over several.
    let block = write_open(dir.path(), "s", spans, &options(3));
    let check = |q: TraceQuery, want: Vec<u8>| {
        let got = block.search(&q).unwrap();
        assert_eq!(got, brute_force(&stored, &q), "{q:?}");
        assert_eq!(ids(&got), want, "{q:?}");
    };
    let q = |f: &dyn Fn(&mut TraceQuery)| {
        let mut q = query(100);
        f(&mut q);
        q
    };
    check(q(&|q| q.service = Some("db".into())), vec![3]);
    check(q(&|q| q.service = Some("nope".into())), vec![]);
    check(q(&|q| q.operation = Some("GET /x".into())), vec![2]);
    check(q(&|q| (q.service, q.operation) = (Some("db".into()), Some("GET /x".into()))), vec![]);
    check(q(&|q| q.min_duration_nanos = Some(50)), vec![3, 2]);
    check(q(&|q| q.max_duration_nanos = Some(10)), vec![8, 7, 6, 5, 4, 1]);
    check(q(&|q| (q.min_duration_nanos, q.max_duration_nanos) = (Some(10), Some(50))), vec![2, 1]);
    check(
        q(&|q| (q.start_min_unix_nanos, q.start_max_unix_nanos) = (Some(150), Some(5_000))),
        vec![5, 4, 3, 2],
    );
    // Tags: span attributes compared as text, any value type.
    check(q(&|q| q.tags = vec![tag("http.status_code", "500")]), vec![3, 2, 1]);
    check(q(&|q| q.tags = vec![tag("http.status_code", "+500")]), vec![]);
    check(q(&|q| q.tags = vec![tag("cache.hit", "true")]), vec![3]);
    check(q(&|q| q.tags = vec![tag("ratio", "0.5")]), vec![3]);
    check(q(&|q| q.tags = vec![tag("user.id", "u-43")]), vec![2]); // duplicate key
    // Resource and event attributes, synthetic keys.
    check(q(&|q| q.tags = vec![tag("host.name", "h2")]), vec![3]);
    check(q(&|q| q.tags = vec![tag("exception.type", "Timeout")]), vec![2]);
    check(q(&|q| q.tags = vec![tag("error", "true")]), vec![2]);
    check(q(&|q| q.tags = vec![tag("error", "false")]), vec![]);
    check(q(&|q| q.tags = vec![tag("span.kind", "server")]), vec![2, 1]);
    check(q(&|q| q.tags = vec![tag("span.kind", "client")]), vec![3]);
    check(q(&|q| q.tags = vec![tag("otel.status_code", "ERROR")]), vec![2]);
    check(q(&|q| q.tags = vec![tag("otel.status_description", "failed")]), vec![2]);
    check(q(&|q| q.tags = vec![tag("otel.scope.name", "lib")]), vec![8, 7, 6, 5, 4, 3, 2, 1]);
    check(q(&|q| q.tags = vec![tag("otel.scope.version", "8")]), vec![]);
    // AND on one span: trace 1 has each condition on a different span.
    check(q(&|q| q.tags = vec![tag("http.status_code", "500"), tag("span.kind", "server")]), vec![2]);
    check(
        q(&|q| {
            q.service = Some("web".into());
            q.tags = vec![tag("error", "true"), tag("exception.type", "Timeout"), tag("host.name", "h1")];
        }),
        vec![2],
    );
    // Limit and most-recent-first: trace 8's latest span starts at 8000.
    let got = block
        .search(&q(&|q| {
            q.operation = Some("tick".into());
            q.limit = 3;
        }))
        .unwrap();
    assert_eq!(
        got.iter().map(|(t, s)| (t.as_bytes()[0], *s)).collect::<Vec<_>>(),
        vec![(8, 8000), (7, 7000), (6, 6000)]
    );
    assert_eq!(block.search(&q(&|q| q.limit = 0)).unwrap(), vec![]);
}

/// Ends before starts (stored as negative durations) and starts past 2262
/// (stored as negative numbers) keep `span_matches`' arithmetic whether a
/// row group's statistics let phase 1 leave `start_time` to phase 2 or not.
#[test]
fn search_keeps_odd_times_exact() {
    use datagen::kv;
    use sightline_model::{Resource, Scope, SpanKind};
    let dir = tempfile::tempdir().unwrap();
    let web = Arc::new(Resource::new(vec![kv("service.name", "web")], 0, String::new()));
    let scope = Arc::new(Scope::default());
    let late = 1u64 << 63;
    let times = [
        (1_000, 2_000),
        (5_000, 4_000),
        (6_000, 6_000),
        (late + 10, late + 500),
        (late + 600, late + 100),
        (u64::MAX - 10, u64::MAX),
        (3_000, 400_000),
    ];
    let spans: Vec<Span> = times
        .iter()
        .enumerate()
        .map(|(i, &(start, end))| {
            let mut s = datagen::plain_span(i as u8 + 1, 1, start, end, &web, &scope);
            s.kind = if i % 2 == 0 { SpanKind::Server } else { SpanKind::Client };
            s
        })
        .collect();
    let stored = expected(&spans);
    for (n, rows) in [1, 2, 7].into_iter().enumerate() {
        let block = write_open(dir.path(), &format!("odd{n}"), spans.clone(), &options(rows));
        for min in [None, Some(0), Some(1), Some(500), Some(1_000)] {
            for max in [None, Some(0), Some(1_000), Some(u64::MAX / 2)] {
                for window in [(None, None), (Some(2_000), Some(10_000)), (Some(late), None)] {
                    let q = TraceQuery {
                        service: Some("web".into()),
                        tags: vec![tag("span.kind", "server")],
                        min_duration_nanos: min,
                        max_duration_nanos: max,
                        start_min_unix_nanos: window.0,
                        start_max_unix_nanos: window.1,
                        ..query(100)
                    };
                    assert_eq!(block.search(&q).unwrap(), brute_force(&stored, &q), "{rows} rows: {q:?}");
                    let q = TraceQuery { service: None, tags: Vec::new(), ..q };
                    assert_eq!(block.search(&q).unwrap(), brute_force(&stored, &q), "{rows} rows: {q:?}");
                }
            }
        }
    }
}

#[test]
fn search_matches_brute_force_on_generated_queries() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 400, 700);
    let mut rng = datagen::Rng::new(99);
    let (min_start, max_start) = (block.meta().min_start_unix_nanos, block.meta().max_start_unix_nanos);
    let mut nonempty = 0;
    for round in 0..120 {
        let sample = &stored[rng.below(stored.len() as u64) as usize];
        let mut q = query(if round % 3 == 0 { 10_000 } else { 20 });
        if rng.chance(0.5) {
            q.service = Some(sample.service_name().to_owned());
        }
        if rng.chance(0.3) {
            q.operation = Some(sample.name.clone());
        }
        if rng.chance(0.3) {
            q.min_duration_nanos = Some(sample.duration_nanos() / 2);
        }
        if rng.chance(0.2) {
            q.max_duration_nanos = Some(sample.duration_nanos() * 2);
        }
        if rng.chance(0.2) {
            q.start_min_unix_nanos = Some(min_start + rng.below(max_start - min_start));
        }
        if rng.chance(0.2) {
            q.start_max_unix_nanos = Some(min_start + rng.below(max_start - min_start));
        }
        for _ in 0..rng.below(3) {
            let t = match rng.below(6) {
                0 | 1 if !sample.attributes.is_empty() => {
                    let kv = rng.pick(&sample.attributes);
                    tag(&kv.key, &kv.value.to_text())
                }
                2 => {
                    let kv = rng.pick(sample.resource.attributes());
                    tag(&kv.key, &kv.value.to_text())
                }
                3 if !sample.events.is_empty() => {
                    let e = rng.pick(&sample.events);
                    let kv = rng.pick(&e.attributes);
                    tag(&kv.key, &kv.value.to_text())
                }
                4 => rng
                    .pick(&[
                        tag("error", "true"),
                        tag("span.kind", "server"),
                        tag("otel.status_code", "ERROR"),
                    ])
                    .clone(),
                _ => tag("user.id", &format!("user-{}", rng.below(50_000))),
            };
            q.tags.push(t);
        }
        let want = brute_force(&stored, &q);
        nonempty += usize::from(!want.is_empty());
        assert_eq!(block.search(&q).unwrap(), want, "round {round}: {q:?}");
    }
    assert!(nonempty > 60, "only {nonempty} queries matched anything");
}

// ---------------------------------------------------------- footer cache

/// Blocks sharing a cache far smaller than their footers: every lookup,
/// search and full read answers exactly as through an unbounded cache,
/// the cache never holds more than its bound, entries were evicted and
/// read again, and the blocks' memory sizes add up to the bounded figure.
#[test]
fn blocks_answer_the_same_through_a_small_footer_cache() {
    let dir = tempfile::tempdir().unwrap();
    let mut stored = Vec::new();
    for (i, id) in ["a", "b", "c", "d"].into_iter().enumerate() {
        let spans =
            datagen::realistic(60, 11 + i as u64, 1_700_000_000_000_000_000 + i as u64 * 1_000_000_000);
        write(dir.path(), id, spans.clone(), &options(300)).unwrap();
        stored.push(expected(&spans));
    }
    let unbounded = open_blocks(dir.path(), &["a", "b", "c", "d"]);
    let footer_bytes = unbounded[0].memory_size();
    // Room for about one block's footer: every block's turn evicts another's.
    let cache = Arc::new(crate::FooterCache::new(footer_bytes + footer_bytes / 2));
    let cached: Vec<Block> = ["a", "b", "c", "d"]
        .iter()
        .map(|id| Block::open_cached(&dir.path().join(id), &cache).unwrap())
        .collect();
    let mut q = query(1_000);
    q.service = Some(stored[0][0].service_name().to_owned());
    for round in 0..3 {
        for (i, (block, reference)) in cached.iter().zip(&unbounded).enumerate() {
            for id in stored[i].iter().map(|s| s.trace_id).step_by(37) {
                assert_eq!(block.trace(id).unwrap(), reference.trace(id).unwrap(), "round {round} block {i}");
            }
            let absent = TraceId::from_bytes([0x5a; 16]).unwrap();
            assert_eq!(block.trace(absent).unwrap(), Vec::<Span>::new());
            assert_eq!(block.search(&q).unwrap(), reference.search(&q).unwrap());
            assert!(cache.stats().used_bytes <= cache.capacity(), "{:?}", cache.stats());
        }
    }
    for (block, reference) in cached.iter().zip(&unbounded) {
        assert_eq!(block.read_all().unwrap(), reference.read_all().unwrap());
    }
    let stats = cache.stats();
    assert!(stats.evictions > 0 && stats.misses > 0, "nothing was evicted and read again: {stats:?}");
    let total: usize = cached.iter().map(Block::memory_size).sum();
    let unbounded_total: usize = unbounded.iter().map(Block::memory_size).sum();
    assert!(total <= stats.used_bytes + 64 * 1024, "{total} B counted, {stats:?}");
    assert!(total < unbounded_total, "{total} B bounded, {unbounded_total} B unbounded");
    // A dropped block leaves nothing behind in the cache.
    drop(cached);
    assert_eq!(cache.stats().used_bytes, 0);
}

// ---------------------------------------------------------------- compact()

#[test]
fn compact_merges_overlaps_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let all = datagen::realistic(60, 5, 1_000_000);
    // Three inputs: overlapping traces, and b copies some of a's spans with
    // a different name (a's copy must win, a being first).
    let [a, b, c] = overlapping_inputs(&all);
    write(dir.path(), "a", a.clone(), &options(100)).unwrap();
    write(dir.path(), "b", b.clone(), &WriteOptions { compaction_level: 2, ..options(64) }).unwrap();
    write(dir.path(), "c", c.clone(), &options(1000)).unwrap();
    let blocks = open_blocks(dir.path(), &["a", "b", "c"]);
    let refs: Vec<&Block> = blocks.iter().collect();
    let meta = compact(dir.path(), "abc", &refs, &options(128)).unwrap();
    assert_eq!(meta.compaction_level, 3);
    let merged = Block::open(&dir.path().join("abc")).unwrap();
    let want = expected(&[a.clone(), b.clone(), c.clone()].concat());
    assert_eq!(want.len(), all.len()); // every span, once
    assert_eq!(merged.read_all().unwrap(), want);
    assert!(merged.read_all().unwrap().iter().all(|s| s.name != "from b"));
    // The same metadata as writing the union directly.
    let direct = write(dir.path(), "direct", [a, b, c].concat(), &options(128)).unwrap();
    assert_eq!(
        (meta.span_count, meta.trace_count, &meta.operations, &meta.dependencies, meta.max_end_unix_nanos),
        (
            direct.span_count,
            direct.trace_count,
            &direct.operations,
            &direct.dependencies,
            direct.max_end_unix_nanos
        )
    );
}

/// Merges `inputs` both ways, by copying Arrow rows (what `compact` does
/// when the inputs' dedicated columns allow) and through model spans, and
/// checks that both wrote the same data file and metadata.
fn assert_merges_agree(dir: &Path, inputs: &[&Block], opts: &WriteOptions) -> Block {
    use crate::dedicated::Dedicated;
    let dedicated = Dedicated::merge(inputs.iter().map(|b| &b.dedicated));
    assert!(crate::copy::slot_maps(inputs, &dedicated).unwrap().is_some(), "the copying merge applies");
    let level = inputs.iter().map(|b| b.meta().compaction_level).max().unwrap() + 1;
    let copied = compact(dir, "copied", inputs, opts).unwrap();
    let decoded = crate::compact::compact_decoded(dir, "decoded", inputs, opts, level, dedicated).unwrap();
    let bytes = |id: &str| std::fs::read(dir.join(id).join("data.parquet")).unwrap();
    assert!(bytes("copied") == bytes("decoded"), "the two merges wrote different data files");
    assert_eq!(BlockMeta { id: "decoded".to_owned(), ..copied }, decoded);
    let block = Block::open(&dir.join("copied")).unwrap();
    assert_eq!(block.read_all().unwrap(), Block::open(&dir.join("decoded")).unwrap().read_all().unwrap());
    block
}

/// Overlapping inputs with duplicates, traces split across inputs (their
/// parents' row distances change), row groups and batches cut at
/// different places than the inputs'.
#[test]
fn copy_merge_writes_what_the_model_merge_writes() {
    let dir = tempfile::tempdir().unwrap();
    let all = datagen::realistic(700, 7, 1_000_000);
    let [a, b, c] = overlapping_inputs(&all);
    write(dir.path(), "a", a.clone(), &options(1000)).unwrap();
    write(dir.path(), "b", b.clone(), &options(640)).unwrap();
    write(dir.path(), "c", c.clone(), &options(10_000)).unwrap();
    let blocks = open_blocks(dir.path(), &["a", "b", "c"]);
    let refs: Vec<&Block> = blocks.iter().collect();
    // 4096-row batches and row groups of 5000: cuts inside traces.
    let merged = assert_merges_agree(dir.path(), &refs, &options(5000));
    assert_eq!(merged.read_all().unwrap(), expected(&[a, b, c].concat()));
    assert!(merged.meta().span_count > 8192, "several batches and row groups");
}

/// Inputs whose dedicated keys sit in different slots (ranked by their
/// frequency in each block), with every value type, events, links and
/// parents outside the block.
#[test]
fn copy_merge_renumbers_dedicated_slots() {
    use datagen::kv;
    let dir = tempfile::tempdir().unwrap();
    let odd = datagen::every_field();
    let base = datagen::realistic(40, 3, 5_000_000);
    // In `x` "alpha" is on every span and "beta" on a third; in `y` the
    // other way round, so their slots swap.
    let tag = |spans: &[Span], first: &str, second: &str| -> Vec<Span> {
        spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut s = s.clone();
                s.attributes.push(kv(first, format!("v{}", i % 7)));
                s.attributes.push(kv(&format!("{first}.n"), (i % 5) as i64));
                if i % 3 == 0 {
                    s.attributes.push(kv(second, "w"));
                    s.attributes.push(kv(&format!("{second}.n"), 9i64));
                }
                s
            })
            .collect()
    };
    let x: Vec<Span> = tag(&base[..base.len() / 2], "alpha", "beta").into_iter().chain(odd.clone()).collect();
    let y: Vec<Span> = tag(&base[base.len() / 3..], "beta", "alpha").into_iter().chain(odd).collect();
    write(dir.path(), "x", x.clone(), &options(64)).unwrap();
    write(dir.path(), "y", y.clone(), &options(100)).unwrap();
    let blocks = open_blocks(dir.path(), &["x", "y"]);
    let slot = |b: &Block, key: &str| b.dedicated.str_slot(key);
    assert_ne!(slot(&blocks[0], "alpha"), slot(&blocks[1], "alpha"), "the fixture must swap slots");
    let refs: Vec<&Block> = blocks.iter().collect();
    let merged = assert_merges_agree(dir.path(), &refs, &options(128));
    assert_eq!(merged.read_all().unwrap(), expected(&[x, y].concat()));
}

/// A key only some inputs have gets a merged column; the inputs without
/// it are copied (their bloom filters show the key absent), unless they
/// hold it in their generic list (here as booleans, which have no column):
/// then the merge decodes. Both write every span.
#[test]
fn copy_merge_adds_keys_other_inputs_lack() {
    use crate::dedicated::Dedicated;
    let dir = tempfile::tempdir().unwrap();
    // Few keys, so every one gets a column (there are 20).
    let mut base = datagen::realistic(30, 5, 0);
    for s in &mut base {
        s.attributes.truncate(4);
    }
    let with = |spans: &[Span], value: fn(usize) -> sightline_model::Value| -> Vec<Span> {
        spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut s = s.clone();
                s.attributes.push(sightline_model::KeyValue::new("gamma", value(i)));
                s
            })
            .collect()
    };
    let (lo, hi) = base.split_at(base.len() / 2);
    let plain = lo.to_vec();
    let strs = with(hi, |i| format!("g{}", i % 3).into());
    let bools = with(lo, |i| (i % 2 == 0).into());
    write(dir.path(), "plain", plain.clone(), &options(50)).unwrap();
    write(dir.path(), "strs", strs.clone(), &options(50)).unwrap();
    write(dir.path(), "bools", bools.clone(), &options(50)).unwrap();
    let open = |id: &str| Block::open(&dir.path().join(id)).unwrap();
    let (plain_b, strs_b, bools_b) = (open("plain"), open("strs"), open("bools"));
    assert!(plain_b.dedicated.str_slot("gamma").is_none() && strs_b.dedicated.str_slot("gamma").is_some());
    let merged = assert_merges_agree(dir.path(), &[&plain_b, &strs_b], &options(64));
    assert_eq!(merged.read_all().unwrap(), expected(&[plain, strs.clone()].concat()));
    assert!(merged.dedicated.str_slot("gamma").is_some());

    let refs = [&bools_b, &strs_b];
    let dedicated = Dedicated::merge(refs.iter().map(|b| &b.dedicated));
    assert!(crate::copy::slot_maps(&refs, &dedicated).unwrap().is_none(), "bools hold gamma generically");
    compact(dir.path(), "bs", &refs, &options(64)).unwrap();
    assert_eq!(open("bs").read_all().unwrap(), expected(&[bools, strs].concat()));
}

/// Inputs with different dedicated keys take the decoding merge, and it
/// still writes every span.
#[test]
fn merge_of_blocks_with_other_dedicated_keys_decodes() {
    use crate::dedicated::Dedicated;
    let dir = tempfile::tempdir().unwrap();
    let a = datagen::realistic(30, 1, 0);
    let b = datagen::every_field();
    write(dir.path(), "a", a.clone(), &options(100)).unwrap();
    write(dir.path(), "b", b.clone(), &options(100)).unwrap();
    let blocks = open_blocks(dir.path(), &["a", "b"]);
    let refs: Vec<&Block> = blocks.iter().collect();
    let dedicated = Dedicated::merge(refs.iter().map(|b| &b.dedicated));
    assert!(crate::copy::slot_maps(&refs, &dedicated).unwrap().is_none());
    compact(dir.path(), "ab", &refs, &options(100)).unwrap();
    let merged = Block::open(&dir.path().join("ab")).unwrap();
    assert_eq!(merged.read_all().unwrap(), expected(&[a, b].concat()));
}

// ---------------------------------------------------------------- meta

#[test]
fn meta_is_exact() {
    use datagen::kv;
    use sightline_model::{Resource, SpanId, SpanKind};
    let dir = tempfile::tempdir().unwrap();
    let res = |name: &str| Arc::new(Resource::new(vec![kv("service.name", name)], 0, String::new()));
    let (front, cart, redis) = (res("frontend"), res("cart"), res("redis"));
    let scope = Arc::new(sightline_model::Scope::default());
    let mk = |t: u8,
              s: u8,
              parent: Option<u8>,
              r: &Arc<Resource>,
              name: &str,
              kind: SpanKind,
              start: u64,
              end: u64| Span {
        parent_span_id: parent.map(|p| SpanId::from_bytes([p; 8]).unwrap()),
        name: name.into(),
        kind,
        ..datagen::plain_span(t, s, start, end, r, &scope)
    };
    let spans = vec![
        mk(1, 1, None, &front, "GET /", SpanKind::Server, 1_000, 9_000),
        mk(1, 2, Some(1), &cart, "GetCart", SpanKind::Server, 2_000, 3_000),
        mk(1, 3, Some(2), &redis, "HGET", SpanKind::Client, 2_100, 2_200),
        mk(1, 4, Some(1), &cart, "GetCart", SpanKind::Server, 4_000, 5_000),
        mk(1, 5, Some(4), &cart, "GetCart", SpanKind::Internal, 4_100, 4_200),
        mk(2, 1, None, &front, "GET /", SpanKind::Server, 500, 20_000),
        mk(2, 2, Some(9), &cart, "GetCart", SpanKind::Server, 600, 700), // parent not in block
        mk(2, 2, Some(1), &cart, "duplicate", SpanKind::Server, 600, 700),
    ];
    let meta = write(dir.path(), "m", spans, &options(3)).unwrap();
    let size = std::fs::metadata(dir.path().join("m/data.parquet")).unwrap().len();
    let s = |v: &str| v.to_owned();
    assert_eq!(
        meta,
        BlockMeta {
            id: s("m"),
            format: s("sl1"),
            span_count: 7,
            trace_count: 2,
            min_start_unix_nanos: 500,
            max_start_unix_nanos: 4_100,
            max_end_unix_nanos: 20_000,
            size_bytes: size,
            compaction_level: 0,
            operations: vec![
                (s("cart"), s("GetCart"), 1),
                (s("cart"), s("GetCart"), 2),
                (s("frontend"), s("GET /"), 2),
                (s("redis"), s("HGET"), 3),
            ],
            dependencies: vec![(s("cart"), s("redis"), 1), (s("frontend"), s("cart"), 2)],
        }
    );
    // meta.json holds the same.
    assert_eq!(Block::open(&dir.path().join("m")).unwrap().meta(), &meta);
}

// ---------------------------------------------------------------- damage

fn damaged_block(dir: &Path) -> std::path::PathBuf {
    write(dir, "x", datagen::every_field(), &options(4)).unwrap();
    dir.join("x")
}

/// Rewrites `block`'s meta.json as a writer would for its data file as it
/// is now (fresh data checksums, its size), after `edit`: forges a
/// consistent block around a deliberately changed file, to test the checks
/// behind the checksums.
fn reseal(block: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let data = std::fs::read(block.join("data.parquet")).unwrap();
    let meta_path = block.join("meta.json");
    let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove(crate::integrity::KEY);
    value["size_bytes"] = serde_json::Value::from(data.len() as u64);
    edit(&mut value);
    let chunk = crate::integrity::CHUNK_BYTES as usize;
    let sums = crate::integrity::Checksums {
        chunk_bytes: chunk as u64,
        crcs: data.chunks(chunk).map(crc32c::crc32c).collect(),
    };
    std::fs::write(&meta_path, crate::integrity::encode_meta(value, &sums).unwrap()).unwrap();
}

/// Removes the checksums, as in a block written before they existed.
fn strip_checksums(block: &Path) {
    let meta_path = block.join("meta.json");
    let mut value: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove(crate::integrity::KEY);
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
}

#[test]
fn truncated_data_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let block = damaged_block(dir.path());
    let data = block.join("data.parquet");
    let len = std::fs::metadata(&data).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    file.set_len(len / 2).unwrap();
    let err = Block::open(&block).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }) && err.is_corruption(), "{err:?}");
    // Even when meta.json agrees on the size (and the checksums on the
    // bytes), the footer is gone.
    reseal(&block, |_| {});
    let err = Block::open(&block).unwrap_err();
    assert!(matches!(err, Error::Parquet { .. }) && err.is_corruption(), "{err:?}");
    // Without checksums (an older block) the footer check alone holds.
    strip_checksums(&block);
    let err = Block::open(&block).unwrap_err();
    assert!(matches!(err, Error::Parquet { .. }) && err.is_corruption(), "{err:?}");
}

#[test]
fn garbage_meta_json_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let block = damaged_block(dir.path());
    std::fs::write(block.join("meta.json"), b"\x00\xffnot json").unwrap();
    let err = Block::open(&block).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }) && err.is_corruption(), "{err:?}");
    std::fs::write(block.join("meta.json"), br#"{"format": "sl1", "id": 5}"#).unwrap();
    assert!(matches!(Block::open(&block).unwrap_err(), Error::Corrupt { .. }));
    std::fs::remove_file(block.join("meta.json")).unwrap();
    let err = Block::open(&block).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{err:?}"
    );
    assert!(!err.is_corruption());
}

#[test]
fn unknown_format_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let block = damaged_block(dir.path());
    // In meta.json: an edit that does not re-sign the file is damage …
    let meta_path = block.join("meta.json");
    let original = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(&meta_path, original.replace("\"sl1\"", "\"sl9\"")).unwrap();
    let err = Block::open(&block).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("checksum")), "{err:?}");
    // … a consistent file of a newer format is reported as such …
    reseal(&block, |v| v["format"] = serde_json::Value::from("sl9"));
    let err = Block::open(&block).unwrap_err();
    assert!(matches!(&err, Error::UnknownFormat { found, .. } if found == "sl9"), "{err:?}");
    assert!(!err.is_corruption());
    // … and so is one in the Parquet footer (same length, so offsets hold).
    reseal(&block, |v| v["format"] = serde_json::Value::from("sl1"));
    let data = block.join("data.parquet");
    let mut bytes = std::fs::read(&data).unwrap();
    let key = b"sightline.format";
    let at = bytes.windows(key.len()).rposition(|w| w == key).unwrap();
    let value = bytes[at..].windows(3).position(|w| w == b"sl1").unwrap() + at;
    bytes[value + 2] = b'7';
    std::fs::write(&data, bytes).unwrap();
    let err = Block::open(&block).unwrap_err();
    assert!(matches!(&err, Error::Checksum { .. }), "unsigned, it is damage: {err:?}");
    reseal(&block, |_| {});
    let err = Block::open(&block).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownFormat { found, path } if found == "sl7" && path.ends_with("data.parquet")),
        "{err:?}"
    );
}

/// Asserts `result` is `expected` or a checksum error naming `data` and a
/// range holding byte `at`: damaged bytes are never served.
fn intact_or_caught<T: PartialEq + std::fmt::Debug>(
    result: Result<T, Error>,
    expected: &T,
    data: &Path,
    at: u64,
    what: &str,
) -> bool {
    match result {
        Ok(got) => {
            assert_eq!(&got, expected, "{what}: altered data served after a flip at {at}");
            false
        }
        Err(Error::Checksum { path, start, end }) => {
            assert_eq!(path, data, "{what}");
            assert!((start..end).contains(&at), "{what}: flip at {at} reported at {start}..{end}");
            true
        }
        Err(e) => panic!("{what}: flip at {at} gave {e:?}, not a checksum error"),
    }
}

#[test]
fn flipped_data_bytes_are_never_served() {
    // D3: a flipped byte in a block used to be served as altered attribute
    // values in most positions.
    let dir = tempfile::tempdir().unwrap();
    // Small row groups: several of each, so reads touch some chunks only.
    write(dir.path(), "x", datagen::every_field(), &options(4)).unwrap();
    let block_dir = dir.path().join("x");
    let data = block_dir.join("data.parquet");
    let original = std::fs::read(&data).unwrap();
    let intact = Block::open(&block_dir).unwrap();
    let t1 = TraceId::from_bytes([0x11; 16]).unwrap();
    let q = TraceQuery { limit: 5, tags: vec![tag("str", "x")], ..Default::default() };
    let (all, one, found) =
        (intact.read_all().unwrap(), intact.trace(t1).unwrap(), intact.search(&q).unwrap());
    assert!(!one.is_empty());
    let mut caught = 0;
    let positions: Vec<usize> =
        (0..original.len()).step_by(31).chain(original.len() - 300..original.len()).collect();
    for &at in &positions {
        let mut bytes = original.clone();
        bytes[at] ^= 0x5a;
        std::fs::write(&data, &bytes).unwrap();
        let at = at as u64;
        // Every flip is found by a full check, with its place.
        let block = match Block::open(&block_dir) {
            Ok(block) => block,
            Err(e) => {
                // Open reads the footer and page index: caught there.
                intact_or_caught(Err::<(), _>(e), &(), &data, at, "open");
                caught += 1;
                continue;
            }
        };
        let damage = block.verify().unwrap();
        assert_eq!(damage.len(), 1, "flip at {at}");
        assert!((damage[0].start..damage[0].end).contains(&at), "flip at {at}: {damage:?}");
        let block = Block::open(&block_dir).unwrap();
        let mut hit = intact_or_caught(block.read_all(), &all, &data, at, "read_all");
        hit |= intact_or_caught(block.trace(t1), &one, &data, at, "trace");
        hit |= intact_or_caught(block.search(&q), &found, &data, at, "search");
        if hit {
            assert_eq!(block.damage().map(|m| (m.start..m.end).contains(&at)), Some(true));
        }
        caught += usize::from(hit);
    }
    // Most flips hit bytes these reads need (the rest: bloom filters and
    // statistics of other columns, which `verify` still reports).
    assert!(caught > positions.len() / 2, "{caught} of {}", positions.len());
}

#[test]
fn flipped_meta_json_bytes_are_caught() {
    let dir = tempfile::tempdir().unwrap();
    let block_dir = damaged_block(dir.path());
    let meta_path = block_dir.join("meta.json");
    let original = std::fs::read(&meta_path).unwrap();
    for at in 0..original.len() {
        for mask in [0x01u8, 0x20, 0x80] {
            let mut bytes = original.clone();
            bytes[at] ^= mask;
            std::fs::write(&meta_path, &bytes).unwrap();
            let err = Block::open(&block_dir).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "flip {mask:#x} at {at}: {err:?}");
        }
    }
    std::fs::write(&meta_path, &original).unwrap();
    Block::open(&block_dir).unwrap();
}

#[test]
fn blocks_without_checksums_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let block_dir = damaged_block(dir.path());
    let block = Block::open(&block_dir).unwrap();
    let all = block.read_all().unwrap();
    assert!(block.is_checksummed());
    strip_checksums(&block_dir);
    let legacy = Block::open(&block_dir).unwrap();
    assert!(!legacy.is_checksummed());
    assert_eq!(legacy.read_all().unwrap(), all);
    assert_eq!(legacy.verify().unwrap(), vec![]);
    // A flipped key name cannot make the checksums (or any field) vanish
    // unnoticed.
    let meta_path = block_dir.join("meta.json");
    let text = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(&meta_path, text.replace("\"trace_count\"", "\"trace_cOunt\"")).unwrap();
    let err = Block::open(&block_dir).unwrap_err();
    assert!(matches!(&err, Error::Corrupt { detail, .. } if detail.contains("trace_cOunt")), "{err:?}");
}

#[test]
fn salvage_keeps_every_intact_trace_and_names_the_lost_ones() {
    let dir = tempfile::tempdir().unwrap();
    let spans = datagen::realistic(150, 3, 1_700_000_000_000_000_000);
    let stored = expected(&spans);
    let all_ids: std::collections::BTreeSet<TraceId> = stored.iter().map(|s| s.trace_id).collect();
    write(dir.path(), "src", spans, &options(500)).unwrap();
    let block_dir = dir.path().join("src");
    let data = block_dir.join("data.parquet");
    let original = std::fs::read(&data).unwrap();
    assert!(Block::open(&block_dir).unwrap().footer().unwrap().reader_meta.metadata().num_row_groups() >= 3);

    // Intact: everything is copied.
    let out = tempfile::tempdir().unwrap();
    let saved = crate::salvage(&Block::open(&block_dir).unwrap(), out.path(), "all", &options(500)).unwrap();
    assert_eq!((saved.lost.len(), saved.unreadable.len()), (0, 0));
    assert_eq!(Block::open(&out.path().join("all")).unwrap().read_all().unwrap(), stored);

    let bloom_at = {
        let block = Block::open(&block_dir).unwrap();
        let footer = block.footer().unwrap();
        let chunk = footer.reader_meta.metadata().row_group(1).column(block.leaves.trace_id);
        chunk.bloom_filter_offset().unwrap() as usize + 40
    };
    for at in [100, original.len() / 3, original.len() / 2, original.len() * 2 / 3, bloom_at] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x10;
        std::fs::write(&data, &bytes).unwrap();
        let damaged = Block::open(&block_dir).unwrap();
        let out = tempfile::tempdir().unwrap();
        let saved = crate::salvage(&damaged, out.path(), "s", &options(500)).unwrap();
        let kept = match &saved.block {
            Some(_) => Block::open(&out.path().join("s")).unwrap().read_all().unwrap(),
            None => Vec::new(),
        };
        let kept_ids: std::collections::BTreeSet<TraceId> = kept.iter().map(|s| s.trace_id).collect();
        // Every saved trace is exactly the original.
        for id in &kept_ids {
            let got: Vec<&Span> = kept.iter().filter(|s| s.trace_id == *id).collect();
            let want: Vec<&Span> = stored.iter().filter(|s| s.trace_id == *id).collect();
            assert_eq!(got, want, "flip at {at}");
        }
        // Every lost trace really cannot be read, and nothing is both.
        for id in &saved.lost {
            assert!(damaged.trace(*id).is_err(), "flip at {at}: {id} reported lost but reads");
            assert!(!kept_ids.contains(id));
        }
        // Every trace is saved, lost, or in a row group reported unreadable.
        for id in &all_ids {
            let covered = kept_ids.contains(id)
                || saved.lost.contains(id)
                || saved
                    .unreadable
                    .iter()
                    .any(|u| u.trace_ids.is_some_and(|(lo, hi)| lo <= *id && *id <= hi));
            assert!(covered, "flip at {at}: trace {id} unaccounted for");
        }
        assert!(kept_ids.len() + saved.lost.len() > 0);
        assert_eq!(damaged.verify().unwrap().len(), 1, "flip at {at}");
        // Exactly the traces that still read are kept.
        for id in &all_ids {
            assert_eq!(damaged.trace(*id).is_ok(), kept_ids.contains(id), "flip at {at}: trace {id}");
        }
        println!("flip at {at}: kept {} of {} traces", kept_ids.len(), all_ids.len());
    }
}

#[test]
fn write_rejects_bad_ids_and_existing_blocks_and_replaces_leftovers() {
    let dir = tempfile::tempdir().unwrap();
    for id in ["", ".", "..", "a/b", "x.tmp"] {
        assert!(
            matches!(write(dir.path(), id, Vec::<Span>::new(), &options(4)), Err(Error::InvalidId { .. })),
            "{id:?}"
        );
    }
    // A crash leftover is replaced.
    std::fs::create_dir_all(dir.path().join("b.tmp")).unwrap();
    std::fs::write(dir.path().join("b.tmp/junk"), b"junk").unwrap();
    write(dir.path(), "b", datagen::every_field(), &options(4)).unwrap();
    assert!(!dir.path().join("b.tmp").exists());
    assert_eq!(std::fs::read_dir(dir.path().join("b")).unwrap().count(), 2);
    let err = write(dir.path(), "b", Vec::<Span>::new(), &options(4)).unwrap_err();
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- fixture

/// The checked-in block; its content is `datagen::every_field()`.
const FIXTURE: &str = "test-data/sl1/every-field";

fn fixture_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)
}

/// Regenerates the checked-in fixture. Only do this when the format
/// version changes (then add a new directory next to the old one and keep
/// a reader for it): `cargo test -p sightline-block -- --ignored
/// regenerate_fixture`.
#[test]
#[ignore]
fn regenerate_fixture() {
    let target = fixture_dir();
    let parent = target.parent().unwrap();
    std::fs::create_dir_all(parent).unwrap();
    if target.exists() {
        std::fs::remove_dir_all(&target).unwrap();
    }
    // One row group keeps the file small; row groups are covered elsewhere.
    write(parent, "every-field", datagen::every_field(), &options(16)).unwrap();
}

/// The same block as written since blocks carry checksums: pins the
/// checksum layout and the canonical JSON `meta.json` is checked against.
const FIXTURE_CHECKSUMMED: &str = "test-data/sl1/every-field-checksummed";

/// Regenerates the checksummed fixture (see [`regenerate_fixture`]).
#[test]
#[ignore]
fn regenerate_checksummed_fixture() {
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_CHECKSUMMED);
    let parent = target.parent().unwrap();
    if target.exists() {
        std::fs::remove_dir_all(&target).unwrap();
    }
    write(parent, "every-field-checksummed", datagen::every_field(), &options(16)).unwrap();
}

#[test]
fn checked_in_checksummed_fixture_verifies() {
    let block = Block::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE_CHECKSUMMED)).unwrap();
    assert!(block.is_checksummed());
    assert_eq!(block.verify().unwrap(), vec![]);
    assert_eq!(block.read_all().unwrap(), expected(&datagen::every_field()));
}

#[test]
fn checked_in_fixture_still_reads() {
    let block = Block::open(&fixture_dir()).unwrap();
    let spans = datagen::every_field();
    assert_eq!(block.meta().format, "sl1");
    assert_eq!(block.meta().span_count, 13);
    assert_eq!(block.meta().trace_count, 3);
    assert_eq!(block.footer().unwrap().reader_meta.metadata().num_row_groups(), 1);
    assert_eq!(block.read_all().unwrap(), expected(&spans));
    let t1 = TraceId::from_bytes([0x11; 16]).unwrap();
    assert_eq!(block.trace(t1).unwrap(), trace_of(&expected(&spans), t1));
    let q = TraceQuery { limit: 10, tags: vec![tag("int.min", &i64::MIN.to_string())], ..Default::default() };
    assert_eq!(block.search(&q).unwrap(), vec![(t1, 1_700_000_000_000_000_100)]);
    // An old block merges by copying its rows, as a new one does.
    let dir = tempfile::tempdir().unwrap();
    let merged = assert_merges_agree(dir.path(), &[&block], &options(4));
    assert_eq!(merged.read_all().unwrap(), expected(&spans));
}

/// A data file whose reads fail while `down` is set, as an object store
/// does during an outage.
#[derive(Debug)]
struct FlakySource {
    bytes: bytes::Bytes,
    down: std::sync::atomic::AtomicBool,
    /// Reads overlapping this byte range fail too (a part of the store
    /// that does not answer).
    down_range: std::sync::Mutex<Option<std::ops::Range<u64>>>,
}

impl FlakySource {
    fn new(bytes: Vec<u8>, down: bool) -> Self {
        FlakySource { bytes: bytes.into(), down: down.into(), down_range: std::sync::Mutex::new(None) }
    }
}

impl crate::BlockSource for FlakySource {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> std::io::Result<bytes::Bytes> {
        let in_range = self
            .down_range
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|r| offset < r.end && offset + len as u64 > r.start);
        if in_range || self.down.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "object store timed out"));
        }
        let start = offset as usize;
        Ok(self.bytes.slice(start..start + len))
    }
}

/// A read that fails (an unreachable store) is an IO error, not damage:
/// Parquet hands the source's error back as text inside its own, which was
/// reported as `Error::Parquet`, so the store set a healthy block aside for
/// good. Once the source answers again the same block reads back.
#[test]
fn a_failed_read_through_a_source_is_io_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 300, 800);
    let data = std::fs::read(dir.path().join("r").join("data.parquet")).unwrap();
    let meta_json = std::fs::read(dir.path().join("r").join("meta.json")).unwrap();
    let source = Arc::new(FlakySource::new(data, true));
    let err = Block::open_source(Path::new("remote/r"), &meta_json, Arc::clone(&source) as _).unwrap_err();
    assert!(matches!(err, Error::Io { .. }) && !err.is_corruption(), "{err}");

    source.down.store(false, std::sync::atomic::Ordering::Relaxed);
    let remote = Block::open_source(Path::new("remote/r"), &meta_json, Arc::clone(&source) as _).unwrap();
    source.down.store(true, std::sync::atomic::Ordering::Relaxed);
    let id = stored[stored.len() / 2].trace_id;
    let err = remote.trace(id).unwrap_err();
    assert!(matches!(err, Error::Io { .. }) && !err.is_corruption(), "{err}");
    let q = TraceQuery { service: Some(stored[0].resource.service_name().to_owned()), ..query(20) };
    let err = remote.search(&q).unwrap_err();
    assert!(!err.is_corruption(), "{err}");
    assert!(remote.damage().is_none());

    source.down.store(false, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(remote.trace(id).unwrap(), block.trace(id).unwrap());
}

/// A search splits its row groups between two threads. A read that fails
/// on the second one is an IO error as well: the failure is noted on the
/// thread that read, so that thread must contain its own reads, or the
/// search reports Parquet's text of it as damage.
#[test]
fn a_failed_read_on_the_second_search_thread_is_io_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let (block, stored) = realistic_block(dir.path(), 300, 800);
    let md = Arc::clone(block.footer().unwrap().reader_meta.metadata());
    let groups = md.num_row_groups();
    assert!(groups >= 4, "{groups} row groups");
    // The last row group's column chunks: scanned by the second thread.
    let last = md.row_group(groups - 1);
    let chunks = last.columns().iter().map(|c| c.byte_range());
    let start = chunks.clone().map(|(at, _)| at).min().unwrap();
    let end = chunks.map(|(at, len)| at + len).max().unwrap();

    let data = std::fs::read(dir.path().join("r").join("data.parquet")).unwrap();
    let meta_json = std::fs::read(dir.path().join("r").join("meta.json")).unwrap();
    let source = Arc::new(FlakySource::new(data, false));
    let remote = Block::open_source(Path::new("remote/r"), &meta_json, Arc::clone(&source) as _).unwrap();
    let q = TraceQuery { service: Some(stored[0].resource.service_name().to_owned()), ..query(20) };
    let expected = block.search(&q).unwrap();
    assert_eq!(remote.search(&q).unwrap(), expected);

    *source.down_range.lock().unwrap() = Some(start..end);
    let err = remote.search(&q).unwrap_err();
    assert!(matches!(err, Error::Io { .. }) && !err.is_corruption(), "{err}");
    assert!(remote.damage().is_none());

    *source.down_range.lock().unwrap() = None;
    assert_eq!(remote.search(&q).unwrap(), expected);
}
