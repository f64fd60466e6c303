//! What a PyPI release needs, for dependency closures: `Requires-Dist` from the core metadata
//! of one of its wheels: PEP 658 `<file>.metadata` where the index publishes it, else the
//! `METADATA` inside the wheel; either fetched once through the verified file cache and checked
//! against the digest the index announces. Releases with no wheel (sdists only) are not read:
//! their requirements are only known by building them.

use std::str::FromStr;

use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::policy::Release;
use formulary_core::Component;
use formulary_ecosystems::pypi::DistributionFile;

use super::PypiGateway;
use crate::dependencies_closure::{Requirement, Requirements};
use crate::error::GatewayError;

/// Largest wheel downloaded only to read its requirements.
const MAX_WHEEL_BYTES: u64 = 64 * 1024 * 1024;

impl Requirements for PypiGateway {
    async fn releases(&self, component: &Component) -> Result<Vec<Release>, GatewayError> {
        Ok(self
            .project(component)
            .await?
            .map(|project| project.releases.clone())
            .unwrap_or_default())
    }

    async fn requirements(
        &self,
        component: &Component,
        release: &Release,
        extras: &[String],
    ) -> Result<Option<Vec<Requirement>>, GatewayError> {
        Ok(self
            .core_metadata(component, release)
            .await?
            .map(|metadata| requires_dist(&metadata, extras)))
    }
}

impl PypiGateway {
    /// The core metadata of one release: PEP 658 `<file>.metadata` where the index publishes
    /// it, else `METADATA` inside the smallest wheel; `None` for releases with no wheel or
    /// whose metadata cannot be fetched.
    pub(crate) async fn core_metadata(
        &self,
        component: &Component,
        release: &Release,
    ) -> Result<Option<String>, GatewayError> {
        let Some(project) = self.project(component).await? else {
            return Ok(None);
        };
        let wheels: Vec<&DistributionFile> = project
            .page
            .files
            .iter()
            .filter(|file| file.filename.ends_with(".whl") && file.yanked.is_none())
            .filter(|file| {
                formulary_core::ecosystems::pypi::version_from_filename(
                    &component.name,
                    &file.filename,
                )
                .is_some_and(|version| version == release.version)
            })
            .collect();
        // Wheels of one release declare the same requirements (markers say where they differ):
        // read the core metadata the index publishes for one of them (PEP 658), else the
        // METADATA inside the smallest one (which then is cached for installs too).
        if let Some(file) = wheels.iter().find(|file| file.core_metadata.is_some()) {
            let metadata_file = DistributionFile {
                filename: format!("{}.metadata", file.filename),
                url: format!("{}.metadata", file.url),
                hashes: file.core_metadata.clone().unwrap_or_default(),
                ..DistributionFile::default()
            };
            match self.blob_bytes(&metadata_file).await {
                Ok(bytes) => return Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
                Err(error) => {
                    tracing::warn!(file = %metadata_file.filename, %error, "could not read published core metadata; reading the wheel instead");
                }
            }
        }
        let Some(wheel) = wheels
            .iter()
            .filter(|file| file.size.is_none_or(|size| size <= MAX_WHEEL_BYTES))
            .min_by_key(|file| file.size.unwrap_or(u64::MAX))
        else {
            return Ok(None);
        };
        let bytes = match self.blob_bytes(wheel).await {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(file = %wheel.filename, %error, "could not fetch a wheel to read its requirements");
                return Ok(None);
            }
        };
        Ok(super::verify::wheel_metadata(&mut std::io::Cursor::new(bytes), &wheel.filename).ok())
    }

    /// A file through the verified cache, whole, in memory.
    async fn blob_bytes(&self, file: &DistributionFile) -> Result<bytes::Bytes, GatewayError> {
        let blob = self.ensure_blob(file).await?;
        self.files
            .blobs()
            .get(&blob.sha256)
            .await?
            .bytes()
            .await
            .map_err(|error| {
                GatewayError::Store(formulary_store::StoreError::Conflict(error.to_string()))
            })
    }
}

/// The `Requires-Dist` requirements of a core metadata file that apply with `extras` asked for.
/// Environment markers other than `extra` are kept: some platform may need them. Unreadable
/// lines are skipped (the metadata was published; an install would read it the same way).
pub(crate) fn requires_dist(metadata: &str, extras: &[String]) -> Vec<Requirement> {
    let extras: Vec<pep508_rs::ExtraName> = extras
        .iter()
        .filter_map(|extra| pep508_rs::ExtraName::from_str(extra).ok())
        .collect();
    let mut found = Vec::new();
    // The headers end at the first empty line (the body is the description).
    for line in metadata.lines().take_while(|line| !line.trim().is_empty()) {
        let Some(value) = line.strip_prefix("Requires-Dist:") else {
            continue;
        };
        let Ok(requirement) =
            pep508_rs::Requirement::<pep508_rs::VerbatimUrl>::from_str(value.trim())
        else {
            continue;
        };
        if !requirement.marker.evaluate_extras(&extras) {
            continue;
        }
        let Ok(component) = Component::new(Ecosystem::Pypi, requirement.name.as_ref()) else {
            continue;
        };
        let range = match &requirement.version_or_url {
            Some(pep508_rs::VersionOrUrl::VersionSpecifier(specifiers)) => {
                VersionRange::parse(Ecosystem::Pypi, &specifiers.to_string())
                    .unwrap_or_else(|_| VersionRange::every(Ecosystem::Pypi))
            }
            _ => VersionRange::every(Ecosystem::Pypi),
        };
        found.push(Requirement {
            component,
            range,
            extras: requirement.extras.iter().map(ToString::to_string).collect(),
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::requires_dist;

    const REQUESTS: &str = "Metadata-Version: 2.1\nName: requests\nVersion: 2.32.3\nRequires-Python: >=3.8\nRequires-Dist: charset-normalizer<4,>=2\nRequires-Dist: idna<4,>=2.5\nRequires-Dist: urllib3<3,>=1.21.1\nRequires-Dist: certifi>=2017.4.17\nRequires-Dist: PySocks!=1.5.7,>=1.5.6; extra == \"socks\"\nRequires-Dist: chardet<6,>=3.0.2; extra == \"use-chardet-on-py3\"\nRequires-Dist: colorama; sys_platform == \"win32\"\n\nRequires-Dist: in-the-description\n";

    #[test]
    fn requirements_keep_markers_and_take_extras_only_when_asked() {
        let names = |extras: &[String]| -> Vec<String> {
            requires_dist(REQUESTS, extras)
                .into_iter()
                .map(|requirement| format!("{} {}", requirement.component.name, requirement.range))
                .collect()
        };
        assert_eq!(
            names(&[]),
            [
                "charset-normalizer >=2, <4",
                "idna >=2.5, <4",
                "urllib3 >=1.21.1, <3",
                "certifi >=2017.4.17",
                "colorama *"
            ]
        );
        let socks = names(&["socks".to_owned()]);
        assert!(
            socks.iter().any(|name| name.starts_with("pysocks ")
                && name.contains(">=1.5.6")
                && name.contains("!=1.5.7")),
            "{socks:?}"
        );
    }
}
