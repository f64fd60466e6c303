//! TOML lockfiles: `uv.lock`, `pylock.toml` (PEP 751) and `poetry.lock`. Only packages that come
//! from a package index are judged; the local project (uv's `editable`, `virtual` and
//! `directory` sources, PEP 751's `directory`) and packages from VCS, URLs or paths are listed as
//! not judged, with why.

use formulary_core::ecosystems::Ecosystem;

use super::environment::Environment;
use super::{pin, printable, Pins};

/// Which TOML lockfile a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// uv's `uv.lock`: `version = 1` and `[[package]]` with a `source` table.
    Uv,
    /// PEP 751 `pylock.toml`: `lock-version` and `[[packages]]`.
    Pylock,
    /// Poetry's `poetry.lock`: `[metadata]` with `content-hash`, and `[[package]]`.
    Poetry,
}

impl Format {
    /// Recognises a lockfile by its content.
    pub(super) fn of(document: &toml::Table) -> Option<Format> {
        if document.contains_key("lock-version") && document.contains_key("packages") {
            Some(Format::Pylock)
        } else if document
            .get("metadata")
            .and_then(toml::Value::as_table)
            .is_some_and(|metadata| metadata.contains_key("content-hash"))
        {
            Some(Format::Poetry)
        } else if document.get("version").is_some_and(toml::Value::is_integer)
            && document.contains_key("package")
        {
            Some(Format::Uv)
        } else {
            None
        }
    }
}

/// Reads the packages of a lockfile.
pub(super) fn read(
    document: &toml::Table,
    format: Format,
    environment: &Environment,
) -> anyhow::Result<Pins> {
    let table = if format == Format::Pylock {
        "packages"
    } else {
        "package"
    };
    let packages = document
        .get(table)
        .and_then(toml::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut found = Pins::default();
    for package in packages {
        let Some(name) = package.get("name").and_then(toml::Value::as_str) else {
            found
                .skipped
                .push("a package without a name; not judged".to_owned());
            continue;
        };
        let name = printable(name);
        let not_from_an_index = match format {
            Format::Uv => uv_source(package, &name),
            Format::Pylock => pylock_source(package, &name),
            Format::Poetry => poetry_source(package, &name),
        };
        if let Some(why) = not_from_an_index {
            found.skipped.push(why);
            continue;
        }
        if format == Format::Pylock {
            if let Some(marker) = package.get("marker").and_then(toml::Value::as_str) {
                let tree: pep508_rs::MarkerTree = match marker.parse() {
                    Ok(tree) => tree,
                    Err(error) => {
                        found.skipped.push(format!(
                            "{name}: its marker '{}' cannot be read ({}); not judged",
                            printable(marker),
                            error.to_string().lines().next().unwrap_or_default()
                        ));
                        continue;
                    }
                };
                if !environment.holds(&tree)? {
                    found.skipped.push(format!(
                        "{name}: only for environments where {}, and markers were evaluated for {}; not judged",
                        printable(marker),
                        environment.describe()?
                    ));
                    continue;
                }
            }
        }
        match package.get("version").and_then(toml::Value::as_str) {
            Some(version) => match pin(Ecosystem::Pypi, &name, version) {
                Ok(pinned) => found.pins.push(pinned),
                Err(error) => found.skipped.push(format!("{name}: {error}")),
            },
            None => found
                .skipped
                .push(format!("{name} has no version; not judged")),
        }
    }
    Ok(found)
}

/// uv: `source = { registry = "…" }` is judged; the project itself and other origins are not.
fn uv_source(package: &toml::Value, name: &str) -> Option<String> {
    let source = package.get("source")?.as_table()?;
    for kind in ["editable", "virtual", "directory"] {
        if let Some(path) = source.get(kind).and_then(toml::Value::as_str) {
            return Some(format!(
                "{name} is the local project ({kind} {}), not a released package; not judged",
                printable(path)
            ));
        }
    }
    for kind in ["git", "url", "path"] {
        if let Some(location) = source.get(kind).and_then(toml::Value::as_str) {
            return Some(format!(
                "{name} comes from {kind} {}, not from a package index; not judged",
                printable(location)
            ));
        }
    }
    None
}

/// PEP 751: `directory` is a local project; `vcs` and `archive` are not from an index.
fn pylock_source(package: &toml::Value, name: &str) -> Option<String> {
    let location = |table: &toml::Value| {
        printable(
            table
                .get("url")
                .or_else(|| table.get("path"))
                .and_then(toml::Value::as_str)
                .unwrap_or("?"),
        )
    };
    if let Some(directory) = package.get("directory") {
        return Some(format!(
            "{name} is a local project (directory {}), not a released package; not judged",
            location(directory)
        ));
    }
    for kind in ["vcs", "archive"] {
        if let Some(table) = package.get(kind) {
            return Some(format!(
                "{name} comes from {kind} {}, not from a package index; not judged",
                location(table)
            ));
        }
    }
    None
}

/// Poetry: `source.type` of `git`, `directory`, `file` or `url` is not from an index (`legacy`
/// is another index, and is judged).
fn poetry_source(package: &toml::Value, name: &str) -> Option<String> {
    let source = package.get("source")?;
    let kind = source.get("type").and_then(toml::Value::as_str)?;
    if !matches!(kind, "git" | "directory" | "file" | "url") {
        return None;
    }
    let url = source
        .get("url")
        .and_then(toml::Value::as_str)
        .unwrap_or("?");
    Some(format!(
        "{name} comes from {kind} {}, not from a package index; not judged",
        printable(url)
    ))
}
