use chrono::{DateTime, Utc};
use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::{Component, Entry, EntryDraft, OrgCode, Status, Waiver};
use serde::Serialize;
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// An entry as stored: the decision plus who recorded it and, once removed, who removed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// The decision.
    pub entry: Entry,
    /// Who recorded it.
    pub created_by: String,
    /// Set once the entry has been removed.
    pub removal: Option<Removal>,
}

/// When, by whom and why an entry was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// Which entries to list.
#[derive(Debug, Clone, Default)]
pub struct EntryFilter {
    /// Only this organisation's.
    pub organisation: Option<OrgCode>,
    /// Only this component's.
    pub component: Option<Component>,
    /// Also removed entries.
    pub include_removed: bool,
}

/// Writes a new entry and its audit row on `connection` (inside the caller's transaction).
pub(crate) async fn insert_entry(
    connection: &mut sqlx::AnyConnection,
    entry: &Entry,
    actor: &str,
) -> Result<(), StoreError> {
    let draft = &entry.draft;
    let waives = serde_json::to_string(&draft.waives)
        .map_err(|error| StoreError::corrupt("waiver list", error))?;
    sqlx::query(&format!(
        "INSERT INTO entries ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, NULL, NULL)"
    ))
    .bind(&entry.id)
    .bind(draft.organisation.as_str())
    .bind(draft.component.ecosystem().as_str())
    .bind(draft.component.name.as_str())
    .bind(draft.range.as_str())
    .bind(draft.status.as_str())
    .bind(draft.constraints.clone())
    .bind(draft.review_date.map(|day| day.to_string()))
    .bind(draft.expires.map(|day| day.to_string()))
    .bind(&waives)
    .bind(&draft.decided_by)
    .bind(&draft.reason)
    .bind(draft.mentor.clone())
    .bind(time::to_text(entry.created_at))
    .bind(actor)
    .execute(&mut *connection)
    .await?;
    audit::append(
        connection,
        actor,
        "entry.add",
        &entry.id,
        &entry_details(draft),
    )
    .await?;
    Ok(())
}

/// A new entry for `draft`, with a fresh id, recorded now.
pub(crate) fn new_entry(draft: &EntryDraft) -> Entry {
    Entry {
        id: format!("e-{}", uuid::Uuid::now_v7().simple()),
        draft: draft.clone(),
        created_at: time::now(),
    }
}

const COLUMNS: &str = "id, organisation, ecosystem, name, version_range, status, constraints_text, review_date, expires, waives, decided_by, reason, mentor, created_at, created_by, removed_at, removed_by, removal_reason";

impl Database {
    /// Records a new entry and its audit row in one transaction.
    pub async fn add_entry(&self, draft: &EntryDraft, actor: &str) -> Result<Entry, StoreError> {
        draft.validate()?;
        self.require_organisation(&draft.organisation).await?;
        let entry = new_entry(draft);
        let actor = actor.to_owned();
        let stored = entry.clone();
        self.transact(move |connection| {
            let (entry, actor) = (stored.clone(), actor.clone());
            Box::pin(async move { insert_entry(connection, &entry, &actor).await })
        })
        .await?;
        Ok(entry)
    }

    /// Removes an entry from the formulary. The row stays, marked removed, so that history and
    /// dated views still see it.
    pub async fn remove_entry(
        &self,
        id: &str,
        actor: &str,
        reason: &str,
    ) -> Result<StoredEntry, StoreError> {
        if reason.trim().is_empty() {
            return Err(StoreError::Conflict(
                "say why the entry is removed; the reason is kept in the audit log".to_owned(),
            ));
        }
        let current = self.entry(id).await?;
        if let Some(removal) = &current.removal {
            return Err(StoreError::Conflict(format!(
                "entry {id} was already removed on {} by {}",
                removal.at, removal.by
            )));
        }
        let (id, actor, reason) = (id.to_owned(), actor.to_owned(), reason.trim().to_owned());
        let removed_at = time::now();
        let (id_for_write, actor_for_write, reason_for_write) =
            (id.clone(), actor.clone(), reason.clone());
        self.transact(move |connection| {
            let (id, actor, reason) = (id_for_write.clone(), actor_for_write.clone(), reason_for_write.clone());
            Box::pin(async move {
                let changed = sqlx::query("UPDATE entries SET removed_at = $1, removed_by = $2, removal_reason = $3 WHERE id = $4 AND removed_at IS NULL")
                    .bind(time::to_text(removed_at))
                    .bind(&actor)
                    .bind(&reason)
                    .bind(&id)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected();
                if changed == 0 {
                    return Err(StoreError::Conflict(format!("entry {id} was removed by someone else in the meantime")));
                }
                audit::append(connection, &actor, "entry.remove", &id, &serde_json::json!({ "reason": reason })).await?;
                Ok(())
            })
        })
        .await?;
        Ok(StoredEntry {
            removal: Some(Removal {
                at: removed_at,
                by: actor,
                reason,
            }),
            ..current
        })
    }

    /// One entry by id, removed or not.
    pub async fn entry(&self, id: &str) -> Result<StoredEntry, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM entries WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => decode(&row),
            None => Err(StoreError::NotFound(format!(
                "entry '{}' (list entries with `formulary entry list`)",
                id.escape_debug()
            ))),
        }
    }

    /// Entries matching the filter, newest first.
    pub async fn list_entries(&self, filter: &EntryFilter) -> Result<Vec<StoredEntry>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM entries WHERE 1 = 1");
        let mut binds: Vec<String> = Vec::new();
        if let Some(organisation) = &filter.organisation {
            binds.push(organisation.to_string());
            sql.push_str(&format!(" AND organisation = ${}", binds.len()));
        }
        if let Some(component) = &filter.component {
            binds.push(component.ecosystem().to_string());
            sql.push_str(&format!(" AND ecosystem = ${}", binds.len()));
            binds.push(component.name.to_string());
            sql.push_str(&format!(" AND name = ${}", binds.len()));
        }
        if !filter.include_removed {
            sql.push_str(" AND removed_at IS NULL");
        }
        sql.push_str(" ORDER BY created_at DESC, id");
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(decode).collect()
    }
}

/// The content of an entry as its `entry.add` audit row records it.
pub(crate) fn entry_details(draft: &EntryDraft) -> serde_json::Value {
    serde_json::json!({
        "organisation": draft.organisation,
        "component": draft.component.purl(),
        "range": draft.range.as_str(),
        "status": draft.status.as_str(),
        "constraints": draft.constraints,
        "review_date": draft.review_date,
        "expires": draft.expires,
        "waives": draft.waives,
        "decided_by": draft.decided_by,
        "reason": draft.reason,
        "mentor": draft.mentor,
    })
}

fn decode(row: &sqlx::any::AnyRow) -> Result<StoredEntry, StoreError> {
    let corrupt = |why: String| StoreError::corrupt("entry", why);
    let ecosystem: Ecosystem = row
        .try_get::<String, _>("ecosystem")?
        .parse()
        .map_err(|error: formulary_core::ecosystems::EcosystemError| corrupt(error.to_string()))?;
    let component = Component::new(ecosystem, &row.try_get::<String, _>("name")?)?;
    let range = VersionRange::parse(ecosystem, &row.try_get::<String, _>("version_range")?)
        .map_err(|error| corrupt(error.to_string()))?;
    let status: Status = row.try_get::<String, _>("status")?.parse()?;
    let waives: Vec<Waiver> = serde_json::from_str(&row.try_get::<String, _>("waives")?)
        .map_err(|error| corrupt(error.to_string()))?;
    let organisation: OrgCode = row.try_get::<String, _>("organisation")?.parse()?;
    let removal = match time::optional_from_text(row.try_get("removed_at")?)? {
        Some(at) => Some(Removal {
            at,
            by: row
                .try_get::<Option<String>, _>("removed_by")?
                .unwrap_or_default(),
            reason: row
                .try_get::<Option<String>, _>("removal_reason")?
                .unwrap_or_default(),
        }),
        None => None,
    };
    Ok(StoredEntry {
        entry: Entry {
            id: row.try_get("id")?,
            draft: EntryDraft {
                organisation,
                component,
                range,
                status,
                constraints: row.try_get("constraints_text")?,
                review_date: time::day_from_text(row.try_get("review_date")?)?,
                expires: time::day_from_text(row.try_get("expires")?)?,
                waives,
                decided_by: row.try_get("decided_by")?,
                reason: row.try_get("reason")?,
                mentor: row.try_get("mentor")?,
            },
            created_at: time::from_text(&row.try_get::<String, _>("created_at")?)?,
        },
        created_by: row.try_get("created_by")?,
        removal,
    })
}
