//! Reads the pinned versions of a project's environment, so that `formulary policy check --file`
//! can answer "will my environment be allowed?". Files are recognised by their content, whatever
//! their name: renv lockfiles (JSON with `R` and `Packages`), `uv.lock`, `pylock.toml` (PEP 751)
//! and `poetry.lock` (TOML), npm's `package-lock.json` (v2/v3), `pnpm-lock.yaml` and `yarn.lock`
//! (classic and berry), conda's explicit files, `conda-lock.yml` and `pixi.lock`, and anything
//! else as a pip requirements file, read as pip reads it (includes, constraints, hashes,
//! environment markers). What is not judged (local projects,
//! URLs, unpinned requirements, requirements for other environments) is listed with why.

mod conda_locks;
mod environment;
mod npm_locks;
mod renv;
mod requirements;
mod toml_locks;
mod yarn_lock;

use std::path::Path;

use anyhow::{bail, Context};
use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::{Component, ComponentVersion};

pub use environment::{Environment, Platform};

/// The pins found, and what could not be checked.
#[derive(Debug, Default)]
pub struct Pins {
    /// Every pinned component version, in the order found.
    pub pins: Vec<ComponentVersion>,
    /// What was not judged, with the reason (unpinned requirements, URLs, local projects, …).
    pub skipped: Vec<String>,
}

/// Largest file read.
const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Reads a requirements file or lockfile, recognising its format by its content. Environment
/// markers are evaluated against `environment`.
pub fn read(path: &Path, environment: &Environment) -> anyhow::Result<Pins> {
    let text = read_text(path)?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let shown = path.display();
    if let Ok(document) = serde_json::from_str::<serde_json::Value>(&text) {
        if renv::is_renv(&document) {
            return renv::read(&document).with_context(|| format!("{shown} could not be read"));
        }
        if npm_locks::is_package_lock(&document) {
            return npm_locks::read_package_lock(&document)
                .with_context(|| format!("{shown} could not be read"));
        }
        bail!("{shown} is JSON but not an renv lockfile (one has \"R\" and \"Packages\") or an npm package-lock.json; give a requirements file or a lockfile (renv.lock, uv.lock, pylock.toml, poetry.lock, package-lock.json, pnpm-lock.yaml, yarn.lock)");
    }
    if npm_locks::is_pnpm_lock(&text) {
        return Ok(npm_locks::read_pnpm_lock(&text));
    }
    if let Some(read) = conda_locks::read(&text) {
        return read.with_context(|| format!("{shown} could not be read"));
    }
    if let Some(format) = yarn_lock::format_of(&text) {
        return yarn_lock::read(&text, format)
            .with_context(|| format!("{shown} could not be read"));
    }
    let toml_named = name == "uv.lock"
        || name == "poetry.lock"
        || (name.starts_with("pylock") && name.ends_with(".toml"));
    match toml::from_str::<toml::Table>(&text) {
        Ok(document) => {
            if let Some(format) = toml_locks::Format::of(&document) {
                return toml_locks::read(&document, format, environment)
                    .with_context(|| format!("{shown} could not be read"));
            }
            if toml_named {
                bail!("{shown} is TOML, but not a uv, PEP 751 or Poetry lockfile Formulary knows (no [[package]] or [[packages]] with a version marker)");
            }
        }
        Err(error) if toml_named => {
            bail!("{shown} could not be read: it is not valid TOML ({error})")
        }
        Err(_) => {}
    }
    if name == "renv.lock" {
        bail!("{shown} could not be read: it is not valid JSON");
    }
    requirements::read(path, environment)
}

/// Reads a file as UTF-8 text, refusing very large ones.
fn read_text(path: &Path) -> anyhow::Result<String> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    if size > MAX_FILE_BYTES {
        bail!(
            "{} is larger than 32 MiB; is it really a requirements file or lockfile?",
            path.display()
        );
    }
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {} as UTF-8 text", path.display()))
}

/// Echoed input made safe to print: control characters escaped, cut at 120 characters.
fn printable(text: &str) -> String {
    let mut out = String::new();
    for (count, character) in text.chars().enumerate() {
        if count == 120 {
            out.push('…');
            break;
        }
        if character.is_control() {
            out.extend(character.escape_default());
        } else {
            out.push(character);
        }
    }
    out
}

fn pin(ecosystem: Ecosystem, name: &str, version: &str) -> Result<ComponentVersion, String> {
    let component = Component::new(ecosystem, name).map_err(|error| error.to_string())?;
    let version = Version::parse(ecosystem, version).map_err(|error| error.to_string())?;
    Ok(ComponentVersion { component, version })
}

#[cfg(test)]
mod tests;
