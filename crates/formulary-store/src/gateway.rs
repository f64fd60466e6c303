use chrono::{DateTime, Utc};
use formulary_core::{Component, OrgCode};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// One line of the download ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// A ledger line as the download made it: its id and time are given once, when the download
/// happens, so that writing it again (a retried batch, a journal replayed after a crash) never
/// records it twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerLine {
    /// `d-` and a UUID v7: unique, and in time order.
    pub id: String,
    /// When the download happened.
    pub at: DateTime<Utc>,
    /// What was downloaded, by whom.
    pub download: Download,
}

impl LedgerLine {
    /// Gives a download its id and time, now.
    pub fn new(download: Download) -> LedgerLine {
        LedgerLine {
            id: format!("d-{}", uuid::Uuid::now_v7().simple()),
            at: Utc::now(),
            download,
        }
    }
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

    /// Records several ledger lines, all stamped now (a batch of downloads made just now).
    pub async fn record_downloads(&self, downloads: &[Download]) -> Result<(), StoreError> {
        let lines: Vec<LedgerLine> = downloads.iter().cloned().map(LedgerLine::new).collect();
        self.record_ledger_lines(&lines).await.map(|_| ())
    }

    /// Records ledger lines with the ids and times they were given, a few dozen per statement.
    /// A line whose id is already recorded is skipped, so a batch written twice (a retry after
    /// a lost answer, a journal replayed after a crash) leaves one row per download. Returns how
    /// many rows were new.
    pub async fn record_ledger_lines(&self, lines: &[LedgerLine]) -> Result<u64, StoreError> {
        // Before the schema is brought up to date, nothing is written (the journal keeps it).
        self.ensure_online()?;
        const COLUMNS: usize = 11;
        let mut inserted = 0;
        // SQLite finds each bound parameter's name by walking the statement's list of names, so
        // binding costs grow with the square of the parameters in one statement: at 256 rows
        // (2,816 parameters) that walk took a quarter of the CPU of serving small cached files.
        // 32 rows keep that walk short and still write dozens of rows per round trip.
        const ROWS_PER_STATEMENT: usize = 32;
        // On SQLite, `$N` is a named parameter and every bind looks its name up (the walk
        // above); anonymous `?` parameters have no names to walk and bind in order.
        let sqlite = self.is_sqlite();
        for chunk in lines.chunks(ROWS_PER_STATEMENT) {
            let rows: Vec<String> = (0..chunk.len())
                .map(|row| {
                    let placeholders: Vec<String> = (1..=COLUMNS)
                        .map(|column| {
                            if sqlite {
                                "?".to_owned()
                            } else {
                                format!("${}", row * COLUMNS + column)
                            }
                        })
                        .collect();
                    format!("({})", placeholders.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO downloads (id, at, organisation, ecosystem, name, version, filename, outcome, client, user_agent, actor) VALUES {}
                 ON CONFLICT (id) DO NOTHING",
                rows.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for line in chunk {
                let download = &line.download;
                query = query
                    .bind(line.id.clone())
                    .bind(time::to_text(line.at))
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
            inserted += query.execute(self.pool()).await?.rows_affected();
        }
        Ok(inserted)
    }

    /// How many ledger lines are recorded in all.
    pub async fn download_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM downloads")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get("n")?)
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
