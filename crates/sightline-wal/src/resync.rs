//! Finding the next valid record after damage, in bounded time.
//!
//! After a damaged record, recovery looks for the earliest later offset
//! where a whole record (length, checksum, payload) verifies. Checking each
//! offset naively costs a CRC over the length it claims: inside OTLP
//! payloads about one offset in twenty reads as a plausible length of
//! megabytes, so a byte-by-byte search through one damaged 500 KiB record
//! of a 32 MiB segment would checksum on the order of 100 GB.
//!
//! Instead the CRC of any byte range comes from prefix CRCs: with `C(i)`
//! the CRC32C of `buf[..i]`, `crc(buf[a..b]) = C(b) ^ shift(C(a), b - a)`,
//! where `shift(c, n)` appends `n` zero bytes' worth of polynomial
//! arithmetic to `c` (the identity behind zlib's `crc32_combine`). `C` is
//! kept at every [`STRIDE`]th offset, and the rest is at most one stride of
//! hardware CRC away; a shift is five GF(2) multiplications (the power of
//! `x` for `n` zero bytes from a 4×256 table). So each candidate offset
//! costs the same whatever length it claims, and a whole segment is
//! searched in O(n): bounded work, no budget to run out. Measured
//! (`resync_cost`, release): a 32 MiB segment with one damaged length field
//! in 33 ms, one that is garbage from end to end in 2.3 s.

use crate::format::{MAX_RECORD_LEN, RECORD_HEADER_LEN, mask};

/// Offsets between stored prefix CRCs: 4 bytes kept per 64 scanned.
const STRIDE: usize = 64;

/// The CRC32C polynomial, reflected (as the `crc32c` crate computes it).
const POLY: u32 = 0x82f6_3b78;

/// `x^(8·k·256^j) mod P` for each byte `k` of a length's four bytes `j`, in
/// the reflected bit order: appending `n` zero bytes is then four table
/// entries multiplied (a square-and-multiply over the bits of `n` took ~25
/// multiplications; a search through 32 MiB of garbage spent 6.5 s there).
struct PowerTable(Box<[[u32; 256]; 4]>);

/// x^0 in the reflected bit order.
const ONE: u32 = 1 << 31;

impl PowerTable {
    fn new() -> PowerTable {
        let mut table = Box::new([[ONE; 256]; 4]);
        // x^8 (one zero byte), then x^(8·256^j) by raising to the 256th.
        let mut step = x_pow_bytes_slow(1);
        for row in table.iter_mut() {
            for k in 1..256 {
                let prev = row.get(k - 1).copied().unwrap_or(ONE);
                if let Some(slot) = row.get_mut(k) {
                    *slot = mul_mod(prev, step);
                }
            }
            step = mul_mod(row.get(255).copied().unwrap_or(ONE), step);
        }
        PowerTable(table)
    }

    /// `x^(8n) mod P`: the operator that appends `n` zero bytes.
    fn bytes(&self, n: usize) -> u32 {
        let n = n as u32;
        let mut p = ONE;
        for (j, row) in self.0.iter().enumerate() {
            let k = ((n >> (8 * j)) & 0xff) as usize;
            if k != 0 {
                p = mul_mod(row.get(k).copied().unwrap_or(ONE), p);
            }
        }
        p
    }

    /// The CRC of `A || zeros(n)` given the CRC of `A`, without the final
    /// xor adjustments: `crc(A||B) = shift(crc(A), |B|) ^ crc(B)`.
    fn shift(&self, crc: u32, n: usize) -> u32 {
        mul_mod(self.bytes(n), crc)
    }
}

/// `x^(8n) mod P` by square-and-multiply (zlib's `x2nmodp`): builds the
/// table.
fn x_pow_bytes_slow(n: u64) -> u32 {
    // x^(2^k), starting at x^1 (bit 30 in the reflected order).
    let mut square = 1u32 << 30;
    let mut p = ONE;
    // 8n = n << 3: skip the squares for x^1, x^2, x^4.
    for _ in 0..3 {
        square = mul_mod(square, square);
    }
    let mut n = n;
    while n != 0 {
        if n & 1 == 1 {
            p = mul_mod(square, p);
        }
        square = mul_mod(square, square);
        n >>= 1;
    }
    p
}

/// Multiplies two polynomials modulo P (reflected bit order), as zlib's
/// `multmodp`, without branches: the bits of `a` are data, and a branch on
/// each (zlib's loop) mispredicted half the time — most of a search's cost.
fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut p = 0u32;
    for i in 0..32 {
        let bit = (a >> (31 - i)) & 1;
        p ^= b & 0u32.wrapping_sub(bit);
        b = (b >> 1) ^ (POLY & 0u32.wrapping_sub(b & 1));
    }
    p
}

/// Prefix CRCs of a buffer at every [`STRIDE`]th offset.
struct Prefix<'a> {
    buf: &'a [u8],
    at: Vec<u32>,
    powers: PowerTable,
}

impl<'a> Prefix<'a> {
    fn new(buf: &'a [u8]) -> Prefix<'a> {
        let mut at = Vec::with_capacity(buf.len() / STRIDE + 1);
        let mut crc = 0u32;
        at.push(crc);
        for chunk in buf.chunks(STRIDE) {
            crc = crc32c::crc32c_append(crc, chunk);
            at.push(crc);
        }
        Prefix { buf, at, powers: PowerTable::new() }
    }

    /// CRC32C of `buf[..i]`.
    fn upto(&self, i: usize) -> u32 {
        let base = i / STRIDE;
        let crc = self.at.get(base).copied().unwrap_or(0);
        crc32c::crc32c_append(crc, self.buf.get(base * STRIDE..i).unwrap_or_default())
    }

    /// CRC32C of `buf[a..b]`.
    #[cfg(test)]
    fn range(&self, a: usize, b: usize) -> u32 {
        self.upto(b) ^ self.powers.shift(self.upto(a), b - a)
    }

    /// Whether a record whose header is at `pos` verifies.
    fn record_at(&self, pos: usize) -> bool {
        let Some(header) = self.buf.get(pos..pos + RECORD_HEADER_LEN) else { return false };
        let (Some(len_bytes), Some(crc_bytes)) = (header.first_chunk::<4>(), header.last_chunk::<4>()) else {
            return false;
        };
        let len = u32::from_le_bytes(*len_bytes) as usize;
        let start = pos + RECORD_HEADER_LEN;
        if len == 0 || len > MAX_RECORD_LEN || len > self.buf.len() - start {
            return false;
        }
        // The record CRC covers the length field then the payload:
        // shift(crc(len), n) ^ crc(payload), with crc(payload) =
        // C(end) ^ shift(C(start), n); shifting is linear, so one shift.
        let shifted = crc32c::crc32c(len_bytes) ^ self.upto(start);
        let crc = self.powers.shift(shifted, len) ^ self.upto(start + len);
        mask(crc) == u32::from_le_bytes(*crc_bytes)
    }
}

/// Searches one segment's bytes for valid records after damage. The
/// prefix CRCs are computed on the first search and reused by later ones,
/// so a segment with several damaged stretches is still read once.
pub(crate) struct Resync<'a> {
    buf: &'a [u8],
    prefix: Option<Prefix<'a>>,
}

impl<'a> Resync<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Resync<'a> {
        Resync { buf, prefix: None }
    }

    /// The earliest offset at or after `from` holding a whole record with
    /// a valid checksum, if any. O(n) in the bytes after `from`.
    pub(crate) fn next_record(&mut self, from: usize) -> Option<usize> {
        let last = self.buf.len().checked_sub(RECORD_HEADER_LEN + 1)?;
        if from > last {
            return None;
        }
        let buf = self.buf;
        let prefix = self.prefix.get_or_insert_with(|| Prefix::new(buf));
        (from..=last).find(|&pos| prefix.record_at(pos))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_crcs_match_direct_computation() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let buf: Vec<u8> = (0..5000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        let prefix = Prefix::new(&buf);
        for (a, b) in [(0, 0), (0, 1), (3, 64), (64, 128), (1, 4999), (100, 5000), (4999, 5000), (777, 2048)]
        {
            assert_eq!(prefix.range(a, b), crc32c::crc32c(&buf[a..b]), "{a}..{b}");
        }
        let powers = PowerTable::new();
        for n in [0, 1, 7, 64, 255, 256, 1000, 65_537, 1 << 20, (256 << 20) + 12_345] {
            assert_eq!(powers.bytes(n), x_pow_bytes_slow(n as u64), "x^(8·{n})");
            let c = crc32c::crc32c(&buf[..100]);
            assert_eq!(powers.shift(c, n), crc32c::crc32c_combine(c, 0, n), "shift by {n}");
        }
    }
}
