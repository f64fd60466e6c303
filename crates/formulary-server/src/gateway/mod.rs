//! What every package front-end (PyPI, CRAN, and those to come) shares on the HTTP side: which
//! view a request is for, index documents with entity tags and conditional requests, refusals
//! every client can show, and gateway errors as problem+json. A new ecosystem adds its routes and
//! a handler module that uses these, and nothing else.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use formulary_core::policy::{Decision, Effect, PolicySnapshot, View};
use formulary_core::OrgCode;
use formulary_gateway::{GatewayError, Rendered};

use crate::error::ApiError;
use crate::state::AppState;

/// Which organisation and which moment a request is for, from its path prefix.
pub(crate) struct ViewRequest {
    pub(crate) view: View,
    /// The snapshot date of a dated view (`/@YYYY-MM-DD/…`).
    pub(crate) day: Option<NaiveDate>,
}

pub(crate) fn view_for(
    state: &AppState,
    params: &HashMap<String, String>,
) -> Result<ViewRequest, ApiError> {
    let organisation: OrgCode = match params.get("org") {
        Some(code) => code
            .parse()
            .map_err(|error: formulary_core::CoreError| ApiError::not_found(error.to_string()))?,
        None => state.default_organisation.clone(),
    };
    let (at, day) = match params.get("at") {
        None => (Utc::now(), None),
        Some(text) => {
            let day = text
                .strip_prefix('@')
                .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "'{}' is not a snapshot date; write /@YYYY-MM-DD/",
                        text.escape_debug()
                    ))
                })?;
            let end_of_day = day
                .and_hms_opt(23, 59, 59)
                .map(|time| time.and_utc())
                .ok_or_else(|| ApiError::not_found("not a date"))?;
            if end_of_day > Utc::now() + chrono::Duration::days(1) {
                return Err(ApiError::not_found(format!(
                    "{day} is in the future; a snapshot view shows a day that has passed"
                )));
            }
            (end_of_day.min(Utc::now()), Some(day))
        }
    };
    Ok(ViewRequest {
        view: View { organisation, at },
        day,
    })
}

/// The snapshot a request is decided by, with its generation (for page caching).
pub(crate) async fn snapshot_for(
    state: &AppState,
    request: &ViewRequest,
    ecosystem_path: &str,
) -> Result<(i64, Arc<PolicySnapshot>), ApiError> {
    let (generation, current) = state.snapshot.current_with_generation();
    let snapshot = if request.day.is_some() {
        state.snapshot.at(&state.database, request.view.at).await?
    } else {
        current
    };
    if snapshot.organisation(&request.view.organisation).is_none() {
        return Err(ApiError::not_found(format!(
            "there is no organisation {}; an organisation's view is under /o/CODE/ (for example /o/CODE{}), and the organisations are listed at /api/v1/organisations",
            request.view.organisation,
            ecosystem_path
        )));
    }
    Ok((generation, snapshot))
}

/// True when an `If-None-Match` header matches `etag`: weak comparison (RFC 9110 §13.1.2), so
/// `W/"x"` matches `"x"`, and `*` matches anything.
pub(crate) fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    fn opaque(tag: &str) -> &str {
        tag.trim().trim_start_matches("W/")
    }
    let wanted = opaque(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == wanted)
}

/// An index document: its bytes, or 304 when the client has them; its entity tag, a short
/// `max-age`, and a header saying when it comes from the cache because the upstream failed.
pub(crate) fn document_response(
    headers: &HeaderMap,
    rendered: &Rendered,
    content_type: &str,
    stale: bool,
    zero_copy: bool,
) -> Response {
    let mut response = if etag_matches(headers, &rendered.etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        if zero_copy {
            crate::zero_copy::register(&rendered.body);
        }
        Body::from(rendered.body.clone()).into_response()
    };
    let response_headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        response_headers.insert(header::CONTENT_TYPE, value);
    }
    response_headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=30"),
    );
    if let Ok(value) = HeaderValue::from_str(&rendered.etag) {
        response_headers.insert(header::ETAG, value);
    }
    if stale {
        response_headers.insert(
            "x-formulary-stale",
            HeaderValue::from_static("upstream unreachable; serving the cached index"),
        );
    }
    response
}

pub(crate) fn gateway_error(error: GatewayError) -> ApiError {
    match error {
        GatewayError::Store(error) => error.into(),
        GatewayError::Upstream(failure) => upstream_failure(&failure),
        GatewayError::HeldBack { why } => ApiError::new(StatusCode::BAD_GATEWAY, "Upstream document held back", format!("{why}. Nothing else is cached for it; try again later.")),
        GatewayError::CorruptUpstreamFile { filename, why } => ApiError::new(StatusCode::BAD_GATEWAY, "Corrupt upstream file", format!("The upstream served a corrupt or mismatched {filename} ({why}), so Formulary refused it and cached nothing. Try again later; if it persists, tell the operator: the upstream or something between it and Formulary is damaging files.")),
        GatewayError::VendorSignature { filename, why } => ApiError::new(StatusCode::BAD_GATEWAY, "Vendor signature did not verify", format!("The vendor's signature on {filename} did not verify with the key pinned in its manifest: {why}. Formulary refused the file and cached nothing. The file may have been altered at the vendor or on the way: tell the formulary's curators, who can check it against the vendor's published key.")),
        GatewayError::Mirror { what, why } => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "Import failed", format!("cannot import {what}: {why}")),
    }
}

/// An upstream that failed with nothing cached: 504 when it did not answer in time (or is down
/// after repeated failures), 502 when the connection failed or it answered with something
/// unusable; the detail names the upstream and how it failed.
fn upstream_failure(failure: &formulary_gateway::UpstreamFailure) -> ApiError {
    use formulary_gateway::UpstreamFailure;
    let (status, title) = match failure {
        UpstreamFailure::TimedOut { .. } => (
            StatusCode::GATEWAY_TIMEOUT,
            "Upstream did not answer in time",
        ),
        UpstreamFailure::Down { .. } => (StatusCode::GATEWAY_TIMEOUT, "Upstream is down"),
        UpstreamFailure::Unreachable { .. } => (StatusCode::BAD_GATEWAY, "Upstream unreachable"),
        UpstreamFailure::Status { .. } | UpstreamFailure::Malformed { .. } => {
            (StatusCode::BAD_GATEWAY, "Upstream index unavailable")
        }
    };
    tracing::warn!(%failure, "answered with an upstream failure: nothing cached");
    ApiError::new(status, title, format!("{failure}. Nothing is cached for this yet, so Formulary cannot answer without the upstream; try again later, and tell the operator if it persists (the upstream's state is at /status)."))
}

/// Where to ask for the component: the request page, absolute from `public_url` (never from the
/// request's `Host`), so that clients that show only text still name the server.
pub(crate) fn request_link(state: &AppState, decision: &Decision) -> String {
    let path = decision
        .reasons
        .iter()
        .find_map(|reason| {
            reason
                .link
                .clone()
                .filter(|link| link.starts_with("/requests"))
        })
        .unwrap_or_else(|| format!("/requests/new?component={}", decision.component.purl()));
    state
        .public_url
        .join(&path)
        .map_or(path, |url| url.to_string())
}

/// The HTTP reason phrase pip prints: printable ASCII, one line, at most 300 characters, ending
/// with where to request the component (the headline is shortened to leave room for it).
pub(crate) fn reason_phrase(decision: &Decision, request: &str) -> String {
    let printable = |text: &str| -> String {
        text.replace('…', "...")
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    };
    let tail = printable(&format!(" Request it at {request}"));
    let headline = printable(formulary_gateway::without_request_sentence(
        decision.headline().unwrap_or("denied by policy"),
    ))
    .trim_end_matches('.')
    .to_owned();
    let lead = "Blocked by Formulary: ";
    let room = 300usize.saturating_sub(lead.len() + tail.len());
    if room < 40 {
        return format!("{lead}{headline}").chars().take(300).collect();
    }
    let headline: String = if headline.len() >= room {
        let cut: String = headline.chars().take(room - 4).collect();
        format!("{}...", cut.trim_end())
    } else {
        format!("{headline}.")
    };
    format!("{lead}{headline}{tail}")
}

/// A refused file: 403 with `application/problem+json` (every reason, the request link) and a
/// reason phrase that says why and where to request it.
pub(crate) fn refusal(state: &AppState, decision: &Decision) -> Response {
    let detail: Vec<String> = decision
        .reasons
        .iter()
        .filter(|reason| reason.effect == Effect::Deny)
        .map(|reason| reason.message.clone())
        .collect();
    let request = request_link(state, decision);
    let body = serde_json::json!({
        "type": "about:blank",
        "title": format!("Blocked by Formulary: {} {} is not allowed", decision.component.name, decision.version),
        "status": 403,
        "detail": format!("{}. Request it at {request}", formulary_gateway::without_request_sentence(&detail.join(" | "))),
        "reasons": decision.reasons,
        "request": request,
    });
    let mut response = (
        StatusCode::FORBIDDEN,
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Ok(phrase) = hyper::ext::ReasonPhrase::try_from(reason_phrase(decision, &request)) {
        response.extensions_mut().insert(phrase);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_phrase_keeps_the_request_link_within_300_characters() {
        let decision = |message: &str| Decision {
            component: formulary_core::Component::new(
                formulary_core::ecosystems::Ecosystem::Pypi,
                "requests",
            )
            .expect("name"),
            version: "2.19.1".to_owned(),
            allowed: false,
            yanked: None,
            reasons: vec![formulary_core::policy::Reason {
                code: formulary_core::policy::ReasonCode::Advisory,
                effect: Effect::Deny,
                message: message.to_owned(),
                advisory: None,
                link: None,
            }],
        };
        let link = "https://formulary.example.nhs.uk/requests/new?component=pkg:pypi/requests";
        let short = reason_phrase(&decision("prohibited by the national formulary."), link);
        assert_eq!(
            short,
            format!(
                "Blocked by Formulary: prohibited by the national formulary. Request it at {link}"
            )
        );
        let long = reason_phrase(&decision(&"a long advisory summary ".repeat(30)), link);
        assert!(long.len() <= 300, "{} characters", long.len());
        assert!(
            long.ends_with(&format!("... Request it at {link}")),
            "{long}"
        );
    }

    #[test]
    fn entity_tags_compare_weakly_in_if_none_match() {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("W/\"abc\""));
        assert!(etag_matches(&headers, "\"abc\""));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", \"abc\""),
        );
        assert!(etag_matches(&headers, "\"abc\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"other\""));
        assert!(!etag_matches(&headers, "\"abc\""));
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(etag_matches(&headers, "\"abc\""));
    }
}
