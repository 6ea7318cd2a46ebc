//! The log search definition and the reader contract the query API speaks
//! to: what a log store answers, independent of how it stores records.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{broadcast, mpsc};

use crate::{LogBatch, LogRecord, QueryError, SpanId, TagFilter, Tenant, TraceId};

/// A body text predicate (a substring or a bounded regex, built by the
/// API). A function rather than a regex type so this crate does no text
/// matching of its own and needs no regex engine.
#[derive(Clone)]
pub struct BodyMatcher(Arc<dyn Fn(&str) -> bool + Send + Sync>, Option<Arc<str>>);

impl BodyMatcher {
    /// Wraps a predicate over the body's text (see [`crate::Value::to_text`]).
    pub fn new(f: impl Fn(&str) -> bool + Send + Sync + 'static) -> BodyMatcher {
        BodyMatcher(Arc::new(f), None)
    }

    /// The same predicate, remembering the API's `q` text it was built
    /// from, so the search can be sent on to another node
    /// ([`LogQuery::to_pairs`]).
    pub fn with_source(mut self, q: &str) -> BodyMatcher {
        self.1 = Some(Arc::from(q));
        self
    }

    /// The API's `q` text this predicate was built from, if known.
    pub fn source(&self) -> Option<&str> {
        self.1.as_deref()
    }

    /// Whether `text` matches.
    pub fn matches(&self, text: &str) -> bool {
        (self.0)(text)
    }
}

impl fmt::Debug for BodyMatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyMatcher(..)")
    }
}

/// Where a page of results ended: the sort key of its last record. Records
/// are ordered newest first by `(time, fingerprint)`, so the key is unique
/// per distinct record and paging neither skips nor repeats one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogCursor {
    /// [`LogRecord::timestamp`] of the last record returned.
    pub time_unix_nanos: u64,
    /// [`LogRecord::fingerprint`] of that record.
    pub fingerprint: u64,
}

/// A log search. A record matches when it satisfies every condition.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// The trace the record belongs to.
    pub trace_id: Option<TraceId>,
    /// The span the record belongs to.
    pub span_id: Option<SpanId>,
    /// `service.name` of the record's resource.
    pub service: Option<String>,
    /// Minimum OTLP severity number (1–24); 0 accepts every record,
    /// including those without a severity.
    pub min_severity: i32,
    /// A condition on the body's text.
    pub body: Option<BodyMatcher>,
    /// Words (see [`body_words`]) every body matching `body` contains, for
    /// stores that index words to skip data; never the definition of a
    /// match. [`words_of_substring`] derives them from a substring.
    pub body_words: Vec<String>,
    /// Runs of [`GRAM_CHARS`] word characters (see [`word_grams`]) every
    /// body matching `body` contains, for stores whose word index also
    /// holds the words' grams: a needle that may be part of a longer word
    /// (an id searched alone) has no whole word, but its grams are in any
    /// word containing it. [`grams_of_substring`] derives them; never the
    /// definition of a match.
    pub body_grams: Vec<String>,
    /// Attribute conditions (record or resource attributes; values compare
    /// as text, as trace tags do), all of which must hold.
    pub tags: Vec<TagFilter>,
    /// Earliest [`LogRecord::timestamp`], inclusive.
    pub start_unix_nanos: Option<u64>,
    /// Latest [`LogRecord::timestamp`], inclusive.
    pub end_unix_nanos: Option<u64>,
    /// Only records strictly after this cursor in result order (older, or
    /// as old with a lower fingerprint): the next page.
    pub after: Option<LogCursor>,
    /// Maximum number of records; clamped to [`LogQuery::MAX_LIMIT`].
    pub limit: usize,
}

impl LogQuery {
    /// Records returned when the request names no limit.
    pub const DEFAULT_LIMIT: usize = 100;
    /// The most records one page returns.
    pub const MAX_LIMIT: usize = 1000;

    /// `limit` clamped to [`LogQuery::MAX_LIMIT`] (0 means the default).
    pub fn effective_limit(&self) -> usize {
        if self.limit == 0 { Self::DEFAULT_LIMIT } else { self.limit.min(Self::MAX_LIMIT) }
    }

    /// Whether a record with this key may be on the page (time window and
    /// cursor), before its content is looked at.
    pub fn key_in_range(&self, time_unix_nanos: u64, fingerprint: u64) -> bool {
        self.start_unix_nanos.is_none_or(|s| time_unix_nanos >= s)
            && self.end_unix_nanos.is_none_or(|e| time_unix_nanos <= e)
            && self.after.is_none_or(|c| (time_unix_nanos, fingerprint) < (c.time_unix_nanos, c.fingerprint))
    }

    /// Whether a record at this time may be on the page, before its
    /// fingerprint is known: the time window, and the cursor up to its
    /// time inclusive (ties are decided by [`LogQuery::key_in_range`]).
    pub fn time_in_range(&self, time_unix_nanos: u64) -> bool {
        self.start_unix_nanos.is_none_or(|s| time_unix_nanos >= s)
            && self.end_unix_nanos.is_none_or(|e| time_unix_nanos <= e)
            && self.after.is_none_or(|c| time_unix_nanos <= c.time_unix_nanos)
    }

    /// Whether `record` satisfies every condition except the time window
    /// and cursor (see [`LogQuery::key_in_range`]). Stores may prune with
    /// indexes first, but this is the definition of a match.
    pub fn matches_content(&self, record: &LogRecord) -> bool {
        if self.trace_id.is_some() && record.trace_id != self.trace_id {
            return false;
        }
        if self.span_id.is_some() && record.span_id != self.span_id {
            return false;
        }
        if self.service.as_deref().is_some_and(|s| s != record.service_name()) {
            return false;
        }
        if record.severity_number < self.min_severity {
            return false;
        }
        let tags_hold = self.tags.iter().all(|t| {
            let hit =
                |kvs: &[crate::KeyValue]| kvs.iter().any(|kv| kv.key == t.key && kv.value.text_eq(&t.value));
            hit(&record.attributes) || hit(record.resource.attributes())
        });
        if !tags_hold {
            return false;
        }
        self.body.as_ref().is_none_or(|m| m.matches(&record.body.to_text()))
    }

    /// The query as the `/api/logs` parameters that ask for it (`start`
    /// and `end` in µs, widened to whole µs), for asking another node;
    /// `None` when its body condition was not built from a `q` text and so
    /// cannot be sent. The receiver's answer may hold a little more than
    /// the query (the widened window): filter it with
    /// [`LogQuery::matches`].
    pub fn to_pairs(&self) -> Option<Vec<(&'static str, String)>> {
        let mut out = Vec::new();
        if let Some(id) = self.trace_id {
            out.push(("traceID", id.to_hex()));
        }
        if let Some(id) = self.span_id {
            out.push(("spanID", id.to_hex()));
        }
        if let Some(service) = &self.service {
            out.push(("service", service.clone()));
        }
        if self.min_severity != 0 {
            out.push(("minSeverity", self.min_severity.to_string()));
        }
        if let Some(body) = &self.body {
            out.push(("q", body.source()?.to_owned()));
        }
        if !self.tags.is_empty() {
            // `tags` JSON rather than `tag=key:value`: a key may hold `:`.
            let map: serde_json::Map<String, serde_json::Value> = self
                .tags
                .iter()
                .map(|t| (t.key.clone(), serde_json::Value::String(t.value.clone())))
                .collect();
            out.push(("tags", serde_json::Value::Object(map).to_string()));
        }
        if let Some(start) = self.start_unix_nanos {
            out.push(("start", (start / 1000).to_string()));
        }
        if let Some(end) = self.end_unix_nanos {
            out.push(("end", end.div_ceil(1000).to_string()));
        }
        out.push(("limit", self.effective_limit().to_string()));
        if let Some(c) = self.after {
            out.push(("cursor", format!("{}-{:016x}", c.time_unix_nanos, c.fingerprint)));
        }
        Some(out)
    }

    /// Whether `record` matches the whole query (cursor and window too).
    pub fn matches(&self, record: &LogRecord) -> bool {
        // The fingerprint (an encoding of the record) only when a cursor
        // needs it: live tails match every record without one.
        let fingerprint = if self.after.is_some() { record.fingerprint() } else { 0 };
        self.key_in_range(record.timestamp(), fingerprint) && self.matches_content(record)
    }
}

/// One page of a log search.
#[derive(Debug, Clone, Default)]
pub struct LogPage {
    /// Matching records, newest first.
    pub records: Vec<LogRecord>,
    /// Where the next page starts; `None` when this page is the last.
    pub next: Option<LogCursor>,
    /// Problems that did not stop the search (a damaged block skipped).
    pub warnings: Vec<String>,
}

/// Answers log queries. Implementations read consistent snapshots and never
/// hold a lock ingest waits on while reading blocks.
#[async_trait]
pub trait LogReader: Send + Sync {
    /// One page of records matching `query`, newest first.
    async fn find_logs(&self, query: &LogQuery) -> Result<LogPage, QueryError>;

    /// Names of all services with stored records, sorted.
    async fn log_services(&self) -> Result<Vec<String>, QueryError>;

    /// Every batch acknowledged from now on, for live tails. The channel is
    /// bounded: a receiver that falls behind gets
    /// [`broadcast::error::RecvError::Lagged`] and should be dropped.
    fn subscribe_logs(&self) -> broadcast::Receiver<Arc<LogBatch>>;

    /// The live records of the other nodes sharing this node's bucket
    /// that match `query`, for a live tail that shows every node's
    /// records, not only those of the node the client reached. `None`
    /// for a reader of this node alone. The subscription lasts until the
    /// receiver is dropped.
    fn subscribe_peer_logs(&self, query: &LogQuery) -> Option<mpsc::Receiver<PeerTailEvent>> {
        let _ = query;
        None
    }

    /// What the answers so far left out (peers that did not answer), as
    /// [`crate::SpanReader::warnings`]. Local readers leave nothing out.
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// What a live tail hears from the other nodes (see
/// [`LogReader::subscribe_peer_logs`]).
#[derive(Debug, Clone)]
pub enum PeerTailEvent {
    /// Records a peer acknowledged. The peer filtered them already; a tail
    /// checks them against its query again (a query sent on is rounded to
    /// whole µs).
    Records(Arc<LogBatch>),
    /// The tail of `peer` is subscribed: its records from now on follow.
    Connected {
        /// The peer as warnings name it (node id and address).
        peer: String,
    },
    /// The tail of `peer` ended or could not start: its records are
    /// missing until a later [`PeerTailEvent::Connected`] (it is retried
    /// while it stays a live peer).
    Lost {
        /// The peer as warnings name it.
        peer: String,
        /// Why, for the client.
        reason: String,
    },
}

/// The log reader of each tenant: the logs API asks for the request's
/// tenant's, so no answer mixes tenants (the log counterpart of
/// [`crate::TenantReaders`]).
#[async_trait]
pub trait LogTenantReaders: Send + Sync {
    /// The log reader of `tenant`'s data. A tenant without logs gets a
    /// reader that finds nothing ([`EmptyLogReader`]), not an error.
    async fn log_reader(&self, tenant: &Tenant) -> Result<Arc<dyn LogReader>, QueryError>;

    /// [`LogTenantReaders::log_reader`] for one request carrying
    /// `credentials` (its `Authorization` header), which a reader asking
    /// other nodes passes on; the returned reader belongs to that request
    /// (its warnings are that request's).
    async fn log_reader_for(
        &self,
        tenant: &Tenant,
        credentials: Option<&str>,
    ) -> Result<Arc<dyn LogReader>, QueryError> {
        let _ = credentials;
        self.log_reader(tenant).await
    }
}

/// One log reader answers for every tenant: a backend without tenants
/// (tests, tools).
#[async_trait]
impl LogTenantReaders for Arc<dyn LogReader> {
    async fn log_reader(&self, _tenant: &Tenant) -> Result<Arc<dyn LogReader>, QueryError> {
        Ok(Arc::clone(self))
    }
}

/// The log reader of a tenant that has no logs: searches find nothing and
/// a live tail ends at once (its sender is gone), so a client reconnects
/// and reaches the tenant's store once its first records created it.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyLogReader;

#[async_trait]
impl LogReader for EmptyLogReader {
    async fn find_logs(&self, _query: &LogQuery) -> Result<LogPage, QueryError> {
        Ok(LogPage::default())
    }

    async fn log_services(&self) -> Result<Vec<String>, QueryError> {
        Ok(Vec::new())
    }

    fn subscribe_logs(&self) -> broadcast::Receiver<Arc<LogBatch>> {
        broadcast::channel(1).1
    }
}

/// The shortest word stores index and searches use.
pub const MIN_WORD_CHARS: usize = 3;

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The words of a body text, as a word index stores them: runs of letters,
/// digits and `_`, ASCII-lowercased, at least [`MIN_WORD_CHARS`] long.
pub fn body_words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !is_word_char(c))
        .filter(|w| w.chars().count() >= MIN_WORD_CHARS)
        .map(str::to_ascii_lowercase)
}

/// The words that every text containing `needle` contains whole: those
/// with a non-word character on both sides inside the needle (the first
/// and last may be parts of longer words in the text).
pub fn words_of_substring(needle: &str) -> Vec<String> {
    let parts: Vec<&str> = needle.split(|c: char| !is_word_char(c)).collect();
    let last = parts.len().saturating_sub(1);
    parts
        .iter()
        .enumerate()
        .filter(|(i, w)| *i > 0 && *i < last && w.chars().count() >= MIN_WORD_CHARS)
        .map(|(_, w)| w.to_ascii_lowercase())
        .collect()
}

/// The length, in characters, of the word grams a word index holds
/// beside whole words. Six: selective for the ids people search for alone
/// (a 6-digit number is in ~2 % of 16 k-record row groups of random
/// 6-digit ids, a 5-digit gram in ~40 %), and words of at most six
/// characters, most words, add no gram of their own.
pub const GRAM_CHARS: usize = 6;

/// The grams of `word` (a lowercased run of word characters): every run
/// of [`GRAM_CHARS`] characters inside it when it is longer; none when it
/// is not (a word of exactly that length is its own gram, already
/// indexed as a word).
pub fn word_grams(word: &str) -> impl Iterator<Item = &str> + '_ {
    // Character starts only for non-ASCII words: most words are ASCII,
    // and this runs for every word a block's bodies hold.
    let starts: Option<Vec<usize>> =
        (!word.is_ascii()).then(|| word.char_indices().map(|(i, _)| i).collect());
    let count = starts.as_ref().map_or(word.len(), Vec::len);
    let windows = if count > GRAM_CHARS { count - GRAM_CHARS + 1 } else { 0 };
    (0..windows).map(move |i| match &starts {
        None => &word[i..i + GRAM_CHARS],
        Some(starts) => {
            let end = starts.get(i + GRAM_CHARS).copied().unwrap_or(word.len());
            &word[starts[i]..end]
        }
    })
}

/// The grams every text containing `needle` contains inside its words:
/// those of each run of word characters in the needle, including the
/// first and last (which may be parts of longer words), lowercased. A
/// run of exactly [`GRAM_CHARS`] characters is its own gram.
pub fn grams_of_substring(needle: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in needle.split(|c: char| !is_word_char(c)) {
        let part = part.to_ascii_lowercase();
        let chars = part.chars().count();
        if chars < GRAM_CHARS {
            continue;
        }
        let grams: Vec<&str> = if chars == GRAM_CHARS { vec![&part] } else { word_grams(&part).collect() };
        for g in grams {
            if !out.iter().any(|o| o == g) {
                out.push(g.to_owned());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grams_of_a_needle_are_inside_every_word_containing_it() {
        assert_eq!(grams_of_substring("123456"), ["123456"]);
        assert_eq!(grams_of_substring("u1234567 x"), ["u12345", "123456", "234567"]);
        assert_eq!(grams_of_substring("order 12345 fails"), Vec::<String>::new(), "short runs give none");
        assert_eq!(word_grams("abcdef").count(), 0, "a word of gram length is its own gram");
        let grams: Vec<&str> = word_grams("order_1234567").collect();
        assert_eq!(grams.len(), 8);
        // Every gram of a needle inside a longer word is one of the word's.
        let word = "req_a1b2c3d4e5";
        let indexed: Vec<&str> = word_grams(word).collect();
        for g in grams_of_substring("a1b2c3d4") {
            assert!(indexed.contains(&g.as_str()), "{g}");
        }
        let multibyte: Vec<&str> = word_grams("échec_total").collect();
        assert_eq!(multibyte.first(), Some(&"échec_"));
        assert_eq!(multibyte.len(), 6);
    }

    #[test]
    fn only_words_bounded_inside_the_needle_are_whole() {
        assert_eq!(words_of_substring("order 123456 failed"), ["123456"]);
        assert_eq!(words_of_substring(" Timeout "), ["timeout"]);
        assert_eq!(words_of_substring("timeout"), Vec::<String>::new());
        assert_eq!(words_of_substring("a ab abc x"), ["abc"], "short words are not indexed");
        let words: Vec<String> = body_words("GET /api/orders/42 in 17ms: ÉCHEC_total").collect();
        assert_eq!(words, ["get", "api", "orders", "17ms", "Échec_total"]);
    }
}
