//! The start-up check that the store honours conditional writes. Nodes
//! sharing a bucket rely on `If-None-Match: *` and `If-Match` to never
//! overwrite each other's manifest or lease; a store that ignores them
//! (SeaweedFS up to 3.96 did, some S3 look-alikes still do) would accept
//! every write and lose blocks silently, so Sightline refuses to start on
//! one.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use object_store::PutMode;

use crate::Error;
use crate::bucket::{Bucket, Put};

/// Writes a scratch object under `_cluster/selftest/` four ways and
/// checks each outcome; deletes it after.
pub async fn check_conditional_writes(bucket: &Bucket, node: &str) -> Result<(), Error> {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let key = format!("_cluster/selftest/{node}-{nanos:x}");
    let result = probe(bucket, &key).await;
    let cleaned = bucket.delete(&key).await;
    result?;
    cleaned
}

async fn probe(bucket: &Bucket, key: &str) -> Result<(), Error> {
    let refuse = |detail: &str| Error::NoConditionalWrites {
        location: bucket.location(""),
        detail: detail.to_owned(),
    };
    let e_tag = match bucket.put(key, Bytes::from_static(b"1"), PutMode::Create).await? {
        Put::Done(Some(e_tag)) => e_tag,
        Put::Done(None) => return Err(refuse("a PUT returned no ETag")),
        Put::Lost => return Err(refuse("a PUT with If-None-Match: * of a new object was refused")),
    };
    if bucket.put(key, Bytes::from_static(b"2"), PutMode::Create).await? != Put::Lost {
        return Err(refuse("a PUT with If-None-Match: * replaced an existing object"));
    }
    let stale = Bucket::update("\"0123456789abcdef0123456789abcdef\"");
    if bucket.put(key, Bytes::from_static(b"3"), stale).await? != Put::Lost {
        return Err(refuse("a PUT with If-Match of a stale ETag replaced the object"));
    }
    if bucket.put(key, Bytes::from_static(b"4"), Bucket::update(&e_tag)).await? == Put::Lost {
        return Err(refuse("a PUT with If-Match of the current ETag was refused"));
    }
    Ok(())
}
