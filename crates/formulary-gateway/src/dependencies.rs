//! Dependencies that make an allowed package uninstallable: a CRAN package whose Imports,
//! Depends or LinkingTo resolve only to denied versions is denied too, with the reason.

use formulary_core::ecosystems::{cran, Ecosystem, Version};
use formulary_core::policy::{
    evaluate_version, Decision, Effect, PolicySnapshot, Reason, ReasonCode, View,
};
use formulary_core::Component;
use formulary_store::Database;

use crate::error::GatewayError;

/// For CRAN versions the gateway has seen, checks the packages they need at install time: a
/// denied dependency makes the install fail, so it denies the package too (with the reason).
pub async fn explain_cran_dependencies(
    database: &Database,
    snapshot: &PolicySnapshot,
    view: &View,
    decisions: &mut [Decision],
) -> Result<(), GatewayError> {
    if !decisions
        .iter()
        .any(|decision| decision.component.ecosystem() == Ecosystem::Cran)
    {
        return Ok(());
    }
    let index = crate::cran::cached_index(database, "src/contrib").await?;
    let field =
        |paragraph: &deb822_fast::Paragraph, name: &str| paragraph.get(name).map(str::to_owned);
    for decision in decisions
        .iter_mut()
        .filter(|decision| decision.component.ecosystem() == Ecosystem::Cran)
    {
        let Some(paragraph) = index.iter().find(|paragraph| {
            field(paragraph, "Package").as_deref() == Some(decision.component.name.as_str())
                && field(paragraph, "Version").as_deref() == Some(decision.version.as_str())
        }) else {
            continue;
        };
        for dependency in cran::dependencies(paragraph) {
            let Ok(component) = Component::new(Ecosystem::Cran, &dependency.name) else {
                continue;
            };
            let served = index
                .iter()
                .filter(|candidate| {
                    field(candidate, "Package").as_deref() == Some(dependency.name.as_str())
                })
                .filter_map(|candidate| {
                    Version::parse(Ecosystem::Cran, &field(candidate, "Version")?).ok()
                })
                .filter(|version| dependency.range.contains(version))
                .max();
            let Some(version) = served else { continue };
            let releases = database.releases_of(&component).await?;
            let dependency_decision =
                evaluate_version(snapshot, view, &component, &version, &releases);
            if !dependency_decision.allowed {
                decision.allowed = false;
                decision.reasons.push(Reason {
                    code: ReasonCode::DependencyDenied,
                    effect: Effect::Deny,
                    message: format!(
                        "it needs {} ({}), and {} {} is denied: {}. Installing it must fail until that is resolved",
                        dependency.name,
                        dependency.range,
                        dependency.name,
                        version,
                        dependency_decision.headline().unwrap_or("denied")
                    ),
                    advisory: None,
                    link: Some(format!("/components/cran/{}", dependency.name)),
                });
            }
        }
    }
    Ok(())
}
