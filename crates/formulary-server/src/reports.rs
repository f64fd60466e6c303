//! The public decision log and the metrics, computed from entries, requests and the download
//! ledger. Shared by the web pages and the JSON API.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use formulary_core::ecosystems::Ecosystem;
use formulary_core::request::RequestState;
use formulary_core::{Component, OrgCode};
use formulary_store::{EntryFilter, RequestFilter};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

/// One line of the decision log.
#[derive(Debug, Clone, Serialize)]
pub struct DecisionLogRow {
    /// When it was decided.
    pub decided_at: DateTime<Utc>,
    /// The component.
    pub component: Component,
    /// The versions covered.
    pub range: String,
    /// Whose formulary (or, for a rejection, the requesting organisation).
    pub organisation: OrgCode,
    /// The status given, or `rejected`.
    pub decision: String,
    /// Why.
    pub reason: String,
    /// Conditions of use.
    pub constraints: Option<String>,
    /// Who decided.
    pub decided_by: String,
    /// The request it answered, when there was one.
    pub request: Option<i64>,
    /// The entry it created, when there is one.
    pub entry: Option<String>,
}

/// Filters of the decision log.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DecisionLogFilter {
    /// Name contains.
    pub q: String,
    /// `pypi`, `cran` or `generic`.
    pub ecosystem: String,
    /// An organisation code.
    pub organisation: String,
    /// A status or `rejected`.
    pub decision: String,
}

/// The decision log, newest first, filtered.
pub async fn decision_log(
    state: &AppState,
    filter: &DecisionLogFilter,
) -> Result<Vec<DecisionLogRow>, ApiError> {
    let entries = state.database.list_entries(&EntryFilter::default()).await?;
    let requests = state.database.requests(&RequestFilter::default()).await?;
    let request_of_entry: HashMap<&str, i64> = requests
        .iter()
        .filter_map(|request| Some((request.decision.as_ref()?.entry_id.as_deref()?, request.id)))
        .collect();
    let mut rows: Vec<DecisionLogRow> = entries
        .iter()
        .map(|stored| {
            let draft = &stored.entry.draft;
            DecisionLogRow {
                decided_at: stored.entry.created_at,
                component: draft.component.clone(),
                range: draft.range.as_str().to_owned(),
                organisation: draft.organisation.clone(),
                decision: draft.status.as_str().to_owned(),
                reason: draft.reason.clone(),
                constraints: draft.constraints.clone(),
                decided_by: draft.decided_by.clone(),
                request: request_of_entry.get(stored.entry.id.as_str()).copied(),
                entry: Some(stored.entry.id.clone()),
            }
        })
        .collect();
    rows.extend(
        requests
            .iter()
            .filter(|request| request.state == RequestState::Rejected)
            .filter_map(|request| {
                let decision = request.decision.as_ref()?;
                Some(DecisionLogRow {
                    decided_at: request.decided_at.unwrap_or(request.updated_at),
                    component: request.draft.component.clone(),
                    range: request.draft.range.as_str().to_owned(),
                    organisation: request.draft.organisation.clone(),
                    decision: "rejected".to_owned(),
                    reason: decision.reason.clone(),
                    constraints: None,
                    decided_by: decision.by.clone(),
                    request: Some(request.id),
                    entry: None,
                })
            }),
    );
    let wanted = filter.q.trim().to_lowercase();
    let ecosystem = filter.ecosystem.parse::<Ecosystem>().ok();
    let organisation = filter.organisation.parse::<OrgCode>().ok();
    let decision = filter.decision.trim().to_lowercase();
    rows.retain(|row| {
        (wanted.is_empty() || row.component.name.as_str().to_lowercase().contains(&wanted))
            && ecosystem.is_none_or(|ecosystem| row.component.ecosystem() == ecosystem)
            && organisation
                .as_ref()
                .is_none_or(|organisation| &row.organisation == organisation)
            && (decision.is_empty() || row.decision == decision)
    });
    rows.sort_by_key(|row| std::cmp::Reverse(row.decided_at));
    Ok(rows)
}

/// Protects a spreadsheet from formulas smuggled into a cell, and quotes it.
fn csv_cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    format!("\"{}\"", guarded.replace('"', "\"\""))
}

/// Writes CSV with a header row.
pub fn to_csv(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = header
        .iter()
        .map(|cell| csv_cell(cell))
        .collect::<Vec<_>>()
        .join(",");
    out.push_str("\r\n");
    for row in rows {
        out.push_str(
            &row.iter()
                .map(|cell| csv_cell(cell))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

/// The decision log as CSV.
pub fn decision_log_csv(rows: &[DecisionLogRow]) -> String {
    to_csv(
        &[
            "decided_at",
            "purl",
            "range",
            "organisation",
            "decision",
            "reason",
            "constraints",
            "decided_by",
            "request",
            "entry",
        ],
        rows.iter().map(|row| {
            vec![
                row.decided_at.to_rfc3339(),
                row.component.purl(),
                row.range.clone(),
                row.organisation.to_string(),
                row.decision.clone(),
                row.reason.clone(),
                row.constraints.clone().unwrap_or_default(),
                row.decided_by.clone(),
                row.request.map(|id| id.to_string()).unwrap_or_default(),
                row.entry.clone().unwrap_or_default(),
            ]
        }),
    )
}

/// Median and 90th percentile of a set of durations, in hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    /// How many.
    pub count: usize,
    /// Median, hours.
    pub median_hours: Option<f64>,
    /// 90th percentile (nearest rank), hours.
    pub p90_hours: Option<f64>,
}

fn nearest_rank(sorted: &[f64], percentile: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percentile / 100.0 * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// The spread of durations given in hours.
pub fn spread(mut hours: Vec<f64>) -> Spread {
    hours.sort_by(f64::total_cmp);
    Spread {
        count: hours.len(),
        median_hours: nearest_rank(&hours, 50.0),
        p90_hours: nearest_rank(&hours, 90.0),
    }
}

/// The per-package packaging fee the NHS was charged in 2021, low and high.
pub const PACKAGING_FEE_POUNDS: (u64, u64) = (6_000, 8_000);

/// What the metrics page reports.
#[derive(Debug, Clone, Serialize)]
pub struct Metrics {
    /// Time to decision for every decided request.
    pub time_to_decision: Spread,
    /// … for requests that reused an earlier decision.
    pub time_to_decision_reused: Spread,
    /// … for requests that needed a new review.
    pub time_to_decision_new: Spread,
    /// Decided requests that reused an earlier decision, over all decided requests.
    pub reuse_rate: Option<f64>,
    /// How many decisions were reuses.
    pub reuses: usize,
    /// Requests per state.
    pub requests_by_state: BTreeMap<String, usize>,
    /// Reuses × £6,000 and × £8,000: an estimate.
    pub estimated_cost_avoided_pounds: (u64, u64),
    /// Downloads the gateway refused.
    pub blocked_downloads: i64,
    /// Downloads the gateway served.
    pub served_downloads: i64,
    /// The components refused most, with counts.
    pub most_blocked: Vec<(String, i64)>,
    /// Why requests were rejected, newest first.
    pub rejection_reasons: Vec<(i64, String)>,
}

/// Computes the metrics now.
pub async fn metrics(state: &AppState) -> Result<Metrics, ApiError> {
    let requests = state.database.requests(&RequestFilter::default()).await?;
    let mut by_state: BTreeMap<String, usize> = RequestState::ALL
        .iter()
        .map(|state| (state.as_str().to_owned(), 0))
        .collect();
    let (mut all, mut reused, mut new) = (Vec::new(), Vec::new(), Vec::new());
    for request in &requests {
        *by_state
            .entry(request.state.as_str().to_owned())
            .or_default() += 1;
        if let (Some(decision), Some(decided_at)) = (&request.decision, request.decided_at) {
            let hours = (decided_at - request.created_at).num_seconds().max(0) as f64 / 3600.0;
            all.push(hours);
            if decision.reused {
                reused.push(hours)
            } else {
                new.push(hours)
            }
        }
    }
    let reuses = reused.len();
    let decided = all.len();
    let tallies = state.database.download_tallies().await?;
    let blocked_downloads = tallies
        .iter()
        .filter(|tally| tally.outcome == "refused")
        .map(|tally| tally.count)
        .sum();
    let served_downloads = tallies
        .iter()
        .filter(|tally| tally.outcome == "served")
        .map(|tally| tally.count)
        .sum();
    let most_blocked = tallies
        .iter()
        .filter(|tally| tally.outcome == "refused")
        .take(10)
        .map(|tally| (tally.component.purl(), tally.count))
        .collect();
    let rejection_reasons = requests
        .iter()
        .filter(|request| request.state == RequestState::Rejected)
        .filter_map(|request| Some((request.id, request.decision.as_ref()?.reason.clone())))
        .take(10)
        .collect();
    Ok(Metrics {
        time_to_decision: spread(all),
        time_to_decision_reused: spread(reused),
        time_to_decision_new: spread(new),
        reuse_rate: (decided > 0).then(|| reuses as f64 / decided as f64),
        reuses,
        requests_by_state: by_state,
        estimated_cost_avoided_pounds: (
            reuses as u64 * PACKAGING_FEE_POUNDS.0,
            reuses as u64 * PACKAGING_FEE_POUNDS.1,
        ),
        blocked_downloads,
        served_downloads,
        most_blocked,
        rejection_reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let result = spread(vec![5.0, 1.0, 3.0, 2.0, 4.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert_eq!(result.count, 10);
        assert_eq!(result.median_hours, Some(5.0));
        assert_eq!(result.p90_hours, Some(9.0));
        assert_eq!(spread(Vec::new()).median_hours, None);
        assert_eq!(spread(vec![2.5]).p90_hours, Some(2.5));
    }

    #[test]
    fn csv_cells_are_quoted_and_formulas_neutralised() {
        let csv = to_csv(
            &["a", "b"],
            std::iter::once(vec![
                "=HYPERLINK(\"x\")".to_owned(),
                "plain, \"quoted\"".to_owned(),
            ]),
        );
        assert_eq!(
            csv,
            "\"a\",\"b\"\r\n\"'=HYPERLINK(\"\"x\"\")\",\"plain, \"\"quoted\"\"\"\r\n"
        );
    }
}
