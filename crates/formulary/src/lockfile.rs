//! Reads the pinned versions of a project's environment, so that `formulary policy check --file`
//! can answer "will my environment be allowed?". Understands pip requirements files (pinned with
//! `==`), `uv.lock`, `poetry.lock`, `pylock.toml` and R's `renv.lock`.

use std::path::Path;

use anyhow::{bail, Context};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::{Component, ComponentVersion};

/// The pins found, and lines that could not be checked.
#[derive(Debug, Default)]
pub struct Pins {
    /// Every pinned component version.
    pub pins: Vec<ComponentVersion>,
    /// Lines skipped, with the reason (unpinned requirements, URLs, …).
    pub skipped: Vec<String>,
}

/// Largest lockfile read.
const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Reads a requirements file or lockfile, choosing the format by its name.
pub fn read(path: &Path) -> anyhow::Result<Pins> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        bail!(
            "{} is larger than 32 MiB; is it really a lockfile?",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let pins = if name == "renv.lock" {
        renv(&text)
    } else if name == "uv.lock"
        || name == "poetry.lock"
        || (name.starts_with("pylock") && name.ends_with(".toml"))
    {
        toml_lock(
            &text,
            if name.starts_with("pylock") {
                "packages"
            } else {
                "package"
            },
        )
    } else {
        Ok(requirements(&text))
    };
    pins.with_context(|| format!("{} could not be read", path.display()))
}

fn pin(ecosystem: Ecosystem, name: &str, version: &str) -> Result<ComponentVersion, String> {
    let component = Component::new(ecosystem, name).map_err(|error| error.to_string())?;
    let version = Version::parse(ecosystem, version).map_err(|error| error.to_string())?;
    Ok(ComponentVersion { component, version })
}

/// pip requirements: `name==version`, with extras, markers, hashes and comments allowed.
fn requirements(text: &str) -> Pins {
    let mut found = Pins::default();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.split(" #").next().unwrap_or_default().trim();
        let line = line.trim_end_matches('\\').trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('-') {
            continue;
        }
        let requirement = line
            .split(';')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .next()
            .unwrap_or_default();
        let Some((name, version)) = requirement.split_once("==") else {
            found.skipped.push(format!(
                "line {}: '{}' is not pinned with ==; pin it (pip freeze) to check it",
                index + 1,
                line.escape_debug()
            ));
            continue;
        };
        let name = name.split('[').next().unwrap_or_default().trim();
        match pin(Ecosystem::Pypi, name, version.trim()) {
            Ok(pinned) => found.pins.push(pinned),
            Err(error) => found.skipped.push(format!("line {}: {error}", index + 1)),
        }
    }
    found
}

/// TOML lockfiles with a `[[package]]` (uv, Poetry) or `[[packages]]` (PEP 751) array of tables.
fn toml_lock(text: &str, table: &str) -> anyhow::Result<Pins> {
    let document: toml::Table = toml::from_str(text).context("it is not valid TOML")?;
    let packages = document
        .get(table)
        .and_then(toml::Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut found = Pins::default();
    for package in packages {
        let name = package.get("name").and_then(toml::Value::as_str);
        let version = package.get("version").and_then(toml::Value::as_str);
        match (name, version) {
            (Some(name), Some(version)) => match pin(Ecosystem::Pypi, name, version) {
                Ok(pinned) => found.pins.push(pinned),
                Err(error) => found.skipped.push(error),
            },
            (Some(name), None) => found.skipped.push(format!(
                "{name} has no version (a path or editable project)"
            )),
            _ => found.skipped.push("a package without a name".to_owned()),
        }
    }
    Ok(found)
}

/// R's renv.lock: `{"Packages": {"dplyr": {"Package": "dplyr", "Version": "1.1.4", "Source": "Repository"}}}`.
fn renv(text: &str) -> anyhow::Result<Pins> {
    let document: serde_json::Value = serde_json::from_str(text).context("it is not valid JSON")?;
    let packages = document
        .get("Packages")
        .and_then(serde_json::Value::as_object)
        .context("it has no \"Packages\" object")?;
    let mut found = Pins::default();
    for (key, package) in packages {
        let name = package
            .get("Package")
            .and_then(serde_json::Value::as_str)
            .unwrap_or(key);
        let source = package
            .get("Source")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("Repository");
        if source != "Repository" {
            found.skipped.push(format!(
                "{name} comes from {source}, not a CRAN-like repository"
            ));
            continue;
        }
        match package.get("Version").and_then(serde_json::Value::as_str) {
            Some(version) => match pin(Ecosystem::Cran, name, version) {
                Ok(pinned) => found.pins.push(pinned),
                Err(error) => found.skipped.push(error),
            },
            None => found.skipped.push(format!("{name} has no version")),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirements_files_yield_pins_and_say_what_they_skip() {
        let pins = requirements(
            "# comment\nrequests==2.19.1 \\\n    --hash=sha256:abc\npandas[excel]==2.2.3 ; python_version >= '3.9'\nnumpy>=1.26\n-r other.txt\nBad Name==1.0\n",
        );
        let found: Vec<String> = pins.pins.iter().map(ToString::to_string).collect();
        assert_eq!(found, ["pkg:pypi/requests@2.19.1", "pkg:pypi/pandas@2.2.3"]);
        assert_eq!(pins.skipped.len(), 2, "{:?}", pins.skipped);
        assert!(pins.skipped[0].contains("not pinned"));
    }

    #[test]
    fn uv_and_renv_lockfiles_are_read() {
        let uv = toml_lock("version = 1\n[[package]]\nname = \"requests\"\nversion = \"2.32.3\"\n[[package]]\nname = \"myproject\"\nsource = { editable = \".\" }\n", "package").unwrap();
        assert_eq!(uv.pins.len(), 1);
        assert_eq!(uv.skipped.len(), 1);
        let renv = renv(r#"{"R":{"Version":"4.4.2"},"Packages":{"readxl":{"Package":"readxl","Version":"1.2.0","Source":"Repository"},"mypkg":{"Package":"mypkg","Version":"0.1","Source":"GitHub"}}}"#).unwrap();
        assert_eq!(renv.pins[0].to_string(), "pkg:cran/readxl@1.2.0");
        assert_eq!(renv.skipped.len(), 1);
    }
}
