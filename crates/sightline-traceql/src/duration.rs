//! Duration literals as Tempo reads and writes them.
//!
//! Tempo first tries Prometheus' format (`1y2w3d4h5m6s7ms`, integers, units
//! in that order) and then Go's `time.ParseDuration` (`1.5h`, `300us`,
//! `1h15m30.918s`). Both are accepted here, with the same results.

const NS: i64 = 1;
const US: i64 = 1_000;
const MS: i64 = 1_000_000;
const S: i64 = 1_000_000_000;
const M: i64 = 60 * S;
const H: i64 = 60 * M;
const D: i64 = 24 * H;
const W: i64 = 7 * D;
const Y: i64 = 365 * D;

/// Parses a duration literal (no sign) into nanoseconds.
pub(crate) fn parse(text: &str) -> Option<i64> {
    parse_prometheus(text).or_else(|| parse_go(text))
}

/// Prometheus' `model.ParseDuration`: integer amounts, units y w d h m s ms
/// each at most once and in that order; `0` alone is zero.
fn parse_prometheus(text: &str) -> Option<i64> {
    if text == "0" {
        return Some(0);
    }
    if text.is_empty() {
        return None;
    }
    const UNITS: [(&str, i64); 7] = [("y", Y), ("w", W), ("d", D), ("h", H), ("m", M), ("s", S), ("ms", MS)];
    let mut rest = text;
    let mut next_unit = 0;
    let mut total: i64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let amount: i64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let found = UNITS[next_unit..].iter().position(|(name, _)| *name == unit)?;
        let (_, scale) = UNITS[next_unit + found];
        next_unit += found + 1;
        total = total.checked_add(amount.checked_mul(scale)?)?;
    }
    Some(total)
}

/// Go's `time.ParseDuration` without the sign: a sequence of decimal
/// numbers with optional fraction, each with a unit (ns us µs ms s m h).
fn parse_go(text: &str) -> Option<i64> {
    if text == "0" {
        return Some(0);
    }
    if text.is_empty() {
        return None;
    }
    let mut rest = text;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int_part = &rest[..int_len];
        rest = &rest[int_len..];
        let mut frac_part = "";
        if let Some(after_dot) = rest.strip_prefix('.') {
            let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
            frac_part = &after_dot[..frac_len];
            rest = &after_dot[frac_len..];
        }
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale: u64 = match &rest[..unit_len] {
            "ns" => NS as u64,
            "us" | "µs" | "μs" => US as u64,
            "ms" => MS as u64,
            "s" => S as u64,
            "m" => M as u64,
            "h" => H as u64,
            _ => return None,
        };
        rest = &rest[unit_len..];
        let whole: u64 = if int_part.is_empty() { 0 } else { int_part.parse().ok()? };
        let mut value = whole.checked_mul(scale)?;
        if !frac_part.is_empty() {
            // As Go does: the fraction's digits as an integer over a power of
            // ten, scaled in floating point and truncated.
            let mut frac: u64 = 0;
            let mut denom: f64 = 1.0;
            for b in frac_part.bytes() {
                if frac > (1 << 62) / 10 {
                    break; // more digits than can matter
                }
                frac = frac * 10 + u64::from(b - b'0');
                denom *= 10.0;
            }
            value = value.checked_add((frac as f64 * (scale as f64 / denom)) as u64)?;
        }
        total = total.checked_add(value)?;
    }
    i64::try_from(total).ok()
}

/// Writes `nanos` as a literal that [`parse`] reads back exactly: the
/// largest unit that divides it, e.g. `1500ms`, `2h`, `0s`. Negative values
/// get a leading `-`.
pub(crate) fn literal(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let magnitude = nanos.unsigned_abs();
    for (unit, scale) in [("h", H), ("m", M), ("s", S), ("ms", MS), ("us", US)] {
        if magnitude.is_multiple_of(scale as u64) {
            return format!("{sign}{}{unit}", magnitude / scale as u64);
        }
    }
    format!("{sign}{magnitude}ns")
}

/// Formats `nanos` as Go's `time.Duration.String` does (`1h0m0s`, `1.5s`,
/// `250ms`, `1µs`, `0s`): Tempo renders duration values in search results
/// that way.
pub(crate) fn go_string(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let negative = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < S as u64 {
        // Sub-second: one unit with a fraction.
        let (scale, unit) = if u < US as u64 {
            (1u64, "ns")
        } else if u < MS as u64 {
            (US as u64, "µs")
        } else {
            (MS as u64, "ms")
        };
        push_fraction(&mut out, u, scale);
        out.push_str(unit);
    } else {
        let hours = u / H as u64;
        let minutes = (u / M as u64) % 60;
        let seconds = u % M as u64;
        if hours > 0 {
            out.push_str(&format!("{hours}h{minutes}m"));
        } else if minutes > 0 {
            out.push_str(&format!("{minutes}m"));
        }
        push_fraction(&mut out, seconds, S as u64);
        out.push('s');
    }
    if negative {
        out.insert(0, '-');
    }
    out
}

/// `value / scale` with the fraction's trailing zeros (and a bare dot) cut.
fn push_fraction(out: &mut String, value: u64, scale: u64) {
    out.push_str(&(value / scale).to_string());
    let frac = value % scale;
    if frac > 0 {
        let width = scale.to_string().len() - 1;
        let digits = format!("{frac:0width$}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_formats() {
        for (text, nanos) in [
            ("1ns", 1),
            ("1us", US),
            ("1µs", US),
            ("1ms", MS),
            ("1s", S),
            ("1m", M),
            ("1h", H),
            ("1d", D),
            ("1w", W),
            ("1y", Y),
            ("1h30m", H + 30 * M),
            ("1.5s", 1_500_000_000),
            (".5s", 500_000_000),
            ("1h15m30.918273645s", H + 15 * M + 30 * S + 918_273_645),
            ("1s500ms", 1_500_000_000),
        ] {
            assert_eq!(parse(text), Some(nanos), "{text}");
        }
        for bad in ["", "1", "s", "1x", "1d1y", "1.5d", "1..5s", "999999999999h"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn literals_round_trip() {
        for nanos in [1, 999, 1000, 1_500_000, S, 90 * M, 3 * H, -5 * S, 7 * D + 1, i64::MAX] {
            assert_eq!(
                parse(literal(nanos).trim_start_matches('-')).map(|n| n * nanos.signum()),
                Some(nanos)
            );
        }
    }

    #[test]
    fn go_strings() {
        for (nanos, text) in [
            (0, "0s"),
            (1, "1ns"),
            (1500, "1.5µs"),
            (250 * MS, "250ms"),
            (1_500_000_000, "1.5s"),
            (H, "1h0m0s"),
            (H + 90 * S, "1h1m30s"),
            (-2 * S, "-2s"),
            (61 * S + 5 * MS, "1m1.005s"),
        ] {
            assert_eq!(go_string(nanos), text);
        }
    }
}
