//! The install-scripts rule: a version that runs code when it is installed (npm's `preinstall`,
//! `install` or `postinstall` scripts) is flagged as evidence, and refused where the view's
//! settings deny install scripts, unless an entry in force approves the version (a reviewed
//! decision that the scripts are acceptable).

use super::decision::{Effect, Reason, ReasonCode};
use super::release::Release;
use crate::settings::InstallScripts;

/// Adds the install-scripts reason to `reasons` (which already hold the formulary rule's
/// outcome). Returns true when it denies the version.
pub(super) fn apply(
    setting: InstallScripts,
    release: &Release,
    reasons: &mut Vec<Reason>,
    request_link: String,
) -> bool {
    if !release.install_scripts {
        return false;
    }
    let approved = reasons.iter().any(|reason| {
        reason.effect == Effect::Allow
            && matches!(reason.code, ReasonCode::InFormulary | ReasonCode::Divest)
    });
    let (effect, message) = match (setting, approved) {
        (InstallScripts::Allow, _) => (
            Effect::Note,
            "runs an install script (preinstall, install or postinstall) when it is installed: code from the package runs on the machine that installs it".to_owned(),
        ),
        (InstallScripts::Deny, true) => (
            Effect::Note,
            "runs an install script (preinstall, install or postinstall) when it is installed; this view denies install scripts, but an entry in force approves this version, so it is allowed".to_owned(),
        ),
        (InstallScripts::Deny, false) => (
            Effect::Deny,
            "runs an install script (preinstall, install or postinstall), which this view does not allow. Use a version without one, or request an exception: an entry approving this version lets it through".to_owned(),
        ),
    };
    reasons.push(Reason {
        code: ReasonCode::InstallScripts,
        effect,
        message,
        advisory: None,
        link: (effect == Effect::Deny).then_some(request_link),
    });
    effect == Effect::Deny
}
