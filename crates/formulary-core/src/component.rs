use std::fmt;
use std::str::FromStr;

use formulary_ecosystems::{Ecosystem, PackageName, Version};
use purl::GenericPurl;
use serde::{Deserialize, Serialize};

use crate::error::{printable, CoreError};

/// One piece of software, named by its ecosystem and normalised package name
/// (`pkg:pypi/requests`). It serialises as that purl.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Component {
    /// The checked package name; it carries the ecosystem.
    pub name: PackageName,
}

impl Component {
    /// A component from an ecosystem and a name, checked and normalised.
    pub fn new(ecosystem: Ecosystem, name: &str) -> Result<Component, CoreError> {
        Ok(Component {
            name: PackageName::new(ecosystem, name)?,
        })
    }

    /// The component's ecosystem.
    pub fn ecosystem(&self) -> Ecosystem {
        self.name.ecosystem()
    }

    /// The package URL without a version, e.g. `pkg:cran/readxl`; an npm scope is the purl's
    /// namespace, its `@` written `%40` (`pkg:npm/%40types/node`).
    pub fn purl(&self) -> String {
        let name = self.name.as_str();
        match name.strip_prefix('@') {
            Some(scoped) if self.ecosystem() == Ecosystem::Npm => {
                format!("pkg:npm/%40{scoped}")
            }
            _ => format!("pkg:{}/{}", self.ecosystem(), name),
        }
    }
}

impl From<Component> for String {
    fn from(component: Component) -> String {
        component.purl()
    }
}

impl TryFrom<String> for Component {
    type Error = CoreError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.purl())
    }
}

/// A component at one version, as in `pkg:pypi/requests@2.19.1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ComponentVersion {
    /// The component.
    pub component: Component,
    /// The parsed version, ordered by the ecosystem's rules.
    pub version: Version,
}

impl fmt::Display for ComponentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.component.purl(), self.version)
    }
}

/// A purl that may or may not name a version.
struct ParsedPurl {
    component: Component,
    version: Option<String>,
}

fn parse_purl(text: &str) -> Result<ParsedPurl, CoreError> {
    let invalid = |why: String| CoreError::InvalidPurl {
        purl: printable(text),
        why,
    };
    if text.len() > 1024 {
        return Err(invalid("it is longer than 1024 characters".to_owned()));
    }
    let purl = GenericPurl::<String>::from_str(text.trim()).map_err(|error| {
        invalid(format!(
            "{error}; write it as pkg:pypi/requests@2.32.3 or pkg:cran/readxl"
        ))
    })?;
    let ecosystem = Ecosystem::from_str(purl.package_type())?;
    let component = match purl.namespace() {
        // npm's namespace is the scope: `pkg:npm/%40types/node` is `@types/node`.
        Some(scope) if ecosystem == Ecosystem::Npm => {
            let scope = scope.strip_prefix('@').unwrap_or(scope);
            Component::new(ecosystem, &format!("@{scope}/{}", purl.name()))?
        }
        Some(_) => return Err(invalid(format!("{ecosystem} packages have no namespace"))),
        None => Component::new(ecosystem, purl.name())?,
    };
    Ok(ParsedPurl {
        component,
        version: purl.version().map(str::to_owned),
    })
}

impl FromStr for Component {
    type Err = CoreError;

    /// Reads `pkg:TYPE/NAME`; a version, if present, is refused so that it is not silently lost.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = parse_purl(text)?;
        match parsed.version {
            None => Ok(parsed.component),
            Some(_) => Err(CoreError::InvalidPurl {
                purl: printable(text),
                why: "a component is named without a version here; drop the '@…' part".to_owned(),
            }),
        }
    }
}

impl FromStr for ComponentVersion {
    type Err = CoreError;

    /// Reads `pkg:TYPE/NAME@VERSION`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parsed = parse_purl(text)?;
        let version_text = parsed.version.ok_or_else(|| CoreError::InvalidPurl {
            purl: printable(text),
            why: "it names no version; add one, as in pkg:pypi/requests@2.32.3".to_owned(),
        })?;
        let version = Version::parse(parsed.component.ecosystem(), &version_text)?;
        Ok(ComponentVersion {
            component: parsed.component,
            version,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versioned_purls_and_normalises_names() {
        let parsed: ComponentVersion = "pkg:pypi/Django_REST@3.1".parse().unwrap();
        assert_eq!(parsed.to_string(), "pkg:pypi/django-rest@3.1");
        let r: ComponentVersion = "pkg:cran/readxl@1.0.0".parse().unwrap();
        assert_eq!(r.component.ecosystem(), Ecosystem::Cran);
    }

    #[test]
    fn npm_scopes_are_the_purl_namespace() {
        let scoped: ComponentVersion = "pkg:npm/%40types/node@20.1.0".parse().unwrap();
        assert_eq!(scoped.component.name.as_str(), "@types/node");
        assert_eq!(scoped.to_string(), "pkg:npm/%40types/node@20.1.0");
        let plain: Component = "pkg:npm/lodash".parse().unwrap();
        assert_eq!(plain.purl(), "pkg:npm/lodash");
        let again: Component = scoped.component.purl().parse().unwrap();
        assert_eq!(again, scoped.component);
    }

    #[test]
    fn refuses_unknown_types_namespaces_and_missing_versions() {
        let error = "pkg:maven/org.x/y@1"
            .parse::<ComponentVersion>()
            .unwrap_err();
        assert!(
            error.to_string().contains("unknown ecosystem 'maven'"),
            "{error}"
        );
        assert!("pkg:pypi/requests".parse::<ComponentVersion>().is_err());
        assert!("requests==2.0".parse::<ComponentVersion>().is_err());
        assert!("pkg:pypi/requests@2.0".parse::<Component>().is_err());
        assert!("pkg:pypi/requests@not a version"
            .parse::<ComponentVersion>()
            .is_err());
    }
}
