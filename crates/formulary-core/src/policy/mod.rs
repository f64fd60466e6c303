//! The policy engine: from entries, settings, advisories and release evidence to an explained
//! decision for every version of a component, in one organisation's view at one moment.
//!
//! The rules, in order (design.md, "Policy semantics"):
//! 1. a `prohibited` entry denies; an organisation loosens a national prohibition only by an
//!    unexpired exception entry that waives it;
//! 2. under a curated stance, a version no admitting entry covers is denied, unless it is admitted
//!    as a dependency of an approved component;
//! 3. an advisory at or above the view's threshold denies, unless an unexpired exception waives
//!    it; unrated advisories count as high and malicious-package reports always deny; a conda
//!    package also gets the advisories of the PyPI or CRAN component it repackages;
//! 4. a licence outside the view's allowed set denies;
//! 5. a release younger than the cooldown is denied, unless it fixes an advisory that affects the
//!    newest version otherwise allowed (the security fast lane);
//! 6. upstream yanks are passed through, not hidden;
//! 7. a version that runs install scripts (npm) is flagged, and denied where the view's settings
//!    deny install scripts, unless an entry in force approves the version;
//! 8. when the advisory feed is staler than the view allows, every decision says so, and a view
//!    set to `hold` denies versions published after the feed went stale.

mod admission;
mod decision;
mod evaluate;
mod feed;
mod install_scripts;
mod release;
mod repackaged;
mod snapshot;

pub use admission::Admission;
pub use decision::{Decision, Effect, Reason, ReasonCode};
pub use evaluate::{evaluate_releases, evaluate_version};
pub use feed::{AdvisoryFeed, FeedPolicy, OnStaleFeed};
pub use release::Release;
pub use repackaged::{conda_mapping, set_conda_mapping, CondaMapping};
pub use snapshot::{PolicySnapshot, View};
