//! Inventory: what an environment (a project, a machine, a pipeline) reports it contains. The
//! components come from an SBOM (CycloneDX 1.x JSON, SPDX 2.x JSON) or a plain list of purls;
//! lockfiles are read by the client and sent as purls. Pure: the caller gives the parsed JSON.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::component::ComponentVersion;
use crate::error::printable;

/// What a report holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportedComponents {
    /// The component versions, each once, in purl order.
    pub components: Vec<ComponentVersion>,
    /// What was left out and why (unsupported ecosystems, entries with no purl, bad purls).
    pub skipped: Vec<String>,
    /// The format recognised: `cyclonedx`, `spdx` or `purls`.
    pub format: &'static str,
}

/// Most components one report may hold.
pub const MAX_REPORTED_COMPONENTS: usize = 100_000;

/// Reads a report: a CycloneDX JSON BOM (`bomFormat: CycloneDX`), an SPDX 2 JSON document
/// (`spdxVersion: SPDX-2.x`), or `{"components": ["pkg:…@…", …]}`. `Err` says why the document
/// is none of these.
pub fn read_report(document: &Value) -> Result<ReportedComponents, String> {
    let mut purls: Vec<String> = Vec::new();
    let mut skipped = Vec::new();
    let format = if document["bomFormat"].as_str() == Some("CycloneDX") {
        collect_cyclonedx(&document["components"], &mut purls, &mut skipped, 0);
        "cyclonedx"
    } else if document["spdxVersion"]
        .as_str()
        .is_some_and(|version| version.starts_with("SPDX-2"))
    {
        for package in document["packages"].as_array().into_iter().flatten() {
            let found: Vec<&str> = package["externalRefs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|reference| reference["referenceType"].as_str() == Some("purl"))
                .filter_map(|reference| reference["referenceLocator"].as_str())
                .collect();
            if found.is_empty() {
                skipped.push(format!(
                    "SPDX package '{}' has no purl reference",
                    printable(package["name"].as_str().unwrap_or("?"))
                ));
            }
            purls.extend(found.into_iter().map(str::to_owned));
        }
        "spdx"
    } else if let Some(list) = document["components"].as_array() {
        for item in list {
            match item.as_str() {
                Some(purl) => purls.push(purl.to_owned()),
                None => skipped.push("a component that is not a purl string".to_owned()),
            }
        }
        "purls"
    } else {
        return Err("the document is not a CycloneDX JSON BOM (bomFormat \"CycloneDX\"), an SPDX 2 JSON document (spdxVersion \"SPDX-2.3\") or {\"components\": [purls]}".to_owned());
    };
    if purls.len() > MAX_REPORTED_COMPONENTS {
        return Err(format!(
            "the report names {} components; at most {MAX_REPORTED_COMPONENTS} are accepted",
            purls.len()
        ));
    }
    let mut components = BTreeMap::new();
    for purl in purls {
        match purl.parse::<ComponentVersion>() {
            Ok(component) => {
                components.insert(component.to_string(), component);
            }
            Err(error) => skipped.push(format!("{}: {error}", printable(&purl))),
        }
    }
    Ok(ReportedComponents {
        components: components.into_values().collect(),
        skipped,
        format,
    })
}

/// CycloneDX components, nested ones too (a component may contain components).
fn collect_cyclonedx(list: &Value, purls: &mut Vec<String>, skipped: &mut Vec<String>, depth: u8) {
    if depth > 16 {
        skipped.push("components nested more than 16 deep were not read".to_owned());
        return;
    }
    for component in list.as_array().into_iter().flatten() {
        match component["purl"].as_str() {
            Some(purl) => purls.push(purl.to_owned()),
            None => skipped.push(format!(
                "CycloneDX component '{}' has no purl",
                printable(component["name"].as_str().unwrap_or("?"))
            )),
        }
        collect_cyclonedx(&component["components"], purls, skipped, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyclonedx_spdx_and_purl_lists_are_read_alike() {
        let cyclonedx = serde_json::json!({
            "bomFormat": "CycloneDX", "specVersion": "1.6",
            "metadata": {"component": {"name": "my-project", "purl": "pkg:pypi/my-project@0.1"}},
            "components": [
                {"type": "library", "name": "requests", "version": "2.19.1", "purl": "pkg:pypi/requests@2.19.1"},
                {"type": "library", "name": "readxl", "purl": "pkg:cran/readxl@1.4.3", "components": [
                    {"name": "cellranger", "purl": "pkg:cran/cellranger@1.1.0"}
                ]},
                {"type": "library", "name": "commons-text", "purl": "pkg:maven/org.apache.commons/commons-text@1.9"},
                {"type": "file", "name": "notes.txt"},
                {"name": "requests again", "purl": "pkg:pypi/Requests@2.19.1?file_name=x.whl"}
            ]
        });
        let report = read_report(&cyclonedx).expect("cyclonedx");
        assert_eq!(report.format, "cyclonedx");
        let purls: Vec<String> = report.components.iter().map(ToString::to_string).collect();
        assert_eq!(
            purls,
            [
                "pkg:cran/cellranger@1.1.0",
                "pkg:cran/readxl@1.4.3",
                "pkg:pypi/requests@2.19.1"
            ]
        );
        assert_eq!(report.skipped.len(), 2, "{:?}", report.skipped);

        let spdx = serde_json::json!({
            "spdxVersion": "SPDX-2.3", "SPDXID": "SPDXRef-DOCUMENT",
            "packages": [
                {"name": "requests", "externalRefs": [
                    {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": "pkg:pypi/requests@2.19.1"}
                ]},
                {"name": "root"}
            ]
        });
        let report = read_report(&spdx).expect("spdx");
        assert_eq!(report.format, "spdx");
        assert_eq!(report.components.len(), 1);
        assert_eq!(report.skipped.len(), 1);

        let list = serde_json::json!({"components": ["pkg:pypi/six@1.16.0", "nonsense"]});
        let report = read_report(&list).expect("list");
        assert_eq!(report.components.len(), 1);
        assert_eq!(report.skipped.len(), 1);

        assert!(read_report(&serde_json::json!({"R": {}, "Packages": {}})).is_err());
    }
}
