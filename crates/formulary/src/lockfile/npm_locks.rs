//! npm's `package-lock.json` (lockfile versions 2 and 3: the `packages` object keyed by install
//! path) and pnpm's `pnpm-lock.yaml` (versions 6 to 9: the `packages` section keyed by
//! `name@version`), recognised by content. Only packages from a registry are judged; linked
//! workspace packages, folders, git and tarball URLs are listed as skipped. A package installed
//! at several paths is judged once.

use std::collections::BTreeSet;

use anyhow::bail;
use formulary_core::ecosystems::Ecosystem;

use super::{pin, printable, Pins};

/// True for a JSON document shaped like an npm lockfile.
pub(super) fn is_package_lock(document: &serde_json::Value) -> bool {
    document.get("lockfileVersion").is_some()
        && (document.get("packages").is_some() || document.get("dependencies").is_some())
}

/// The package name an install path ends with: `node_modules/a/node_modules/@s/b` → `@s/b`.
fn name_from_path(path: &str) -> Option<&str> {
    let (_, tail) = path.rsplit_once("node_modules/")?;
    Some(tail).filter(|tail| !tail.is_empty())
}

/// Reads `package-lock.json` (or `npm-shrinkwrap.json`) version 2 or 3.
pub(super) fn read_package_lock(document: &serde_json::Value) -> anyhow::Result<Pins> {
    let version = document
        .get("lockfileVersion")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let Some(packages) = document
        .get("packages")
        .and_then(serde_json::Value::as_object)
    else {
        bail!("it is a version {version} package-lock.json, which has no \"packages\"; run `npm install` with npm 7 or later to write version 2 or 3");
    };
    let mut found = Pins::default();
    let mut seen = BTreeSet::new();
    for (path, package) in packages {
        if path.is_empty() {
            continue;
        }
        let Some(name) = package
            .get("name")
            .and_then(serde_json::Value::as_str)
            .or_else(|| name_from_path(path))
        else {
            found.skipped.push(format!(
                "{} is not installed from a registry; not judged",
                printable(path)
            ));
            continue;
        };
        let resolved = package
            .get("resolved")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        let from_elsewhere = package.get("link").and_then(serde_json::Value::as_bool) == Some(true)
            || ["file:", "git", "github:"]
                .iter()
                .any(|prefix| resolved.starts_with(prefix));
        if from_elsewhere {
            found.skipped.push(format!(
                "{} comes from {}, not a registry; not judged",
                printable(name),
                if resolved.is_empty() {
                    "a linked folder".to_owned()
                } else {
                    printable(resolved)
                }
            ));
            continue;
        }
        let Some(version) = package.get("version").and_then(serde_json::Value::as_str) else {
            found
                .skipped
                .push(format!("{} has no version; not judged", printable(name)));
            continue;
        };
        if !seen.insert((name.to_owned(), version.to_owned())) {
            continue;
        }
        match pin(Ecosystem::Npm, name, version) {
            Ok(pinned) => found.pins.push(pinned),
            Err(error) => found.skipped.push(error),
        }
    }
    Ok(found)
}

/// True for a YAML file that looks like a pnpm lockfile.
pub(super) fn is_pnpm_lock(text: &str) -> bool {
    text.lines()
        .next()
        .is_some_and(|line| line.starts_with("lockfileVersion:"))
        && text.lines().any(|line| line == "packages:")
}

/// Reads the `packages:` section of `pnpm-lock.yaml`: keys `name@version` (version 9),
/// `/name@version` (version 6) with any peer suffix `(…)` removed.
pub(super) fn read_pnpm_lock(text: &str) -> Pins {
    let mut found = Pins::default();
    let mut seen = BTreeSet::new();
    let mut in_packages = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_packages = line == "packages:";
            continue;
        }
        if !in_packages {
            continue;
        }
        let Some(key) = line
            .strip_prefix("  ")
            .filter(|rest| !rest.starts_with(' '))
            .and_then(|rest| rest.strip_suffix(':'))
        else {
            continue;
        };
        let key = key.trim_matches(['\'', '"']).trim_start_matches('/');
        let key = key.split('(').next().unwrap_or(key);
        // The version follows the last `@` that is not the scope's.
        let Some(at) = key.rfind('@').filter(|at| *at > 0) else {
            found
                .skipped
                .push(format!("{} has no version; not judged", printable(key)));
            continue;
        };
        let (name, version) = (&key[..at], &key[at + 1..]);
        if version.contains(':') || version.contains('/') {
            found.skipped.push(format!(
                "{} comes from {}, not a registry; not judged",
                printable(name),
                printable(version)
            ));
            continue;
        }
        if !seen.insert((name.to_owned(), version.to_owned())) {
            continue;
        }
        match pin(Ecosystem::Npm, name, version) {
            Ok(pinned) => found.pins.push(pinned),
            Err(error) => found.skipped.push(error),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pins(found: &Pins) -> Vec<String> {
        found.pins.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn package_lock_v3_pins_every_registry_package_once() {
        let document: serde_json::Value = serde_json::from_str(
            r#"{"name":"p","lockfileVersion":3,"requires":true,"packages":{
                "":{"name":"p","dependencies":{"chalk":"^4"}},
                "node_modules/chalk":{"version":"4.1.2","resolved":"https://registry.npmjs.org/chalk/-/chalk-4.1.2.tgz"},
                "node_modules/@sindresorhus/is":{"version":"4.6.0"},
                "node_modules/a/node_modules/chalk":{"version":"4.1.2"},
                "node_modules/old":{"name":"left-pad","version":"1.3.0"},
                "node_modules/mine":{"resolved":"packages/mine","link":true},
                "node_modules/from-git":{"version":"1.0.0","resolved":"git+ssh://git@github.com/x/y.git#abc"}
            }}"#,
        )
        .expect("json");
        assert!(is_package_lock(&document));
        let found = read_package_lock(&document).expect("reads");
        assert_eq!(
            pins(&found),
            [
                "pkg:npm/%40sindresorhus/is@4.6.0",
                "pkg:npm/chalk@4.1.2",
                "pkg:npm/left-pad@1.3.0"
            ]
        );
        assert_eq!(found.skipped.len(), 2, "{:?}", found.skipped);
        let v1: serde_json::Value =
            serde_json::from_str(r#"{"lockfileVersion":1,"dependencies":{}}"#).expect("json");
        assert!(read_package_lock(&v1).is_err());
    }

    #[test]
    fn pnpm_lock_packages_are_pinned() {
        let text = "lockfileVersion: '9.0'\n\nimporters:\n\n  .:\n    dependencies:\n      chalk:\n        specifier: ^4\n        version: 4.1.2\n\npackages:\n\n  '@sindresorhus/is@4.6.0':\n    resolution: {integrity: sha512-x}\n\n  chalk@4.1.2:\n    resolution: {integrity: sha512-y}\n    engines: {node: '>=10'}\n\n  /ws@8.0.0(utf-8-validate@5.0.0):\n    resolution: {integrity: sha512-z}\n\n  mine@file:packages/mine:\n    resolution: {directory: packages/mine}\n\nsnapshots:\n\n  chalk@4.1.2: {}\n";
        assert!(is_pnpm_lock(text));
        let found = read_pnpm_lock(text);
        assert_eq!(
            pins(&found),
            [
                "pkg:npm/%40sindresorhus/is@4.6.0",
                "pkg:npm/chalk@4.1.2",
                "pkg:npm/ws@8.0.0"
            ]
        );
        assert_eq!(found.skipped.len(), 1, "{:?}", found.skipped);
    }
}
