//! Every request Sightline makes to the object store, in one place: keys
//! under the `--storage` prefix, conditional writes mapped to outcomes,
//! and a count of each request by operation and outcome (requests are what
//! S3 bills).
//!
//! The store's block layer is synchronous (it runs on the blocking pool),
//! object_store is async: [`Bucket::wait`] runs a request on the runtime
//! from a blocking thread.

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
use crate::metrics::Metrics;

/// An object store and the prefix Sightline owns in it.
#[derive(Debug)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
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
    /// created inside a tokio runtime (its requests run there).
    pub fn new(store: Arc<dyn ObjectStore>, root: &str, url: String, metrics: Arc<Metrics>) -> Bucket {
        Bucket {
            store,
            root: Path::from(root.trim_matches('/')),
            url: url.trim_end_matches('/').to_owned(),
            runtime: tokio::runtime::Handle::current(),
            metrics,
        }
    }

    /// `key` under the prefix.
    fn path(&self, key: &str) -> Path {
        key.split('/').filter(|p| !p.is_empty()).fold(self.root.clone(), |p, part| p.join(part))
    }

    /// `key` as a URL, for messages.
    pub fn location(&self, key: &str) -> String {
        if key.is_empty() { self.url.clone() } else { format!("{}/{key}", self.url) }
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
        let result = match self.store.get_opts(&self.path(key), options).await {
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
            self.failed(key, "GET", e)
        })?;
        self.metrics.request(op, "ok");
        self.metrics.downloaded_bytes.inc_by(bytes.len() as u64);
        Ok(Some(Object { bytes, e_tag }))
    }

    /// Bytes `range` of an object and the object's whole size.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<(Bytes, u64), Error> {
        let options = GetOptions { range: Some(GetRange::Bounded(range)), ..GetOptions::default() };
        let result = self.store.get_opts(&self.path(key), options).await.map_err(|e| {
            self.metrics.request("get_range", "error");
            self.failed(key, "GET (range)", e)
        })?;
        let size = result.meta.size;
        let bytes = result.bytes().await.map_err(|e| {
            self.metrics.request("get_range", "error");
            self.failed(key, "GET (range)", e)
        })?;
        self.metrics.request("get_range", "ok");
        self.metrics.downloaded_bytes.inc_by(bytes.len() as u64);
        Ok((bytes, size))
    }

    /// Writes `bytes` under `key`: unconditionally, only if absent
    /// (`PutMode::Create`, `If-None-Match: *`) or only if still at a
    /// version (`PutMode::Update`, `If-Match`).
    pub async fn put(&self, key: &str, bytes: Bytes, mode: PutMode) -> Result<Put, Error> {
        let len = bytes.len() as u64;
        let options = PutOptions { mode, ..PutOptions::default() };
        match self.store.put_opts(&self.path(key), PutPayload::from_bytes(bytes), options).await {
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
                writer
                    .put(Bytes::copy_from_slice(&buf[..n]))
                    .await
                    .map_err(|e| self.failed(key, "PUT", e))?;
            }
            tokio::io::AsyncWriteExt::shutdown(&mut writer).await.map_err(|e| Error::Request {
                location: self.location(key),
                operation: "PUT",
                source: object_store::Error::Generic { store: "upload", source: Box::new(e) },
            })?;
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
        match self.store.delete(&self.path(key)).await {
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
        let listed = self.store.list_with_delimiter(Some(&self.root)).await.map_err(|e| {
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
        let listed: Vec<ObjectMeta> =
            self.store.list(Some(&self.path(prefix))).try_collect().await.map_err(|e| {
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
