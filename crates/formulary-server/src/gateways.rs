//! `GET /gateways.json`: which package ecosystems this server's gateway offers, so that
//! `formulary setup` configures only clients that will work (behind the gateway's
//! authentication like every gateway route).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

/// The ecosystems offered: `pypi`, `cran`, `npm`, `conda`, `tools` (desktop tools) and `python` (the
/// download list for `uv python install`), as configured.
pub(crate) async fn offered(State(state): State<AppState>) -> Json<Value> {
    let mut ecosystems = Vec::new();
    if state.pypi.is_some() {
        ecosystems.push("pypi");
    }
    if state.cran.is_some() {
        ecosystems.push("cran");
    }
    if state.npm.is_some() {
        ecosystems.push("npm");
    }
    if state.conda.is_some() {
        ecosystems.push("conda");
    }
    if state.tools.is_some() {
        ecosystems.push("tools");
        // `uv python install`'s download list, made from the `cpython` tool's files.
        ecosystems.push("python");
    }
    Json(json!({ "ecosystems": ecosystems }))
}
