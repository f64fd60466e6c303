//! conda environments, recognised by content: conda's explicit files (`conda list --explicit`,
//! `@EXPLICIT` then one package URL a line), `conda-lock.yml` (version 1: a `package` list of
//! `name`, `version` and `manager`) and `pixi.lock` (versions 4 to 6: a `packages` list whose
//! entries are `conda:` or `pypi:` URLs, with `name` and `version` where written). conda
//! packages are judged as `pkg:conda/…` and pip packages as `pkg:pypi/…`; a package locked for
//! several platforms is judged once. Local paths and source packages are listed as skipped.

use std::collections::BTreeSet;

use anyhow::bail;
use formulary_core::ecosystems::Ecosystem;
use serde_yaml::Value;

use super::{pin, printable, Pins};

/// Reads `text` when it is a conda explicit file, a `conda-lock.yml` or a `pixi.lock`; `None`
/// when it is none of them.
pub(super) fn read(text: &str) -> Option<anyhow::Result<Pins>> {
    if text.lines().any(|line| line.trim() == "@EXPLICIT") {
        return Some(Ok(read_explicit(text)));
    }
    // Only YAML documents that look like one of the two lockfiles are parsed.
    let looks_like_lock = text
        .lines()
        .any(|line| line.starts_with("package:") || line.starts_with("packages:"))
        && text.lines().any(|line| line.starts_with("version:"));
    if !looks_like_lock {
        return None;
    }
    let document: Value = serde_yaml::from_str(text).ok()?;
    let mapping = document.as_mapping()?;
    if mapping.contains_key("metadata") && mapping.contains_key("package") {
        return Some(read_conda_lock(&document));
    }
    if mapping.contains_key("environments") && mapping.contains_key("packages") {
        return Some(read_pixi_lock(&document));
    }
    None
}

/// Name, version and build of a conda package file name (`name-version-build.conda` or
/// `.tar.bz2`).
fn split_filename(filename: &str) -> Option<(&str, &str)> {
    let stem = filename
        .strip_suffix(".conda")
        .or_else(|| filename.strip_suffix(".tar.bz2"))?;
    let mut parts = stem.rsplitn(3, '-');
    let (_build, version, name) = (parts.next()?, parts.next()?, parts.next()?);
    (!name.is_empty() && !version.is_empty()).then_some((name, version))
}

/// The file name at the end of a package URL or path (without `#hash` or `?query`).
fn filename_of(location: &str) -> &str {
    let location = location.split(['#', '?']).next().unwrap_or(location);
    location.rsplit('/').next().unwrap_or(location)
}

struct Collector {
    found: Pins,
    seen: BTreeSet<(Ecosystem, String, String)>,
}

impl Collector {
    fn new() -> Collector {
        Collector {
            found: Pins::default(),
            seen: BTreeSet::new(),
        }
    }

    fn add(&mut self, ecosystem: Ecosystem, name: &str, version: &str) {
        if !self
            .seen
            .insert((ecosystem, name.to_ascii_lowercase(), version.to_owned()))
        {
            return;
        }
        match pin(ecosystem, name, version) {
            Ok(pinned) => self.found.pins.push(pinned),
            Err(error) => self.found.skipped.push(format!(
                "{} {}: {error}; not judged",
                printable(name),
                printable(version)
            )),
        }
    }

    fn skip(&mut self, why: String) {
        self.found.skipped.push(why);
    }
}

/// An explicit file: every URL line names a package file.
fn read_explicit(text: &str) -> Pins {
    let mut collector = Collector::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line == "@EXPLICIT" {
            continue;
        }
        match split_filename(filename_of(line)) {
            Some((name, version)) => collector.add(Ecosystem::Conda, name, version),
            None => collector.skip(format!(
                "{} is not a conda package file; not judged",
                printable(line)
            )),
        }
    }
    collector.found
}

fn text<'a>(entry: &'a Value, key: &str) -> Option<&'a str> {
    entry.get(key).and_then(Value::as_str)
}

/// A YAML scalar as text (versions such as `1.0` are read by YAML as numbers).
fn scalar(entry: &Value, key: &str) -> Option<String> {
    match entry.get(key)? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// `conda-lock.yml` version 1.
fn read_conda_lock(document: &Value) -> anyhow::Result<Pins> {
    let version = document.get("version").and_then(Value::as_u64).unwrap_or(0);
    if version != 1 {
        bail!("it is a version {version} conda-lock file; Formulary reads version 1 (conda-lock 1 and 2 write it)");
    }
    let Some(packages) = document.get("package").and_then(Value::as_sequence) else {
        bail!("its \"package\" is not a list");
    };
    let mut collector = Collector::new();
    for package in packages {
        let (Some(name), Some(version)) = (text(package, "name"), scalar(package, "version"))
        else {
            collector.skip("a package without a name or version; not judged".to_owned());
            continue;
        };
        match text(package, "manager").unwrap_or("conda") {
            "conda" => collector.add(Ecosystem::Conda, name, &version),
            "pip" => collector.add(Ecosystem::Pypi, name, &version),
            other => collector.skip(format!(
                "{} is managed by {}, which Formulary does not know; not judged",
                printable(name),
                printable(other)
            )),
        }
    }
    Ok(collector.found)
}

/// `pixi.lock` versions 4 to 6.
fn read_pixi_lock(document: &Value) -> anyhow::Result<Pins> {
    let version = document.get("version").and_then(Value::as_u64).unwrap_or(0);
    if !(4..=6).contains(&version) {
        bail!("it is a version {version} pixi.lock; Formulary reads versions 4 to 6 (run `pixi install` with a current pixi to rewrite it)");
    }
    let Some(packages) = document.get("packages").and_then(Value::as_sequence) else {
        bail!("its \"packages\" is not a list");
    };
    let mut collector = Collector::new();
    for package in packages {
        // Version 6 writes `conda: URL` or `pypi: URL`; versions 4 and 5 `kind` and `url`.
        let (ecosystem, location) = if let Some(location) = text(package, "conda") {
            (Ecosystem::Conda, location)
        } else if let Some(location) = text(package, "pypi") {
            (Ecosystem::Pypi, location)
        } else {
            let ecosystem = match text(package, "kind") {
                Some("conda") => Ecosystem::Conda,
                Some("pypi") => Ecosystem::Pypi,
                _ => {
                    collector.skip("a package of an unknown kind; not judged".to_owned());
                    continue;
                }
            };
            (ecosystem, text(package, "url").unwrap_or(""))
        };
        let written = text(package, "name").zip(scalar(package, "version"));
        let from_file = (ecosystem == Ecosystem::Conda)
            .then(|| split_filename(filename_of(location)))
            .flatten();
        let local = !location.contains("://");
        match (written, from_file) {
            _ if local && ecosystem == Ecosystem::Pypi => collector.skip(format!(
                "{} is a local project; not judged",
                printable(location)
            )),
            (Some((name, version)), _) => collector.add(ecosystem, name, &version),
            (None, Some((name, version))) => collector.add(ecosystem, name, version),
            (None, None) => collector.skip(format!(
                "{} has no name and version (a source package?); not judged",
                printable(location)
            )),
        }
    }
    Ok(collector.found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pins(found: &Pins) -> Vec<String> {
        found
            .pins
            .iter()
            .map(|pinned| format!("{}@{}", pinned.component, pinned.version))
            .collect()
    }

    #[test]
    fn reads_an_explicit_file() {
        let text = "# This file may be used to create an environment using:\n# platform: linux-64\n@EXPLICIT\nhttps://conda.anaconda.org/conda-forge/linux-64/numpy-1.26.4-py312heda63a1_0.conda#hash\nhttps://conda.anaconda.org/conda-forge/noarch/tzdata-2024a-h0c530f3_0.tar.bz2\nhttps://example.org/not-a-package.txt\n";
        let found = read(text).unwrap().unwrap();
        assert_eq!(
            pins(&found),
            ["pkg:conda/numpy@1.26.4", "pkg:conda/tzdata@2024a"]
        );
        assert_eq!(found.skipped.len(), 1);
    }

    #[test]
    fn reads_a_conda_lock_file() {
        let text = "version: 1\nmetadata:\n  platforms: [linux-64, osx-arm64]\npackage:\n- name: numpy\n  version: 1.26.4\n  manager: conda\n  platform: linux-64\n- name: numpy\n  version: 1.26.4\n  manager: conda\n  platform: osx-arm64\n- name: requests\n  version: 2.32.3\n  manager: pip\n  platform: linux-64\n- name: tzdata\n  version: 2024a\n  manager: conda\n";
        let found = read(text).unwrap().unwrap();
        assert_eq!(
            pins(&found),
            [
                "pkg:conda/numpy@1.26.4",
                "pkg:pypi/requests@2.32.3",
                "pkg:conda/tzdata@2024a"
            ]
        );
    }

    #[test]
    fn reads_a_pixi_lock_file() {
        let text = "version: 6\nenvironments:\n  default:\n    channels:\n    - url: https://conda.anaconda.org/conda-forge/\n    packages:\n      linux-64:\n      - conda: https://conda.anaconda.org/conda-forge/linux-64/python-3.12.7-hc5c86c4_0_cpython.conda\npackages:\n- conda: https://conda.anaconda.org/conda-forge/linux-64/python-3.12.7-hc5c86c4_0_cpython.conda\n  sha256: abc\n  md5: def\n  license: Python-2.0\n  size: 1\n- conda: https://conda.anaconda.org/conda-forge/noarch/r-base-4.4.1-h0_0.conda\n  name: r-base\n  version: 4.4.1\n- pypi: https://files.pythonhosted.org/packages/f9/9b/requests-2.32.3-py3-none-any.whl\n  name: requests\n  version: 2.32.3\n- pypi: ./local-project\n  name: local-project\n  version: 0.1.0\n- conda: ./recipes/mine\n";
        let found = read(text).unwrap().unwrap();
        assert_eq!(
            pins(&found),
            [
                "pkg:conda/python@3.12.7",
                "pkg:conda/r-base@4.4.1",
                "pkg:pypi/requests@2.32.3"
            ]
        );
        assert_eq!(found.skipped.len(), 2, "{:?}", found.skipped);
    }

    #[test]
    fn other_documents_are_not_conda_locks() {
        assert!(read("requests==2.32.3\n").is_none());
        assert!(
            read("lockfileVersion: '9.0'\npackages:\n  /a@1.0.0:\n    resolution: {}\n").is_none()
        );
        let old = "version: 2\nenvironments: {}\npackages: []\n";
        assert!(read(old).unwrap().is_err());
    }
}
