//! The package gateway's logic, independent of HTTP framing: fetching from upstream indexes,
//! caching index documents and files, and applying the policy to both. The server turns its
//! outcomes into responses.
//!
//! Denied versions stay in PyPI index documents as yanked files whose yank reason is the policy's
//! reason (PEP 592): resolvers skip them, an exact pin still reaches the download, and the
//! download is refused with the reason. A project with no allowed version in a curated view is
//! "not in this formulary" (the server answers 404).

mod admissions;
mod conda;
mod cran;
mod dependencies;
mod dependencies_closure;
mod engine;
mod error;
mod evidence;
mod ledger;
mod npm;
mod pypi;
mod tools;

pub use admissions::{refresh_admissions, AdmissionsRefresh, ClosureSources, ADMISSIONS_ACTOR};
pub use conda::{
    channel_notices, import_conda_folder, parse_shard_filename, CondaGateway,
    Notice as CondaNotice, Notices as CondaNotices, PackageFileOutcome, PassedThrough,
    RepodataOutcome, ServedRepodata, ShardedView, SigsOutcome, SHARD_RETENTION,
};
pub use cran::mirror::import_cran_folder;
pub use cran::{
    cached_index as cached_cran_index, is_tree as is_cran_tree,
    parse_filename as parse_cran_filename, refusal_slug, CranFileOutcome, CranGateway, ServedIndex,
};
pub use dependencies::explain_cran_dependencies;
pub use engine::health::{HealthState, UpstreamStatus, Watched};
pub use engine::import::MirrorReport;
pub use engine::rendered::Rendered;
pub use engine::sanity::HeldDocument;
pub use engine::upstream::{Budget, UpstreamClient, UpstreamFailure, UpstreamOptions};
pub use error::GatewayError;
pub use evidence::{ClosureSize, DependencyEvidence, Evidence, ProjectLink, VersionEvidence};
pub use ledger::{DownloadLedger, LedgerOptions, LedgerStatus, LedgerSummary, LedgerWriter};
pub use npm::audit::BulkAnswer;
pub use npm::mirror::import_npm_folder;
pub use npm::{NpmGateway, PackumentOutcome, ServedPackument, TarballOutcome};
pub use pypi::mirror::import_pypi_folder;
pub use pypi::{
    without_request_sentence, FileOutcome, PageOutcome, PypiGateway, RootListing, ServedPage,
    DEFAULT_SCOPE, ROOT_LISTING_TTL,
};
pub use tools::{OfferedTool, ToolFileOutcome, ToolGateway};
