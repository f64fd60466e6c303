//! Lifting recalls: when the prohibition behind a recall no longer covers some of its people
//! (the entry was removed, narrowed, expired, or an organisation was given an exception), they
//! leave the recall with the resolution `lifted` and the reason, and a recall nobody is exposed
//! to any more is closed.

use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// One person (or environment) leaving a recall because its prohibition was lifted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lift {
    /// Who (the ledger's and audit log's name).
    pub person: String,
    /// Their organisation (or the view they downloaded through).
    pub organisation: String,
    /// The environment, for reports ("" for downloads).
    pub environment: String,
    /// The version they have.
    pub version: String,
    /// What happened to the prohibition, for them.
    pub reason: String,
}

impl Database {
    /// The open recalls of `cause`, oldest first, as (id, cause key).
    pub async fn open_recall_ids(&self, cause: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, cause_key FROM recalls WHERE cause = $1 AND closed_at IS NULL ORDER BY opened_at",
        )
        .bind(cause)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("cause_key")?)))
            .collect()
    }

    /// Marks the `lifts` still exposed on `recall_id` as `lifted` (with their reasons), sets the
    /// recall's versions to `versions` (those still prohibited) and records when and why
    /// (`reason`); closes the recall when nobody is exposed any more. Audited (`recall.lift`).
    /// Returns the people lifted now (those someone else had not resolved meanwhile).
    pub async fn lift_recall(
        &self,
        recall_id: &str,
        lifts: &[Lift],
        versions: &[String],
        reason: &str,
        actor: &str,
    ) -> Result<Vec<Lift>, StoreError> {
        let (recall_id, lifts, reason, actor) = (
            recall_id.to_owned(),
            lifts.to_vec(),
            reason.to_owned(),
            actor.to_owned(),
        );
        let versions = serde_json::to_string(versions)
            .map_err(|error| StoreError::corrupt("recall versions", error))?;
        self.transact(move |connection| {
            let (recall_id, lifts, reason, actor, versions) = (
                recall_id.clone(),
                lifts.clone(),
                reason.clone(),
                actor.clone(),
                versions.clone(),
            );
            Box::pin(async move {
                let now = time::to_text(time::now());
                let mut lifted = Vec::new();
                for lift in &lifts {
                    let changed = sqlx::query(
                        "UPDATE recall_people SET resolved_at = $1, resolution = 'lifted', explanation = $2
                         WHERE recall_id = $3 AND person = $4 AND organisation = $5 AND environment = $6 AND version = $7 AND resolved_at IS NULL",
                    )
                    .bind(&now)
                    .bind(&lift.reason)
                    .bind(&recall_id)
                    .bind(&lift.person)
                    .bind(&lift.organisation)
                    .bind(&lift.environment)
                    .bind(&lift.version)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected();
                    if changed > 0 {
                        lifted.push(lift.clone());
                    }
                }
                if lifted.is_empty() {
                    return Ok(lifted);
                }
                sqlx::query(
                    "UPDATE recalls SET versions = $1, lifted_at = $2, lift_reason = $3 WHERE id = $4",
                )
                .bind(&versions)
                .bind(&now)
                .bind(&reason)
                .bind(&recall_id)
                .execute(&mut *connection)
                .await?;
                let closed = sqlx::query(
                    "UPDATE recalls SET closed_at = $1 WHERE id = $2 AND closed_at IS NULL
                     AND NOT EXISTS (SELECT 1 FROM recall_people p WHERE p.recall_id = $2 AND p.resolved_at IS NULL)",
                )
                .bind(&now)
                .bind(&recall_id)
                .execute(&mut *connection)
                .await?
                .rows_affected();
                let people: Vec<serde_json::Value> = lifted
                    .iter()
                    .map(|lift| {
                        serde_json::json!({
                            "person": lift.person, "organisation": lift.organisation,
                            "environment": lift.environment, "version": lift.version,
                            "reason": lift.reason,
                        })
                    })
                    .collect();
                let details = serde_json::json!({
                    "reason": reason, "people": people, "closed": closed > 0,
                });
                audit::append(connection, &actor, "recall.lift", &recall_id, &details).await?;
                Ok(lifted)
            })
        })
        .await
    }
}
