//! The state of every upstream the gateways use, from memory (never the database): each
//! upstream server's circuit breaker (healthy, degraded, down since, last success) and the index
//! documents held back because they look wrong. Shown at `/status`, in `GET /api/v1/upstreams`
//! and summarised in `/readyz`.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Json, Response};
use formulary_gateway::{HealthState, HeldDocument, UpstreamStatus, Watched};
use maud::html;
use serde::Serialize;

use crate::state::AppState;
use crate::web::page::{self, Section};
use crate::web::session::Viewer;

/// The upstreams of one gateway.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct GatewayHealth {
    /// `pypi`, `npm` or `cran`.
    pub(crate) ecosystem: &'static str,
    /// Whose gateway: `default`, or the organisation with upstreams of its own.
    pub(crate) serves: String,
    /// Each upstream server it has asked.
    pub(crate) upstreams: Vec<UpstreamStatus>,
    /// Documents held back.
    pub(crate) held_back: Vec<HeldDocument>,
}

/// Every gateway, with its ecosystem and whom it serves (`default`, or the organisation with
/// upstreams of its own), in the order the status page shows them.
pub(crate) fn gateways(state: &AppState) -> Vec<(&'static str, String, &dyn Watched)> {
    let mut gateways: Vec<(&'static str, String, &dyn Watched)> = Vec::new();
    if let Some(pypi) = &state.pypi {
        gateways.push(("pypi", "default".to_owned(), pypi.as_ref()));
    }
    let mut organisations: Vec<_> = state.pypi_by_organisation.iter().collect();
    organisations.sort_by_key(|(code, _)| code.to_string());
    for (code, pypi) in organisations {
        gateways.push(("pypi", code.to_string(), pypi.as_ref()));
    }
    if let Some(npm) = &state.npm {
        gateways.push(("npm", "default".to_owned(), npm.as_ref()));
    }
    if let Some(cran) = &state.cran {
        gateways.push(("cran", "default".to_owned(), cran.as_ref()));
    }
    gateways
}

/// Every gateway's upstreams, from memory.
pub(crate) fn collect(state: &AppState) -> Vec<GatewayHealth> {
    gateways(state)
        .into_iter()
        .map(|(ecosystem, serves, gateway)| GatewayHealth {
            ecosystem,
            serves,
            upstreams: gateway.upstream_health(),
            held_back: gateway.held_back(),
        })
        .collect()
}

/// The worst upstream state, and a sentence for `/readyz`.
pub(crate) fn summary(gateways: &[GatewayHealth]) -> (HealthState, String) {
    let upstreams = || gateways.iter().flat_map(|gateway| &gateway.upstreams);
    let down: Vec<&str> = upstreams()
        .filter(|status| status.state == HealthState::Down)
        .map(|status| status.upstream.as_str())
        .collect();
    let degraded: Vec<&str> = upstreams()
        .filter(|status| status.state == HealthState::Degraded)
        .map(|status| status.upstream.as_str())
        .collect();
    let held: usize = gateways.iter().map(|gateway| gateway.held_back.len()).sum();
    let held_text = if held > 0 {
        format!(" {held} upstream index documents are held back (see /status).")
    } else {
        String::new()
    };
    if !down.is_empty() {
        (
            HealthState::Down,
            format!(
                "down: {}. Cached packages are served; uncached ones fail until it answers again (probed in the background).{held_text}",
                down.join(", ")
            ),
        )
    } else if !degraded.is_empty() || held > 0 {
        (
            HealthState::Degraded,
            format!(
                "recent failures: {}.{held_text}",
                if degraded.is_empty() {
                    "none".to_owned()
                } else {
                    degraded.join(", ")
                }
            ),
        )
    } else {
        (
            HealthState::Healthy,
            format!(
                "{} upstream servers asked, all answering",
                upstreams().count()
            ),
        )
    }
}

/// `GET /api/v1/upstreams`.
pub(crate) async fn api(State(state): State<AppState>) -> Response {
    let mut response = Json(collect(&state)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn state_text(state: HealthState) -> &'static str {
    match state {
        HealthState::Healthy => "Healthy",
        HealthState::Degraded => "Degraded",
        HealthState::Down => "Down",
    }
}

/// `GET /status`: the upstreams and held-back documents, for people. Works while the database
/// is down (the viewer is then shown as signed out).
pub(crate) async fn status_page(
    State(state): State<AppState>,
    viewer: Result<Viewer, Response>,
) -> Response {
    let viewer = viewer.unwrap_or_default();
    let gateways = collect(&state);
    let (worst, sentence) = summary(&gateways);
    let content = html! {
        h1 { "Upstream status" }
        p.nhsuk-body #summary { (state_text(worst)) ": " (sentence) }
        @if gateways.iter().all(|gateway| gateway.upstreams.is_empty()) {
            p { "No upstream has been asked since the server started." }
        }
        @for gateway in &gateways {
            @if !gateway.upstreams.is_empty() || !gateway.held_back.is_empty() {
                h2.nhsuk-heading-m { (gateway.ecosystem) " (" (gateway.serves) ")" }
            }
            @if !gateway.upstreams.is_empty() {
                table.nhsuk-table.upstreams {
                    caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Upstream servers of " (gateway.ecosystem) }
                    thead.nhsuk-table__head { tr {
                        th scope="col" { "Upstream" } th scope="col" { "State" } th scope="col" { "Down since" }
                        th scope="col" { "Last success" } th scope="col" { "Last error" }
                    } }
                    tbody.nhsuk-table__body {
                        @for upstream in &gateway.upstreams {
                            tr.nhsuk-table__row {
                                td.nhsuk-table__cell { code { (upstream.upstream) } }
                                td.nhsuk-table__cell { (state_text(upstream.state)) }
                                td.nhsuk-table__cell { @if let Some(since) = upstream.down_since { (page::when(since)) } @else { "–" } }
                                td.nhsuk-table__cell { @if let Some(at) = upstream.last_success { (page::when(at)) } @else { "never" } }
                                td.nhsuk-table__cell { @if let Some(error) = &upstream.last_error { (error) } @else { "–" } }
                            }
                        }
                    }
                }
            }
            @if !gateway.held_back.is_empty() {
                h3.nhsuk-heading-s { "Index documents held back" }
                p { "Each looks wrong next to the cached copy, which is still served. It replaces the cached copy if the upstream sends the same again at the next revalidation." }
                ul.held-back {
                    @for held in &gateway.held_back {
                        li { code { (held.document) } " from " code { (held.upstream) } ": " (held.why) " (first seen " (page::when(held.first_seen)) ")" }
                    }
                }
            }
        }
        p { "As JSON: " a href="/api/v1/upstreams" { "/api/v1/upstreams" } ". Readiness: " a href="/readyz" { "/readyz" } "." }
    };
    let mut response =
        page::render(&viewer, Section::Metrics, "Upstream status", false, content).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
