//! Go's `time.ParseDuration`, which Jaeger uses for `minDuration` and
//! `maxDuration`.
//!
//! Reimplemented rather than approximated with a Rust duration parser because
//! clients build these strings for Jaeger: the grammar (`1h2m3.5s`, `10µs`,
//! a bare `0`, an optional sign), the overflow rules and the error texts all
//! follow Go's `time/format.go`.

use std::fmt;

/// Why a duration string is not a Go duration. The texts are Go's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DurationError {
    /// Malformed or out of range.
    Invalid { input: String },
    /// A number without a unit, e.g. `"10"`.
    MissingUnit { input: String },
    /// A unit Go doesn't know, e.g. `"10d"`.
    UnknownUnit { unit: String, input: String },
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Invalid { input } => write!(f, "time: invalid duration {input:?}"),
            DurationError::MissingUnit { input } => write!(f, "time: missing unit in duration {input:?}"),
            DurationError::UnknownUnit { unit, input } => {
                write!(f, "time: unknown unit {unit:?} in duration {input:?}")
            }
        }
    }
}

impl std::error::Error for DurationError {}

/// 2^63: the magnitude limit Go checks against while accumulating.
const LIMIT: u64 = 1 << 63;

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // U+00B5 (micro sign) and U+03BC (Greek mu), as Go accepts both.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration string into signed nanoseconds, exactly as Go's
/// `time.ParseDuration` does (`[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`).
pub(crate) fn parse_go_duration(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid { input: input.to_owned() };
    let mut s = input.as_bytes();
    let mut neg = false;
    if let Some((&c, rest)) = s.split_first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while let Some(&first) = s.first() {
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part: [0-9]*
        let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &s[..digits] {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(c - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        let pre = digits > 0;
        s = &s[digits..];
        // Fraction: (\.[0-9]*)? — digits past what fits are dropped, as in Go.
        let (mut frac, mut scale, mut post) = (0u64, 1f64, false);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &s[..digits] {
                if overflow {
                    continue;
                }
                if frac > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = frac * 10 + u64::from(c - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                frac = y;
                scale *= 10.0;
            }
            post = digits > 0;
            s = &s[digits..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or dot. It ends at an ASCII
        // byte or the end, so the slice is valid UTF-8.
        let unit_len = s.iter().take_while(|&&c| !(c == b'.' || c.is_ascii_digit())).count();
        if unit_len == 0 {
            return Err(DurationError::MissingUnit { input: input.to_owned() });
        }
        let unit_text = String::from_utf8_lossy(&s[..unit_len]);
        let Some(unit) = unit_nanos(&unit_text) else {
            return Err(DurationError::UnknownUnit { unit: unit_text.into_owned(), input: input.to_owned() });
        };
        s = &s[unit_len..];
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if frac > 0 {
            // Go computes the fractional part in floating point and truncates.
            let extra = (frac as f64 * (unit as f64 / scale)) as u64;
            v = v.saturating_add(extra);
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total = total.saturating_add(v);
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        // NOTE: total <= 2^63 here, so the negation fits (2^63 → i64::MIN).
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// Go's `time.Duration.String()`: `1h2m3.5s`, `2m0s`, `1.5µs`, `0s`. Jaeger
/// writes its adjuster warnings with it.
pub(crate) fn format_go_duration(nanos: i64) -> String {
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0 => return "0s".to_owned(),
            1..=999 => (0, "ns"),
            1_000..=999_999 => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        let frac = fraction(&mut u, prec);
        out.push_str(&u.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let frac = fraction(&mut u, 9);
        let seconds = u % 60;
        u /= 60;
        if u > 0 {
            let minutes = u % 60;
            u /= 60;
            if u > 0 {
                out.push_str(&format!("{u}h"));
            }
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&format!("{seconds}{frac}s"));
    }
    if nanos < 0 {
        out.insert(0, '-');
    }
    out
}

/// Go's `fmtFrac`: the last `prec` digits of `v` as `.ddd` without
/// trailing zeros (nothing when they are all zero); `v` keeps the rest.
fn fraction(v: &mut u64, prec: u32) -> String {
    let mut digits = Vec::new();
    let mut print = false;
    for _ in 0..prec {
        let digit = (*v % 10) as u8;
        print = print || digit != 0;
        if print {
            digits.push(b'0' + digit);
        }
        *v /= 10;
    }
    if !print {
        return String::new();
    }
    digits.push(b'.');
    digits.reverse();
    String::from_utf8(digits).unwrap_or_default()
}
