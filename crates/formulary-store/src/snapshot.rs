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
        let settings = self.ecosystem_settings().await?;
        let entries = self.entries_in_force_at(at).await?;
        let advisories = self.advisories_in_force().await?;
        let admissions = self.admissions().await?;
        Ok(
            PolicySnapshot::new(organisations, settings, entries, advisories)
                .with_admissions(admissions),
        )
    }
}
