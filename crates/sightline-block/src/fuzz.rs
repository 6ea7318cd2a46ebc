//! Property-based fuzzing of the block reader on damaged files: a bounded
//! number of cases in `cargo test`, many more from `bench/fuzz.sh`
//! (`PROPTEST_CASES`).
//!
//! Each case damages a copy of one block — flipped bytes, overwritten
//! runs, a cut or extended end, in `data.parquet` or `meta.json` — then
//! opens it and reads it every way (all spans, one trace, a search).
//! Whatever the damage: no panic, and each read returns exactly what the
//! intact block returns or a corruption error (a checksum error when the
//! data file was changed): damaged bytes are never served. A block without
//! checksums (written before them) is only held to "no panic, typed error".

use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use sightline_model::{Span, TagFilter, TraceId, TraceQuery};

use crate::tests::datagen;
use crate::{Block, Error, WriteOptions, write};

/// Cases per property: `PROPTEST_CASES` (the fuzz command's), else `n`.
fn config(n: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(n);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// What the intact block answers.
struct Intact {
    data: Vec<u8>,
    meta: Vec<u8>,
    all: Vec<Span>,
    one: Vec<Span>,
    found: Vec<(TraceId, u64)>,
}

fn probe_id() -> TraceId {
    TraceId::from_bytes([0x11; 16]).unwrap()
}

fn probe_query() -> TraceQuery {
    TraceQuery {
        limit: 5,
        tags: vec![TagFilter { key: "str".into(), value: "x".into() }],
        ..TraceQuery::default()
    }
}

fn intact() -> &'static Intact {
    static INTACT: OnceLock<Intact> = OnceLock::new();
    INTACT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let options = WriteOptions { row_group_spans: 4, ..WriteOptions::default() };
        write(dir.path(), "b", datagen::every_field(), &options).unwrap();
        let block = Block::open(&dir.path().join("b")).unwrap();
        Intact {
            data: std::fs::read(dir.path().join("b/data.parquet")).unwrap(),
            meta: std::fs::read(dir.path().join("b/meta.json")).unwrap(),
            all: block.read_all().unwrap(),
            one: block.trace(probe_id()).unwrap(),
            found: block.search(&probe_query()).unwrap(),
        }
    })
}

#[derive(Debug, Clone)]
enum Harm {
    Flip(f64, u8),
    Overwrite(f64, Vec<u8>),
    Truncate(f64),
    Append(Vec<u8>),
}

fn harm() -> impl Strategy<Value = Harm> {
    let at = 0.0f64..1.0;
    prop_oneof![
        6 => (at.clone(), 1u8..=255).prop_map(|(a, m)| Harm::Flip(a, m)),
        2 => (at.clone(), proptest::collection::vec(any::<u8>(), 1..32)).prop_map(|(a, b)| Harm::Overwrite(a, b)),
        1 => at.prop_map(Harm::Truncate),
        1 => proptest::collection::vec(any::<u8>(), 1..32).prop_map(Harm::Append),
    ]
}

fn apply(bytes: &mut Vec<u8>, harms: &[Harm]) {
    for h in harms {
        let len = bytes.len();
        let pos = |f: f64| ((f * len as f64) as usize).min(len.saturating_sub(1));
        match h {
            Harm::Flip(at, mask) if len > 0 => bytes[pos(*at)] ^= mask,
            Harm::Overwrite(at, run) if len > 0 => {
                let i = pos(*at);
                for (j, b) in run.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(i + j) {
                        *slot = *b;
                    }
                }
            }
            Harm::Truncate(at) => bytes.truncate(pos(*at)),
            Harm::Append(run) => bytes.extend_from_slice(run),
            _ => {}
        }
    }
}

/// Writes the (damaged) block, opens and reads it, and checks what each
/// read returns. `strict`: the block has checksums, so nothing altered
/// may come back.
fn check(
    dir: &Path,
    data: &[u8],
    meta: &[u8],
    strict: bool,
    data_changed: bool,
) -> Result<(), TestCaseError> {
    let block_dir = dir.join("b");
    std::fs::create_dir_all(&block_dir).unwrap();
    std::fs::write(block_dir.join("data.parquet"), data).unwrap();
    std::fs::write(block_dir.join("meta.json"), meta).unwrap();
    let want = intact();
    let block = match Block::open(&block_dir) {
        Ok(block) => block,
        Err(e) => {
            prop_assert!(e.is_corruption(), "open: not a corruption error: {e:?}");
            return Ok(());
        }
    };
    let judge = |what: &str, ok: bool, err: Option<&Error>| -> Result<(), TestCaseError> {
        match err {
            None => prop_assert!(!strict || ok, "{what}: altered data served"),
            Some(e) => {
                prop_assert!(e.is_corruption(), "{what}: not a corruption error: {e:?}");
                if strict && data_changed {
                    prop_assert!(
                        matches!(e, Error::Checksum { .. } | Error::Corrupt { .. }),
                        "{what}: {e:?}"
                    );
                }
            }
        }
        Ok(())
    };
    let all = block.read_all();
    judge("read_all", all.as_ref().is_ok_and(|a| a == &want.all), all.as_ref().err())?;
    let one = block.trace(probe_id());
    judge("trace", one.as_ref().is_ok_and(|o| o == &want.one), one.as_ref().err())?;
    let found = block.search(&probe_query());
    judge("search", found.as_ref().is_ok_and(|f| f == &want.found), found.as_ref().err())?;
    // Compaction copies rows without decoding them into spans: what it
    // writes from a damaged input must still read back intact, or fail.
    let out = dir.join("merged");
    std::fs::create_dir_all(&out).unwrap();
    let merged = crate::compact(&out, "m", &[&block], &WriteOptions::default())
        .and_then(|_| Block::open(&out.join("m"))?.read_all());
    judge("compact", merged.as_ref().is_ok_and(|m| m == &want.all), merged.as_ref().err())?;
    if strict && data_changed && data.len() == want.data.len() {
        // Same length, different bytes: the full check finds it.
        let damage = block.verify();
        prop_assert!(damage.is_err() || damage.is_ok_and(|d| !d.is_empty()), "verify missed the damage");
    }
    Ok(())
}

fn strip_checksums(meta: &[u8]) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(meta).unwrap();
    if let Some(obj) = value.as_object_mut() {
        obj.remove(crate::integrity::KEY);
    }
    serde_json::to_vec_pretty(&value).unwrap()
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn damaged_data_files_are_never_served(harms in proptest::collection::vec(harm(), 1..4)) {
        let want = intact();
        let mut data = want.data.clone();
        apply(&mut data, &harms);
        let dir = tempfile::tempdir().unwrap();
        check(dir.path(), &data, &want.meta, true, data != want.data)?;
    }

    #[test]
    fn damaged_meta_json_is_refused_or_harmless(harms in proptest::collection::vec(harm(), 1..4)) {
        let want = intact();
        let mut meta = want.meta.clone();
        apply(&mut meta, &harms);
        let dir = tempfile::tempdir().unwrap();
        check(dir.path(), &want.data, &meta, true, false)?;
    }

    #[test]
    fn blocks_without_checksums_fail_typed_without_panic(harms in proptest::collection::vec(harm(), 1..4)) {
        let want = intact();
        let mut data = want.data.clone();
        apply(&mut data, &harms);
        let dir = tempfile::tempdir().unwrap();
        // Without checksums the size check still applies: keep it true.
        let mut meta: serde_json::Value = serde_json::from_slice(&strip_checksums(&want.meta)).unwrap();
        meta["size_bytes"] = serde_json::Value::from(data.len() as u64);
        check(dir.path(), &data, &serde_json::to_vec(&meta).unwrap(), false, true)?;
    }
}
