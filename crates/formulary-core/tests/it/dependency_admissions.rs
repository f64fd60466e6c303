//! Rule 2's dependency admissions: what an approved component needs is admitted in a curated
//! view, never over a prohibition or an advisory, and lapses with the approval.

use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::policy::{evaluate_version, Admission, PolicySnapshot, ReasonCode};
use formulary_core::{EcosystemSettings, Entry, OrgCode, Organisation, Stance, Status};

use crate::support::{advisory_from_yaml, day, entry, pypi, release, version, view};

fn snapshot(entries: Vec<Entry>, admissions: Vec<Admission>) -> PolicySnapshot {
    let organisations = ["NATIONAL", "RJ1", "RX1"].map(|code| Organisation {
        code: code.parse().expect("code"),
        name: code.to_owned(),
    });
    let curated = EcosystemSettings {
        stance: Stance::Curated,
        ..EcosystemSettings::default()
    };
    let advisory = advisory_from_yaml(
        "id: PYSEC-2099-1\nmodified: 2024-05-01T00:00:00Z\nsummary: bad\naffected:\n- package: {ecosystem: PyPI, name: urllib3}\n  ranges:\n  - type: ECOSYSTEM\n    events: [{introduced: '0'}, {fixed: '2.0'}]\n",
    );
    PolicySnapshot::new(
        organisations,
        ["RJ1", "RX1"].map(|code| {
            (
                code.parse().expect("code"),
                Ecosystem::Pypi,
                curated.clone(),
            )
        }),
        entries,
        vec![advisory],
    )
    .with_admissions(admissions)
}

fn admission(organisation: &str, dependency: &str, range: &str, entry_id: &str) -> Admission {
    Admission {
        organisation: organisation.parse::<OrgCode>().expect("code"),
        component: pypi(dependency),
        range: VersionRange::parse(Ecosystem::Pypi, range).expect("range"),
        dependent: pypi("requests"),
        root: pypi("requests"),
        entry_id: entry_id.to_owned(),
    }
}

fn allowed(
    snapshot: &PolicySnapshot,
    organisation: &str,
    name: &str,
    text: &str,
) -> (bool, Vec<ReasonCode>) {
    let component = pypi(name);
    let decision = evaluate_version(
        snapshot,
        &view(organisation),
        &component,
        &version(&component, text),
        &[release(&component, text, 400)],
    );
    (
        decision.allowed,
        decision.reasons.iter().map(|reason| reason.code).collect(),
    )
}

#[test]
fn an_approved_components_dependency_is_admitted_within_the_range_it_needs() {
    let approval = entry("o1", "RJ1", &pypi("requests"), "*", Status::Approved);
    let snapshot = snapshot(
        vec![approval],
        vec![admission("RJ1", "idna", ">=2.5,<4", "o1")],
    );
    let (ok, codes) = allowed(&snapshot, "RJ1", "idna", "3.7");
    assert!(ok);
    assert_eq!(codes, [ReasonCode::DependencyOf]);
    assert_eq!(
        allowed(&snapshot, "RJ1", "idna", "4.0").1,
        [ReasonCode::NotInFormulary]
    );
    assert!(
        !allowed(&snapshot, "RX1", "idna", "3.7").0,
        "only RJ1's closure"
    );
}

#[test]
fn an_admission_never_overrides_a_prohibition_an_advisory_or_an_entry() {
    let requests = entry("o1", "RJ1", &pypi("requests"), "*", Status::Approved);
    let prohibited = entry("n1", "NATIONAL", &pypi("idna"), "<3", Status::Prohibited);
    let reviewing = entry(
        "o2",
        "RJ1",
        &pypi("charset-normalizer"),
        "*",
        Status::UnderReview,
    );
    let snapshot = snapshot(
        vec![requests, prohibited, reviewing],
        vec![
            admission("RJ1", "idna", "*", "o1"),
            admission("RJ1", "urllib3", "*", "o1"),
            admission("RJ1", "charset-normalizer", "*", "o1"),
        ],
    );
    assert_eq!(
        allowed(&snapshot, "RJ1", "idna", "2.9"),
        (false, vec![ReasonCode::Prohibited])
    );
    assert!(allowed(&snapshot, "RJ1", "idna", "3.1").0);
    let (ok, codes) = allowed(&snapshot, "RJ1", "urllib3", "1.26.0");
    assert!(!ok);
    assert_eq!(codes, [ReasonCode::DependencyOf, ReasonCode::Advisory]);
    assert!(allowed(&snapshot, "RJ1", "urllib3", "2.2.0").0);
    assert_eq!(
        allowed(&snapshot, "RJ1", "charset-normalizer", "3.0").1,
        [ReasonCode::UnderReview],
        "an entry about the version speaks first"
    );
}

#[test]
fn an_admission_lapses_with_its_approval() {
    let mut pilot = entry("o1", "RJ1", &pypi("requests"), "*", Status::Pilot);
    pilot.draft.expires = Some(day("2020-01-01"));
    let expired = snapshot(vec![pilot], vec![admission("RJ1", "idna", "*", "o1")]);
    assert_eq!(
        allowed(&expired, "RJ1", "idna", "3.7").1,
        [ReasonCode::NotInFormulary]
    );
    let removed = snapshot(vec![], vec![admission("RJ1", "idna", "*", "o1")]);
    assert!(!allowed(&removed, "RJ1", "idna", "3.7").0);
    let national = entry("n9", "NATIONAL", &pypi("requests"), "*", Status::Approved);
    let shared = snapshot(
        vec![national],
        vec![admission("NATIONAL", "idna", "*", "n9")],
    );
    assert!(
        allowed(&shared, "RX1", "idna", "3.7").0,
        "the national closure is everyone's"
    );
}
