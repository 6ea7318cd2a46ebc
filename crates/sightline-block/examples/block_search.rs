//! Where a search's time goes, block by block: opens every block under a
//! folder (a store's `blocks/`) and runs the query benchmark's search
//! (`service=checkout&operation=PlaceOrder&minDuration=200ms&limit=20`,
//! or the one given) as the store does — newest blocks first, skipping a
//! block that cannot change the top `limit` — timing each block's
//! `search` and then the reads of the traces found.
//!
//! With `REPEAT`, the last round's traces are then read `REPEAT` more
//! times from each block holding them, printing the minimum and median
//! time of one read and the process CPU time per read (all threads), and
//! whether the result equals the per-id reads (`Block::trace`).
//!
//!     cargo run --release -p sightline-block --example block_search -- DATA/blocks [SERVICE OP MIN_MS [ROUNDS [REPEAT]]]

use std::collections::HashMap;
use std::time::Instant;

use sightline_block::Block;
use sightline_model::{TraceId, TraceQuery};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).ok_or("usage: block_search BLOCKS_DIR [SERVICE OP MIN_MS [ROUNDS]]")?;
    let service = args.get(2).map_or("checkout", String::as_str);
    let operation = args.get(3).map_or("PlaceOrder", String::as_str);
    let min_ms: u64 = args.get(4).map_or(Ok(200), |s| s.parse())?;
    let rounds: usize = args.get(5).map_or(Ok(5), |s| s.parse())?;
    let repeat: usize = args.get(6).map_or(Ok(0), |s| s.parse())?;
    let mut blocks = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.join("meta.json").exists() {
            blocks.push(Block::open(&path)?);
        }
    }
    blocks.sort_by_key(|b| std::cmp::Reverse(b.meta().max_start_unix_nanos));
    let newest = blocks.first().map_or(0, |b| b.meta().max_start_unix_nanos);
    println!("{} blocks, newest first (times in s before the newest start):", blocks.len());
    for b in &blocks {
        let m = b.meta();
        println!(
            "  {:>9} spans  level {}  [{:>8.1}, {:>8.1}]",
            m.span_count,
            m.compaction_level,
            (newest - m.min_start_unix_nanos) as f64 / 1e9,
            (newest - m.max_start_unix_nanos) as f64 / 1e9
        );
    }
    let query = TraceQuery {
        service: Some(service.to_owned()),
        operation: Some(operation.to_owned()),
        min_duration_nanos: Some(min_ms * 1_000_000),
        limit: 20,
        ..TraceQuery::default()
    };
    let mut last_ids = Vec::new();
    for round in 0..rounds {
        let t0 = Instant::now();
        let mut hits: HashMap<TraceId, u64> = HashMap::new();
        let mut visited = Vec::new();
        for b in &blocks {
            if hits.len() >= query.limit {
                let mut starts: Vec<u64> = hits.values().copied().collect();
                starts.sort_unstable_by(|a, b| b.cmp(a));
                if b.meta().max_start_unix_nanos < starts[query.limit - 1] {
                    continue;
                }
            }
            let t = Instant::now();
            let found = b.search(&query)?;
            visited.push((b.meta().span_count, found.len(), t.elapsed()));
            for (id, start) in found {
                let e = hits.entry(id).or_insert(0);
                *e = (*e).max(start);
            }
        }
        let searched = t0.elapsed();
        let mut ranked: Vec<(TraceId, u64)> = hits.into_iter().collect();
        ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(query.limit);
        let ids: Vec<TraceId> = ranked.iter().map(|h| h.0).collect();
        let t = Instant::now();
        let mut spans = 0;
        let mut per_block = Vec::new();
        for b in &blocks {
            let tb = Instant::now();
            let found = b.traces(&ids)?.len();
            spans += found;
            if found > 0 {
                per_block.push((b.meta().span_count, found, tb.elapsed()));
            }
        }
        let fetched = t.elapsed();
        last_ids = ids;
        println!(
            "round {round}: search {:.1} ms over {:?}; traces {:.1} ms ({spans} spans, from {:?})",
            searched.as_secs_f64() * 1e3,
            visited
                .iter()
                .map(|(n, f, d)| format!("{n}:{f}:{:.1}ms", d.as_secs_f64() * 1e3))
                .collect::<Vec<_>>(),
            fetched.as_secs_f64() * 1e3,
            per_block
                .iter()
                .map(|(n, f, d)| format!("{n}:{f}:{:.1}ms", d.as_secs_f64() * 1e3))
                .collect::<Vec<_>>(),
        );
    }
    if repeat > 0 {
        for b in &blocks {
            if b.traces(&last_ids)?.is_empty() {
                continue;
            }
            let mut times = Vec::with_capacity(repeat);
            let cpu0 = cpu_seconds();
            for _ in 0..repeat {
                let t = Instant::now();
                std::hint::black_box(b.traces(&last_ids)?);
                times.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let cpu = (cpu_seconds() - cpu0) * 1e3 / repeat as f64;
            times.sort_by(f64::total_cmp);
            let mut per_id = Vec::new();
            for id in &last_ids {
                per_id.extend(b.trace(*id)?);
            }
            per_id.sort_by_key(|s| (s.trace_id, s.start_time_unix_nano));
            println!(
                "block of {} spans, {} ids, {repeat} reads: min {:.1} ms, median {:.1} ms, cpu {:.1} ms per read; same as per-id reads: {}",
                b.meta().span_count,
                last_ids.len(),
                times[0],
                times[repeat / 2],
                cpu,
                b.traces(&last_ids)? == per_id
            );
        }
    }
    Ok(())
}

/// User + system CPU time of this process so far (Linux), in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with ')'): utime is the
    // 12th, stime the 13th of those; both in clock ticks (100 per second).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
