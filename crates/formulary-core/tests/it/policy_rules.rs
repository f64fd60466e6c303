//! Each policy rule, on its own and together, with snapshots of the explained decisions.

use formulary_core::advisory::Advisory;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::policy::{
    evaluate_releases, evaluate_version, Decision, PolicySnapshot, ReasonCode, Release,
};
use formulary_core::{
    Component, EcosystemSettings, Entry, OrgCode, Organisation, Severity, Stance, Status, Waiver,
};

use crate::support::{
    advisory_from_file, advisory_from_yaml, day, entry, pypi, release, version, view,
};

fn organisations() -> Vec<Organisation> {
    vec![
        Organisation {
            code: OrgCode::national(),
            name: "NHS England".to_owned(),
        },
        Organisation {
            code: "RJ1".parse().expect("code"),
            name: "Guy's and St Thomas'".to_owned(),
        },
    ]
}

fn snapshot(
    entries: Vec<Entry>,
    advisories: Vec<Advisory>,
    settings: Vec<(&str, EcosystemSettings)>,
) -> PolicySnapshot {
    PolicySnapshot::new(
        organisations(),
        settings
            .into_iter()
            .map(|(code, settings)| (code.parse().expect("code"), Ecosystem::Pypi, settings)),
        entries,
        advisories,
    )
}

fn curated() -> EcosystemSettings {
    EcosystemSettings {
        stance: Stance::Curated,
        ..EcosystemSettings::default()
    }
}

fn decide(
    snapshot: &PolicySnapshot,
    organisation: &str,
    component: &Component,
    text: &str,
) -> Decision {
    let known = [release(component, text, 400)];
    evaluate_version(
        snapshot,
        &view(organisation),
        component,
        &version(component, text),
        &known,
    )
}

fn codes(decision: &Decision) -> Vec<ReasonCode> {
    decision.reasons.iter().map(|reason| reason.code).collect()
}

fn requests_advisory() -> Advisory {
    advisory_from_file("pypa-advisory-database/vulns/requests/PYSEC-2018-28.yaml")
}

#[test]
fn a_national_prohibition_denies_everywhere() {
    let requests = pypi("requests");
    let snapshot = snapshot(
        vec![entry("n1", "NATIONAL", &requests, "<2", Status::Prohibited)],
        vec![],
        vec![],
    );
    for organisation in ["NATIONAL", "RJ1"] {
        let decision = decide(&snapshot, organisation, &requests, "1.2.3");
        assert!(!decision.allowed, "{organisation}");
        assert_eq!(codes(&decision), [ReasonCode::Prohibited]);
    }
    assert!(
        decide(&snapshot, "RJ1", &requests, "2.0").allowed,
        "outside the range"
    );
}

#[test]
fn an_organisation_cannot_loosen_a_national_prohibition_without_an_exception() {
    let requests = pypi("requests");
    let national = entry("n1", "NATIONAL", &requests, "<2", Status::Prohibited);
    let loosening = entry("o1", "RJ1", &requests, "*", Status::Approved);
    let snapshot = snapshot(vec![national.clone(), loosening], vec![], vec![]);
    let decision = decide(&snapshot, "RJ1", &requests, "1.0");
    assert!(!decision.allowed);
    assert_eq!(
        codes(&decision),
        [ReasonCode::Prohibited, ReasonCode::OverlayCannotLoosen]
    );

    let mut exception = entry("o2", "RJ1", &requests, "==1.0", Status::Approved);
    exception.draft.waives = vec![Waiver::NationalProhibition];
    exception.draft.expires = Some(day("2027-03-01"));
    let snapshot_with_exception = snapshot_of(vec![national.clone(), exception.clone()]);
    let decision = decide(&snapshot_with_exception, "RJ1", &requests, "1.0");
    assert!(decision.allowed, "{decision:#?}");
    assert_eq!(
        codes(&decision),
        [ReasonCode::ProhibitionWaived, ReasonCode::InFormulary]
    );
    assert!(
        !decide(&snapshot_with_exception, "NATIONAL", &requests, "1.0").allowed,
        "only RJ1 is excepted"
    );

    exception.draft.expires = Some(day("2026-11-21"));
    let expired = snapshot_of(vec![national, exception]);
    assert!(
        !decide(&expired, "RJ1", &requests, "1.0").allowed,
        "an exception ends on its expiry date"
    );
}

fn snapshot_of(entries: Vec<Entry>) -> PolicySnapshot {
    snapshot(entries, vec![], vec![])
}

#[test]
fn an_organisation_can_prohibit_what_the_nation_approves() {
    let requests = pypi("requests");
    let snapshot = snapshot_of(vec![
        entry("n1", "NATIONAL", &requests, "*", Status::Approved),
        entry("o1", "RJ1", &requests, ">=2.30", Status::Prohibited),
    ]);
    assert!(!decide(&snapshot, "RJ1", &requests, "2.31.0").allowed);
    assert!(decide(&snapshot, "RJ1", &requests, "2.29.0").allowed);
    assert!(decide(&snapshot, "NATIONAL", &requests, "2.31.0").allowed);
}

#[test]
fn a_curated_view_serves_only_admitted_versions() {
    let git = pypi("gitpython");
    let mut pilot = entry("n2", "NATIONAL", &git, ">=3.1,<3.2", Status::Pilot);
    pilot.draft.expires = Some(day("2027-01-01"));
    let mut ended = entry("n3", "NATIONAL", &git, "==3.0.0", Status::Pilot);
    ended.draft.expires = Some(day("2026-01-01"));
    let snapshot = snapshot(
        vec![
            entry("n1", "NATIONAL", &git, "<3", Status::Approved),
            pilot,
            ended,
            entry("n4", "NATIONAL", &git, ">=4", Status::UnderReview),
            entry("n5", "NATIONAL", &git, "==2.9", Status::Divest),
        ],
        vec![],
        vec![("NATIONAL", curated())],
    );
    let check = |text: &str| decide(&snapshot, "RJ1", &git, text);
    assert!(check("2.0").allowed);
    assert!(check("3.1.4").allowed);
    assert_eq!(
        codes(&check("2.9")),
        [ReasonCode::InFormulary, ReasonCode::Divest],
        "a divest stays visible beside a broader approval"
    );
    assert!(!check("3.0.0").allowed);
    assert_eq!(codes(&check("3.0.0")), [ReasonCode::PilotExpired]);
    assert_eq!(codes(&check("4.1")), [ReasonCode::UnderReview]);
    let missing = check("3.5");
    assert_eq!(codes(&missing), [ReasonCode::NotInFormulary]);
    assert_eq!(
        missing.reasons[0].link.as_deref(),
        Some("/requests/new?component=pkg:pypi/gitpython")
    );
}

#[test]
fn organisation_entries_override_national_ones_for_the_versions_they_cover() {
    let pandas = pypi("pandas");
    let snapshot = snapshot(
        vec![
            entry("n1", "NATIONAL", &pandas, "*", Status::Approved),
            entry("o1", "RJ1", &pandas, ">=3", Status::UnderReview),
        ],
        vec![],
        vec![("NATIONAL", curated())],
    );
    assert!(!decide(&snapshot, "RJ1", &pandas, "3.0").allowed);
    assert!(decide(&snapshot, "RJ1", &pandas, "2.2").allowed);
}

#[test]
fn advisories_deny_at_or_above_the_threshold_unless_waived() {
    let requests = pypi("requests");
    let snapshot_open = snapshot(vec![], vec![requests_advisory()], vec![]);
    let blocked = decide(&snapshot_open, "RJ1", &requests, "2.19.1");
    assert!(!blocked.allowed);
    assert_eq!(
        blocked.reasons[0].advisory.as_deref(),
        Some("PYSEC-2018-28")
    );
    assert!(
        blocked.reasons[0].message.contains("fixed in 2.20.0"),
        "{}",
        blocked.reasons[0].message
    );

    let lenient = EcosystemSettings {
        severity_threshold: Severity::Critical,
        ..EcosystemSettings::default()
    };
    // A national threshold of critical lets the advisory through, noted…
    let snapshot_lenient = snapshot(
        vec![],
        vec![requests_advisory()],
        vec![("NATIONAL", lenient.clone())],
    );
    let noted = decide(&snapshot_lenient, "RJ1", &requests, "2.19.1");
    assert!(noted.allowed);
    assert_eq!(codes(&noted), [ReasonCode::AdvisoryBelowThreshold]);
    // …but an organisation's overlay cannot loosen the national baseline (finding S3).
    let overlay_only = snapshot(vec![], vec![requests_advisory()], vec![("RJ1", lenient)]);
    assert!(!decide(&overlay_only, "RJ1", &requests, "2.19.1").allowed);

    let mut exception = entry("o1", "RJ1", &requests, "==2.19.1", Status::Approved);
    exception.draft.waives = vec![Waiver::Advisory("CVE-2018-18074".to_owned())];
    exception.draft.expires = Some(day("2027-01-01"));
    let snapshot_waived = snapshot(vec![exception], vec![requests_advisory()], vec![]);
    let waived = decide(&snapshot_waived, "RJ1", &requests, "2.19.1");
    assert!(waived.allowed, "an alias names the advisory: {waived:#?}");
    assert_eq!(
        codes(&waived),
        [ReasonCode::InFormulary, ReasonCode::AdvisoryWaived]
    );
}

#[test]
fn malicious_reports_deny_whatever_the_threshold() {
    let typo = pypi("reqeusts");
    let malicious = advisory_from_yaml(
        "id: MAL-2024-0001\nmodified: 2024-05-01T00:00:00Z\nsummary: Malicious code in reqeusts\naffected:\n- package: {ecosystem: PyPI, name: reqeusts}\n  ranges:\n  - type: ECOSYSTEM\n    events: [{introduced: '0'}]\n",
    );
    let lenient = EcosystemSettings {
        severity_threshold: Severity::Critical,
        ..EcosystemSettings::default()
    };
    let snapshot = snapshot(vec![], vec![malicious], vec![("NATIONAL", lenient)]);
    let decision = decide(&snapshot, "RJ1", &typo, "1.0");
    assert!(!decision.allowed);
    assert_eq!(codes(&decision), [ReasonCode::Malicious]);
}

#[test]
fn licences_outside_the_allowed_set_deny() {
    let package = pypi("some-lib");
    let settings = EcosystemSettings {
        allowed_licences: vec!["MIT".to_owned(), "Apache-2.0".to_owned()],
        ..EcosystemSettings::default()
    };
    let snapshot = snapshot(vec![], vec![], vec![("NATIONAL", settings)]);
    let with_licence = |licence: Option<&str>| {
        let mut evidence = release(&package, "1.0", 400);
        evidence.licence = licence.map(str::to_owned);
        evaluate_releases(&snapshot, &view("RJ1"), &package, &[evidence]).remove(0)
    };
    assert!(with_licence(Some("MIT")).allowed);
    assert!(!with_licence(Some("GPL-3.0-only")).allowed);
    let unknown = with_licence(None);
    assert!(unknown.allowed, "an unknown licence is noted, not blocked");
    assert_eq!(codes(&unknown), [ReasonCode::LicenceUnknown]);
}

#[test]
fn the_cooldown_holds_new_releases_but_lets_security_fixes_through() {
    let requests = pypi("requests");
    let snapshot = snapshot(vec![], vec![requests_advisory()], vec![]);
    let releases = vec![
        release(&requests, "2.18.0", 500),
        release(&requests, "2.19.1", 300),
        release(&requests, "2.20.0", 2),
        release(&requests, "2.21.0", 1),
    ];
    let decisions = evaluate_releases(&snapshot, &view("RJ1"), &requests, &releases);
    let summary: Vec<(String, bool)> = decisions
        .iter()
        .map(|decision| (decision.version.clone(), decision.allowed))
        .collect();
    assert_eq!(
        summary,
        [("2.18.0", false), ("2.19.1", false), ("2.20.0", true), ("2.21.0", true)].map(|(v, a)| (v.to_owned(), a)),
        "2.20.0 and 2.21.0 fix PYSEC-2018-28, which affects 2.19.1, the newest otherwise-allowed version"
    );
    assert_eq!(codes(&decisions[2]), [ReasonCode::SecurityFastLane]);

    let quiet = pypi("quiet");
    let plain = evaluate_releases(
        &snapshot,
        &view("RJ1"),
        &quiet,
        &[release(&quiet, "1.0", 300), release(&quiet, "1.1", 3)],
    );
    assert!(plain[0].allowed);
    assert!(!plain[1].allowed);
    assert!(
        plain[1].reasons[0]
            .message
            .contains("becomes available on 2026-11-25"),
        "{}",
        plain[1].reasons[0].message
    );
    assert!(
        plain[1].reasons[0]
            .message
            .starts_with("published 3 day(s) ago"),
        "{}",
        plain[1].reasons[0].message
    );

    // Where the upstream gives no date, the message says what the date is.
    let mut first_seen = release(&quiet, "1.1", 3);
    first_seen.dated_by_first_sight = true;
    let undated = evaluate_releases(
        &snapshot,
        &view("RJ1"),
        &quiet,
        &[release(&quiet, "1.0", 300), first_seen],
    );
    assert!(!undated[1].allowed);
    assert!(
        undated[1].reasons[0].message.starts_with(
            "first seen by Formulary 3 day(s) ago (the upstream gives no publication date)"
        ),
        "{}",
        undated[1].reasons[0].message
    );
}

#[test]
fn yanks_are_passed_through_not_hidden() {
    let package = pypi("demo");
    let snapshot = snapshot(vec![], vec![], vec![]);
    let mut yanked = release(&package, "1.0", 400);
    yanked.yanked = Some("broken wheel".to_owned());
    let decision = evaluate_releases(&snapshot, &view("RJ1"), &package, &[yanked]).remove(0);
    assert!(decision.allowed);
    assert_eq!(decision.yanked.as_deref(), Some("broken wheel"));
    assert_eq!(codes(&decision), [ReasonCode::Yanked]);
}

#[test]
fn explained_decisions() {
    let requests = pypi("requests");
    let mut national_settings = curated();
    national_settings.allowed_licences = vec!["Apache-2.0".to_owned(), "MIT".to_owned()];
    let mut approval = entry(
        "e-approve",
        "NATIONAL",
        &requests,
        ">=2.0,<3",
        Status::ApprovedWithConstraints,
    );
    approval.draft.constraints =
        Some("no use with patient-identifiable data over plain HTTP".to_owned());
    let snapshot = snapshot(
        vec![
            approval,
            entry(
                "e-prohibit",
                "NATIONAL",
                &requests,
                "<1",
                Status::Prohibited,
            ),
        ],
        vec![requests_advisory()],
        vec![("NATIONAL", national_settings)],
    );
    let mut evidence: Vec<Release> = ["0.14.2", "2.19.1", "2.31.0", "3.0.0"]
        .iter()
        .map(|text| release(&requests, text, 400))
        .collect();
    evidence
        .iter_mut()
        .for_each(|release| release.licence = Some("Apache-2.0".to_owned()));
    evidence.push(Release {
        dated_by_first_sight: false,
        licence: None,
        install_scripts: false,
        ..release(&requests, "2.32.0", 1)
    });
    let decisions = evaluate_releases(&snapshot, &view("RJ1"), &requests, &evidence);
    insta::assert_json_snapshot!("explained_decisions", decisions);
}

#[test]
fn a_stale_advisory_feed_is_never_silent_and_a_hold_view_stops_admitting_new_versions() {
    use formulary_core::policy::{AdvisoryFeed, Effect, FeedPolicy, OnStaleFeed};
    let component = pypi("requests");
    let mut snapshot = snapshot(Vec::new(), Vec::new(), Vec::new());
    let settle = |snapshot: &PolicySnapshot, organisation: &str, days_old: i64| {
        let releases = [
            release(&component, "1.0", 400),
            release(&component, "2.0", days_old),
        ];
        evaluate_releases(snapshot, &view(organisation), &component, &releases)
    };
    // No source configured: the rule is off.
    assert!(settle(&snapshot, "RJ1", 10)
        .iter()
        .all(|decision| decision.allowed
            && decision
                .reasons
                .iter()
                .all(|reason| reason.code != ReasonCode::AdvisoryFeedStale)));

    // Synced an hour ago: fresh.
    let now = crate::support::now();
    snapshot.set_advisory_feed(Some(AdvisoryFeed {
        current_at: now - chrono::Duration::hours(1),
    }));
    assert!(settle(&snapshot, "RJ1", 10).iter().all(|decision| decision
        .reasons
        .iter()
        .all(|reason| reason.code != ReasonCode::AdvisoryFeedStale)));

    // Synced 30 days ago: stale since 29 days ago. The default keeps serving with a note.
    snapshot.set_advisory_feed(Some(AdvisoryFeed {
        current_at: now - chrono::Duration::days(30),
    }));
    for decision in settle(&snapshot, "RJ1", 10) {
        assert!(decision.allowed, "{decision:?}");
        let reason = decision
            .reasons
            .iter()
            .find(|reason| reason.code == ReasonCode::AdvisoryFeedStale)
            .expect("a note on every decision");
        assert_eq!(reason.effect, Effect::Note);
        assert!(reason.message.contains("stale"), "{}", reason.message);
    }

    // RJ1 holds: 2.0 (published 10 days ago, after the feed went stale) is denied; 1.0 is not.
    snapshot.set_feed_policies([(
        "RJ1".parse().expect("code"),
        FeedPolicy {
            stale_after_hours: 24,
            on_stale: OnStaleFeed::Hold,
        },
    )]);
    let decisions = settle(&snapshot, "RJ1", 10);
    assert!(decisions[0].allowed, "{:?}", decisions[0]);
    assert!(!decisions[1].allowed);
    assert_eq!(
        decisions[1].denials().next().map(|reason| reason.code),
        Some(ReasonCode::AdvisoryFeedStale)
    );
    // The national view keeps the default (serve).
    assert!(settle(&snapshot, "NATIONAL", 10)
        .iter()
        .all(|decision| decision.allowed));
    // A release published before the feed went stale stays admitted under hold.
    assert!(settle(&snapshot, "RJ1", 60)
        .iter()
        .all(|decision| decision.allowed));

    assert!(FeedPolicy {
        stale_after_hours: 0,
        on_stale: OnStaleFeed::Hold
    }
    .validate()
    .is_err());
    assert!("freeze".parse::<OnStaleFeed>().is_err());
}
