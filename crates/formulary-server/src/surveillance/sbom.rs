//! `GET /api/v1/organisations/{code}/sbom`: an organisation's estate as a CycloneDX 1.6 JSON
//! SBOM — every component version its people downloaded through its view and its environments
//! reported — for those who may see who has what (auditors, national curators, the
//! organisation's admins). `formulary inventory export` writes it to a file.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use formulary_core::ecosystems::Ecosystem;
use formulary_core::{Component, OrgCode};
use formulary_store::EstateItem;
use serde_json::{json, Value};

use super::inventory::visible_organisations;
use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::state::AppState;

/// The media type of CycloneDX 1.6 JSON.
const MEDIA_TYPE: &str = "application/vnd.cyclonedx+json; version=1.6";

/// `GET /api/v1/organisations/{code}/sbom`.
pub(crate) async fn export(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(code): Path<String>,
) -> Result<Response, ApiError> {
    let organisation: OrgCode = code
        .parse()
        .map_err(|error: formulary_core::CoreError| ApiError::bad_request(error.to_string()))?;
    if let Some(visible) = visible_organisations(&caller)? {
        if !visible.contains(&organisation) {
            return Err(ApiError::forbidden(format!(
                "you may see the estates of {} only; ask an auditor or a national curator for {organisation}'s",
                visible
                    .iter()
                    .map(OrgCode::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    if state.database.organisation(&organisation).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "no organisation {organisation}; list them with GET /api/v1/organisations"
        )));
    }
    let items = state.database.estate(&organisation).await?;
    let document = cyclonedx(&organisation, &items, chrono::Utc::now());
    Ok((
        [
            (header::CONTENT_TYPE, MEDIA_TYPE.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{organisation}-estate.cdx.json\""),
            ),
        ],
        document.to_string(),
    )
        .into_response())
}

/// The estate as a CycloneDX 1.6 document: one `library` component per version held, with
/// Formulary's counts as `formulary:` properties.
pub(crate) fn cyclonedx(
    organisation: &OrgCode,
    items: &[EstateItem],
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let components: Vec<Value> = items
        .iter()
        .filter_map(|item| {
            let ecosystem: Ecosystem = item.ecosystem.parse().ok()?;
            let component = Component::new(ecosystem, &item.name).ok()?;
            let purl = format!("{}@{}", component.purl(), purl_encode(&item.version));
            Some(json!({
                "type": "library",
                "bom-ref": purl,
                "name": item.name,
                "version": item.version,
                "purl": purl,
                "properties": [
                    { "name": "formulary:environments", "value": item.environments.to_string() },
                    { "name": "formulary:downloaders", "value": item.downloaders.to_string() },
                    { "name": "formulary:downloads", "value": item.downloads.to_string() },
                    { "name": "formulary:last-seen", "value": item.last_seen.to_rfc3339_opts(chrono::SecondsFormat::Secs, true) },
                ],
            }))
        })
        .collect();
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "version": 1,
        "metadata": {
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "tools": { "components": [ {
                "type": "application", "name": "formulary", "version": env!("CARGO_PKG_VERSION"),
            } ] },
            "component": {
                "type": "application",
                "bom-ref": format!("estate:{organisation}"),
                "name": format!("{organisation} estate"),
                "description": "Every component version downloaded through the organisation's view of the Formulary gateway or reported in one of its environments",
            },
        },
        "components": components,
    })
}

/// Percent-encodes a purl version (characters other than letters, digits and `.-_~`).
fn purl_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'~') {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn purl_versions_are_percent_encoded() {
        assert_eq!(super::purl_encode("1.0+local.1"), "1.0%2Blocal.1");
        assert_eq!(super::purl_encode("2.19.1"), "2.19.1");
    }
}
