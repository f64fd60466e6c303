//! `formulary why`: an unpinned install that gets an older version is explained, from the
//! release evidence the gateway recorded when pip asked for the project.

use crate::formulary_cli::{repo_root, text, Workspace};
use crate::gateway_pypi::static_upstream;
use crate::surveillance::pip_download;

crate::on_both_databases!(fn why_names_the_version_served_and_what_is_held_back_and_why);
fn why_names_the_version_served_and_what_is_held_back_and_why() {
    let workspace = Workspace::new();
    let root = workspace.folder.path();
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/pypa-advisory-database/vulns/requests")
            .display()
            .to_string(),
    ]);
    workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/requests",
        "--status",
        "prohibited",
        "--range",
        ">=2.32",
        "--reason",
        "withdrawn nationally while a regression is reviewed",
    ]);

    // Before the gateway has seen the project there is no evidence: the command says so.
    let output = workspace.run(&["why", "pkg:pypi/requests"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("no release evidence for pkg:pypi/requests yet"),
        "{}",
        text(&output.stderr)
    );

    let (_upstream, upstream_url) = static_upstream(&root.join("upstream"));
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_CRAN_UPSTREAMS", "[]".to_owned()),
    ]);
    // An unpinned install quietly gets 2.31.0: 2.32.3 is prohibited.
    let output = pip_download(
        &root.join("downloads"),
        &format!("{base}/pypi/simple/"),
        "requests",
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("requests-2.31.0"),
        "{}",
        text(&output.stdout)
    );

    let output = workspace.run(&["why", "pkg:pypi/requests"]);
    let said = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{said}{}",
        text(&output.stderr)
    );
    assert!(said.contains("an unpinned install gets 2.31.0"), "{said}");
    assert!(
        said.contains("2.32.3 — ")
            && said.contains("withdrawn nationally while a regression is reviewed"),
        "{said}"
    );
    assert!(
        !said.contains("2.19.1 — "),
        "older versions are not 'held back': {said}"
    );

    // One version: its decision, and what the view gives instead.
    let output = workspace.run(&["why", "pkg:pypi/requests@2.19.1", "--json"]);
    assert_eq!(output.status.code(), Some(1));
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(answer["serves"], "2.31.0", "{answer}");
    assert_eq!(answer["asked"]["allowed"], false, "{answer}");
    assert!(
        answer["asked"]["reasons"]
            .to_string()
            .contains("PYSEC-2018-28"),
        "{answer}"
    );
    assert_eq!(answer["held_back"][0]["version"], "2.32.3", "{answer}");
}
