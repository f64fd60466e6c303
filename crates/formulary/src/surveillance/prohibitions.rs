//! Recalls opened by prohibitions, and the recall job of `formulary serve`. When a prohibition
//! entry (national or an organisation's) is recorded — through the API, the web pages or
//! `formulary entry add` — and covers versions that people already have (downloaded through
//! the gateway, or reported in an environment), a recall lists them with the version to move
//! to, exactly as for advisories: the holders kept are those whose organisation's view now
//! denies the version because of that entry (so an organisation's exception to a national
//! prohibition is respected).
//!
//! One recall per organisation's prohibition and component while it is open: a new, wider entry
//! of the same formulary about the same component (entries are replaced, not edited) extends
//! the open recall — its versions grow and only the people newly found are told — rather than
//! opening a second one. The job runs on one replica at a time (a [`JobLease`]); it notices new
//! entries from the policy snapshot it follows, so an entry counts only once this replica's
//! snapshot has it; the prohibitions behind open prohibition recalls (of the same formulary and
//! component) are looked at again every minute,
//! so that downloads the ledger wrote late and environments reported since join them (and a
//! prohibition is looked at on every round during its first minute).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use formulary_core::ecosystems::Version;
use formulary_core::policy::{evaluate_version, PolicySnapshot, ReasonCode, View};
use formulary_core::{Entry, OrgCode, Status};
use formulary_server::jobs::JobLease;
use formulary_server::SnapshotHolder;
use formulary_store::{Database, Holder, NewRecall, RecallChange};

use super::lifting;
use super::recalls::{newest_allowed_in, Announcer, RECALL_ACTOR};

/// The recall cause of prohibitions.
pub const CAUSE: &str = "prohibition";

/// How often the entries of open prohibition recalls are looked at again.
const REVISIT: Duration = Duration::from_secs(60);

/// A prohibition this recent is looked at on every round, not once: a download served just
/// before it may reach the ledger (written in batches) a few seconds later.
const GRACE: chrono::Duration = chrono::Duration::seconds(60);

/// Runs the recall job: opens recalls for new prohibitions and marks the people who moved, every
/// `interval`, on the replica that holds `lease`.
pub fn follow(
    database: Database,
    snapshot: Arc<SnapshotHolder>,
    announcer: Announcer,
    interval: Duration,
    lease: JobLease,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut watcher = Watcher::default();
        loop {
            if lease.hold().await {
                watcher
                    .round(&database, &snapshot.current_with_generation(), &announcer)
                    .await;
            } else {
                // Another replica runs the job; when this one takes over, it starts afresh.
                watcher = Watcher::default();
            }
            if !lease.pause(interval).await {
                return;
            }
        }
    })
}

/// What the job has already looked at.
#[derive(Debug, Default)]
struct Watcher {
    /// The snapshot generation last looked at.
    generation: Option<i64>,
    /// Prohibitions already looked at.
    seen: HashSet<String>,
    /// When open recalls were last looked at again.
    revisited: Option<Instant>,
}

impl Watcher {
    async fn round(
        &mut self,
        database: &Database,
        (generation, snapshot): &(i64, Arc<PolicySnapshot>),
        announcer: &Announcer,
    ) {
        if let Err(error) = database.resolve_recalls().await {
            tracing::debug!(%error, "could not update the recalls' progress");
        }
        let mut due: Vec<Arc<Entry>> = Vec::new();
        let now = Utc::now();
        let changed = self.generation != Some(*generation);
        let revisit = self.revisited.is_none_or(|at| at.elapsed() >= REVISIT);
        // Lifted prohibitions first: a change of the formulary, or a new day (an entry may have
        // expired), may leave people of open recalls no longer covered.
        if changed || revisit {
            if let Err(error) = lifting::follow_lifts(database, snapshot, announcer).await {
                tracing::warn!(error = %format!("{error:#}"), "could not look for lifted prohibitions; trying again shortly");
            }
        }
        // Every prohibition in force is looked at when the job starts or takes over (whatever
        // its age, so one recorded while no server ran, or before recalls followed
        // prohibitions, is not missed), then each new one once, and each recent one on every
        // round.
        for entry in prohibitions(snapshot) {
            let new = changed && !self.seen.contains(&entry.id);
            if new || entry.created_at >= now - GRACE {
                due.push(entry);
            }
        }
        if revisit {
            match database.open_recall_keys(CAUSE).await {
                Ok(keys) => {
                    // Every prohibition of the formulary and component of an open recall: the
                    // one that opened it, and those that widened it since (entries are
                    // replaced, so the first may be gone).
                    let open: HashSet<(&str, &str, &str)> = keys
                        .iter()
                        .filter_map(|(key, ecosystem, name)| {
                            let (organisation, _) = key.split_once(':')?;
                            Some((organisation, ecosystem.as_str(), name.as_str()))
                        })
                        .collect();
                    for entry in prohibitions(snapshot) {
                        let draft = &entry.draft;
                        let recalled = open.contains(&(
                            draft.organisation.as_str(),
                            draft.component.ecosystem().as_str(),
                            draft.component.name.as_str(),
                        ));
                        if recalled && !due.iter().any(|other| other.id == entry.id) {
                            due.push(entry);
                        }
                    }
                    self.revisited = Some(Instant::now());
                }
                Err(error) => tracing::warn!(%error, "could not read the open recalls"),
            }
        }
        let mut failed = false;
        for entry in due {
            match after_prohibition(database, snapshot, &entry, announcer).await {
                Ok(_) => {
                    self.seen.insert(entry.id.clone());
                }
                Err(error) => {
                    failed = true;
                    tracing::warn!(entry = %entry.id, error = %format!("{error:#}"), "could not open the recall a prohibition calls for; trying again shortly");
                }
            }
        }
        // A generation is done once every new prohibition in it was looked at.
        if !failed {
            self.generation = Some(*generation);
        }
    }
}

/// Every prohibition entry in the snapshot.
fn prohibitions(snapshot: &PolicySnapshot) -> Vec<Arc<Entry>> {
    snapshot
        .components_with_entries()
        .flat_map(|component| snapshot.entries_for(component))
        .filter(|entry| entry.draft.status == Status::Prohibited)
        .cloned()
        .collect()
}

/// Opens (or extends) the recall one prohibition calls for, if anybody has a version it denies;
/// returns what changed. The people newly found are told, and the webhooks called.
pub async fn after_prohibition(
    database: &Database,
    snapshot: &PolicySnapshot,
    entry: &Entry,
    announcer: &Announcer,
) -> anyhow::Result<Option<RecallChange>> {
    let draft = &entry.draft;
    let component = &draft.component;
    let holders = database.who_has(component, None).await?;
    let releases = database.releases_of(component).await?;
    let now = Utc::now();
    let marker = format!("(entry {}, ", entry.id);
    let mut reason = None;
    // A person who downloaded a version the entry does not cover after this one has moved off
    // it already (the ledger keeps every version a person ever downloaded).
    let moved_on = |holder: &Holder| {
        holder.via == "download"
            && holder.person != "anonymous"
            && holders.iter().any(|later| {
                later.via == "download"
                    && later.person == holder.person
                    && later.organisation == holder.organisation
                    && later.last_at > holder.last_at
                    && Version::parse(component.ecosystem(), &later.version)
                        .is_ok_and(|version| !draft.range.contains(&version))
            })
    };
    let recalled: Vec<Holder> = holders
        .iter()
        .filter(|holder| !moved_on(holder))
        .filter(|holder| {
            let Ok(version) = Version::parse(component.ecosystem(), &holder.version) else {
                return false;
            };
            let Ok(organisation) = holder.organisation.parse::<OrgCode>() else {
                return false;
            };
            if !draft.range.contains(&version) {
                return false;
            }
            let view = View {
                organisation,
                at: now,
            };
            let decision = evaluate_version(snapshot, &view, component, &version, &releases);
            let denial = decision.denials().find(|denial| {
                denial.code == ReasonCode::Prohibited && denial.message.contains(&marker)
            });
            if let (Some(denial), None) = (denial, &reason) {
                reason = Some(denial.message.clone());
            }
            denial.is_some()
        })
        .cloned()
        .collect();
    if recalled.is_empty() {
        return Ok(None);
    }
    let prefix = format!("{}:", draft.organisation);
    let (cause_key, mut versions) =
        match database.open_recall_key(CAUSE, component, &prefix).await? {
            Some((key, versions)) => (key, versions),
            None => (format!("{prefix}{}", entry.id), Vec::new()),
        };
    versions.extend(recalled.iter().map(|holder| holder.version.clone()));
    versions.sort();
    versions.dedup();
    let recall = NewRecall {
        cause: CAUSE.to_owned(),
        cause_key,
        advisory_id: None,
        component: component.clone(),
        versions,
        move_to: newest_allowed_in(snapshot, &draft.organisation, component, &releases),
        reason: reason.unwrap_or_else(|| {
            format!(
                "prohibited by {} (entry {}, versions {}): {}",
                draft.organisation, entry.id, draft.range, draft.reason
            )
        }),
        severity: Some("prohibited".to_owned()),
        holders: recalled,
    };
    let change = database.open_recall(&recall, RECALL_ACTOR).await?;
    if change.opened || change.new_people > 0 {
        tracing::info!(recall = %change.id, component = %component.purl(), entry = %entry.id, new_people = change.new_people, "recall opened or extended by a prohibition");
    }
    announcer.recall_changed(database, &change).await;
    Ok(Some(change))
}
