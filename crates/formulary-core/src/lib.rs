//! The pure domain of Formulary: components and purls, organisations and their settings, entries
//! (decisions), OSV advisories with affected-version evaluation, and the policy engine that turns
//! all of these into an explained allow or deny.
//!
//! This crate does no I/O: no files, no network, no clock. Callers pass the time in. That keeps
//! the policy exact, fast and testable; storage and transport live in other crates.

mod access;
pub mod advisory;
pub mod channel_notice;
mod component;
mod entry;
mod error;
pub mod inventory;
mod licence;
mod organisation;
pub mod policy;
pub mod request;
mod settings;
mod severity;

pub use access::{Membership, Role};
pub use component::{Component, ComponentVersion};
pub use entry::{Entry, EntryDraft, Status, Waiver};
pub use error::CoreError;
pub use licence::LicenceCheck;
pub use organisation::{OrgCode, Organisation};
pub use settings::{EcosystemSettings, InstallScripts, Stance};
pub use severity::Severity;

pub use formulary_ecosystems as ecosystems;
