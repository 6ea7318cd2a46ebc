//! A persistent FIFO of export requests on top of `sightline-wal`.
//!
//! Producers append (durable per the WAL's fsync policy) and get `Ok`;
//! the sender reads records oldest first and acknowledges them. The active
//! segment is sealed every 4 MiB or 200 ms; the sender reads only sealed
//! segments, loading one at a time from disk, so memory holds at most one
//! segment plus what was recovered at start. A segment is deleted once
//! every record in it was acknowledged — after a crash, records of a
//! partly sent segment are sent again (at-least-once).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use sightline_wal::{FsyncPolicy, SegmentId, Wal};

/// Seal the active segment at this size…
const SEGMENT_BYTES: u64 = 4 << 20;
/// …or this long after its first record.
const SEGMENT_AGE: Duration = Duration::from_millis(200);

struct State {
    /// Loaded segments with their unsent records, oldest first.
    loaded: VecDeque<(SegmentId, VecDeque<Bytes>)>,
    /// Sealed segments not loaded yet, oldest first.
    sealed: VecDeque<SegmentId>,
    /// Bytes and records per segment still on disk.
    sizes: HashMap<SegmentId, (u64, u64)>,
    active: SegmentId,
    active_since: Option<Instant>,
    /// Segments up to here are deleted; late size updates for them are
    /// ignored.
    removed_through: Option<SegmentId>,
}

/// What [`Queue::append`] can say.
#[derive(Debug)]
pub(crate) enum AppendError {
    /// The queue holds `max_bytes` already.
    Full,
    /// The WAL failed or is closed.
    Wal(sightline_wal::Error),
}

pub(crate) struct Queue {
    dir: PathBuf,
    wal: Wal,
    max_bytes: u64,
    state: Mutex<State>,
    pub(crate) wake: tokio::sync::Notify,
}

impl Queue {
    /// Opens (creating) the queue in `dir`, recovering what is left.
    /// Blocking.
    pub(crate) fn open(
        dir: &Path,
        max_bytes: u64,
        fsync: FsyncPolicy,
    ) -> Result<Queue, sightline_wal::Error> {
        let (wal, recovered) =
            Wal::open(dir, sightline_wal::Options { fsync, ..sightline_wal::Options::default() })?;
        let mut sizes = HashMap::new();
        let mut loaded = VecDeque::new();
        for seg in recovered.segments {
            if seg.records.is_empty() {
                continue;
            }
            let bytes: u64 = seg.records.iter().map(|r| r.len() as u64).sum();
            sizes.insert(seg.id, (bytes, seg.records.len() as u64));
            loaded.push_back((seg.id, seg.records.into_iter().collect()));
        }
        let active = wal.active_segment();
        Ok(Queue {
            dir: dir.to_owned(),
            wal,
            max_bytes,
            state: Mutex::new(State {
                loaded,
                sealed: VecDeque::new(),
                sizes,
                active,
                active_since: None,
                removed_through: None,
            }),
            wake: tokio::sync::Notify::new(),
        })
    }

    /// Bytes and records waiting.
    pub(crate) fn depth(&self) -> (u64, u64) {
        let st = self.state.lock();
        st.sizes.values().fold((0, 0), |(b, r), (sb, sr)| (b + sb, r + sr))
    }

    /// Appends one export request; `Ok` once it is durable.
    pub(crate) async fn append(&self, record: Bytes) -> Result<(), AppendError> {
        if self.depth().0 + record.len() as u64 > self.max_bytes {
            return Err(AppendError::Full);
        }
        let len = record.len() as u64;
        let seg = self.wal.append(record).await.map_err(AppendError::Wal)?;
        let mut st = self.state.lock();
        if st.removed_through.is_some_and(|r| seg <= r) {
            return Ok(());
        }
        let entry = st.sizes.entry(seg).or_insert((0, 0));
        entry.0 += len;
        entry.1 += 1;
        if seg == st.active && st.active_since.is_none() {
            st.active_since = Some(Instant::now());
        }
        Ok(())
    }

    /// Seals the active segment when it is big or old enough, so the sender
    /// can read it.
    pub(crate) async fn maybe_seal(&self) -> Result<(), sightline_wal::Error> {
        let due = {
            let st = self.state.lock();
            let bytes = st.sizes.get(&st.active).map_or(0, |s| s.0);
            bytes > 0
                && (bytes >= SEGMENT_BYTES || st.active_since.is_some_and(|t| t.elapsed() >= SEGMENT_AGE))
        };
        if !due {
            return Ok(());
        }
        let sealed = self.wal.rotate().await?;
        let mut st = self.state.lock();
        st.sealed.push_back(sealed);
        st.active = self.wal.active_segment();
        st.active_since = None;
        Ok(())
    }

    /// The oldest unsent record, loading the next sealed segment if needed.
    pub(crate) async fn peek(&self) -> Result<Option<(SegmentId, Bytes)>, sightline_wal::Error> {
        loop {
            let to_load = {
                let mut st = self.state.lock();
                while st.loaded.front().is_some_and(|(_, records)| records.is_empty()) {
                    st.loaded.pop_front();
                }
                if let Some((seg, records)) = st.loaded.front() {
                    return Ok(records.front().map(|r| (*seg, r.clone())));
                }
                match st.sealed.pop_front() {
                    Some(seg) => seg,
                    None => return Ok(None),
                }
            };
            let dir = self.dir.clone();
            let records = tokio::task::spawn_blocking(move || sightline_wal::read_segment(&dir, to_load))
                .await
                .map_err(|e| sightline_wal::Error::Io {
                    op: "load queue segment",
                    path: self.dir.clone(),
                    source: std::io::Error::other(e),
                })??;
            let mut st = self.state.lock();
            if records.is_empty() {
                st.sizes.remove(&to_load);
                st.removed_through = Some(to_load);
                drop(st);
                self.wal.remove_through(to_load)?;
            } else {
                st.loaded.push_back((to_load, records.into_iter().collect()));
            }
        }
    }

    /// Acknowledges the record [`Queue::peek`] returned; deletes its segment
    /// once the segment is fully sent.
    pub(crate) fn ack(&self, seg: SegmentId) -> Result<(), sightline_wal::Error> {
        let finished = {
            let mut st = self.state.lock();
            let Some((front, records)) = st.loaded.front_mut() else { return Ok(()) };
            if *front != seg {
                return Ok(());
            }
            let len = records.pop_front().map_or(0, |r| r.len() as u64);
            let empty = records.is_empty();
            if let Some(size) = st.sizes.get_mut(&seg) {
                size.0 = size.0.saturating_sub(len);
                size.1 = size.1.saturating_sub(1);
            }
            if empty {
                st.loaded.pop_front();
                st.sizes.remove(&seg);
                st.removed_through = Some(seg);
            }
            empty
        };
        if finished {
            self.wal.remove_through(seg)?;
        }
        Ok(())
    }

    /// Syncs and closes the WAL.
    pub(crate) async fn close(&self) {
        let _ = self.wal.close().await;
    }
}
