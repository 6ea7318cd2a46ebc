//! Property-based fuzzing of the manifest check: a bounded number of cases
//! in `cargo test`, many more from `bench/fuzz.sh` (`PROPTEST_CASES`).
//! Whatever is done to a stored manifest's bytes, decoding never panics
//! and never returns a manifest other than the one written: the manifest
//! decides which blocks a start deletes and which WAL segments it drops.

use proptest::prelude::*;

use crate::{ManifestState, decode_manifest, encode_manifest};

/// Cases per property: `PROPTEST_CASES` (the fuzz command's), else `n`.
fn config(n: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

fn manifest() -> impl Strategy<Value = ManifestState> {
    (proptest::collection::vec("[a-z0-9-]{1,40}", 0..20), any::<u64>(), any::<u64>()).prop_map(
        |(blocks, wal_replay_from, generation)| ManifestState {
            blocks,
            wal_replay_from,
            generation,
            ..ManifestState::default()
        },
    )
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn damaged_manifests_are_refused(
        state in manifest(),
        flips in proptest::collection::vec((0.0f64..1.0, 1u8..=255), 1..4),
        cut in proptest::option::of(0.0f64..1.0),
    ) {
        let clean = encode_manifest(&state).unwrap();
        prop_assert_eq!(decode_manifest(&clean).unwrap(), state.clone());
        let mut bytes = clean.clone();
        for (at, mask) in flips {
            let i = ((at * bytes.len() as f64) as usize).min(bytes.len() - 1);
            bytes[i] ^= mask;
        }
        if let Some(cut) = cut {
            bytes.truncate((cut * bytes.len() as f64) as usize);
        }
        // Only a change JSON ignores (whitespace for whitespace) may pass.
        if let Ok(got) = decode_manifest(&bytes) {
            prop_assert_eq!(got, state);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_manifest(&bytes);
    }
}
