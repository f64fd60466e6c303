//! Keeping the stored dependency admissions of curated views up to date: for each organisation
//! whose PyPI or CRAN view is curated, the closure of its approvals is worked out from upstream
//! metadata and stored when it changed (which moves the change counter, so every replica's
//! snapshot picks it up).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::policy::{PolicySnapshot, View};
use formulary_core::OrgCode;
use formulary_store::Database;

use crate::dependencies::CranCatalogue;
use crate::dependencies_closure::{closure, curated_organisations};
use crate::error::GatewayError;
use crate::{CranGateway, PypiGateway};

/// The audit actor of admissions written by the gateway.
pub const ADMISSIONS_ACTOR: &str = "formulary (dependency closure)";

/// The gateways whose upstreams closures are read from.
#[derive(Debug, Clone, Default)]
pub struct ClosureSources {
    /// The default PyPI gateway.
    pub pypi: Option<Arc<PypiGateway>>,
    /// PyPI gateways of organisations with upstreams of their own.
    pub pypi_by_organisation: HashMap<OrgCode, Arc<PypiGateway>>,
    /// The CRAN gateway.
    pub cran: Option<Arc<CranGateway>>,
}

/// What one refresh found.
#[derive(Debug, Default)]
pub struct AdmissionsRefresh {
    /// (organisation, ecosystem, admissions) worked out.
    pub views: Vec<(OrgCode, Ecosystem, usize)>,
    /// True when anything stored changed.
    pub changed: bool,
    /// Releases whose requirements could not be read.
    pub unknown: Vec<String>,
}

/// Works out the closures of every curated view and stores those that changed.
pub async fn refresh_admissions(
    database: &Database,
    snapshot: &PolicySnapshot,
    sources: &ClosureSources,
) -> Result<AdmissionsRefresh, GatewayError> {
    let organisations: Vec<OrgCode> = database
        .organisations()
        .await?
        .into_iter()
        .map(|organisation| organisation.code)
        .collect();
    let mut refresh = AdmissionsRefresh::default();
    let mut catalogue: Option<CranCatalogue> = None;
    for ecosystem in [Ecosystem::Pypi, Ecosystem::Cran] {
        for organisation in curated_organisations(snapshot, &organisations, ecosystem) {
            let view = View {
                organisation: organisation.clone(),
                at: Utc::now(),
            };
            let worked_out = match ecosystem {
                Ecosystem::Pypi => {
                    let Some(gateway) = sources
                        .pypi_by_organisation
                        .get(&organisation)
                        .or(sources.pypi.as_ref())
                    else {
                        continue;
                    };
                    closure(snapshot, &view, ecosystem, gateway.as_ref()).await?
                }
                Ecosystem::Cran => {
                    let Some(gateway) = &sources.cran else {
                        continue;
                    };
                    if catalogue.is_none() {
                        // Revalidate the source tree first, so a closure sees current PACKAGES.
                        if let Err(error) = gateway.source_tree().await {
                            tracing::warn!(%error, "could not refresh CRAN's PACKAGES for dependency closures; using the cached copy");
                        }
                        catalogue = Some(CranCatalogue::load(database).await?);
                    }
                    let Some(catalogue) = catalogue.as_ref() else {
                        continue;
                    };
                    closure(snapshot, &view, ecosystem, catalogue).await?
                }
                _ => continue,
            };
            refresh.unknown.extend(worked_out.unknown);
            refresh
                .views
                .push((organisation.clone(), ecosystem, worked_out.admissions.len()));
            refresh.changed |= database
                .replace_admissions(
                    &organisation,
                    ecosystem,
                    &worked_out.admissions,
                    ADMISSIONS_ACTOR,
                )
                .await?;
        }
    }
    // Views no longer curated keep no admissions.
    for ecosystem in [Ecosystem::Pypi, Ecosystem::Cran] {
        let curated = curated_organisations(snapshot, &organisations, ecosystem);
        for organisation in organisations.iter().filter(|code| !curated.contains(code)) {
            refresh.changed |= database
                .replace_admissions(organisation, ecosystem, &[], ADMISSIONS_ACTOR)
                .await?;
        }
    }
    Ok(refresh)
}
