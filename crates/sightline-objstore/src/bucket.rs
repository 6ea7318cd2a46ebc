//! Every request Sightline makes to the object store, in one place: keys
//! under the `--storage` prefix, conditional writes mapped to outcomes,
//! and a count of each request by operation and outcome (requests are what
//! S3 bills).
//!
//! The store's block layer is synchronous (it runs on the blocking pool),
//! object_store is async: [`Bucket::wait`] runs a request on the runtime
//! from a blocking thread.
//!
//! Two clients: ranged reads of block data, which queries wait on, go
//! through one with short timeouts and a deadline ([`Policy::QUERY`]);
//! everything else through the patient one ([`Policy::BACKGROUND`]). Every
//! outcome tells [`Availability`] whether the store answers.

use std::future::Future;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt as _;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};
use tokio::io::AsyncReadExt as _;

use crate::Error;
use crate::availability::Availability;
use crate::metrics::Metrics;
use crate::policy::Policy;

/// An object store and the prefix Sightline owns in it.
#[derive(Debug)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// The client for ranged reads queries wait on ([`Policy::QUERY`]).
    reads: Arc<dyn ObjectStore>,
    /// Whether requests get answers: `/health`, and query reads fail at
    /// once while they do not.
    pub(crate) availability: Availability,
    /// Prefix inside the bucket (`s3://bucket/<prefix>`), possibly empty.
    root: Path,
    /// `s3://bucket/prefix`, for messages.
    url: String,
    runtime: tokio::runtime::Handle,
    pub(crate) metrics: Arc<Metrics>,
}

/// How a conditional write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Put {
    /// Written; the new version's ETag.
    Done(Option<String>),
    /// Not written: the object exists (`PutMode::Create`) or changed since
    /// the version given (`PutMode::Update`).
    Lost,
}

/// An object read whole, with its version.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its bytes.
    pub bytes: Bytes,
    /// Its ETag, for conditional writes and reads.
    pub e_tag: Option<String>,
}

/// Size of one part of an upload: objects up to this size are one PUT.
const UPLOAD_PART: usize = 8 << 20;

impl Bucket {
    /// `store` with keys under `root`; `url` names it in messages. Must be
    /// created inside a tokio runtime (its requests run there). Query reads
    /// use `store` too, unless [`Bucket::with_reads`] gives them a client
    /// of their own; [`Policy::QUERY`]'s deadline bounds them either way.
    pub fn new(store: Arc<dyn ObjectStore>, root: &str, url: String, metrics: Arc<Metrics>) -> Bucket {
        metrics.available.set(1);
        Bucket {
            reads: Arc::clone(&store),
            availability: Availability::default(),
            store,
            root: Path::from(root.trim_matches('/')),
            url: url.trim_end_matches('/').to_owned(),
            runtime: tokio::runtime::Handle::current(),
            metrics,
        }
    }

    /// The client ranged reads of block data use (built with
    /// [`Policy::QUERY`]'s timeouts and retries).
    pub fn with_reads(mut self, reads: Arc<dyn ObjectStore>) -> Bucket {
        self.reads = reads;
        self
    }

    /// Why the store is degraded (requests failing), or `None`.
    pub fn degraded(&self) -> Option<String> {
        self.availability.degraded()
    }

    /// Notes the outcome of a request: an answer, or a failure unless the
    /// error is one the store answered with (absent, unchanged, lost
    /// conditional write).
    fn note<T>(&self, result: &Result<T, object_store::Error>) {
        match result {
            Ok(_)
            | Err(
                object_store::Error::NotFound { .. }
                | object_store::Error::NotModified { .. }
                | object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => self.answered(),
            Err(e) => self.unanswered(e),
        }
    }

    fn answered(&self) {
        self.availability.answered();
        self.metrics.available.set(1);
    }

    fn unanswered(&self, error: &dyn std::fmt::Display) {
        self.availability.failed(error);
        self.metrics.available.set(0);
    }

    /// `key` under the prefix.
    fn path(&self, key: &str) -> Path {
        key.split('/').filter(|p| !p.is_empty()).fold(self.root.clone(), |p, part| p.join(part))
    }

    /// `key` as a URL, for messages.
    pub fn location(&self, key: &str) -> String {
        if key.is_empty() { self.url.clone() } else { format!("{}/{key}", self.url) }
    }

    /// The runtime requests run on (for work started from a blocking
    /// thread).
    pub(crate) fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Runs a request from a blocking thread (never from an async task).
    pub fn wait<F: Future>(&self, request: F) -> F::Output {
        self.runtime.block_on(request)
    }

    fn failed(&self, key: &str, operation: &'static str, source: object_store::Error) -> Error {
        Error::Request { location: self.location(key), operation, source }
    }

    /// The whole object, or `None` if there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Object>, Error> {
        self.get_opts("get", key, GetOptions::default()).await
    }

    /// The object if its ETag is no longer `known` (`If-None-Match`: a 304
    /// costs a request but no transfer); `Ok(None)` if it did not change or
    /// does not exist.
    pub async fn get_if_changed(&self, key: &str, known: Option<&str>) -> Result<Option<Object>, Error> {
        let options = GetOptions { if_none_match: known.map(str::to_owned), ..GetOptions::default() };
        self.get_opts("poll", key, options).await
    }

    async fn get_opts(
        &self,
        op: &'static str,
        key: &str,
        options: GetOptions,
    ) -> Result<Option<Object>, Error> {
        let result = self.store.get_opts(&self.path(key), options).await;
        self.note(&result);
        let result = match result {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => {
                self.metrics.request(op, "not_found");
                return Ok(None);
            }
            Err(object_store::Error::NotModified { .. }) => {
                self.metrics.request(op, "not_modified");
                return Ok(None);
            }
            Err(e) => {
                self.metrics.request(op, "error");
                return Err(self.failed(key, "GET", e));
            }
        };
        let e_tag = result.meta.e_tag.clone();
        let bytes = result.bytes().await.map_err(|e| {
            self.metrics.request(op, "error");
            self.unanswered(&e);
            self.failed(key, "GET", e)
        })?;
        self.metrics.request(op, "ok");
        self.metrics.downloaded_bytes.inc_by(bytes.len() as u64);
        Ok(Some(Object { bytes, e_tag }))
    }

    /// Bytes `range` of an object and the object's whole size: a query's
    /// read (see [`Bucket::for_query`]).
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64), Error> {
        let options = GetOptions { range: Some(GetRange::Bounded(range)), ..GetOptions::default() };
        let read = async {
            let result = self.reads.get_opts(&self.path(key), options).await?;
            let size = result.meta.size;
            Ok::<_, object_store::Error>((result.bytes().await?, size))
        };
        let (bytes, size) = self.for_query("get_range", key, "GET (range)", read).await?;
        self.metrics.downloaded_bytes.inc_by(bytes.len() as u64);
        Ok((bytes, size))
    }

    /// Whether `key` exists, for a query (a tenant's first query asks
    /// whether the tenant has data; see [`Bucket::for_query`]).
    pub async fn exists_for_query(&self, key: &str) -> Result<bool, Error> {
        let head = async {
            match self.reads.head(&self.path(key)).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        };
        self.for_query("head", key, "HEAD", head).await
    }

    /// Runs `request`, one a query waits on, through the query client:
    /// failed at once (outcome `skipped`) while the store is not
    /// answering, and given up after [`Policy::QUERY`]'s deadline
    /// (outcome `timeout`).
    async fn for_query<T>(
        &self,
        op: &'static str,
        key: &str,
        operation: &'static str,
        request: impl Future<Output = Result<T, object_store::Error>>,
    ) -> Result<T, Error> {
        if let Some(detail) = self.availability.fail_fast() {
            self.metrics.request(op, "skipped");
            return Err(Error::Unavailable { location: self.location(key), detail });
        }
        let deadline = Policy::QUERY.deadline.unwrap_or(Policy::QUERY.request_timeout);
        let Ok(result) = tokio::time::timeout(deadline, request).await else {
            self.metrics.request(op, "timeout");
            let detail = format!("no answer within {deadline:?}");
            self.unanswered(&detail);
            return Err(Error::Unavailable { location: self.location(key), detail });
        };
        self.note(&result);
        let value = result.map_err(|e| {
            self.metrics.request(op, "error");
            self.failed(key, operation, e)
        })?;
        self.metrics.request(op, "ok");
        Ok(value)
    }

    /// Writes `bytes` under `key`: unconditionally, only if absent
    /// (`PutMode::Create`, `If-None-Match: *`) or only if still at a
    /// version (`PutMode::Update`, `If-Match`).
    pub async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<Put, Error> {
        let len = bytes.len() as u64;
        let options = PutOptions { mode, ..PutOptions::default() };
        let result = self.store.put_opts(&self.path(key), PutPayload::from_bytes(bytes), options).await;
        self.note(&result);
        match result {
            Ok(result) => {
                self.metrics.request("put", "ok");
                self.metrics.uploaded_bytes.inc_by(len);
                Ok(Put::Done(result.e_tag))
            }
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => {
                self.metrics.request("put", "conflict");
                Ok(Put::Lost)
            }
            Err(e) => {
                self.metrics.request("put", "error");
                Err(self.failed(key, "PUT", e))
            }
        }
    }

    /// `PutMode::Update` for an ETag.
    pub fn update(e_tag: &str) -> PutMode {
        PutMode::Update(UpdateVersion { e_tag: Some(e_tag.to_owned()), version: None })
    }

    /// Uploads a local file to `key` (one PUT up to [`UPLOAD_PART`], a
    /// multipart upload beyond), reading it part by part so a large block
    /// is never whole in memory.
    pub async fn upload(&self, key: &str, file: &FsPath) -> Result<(), Error> {
        let mut source = tokio::fs::File::open(file).await.map_err(|e| Error::io(file, e))?;
        let len = source.metadata().await.map_err(|e| Error::io(file, e))?.len();
        let path = self.path(key);
        let result = async {
            let mut writer =
                object_store::buffered::BufWriter::with_capacity(Arc::clone(&self.store), path, UPLOAD_PART);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = source.read(&mut buf).await.map_err(|e| Error::io(file, e))?;
                if n == 0 {
                    break;
                }
                writer.put(Bytes::copy_from_slice(&buf[..n])).await.map_err(|e| {
                    self.unanswered(&e);
                    self.failed(key, "PUT", e)
                })?;
            }
            tokio::io::AsyncWriteExt::shutdown(&mut writer).await.map_err(|e| {
                self.unanswered(&e);
                Error::Request {
                    location: self.location(key),
                    operation: "PUT",
                    source: object_store::Error::Generic { store: "upload", source: Box::new(e) },
                }
            })?;
            self.answered();
            Ok::<(), Error>(())
        }
        .await;
        self.metrics.request("upload", if result.is_ok() { "ok" } else { "error" });
        if result.is_ok() {
            self.metrics.uploaded_bytes.inc_by(len);
        }
        result
    }

    /// Deletes `key`; deleting what is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let result = self.store.delete(&self.path(key)).await;
        self.note(&result);
        match result {
            Ok(()) => {
                self.metrics.request("delete", "ok");
                Ok(())
            }
            Err(object_store::Error::NotFound { .. }) => {
                self.metrics.request("delete", "not_found");
                Ok(())
            }
            Err(e) => {
                self.metrics.request("delete", "error");
                Err(self.failed(key, "DELETE", e))
            }
        }
    }

    /// The names of the "folders" directly under the bucket's prefix
    /// (one listing with a `/` delimiter), sorted.
    pub async fn list_top(&self) -> Result<Vec<String>, Error> {
        let listed = self.store.list_with_delimiter(Some(&self.root)).await;
        self.note(&listed);
        let listed = listed.map_err(|e| {
            self.metrics.request("list", "error");
            self.failed("", "LIST", e)
        })?;
        self.metrics.request("list", "ok");
        let mut names: Vec<String> =
            listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_owned)).collect();
        names.sort();
        Ok(names)
    }

    /// Every object under `prefix`, with keys relative to the bucket's
    /// prefix.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>, Error> {
        let listed: Result<Vec<ObjectMeta>, _> =
            self.store.list(Some(&self.path(prefix))).try_collect().await;
        self.note(&listed);
        let listed = listed.map_err(|e| {
            self.metrics.request("list", "error");
            self.failed(prefix, "LIST", e)
        })?;
        self.metrics.request("list", "ok");
        let root = self.root.as_ref();
        Ok(listed
            .into_iter()
            .map(|meta| {
                let full = meta.location.as_ref();
                let key = if root.is_empty() {
                    full.to_owned()
                } else {
                    full.strip_prefix(root).unwrap_or(full).trim_start_matches('/').to_owned()
                };
                (key, meta)
            })
            .collect())
    }
}
