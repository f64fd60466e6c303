//! `formulary inventory export` (issue 14): an organisation's estate — what its people downloaded
//! through its view and what its environments reported — as a CycloneDX 1.6 SBOM, for those who
//! may see who has what; the SBOM reads back through `formulary report`.

use std::time::Duration;

use serde_json::Value;

use crate::formulary_cli::{text, Workspace};
use crate::gateway_pypi::static_upstream;
use crate::surveillance::{as_client, pip_download, token, wait_until};

/// The component of `purl` in the document, if any.
fn component<'a>(document: &'a Value, purl: &str) -> Option<&'a Value> {
    document["components"]
        .as_array()?
        .iter()
        .find(|component| component["purl"] == purl)
}

fn property(component: &Value, name: &str) -> String {
    component["properties"]
        .as_array()
        .and_then(|properties| properties.iter().find(|property| property["name"] == name))
        .and_then(|property| property["value"].as_str())
        .unwrap_or_default()
        .to_owned()
}

crate::on_both_databases!(fn an_organisations_estate_is_exported_as_a_cyclonedx_sbom);
fn an_organisations_estate_is_exported_as_a_cyclonedx_sbom() {
    let workspace = Workspace::new();
    let root = workspace.folder.path();
    workspace.ok(&["org", "add", "RJ1", "--name", "Trust One"]);
    workspace.ok(&["org", "add", "RQM", "--name", "Trust Two"]);
    let (_upstream, upstream_url) = static_upstream(&root.join("upstream"));
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
    ]);
    let ci = token(&workspace, "rj1 ci", "requester", "RJ1");
    let auditor = token(&workspace, "auditor", "auditor", "NATIONAL");
    let other_admin = token(&workspace, "rqm admin", "organisation-admin", "RQM");

    // Two RJ1 environments report requests 2.19.1; one of them six too; RJ1's view serves
    // requests 2.31.0 once.
    for (environment, lock) in [
        ("analysis-laptop", "requests==2.19.1\nidna==2.7\n"),
        ("pipeline", "requests==2.19.1\nsix==1.16.0\n"),
    ] {
        let file = root.join(format!("{environment}.txt"));
        std::fs::write(&file, lock).unwrap();
        let output = as_client(
            &workspace,
            &base,
            &ci,
            &[
                "report",
                &file.display().to_string(),
                "--org",
                "RJ1",
                "--environment",
                environment,
            ],
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
    }
    let downloaded = pip_download(
        &root.join("downloads"),
        &format!("{base}/o/RJ1/pypi/simple/"),
        "requests==2.31.0",
    );
    assert!(downloaded.status.success(), "{}", text(&downloaded.stderr));

    let sbom = root.join("rj1.cdx.json");
    let mut document = Value::Null;
    wait_until(
        Duration::from_secs(20),
        "the download in the estate",
        || {
            let output = as_client(
                &workspace,
                &base,
                &auditor,
                &[
                    "inventory",
                    "export",
                    "--org",
                    "RJ1",
                    "--output",
                    &sbom.display().to_string(),
                ],
            );
            assert!(output.status.success(), "{}", text(&output.stderr));
            document = serde_json::from_slice(&std::fs::read(&sbom).unwrap()).unwrap();
            component(&document, "pkg:pypi/requests@2.31.0").is_some()
        },
    );
    assert_eq!(document["bomFormat"], "CycloneDX", "{document}");
    assert_eq!(document["specVersion"], "1.6", "{document}");
    assert!(
        document["serialNumber"]
            .as_str()
            .is_some_and(|serial| serial.starts_with("urn:uuid:")),
        "{document}"
    );
    assert_eq!(
        document["metadata"]["component"]["name"], "RJ1 estate",
        "{document}"
    );
    let reported = component(&document, "pkg:pypi/requests@2.19.1").expect("requests 2.19.1");
    assert_eq!(reported["type"], "library");
    assert_eq!(property(reported, "formulary:environments"), "2");
    assert_eq!(property(reported, "formulary:downloads"), "0");
    let served = component(&document, "pkg:pypi/requests@2.31.0").expect("requests 2.31.0");
    assert_eq!(property(served, "formulary:downloads"), "1");
    assert!(component(&document, "pkg:pypi/six@1.16.0").is_some());
    assert!(component(&document, "pkg:pypi/idna@2.7").is_some());
    assert_eq!(
        document["components"].as_array().map(Vec::len),
        Some(4),
        "{document}"
    );

    // The SBOM reads back as a report (Formulary's own CycloneDX reader).
    let output = as_client(
        &workspace,
        &base,
        &auditor,
        &[
            "report",
            &sbom.display().to_string(),
            "--org",
            "NATIONAL",
            "--environment",
            "rj1-estate-copy",
        ],
    );
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );

    // Another organisation's admin may not see RJ1's estate; an unknown organisation is named.
    let refused = as_client(
        &workspace,
        &base,
        &other_admin,
        &["inventory", "export", "--org", "RJ1"],
    );
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("RQM only"),
        "{}",
        text(&refused.stderr)
    );
    let unknown = as_client(
        &workspace,
        &base,
        &auditor,
        &["inventory", "export", "--org", "ZZ9"],
    );
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr).contains("no organisation ZZ9"),
        "{}",
        text(&unknown.stderr)
    );
}
