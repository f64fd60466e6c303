use serde::Serialize;

use crate::component::Component;

/// Whether a reason denies, explains an allowance, or is for information only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// This reason alone denies the version.
    Deny,
    /// This reason is why the version is allowed.
    Allow,
    /// Worth knowing; changes nothing.
    Note,
}

/// A stable code for each kind of reason, for scripts and for clients that map codes to help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonCode {
    /// Covered by a prohibited entry.
    Prohibited,
    /// A national prohibition set aside for this organisation by an exception entry.
    ProhibitionWaived,
    /// An organisation entry tried to allow a nationally prohibited version without an exception.
    OverlayCannotLoosen,
    /// Covered by an admitting entry.
    InFormulary,
    /// Allowed, but marked divest: not for new use.
    Divest,
    /// A curated view has no admitting entry for the version.
    NotInFormulary,
    /// Admitted in a curated view because an approved component needs it.
    DependencyOf,
    /// The only entries are under review.
    UnderReview,
    /// The admitting entry was a pilot that has expired.
    PilotExpired,
    /// Affected by an advisory at or above the threshold.
    Advisory,
    /// Reported as a malicious package.
    Malicious,
    /// Affected by an advisory below the threshold.
    AdvisoryBelowThreshold,
    /// An advisory set aside by an exception entry.
    AdvisoryWaived,
    /// The licence is outside the allowed set.
    LicenceNotAllowed,
    /// The licence is unknown or not a valid SPDX expression.
    LicenceUnknown,
    /// Published too recently.
    Cooldown,
    /// Published recently, but let through because it fixes an advisory.
    SecurityFastLane,
    /// No publication date is known, so the cooldown could not be applied.
    ReleaseDateUnknown,
    /// Yanked upstream.
    Yanked,
    /// A package it needs at install time is denied, so installing it must fail.
    DependencyDenied,
    /// Runs an install script (npm `preinstall`, `install`, `postinstall`): evidence, or a denial
    /// where the view denies install scripts.
    InstallScripts,
    /// The advisory feed has not been synced for longer than the view allows.
    AdvisoryFeedStale,
}

/// One reason behind a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reason {
    /// What kind of reason.
    pub code: ReasonCode,
    /// What it does to the decision.
    pub effect: Effect,
    /// A sentence for people: what, why and, for denials, what to do next.
    pub message: String,
    /// The advisory concerned, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advisory: Option<String>,
    /// Where to read more or act: an advisory page, or a path on this server (such as the
    /// request page for the component), which callers make absolute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The decision for one version in one view, with every reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// The component.
    pub component: Component,
    /// The version, as written.
    pub version: String,
    /// True when no reason denies.
    pub allowed: bool,
    /// `Some(reason)` when the upstream yanked the version; resolvers skip it unless pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub yanked: Option<String>,
    /// Every reason, in the order the rules were applied.
    pub reasons: Vec<Reason>,
}

impl Decision {
    /// The reasons that deny the version.
    pub fn denials(&self) -> impl Iterator<Item = &Reason> {
        self.reasons
            .iter()
            .filter(|reason| reason.effect == Effect::Deny)
    }

    /// One line that sums up why the version is denied (the first denial), for places that have
    /// room for only one line, such as an HTTP reason phrase.
    pub fn headline(&self) -> Option<&str> {
        self.denials().next().map(|reason| reason.message.as_str())
    }
}
