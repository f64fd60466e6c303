//! Version ordering checked against the osv-scalibr fixtures (Apache-2.0, see test-data/SOURCE)
//! and by property tests.

use std::cmp::Ordering;
use std::path::Path;

use formulary_ecosystems::{Ecosystem, Version};
use proptest::prelude::*;

/// Reads a fixture of lines `A < B`, `A = B` or `A > B`; `#` and `//` lines are comments.
fn fixture(file: &str) -> Vec<(String, Ordering, String, usize)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("test-data")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("fixture is readable");
    text.lines()
        .enumerate()
        .filter(|(_, line)| {
            let line = line.trim();
            !line.is_empty() && !line.starts_with('#') && !line.starts_with("//")
        })
        .map(|(index, line)| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "{file}:{}: expected 'A op B'", index + 1);
            let expected = match fields[1] {
                "<" => Ordering::Less,
                "=" => Ordering::Equal,
                ">" => Ordering::Greater,
                other => panic!("{file}:{}: unknown operator {other}", index + 1),
            };
            (
                fields[0].to_owned(),
                expected,
                fields[2].to_owned(),
                index + 1,
            )
        })
        .collect()
}

/// Checks every case; returns how many were checked. PyPI fixtures include a few pre-PEP 440
/// "legacy" versions (`0.1-bulbasaur`): Formulary, like pip 24.1+ and uv, refuses those as
/// invalid instead of ordering them, so such cases are counted separately and must be rare.
fn check(ecosystem: Ecosystem, file: &str) -> usize {
    let cases = fixture(file);
    assert!(!cases.is_empty(), "{file} has cases");
    let mut legacy = 0;
    let mut checked = 0;
    for (left, expected, right, line) in &cases {
        let (Ok(left_version), Ok(right_version)) = (
            Version::parse(ecosystem, left),
            Version::parse(ecosystem, right),
        ) else {
            assert_eq!(
                ecosystem,
                Ecosystem::Pypi,
                "{file}:{line}: {left} or {right} does not parse"
            );
            legacy += 1;
            continue;
        };
        checked += 1;
        assert_eq!(
            left_version.cmp(&right_version),
            *expected,
            "{file}:{line}: {left} vs {right}"
        );
        assert_eq!(
            right_version.cmp(&left_version),
            expected.reverse(),
            "{file}:{line}: reversed"
        );
    }
    if cases.len() > 1_000 {
        assert!(
            legacy * 100 <= cases.len(),
            "{file}: {legacy} of {} cases use legacy versions",
            cases.len()
        );
    }
    checked
}

#[test]
fn pypi_fixtures_order_per_pep_440() {
    let hand_written = check(Ecosystem::Pypi, "pypi-versions.txt");
    let generated = check(Ecosystem::Pypi, "pypi-versions-generated.txt");
    assert!(hand_written + generated > 10_000);
}

#[test]
fn cran_fixtures_order_like_r() {
    let total = check(Ecosystem::Cran, "cran-versions.txt")
        + check(Ecosystem::Cran, "cran-versions-generated.txt");
    assert!(total > 50);
}

fn cran_version_text() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(0u64..30, 1..5),
        prop::collection::vec(prop::bool::ANY, 5),
    )
        .prop_map(|(parts, dashes)| {
            let mut text = String::new();
            for (index, part) in parts.iter().enumerate() {
                if index > 0 {
                    text.push(if dashes[index] { '-' } else { '.' });
                }
                text.push_str(&part.to_string());
            }
            text
        })
}

fn pypi_version_text() -> impl Strategy<Value = String> {
    let release = prop::collection::vec(0u64..20, 1..4);
    let pre = prop::option::of((prop::sample::select(vec!["a", "b", "rc"]), 0u64..5));
    let post = prop::option::of(0u64..5);
    let dev = prop::option::of(0u64..5);
    (release, pre, post, dev).prop_map(|(release, pre, post, dev)| {
        let mut text = release
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".");
        if let Some((kind, number)) = pre {
            text.push_str(&format!("{kind}{number}"));
        }
        if let Some(number) = post {
            text.push_str(&format!(".post{number}"));
        }
        if let Some(number) = dev {
            text.push_str(&format!(".dev{number}"));
        }
        text
    })
}

proptest! {
    #[test]
    fn cran_ordering_is_a_total_order(a in cran_version_text(), b in cran_version_text(), c in cran_version_text()) {
        let [a, b, c] = [&a, &b, &c].map(|text| Version::parse(Ecosystem::Cran, text).unwrap());
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        if a <= b && b <= c {
            prop_assert!(a <= c);
        }
    }

    #[test]
    fn cran_dash_equals_dot(parts in prop::collection::vec(0u64..100, 2..5)) {
        let dotted = parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
        let dashed = parts.iter().map(u64::to_string).collect::<Vec<_>>().join("-");
        prop_assert_eq!(
            Version::parse(Ecosystem::Cran, &dotted).unwrap(),
            Version::parse(Ecosystem::Cran, &dashed).unwrap()
        );
    }

    #[test]
    fn pypi_ordering_is_a_total_order(a in pypi_version_text(), b in pypi_version_text(), c in pypi_version_text()) {
        let [a, b, c] = [&a, &b, &c].map(|text| Version::parse(Ecosystem::Pypi, text).unwrap());
        prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
        if a <= b && b <= c {
            prop_assert!(a <= c);
        }
    }

    #[test]
    fn pypi_release_beats_its_prereleases(release in prop::collection::vec(0u64..20, 1..4), number in 0u64..5) {
        let base = release.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
        let final_release = Version::parse(Ecosystem::Pypi, &base).unwrap();
        for suffix in ["a", "b", "rc", ".dev"] {
            let pre = Version::parse(Ecosystem::Pypi, &format!("{base}{suffix}{number}")).unwrap();
            prop_assert!(pre < final_release);
            prop_assert!(pre.is_prerelease());
        }
    }
}
