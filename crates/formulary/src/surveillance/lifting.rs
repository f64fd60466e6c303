//! Recalls follow their prohibitions: when the prohibition behind an open recall is lifted for
//! some of its people — the entry removed, replaced by a narrower one, expired, or the person's
//! organisation given an exception — those people leave the recall (resolution `lifted`, with
//! what happened), are told through the notification mechanism (in the app, and by email where
//! they want it), and a recall nobody is exposed to any more is closed. The webhooks receive the
//! recall again, so a service-management tool sees it lifted.
//!
//! A person is still covered while their organisation's view denies their version because of a
//! prohibition of the recall's formulary (the same test that put them on the recall), so every
//! way of lifting is noticed the same way; the reason names the entry and what became of it.

use chrono::{NaiveDate, Utc};
use formulary_core::ecosystems::Version;
use formulary_core::policy::{evaluate_version, PolicySnapshot, ReasonCode, View};
use formulary_core::{Component, Entry, OrgCode, Status};
use formulary_store::{Database, EntryFilter, Lift, NewNotification, RecallSummary, StoredEntry};

use super::prohibitions::CAUSE;
use super::recalls::{announce, Announcer, RECALL_ACTOR};

/// Looks at every open prohibition recall and lifts it for the people its formulary's
/// prohibitions no longer cover; returns how many people were lifted.
pub async fn follow_lifts(
    database: &Database,
    snapshot: &PolicySnapshot,
    announcer: &Announcer,
) -> anyhow::Result<usize> {
    let mut lifted = 0;
    for (id, key) in database.open_recall_ids(CAUSE).await? {
        let Some((organisation, _)) = key.split_once(':') else {
            continue;
        };
        let Ok(formulary) = organisation.parse::<OrgCode>() else {
            continue;
        };
        let Some((recall, people)) = database.recall(&id).await? else {
            continue;
        };
        let Ok(component) = recall.component.parse::<Component>() else {
            continue;
        };
        let releases = database.releases_of(&component).await?;
        let in_force = prohibitions_of(snapshot, &formulary, &component);
        let now = Utc::now();
        let still_covered = |holder_organisation: &str, version: &Version| {
            let Ok(organisation) = holder_organisation.parse::<OrgCode>() else {
                return true;
            };
            let view = View {
                organisation,
                at: now,
            };
            evaluate_version(snapshot, &view, &component, version, &releases)
                .denials()
                .any(|denial| {
                    denial.code == ReasonCode::Prohibited
                        && in_force
                            .iter()
                            .any(|entry| denial.message.contains(&format!("(entry {}, ", entry.id)))
                })
        };
        let mut history: Option<Vec<StoredEntry>> = None;
        let mut lifts = Vec::new();
        for person in people.iter().filter(|person| person.resolved_at.is_none()) {
            let Ok(version) = Version::parse(component.ecosystem(), &person.version) else {
                continue;
            };
            if still_covered(&person.organisation, &version) {
                continue;
            }
            if history.is_none() {
                history = Some(
                    database
                        .list_entries(&EntryFilter {
                            organisation: Some(formulary.clone()),
                            component: Some(component.clone()),
                            include_removed: true,
                        })
                        .await?,
                );
            }
            let reason = lift_reason(
                history.as_deref().unwrap_or_default(),
                &formulary,
                &person.organisation,
                &version,
                now.date_naive(),
            );
            lifts.push(Lift {
                person: person.person.clone(),
                organisation: person.organisation.clone(),
                environment: person.environment.clone(),
                version: person.version.clone(),
                reason,
            });
        }
        if lifts.is_empty() {
            continue;
        }
        // The versions still prohibited by the formulary stay named on the recall.
        let versions: Vec<String> = recall
            .versions
            .iter()
            .filter(|version| {
                Version::parse(component.ecosystem(), version).is_ok_and(|version| {
                    in_force
                        .iter()
                        .any(|entry| entry.draft.range.contains(&version))
                })
            })
            .cloned()
            .collect();
        let mut reasons: Vec<&str> = lifts.iter().map(|lift| lift.reason.as_str()).collect();
        reasons.sort_unstable();
        reasons.dedup();
        let reason = reasons.join("; ");
        let done = database
            .lift_recall(&id, &lifts, &versions, &reason, RECALL_ACTOR)
            .await?;
        if done.is_empty() {
            continue;
        }
        tracing::info!(recall = %id, component = %recall.component, lifted = done.len(), %reason, "a prohibition was lifted; its recall follows");
        tell_lifted(database, announcer, &recall, &done).await;
        announce(database, &announcer.webhooks, &id).await;
        lifted += done.len();
    }
    Ok(lifted)
}

/// The prohibitions of `formulary` about `component` in the snapshot (in force or not: the
/// policy decides whether each still applies).
fn prohibitions_of<'a>(
    snapshot: &'a PolicySnapshot,
    formulary: &OrgCode,
    component: &Component,
) -> Vec<&'a Entry> {
    snapshot
        .entries_for(component)
        .iter()
        .map(AsRef::as_ref)
        .filter(|entry: &&Entry| {
            entry.draft.status == Status::Prohibited && &entry.draft.organisation == formulary
        })
        .collect()
}

/// How a formulary is named to people.
fn formulary_name(formulary: &OrgCode) -> String {
    if *formulary == OrgCode::national() {
        "the national formulary".to_owned()
    } else {
        format!("{formulary}'s formulary")
    }
}

/// Why the prohibitions of `formulary` no longer cover `version` for a holder in
/// `holder_organisation`: the newest entry of the formulary that covered the version and what
/// became of it (removed, expired), or that the organisation has an exception, or that the
/// formulary's prohibitions now cover other versions only (narrowed).
pub fn lift_reason(
    history: &[StoredEntry],
    formulary: &OrgCode,
    holder_organisation: &str,
    version: &Version,
    today: NaiveDate,
) -> String {
    let name = formulary_name(formulary);
    let prohibitions = || {
        history
            .iter()
            .filter(|stored| stored.entry.draft.status == Status::Prohibited)
    };
    let covering = prohibitions()
        .filter(|stored| stored.entry.draft.range.contains(version))
        .max_by_key(|stored| stored.entry.created_at);
    let Some(stored) = covering else {
        return format!("no prohibition in {name} covers {version} any more");
    };
    let entry = &stored.entry;
    let range = &entry.draft.range;
    if let Some(removal) = &stored.removal {
        let remaining: Vec<String> = prohibitions()
            .filter(|other| other.removal.is_none() && other.entry.is_in_force_on(today))
            .map(|other| other.entry.draft.range.to_string())
            .collect();
        let narrowed = if remaining.is_empty() {
            String::new()
        } else {
            format!(
                " ({name} now prohibits versions {} only)",
                remaining.join(", ")
            )
        };
        return format!(
            "the prohibition of versions {range} in {name} (entry {}) was removed by {}: {}{narrowed}",
            entry.id,
            removal.by,
            removal.reason.trim_end_matches('.'),
        );
    }
    if !entry.is_in_force_on(today) {
        if let Some(expires) = entry.draft.expires {
            return format!(
                "the prohibition of versions {range} in {name} (entry {}) expired on {expires}",
                entry.id
            );
        }
    }
    format!(
        "{holder_organisation} now has an exception to the prohibition of versions {range} in {name} (entry {})",
        entry.id
    )
}

/// Tells each person who left the recall that it is lifted for them, and why.
async fn tell_lifted(
    database: &Database,
    announcer: &Announcer,
    recall: &RecallSummary,
    lifted: &[Lift],
) {
    let link = announcer
        .public_url
        .join(&format!("recalls/{}", recall.id))
        .map_or_else(|_| format!("/recalls/{}", recall.id), String::from);
    let mut holdings: std::collections::BTreeMap<&str, Vec<&Lift>> = Default::default();
    for lift in lifted {
        if let Some(username) = lift.person.strip_prefix("user:") {
            holdings.entry(username).or_default().push(lift);
        }
    }
    let mut notes = Vec::new();
    for (username, held) in holdings {
        let user = match database.user_by_username(username).await {
            Ok(Some((user, _))) => user,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, "could not find whom to tell of a lifted recall");
                continue;
            }
        };
        notes.push(lifted_notice(recall, &user.id, &held, &link));
    }
    if notes.is_empty() {
        return;
    }
    if let Err(error) = database.notify(&notes).await {
        tracing::warn!(%error, recall = %recall.id, "could not record the notices of a lifted recall");
    }
}

/// One person's notice that a recall no longer applies to them.
pub fn lifted_notice(
    recall: &RecallSummary,
    user_id: &str,
    held: &[&Lift],
    link: &str,
) -> NewNotification {
    let mut versions: Vec<&str> = held.iter().map(|lift| lift.version.as_str()).collect();
    versions.sort_unstable();
    versions.dedup();
    let mut reasons: Vec<&str> = held.iter().map(|lift| lift.reason.as_str()).collect();
    reasons.sort_unstable();
    reasons.dedup();
    NewNotification {
        user_id: user_id.to_owned(),
        kind: "recall".to_owned(),
        subject: format!(
            "Recall lifted: you need not move off {} {}",
            recall.component,
            versions.join(", ")
        ),
        body: format!(
            "The recall of {} {} no longer applies to you: {}. Nothing more is asked of you for this recall; whether the gateway serves the version again depends on the rest of your formulary (`formulary why` says). The recall page keeps the record.",
            recall.component,
            versions.join(", "),
            reasons.join("; "),
        ),
        link: link.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone as _};
    use formulary_core::ecosystems::{Ecosystem, VersionRange};
    use formulary_core::EntryDraft;
    use formulary_store::Removal;

    use super::*;

    /// A prohibition recorded `minute` minutes into 2026.
    fn stored(
        id: &str,
        minute: i64,
        range: &str,
        expires: Option<NaiveDate>,
        removed: bool,
    ) -> StoredEntry {
        let created_at =
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minute);
        StoredEntry {
            entry: Entry {
                id: id.to_owned(),
                draft: EntryDraft {
                    organisation: OrgCode::national(),
                    component: Component::new(Ecosystem::Pypi, "requests").unwrap(),
                    range: VersionRange::parse(Ecosystem::Pypi, range).unwrap(),
                    status: Status::Prohibited,
                    constraints: None,
                    review_date: None,
                    expires,
                    waives: Vec::new(),
                    decided_by: "curator".to_owned(),
                    reason: "CVE".to_owned(),
                    mentor: None,
                },
                created_at,
            },
            created_by: "curator".to_owned(),
            removal: removed.then(|| Removal {
                at: created_at,
                by: "cli:curator".to_owned(),
                reason: "the advisory was withdrawn.".to_owned(),
            }),
        }
    }

    fn version(text: &str) -> Version {
        Version::parse(Ecosystem::Pypi, text).unwrap()
    }

    const TODAY: NaiveDate = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();

    #[test]
    fn a_removed_prohibition_is_named_with_who_removed_it_and_what_remains() {
        let history = [
            stored("e-wide", 1, "<2.32", None, true),
            stored("e-narrow", 2, "<2.20", None, false),
        ];
        let reason = lift_reason(
            &history,
            &OrgCode::national(),
            "NATIONAL",
            &version("2.31.0"),
            TODAY,
        );
        assert_eq!(
            reason,
            "the prohibition of versions <2.32 in the national formulary (entry e-wide) was removed by cli:curator: the advisory was withdrawn (the national formulary now prohibits versions <2.20 only)"
        );
    }

    #[test]
    fn an_expired_prohibition_says_when() {
        let expires = NaiveDate::from_ymd_opt(2026, 5, 1);
        let history = [stored("e-1", 1, "<2.20", expires, false)];
        let reason = lift_reason(
            &history,
            &OrgCode::national(),
            "NATIONAL",
            &version("2.19.1"),
            TODAY,
        );
        assert_eq!(
            reason,
            "the prohibition of versions <2.20 in the national formulary (entry e-1) expired on 2026-05-01"
        );
    }

    #[test]
    fn a_prohibition_still_in_force_means_an_exception() {
        let history = [stored("e-1", 1, "<2.20", None, false)];
        let reason = lift_reason(
            &history,
            &OrgCode::national(),
            "RJ1",
            &version("2.19.1"),
            TODAY,
        );
        assert!(reason.starts_with("RJ1 now has an exception"), "{reason}");
    }

    #[test]
    fn no_covering_prohibition_means_narrowed() {
        let history = [stored("e-1", 1, "<2.20", None, false)];
        let reason = lift_reason(
            &history,
            &OrgCode::national(),
            "NATIONAL",
            &version("2.31.0"),
            TODAY,
        );
        assert_eq!(
            reason,
            "no prohibition in the national formulary covers 2.31.0 any more"
        );
    }
}
