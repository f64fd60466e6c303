//! A PyPI project's evidence: versions, upload times and yanks from the cached project page,
//! and licence, links, maintainers and `Requires-Dist` from the newest release's core metadata
//! (fetched once through the verified file cache, as dependency closures read it).

use std::time::Duration;

use formulary_core::Component;

use super::PypiGateway;
use crate::error::GatewayError;
use crate::evidence::{
    bounded, closure_size, newest_release, ClosureSize, DependencyEvidence, Evidence,
    VersionEvidence,
};

impl PypiGateway {
    /// How long a request that has a cached copy waits for the upstream before it is served
    /// the cached copy (`upstream_patience_ms`): evidence pages wait no longer.
    pub fn patience(&self) -> Duration {
        self.projects.patience()
    }

    /// What the upstream says about a project; `None` when no upstream has it.
    pub async fn evidence(&self, component: &Component) -> Result<Option<Evidence>, GatewayError> {
        let Some(project) = self.project(component).await? else {
            return Ok(None);
        };
        let mut evidence = Evidence::empty(component, &project.freshness);
        let mut releases = project.releases.clone();
        releases.sort_by(|left, right| right.version.cmp(&left.version));
        evidence.versions = releases
            .iter()
            .map(|release| VersionEvidence {
                version: release.version.to_string(),
                // A first sighting is Formulary's date, not the upstream's.
                published: release.published.filter(|_| !release.dated_by_first_sight),
                yanked: release.yanked.clone(),
                archived: false,
            })
            .collect();
        let Some(newest) = newest_release(&releases) else {
            evidence
                .gaps
                .push("every version is yanked: there is no release to describe".to_owned());
            return Ok(Some(evidence));
        };
        evidence.newest = Some(newest.version.to_string());
        match self.core_metadata(component, newest).await? {
            Some(metadata) => read_core_metadata(&metadata, &mut evidence),
            None => evidence.gaps.push(format!(
                "the core metadata of {} {} could not be read (it has no wheel, or its file could not be fetched), so its licence, links, maintainers and dependencies are not known",
                component.name, newest.version
            )),
        }
        Ok(Some(evidence))
    }

    /// How many components the project needs, directly or not (see [`closure_size`]).
    pub async fn closure_size(
        &self,
        component: &Component,
        budget: Duration,
    ) -> Result<ClosureSize, GatewayError> {
        closure_size(self, component, budget).await
    }
}

/// The header fields of a core metadata file (the body, after the first empty line, is the
/// description): continuation lines joined.
fn headers(metadata: &str) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = Vec::new();
    for line in metadata.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = found.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            found.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    found
}

/// Fills the evidence from a core metadata file (PEP 566/639/643 fields).
fn read_core_metadata(metadata: &str, evidence: &mut Evidence) {
    let headers = headers(metadata);
    let all = |name: &'static str| {
        headers
            .iter()
            .filter(move |(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    };
    let first = |name: &'static str| all(name).find(|value| !value.trim().is_empty());
    evidence.summary = first("summary").map(bounded);
    let classifier_licences: Vec<&str> = all("classifier")
        .filter_map(|value| value.strip_prefix("License ::"))
        .map(|value| value.rsplit("::").next().unwrap_or(value).trim())
        .collect();
    evidence.licence = first("license-expression")
        .map(bounded)
        .or_else(|| {
            // `License` is often the whole licence text; keep it only when it is a name.
            first("license")
                .filter(|text| !text.contains('\n') && text.len() <= 100)
                .map(bounded)
        })
        .or_else(|| {
            (!classifier_licences.is_empty()).then(|| bounded(&classifier_licences.join(" / ")))
        });
    if let Some(home) = first("home-page") {
        evidence.add_link("Homepage", home);
    }
    for value in all("project-url") {
        if let Some((label, url)) = value.split_once(',') {
            evidence.add_link(label.trim(), url.trim());
        }
    }
    if let Some(download) = first("download-url") {
        evidence.add_link("Download", download);
    }
    for (name, email) in [
        ("maintainer", "maintainer-email"),
        ("author", "author-email"),
    ] {
        match (first(name), first(email)) {
            (Some(who), Some(address)) if !address.contains(who) => {
                evidence.add_maintainer(&format!("{who} <{address}>"))
            }
            (_, Some(address)) => evidence.add_maintainer(address),
            (Some(who), None) => evidence.add_maintainer(who),
            (None, None) => {}
        }
    }
    for value in all("requires-dist") {
        let (requirement, condition) = match value.split_once(';') {
            Some((requirement, marker)) => (requirement.trim(), Some(bounded(marker.trim()))),
            None => (value.trim(), None),
        };
        let name_end = requirement
            .find(|character: char| {
                !(character.is_ascii_alphanumeric() || matches!(character, '-' | '_' | '.'))
            })
            .unwrap_or(requirement.len());
        let (name, rest) = requirement.split_at(name_end);
        let Ok(component) = Component::new(formulary_core::ecosystems::Ecosystem::Pypi, name)
        else {
            continue;
        };
        let rest = rest
            .trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .trim();
        evidence.add_dependency(DependencyEvidence {
            name: component.name.to_string(),
            purl: component.purl(),
            requirement: if rest.is_empty() {
                "*".to_owned()
            } else {
                bounded(rest)
            },
            condition,
            kind: "Requires-Dist".to_owned(),
        });
    }
    if let Some(python) = first("requires-python") {
        evidence.add_dependency(DependencyEvidence {
            name: "python".to_owned(),
            purl: "pkg:generic/python".to_owned(),
            requirement: bounded(python),
            condition: None,
            kind: "Requires-Python".to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::documents::Freshness;

    #[test]
    fn core_metadata_gives_licence_links_people_and_requirements() {
        let component =
            Component::new(formulary_core::ecosystems::Ecosystem::Pypi, "requests").expect("name");
        let freshness = Freshness::new(
            url::Url::parse("https://pypi.org/simple/").expect("url"),
            None,
            chrono::Utc::now(),
        );
        let mut evidence = Evidence::empty(&component, &freshness);
        read_core_metadata(
            "Metadata-Version: 2.1\nName: requests\nVersion: 2.32.3\nSummary: Python HTTP for Humans.\nHome-page: https://requests.readthedocs.io\nAuthor: Kenneth Reitz\nAuthor-email: me@kennethreitz.org\nLicense: Apache-2.0\nProject-URL: Source, https://github.com/psf/requests\nProject-URL: Evil, javascript:alert(1)\nClassifier: License :: OSI Approved :: Apache Software License\nRequires-Python: >=3.8\nRequires-Dist: charset-normalizer<4,>=2\nRequires-Dist: PySocks!=1.5.7,>=1.5.6; extra == \"socks\"\nRequires-Dist: idna (<4,>=2.5)\n\nRequires-Dist: not-a-header\n",
            &mut evidence,
        );
        assert_eq!(evidence.summary.as_deref(), Some("Python HTTP for Humans."));
        assert_eq!(evidence.licence.as_deref(), Some("Apache-2.0"));
        let links: Vec<&str> = evidence
            .links
            .iter()
            .map(|link| link.url.as_str())
            .collect();
        assert_eq!(
            links,
            [
                "https://requests.readthedocs.io/",
                "https://github.com/psf/requests"
            ]
        );
        assert_eq!(
            evidence.maintainers,
            ["Kenneth Reitz <me@kennethreitz.org>"]
        );
        let needs: Vec<String> = evidence
            .dependencies
            .iter()
            .map(|dependency| {
                format!(
                    "{} {} {}",
                    dependency.name,
                    dependency.requirement,
                    dependency.condition.as_deref().unwrap_or("-")
                )
            })
            .collect();
        assert_eq!(
            needs,
            [
                "charset-normalizer <4,>=2 -",
                "pysocks !=1.5.7,>=1.5.6 extra == \"socks\"",
                "idna <4,>=2.5 -",
                "python >=3.8 -"
            ]
        );
    }
}
