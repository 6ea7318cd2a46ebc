//! What decoding a body will cost in memory, counted before decoding.
//!
//! A body's wire size says little about its decoded size: an empty span is
//! 2 bytes of protobuf or 3 of JSON but hundreds of bytes once decoded, so
//! a 20 MiB body of them decodes to gigabytes. The receivers therefore
//! walk the body's structure first — without allocating — and charge the
//! in-flight budget for what the decoded form will take; a body whose
//! decoded form would not fit is refused before it is decoded.
//!
//! - [`proto_cost`] walks protobuf wire format along a table of message
//!   types ([`MessageCost`]): each receiver declares its schema's costs once
//!   (a new signal adds one table).
//! - [`json_shape`] counts the values, members and nesting of a JSON text,
//!   which bounds both the `serde_json::Value` tree and what it becomes.

/// A protobuf message type as the cost walker sees it: what one instance
/// costs once decoded (its structs, counted as a list element, so growth
/// slack included) and which fields hold sub-messages. Other fields are
/// skipped by wire type; their bytes are charged by the caller as body
/// bytes (strings are copied once out of the body).
#[derive(Debug)]
pub struct MessageCost {
    /// Bytes one decoded instance takes beyond its string contents.
    pub bytes: usize,
    /// `(field number, type)` of the fields holding messages.
    pub fields: &'static [(u32, &'static MessageCost)],
    /// `(field number, bytes per wire byte)` of scalar fields whose decoded
    /// form is larger than their encoding: repeated varints (a packed
    /// one-byte `uint64` decodes to eight bytes in a growing `Vec`).
    pub per_byte: &'static [(u32, usize)],
}

/// The deepest message nesting accepted: prost's own recursion limit, so
/// the walk fails exactly where decoding would.
pub const MAX_PROTO_DEPTH: u32 = 100;

/// The decoded cost of the protobuf message `buf` of type `root`: the sum
/// of [`MessageCost::bytes`] over every message instance in it. Fails on
/// malformed wire format, with the byte offset.
pub fn proto_cost(buf: &[u8], root: &MessageCost) -> Result<usize, String> {
    walk(buf, root, 0, 0)
}

fn walk(buf: &[u8], msg: &MessageCost, depth: u32, base: usize) -> Result<usize, String> {
    if depth > MAX_PROTO_DEPTH {
        return Err(format!("messages nested deeper than {MAX_PROTO_DEPTH} levels at byte {base}"));
    }
    let mut total = msg.bytes;
    if msg.fields.is_empty() && msg.per_byte.is_empty() {
        return Ok(total);
    }
    let grows = |field: u32| msg.per_byte.iter().find(|(n, _)| *n == field).map(|(_, per)| *per);
    let mut at = 0usize;
    while at < buf.len() {
        let start = at;
        let key =
            varint(buf, &mut at).ok_or_else(|| format!("truncated field key at byte {}", base + start))?;
        let field = u32::try_from(key >> 3).unwrap_or(u32::MAX);
        let skip = match key & 7 {
            0 => {
                varint(buf, &mut at).ok_or_else(|| format!("truncated varint at byte {}", base + start))?;
                if let Some(per) = grows(field) {
                    total = total.saturating_add((at - start).saturating_mul(per));
                }
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let len = varint(buf, &mut at)
                    .and_then(|l| usize::try_from(l).ok())
                    .ok_or_else(|| format!("truncated length at byte {}", base + start))?;
                let body = at
                    .checked_add(len)
                    .and_then(|end| buf.get(at..end))
                    .ok_or_else(|| format!("field {field} at byte {} runs past its message", base + start))?;
                if let Some((_, child)) = msg.fields.iter().find(|(n, _)| *n == field) {
                    total = total.saturating_add(walk(body, child, depth + 1, base + at)?);
                } else if let Some(per) = grows(field) {
                    total = total.saturating_add(len.saturating_mul(per));
                }
                len
            }
            3 => {
                // A (deprecated) group: skipped like prost skips unknown ones.
                skip_group(buf, &mut at, field, depth + 1, base)?;
                0
            }
            wire => return Err(format!("unexpected wire type {wire} at byte {}", base + start)),
        };
        at = at
            .checked_add(skip)
            .filter(|end| *end <= buf.len())
            .ok_or_else(|| format!("field {field} at byte {} runs past its message", base + start))?;
    }
    Ok(total)
}

/// Skips a group's fields up to its end-group key for `field`.
fn skip_group(buf: &[u8], at: &mut usize, field: u32, depth: u32, base: usize) -> Result<(), String> {
    if depth > MAX_PROTO_DEPTH {
        return Err(format!("groups nested deeper than {MAX_PROTO_DEPTH} levels at byte {}", base + *at));
    }
    loop {
        let start = *at;
        let key = varint(buf, at).ok_or_else(|| format!("unterminated group at byte {}", base + start))?;
        let inner = u32::try_from(key >> 3).unwrap_or(u32::MAX);
        let skip = match key & 7 {
            0 => {
                varint(buf, at).ok_or_else(|| format!("truncated varint at byte {}", base + start))?;
                0
            }
            1 => 8,
            5 => 4,
            2 => varint(buf, at)
                .and_then(|l| usize::try_from(l).ok())
                .ok_or_else(|| format!("truncated length at byte {}", base + start))?,
            3 => {
                skip_group(buf, at, inner, depth + 1, base)?;
                0
            }
            4 if inner == field => return Ok(()),
            wire => return Err(format!("unexpected wire type {wire} at byte {}", base + start)),
        };
        *at = at
            .checked_add(skip)
            .filter(|end| *end <= buf.len())
            .ok_or_else(|| format!("field {inner} at byte {} runs past its message", base + start))?;
    }
}

fn varint(buf: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *buf.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// The structure of a JSON text, counted without building it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JsonShape {
    /// Objects and arrays.
    pub containers: usize,
    /// Values of any kind (an upper bound: separators plus containers).
    pub values: usize,
    /// Object members (`"key": value`).
    pub members: usize,
    /// Strings, keys included.
    pub strings: usize,
    /// Deepest nesting of containers.
    pub depth: usize,
}

impl JsonShape {
    /// Bytes a `serde_json::Value` tree of this shape takes: a 32-byte
    /// `Value` per value (doubled for `Vec` growth), a B-tree entry per
    /// member (key `String` + `Value` + node overhead, ~128 bytes), a
    /// rounded allocation per string, and the text's bytes for string
    /// contents.
    pub fn value_tree_bytes(&self, text_len: usize) -> usize {
        self.values
            .saturating_mul(64)
            .saturating_add(self.members.saturating_mul(128))
            .saturating_add(self.strings.saturating_mul(16))
            .saturating_add(text_len)
    }
}

/// Counts `text`'s structure in one pass, failing when containers nest
/// deeper than `max_depth`. Syntax is not checked (the parser does that);
/// the counts are upper bounds for any text.
pub fn json_shape(text: &[u8], max_depth: usize) -> Result<JsonShape, String> {
    let mut shape = JsonShape::default();
    let mut depth = 0usize;
    let mut commas = 0usize;
    let mut at = 0usize;
    while let Some(&byte) = text.get(at) {
        match byte {
            b'"' => {
                shape.strings += 1;
                at += 1;
                while let Some(&c) = text.get(at) {
                    match c {
                        b'\\' => at += 2,
                        b'"' => break,
                        _ => at += 1,
                    }
                }
            }
            b'{' | b'[' => {
                shape.containers += 1;
                depth += 1;
                if depth > max_depth {
                    return Err(format!("JSON nested deeper than {max_depth} levels at byte {at}"));
                }
                shape.depth = shape.depth.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b':' => shape.members += 1,
            b',' => commas += 1,
            _ => {}
        }
        at += 1;
    }
    shape.values = commas.saturating_add(shape.containers).saturating_add(1);
    Ok(shape)
}
