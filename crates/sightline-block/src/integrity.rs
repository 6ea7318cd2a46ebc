//! Block checksums: every byte a block serves is checked before it is
//! decoded.
//!
//! Parquet's own page CRCs do not do this: parquet-rs 60 never writes them
//! (`column/page.rs`: "TODO: Add support for crc checksum"), verifies them
//! only with its `crc` feature, and they would not cover page headers,
//! dictionaries, bloom filters, the page index or the footer anyway. So the
//! block carries its own, independent of the Parquet layout:
//!
//! * `data.parquet` is cut into fixed chunks ([`CHUNK_BYTES`]); the writer
//!   computes each chunk's CRC32C as the bytes stream out
//!   ([`ChecksumWriter`], no second read), and `meta.json` stores them
//!   (`checksums.data`, little-endian u32s in base64).
//! * Every read of the data file goes through [`VerifiedFile`], a Parquet
//!   [`ChunkReader`] that reads whole chunks and checks them: the footer and
//!   page index at open, bloom filters and pages on every query. A
//!   mismatch is an [`Error::Checksum`] naming the block file and the byte
//!   range; damaged bytes never reach the decoder.
//! * `meta.json` checks itself: `checksums.meta` is the CRC32C of the
//!   file's canonical JSON (keys sorted, no whitespace) without that one
//!   field, so a changed digit in a time range or a service name is caught
//!   too, and keys are checked against the known set (a flipped key name
//!   must not make a field vanish unnoticed).
//!
//! Blocks written before checksums existed have no `checksums` object; they
//! open and read as before (unverified), and `verify` decodes them whole.
//!
//! Cost: 4 bytes of memory per 4 KiB of data (0.1 %), a CRC32C over what
//! is read (hardware, several GB/s) and reads rounded out to chunk bounds
//! (a data page is a few KiB, so about one chunk more per page read).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use bytes::Bytes;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Error;
use crate::readbuf::POOL;
use crate::source::Data;

/// Bytes per checksummed chunk of `data.parquet` for blocks this build
/// writes (readers take the size from `meta.json`).
pub const CHUNK_BYTES: u32 = 4096;

/// The `checksums` object of `meta.json`, minus its own `meta` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Stored {
    /// Always `"crc32c"`.
    pub(crate) algorithm: String,
    /// Bytes per chunk; the last chunk may be shorter.
    pub(crate) chunk_bytes: u32,
    /// CRC32C of each chunk, little-endian u32s, base64.
    pub(crate) data: String,
}

/// The key of the checksums object in `meta.json`, and of the self-check
/// inside it.
pub(crate) const KEY: &str = "checksums";
const META_KEY: &str = "meta";
const ALGORITHM: &str = "crc32c";

/// A block's data checksums, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksums {
    /// Bytes per chunk; the last chunk may be shorter.
    pub chunk_bytes: u64,
    /// CRC32C of each chunk.
    pub crcs: Vec<u32>,
}

impl Checksums {
    /// Chunks needed for a file of `len` bytes.
    pub fn chunks_for(&self, len: u64) -> u64 {
        len.div_ceil(self.chunk_bytes.max(1))
    }

    /// Heap bytes held.
    pub fn memory_size(&self) -> usize {
        self.crcs.len() * 4
    }

    fn to_stored(&self) -> Stored {
        let raw: Vec<u8> = self.crcs.iter().flat_map(|c| c.to_le_bytes()).collect();
        Stored {
            algorithm: ALGORITHM.to_owned(),
            chunk_bytes: u32::try_from(self.chunk_bytes).unwrap_or(CHUNK_BYTES),
            data: base64::engine::general_purpose::STANDARD.encode(raw),
        }
    }

    fn from_stored(stored: Stored) -> Result<Checksums, String> {
        if stored.algorithm != ALGORITHM {
            return Err(format!("unknown checksum algorithm {:?}", stored.algorithm));
        }
        if stored.chunk_bytes == 0 {
            return Err("checksum chunk size is 0".to_owned());
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(stored.data.as_bytes())
            .map_err(|e| format!("checksums are not base64: {e}"))?;
        if raw.len() % 4 != 0 {
            return Err("checksum list is not a whole number of u32s".to_owned());
        }
        let crcs =
            raw.chunks_exact(4).map(|c| c.first_chunk::<4>().map_or(0, |c| u32::from_le_bytes(*c))).collect();
        Ok(Checksums { chunk_bytes: u64::from(stored.chunk_bytes), crcs })
    }
}

/// Serialises a block's `meta.json`: `fields` (the [`crate::BlockMeta`] as
/// JSON) plus the checksums object, whose `meta` field is the CRC of the
/// canonical form of everything else.
pub fn encode_meta(mut fields: Value, checksums: &Checksums) -> Result<Vec<u8>, String> {
    let stored = serde_json::to_value(checksums.to_stored()).map_err(|e| e.to_string())?;
    let obj = fields.as_object_mut().ok_or("meta is not a JSON object")?;
    obj.insert(KEY.to_owned(), stored);
    let crc = crc32c::crc32c(&canonical(&fields));
    if let Some(Value::Object(c)) = fields.get_mut(KEY) {
        c.insert(META_KEY.to_owned(), Value::from(crc));
    }
    serde_json::to_vec_pretty(&fields).map_err(|e| e.to_string())
}

/// Checks and strips the checksums object of a parsed `meta.json`: `None`
/// for a block written before checksums existed.
pub fn decode_meta(fields: &mut Value) -> Result<Option<Checksums>, String> {
    let obj = fields.as_object_mut().ok_or("meta.json is not a JSON object")?;
    let Some(stored) = obj.get_mut(KEY) else { return Ok(None) };
    let Value::Object(c) = stored else { return Err(format!("\"{KEY}\" is not an object")) };
    let recorded = c.remove(META_KEY).ok_or_else(|| format!("\"{KEY}\" has no \"{META_KEY}\" checksum"))?;
    let recorded =
        recorded.as_u64().and_then(|v| u32::try_from(v).ok()).ok_or("meta checksum is not a u32")?;
    let computed = crc32c::crc32c(&canonical(fields));
    if computed != recorded {
        return Err(format!(
            "meta.json checksum mismatch (recorded {recorded:#010x}, computed {computed:#010x}): the file was damaged"
        ));
    }
    let stored = fields.as_object_mut().and_then(|o| o.remove(KEY)).unwrap_or(Value::Null);
    let stored: Stored = serde_json::from_value(stored).map_err(|e| format!("\"{KEY}\": {e}"))?;
    Checksums::from_stored(stored).map(Some)
}

/// CRC32C of a JSON value's canonical text (see [`canonical`]): the
/// checksum other files of the store (the manifest) embed the way
/// `meta.json` does, so their checks agree on what the bytes are.
pub fn json_checksum(value: &Value) -> u32 {
    crc32c::crc32c(&canonical(value))
}

/// The canonical JSON text of a value: object keys sorted, no whitespace,
/// scalars as serde_json writes them. Independent of how a map orders its
/// keys (serde_json's `preserve_order` feature may be on in some builds).
pub(crate) fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(&Value::String(key.clone()), out);
                out.push(b':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => {
            // Serialising a scalar cannot fail.
            out.extend(serde_json::to_vec(scalar).unwrap_or_default());
        }
    }
}

/// A writer that computes chunk checksums of everything written through it.
#[derive(Debug)]
pub struct ChecksumWriter<W> {
    inner: W,
    chunk_bytes: usize,
    crc: u32,
    filled: usize,
    crcs: Vec<u32>,
}

impl<W> ChecksumWriter<W> {
    /// Wraps `inner`; chunks of [`CHUNK_BYTES`].
    pub fn new(inner: W) -> ChecksumWriter<W> {
        ChecksumWriter { inner, chunk_bytes: CHUNK_BYTES as usize, crc: 0, filled: 0, crcs: Vec::new() }
    }

    /// The wrapped writer.
    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// The checksums of everything written so far (the last chunk may be
    /// partial). Call once, after the last write.
    pub fn finish(&mut self) -> Checksums {
        if self.filled > 0 {
            self.crcs.push(self.crc);
            self.crc = 0;
            self.filled = 0;
        }
        Checksums { chunk_bytes: self.chunk_bytes as u64, crcs: std::mem::take(&mut self.crcs) }
    }

    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (self.chunk_bytes - self.filled).min(bytes.len());
            let (part, rest) = bytes.split_at(take);
            self.crc = crc32c::crc32c_append(self.crc, part);
            self.filled += take;
            if self.filled == self.chunk_bytes {
                self.crcs.push(self.crc);
                self.crc = 0;
                self.filled = 0;
            }
            bytes = rest;
        }
    }
}

impl<W: io::Write> io::Write for ChecksumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A range of `data.parquet` whose bytes do not match their checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    /// First byte of the damaged chunk.
    pub start: u64,
    /// One past its last byte.
    pub end: u64,
}

/// The first mismatch any read of a block found, shared by its readers so
/// a failed decode can be reported as the damage that caused it.
pub type DamageSlot = Arc<OnceLock<Mismatch>>;

/// `data.parquet` opened for reading, every read checked against the
/// block's checksums (or, for an unchecksummed block, read as is).
#[derive(Debug, Clone)]
pub struct VerifiedFile {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    data: Data,
    path: PathBuf,
    len: u64,
    sums: Option<Arc<Checksums>>,
    damage: DamageSlot,
}

impl VerifiedFile {
    /// Opens the local file `path`, to be checked against `sums` (`None`:
    /// unchecked); the first mismatch found is also recorded in `damage`.
    pub fn open_file(
        path: &Path,
        sums: Option<Arc<Checksums>>,
        damage: DamageSlot,
    ) -> Result<VerifiedFile, Error> {
        let data = Data::open(path, None).map_err(|e| Error::io(path, e))?;
        VerifiedFile::open(path, data, sums, damage)
    }

    /// `source` (a data file kept elsewhere: an object store), named `path`
    /// in errors, checked as [`VerifiedFile::open_file`] checks a local
    /// file. Other block formats (log blocks) read remote blocks this way.
    pub fn open_source(
        path: &Path,
        source: Arc<dyn crate::BlockSource>,
        sums: Option<Arc<Checksums>>,
        damage: DamageSlot,
    ) -> Result<VerifiedFile, Error> {
        VerifiedFile::open(path, Data::Source(source), sums, damage)
    }

    /// `data`, named `path` in errors.
    pub(crate) fn open(
        path: &Path,
        data: Data,
        sums: Option<Arc<Checksums>>,
        damage: DamageSlot,
    ) -> Result<VerifiedFile, Error> {
        let len = data.len().map_err(|e| Error::io(path, e))?;
        Ok(VerifiedFile { inner: Arc::new(Inner { data, path: path.to_owned(), len, sums, damage }) })
    }

    /// Reads `start..start + length`, verified.
    pub fn read_range(&self, start: u64, length: usize) -> Result<Bytes, Error> {
        let inner = &*self.inner;
        let end = start.checked_add(length as u64).filter(|&e| e <= inner.len).ok_or_else(|| {
            Error::corrupt(
                &inner.path,
                format!("read of {length} bytes at {start} runs past the end ({} bytes)", inner.len),
            )
        })?;
        let Some(sums) = &inner.sums else {
            let mut buf = POOL.take(length);
            inner.data.read_exact_at(&mut buf, start).map_err(|e| read_failed(&inner.path, e))?;
            return Ok(POOL.wrap(buf));
        };
        let cb = sums.chunk_bytes;
        let first = start / cb;
        let aligned_start = first * cb;
        let aligned_end = end.div_ceil(cb).saturating_mul(cb).min(inner.len);
        let mut buf = POOL.take(usize::try_from(aligned_end - aligned_start).unwrap_or(0));
        inner.data.read_exact_at(&mut buf, aligned_start).map_err(|e| read_failed(&inner.path, e))?;
        for (i, chunk) in buf.chunks(cb as usize).enumerate() {
            let index = first + i as u64;
            let expected = usize::try_from(index).ok().and_then(|i| sums.crcs.get(i));
            if expected != Some(&crc32c::crc32c(chunk)) {
                let chunk_start = index * cb;
                let mismatch = Mismatch { start: chunk_start, end: chunk_start + chunk.len() as u64 };
                let _ = inner.damage.set(mismatch);
                return Err(Error::Checksum {
                    path: inner.path.clone(),
                    start: mismatch.start,
                    end: mismatch.end,
                });
            }
        }
        let from = usize::try_from(start - aligned_start).unwrap_or(0);
        Ok(POOL.wrap(buf).slice(from..from + length))
    }

    /// Checks every chunk of `source` (a data file kept elsewhere, named
    /// `path` in errors) against `sums`: the damaged ranges, in order.
    /// For block formats that have no `Block` of their own (log blocks).
    pub fn scan_source(
        path: &Path,
        source: Arc<dyn crate::BlockSource>,
        sums: &Checksums,
    ) -> Result<Vec<Mismatch>, Error> {
        VerifiedFile::scan(path, &Data::Source(source), sums)
    }

    /// Checks every chunk of the file: the damaged ranges, in order.
    pub(crate) fn scan(path: &Path, data: &Data, sums: &Checksums) -> Result<Vec<Mismatch>, Error> {
        let len = data.len().map_err(|e| Error::io(path, e))?;
        let mut damaged = Vec::new();
        if sums.chunks_for(len) != sums.crcs.len() as u64 {
            return Err(Error::corrupt(
                path,
                format!(
                    "{len} bytes need {} checksums, meta.json has {}",
                    sums.chunks_for(len),
                    sums.crcs.len()
                ),
            ));
        }
        let mut buf = vec![0u8; usize::try_from(sums.chunk_bytes).unwrap_or(4096)];
        let mut at = 0u64;
        for expected in &sums.crcs {
            let n = usize::try_from((len - at).min(sums.chunk_bytes)).unwrap_or(0);
            let chunk = buf.get_mut(..n).unwrap_or_default();
            data.read_exact_at(chunk, at).map_err(|e| Error::io(path, e))?;
            if crc32c::crc32c(chunk) != *expected {
                match damaged.last_mut() {
                    Some(Mismatch { end, .. }) if *end == at => *end = at + n as u64,
                    _ => damaged.push(Mismatch { start: at, end: at + n as u64 }),
                }
            }
            at += n as u64;
        }
        Ok(damaged)
    }
}

impl Length for VerifiedFile {
    fn len(&self) -> u64 {
        self.inner.len
    }
}

impl ChunkReader for VerifiedFile {
    type T = VerifiedRead;

    fn get_read(&self, start: u64) -> parquet::errors::Result<VerifiedRead> {
        Ok(VerifiedRead { file: self.clone(), pos: start, buf: Bytes::new() })
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.read_range(start, length).map_err(|e| ParquetError::External(Box::new(e)))
    }
}

/// A failed read of the data file: an IO error, noted for
/// [`crate::contain`] so a decode error it causes is not taken for damage.
fn read_failed(path: &Path, source: io::Error) -> Error {
    crate::error::note_read_failure(&source);
    Error::io(path, source)
}

/// Sequential reads through [`VerifiedFile`], a chunk at a time.
#[derive(Debug)]
pub struct VerifiedRead {
    file: VerifiedFile,
    pos: u64,
    buf: Bytes,
}

impl Read for VerifiedRead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf.is_empty() {
            let len = self.file.inner.len;
            if self.pos >= len {
                return Ok(0);
            }
            let step = self.file.inner.sums.as_ref().map_or(u64::from(CHUNK_BYTES), |s| s.chunk_bytes);
            // Up to the next chunk boundary, so each chunk is checked once.
            let want = (step - self.pos % step).min(len - self.pos);
            self.buf = self
                .file
                .read_range(self.pos, usize::try_from(want).unwrap_or(0))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            self.pos += want;
        }
        let n = out.len().min(self.buf.len());
        if let (Some(dst), Some(src)) = (out.get_mut(..n), self.buf.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.buf = self.buf.slice(n..);
        Ok(n)
    }
}
