//! `/api/logs` and `/api/logs/tail` parameters → a [`LogQuery`].

use sightline_model::{BodyMatcher, LogCursor, LogQuery, SpanId, grams_of_substring, words_of_substring};

use crate::error::ApiError;
use crate::ids::parse_trace_id;
use crate::params::{Params, invalid, micros_param, tags};

/// Longest `q` accepted, substring or regex.
const MAX_Q_CHARS: usize = 1000;
/// Compiled-program and lazy-DFA bounds for `q=/regex/`: the regex crate
/// matches in time linear in the text, and these bound its memory per
/// pattern, so no pattern can make a search blow up.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const REGEX_NEST_LIMIT: u32 = 64;

/// Parses the filters shared by search and tail; `paged` adds `limit`
/// and `cursor`.
pub(crate) fn log_query(params: &Params<'_>, paged: bool) -> Result<LogQuery, ApiError> {
    let trace_id = match params.get("traceID") {
        None => None,
        Some(text) => Some(
            parse_trace_id(text)
                .map_err(|e| invalid("traceID", e))?
                .ok_or_else(|| invalid("traceID", "the all-zero trace id is no trace".to_owned()))?,
        ),
    };
    let span_id = match params.get("spanID") {
        None => None,
        Some(text) => Some(text.parse::<SpanId>().map_err(|e| invalid("spanID", format!("{e}: {text:?}")))?),
    };
    let min_severity = match params.get("minSeverity") {
        None => 0,
        Some(text) => severity(text).ok_or_else(|| {
            invalid(
                "minSeverity",
                format!("{text:?} is neither a severity number 0–24 nor a name (TRACE, DEBUG, INFO, WARN, ERROR, FATAL)"),
            )
        })?,
    };
    let body = params.get("q").map(body_matcher).transpose()?;
    // Whole words of a substring search let a store skip data by its word
    // index; a regex gives none.
    let (body_words, body_grams) = match params.get("q") {
        Some(q) if !is_regex(q) => (words_of_substring(q), grams_of_substring(q)),
        _ => (Vec::new(), Vec::new()),
    };
    let start_unix_nanos = micros_param(params, "start")?;
    let end_unix_nanos = micros_param(params, "end")?;
    if let (Some(s), Some(e)) = (start_unix_nanos, end_unix_nanos)
        && e < s
    {
        return Err(ApiError::BadRequest("'end' must not be before 'start'".to_owned()));
    }
    let mut query = LogQuery {
        trace_id,
        span_id,
        service: params.get("service").map(str::to_owned),
        min_severity,
        body,
        body_words,
        body_grams,
        tags: tags(params)?,
        start_unix_nanos,
        end_unix_nanos,
        after: None,
        limit: LogQuery::DEFAULT_LIMIT,
    };
    if paged {
        if let Some(text) = params.get("limit") {
            let n: i64 = text.parse().map_err(|e| invalid("limit", format!("{e}: {text:?}")))?;
            if n < 0 {
                return Err(invalid("limit", format!("must not be negative, got {n}")));
            }
            if n > 0 {
                query.limit = usize::try_from(n).unwrap_or(usize::MAX).min(LogQuery::MAX_LIMIT);
            }
        }
        query.after = params.get("cursor").map(parse_cursor).transpose()?;
    }
    Ok(query)
}

/// A severity name (OTLP's short names, any case, with the `2`–`4`
/// suffixes; `WARNING` too) or number.
fn severity(text: &str) -> Option<i32> {
    if let Ok(n) = text.parse::<i32>() {
        return (0..=24).contains(&n).then_some(n);
    }
    let upper = text.to_ascii_uppercase();
    let (name, step) = match upper.as_bytes().last() {
        Some(d @ b'2'..=b'4') => (&upper[..upper.len() - 1], i32::from(d - b'1')),
        _ => (upper.as_str(), 0),
    };
    let base = match name {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" | "WARNING" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => return None,
    };
    Some(base + step)
}

/// `q=text` (substring, case-sensitive) or `q=/regex/`.
fn body_matcher(q: &str) -> Result<BodyMatcher, ApiError> {
    if q.chars().count() > MAX_Q_CHARS {
        return Err(invalid("q", format!("longer than {MAX_Q_CHARS} characters")));
    }
    match q.strip_prefix('/').and_then(|rest| rest.strip_suffix('/')) {
        Some(pattern) if is_regex(q) => {
            let re = regex::RegexBuilder::new(pattern)
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .nest_limit(REGEX_NEST_LIMIT)
                .build()
                .map_err(|e| invalid("q", format!("invalid regular expression: {e}")))?;
            Ok(BodyMatcher::new(move |text| re.is_match(text)).with_source(q))
        }
        _ => {
            let needle = q.to_owned();
            Ok(BodyMatcher::new(move |text| text.contains(needle.as_str())).with_source(q))
        }
    }
}

/// `q=/…/` is a regular expression; a lone `/` is text.
fn is_regex(q: &str) -> bool {
    q.len() >= 2 && q.starts_with('/') && q.ends_with('/')
}

/// The opaque cursor: `<time ns>-<fingerprint hex>`.
pub(crate) fn format_cursor(c: &LogCursor) -> String {
    format!("{}-{:016x}", c.time_unix_nanos, c.fingerprint)
}

fn parse_cursor(text: &str) -> Result<LogCursor, ApiError> {
    let bad = || invalid("cursor", format!("not a cursor from a previous page: {text:?}"));
    let (time, fp) = text.split_once('-').ok_or_else(bad)?;
    Ok(LogCursor {
        time_unix_nanos: time.parse().map_err(|_| bad())?,
        fingerprint: u64::from_str_radix(fp, 16).map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_by_name_or_number() {
        assert_eq!(severity("warn"), Some(13));
        assert_eq!(severity("WARNING"), Some(13));
        assert_eq!(severity("error3"), Some(19));
        assert_eq!(severity("17"), Some(17));
        assert_eq!(severity("25"), None);
        assert_eq!(severity("loud"), None);
    }

    #[test]
    fn cursors_round_trip() {
        let c = LogCursor { time_unix_nanos: 17, fingerprint: u64::MAX };
        assert_eq!(parse_cursor(&format_cursor(&c)).unwrap(), c);
        assert!(parse_cursor("x").is_err());
    }

    /// What a node sends its peers (`LogQuery::to_pairs`) parses back to
    /// the same query.
    #[test]
    fn a_query_sent_to_a_peer_reads_back_the_same() {
        let raw = "traceID=0af7651916cd43dd8448eb211c80319c&spanID=b7ad6b7169203331&service=api&\
                   minSeverity=warn&q=%2Ftime%5Bo%5Dut%2F&tags=%7B%22a%3Ab%22%3A%22x%22%7D&start=5&end=9&limit=7&\
                   cursor=8000-00000000000000ff";
        let query = log_query(&Params::parse(raw), true).unwrap();
        let pairs = query.to_pairs().unwrap();
        let encoded: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs.iter().map(|(k, v)| (*k, v)))
            .finish();
        let back = log_query(&Params::parse(&encoded), true).unwrap();
        assert_eq!(back.trace_id, query.trace_id);
        assert_eq!(back.span_id, query.span_id);
        assert_eq!(back.service.as_deref(), Some("api"));
        assert_eq!(back.min_severity, 13);
        assert_eq!(back.body.as_ref().and_then(BodyMatcher::source), Some("/time[o]ut/"));
        assert!(back.body.as_ref().is_some_and(|b| b.matches("a timeout")));
        assert_eq!(back.tags.len(), 1);
        assert_eq!((back.tags[0].key.as_str(), back.tags[0].value.as_str()), ("a:b", "x"));
        assert_eq!((back.start_unix_nanos, back.end_unix_nanos), (Some(5000), Some(9000)));
        assert_eq!((back.limit, back.after), (7, query.after));
        // A body condition not built from a q text cannot be sent.
        let opaque = LogQuery { body: Some(BodyMatcher::new(|_| true)), ..LogQuery::default() };
        assert!(opaque.to_pairs().is_none());
    }

    #[test]
    fn regex_bodies_are_bounded() {
        assert!(body_matcher("/a+b/").unwrap().matches("xaab"));
        assert!(!body_matcher("/^b/").unwrap().matches("ab"));
        assert!(body_matcher("/(/").is_err());
        // A pattern whose compiled program exceeds the size limit.
        assert!(body_matcher(r"/\w{1000}\w{1000}/").is_err());
        assert!(body_matcher("/").unwrap().matches("a/b"), "a lone slash is a substring");
    }
}
