//! Where an open block's memory goes: opens every block under a folder
//! (a store's `blocks/`), looks one trace id up in each (so the bloom
//! filters are read, as a server's first lookup does) and prints the
//! parts of [`sightline_block::Block::memory`], per block and per span.
//!
//!     cargo run --release -p sightline-block --example block_memory -- DATA/blocks

use sightline_block::{Block, BlockMemory};
use sightline_model::TraceId;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).ok_or("usage: block_memory BLOCKS_DIR")?;
    let mut sum = BlockMemory::default();
    let (mut blocks, mut spans, mut groups) = (0usize, 0u64, 0usize);
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if !path.join("meta.json").exists() {
            continue;
        }
        let block = Block::open(&path)?;
        block.trace(TraceId::from_bytes([7; 16])?)?;
        let m = block.memory()?;
        blocks += 1;
        spans += block.meta().span_count;
        groups += usize::try_from(block.meta().span_count.div_ceil(32_768))?;
        sum.footer += m.footer;
        sum.page_index += m.page_index;
        sum.blooms += m.blooms;
        sum.checksums += m.checksums;
        sum.tables += m.tables;
        sum.resident += m.resident;
    }
    let per = |b: usize| b as f64 / spans.max(1) as f64;
    println!("{blocks} blocks, ~{groups} row groups (32768 spans), {spans} spans");
    for (name, bytes) in [
        ("footer", sum.footer),
        ("page_index", sum.page_index),
        ("blooms", sum.blooms),
        ("checksums", sum.checksums),
        ("tables", sum.tables),
        ("resident", sum.resident),
        ("total", sum.total()),
    ] {
        println!(
            "{name:>10}: {:>10.2} MiB {:>8.3} B/span {:>9.0} B/block",
            bytes as f64 / 1048576.0,
            per(bytes),
            bytes as f64 / blocks.max(1) as f64
        );
    }
    Ok(())
}
