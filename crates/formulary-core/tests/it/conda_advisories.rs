//! conda packages get the advisories of the PyPI or CRAN component they repackage (OSV has no
//! conda ecosystem), from real records in `test-data/osv`, with the mapping in every reason.

use formulary_core::ecosystems::Ecosystem;
use formulary_core::policy::{evaluate_releases, PolicySnapshot, ReasonCode};
use formulary_core::{Component, Status};

use crate::support::{advisory_from_file, entry, release, view};

fn conda(name: &str) -> Component {
    Component::new(Ecosystem::Conda, name).expect("a conda name")
}

fn snapshot(entries: Vec<formulary_core::Entry>) -> PolicySnapshot {
    PolicySnapshot::new(
        [formulary_core::Organisation {
            code: formulary_core::OrgCode::national(),
            name: "National".to_owned(),
        }],
        [],
        entries,
        [
            advisory_from_file("pypa-advisory-database/vulns/torch/PYSEC-2022-43015.yaml"),
            advisory_from_file("r-advisory-database/vulns/readxl/RSEC-2023-2.yaml"),
        ],
    )
}

#[test]
fn a_conda_package_gets_the_advisories_of_the_pypi_project_it_repackages() {
    let pytorch = conda("pytorch");
    let releases = [
        release(&pytorch, "1.13.0", 60),
        release(&pytorch, "1.13.1", 60),
    ];
    let decisions = evaluate_releases(
        &snapshot(Vec::new()),
        &view("NATIONAL"),
        &pytorch,
        &releases,
    );
    assert!(!decisions[0].allowed);
    let reason = decisions[0]
        .reasons
        .iter()
        .find(|reason| reason.code == ReasonCode::Advisory)
        .expect("an advisory reason");
    assert!(
        reason.message.starts_with(
            "affected by PYSEC-2022-43015 via PyPI package torch (mapped from conda package pytorch)"
        ) && reason.message.contains("fixed in 1.13.1"),
        "{}",
        reason.message
    );
    assert_eq!(reason.advisory.as_deref(), Some("PYSEC-2022-43015"));
    assert!(decisions[1].allowed, "{:?}", decisions[1].reasons);
    // An unmapped conda package with the PyPI name gets nothing: only the mapping links them.
    let torch = conda("torch");
    let decisions = evaluate_releases(
        &snapshot(Vec::new()),
        &view("NATIONAL"),
        &torch,
        &[release(&torch, "1.13.0", 60)],
    );
    assert!(decisions[0].allowed, "{:?}", decisions[0].reasons);
}

#[test]
fn an_r_package_gets_cran_advisories_and_a_conda_entry_can_waive_them() {
    let readxl = conda("r-readxl");
    let releases = [release(&readxl, "1.4.0", 60), release(&readxl, "1.4.1", 60)];
    let decisions = evaluate_releases(&snapshot(Vec::new()), &view("NATIONAL"), &readxl, &releases);
    assert!(decisions[0].allowed);
    assert!(!decisions[1].allowed);
    assert!(decisions[1].reasons.iter().any(|reason| reason
        .message
        .contains("RSEC-2023-2 via CRAN package readxl (mapped from conda package r-readxl)")));

    let mut waiver = entry("e-1", "NATIONAL", &readxl, "==1.4.1", Status::Approved);
    waiver.draft.waives = vec![formulary_core::Waiver::Advisory("RSEC-2023-2".to_owned())];
    let decisions = evaluate_releases(
        &snapshot(vec![waiver]),
        &view("NATIONAL"),
        &readxl,
        &releases,
    );
    assert!(decisions[1].allowed, "{:?}", decisions[1].reasons);
    assert!(decisions[1]
        .reasons
        .iter()
        .any(|reason| reason.code == ReasonCode::AdvisoryWaived
            && reason.message.contains("via CRAN package readxl")));
}
