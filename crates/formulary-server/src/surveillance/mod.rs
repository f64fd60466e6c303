//! Surveillance: the advisory feed's freshness as every replica sees it (for `/readyz`, the API
//! and the surveillance page), inventory and "who has version X?", and recalls.
//!
//! The sync itself runs in the binary (`formulary serve`), which owns the OSV sources; it
//! reports each source's state here and in the database.

pub(crate) mod feeds;
pub(crate) mod inventory;
pub(crate) mod metrics_section;
pub(crate) mod recall_page;
pub(crate) mod recalls;
pub(crate) mod sbom;
pub(crate) mod who_has_page;

pub use feeds::FeedWatch;
