use formulary_ecosystems::{Ecosystem, Version};
use serde::Serialize;

use super::record::OsvRange;
use crate::component::Component;

/// One event of an OSV range, with its version parsed by the ecosystem's rules.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RangeEvent {
    /// Versions from here on are affected. `None` stands for OSV's `"0"`: below every version.
    Introduced(Option<Version>),
    /// Versions from here on are not affected.
    Fixed(Version),
    /// Versions after this one are not affected.
    LastAffected(Version),
}

impl RangeEvent {
    fn version(&self) -> Option<&Version> {
        match self {
            RangeEvent::Introduced(version) => version.as_ref(),
            RangeEvent::Fixed(version) | RangeEvent::LastAffected(version) => Some(version),
        }
    }
}

/// An `ECOSYSTEM` or `SEMVER` range, ready to evaluate. `GIT` ranges describe commits, not
/// releases, and are not used for gating.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AffectedRange {
    events: Vec<RangeEvent>,
    limits: Vec<Version>,
}

impl AffectedRange {
    /// Parses a record's range. `Ok(None)` for ranges that do not apply to releases (GIT);
    /// `Err` with the reason when a version cannot be read, since such a range cannot be
    /// evaluated exactly.
    pub(super) fn from_record(
        ecosystem: Ecosystem,
        range: &OsvRange,
    ) -> Result<Option<AffectedRange>, String> {
        if !matches!(range.kind.as_str(), "ECOSYSTEM" | "SEMVER") {
            return Ok(None);
        }
        let parse = |text: &str| Version::parse(ecosystem, text).map_err(|error| error.to_string());
        let mut events = Vec::new();
        let mut limits = Vec::new();
        for event in &range.events {
            match (
                &event.introduced,
                &event.fixed,
                &event.last_affected,
                &event.limit,
            ) {
                (Some(introduced), None, None, None) if introduced.trim() == "0" => {
                    events.push(RangeEvent::Introduced(None));
                }
                (Some(introduced), None, None, None) => {
                    events.push(RangeEvent::Introduced(Some(parse(introduced)?)))
                }
                (None, Some(fixed), None, None) => events.push(RangeEvent::Fixed(parse(fixed)?)),
                (None, None, Some(last), None) => {
                    events.push(RangeEvent::LastAffected(parse(last)?))
                }
                (None, None, None, Some(limit)) if limit.trim() == "*" => {}
                (None, None, None, Some(limit)) => limits.push(parse(limit)?),
                _ => {
                    return Err(
                        "an event must have exactly one of introduced, fixed, last_affected, limit"
                            .to_owned(),
                    )
                }
            }
        }
        // OSV evaluates events in version order; "introduced: 0" sorts below every version.
        // The sort is stable, so events at equal versions keep the record's order.
        events.sort_by(|left, right| match (left.version(), right.version()) {
            (None, None) => std::cmp::Ordering::Equal,
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (Some(left), Some(right)) => left.cmp(right),
        });
        Ok(Some(AffectedRange { events, limits }))
    }

    /// True when `version` lies in the range, by the OSV specification's algorithm.
    pub fn contains(&self, version: &Version) -> bool {
        if !self.limits.is_empty() && !self.limits.iter().any(|limit| version < limit) {
            return false;
        }
        let mut affected = false;
        for event in &self.events {
            match event {
                RangeEvent::Introduced(None) => affected = true,
                RangeEvent::Introduced(Some(introduced)) if version >= introduced => {
                    affected = true
                }
                RangeEvent::Fixed(fixed) if version >= fixed => affected = false,
                RangeEvent::LastAffected(last) if version > last => affected = false,
                _ => {}
            }
        }
        affected
    }

    /// The versions that fix the range.
    pub fn fixed_versions(&self) -> impl Iterator<Item = String> + '_ {
        self.events.iter().filter_map(|event| match event {
            RangeEvent::Fixed(version) => Some(version.to_string()),
            _ => None,
        })
    }
}

/// One package an advisory affects, with its explicit versions and its ranges.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AffectedPackage {
    /// The affected component.
    pub component: Component,
    /// Listed versions that parse, sorted for binary search.
    parsed_versions: Vec<Version>,
    /// Listed versions that do not parse, matched by text.
    unparsed_versions: Vec<String>,
    ranges: Vec<AffectedRange>,
}

impl AffectedPackage {
    pub(super) fn new(
        component: Component,
        versions: &[String],
        ranges: Vec<AffectedRange>,
    ) -> AffectedPackage {
        let ecosystem = component.ecosystem();
        let mut parsed_versions = Vec::with_capacity(versions.len());
        let mut unparsed_versions = Vec::new();
        for text in versions {
            match Version::parse(ecosystem, text) {
                Ok(version) => parsed_versions.push(version),
                Err(_) => unparsed_versions.push(text.clone()),
            }
        }
        // A listed version that a range already covers adds nothing; the PyPA database lists
        // most of its range members, so this keeps thousands of versions out of memory.
        parsed_versions.retain(|version| !ranges.iter().any(|range| range.contains(version)));
        parsed_versions.sort();
        parsed_versions.dedup();
        AffectedPackage {
            component,
            parsed_versions,
            unparsed_versions,
            ranges,
        }
    }

    /// True when `version` is listed in `versions` (by the ecosystem's equality: `1.0` equals
    /// `1.0.0` in PEP 440; listed versions that do not parse are matched by text) or lies in any
    /// range.
    pub fn affects(&self, version: &Version) -> bool {
        self.parsed_versions.binary_search(version).is_ok()
            || self.ranges.iter().any(|range| range.contains(version))
            || (!self.unparsed_versions.is_empty()
                && self.unparsed_versions.contains(&version.to_string()))
    }

    /// The fixing versions of every range.
    pub fn fixed_versions(&self) -> Vec<String> {
        self.ranges
            .iter()
            .flat_map(AffectedRange::fixed_versions)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::record::OsvEvent;
    use super::*;

    fn event(kind: &str, version: &str) -> OsvEvent {
        let value = Some(version.to_owned());
        OsvEvent {
            introduced: (kind == "introduced").then(|| value.clone()).flatten(),
            fixed: (kind == "fixed").then(|| value.clone()).flatten(),
            last_affected: (kind == "last_affected").then(|| value.clone()).flatten(),
            limit: (kind == "limit").then(|| value.clone()).flatten(),
        }
    }

    fn range(ecosystem: Ecosystem, events: &[(&str, &str)]) -> AffectedRange {
        let record = OsvRange {
            kind: "ECOSYSTEM".to_owned(),
            events: events
                .iter()
                .map(|(kind, version)| event(kind, version))
                .collect(),
        };
        AffectedRange::from_record(ecosystem, &record)
            .unwrap()
            .unwrap()
    }

    fn v(ecosystem: Ecosystem, text: &str) -> Version {
        Version::parse(ecosystem, text).unwrap()
    }

    #[test]
    fn introduced_and_fixed_bound_the_range() {
        let r = range(Ecosystem::Pypi, &[("introduced", "0"), ("fixed", "2.20.0")]);
        assert!(r.contains(&v(Ecosystem::Pypi, "2.19.1")));
        assert!(!r.contains(&v(Ecosystem::Pypi, "2.20.0")));
        assert!(r.contains(&v(Ecosystem::Pypi, "0.0.1")));
    }

    #[test]
    fn several_intervals_in_one_range_are_evaluated_in_version_order() {
        // Written out of order on purpose: OSV sorts events before evaluating them.
        let r = range(
            Ecosystem::Pypi,
            &[
                ("introduced", "2.0"),
                ("fixed", "1.5"),
                ("introduced", "1.0"),
                ("last_affected", "2.3"),
            ],
        );
        assert!(!r.contains(&v(Ecosystem::Pypi, "0.9")));
        assert!(r.contains(&v(Ecosystem::Pypi, "1.2")));
        assert!(!r.contains(&v(Ecosystem::Pypi, "1.7")));
        assert!(r.contains(&v(Ecosystem::Pypi, "2.3")));
        assert!(!r.contains(&v(Ecosystem::Pypi, "2.3.1")));
    }

    #[test]
    fn limit_caps_the_range() {
        let r = range(Ecosystem::Pypi, &[("introduced", "1.0"), ("limit", "1.4")]);
        assert!(r.contains(&v(Ecosystem::Pypi, "1.3")));
        assert!(!r.contains(&v(Ecosystem::Pypi, "1.4")));
    }

    #[test]
    fn cran_ranges_use_r_ordering() {
        let r = range(Ecosystem::Cran, &[("introduced", "0"), ("fixed", "1.4.0")]);
        assert!(r.contains(&v(Ecosystem::Cran, "1.3-1")));
        assert!(!r.contains(&v(Ecosystem::Cran, "1.4-0")));
        assert!(r.contains(&v(Ecosystem::Cran, "0.9")));
    }

    #[test]
    fn git_ranges_are_not_used_and_bad_versions_are_reported() {
        let git = OsvRange {
            kind: "GIT".to_owned(),
            events: vec![event("introduced", "abc123")],
        };
        assert_eq!(AffectedRange::from_record(Ecosystem::Pypi, &git), Ok(None));
        let bad = OsvRange {
            kind: "ECOSYSTEM".to_owned(),
            events: vec![event("fixed", "not-a-version!")],
        };
        assert!(AffectedRange::from_record(Ecosystem::Pypi, &bad).is_err());
    }
}
