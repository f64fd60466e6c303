//! Per-ecosystem rules that every other crate relies on: which ecosystems exist, how their package
//! names normalise, how their versions order and how their version ranges are written.
//!
//! This crate is pure: it does no I/O, and it never decides policy. It only answers "is this a
//! valid name", "which version is newer" and "does this range cover that version".

pub mod conda;
pub mod cran;
mod cran_version;
mod ecosystem;
mod error;
mod generic_version;
mod name;
pub mod npm;
pub mod pypi;
mod range;
mod version;

pub use cran_version::CranVersion;
pub use ecosystem::Ecosystem;
pub use error::EcosystemError;
pub use generic_version::GenericVersion;
pub use name::PackageName;
pub use range::{Comparator, VersionRange};
pub use version::Version;
