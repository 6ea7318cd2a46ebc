//! Property-based fuzzing of WAL recovery on damaged segments: a bounded
//! number of cases in `cargo test`, many more from `bench/fuzz.sh`
//! (`PROPTEST_CASES`).
//!
//! Each case encodes random records, damages the segment (flipped bytes,
//! overwritten runs, inserted garbage, a cut end) and scans it in every
//! mode. Whatever the damage: no panic, every record returned is one that
//! was written (no wrong data) and in the order written, every byte is
//! accounted for (header, record, skipped or torn), and with
//! `skip-damaged` every record the damage did not touch comes back.

use proptest::prelude::*;

use crate::format::{HEADER_LEN, RECORD_HEADER_LEN, encode_record, header};
use crate::{RecoveryMode, scan_segment};

/// Cases per property: `PROPTEST_CASES` (the fuzz command's), else `n`.
fn config(n: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// One way to damage a segment.
#[derive(Debug, Clone)]
enum Harm {
    /// XOR a byte at this fraction of the length.
    Flip(f64, u8),
    /// Overwrite a run of bytes starting there.
    Overwrite(f64, Vec<u8>),
    /// Insert garbage there.
    Insert(f64, Vec<u8>),
    /// Cut the file there.
    Truncate(f64),
}

fn harm() -> impl Strategy<Value = Harm> {
    let at = 0.0f64..1.0;
    prop_oneof![
        4 => (at.clone(), 1u8..=255).prop_map(|(a, m)| Harm::Flip(a, m)),
        2 => (at.clone(), proptest::collection::vec(any::<u8>(), 1..64)).prop_map(|(a, b)| Harm::Overwrite(a, b)),
        2 => (at.clone(), proptest::collection::vec(any::<u8>(), 1..64)).prop_map(|(a, b)| Harm::Insert(a, b)),
        1 => at.prop_map(Harm::Truncate),
    ]
}

/// Records with OTLP-like bytes: zeros and small values make plausible
/// lengths inside payloads, as in real segments.
fn records() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let byte = prop_oneof![3 => Just(0u8), 2 => 0u8..4, 2 => Just(0x0a), 3 => any::<u8>()];
    proptest::collection::vec(proptest::collection::vec(byte, 1..300), 1..30)
}

/// Applies `harms`; returns the damaged bytes and, per original byte, the
/// new position (`None` when the byte was changed or cut).
fn apply(clean: &[u8], harms: &[Harm]) -> (Vec<u8>, Vec<bool>) {
    let mut data: Vec<(u8, Option<usize>)> = clean.iter().enumerate().map(|(i, b)| (*b, Some(i))).collect();
    let pos = |f: f64, len: usize| ((f * len as f64) as usize).min(len.saturating_sub(1));
    for h in harms {
        let len = data.len();
        if len == 0 {
            break;
        }
        match h {
            Harm::Flip(at, mask) => {
                let i = pos(*at, len);
                data[i] = (data[i].0 ^ mask, None);
            }
            Harm::Overwrite(at, bytes) => {
                let i = pos(*at, len);
                for (j, b) in bytes.iter().enumerate() {
                    if let Some(slot) = data.get_mut(i + j) {
                        *slot = (*b, None);
                    }
                }
            }
            Harm::Insert(at, bytes) => {
                let i = pos(*at, len);
                data.splice(i..i, bytes.iter().map(|b| (*b, None)));
            }
            Harm::Truncate(at) => data.truncate(pos(*at, len)),
        }
    }
    // An original byte is intact if it survives, unchanged, at some place.
    let mut intact = vec![false; clean.len()];
    for (b, origin) in &data {
        if let Some(o) = origin
            && clean[*o] == *b
        {
            intact[*o] = true;
        }
    }
    (data.into_iter().map(|(b, _)| b).collect(), intact)
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn damaged_segments_recover_only_written_records(records in records(), harms in proptest::collection::vec(harm(), 1..5)) {
        let mut clean = header().to_vec();
        let mut spans = Vec::new();
        for r in &records {
            let start = clean.len();
            encode_record(&mut clean, r);
            spans.push(start..clean.len());
        }
        let (damaged, intact) = apply(&clean, &harms);
        // The records no harm touched: every byte intact and in place
        // relative to each other (an insertion inside breaks that too).
        let untouched: Vec<usize> = spans
            .iter()
            .enumerate()
            .filter(|(_, s)| (*s).clone().all(|i| intact[i]))
            .filter(|(i, _)| damaged.windows(spans[*i].len()).any(|w| w == &clean[spans[*i].clone()]))
            .map(|(i, _)| i)
            .collect();
        for is_last in [false, true] {
            for mode in [RecoveryMode::SkipDamaged, RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime] {
                let Ok(got) = scan_segment(&damaged, is_last, mode) else { continue };
                // Only written records, in written order.
                let mut next = 0;
                for r in &got.records {
                    let found = records[next..].iter().position(|w| w.as_slice() == r.as_ref());
                    prop_assert!(found.is_some(), "{mode:?}: a record that was never written, or out of order");
                    next += found.unwrap_or(0) + 1;
                }
                // Every byte is a header, a record, skipped or torn.
                let used: usize = got.records.iter().map(|r| r.len() + RECORD_HEADER_LEN).sum();
                let skipped: u64 = got.skipped.iter().map(|s| s.bytes).sum();
                let torn = got.torn_tail.as_ref().map_or(0, |t| t.discarded_bytes);
                let header_ok = !(got.skipped.first().is_some_and(|s| s.offset == 0)
                    || got.torn_tail.as_ref().is_some_and(|t| t.offset == 0));
                let header = if header_ok { HEADER_LEN } else { 0 };
                prop_assert_eq!((header + used) as u64 + skipped + torn, damaged.len() as u64);
                if mode == RecoveryMode::SkipDamaged && header_ok {
                    // Every untouched record comes back.
                    for i in &untouched {
                        prop_assert!(
                            got.records.iter().any(|r| r.as_ref() == records[*i].as_slice()),
                            "untouched record {} of {} lost", i, records.len()
                        );
                    }
                }
            }
        }
        // Skipping reads every segment whose header is intact.
        if damaged.get(..HEADER_LEN) == Some(&header()[..]) {
            prop_assert!(scan_segment(&damaged, false, RecoveryMode::SkipDamaged).is_ok());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), with_header in any::<bool>()) {
        let mut data = if with_header { header().to_vec() } else { Vec::new() };
        data.extend(bytes);
        for is_last in [false, true] {
            for mode in [RecoveryMode::SkipDamaged, RecoveryMode::TolerateTornTail, RecoveryMode::PointInTime] {
                if let Err(e) = scan_segment(&data, is_last, mode) {
                    prop_assert!(e.is_corruption());
                }
            }
        }
    }
}
