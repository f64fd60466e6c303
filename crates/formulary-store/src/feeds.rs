//! The advisory feeds the server syncs: per OSV source, when it last synced, what changed, where
//! an incremental sync resumes; and per organisation, what its views do when the feed is stale.

use chrono::{DateTime, Utc};
use formulary_core::policy::{AdvisoryFeed, FeedPolicy, OnStaleFeed};
use formulary_core::OrgCode;
use serde::Serialize;
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// One OSV source's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedStatus {
    /// The source (an `all.zip` URL).
    pub source: String,
    /// False for sources no longer configured (kept for history, ignored for freshness).
    pub active: bool,
    /// When the server first had it configured.
    pub first_configured_at: DateTime<Utc>,
    /// When a sync was last tried.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When a sync last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Why the last attempt failed, when it did (cleared by a success).
    pub last_error: Option<String>,
    /// The newest `modified` time seen in the source's `modified_id.csv`.
    pub cursor: Option<DateTime<Utc>>,
    /// `full` (the whole export) or `incremental` (the records `modified_id.csv` names).
    pub last_mode: Option<String>,
    /// Advisories added or updated by the last successful sync.
    pub last_changed: i64,
    /// How long the last sync took, in milliseconds.
    pub last_duration_ms: i64,
    /// Advisories added or updated by this server from this source, in all.
    pub total_changed: i64,
}

/// What a successful sync did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedSuccess {
    /// When the sync started (the data is at least this current).
    pub started_at: DateTime<Utc>,
    /// `full` or `incremental`.
    pub mode: &'static str,
    /// Advisories added or updated.
    pub changed: i64,
    /// The newest `modified` time seen, where the source publishes one.
    pub cursor: Option<DateTime<Utc>>,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
}

impl Database {
    /// Records which sources are configured now: new ones are added, the others marked inactive.
    pub async fn configure_feeds(&self, sources: &[String]) -> Result<(), StoreError> {
        let now = time::to_text(time::now());
        sqlx::query("UPDATE advisory_feeds SET active = 0")
            .execute(self.pool())
            .await?;
        for source in sources {
            sqlx::query(
                "INSERT INTO advisory_feeds (source, active, first_configured_at, last_changed, last_duration_ms, total_changed)
                 VALUES ($1, 1, $2, 0, 0, 0) ON CONFLICT (source) DO UPDATE SET active = 1",
            )
            .bind(source)
            .bind(&now)
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// Records a failed sync of `source`.
    pub async fn feed_failed(
        &self,
        source: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE advisory_feeds SET last_attempt_at = $1, last_error = $2 WHERE source = $3",
        )
        .bind(time::to_text(at))
        .bind(error.chars().take(1000).collect::<String>())
        .bind(source)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a successful sync of `source`.
    pub async fn feed_succeeded(
        &self,
        source: &str,
        success: &FeedSuccess,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE advisory_feeds SET last_attempt_at = $1, last_success_at = $1, last_error = NULL,
               cursor = COALESCE($2, cursor), last_mode = $3, last_changed = $4, last_duration_ms = $5,
               total_changed = total_changed + $4 WHERE source = $6",
        )
        .bind(time::to_text(success.started_at))
        .bind(success.cursor.map(time::to_text))
        .bind(success.mode)
        .bind(success.changed)
        .bind(success.duration_ms)
        .bind(source)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Every source, configured ones first.
    pub async fn advisory_feeds(&self) -> Result<Vec<FeedStatus>, StoreError> {
        let rows = sqlx::query(
            "SELECT source, active, first_configured_at, last_attempt_at, last_success_at, last_error, cursor, last_mode,
               last_changed, last_duration_ms, total_changed FROM advisory_feeds ORDER BY active DESC, source",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(FeedStatus {
                    source: row.try_get("source")?,
                    active: row.try_get::<i64, _>("active")? != 0,
                    first_configured_at: time::from_text(
                        &row.try_get::<String, _>("first_configured_at")?,
                    )?,
                    last_attempt_at: time::optional_from_text(row.try_get("last_attempt_at")?)?,
                    last_success_at: time::optional_from_text(row.try_get("last_success_at")?)?,
                    last_error: row.try_get("last_error")?,
                    cursor: time::optional_from_text(row.try_get("cursor")?)?,
                    last_mode: row.try_get("last_mode")?,
                    last_changed: row.try_get("last_changed")?,
                    last_duration_ms: row.try_get("last_duration_ms")?,
                    total_changed: row.try_get("total_changed")?,
                })
            })
            .collect()
    }

    /// The feed's freshness for the policy: the oldest last success over the configured sources
    /// (a source never synced counts from when it was configured); `None` when none is
    /// configured.
    pub async fn advisory_feed(&self) -> Result<Option<AdvisoryFeed>, StoreError> {
        Ok(feed_of(&self.advisory_feeds().await?))
    }

    /// Sets what an organisation's views do when the advisory feed is stale.
    pub async fn set_feed_policy(
        &self,
        code: &OrgCode,
        policy: FeedPolicy,
        actor: &str,
    ) -> Result<(), StoreError> {
        policy.validate()?;
        self.require_organisation(code).await?;
        let (code, actor) = (code.to_string(), actor.to_owned());
        self.transact(move |connection| {
            let (code, actor) = (code.clone(), actor.clone());
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO advisory_feed_policies (organisation, stale_after_hours, on_stale, updated_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (organisation) DO UPDATE SET stale_after_hours = excluded.stale_after_hours,
                       on_stale = excluded.on_stale, updated_at = excluded.updated_at",
                )
                .bind(&code)
                .bind(i64::from(policy.stale_after_hours))
                .bind(policy.on_stale.as_str())
                .bind(time::to_text(time::now()))
                .execute(&mut *connection)
                .await?;
                let details = serde_json::json!({ "stale_after_hours": policy.stale_after_hours, "on_stale": policy.on_stale });
                audit::append(connection, &actor, "advisory-feed-policy.set", &code, &details).await?;
                Ok(())
            })
        })
        .await
    }

    /// Every organisation's stale-feed rule.
    pub async fn feed_policies(&self) -> Result<Vec<(OrgCode, FeedPolicy)>, StoreError> {
        let rows = sqlx::query(
            "SELECT organisation, stale_after_hours, on_stale FROM advisory_feed_policies ORDER BY organisation",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let corrupt = |why: String| StoreError::corrupt("advisory feed policy", why);
                let code: OrgCode = row
                    .try_get::<String, _>("organisation")?
                    .parse()
                    .map_err(|error: formulary_core::CoreError| corrupt(error.to_string()))?;
                let stale_after_hours = u32::try_from(row.try_get::<i64, _>("stale_after_hours")?)
                    .map_err(|error| corrupt(error.to_string()))?;
                let on_stale: OnStaleFeed = row.try_get::<String, _>("on_stale")?.parse()?;
                Ok((
                    code,
                    FeedPolicy {
                        stale_after_hours,
                        on_stale,
                    },
                ))
            })
            .collect()
    }
}

/// The freshness the policy reads, from the sources' states.
pub fn feed_of(feeds: &[FeedStatus]) -> Option<AdvisoryFeed> {
    feeds
        .iter()
        .filter(|feed| feed.active)
        .map(|feed| feed.last_success_at.unwrap_or(feed.first_configured_at))
        .min()
        .map(|current_at| AdvisoryFeed { current_at })
}
