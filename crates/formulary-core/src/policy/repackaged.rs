//! Advisories for conda packages. OSV has no conda ecosystem, so a conda package is mapped to
//! the PyPI or CRAN component it repackages and that component's advisories apply to it, with
//! the mapping stated in every reason they produce. R packages map by conda-forge's naming rule
//! (`r-<name>` is the CRAN package `<name>`, compared ignoring case, as conda lower-cases names);
//! Python packages map through a name mapping ([`CondaMapping`]): the one shipped with
//! Formulary (`data/conda-pypi-names.json`), or a file the configuration names instead
//! (`conda_name_mapping`), so a site updates it offline. Entries (prohibitions, approvals) on the
//! PyPI or CRAN component do not apply: they are decisions about that distribution, and a conda
//! package has entries of its own.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use formulary_ecosystems::{Ecosystem, Version};
use serde::Deserialize;

use super::snapshot::PolicySnapshot;
use crate::advisory::Advisory;
use crate::component::Component;

/// The mapping shipped with Formulary.
const SHIPPED: &str = include_str!("../../data/conda-pypi-names.json");

/// Which PyPI (and, beyond the `r-` rule, CRAN) component each conda package repackages.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CondaMapping {
    /// conda name (lower case) → PyPI name.
    pypi: HashMap<String, String>,
    /// conda name (lower case) → CRAN name, where the `r-` rule is not enough.
    cran: HashMap<String, String>,
}

/// The file's shape: `{"pypi": {"<conda name>": "<PyPI name>"}, "cran": {…}}`; other members
/// (such as `about`) are ignored.
#[derive(Deserialize)]
struct MappingFile {
    #[serde(default)]
    pypi: HashMap<String, String>,
    #[serde(default)]
    cran: HashMap<String, String>,
}

impl CondaMapping {
    /// Reads a mapping file (JSON: `{"pypi": {"pytorch": "torch", …}, "cran": {"r-foo": "Foo"}}`).
    /// Every name must be a valid name of its ecosystem; the error names the first that is not.
    pub fn parse(text: &str) -> Result<CondaMapping, String> {
        let file: MappingFile = serde_json::from_str(text).map_err(|error| {
            format!("not a conda name mapping ({error}); write {{\"pypi\": {{\"<conda name>\": \"<PyPI name>\"}}}}")
        })?;
        let check = |map: HashMap<String, String>, ecosystem: Ecosystem| {
            map.into_iter()
                .map(|(conda, upstream)| {
                    let conda_name = Component::new(Ecosystem::Conda, &conda)
                        .map_err(|error| format!("'{}': {error}", conda.escape_debug()))?;
                    Component::new(ecosystem, &upstream)
                        .map_err(|error| format!("'{}': {error}", upstream.escape_debug()))?;
                    Ok((conda_name.name.as_str().to_owned(), upstream))
                })
                .collect::<Result<HashMap<_, _>, String>>()
        };
        Ok(CondaMapping {
            pypi: check(file.pypi, Ecosystem::Pypi)?,
            cran: check(file.cran, Ecosystem::Cran)?,
        })
    }

    /// The mapping shipped with Formulary.
    pub fn shipped() -> CondaMapping {
        CondaMapping::parse(SHIPPED).expect("the shipped conda name mapping is valid")
    }

    /// How many conda names it maps explicitly.
    pub fn len(&self) -> usize {
        self.pypi.len() + self.cran.len()
    }

    /// True when it maps no name explicitly.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ecosystem and name a conda package repackages, if known.
    pub fn upstream_of(&self, conda_name: &str) -> Option<(Ecosystem, String)> {
        let name = conda_name.to_ascii_lowercase();
        if let Some(pypi) = self.pypi.get(&name) {
            return Some((Ecosystem::Pypi, pypi.clone()));
        }
        if let Some(cran) = self.cran.get(&name) {
            return Some((Ecosystem::Cran, cran.clone()));
        }
        name.strip_prefix("r-")
            .filter(|rest| !rest.is_empty())
            .map(|rest| (Ecosystem::Cran, rest.to_owned()))
    }
}

static MAPPING: OnceLock<Arc<CondaMapping>> = OnceLock::new();

/// Replaces the shipped mapping for this process (the binary does this at start when the
/// configuration names a mapping file). Only the first call has effect; returns false after.
pub fn set_conda_mapping(mapping: CondaMapping) -> bool {
    MAPPING.set(Arc::new(mapping)).is_ok()
}

/// The mapping in force: the configured one, else the shipped one.
pub fn conda_mapping() -> Arc<CondaMapping> {
    Arc::clone(MAPPING.get_or_init(|| Arc::new(CondaMapping::shipped())))
}

/// The component a conda package repackages, with its advisories.
pub(crate) struct Repackaged<'a> {
    /// The PyPI or CRAN component.
    pub(crate) upstream: Component,
    /// Its advisories in force.
    pub(crate) advisories: &'a [Arc<Advisory>],
    /// " via PyPI package torch (mapped from conda package pytorch)", for messages.
    pub(crate) via: String,
}

impl Repackaged<'_> {
    /// The conda package (`component`, a conda component) mapped, when it maps to a component
    /// with advisories.
    pub(crate) fn of<'a>(
        snapshot: &'a PolicySnapshot,
        component: &Component,
    ) -> Option<Repackaged<'a>> {
        if component.ecosystem() != Ecosystem::Conda {
            return None;
        }
        let (ecosystem, name) = conda_mapping().upstream_of(component.name.as_str())?;
        let upstream = match ecosystem {
            Ecosystem::Cran => snapshot.advisory_component_ignoring_case(ecosystem, &name)?,
            _ => Component::new(ecosystem, &name).ok()?,
        };
        let advisories = snapshot.advisories_for(&upstream);
        if advisories.is_empty() {
            return None;
        }
        let via = format!(
            " via {} package {} (mapped from conda package {})",
            ecosystem.display_name(),
            upstream.name,
            component.name
        );
        Some(Repackaged {
            upstream,
            advisories,
            via,
        })
    }

    /// A conda version as a version of the upstream ecosystem (conda-forge writes CRAN's
    /// `1.2-3` as `1.2_3`); `None` when it is not one.
    pub(crate) fn version(&self, conda: &Version) -> Option<Version> {
        let text = conda.to_string();
        let text = match self.upstream.ecosystem() {
            Ecosystem::Cran => text.replace('_', "-"),
            _ => text,
        };
        Version::parse(self.upstream.ecosystem(), &text).ok()
    }

    /// True when `advisory` affects this conda `version` through the mapping.
    pub(crate) fn affects(&self, advisory: &Advisory, version: &Version) -> bool {
        self.version(version)
            .is_some_and(|upstream| advisory.affects(&self.upstream, &upstream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_mapping_reads_and_r_packages_map_to_cran() {
        let mapping = CondaMapping::shipped();
        assert!(mapping.len() > 50);
        assert_eq!(
            mapping.upstream_of("pytorch"),
            Some((Ecosystem::Pypi, "torch".to_owned()))
        );
        assert_eq!(
            mapping.upstream_of("r-readxl"),
            Some((Ecosystem::Cran, "readxl".to_owned()))
        );
        assert_eq!(mapping.upstream_of("r-"), None);
        assert_eq!(mapping.upstream_of("libzlib"), None);
    }

    #[test]
    fn a_mapping_file_is_checked() {
        let mapping = CondaMapping::parse(
            r#"{"about": "x", "pypi": {"PyTorch": "torch"}, "cran": {"r-rcpp": "Rcpp"}}"#,
        )
        .expect("valid");
        assert_eq!(
            mapping.upstream_of("pytorch"),
            Some((Ecosystem::Pypi, "torch".to_owned()))
        );
        assert_eq!(
            mapping.upstream_of("r-rcpp"),
            Some((Ecosystem::Cran, "Rcpp".to_owned()))
        );
        let why = CondaMapping::parse(r#"{"pypi": {"ok": "not/valid"}}"#).expect_err("bad name");
        assert!(why.contains("not/valid"), "{why}");
        assert!(CondaMapping::parse("42").is_err());
        assert!(CondaMapping::parse(r#"{"pypi": ["torch"]}"#).is_err());
    }
}
