//! Tests for the block format. Table of contents:
//! - round trip: every field, several row groups, shared resources
//! - trace(): row-group positions, split traces, absent ids, duplicates
//! - search(): each condition, AND-on-one-span, limit/order, brute force
//! - compact(): merge with overlaps and duplicates
//! - meta: exact operations/dependencies/counts
//! - damage: truncated/garbage/unknown-format files give typed errors
//! - fixture: the checked-in `test-data/sl1` block still reads
//! - size: bytes per realistic span (printed, not asserted)

mod datagen;

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
    out.sort_by(|a, b| (a.trace_id, a.start_time_unix_nano).cmp(&(b.trace_id, b.start_time_unix_nano)));
    out
}

fn write_open(dir: &Path, id: &str, spans: Vec<Span>, opts: &WriteOptions) -> Block {
    write(dir, id, spans, opts).unwrap();
    Block::open(&dir.join(id)).unwrap()
}

// ---------------------------------------------------------------- round trip

#[test]
fn round_trip_every_field_across_row_groups() {
    let dir = tempfile::tempdir().unwrap();
    let spans = datagen::every_field();
    let block = write_open(dir.path(), "b1", spans.clone(), &options(4));
    assert_eq!(block.reader_meta.metadata().num_row_groups(), 4); // 13 spans / 4
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
    assert_eq!(block.resources.len(), 2);
    assert_eq!(block.scopes.len(), 2);
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
    assert!(block.reader_meta.metadata().num_row_groups() > 3);
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
/// breakdown; the numbers guide the schema, so nothing is asserted on
/// them, but the block must round-trip.
#[test]
fn size_per_realistic_span() {
    use prost::Message as _;
    let dir = tempfile::tempdir().unwrap();
    let spans = datagen::realistic(6_000, 42, 1_700_000_000_000_000_000);
    let n = spans.len() as f64;
    let raw: usize = spans.iter().map(|s| sightline_model::otlp::encode_span(s).encoded_len()).sum();
    let opts = WriteOptions::default();
    let meta = write(dir.path(), "size", spans.clone(), &opts).unwrap();
    let block = Block::open(&dir.path().join("size")).unwrap();
    let md = block.reader_meta.metadata();
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
