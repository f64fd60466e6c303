//! OSV advisories: the record format as published, the checked domain type built from it, and
//! the evaluation of which versions an advisory affects.

mod affected;
mod record;

use chrono::{DateTime, Utc};
use formulary_ecosystems::Ecosystem;
use serde::Serialize;

use crate::component::Component;
use crate::error::CoreError;
use crate::severity::Severity;

pub use affected::{AffectedPackage, AffectedRange, RangeEvent};
pub use record::{parse_timestamp, OsvRecord, RecordFormat, MAX_RECORD_BYTES};

/// An advisory ready for policy: checked, with its severity derived and its version ranges parsed
/// for the ecosystems Formulary supports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Advisory {
    /// The OSV id, e.g. `PYSEC-2023-74`, `GHSA-j8r2-6x86-q33q` or `MAL-2024-1234`.
    pub id: String,
    /// Other ids of the same problem (CVE, GHSA, …).
    pub aliases: Vec<String>,
    /// One line about the problem.
    pub summary: String,
    /// When the record last changed upstream.
    pub modified: DateTime<Utc>,
    /// When the record was first published.
    pub published: Option<DateTime<Utc>>,
    /// Set when the record has been withdrawn: it then affects nothing.
    pub withdrawn: Option<DateTime<Utc>>,
    /// The worst severity its CVSS vectors (or a database's rating) give; `None` when unrated.
    pub severity: Option<Severity>,
    /// The highest CVSS base score found, when there was a vector.
    pub cvss_score: Option<f64>,
    /// True for a malicious-package report (`MAL-` id or alias).
    pub malicious: bool,
    /// The packages of supported ecosystems it affects.
    pub affected: Vec<AffectedPackage>,
    /// Where to read more.
    pub references: Vec<String>,
    /// Parts of the record that could not be used (ranges with unreadable versions), for the
    /// import report.
    pub warnings: Vec<String>,
}

impl Advisory {
    /// Builds an advisory from an OSV record, keeping only packages of supported ecosystems.
    pub fn from_record(record: &OsvRecord) -> Result<Advisory, CoreError> {
        record::to_advisory(record)
    }

    /// True when the advisory has been withdrawn.
    pub fn is_withdrawn(&self) -> bool {
        self.withdrawn.is_some()
    }

    /// True when the advisory affects `version` of `component`. A withdrawn advisory affects
    /// nothing.
    pub fn affects(&self, component: &Component, version: &formulary_ecosystems::Version) -> bool {
        !self.is_withdrawn()
            && self
                .affected
                .iter()
                .any(|package| &package.component == component && package.affects(version))
    }

    /// The components (of supported ecosystems) this advisory names.
    pub fn components(&self) -> impl Iterator<Item = &Component> {
        self.affected.iter().map(|package| &package.component)
    }

    /// The severity policy uses: malicious reports are critical, unrated advisories count as high.
    pub fn effective_severity(&self) -> Severity {
        if self.malicious {
            Severity::Critical
        } else {
            self.severity.unwrap_or(Severity::High)
        }
    }

    /// True when `name` is this advisory's id or one of its aliases.
    pub fn is_known_as(&self, name: &str) -> bool {
        self.id.eq_ignore_ascii_case(name)
            || self
                .aliases
                .iter()
                .any(|alias| alias.eq_ignore_ascii_case(name))
    }

    /// A link to read the advisory.
    pub fn link(&self) -> String {
        format!("https://osv.dev/vulnerability/{}", self.id)
    }

    /// The versions that fix it for `component`, as written in the record.
    pub fn fixed_versions(&self, component: &Component) -> Vec<String> {
        self.affected
            .iter()
            .filter(|package| &package.component == component)
            .flat_map(AffectedPackage::fixed_versions)
            .collect()
    }

    /// The supported ecosystems the advisory concerns.
    pub fn ecosystems(&self) -> Vec<Ecosystem> {
        let mut ecosystems: Vec<Ecosystem> = self.components().map(Component::ecosystem).collect();
        ecosystems.sort();
        ecosystems.dedup();
        ecosystems
    }
}
