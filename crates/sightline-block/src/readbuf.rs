//! Read buffers kept across block reads.
//!
//! The server runs mimalloc with `MIMALLOC_PURGE_DELAY=0` (see the
//! binary's `main.rs`) so that resident memory follows what is in use and
//! the memory limiter does not refuse at saturation. The price is on the
//! read path: a buffer freed at the end of one read is handed back to the
//! kernel at once and faulted in again, page by page and zeroed, by the
//! next read. [`VerifiedFile::read_range`](crate::integrity::VerifiedFile)
//! allocated one per page range a query reads, and its zeroing was ~15 % of
//! a search's page faults. Keeping a few of them (at most [`MAX_TOTAL`]
//! bytes, each at most [`MAX_BUF`]) removes those faults for a bounded,
//! permanent few MiB of resident memory: over 1M realistic spans a
//! `query-bench` run's page faults fell 16 % and the server's CPU 5.5 %,
//! for 3–5 MiB more resident (BENCHMARKS.md, "Purge settings").

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// Buffers larger than this are not kept: rare, and they would pin memory.
pub(crate) const MAX_BUF: usize = 4 << 20;
/// Bytes of capacity kept in the pool at most.
pub(crate) const MAX_TOTAL: usize = 8 << 20;
/// Buffers kept at most (a search reads a handful of ranges at a time).
const MAX_KEPT: usize = 16;

/// A pool of read buffers.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    kept: Mutex<Vec<Vec<u8>>>,
}

/// The process's pool, shared by every block read.
pub(crate) static POOL: Pool = Pool { kept: Mutex::new(Vec::new()) };

impl Pool {
    /// A buffer of `len` bytes, contents unspecified (the caller overwrites
    /// them): the smallest kept one that fits, else a new one.
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let reused = (len <= MAX_BUF)
            .then(|| {
                let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
                let best = kept
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| b.capacity() >= len)
                    .min_by_key(|(_, b)| b.capacity())
                    .map(|(i, _)| i)?;
                Some(kept.swap_remove(best))
            })
            .flatten();
        match reused {
            // Only bytes beyond the buffer's previous length are zeroed.
            Some(mut buf) => {
                buf.resize(len, 0);
                buf
            }
            None => vec![0; len],
        }
    }

    /// Keeps `buf` for a later [`Pool::take`] if there is room.
    fn give_back(&self, buf: Vec<u8>) {
        let cap = buf.capacity();
        if cap == 0 || cap > MAX_BUF {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let total: usize = kept.iter().map(Vec::capacity).sum();
        if kept.len() < MAX_KEPT && total + cap <= MAX_TOTAL {
            kept.push(buf);
        }
    }

    /// `buf` as [`Bytes`] that give it back to this pool when the last
    /// clone or slice of them drops.
    pub(crate) fn wrap(&'static self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled { buf, pool: self })
    }
}

/// Owns a pooled buffer while [`Bytes`] point into it.
struct Pooled {
    buf: Vec<u8>,
    pool: &'static Pool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaked() -> &'static Pool {
        Box::leak(Box::new(Pool::default()))
    }

    #[test]
    fn a_dropped_buffer_is_taken_again() {
        let pool = leaked();
        let mut buf = pool.take(100_000);
        buf[0] = 7;
        let at = buf.as_ptr();
        let bytes = pool.wrap(buf);
        let slice = bytes.slice(10..20);
        drop(bytes);
        // A slice still points into it: not handed out again yet.
        let other = pool.take(100_000);
        assert_ne!(other.as_ptr(), at);
        drop(slice);
        let again = pool.take(50_000);
        assert_eq!(again.as_ptr(), at);
        assert_eq!(again.len(), 50_000);
    }

    #[test]
    fn the_pool_stays_bounded() {
        let pool = leaked();
        for _ in 0..3 {
            drop(pool.wrap(vec![0; MAX_BUF + 1]));
        }
        assert!(pool.kept.lock().unwrap().is_empty(), "buffers over MAX_BUF are not kept");
        let bufs: Vec<Bytes> = (0..40).map(|_| pool.wrap(vec![0; 1 << 20])).collect();
        drop(bufs);
        let kept = pool.kept.lock().unwrap();
        assert!(kept.iter().map(Vec::capacity).sum::<usize>() <= MAX_TOTAL);
        assert!(!kept.is_empty());
    }

    #[test]
    fn the_smallest_fitting_buffer_is_taken() {
        let pool = leaked();
        let big = vec![0u8; 3 << 20];
        let small = vec![0u8; 64 << 10];
        let small_at = small.as_ptr();
        drop(pool.wrap(big));
        drop(pool.wrap(small));
        let taken = pool.take(60 << 10);
        assert_eq!(taken.as_ptr(), small_at);
    }
}
