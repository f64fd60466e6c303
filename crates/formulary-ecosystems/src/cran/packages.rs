use deb822_fast::{Deb822, Paragraph};
use thiserror::Error;

use crate::ecosystem::Ecosystem;
use crate::range::VersionRange;

/// A `PACKAGES` file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PackagesError {
    /// Not in the deb822 format.
    #[error("the PACKAGES index is malformed: {0}")]
    Malformed(String),
    /// A paragraph lacks `Package` or `Version`.
    #[error("a PACKAGES entry has no {0} field")]
    MissingField(&'static str),
}

/// Packages that ship with R itself: dependencies on them are satisfied by R, not a repository.
pub const BASE_PACKAGES: [&str; 15] = [
    "R",
    "base",
    "compiler",
    "datasets",
    "graphics",
    "grDevices",
    "grid",
    "methods",
    "parallel",
    "splines",
    "stats",
    "stats4",
    "tcltk",
    "tools",
    "utils",
];

/// Parses a `PACKAGES` file: one paragraph per package, each with at least `Package` and `Version`.
pub fn parse_packages(text: &str) -> Result<Vec<Paragraph>, PackagesError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let document: Deb822 = text
        .parse()
        .map_err(|error: deb822_fast::Error| PackagesError::Malformed(error.to_string()))?;
    let paragraphs: Vec<Paragraph> = document.iter().cloned().collect();
    for paragraph in &paragraphs {
        paragraph
            .get("Package")
            .ok_or(PackagesError::MissingField("Package"))?;
        paragraph
            .get("Version")
            .ok_or(PackagesError::MissingField("Version"))?;
    }
    Ok(paragraphs)
}

/// Renders paragraphs as a `PACKAGES` file (fields in their order; continuation lines indented).
pub fn render_packages(paragraphs: &[Paragraph]) -> String {
    let mut text = String::new();
    for paragraph in paragraphs {
        for (name, value) in paragraph.iter() {
            text.push_str(name);
            text.push_str(": ");
            let mut lines = value.lines();
            text.push_str(lines.next().unwrap_or_default());
            for line in lines {
                text.push_str("\n        ");
                text.push_str(line.trim_start());
            }
            text.push('\n');
        }
        text.push('\n');
    }
    text
}

/// One dependency a package declares (`Depends`, `Imports` or `LinkingTo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The package depended on.
    pub name: String,
    /// The versions accepted (`*` when none is given).
    pub range: VersionRange,
}

/// The packages a `PACKAGES` entry needs at install time: `Depends`, `Imports` and `LinkingTo`,
/// without R itself and the packages that ship with it. Unreadable constraints are taken as
/// "any version", which never hides a dependency.
pub fn dependencies(paragraph: &Paragraph) -> Vec<Dependency> {
    let mut found = Vec::new();
    for field in ["Depends", "Imports", "LinkingTo"] {
        let Some(value) = paragraph.get(field) else {
            continue;
        };
        for item in value.split(',') {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let (name, constraint) = match item.split_once('(') {
                Some((name, rest)) => (name.trim(), rest.trim_end_matches(')').trim()),
                None => (item, ""),
            };
            if name.is_empty() || BASE_PACKAGES.contains(&name) {
                continue;
            }
            // Continuation lines may break a constraint: fold its white space first.
            let constraint = constraint.split_whitespace().collect::<Vec<_>>().join(" ");
            let range = VersionRange::parse(Ecosystem::Cran, &constraint)
                .unwrap_or_else(|_| VersionRange::every(Ecosystem::Cran));
            found.push(Dependency {
                name: name.to_owned(),
                range,
            });
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Package: readxl\nVersion: 1.4.3\nDepends: R (>= 3.6)\nImports: cellranger, tibble (>=\n        2.0.1), utils\nLinkingTo: cpp11 (>= 0.4.0), progress\nLicense: MIT + file LICENSE\nMD5sum: 0123456789abcdef0123456789abcdef\nNeedsCompilation: yes\n\nPackage: cellranger\nVersion: 1.1.0\nLicense: MIT + file LICENSE\n";

    #[test]
    fn parses_and_renders_packages_files() {
        let paragraphs = parse_packages(SAMPLE).unwrap();
        assert_eq!(paragraphs.len(), 2);
        assert_eq!(paragraphs[0].get("Package"), Some("readxl"));
        let again = parse_packages(&render_packages(&paragraphs)).unwrap();
        assert_eq!(again, paragraphs, "rendering round-trips");
    }

    #[test]
    fn dependencies_skip_r_and_base_packages_and_keep_constraints() {
        let paragraphs = parse_packages(SAMPLE).unwrap();
        let needed: Vec<(String, String)> = dependencies(&paragraphs[0])
            .into_iter()
            .map(|dependency| (dependency.name, dependency.range.to_string()))
            .collect();
        assert_eq!(
            needed,
            [
                ("cellranger", "*"),
                ("tibble", ">= 2.0.1"),
                ("cpp11", ">= 0.4.0"),
                ("progress", "*")
            ]
            .map(|(name, range)| (name.to_owned(), range.to_owned()))
        );
    }

    #[test]
    fn malformed_files_are_errors() {
        assert!(
            parse_packages("Version: 1.0\n").is_err(),
            "no Package field"
        );
        assert!(parse_packages("").unwrap().is_empty());
    }
}
