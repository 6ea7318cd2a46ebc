//! Raising the process's soft limit on open files to its hard limit.
//!
//! Each connection takes a descriptor; distributions often leave the soft
//! limit at 1,024 while allowing far more. Servers (nginx's
//! `worker_rlimit_nofile`, Go's runtime since 1.19) raise it at start.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Soft and hard limits on open files after [`raise`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit before.
    pub before: Option<u64>,
    /// The soft limit now.
    pub now: Option<u64>,
}

/// Sets the soft `RLIMIT_NOFILE` to the hard limit; `None` means
/// unlimited. Failing to raise it is not an error: the old limit stays.
pub fn raise() -> FdLimit {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current == limit.maximum {
        return FdLimit { before, now: before };
    }
    let raised = Rlimit { current: limit.maximum, maximum: limit.maximum };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => FdLimit { before, now: getrlimit(Resource::Nofile).current },
        Err(_) => FdLimit { before, now: before },
    }
}
