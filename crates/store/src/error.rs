//! Why a store operation failed, with the engine's own error kept for the logs.
//!
//! A client is told what the store was doing when it failed ("could not read a key"); the
//! operator needs the cause underneath (the engine's I/O error, the file, the errno). The cause
//! is kept as a source, so a log line can walk the whole chain while the API answer stays short.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

use edgekv_core::limits::MAX_NAMESPACES_PER_ACCOUNT;
use edgekv_core::NamespaceId;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No live namespace with that id in that account.
    #[error("namespace not found")]
    NamespaceNotFound,
    /// The account already has a live namespace with that title.
    #[error("a namespace with this account ID and title already exists")]
    DuplicateTitle,
    /// The account is at its namespace limit.
    #[error("an account may have at most {MAX_NAMESPACES_PER_ACCOUNT} namespaces")]
    TooManyNamespaces,
    /// A replicated write names a namespace that belongs to another account here.
    #[error("namespace {0} belongs to another account")]
    AccountMismatch(NamespaceId),
    /// The durable store could not commit, fsync or read: the write was not applied, and it
    /// is never shown (a local write in `fsync` mode is shown only once durable).
    #[error("storage error: {context}")]
    Storage {
        /// What the store was doing, in words a client may see.
        context: String,
        /// The error underneath, when there is one.
        #[source]
        cause: Option<Cause>,
    },
    /// The store takes no writes now (its filesystem is about to fill up, or it failed and
    /// waits to recover): the write was refused before anything of it was stored.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl StoreError {
    /// A storage failure while doing `context`, caused by `cause`.
    pub fn storage(context: impl Into<String>, cause: impl Error + Send + Sync + 'static) -> Self {
        StoreError::Storage { context: context.into(), cause: Some(Cause::new(cause)) }
    }

    /// A storage failure with nothing underneath it.
    pub fn storage_bare(context: impl Into<String>) -> Self {
        StoreError::Storage { context: context.into(), cause: None }
    }
}

/// The error underneath a [`StoreError::Storage`], shared so the error stays cheap to clone.
///
/// Two causes are equal when they read the same: equality serves tests and deduplication, and
/// the engine's error types are not comparable themselves.
#[derive(Clone)]
pub struct Cause(Arc<dyn Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps `error`.
    pub fn new(error: impl Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(error))
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

/// An error and every error under it, `: `-separated, for a log line.
pub fn chain(error: &dyn Error) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        // Wrappers often repeat their cause's text; say each thing once.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_the_context_and_every_cause_once() {
        let io = std::io::Error::other("No space left on device (os error 28)");
        let err = StoreError::storage("could not read the key", io);
        assert_eq!(err.to_string(), "storage error: could not read the key");
        assert_eq!(
            chain(&err),
            "storage error: could not read the key: No space left on device (os error 28)"
        );
        assert!(err.source().is_some());
        assert_eq!(StoreError::storage_bare("x").source().map(|e| e.to_string()), None);
    }

    #[test]
    fn errors_compare_by_what_they_say() {
        let a = StoreError::storage("read", std::io::Error::other("boom"));
        let b = StoreError::storage("read", std::io::Error::other("boom"));
        let c = StoreError::storage("read", std::io::Error::other("bang"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.clone(), a);
    }
}
