use formulary_core::ecosystems::cran::ArchivedFile;
use formulary_core::ecosystems::VersionRange;
use formulary_core::{Entry, EntryDraft, OrgCode, Organisation, Status};

use super::*;

fn paragraph(text: &str) -> Paragraph {
    cran::parse_packages(text)
        .expect("PACKAGES")
        .pop()
        .expect("one paragraph")
}

fn prohibited(name: &str, range: &str) -> Entry {
    Entry {
        id: format!("e-{name}"),
        draft: EntryDraft {
            organisation: "RJ1".parse().expect("code"),
            component: Component::new(Ecosystem::Cran, name).expect("name"),
            range: VersionRange::parse(Ecosystem::Cran, range).expect("range"),
            status: Status::Prohibited,
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

fn snapshot(entries: Vec<Entry>) -> PolicySnapshot {
    PolicySnapshot::new(
        [
            Organisation {
                code: OrgCode::national(),
                name: "NHS England".to_owned(),
            },
            Organisation {
                code: "RJ1".parse().expect("code"),
                name: "Trust".to_owned(),
            },
        ],
        [],
        entries,
        [],
    )
}

/// readxl 1.4.5 imports tibble (>= 2.0.1); tibble 3.2.1 is current and 3.1.8 archived; tibble
/// imports pillar; strict needs tibble (>= 3.2).
fn catalogue() -> CranCatalogue {
    let current = [
        paragraph("Package: readxl\nVersion: 1.4.5\nLicense: MIT + file LICENSE\nImports: tibble (>= 2.0.1), utils\n"),
        paragraph("Package: strict\nVersion: 1.0\nLicense: MIT + file LICENSE\nImports: tibble (>= 3.2)\n"),
        paragraph("Package: tibble\nVersion: 3.2.1\nLicense: MIT + file LICENSE\nImports: pillar (>= 1.8)\n"),
        paragraph("Package: pillar\nVersion: 1.9.0\nLicense: GPL-3\n"),
        paragraph("Package: orphan\nVersion: 0.1\nLicense: MIT + file LICENSE\nDepends: R (>= 4.1), missingpkg\n"),
    ];
    let mut archive = Archive::new();
    archive.insert(
        "tibble".to_owned(),
        vec![ArchivedFile {
            filename: "tibble_3.1.8.tar.gz".to_owned(),
            ..ArchivedFile::default()
        }],
    );
    CranCatalogue::new(&current, &HashMap::new(), &archive, &[])
}

fn unmet(snapshot: &PolicySnapshot, package: &str) -> Vec<String> {
    let catalogue = catalogue();
    let view = View {
        organisation: "RJ1".parse().expect("code"),
        at: Utc::now(),
    };
    let mut installability = Installability::new(snapshot, &view, &catalogue);
    let (_, candidate) = catalogue
        .packages
        .get(package)
        .and_then(|found| Some((found, found.candidates.first()?)))
        .expect("known");
    installability
        .unmet(&candidate.dependencies)
        .into_iter()
        .map(|reason| reason.message)
        .collect()
}

#[test]
fn a_dependency_is_met_when_any_allowed_version_satisfies_it() {
    let snapshot = snapshot(vec![prohibited("tibble", ">= 3.2")]);
    assert!(unmet(&snapshot, "readxl").is_empty(), "tibble 3.1.8 serves");
    let strict = unmet(&snapshot, "strict");
    assert_eq!(strict.len(), 1, "{strict:?}");
    assert!(
        strict[0].starts_with("it needs tibble (>= 3.2), and tibble 3.2.1 is denied:"),
        "{strict:?}"
    );
}

#[test]
fn dependencies_are_followed_transitively_and_missing_ones_named() {
    let snapshot = snapshot(vec![prohibited("pillar", "*")]);
    let readxl = unmet(&snapshot, "readxl");
    assert_eq!(
        readxl,
        ["it needs tibble (>= 2.0.1), and tibble 3.2.1 is allowed but cannot be installed: it needs pillar, which cannot be installed in this view. Installing it must fail until that is resolved"]
    );
    let orphan = unmet(&snapshot, "orphan");
    assert_eq!(
        orphan,
        ["it needs missingpkg (*), which this repository does not have. Installing it must fail until that is resolved"]
    );
}

/// What a package needs: (package, lowest version's major number; 0 for any).
type Needs = Vec<(String, u32)>;
/// A random repository: each package's versions (major numbers, oldest first) and their needs.
type Repository = Vec<(String, Vec<(u32, Needs)>)>;

/// A small deterministic generator (no extra dependency for one test).
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

/// The gateway's rule as `cran.rs` applies it to a whole index: each package's newest allowed
/// version, then packages whose dependencies are not kept in a satisfying version are withheld
/// until nothing changes.
fn gateway_keeps(
    packages: &Repository,
    allowed_below: &HashMap<String, u32>,
) -> HashMap<String, u32> {
    let mut kept: HashMap<String, (u32, &Needs)> = packages
        .iter()
        .filter_map(|(name, versions)| {
            versions
                .iter()
                .filter(|(version, _)| *version < allowed_below[name])
                .max_by_key(|(version, _)| *version)
                .map(|(version, needs)| (name.clone(), (*version, needs)))
        })
        .collect();
    loop {
        let before = kept.len();
        let snapshot = kept.clone();
        kept.retain(|_, (_, needs)| {
            needs.iter().all(|(needed, at_least)| {
                snapshot
                    .get(needed)
                    .is_some_and(|(version, _)| version >= at_least)
            })
        });
        if kept.len() == before {
            return kept
                .into_iter()
                .map(|(name, (version, _))| (name, version))
                .collect();
        }
    }
}

#[test]
fn the_answer_is_the_gateways_on_random_repositories_and_formularies() {
    let mut random = Lcg(11);
    let mut outcomes = [0usize; 2];
    for case in 0..300 {
        let count = 2 + random.below(6) as usize;
        let names: Vec<String> = (0..count).map(|index| format!("pkg{index}")).collect();
        let packages: Repository = names
            .iter()
            .map(|name| {
                let versions = (1..=1 + random.below(3) as u32)
                    .map(|version| {
                        let mut needs = Vec::new();
                        for other in names.iter().filter(|other| *other != name) {
                            if random.below(3) == 0 {
                                needs.push((other.clone(), random.below(4) as u32));
                            }
                        }
                        (version, needs)
                    })
                    .collect();
                (name.clone(), versions)
            })
            .collect();
        let allowed_below: HashMap<String, u32> = names
            .iter()
            .map(|name| (name.clone(), 1 + random.below(5) as u32))
            .collect();
        let paragraph_of = |name: &str, version: u32, needs: &[(String, u32)]| {
            let imports: Vec<String> = needs
                .iter()
                .map(|(needed, at_least)| match at_least {
                    0 => needed.clone(),
                    _ => format!("{needed} (>= {at_least}.0)"),
                })
                .collect();
            paragraph(&format!(
                "Package: {name}\nVersion: {version}.0\nLicense: MIT + file LICENSE\nImports: {}\n",
                imports.join(", ")
            ))
        };
        let current: Vec<Paragraph> = packages
            .iter()
            .map(|(name, versions)| {
                let (version, needs) = versions.last().expect("a version");
                paragraph_of(name, *version, needs)
            })
            .collect();
        let imported: Vec<Paragraph> = packages
            .iter()
            .flat_map(|(name, versions)| {
                versions[..versions.len() - 1]
                    .iter()
                    .map(|(version, needs)| paragraph_of(name, *version, needs))
                    .collect::<Vec<_>>()
            })
            .collect();
        let catalogue = CranCatalogue::new(&current, &HashMap::new(), &Archive::new(), &imported);
        let snapshot = snapshot(
            names
                .iter()
                .map(|name| prohibited(name, &format!(">= {}.0", allowed_below[name])))
                .collect(),
        );
        let view = View {
            organisation: "RJ1".parse().expect("code"),
            at: Utc::now(),
        };
        let kept = gateway_keeps(&packages, &allowed_below);
        let mut installability = Installability::new(&snapshot, &view, &catalogue);
        for (name, versions) in &packages {
            for (version, needs) in versions {
                let dependencies: Vec<Dependency> = needs
                    .iter()
                    .map(|(needed, at_least)| Dependency {
                        name: needed.clone(),
                        range: VersionRange::parse(
                            Ecosystem::Cran,
                            &match at_least {
                                0 => "*".to_owned(),
                                _ => format!(">= {at_least}.0"),
                            },
                        )
                        .expect("range"),
                    })
                    .collect();
                let model = needs.iter().all(|(needed, at_least)| {
                    kept.get(needed).is_some_and(|served| served >= at_least)
                });
                let answer = installability.unmet(&dependencies);
                outcomes[usize::from(model)] += 1;
                assert_eq!(
                    answer.is_empty(),
                    model,
                    "case {case}: {name} {version}.0 needs {needs:?}; the gateway keeps {kept:?}; answered {answer:?}"
                );
            }
        }
    }
    assert!(
        outcomes.iter().all(|count| *count > 100),
        "both answers are exercised: {outcomes:?}"
    );
}
