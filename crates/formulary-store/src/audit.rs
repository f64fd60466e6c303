use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};

use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// The `previous_hash` of the first row.
const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Position in the log, from 1 with no gaps.
    pub seq: i64,
    /// When the change happened.
    pub at: DateTime<Utc>,
    /// Who made it (`user:…`, `token:…`, `cli:…`).
    pub actor: String,
    /// What kind of change (`entry.add`, `organisation.add`, …).
    pub action: String,
    /// What it changed (an entry id, an organisation code, …).
    pub subject: String,
    /// The change's content, as JSON.
    pub details: serde_json::Value,
    /// The previous row's hash.
    pub previous_hash: String,
    /// SHA-256 over this row's content and `previous_hash`.
    pub hash: String,
}

/// The result of checking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerification {
    /// How many rows were checked.
    pub rows: u64,
    /// The hash of the last row: record it elsewhere to detect truncation later.
    pub head: String,
    /// Every problem found, by row.
    pub problems: Vec<String>,
}

impl AuditVerification {
    /// True when no row was edited, removed or reordered.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

fn row_hash(
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    subject: &str,
    details: &str,
    previous_hash: &str,
) -> String {
    // A JSON array keeps field boundaries unambiguous.
    let canonical =
        serde_json::json!([seq, at, actor, action, subject, details, previous_hash]).to_string();
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

/// Appends a row inside the caller's transaction. Two concurrent appenders pick the same `seq`;
/// the primary key turns the second into a conflict, and its transaction is retried whole.
/// Appends a row like [`append`], when the caller has no use for its position.
pub(crate) async fn record(
    connection: &mut AnyConnection,
    actor: &str,
    action: &str,
    subject: &str,
    details: &serde_json::Value,
) -> Result<(), StoreError> {
    append(connection, actor, action, subject, details)
        .await
        .map(|_| ())
}

pub(crate) async fn append(
    connection: &mut AnyConnection,
    actor: &str,
    action: &str,
    subject: &str,
    details: &serde_json::Value,
) -> Result<i64, StoreError> {
    let last = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *connection)
        .await?;
    let (seq, previous_hash) = match last {
        Some(row) => (
            row.try_get::<i64, _>("seq")? + 1,
            row.try_get::<String, _>("hash")?,
        ),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let at = time::to_text(Utc::now());
    let details = details.to_string();
    let hash = row_hash(seq, &at, actor, action, subject, &details, &previous_hash);
    sqlx::query(
        "INSERT INTO audit_log (seq, at, actor, action, subject, details, previous_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(seq)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(details)
    .bind(previous_hash)
    .bind(hash)
    .execute(&mut *connection)
    .await?;
    crate::changes::announce(connection, seq).await?;
    Ok(seq)
}

fn decode(row: &sqlx::any::AnyRow) -> Result<(AuditRecord, String), StoreError> {
    let details_text: String = row.try_get("details")?;
    let record = AuditRecord {
        seq: row.try_get("seq")?,
        at: time::from_text(&row.try_get::<String, _>("at")?)?,
        actor: row.try_get("actor")?,
        action: row.try_get("action")?,
        subject: row.try_get("subject")?,
        details: serde_json::from_str(&details_text)
            .unwrap_or(serde_json::Value::String(details_text.clone())),
        previous_hash: row.try_get("previous_hash")?,
        hash: row.try_get("hash")?,
    };
    Ok((record, details_text))
}

const COLUMNS: &str = "seq, at, actor, action, subject, details, previous_hash, hash";

impl Database {
    /// Records an action that changes no record of its own (an administrator accepting an
    /// upstream document held back, blobs copied to another store): audited like every change.
    pub async fn record_action(
        &self,
        actor: &str,
        action: &str,
        subject: &str,
        details: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let (actor, action, subject, details) = (
            actor.to_owned(),
            action.to_owned(),
            subject.to_owned(),
            details.clone(),
        );
        self.transact(move |connection| {
            let (actor, action, subject, details) = (
                actor.clone(),
                action.clone(),
                subject.clone(),
                details.clone(),
            );
            Box::pin(async move { record(connection, &actor, &action, &subject, &details).await })
        })
        .await
    }

    /// Up to `limit` rows after `after_seq`, oldest first: for paging and export.
    pub async fn audit_page(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2"
        ))
        .bind(after_seq)
        .bind(limit.clamp(1, 10_000))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| decode(row).map(|(record, _)| record))
            .collect()
    }

    /// The rows about one subject (an entry's history, for instance), oldest first.
    pub async fn audit_for_subject(&self, subject: &str) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_log WHERE subject = $1 ORDER BY seq"
        ))
        .bind(subject)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| decode(row).map(|(record, _)| record))
            .collect()
    }

    /// Walks the whole chain and reports every row whose content, link or position is wrong:
    /// an edited row breaks its own hash, a deleted row leaves a gap in `seq` and a broken link.
    pub async fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        const PAGE: i64 = 5_000;
        let mut problems = Vec::new();
        let mut expected_seq = 1;
        let mut previous_hash = GENESIS_HASH.to_owned();
        let mut rows_checked = 0;
        loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2"
            ))
            .bind(expected_seq)
            .bind(PAGE)
            .fetch_all(self.pool())
            .await?;
            let Some(last_row) = rows.last() else { break };
            let last_seq: i64 = last_row.try_get("seq")?;
            for row in &rows {
                let (record, details_text) = decode(row)?;
                rows_checked += 1;
                if record.seq != expected_seq {
                    problems.push(format!(
                        "rows {expected_seq}..{} are missing (deleted)",
                        record.seq - 1
                    ));
                }
                if record.previous_hash != previous_hash {
                    problems.push(format!(
                        "row {} does not link to the row before it",
                        record.seq
                    ));
                }
                let at_text: String = row.try_get("at")?;
                let recomputed = row_hash(
                    record.seq,
                    &at_text,
                    &record.actor,
                    &record.action,
                    &record.subject,
                    &details_text,
                    &record.previous_hash,
                );
                if recomputed != record.hash {
                    problems.push(format!(
                        "row {} ({} on {}) was edited after it was written",
                        record.seq, record.action, record.subject
                    ));
                }
                previous_hash = record.hash;
                expected_seq = record.seq + 1;
            }
            expected_seq = expected_seq.max(last_seq + 1);
        }
        Ok(AuditVerification {
            rows: rows_checked,
            head: previous_hash,
            problems,
        })
    }
}

impl Database {
    /// The sequence number of the newest audit row (0 when empty). Every change of state writes
    /// one, so a replica that sees this number move knows its policy snapshot is stale.
    pub async fn change_counter(&self) -> Result<i64, StoreError> {
        Ok(self.audit_head().await?.0)
    }

    /// True when every audit row after position `after` records `action` (or there is none):
    /// what tells a replica that only advisory imports changed since its snapshot.
    pub async fn only_action_since(&self, after: i64, action: &str) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM audit_log WHERE seq > $1 AND action <> $2")
                .bind(after)
                .bind(action)
                .fetch_one(self.pool())
                .await?;
        Ok(row.try_get::<i64, _>("n")? == 0)
    }

    /// The newest audit row's position and hash (`0` and the genesis hash when empty).
    pub async fn audit_head(&self) -> Result<(i64, String), StoreError> {
        self.ensure_online()?;
        let row = sqlx::query("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => Ok((row.try_get("seq")?, row.try_get("hash")?)),
            None => Ok((0, GENESIS_HASH.to_owned())),
        }
    }

    /// The hashes the chain now has at the given positions (absent positions are left out).
    pub async fn audit_hashes_at(
        &self,
        positions: &[i64],
    ) -> Result<std::collections::BTreeMap<i64, String>, StoreError> {
        let mut hashes = std::collections::BTreeMap::new();
        for chunk in positions.chunks(500) {
            let placeholders: Vec<String> =
                (1..=chunk.len()).map(|index| format!("${index}")).collect();
            let sql = format!(
                "SELECT seq, hash FROM audit_log WHERE seq IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for seq in chunk {
                query = query.bind(*seq);
            }
            for row in query.fetch_all(self.pool()).await? {
                hashes.insert(row.try_get("seq")?, row.try_get("hash")?);
            }
        }
        Ok(hashes)
    }
}
