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
            size: None,
            modified: None,
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
    assert_eq!(readxl.len(), 1, "{readxl:?}");
    assert!(
        readxl[0].contains("no version of tibble that satisfies it can be installed")
            && readxl[0].contains("cannot be installed: what it needs is not met"),
        "{readxl:?}"
    );
    let orphan = unmet(&snapshot, "orphan");
    assert_eq!(
        orphan,
        ["it needs missingpkg (*), which this repository does not have. Installing it must fail until that is resolved"]
    );
}
