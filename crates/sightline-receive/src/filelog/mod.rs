//! The `filelog` receiver: tails JSON-lines log files (the shape of seed
//! 002's sink) and hands each line to the logs pipeline as a log record,
//! so services that log to files get log ↔ trace correlation without code
//! changes.
//!
//! - **Which files.** `include` globs, minus `exclude` ones, expanded on
//!   every poll, so new files are picked up.
//! - **Where it resumes.** A file is known by device and inode (plus a
//!   fingerprint of its first bytes against inode reuse); its offset is
//!   saved in a state file ([`state`]) after the pipeline acknowledged the
//!   records read, so a restart resumes where the last acknowledged batch
//!   ended — no duplicates after a clean stop, at most one batch again
//!   after a crash.
//! - **Rotation.** Rename + create: the renamed file is read to its end
//!   through the handle still open, then the new one from its start.
//!   Copytruncate: a file shorter than its offset is read again from 0.
//! - **Bounded lines.** A line longer than `max_line_bytes` is cut there
//!   (counted); the rest of it is skipped. A line that is not a JSON
//!   object is kept as text and counted; nothing in a file stops the
//!   receiver.
//! - **Tenant.** Every record goes to the configured `tenant` (the
//!   default one unless set): files carry no credentials, so the operator
//!   names whose they are.
//! - **Backpressure.** A refusal from the pipeline leaves the offset where
//!   it was; the same lines are read again after the refusal's delay.

mod parse;
mod state;

use std::collections::HashMap;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use sightline_model::{LogBatch, LogRecord, LogsConsumer, Tenant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use parse::Fields;
use parse::{Parsed, Parser};
use state::Position;

/// Bytes of a file's start kept as its fingerprint.
const FINGERPRINT: usize = 64;
/// Bytes read from one file per poll (then handed on as one batch).
const CHUNK: usize = 1 << 20;

/// Settings of one `filelog` receiver, set in code by the binary from the
/// pipeline config.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Glob patterns of files to read.
    pub include: Vec<String>,
    /// Glob patterns of files not to read.
    pub exclude: Vec<String>,
    /// Files found at the first poll with no saved position: read from
    /// the start (`true`) or only what is appended (`false`, the
    /// Collector's default `start_at = "end"`). Files appearing later are
    /// always read from the start.
    pub start_at_beginning: bool,
    /// How often files are checked for new lines.
    pub poll_interval: Duration,
    /// Longest line kept; longer ones are cut.
    pub max_line_bytes: usize,
    /// The JSON member names.
    pub fields: Fields,
    /// `service.name` of lines without a service member.
    pub default_service: String,
    /// The state file (read positions).
    pub state_path: PathBuf,
    /// Whose records these are.
    pub tenant: Tenant,
}

/// How a line ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum LineOutcome {
    /// A JSON object, mapped by field.
    json,
    /// Not a JSON object: kept as a text body.
    text,
    /// Longer than the limit: cut.
    truncated,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LineLabels {
    receiver: String,
    outcome: LineOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReceiverLabel {
    receiver: String,
}

/// The file receivers' metrics, registered under `sightline_receive_filelog_`.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    lines: Family<LineLabels, Counter>,
    refused: Family<ReceiverLabel, Counter>,
    errors: Family<ReceiverLabel, Counter>,
}

impl Metrics {
    /// Creates the metrics and registers them.
    pub fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics::default();
        let r = registry.sub_registry_with_prefix("sightline_receive_filelog");
        r.register(
            "lines",
            "Lines read from files and handed on, by receiver and how they were read",
            m.lines.clone(),
        );
        r.register("refused", "Batches the pipeline refused (read again later)", m.refused.clone());
        r.register(
            "errors",
            "Files that could not be read or state that could not be saved",
            m.errors.clone(),
        );
        m
    }

    fn line(&self, receiver: &str, outcome: LineOutcome, n: u64) {
        if n > 0 {
            self.lines.get_or_create(&LineLabels { receiver: receiver.to_owned(), outcome }).inc_by(n);
        }
    }

    fn count(family: &Family<ReceiverLabel, Counter>, receiver: &str) {
        family.get_or_create(&ReceiverLabel { receiver: receiver.to_owned() }).inc();
    }
}

/// A running file receiver; [`Filelog::shutdown`] stops it.
pub struct Filelog {
    id: String,
    stop: watch::Sender<bool>,
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    status: Arc<Status>,
}

/// What `/health` says about a file receiver.
#[derive(Debug, Default)]
struct Status {
    files: std::sync::atomic::AtomicUsize,
    /// The last read or save failure, cleared by the next success.
    problem: std::sync::Mutex<Option<String>>,
}

impl Status {
    fn set_problem(&self, problem: Option<String>) {
        if let Ok(mut p) = self.problem.lock() {
            *p = problem;
        }
    }
}

impl Filelog {
    /// Starts tailing in a task of the current tokio runtime. Fails only
    /// on an invalid glob.
    pub fn start(
        id: &str,
        options: Options,
        consumer: Arc<dyn LogsConsumer>,
        metrics: Metrics,
    ) -> Result<Filelog, String> {
        for pattern in options.include.iter().chain(&options.exclude) {
            glob::Pattern::new(pattern).map_err(|e| format!("receiver {id}: glob {pattern:?}: {e}"))?;
        }
        let (stop, stopped) = watch::channel(false);
        let status = Arc::new(Status::default());
        let tailer = Tailer {
            status: Arc::clone(&status),
            id: id.to_owned(),
            options,
            consumer,
            metrics,
            files: Vec::new(),
            first_poll: true,
            saved: Vec::new(),
        };
        let task = tokio::spawn(tailer.run(stopped));
        Ok(Filelog { id: id.to_owned(), stop, task: std::sync::Mutex::new(Some(task)), status })
    }

    /// For `/health`: how many files are followed, and the last problem
    /// reading one or saving positions (unhealthy until the next success).
    pub fn health(&self) -> sightline_model::ComponentHealth {
        let files = self.status.files.load(std::sync::atomic::Ordering::Relaxed);
        let problem = self.status.problem.lock().ok().and_then(|p| p.clone());
        sightline_model::ComponentHealth {
            name: format!("receiver {}", self.id),
            healthy: problem.is_none(),
            detail: match problem {
                None => format!("following {files} file(s)"),
                Some(p) => format!("following {files} file(s); {p}"),
            },
        }
    }

    /// Stops after the batch in flight (its position saved once
    /// acknowledged). Safe to call twice.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// A file being read.
struct Tracked {
    path: PathBuf,
    dev: u64,
    ino: u64,
    file: std::fs::File,
    /// Bytes consumed: always at a line end (or inside a cut line).
    offset: u64,
    fingerprint: Vec<u8>,
    /// Inside a line longer than the limit: skip to its end.
    skipping: bool,
    /// Its path now names another file (or none): read to the end, then
    /// forget it.
    rotated: bool,
}

struct Tailer {
    status: Arc<Status>,
    id: String,
    options: Options,
    consumer: Arc<dyn LogsConsumer>,
    metrics: Metrics,
    files: Vec<Tracked>,
    first_poll: bool,
    /// Positions loaded at start, consumed as the first poll finds their
    /// files.
    saved: Vec<Position>,
}

/// What one read of a file produced.
struct Read {
    records: Vec<LogRecord>,
    /// The offset once they are acknowledged.
    offset: u64,
    skipping: bool,
    outcomes: [u64; 3],
}

impl Tailer {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        match state::load(&self.options.state_path) {
            Ok(saved) => self.saved = saved,
            Err(e) => {
                tracing::warn!(receiver = %self.id, error = %e, "ignoring an unreadable filelog state file");
                Metrics::count(&self.metrics.errors, &self.id);
            }
        }
        loop {
            let delay = self.poll().await;
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
            if *stopped.borrow() {
                return;
            }
        }
    }

    /// Reads what is new in every file; returns how long to wait before the
    /// next poll.
    async fn poll(&mut self) -> Duration {
        let added = self.discover();
        if self.first_poll && !self.saved.is_empty() {
            // Saved positions of files the first poll did not find (rotated
            // away or deleted while stopped) are stale: dropped now, so the
            // state file does not grow with every rotation.
            self.saved.clear();
            self.save();
        } else if added {
            // New files' starting positions count too (a file found at
            // its end must not be read from its start after a restart).
            self.save();
        }
        self.first_poll = false;
        self.status.files.store(self.files.len(), std::sync::atomic::Ordering::Relaxed);
        let mut i = 0;
        while i < self.files.len() {
            loop {
                let read = match self.read(i) {
                    Ok(r) => r,
                    Err(e) => {
                        let path = self.files[i].path.display().to_string();
                        tracing::warn!(receiver = %self.id, path = %path, error = %e, "cannot read a log file");
                        Metrics::count(&self.metrics.errors, &self.id);
                        self.status.set_problem(Some(format!("cannot read {path}: {e}")));
                        break;
                    }
                };
                if read.records.is_empty() {
                    let f = &mut self.files[i];
                    if read.offset != f.offset || read.skipping != f.skipping {
                        f.offset = read.offset;
                        f.skipping = read.skipping;
                        self.save();
                        continue;
                    }
                    break;
                }
                let n = read.records.len();
                match self
                    .consumer
                    .consume_logs(
                        LogBatch::from_records(read.records).with_tenant(self.options.tenant.clone()),
                    )
                    .await
                {
                    Ok(()) => {
                        self.metrics.line(&self.id, LineOutcome::json, read.outcomes[0]);
                        self.metrics.line(&self.id, LineOutcome::text, read.outcomes[1]);
                        self.metrics.line(&self.id, LineOutcome::truncated, read.outcomes[2]);
                        let f = &mut self.files[i];
                        f.offset = read.offset;
                        f.skipping = read.skipping;
                        self.save();
                    }
                    Err(e) => {
                        tracing::debug!(receiver = %self.id, records = n, error = %e, "pipeline refused file lines; reading them again later");
                        Metrics::count(&self.metrics.refused, &self.id);
                        return e.retry_after().max(self.options.poll_interval);
                    }
                }
            }
            // A rotated file read to its end is forgotten.
            if self.files[i].rotated && self.at_end(i) {
                self.files.remove(i);
                self.save();
            } else {
                i += 1;
            }
        }
        self.status.files.store(self.files.len(), std::sync::atomic::Ordering::Relaxed);
        self.options.poll_interval
    }

    fn at_end(&self, i: usize) -> bool {
        let f = &self.files[i];
        f.file.metadata().is_ok_and(|m| m.len() <= f.offset)
    }

    /// Expands the globs: marks files whose path moved on as rotated,
    /// notices truncation, opens new files. Whether any file was added.
    fn discover(&mut self) -> bool {
        let known = self.files.len();
        let mut paths: Vec<PathBuf> = Vec::new();
        for pattern in &self.options.include {
            let Ok(entries) = glob::glob(pattern) else { continue };
            for path in entries.flatten() {
                let excluded = self
                    .options
                    .exclude
                    .iter()
                    .filter_map(|p| glob::Pattern::new(p).ok())
                    .any(|p| p.matches_path(&path));
                if !excluded && path.is_file() && !paths.contains(&path) {
                    paths.push(path);
                }
            }
        }
        paths.sort();
        // Which (dev, ino) each path names now.
        let mut current: HashMap<PathBuf, (u64, u64, u64)> = HashMap::new();
        for path in &paths {
            if let Ok(m) = std::fs::metadata(path) {
                current.insert(path.clone(), (m.dev(), m.ino(), m.len()));
            }
        }
        for f in &mut self.files {
            match current.get(&f.path) {
                Some(&(dev, ino, len)) if dev == f.dev && ino == f.ino => {
                    // Copytruncate: the file was emptied in place (and
                    // maybe written past the old offset since: its first
                    // bytes changed).
                    let head = fingerprint(&f.file, f.fingerprint.len());
                    if len < f.offset || head != f.fingerprint {
                        f.offset = 0;
                        f.skipping = false;
                        f.fingerprint.clear();
                    }
                }
                _ => f.rotated = true,
            }
        }
        for path in paths {
            let Some(&(dev, ino, len)) = current.get(&path) else { continue };
            if self.files.iter().any(|f| f.dev == dev && f.ino == ino) {
                continue;
            }
            let Ok(file) = std::fs::File::open(&path) else { continue };
            let head = fingerprint(&file, FINGERPRINT);
            let saved = self
                .saved
                .iter()
                .position(|p| p.dev == dev && p.ino == ino)
                .map(|i| self.saved.swap_remove(i))
                .filter(|p| {
                    let fp = hex_decode(&p.fingerprint);
                    head.starts_with(&fp) || fp.starts_with(&head)
                });
            let offset = match saved {
                Some(p) if p.offset <= len => p.offset,
                Some(_) => 0,
                None if self.first_poll && !self.options.start_at_beginning => len,
                None => 0,
            };
            self.files.push(Tracked {
                path,
                dev,
                ino,
                file,
                offset,
                fingerprint: head,
                skipping: false,
                rotated: false,
            });
        }
        let added = self.files.len() > known;
        // Rotated files first, so lines keep their order across a rotation.
        self.files.sort_by_key(|f| !f.rotated);
        added
    }

    /// Reads complete lines after the offset of file `i` (one chunk).
    fn read(&mut self, i: usize) -> std::io::Result<Read> {
        let max_line = self.options.max_line_bytes.max(1);
        let f = &mut self.files[i];
        if f.fingerprint.len() < FINGERPRINT {
            f.fingerprint = fingerprint(&f.file, FINGERPRINT);
        }
        f.file.seek(SeekFrom::Start(f.offset))?;
        let mut buf = Vec::with_capacity(64 << 10);
        (&f.file).take(CHUNK as u64).read_to_end(&mut buf)?;
        let file_name = f.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut parser = Parser::new(&self.options.fields, &self.options.default_service);
        let mut out = Read { records: Vec::new(), offset: f.offset, skipping: f.skipping, outcomes: [0; 3] };
        let mut at = 0usize;
        while at < buf.len() {
            let rest = &buf[at..];
            let newline = rest.iter().position(|b| *b == b'\n');
            if out.skipping {
                match newline {
                    Some(n) => {
                        at += n + 1;
                        out.skipping = false;
                    }
                    None => at = buf.len(),
                }
                continue;
            }
            let line_end = match newline {
                Some(n) if n <= max_line => n,
                // Over the limit, with or without its end in sight: cut.
                Some(_) | None if rest.len() > max_line => {
                    let (record, _) = parser.parse(&rest[..max_line], &file_name);
                    out.records.push(record);
                    out.outcomes[2] += 1;
                    at += max_line;
                    out.skipping = true;
                    continue;
                }
                // A partial line: wait for its end, unless the file was
                // rotated away (nobody will finish it).
                _ if f.rotated => rest.len(),
                _ => break,
            };
            let line = &rest[..line_end];
            if !line.iter().all(u8::is_ascii_whitespace) {
                let (record, parsed) = parser.parse(line, &file_name);
                out.records.push(record);
                out.outcomes[if parsed == Parsed::Json { 0 } else { 1 }] += 1;
            }
            at += (line_end + 1).min(rest.len());
        }
        out.offset = f.offset + at as u64;
        Ok(out)
    }

    /// Saves every position; a failure is counted and retried with the
    /// next acknowledgement.
    fn save(&self) {
        let positions: Vec<Position> = self
            .files
            .iter()
            .map(|f| Position {
                path: f.path.clone(),
                dev: f.dev,
                ino: f.ino,
                offset: f.offset,
                fingerprint: hex_encode(&f.fingerprint),
            })
            .chain(self.saved.iter().cloned())
            .collect();
        match state::save(&self.options.state_path, &positions) {
            Ok(()) => self.status.set_problem(None),
            Err(e) => {
                let path = self.options.state_path.display().to_string();
                tracing::warn!(receiver = %self.id, path = %path, error = %e, "cannot save filelog positions");
                Metrics::count(&self.metrics.errors, &self.id);
                self.status.set_problem(Some(format!("cannot save positions in {path}: {e}")));
            }
        }
    }
}

/// The first `n` bytes of `file` (fewer if it is shorter).
fn fingerprint(file: &std::fs::File, n: usize) -> Vec<u8> {
    let mut head = Vec::with_capacity(n);
    let mut f = file;
    if f.seek(SeekFrom::Start(0)).is_ok() {
        let _ = f.take(n as u64).read_to_end(&mut head);
    }
    head
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len() / 2).filter_map(|i| u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests;
