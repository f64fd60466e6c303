//! Binds the records the policy depends on (entries and ecosystem settings) to the audit trail.
//!
//! Every change the application makes to those tables writes an audit row carrying the record's
//! content in the same transaction. A change made around the application (an `UPDATE` in a
//! database console) therefore leaves the table and its audit rows disagreeing. This module
//! replays the audit rows into the records they describe, compares them with the tables, and
//! reports every difference; the policy snapshot is built from the audited records, so an edit
//! made around the application never takes effect silently, even after a restart.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::{Component, EcosystemSettings, Entry, EntryDraft, OrgCode, Status, Waiver};
use serde::Deserialize;
use sqlx::Row;

use crate::database::Database;
use crate::entries::{entry_details, Removal, StoredEntry};
use crate::error::StoreError;
use crate::time;

/// An entry as its audit rows describe it.
#[derive(Debug, Clone)]
struct AuditedEntry {
    seq: i64,
    stored: Option<StoredEntry>,
    details: serde_json::Value,
    removal_reason: Option<(DateTime<Utc>, String, String)>,
}

/// What `entry.add` rows record (see `entries::entry_details`).
#[derive(Debug, Deserialize)]
struct EntryDetails {
    organisation: OrgCode,
    component: String,
    range: String,
    status: String,
    constraints: Option<String>,
    review_date: Option<NaiveDate>,
    expires: Option<NaiveDate>,
    waives: Vec<Waiver>,
    decided_by: String,
    reason: String,
    mentor: Option<String>,
}

/// What `settings.set` rows record.
#[derive(Debug, Deserialize)]
struct SettingsDetails {
    ecosystem: Ecosystem,
    settings: EcosystemSettings,
}

/// The policy records as the audit trail has them, and every way the tables differ.
#[derive(Debug, Clone, Default)]
pub struct PolicyIntegrity {
    /// Every entry, as the audit trail records it (an entry whose audit row cannot be read is
    /// taken from the table, and reported).
    pub entries: Vec<StoredEntry>,
    /// The settings of every organisation and ecosystem, as last recorded in the audit trail.
    pub settings: Vec<(OrgCode, Ecosystem, EcosystemSettings)>,
    /// One sentence per difference between the tables and the audit trail.
    pub problems: Vec<String>,
}

impl PolicyIntegrity {
    /// True when the tables hold exactly what the audit trail says.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(crate) fn draft_from(details: &serde_json::Value) -> Result<EntryDraft, String> {
    let details = EntryDetails::deserialize(details).map_err(|error| error.to_string())?;
    let component: Component = details
        .component
        .parse()
        .map_err(|error: formulary_core::CoreError| error.to_string())?;
    let range = VersionRange::parse(component.ecosystem(), &details.range)
        .map_err(|error| error.to_string())?;
    let status: Status = details
        .status
        .parse()
        .map_err(|error: formulary_core::CoreError| error.to_string())?;
    Ok(EntryDraft {
        organisation: details.organisation,
        component,
        range,
        status,
        constraints: details.constraints,
        review_date: details.review_date,
        expires: details.expires,
        waives: details.waives,
        decided_by: details.decided_by,
        reason: details.reason,
        mentor: details.mentor,
    })
}

impl Database {
    /// Replays the audit rows of entries and settings and compares them with the tables.
    pub async fn policy_integrity(&self) -> Result<PolicyIntegrity, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, subject, details FROM audit_log WHERE action IN ('entry.add', 'entry.remove', 'settings.set') ORDER BY seq",
        )
        .fetch_all(self.pool())
        .await?;
        let mut problems = Vec::new();
        let mut audited: BTreeMap<String, AuditedEntry> = BTreeMap::new();
        let mut audited_settings: BTreeMap<(String, Ecosystem), (i64, EcosystemSettings)> =
            BTreeMap::new();
        for row in &rows {
            let seq: i64 = row.try_get("seq")?;
            let at = time::from_text(&row.try_get::<String, _>("at")?)?;
            let actor: String = row.try_get("actor")?;
            let action: String = row.try_get("action")?;
            let subject: String = row.try_get("subject")?;
            let details: serde_json::Value =
                serde_json::from_str(&row.try_get::<String, _>("details")?)
                    .unwrap_or(serde_json::Value::Null);
            match action.as_str() {
                "entry.add" => {
                    let stored = match draft_from(&details) {
                        Ok(draft) => Some(StoredEntry {
                            entry: Entry {
                                id: subject.clone(),
                                draft,
                                created_at: at,
                            },
                            created_by: actor,
                            removal: None,
                        }),
                        Err(why) => {
                            problems.push(format!(
                                "audit row {seq} (entry {subject} added) cannot be read: {why}"
                            ));
                            None
                        }
                    };
                    audited.insert(
                        subject,
                        AuditedEntry {
                            seq,
                            stored,
                            details,
                            removal_reason: None,
                        },
                    );
                }
                "entry.remove" => {
                    let reason = details["reason"].as_str().unwrap_or_default().to_owned();
                    match audited.get_mut(&subject) {
                        Some(entry) => entry.removal_reason = Some((at, actor, reason)),
                        None => problems.push(format!(
                            "audit row {seq} removes entry {subject}, which no audit row added"
                        )),
                    }
                }
                _ => match SettingsDetails::deserialize(&details) {
                    Ok(set) => {
                        audited_settings.insert((subject, set.ecosystem), (seq, set.settings));
                    }
                    Err(error) => problems.push(format!(
                        "audit row {seq} (settings of {subject}) cannot be read: {error}"
                    )),
                },
            }
        }

        let table = self
            .list_entries(&crate::entries::EntryFilter {
                include_removed: true,
                ..crate::entries::EntryFilter::default()
            })
            .await?;
        let mut in_table: BTreeMap<String, StoredEntry> = table
            .into_iter()
            .map(|stored| (stored.entry.id.clone(), stored))
            .collect();
        let mut entries = Vec::new();
        for (id, audit) in audited {
            let row = in_table.remove(&id);
            let Some(mut expected) = audit.stored else {
                // The audit row cannot be read: keep what the table says, reported above.
                entries.extend(row);
                continue;
            };
            expected.removal =
                audit
                    .removal_reason
                    .map(|(at, by, reason)| Removal { at, by, reason });
            match row {
                None => problems.push(format!(
                    "entry {id} (audit row {}) was deleted from the entries table; it stays in force as recorded",
                    audit.seq
                )),
                Some(row) => {
                    if entry_details(&row.entry.draft) != audit.details {
                        problems.push(format!(
                            "entry {id} was changed around the application: the table says {} {} for {}, audit row {} says {} {}",
                            row.entry.draft.status,
                            row.entry.draft.range.as_str(),
                            row.entry.draft.component.purl(),
                            audit.seq,
                            expected.entry.draft.status,
                            expected.entry.draft.range.as_str(),
                        ));
                    } else {
                        // Same decision: keep the table's own timestamps.
                        expected.entry.created_at = row.entry.created_at;
                    }
                    match (&row.removal, &expected.removal) {
                        (None, Some(_)) => problems.push(format!(
                            "entry {id} was removed through the application, but the table shows it in force"
                        )),
                        (Some(_), None) => problems.push(format!(
                            "entry {id} is marked removed in the table, but no audit row removed it"
                        )),
                        (Some(found), Some(recorded)) if found.reason != recorded.reason => {
                            problems.push(format!(
                                "entry {id}'s removal reason was changed around the application"
                            ))
                        }
                        (Some(found), Some(_)) => {
                            // Same removal: keep the table's own timestamp.
                            let at = found.at;
                            if let Some(removal) = expected.removal.as_mut() {
                                removal.at = at;
                            }
                        }
                        (None, None) => {}
                    }
                }
            }
            entries.push(expected);
        }
        for (id, row) in in_table {
            problems.push(format!(
                "entry {id} ({} {} for {}) is in the entries table but no audit row added it; it is not applied",
                row.entry.draft.status,
                row.entry.draft.range.as_str(),
                row.entry.draft.component.purl()
            ));
        }

        let mut settings = Vec::new();
        let mut table_settings: BTreeMap<(String, Ecosystem), EcosystemSettings> = self
            .ecosystem_settings()
            .await?
            .into_iter()
            .map(|(code, ecosystem, settings)| ((code.to_string(), ecosystem), settings))
            .collect();
        for ((code, ecosystem), (seq, recorded)) in audited_settings {
            match table_settings.remove(&(code.clone(), ecosystem)) {
                Some(found) if found != recorded => problems.push(format!(
                    "the {ecosystem} settings of {code} were changed around the application (audit row {seq} has the settings in force)"
                )),
                Some(_) => {}
                None => problems.push(format!(
                    "the {ecosystem} settings of {code} (audit row {seq}) were deleted from the table; they stay in force as recorded"
                )),
            }
            match code.parse::<OrgCode>() {
                Ok(organisation) => settings.push((organisation, ecosystem, recorded)),
                Err(error) => {
                    problems.push(format!("audit row {seq} names no organisation: {error}"))
                }
            }
        }
        for ((code, ecosystem), _) in table_settings {
            problems.push(format!(
                "the {ecosystem} settings of {code} are in the table but no audit row set them; they are not applied"
            ));
        }
        Ok(PolicyIntegrity {
            entries,
            settings,
            problems,
        })
    }
}
