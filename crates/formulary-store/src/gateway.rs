use chrono::{DateTime, Utc};
use formulary_core::{Component, OrgCode};
use serde::Serialize;
use sqlx::Row;

use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// One line of the download ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Download {
    /// The view it was asked through.
    pub organisation: OrgCode,
    /// The component.
    pub component: Component,
    /// The version.
    pub version: String,
    /// The file.
    pub filename: String,
    /// `served` or `refused`.
    pub outcome: String,
    /// The client's address.
    pub client: String,
    /// The client's User-Agent (pip, uv, R …), shortened.
    pub user_agent: String,
    /// The authenticated user or token, when there is one.
    pub actor: Option<String>,
}

impl Database {
    /// Records a download (served or refused) in the ledger.
    pub async fn record_download(&self, download: &Download) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO downloads (id, at, organisation, ecosystem, name, version, filename, outcome, client, user_agent, actor)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(format!("d-{}", uuid::Uuid::now_v7().simple()))
        .bind(time::to_text(Utc::now()))
        .bind(download.organisation.as_str())
        .bind(download.component.ecosystem().as_str())
        .bind(download.component.name.as_str())
        .bind(&download.version)
        .bind(&download.filename)
        .bind(&download.outcome)
        .bind(&download.client)
        .bind(download.user_agent.chars().take(200).collect::<String>())
        .bind(download.actor.clone())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records several ledger lines in one statement (the gateway batches its downloads), all
    /// stamped now.
    pub async fn record_downloads(&self, downloads: &[Download]) -> Result<(), StoreError> {
        const COLUMNS: usize = 11;
        // Well under SQLite's and PostgreSQL's limits on bound parameters.
        for chunk in downloads.chunks(256) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let placeholders: Vec<String> = (1..=COLUMNS)
                        .map(|column| format!("${}", row * COLUMNS + column))
                        .collect();
                    format!("({})", placeholders.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO downloads (id, at, organisation, ecosystem, name, version, filename, outcome, client, user_agent, actor) VALUES {}",
                rows.join(", ")
            );
            let at = time::to_text(Utc::now());
            let mut query = sqlx::query(&sql);
            for download in chunk {
                query = query
                    .bind(format!("d-{}", uuid::Uuid::now_v7().simple()))
                    .bind(at.clone())
                    .bind(download.organisation.as_str().to_owned())
                    .bind(download.component.ecosystem().as_str())
                    .bind(download.component.name.as_str().to_owned())
                    .bind(download.version.clone())
                    .bind(download.filename.clone())
                    .bind(download.outcome.clone())
                    .bind(download.client.clone())
                    .bind(download.user_agent.chars().take(200).collect::<String>())
                    .bind(download.actor.clone());
            }
            query.execute(self.pool()).await?;
        }
        Ok(())
    }

    /// The ledger lines of a component (newest first): "who has version X?".
    pub async fn downloads_of(&self, component: &Component) -> Result<Vec<Download>, StoreError> {
        let rows = sqlx::query(
            "SELECT organisation, version, filename, outcome, client, user_agent, actor FROM downloads WHERE ecosystem = $1 AND name = $2 ORDER BY at DESC",
        )
        .bind(component.ecosystem().as_str())
        .bind(component.name.as_str())
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Download {
                    organisation: row.try_get::<String, _>("organisation")?.parse()?,
                    component: component.clone(),
                    version: row.try_get("version")?,
                    filename: row.try_get("filename")?,
                    outcome: row.try_get("outcome")?,
                    client: row.try_get("client")?,
                    user_agent: row.try_get("user_agent")?,
                    actor: row.try_get("actor")?,
                })
            })
            .collect()
    }

    /// When Formulary first saw any release of a component, if ever (for the cooldown rule of
    /// indexes that give no upload times).
    pub async fn first_seen_of(
        &self,
        component: &Component,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query(
            "SELECT MIN(first_seen) AS first FROM releases WHERE ecosystem = $1 AND name = $2",
        )
        .bind(component.ecosystem().as_str())
        .bind(component.name.as_str())
        .fetch_one(self.pool())
        .await?;
        time::optional_from_text(row.try_get("first")?)
    }
}

/// Downloads refused or served, counted per component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownloadTally {
    /// The component.
    pub component: Component,
    /// `served` or `refused`.
    pub outcome: String,
    /// How many.
    pub count: i64,
}

impl Database {
    /// The ledger counted by component and outcome, largest first.
    pub async fn download_tallies(&self) -> Result<Vec<DownloadTally>, StoreError> {
        let rows = sqlx::query(
            "SELECT ecosystem, name, outcome, COUNT(*) AS n FROM downloads GROUP BY ecosystem, name, outcome ORDER BY n DESC, ecosystem, name",
        )
        .fetch_all(self.pool())
        .await?;
        let mut tallies = Vec::with_capacity(rows.len());
        for row in &rows {
            let Ok(ecosystem) = row.try_get::<String, _>("ecosystem")?.parse() else {
                continue;
            };
            let Ok(component) = Component::new(ecosystem, &row.try_get::<String, _>("name")?)
            else {
                continue;
            };
            tallies.push(DownloadTally {
                component,
                outcome: row.try_get("outcome")?,
                count: row.try_get("n")?,
            });
        }
        Ok(tallies)
    }
}
