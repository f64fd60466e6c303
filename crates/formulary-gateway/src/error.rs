use thiserror::Error;

use crate::engine::upstream::UpstreamFailure;

/// Why the gateway could not answer.
#[derive(Debug, Error)]
pub enum GatewayError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] formulary_store::StoreError),
    /// Every upstream failed and nothing is cached.
    #[error("the upstream index could not be reached and nothing is cached for this project: {0}")]
    Upstream(#[from] UpstreamFailure),
    /// The upstream served a file that does not match its published digests or is not the file
    /// its name says.
    #[error("the upstream served a corrupt or mismatched {filename} ({why}); it was not cached. Try again later, and tell the operator if it persists")]
    CorruptUpstreamFile {
        /// The file.
        filename: String,
        /// What is wrong with it.
        why: String,
    },
    /// A tool file whose vendor signature is missing or does not verify with the key pinned in
    /// its manifest; it was not cached.
    #[error("the vendor's signature on {filename} did not verify ({why}); it was not cached")]
    VendorSignature {
        /// The file.
        filename: String,
        /// What did not verify.
        why: String,
    },
    /// An upstream document looks wrong next to the cached one (most of it gone, or empty) and
    /// is held back until it is seen again; the cached copy is served.
    #[error("a suspicious upstream document was held back: {why}")]
    HeldBack {
        /// What looks wrong.
        why: String,
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
