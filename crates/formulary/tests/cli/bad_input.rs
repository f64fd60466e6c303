//! Bad input gets a clear error, exit status 2, and changes nothing.

use crate::formulary_cli::{repo_root, text, Workspace};

#[test]
fn unknown_ecosystems_and_hostile_names_are_refused_clearly() {
    let workspace = Workspace::new();
    for (purl, expected) in [
        ("pkg:maven/org.x/y@1", "unknown ecosystem 'maven'"),
        ("pkg:pypi/..%2F..%2Fetc@1", "not a valid pypi package name"),
        (
            "pkg:pypi/requests@not-a-version!",
            "not a valid pypi version",
        ),
        ("requests==2.0", "not a package URL"),
    ] {
        let output = workspace.run(&["policy", "check", purl]);
        assert_eq!(output.status.code(), Some(2), "{purl}");
        assert!(
            text(&output.stderr).contains(expected),
            "{purl}: {}",
            text(&output.stderr)
        );
    }
    let output = workspace.run(&[
        "entry",
        "add",
        "pkg:pypi/x",
        "--status",
        "pilot",
        "--reason",
        "r",
        "--range",
        ">=banana",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("PEP 440 specifiers"),
        "{}",
        text(&output.stderr)
    );
    assert!(
        workspace.ok(&["entry", "list"]).contains("No entries"),
        "nothing was written"
    );
}

#[test]
fn an_unreachable_database_is_reported_without_its_password() {
    let workspace = Workspace::new();
    let output = workspace.run(&[
        "--database-url",
        "postgres://formulary:s3cret@127.0.0.1:1/formulary",
        "entry",
        "list",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let message = text(&output.stderr);
    assert!(message.contains("could not open the database"), "{message}");
    assert!(message.contains("running and reachable"), "{message}");
    assert!(
        !message.contains("s3cret"),
        "the password must not be shown: {message}"
    );
}

#[test]
fn malformed_osv_records_are_reported_and_the_rest_import() {
    let workspace = Workspace::new();
    let folder = workspace.folder.path().join("advisories");
    std::fs::create_dir_all(folder.join("vulns/x")).expect("folder");
    std::fs::copy(
        repo_root().join("test-data/osv/pypa-advisory-database/vulns/requests/PYSEC-2018-28.yaml"),
        folder.join("vulns/x/PYSEC-2018-28.yaml"),
    )
    .expect("copy");
    std::fs::write(folder.join("vulns/x/BROKEN.yaml"), "id: [unclosed\n").expect("write");
    std::fs::write(
        folder.join("vulns/x/BAD-TIME.json"),
        r#"{"id":"PYSEC-0000-1","modified":"yesterday"}"#,
    )
    .expect("write");
    let output = workspace.ok(&["advisories", "import", &folder.display().to_string()]);
    assert!(output.contains("Imported 1 advisories"), "{output}");
    assert!(output.contains("2 records could not be read"), "{output}");
    assert!(
        output.contains("vulns/x/BROKEN.yaml") && output.contains("vulns/x/BAD-TIME.json"),
        "{output}"
    );
    assert!(
        output.contains("'modified' is not an RFC 3339 time"),
        "{output}"
    );
}

#[test]
fn a_mistyped_configuration_setting_is_an_error() {
    let workspace = Workspace::new();
    std::fs::write(
        workspace.folder.path().join("formulary.toml"),
        "listen = \"127.0.0.1:8080\"\ndatabse_url = \"x\"\n",
    )
    .expect("write");
    let output = workspace.run(&["entry", "list"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("databse_url"),
        "{}",
        text(&output.stderr)
    );
}
