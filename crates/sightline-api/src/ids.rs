//! Trace ids as Jaeger's HTTP APIs read and write them.
//!
//! Jaeger keeps a trace id as two 64-bit halves: it reads up to 32 hex
//! digits (fewer are left-padded) and, since the v2 query service, base64 of
//! 8 or 16 bytes (`apiv3.TraceIDFromString`); it writes an id whose high
//! half is zero as 16 hex digits, so 64-bit ids from Zipkin-era clients
//! look as they were sent. The all-zero id parses (and is simply never
//! found): Jaeger answers it with 404, not 400.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use sightline_model::TraceId;

/// Parses a trace id as Jaeger does. `Ok(None)` is the all-zero id, which
/// no stored span can have. The error says why the text is not an id.
pub(crate) fn parse_trace_id(text: &str) -> Result<Option<TraceId>, String> {
    let hex_error = match parse_hex(text) {
        Ok(bytes) => return Ok(TraceId::from_bytes(bytes).ok()),
        Err(e) => e,
    };
    // 128 bits are 24 base64 characters with padding, 22 without.
    if text.len() <= 24 {
        for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let Ok(bytes) = engine.decode(text) else { continue };
            let mut id = [0u8; 16];
            match bytes.len() {
                16 => id.copy_from_slice(&bytes),
                8 => id[8..].copy_from_slice(&bytes),
                n => return Err(format!("invalid length for TraceID: {n} bytes")),
            }
            return Ok(TraceId::from_bytes(id).ok());
        }
    }
    Err(hex_error)
}

/// Up to 32 hex digits, left-padded with zeros.
fn parse_hex(text: &str) -> Result<[u8; 16], String> {
    if text.is_empty() {
        return Err("trace id is empty".to_owned());
    }
    if text.len() > 32 {
        return Err(format!("TraceID cannot be longer than 32 hex characters: {}", clip(text)));
    }
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("trace id is not hex: {:?}", clip(text)));
    }
    let mut padded = [b'0'; 32];
    padded[32 - text.len()..].copy_from_slice(text.as_bytes());
    let mut out = [0u8; 16];
    hex::decode_to_slice(padded, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

/// At most 64 characters of user input in an error message.
fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Jaeger's `TraceID.String()`: 16 hex digits when the high half is zero,
/// else 32.
pub(crate) fn jaeger_hex(id: &TraceId) -> String {
    let hex = id.to_hex();
    match hex.strip_prefix("0000000000000000") {
        Some(low) => low.to_owned(),
        None => hex,
    }
}

/// Tempo's `TraceIDToHexString`: hex without leading zeros.
pub(crate) fn tempo_hex(id: &TraceId) -> String {
    let hex = id.to_hex();
    hex.trim_start_matches('0').to_owned()
}
