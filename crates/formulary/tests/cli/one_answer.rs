//! One answer everywhere (issue 11, "Done means"): for random CRAN repositories (current and
//! archived versions, dependencies with lower bounds, cycles) and random formularies (approvals
//! and prohibitions, national and the trust's own, a curated or an open view), the policy engine,
//! the API (`GET /api/v1/policy/check`), `formulary policy check` and the gateway's `PACKAGES`
//! give the same answer for the same view and moment, dependencies (and the dependency
//! admissions of curated views) included.
//!
//! The pieces are built as `formulary serve` builds them (store, CRAN gateway over a real HTTP
//! upstream, policy snapshot, the admissions job's function, the server's router on a real
//! socket), in this process, so each case costs a fraction of a second; `policy check` is the
//! real binary, once per case.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use formulary_core::ecosystems::cran::{self, archive_value, Archive, ArchivedFile};
use formulary_core::ecosystems::{Ecosystem, Version, VersionRange};
use formulary_core::policy::{evaluate_version, Decision, View};
use formulary_core::{
    Component, EcosystemSettings, EntryDraft, OrgCode, Organisation, Stance, Status,
};
use formulary_gateway::{refresh_admissions, Budget, ClosureSources, CranGateway, UpstreamOptions};
use formulary_server::AppState;
use formulary_store::{BlobStore, Database};
use proptest::prelude::*;
use serde_json::Value;

use crate::formulary_cli::{static_server, text, Workspace};

/// What one package version needs: (package index, lowest major version accepted; 0 for any).
type Needs = Vec<(usize, u32)>;

/// A formulary entry of the case.
#[derive(Debug, Clone)]
struct CaseEntry {
    package: usize,
    national: bool,
    status: Status,
    /// `>= N.0`, or every version when 0.
    from: u32,
}

/// One random repository and formulary.
#[derive(Debug, Clone)]
struct Case {
    /// Each package's versions (major numbers, oldest first; the last is current) and needs.
    packages: Vec<Vec<(u32, Needs)>>,
    entries: Vec<CaseEntry>,
    curated: bool,
}

fn name(index: usize) -> String {
    format!("pkg{index}")
}

/// A small deterministic generator, seeded by proptest.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

fn case_from(seed: u64) -> Case {
    let mut random = Lcg(seed);
    let count = 2 + random.below(4) as usize;
    let packages = (0..count)
        .map(|index| {
            let versions = 1 + random.below(3) as u32;
            (1..=versions)
                .map(|major| {
                    let mut needs = Vec::new();
                    for other in (0..count).filter(|other| *other != index) {
                        if random.below(3) == 0 {
                            needs.push((other, random.below(4) as u32));
                        }
                    }
                    (major, needs)
                })
                .collect()
        })
        .collect();
    let mut entries = Vec::new();
    for package in 0..count {
        let (national, status, from) = match random.below(7) {
            0 | 1 => continue,
            2 => (false, Status::Approved, 0),
            3 => (false, Status::Approved, 1 + random.below(3) as u32),
            4 => (true, Status::Approved, 0),
            5 => (false, Status::Prohibited, 1 + random.below(3) as u32),
            _ => (true, Status::Prohibited, 1 + random.below(3) as u32),
        };
        entries.push(CaseEntry {
            package,
            national,
            status,
            from,
        });
    }
    Case {
        packages,
        entries,
        curated: random.below(2) == 0,
    }
}

fn description(package: usize, major: u32, needs: &Needs) -> String {
    let imports: Vec<String> = needs
        .iter()
        .map(|(other, from)| match from {
            0 => name(*other),
            _ => format!("{} (>= {from}.0)", name(*other)),
        })
        .collect();
    let mut text = format!(
        "Package: {}\nVersion: {major}.0\nLicense: MIT + file LICENSE\n",
        name(package)
    );
    if !imports.is_empty() {
        text.push_str(&format!("Imports: {}\n", imports.join(", ")));
    }
    text
}

/// A gzip-compressed tarball holding `<package>/DESCRIPTION`, as `R CMD build` makes.
fn tarball(package: &str, description: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(description.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("{package}/DESCRIPTION"),
            description.as_bytes(),
        )
        .expect("tar entry");
    builder
        .into_inner()
        .expect("tarball")
        .finish()
        .expect("gzip")
}

/// The upstream folder: `src/contrib/PACKAGES` (current versions), `Archive/<pkg>/…` tarballs
/// of the older ones and `Meta/archive.rds` listing them, as CRAN lays them out.
fn write_repository(root: &Path, case: &Case) {
    let contrib = root.join("src/contrib");
    std::fs::create_dir_all(contrib.join("Meta")).expect("folders");
    let mut packages = String::new();
    let mut archive = Archive::new();
    for (index, versions) in case.packages.iter().enumerate() {
        let (current, needs) = versions.last().expect("a version");
        packages.push_str(&description(index, *current, needs));
        packages.push('\n');
        for (major, needs) in &versions[..versions.len() - 1] {
            let folder = contrib.join("Archive").join(name(index));
            std::fs::create_dir_all(&folder).expect("archive folder");
            let filename = format!("{}_{major}.0.tar.gz", name(index));
            std::fs::write(
                folder.join(&filename),
                tarball(&name(index), &description(index, *major, needs)),
            )
            .expect("tarball");
            archive.entry(name(index)).or_default().push(ArchivedFile {
                filename,
                size: None,
                modified: Some(1_700_000_000.0),
                ..ArchivedFile::default()
            });
        }
    }
    std::fs::write(contrib.join("PACKAGES"), packages).expect("PACKAGES");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(&cran::rds::serialize(&archive_value(&archive)))
        .expect("rds");
    std::fs::write(
        contrib.join("Meta/archive.rds"),
        gzip.finish().expect("gzip"),
    )
    .expect("archive.rds");
}

/// What an unpinned `install.packages()` gets from a `PACKAGES` index: each package listed
/// without a refusal, in the version listed, when every package it needs (transitively) is
/// installable in a version its constraint accepts. A stanza listed only to carry its refusal
/// installs nothing, and a package that needs it fails at that refusal (R prints its URL).
fn installable(index: &str) -> HashMap<String, String> {
    let paragraphs = cran::parse_packages(index).expect("PACKAGES parses");
    let mut kept: HashMap<String, (Version, &deb822_fast::Paragraph)> = paragraphs
        .iter()
        .filter(|paragraph| paragraph.get("Formulary-Refused").is_none())
        .filter_map(|paragraph| {
            let version = Version::parse(Ecosystem::Cran, paragraph.get("Version")?).ok()?;
            Some((paragraph.get("Package")?.to_owned(), (version, paragraph)))
        })
        .collect();
    loop {
        let before = kept.len();
        let snapshot: HashMap<String, Version> = kept
            .iter()
            .map(|(name, (version, _))| (name.clone(), version.clone()))
            .collect();
        kept.retain(|_, (_, paragraph)| {
            cran::dependencies(paragraph).iter().all(|dependency| {
                snapshot
                    .get(&dependency.name)
                    .is_some_and(|version| dependency.range.contains(version))
            })
        });
        if kept.len() == before {
            return kept
                .into_iter()
                .map(|(name, (version, _))| (name, version.to_string()))
                .collect();
        }
    }
}

/// (allowed, the reason codes) of a decision as JSON.
fn verdict(decision: &Value) -> (bool, Vec<String>) {
    (
        decision["allowed"].as_bool().expect("allowed"),
        decision["reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|reason| reason["code"].as_str().map(str::to_owned))
            .collect(),
    )
}

fn engine_verdict(decision: &Decision) -> (bool, Vec<String>) {
    verdict(&serde_json::to_value(decision).expect("a decision serialises"))
}

async fn check_case(case: &Case, workspace: &Workspace) -> Result<usize, TestCaseError> {
    let root = workspace.folder.path().join("upstream");
    write_repository(&root, case);
    let (_upstream, upstream_url) = static_server(&root);
    // The data folder `formulary policy check` is given (see `Workspace::command`).
    let data = workspace.folder.path().join("data");
    std::fs::create_dir_all(&data).expect("data folder");
    let database_url = workspace.database_url().map_or_else(
        || format!("sqlite://{}", data.join("formulary.db").display()),
        str::to_owned,
    );
    let database = Database::open(&database_url).await.expect("database");
    let trust: OrgCode = "RJ1".parse().expect("code");
    database
        .add_organisation(
            &Organisation {
                code: trust.clone(),
                name: "A trust".to_owned(),
            },
            "test",
        )
        .await
        .expect("organisation");
    let settings = EcosystemSettings {
        stance: if case.curated {
            Stance::Curated
        } else {
            Stance::Open
        },
        ..EcosystemSettings::default()
    };
    database
        .set_ecosystem_settings(&trust, Ecosystem::Cran, &settings, "test")
        .await
        .expect("settings");
    for entry in &case.entries {
        let range = match entry.from {
            0 => VersionRange::every(Ecosystem::Cran),
            from => VersionRange::parse(Ecosystem::Cran, &format!(">= {from}.0")).expect("range"),
        };
        database
            .add_entry(
                &EntryDraft {
                    organisation: if entry.national {
                        OrgCode::national()
                    } else {
                        trust.clone()
                    },
                    component: Component::new(Ecosystem::Cran, &name(entry.package)).expect("name"),
                    range,
                    status: entry.status,
                    constraints: None,
                    review_date: None,
                    expires: None,
                    waives: Vec::new(),
                    decided_by: "test".to_owned(),
                    reason: "a random formulary".to_owned(),
                    mentor: None,
                },
                "test",
            )
            .await
            .expect("entry");
    }
    let blobs = BlobStore::local(&workspace.folder.path().join("blobs")).expect("blobs");
    let options = UpstreamOptions {
        budget: Budget::within(Duration::from_secs(10)),
        patience: Duration::from_secs(10),
        revalidate_after: Duration::from_secs(3600),
    };
    let cran = Arc::new(
        CranGateway::new(
            database.clone(),
            blobs.clone(),
            vec![url::Url::parse(&upstream_url).expect("url")],
            &options,
        )
        .expect("gateway"),
    );
    let mut state = AppState::new(database.clone(), blobs, None, trust.clone())
        .await
        .expect("state");
    state.cran = Some(Arc::clone(&cran));
    // The admissions job's work, then the snapshot reloaded, as `formulary serve` does.
    let sources = ClosureSources {
        cran: Some(Arc::clone(&cran)),
        ..ClosureSources::default()
    };
    refresh_admissions(&database, &state.snapshot.current(), &sources)
        .await
        .expect("admissions");
    state.snapshot.refresh(&database).await.expect("snapshot");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = formulary_server::app(state.clone());
    let serving = tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();

    // The gateway first: what it reads (archived DESCRIPTIONs) is evidence for the others.
    // Its answer is what an unpinned install from its index gets.
    let index = http
        .get(format!("{base}/o/RJ1/cran/src/contrib/PACKAGES"))
        .send()
        .await
        .expect("PACKAGES")
        .text()
        .await
        .expect("text");
    let listed = installable(&index);

    // Every version of every package, asked of the engine, the API and `policy check`.
    let wanted: Vec<(usize, u32)> = case
        .packages
        .iter()
        .enumerate()
        .flat_map(|(index, versions)| versions.iter().map(move |(major, _)| (index, *major)))
        .collect();
    let snapshot = state.snapshot.current();
    let view = View {
        organisation: trust.clone(),
        at: Utc::now(),
    };
    let mut rules_only = Vec::new();
    for (index, major) in &wanted {
        let component = Component::new(Ecosystem::Cran, &name(*index)).expect("name");
        let releases = database.releases_of(&component).await.expect("releases");
        let version = Version::parse(Ecosystem::Cran, &format!("{major}.0")).expect("version");
        rules_only.push(evaluate_version(
            &snapshot, &view, &component, &version, &releases,
        ));
    }
    let mut engine = rules_only.clone();
    formulary_gateway::explain_cran_dependencies(&database, &snapshot, &view, &mut engine)
        .await
        .expect("dependencies explained");
    let purls: Vec<String> = wanted
        .iter()
        .map(|(index, major)| format!("pkg:cran/{}@{major}.0", name(*index)))
        .collect();
    let mut api = Vec::new();
    for purl in &purls {
        let answer: Value = http
            .get(format!("{base}/api/v1/policy/check"))
            .query(&[("purl", purl.as_str()), ("organisation", "RJ1")])
            .send()
            .await
            .expect("policy check answers")
            .json()
            .await
            .expect("JSON");
        api.push(verdict(&answer));
    }
    let mut arguments = vec!["policy", "check", "--org", "RJ1", "--json"];
    arguments.extend(purls.iter().map(String::as_str));
    let output = workspace.run(&arguments);
    let cli: Option<Vec<(bool, Vec<String>)>> = if case.entries.is_empty() && !case.curated {
        // Nothing could deny: `policy check` refuses to answer from an empty formulary.
        prop_assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
        None
    } else {
        let report: Value = serde_json::from_slice(&output.stdout).map_err(|error| {
            TestCaseError::fail(format!(
                "{error}: {}{}",
                text(&output.stdout),
                text(&output.stderr)
            ))
        })?;
        Some(
            report["decisions"]
                .as_array()
                .expect("decisions")
                .iter()
                .map(verdict)
                .collect(),
        )
    };
    serving.abort();

    let mut served_allowed = 0;
    for (position, purl) in purls.iter().enumerate() {
        let from_engine = engine_verdict(&engine[position]);
        prop_assert_eq!(
            &from_engine,
            &api[position],
            "{}: the engine and the API differ; the gateway lists {:?}",
            purl,
            listed
        );
        if let Some(cli) = &cli {
            prop_assert_eq!(
                &from_engine,
                &cli[position],
                "{}: the engine and `policy check` differ",
                purl
            );
        }
    }
    // The gateway's PACKAGES: an unpinned install gets each package in the newest version the
    // rules allow, and only when the answer for that version (dependencies included) is
    // "allowed".
    let mut by_package: BTreeMap<usize, Vec<(u32, bool, bool)>> = BTreeMap::new();
    for (position, (index, major)) in wanted.iter().enumerate() {
        by_package.entry(*index).or_default().push((
            *major,
            rules_only[position].allowed,
            engine[position].allowed,
        ));
    }
    for (index, versions) in by_package {
        let newest_by_rules = versions
            .iter()
            .filter(|(_, by_rules, _)| *by_rules)
            .max_by_key(|(major, _, _)| *major);
        let expected = newest_by_rules
            .filter(|(_, _, answer)| *answer)
            .map(|(major, _, _)| format!("{major}.0"));
        if expected.is_some() {
            served_allowed += 1;
        }
        prop_assert_eq!(
            listed.get(&name(index)).cloned(),
            expected,
            "{}: the gateway's PACKAGES and the answers differ (versions: (major, rules allow, answer) {:?}); engine said {:?}",
            name(index),
            versions,
            engine
                .iter()
                .filter(|decision| decision.component.name.as_str() == name(index))
                .map(|decision| (decision.version.clone(), decision.allowed, decision.reasons.iter().map(|reason| reason.message.clone()).collect::<Vec<_>>()))
                .collect::<Vec<_>>()
        );
    }
    Ok(served_allowed)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_engine_the_api_policy_check_and_the_gateway_give_one_answer(seed in any::<u64>()) {
        let case = case_from(seed);
        let workspace = Workspace::new();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(check_case(&case, &workspace)).map_err(|error| {
            TestCaseError::fail(format!("{error}\ncase: {case:#?}"))
        })?;
    }
}
