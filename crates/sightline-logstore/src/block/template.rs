//! Body templates (`sl-logs3`): a body is stored as its *template* — the
//! text with each run of ASCII digits replaced by [`MARK`] — and its
//! *numbers*, the digit runs joined by spaces.
//!
//! Why: log lines are a few fixed phrasings with numbers in them (ids,
//! durations, counts). Kept whole, zstd pays a match or two per phrase
//! piece and per number in every record; split, the templates repeat
//! exactly (the column's dictionary stores each once per row group) and
//! the numbers column is almost only digits, which zstd's entropy coder
//! packs near their information content. On `loadgen logs-bench` the body
//! went from 11.6 to 8.7 bytes a record (BENCHMARKS.md).
//!
//! The split exists only in the file: readers rebuild the body right after
//! decoding (`to_logical`), so searches, merges and the word index see the
//! text as received.

use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::cast::AsArray as _;
use arrow_array::{Array as _, ArrayRef, StringArray};
use arrow_schema::ArrowError;

/// Stands for one digit run in a template. A control character: bodies
/// rarely hold it, and one that does is stored verbatim (no numbers).
pub(crate) const MARK: char = '\u{1}';

/// Splits `body` into `template` and `numbers` (both cleared first).
/// Returns false when the body is stored verbatim: it holds [`MARK`]
/// itself, or no digits (`numbers` then stays empty and is stored null).
pub(crate) fn split(body: &str, template: &mut String, numbers: &mut String) -> bool {
    template.clear();
    numbers.clear();
    let bytes = body.as_bytes();
    if !bytes.iter().any(u8::is_ascii_digit) || body.contains(MARK) {
        return false;
    }
    let mut i = 0;
    let mut start = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let run = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            // Digits are ASCII: `run` and `i` are char boundaries.
            template.push_str(&body[start..run]);
            template.push(MARK);
            if !numbers.is_empty() {
                numbers.push(' ');
            }
            numbers.push_str(&body[run..i]);
            start = i;
        } else {
            i += 1;
        }
    }
    template.push_str(&body[start..]);
    true
}

/// The body of `template` and `numbers` into `out` (cleared first): each
/// [`MARK`] becomes the next space-separated number; a mark without one
/// left (a damaged file) stays as it is.
pub(crate) fn join(template: &str, numbers: Option<&str>, out: &mut String) {
    out.clear();
    let Some(numbers) = numbers else {
        out.push_str(template);
        return;
    };
    let mut numbers = numbers.split(' ');
    let mut pieces = template.split(MARK);
    if let Some(first) = pieces.next() {
        out.push_str(first);
    }
    for piece in pieces {
        match numbers.next() {
            Some(n) => out.push_str(n),
            None => out.push(MARK),
        }
        out.push_str(piece);
    }
}

/// The `template` and `numbers` columns of a body column.
pub(crate) fn split_column(body: &StringArray) -> (ArrayRef, ArrayRef) {
    let n = body.len();
    let mut templates = StringBuilder::with_capacity(n, body.value_data().len());
    let mut numbers = StringBuilder::with_capacity(n, n * 16);
    let (mut t, mut d) = (String::new(), String::new());
    for row in 0..n {
        if body.is_null(row) {
            templates.append_null();
            numbers.append_null();
        } else if split(body.value(row), &mut t, &mut d) {
            templates.append_value(&t);
            numbers.append_value(&d);
        } else {
            templates.append_value(body.value(row));
            numbers.append_null();
        }
    }
    (Arc::new(templates.finish()), Arc::new(numbers.finish()))
}

/// The body column of `template` and `numbers` columns.
pub(crate) fn join_column(templates: &ArrayRef, numbers: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let templates = templates
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError("body template column is not text".to_owned()))?;
    let numbers = numbers
        .as_string_opt::<i32>()
        .ok_or_else(|| ArrowError::SchemaError("body numbers column is not text".to_owned()))?;
    let n = templates.len();
    let mut out = StringBuilder::with_capacity(n, templates.value_data().len() + numbers.value_data().len());
    let mut text = String::new();
    for row in 0..n {
        if templates.is_null(row) {
            out.append_null();
        } else {
            let nums = (!numbers.is_null(row)).then(|| numbers.value(row));
            join(templates.value(row), nums, &mut text);
            out.append_value(&text);
        }
    }
    Ok(Arc::new(out.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(body: &str) -> (String, Option<String>) {
        let (mut t, mut d, mut out) = (String::new(), String::new(), String::new());
        let numbers = split(body, &mut t, &mut d).then(|| d.clone());
        let template = if numbers.is_some() { t.clone() } else { body.to_owned() };
        join(&template, numbers.as_deref(), &mut out);
        assert_eq!(out, body, "{body:?} → {template:?} + {numbers:?}");
        (template, numbers)
    }

    #[test]
    fn digit_runs_become_numbers_and_come_back() {
        let (t, d) = round_trip("GET /api/orders 200 in 45ms order=007123 user=u12345");
        assert_eq!(t, "GET /api/orders \u{1} in \u{1}ms order=\u{1} user=u\u{1}");
        assert_eq!(d.as_deref(), Some("200 45 007123 12345"), "leading zeros kept: digits are text");
        let (t, d) = round_trip("12 x 99999999999999999999999999 y 3");
        assert_eq!(
            (t.as_str(), d.as_deref()),
            ("\u{1} x \u{1} y \u{1}", Some("12 99999999999999999999999999 3"))
        );
        for verbatim in ["", "no digits here", "ünïcödé ✓", "a \u{1} mark and 42"] {
            assert_eq!(round_trip(verbatim), (verbatim.to_owned(), None), "{verbatim:?} is stored as it is");
        }
        round_trip("ünï 1 cödé 22✓333");
        round_trip("١٢٣ arabic digits are not ASCII 4");
    }

    #[test]
    fn columns_round_trip_with_nulls() {
        let body = StringArray::from(vec![Some("a 1 b 22"), None, Some("plain"), Some("\u{1}7"), Some("")]);
        let (t, d) = split_column(&body);
        assert_eq!(d.as_string::<i32>().iter().collect::<Vec<_>>(), [Some("1 22"), None, None, None, None]);
        let back = join_column(&t, &d).unwrap();
        assert_eq!(back.as_string::<i32>(), &body);
    }

    #[test]
    fn a_template_with_more_marks_than_numbers_keeps_the_rest() {
        let mut out = String::new();
        join("a\u{1}b\u{1}c", Some("5"), &mut out);
        assert_eq!(out, "a5b\u{1}c");
    }
}
