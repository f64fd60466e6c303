//! An organisation's estate: every component version its people downloaded through its view
//! and its environments reported, with how widely each is held (for `formulary inventory
//! export`, a CycloneDX SBOM of the estate).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use formulary_core::OrgCode;
use serde::Serialize;
use sqlx::Row;

use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// One component version of an estate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EstateItem {
    /// The ecosystem, as stored (`pypi`, `npm`, …).
    pub ecosystem: String,
    /// The component's name.
    pub name: String,
    /// The version held.
    pub version: String,
    /// Reported environments that hold it.
    pub environments: i64,
    /// People (or clients) who downloaded it through the organisation's view.
    pub downloaders: i64,
    /// Served downloads of it through the organisation's view.
    pub downloads: i64,
    /// The last time it was seen (a download or a report).
    pub last_seen: DateTime<Utc>,
}

type Key = (String, String, String);

/// The item of `ecosystem`, `name` and `version`, made on first sight; `at` counts as seen.
fn upsert(
    items: &mut BTreeMap<Key, EstateItem>,
    ecosystem: String,
    name: String,
    version: String,
    at: DateTime<Utc>,
) -> &mut EstateItem {
    let item = items
        .entry((ecosystem.clone(), name.clone(), version.clone()))
        .or_insert_with(|| EstateItem {
            ecosystem,
            name,
            version,
            environments: 0,
            downloaders: 0,
            downloads: 0,
            last_seen: at,
        });
    item.last_seen = item.last_seen.max(at);
    item
}

impl Database {
    /// Every component version `organisation` holds: served downloads through its view (the
    /// ledger) and the components of its reported environments, by ecosystem, name and version.
    pub async fn estate(&self, organisation: &OrgCode) -> Result<Vec<EstateItem>, StoreError> {
        let mut items: BTreeMap<Key, EstateItem> = BTreeMap::new();
        let downloaded = sqlx::query(
            "SELECT ecosystem, name, version, COUNT(DISTINCT COALESCE(actor, client)) AS people, COUNT(*) AS n, MAX(at) AS last_at
             FROM downloads WHERE organisation = $1 AND outcome = 'served' GROUP BY ecosystem, name, version",
        )
        .bind(organisation.as_str())
        .fetch_all(self.pool())
        .await?;
        for row in &downloaded {
            let item = upsert(
                &mut items,
                row.try_get("ecosystem")?,
                row.try_get("name")?,
                row.try_get("version")?,
                time::from_text(&row.try_get::<String, _>("last_at")?)?,
            );
            item.downloaders += row.try_get::<i64, _>("people")?;
            item.downloads += row.try_get::<i64, _>("n")?;
        }
        let reported = sqlx::query(
            "SELECT c.ecosystem, c.name, c.version, COUNT(DISTINCT e.id) AS environments, MAX(e.reported_at) AS last_at
             FROM environment_components c JOIN environments e ON e.id = c.environment_id
             WHERE e.organisation = $1 GROUP BY c.ecosystem, c.name, c.version",
        )
        .bind(organisation.as_str())
        .fetch_all(self.pool())
        .await?;
        for row in &reported {
            let item = upsert(
                &mut items,
                row.try_get("ecosystem")?,
                row.try_get("name")?,
                row.try_get("version")?,
                time::from_text(&row.try_get::<String, _>("last_at")?)?,
            );
            item.environments += row.try_get::<i64, _>("environments")?;
        }
        Ok(items.into_values().collect())
    }
}
