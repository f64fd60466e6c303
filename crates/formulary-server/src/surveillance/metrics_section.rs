//! The surveillance part of the metrics page (`/metrics`): the figures of
//! `GET /api/v1/metrics/surveillance` — patch latency per recall, the share of recalls closed
//! within 14 days, and open exposure by severity and age — shown to the people who may see who
//! has what (auditors, national curators, organisation admins).

use chrono::{DateTime, Utc};
use formulary_store::SurveillanceMetrics;
use maud::{html, Markup};

use super::inventory::visible_organisations;
use crate::error::ApiError;
use crate::identity::Principal;
use crate::state::AppState;

/// The section for `principal`, or nothing when they may not see it (or are not signed in).
pub(crate) async fn for_viewer(
    state: &AppState,
    principal: Option<&Principal>,
) -> Result<Option<Markup>, ApiError> {
    let Some(principal) = principal else {
        return Ok(None);
    };
    if visible_organisations(principal).is_err() {
        return Ok(None);
    }
    state.database.resolve_recalls().await?;
    let metrics = state.database.surveillance_metrics(Utc::now()).await?;
    Ok(Some(section(&metrics)))
}

/// Days between two moments, to one decimal place, or a dash.
fn days(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> String {
    match (from, to) {
        (Some(from), Some(to)) => format!("{:.1} days", (to - from).num_minutes() as f64 / 1440.0),
        _ => "–".to_owned(),
    }
}

/// What opened a recall, for people.
fn cause(cause: &str, advisory: Option<&str>) -> String {
    match (cause, advisory) {
        (_, Some(advisory)) => format!("advisory {advisory}"),
        ("prohibition", None) => "a prohibition".to_owned(),
        ("manual", None) => "opened by hand".to_owned(),
        (other, None) => other.to_owned(),
    }
}

fn section(metrics: &SurveillanceMetrics) -> Markup {
    html! {
        h2.nhsuk-heading-m #surveillance { "Surveillance and recalls" }
        dl.nhsuk-summary-list #recall-headline {
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Recalls" } dd.nhsuk-summary-list__value { (metrics.recalls) " in all, " (metrics.open) " open" } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Closed within 14 days" } dd.nhsuk-summary-list__value #closed-within-14-days {
                @if let Some(share) = metrics.closed_within_14_days {
                    (format!("{:.0}%", share * 100.0)) " of the " (metrics.due) " recalls that are closed or at least 14 days old (the Cyber Essentials limit)"
                } @else { "No recall is closed or 14 days old yet" }
            } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Median time to close" } dd.nhsuk-summary-list__value {
                @if let Some(median) = metrics.median_days_to_close { (format!("{median:.1} days")) } @else { "No recall is closed yet" }
            } }
        }
        h3.nhsuk-heading-s { "Open exposure" }
        @if metrics.exposure.is_empty() {
            p #open-exposure { "Nobody is exposed to a recalled version." }
        } @else {
            table.nhsuk-table #open-exposure {
                caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "People still exposed, by severity and age of their recall" }
                thead.nhsuk-table__head { tr { th scope="col" { "Severity" } th scope="col" { "Under 7 days" } th scope="col" { "7 to 14 days" } th scope="col" { "Over 14 days" } } }
                tbody.nhsuk-table__body {
                    @for row in &metrics.exposure {
                        tr.nhsuk-table__row { td.nhsuk-table__cell { (row.severity) } td.nhsuk-table__cell { (row.under_7_days) } td.nhsuk-table__cell { (row.days_7_to_14) } td.nhsuk-table__cell { (row.over_14_days) } }
                    }
                }
            }
        }
        h3.nhsuk-heading-s { "Patch latency" }
        @if metrics.timelines.is_empty() {
            p #patch-latency { "No recall yet." }
        } @else {
            table.nhsuk-table #patch-latency {
                caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Per recall: advisory published, blocked in Formulary, recall opened, last affected person moved" }
                thead.nhsuk-table__head { tr {
                    th scope="col" { "Recall" } th scope="col" { "Cause" } th scope="col" { "Published → blocked" }
                    th scope="col" { "Blocked → recall opened" } th scope="col" { "Opened → last person moved" }
                } }
                tbody.nhsuk-table__body {
                    @for timeline in &metrics.timelines {
                        tr.nhsuk-table__row {
                            td.nhsuk-table__cell { a href={ "/recalls/" (timeline.recall_id) } { (timeline.component) } }
                            td.nhsuk-table__cell { (cause(&timeline.cause, timeline.advisory_id.as_deref())) }
                            td.nhsuk-table__cell { (days(timeline.published, timeline.blocked)) }
                            td.nhsuk-table__cell { (days(timeline.blocked, Some(timeline.opened))) }
                            td.nhsuk-table__cell { @if timeline.closed.is_some() { (days(Some(timeline.opened), timeline.closed)) } @else { "still open" } }
                        }
                    }
                }
            }
        }
        p { a href="/who-has" { "Who has a version?" } " · As JSON: " a href="/api/v1/metrics/surveillance" { "/api/v1/metrics/surveillance" } }
    }
}
