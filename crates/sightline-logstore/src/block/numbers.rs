//! The `rest` column's integer attributes apart (`sl-logs3`): `rest` (an
//! OTLP `LogRecord` with attributes, flags, …) is stored as its *shape* —
//! the same bytes with each integer attribute's value replaced by
//! [`PLACEHOLDER`] — and its *numbers*, those values as decimal text
//! joined by spaces.
//!
//! Why: a record's attributes are mostly the same keys and few values
//! (`http.route`, `code.function`) plus a number or two that differ in
//! every record (an order id, a size). Together, every `rest` is distinct
//! and zstd pays matches around each number; apart, the shapes repeat
//! (the column's dictionary stores each once per row group) and the
//! numbers column is digits alone. On `loadgen logs-bench`, `rest` went
//! from 6.6 to 3.6 bytes a record (BENCHMARKS.md).
//!
//! The split is exact: joining gives back the very bytes split, so a
//! merge's duplicate check (a hash of the columns) sees the same record
//! whatever format it was read from. Anything this code does not
//! recognise (a value that is not a lone canonical varint `int_value`,
//! malformed bytes, a value already equal to the placeholder) is left in
//! the shape as it is.

use std::sync::Arc;

use arrow_array::builder::{BinaryBuilder, StringBuilder};
use arrow_array::cast::AsArray as _;
use arrow_array::{Array as _, ArrayRef, BinaryArray};
use arrow_schema::ArrowError;
use prost::encoding::{WireType, encode_key, encode_varint};

/// An attribute value that stands for the next number: an `AnyValue`
/// holding only field 15 (no such field), varint 0.
const PLACEHOLDER: [u8; 2] = [0x78, 0x00];

/// `LogRecord.attributes`.
const ATTRIBUTES: u32 = 6;
/// `KeyValue.value`.
const KV_VALUE: u32 = 2;
/// `AnyValue.int_value`.
const INT_VALUE: u32 = 3;

/// One field: its number, wire type, payload (the value of a varint, the
/// bytes of a length-delimited field) and its whole encoding.
struct Raw<'a> {
    number: u32,
    wire: u8,
    payload: &'a [u8],
    varint: u64,
    whole: &'a [u8],
}

/// The fields of `message` with their raw bytes, in order; an item is
/// `None` where the bytes stop framing (callers then leave them alone).
/// An iterator, not a list: this runs for every record of a flush.
fn raw_fields(message: &[u8]) -> RawFields<'_> {
    RawFields { buf: message }
}

struct RawFields<'a> {
    buf: &'a [u8],
}

impl<'a> Iterator for RawFields<'a> {
    type Item = Option<Raw<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() {
            return None;
        }
        let item = read_field(&mut self.buf);
        if item.is_none() {
            self.buf = &[];
        }
        Some(item)
    }
}

fn read_field<'a>(buf: &mut &'a [u8]) -> Option<Raw<'a>> {
    let start = *buf;
    let key = varint(buf)?;
    let wire = (key & 7) as u8;
    let number = u32::try_from(key >> 3).ok()?;
    let (payload, value) = match wire {
        0 => {
            let before = *buf;
            let v = varint(buf)?;
            (&before[..before.len() - buf.len()], v)
        }
        1 => (take(buf, 8)?, 0),
        2 => {
            let len = usize::try_from(varint(buf)?).ok()?;
            (take(buf, len)?, 0)
        }
        5 => (take(buf, 4)?, 0),
        _ => return None,
    };
    let whole = &start[..start.len() - buf.len()];
    Some(Raw { number, wire, payload, varint: value, whole })
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if buf.len() < n {
        return None;
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Some(head)
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *buf.get(i)?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *buf = &buf[i + 1..];
            return Some(v);
        }
    }
    None
}

/// The `int_value` of an `AnyValue` that is exactly that field, encoded
/// canonically (so re-encoding gives the same bytes).
fn lone_int(any: &[u8]) -> Option<u64> {
    let mut fields = raw_fields(any);
    let f = fields.next()??;
    if fields.next().is_some() || f.number != INT_VALUE || f.wire != 0 {
        return None;
    }
    // Canonical: the key byte and a varint without trailing zero groups.
    let canonical = f.whole.len() == 1 + prost::encoding::encoded_len_varint(f.varint);
    canonical.then_some(f.varint)
}

fn encode_int(v: u64, out: &mut Vec<u8>) {
    encode_key(INT_VALUE, WireType::Varint, out);
    encode_varint(v, out);
}

fn len_field(number: u32, payload: &[u8], out: &mut Vec<u8>) {
    encode_key(number, WireType::LengthDelimited, out);
    encode_varint(payload.len() as u64, out);
    out.extend_from_slice(payload);
}

/// Splits `rest` into `shape` and `numbers` (both cleared first). False:
/// nothing to take apart (no integer attribute, or bytes this code leaves
/// alone) — the rest is stored as it is, without numbers.
pub(crate) fn split(rest: &[u8], shape: &mut Vec<u8>, numbers: &mut String) -> bool {
    shape.clear();
    numbers.clear();
    let mut kv = Vec::new();
    let mut any_number = false;
    for f in raw_fields(rest) {
        let Some(f) = f else { return false };
        if f.number != ATTRIBUTES || f.wire != 2 {
            shape.extend_from_slice(f.whole);
            continue;
        }
        kv.clear();
        let mut took = false;
        for p in raw_fields(f.payload) {
            let Some(p) = p else { return false };
            if p.number == KV_VALUE && p.wire == 2 {
                if p.payload == PLACEHOLDER {
                    // Would read back as a number: keep the record whole.
                    return false;
                }
                if !took && let Some(v) = lone_int(p.payload) {
                    use std::fmt::Write as _;
                    if any_number {
                        numbers.push(' ');
                    }
                    let _ = write!(numbers, "{}", v as i64);
                    len_field(KV_VALUE, &PLACEHOLDER, &mut kv);
                    took = true;
                    any_number = true;
                    continue;
                }
            }
            kv.extend_from_slice(p.whole);
        }
        if took {
            len_field(ATTRIBUTES, &kv, shape);
        } else {
            shape.extend_from_slice(f.whole);
        }
    }
    any_number
}

/// The `rest` of `shape` and `numbers` into `out` (cleared first): each
/// placeholder value becomes the next number. A placeholder without a
/// number left, or a number that does not parse (a damaged file), stays a
/// placeholder; the record still decodes (an unknown field).
pub(crate) fn join(shape: &[u8], numbers: Option<&str>, out: &mut Vec<u8>) {
    out.clear();
    let framed = raw_fields(shape).all(|f| f.is_some());
    let (Some(numbers), true) = (numbers, framed) else {
        out.extend_from_slice(shape);
        return;
    };
    let mut numbers = numbers.split(' ').map(|n| n.parse::<i64>().ok());
    let is_placeholder = |p: &Raw<'_>| p.number == KV_VALUE && p.wire == 2 && p.payload == PLACEHOLDER;
    let mut kv = Vec::new();
    for f in raw_fields(shape).flatten() {
        if f.number != ATTRIBUTES
            || f.wire != 2
            || !raw_fields(f.payload).flatten().any(|p| is_placeholder(&p))
        {
            out.extend_from_slice(f.whole);
            continue;
        }
        kv.clear();
        for p in raw_fields(f.payload).flatten() {
            if is_placeholder(&p)
                && let Some(Some(n)) = numbers.next()
            {
                let mut any = Vec::with_capacity(11);
                encode_int(n as u64, &mut any);
                len_field(KV_VALUE, &any, &mut kv);
            } else {
                kv.extend_from_slice(p.whole);
            }
        }
        len_field(ATTRIBUTES, &kv, out);
    }
}

/// The `shape` and `numbers` columns of a `rest` column.
pub(crate) fn split_column(rest: &BinaryArray) -> (ArrayRef, ArrayRef) {
    let n = rest.len();
    let mut shapes = BinaryBuilder::with_capacity(n, rest.value_data().len());
    let mut numbers = StringBuilder::with_capacity(n, n * 8);
    let (mut s, mut d) = (Vec::new(), String::new());
    for row in 0..n {
        let value = rest.value(row);
        if split(value, &mut s, &mut d) {
            shapes.append_value(&s);
            numbers.append_value(&d);
        } else {
            shapes.append_value(value);
            numbers.append_null();
        }
    }
    (Arc::new(shapes.finish()), Arc::new(numbers.finish()))
}

/// The `rest` column of `shape` and `numbers` columns.
pub(crate) fn join_column(shapes: &ArrayRef, numbers: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let shapes = shapes
        .as_binary_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError("rest shape column is not binary".to_owned()))?;
    let numbers = numbers
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError("rest numbers column is not text".to_owned()))?;
    let n = shapes.len();
    let mut out = BinaryBuilder::with_capacity(n, shapes.value_data().len() + numbers.value_data().len());
    let mut bytes = Vec::new();
    for row in 0..n {
        let nums = (!numbers.is_null(row)).then(|| numbers.value(row));
        join(shapes.value(row), nums, &mut bytes);
        out.append_value(&bytes);
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value as V};
    use opentelemetry_proto::tonic::logs::v1::LogRecord;
    use prost::Message as _;

    use super::*;

    fn kv(key: &str, value: Option<V>) -> KeyValue {
        KeyValue { key: key.into(), value: value.map(|v| AnyValue { value: Some(v) }), ..KeyValue::default() }
    }

    fn round_trip(rest: &[u8]) -> Option<String> {
        let (mut shape, mut numbers, mut out) = (Vec::new(), String::new(), Vec::new());
        let split_ok = split(rest, &mut shape, &mut numbers);
        let stored = if split_ok { shape.as_slice() } else { rest };
        join(stored, split_ok.then_some(numbers.as_str()), &mut out);
        assert_eq!(out, rest, "split {split_ok}: {shape:?} {numbers:?}");
        split_ok.then_some(numbers)
    }

    #[test]
    fn integer_attributes_become_numbers_and_come_back_byte_for_byte() {
        let record = LogRecord {
            attributes: vec![
                kv("code.function", Some(V::StringValue("handle".into()))),
                kv("order.id", Some(V::IntValue(123_456))),
                kv("empty", None),
                kv("neg", Some(V::IntValue(-7))),
                kv("zero", Some(V::IntValue(0))),
                kv("ok", Some(V::BoolValue(true))),
                kv("max", Some(V::IntValue(i64::MAX))),
                kv("min", Some(V::IntValue(i64::MIN))),
            ],
            flags: 1,
            dropped_attributes_count: 3,
            event_name: "ev".into(),
            time_unix_nano: 1,
            ..LogRecord::default()
        };
        let numbers = round_trip(&record.encode_to_vec());
        assert_eq!(numbers.as_deref(), Some(&*format!("123456 -7 0 {} {}", i64::MAX, i64::MIN)));
        let one = LogRecord { attributes: vec![kv("a", Some(V::IntValue(5)))], ..LogRecord::default() };
        let (mut shape, mut numbers) = (Vec::new(), String::new());
        assert!(split(&one.encode_to_vec(), &mut shape, &mut numbers));
        assert_ne!(shape, one.encode_to_vec());
        // Two records differing only in their number share the shape.
        let two = LogRecord { attributes: vec![kv("a", Some(V::IntValue(9_999)))], ..LogRecord::default() };
        let mut shape2 = Vec::new();
        assert!(split(&two.encode_to_vec(), &mut shape2, &mut numbers));
        assert_eq!((shape, numbers.as_str()), (shape2, "9999"));
    }

    #[test]
    fn what_is_not_a_plain_integer_is_kept_as_it_is() {
        let strings = LogRecord {
            attributes: vec![kv("s", Some(V::StringValue("1".into())))],
            flags: 1,
            ..LogRecord::default()
        };
        assert_eq!(round_trip(&strings.encode_to_vec()), None);
        assert_eq!(round_trip(&[]), None);
        // Malformed, a non-canonical varint, the placeholder itself, and
        // a value with a second field: left whole.
        assert_eq!(round_trip(&[0x32, 0x05, 0x0a]), None);
        let padded = [0x32, 0x08, 0x0a, 0x01, b'a', 0x12, 0x03, 0x18, 0x85, 0x00];
        assert_eq!(round_trip(&padded), None);
        let placeholder = [0x32, 0x0b, 0x0a, 0x01, b'a', 0x12, 0x02, 0x78, 0x00, 0x12, 0x02, 0x18, 0x05];
        assert_eq!(round_trip(&placeholder), None);
        let two_fields = [0x32, 0x09, 0x0a, 0x01, b'a', 0x12, 0x04, 0x18, 0x05, 0x18, 0x06];
        assert_eq!(round_trip(&two_fields), None);
    }

    #[test]
    fn damaged_numbers_leave_the_placeholder() {
        let record = LogRecord { attributes: vec![kv("a", Some(V::IntValue(5)))], ..LogRecord::default() };
        let (mut shape, mut numbers, mut out) = (Vec::new(), String::new(), Vec::new());
        assert!(split(&record.encode_to_vec(), &mut shape, &mut numbers));
        join(&shape, Some("x"), &mut out);
        assert_eq!(out, shape);
        let decoded = LogRecord::decode(out.as_slice()).unwrap();
        assert_eq!(decoded.attributes[0].key, "a");
    }
}
