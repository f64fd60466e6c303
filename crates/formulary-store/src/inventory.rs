//! Inventory and "who has version X?": environments report what they contain (a new report
//! replaces the last), and the answer joins those reports with the download ledger.

use chrono::{DateTime, Utc};
use formulary_core::{Component, ComponentVersion, OrgCode};
use serde::Serialize;
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// One environment's report.
#[derive(Debug, Clone)]
pub struct NewReport {
    /// The organisation the environment belongs to.
    pub organisation: OrgCode,
    /// The project, machine or pipeline, as its owner names it.
    pub environment: String,
    /// `project`, `machine` or `pipeline`.
    pub kind: String,
    /// Who reported it, as the ledger and the audit log name people (`user:<username>`, or the
    /// service token's actor).
    pub reported_by: String,
    /// How they are shown.
    pub reported_by_name: String,
    /// The format it came in (`cyclonedx`, `spdx`, `purls`, or the lockfile's).
    pub format: String,
    /// What it contains.
    pub components: Vec<ComponentVersion>,
}

/// What a report changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportOutcome {
    /// The environment's id.
    pub environment_id: String,
    /// True when the environment was reported for the first time.
    pub new_environment: bool,
    /// Component versions it now holds.
    pub components: usize,
}

/// One person (or environment) who has a version, and how Formulary knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Holder {
    /// `download` (the ledger) or `report` (an environment's inventory).
    pub via: &'static str,
    /// Who: the ledger's actor or the reporter's id; for anonymous downloads, `anonymous`.
    pub person: String,
    /// How they are shown (for anonymous downloads, the client's address).
    pub person_name: String,
    /// The organisation: the view downloaded through, or the environment's organisation.
    pub organisation: String,
    /// The environment, for reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The version held.
    pub version: String,
    /// First seen (first download, or the report).
    pub first_at: DateTime<Utc>,
    /// Last seen (last download, or the report).
    pub last_at: DateTime<Utc>,
    /// Downloads counted (1 for a report).
    pub count: i64,
}

/// Kinds of environment accepted.
pub const ENVIRONMENT_KINDS: [&str; 3] = ["project", "machine", "pipeline"];

impl Database {
    /// Records an environment's report, replacing what it reported before, with an audit row.
    pub async fn record_report(
        &self,
        report: &NewReport,
        actor: &str,
    ) -> Result<ReportOutcome, StoreError> {
        let name = report.environment.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(StoreError::Invalid(formulary_core::CoreError::InvalidSetting(
                "an environment's name must be 1 to 200 printable characters (a project, machine or pipeline name)".to_owned(),
            )));
        }
        if !ENVIRONMENT_KINDS.contains(&report.kind.as_str()) {
            return Err(StoreError::Invalid(
                formulary_core::CoreError::InvalidSetting(
                    "an environment's kind is project, machine or pipeline".to_owned(),
                ),
            ));
        }
        self.require_organisation(&report.organisation).await?;
        let mut report = report.clone();
        report.environment = name.to_owned();
        let actor = actor.to_owned();
        self.transact(move |connection| {
            let (report, actor) = (report.clone(), actor.clone());
            Box::pin(async move {
                let now = time::to_text(time::now());
                let existing = sqlx::query(
                    "SELECT id FROM environments WHERE organisation = $1 AND name = $2",
                )
                .bind(report.organisation.as_str())
                .bind(&report.environment)
                .fetch_optional(&mut *connection)
                .await?;
                let (id, new_environment) = match existing {
                    Some(row) => (row.try_get::<String, _>("id")?, false),
                    None => (format!("env-{}", uuid::Uuid::now_v7().simple()), true),
                };
                let count = i64::try_from(report.components.len()).unwrap_or(i64::MAX);
                if new_environment {
                    sqlx::query(
                        "INSERT INTO environments (id, organisation, name, kind, reported_by, reported_by_name, reported_at, format, component_count)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(&id)
                    .bind(report.organisation.as_str())
                    .bind(&report.environment)
                    .bind(&report.kind)
                    .bind(&report.reported_by)
                    .bind(&report.reported_by_name)
                    .bind(&now)
                    .bind(&report.format)
                    .bind(count)
                    .execute(&mut *connection)
                    .await?;
                } else {
                    sqlx::query(
                        "UPDATE environments SET kind = $1, reported_by = $2, reported_by_name = $3, reported_at = $4, format = $5, component_count = $6 WHERE id = $7",
                    )
                    .bind(&report.kind)
                    .bind(&report.reported_by)
                    .bind(&report.reported_by_name)
                    .bind(&now)
                    .bind(&report.format)
                    .bind(count)
                    .bind(&id)
                    .execute(&mut *connection)
                    .await?;
                    sqlx::query("DELETE FROM environment_components WHERE environment_id = $1")
                        .bind(&id)
                        .execute(&mut *connection)
                        .await?;
                }
                for chunk in report.components.chunks(200) {
                    let rows: Vec<String> = (0..chunk.len())
                        .map(|row| format!("(${}, ${}, ${}, ${})", row * 4 + 1, row * 4 + 2, row * 4 + 3, row * 4 + 4))
                        .collect();
                    let sql = format!(
                        "INSERT INTO environment_components (environment_id, ecosystem, name, version) VALUES {} ON CONFLICT DO NOTHING",
                        rows.join(", ")
                    );
                    let mut query = sqlx::query(&sql);
                    for component in chunk {
                        query = query
                            .bind(id.clone())
                            .bind(component.component.ecosystem().as_str())
                            .bind(component.component.name.as_str().to_owned())
                            .bind(component.version.to_string());
                    }
                    query.execute(&mut *connection).await?;
                }
                let details = serde_json::json!({
                    "environment": report.environment, "kind": report.kind, "format": report.format,
                    "components": report.components.len(),
                });
                audit::append(connection, &actor, "inventory.report", &format!("{}/{}", report.organisation, id), &details).await?;
                Ok(ReportOutcome { environment_id: id, new_environment, components: report.components.len() })
            })
        })
        .await
    }

    /// Every component somebody has, in any version (a served download or a reported
    /// environment), as `(ecosystem, name)`: lets a sync that changed thousands of advisories
    /// look for holders only where there can be some.
    pub async fn held_components(
        &self,
    ) -> Result<std::collections::HashSet<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT ecosystem, name FROM downloads WHERE outcome = 'served'
             UNION SELECT DISTINCT ecosystem, name FROM environment_components",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("ecosystem")?, row.try_get("name")?)))
            .collect()
    }

    /// Who has a component (in one version, or in any): from the ledger (served downloads, one
    /// row per person, client, view and version) and the inventory (one row per environment and
    /// version), most recent first.
    pub async fn who_has(
        &self,
        component: &Component,
        version: Option<&str>,
    ) -> Result<Vec<Holder>, StoreError> {
        let version_clause = |column: &str| {
            if version.is_some() {
                format!(" AND {column} = $3")
            } else {
                String::new()
            }
        };
        let ledger_sql = format!(
            "SELECT organisation, version, actor, client, MIN(at) AS first_at, MAX(at) AS last_at, COUNT(*) AS n FROM downloads
             WHERE ecosystem = $1 AND name = $2 AND outcome = 'served'{} GROUP BY organisation, version, actor, client",
            version_clause("version")
        );
        let inventory_sql = format!(
            "SELECT e.organisation, e.name AS environment, e.reported_by, e.reported_by_name, e.reported_at, c.version
             FROM environment_components c JOIN environments e ON e.id = c.environment_id
             WHERE c.ecosystem = $1 AND c.name = $2{}",
            version_clause("c.version")
        );
        fn bound<'q>(
            sql: &'q str,
            component: &Component,
            version: Option<&str>,
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
            let query = sqlx::query(sql)
                .bind(component.ecosystem().as_str().to_owned())
                .bind(component.name.as_str().to_owned());
            match version {
                Some(version) => query.bind(version.to_owned()),
                None => query,
            }
        }
        let ledger = bound(&ledger_sql, component, version)
            .fetch_all(self.pool())
            .await?;
        let inventory = bound(&inventory_sql, component, version)
            .fetch_all(self.pool())
            .await?;
        let mut holders = Vec::with_capacity(ledger.len() + inventory.len());
        for row in &ledger {
            let actor: Option<String> = row.try_get("actor")?;
            let client: String = row.try_get("client")?;
            holders.push(Holder {
                via: "download",
                person: actor.clone().unwrap_or_else(|| "anonymous".to_owned()),
                person_name: actor.unwrap_or_else(|| format!("anonymous client {client}")),
                organisation: row.try_get("organisation")?,
                environment: None,
                version: row.try_get("version")?,
                first_at: time::from_text(&row.try_get::<String, _>("first_at")?)?,
                last_at: time::from_text(&row.try_get::<String, _>("last_at")?)?,
                count: row.try_get("n")?,
            });
        }
        for row in &inventory {
            let at = time::from_text(&row.try_get::<String, _>("reported_at")?)?;
            holders.push(Holder {
                via: "report",
                person: row.try_get("reported_by")?,
                person_name: row.try_get("reported_by_name")?,
                organisation: row.try_get("organisation")?,
                environment: Some(row.try_get("environment")?),
                version: row.try_get("version")?,
                first_at: at,
                last_at: at,
                count: 1,
            });
        }
        holders.sort_by(|a, b| {
            b.last_at
                .cmp(&a.last_at)
                .then_with(|| a.person.cmp(&b.person))
        });
        Ok(holders)
    }

    /// How many environments have reported.
    pub async fn environment_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM environments")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
    }
}
