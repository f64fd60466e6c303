use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use formulary_ecosystems::Ecosystem;

use super::admission::Admission;
use crate::advisory::Advisory;
use crate::component::Component;
use crate::entry::Entry;
use crate::organisation::{OrgCode, Organisation};
use crate::settings::EcosystemSettings;

use super::feed::{AdvisoryFeed, FeedPolicy};

/// Whose formulary, at what moment: an organisation's view, now or at a snapshot date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct View {
    /// The organisation.
    pub organisation: OrgCode,
    /// The moment the decision is taken for.
    pub at: DateTime<Utc>,
}

/// Everything the policy engine reads, held in memory and indexed by component. A new snapshot
/// is built and swapped in whole when entries, advisories or settings change.
#[derive(Debug, Clone, Default)]
pub struct PolicySnapshot {
    organisations: HashMap<OrgCode, Organisation>,
    settings: HashMap<(OrgCode, Ecosystem), EcosystemSettings>,
    entries: HashMap<Component, Vec<Arc<Entry>>>,
    advisories: HashMap<Component, Vec<Arc<Advisory>>>,
    /// Components with advisories, by ecosystem and lower-case name (conda lower-cases the
    /// CRAN names it repackages).
    advisory_names: HashMap<(Ecosystem, String), Component>,
    admissions: HashMap<Component, Vec<Arc<Admission>>>,
    feed: Option<AdvisoryFeed>,
    feed_policies: HashMap<OrgCode, FeedPolicy>,
}

impl PolicySnapshot {
    /// Builds a snapshot. Withdrawn advisories are left out.
    pub fn new(
        organisations: impl IntoIterator<Item = Organisation>,
        settings: impl IntoIterator<Item = (OrgCode, Ecosystem, EcosystemSettings)>,
        entries: impl IntoIterator<Item = Entry>,
        advisories: impl IntoIterator<Item = Advisory>,
    ) -> PolicySnapshot {
        let mut snapshot = PolicySnapshot {
            organisations: organisations
                .into_iter()
                .map(|organisation| (organisation.code.clone(), organisation))
                .collect(),
            settings: settings
                .into_iter()
                .map(|(code, ecosystem, settings)| ((code, ecosystem), settings))
                .collect(),
            ..PolicySnapshot::default()
        };
        for entry in entries {
            snapshot
                .entries
                .entry(entry.draft.component.clone())
                .or_default()
                .push(Arc::new(entry));
        }
        for advisory in advisories
            .into_iter()
            .filter(|advisory| !advisory.is_withdrawn())
        {
            let advisory = Arc::new(advisory);
            let mut components: Vec<&Component> = advisory.components().collect();
            components.sort();
            components.dedup();
            for component in components {
                snapshot
                    .advisory_names
                    .entry((
                        component.ecosystem(),
                        component.name.as_str().to_ascii_lowercase(),
                    ))
                    .or_insert_with(|| component.clone());
                snapshot
                    .advisories
                    .entry(component.clone())
                    .or_default()
                    .push(Arc::clone(&advisory));
            }
        }
        snapshot
    }

    /// The same snapshot with these dependency admissions (replacing any it had).
    pub fn with_admissions(mut self, admissions: impl IntoIterator<Item = Admission>) -> Self {
        self.admissions.clear();
        for admission in admissions {
            self.admissions
                .entry(admission.component.clone())
                .or_default()
                .push(Arc::new(admission));
        }
        self
    }

    /// Every dependency admission (all organisations) of a component.
    pub fn admissions_for(&self, component: &Component) -> &[Arc<Admission>] {
        self.admissions.get(component).map_or(&[], Vec::as_slice)
    }

    /// Every dependency admission, for listings.
    pub fn admissions(&self) -> impl Iterator<Item = &Admission> {
        self.admissions.values().flatten().map(Arc::as_ref)
    }

    /// The organisation with this code, if it exists.
    pub fn organisation(&self, code: &OrgCode) -> Option<&Organisation> {
        self.organisations.get(code)
    }

    /// The settings an organisation applies to an ecosystem: the national baseline (the
    /// national settings, else the defaults), tightened by the organisation's own where it has
    /// them. An overlay never loosens the baseline, even one stored before the baseline was
    /// tightened.
    pub fn settings_for(&self, organisation: &OrgCode, ecosystem: Ecosystem) -> EcosystemSettings {
        let national = self
            .settings
            .get(&(OrgCode::national(), ecosystem))
            .cloned()
            .unwrap_or_default();
        if organisation.is_national() {
            return national;
        }
        match self.settings.get(&(organisation.clone(), ecosystem)) {
            Some(own) => own.within(&national),
            None => national,
        }
    }

    /// Every entry (all organisations) about a component.
    pub fn entries_for(&self, component: &Component) -> &[Arc<Entry>] {
        self.entries.get(component).map_or(&[], Vec::as_slice)
    }

    /// Every advisory in force about a component.
    pub fn advisories_for(&self, component: &Component) -> &[Arc<Advisory>] {
        self.advisories.get(component).map_or(&[], Vec::as_slice)
    }

    /// The component of `ecosystem` with advisories whose name is `name`, ignoring case.
    pub fn advisory_component_ignoring_case(
        &self,
        ecosystem: Ecosystem,
        name: &str,
    ) -> Option<Component> {
        self.advisory_names
            .get(&(ecosystem, name.to_ascii_lowercase()))
            .cloned()
    }

    /// The components that have at least one entry, for listings.
    pub fn components_with_entries(&self) -> impl Iterator<Item = &Component> {
        self.entries.keys()
    }

    /// How many advisories the snapshot holds for supported ecosystems (counting each once).
    pub fn advisory_count(&self) -> usize {
        let mut ids: Vec<&str> = self
            .advisories
            .values()
            .flatten()
            .map(|advisory| advisory.id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// Sets the advisory feed's freshness (`None`: no source is configured, the rule is off).
    pub fn set_advisory_feed(&mut self, feed: Option<AdvisoryFeed>) {
        self.feed = feed;
    }

    /// The advisory feed's freshness, if a source is configured.
    pub fn advisory_feed(&self) -> Option<AdvisoryFeed> {
        self.feed
    }

    /// Sets the organisations' stale-feed rules (organisations not listed use the national rule,
    /// else the default).
    pub fn set_feed_policies(&mut self, policies: impl IntoIterator<Item = (OrgCode, FeedPolicy)>) {
        self.feed_policies = policies.into_iter().collect();
    }

    /// The stale-feed rule an organisation applies: its own, else the national one, else the
    /// default.
    pub fn feed_policy_for(&self, organisation: &OrgCode) -> FeedPolicy {
        self.feed_policies
            .get(organisation)
            .or_else(|| self.feed_policies.get(&OrgCode::national()))
            .copied()
            .unwrap_or_default()
    }
}
