//! yarn's `yarn.lock`, recognised by content: classic (yarn 1, `# yarn lockfile v1`, blocks of
//! `"name@range", …:` with an indented `version "x"`) and berry (yarn 2 and later, YAML with a
//! `__metadata` key and a `resolution: "name@npm:x"` per package). Only packages from a registry
//! are judged; workspaces, folders (`file:`, `link:`, `portal:`), git and tarball URLs are listed
//! as skipped, and berry's `patch:` copies are left to the entry of the package they patch. A
//! package resolved from several ranges is judged once.

use std::collections::BTreeSet;

use anyhow::{bail, Context};
use formulary_core::ecosystems::Ecosystem;

use super::{pin, printable, Pins};

/// The two formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    /// yarn 1.
    Classic,
    /// yarn 2 and later (YAML).
    Berry,
}

/// Which `yarn.lock` format `text` is, if it is one.
pub(super) fn format_of(text: &str) -> Option<Format> {
    let head: Vec<&str> = text.lines().take(10).collect();
    if head.iter().any(|line| line.trim() == "# yarn lockfile v1") {
        return Some(Format::Classic);
    }
    if text
        .lines()
        .any(|line| line.trim_end() == "__metadata:" || line.trim_end() == "\"__metadata\":")
    {
        return Some(Format::Berry);
    }
    None
}

/// Reads a `yarn.lock` of either format.
pub(super) fn read(text: &str, format: Format) -> anyhow::Result<Pins> {
    match format {
        Format::Classic => Ok(read_classic(text)),
        Format::Berry => read_berry(text),
    }
}

/// Collects pins, judging each (name, version) once.
#[derive(Default)]
struct Collector {
    found: Pins,
    seen: BTreeSet<(String, String)>,
}

impl Collector {
    fn pin(&mut self, name: &str, version: &str) {
        if !self.seen.insert((name.to_owned(), version.to_owned())) {
            return;
        }
        match pin(Ecosystem::Npm, name, version) {
            Ok(pinned) => self.found.pins.push(pinned),
            Err(error) => self.found.skipped.push(error),
        }
    }

    fn skip(&mut self, name: &str, source: &str) {
        self.found.skipped.push(format!(
            "{} comes from {}, not a registry; not judged",
            printable(name),
            printable(source)
        ));
    }
}

/// Splits `name@range` at the `@` that is not the scope's.
fn split_descriptor(descriptor: &str) -> Option<(&str, &str)> {
    let at = descriptor.get(1..)?.find('@')? + 1;
    Some((&descriptor[..at], &descriptor[at + 1..]))
}

/// True for a range or resolution that names something other than a registry package.
fn from_elsewhere(source: &str) -> bool {
    let source = source.trim();
    [
        "file:",
        "link:",
        "portal:",
        "workspace:",
        "exec:",
        "git",
        "github:",
        "http:",
        "https:",
    ]
    .iter()
    .any(|prefix| source.starts_with(prefix))
        || source.contains("://")
}

/// Reads yarn 1's format: a block per resolved package, headed by the descriptors it satisfies.
fn read_classic(text: &str) -> Pins {
    let mut collector = Collector::default();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with([' ', '#']) || line.trim().is_empty() {
            continue;
        }
        let Some(header) = line.trim_end().strip_suffix(':') else {
            continue;
        };
        let mut version = None;
        let mut resolved = None;
        while let Some(field) = lines.peek().filter(|next| next.starts_with(' ')) {
            let field = field.trim();
            if let Some(value) = field.strip_prefix("version ") {
                version = Some(value.trim().trim_matches('"').to_owned());
            } else if let Some(value) = field.strip_prefix("resolved ") {
                resolved = Some(value.trim().trim_matches('"').to_owned());
            }
            lines.next();
        }
        let first = header
            .split(',')
            .next()
            .unwrap_or(header)
            .trim()
            .trim_matches('"');
        let Some((alias, range)) = split_descriptor(first) else {
            collector
                .found
                .skipped
                .push(format!("{} has no range; not judged", printable(first)));
            continue;
        };
        // An alias (`alias@npm:real@^1`) installs `real`.
        let name = range
            .strip_prefix("npm:")
            .and_then(split_descriptor)
            .map_or(alias, |(real, _)| real);
        if from_elsewhere(range) && !range.starts_with("npm:") {
            collector.skip(name, range);
            continue;
        }
        if let Some(url) = resolved.as_deref().filter(|url| !url.starts_with("http")) {
            collector.skip(name, url);
            continue;
        }
        match version {
            Some(version) => collector.pin(name, &version),
            None => collector
                .found
                .skipped
                .push(format!("{} has no version; not judged", printable(name))),
        }
    }
    collector.found
}

/// Reads yarn 2+'s YAML format by each package's `resolution`.
fn read_berry(text: &str) -> anyhow::Result<Pins> {
    let document: serde_yaml::Mapping = serde_yaml::from_str(text)
        .context("it looks like a yarn 2+ yarn.lock but is not valid YAML")?;
    if !document.contains_key("__metadata") {
        bail!("it has no __metadata; is it a yarn.lock?");
    }
    let mut collector = Collector::default();
    for (key, package) in &document {
        let key = key.as_str().unwrap_or_default();
        if key == "__metadata" {
            continue;
        }
        let Some(resolution) = package
            .get("resolution")
            .and_then(serde_yaml::Value::as_str)
        else {
            collector
                .found
                .skipped
                .push(format!("{} has no resolution; not judged", printable(key)));
            continue;
        };
        let Some((name, source)) = split_descriptor(resolution) else {
            collector.found.skipped.push(format!(
                "{} is not a resolution Formulary reads; not judged",
                printable(resolution)
            ));
            continue;
        };
        if source.starts_with("patch:") {
            collector.found.skipped.push(format!(
                "{} is a patched copy; the package it patches is judged on its own entry",
                printable(name)
            ));
            continue;
        }
        match source.strip_prefix("npm:") {
            Some(version) => collector.pin(name, version),
            None => collector.skip(name, source),
        }
    }
    Ok(collector.found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pins(found: &Pins) -> Vec<String> {
        found.pins.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn classic_lock_pins_each_resolved_package_once() {
        let text = "# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.\n# yarn lockfile v1\n\n\n\"@sindresorhus/is@^4.0.0\":\n  version \"4.6.0\"\n  resolved \"https://registry.yarnpkg.com/@sindresorhus/is/-/is-4.6.0.tgz#abc\"\n  integrity sha512-x\n\nchalk@^4.1.0, chalk@^4.1.2:\n  version \"4.1.2\"\n  resolved \"https://registry.yarnpkg.com/chalk/-/chalk-4.1.2.tgz#def\"\n  dependencies:\n    ansi-styles \"^4.1.0\"\n\nchalk@^4.0.0:\n  version \"4.1.2\"\n\nmy-pad@npm:left-pad@^1.3.0:\n  version \"1.3.0\"\n  resolved \"https://registry.yarnpkg.com/left-pad/-/left-pad-1.3.0.tgz\"\n\nlocal@file:../local:\n  version \"1.0.0\"\n\ntool@git+https://example.invalid/tool.git:\n  version \"2.0.0\"\n  resolved \"git+https://example.invalid/tool.git#abc\"\n";
        assert_eq!(format_of(text), Some(Format::Classic));
        let found = read(text, Format::Classic).expect("reads");
        assert_eq!(
            pins(&found),
            [
                "pkg:npm/%40sindresorhus/is@4.6.0",
                "pkg:npm/chalk@4.1.2",
                "pkg:npm/left-pad@1.3.0"
            ]
        );
        assert_eq!(found.skipped.len(), 2, "{:?}", found.skipped);
        assert!(found.skipped[0].contains("local comes from file:../local"));
    }

    #[test]
    fn berry_lock_pins_registry_packages_and_skips_workspaces_and_patches() {
        let text = "# This file is generated by running \"yarn install\" inside your project.\n\n__metadata:\n  version: 8\n  cacheKey: 10c0\n\n\"@formulary-test/pad@npm:^1.0.0\":\n  version: 1.0.0\n  resolution: \"@formulary-test/pad@npm:1.0.0\"\n  checksum: 10c0/abc\n  languageName: node\n  linkType: hard\n\n\"chalk@npm:^5.0.0, chalk@npm:^5.1.0\":\n  version: 5.6.0\n  resolution: \"chalk@npm:5.6.0\"\n  languageName: node\n  linkType: hard\n\n\"resolve@patch:resolve@npm%3A^1.20.0#optional!builtin<compat/resolve>\":\n  version: 1.22.8\n  resolution: \"resolve@patch:resolve@npm%3A1.22.8#optional!builtin<compat/resolve>::version=1.22.8&hash=c3c19d\"\n  languageName: node\n  linkType: hard\n\n\"report@workspace:.\":\n  version: 0.0.0-use.local\n  resolution: \"report@workspace:.\"\n  languageName: unknown\n  linkType: soft\n";
        assert_eq!(format_of(text), Some(Format::Berry));
        let found = read(text, Format::Berry).expect("reads");
        assert_eq!(
            pins(&found),
            ["pkg:npm/%40formulary-test/pad@1.0.0", "pkg:npm/chalk@5.6.0"]
        );
        assert_eq!(found.skipped.len(), 2, "{:?}", found.skipped);
        assert!(read("__metadata:\n  version: [\n", Format::Berry).is_err());
    }
}
