//! Evidence on demand for the component page, the request page and
//! `GET /api/v1/evidence`: what the upstream knows about a component, gathered by the gateway
//! from the documents it caches and revalidates, plus the advisories Formulary holds and the
//! dependency closure. A page waits at most the gateway's patience: an upstream that is slow or
//! down gives the cached evidence with its age, or says it is being fetched or unavailable,
//! while the work goes on in the background for the next visit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use formulary_core::ecosystems::Ecosystem;
use formulary_core::{Component, OrgCode};
use formulary_gateway::{ClosureSize, Evidence, GatewayError};
use serde::Serialize;

use crate::state::AppState;

/// How long a counted closure is reused.
const CLOSURE_REUSE: Duration = Duration::from_secs(600);
/// How long a closure walk may run (in the background) before it stops and says "at least".
const CLOSURE_BUDGET: Duration = Duration::from_secs(60);

/// How much longer than the gateway's patience a page waits: the gateway serves its cached
/// copy once the patience is over, and reading it takes a moment.
const PATIENCE_MARGIN: Duration = Duration::from_millis(750);

/// Closure sizes recently counted, and the walks still running, by gateway and component.
#[derive(Debug, Default)]
pub struct EvidenceMemo {
    closures: Mutex<HashMap<String, (Instant, ClosureSize)>>,
    walking: Mutex<HashMap<String, Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How current the evidence is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceState {
    /// Read from the upstream within the revalidation period.
    Fresh,
    /// The cached copy: the upstream could not be reached at the last check.
    Stale,
    /// Being fetched now; nothing is cached yet.
    Pending,
    /// The upstream cannot be reached and nothing is cached.
    Unavailable,
    /// No upstream this server uses has the component.
    NotFound,
    /// This server gathers no evidence for the component's ecosystem (or has no gateway for it).
    NotOffered,
    /// The gateway needs a token (`gateway_access = "token"`), so its upstreams are asked only
    /// for people who are signed in.
    SignInRequired,
}

/// The dependency closure as the evidence shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClosureView {
    /// Components needed, directly or not (not counting the component itself).
    pub size: usize,
    /// Their names.
    pub components: Vec<String>,
    /// False when the count is a lower bound (the walk stopped, or some metadata was unreadable).
    pub complete: bool,
    /// Of them, how many the organisation's view admits as dependencies of this component
    /// (curated views with this component approved).
    pub admitted_in_view: usize,
}

/// An advisory in the component's history.
#[derive(Debug, Clone, Serialize)]
pub struct AdvisoryHistory {
    /// OSV id.
    pub id: String,
    /// One line about it.
    pub summary: String,
    /// `low` … `critical`, or None when unrated.
    pub severity: Option<String>,
    /// A malicious-package report.
    pub malicious: bool,
    /// When it was published.
    pub published: Option<DateTime<Utc>>,
    /// When it was last changed.
    pub modified: DateTime<Utc>,
    /// When it was withdrawn (it then affects nothing).
    pub withdrawn: Option<DateTime<Utc>>,
}

/// Everything the evidence section shows.
#[derive(Debug, Clone, Serialize)]
pub struct EvidenceAnswer {
    /// The component (its package URL).
    pub purl: String,
    /// The organisation whose view the closure is counted in.
    pub organisation: OrgCode,
    /// How current it is.
    pub state: EvidenceState,
    /// What happened, why, and what to do next, in a sentence.
    pub message: String,
    /// How old the upstream's documents are, in seconds, when there are any.
    pub age_seconds: Option<i64>,
    /// What the upstream says.
    pub evidence: Option<Evidence>,
    /// The dependency closure, once counted.
    pub closure: Option<ClosureView>,
    /// Every advisory Formulary holds that names the component, withdrawn ones included,
    /// newest first.
    pub advisories: Vec<AdvisoryHistory>,
}

/// The gateway that answers for a component, as a kind that can be moved into a task.
#[derive(Clone)]
enum Source {
    Pypi(Arc<formulary_gateway::PypiGateway>),
    Cran(Arc<formulary_gateway::CranGateway>),
    Npm(Arc<formulary_gateway::NpmGateway>),
}

impl Source {
    fn of(state: &AppState, component: &Component, organisation: &OrgCode) -> Option<Source> {
        match component.ecosystem() {
            Ecosystem::Pypi => state
                .pypi_by_organisation
                .get(organisation)
                .or(state.pypi.as_ref())
                .cloned()
                .map(Source::Pypi),
            Ecosystem::Cran => state.cran.clone().map(Source::Cran),
            Ecosystem::Npm => state.npm.clone().map(Source::Npm),
            _ => None,
        }
    }

    fn patience(&self) -> Duration {
        match self {
            Source::Pypi(gateway) => gateway.patience(),
            Source::Cran(gateway) => gateway.patience(),
            Source::Npm(gateway) => gateway.patience(),
        }
    }

    /// Which gateway (PyPI gateways differ per organisation with upstreams of its own).
    fn key(&self, state: &AppState, component: &Component, organisation: &OrgCode) -> String {
        let scope = match self {
            Source::Pypi(_) if state.pypi_by_organisation.contains_key(organisation) => {
                organisation.to_string()
            }
            _ => String::new(),
        };
        format!("{scope}|{}", component.purl())
    }

    async fn evidence(&self, component: &Component) -> Result<Option<Evidence>, GatewayError> {
        match self {
            Source::Pypi(gateway) => gateway.evidence(component).await,
            Source::Cran(gateway) => gateway.evidence(component).await,
            Source::Npm(gateway) => gateway.evidence(component).await,
        }
    }

    async fn closure(&self, component: &Component) -> Result<ClosureSize, GatewayError> {
        match self {
            Source::Pypi(gateway) => gateway.closure_size(component, CLOSURE_BUDGET).await,
            Source::Cran(gateway) => gateway.closure_size(component, CLOSURE_BUDGET).await,
            Source::Npm(gateway) => gateway.closure_size(component, CLOSURE_BUDGET).await,
        }
    }
}

fn advisory_history(state: &AppState, component: &Component) -> Vec<AdvisoryHistory> {
    let snapshot = state.snapshot.current();
    let mut found: Vec<AdvisoryHistory> = snapshot
        .advisories_for(component)
        .iter()
        .map(|advisory| AdvisoryHistory {
            id: advisory.id.clone(),
            summary: advisory.summary.clone(),
            severity: advisory.severity.map(|severity| severity.to_string()),
            malicious: advisory.malicious,
            published: advisory.published,
            modified: advisory.modified,
            withdrawn: advisory.withdrawn,
        })
        .collect();
    found.sort_by(|left, right| {
        right
            .published
            .unwrap_or(right.modified)
            .cmp(&left.published.unwrap_or(left.modified))
    });
    found
}

/// True when a caller may make the gateway ask its upstreams: anyone when the gateway may be
/// read without a token, else only people signed in (or holding a token).
pub fn may_ask_upstream(state: &AppState, signed_in: bool) -> bool {
    signed_in || state.gateway_access == crate::GatewayAccess::Anonymous
}

/// Gathers the evidence on `component`, waiting at most the gateway's patience; the closure is
/// counted in the background and shown once known. `may_ask` comes from [`may_ask_upstream`].
pub async fn gather(
    state: &AppState,
    component: &Component,
    organisation: &OrgCode,
    may_ask: bool,
) -> EvidenceAnswer {
    let mut answer = EvidenceAnswer {
        purl: component.purl(),
        organisation: organisation.clone(),
        state: EvidenceState::NotOffered,
        message: String::new(),
        age_seconds: None,
        evidence: None,
        closure: None,
        advisories: advisory_history(state, component),
    };
    let Some(source) = Source::of(state, component, organisation) else {
        answer.message = format!(
            "Formulary gathers upstream evidence for PyPI, CRAN and npm packages through its gateways; this server has no {} gateway, so only what Formulary itself holds is shown.",
            component.ecosystem().display_name()
        );
        return answer;
    };
    if !may_ask {
        answer.state = EvidenceState::SignInRequired;
        answer.message = "Sign in to see what the upstream says about it: this server's gateway asks its upstreams only for people with an account.".to_owned();
        return answer;
    }
    // Each upstream document waits at most the gateway's patience and is then served from the
    // cache; the margin lets that cached copy (and the reading of it) arrive.
    let patience = source.patience().max(Duration::from_millis(200)) + PATIENCE_MARGIN;
    let started = Instant::now();
    let key = source.key(state, component, organisation);
    start_closure(state, &source, component, &key);
    let fetching = {
        let (source, component) = (source.clone(), component.clone());
        tokio::spawn(async move { source.evidence(&component).await })
    };
    let upstream_name = component.ecosystem().display_name();
    match tokio::time::timeout(patience, fetching).await {
        Err(_) => {
            answer.state = EvidenceState::Pending;
            answer.message = format!(
                "Formulary is asking the {upstream_name} upstream now (it did not answer within {} ms); reload this page in a few seconds.",
                patience.as_millis()
            );
        }
        Ok(Err(error)) => {
            tracing::error!(%error, %component, "the evidence task stopped");
            answer.state = EvidenceState::Unavailable;
            answer.message =
                "Formulary could not gather the evidence this time; reload the page to try again."
                    .to_owned();
        }
        Ok(Ok(Ok(None))) => {
            answer.state = EvidenceState::NotFound;
            answer.message = format!(
                "No {upstream_name} upstream this server uses lists {}: check the name, or ask an administrator which upstreams are configured.",
                component.name
            );
        }
        Ok(Ok(Err(error))) => {
            tracing::warn!(%error, %component, "could not gather evidence");
            answer.state = EvidenceState::Unavailable;
            answer.message = format!(
                "The {upstream_name} upstream cannot be reached and nothing about {} is cached yet ({}); try again later.",
                component.name,
                unavailable_why(&error)
            );
        }
        Ok(Ok(Ok(Some(evidence)))) => {
            let age = (Utc::now() - evidence.checked_at).num_seconds().max(0);
            answer.age_seconds = Some(age);
            if evidence.stale {
                answer.state = EvidenceState::Stale;
                answer.message = format!(
                    "The {upstream_name} upstream cannot be reached just now: this is the copy Formulary fetched {} ago.",
                    describe_age(age)
                );
            } else {
                answer.state = EvidenceState::Fresh;
                answer.message = format!(
                    "From the {upstream_name} upstream, checked {} ago.",
                    describe_age(age)
                );
            }
            answer.evidence = Some(evidence);
        }
    }
    // The closure may finish within what is left of the patience.
    let left = patience.saturating_sub(started.elapsed());
    let deadline = Instant::now() + left;
    loop {
        if let Some(closure) = cached_closure(state, &key) {
            answer.closure = Some(closure_view(state, component, organisation, closure));
            break;
        }
        if Instant::now() >= deadline || !lock(&state.evidence.walking).contains_key(&key) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    answer
}

fn unavailable_why(error: &GatewayError) -> String {
    match error {
        GatewayError::Upstream(failure) => failure.to_string(),
        GatewayError::Store(_) => "the record store could not be read".to_owned(),
        other => other.to_string(),
    }
}

fn cached_closure(state: &AppState, key: &str) -> Option<ClosureSize> {
    lock(&state.evidence.closures)
        .get(key)
        .filter(|(counted, _)| counted.elapsed() < CLOSURE_REUSE)
        .map(|(_, closure)| closure.clone())
}

/// Starts counting the closure in the background unless it is known or being counted.
fn start_closure(state: &AppState, source: &Source, component: &Component, key: &str) {
    if cached_closure(state, key).is_some() {
        return;
    }
    {
        let mut walking = lock(&state.evidence.walking);
        if walking
            .get(key)
            .is_some_and(|started| started.elapsed() < CLOSURE_BUDGET * 2)
        {
            return;
        }
        walking.insert(key.to_owned(), Instant::now());
    }
    let memo = Arc::clone(&state.evidence);
    let (source, component, key) = (source.clone(), component.clone(), key.to_owned());
    tokio::spawn(async move {
        match source.closure(&component).await {
            Ok(closure) => {
                lock(&memo.closures).insert(key.clone(), (Instant::now(), closure));
            }
            Err(error) => {
                tracing::warn!(%error, %component, "could not count the dependency closure");
            }
        }
        lock(&memo.walking).remove(&key);
    });
}

fn closure_view(
    state: &AppState,
    component: &Component,
    organisation: &OrgCode,
    closure: ClosureSize,
) -> ClosureView {
    let snapshot = state.snapshot.current();
    let mut admitted: Vec<&Component> = snapshot
        .admissions()
        .filter(|admission| admission.root == *component && admission.organisation == *organisation)
        .map(|admission| &admission.component)
        .collect();
    admitted.sort();
    admitted.dedup();
    ClosureView {
        size: closure.components.len(),
        complete: closure.complete,
        admitted_in_view: admitted.len(),
        components: closure.components,
    }
}

/// "12 seconds", "5 minutes", "3 hours", "2 days".
pub fn describe_age(seconds: i64) -> String {
    let (amount, unit) = match seconds {
        ..=89 => (seconds, "second"),
        90..=5399 => ((seconds + 30) / 60, "minute"),
        5400..=129_599 => ((seconds + 1800) / 3600, "hour"),
        _ => ((seconds + 43_200) / 86_400, "day"),
    };
    format!("{amount} {unit}{}", if amount == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::describe_age;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(describe_age(0), "0 seconds");
        assert_eq!(describe_age(1), "1 second");
        assert_eq!(describe_age(120), "2 minutes");
        assert_eq!(describe_age(7200), "2 hours");
        assert_eq!(describe_age(200_000), "2 days");
    }
}
