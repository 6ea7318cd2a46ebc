//! When appends are fsynced: the knob that trades latency for the durability
//! promise.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::ParseError;

/// When the writer fsyncs (`fdatasync`) a segment.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `append` resolves only after its record is fsynced. Group commit: the
    /// records that arrive while one fsync runs are written and synced
    /// together in the next round, one fsync for many records.
    #[default]
    Always,
    /// `append` resolves after `write(2)`; a background fsync runs at least
    /// this often while there is unsynced data. A crash of the process loses
    /// nothing; a power loss may lose the last interval.
    Interval(Duration),
    /// `append` resolves after `write(2)`; only the OS flushes (and rotation
    /// and `close`, which always sync).
    Never,
}

const EXPECTED: &str = "\"always\", \"never\", or a positive interval such as \
                        \"interval:100ms\", \"100ms\" or \"1s\"";

impl FromStr for FsyncPolicy {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseError { what: "fsync policy", input: s.to_owned(), expected: EXPECTED };
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "always" => return Ok(FsyncPolicy::Always),
            "never" => return Ok(FsyncPolicy::Never),
            _ => {}
        }
        let interval = lower.strip_prefix("interval:").unwrap_or(&lower).trim();
        let duration = if let Some(ms) = interval.strip_suffix("ms") {
            ms.trim().parse().map(Duration::from_millis)
        } else if let Some(secs) = interval.strip_suffix('s') {
            secs.trim().parse().map(Duration::from_secs)
        } else {
            return Err(err());
        };
        match duration {
            Ok(d) if !d.is_zero() => Ok(FsyncPolicy::Interval(d)),
            _ => Err(err()),
        }
    }
}

impl fmt::Display for FsyncPolicy {
    /// Prints the form [`FromStr`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Never => f.write_str("never"),
            FsyncPolicy::Interval(d) => write!(f, "interval:{}ms", d.as_millis()),
        }
    }
}
