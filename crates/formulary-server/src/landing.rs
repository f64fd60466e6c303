use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Json};
use formulary_store::EntryFilter;

use crate::error::ApiError;
use crate::html::escape;
use crate::state::AppState;

/// `/`: what is running and how to use it, until the web UI replaces this page.
pub(crate) async fn landing(State(state): State<AppState>) -> Result<Html<String>, ApiError> {
    let organisations = state.database.organisations().await?;
    let entries = state.database.list_entries(&EntryFilter::default()).await?;
    let (advisories, advisories_in_force) = state.database.advisory_counts().await?;
    let organisation_rows: String = organisations
        .iter()
        .map(|organisation| {
            let count = entries
                .iter()
                .filter(|stored| stored.entry.draft.organisation == organisation.code)
                .count();
            format!(
                "<tr><td>{}</td><td>{}</td><td>{count}</td></tr>",
                escape(organisation.code.as_str()),
                escape(&organisation.name)
            )
        })
        .collect();
    Ok(Html(format!(
        r#"<!doctype html>
<html lang="en-GB">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Formulary</title>
<style>
body {{ font-family: Arial, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #212b32; line-height: 1.5; }}
h1 {{ color: #005eb8; }} table {{ border-collapse: collapse; }} td, th {{ border-bottom: 1px solid #d8dde0; padding: .4rem .8rem; text-align: left; }}
code {{ background: #f0f4f5; padding: 0 .2rem; }}
</style></head>
<body>
<main>
<h1>Formulary is running</h1>
<p>Formulary {version} keeps the software formulary: which open-source components and versions may be used, on what evidence.
Records are kept in {storage}.</p>
<h2>What it holds</h2>
<table>
<thead><tr><th scope="col">Organisation</th><th scope="col">Name</th><th scope="col">Entries in force</th></tr></thead>
<tbody>{organisation_rows}</tbody>
</table>
<p>{advisories_in_force} advisories in force ({advisories} stored).</p>
<h2>How to use it</h2>
<ul>
<li>Check whether a version is allowed: <code>formulary policy check pkg:pypi/requests@2.19.1 --org RJ1</code>, or <a href="/api/v1/policy/check?purl=pkg:pypi/requests@2.19.1">/api/v1/policy/check?purl=…</a>.</li>
<li>See the entries: <code>formulary entry list</code> or <a href="/api/v1/entries">/api/v1/entries</a>.</li>
<li>Keep advisories current: <code>formulary advisories sync</code>.</li>
<li>Health check for load balancers: <a href="/healthz">/healthz</a>.</li>
</ul>
<p>The package gateway (pip, uv, R) and the request and review pages come next.</p>
</main>
</body></html>"#,
        version = env!("CARGO_PKG_VERSION"),
        storage = escape(&state.storage_label),
    )))
}

/// `/healthz`: 200 when the database answers, 503 otherwise.
pub(crate) async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.database.ping().await {
        Ok(()) => (StatusCode::OK, Json(serde_json::json!({ "status": "ok" }))),
        Err(error) => {
            tracing::warn!(%error, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    serde_json::json!({ "status": "unavailable", "reason": "database unreachable" }),
                ),
            )
        }
    }
}
