use chrono::{DateTime, Utc};
use formulary_core::policy::PolicySnapshot;

use crate::database::Database;
use crate::error::StoreError;

impl Database {
    /// Loads everything the policy engine reads, as it stood at `at`: the organisations, their
    /// settings, the entries in force then, the advisories in force and the dependency admissions
    /// (current; each lapses when its approving entry is not in force at `at`).
    pub async fn policy_snapshot(&self, at: DateTime<Utc>) -> Result<PolicySnapshot, StoreError> {
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
        let settings = integrity.settings;
        let entries: Vec<_> = integrity
            .entries
            .into_iter()
            .filter(|stored| {
                stored.entry.created_at <= at
                    && stored
                        .removal
                        .as_ref()
                        .is_none_or(|removal| removal.at > at)
            })
            .map(|stored| stored.entry)
            .collect();
        let advisories = self.advisories_in_force().await?;
        let admissions = self.admissions().await?;
        let mut snapshot = PolicySnapshot::new(organisations, settings, entries, advisories)
            .with_admissions(admissions);
        snapshot.set_advisory_feed(self.advisory_feed().await?);
        snapshot.set_feed_policies(self.feed_policies().await?);
        Ok(snapshot)
    }
}
