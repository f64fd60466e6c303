use chrono::{DateTime, Utc};
use formulary_core::advisory::{Advisory, OsvRecord};
use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::policy::{Admission, AdvisoryFeed, FeedPolicy, PolicySnapshot};
use formulary_core::{Component, EcosystemSettings, Entry, OrgCode, Organisation};
use serde::{Deserialize, Serialize};

use crate::database::Database;
use crate::error::StoreError;

/// Everything the policy snapshot is built from, as the store read it at one change counter,
/// in a form the local copy keeps (`local_copy`): the snapshot is built again from it on a
/// start with the database down.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PolicyInputs {
    /// The audit log's head when it was read: the change counter, and its hash.
    pub(crate) counter: i64,
    pub(crate) head: String,
    pub(crate) organisations: Vec<Organisation>,
    pub(crate) settings: Vec<(OrgCode, Ecosystem, EcosystemSettings)>,
    /// The entries in force, each as its audit row records it.
    pub(crate) entries: Vec<EntryRecord>,
    pub(crate) advisories: Vec<OsvRecord>,
    pub(crate) admissions: Vec<AdmissionRecord>,
    pub(crate) feed_current_at: Option<DateTime<Utc>>,
    pub(crate) feed_policies: Vec<(OrgCode, FeedPolicy)>,
}

/// An entry as its `entry.add` audit row records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EntryRecord {
    id: String,
    created_at: DateTime<Utc>,
    details: serde_json::Value,
}

/// A dependency admission, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct AdmissionRecord {
    organisation: OrgCode,
    ecosystem: Ecosystem,
    name: String,
    range: String,
    dependent: String,
    root: String,
    entry_id: String,
}

impl AdmissionRecord {
    fn of(admission: &Admission) -> AdmissionRecord {
        AdmissionRecord {
            organisation: admission.organisation.clone(),
            ecosystem: admission.component.ecosystem(),
            name: admission.component.name.as_str().to_owned(),
            range: admission.range.as_str().to_owned(),
            dependent: admission.dependent.name.as_str().to_owned(),
            root: admission.root.name.as_str().to_owned(),
            entry_id: admission.entry_id.clone(),
        }
    }

    fn admission(&self) -> Result<Admission, StoreError> {
        let corrupt = |why: String| StoreError::corrupt("dependency admission", why);
        Ok(Admission {
            organisation: self.organisation.clone(),
            component: Component::new(self.ecosystem, &self.name)?,
            range: VersionRange::parse(self.ecosystem, &self.range)
                .map_err(|error| corrupt(error.to_string()))?,
            dependent: Component::new(self.ecosystem, &self.dependent)?,
            root: Component::new(self.ecosystem, &self.root)?,
            entry_id: self.entry_id.clone(),
        })
    }
}

impl PolicyInputs {
    /// The snapshot these inputs make.
    pub(crate) fn build(&self) -> Result<PolicySnapshot, StoreError> {
        let entries = self
            .entries
            .iter()
            .map(|record| {
                let draft = crate::integrity::draft_from(&record.details)
                    .map_err(|why| StoreError::corrupt("entry", why))?;
                Ok(Entry {
                    id: record.id.clone(),
                    draft,
                    created_at: record.created_at,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let advisories = self
            .advisories
            .iter()
            .map(|record| Ok(Advisory::from_record(record)?))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let admissions = self
            .admissions
            .iter()
            .map(AdmissionRecord::admission)
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut snapshot = PolicySnapshot::new(
            self.organisations.clone(),
            self.settings.clone(),
            entries,
            advisories,
        )
        .with_admissions(admissions);
        snapshot.set_advisory_feed(
            self.feed_current_at
                .map(|current_at| AdvisoryFeed { current_at }),
        );
        snapshot.set_feed_policies(self.feed_policies.clone());
        Ok(snapshot)
    }
}

impl Database {
    /// Loads everything the policy engine reads, as it stood at `at`: the organisations, their
    /// settings, the entries in force then, the advisories in force and the dependency admissions
    /// (current; each lapses when its approving entry is not in force at `at`). A snapshot of
    /// now is also kept in the local copy, when there is one, with the usable gateway tokens.
    pub async fn policy_snapshot(&self, at: DateTime<Utc>) -> Result<PolicySnapshot, StoreError> {
        self.ensure_online()?;
        let inputs = self.policy_inputs(at).await?;
        let snapshot = inputs.build()?;
        if (Utc::now() - at).num_seconds().abs() < 60 {
            if let Some(copy) = self.local_copy() {
                copy.set_policy(inputs);
                // Every issue and revocation of a token (and every change to an account) moves
                // the audit counter, so the tokens are read again with the policy.
                if let Err(error) = self.copy_tokens().await {
                    tracing::warn!(%error, "could not read the gateway tokens into the local copy; it keeps the ones it had");
                }
            }
        }
        Ok(snapshot)
    }

    async fn policy_inputs(&self, at: DateTime<Utc>) -> Result<PolicyInputs, StoreError> {
        // Read first, so that the counter the copy records is never newer than its content.
        let (counter, head) = self.audit_head().await?;
        let organisations = self.organisations().await?;
        // Entries and settings as the audit trail records them: an edit made around the
        // application is reported and never applied (see `integrity`).
        let integrity = self.policy_integrity().await?;
        for problem in &integrity.problems {
            tracing::error!(
                problem = %problem,
                "the policy records differ from the audit trail; the audited record is applied. Run `formulary audit verify` and investigate"
            );
        }
        let entries = integrity
            .entries
            .into_iter()
            .filter(|stored| {
                stored.entry.created_at <= at
                    && stored
                        .removal
                        .as_ref()
                        .is_none_or(|removal| removal.at > at)
            })
            .map(|stored| EntryRecord {
                details: crate::entries::entry_details(&stored.entry.draft),
                id: stored.entry.id,
                created_at: stored.entry.created_at,
            })
            .collect();
        let advisories = self.advisory_records_in_force().await?;
        let admissions = self
            .admissions()
            .await?
            .iter()
            .map(AdmissionRecord::of)
            .collect();
        Ok(PolicyInputs {
            counter,
            head,
            organisations,
            settings: integrity.settings,
            entries,
            advisories,
            admissions,
            feed_current_at: self.advisory_feed().await?.map(|feed| feed.current_at),
            feed_policies: self.feed_policies().await?,
        })
    }
}
