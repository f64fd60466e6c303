//! Administration in the browser, under `/admin`: organisation admins manage their own
//! organisation, national curators every organisation. People and their roles ([`people`]),
//! settings within the national baseline ([`settings`]), entries, prohibitions and exceptions
//! ([`entries`]), the review policy ([`review_policy`]), conda channel notices
//! ([`channel_notices`]), desktop tools for national curators
//! ([`tools`]), and upstream health (read-only, the status page). Every form is CSRF-protected ([`super::session::PostedForm`]), every change is
//! checked here against the viewer's roles and audited by the store.

mod channel_notices;
mod entries;
mod people;
mod review_policy;
mod settings;
mod tools;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use formulary_core::request::FieldError;
use formulary_core::{OrgCode, Organisation, Role};
use maud::{html, Markup};

use super::page::{self, Section};
use super::session::SignedIn;
use super::WebError;
use crate::error::ApiError;
use crate::identity::Principal;
use crate::state::AppState;

/// The administration routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin", get(hub))
        .route("/admin/", get(hub))
        .route("/admin/upstreams", get(crate::upstreams::status_page))
        .route("/admin/tools", get(tools::list).post(tools::add))
        .route("/admin/{org}/people", get(people::list).post(people::add))
        .route("/admin/{org}/people/{user}", get(people::show))
        .route("/admin/{org}/people/{user}/roles", post(people::grant))
        .route(
            "/admin/{org}/people/{user}/roles/revoke",
            post(people::revoke),
        )
        .route("/admin/{org}/people/{user}/disable", post(people::disable))
        .route("/admin/{org}/people/{user}/enable", post(people::enable))
        .route(
            "/admin/{org}/people/{user}/password-reset",
            post(people::reset_password),
        )
        .route(
            "/admin/{org}/people/{user}/tokens/{token}/revoke",
            post(people::revoke_token),
        )
        .route("/admin/{org}/settings", get(settings::show))
        .route(
            "/admin/{org}/settings/{ecosystem}",
            get(settings::edit).post(settings::save),
        )
        .route(
            "/admin/{org}/entries",
            get(entries::list).post(entries::add),
        )
        .route(
            "/admin/{org}/entries/{id}/remove",
            get(entries::confirm_removal).post(entries::remove),
        )
        .route(
            "/admin/{org}/review",
            get(review_policy::show).post(review_policy::save),
        )
        .route(
            "/admin/{org}/channel-notices",
            get(channel_notices::list).post(channel_notices::add),
        )
        .route(
            "/admin/{org}/channel-notices/{id}/withdraw",
            post(channel_notices::withdraw),
        )
}

pub(crate) use crate::people::{administers, sentence};

/// True when `principal` administers anything at all.
pub(crate) fn is_admin(principal: &Principal) -> bool {
    principal.has_role(Role::OrganisationAdmin)
        || principal.holds(Role::NationalCurator, &OrgCode::national())
}

/// The organisation named in a path, when it exists and the viewer administers it; otherwise a
/// 404 (no such organisation) or a 403 page that says whose administration it is.
pub(crate) async fn organisation_for(
    state: &AppState,
    signed_in: &SignedIn,
    code: &str,
) -> Result<Organisation, WebError> {
    crate::people::administered_organisation(state, &signed_in.principal, code)
        .await
        .map_err(|error| WebError::from(error).seen_by(&signed_in.viewer))
}

/// The organisations `principal` administers, in code order.
async fn administered(
    state: &AppState,
    principal: &Principal,
) -> Result<Vec<Organisation>, WebError> {
    Ok(state
        .database
        .organisations()
        .await?
        .into_iter()
        .filter(|organisation| administers(principal, &organisation.code))
        .collect())
}

/// `GET /admin`: the organisations the viewer administers, each with its pages. API clients
/// (`Accept` names JSON and not `text/html`) get problem+json saying where the API is;
/// browsers that are not signed in go to the sign-in page first.
pub(crate) async fn hub(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    viewer: super::session::Viewer,
) -> Result<Response, WebError> {
    let asks_for_json = headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|value| value.contains("json"));
    if asks_for_json && !super::wants_html(&headers) {
        return Ok(ApiError::new(
            axum::http::StatusCode::NOT_ACCEPTABLE,
            "Administration is a set of web pages",
            "/admin answers browsers with HTML; programs use the JSON API under /api/v1 (see /api/v1/openapi.json)",
        )
        .into_response());
    }
    let Some(principal) = viewer.principal.clone() else {
        return Ok(axum::response::Redirect::to("/sign-in?next=%2Fadmin").into_response());
    };
    let signed_in = SignedIn { principal, viewer };
    if !is_admin(&signed_in.principal) {
        return Err(ApiError::forbidden(format!(
            "administration is for organisation admins and national curators; {} is {}. Your own account and tokens are at /account",
            signed_in.principal.name,
            signed_in.principal.describe_roles()
        )))
        .map_err(|error| WebError::from(error).seen_by(&signed_in.viewer));
    }
    let organisations = administered(&state, &signed_in.principal).await?;
    let content = html! {
        h1 { "Administration" }
        p { "Manage the people, settings and formulary of the organisations you administer. Every change is recorded in the audit log under your name." }
        table.nhsuk-table #organisations {
            caption.nhsuk-table__caption { "Organisations you administer" }
            thead.nhsuk-table__head { tr { th scope="col" { "Organisation" } th scope="col" { "Pages" } } }
            tbody.nhsuk-table__body {
                @for organisation in &organisations {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { (organisation.name) " (" code { (organisation.code) } ")" }
                        td.nhsuk-table__cell {
                            ul.nhsuk-list.formulary-inline-list {
                                li { a href={ "/admin/" (organisation.code) "/people" } { "People" span.nhsuk-u-visually-hidden { " of " (organisation.code) } } }
                                li { a href={ "/admin/" (organisation.code) "/settings" } { "Settings" span.nhsuk-u-visually-hidden { " of " (organisation.code) } } }
                                li { a href={ "/admin/" (organisation.code) "/entries" } { "Entries and exceptions" span.nhsuk-u-visually-hidden { " of " (organisation.code) } } }
                                li { a href={ "/admin/" (organisation.code) "/review" } { "Review policy" span.nhsuk-u-visually-hidden { " of " (organisation.code) } } }
                                li { a href={ "/admin/" (organisation.code) "/channel-notices" } { "Channel notices" span.nhsuk-u-visually-hidden { " of " (organisation.code) } } }
                            }
                        }
                    }
                }
            }
        }
        @if signed_in.principal.holds(Role::NationalCurator, &OrgCode::national()) {
            h2.nhsuk-heading-m { "Desktop tools" }
            p { a href="/admin/tools" { "Add and list desktop tools" } " (R, Python, Git, editors) that people install into their own profile without admin rights." }
        }
        h2.nhsuk-heading-m { "Upstream health" }
        p { a href="/admin/upstreams" { "See the state of every upstream server" } " (read-only)." }
    };
    Ok(page::render(
        &signed_in.viewer,
        Section::Admin,
        "Administration",
        false,
        content,
    )
    .into_response())
}

/// The breadcrumb-like heading of an organisation's administration page.
pub(crate) fn caption(organisation: &Organisation) -> Markup {
    html! {
        span.nhsuk-caption-l { (organisation.name) " (" (organisation.code) ")" }
    }
}

/// Navigation between an organisation's administration pages.
pub(crate) fn subnav(organisation: &Organisation, here: &str) -> Markup {
    let pages = [
        ("people", "People"),
        ("settings", "Settings"),
        ("entries", "Entries and exceptions"),
        ("review", "Review policy"),
        ("channel-notices", "Channel notices"),
    ];
    html! {
        nav aria-label="Administration" {
            ul.formulary-header-nav.formulary-admin-nav {
                li { a href="/admin" { "All organisations" } }
                @for (path, label) in pages {
                    li { a href={ "/admin/" (organisation.code) "/" (path) } aria-current=[(path == here).then_some("page")] { (label) } }
                }
            }
        }
    }
}

/// A drop-down list with its label, hint and error, in the design system's markup.
pub(crate) fn select(
    name: &str,
    label: &str,
    hint: Option<&str>,
    options: &[(&str, &str)],
    selected: &str,
    errors: &[FieldError],
) -> Markup {
    let error = errors.iter().find(|error| error.field == name);
    let mut described = Vec::new();
    if hint.is_some() {
        described.push(format!("{name}-hint"));
    }
    if error.is_some() {
        described.push(format!("{name}-error"));
    }
    let described = (!described.is_empty()).then(|| described.join(" "));
    html! {
        div.nhsuk-form-group.nhsuk-form-group--error[error.is_some()] {
            label.nhsuk-label for=(name) { (label) }
            @if let Some(hint) = hint { div.nhsuk-hint id={ (name) "-hint" } { (hint) } }
            @if let Some(error) = error {
                span.nhsuk-error-message id={ (name) "-error" } { span.nhsuk-u-visually-hidden { "Error:" } " " (error.message) }
            }
            select.nhsuk-select id=(name) name=(name) aria-describedby=[described] {
                @for (value, text) in options {
                    option value=(value) selected[*value == selected] { (text) }
                }
            }
        }
    }
}

/// A one-line confirmation at the top of a page after a change.
pub(crate) fn done_banner(message: Option<&str>) -> Markup {
    html! {
        @if let Some(message) = message {
            div.nhsuk-inset-text #done {
                span.nhsuk-u-visually-hidden { "Information: " }
                p { (message) }
            }
        }
    }
}
