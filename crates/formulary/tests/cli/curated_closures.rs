//! Dependency closures in curated views, with the real clients: approving readxl alone lets R
//! install it with what it needs (a local CRAN-like upstream built by R), and approving requests
//! alone lets pip and uv install it with its dependencies from the public PyPI. The admitted
//! dependencies say why they are there, never override a prohibition, and go away with the
//! approval.

use std::time::{Duration, Instant};

use crate::formulary_cli::{static_server, text, Workspace};
use crate::gateway_cran::{gateway, r, repository_folder};
use crate::gateway_pypi::{pip, venv};

/// Polls `check` every half second for up to `seconds`, returning its last answer.
fn eventually(seconds: u64, mut check: impl FnMut() -> (bool, String)) -> String {
    let started = Instant::now();
    loop {
        let (done, last) = check();
        if done {
            return last;
        }
        assert!(
            started.elapsed() < Duration::from_secs(seconds),
            "not reached after {seconds} s; last: {last}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn curated(workspace: &Workspace, organisation: &str, ecosystem: &str) {
    if !workspace.ok(&["org", "list"]).contains(organisation) {
        workspace.ok(&["org", "add", organisation, "--name", "A curated trust"]);
    }
    workspace.ok(&[
        "org",
        "settings",
        organisation,
        "--ecosystem",
        ecosystem,
        "--stance",
        "curated",
    ]);
}

fn approve(workspace: &Workspace, purl: &str, organisation: &str) -> String {
    let output = workspace.ok(&[
        "entry",
        "add",
        purl,
        "--status",
        "approved",
        "--reason",
        "reviewed",
        "--org",
        organisation,
    ]);
    output
        .strip_prefix("Recorded entry ")
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("an entry id in {output}"))
        .to_owned()
}

crate::on_both_databases!(fn approving_readxl_lets_r_install_it_with_its_dependencies);
fn approving_readxl_lets_r_install_it_with_its_dependencies() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().join("upstream");
    repository_folder(&root);
    let (_upstream, upstream_url) = static_server(&root);
    curated(&workspace, "RJ7", "cran");
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream_url}\"]"));
    let repository = format!("{base}/o/RJ7/cran");
    let listed = || {
        let output = r(&format!(
            "a <- available.packages(repos = '{repository}', fields = 'Formulary-Refused'); cat(sort(rownames(a)[is.na(a[, 'Formulary-Refused'])]))"
        ));
        text(&output.stdout)
    };
    assert_eq!(listed(), "", "nothing is approved yet");

    let entry = approve(&workspace, "pkg:cran/readxl", "RJ7");
    eventually(30, || {
        let now = listed();
        (now == "cellar readxl", now)
    });
    let library = workspace.folder.path().join("library");
    std::fs::create_dir_all(&library).expect("library");
    let output = r(&format!(
        "options(repos = c(CRAN = '{repository}')); install.packages('readxl', lib = '{lib}', quiet = TRUE); cat(as.character(packageVersion('readxl', lib.loc = '{lib}')), as.character(packageVersion('cellar', lib.loc = '{lib}')))",
        lib = library.display()
    ));
    assert_eq!(
        text(&output.stdout),
        "1.4.1 1.0.0",
        "{}",
        text(&output.stderr)
    );

    // The dependency says why it is there, on the command line and in the API.
    let check = workspace.run(&["policy", "check", "pkg:cran/cellar@1.0.0", "--org", "RJ7"]);
    let said = text(&check.stdout);
    assert_eq!(check.status.code(), Some(0), "{said}");
    assert!(
        said.contains(&format!(
            "admitted as a dependency of readxl (decision {entry})"
        )),
        "{said}"
    );

    // A prohibition is never overridden: cellar leaves, and readxl (which needs it) with it.
    curated(&workspace, "RJ8", "cran");
    approve(&workspace, "pkg:cran/readxl", "RJ8");
    workspace.ok(&[
        "entry",
        "add",
        "pkg:cran/cellar",
        "--status",
        "prohibited",
        "--reason",
        "withdrawn by its maintainer",
        "--org",
        "RJ8",
    ]);
    // cellar is listed as refused; installing readxl reaches cellar's refused download, and R
    // prints the prohibition's reason in the URL.
    let rj8_library = workspace.folder.path().join("rj8-library");
    std::fs::create_dir_all(&rj8_library).expect("library");
    eventually(30, || {
        let output = r(&format!(
            "a <- available.packages(repos = '{base}/o/RJ8/cran', fields = 'Formulary-Refused'); cat(a['cellar', 'Formulary-Refused'])"
        ));
        let now = text(&output.stdout);
        (now.contains("withdrawn by its maintainer"), now)
    });
    let output = r(&format!(
        "options(repos = c(CRAN = '{base}/o/RJ8/cran')); install.packages('readxl', lib = '{lib}', quiet = TRUE); cat(requireNamespace('readxl', lib.loc = '{lib}', quietly = TRUE))",
        lib = rj8_library.display()
    ));
    let said = text(&output.stderr);
    assert!(
        said.contains("withdrawn-by-its-maintainer") && said.contains("/cellar_1.0.0.tar.gz"),
        "{said}"
    );
    assert_eq!(text(&output.stdout), "FALSE", "{said}");

    // The admission goes away with the approval.
    workspace.ok(&["entry", "remove", &entry, "--reason", "no longer needed"]);
    eventually(30, || {
        let now = listed();
        (now.is_empty(), now)
    });
    let check = workspace.run(&["policy", "check", "pkg:cran/cellar@1.0.0", "--org", "RJ7"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stdout));
}

#[test]
fn approving_requests_lets_pip_and_uv_install_it_from_the_public_pypi() {
    let workspace = Workspace::new();
    curated(&workspace, "RJ7", "pypi");
    let entry = approve(&workspace, "pkg:pypi/requests", "RJ7");
    let (_server, base) = workspace.serve(&[
        (
            "FORMULARY_PYPI_UPSTREAMS",
            "[\"https://pypi.org/simple/\"]".to_owned(),
        ),
        ("FORMULARY_CRAN_UPSTREAMS", "[]".to_owned()),
    ]);
    let index = format!("{base}/o/RJ7/pypi/simple/");
    // The closure is worked out in the background, from requests' core metadata.
    let said = eventually(60, || {
        let check = workspace.run(&["policy", "check", "pkg:pypi/idna@3.10", "--org", "RJ7"]);
        let said = text(&check.stdout);
        (check.status.code() == Some(0), said)
    });
    assert!(
        said.contains(&format!(
            "admitted as a dependency of requests (decision {entry})"
        )),
        "{said}"
    );

    let pip_venv = venv(workspace.folder.path(), "pip");
    let output = pip(&pip_venv, &index, "requests");
    assert!(
        output.status.success(),
        "pip installs requests and its dependencies: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    let uv_venv = venv(workspace.folder.path(), "uv");
    let output = std::process::Command::new("uv")
        .args(["pip", "install", "--no-cache", "--python"])
        .arg(uv_venv.join("bin/python"))
        .args(["--index-url", &index, "requests"])
        .env("UV_NO_CONFIG", "1")
        .env_remove("PIP_FIND_LINKS")
        .output()
        .expect("uv runs");
    assert!(
        output.status.success(),
        "uv installs requests and its dependencies: {}",
        text(&output.stderr)
    );
    for name in [
        "requests",
        "idna",
        "urllib3",
        "certifi",
        "charset_normalizer",
    ] {
        let found = std::process::Command::new(uv_venv.join("bin/python"))
            .args(["-c", &format!("import {name}")])
            .output()
            .expect("python runs");
        assert!(found.status.success(), "{name} is installed by uv");
    }
    // Something requests does not need stays out.
    let output = pip(&pip_venv, &index, "six");
    assert!(!output.status.success(), "six is not admitted");
}
