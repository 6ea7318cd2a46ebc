//! RFC 3339 times as Jaeger API v3 reads them: Go's
//! `time.Parse(time.RFC3339Nano, …)`, i.e. `2006-01-02T15:04:05Z`, an
//! optional fraction of up to nine digits (`.` or `,`), and `Z` or a
//! `±hh:mm` offset. Ranges are checked as Go checks them (no 31 April, no
//! leap second).

/// Parses `text` into ns since the Unix epoch (negative before 1970).
pub(crate) fn parse_rfc3339(text: &str) -> Result<i128, String> {
    let fail = |why: &str| format!("parsing time {text:?} as RFC 3339: {why}");
    let b = text.as_bytes();
    let num = |from: usize, len: usize, what: &str| -> Result<i64, String> {
        let digits = b.get(from..from + len).ok_or_else(|| fail(&format!("missing {what}")))?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return Err(fail(&format!("cannot parse {what}")));
        }
        Ok(digits.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |at: usize, want: &[u8]| -> Result<(), String> {
        match b.get(at) {
            Some(c) if want.contains(c) => Ok(()),
            _ => Err(fail(&format!("expected {:?} at offset {at}", want[0] as char))),
        }
    };
    let year = num(0, 4, "year")?;
    sep(4, b"-")?;
    let month = num(5, 2, "month")?;
    sep(7, b"-")?;
    let day = num(8, 2, "day")?;
    sep(10, b"T")?;
    let hour = num(11, 2, "hour")?;
    sep(13, b":")?;
    let minute = num(14, 2, "minute")?;
    sep(16, b":")?;
    let second = num(17, 2, "second")?;
    let mut at = 19;
    let mut nanos: i64 = 0;
    if matches!(b.get(at), Some(b'.' | b',')) {
        let digits = b[at + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return Err(fail("bad fractional second"));
        }
        let frac = num(at + 1, digits, "fractional second")?;
        nanos = frac * 10i64.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let offset_seconds = match b.get(at) {
        Some(b'Z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() => {
            let h = num(at + 1, 2, "zone hour")?;
            sep(at + 3, b":")?;
            let m = num(at + 4, 2, "zone minute")?;
            if h > 23 || m > 59 {
                return Err(fail("time zone offset out of range"));
            }
            let s = h * 3600 + m * 60;
            if *sign == b'-' { -s } else { s }
        }
        _ => return Err(fail("expected Z or a ±hh:mm zone at the end")),
    };
    if !(1..=12).contains(&month) {
        return Err(fail("month out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(fail("day out of range"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(fail("time out of range"));
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    Ok(i128::from(seconds) * 1_000_000_000 + i128::from(nanos))
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// ns since the epoch as the store's unsigned time, clamped at 1970 and
/// at the end of `u64`.
pub(crate) fn to_unix_nanos(nanos: i128) -> u64 {
    u64::try_from(nanos.max(0)).unwrap_or(u64::MAX)
}
