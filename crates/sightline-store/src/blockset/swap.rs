//! The manifest's compare-and-swap loop, shared by every block set that
//! keeps a manifest in a [`BlockStorage`] (the trace store's and the log
//! store's): the two differ in what blocks they serve, not in how a change
//! is committed.

use super::{BlockStorage, ManifestState, ManifestVersion};
use crate::Error;

/// How often a change is applied again after losing the manifest to
/// another node's commit before giving up (the caller retries later).
pub const MAX_MANIFEST_CONFLICTS: usize = 32;

/// Commits `change` to the manifest `current` (the last committed state
/// and its version) by compare-and-swap; returns the state committed and
/// its version, which the caller serves and then stores in `current`.
///
/// In a shared storage a conflict means another node committed first: the
/// manifest is read again into `current`, `reread` is told (so the served
/// blocks follow it even if the change then fails), and `change` applied
/// again (it may refuse, as a merge whose inputs are gone does). Blocking.
pub fn swap_manifest<E: From<Error>>(
    storage: &dyn BlockStorage,
    current: &mut (ManifestState, Option<ManifestVersion>),
    change: impl Fn(&mut ManifestState) -> Result<(), E>,
    mut reread: impl FnMut(&ManifestState),
) -> Result<(ManifestState, ManifestVersion), E> {
    let mut conflicts = 0;
    loop {
        let mut next = current.0.clone();
        change(&mut next)?;
        match storage.swap_manifest(current.1.as_ref(), &next) {
            Ok(version) => return Ok((next, version)),
            Err(Error::ManifestConflict { .. }) if storage.shared() && conflicts < MAX_MANIFEST_CONFLICTS => {
                conflicts += 1;
                *current = match storage.read_manifest()? {
                    Some((state, version)) => (state, Some(version)),
                    None => (ManifestState::default(), None),
                };
                reread(&current.0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}
