//! Per-upstream health: a circuit breaker for each upstream server (scheme, host and port).
//!
//! Every answer and failure of an upstream is counted. One failure makes the upstream
//! *degraded*; [`DOWN_AFTER`] failures in a row make it *down*: from then on nothing is asked of
//! it on a client's behalf (cached copies are served at once, uncached ones fail at once with the
//! reason), and one background probe asks it again, at growing intervals, until it answers. Each
//! change of state is logged once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use url::Url;

/// Failures in a row after which an upstream is down.
pub(crate) const DOWN_AFTER: u32 = 3;
/// The first wait between probes of a down upstream (doubling up to [`PROBE_AT_MOST`]).
pub(crate) const PROBE_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between probes.
pub(crate) const PROBE_AT_MOST: Duration = Duration::from_secs(60);

/// The state of one upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthState {
    /// Its last answer was good.
    Healthy,
    /// Its last answers failed, but fewer than [`DOWN_AFTER`] in a row.
    Degraded,
    /// It failed [`DOWN_AFTER`] times in a row: cached copies are served without asking it, and
    /// a background probe asks it until it answers.
    Down,
}

/// What is known about one upstream, for the status page, the API and `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpstreamStatus {
    /// The upstream server (`https://pypi.org`), never with credentials.
    pub upstream: String,
    /// Its state.
    pub state: HealthState,
    /// When it went down (only while it is down).
    pub down_since: Option<DateTime<Utc>>,
    /// When it last answered well.
    pub last_success: Option<DateTime<Utc>>,
    /// When it last failed.
    pub last_failure: Option<DateTime<Utc>>,
    /// How it last failed.
    pub last_error: Option<String>,
    /// Failures in a row.
    pub consecutive_failures: u32,
}

#[derive(Debug)]
struct Breaker {
    status: UpstreamStatus,
    probing: bool,
}

/// The breakers of the upstreams one client talks to.
#[derive(Debug, Default)]
pub(crate) struct Health {
    breakers: Mutex<HashMap<String, Breaker>>,
}

/// The key of an upstream server: scheme, host and port, without credentials or path.
pub(crate) fn server_of(url: &Url) -> String {
    match (url.host_str(), url.port_or_known_default()) {
        (Some(host), Some(port)) => format!("{}://{host}:{port}", url.scheme()),
        (Some(host), None) => format!("{}://{host}", url.scheme()),
        _ => url.scheme().to_owned(),
    }
}

/// What a failure changed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Nothing to do.
    Nothing,
    /// The upstream has just gone down: start probing it.
    StartProbe,
}

impl Health {
    fn with<R>(&self, server: &str, change: impl FnOnce(&mut Breaker) -> R) -> R {
        let mut breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let breaker = breakers
            .entry(server.to_owned())
            .or_insert_with(|| Breaker {
                status: UpstreamStatus {
                    upstream: server.to_owned(),
                    state: HealthState::Healthy,
                    down_since: None,
                    last_success: None,
                    last_failure: None,
                    last_error: None,
                    consecutive_failures: 0,
                },
                probing: false,
            });
        change(breaker)
    }

    /// When the upstream serving `url` is down, since when (requests are then not sent).
    pub(crate) fn down_since(&self, url: &Url) -> Option<DateTime<Utc>> {
        let breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        breakers
            .get(&server_of(url))
            .and_then(|breaker| breaker.status.down_since)
    }

    /// Counts a good answer from the upstream serving `url`.
    pub(crate) fn succeeded(&self, url: &Url) {
        let server = server_of(url);
        self.with(&server, |breaker| {
            let status = &mut breaker.status;
            match status.state {
                HealthState::Healthy => {}
                HealthState::Degraded => {
                    tracing::info!(upstream = %server, "upstream answers again: healthy");
                }
                HealthState::Down => {
                    let since = status.down_since.map(|since| since.to_rfc3339());
                    tracing::warn!(upstream = %server, down_since = ?since, "upstream is back: healthy; it is asked again for clients");
                }
            }
            status.state = HealthState::Healthy;
            status.down_since = None;
            status.consecutive_failures = 0;
            status.last_success = Some(Utc::now());
        });
    }

    /// Counts a failure of the upstream serving `url`.
    pub(crate) fn failed(&self, url: &Url, why: &str) -> AfterFailure {
        let server = server_of(url);
        self.with(&server, |breaker| {
            let now = Utc::now();
            let status = &mut breaker.status;
            status.consecutive_failures = status.consecutive_failures.saturating_add(1);
            status.last_failure = Some(now);
            status.last_error = Some(why.to_owned());
            match status.state {
                HealthState::Healthy => {
                    tracing::warn!(upstream = %server, error = why, "upstream failed: degraded");
                    status.state = HealthState::Degraded;
                }
                HealthState::Degraded if status.consecutive_failures >= DOWN_AFTER => {
                    tracing::error!(upstream = %server, error = why, failures = status.consecutive_failures, "upstream is down: cached copies are served without asking it, and a background probe asks it until it answers");
                    status.state = HealthState::Down;
                    status.down_since = Some(now);
                }
                HealthState::Degraded | HealthState::Down => {}
            }
            if status.state == HealthState::Down && !breaker.probing {
                breaker.probing = true;
                AfterFailure::StartProbe
            } else {
                AfterFailure::Nothing
            }
        })
    }

    /// The probe of the upstream serving `url` has ended (it answered).
    pub(crate) fn probe_ended(&self, url: &Url) {
        self.with(&server_of(url), |breaker| breaker.probing = false);
    }

    /// Every upstream this client has talked to.
    pub(crate) fn statuses(&self) -> Vec<UpstreamStatus> {
        let breakers = self
            .breakers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut statuses: Vec<UpstreamStatus> = breakers
            .values()
            .map(|breaker| breaker.status.clone())
            .collect();
        statuses.sort_by(|left, right| left.upstream.cmp(&right.upstream));
        statuses
    }
}

/// What every gateway tells the status page and its administrators: the state of its upstream
/// servers and the documents it holds back, which a curator may accept.
pub trait Watched: Send + Sync {
    /// The state of every upstream server this gateway has asked.
    fn upstream_health(&self) -> Vec<UpstreamStatus>;

    /// Upstream documents held back because they look wrong next to the cached ones.
    fn held_back(&self) -> Vec<crate::HeldDocument>;

    /// An administrator accepts the document held back under `document`: the next request
    /// for it asks the upstream again and believes what it sends. `None` when nothing is held
    /// under that name.
    fn accept_held(&self, document: &str) -> Option<crate::HeldDocument>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_in_a_row_take_an_upstream_down_once_and_an_answer_brings_it_back() {
        let health = Health::default();
        let page = Url::parse("https://user:secret@pypi.example/simple/requests/").unwrap();
        let file = Url::parse("https://pypi.example:443/files/requests.whl").unwrap();
        assert_eq!(health.failed(&page, "timed out"), AfterFailure::Nothing);
        assert_eq!(health.statuses()[0].state, HealthState::Degraded);
        assert_eq!(health.failed(&file, "timed out"), AfterFailure::Nothing);
        assert!(health.down_since(&page).is_none());
        // The third failure in a row: down, and one probe starts.
        assert_eq!(health.failed(&page, "reset"), AfterFailure::StartProbe);
        assert_eq!(health.failed(&page, "reset"), AfterFailure::Nothing);
        assert!(health.down_since(&file).is_some());
        let status = &health.statuses()[0];
        assert_eq!(status.upstream, "https://pypi.example:443");
        assert_eq!(
            (status.state, status.consecutive_failures),
            (HealthState::Down, 4)
        );
        assert_eq!(status.last_error.as_deref(), Some("reset"));
        health.succeeded(&page);
        health.probe_ended(&page);
        let status = &health.statuses()[0];
        assert_eq!(
            (status.state, status.down_since, status.consecutive_failures),
            (HealthState::Healthy, None, 0)
        );
        assert!(status.last_success.is_some());
        // Another upstream server is another breaker.
        let other = Url::parse("http://127.0.0.1:9000/simple/").unwrap();
        health.failed(&other, "refused");
        assert_eq!(health.statuses().len(), 2);
    }
}
