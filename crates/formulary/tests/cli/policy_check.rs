//! The "done means": import the real PyPA database, then explain a block; each test runs
//! on SQLite and on PostgreSQL.

use crate::formulary_cli::{repo_root, text, Workspace};
use crate::on_both_databases;

fn pypa() -> String {
    repo_root()
        .join("test-data/osv/pypa-advisory-database")
        .display()
        .to_string()
}

on_both_databases!(fn a_known_vulnerable_version_is_denied_with_its_advisory_and_fix);
fn a_known_vulnerable_version_is_denied_with_its_advisory_and_fix() {
    let workspace = Workspace::new();
    let imported = workspace.ok(&["advisories", "import", &pypa()]);
    assert!(imported.contains("2661 new"), "{imported}");
    let again = workspace.ok(&["advisories", "import", &pypa()]);
    assert!(
        again.contains("0 new, 0 updated, 2661 unchanged"),
        "importing twice changes nothing: {again}"
    );

    let denied = workspace.run(&["policy", "check", "pkg:pypi/requests@2.19.1"]);
    assert_eq!(denied.status.code(), Some(1), "a denial exits 1");
    let explanation = text(&denied.stdout);
    assert!(
        explanation.starts_with("DENIED  pkg:pypi/requests@2.19.1"),
        "{explanation}"
    );
    assert!(
        explanation.contains("PYSEC-2018-28") && explanation.contains("fixed in 2.20.0"),
        "{explanation}"
    );
    assert!(
        explanation.contains("https://osv.dev/vulnerability/PYSEC-2018-28"),
        "{explanation}"
    );

    let allowed = workspace.run(&["policy", "check", "pkg:pypi/requests@2.32.3"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed.stdout));
}

on_both_databases!(fn json_output_and_lockfiles_answer_for_a_whole_environment);
fn json_output_and_lockfiles_answer_for_a_whole_environment() {
    let workspace = Workspace::new();
    workspace.ok(&["advisories", "import", &pypa()]);
    workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/numpy",
        "--range",
        "<1.22",
        "--status",
        "prohibited",
        "--reason",
        "end of life",
    ]);
    let requirements = workspace.folder.path().join("requirements.txt");
    std::fs::write(
        &requirements,
        "requests==2.32.3\nnumpy==1.21.0  # old\npandas>=2\n",
    )
    .expect("write");
    let output = workspace.run(&[
        "policy",
        "check",
        "--file",
        &requirements.display().to_string(),
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(report["allowed"], false);
    let verdicts: Vec<(String, bool)> = report["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|decision| {
            (
                format!(
                    "{}@{}",
                    decision["component"].as_str().unwrap(),
                    decision["version"].as_str().unwrap()
                ),
                decision["allowed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("pkg:pypi/requests@2.32.3".to_owned(), true),
            ("pkg:pypi/numpy@1.21.0".to_owned(), false)
        ]
    );
    assert_eq!(report["decisions"][1]["reasons"][0]["code"], "prohibited");
    assert!(
        report["skipped"][0].as_str().unwrap().contains("pandas>=2"),
        "{}",
        report["skipped"]
    );
}

on_both_databases!(fn the_r_database_decides_cran_versions_with_r_ordering);
fn the_r_database_decides_cran_versions_with_r_ordering() {
    let workspace = Workspace::new();
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/r-advisory-database")
            .display()
            .to_string(),
    ]);
    let denied = workspace.run(&["policy", "check", "pkg:cran/readxl@1.0.0"]);
    assert_eq!(denied.status.code(), Some(1));
    assert!(
        text(&denied.stdout).contains("RSEC-2023-1"),
        "{}",
        text(&denied.stdout)
    );
    let allowed = workspace.run(&["policy", "check", "pkg:cran/readxl@1.4-3"]);
    assert_eq!(allowed.status.code(), Some(0), "{}", text(&allowed.stdout));
}

on_both_databases!(fn entries_are_managed_from_the_cli_and_every_change_is_audited);
fn entries_are_managed_from_the_cli_and_every_change_is_audited() {
    let workspace = Workspace::new();
    workspace.ok(&[
        "org",
        "add",
        "RJ1",
        "--name",
        "Guy's and St Thomas' NHS Foundation Trust",
    ]);
    workspace.ok(&[
        "org",
        "settings",
        "RJ1",
        "--ecosystem",
        "pypi",
        "--stance",
        "curated",
    ]);
    let added = workspace.ok(&[
        "entry",
        "add",
        "pkg:pypi/pandas",
        "--range",
        ">=2,<3",
        "--status",
        "approved",
        "--reason",
        "core library",
        "--org",
        "rj1",
    ]);
    let id = added
        .split_whitespace()
        .nth(2)
        .expect("id")
        .trim_end_matches(':')
        .to_owned();
    let listed = workspace.ok(&["entry", "list", "--org", "RJ1", "--json"]);
    let entries: serde_json::Value = serde_json::from_str(&listed).expect("JSON");
    assert_eq!(entries[0]["id"], id.as_str());
    assert_eq!(entries[0]["component"], "pkg:pypi/pandas");

    assert!(workspace
        .run(&["policy", "check", "pkg:pypi/pandas@2.2.3", "--org", "RJ1"])
        .status
        .success());
    let outside = workspace.run(&["policy", "check", "pkg:pypi/polars@1.0", "--org", "RJ1"]);
    assert_eq!(outside.status.code(), Some(1));
    assert!(
        text(&outside.stdout).contains("[not-in-formulary]"),
        "{}",
        text(&outside.stdout)
    );

    workspace.ok(&[
        "entry",
        "remove",
        &id,
        "--reason",
        "replaced by the national entry",
    ]);
    assert_eq!(
        workspace
            .run(&["policy", "check", "pkg:pypi/pandas@2.2.3", "--org", "RJ1"])
            .status
            .code(),
        Some(1)
    );
    let history: serde_json::Value =
        serde_json::from_str(&workspace.ok(&["entry", "show", &id])).expect("JSON");
    let actions: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["entry.add", "entry.remove"]);
    let verified = workspace.ok(&["audit", "verify"]);
    assert!(verified.contains("intact: 4 rows"), "{verified}");
}
