use std::collections::HashMap;

use chrono::{DateTime, Utc};
use formulary_core::advisory::{Advisory, OsvRecord};
use formulary_core::{Component, Severity};
use serde::Serialize;
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// A record ready to store: the record as published and the advisory built from it.
#[derive(Debug, Clone)]
pub struct AdvisoryImport {
    /// The OSV record, stored as JSON so it can be served and re-evaluated later.
    pub record: OsvRecord,
    /// The checked advisory.
    pub advisory: Advisory,
}

/// What happened to one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImportOutcome {
    /// It was new.
    Inserted,
    /// It replaced an older version of itself (a newer `modified`).
    Updated,
    /// The stored version is as new or newer; nothing changed.
    Unchanged,
}

/// A stored advisory, for listings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvisorySummary {
    /// The OSV id.
    pub id: String,
    /// Its aliases.
    pub aliases: Vec<String>,
    /// One line about it.
    pub summary: String,
    /// Derived severity; `None` when unrated.
    pub severity: Option<Severity>,
    /// True for malicious-package reports.
    pub malicious: bool,
    /// Upstream modification time.
    pub modified: DateTime<Utc>,
    /// Set when withdrawn.
    pub withdrawn: Option<DateTime<Utc>>,
}

/// Records per transaction: large enough to be fast, small enough not to hold SQLite's write lock
/// for long.
const BATCH: usize = 500;

impl Database {
    /// Inserts new advisories and replaces stored ones whose `modified` time is older, in batches.
    /// Each batch is one transaction with one audit row naming what changed. Importing the same
    /// data twice changes nothing.
    pub async fn import_advisories(
        &self,
        imports: &[AdvisoryImport],
        source: &str,
        actor: &str,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<ImportOutcome>, StoreError> {
        let mut outcomes = Vec::with_capacity(imports.len());
        for batch in imports.chunks(BATCH) {
            let rows: Vec<(AdvisoryImport, String)> = batch
                .iter()
                .map(|import| {
                    serde_json::to_string(&import.record)
                        .map(|json| (import.clone(), json))
                        .map_err(|error| StoreError::corrupt("advisory record", error))
                })
                .collect::<Result<_, _>>()?;
            let (source, actor) = (source.to_owned(), actor.to_owned());
            let batch_outcomes = self
                .transact(move |connection| {
                    let (rows, source, actor) = (rows.clone(), source.clone(), actor.clone());
                    Box::pin(async move {
                        let stored = stored_modified(connection, rows.iter().map(|(import, _)| import.advisory.id.as_str())).await?;
                        let mut outcomes = Vec::with_capacity(rows.len());
                        let mut changed = Vec::new();
                        for (import, json) in &rows {
                            let advisory = &import.advisory;
                            let outcome = match stored.get(&advisory.id) {
                                // Times are stored to the microsecond; OSV's can carry nanoseconds, which
                                // must not make every later sync "update" the record again.
                                Some(existing) if *existing >= time::to_stored_precision(advisory.modified) => ImportOutcome::Unchanged,
                                Some(_) => ImportOutcome::Updated,
                                None => ImportOutcome::Inserted,
                            };
                            if outcome != ImportOutcome::Unchanged {
                                write_advisory(connection, advisory, json, outcome).await?;
                                changed.push(advisory.id.clone());
                            }
                            outcomes.push(outcome);
                        }
                        if !changed.is_empty() {
                            let details = serde_json::json!({ "source": source, "changed": changed.len(), "ids": changed.iter().take(100).collect::<Vec<_>>() });
                            audit::append(connection, &actor, "advisories.import", &source, &details).await?;
                        }
                        Ok(outcomes)
                    })
                })
                .await?;
            outcomes.extend(batch_outcomes);
            progress(outcomes.len());
        }
        Ok(outcomes)
    }

    /// Every advisory in force (not withdrawn), rebuilt from the stored records.
    pub async fn advisories_in_force(&self) -> Result<Vec<Advisory>, StoreError> {
        self.advisory_records_in_force()
            .await?
            .iter()
            .map(|record| Ok(Advisory::from_record(record)?))
            .collect()
    }

    /// The OSV records of the advisories that are not withdrawn, as stored.
    pub(crate) async fn advisory_records_in_force(&self) -> Result<Vec<OsvRecord>, StoreError> {
        let rows = sqlx::query("SELECT record FROM advisories WHERE withdrawn IS NULL")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|row| {
                serde_json::from_str(&row.try_get::<String, _>("record")?)
                    .map_err(|error| StoreError::corrupt("advisory record", error))
            })
            .collect()
    }

    /// The advisories (withdrawn too) that name a component, newest first.
    pub async fn advisories_for(
        &self,
        component: &Component,
    ) -> Result<Vec<AdvisorySummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, a.aliases, a.summary, a.severity, a.malicious, a.modified, a.withdrawn FROM advisories a
             JOIN advisory_components c ON c.advisory_id = a.id WHERE c.ecosystem = $1 AND c.name = $2 ORDER BY a.modified DESC",
        )
        .bind(component.ecosystem().as_str())
        .bind(component.name.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode_summary).collect()
    }

    /// How many advisories are stored, and how many of them are in force.
    pub async fn advisory_counts(&self) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS total, COUNT(*) - COUNT(withdrawn) AS in_force FROM advisories",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get("total")?, row.try_get("in_force")?))
    }
}

async fn stored_modified<'a>(
    connection: &mut sqlx::AnyConnection,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    let mut found = HashMap::new();
    for id in ids {
        let row = sqlx::query("SELECT modified FROM advisories WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *connection)
            .await?;
        if let Some(row) = row {
            found.insert(
                id.to_owned(),
                time::from_text(&row.try_get::<String, _>("modified")?)?,
            );
        }
    }
    Ok(found)
}

async fn write_advisory(
    connection: &mut sqlx::AnyConnection,
    advisory: &Advisory,
    record_json: &str,
    outcome: ImportOutcome,
) -> Result<(), StoreError> {
    let aliases = serde_json::to_string(&advisory.aliases)
        .map_err(|error| StoreError::corrupt("aliases", error))?;
    if outcome == ImportOutcome::Updated {
        sqlx::query("DELETE FROM advisory_components WHERE advisory_id = $1")
            .bind(&advisory.id)
            .execute(&mut *connection)
            .await?;
        sqlx::query("DELETE FROM advisories WHERE id = $1")
            .bind(&advisory.id)
            .execute(&mut *connection)
            .await?;
    }
    sqlx::query(
        "INSERT INTO advisories (id, modified, published, withdrawn, summary, severity, cvss_score, malicious, aliases, record, imported_at)
         VALUES ($1, $2, $3, $4, $5, $6, CAST($7 AS DOUBLE PRECISION), $8, $9, $10, $11)",
    )
    .bind(&advisory.id)
    .bind(time::to_text(advisory.modified))
    .bind(advisory.published.map(time::to_text))
    .bind(advisory.withdrawn.map(time::to_text))
    .bind(&advisory.summary)
    .bind(advisory.severity.map(|severity| severity.as_str()))
    .bind(crate::database::nullable_double(advisory.cvss_score))
    .bind(i64::from(advisory.malicious))
    .bind(aliases)
    .bind(record_json)
    .bind(time::to_text(Utc::now()))
    .execute(&mut *connection)
    .await?;
    let mut components: Vec<&Component> = advisory.components().collect();
    components.sort();
    components.dedup();
    for component in components {
        sqlx::query(
            "INSERT INTO advisory_components (advisory_id, ecosystem, name) VALUES ($1, $2, $3)",
        )
        .bind(&advisory.id)
        .bind(component.ecosystem().as_str())
        .bind(component.name.as_str())
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

fn decode_summary(row: &sqlx::any::AnyRow) -> Result<AdvisorySummary, StoreError> {
    Ok(AdvisorySummary {
        id: row.try_get("id")?,
        aliases: serde_json::from_str(&row.try_get::<String, _>("aliases")?)
            .map_err(|error| StoreError::corrupt("aliases", error))?,
        summary: row.try_get("summary")?,
        severity: row
            .try_get::<Option<String>, _>("severity")?
            .map(|text| text.parse())
            .transpose()?,
        malicious: row.try_get::<i64, _>("malicious")? != 0,
        modified: time::from_text(&row.try_get::<String, _>("modified")?)?,
        withdrawn: time::optional_from_text(row.try_get("withdrawn")?)?,
    })
}
