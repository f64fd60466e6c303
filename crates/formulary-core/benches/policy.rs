//! Policy decisions per second: one component with 1,000 releases, 50 advisories and a handful of
//! entries, every release decided in one curated organisation view (the work behind one index
//! page of the gateway).

use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_main, Criterion, Throughput};
use formulary_core::advisory::{Advisory, OsvRecord, RecordFormat};
use formulary_core::ecosystems::{Ecosystem, Version, VersionRange};
use formulary_core::policy::{evaluate_releases, PolicySnapshot, Release, View};
use formulary_core::{Component, EcosystemSettings, Entry, EntryDraft, OrgCode, Stance, Status};

fn releases(component: &Component) -> Vec<Release> {
    let now = Utc
        .with_ymd_and_hms(2026, 11, 21, 0, 0, 0)
        .single()
        .expect("time");
    (0..1000)
        .map(|index| Release {
            dated_by_first_sight: false,
            version: Version::parse(
                component.ecosystem(),
                &format!("{}.{}.{}", index / 100, (index / 10) % 10, index % 10),
            )
            .expect("version"),
            published: Some(now - Duration::days(1000 - index)),
            yanked: None,
            licence: Some("Apache-2.0".to_owned()),
            install_scripts: false,
        })
        .collect()
}

fn advisories() -> Vec<Advisory> {
    (0..50)
        .map(|index| {
            let json = format!(
                r#"{{"id":"PYSEC-2099-{index}","modified":"2026-01-01T00:00:00Z","affected":[{{"package":{{"ecosystem":"PyPI","name":"bench"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"{major}.{minor}.0"}},{{"fixed":"{major}.{minor}.5"}}]}}],"versions":["{major}.{minor}.1","{major}.{minor}.2"]}}]}}"#,
                major = index % 10,
                minor = index / 10,
            );
            let record = OsvRecord::parse(json.as_bytes(), RecordFormat::Json, "bench").expect("record");
            Advisory::from_record(&record).expect("advisory")
        })
        .collect()
}

fn entries(component: &Component) -> Vec<Entry> {
    let ranges = [
        ("<5", Status::Approved),
        (">=5,<8", Status::ApprovedWithConstraints),
        ("==3.3.*", Status::Prohibited),
        (">=9", Status::UnderReview),
    ];
    ranges
        .iter()
        .enumerate()
        .map(|(index, (range, status))| Entry {
            id: format!("e-{index}"),
            draft: EntryDraft {
                organisation: OrgCode::national(),
                component: component.clone(),
                range: VersionRange::parse(Ecosystem::Pypi, range).expect("range"),
                status: *status,
                constraints: (*status == Status::ApprovedWithConstraints)
                    .then(|| "aggregate data only".to_owned()),
                review_date: None,
                expires: None,
                waives: Vec::new(),
                decided_by: "bench".to_owned(),
                reason: "bench".to_owned(),
                mentor: None,
            },
            created_at: Utc::now(),
        })
        .collect()
}

fn policy_decisions(criterion: &mut Criterion) {
    let component = Component::new(Ecosystem::Pypi, "bench").expect("name");
    let releases = releases(&component);
    let settings = EcosystemSettings {
        stance: Stance::Curated,
        allowed_licences: vec!["Apache-2.0".to_owned(), "MIT".to_owned()],
        ..EcosystemSettings::default()
    };
    let snapshot = PolicySnapshot::new(
        [],
        [(OrgCode::national(), Ecosystem::Pypi, settings)],
        entries(&component),
        advisories(),
    );
    let view = View {
        organisation: "RJ1".parse().expect("code"),
        at: Utc
            .with_ymd_and_hms(2026, 11, 21, 0, 0, 0)
            .single()
            .expect("time"),
    };
    let decisions = evaluate_releases(&snapshot, &view, &component, &releases);
    assert_eq!(decisions.len(), 1000);
    assert!(
        decisions.iter().any(|decision| decision.allowed)
            && decisions.iter().any(|decision| !decision.allowed)
    );

    let mut group = criterion.benchmark_group("policy");
    group.throughput(Throughput::Elements(releases.len() as u64));
    group.bench_function("1000 releases, 50 advisories, curated view", |bencher| {
        bencher.iter(|| evaluate_releases(&snapshot, &view, &component, &releases))
    });
    group.finish();
}

/// Criterion's generated entry points, kept private.
mod harness {
    use super::policy_decisions;
    criterion::criterion_group!(benches, policy_decisions);
}

criterion_main!(harness::benches);
