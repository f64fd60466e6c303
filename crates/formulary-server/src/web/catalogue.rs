//! The home page, search across every ecosystem, and the component page: each version's decision
//! for the viewer's organisation with its reasons, the evidence, precedent from other
//! organisations, the mentor, and a "Request this" button.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::policy::Effect;
use formulary_core::OrgCode;
use maud::{html, Markup};
use serde::Deserialize;

use super::page::{self, Section};
use super::session::Viewer;
use super::WebError;
use crate::catalogue::{component_from_path, component_report, search, ComponentReport};
use crate::evidence::EvidenceAnswer;
use crate::state::AppState;

/// The organisation whose decisions a viewer sees: their own, else the default view's.
pub fn viewing_organisation(state: &AppState, viewer: &Viewer) -> OrgCode {
    viewer
        .principal
        .as_ref()
        .and_then(|principal| principal.home_organisation())
        .unwrap_or_else(|| state.default_organisation.clone())
}

fn search_form(query: &str, ecosystem: &str) -> Markup {
    html! {
        form method="get" action="/components" role="search" {
            div.nhsuk-form-group {
                label.nhsuk-label.nhsuk-label--s for="q" { "Search for a tool or package" }
                div.nhsuk-hint #q-hint { "For example readxl, requests, git or R. Searches PyPI, CRAN and desktop tools." }
                input.nhsuk-input.nhsuk-input--width-20 #q name="q" type="search" value=(query) aria-describedby="q-hint";
            }
            div.nhsuk-form-group {
                label.nhsuk-label.nhsuk-label--s for="ecosystem" { "Where from" }
                select.nhsuk-select #ecosystem name="ecosystem" {
                    option value="" selected[ecosystem.is_empty()] { "Everywhere" }
                    @for known in Ecosystem::ALL {
                        option value=(known.as_str()) selected[ecosystem == known.as_str()] { (known.display_name()) }
                    }
                }
            }
            button.nhsuk-button.nhsuk-button--secondary type="submit" { "Search" }
        }
    }
}

/// `GET /`: what Formulary is and where to start.
pub(crate) async fn home(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, WebError> {
    let (advisories, in_force) = state.database.advisory_counts().await?;
    let organisations = state.database.organisations().await?;
    let organisation = viewing_organisation(&state, &viewer);
    // Install commands name the configured public address, never the request's Host (S6).
    let base = state.public_url.as_str().trim_end_matches('/');
    let for_you = super::notifications::unread_for_home(&state, &viewer).await;
    let content = html! {
        h1 { "Formulary" }
        @if let Some(for_you) = for_you { (for_you) }
        p.nhsuk-lede-text { "Which open-source tools and packages may be used here, on what evidence, and how to ask for one that is not yet allowed." }
        (search_form("", ""))
        div.nhsuk-grid-row {
            div.nhsuk-grid-column-one-half {
                h2.nhsuk-heading-m { "Need a tool?" }
                p { "Search the catalogue first: it may already be approved, for everyone or for your organisation. If not, " a href="/requests/new" { "request it" } ", starting from the problem you need to solve." }
            }
            div.nhsuk-grid-column-one-half {
                h2.nhsuk-heading-m { "Install without admin rights" }
                p { "One command sets up pip, uv and R (and npm and conda where this server offers them) to install through this server, for your organisation, with no admin rights: blocked versions are skipped or refused with the reason." }
                ol.nhsuk-list.nhsuk-list--number {
                    li { "Create a token for package clients on " a href="/account#gateway-tokens" { "your account page" } "." }
                    li { "Run this and paste the token when asked. It installs the " code { "formulary" } " client into your own profile (checked against the SHA-256 this server publishes) and sets up every client:" br;
                        "Linux and macOS: " code #bootstrap-sh { "curl -fsSL " (base) "/setup.sh | sh" } br;
                        "Windows (PowerShell): " code #bootstrap-ps1 { "irm " (base) "/setup.ps1 | iex" } }
                    li { "Check with " code { "formulary doctor" } "; undo with " code { "formulary setup --undo" } ". Approved desktop tools (uv, Python, …): " code { "formulary tools list" } "." }
                }
                details.nhsuk-details {
                    summary.nhsuk-details__summary { span.nhsuk-details__summary-text { "Set up by hand instead" } }
                    div.nhsuk-details__text {
                        p { "With the " code { "formulary" } " client already installed: " code { "formulary setup --server " (base) "/" } "." }
                        p { "Where the server asks for a token, put it in your netrc file (" code { "machine " (state.public_url.host_str().unwrap_or("")) " login formulary password frm_…" } ")." }
                        p { code { "pip config set global.index-url " (format!("{base}/o/{organisation}/pypi/simple/")) } }
                        p { code { "options(repos = c(CRAN = \"" (format!("{base}/o/{organisation}/cran")) "\"))" } }
                    }
                }
            }
        }
        h2.nhsuk-heading-m { "What this server holds" }
        dl.nhsuk-summary-list {
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Organisations" } dd.nhsuk-summary-list__value { (organisations.len()) } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Advisories in force" } dd.nhsuk-summary-list__value { (in_force) " (" (advisories) " stored)" } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Records kept in" } dd.nhsuk-summary-list__value { (state.storage_label) } }
        }
    };
    Ok(page::render(&viewer, Section::Home, "Formulary", false, content).into_response())
}

/// Query of the search page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    ecosystem: String,
}

/// `GET /components?q=…&ecosystem=…`.
pub(crate) async fn search_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<SearchQuery>,
) -> Result<Response, WebError> {
    let ecosystem = query.ecosystem.parse::<Ecosystem>().ok();
    let organisation = viewing_organisation(&state, &viewer);
    let text = query.q.trim();
    let hits = if text.is_empty() {
        Vec::new()
    } else {
        search(&state, text, ecosystem, &organisation).await?
    };
    let content = html! {
        h1 { "Catalogue" }
        (search_form(text, ecosystem.map_or("", Ecosystem::as_str)))
        @if !text.is_empty() {
            h2.nhsuk-heading-m { (hits.len()) " result" @if hits.len() != 1 { "s" } " for “" (text) "”" }
            @if hits.is_empty() {
                p { "Nothing by that name is known here yet. You can still " a href={ "/requests/new?name=" (url_component(text)) } { "request it" } "." }
            } @else {
                table.nhsuk-table {
                    caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Components found" }
                    thead.nhsuk-table__head { tr { th scope="col" { "Component" } th scope="col" { "From" } th scope="col" { "Decisions for " (organisation) } th scope="col" { "Open requests" } } }
                    tbody.nhsuk-table__body {
                        @for hit in &hits {
                            tr.nhsuk-table__row {
                                td.nhsuk-table__cell { a href=(component_href(&hit.component)) { (hit.component.name.as_str()) } }
                                td.nhsuk-table__cell { (hit.component.ecosystem().display_name()) }
                                td.nhsuk-table__cell {
                                    @if hit.statuses.is_empty() { "No entry" }
                                    @for status in &hit.statuses { (page::status_tag(*status)) " " }
                                }
                                td.nhsuk-table__cell { (hit.open_requests) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page::render(&viewer, Section::Catalogue, "Catalogue", false, content).into_response())
}

/// Percent-encodes text for a query string.
pub fn url_component(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// The component page's address.
pub fn component_href(component: &formulary_core::Component) -> String {
    format!(
        "/components/{}/{}",
        component.ecosystem().as_str(),
        url_component(component.name.as_str())
    )
}

/// `GET /components/{ecosystem}/{name}`.
pub(crate) async fn component_page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((ecosystem, name)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let component = component_from_path(&ecosystem, &name)?;
    let organisation = viewing_organisation(&state, &viewer);
    if state
        .snapshot
        .current()
        .organisation(&organisation)
        .is_none()
    {
        return Err(
            crate::error::ApiError::not_found(format!("organisation {organisation}")).into(),
        );
    }
    // First, so that versions the gateway records while gathering it show below too.
    let may_ask = crate::evidence::may_ask_upstream(&state, viewer.principal.is_some());
    let upstream = crate::evidence::gather(&state, &component, &organisation, may_ask).await;
    let mut report = component_report(&state, &component, &organisation).await?;
    crate::workflow::visible_to(viewer.principal.as_ref(), &mut report.requests);
    let title = format!(
        "{} ({})",
        component.name.as_str(),
        component.ecosystem().display_name()
    );
    Ok(page::render(
        &viewer,
        Section::Catalogue,
        &title,
        false,
        component_markup(&report, &upstream),
    )
    .into_response())
}

/// `GET /components/npm/@scope/name`: a scoped npm package's page (the scope is a path segment).
pub(crate) async fn scoped_component_page(
    state: State<AppState>,
    viewer: Viewer,
    Path((ecosystem, scope, name)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    component_page(state, viewer, Path((ecosystem, format!("{scope}/{name}")))).await
}

fn component_markup(report: &ComponentReport, upstream: &EvidenceAnswer) -> Markup {
    let component = &report.component;
    let request_href = format!(
        "/requests/new?ecosystem={}&name={}",
        component.ecosystem().as_str(),
        url_component(component.name.as_str())
    );
    let now = Utc::now();
    html! {
        span.nhsuk-caption-l { (component.ecosystem().display_name()) }
        h1 { (component.name.as_str()) }
        p { "Package URL: " code { (component.purl()) } }
        dl.nhsuk-summary-list {
            div.nhsuk-summary-list__row {
                dt.nhsuk-summary-list__key { "For " (report.organisation) }
                dd.nhsuk-summary-list__value {
                    @if report.versions.is_empty() { "No versions decided yet: see what the upstream says below." }
                    @else if report.any_allowed() { (page::allowed_tag(true)) " at least one version may be installed" }
                    @else { (page::allowed_tag(false)) " no known version may be installed" }
                }
            }
            div.nhsuk-summary-list__row {
                dt.nhsuk-summary-list__key { "Mentor" }
                dd.nhsuk-summary-list__value { @if let Some(mentor) = &report.mentor { (mentor) } @else { "No named mentor yet" } }
            }
        }
        a.nhsuk-button href=(request_href) role="button" draggable="false" { "Request this" }

        h2.nhsuk-heading-m { "Versions" }
        @if report.versions.is_empty() {
            p { "No versions have been seen through the gateway yet." }
        } @else {
            table.nhsuk-table {
                caption.nhsuk-table__caption { "Each version's decision for " (report.organisation) ", newest first" }
                thead.nhsuk-table__head { tr { th scope="col" { "Version" } th scope="col" { "Decision" } th scope="col" { "Why" } th scope="col" { "Published" } th scope="col" { "Licence" } } }
                tbody.nhsuk-table__body {
                    @for row in &report.versions {
                        tr.nhsuk-table__row {
                            td.nhsuk-table__cell { (row.decision.version) @if row.install_scripts { " " strong.nhsuk-tag.nhsuk-tag--orange title="Runs a preinstall, install or postinstall script when installed" { "Install scripts" } } }
                            td.nhsuk-table__cell { (page::allowed_tag(row.decision.allowed)) }
                            td.nhsuk-table__cell {
                                ul.formulary-reasons {
                                    @for reason in &row.decision.reasons {
                                        li {
                                            @if reason.effect == Effect::Deny { strong { "Blocks: " } }
                                            (reason.message)
                                            @if let Some(link) = &reason.link { " " a href=(link) { "Details" span.nhsuk-u-visually-hidden { " about " (link.rsplit('/').next().unwrap_or("this reason")) } } }
                                        }
                                    }
                                }
                            }
                            td.nhsuk-table__cell { @if let Some(published) = row.published { (published.format("%-d %b %Y")) } @else { "Unknown" } }
                            td.nhsuk-table__cell { @if let Some(licence) = &row.licence { (licence) } @else { "Unknown" } }
                        }
                    }
                }
            }
        }

        (super::evidence::section(upstream))

        h2.nhsuk-heading-m { "Decisions by organisation" }
        @if report.precedents.is_empty() {
            p { "No organisation has decided on it yet." }
        } @else {
            table.nhsuk-table {
                caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Decisions by organisation" }
                thead.nhsuk-table__head { tr { th scope="col" { "Organisation" } th scope="col" { "Versions" } th scope="col" { "Status" } th scope="col" { "Why" } th scope="col" { "Decided" } } }
                tbody.nhsuk-table__body {
                    @for precedent in &report.precedents {
                        tr.nhsuk-table__row {
                            td.nhsuk-table__cell { (precedent.organisation) }
                            td.nhsuk-table__cell { code { (precedent.range) } }
                            td.nhsuk-table__cell { (page::status_tag(precedent.status)) }
                            td.nhsuk-table__cell {
                                (precedent.reason)
                                @if let Some(constraints) = &precedent.constraints { br; strong { "Constraints: " } (constraints) }
                                @if let Some(expires) = precedent.expires { br; "Until " (expires) }
                            }
                            td.nhsuk-table__cell { (precedent.decided_by) ", " (precedent.decided_at.format("%-d %b %Y")) }
                        }
                    }
                }
            }
        }

        h2.nhsuk-heading-m { "Advisories" }
        @if report.advisories.is_empty() {
            p { "No advisories name this component." }
        } @else {
            ul {
                @for advisory in &report.advisories {
                    li {
                        a href={ "https://osv.dev/vulnerability/" (advisory.id) } { (advisory.id) } ": " (advisory.summary)
                        " (" (advisory.severity.as_deref().unwrap_or("unrated")) @if advisory.malicious { ", malicious package" } @if advisory.withdrawn { ", withdrawn" } ")"
                    }
                }
            }
        }

        h2.nhsuk-heading-m { "Requests" }
        @if report.requests.is_empty() {
            p { "Nobody has requested it yet." }
        } @else {
            ul {
                @for request in &report.requests {
                    li {
                        a href={ "/requests/" (request.id) } { "Request " (request.id) } " for " (request.draft.organisation) ", "
                        code { (request.draft.range.as_str()) } " " (page::state_tag(request.state))
                        " – submitted " (page::elapsed(request.created_at, now)) " ago"
                    }
                }
            }
        }
    }
}
