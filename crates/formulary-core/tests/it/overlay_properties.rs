//! Properties that must hold for every combination of national and organisation entries.

use formulary_core::ecosystems::Ecosystem;
use formulary_core::policy::{evaluate_version, PolicySnapshot};
use formulary_core::{EcosystemSettings, Entry, OrgCode, Stance, Status, Waiver};
use proptest::prelude::*;

use crate::support::{day, entry, pypi, release, version, view};

const RANGES: [&str; 5] = ["*", "<2", ">=2", "==1.5", ">=1,<3"];
const VERSIONS: [&str; 4] = ["0.9", "1.5", "2.0", "3.1"];

fn arbitrary_entry(
    organisation: &'static str,
) -> impl Strategy<Value = (usize, usize, bool, bool)> {
    let _ = organisation;
    (
        0..RANGES.len(),
        0..Status::ALL.len(),
        any::<bool>(),
        any::<bool>(),
    )
}

fn build(
    organisation: &str,
    index: usize,
    (range, status, waives, expired): (usize, usize, bool, bool),
) -> Entry {
    let package = pypi("demo");
    let status = Status::ALL[status];
    let mut built = entry(
        &format!("{organisation}-{index}"),
        organisation,
        &package,
        RANGES[range],
        status,
    );
    if waives && status.admits() && !OrgCode::NATIONAL.eq(organisation) {
        built.draft.waives = vec![Waiver::NationalProhibition];
        built.draft.expires = Some(if expired {
            day("2026-01-01")
        } else {
            day("2027-06-01")
        });
    } else if status == Status::Pilot {
        built.draft.expires = Some(if expired {
            day("2026-01-01")
        } else {
            day("2027-06-01")
        });
    }
    built
}

fn covers(entry: &Entry, text: &str) -> bool {
    entry
        .draft
        .range
        .contains(&version(&entry.draft.component, text))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn overlays_never_loosen_prohibitions_and_curated_views_need_an_admitting_entry(
        national in prop::collection::vec(arbitrary_entry("NATIONAL"), 0..4),
        local in prop::collection::vec(arbitrary_entry("RJ1"), 0..4),
        curated in any::<bool>(),
        version_index in 0..VERSIONS.len(),
    ) {
        let package = pypi("demo");
        let national: Vec<Entry> = national.into_iter().enumerate().map(|(i, e)| build("NATIONAL", i, e)).collect();
        let local: Vec<Entry> = local.into_iter().enumerate().map(|(i, e)| build("RJ1", i, e)).collect();
        let stance = if curated { Stance::Curated } else { Stance::Open };
        let settings = EcosystemSettings { stance, ..EcosystemSettings::default() };
        let snapshot = PolicySnapshot::new(
            [],
            [(OrgCode::national(), Ecosystem::Pypi, settings)],
            national.iter().chain(&local).cloned(),
            [],
        );
        let text = VERSIONS[version_index];
        let known = [release(&package, text, 400)];
        let decision = evaluate_version(&snapshot, &view("RJ1"), &package, &version(&package, text), &known);
        let today = day("2026-11-21");

        let locally_prohibited = local.iter().any(|e| e.draft.status == Status::Prohibited && covers(e, text));
        let nationally_prohibited = national.iter().any(|e| e.draft.status == Status::Prohibited && covers(e, text));
        let excepted = local.iter().any(|e| {
            covers(e, text) && e.draft.status.admits() && e.is_in_force_on(today) && e.draft.waives.contains(&Waiver::NationalProhibition)
        });
        if locally_prohibited || (nationally_prohibited && !excepted) {
            prop_assert!(!decision.allowed, "prohibited but allowed: {:#?}", decision);
        }
        if curated && decision.allowed {
            let admitted = national.iter().chain(&local).any(|e| covers(e, text) && e.draft.status.admits() && e.is_in_force_on(today));
            prop_assert!(admitted, "curated view allowed a version with no admitting entry: {:#?}", decision);
        }
        if !curated && !locally_prohibited && !nationally_prohibited {
            prop_assert!(decision.allowed, "open view denied a version no rule blocks: {:#?}", decision);
        }
        // The national view never sees organisation entries.
        let national_decision = evaluate_version(&snapshot, &view("NATIONAL"), &package, &version(&package, text), &known);
        if nationally_prohibited {
            prop_assert!(!national_decision.allowed);
        }
    }
}
