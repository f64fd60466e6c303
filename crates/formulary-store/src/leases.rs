//! Leases: a named job that exactly one replica runs at a time (the advisory sync). A lease is a
//! row with a holder and an expiry; it can be taken only once it has expired, so a replica that
//! dies mid-job holds it no longer than its expiry.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub name: String,
    /// The replica that holds it.
    pub holder: String,
    /// When it expires unless extended.
    pub expires_at: DateTime<Utc>,
}

impl Database {
    /// Takes the lease `name` for `holder` until `until`, if nobody holds it or it has expired at
    /// `now`. Returns true when `holder` now holds it. Two replicas asking at once: one wins.
    pub async fn try_take_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at, taken_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at, taken_at = excluded.taken_at
             WHERE leases.expires_at <= $4",
        )
        .bind(name)
        .bind(holder)
        .bind(time::to_text(until))
        .bind(time::to_text(now))
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(taken == 1)
    }

    /// Moves the expiry of a lease `holder` holds to `until` (to keep it while working, or to
    /// keep others from starting before the next run is due). Returns false when `holder` no
    /// longer holds it.
    pub async fn extend_lease(
        &self,
        name: &str,
        holder: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let extended =
            sqlx::query("UPDATE leases SET expires_at = $1 WHERE name = $2 AND holder = $3")
                .bind(time::to_text(until))
                .bind(name)
                .bind(holder)
                .execute(self.pool())
                .await?
                .rows_affected();
        Ok(extended == 1)
    }

    /// The lease `name`, if it was ever taken.
    pub async fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let row = sqlx::query("SELECT name, holder, expires_at FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| {
            Ok(Lease {
                name: row.try_get("name")?,
                holder: row.try_get("holder")?,
                expires_at: time::from_text(&row.try_get::<String, _>("expires_at")?)?,
            })
        })
        .transpose()
    }
}
