//! Metrics that show the burden lifting: patch latency per recall (advisory published →
//! blocked in Formulary → recall opened → last affected person moved), the share of recalls
//! closed within 14 days (the Cyber Essentials figure), and open exposure by severity and age.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// One recall's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatchTimeline {
    /// The recall.
    pub recall_id: String,
    /// The component's purl.
    pub component: String,
    /// `advisory`, `prohibition` or `manual`.
    pub cause: String,
    /// The advisory, for advisory recalls.
    pub advisory_id: Option<String>,
    /// When the advisory was published upstream.
    pub published: Option<DateTime<Utc>>,
    /// When Formulary stored the advisory (or recorded the prohibition), and so began refusing
    /// the versions.
    pub blocked: Option<DateTime<Utc>>,
    /// When the recall was opened.
    pub opened: DateTime<Utc>,
    /// When the last affected person moved (the recall closed).
    pub closed: Option<DateTime<Utc>>,
}

/// Exposed people by severity and age of their recall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Exposure {
    /// The recall's severity (`unrated` when it has none).
    pub severity: String,
    /// Exposed under 7 days.
    pub under_7_days: i64,
    /// Exposed 7 to 14 days.
    pub days_7_to_14: i64,
    /// Exposed over 14 days: past the Cyber Essentials limit.
    pub over_14_days: i64,
}

/// The surveillance metrics.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SurveillanceMetrics {
    /// Recalls in all.
    pub recalls: usize,
    /// Recalls still open.
    pub open: usize,
    /// Recalls that are closed, or open for at least 14 days: the denominator of the share.
    pub due: usize,
    /// Of those, the share closed within 14 days of opening (`None` when none is due).
    pub closed_within_14_days: Option<f64>,
    /// Median days from opening to closing, over closed recalls.
    pub median_days_to_close: Option<f64>,
    /// Each recall's timeline, newest first.
    pub timelines: Vec<PatchTimeline>,
    /// Open exposure by severity and age.
    pub exposure: Vec<Exposure>,
}

impl Database {
    /// The surveillance metrics as they stand at `now`.
    pub async fn surveillance_metrics(
        &self,
        now: DateTime<Utc>,
    ) -> Result<SurveillanceMetrics, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.ecosystem, r.name, r.cause, r.cause_key, r.advisory_id, r.opened_at, r.closed_at, r.severity, a.published, a.imported_at,
               (SELECT COUNT(*) FROM recall_people p WHERE p.recall_id = r.id AND p.resolved_at IS NULL) AS exposed
             FROM recalls r LEFT JOIN advisories a ON a.id = r.advisory_id ORDER BY r.opened_at DESC",
        )
        .fetch_all(self.pool())
        .await?;
        let limit = Duration::days(14);
        let (mut due, mut within, mut open) = (0, 0, 0);
        let mut days_to_close = Vec::new();
        let mut exposure: Vec<Exposure> = Vec::new();
        let mut timelines = Vec::with_capacity(rows.len());
        for row in &rows {
            let opened = time::from_text(&row.try_get::<String, _>("opened_at")?)?;
            let closed = time::optional_from_text(row.try_get("closed_at")?)?;
            match closed {
                Some(closed) => {
                    due += 1;
                    if closed - opened <= limit {
                        within += 1;
                    }
                    days_to_close.push((closed - opened).num_seconds() as f64 / 86_400.0);
                }
                None => {
                    open += 1;
                    if now - opened >= limit {
                        due += 1;
                    }
                    let exposed: i64 = row.try_get("exposed")?;
                    let severity: String = row
                        .try_get::<Option<String>, _>("severity")?
                        .unwrap_or_else(|| "unrated".to_owned());
                    let position = match exposure.iter().position(|line| line.severity == severity)
                    {
                        Some(position) => position,
                        None => {
                            exposure.push(Exposure {
                                severity,
                                under_7_days: 0,
                                days_7_to_14: 0,
                                over_14_days: 0,
                            });
                            exposure.len() - 1
                        }
                    };
                    let line = &mut exposure[position];
                    let age = now - opened;
                    if age < Duration::days(7) {
                        line.under_7_days += exposed;
                    } else if age <= limit {
                        line.days_7_to_14 += exposed;
                    } else {
                        line.over_14_days += exposed;
                    }
                }
            }
            timelines.push(PatchTimeline {
                recall_id: row.try_get("id")?,
                component: format!(
                    "pkg:{}/{}",
                    row.try_get::<String, _>("ecosystem")?,
                    row.try_get::<String, _>("name")?
                ),
                cause: row.try_get("cause")?,
                advisory_id: row.try_get("advisory_id")?,
                published: time::optional_from_text(row.try_get("published")?)?,
                blocked: match time::optional_from_text(row.try_get("imported_at")?)? {
                    Some(imported) => Some(imported),
                    None => self.prohibited_at(row).await?,
                },
                opened,
                closed,
            });
        }
        days_to_close.sort_by(f64::total_cmp);
        let median_days_to_close = match days_to_close.len() {
            0 => None,
            count if count % 2 == 1 => Some(days_to_close[count / 2]),
            count => Some((days_to_close[count / 2 - 1] + days_to_close[count / 2]) / 2.0),
        };
        Ok(SurveillanceMetrics {
            recalls: rows.len(),
            open,
            due,
            closed_within_14_days: (due > 0).then(|| within as f64 / due as f64),
            median_days_to_close,
            timelines,
            exposure,
        })
    }
}

impl Database {
    /// For a prohibition recall (key `ORG:entry-id`), when the prohibition was recorded: the
    /// moment the gateway began refusing the versions.
    async fn prohibited_at(
        &self,
        recall: &sqlx::any::AnyRow,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        if recall.try_get::<String, _>("cause")? != "prohibition" {
            return Ok(None);
        }
        let key: String = recall.try_get("cause_key")?;
        let Some((_, entry)) = key.split_once(':') else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT created_at FROM entries WHERE id = $1")
            .bind(entry)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => Ok(Some(time::from_text(
                &row.try_get::<String, _>("created_at")?,
            )?)),
            None => Ok(None),
        }
    }
}
