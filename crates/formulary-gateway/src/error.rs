use thiserror::Error;

use crate::upstream::UpstreamFailure;

/// Why the gateway could not answer.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] formulary_store::StoreError),
    /// Every upstream failed and nothing is cached.
    #[error("the upstream index could not be reached and nothing is cached for this project: {0}")]
    Upstream(#[from] UpstreamFailure),
    /// The upstream file did not match its announced digest.
    #[error("the upstream file for {filename} does not match its published sha256; it was not cached. Try again later, and tell the operator if it persists")]
    CorruptUpstreamFile {
        /// The file.
        filename: String,
    },
    /// A folder given to `mirror import` cannot be imported.
    #[error("cannot import {what}: {why}")]
    Mirror {
        /// The folder or file.
        what: String,
        /// Why, and what to do.
        why: String,
    },
}
