//! `POST /api/v1/upstreams/held-back/accept`: a national curator believes an upstream index
//! document that was held back because it looked wrong (most entries gone, or empty). The next
//! request for it asks the upstream again and the copy it sends replaces the cached one. Held
//! documents live in each replica's memory, so the acceptance applies to the replica that
//! answers; another replica believes the document when it sees it a second time, as before.

use axum::extract::State;
use axum::Json;
use formulary_gateway::HeldDocument;
use serde::Deserialize;

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

/// Which held document to accept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Acceptance {
    /// `pypi`, `npm` or `cran`.
    ecosystem: String,
    /// `default`, or the organisation whose own upstreams sent it (as `/api/v1/upstreams` says).
    #[serde(default = "default_gateway")]
    serves: String,
    /// The document, as `/api/v1/upstreams` names it (a project, a package, a CRAN tree).
    document: String,
}

fn default_gateway() -> String {
    "default".to_owned()
}

/// Accepts a held document; audited as `upstream.accept-held`.
pub(crate) async fn accept(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Json(acceptance): Json<Acceptance>,
) -> Result<Json<HeldDocument>, ApiError> {
    if !caller.may_manage_organisations() {
        return Err(ApiError::forbidden(format!(
            "only a national curator may accept an upstream document held back; {} is {}",
            caller.name,
            caller.describe_roles()
        )));
    }
    let accepted = crate::upstreams::gateways(&state)
        .into_iter()
        .find(|(ecosystem, serves, _)| {
            *ecosystem == acceptance.ecosystem && *serves == acceptance.serves
        })
        .map(|(_, _, gateway)| gateway.accept_held(&acceptance.document))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "there is no {} gateway serving '{}'; /api/v1/upstreams lists each gateway (`ecosystem`, `serves`) and what it holds back",
                acceptance.ecosystem.escape_debug(),
                acceptance.serves.escape_debug()
            ))
        })?;
    let Some(accepted) = accepted else {
        return Err(ApiError::not_found(format!(
            "this replica holds nothing back under '{}' for {} ({}); /api/v1/upstreams lists what it holds back (another replica may hold its own copy back until it sees it twice)",
            acceptance.document.escape_debug(),
            acceptance.ecosystem,
            acceptance.serves.escape_debug()
        )));
    };
    state
        .database
        .record_action(
            &caller.actor,
            "upstream.accept-held",
            &format!(
                "{}/{}/{}",
                acceptance.ecosystem, acceptance.serves, accepted.document
            ),
            &serde_json::json!({ "held": accepted }),
        )
        .await?;
    tracing::warn!(ecosystem = %acceptance.ecosystem, serves = %acceptance.serves, document = %accepted.document, by = %caller.actor, "an upstream document held back was accepted: the next request believes the upstream");
    Ok(Json(accepted))
}
