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

/// Line ends as R reads them: CRLF and lone CR become LF, and a UTF-8 byte-order mark is dropped.
fn normalised(text: &str) -> std::borrow::Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.contains('\r') {
        std::borrow::Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Parses a `PACKAGES` file: one paragraph per package, each with at least `Package` and `Version`.
/// CRLF line ends are read as R reads them.
pub fn parse_packages(text: &str) -> Result<Vec<Paragraph>, PackagesError> {
    let text = normalised(text);
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

/// A `PACKAGES` file read the forgiving way, as R's `available.packages()` reads an upstream's:
/// the entries that can be read, and what was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadPackages {
    /// Every readable entry with `Package` and `Version`, in order.
    pub paragraphs: Vec<Paragraph>,
    /// One line per entry skipped: which one (its position and package, when known) and why.
    pub skipped: Vec<String>,
}

/// Reads a `PACKAGES` file from an upstream: an entry without `Package` or `Version`, or one that
/// is not in the deb822 format, is skipped and listed, never the whole file. CRLF line ends and
/// a byte-order mark are read as R reads them.
pub fn read_packages(text: &str) -> ReadPackages {
    let text = normalised(text);
    let mut read = ReadPackages::default();
    let keep = |position: usize, paragraph: Paragraph, read: &mut ReadPackages| match (
        paragraph.get("Package"),
        paragraph.get("Version"),
    ) {
        (Some(_), Some(_)) => read.paragraphs.push(paragraph),
        (Some(package), None) => read
            .skipped
            .push(format!("entry {position} ({package}) has no Version field")),
        (None, _) => read
            .skipped
            .push(format!("entry {position} has no Package field")),
    };
    match text.parse::<Deb822>() {
        Ok(document) => {
            for (index, paragraph) in document.iter().enumerate() {
                keep(index + 1, paragraph.clone(), &mut read);
            }
        }
        // One malformed entry: read the entries one by one.
        Err(_) => {
            let mut stanza = String::new();
            let mut position = 0;
            let lines = text.lines().chain(std::iter::once(""));
            for line in lines {
                if !line.trim().is_empty() {
                    stanza.push_str(line);
                    stanza.push('\n');
                    continue;
                }
                if stanza.is_empty() {
                    continue;
                }
                position += 1;
                match stanza.parse::<Deb822>() {
                    Ok(document) => {
                        for paragraph in document.iter() {
                            keep(position, paragraph.clone(), &mut read);
                        }
                    }
                    Err(error) => read.skipped.push(format!(
                        "entry {position} is not in the PACKAGES format: {error}"
                    )),
                }
                stanza.clear();
            }
        }
    }
    read
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
    fn crlf_line_ends_are_read_as_r_reads_them() {
        let crlf = SAMPLE.replace('\n', "\r\n");
        let paragraphs = parse_packages(&crlf).unwrap();
        assert_eq!(paragraphs, parse_packages(SAMPLE).unwrap());
        assert_eq!(paragraphs[0].get("Version"), Some("1.4.3"));
        let with_bom = format!("\u{feff}{crlf}");
        assert_eq!(read_packages(&with_bom).paragraphs, paragraphs);
    }

    #[test]
    fn an_entry_without_version_or_in_another_format_is_skipped_not_the_file() {
        let text =
            format!("{SAMPLE}\nPackage: broken\nLicense: MIT\n\nPackage: fine\nVersion: 2.0\n");
        assert!(
            parse_packages(&text).is_err(),
            "the strict reader refuses it"
        );
        let read = read_packages(&text);
        let names: Vec<&str> = read
            .paragraphs
            .iter()
            .filter_map(|paragraph| paragraph.get("Package"))
            .collect();
        assert_eq!(names, ["readxl", "cellranger", "fine"]);
        assert_eq!(read.skipped, ["entry 3 (broken) has no Version field"]);
        // A line that is not a field at all: that entry alone is skipped.
        let text =
            format!("{SAMPLE}\nthis is not a field\nPackage: x\n\nPackage: fine\nVersion: 2.0\n");
        let read = read_packages(&text);
        let names: Vec<&str> = read
            .paragraphs
            .iter()
            .filter_map(|paragraph| paragraph.get("Package"))
            .collect();
        assert_eq!(names, ["readxl", "cellranger", "fine"]);
        assert_eq!(read.skipped.len(), 1, "{:?}", read.skipped);
        assert!(read_packages("").paragraphs.is_empty());
    }

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
