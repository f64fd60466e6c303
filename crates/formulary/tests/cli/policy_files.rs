//! `formulary policy check --file` reads files as pip, uv and renv do, refuses to answer from an
//! empty store, and gives the same answer locally, through `--server` and in the API.

use std::path::Path;

use crate::formulary_cli::{repo_root, text, Workspace};

fn pypa() -> String {
    repo_root()
        .join("test-data/osv/pypa-advisory-database")
        .display()
        .to_string()
}

/// The purls judged and their verdicts, from `--json` output.
fn verdicts(stdout: &[u8]) -> (Vec<(String, bool)>, Vec<String>) {
    let report: serde_json::Value =
        serde_json::from_slice(stdout).unwrap_or_else(|error| panic!("{error}: {}", text(stdout)));
    let decisions = report["decisions"]
        .as_array()
        .expect("decisions")
        .iter()
        .map(|decision| {
            (
                format!(
                    "{}@{}",
                    decision["component"].as_str().expect("component"),
                    decision["version"].as_str().expect("version")
                ),
                decision["allowed"].as_bool().expect("allowed"),
            )
        })
        .collect();
    let skipped = report["skipped"]
        .as_array()
        .expect("skipped")
        .iter()
        .map(|line| line.as_str().expect("text").to_owned())
        .collect();
    (decisions, skipped)
}

/// The body of a GET.
fn http_get(url: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async { reqwest::get(url).await?.text().await })
        .unwrap_or_else(|error| panic!("GET {url}: {error}"))
}

fn write(path: &Path, content: &str) {
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder).expect("folder");
    }
    std::fs::write(path, content).expect("write");
}

#[test]
fn a_requirements_file_is_read_as_pip_reads_it() {
    let workspace = Workspace::new();
    workspace.ok(&["advisories", "import", &pypa()]);
    let project = workspace.folder.path().join("project");
    write(
        &project.join("requirements.txt"),
        "# spaces, an include, a constraint, a marker, hashes\nPyYAML == 5.3\n-r requirements/base.txt\n-c constraints.txt\nwerkzeug\nold-thing==1.0 ; python_version < \"3.0\"\n-e ./local-package\n",
    );
    write(
        &project.join("requirements/base.txt"),
        "requests==2.32.3 \\\n    --hash=sha256:0000000000000000000000000000000000000000000000000000000000000000\n",
    );
    write(&project.join("constraints.txt"), "werkzeug==3.0.6\n");
    let output = workspace.run(&[
        "policy",
        "check",
        "--file",
        &project.join("requirements.txt").display().to_string(),
        "--python-version",
        "3.12",
        "--platform",
        "linux",
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let (decisions, skipped) = verdicts(&output.stdout);
    assert_eq!(
        decisions,
        [
            ("pkg:pypi/pyyaml@5.3".to_owned(), false),
            ("pkg:pypi/requests@2.32.3".to_owned(), true),
            ("pkg:pypi/werkzeug@3.0.6".to_owned(), true),
        ]
    );
    let skipped = skipped.join("\n");
    assert!(
        skipped.contains("line 6: 'old-thing==1.0 ; python_version < \"3.0\"' is only for environments where python_version < \"3.0\", and markers were evaluated for Python 3.12.0 on linux"),
        "{skipped}"
    );
    assert!(
        skipped.contains("line 7: -e ./local-package is an editable install"),
        "{skipped}"
    );

    // An include that is not there, and a cycle, are errors (exit 2), as they are for pip.
    write(
        &project.join("requirements/base.txt"),
        "-r ../requirements.txt\n",
    );
    let cycle = workspace.run(&[
        "policy",
        "check",
        "--file",
        &project.join("requirements.txt").display().to_string(),
        "--python-version",
        "3.12",
    ]);
    assert_eq!(cycle.status.code(), Some(2));
    assert!(
        text(&cycle.stderr).contains("is a cycle of included files"),
        "{}",
        text(&cycle.stderr)
    );
}

#[test]
fn lockfiles_leave_out_the_local_project_and_renv_is_known_by_content() {
    let workspace = Workspace::new();
    workspace.ok(&["advisories", "import", &pypa()]);
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/r-advisory-database")
            .display()
            .to_string(),
    ]);
    let uv_lock = workspace.folder.path().join("uv.lock");
    write(
        &uv_lock,
        "version = 1\nrequires-python = \">=3.12\"\n\n[[package]]\nname = \"analysis\"\nversion = \"0.1.0\"\nsource = { editable = \".\" }\n\n[[package]]\nname = \"requests\"\nversion = \"2.19.1\"\nsource = { registry = \"https://pypi.org/simple\" }\n",
    );
    let output = workspace.run(&[
        "policy",
        "check",
        "--file",
        &uv_lock.display().to_string(),
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let (decisions, skipped) = verdicts(&output.stdout);
    assert_eq!(decisions, [("pkg:pypi/requests@2.19.1".to_owned(), false)]);
    assert!(
        skipped[0].contains("analysis is the local project (editable .)"),
        "{skipped:?}"
    );

    let renv = workspace.folder.path().join("production-environment.lock");
    write(
        &renv,
        r#"{"R": {"Version": "4.4.2"}, "Packages": {"readxl": {"Package": "readxl", "Version": "1.2.0", "Source": "Repository", "Repository": "CRAN"}}}"#,
    );
    let output = workspace.run(&["policy", "check", "--file", &renv.display().to_string()]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).starts_with("DENIED  pkg:cran/readxl@1.2.0"),
        "{}",
        text(&output.stdout)
    );
}

#[test]
fn an_empty_or_missing_store_is_not_asked() {
    let workspace = Workspace::new();
    let data = workspace.folder.path().join("data");
    let output = workspace.run(&["policy", "check", "pkg:pypi/requests@2.19.1"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stdout));
    let said = text(&output.stderr);
    assert!(
        said.contains("there is no formulary to check against")
            && said.contains("--data-dir")
            && said.contains("--server URL"),
        "{said}"
    );
    assert!(text(&output.stdout).is_empty(), "{}", text(&output.stdout));
    assert!(!data.exists(), "no data folder was created");

    // A store with an organisation but no entries and no advisories would allow everything.
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    let output = workspace.run(&[
        "policy",
        "check",
        "pkg:pypi/requests@2.19.1",
        "--org",
        "RJ1",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stdout));
    let said = text(&output.stderr);
    assert!(
        said.contains("is empty (no entries, no advisories, and an open view)")
            && said.contains("--server URL"),
        "{said}"
    );
}

/// Writes `<folder>/<name>_<version>.tar.gz` holding `<name>/DESCRIPTION`, as `R CMD build` does.
fn cran_tarball(folder: &Path, name: &str, version: &str, imports: &str) -> String {
    let imports = if imports.is_empty() {
        String::new()
    } else {
        format!("Imports: {imports}\n")
    };
    let description = format!(
        "Package: {name}\nVersion: {version}\nTitle: Test {name}\nDescription: A test package.\nLicense: MIT + file LICENSE\n{imports}NeedsCompilation: no\n"
    );
    let staging = folder.join(format!("staging-{name}-{version}"));
    write(&staging.join(name).join("DESCRIPTION"), &description);
    std::fs::create_dir_all(folder).expect("folder");
    let output = std::process::Command::new("tar")
        .arg("czf")
        .arg(folder.join(format!("{name}_{version}.tar.gz")))
        .arg("-C")
        .arg(&staging)
        .arg(name)
        .output()
        .expect("tar runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    std::fs::remove_dir_all(staging).expect("staging removed");
    description
}

/// readxl 1.4.5 imports tibble (>= 2.0.1); tibble 3.2.1 is current and 3.1.8 archived; strict
/// imports tibble (>= 3.2). With tibble >= 3.2 prohibited in RJ1, the gateway serves tibble
/// 3.1.8 and readxl, and withholds strict: `policy check`, `--server` and the API must agree.
#[test]
fn cran_dependencies_get_the_gateways_answer_everywhere() {
    let workspace = Workspace::new();
    let bundle = workspace.folder.path().join("bundle");
    let contrib = bundle.join("src/contrib");
    let mut packages = String::new();
    for (name, version, imports) in [
        ("readxl", "1.4.5", "tibble (>= 2.0.1), utils"),
        ("strict", "1.0", "tibble (>= 3.2)"),
        ("tibble", "3.2.1", ""),
    ] {
        packages.push_str(&cran_tarball(&contrib, name, version, imports));
        packages.push('\n');
    }
    write(&contrib.join("PACKAGES"), &packages);
    cran_tarball(&contrib.join("Archive/tibble"), "tibble", "3.1.8", "");
    workspace.ok(&["mirror", "import", "cran", &bundle.display().to_string()]);
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/r-advisory-database")
            .display()
            .to_string(),
    ]);
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.ok(&[
        "entry",
        "add",
        "pkg:cran/tibble",
        "--range",
        ">= 3.2",
        "--status",
        "prohibited",
        "--reason",
        "breaks our reports",
        "--org",
        "RJ1",
    ]);

    let readxl = workspace.run(&["policy", "check", "pkg:cran/readxl@1.4.5", "--org", "RJ1"]);
    assert_eq!(
        readxl.status.code(),
        Some(0),
        "tibble 3.1.8 satisfies readxl: {}",
        text(&readxl.stdout)
    );
    let strict = workspace.run(&["policy", "check", "pkg:cran/strict@1.0", "--org", "RJ1"]);
    assert_eq!(strict.status.code(), Some(1), "{}", text(&strict.stdout));
    let local = text(&strict.stdout);
    assert!(
        local.contains("[dependency-denied] it needs tibble (>= 3.2), and tibble 3.2.1 is denied"),
        "{local}"
    );

    let (_server, base) = workspace.serve(&[
        ("FORMULARY_CRAN_UPSTREAMS", "[]".to_owned()),
        ("FORMULARY_PYPI_UPSTREAMS", "[]".to_owned()),
    ]);
    let index = http_get(&format!("{base}/o/RJ1/cran/src/contrib/PACKAGES"));
    assert!(
        index.contains("Package: readxl\nVersion: 1.4.5")
            && index.contains("Package: tibble\nVersion: 3.1.8")
            && !index.contains("Package: strict"),
        "the gateway serves tibble 3.1.8 and readxl, not strict:\n{index}"
    );
    let api: serde_json::Value = serde_json::from_str(&http_get(&format!(
        "{base}/api/v1/policy/check?purl=pkg:cran/strict@1.0&organisation=RJ1"
    )))
    .expect("JSON");
    assert_eq!(api["allowed"], false, "{api}");
    assert!(
        api["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|reason| reason["code"] == "dependency-denied"),
        "{api}"
    );

    for (purl, status) in [("pkg:cran/readxl@1.4.5", 0), ("pkg:cran/strict@1.0", 1)] {
        let remote = workspace.run(&["policy", "check", purl, "--org", "RJ1", "--server", &base]);
        assert_eq!(remote.status.code(), Some(status), "{purl}");
        let local = workspace.run(&["policy", "check", purl, "--org", "RJ1"]);
        assert_eq!(
            text(&remote.stdout),
            text(&local.stdout),
            "{purl}: the same answer"
        );
    }
}

#[test]
fn server_answers_match_local_answers_for_a_whole_file() {
    let workspace = Workspace::new();
    workspace.ok(&["advisories", "import", &pypa()]);
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
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
    write(
        &requirements,
        "requests==2.19.1\nrequests==2.32.3\nnumpy == 1.21.0\npandas>=2\n",
    );
    let (_server, base) = workspace.serve(&[("FORMULARY_PYPI_UPSTREAMS", "[]".to_owned())]);
    let file = requirements.display().to_string();
    for json in [false, true] {
        let mut arguments = vec!["policy", "check", "--file", &file, "--org", "RJ1"];
        if json {
            arguments.push("--json");
        }
        let local = workspace.run(&arguments);
        arguments.extend(["--server", &base]);
        let remote = workspace.run(&arguments);
        assert_eq!(local.status.code(), Some(1));
        assert_eq!(remote.status.code(), Some(1), "{}", text(&remote.stderr));
        assert_eq!(text(&remote.stdout), text(&local.stdout));
    }

    let missing = workspace.run(&[
        "policy",
        "check",
        "pkg:pypi/requests@2.32.3",
        "--org",
        "ZZ9",
        "--server",
        &base,
    ]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("could not answer"),
        "{}",
        text(&missing.stderr)
    );
    let unreachable = workspace.run(&[
        "policy",
        "check",
        "pkg:pypi/requests@2.32.3",
        "--server",
        &format!("http://127.0.0.1:{}", crate::formulary_cli::free_port()),
    ]);
    assert_eq!(unreachable.status.code(), Some(2));
    assert!(
        text(&unreachable.stderr).contains("could not reach the Formulary server"),
        "{}",
        text(&unreachable.stderr)
    );
}
