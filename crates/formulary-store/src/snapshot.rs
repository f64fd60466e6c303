use chrono::{DateTime, Utc};
use formulary_core::policy::PolicySnapshot;

use crate::database::Database;
use crate::error::StoreError;

impl Database {
    /// Loads everything the policy engine reads, as it stood at `at`: the organisations, their
    /// settings, the entries in force then, and the advisories in force.
    pub async fn policy_snapshot(&self, at: DateTime<Utc>) -> Result<PolicySnapshot, StoreError> {
        let organisations = self.organisations().await?;
        let settings = self.ecosystem_settings().await?;
        let entries = self.entries_in_force_at(at).await?;
        let advisories = self.advisories_in_force().await?;
        let mut snapshot = PolicySnapshot::new(organisations, settings, entries, advisories);
        snapshot.set_advisory_feed(self.advisory_feed().await?);
        snapshot.set_feed_policies(self.feed_policies().await?);
        Ok(snapshot)
    }
}
