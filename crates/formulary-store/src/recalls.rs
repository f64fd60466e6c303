//! Recalls: versions withdrawn while people have them. Opening a recall is idempotent per cause
//! (an advisory, a prohibition entry, or a curator's own key) and component: a changed advisory
//! updates its recall and adds the people newly found. People drop off when a later download or
//! report shows them on a version the recall does not name, or when they say why not.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate, Utc};
use formulary_core::Component;
use serde::Serialize;
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::inventory::Holder;
use crate::time;

/// A recall to open (or update).
#[derive(Debug, Clone)]
pub struct NewRecall {
    /// `advisory`, `prohibition` or `manual`.
    pub cause: String,
    /// What makes it one recall: the advisory id, the entry id, or a curator's key.
    pub cause_key: String,
    /// The advisory, for advisory recalls.
    pub advisory_id: Option<String>,
    /// The component.
    pub component: Component,
    /// The affected versions people have.
    pub versions: Vec<String>,
    /// The version to move to, when one is allowed.
    pub move_to: Option<String>,
    /// Why, for people.
    pub reason: String,
    /// The advisory's severity (`malicious` for MAL- reports).
    pub severity: Option<String>,
    /// Who has an affected version.
    pub holders: Vec<Holder>,
}

/// What opening did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecallChange {
    /// The recall's id.
    pub id: String,
    /// True when the recall is new.
    pub opened: bool,
    /// People (rows) added now.
    pub new_people: usize,
    /// The holders added now (to be told), in the order given.
    #[serde(skip)]
    pub added: Vec<Holder>,
}

/// A recall with its progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecallSummary {
    /// Its id.
    pub id: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// Who opened it (`system:recalls` for automatic ones).
    pub opened_by: String,
    /// `advisory`, `prohibition` or `manual`.
    pub cause: String,
    /// The advisory, if any.
    pub advisory_id: Option<String>,
    /// The component's purl.
    pub component: String,
    /// The affected versions.
    pub versions: Vec<String>,
    /// What to move to.
    pub move_to: Option<String>,
    /// Why.
    pub reason: String,
    /// Severity, when known.
    pub severity: Option<String>,
    /// People told (rows).
    pub told: i64,
    /// People who moved or explained.
    pub resolved: i64,
    /// People still exposed.
    pub exposed: i64,
    /// Set when nobody is exposed any more.
    pub closed_at: Option<DateTime<Utc>>,
    /// When the prohibition behind it was last lifted for some of its people, if ever.
    pub lifted_at: Option<DateTime<Utc>>,
    /// Why (what happened to the prohibition), when it was lifted.
    pub lift_reason: Option<String>,
}

/// One person's part in a recall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecallPerson {
    /// The recall.
    pub recall_id: String,
    /// Who (the ledger's and audit log's name).
    pub person: String,
    /// How they are shown.
    pub person_name: String,
    /// Their organisation (or the view they downloaded through).
    pub organisation: String,
    /// The environment, for reports ("" for downloads).
    pub environment: String,
    /// The affected version they have.
    pub version: String,
    /// `download` or `report`.
    pub via: String,
    /// When they were told.
    pub notified_at: DateTime<Utc>,
    /// When they moved or explained.
    pub resolved_at: Option<DateTime<Utc>>,
    /// `moved`, `removed`, `explained` or `lifted`.
    pub resolution: Option<String>,
    /// Their reason, when they explained; what happened to the prohibition, when lifted.
    pub explanation: Option<String>,
    /// The day until which they stay on the version, when they said; after it they count as
    /// exposed again.
    pub explained_until: Option<NaiveDate>,
}

const SUMMARY_COLUMNS: &str = "r.id, r.opened_at, r.opened_by, r.cause, r.advisory_id, r.ecosystem, r.name, r.versions, r.move_to, r.reason, r.severity, r.closed_at, r.lifted_at, r.lift_reason,
   (SELECT COUNT(*) FROM recall_people p WHERE p.recall_id = r.id) AS told,
   (SELECT COUNT(*) FROM recall_people p WHERE p.recall_id = r.id AND p.resolved_at IS NOT NULL) AS resolved";

impl Database {
    /// Opens a recall, or updates the one of the same cause and component (versions, move-to,
    /// reason) and adds the people not yet on it. Audited.
    pub async fn open_recall(
        &self,
        recall: &NewRecall,
        actor: &str,
    ) -> Result<RecallChange, StoreError> {
        let (recall, actor) = (recall.clone(), actor.to_owned());
        self.transact(move |connection| {
            let (recall, actor) = (recall.clone(), actor.clone());
            Box::pin(async move {
                let now = time::to_text(time::now());
                let versions = serde_json::to_string(&recall.versions)
                    .map_err(|error| StoreError::corrupt("recall versions", error))?;
                let existing = sqlx::query(
                    "SELECT id FROM recalls WHERE cause_key = $1 AND ecosystem = $2 AND name = $3",
                )
                .bind(&recall.cause_key)
                .bind(recall.component.ecosystem().as_str())
                .bind(recall.component.name.as_str())
                .fetch_optional(&mut *connection)
                .await?;
                let (id, opened) = match existing {
                    Some(row) => {
                        let id: String = row.try_get("id")?;
                        sqlx::query("UPDATE recalls SET versions = $1, move_to = $2, reason = $3, severity = $4 WHERE id = $5")
                            .bind(&versions)
                            .bind(recall.move_to.clone())
                            .bind(&recall.reason)
                            .bind(recall.severity.clone())
                            .bind(&id)
                            .execute(&mut *connection)
                            .await?;
                        (id, false)
                    }
                    None => {
                        let id = format!("rc-{}", uuid::Uuid::now_v7().simple());
                        sqlx::query(
                            "INSERT INTO recalls (id, opened_at, opened_by, cause, cause_key, advisory_id, ecosystem, name, versions, move_to, reason, severity)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                        )
                        .bind(&id)
                        .bind(&now)
                        .bind(&actor)
                        .bind(&recall.cause)
                        .bind(&recall.cause_key)
                        .bind(recall.advisory_id.clone())
                        .bind(recall.component.ecosystem().as_str())
                        .bind(recall.component.name.as_str())
                        .bind(&versions)
                        .bind(recall.move_to.clone())
                        .bind(&recall.reason)
                        .bind(recall.severity.clone())
                        .execute(&mut *connection)
                        .await?;
                        (id, true)
                    }
                };
                let mut added = Vec::new();
                for holder in &recall.holders {
                    let inserted = sqlx::query(
                        "INSERT INTO recall_people (recall_id, person, person_name, organisation, environment, version, via, notified_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                         ON CONFLICT (recall_id, person, organisation, environment, version) DO UPDATE
                         SET notified_at = excluded.notified_at, resolved_at = NULL, resolution = NULL, explanation = NULL, explained_until = NULL
                         WHERE recall_people.resolution = 'lifted'",
                    )
                    .bind(&id)
                    .bind(&holder.person)
                    .bind(&holder.person_name)
                    .bind(&holder.organisation)
                    .bind(holder.environment.clone().unwrap_or_default())
                    .bind(&holder.version)
                    .bind(holder.via)
                    .bind(&now)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected();
                    if inserted > 0 {
                        added.push(holder.clone());
                    }
                }
                let new_people = added.len();
                if new_people > 0 {
                    // People added (or covered again after a lift) reopen a closed recall.
                    sqlx::query("UPDATE recalls SET closed_at = NULL WHERE id = $1")
                        .bind(&id)
                        .execute(&mut *connection)
                        .await?;
                }
                if opened || new_people > 0 {
                    let details = serde_json::json!({
                        "component": recall.component.purl(), "cause": recall.cause, "key": recall.cause_key,
                        "versions": recall.versions, "move_to": recall.move_to, "new_people": new_people,
                    });
                    let action = if opened { "recall.open" } else { "recall.extend" };
                    audit::append(connection, &actor, action, &id, &details).await?;
                }
                Ok(RecallChange { id, opened, new_people, added })
            })
        })
        .await
    }

    /// Marks people who have moved: a served download by the same person of a version the
    /// recall does not name, after they were told; or, for environments, a later report that no
    /// longer holds an affected version. Closes recalls nobody is exposed to. Returns how many
    /// people dropped off. Safe to run on several replicas at once.
    pub async fn resolve_recalls(&self) -> Result<usize, StoreError> {
        self.expire_explanations().await?;
        let rows = sqlx::query(
            "SELECT p.recall_id, p.person, p.organisation, p.environment, p.version, p.via, p.notified_at, r.ecosystem, r.name, r.versions
             FROM recall_people p JOIN recalls r ON r.id = p.recall_id WHERE p.resolved_at IS NULL",
        )
        .fetch_all(self.pool())
        .await?;
        let mut resolved = 0;
        let mut touched: HashSet<String> = HashSet::new();
        for row in &rows {
            let recall_id: String = row.try_get("recall_id")?;
            let person: String = row.try_get("person")?;
            let organisation: String = row.try_get("organisation")?;
            let environment: String = row.try_get("environment")?;
            let version: String = row.try_get("version")?;
            let notified_at: String = row.try_get("notified_at")?;
            let (ecosystem, name): (String, String) =
                (row.try_get("ecosystem")?, row.try_get("name")?);
            let affected: Vec<String> =
                serde_json::from_str(&row.try_get::<String, _>("versions")?)
                    .map_err(|error| StoreError::corrupt("recall versions", error))?;
            let resolution = if row.try_get::<String, _>("via")? == "report" {
                let report = sqlx::query(
                    "SELECT e.reported_at, c.version FROM environments e LEFT JOIN environment_components c
                       ON c.environment_id = e.id AND c.ecosystem = $3 AND c.name = $4
                     WHERE e.organisation = $1 AND e.name = $2",
                )
                .bind(&organisation)
                .bind(&environment)
                .bind(&ecosystem)
                .bind(&name)
                .fetch_all(self.pool())
                .await?;
                let later = report
                    .first()
                    .map(|row| row.try_get::<String, _>("reported_at"))
                    .transpose()?
                    .is_some_and(|at| at > notified_at);
                let versions: Vec<Option<String>> = report
                    .iter()
                    .map(|row| row.try_get::<Option<String>, _>("version"))
                    .collect::<Result<_, _>>()?;
                if report.is_empty() {
                    Some("removed")
                } else if later
                    && versions
                        .iter()
                        .flatten()
                        .all(|held| !affected.contains(held))
                {
                    Some(if versions.iter().flatten().next().is_some() {
                        "moved"
                    } else {
                        "removed"
                    })
                } else {
                    None
                }
            } else if person == "anonymous" {
                None
            } else {
                let moved = sqlx::query(
                    "SELECT version FROM downloads WHERE actor = $1 AND ecosystem = $2 AND name = $3 AND outcome = 'served' AND at > $4",
                )
                .bind(&person)
                .bind(&ecosystem)
                .bind(&name)
                .bind(&notified_at)
                .fetch_all(self.pool())
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>("version"))
                .collect::<Result<Vec<_>, _>>()?
                .iter()
                .any(|held| !affected.contains(held));
                moved.then_some("moved")
            };
            if let Some(resolution) = resolution {
                resolved += sqlx::query(
                    "UPDATE recall_people SET resolved_at = $1, resolution = $2
                     WHERE recall_id = $3 AND person = $4 AND organisation = $5 AND environment = $6 AND version = $7 AND resolved_at IS NULL",
                )
                .bind(time::to_text(time::now()))
                .bind(resolution)
                .bind(&recall_id)
                .bind(&person)
                .bind(&organisation)
                .bind(&environment)
                .bind(&version)
                .execute(self.pool())
                .await?
                .rows_affected() as usize;
                touched.insert(recall_id);
            }
        }
        for recall_id in touched {
            sqlx::query(
                "UPDATE recalls SET closed_at = $1 WHERE id = $2 AND closed_at IS NULL
                 AND NOT EXISTS (SELECT 1 FROM recall_people p WHERE p.recall_id = $2 AND p.resolved_at IS NULL)",
            )
            .bind(time::to_text(time::now()))
            .bind(&recall_id)
            .execute(self.pool())
            .await?;
        }
        Ok(resolved)
    }

    /// Explanations whose day has passed no longer count: those people are exposed again, and
    /// their recalls open again.
    async fn expire_explanations(&self) -> Result<(), StoreError> {
        let today = time::now().date_naive().to_string();
        let expired = sqlx::query(
            "UPDATE recall_people SET resolved_at = NULL, resolution = NULL
             WHERE resolution = 'explained' AND explained_until IS NOT NULL AND explained_until < $1",
        )
        .bind(&today)
        .execute(self.pool())
        .await?
        .rows_affected();
        if expired > 0 {
            sqlx::query(
                "UPDATE recalls SET closed_at = NULL WHERE closed_at IS NOT NULL
                 AND EXISTS (SELECT 1 FROM recall_people p WHERE p.recall_id = recalls.id AND p.resolved_at IS NULL)",
            )
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// A person says why they stay on a recalled version, and optionally until when; they drop
    /// off the exposed list (until that day has passed). Audited.
    pub async fn explain_recall(
        &self,
        recall_id: &str,
        person: &str,
        explanation: &str,
        until: Option<NaiveDate>,
    ) -> Result<u64, StoreError> {
        let (recall_id, person, explanation) = (
            recall_id.to_owned(),
            person.to_owned(),
            explanation.trim().chars().take(2000).collect::<String>(),
        );
        self.transact(move |connection| {
            let (recall_id, person, explanation) = (recall_id.clone(), person.clone(), explanation.clone());
            Box::pin(async move {
                let changed = sqlx::query(
                    "UPDATE recall_people SET resolved_at = $1, resolution = 'explained', explanation = $2, explained_until = $3
                     WHERE recall_id = $4 AND person = $5 AND resolved_at IS NULL",
                )
                .bind(time::to_text(time::now()))
                .bind(&explanation)
                .bind(until.map(|day| day.to_string()))
                .bind(&recall_id)
                .bind(&person)
                .execute(&mut *connection)
                .await?
                .rows_affected();
                if changed > 0 {
                    let details = serde_json::json!({ "explanation": explanation, "until": until });
                    audit::append(connection, &person, "recall.explain", &recall_id, &details).await?;
                }
                Ok(changed)
            })
        })
        .await
    }

    /// The open recall of `cause` for `component` whose key starts with `key_prefix`, if any:
    /// its key and the versions it names (a widened prohibition extends it rather than opening
    /// a second one).
    pub async fn open_recall_key(
        &self,
        cause: &str,
        component: &Component,
        key_prefix: &str,
    ) -> Result<Option<(String, Vec<String>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT cause_key, versions FROM recalls
             WHERE cause = $1 AND ecosystem = $2 AND name = $3 AND closed_at IS NULL
             ORDER BY opened_at DESC",
        )
        .bind(cause)
        .bind(component.ecosystem().as_str())
        .bind(component.name.as_str())
        .fetch_all(self.pool())
        .await?;
        for row in &rows {
            let key: String = row.try_get("cause_key")?;
            if key.starts_with(key_prefix) {
                let versions = serde_json::from_str(&row.try_get::<String, _>("versions")?)
                    .map_err(|error| StoreError::corrupt("recall versions", error))?;
                return Ok(Some((key, versions)));
            }
        }
        Ok(None)
    }

    /// The open recalls of `cause` as (key, ecosystem, name): for prohibitions the key is
    /// `ORG:entry-id`, so that the job can look at them again for people found since.
    pub async fn open_recall_keys(
        &self,
        cause: &str,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT cause_key, ecosystem, name FROM recalls WHERE cause = $1 AND closed_at IS NULL ORDER BY opened_at",
        )
        .bind(cause)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("cause_key")?,
                    row.try_get("ecosystem")?,
                    row.try_get("name")?,
                ))
            })
            .collect()
    }

    /// Every recall, newest first, with progress.
    pub async fn recalls(&self) -> Result<Vec<RecallSummary>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM recalls r ORDER BY r.opened_at DESC"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode_summary).collect()
    }

    /// One recall with everyone on it.
    pub async fn recall(
        &self,
        id: &str,
    ) -> Result<Option<(RecallSummary, Vec<RecallPerson>)>, StoreError> {
        let Some(row) = sqlx::query(&format!(
            "SELECT {SUMMARY_COLUMNS} FROM recalls r WHERE r.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        else {
            return Ok(None);
        };
        let summary = decode_summary(&row)?;
        let people = sqlx::query(
            "SELECT recall_id, person, person_name, organisation, environment, version, via, notified_at, resolved_at, resolution, explanation, explained_until
             FROM recall_people WHERE recall_id = $1 ORDER BY resolved_at IS NOT NULL, organisation, person_name, environment",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        Ok(Some((
            summary,
            people.iter().map(decode_person).collect::<Result<_, _>>()?,
        )))
    }

    /// The recalls a person is still exposed to (their in-app notices).
    pub async fn recalls_for(
        &self,
        person: &str,
    ) -> Result<Vec<(RecallSummary, RecallPerson)>, StoreError> {
        let rows = sqlx::query(
            "SELECT recall_id, person, person_name, organisation, environment, version, via, notified_at, resolved_at, resolution, explanation, explained_until
             FROM recall_people WHERE person = $1 AND resolved_at IS NULL ORDER BY notified_at DESC",
        )
        .bind(person)
        .fetch_all(self.pool())
        .await?;
        let mut found = Vec::new();
        for row in &rows {
            let person = decode_person(row)?;
            if let Some((summary, _)) = self.recall(&person.recall_id).await? {
                found.push((summary, person));
            }
        }
        Ok(found)
    }
}

fn decode_summary(row: &sqlx::any::AnyRow) -> Result<RecallSummary, StoreError> {
    let told: i64 = row.try_get("told")?;
    let resolved: i64 = row.try_get("resolved")?;
    Ok(RecallSummary {
        id: row.try_get("id")?,
        opened_at: time::from_text(&row.try_get::<String, _>("opened_at")?)?,
        opened_by: row.try_get("opened_by")?,
        cause: row.try_get("cause")?,
        advisory_id: row.try_get("advisory_id")?,
        component: format!(
            "pkg:{}/{}",
            row.try_get::<String, _>("ecosystem")?,
            row.try_get::<String, _>("name")?
        ),
        versions: serde_json::from_str(&row.try_get::<String, _>("versions")?)
            .map_err(|error| StoreError::corrupt("recall versions", error))?,
        move_to: row.try_get("move_to")?,
        reason: row.try_get("reason")?,
        severity: row.try_get("severity")?,
        told,
        resolved,
        exposed: told - resolved,
        closed_at: time::optional_from_text(row.try_get("closed_at")?)?,
        lifted_at: time::optional_from_text(row.try_get("lifted_at")?)?,
        lift_reason: row.try_get("lift_reason")?,
    })
}

fn decode_person(row: &sqlx::any::AnyRow) -> Result<RecallPerson, StoreError> {
    Ok(RecallPerson {
        recall_id: row.try_get("recall_id")?,
        person: row.try_get("person")?,
        person_name: row.try_get("person_name")?,
        organisation: row.try_get("organisation")?,
        environment: row.try_get("environment")?,
        version: row.try_get("version")?,
        via: row.try_get("via")?,
        notified_at: time::from_text(&row.try_get::<String, _>("notified_at")?)?,
        resolved_at: time::optional_from_text(row.try_get("resolved_at")?)?,
        resolution: row.try_get("resolution")?,
        explanation: row.try_get("explanation")?,
        explained_until: time::day_from_text(row.try_get("explained_until")?)?,
    })
}
