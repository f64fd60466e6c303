//! Packuments: the registry's document about one package. Formulary keeps the full document as
//! upstream wrote it and derives what it serves from it: the full form with denied versions
//! removed, `dist-tags` re-pointed and tarball URLs rewritten, and the abbreviated form
//! (`application/vnd.npm.install-v1+json`) with the fields installers read. `time` and
//! `modified` are passed on untouched, because client cooldowns (npm `min-release-age`, pnpm
//! `minimumReleaseAge`, yarn `npmMinimalAgeGate`) read them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use thiserror::Error;

/// Largest packument read from an upstream (the largest public ones are tens of megabytes).
pub const MAX_PACKUMENT_BYTES: usize = 256 * 1024 * 1024;

/// The fields of a version object the abbreviated form keeps (those npm, pnpm and yarn read
/// when they resolve and install).
const ABBREVIATED_VERSION_FIELDS: [&str; 20] = [
    "name",
    "version",
    "deprecated",
    "dependencies",
    "optionalDependencies",
    "devDependencies",
    "bundleDependencies",
    "bundledDependencies",
    "peerDependencies",
    "peerDependenciesMeta",
    "acceptDependencies",
    "bin",
    "directories",
    "dist",
    "engines",
    "cpu",
    "os",
    "libc",
    "funding",
    "_hasShrinkwrap",
];

/// Lifecycle scripts that run when a package is installed.
const INSTALL_SCRIPTS: [&str; 3] = ["preinstall", "install", "postinstall"];

/// What is wrong with a packument.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PackumentError {
    /// Not JSON, or not an object.
    #[error("the packument is not a JSON object: {0}")]
    NotAnObject(String),
    /// It is about another package.
    #[error("the packument is for '{found}', not '{expected}'")]
    OtherPackage {
        /// The name asked for.
        expected: String,
        /// The name in the document.
        found: String,
    },
    /// A facts record ([`PackumentFacts::to_record`]) that cannot be read, or of another format.
    #[error("the facts record cannot be read: {0}")]
    Record(String),
}

/// What one version of a packument says about itself. It (de)serializes as the gateway's
/// facts record ([`PackumentFacts::to_record`]): absent fields are left out.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct VersionFacts {
    /// The version, as the packument writes it.
    pub version: String,
    /// `time[version]`, as written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// The licence (`license`, or the legacy `licenses` list joined with ` OR `).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub licence: Option<String>,
    /// `dist.tarball`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tarball: Option<String>,
    /// `dist.integrity` (a Subresource Integrity string, usually `sha512-…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrity: Option<String>,
    /// `dist.shasum` (hex SHA-1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shasum: Option<String>,
    /// `dist.unpackedSize`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unpacked_size: Option<u64>,
    /// The install-time lifecycle scripts it declares (`preinstall`, `install`, `postinstall`);
    /// `install` alone when only `hasInstallScript` says so.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub install_scripts: Vec<String>,
    /// The publisher's deprecation message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deprecated: Option<String>,
}

impl VersionFacts {
    /// The tarball's file name: the last segment of its URL (`node-22.1.0.tgz`).
    pub fn filename(&self) -> Option<&str> {
        let tarball = self.tarball.as_deref()?;
        let path = tarball.split(['?', '#']).next().unwrap_or(tarball);
        path.rsplit('/').next().filter(|name| !name.is_empty())
    }
}

/// A packument as upstream wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Packument {
    document: Map<String, Value>,
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_owned)
}

fn licence_of(version: &Map<String, Value>) -> Option<String> {
    let named = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(object) => text(object.get("type")),
        _ => None,
    };
    if let Some(licence) = version.get("license").and_then(named) {
        return Some(licence);
    }
    let listed: Vec<String> = version
        .get("licenses")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(named)
        .collect();
    match listed.len() {
        0 => None,
        1 => listed.into_iter().next(),
        _ => Some(format!("({})", listed.join(" OR "))),
    }
}

fn install_scripts_of(version: &Map<String, Value>) -> Vec<String> {
    let scripts = version.get("scripts").and_then(Value::as_object);
    let mut found: Vec<String> = INSTALL_SCRIPTS
        .iter()
        .filter(|script| scripts.is_some_and(|scripts| scripts.contains_key(**script)))
        .map(|script| (*script).to_owned())
        .collect();
    if found.is_empty() && version.get("hasInstallScript") == Some(&Value::Bool(true)) {
        found.push("install".to_owned());
    }
    found
}

impl Packument {
    /// Reads a packument; `expected` is the name it must be about.
    pub fn parse(bytes: &[u8], expected: &str) -> Result<Packument, PackumentError> {
        let document: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|error| PackumentError::NotAnObject(error.to_string()))?;
        let packument = Packument { document };
        match packument.name() {
            Some(found) if found != expected => Err(PackumentError::OtherPackage {
                expected: expected.to_owned(),
                found: found.to_owned(),
            }),
            _ => Ok(packument),
        }
    }

    /// The document as JSON bytes (for storing it).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.document).unwrap_or_default()
    }

    /// The package name the document gives.
    pub fn name(&self) -> Option<&str> {
        self.document.get("name").and_then(Value::as_str)
    }

    fn versions_object(&self) -> Option<&Map<String, Value>> {
        self.document.get("versions").and_then(Value::as_object)
    }

    /// `time`, if present.
    fn time(&self) -> Option<&Map<String, Value>> {
        self.document.get("time").and_then(Value::as_object)
    }

    /// What each version says about itself, in the document's order.
    pub fn versions(&self) -> Vec<VersionFacts> {
        let time = self.time();
        self.versions_object()
            .into_iter()
            .flatten()
            .filter_map(|(version, object)| {
                let object = object.as_object()?;
                let dist = object.get("dist").and_then(Value::as_object);
                Some(VersionFacts {
                    version: version.clone(),
                    published: text(time.and_then(|time| time.get(version))),
                    licence: licence_of(object),
                    tarball: text(dist.and_then(|dist| dist.get("tarball"))),
                    integrity: text(dist.and_then(|dist| dist.get("integrity"))),
                    shasum: text(dist.and_then(|dist| dist.get("shasum"))),
                    unpacked_size: dist
                        .and_then(|dist| dist.get("unpackedSize"))
                        .and_then(Value::as_u64),
                    install_scripts: install_scripts_of(object),
                    deprecated: text(object.get("deprecated")),
                })
            })
            .collect()
    }

    /// `dist-tags`: tag → version.
    pub fn dist_tags(&self) -> BTreeMap<String, String> {
        self.document
            .get("dist-tags")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(tag, version)| Some((tag.clone(), version.as_str()?.to_owned())))
            .collect()
    }

    /// The packument one view serves: only the versions `keep` allows, each tarball URL
    /// replaced by `tarball_url(version, file name)`, and `dist-tags` as given (the caller
    /// re-points them with [`repoint_tags`]). Everything else, `time` and `modified`
    /// included, is kept as upstream wrote it.
    pub fn for_view(
        &self,
        keep: &dyn Fn(&str) -> bool,
        tarball_url: &dyn Fn(&str, &str) -> String,
        tags: &BTreeMap<String, String>,
    ) -> Packument {
        let mut document = Map::with_capacity(self.document.len());
        for (key, value) in &self.document {
            match key.as_str() {
                "versions" => {
                    let mut versions = Map::new();
                    for (version, object) in value.as_object().into_iter().flatten() {
                        if !keep(version) {
                            continue;
                        }
                        let mut object = object.clone();
                        if let Some(dist) = object.get_mut("dist").and_then(Value::as_object_mut) {
                            let filename = dist
                                .get("tarball")
                                .and_then(Value::as_str)
                                .map(|tarball| VersionFacts {
                                    tarball: Some(tarball.to_owned()),
                                    ..VersionFacts::default()
                                })
                                .and_then(|facts| facts.filename().map(str::to_owned));
                            if let Some(filename) = filename {
                                dist.insert(
                                    "tarball".to_owned(),
                                    Value::String(tarball_url(version, &filename)),
                                );
                            }
                        }
                        versions.insert(version.clone(), object);
                    }
                    document.insert(key.clone(), Value::Object(versions));
                }
                "dist-tags" => {
                    let tags: Map<String, Value> = tags
                        .iter()
                        .map(|(tag, version)| (tag.clone(), Value::String(version.clone())))
                        .collect();
                    document.insert(key.clone(), Value::Object(tags));
                }
                _ => {
                    document.insert(key.clone(), value.clone());
                }
            }
        }
        Packument { document }
    }

    /// The full form, as JSON.
    pub fn render_full(&self) -> Vec<u8> {
        self.to_bytes()
    }

    /// The abbreviated form (`application/vnd.npm.install-v1+json`): `name`, `modified` (from
    /// the document's own, else `time.modified`), `dist-tags` and, per version, the fields
    /// installers read, with `hasInstallScript` set where the version has an install script.
    pub fn render_abbreviated(&self) -> Vec<u8> {
        let mut document = Map::new();
        for key in ["_id", "name"] {
            if let Some(value) = self.document.get(key) {
                document.insert(key.to_owned(), value.clone());
            }
        }
        let modified = self
            .document
            .get("modified")
            .or_else(|| self.time().and_then(|time| time.get("modified")));
        if let Some(modified) = modified {
            document.insert("modified".to_owned(), modified.clone());
        }
        if let Some(tags) = self.document.get("dist-tags") {
            document.insert("dist-tags".to_owned(), tags.clone());
        }
        let mut versions = Map::new();
        for (version, object) in self.versions_object().into_iter().flatten() {
            let Some(object) = object.as_object() else {
                continue;
            };
            let mut abbreviated: Map<String, Value> = ABBREVIATED_VERSION_FIELDS
                .iter()
                .filter_map(|field| Some(((*field).to_owned(), object.get(*field)?.clone())))
                .collect();
            if !install_scripts_of(object).is_empty() {
                abbreviated.insert("hasInstallScript".to_owned(), Value::Bool(true));
            }
            versions.insert(version.clone(), Value::Object(abbreviated));
        }
        document.insert("versions".to_owned(), Value::Object(versions));
        serde_json::to_vec(&document).unwrap_or_default()
    }
}

/// What the gateway keeps about a packument between requests: its versions' facts and its
/// `dist-tags`, read without building the whole document in memory (a packument of thousands of
/// versions is tens of megabytes as a JSON tree, but a few hundred kilobytes of facts).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PackumentFacts {
    /// Each version's facts, in version-text order.
    pub versions: Vec<VersionFacts>,
}

#[derive(serde::Deserialize)]
struct SlimDocument {
    name: Option<String>,
    #[serde(default)]
    time: BTreeMap<String, serde::de::IgnoredAny>,
    #[serde(default)]
    versions: BTreeMap<String, SlimVersion>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimVersion {
    license: Option<Value>,
    licenses: Option<Value>,
    dist: Option<SlimDist>,
    scripts: Option<BTreeMap<String, serde::de::IgnoredAny>>,
    has_install_script: Option<bool>,
    deprecated: Option<Value>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlimDist {
    tarball: Option<String>,
    integrity: Option<String>,
    shasum: Option<String>,
    unpacked_size: Option<u64>,
}

/// `time` as version → text, read in a second light pass (the first skips it, since its
/// values are needed only as text).
#[derive(serde::Deserialize)]
struct SlimTime {
    #[serde(default)]
    time: BTreeMap<String, Value>,
}

/// Reads what [`PackumentFacts`] holds from a packument's bytes; `expected` is the name it must
/// be about. Agrees with [`Packument::versions`] on every field.
pub fn read_facts(bytes: &[u8], expected: &str) -> Result<PackumentFacts, PackumentError> {
    let document: SlimDocument = serde_json::from_slice(bytes)
        .map_err(|error| PackumentError::NotAnObject(error.to_string()))?;
    if let Some(found) = document.name.as_deref().filter(|found| *found != expected) {
        return Err(PackumentError::OtherPackage {
            expected: expected.to_owned(),
            found: found.to_owned(),
        });
    }
    let time = if document.time.is_empty() {
        BTreeMap::new()
    } else {
        serde_json::from_slice::<SlimTime>(bytes)
            .map_err(|error| PackumentError::NotAnObject(error.to_string()))?
            .time
    };
    let versions = document
        .versions
        .into_iter()
        .map(|(version, slim)| {
            let mut object = Map::new();
            if let Some(license) = slim.license {
                object.insert("license".to_owned(), license);
            }
            if let Some(licenses) = slim.licenses {
                object.insert("licenses".to_owned(), licenses);
            }
            let mut install_scripts: Vec<String> = INSTALL_SCRIPTS
                .iter()
                .filter(|script| {
                    slim.scripts
                        .as_ref()
                        .is_some_and(|scripts| scripts.contains_key(**script))
                })
                .map(|script| (*script).to_owned())
                .collect();
            if install_scripts.is_empty() && slim.has_install_script == Some(true) {
                install_scripts.push("install".to_owned());
            }
            let dist = slim.dist;
            VersionFacts {
                published: text(time.get(&version)),
                licence: licence_of(&object),
                tarball: dist.as_ref().and_then(|dist| dist.tarball.clone()),
                integrity: dist.as_ref().and_then(|dist| dist.integrity.clone()),
                shasum: dist.as_ref().and_then(|dist| dist.shasum.clone()),
                unpacked_size: dist.as_ref().and_then(|dist| dist.unpacked_size),
                install_scripts,
                deprecated: slim
                    .deprecated
                    .as_ref()
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                version,
            }
        })
        .collect();
    Ok(PackumentFacts { versions })
}

/// Re-points `dist-tags` whose version is not allowed: to the newest allowed version that is
/// not newer than the one tagged, preferring a stable release when the tagged one was stable;
/// a tag with no such version is dropped. `allowed` lists the allowed versions as written.
pub fn repoint_tags(
    tags: &BTreeMap<String, String>,
    allowed: &[String],
) -> BTreeMap<String, String> {
    let parsed: Vec<(&String, nodejs_semver::Version)> = allowed
        .iter()
        .filter_map(|text| Some((text, nodejs_semver::Version::parse(text).ok()?)))
        .collect();
    tags.iter()
        .filter_map(|(tag, tagged)| {
            if allowed.iter().any(|version| version == tagged) {
                return Some((tag.clone(), tagged.clone()));
            }
            let ceiling = nodejs_semver::Version::parse(tagged).ok()?;
            let newest = |stable_only: bool| {
                parsed
                    .iter()
                    .filter(|(_, version)| version <= &ceiling)
                    .filter(|(_, version)| !stable_only || !version.is_prerelease())
                    .max_by(|left, right| left.1.cmp(&right.1))
                    .map(|(text, _)| (*text).clone())
            };
            let chosen = if ceiling.is_prerelease() {
                newest(false)
            } else {
                newest(true).or_else(|| newest(false))
            };
            chosen.map(|version| (tag.clone(), version))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCUMENT: &str = r#"{
        "_id": "demo", "name": "demo", "_rev": "7-abc", "readme": "hello",
        "dist-tags": {"latest": "2.0.0", "next": "3.0.0-rc.1"},
        "time": {"created": "2020-01-01T00:00:00.000Z", "modified": "2024-05-01T00:00:00.000Z",
                 "1.0.0": "2020-01-01T00:00:00.000Z", "2.0.0": "2024-05-01T00:00:00.000Z",
                 "3.0.0-rc.1": "2024-04-01T00:00:00.000Z"},
        "versions": {
            "1.0.0": {"name": "demo", "version": "1.0.0", "license": "MIT", "readme": "x",
                      "dist": {"tarball": "https://registry.npmjs.org/demo/-/demo-1.0.0.tgz",
                               "integrity": "sha512-AAAA", "shasum": "00"}},
            "2.0.0": {"name": "demo", "version": "2.0.0", "license": {"type": "ISC"},
                      "scripts": {"postinstall": "node evil.js", "test": "x"},
                      "dependencies": {"a": "^1"},
                      "dist": {"tarball": "https://registry.npmjs.org/demo/-/demo-2.0.0.tgz"}},
            "3.0.0-rc.1": {"name": "demo", "version": "3.0.0-rc.1",
                      "licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}],
                      "dist": {"tarball": "https://registry.npmjs.org/demo/-/demo-3.0.0-rc.1.tgz"}}
        }
    }"#;

    #[test]
    fn reads_each_versions_evidence() {
        let packument = Packument::parse(DOCUMENT.as_bytes(), "demo").expect("parses");
        let versions = packument.versions();
        assert_eq!(versions.len(), 3);
        assert_eq!(versions[0].licence.as_deref(), Some("MIT"));
        assert_eq!(
            versions[0].published.as_deref(),
            Some("2020-01-01T00:00:00.000Z")
        );
        assert_eq!(versions[0].filename(), Some("demo-1.0.0.tgz"));
        assert_eq!(versions[1].licence.as_deref(), Some("ISC"));
        assert_eq!(versions[1].install_scripts, vec!["postinstall".to_owned()]);
        assert_eq!(versions[2].licence.as_deref(), Some("(MIT OR Apache-2.0)"));
        assert!(Packument::parse(DOCUMENT.as_bytes(), "other").is_err());
        assert!(Packument::parse(b"[1]", "demo").is_err());
    }

    #[test]
    fn a_view_removes_denied_versions_repoints_tags_and_keeps_time() {
        let packument = Packument::parse(DOCUMENT.as_bytes(), "demo").expect("parses");
        let allowed = vec!["1.0.0".to_owned(), "3.0.0-rc.1".to_owned()];
        let tags = repoint_tags(&packument.dist_tags(), &allowed);
        assert_eq!(tags.get("latest").map(String::as_str), Some("1.0.0"));
        assert_eq!(tags.get("next").map(String::as_str), Some("3.0.0-rc.1"));
        let served = packument.for_view(
            &|version| allowed.iter().any(|allowed| allowed == version),
            &|_, filename| format!("https://formulary.example/npm/demo/-/{filename}"),
            &tags,
        );
        let full: Value = serde_json::from_slice(&served.render_full()).expect("json");
        assert!(full["versions"].get("2.0.0").is_none());
        assert_eq!(full["time"]["2.0.0"], "2024-05-01T00:00:00.000Z");
        assert_eq!(full["time"]["modified"], "2024-05-01T00:00:00.000Z");
        assert_eq!(full["_rev"], "7-abc");
        assert_eq!(
            full["versions"]["1.0.0"]["dist"]["tarball"],
            "https://formulary.example/npm/demo/-/demo-1.0.0.tgz"
        );
        assert_eq!(
            full["versions"]["1.0.0"]["dist"]["integrity"],
            "sha512-AAAA"
        );
        let abbreviated: Value =
            serde_json::from_slice(&served.render_abbreviated()).expect("json");
        assert_eq!(abbreviated["modified"], "2024-05-01T00:00:00.000Z");
        assert!(abbreviated.get("time").is_none());
        assert!(abbreviated.get("readme").is_none());
        assert!(abbreviated["versions"]["1.0.0"].get("readme").is_none());
        assert!(abbreviated["versions"].get("2.0.0").is_none());
        assert_eq!(abbreviated["dist-tags"]["latest"], "1.0.0");
    }

    #[test]
    fn the_light_reading_agrees_with_the_whole_document() {
        let packument = Packument::parse(DOCUMENT.as_bytes(), "demo").expect("parses");
        let facts = read_facts(DOCUMENT.as_bytes(), "demo").expect("reads");
        assert_eq!(facts.versions, packument.versions());
        assert!(read_facts(DOCUMENT.as_bytes(), "other").is_err());
        assert!(read_facts(b"[1]", "demo").is_err());
    }

    #[test]
    fn abbreviated_form_flags_install_scripts() {
        let packument = Packument::parse(DOCUMENT.as_bytes(), "demo").expect("parses");
        let abbreviated: Value =
            serde_json::from_slice(&packument.render_abbreviated()).expect("json");
        assert_eq!(abbreviated["versions"]["2.0.0"]["hasInstallScript"], true);
        assert!(abbreviated["versions"]["2.0.0"].get("scripts").is_none());
        assert_eq!(abbreviated["versions"]["2.0.0"]["dependencies"]["a"], "^1");
        assert!(abbreviated["versions"]["1.0.0"]
            .get("hasInstallScript")
            .is_none());
    }

    #[test]
    fn a_tag_with_nothing_allowed_below_it_is_dropped() {
        let tags = BTreeMap::from([("latest".to_owned(), "1.0.0".to_owned())]);
        let repointed = repoint_tags(&tags, &["2.0.0".to_owned()]);
        assert!(repointed.is_empty());
        let repointed = repoint_tags(
            &BTreeMap::from([("latest".to_owned(), "2.0.0".to_owned())]),
            &["1.0.0".to_owned(), "1.5.0-beta.1".to_owned()],
        );
        assert_eq!(repointed.get("latest").map(String::as_str), Some("1.0.0"));
    }
}
