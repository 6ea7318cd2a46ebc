//! The front's parts on their own: budget, bounded inflation, cost walkers.

use std::io::{Read, Write as _};

use flate2::Compression;
use flate2::write::GzEncoder;

use super::FailureKind;
use super::body::{InflateError, read_to_limit};
use super::budget::Budget;
use super::cost::{MessageCost, json_shape, proto_cost};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// Counts the compressed bytes the decompressor pulls.
struct Counting<'a> {
    inner: &'a [u8],
    read: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = Read::read(&mut self.inner, buf)?;
        self.read += n;
        Ok(n)
    }
}

#[test]
fn inflating_stops_reading_a_bomb_at_the_limit() {
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    for _ in 0..100 {
        enc.write_all(&[0u8; 1 << 20]).unwrap();
    }
    let bomb = enc.finish().unwrap();
    let budget = Budget::new(128 << 20);
    let mut claim = budget.claim();
    let mut input = Counting { inner: &bomb, read: 0 };
    let limit = 1 << 20;
    let result = read_to_limit(flate2::read::MultiGzDecoder::new(&mut input), limit, &mut claim);
    assert!(matches!(result, Err(InflateError::TooLarge)), "{result:?}");
    // 1 MiB of output needs about 1 KiB of input; the decoder buffers 32 KiB.
    assert!(input.read <= 64 * 1024, "read {} of {} compressed bytes", input.read, bomb.len());
    assert!(bomb.len() > 64 * 1024);
    assert!(claim.held() <= 2 * limit);
}

#[test]
fn inflating_charges_the_budget_and_one_request_never_takes_more_than_all_of_it() {
    let data = vec![7u8; 200_000];
    let budget = Budget::new(300_000);
    let mut hog = budget.claim();
    assert!(hog.try_grow(250_000));
    let mut claim = budget.claim();
    let result = read_to_limit(flate2::read::MultiGzDecoder::new(&gzip(&data)[..]), 1 << 20, &mut claim);
    let Err(InflateError::Budget(failure)) = result else { panic!("{result:?}") };
    assert_eq!(failure.kind(), FailureKind::Overloaded, "retryable: the budget comes back");
    drop((hog, claim));
    let mut claim = budget.claim();
    let out =
        read_to_limit(flate2::read::MultiGzDecoder::new(&gzip(&data)[..]), 1 << 20, &mut claim).unwrap();
    assert_eq!(out, data);
    assert!(claim.held() >= data.len());
    // More than the whole budget can never fit: not retryable.
    let failure = claim.grow(300_000).unwrap_err();
    assert_eq!(failure.kind(), FailureKind::TooLarge);
    assert!(failure.message().contains("--memory-limit"), "{failure}");
    drop(claim);
    assert_eq!(budget.available(), 300_000);
}

#[test]
fn claims_shrink_and_release() {
    let budget = Budget::new(1000);
    let mut claim = budget.claim();
    claim.grow(600).unwrap();
    claim.shrink_to(100);
    assert_eq!((claim.held(), budget.available()), (100, 900));
    claim.shrink_to(500);
    assert_eq!(claim.held(), 100, "shrink_to never grows");
    drop(claim);
    assert_eq!(budget.available(), 1000);
}

static LEAF: MessageCost = MessageCost { bytes: 10, fields: &[], per_byte: &[] };
static NODE: MessageCost = MessageCost { bytes: 100, fields: &[(1, &LEAF), (2, &NODE)], per_byte: &[] };

#[test]
fn proto_cost_counts_every_message_along_the_schema() {
    // NODE { 1: LEAF{}, 1: LEAF{"x"}, 3: "not a message", 4: varint, 5: fixed64, 2: NODE { 1: LEAF{} } }
    let inner_node = [0x0a, 0x00];
    let mut buf = vec![0x0a, 0x00, 0x0a, 0x02, 0x08, 0x01, 0x1a, 0x03, b'a', b'b', b'c', 0x20, 0x96, 0x01];
    buf.extend_from_slice(&[0x29, 1, 2, 3, 4, 5, 6, 7, 8]);
    buf.extend_from_slice(&[0x12, inner_node.len() as u8]);
    buf.extend_from_slice(&inner_node);
    assert_eq!(proto_cost(&buf, &NODE), Ok(100 + 10 + 10 + 100 + 10));
    assert_eq!(proto_cost(&[], &NODE), Ok(100));
    // Malformed: a length past the end, a truncated varint, a group.
    assert!(proto_cost(&[0x0a, 0x05, 0x00], &NODE).unwrap_err().contains("runs past"));
    assert!(proto_cost(&[0x20, 0x96], &NODE).unwrap_err().contains("truncated varint"));
    assert!(proto_cost(&[0x0b], &NODE).unwrap_err().contains("unterminated group"));
    // A group is skipped as prost skips unknown ones: 3: group { 1: varint }.
    assert_eq!(proto_cost(&[0x1b, 0x08, 0x01, 0x1c], &NODE), Ok(100));
    assert!(proto_cost(&[0x1c], &NODE).unwrap_err().contains("wire type 4"));
    // Nesting past prost's limit fails like decoding would.
    let mut deep: Vec<u8> = Vec::new();
    for _ in 0..120 {
        let mut outer = vec![0x12];
        let mut len = deep.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                outer.push(byte);
                break;
            }
            outer.push(byte | 0x80);
        }
        outer.extend_from_slice(&deep);
        deep = outer;
    }
    assert!(proto_cost(&deep, &NODE).unwrap_err().contains("deeper than 100"));
}

#[test]
fn json_shape_counts_structure_outside_strings() {
    let shape = json_shape(br#"{"a": [1, {"b": "x,y:{["}, []], "c\"": null}"#, 10).unwrap();
    assert_eq!(shape.containers, 4);
    assert_eq!(shape.members, 3);
    assert_eq!(shape.strings, 4);
    assert_eq!(shape.depth, 3);
    assert_eq!(shape.values, 3 + 4 + 1);
    assert!(json_shape(b"[[[[1]]]]", 3).unwrap_err().contains("deeper than 3"));
    // Many empty objects: 3 bytes each, at least 64 bytes each as a Value tree.
    let many = format!("[{}{{}}]", "{},".repeat(1000));
    let shape = json_shape(many.as_bytes(), 10).unwrap();
    assert_eq!(shape.containers, 1002);
    assert!(shape.value_tree_bytes(many.len()) >= 1001 * 64);
}
