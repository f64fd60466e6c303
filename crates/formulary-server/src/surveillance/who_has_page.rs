//! `/who-has?purl=…`: the "who has version X?" page, for the same people as the API.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;

use super::inventory::{answer, visible_organisations};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::page;
use crate::web::session::Viewer;
use crate::web::WebError;

/// Query of the page: the purl, once the form is sent.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PageQuery {
    purl: Option<String>,
}

/// `/who-has`: a form, and the answer when a purl is given.
pub(crate) async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<PageQuery>,
) -> Result<Response, WebError> {
    let Some(principal) = viewer.principal.clone() else {
        return Err(ApiError::unauthenticated().into());
    };
    let visible = visible_organisations(&principal)?;
    let purl = query.purl.unwrap_or_default();
    let found = if purl.trim().is_empty() {
        None
    } else {
        Some(answer(&state, &purl, visible).await?)
    };
    let content = html! {
        h1 { "Who has a version?" }
        form method="get" action="/who-has" {
            div class="nhsuk-form-group" {
                label class="nhsuk-label" for="purl" { "Component, with or without a version" }
                div class="nhsuk-hint" id="purl-hint" { "For example pkg:pypi/requests@2.19.1 or pkg:cran/readxl" }
                input class="nhsuk-input" id="purl" name="purl" type="text" value=(purl) aria-describedby="purl-hint";
            }
            button class="nhsuk-button" type="submit" { "Search" }
        }
        @if let Some(found) = &found {
            @if found.holders.is_empty() {
                p { "Nobody is known to have it: no download through the gateway and no reported environment." }
            } @else {
                p class="nhsuk-body-l" { (found.people) " people in " (found.organisations) " organisations" }
                table class="nhsuk-table" {
                    caption class="nhsuk-table__caption" { "Holders, most recent first" }
                    thead class="nhsuk-table__head" { tr {
                        th scope="col" { "Who" } th scope="col" { "Organisation" } th scope="col" { "Version" }
                        th scope="col" { "How" } th scope="col" { "When" }
                    } }
                    tbody class="nhsuk-table__body" {
                        @for holder in &found.holders {
                            tr class="nhsuk-table__row" {
                                td class="nhsuk-table__cell" { (holder.person_name) }
                                td class="nhsuk-table__cell" { (holder.organisation) }
                                td class="nhsuk-table__cell" { (holder.version) }
                                td class="nhsuk-table__cell" {
                                    @match &holder.environment {
                                        Some(environment) => { "reported: " (environment) }
                                        None => { "downloaded through the " (holder.organisation) " view (" (holder.count) ")" }
                                    }
                                }
                                td class="nhsuk-table__cell" { (page::when(holder.last_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(page::render(
        &viewer,
        page::Section::Metrics,
        "Who has a version?",
        false,
        content,
    )
    .into_response())
}
