//! Column vectors that keep their memory from one record batch to the next
//! (the block writer's `Rows`, `write.rs`).
//!
//! Arrow's builders give their buffers away with every finished array and
//! grow the next batch's from nothing. The server hands freed memory back
//! to the kernel at once (`MIMALLOC_PURGE_DELAY=0`, see the binary's
//! `main.rs`), so every 4096-row batch of a flush faulted its column
//! memory in again, page by page. These columns build arrays from plain
//! `Vec`s without copying (`Buffer::from_vec`) and take the vectors back
//! (`Buffer::into_vec`) once the Parquet writer has encoded the batch and
//! let go of it. A buffer still shared is not taken back and the next batch
//! grows a fresh one: reuse saves page faults, the output never depends on
//! it.

use arrow_array::types::ArrowPrimitiveType;
use arrow_array::{Array, ArrayRef, FixedSizeBinaryArray, PrimitiveArray, StringArray};
use arrow_buffer::{ArrowNativeType, BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_schema::ArrowError;

/// `column` as its concrete array type. Once `column` was the last
/// reference to its array, the copy returned owns the buffers alone.
pub(crate) fn owned<A: Array + Clone + 'static>(column: ArrayRef) -> Option<A> {
    column.as_any().downcast_ref::<A>().cloned()
}

/// The most one column vector keeps between batches. A realistic 4096-row
/// batch's largest column (attribute values) is ~1 MiB; a batch of huge
/// attributes does not leave its memory held for the rest of the block.
const KEEP_MAX_BYTES: usize = 16 << 20;

/// Puts `buffer`'s memory back into `into`, emptied, if this was its only
/// owner, it was a `Vec<T>`, it holds more than `into` has and not more
/// than [`KEEP_MAX_BYTES`].
fn take_back<T: ArrowNativeType>(into: &mut Vec<T>, buffer: Buffer) {
    if buffer.capacity() <= KEEP_MAX_BYTES
        && let Ok(mut v) = buffer.into_vec::<T>()
        && v.capacity() > into.capacity()
    {
        v.clear();
        *into = v;
    }
}

/// Offsets of a list or string column as Arrow takes them, checked.
pub(crate) fn offsets(offsets: Vec<i32>) -> Result<OffsetBuffer<i32>, ArrowError> {
    if offsets.windows(2).any(|w| w[0] > w[1]) || offsets.first() != Some(&0) {
        return Err(ArrowError::InvalidArgumentError("list offsets out of order".to_owned()));
    }
    Ok(OffsetBuffer::new(ScalarBuffer::from(offsets)))
}

/// A non-null primitive column: the values as an array, the vector left
/// empty (its memory comes back with [`take_back_values`]).
pub(crate) fn values_array<T: ArrowPrimitiveType>(values: &mut Vec<T::Native>) -> PrimitiveArray<T> {
    PrimitiveArray::new(ScalarBuffer::from(std::mem::take(values)), None)
}

/// Takes the memory of an array made by [`values_array`] back into
/// `values`.
pub(crate) fn take_back_values<T: ArrowPrimitiveType>(values: &mut Vec<T::Native>, array: PrimitiveArray<T>) {
    let (_, buffer, _) = array.into_parts();
    take_back(values, buffer.into_inner());
}

/// A list column's offsets as an array's, the vector left holding the
/// first offset of the next batch.
pub(crate) fn list_offsets(list: &mut Vec<i32>) -> Result<OffsetBuffer<i32>, ArrowError> {
    offsets(std::mem::replace(list, vec![0]))
}

/// Takes the memory of offsets made by [`list_offsets`] back into `list`.
pub(crate) fn take_back_offsets(list: &mut Vec<i32>, offsets: OffsetBuffer<i32>) {
    take_back(list, offsets.into_inner().into_inner());
    if list.is_empty() {
        list.push(0);
    }
}

/// Which rows have a value, one bit each, as Arrow lays them out.
#[derive(Debug, Default)]
struct Validity {
    bits: Vec<u8>,
    len: usize,
    nulls: usize,
}

impl Validity {
    fn push(&mut self, valid: bool) {
        let bit = self.len % 8;
        if bit == 0 {
            self.bits.push(0);
        }
        if valid {
            if let Some(byte) = self.bits.last_mut() {
                *byte |= 1 << bit;
            }
        } else {
            self.nulls += 1;
        }
        self.len += 1;
    }

    /// The rows pushed since the last call; `None` when every one has a
    /// value, as Arrow's builders give it.
    fn finish(&mut self) -> Option<NullBuffer> {
        let len = std::mem::take(&mut self.len);
        if std::mem::take(&mut self.nulls) == 0 {
            self.bits.clear();
            return None;
        }
        let bits = Buffer::from_vec(std::mem::take(&mut self.bits));
        Some(NullBuffer::new(BooleanBuffer::new(bits, 0, len)))
    }

    fn take_back(&mut self, nulls: Option<NullBuffer>) {
        if let Some(nulls) = nulls {
            take_back(&mut self.bits, nulls.into_inner().into_inner());
        }
    }
}

/// A primitive column that may hold nulls.
#[derive(Debug)]
pub(crate) struct Nullable<T: ArrowPrimitiveType> {
    values: Vec<T::Native>,
    validity: Validity,
}

impl<T: ArrowPrimitiveType> Nullable<T> {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        Nullable { values: Vec::with_capacity(rows), validity: Validity::default() }
    }

    pub(crate) fn append_option(&mut self, value: Option<T::Native>) {
        // A null row keeps a zero in the values, as Arrow's builders do.
        self.values.push(value.unwrap_or_default());
        self.validity.push(value.is_some());
    }

    pub(crate) fn finish(&mut self) -> Result<PrimitiveArray<T>, ArrowError> {
        let nulls = self.validity.finish();
        PrimitiveArray::try_new(ScalarBuffer::from(std::mem::take(&mut self.values)), nulls)
    }

    pub(crate) fn take_back(&mut self, array: PrimitiveArray<T>) {
        let (_, values, nulls) = array.into_parts();
        take_back(&mut self.values, values.into_inner());
        self.validity.take_back(nulls);
    }

    /// Bytes held for values and validity.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> (usize, usize) {
        (self.values.capacity() * std::mem::size_of::<T::Native>(), self.validity.bits.capacity())
    }
}

/// A text column (Arrow `Utf8`) that may hold nulls.
#[derive(Debug)]
pub(crate) struct Str {
    offsets: Vec<i32>,
    values: Vec<u8>,
    validity: Validity,
    /// Over 2 GiB of text in one batch: the batch fails.
    overflow: bool,
}

impl Default for Str {
    fn default() -> Self {
        Str { offsets: vec![0], values: Vec::new(), validity: Validity::default(), overflow: false }
    }
}

impl Str {
    pub(crate) fn append_value(&mut self, value: &str) {
        self.values.extend_from_slice(value.as_bytes());
        self.end_row(true);
    }

    pub(crate) fn append_option(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.append_value(v),
            None => self.end_row(false),
        }
    }

    fn end_row(&mut self, valid: bool) {
        match i32::try_from(self.values.len()) {
            Ok(end) => self.offsets.push(end),
            Err(_) => self.overflow = true,
        }
        self.validity.push(valid);
    }

    /// The rows since the last call as an array. Arrow checks the text is
    /// UTF-8 again (it is: only `&str`s went in); without `unsafe` there
    /// is no way around that, and it costs far less than the page faults
    /// the reuse saves.
    pub(crate) fn finish(&mut self) -> Result<StringArray, ArrowError> {
        let nulls = self.validity.finish();
        let offsets = list_offsets(&mut self.offsets);
        let values = Buffer::from_vec(std::mem::take(&mut self.values));
        if std::mem::take(&mut self.overflow) {
            return Err(ArrowError::InvalidArgumentError(
                "over 2 GiB of text in one column batch".to_owned(),
            ));
        }
        StringArray::try_new(offsets?, values, nulls)
    }

    pub(crate) fn take_back(&mut self, array: StringArray) {
        let (offsets, values, nulls) = array.into_parts();
        take_back_offsets(&mut self.offsets, offsets);
        take_back(&mut self.values, values);
        self.validity.take_back(nulls);
    }

    /// Bytes held for offsets and text.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> (usize, usize) {
        (self.offsets.capacity() * 4, self.values.capacity())
    }
}

/// A column of `N`-byte values (ids) that may hold nulls.
#[derive(Debug, Default)]
pub(crate) struct Fixed<const N: usize> {
    values: Vec<u8>,
    validity: Validity,
}

impl<const N: usize> Fixed<N> {
    pub(crate) fn with_capacity(rows: usize) -> Self {
        Fixed { values: Vec::with_capacity(rows * N), validity: Validity::default() }
    }

    pub(crate) fn append_value(&mut self, value: &[u8; N]) {
        self.values.extend_from_slice(value);
        self.validity.push(true);
    }

    pub(crate) fn append_null(&mut self) {
        // Zeros where the value would be, as Arrow's builder writes.
        self.values.extend_from_slice(&[0; N]);
        self.validity.push(false);
    }

    pub(crate) fn finish(&mut self) -> Result<FixedSizeBinaryArray, ArrowError> {
        let nulls = self.validity.finish();
        let width =
            i32::try_from(N).map_err(|_| ArrowError::InvalidArgumentError("value too wide".to_owned()))?;
        FixedSizeBinaryArray::try_new(width, Buffer::from_vec(std::mem::take(&mut self.values)), nulls)
    }

    pub(crate) fn take_back(&mut self, array: FixedSizeBinaryArray) {
        let (_, values, nulls) = array.into_parts();
        take_back(&mut self.values, values);
        self.validity.take_back(nulls);
    }
}

#[cfg(test)]
mod tests {
    use arrow_array::Array;
    use arrow_array::builder::{FixedSizeBinaryBuilder, Int64Builder, StringBuilder};
    use arrow_array::types::Int64Type;

    use super::{Fixed, KEEP_MAX_BYTES, Nullable, Str};

    /// Batch after batch, with and without nulls, in memory taken back
    /// from the batch before, the columns make what Arrow's builders make.
    #[test]
    fn columns_make_what_arrows_builders_make() {
        let (mut s, mut f, mut n) =
            (Str::default(), Fixed::<8>::default(), Nullable::<Int64Type>::with_capacity(0));
        for round in 0..4_usize {
            let (mut sb, mut fb, mut nb) =
                (StringBuilder::new(), FixedSizeBinaryBuilder::new(8), Int64Builder::new());
            // Round 2 has no nulls: no validity, as the builders leave it.
            let nulls = round != 2;
            for i in 0..(40 + round * 30) {
                let text = (!nulls || i % 3 != 0).then(|| format!("v{i}é{round}"));
                s.append_option(text.as_deref());
                sb.append_option(text.as_deref());
                let id = (i as u64 * 7 + round as u64).to_be_bytes();
                if nulls && i % 4 == 0 {
                    f.append_null();
                    fb.append_null();
                } else {
                    f.append_value(&id);
                    fb.append_value(id).unwrap();
                }
                let int = (!nulls || i % 5 != 0).then_some(i as i64 - 20);
                n.append_option(int);
                nb.append_option(int);
            }
            let (text, ids, ints) = (s.finish().unwrap(), f.finish().unwrap(), n.finish().unwrap());
            assert_eq!(text, sb.finish(), "round {round}");
            assert_eq!(ids, fb.finish(), "round {round}");
            assert_eq!(ints, nb.finish(), "round {round}");
            assert_eq!(text.nulls().is_some(), nulls);
            s.take_back(text);
            f.take_back(ids);
            n.take_back(ints);
            assert!(s.capacity().1 > 0 && n.capacity().0 > 0, "round {round}");
        }
    }

    /// A column keeps no more than `KEEP_MAX_BYTES` from one batch to the
    /// next.
    #[test]
    fn a_huge_batch_is_not_kept() {
        let mut s = Str::default();
        s.append_value(&"x".repeat(KEEP_MAX_BYTES + 1));
        let huge = s.finish().unwrap();
        s.take_back(huge);
        assert_eq!(s.capacity().1, 0);
        s.append_value("small");
        let small = s.finish().unwrap();
        s.take_back(small);
        assert!(s.capacity().1 >= 5);
    }
}
