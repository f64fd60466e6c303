//! R's renv lockfiles: `{"R": {"Version": "4.4.2", …}, "Packages": {"dplyr": {"Package":
//! "dplyr", "Version": "1.1.4", "Source": "Repository"}}}`, recognised by content whatever the
//! file's name.

use anyhow::Context;
use formulary_core::ecosystems::Ecosystem;

use super::{pin, printable, Pins};

/// True for a JSON document shaped like an renv lockfile: an object with `R` and `Packages`.
pub(super) fn is_renv(document: &serde_json::Value) -> bool {
    document.get("R").is_some_and(serde_json::Value::is_object)
        && document
            .get("Packages")
            .is_some_and(serde_json::Value::is_object)
}

/// Reads the packages installed from CRAN-like repositories.
pub(super) fn read(document: &serde_json::Value) -> anyhow::Result<Pins> {
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
                "{} comes from {}, not a CRAN-like repository; not judged",
                printable(name),
                printable(source)
            ));
            continue;
        }
        match package.get("Version").and_then(serde_json::Value::as_str) {
            Some(version) => match pin(Ecosystem::Cran, name, version) {
                Ok(pinned) => found.pins.push(pinned),
                Err(error) => found.skipped.push(error),
            },
            None => found
                .skipped
                .push(format!("{} has no version; not judged", printable(name))),
        }
    }
    Ok(found)
}
