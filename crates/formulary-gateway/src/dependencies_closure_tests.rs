use std::collections::HashMap;

use chrono::Utc;
use formulary_core::ecosystems::{Ecosystem, Version, VersionRange};
use formulary_core::policy::{evaluate_version, PolicySnapshot, Release, View};
use formulary_core::{
    Component, EcosystemSettings, Entry, EntryDraft, OrgCode, Organisation, Stance, Status,
};

use super::{closure, Requirement, Requirements};
use crate::error::GatewayError;

/// One version and what it needs: (version, [(name, range)]).
type Described = (&'static str, Vec<(&'static str, &'static str)>);

/// A repository in memory: versions and what each needs.
struct Repository(HashMap<String, Vec<Described>>);

impl Requirements for Repository {
    async fn releases(&self, component: &Component) -> Result<Vec<Release>, GatewayError> {
        Ok(self
            .0
            .get(component.name.as_str())
            .into_iter()
            .flatten()
            .map(|(version, _)| Release::bare(Version::parse(Ecosystem::Pypi, version).unwrap()))
            .collect())
    }

    async fn requirements(
        &self,
        component: &Component,
        release: &Release,
        _extras: &[String],
    ) -> Result<Option<Vec<Requirement>>, GatewayError> {
        let Some((_, needs)) = self.0.get(component.name.as_str()).and_then(|versions| {
            versions
                .iter()
                .find(|(version, _)| *version == release.version.to_string())
        }) else {
            return Ok(None);
        };
        Ok(Some(
            needs
                .iter()
                .map(|(name, range)| Requirement {
                    component: Component::new(Ecosystem::Pypi, name).unwrap(),
                    range: VersionRange::parse(Ecosystem::Pypi, range).unwrap(),
                    extras: Vec::new(),
                })
                .collect(),
        ))
    }
}

fn entry(id: &str, name: &str, range: &str, status: Status) -> Entry {
    Entry {
        id: id.to_owned(),
        draft: EntryDraft {
            organisation: "RJ1".parse().unwrap(),
            component: Component::new(Ecosystem::Pypi, name).unwrap(),
            range: VersionRange::parse(Ecosystem::Pypi, range).unwrap(),
            status,
            constraints: None,
            review_date: None,
            expires: None,
            waives: Vec::new(),
            decided_by: "test".to_owned(),
            reason: "test".to_owned(),
            mentor: None,
        },
        created_at: Utc::now(),
    }
}

#[tokio::test]
async fn the_closure_admits_what_the_newest_allowed_versions_need_transitively() {
    let repository = Repository(HashMap::from([
        (
            "requests".to_owned(),
            vec![
                ("2.32.0", vec![("idna", ">=2.5,<4"), ("urllib3", ">=1.21")]),
                ("3.0.0", vec![("brand-new", "*")]),
            ],
        ),
        (
            "idna".to_owned(),
            vec![("3.7", vec![]), ("4.0", vec![("never", "*")])],
        ),
        (
            "urllib3".to_owned(),
            vec![("2.2.0", vec![("pysocks", "*")])],
        ),
        ("pysocks".to_owned(), vec![("1.7.1", vec![])]),
    ]));
    let organisation: OrgCode = "RJ1".parse().unwrap();
    let snapshot = PolicySnapshot::new(
        [Organisation {
            code: organisation.clone(),
            name: "RJ1".to_owned(),
        }],
        [(
            organisation.clone(),
            Ecosystem::Pypi,
            EcosystemSettings {
                stance: Stance::Curated,
                ..EcosystemSettings::default()
            },
        )],
        [
            entry("e1", "requests", "<3", Status::Approved),
            entry("e2", "pysocks", "*", Status::Prohibited),
        ],
        [],
    );
    let view = View {
        organisation,
        at: Utc::now(),
    };
    let outcome = closure(&snapshot, &view, Ecosystem::Pypi, &repository)
        .await
        .unwrap();
    let mut admitted: Vec<(String, String)> = outcome
        .admissions
        .iter()
        .map(|admission| {
            (
                admission.component.name.to_string(),
                admission.dependent.name.to_string(),
            )
        })
        .collect();
    admitted.sort();
    assert_eq!(
        admitted,
        [
            ("idna".to_owned(), "requests".to_owned()),
            ("pysocks".to_owned(), "urllib3".to_owned()),
            ("urllib3".to_owned(), "requests".to_owned()),
        ],
        "3.0.0 is outside the approval, idna 4.0 outside the range, pysocks is prohibited (so not walked)"
    );
    let with = snapshot.with_admissions(outcome.admissions);
    let idna = Component::new(Ecosystem::Pypi, "idna").unwrap();
    let pysocks = Component::new(Ecosystem::Pypi, "pysocks").unwrap();
    let decide = |component: &Component, text: &str| {
        evaluate_version(
            &with,
            &view,
            component,
            &Version::parse(Ecosystem::Pypi, text).unwrap(),
            &[],
        )
    };
    assert!(decide(&idna, "3.7").allowed);
    assert!(!decide(&idna, "4.0").allowed);
    assert!(!decide(&pysocks, "1.7.1").allowed, "the prohibition stands");
}
