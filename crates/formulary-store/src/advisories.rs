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
                        let ids: Vec<&str> = rows.iter().map(|(import, _)| import.advisory.id.as_str()).collect();
                        let stored = stored_modified(connection, &ids).await?;
                        let mut outcomes = Vec::with_capacity(rows.len());
                        let mut changed = Vec::new();
                        let mut writes = Vec::new();
                        let mut taken = std::collections::HashSet::new();
                        for (import, json) in &rows {
                            let advisory = &import.advisory;
                            let outcome = match stored.get(&advisory.id) {
                                // The same id twice in one batch: the first is kept.
                                _ if taken.contains(advisory.id.as_str()) => ImportOutcome::Unchanged,
                                // Times are stored to the microsecond; OSV's can carry nanoseconds, which
                                // must not make every later sync "update" the record again.
                                Some(existing) if *existing >= time::to_stored_precision(advisory.modified) => ImportOutcome::Unchanged,
                                Some(_) => ImportOutcome::Updated,
                                None => ImportOutcome::Inserted,
                            };
                            if outcome != ImportOutcome::Unchanged {
                                taken.insert(advisory.id.as_str());
                                writes.push((advisory, json.as_str(), outcome));
                                changed.push(advisory.id.clone());
                            }
                            outcomes.push(outcome);
                        }
                        write_advisories(connection, &writes).await?;
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

/// Rows per multi-row statement: few round trips (PostgreSQL's cost is per statement), well
/// under both databases' limits on bound parameters.
const ROWS_PER_STATEMENT: usize = 200;

/// `($1, $2, …)` groups for `rows` rows of `columns` parameters; `wrap(column, placeholder)`
/// may decorate a column's placeholder (a cast).
fn placeholders(rows: usize, columns: usize, wrap: impl Fn(usize, String) -> String) -> String {
    (0..rows)
        .map(|row| {
            let group: Vec<String> = (1..=columns)
                .map(|column| wrap(column, format!("${}", row * columns + column)))
                .collect();
            format!("({})", group.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stored `modified` time of each of `ids` that is stored, one query per 200 ids.
async fn stored_modified(
    connection: &mut sqlx::AnyConnection,
    ids: &[&str],
) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
    let mut found = HashMap::new();
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "SELECT id, modified FROM advisories WHERE id IN {}",
            placeholders(1, chunk.len(), |_, placeholder| placeholder)
        );
        let mut query = sqlx::query(&sql);
        for id in chunk {
            query = query.bind(id.to_string());
        }
        for row in query.fetch_all(&mut *connection).await? {
            found.insert(
                row.try_get::<String, _>("id")?,
                time::from_text(&row.try_get::<String, _>("modified")?)?,
            );
        }
    }
    Ok(found)
}

/// Writes new and changed advisories (an updated one replaces the stored row and its
/// components) with multi-row statements.
async fn write_advisories(
    connection: &mut sqlx::AnyConnection,
    writes: &[(&Advisory, &str, ImportOutcome)],
) -> Result<(), StoreError> {
    let updated: Vec<&str> = writes
        .iter()
        .filter(|(_, _, outcome)| *outcome == ImportOutcome::Updated)
        .map(|(advisory, _, _)| advisory.id.as_str())
        .collect();
    for chunk in updated.chunks(ROWS_PER_STATEMENT) {
        let list = placeholders(1, chunk.len(), |_, placeholder| placeholder);
        for table_column in [
            "advisory_components WHERE advisory_id",
            "advisories WHERE id",
        ] {
            let sql = format!("DELETE FROM {table_column} IN {list}");
            let mut query = sqlx::query(&sql);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            query.execute(&mut *connection).await?;
        }
    }
    let imported_at = time::to_text(Utc::now());
    for chunk in writes.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO advisories (id, modified, published, withdrawn, summary, severity, cvss_score, malicious, aliases, record, imported_at) VALUES {}",
            placeholders(chunk.len(), 11, |column, placeholder| if column == 7 {
                format!("CAST({placeholder} AS DOUBLE PRECISION)")
            } else {
                placeholder
            })
        );
        let mut query = sqlx::query(&sql);
        for (advisory, record_json, _) in chunk {
            let aliases = serde_json::to_string(&advisory.aliases)
                .map_err(|error| StoreError::corrupt("aliases", error))?;
            query = query
                .bind(advisory.id.clone())
                .bind(time::to_text(advisory.modified))
                .bind(advisory.published.map(time::to_text))
                .bind(advisory.withdrawn.map(time::to_text))
                .bind(advisory.summary.clone())
                .bind(advisory.severity.map(|severity| severity.as_str()))
                .bind(crate::database::nullable_double(advisory.cvss_score))
                .bind(i64::from(advisory.malicious))
                .bind(aliases)
                .bind(record_json.to_string())
                .bind(imported_at.clone());
        }
        query.execute(&mut *connection).await?;
    }
    let mut components: Vec<(&str, &Component)> = Vec::new();
    for (advisory, _, _) in writes {
        let mut named: Vec<&Component> = advisory.components().collect();
        named.sort();
        named.dedup();
        components.extend(
            named
                .into_iter()
                .map(|component| (advisory.id.as_str(), component)),
        );
    }
    for chunk in components.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO advisory_components (advisory_id, ecosystem, name) VALUES {}",
            placeholders(chunk.len(), 3, |_, placeholder| placeholder)
        );
        let mut query = sqlx::query(&sql);
        for (id, component) in chunk {
            query = query
                .bind(id.to_string())
                .bind(component.ecosystem().as_str())
                .bind(component.name.as_str().to_owned());
        }
        query.execute(&mut *connection).await?;
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
