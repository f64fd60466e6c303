//! What every part of the CRAN front-end shares: which paths are repository trees, what a
//! package file name carries, the fields of a `PACKAGES` entry, and where trees are stored.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deb822_fast::Paragraph;
use formulary_core::ecosystems::cran::{self, licence_to_spdx};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::policy::Release;
use formulary_core::Component;
use formulary_store::Database;

use crate::error::GatewayError;

/// Cache scope of CRAN trees in the store.
pub(crate) const SCOPE: &str = "cran";

/// The fields a `PACKAGES` entry takes from a DESCRIPTION (what `tools::write_PACKAGES` keeps).
pub(crate) const INDEX_FIELDS: [&str; 14] = [
    "Package",
    "Version",
    "Priority",
    "Depends",
    "Imports",
    "LinkingTo",
    "Suggests",
    "Enhances",
    "License",
    "License_is_FOSS",
    "License_restricts_use",
    "OS_type",
    "Archs",
    "NeedsCompilation",
];

/// True for the repository trees R asks for: `src/contrib`, `bin/windows/contrib/X.Y`,
/// `bin/macosx/contrib/X.Y` and `bin/macosx/PLATFORM/contrib/X.Y`.
pub fn is_tree(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let r_version = |text: &str| {
        text.split('.').count() == 2
            && text.split('.').all(|part| {
                !part.is_empty() && part.len() <= 3 && part.bytes().all(|b| b.is_ascii_digit())
            })
    };
    let platform = |text: &str| {
        (1..=40).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    };
    match parts.as_slice() {
        ["src", "contrib"] => true,
        ["bin", "windows", "contrib", version] | ["bin", "macosx", "contrib", version] => {
            r_version(version)
        }
        ["bin", "macosx", name, "contrib", version] => platform(name) && r_version(version),
        _ => false,
    }
}

/// The package and version a file name carries: `readxl_1.4.3.tar.gz` (source), `.zip`
/// (Windows) or `.tgz` (macOS).
pub fn parse_filename(filename: &str) -> Option<(Component, Version)> {
    let stem = [".tar.gz", ".zip", ".tgz"]
        .iter()
        .find_map(|suffix| filename.strip_suffix(suffix))?;
    let (name, version) = stem.split_once('_')?;
    if filename.len() > 200 || filename.contains(['/', '\\']) {
        return None;
    }
    let component = Component::new(Ecosystem::Cran, name).ok()?;
    let version = Version::parse(Ecosystem::Cran, version).ok()?;
    Some((component, version))
}

pub(crate) fn field<'a>(paragraph: &'a Paragraph, name: &str) -> Option<&'a str> {
    paragraph.get(name)
}

/// The component, version and release evidence a `PACKAGES` paragraph describes.
pub(crate) fn release_of(
    paragraph: &Paragraph,
    published: &HashMap<(String, String), DateTime<Utc>>,
    dated_upstream: &std::collections::HashSet<(String, String)>,
) -> Option<(Component, Release)> {
    let name = field(paragraph, "Package")?;
    let version_text = field(paragraph, "Version")?;
    let component = Component::new(Ecosystem::Cran, name).ok()?;
    let version = Version::parse(Ecosystem::Cran, version_text).ok()?;
    let licence = field(paragraph, "License").and_then(licence_to_spdx);
    let key = (name.to_owned(), version_text.to_owned());
    let published = published.get(&key).copied();
    let dated_by_first_sight = published.is_some() && !dated_upstream.contains(&key);
    Some((
        component,
        Release {
            dated_by_first_sight,
            version,
            published,
            yanked: None,
            licence,
            install_scripts: false,
        },
    ))
}

/// A refusal's reason as one URL path segment (lower-case letters, digits and dashes): R prints
/// only the URL of a download that failed, so refused files are listed under
/// `_blocked/{reason}/` and the reason is in what R prints.
pub fn refusal_slug(decision: &formulary_core::policy::Decision) -> String {
    let headline = decision.headline().unwrap_or("denied by policy");
    let mut slug = String::new();
    for character in headline.chars() {
        if character.is_ascii_alphanumeric() {
            slug.push(character.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= 150 {
            break;
        }
    }
    slug.trim_matches('-').to_owned()
}

/// The store key of a tree's cached index (`src/contrib` → `src-contrib`).
pub(crate) fn tree_key(tree: &str) -> String {
    tree.replace('/', "-")
}

/// The cached `PACKAGES` of a tree, as the gateway last fetched it (empty when it never did):
/// for explaining dependencies outside a request.
pub async fn cached_index(database: &Database, tree: &str) -> Result<Vec<Paragraph>, GatewayError> {
    Ok(
        match database.upstream_document(SCOPE, &tree_key(tree)).await? {
            Some(stored) => cran::read_packages(&stored.document).paragraphs,
            None => Vec::new(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_r_repository_trees_are_accepted() {
        for good in [
            "src/contrib",
            "bin/windows/contrib/4.4",
            "bin/macosx/big-sur-arm64/contrib/4.4",
            "bin/macosx/contrib/4.3",
        ] {
            assert!(is_tree(good), "{good}");
        }
        for bad in [
            "src",
            "src/contrib/../..",
            "bin/windows/contrib/latest",
            "bin/macosx/../contrib/4.4",
            "etc/passwd",
            "",
        ] {
            assert!(!is_tree(bad), "{bad}");
        }
    }

    #[test]
    fn file_names_carry_package_and_version() {
        let (component, version) = parse_filename("readxl_1.4.3.tar.gz").unwrap();
        assert_eq!(
            (component.name.as_str(), version.to_string().as_str()),
            ("readxl", "1.4.3")
        );
        assert!(parse_filename("data.table_1.15.4.zip").is_some());
        for bad in [
            "readxl.tar.gz",
            "../x_1.0.tar.gz",
            "readxl_1.0.exe",
            "1x_1.0.tar.gz",
        ] {
            assert!(parse_filename(bad).is_none(), "{bad}");
        }
    }
}
