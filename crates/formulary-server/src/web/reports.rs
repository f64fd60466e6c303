//! The public decision log (HTML, JSON, CSV), the metrics page, and the audit log for auditors
//! (paged, exportable as CSV or JSON lines).

use axum::extract::{Query, State};
use axum::http::header::{ACCEPT, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use formulary_core::ecosystems::Ecosystem;
use formulary_core::Status;
use maud::html;
use serde::Deserialize;

use super::catalogue::component_href;
use super::page::{self, Section};
use super::session::{SignedIn, Viewer};
use super::WebError;
use crate::reports::{decision_log, decision_log_csv, metrics, to_csv, DecisionLogFilter, Spread};
use crate::state::AppState;

/// Query of the decision log: filters plus `format=html|json|csv`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct DecisionQuery {
    #[serde(flatten)]
    filter: DecisionLogFilter,
    #[serde(default)]
    format: String,
}

fn wants(headers: &HeaderMap, format: &str, kind: &str) -> bool {
    format == kind
        || (format.is_empty()
            && headers
                .get(ACCEPT)
                .and_then(|value| value.to_str().ok())
                .is_some_and(|accept| {
                    accept.starts_with(&format!("application/{kind}"))
                        || accept.starts_with(&format!("text/{kind}"))
                }))
}

/// `GET /decisions`: approvals and rejections with their reasons, newest first.
pub(crate) async fn decisions(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Query(query): Query<DecisionQuery>,
) -> Result<Response, WebError> {
    let rows = decision_log(&state, &query.filter).await?;
    if wants(&headers, &query.format, "json") {
        return Ok(Json(rows).into_response());
    }
    if wants(&headers, &query.format, "csv") {
        return Ok((
            [
                (CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    CONTENT_DISPOSITION,
                    "attachment; filename=\"formulary-decisions.csv\"",
                ),
            ],
            decision_log_csv(&rows),
        )
            .into_response());
    }
    let filter = &query.filter;
    let export = |format: &str| {
        let pairs = [
            ("q", &filter.q),
            ("ecosystem", &filter.ecosystem),
            ("organisation", &filter.organisation),
            ("decision", &filter.decision),
        ];
        let mut query: Vec<String> = pairs
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(key, value)| format!("{key}={}", super::catalogue::url_component(value)))
            .collect();
        query.push(format!("format={format}"));
        format!("/decisions?{}", query.join("&"))
    };
    let shown = rows.len().min(500);
    let content = html! {
        h1 { "Decision log" }
        p { "Every approval and rejection, with its reason, newest first. Public, so that nobody repeats a review that has already been done." }
        form method="get" action="/decisions" {
            div.nhsuk-grid-row {
                div.nhsuk-grid-column-one-quarter { div.nhsuk-form-group {
                    label.nhsuk-label for="q" { "Name contains" }
                    input.nhsuk-input #q name="q" type="text" value=(filter.q);
                } }
                div.nhsuk-grid-column-one-quarter { div.nhsuk-form-group {
                    label.nhsuk-label for="ecosystem" { "From" }
                    select.nhsuk-select #ecosystem name="ecosystem" {
                        option value="" { "Everywhere" }
                        @for known in Ecosystem::ALL { option value=(known.as_str()) selected[filter.ecosystem == known.as_str()] { (known.display_name()) } }
                    }
                } }
                div.nhsuk-grid-column-one-quarter { div.nhsuk-form-group {
                    label.nhsuk-label for="organisation" { "Organisation" }
                    input.nhsuk-input #organisation name="organisation" type="text" value=(filter.organisation);
                } }
                div.nhsuk-grid-column-one-quarter { div.nhsuk-form-group {
                    label.nhsuk-label for="decision" { "Decision" }
                    select.nhsuk-select #decision name="decision" {
                        option value="" { "Any" }
                        @for status in Status::ALL { option value=(status.as_str()) selected[filter.decision == status.as_str()] { (status.as_str().replace('-', " ")) } }
                        option value="rejected" selected[filter.decision == "rejected"] { "rejected" }
                    }
                } }
            }
            button.nhsuk-button.nhsuk-button--secondary type="submit" { "Filter" }
        }
        p { "Download: " a href=(export("csv")) { "CSV" } " · " a href=(export("json")) { "JSON" } }
        p { (rows.len()) @if rows.len() == 1 { " decision" } @else { " decisions" } @if shown < rows.len() { ", the newest " (shown) " shown" } "." }
        table.nhsuk-table #decision-log {
            caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Decisions, newest first" }
            thead.nhsuk-table__head { tr { th scope="col" { "Date" } th scope="col" { "Component" } th scope="col" { "Organisation" } th scope="col" { "Decision" } th scope="col" { "Reason" } th scope="col" { "Decided by" } } }
            tbody.nhsuk-table__body {
                @for row in rows.iter().take(shown) {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { (row.decided_at.format("%-d %b %Y")) }
                        td.nhsuk-table__cell { a href=(component_href(&row.component)) { (row.component.name.as_str()) } " (" (row.component.ecosystem().display_name()) ") " code { (row.range) } }
                        td.nhsuk-table__cell { (row.organisation) }
                        td.nhsuk-table__cell {
                            @match row.decision.parse::<Status>() {
                                Ok(status) => (page::status_tag(status)),
                                Err(_) => strong.nhsuk-tag.nhsuk-tag--red { "rejected" },
                            }
                        }
                        td.nhsuk-table__cell {
                            (row.reason)
                            @if let Some(constraints) = &row.constraints { br; strong { "Constraints: " } (constraints) }
                            @if let Some(request) = row.request { br; a href={ "/requests/" (request) } { "Request " (request) } }
                        }
                        td.nhsuk-table__cell { (row.decided_by) }
                    }
                }
            }
        }
    };
    Ok(page::render(&viewer, Section::Decisions, "Decision log", false, content).into_response())
}

fn hours(value: Option<f64>) -> String {
    match value {
        None => "No decisions yet".to_owned(),
        Some(hours) if hours < 48.0 => format!("{hours:.1} hours"),
        Some(hours) => format!("{:.1} days", hours / 24.0),
    }
}

fn spread_row(label: &str, spread: &Spread) -> maud::Markup {
    html! {
        tr.nhsuk-table__row {
            th.nhsuk-table__header scope="row" { (label) }
            td.nhsuk-table__cell { (spread.count) }
            td.nhsuk-table__cell { (hours(spread.median_hours)) }
            td.nhsuk-table__cell { (hours(spread.p90_hours)) }
        }
    }
}

fn pounds(amount: u64) -> String {
    let digits = amount.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    format!("£{grouped}")
}

/// `GET /metrics`.
pub(crate) async fn metrics_page(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, WebError> {
    let metrics = metrics(&state).await?;
    let surveillance =
        crate::surveillance::metrics_section::for_viewer(&state, viewer.principal.as_ref()).await?;
    let content = html! {
        h1 { "Metrics" }
        h2.nhsuk-heading-m { "Time to decision" }
        table.nhsuk-table #time-to-decision {
            caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Time from submission to decision" }
            thead.nhsuk-table__head { tr { th scope="col" { "Requests" } th scope="col" { "Decided" } th scope="col" { "Median" } th scope="col" { "90th percentile" } } }
            tbody.nhsuk-table__body {
                (spread_row("All", &metrics.time_to_decision))
                (spread_row("Reusing an earlier decision", &metrics.time_to_decision_reused))
                (spread_row("New review", &metrics.time_to_decision_new))
            }
        }
        dl.nhsuk-summary-list #headline {
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Reuse rate" } dd.nhsuk-summary-list__value {
                @if let Some(rate) = metrics.reuse_rate { (format!("{:.0}%", rate * 100.0)) " of decisions reused an earlier one (" (metrics.reuses) ")" } @else { "No decisions yet" }
            } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Estimated cost avoided" } dd.nhsuk-summary-list__value #cost-avoided {
                (pounds(metrics.estimated_cost_avoided_pounds.0)) " to " (pounds(metrics.estimated_cost_avoided_pounds.1))
                p.nhsuk-body-s { "An estimate: " (metrics.reuses) " reuses × the £6,000–£8,000 per-package packaging fee reported in 2021." }
            } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Blocked downloads" } dd.nhsuk-summary-list__value #blocked { (metrics.blocked_downloads) " refused, " (metrics.served_downloads) " served" } }
        }
        h2.nhsuk-heading-m { "Requests by state" }
        table.nhsuk-table #requests-by-state {
            caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Requests by state" }
            thead.nhsuk-table__head { tr { th scope="col" { "State" } th scope="col" { "Requests" } } }
            tbody.nhsuk-table__body {
                @for (state, count) in &metrics.requests_by_state {
                    tr.nhsuk-table__row { td.nhsuk-table__cell { (state.replace('-', " ")) } td.nhsuk-table__cell { (count) } }
                }
            }
        }
        @if !metrics.most_blocked.is_empty() {
            h2.nhsuk-heading-m { "Most blocked" }
            ul { @for (purl, count) in &metrics.most_blocked { li { code { (purl) } ": " (count) } } }
        }
        @if !metrics.rejection_reasons.is_empty() {
            h2.nhsuk-heading-m { "Recent rejection reasons" }
            ul { @for (id, reason) in &metrics.rejection_reasons { li { a href={ "/requests/" (id) } { "Request " (id) } ": " (reason) } } }
        }
        p { "As JSON: " a href="/api/v1/metrics" { "/api/v1/metrics" } }
        @if let Some(surveillance) = surveillance { (surveillance) }
    };
    Ok(page::render(&viewer, Section::Metrics, "Metrics", false, content).into_response())
}

/// Query of the audit page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    format: String,
}

/// Rows per audit page.
const AUDIT_PAGE_ROWS: i64 = 100;

/// `GET /audit`: auditors and national curators page through the log, or export it whole.
pub(crate) async fn audit(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Query(query): Query<AuditQuery>,
) -> Result<Response, WebError> {
    if !signed_in.principal.may_read_audit() {
        return Err(WebError::from(crate::error::ApiError::forbidden(
            "the audit log is open to auditors and national curators; ask an administrator for the auditor role",
        )));
    }
    if query.format == "csv" || query.format == "jsonl" {
        let mut records = Vec::new();
        let mut after = 0;
        loop {
            let page = state.database.audit_page(after, 10_000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            records.extend(page);
        }
        let (body, kind, name) = if query.format == "csv" {
            let body = to_csv(
                &[
                    "seq",
                    "at",
                    "actor",
                    "action",
                    "subject",
                    "details",
                    "previous_hash",
                    "hash",
                ],
                records.iter().map(|record| {
                    vec![
                        record.seq.to_string(),
                        record.at.to_rfc3339(),
                        record.actor.clone(),
                        record.action.clone(),
                        record.subject.clone(),
                        record.details.to_string(),
                        record.previous_hash.clone(),
                        record.hash.clone(),
                    ]
                }),
            );
            (body, "text/csv; charset=utf-8", "formulary-audit.csv")
        } else {
            let body = records
                .iter()
                .filter_map(|record| serde_json::to_string(record).ok())
                .map(|line| line + "\n")
                .collect::<String>();
            (body, "application/x-ndjson", "formulary-audit.jsonl")
        };
        let disposition = format!("attachment; filename=\"{name}\"");
        return Ok((
            StatusCode::OK,
            [
                (CONTENT_TYPE, kind.to_owned()),
                (CONTENT_DISPOSITION, disposition),
            ],
            body,
        )
            .into_response());
    }
    let verification = state.database.verify_audit().await?;
    let rows = state
        .database
        .audit_page(query.after.max(0), AUDIT_PAGE_ROWS)
        .await?;
    let next = rows
        .last()
        .map(|record| record.seq)
        .filter(|_| rows.len() as i64 == AUDIT_PAGE_ROWS);
    let previous = (query.after > 0).then(|| (query.after - AUDIT_PAGE_ROWS).max(0));
    let content = html! {
        h1 { "Audit log" }
        @if verification.is_intact() {
            div.nhsuk-inset-text #verification { p { "The hash chain is intact: " (verification.rows) " rows. Head hash " code { (verification.head) } " – record it elsewhere to detect truncation later." } }
        } @else {
            div.nhsuk-warning-callout #verification {
                h2.nhsuk-warning-callout__label { span role="text" { span.nhsuk-u-visually-hidden { "Important: " } "The audit log has been tampered with" } }
                ul { @for problem in &verification.problems { li { (problem) } } }
            }
        }
        p { "Export the whole log: " a href="/audit?format=csv" { "CSV" } " · " a href="/audit?format=jsonl" { "JSON lines" } }
        table.nhsuk-table #audit-rows {
            caption.nhsuk-table__caption { "Rows " (query.after + 1) " onwards, oldest first" }
            thead.nhsuk-table__head { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Subject" } th scope="col" { "Details" } } }
            tbody.nhsuk-table__body {
                @for record in &rows {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { (record.seq) }
                        td.nhsuk-table__cell { (page::when(record.at)) }
                        td.nhsuk-table__cell { (record.actor) }
                        td.nhsuk-table__cell { code { (record.action) } }
                        td.nhsuk-table__cell { (record.subject) }
                        td.nhsuk-table__cell { code { (record.details.to_string()) } }
                    }
                }
            }
        }
        nav.nhsuk-pagination role="navigation" aria-label="Pagination" {
            ul.nhsuk-list.nhsuk-pagination__list {
                @if let Some(previous) = previous { li.nhsuk-pagination-item--previous { a.nhsuk-pagination__link.nhsuk-pagination__link--prev href={ "/audit?after=" (previous) } { span.nhsuk-pagination__title { "Previous" } } } }
                @if let Some(next) = next { li.nhsuk-pagination-item--next { a.nhsuk-pagination__link.nhsuk-pagination__link--next href={ "/audit?after=" (next) } { span.nhsuk-pagination__title { "Next" } } } }
            }
        }
    };
    Ok(page::render(
        &signed_in.viewer,
        Section::Audit,
        "Audit log",
        false,
        content,
    )
    .into_response())
}
