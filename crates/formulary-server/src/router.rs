use std::time::Duration;

use axum::routing::{delete, get, post, put};
use axum::Router;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::api;
use crate::conda;
use crate::cran;
use crate::landing;
use crate::npm;
use crate::pypi;
use crate::state::AppState;
use crate::tools;

/// The PyPI gateway's routes under one view prefix (none, an organisation, a snapshot date, or both).
fn pypi_routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/pypi/simple/"), get(pypi::root))
        .route(
            &format!("{prefix}/pypi/simple/{{project}}/"),
            get(pypi::project),
        )
        .route(
            &format!("{prefix}/pypi/simple/{{project}}"),
            get(pypi::project_without_slash),
        )
        .route(
            &format!("{prefix}/pypi/files/{{project}}/{{filename}}"),
            get(pypi::file),
        )
}

/// Desktop tools' list and files under one view prefix, and `uv python install`'s download list
/// (whose files are the `cpython` tool's).
fn tool_routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(&format!("{prefix}/tools/index.json"), get(tools::index))
        .route(
            &format!("{prefix}/tools/scoop/{{file}}"),
            get(crate::scoop::manifest),
        )
        .route(
            &format!("{prefix}/python/download-metadata.json"),
            get(crate::python_downloads::list),
        )
        .route(
            &format!("{prefix}/tools/files/{{name}}/{{version}}/{{platform}}/{{filename}}"),
            get(tools::file),
        )
}

/// The npm registry's routes under one view prefix: packuments (`@scope%2fname` arrives as
/// one segment, `@scope/name` as two), tarballs, and `npm audit`'s bulk advisory endpoint.
fn npm_routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(
            &format!("{prefix}/npm/-/npm/v1/security/advisories/bulk"),
            post(npm::audit).layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024)),
        )
        .route(&format!("{prefix}/npm/-/ping"), get(npm::ping))
        .route(&format!("{prefix}/npm/{{package}}"), get(npm::packument))
        .route(
            &format!("{prefix}/npm/{{scope}}/{{name}}"),
            get(npm::packument),
        )
        .route(
            &format!("{prefix}/npm/{{package}}/-/{{filename}}"),
            get(npm::tarball),
        )
        .route(
            &format!("{prefix}/npm/{{scope}}/{{name}}/-/{{filename}}"),
            get(npm::tarball),
        )
}

/// conda channels under one view prefix: each subdirectory's repodata (plain, zstd and
/// sharded), its shards and its package files (and their `.sigs`), and `channeldata.json`.
fn conda_routes(prefix: &str) -> Router<AppState> {
    Router::new()
        .route(
            &format!("{prefix}/conda/{{channel}}/{{subdir}}/{{filename}}"),
            get(conda::serve),
        )
        .route(
            &format!("{prefix}/conda/{{channel}}/{{subdir}}/shards/{{filename}}"),
            get(conda::serve_shard),
        )
        .route(
            &format!("{prefix}/conda/{{channel}}/{{filename}}"),
            get(conda::serve_channel_document),
        )
}

/// The package gateway: every ecosystem under every view prefix, behind one authentication
/// layer ([`crate::gateway_auth::authenticate`]: a token names the reader in the download
/// ledger, and is required when `gateway_access = "token"`). A new ecosystem's routes go here,
/// so they are covered too.
fn gateway_routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route("/gateways.json", get(crate::gateways::offered))
        .route("/cran/{*path}", get(cran::serve))
        .route("/o/{org}/cran/{*path}", get(cran::serve))
        .route("/{at}/cran/{*path}", get(cran::serve))
        .route("/o/{org}/{at}/cran/{*path}", get(cran::serve))
        .merge(pypi_routes(""))
        .merge(pypi_routes("/o/{org}"))
        .merge(pypi_routes("/{at}"))
        .merge(pypi_routes("/o/{org}/{at}"))
        .merge(tool_routes(""))
        .merge(tool_routes("/o/{org}"))
        .merge(tool_routes("/{at}"))
        .merge(tool_routes("/o/{org}/{at}"))
        .merge(npm_routes(""))
        .merge(npm_routes("/o/{org}"))
        .merge(npm_routes("/{at}"))
        .merge(npm_routes("/o/{org}/{at}"))
        .merge(conda_routes(""))
        .merge(conda_routes("/o/{org}"))
        .merge(conda_routes("/{at}"))
        .merge(conda_routes("/o/{org}/{at}"))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::gateway_auth::authenticate,
        ))
}

/// Every route of the application, in one place. Gateway paths under `/t/<token>/` (conda's
/// and pixi's way of sending a token) are rewritten before routing and before the request log
/// ([`crate::path_token`]).
pub fn app(state: AppState) -> Router {
    Router::new()
        .fallback_service(routes(state))
        .layer(axum::middleware::from_fn(crate::path_token::token_in_path))
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/setup.sh", get(crate::bootstrap::shell))
        .route("/setup.ps1", get(crate::bootstrap::powershell))
        .route(
            "/api/v1/organisations",
            get(api::organisations::list).post(api::organisations::create),
        )
        .route(
            "/api/v1/organisations/{code}/settings",
            get(api::organisations::settings),
        )
        .route(
            "/api/v1/organisations/{code}/settings/{ecosystem}",
            put(api::organisations::set_settings),
        )
        .route(
            "/api/v1/organisations/{code}/sbom",
            get(crate::surveillance::sbom::export),
        )
        .route(
            "/api/v1/organisations/{code}/review-policy",
            get(api::organisations::review_policy).put(api::organisations::set_review_policy),
        )
        .route(
            "/api/v1/organisations/{code}/channel-notices",
            get(api::channel_notices::list).post(api::channel_notices::create),
        )
        .route(
            "/api/v1/organisations/{code}/channel-notices/{id}",
            delete(api::channel_notices::withdraw),
        )
        .route(
            "/api/v1/organisations/{code}/people",
            get(api::people::list).post(api::people::add),
        )
        .route(
            "/api/v1/organisations/{code}/people/{user}",
            get(api::people::show),
        )
        .route(
            "/api/v1/organisations/{code}/people/{user}/roles",
            post(api::people::grant),
        )
        .route(
            "/api/v1/organisations/{code}/people/{user}/roles/{role}",
            axum::routing::delete(api::people::revoke),
        )
        .route(
            "/api/v1/organisations/{code}/people/{user}/disable",
            post(api::people::disable),
        )
        .route(
            "/api/v1/organisations/{code}/people/{user}/enable",
            post(api::people::enable),
        )
        .route(
            "/api/v1/organisations/{code}/people/{user}/password-reset",
            post(api::people::reset_password),
        )
        .route(
            "/api/v1/entries",
            get(api::entries::list).post(api::entries::create),
        )
        .route(
            "/api/v1/entries/{id}",
            get(api::entries::show).delete(api::entries::remove),
        )
        .route("/api/v1/policy/check", get(api::policy::check))
        .route("/api/v1/advisories", get(api::advisories::list))
        .route(
            "/api/v1/advisories/feeds",
            get(crate::surveillance::feeds::list),
        )
        .route(
            "/api/v1/inventory/{org}/{environment}",
            put(crate::surveillance::inventory::report).layer(
                axum::extract::DefaultBodyLimit::max(
                    crate::surveillance::inventory::MAX_REPORT_BYTES,
                ),
            ),
        )
        .route(
            "/api/v1/who-has",
            get(crate::surveillance::inventory::who_has),
        )
        .route("/api/v1/recalls", get(crate::surveillance::recalls::list))
        .route(
            "/api/v1/metrics/surveillance",
            get(crate::surveillance::recalls::metrics),
        )
        .route(
            "/api/v1/recalls/{id}",
            get(crate::surveillance::recalls::show),
        )
        .route(
            "/api/v1/me/recalls",
            get(crate::surveillance::recalls::mine),
        )
        .route(
            "/api/v1/me/recalls/{id}/explain",
            post(crate::surveillance::recalls::explain),
        )
        .route("/recalls/{id}", get(crate::surveillance::recall_page::page))
        .route(
            "/recalls/{id}/explain",
            post(crate::surveillance::recall_page::explain),
        )
        .route("/who-has", get(crate::surveillance::who_has_page::page))
        .route("/api/v1/openapi.json", get(api::openapi::document))
        .route("/api/v1/session/token", post(api::session::issue))
        .route("/api/v1/device/code", post(api::device::start))
        .route("/api/v1/device/token", post(api::device::token))
        .route("/api/v1/me", get(api::session::me))
        .route("/api/v1/me/password", post(api::session::change_password))
        .route(
            "/api/v1/me/tokens",
            get(api::session::my_tokens).post(api::session::issue_my_token),
        )
        .route(
            "/api/v1/me/notifications",
            get(api::session::my_notifications),
        )
        .route(
            "/api/v1/me/notifications/read",
            post(api::session::mark_my_notifications_read),
        )
        .route(
            "/api/v1/me/tokens/{token}",
            axum::routing::delete(api::session::revoke_my_token),
        )
        .route("/api/v1/search", get(api::catalogue::search))
        .route("/api/v1/evidence", get(api::catalogue::evidence))
        .route(
            "/api/v1/components/{ecosystem}/{name}",
            get(api::catalogue::component),
        )
        .route(
            "/api/v1/components/{ecosystem}/{scope}/{name}",
            get(api::catalogue::scoped_component),
        )
        .route(
            "/api/v1/requests",
            get(api::requests::list).post(api::requests::create),
        )
        .route("/api/v1/requests/{id}", get(api::requests::show))
        .route(
            "/api/v1/requests/{id}/comments",
            post(api::requests::comment),
        )
        .route(
            "/api/v1/requests/{id}/sign-offs",
            post(api::requests::sign_off),
        )
        .route(
            "/api/v1/requests/{id}/decision",
            post(api::requests::decide),
        )
        .route(
            "/api/v1/requests/{id}/withdraw",
            post(api::requests::withdraw),
        )
        .route(
            "/api/v1/requests/{id}/assignments",
            post(api::requests::assign),
        )
        .route("/api/v1/decisions", get(api::catalogue::decisions))
        .route("/api/v1/metrics", get(api::catalogue::metrics))
        .route("/api/v1/audit", get(api::catalogue::audit))
        .route("/api/v1/upstreams", get(crate::upstreams::api))
        .route(
            "/api/v1/upstreams/held-back/accept",
            post(crate::held_documents::accept),
        )
        .merge(crate::web::routes())
        // Started with the database down: everything above answers 503 at once (but the
        // upstream status); the health checks and the gateways below serve what is held.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::offline::refuse_while_offline,
        ))
        .route("/livez", get(landing::live))
        .route("/readyz", get(landing::ready))
        .route("/healthz", get(landing::ready))
        .merge(gateway_routes(&state))
        .fallback(api::not_found)
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(60),
        ))
        // Answer protection, problem+json under /api/ and NUL refusal, in one layer.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::front_door::front_door,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
