//! Small filesystem helpers with the durability steps spelled out.

use std::fs::File;
use std::path::Path;

use crate::Error;

/// Fsyncs a directory so entries created, renamed or removed in it are
/// durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}
