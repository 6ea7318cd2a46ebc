//! What to merge and what to delete, decided from block metadata alone.
//!
//! Both planners are pure functions of the live blocks' [`BlockMeta`]s (and
//! the clock, passed in), so they are tested without files and a remote
//! block set can run them unchanged. Tempo's
//! `blockselector/compaction_block_selector.go` and `retention.go` are the
//! models; the differences are noted where they are.

use std::collections::HashSet;
use std::time::Duration;

use sightline_block::BlockMeta;

/// How blocks are merged. See the fields of `crate::Options` of the same
/// names for the reasoning behind the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// A merge takes at least this many blocks (and always at least 2).
    pub min_inputs: usize,
    /// A merge takes at most this many blocks.
    pub max_inputs: usize,
    /// A merge never produces a block with more spans than this.
    pub max_spans: u64,
    /// A block that came out of a merge (level ≥ 1) is merged again only
    /// while it has at most this many spans. Every merge re-encodes its
    /// inputs; with this bound a span is encoded at most twice (the flush
    /// and one merge) unless it sits in a small block, where rewriting is
    /// cheap and fewer blocks matter more (heads cut by age at low load).
    /// Without it, the maintenance round's partial merges (4+ fresh blocks)
    /// made mid-size blocks that were merged again.
    pub remerge_max_spans: u64,
    /// The newest fresh blocks, up to this many spans (and at most 3
    /// blocks, `HOLD_MAX_BLOCKS`), are left out of merges while the fresh blocks
    /// together hold more: the newest data then always sits in small
    /// blocks. A search for "the latest N traces" visits blocks newest
    /// first and decodes them whole (rows are in trace-id order, so no
    /// row group of a block can be skipped by time); in a merged block of
    /// up to `max_spans` spans it decoded up to 8× the rows, and the N
    /// traces it found spread over most of its row groups. A held block
    /// is merged once newer blocks replace it in the hold, so a span is
    /// still encoded at most twice. 0 holds nothing.
    pub hold_spans: u64,
}

/// At most this many fresh blocks are held out of merges (see
/// [`CompactionPolicy::hold_spans`]): a search visits every held block,
/// and many tiny blocks (heads cut by age at low load) cost it more per
/// span than one merged block.
pub(crate) const HOLD_MAX_BLOCKS: usize = 3;

/// Which merges count: any that is due, or only full-width ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Width {
    /// Any merge of at least `min_inputs` blocks (the maintenance round,
    /// and stalled flushes that need any progress).
    Any,
    /// Only a merge of `max_inputs` blocks or of over half of `max_spans`
    /// spans: merging fewer rewrites spans more often (what the compactor
    /// starts right after a flush).
    Full,
}

impl CompactionPolicy {
    /// The merge to run next: ids of its inputs, or `None` when no merge
    /// is due.
    ///
    /// Blocks are merged level by level, lowest first (fresh blocks are
    /// what stalls flushes), and within a level by age (`min_start`), so a
    /// merged block covers a contiguous stretch of time and searches keep
    /// pruning by time range. A block that does not fit the span budget
    /// beside the ones taken is passed over, not a reason to stop. Tempo
    /// also groups by time window; Sightline's blocks come from one node's
    /// heads in time order, so sorting by start gives the same locality.
    pub fn plan(&self, blocks: &[BlockMeta], width: Width) -> Option<Vec<String>> {
        let max_inputs = self.max_inputs.max(2);
        let min_inputs = self.min_inputs.max(2);
        let held = self.held(blocks);
        let mut levels: Vec<u32> = blocks.iter().map(|b| b.compaction_level).collect();
        levels.sort_unstable();
        levels.dedup();
        for level in levels {
            let mut candidates: Vec<&BlockMeta> = blocks
                .iter()
                .filter(|b| {
                    b.compaction_level == level
                        && (level == 0 || b.span_count <= self.remerge_max_spans)
                        && !held.contains(b.id.as_str())
                })
                .collect();
            candidates
                .sort_by(|a, b| a.min_start_unix_nanos.cmp(&b.min_start_unix_nanos).then(a.id.cmp(&b.id)));
            let mut inputs: Vec<&BlockMeta> = Vec::new();
            let mut spans = 0u64;
            for b in candidates {
                if spans + b.span_count > self.max_spans {
                    continue;
                }
                spans += b.span_count;
                inputs.push(b);
                if inputs.len() >= max_inputs {
                    break;
                }
            }
            let full = inputs.len() >= max_inputs || spans.saturating_mul(2) > self.max_spans;
            if inputs.len() < min_inputs || (width == Width::Full && !full) {
                continue;
            }
            return Some(inputs.into_iter().map(|b| b.id.clone()).collect());
        }
        None
    }

    /// Fresh blocks waiting to be merged: level-0 blocks small enough that
    /// two of them fit one merge. A block too big to merge is not debt, or
    /// a large head would stall flushes for good.
    /// Held blocks (see [`CompactionPolicy::hold_spans`]) are not debt:
    /// no merge takes them yet.
    pub fn debt(&self, blocks: &[BlockMeta]) -> usize {
        let held = self.held(blocks);
        blocks
            .iter()
            .filter(|b| {
                b.compaction_level == 0
                    && b.span_count.saturating_mul(2) <= self.max_spans
                    && !held.contains(b.id.as_str())
            })
            .count()
    }

    /// Ids of the fresh blocks held out of merges: the newest (by
    /// `min_start`, as merges order them) while they fit `hold_spans`
    /// and `HOLD_MAX_BLOCKS`. None while all fresh blocks together fit
    /// `hold_spans`: merging them makes a block no bigger than the hold
    /// (the low-load case, where many small blocks are what costs).
    fn held<'a>(&self, blocks: &'a [BlockMeta]) -> HashSet<&'a str> {
        let mut fresh: Vec<&BlockMeta> = blocks.iter().filter(|b| b.compaction_level == 0).collect();
        let total: u64 = fresh.iter().map(|b| b.span_count).sum();
        let mut held = HashSet::new();
        if self.hold_spans == 0 || total <= self.hold_spans {
            return held;
        }
        fresh.sort_by(|a, b| b.min_start_unix_nanos.cmp(&a.min_start_unix_nanos).then(b.id.cmp(&a.id)));
        let mut spans = 0u64;
        for b in fresh.into_iter().take(HOLD_MAX_BLOCKS) {
            spans = spans.saturating_add(b.span_count);
            if spans > self.hold_spans {
                break;
            }
            held.insert(b.id.as_str());
        }
        held
    }
}

/// How long and how much to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionPolicy {
    /// Delete blocks whose newest span ended longer ago than this.
    pub max_age: Option<Duration>,
    /// Delete the oldest blocks while all blocks take more bytes than this.
    pub max_bytes: Option<u64>,
}

impl RetentionPolicy {
    /// Ids of the blocks to delete at `now_unix_nanos`: every block past
    /// the age limit (by its latest span end, as Tempo's `retention.go`
    /// does), then the oldest of the rest (by latest span start) until the
    /// remainder fits the byte limit. Whole blocks only.
    pub fn plan(&self, blocks: &[BlockMeta], now_unix_nanos: u64) -> Vec<String> {
        let mut doomed: HashSet<&str> = HashSet::new();
        if let Some(age) = self.max_age {
            let cutoff = now_unix_nanos.saturating_sub(u64::try_from(age.as_nanos()).unwrap_or(u64::MAX));
            doomed.extend(blocks.iter().filter(|b| b.max_end_unix_nanos < cutoff).map(|b| b.id.as_str()));
        }
        if let Some(max) = self.max_bytes {
            let mut by_age: Vec<&BlockMeta> =
                blocks.iter().filter(|b| !doomed.contains(b.id.as_str())).collect();
            by_age.sort_by(|a, b| a.max_start_unix_nanos.cmp(&b.max_start_unix_nanos).then(a.id.cmp(&b.id)));
            let mut total: u64 = by_age.iter().map(|b| b.size_bytes).sum();
            for b in by_age {
                if total <= max {
                    break;
                }
                total -= b.size_bytes;
                doomed.insert(b.id.as_str());
            }
        }
        // Block order, so the result is deterministic.
        blocks.iter().filter(|b| doomed.contains(b.id.as_str())).map(|b| b.id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000_000_000;

    fn block(id: &str, level: u32, spans: u64, start_min: u64) -> BlockMeta {
        BlockMeta {
            id: id.to_owned(),
            format: sightline_block::FORMAT_VERSION.to_owned(),
            span_count: spans,
            trace_count: spans / 2,
            min_start_unix_nanos: start_min * MIN,
            max_start_unix_nanos: (start_min + 1) * MIN,
            max_end_unix_nanos: (start_min + 1) * MIN + 5,
            size_bytes: spans * 40,
            compaction_level: level,
            operations: Vec::new(),
            dependencies: Vec::new(),
        }
    }

    fn policy() -> CompactionPolicy {
        CompactionPolicy {
            min_inputs: 4,
            max_inputs: 16,
            max_spans: 1000,
            remerge_max_spans: 100,
            hold_spans: 0,
        }
    }

    fn ids(list: &[&str]) -> Option<Vec<String>> {
        Some(list.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn nothing_to_merge_below_the_minimum() {
        let blocks: Vec<BlockMeta> = (0..3).map(|i| block(&format!("b{i}"), 0, 10, i)).collect();
        assert_eq!(policy().plan(&blocks, Width::Any), None);
        assert_eq!(policy().plan(&[], Width::Any), None);
    }

    #[test]
    fn the_oldest_blocks_of_the_lowest_level_go_first() {
        let mut blocks = vec![
            block("l1-a", 1, 100, 0),
            block("l1-b", 1, 100, 1),
            block("l1-c", 1, 100, 2),
            block("l1-d", 1, 100, 3),
        ];
        // Level 0, listed out of time order.
        for (id, start) in [("new", 40), ("old", 10), ("mid", 20), ("mid2", 30), ("newest", 50)] {
            blocks.push(block(id, 0, 10, start));
        }
        let p = CompactionPolicy { max_inputs: 4, ..policy() };
        assert_eq!(p.plan(&blocks, Width::Any), ids(&["old", "mid", "mid2", "new"]));
    }

    #[test]
    fn a_level_without_enough_blocks_leaves_the_next_level_its_turn() {
        let mut blocks: Vec<BlockMeta> = (0..3).map(|i| block(&format!("l0-{i}"), 0, 10, i)).collect();
        blocks.extend((0..4).map(|i| block(&format!("l2-{i}"), 2, 10, i)));
        assert_eq!(policy().plan(&blocks, Width::Any), ids(&["l2-0", "l2-1", "l2-2", "l2-3"]));
    }

    #[test]
    fn blocks_that_do_not_fit_the_span_budget_are_passed_over() {
        let blocks = vec![
            block("a", 0, 400, 0),
            block("big", 0, 700, 1),
            block("b", 0, 300, 2),
            block("c", 0, 200, 3),
            block("d", 0, 100, 4),
        ];
        // a + b + c + d = 1000 fits; "big" does not fit beside a.
        assert_eq!(policy().plan(&blocks, Width::Any), ids(&["a", "b", "c", "d"]));
    }

    #[test]
    fn full_width_means_max_inputs_or_half_the_span_budget() {
        let small: Vec<BlockMeta> = (0..5).map(|i| block(&format!("s{i}"), 0, 10, i)).collect();
        assert_eq!(policy().plan(&small, Width::Full), None, "5 small blocks are not a full merge");
        assert_eq!(policy().plan(&small, Width::Any).map(|v| v.len()), Some(5));

        let sixteen: Vec<BlockMeta> = (0..17).map(|i| block(&format!("s{i:02}"), 0, 10, i)).collect();
        let plan = policy().plan(&sixteen, Width::Full).expect("16 inputs are a full merge");
        assert_eq!(plan.len(), 16);
        assert_eq!(plan.first().map(String::as_str), Some("s00"));

        let heavy: Vec<BlockMeta> = (0..4).map(|i| block(&format!("h{i}"), 0, 130, i)).collect();
        assert_eq!(policy().plan(&heavy, Width::Full).map(|v| v.len()), Some(4), "520 of 1000 spans");
    }

    #[test]
    fn merged_blocks_are_merged_again_only_while_small() {
        let mut blocks: Vec<BlockMeta> = (0..4).map(|i| block(&format!("mid{i}"), 1, 101, i)).collect();
        assert_eq!(policy().plan(&blocks, Width::Any), None, "a second rewrite of 404 spans");
        blocks.extend((0..4).map(|i| block(&format!("small{i}"), 1, 100, 10 + i)));
        assert_eq!(policy().plan(&blocks, Width::Any), ids(&["small0", "small1", "small2", "small3"]));
        // Fresh blocks merge whatever their size (their first rewrite).
        let fresh: Vec<BlockMeta> = (0..4).map(|i| block(&format!("f{i}"), 0, 200, i)).collect();
        assert_eq!(policy().plan(&fresh, Width::Any).map(|v| v.len()), Some(4));
    }

    #[test]
    fn the_newest_fresh_blocks_are_held_out_of_merges() {
        let p = CompactionPolicy { hold_spans: 100, ..policy() };
        // 320 fresh spans: the newest two (80 spans) are held; a third
        // would make 120.
        let blocks: Vec<BlockMeta> = (0..8).map(|i| block(&format!("f{i}"), 0, 40, 7 - i)).collect();
        assert_eq!(p.plan(&blocks, Width::Any), ids(&["f7", "f6", "f5", "f4", "f3", "f2"]));
        assert_eq!(p.debt(&blocks), 6, "held blocks are not debt");
        assert_eq!(policy().debt(&blocks), 8);
        // Fewer than `min_inputs` left beside the hold: nothing is due.
        assert_eq!(p.plan(&blocks[3..], Width::Any), None);
        // Full width counts only what the planner may take.
        let p16 = CompactionPolicy { hold_spans: 100, max_spans: 100_000, ..policy() };
        let seventeen: Vec<BlockMeta> = (0..17).map(|i| block(&format!("s{i:02}"), 0, 40, i)).collect();
        assert_eq!(p16.plan(&seventeen, Width::Full), None, "15 blocks beside the hold are not a full merge");
    }

    #[test]
    fn the_hold_is_bounded_in_blocks_and_spans() {
        let p = CompactionPolicy { hold_spans: 100, ..policy() };
        // Tiny blocks: at most three are held, whatever the span budget.
        let tiny: Vec<BlockMeta> = (0..12).map(|i| block(&format!("t{i:02}"), 0, 10, i)).collect();
        let plan = p.plan(&tiny, Width::Any).expect("a merge is due");
        assert_eq!(plan.len(), 9);
        assert!(!plan.iter().any(|id| ["t09", "t10", "t11"].contains(&id.as_str())));
        // A newest block bigger than the hold holds nothing back.
        let mut blocks: Vec<BlockMeta> = (0..4).map(|i| block(&format!("f{i}"), 0, 40, i)).collect();
        blocks.push(block("big", 0, 500, 9));
        assert_eq!(p.plan(&blocks, Width::Any).map(|v| v.len()), Some(5));
        // Merged blocks are never held.
        let merged: Vec<BlockMeta> = (0..4).map(|i| block(&format!("m{i}"), 1, 60, i)).collect();
        let p_merged = CompactionPolicy { hold_spans: 100, remerge_max_spans: 100, ..policy() };
        assert_eq!(p_merged.plan(&merged, Width::Any).map(|v| v.len()), Some(4));
    }

    #[test]
    fn fresh_blocks_that_fit_the_hold_together_merge_as_before() {
        // Heads cut by age at low load: many small blocks cost searches
        // more than one small merged block.
        let p = CompactionPolicy { hold_spans: 100, ..policy() };
        let blocks: Vec<BlockMeta> = (0..5).map(|i| block(&format!("f{i}"), 0, 20, i)).collect();
        assert_eq!(p.plan(&blocks, Width::Any), ids(&["f0", "f1", "f2", "f3", "f4"]));
        assert_eq!(p.debt(&blocks), 5);
    }

    #[test]
    fn debt_counts_fresh_blocks_that_can_still_be_merged() {
        let blocks = vec![
            block("a", 0, 10, 0),
            block("b", 0, 500, 1),
            block("too-big", 0, 501, 2),
            block("l1", 1, 10, 3),
        ];
        assert_eq!(policy().debt(&blocks), 2);
    }

    #[test]
    fn merge_plans_are_deterministic_for_equal_starts() {
        let blocks: Vec<BlockMeta> = ["d", "b", "a", "c"].iter().map(|id| block(id, 0, 10, 7)).collect();
        let mut reversed = blocks.clone();
        reversed.reverse();
        assert_eq!(policy().plan(&blocks, Width::Any), ids(&["a", "b", "c", "d"]));
        assert_eq!(policy().plan(&reversed, Width::Any), ids(&["a", "b", "c", "d"]));
    }

    #[test]
    fn retention_by_age_uses_the_latest_span_end() {
        let blocks = vec![block("old", 0, 10, 0), block("edge", 0, 10, 9), block("new", 0, 10, 20)];
        let p = RetentionPolicy { max_age: Some(Duration::from_secs(600)), max_bytes: None };
        // now = minute 20: the cutoff is minute 10; "edge" ends at 10 min + 5 ns.
        assert_eq!(p.plan(&blocks, 20 * MIN), vec!["old".to_owned()]);
        assert_eq!(RetentionPolicy::default().plan(&blocks, 20 * MIN), Vec::<String>::new());
    }

    #[test]
    fn retention_by_size_deletes_the_oldest_until_the_rest_fits() {
        // 400, 800, 400 bytes; oldest by latest start: a, b, c.
        let blocks = vec![block("b", 0, 20, 5), block("a", 0, 10, 1), block("c", 0, 10, 9)];
        let p = |max| RetentionPolicy { max_age: None, max_bytes: Some(max) };
        assert_eq!(p(1600).plan(&blocks, 0), Vec::<String>::new());
        assert_eq!(p(1200).plan(&blocks, 0), vec!["a".to_owned()]);
        assert_eq!(p(1199).plan(&blocks, 0), vec!["b".to_owned(), "a".to_owned()]);
        assert_eq!(p(0).plan(&blocks, 0).len(), 3);
    }

    #[test]
    fn size_retention_counts_only_blocks_age_retention_keeps() {
        let blocks = vec![block("ancient", 0, 100, 0), block("a", 0, 10, 100), block("b", 0, 10, 101)];
        let p = RetentionPolicy { max_age: Some(Duration::from_secs(3600)), max_bytes: Some(800) };
        // ancient (4000 B) goes by age; a + b = 800 B fit.
        assert_eq!(p.plan(&blocks, 102 * MIN), vec!["ancient".to_owned()]);
    }
}
