//! What each client prints for each kind of refusal: the real pip, uv, R `install.packages`,
//! `download.file` and `remotes::install_version` against the gateway. Every output is written to
//! `target/refusals/<kind>--<client>.txt` (the server's address replaced by `https://HOST`), from
//! which docs/refusals.md is made, and every cell that can show the reason is asserted to show it.

use std::path::Path;
use std::process::Output;

use crate::formulary_cli::{repo_root, static_server, text, Workspace};
use crate::gateway_cran::{gateway as cran_gateway, r, repository_folder};
use crate::gateway_pypi::{pip, static_upstream, uv, venv};

/// Writes one captured output and returns it (stdout then stderr, the address replaced).
fn capture(kind: &str, client: &str, base: &str, output: &Output) -> String {
    let said = format!("{}{}", text(&output.stdout), text(&output.stderr))
        .replace(base, "https://HOST")
        .replace(&base.replace("http://", ""), "HOST");
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../refusals");
    std::fs::create_dir_all(&folder).expect("folder");
    std::fs::write(folder.join(format!("{kind}--{client}.txt")), &said).expect("write");
    said
}

fn settings_for(workspace: &Workspace, organisation: &str, ecosystem: &str) {
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

#[test]
fn pip_and_uv_show_the_reason_and_where_to_request() {
    let workspace = Workspace::new();
    let (_upstream, upstream_url) = static_upstream(&workspace.folder.path().join("upstream"));
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/pypa-advisory-database/vulns/requests")
            .display()
            .to_string(),
    ]);
    settings_for(&workspace, "RJ2", "pypi");
    let (_server, base) = workspace.serve(&[
        ("FORMULARY_PYPI_UPSTREAMS", format!("[\"{upstream_url}\"]")),
        ("FORMULARY_CRAN_UPSTREAMS", "[]".to_owned()),
    ]);
    let open = format!("{base}/pypi/simple/");
    let curated = format!("{base}/o/RJ2/pypi/simple/");
    let request = "Request it at https://HOST/requests/new?component=pkg:pypi/";
    let environment = venv(workspace.folder.path(), "refusals");

    let said = capture(
        "advisory-pinned",
        "pip",
        &base,
        &pip(&environment, &open, "requests==2.19.1"),
    );
    assert!(
        said.contains("PYSEC-2018-28") && said.contains(&format!("{request}requests")),
        "{said}"
    );
    let said = capture(
        "advisory-pinned",
        "uv",
        &base,
        &uv(&environment, &open, "requests==2.19.1"),
    );
    assert!(
        said.contains("PYSEC-2018-28") && said.contains(&format!("{request}requests")),
        "{said}"
    );

    let said = capture(
        "not-in-formulary",
        "pip",
        &base,
        &pip(&environment, &curated, "six"),
    );
    assert!(
        said.contains("six is not in RJ2's formulary") && said.contains(&format!("{request}six")),
        "{said}"
    );
    let said = capture(
        "not-in-formulary",
        "uv",
        &base,
        &uv(&environment, &curated, "six"),
    );
    assert!(
        said.contains("six is not in RJ2's formulary") && said.contains(&format!("{request}six")),
        "{said}"
    );

    // A range only denied versions meet: uv prints the yank reason; pip selects yanked files
    // only for exact pins, so it lists the versions without the reason (a gap, documented).
    let said = capture(
        "advisory-range",
        "pip",
        &base,
        &pip(&environment, &open, "requests<2.20"),
    );
    assert!(said.contains("from versions: 2.19.1"), "{said}");
    let said = capture(
        "advisory-range",
        "uv",
        &base,
        &uv(&environment, &open, "requests<2.20"),
    );
    assert!(said.contains("PYSEC-2018-28"), "{said}");
}

#[test]
fn r_shows_the_reason_in_the_url_it_prints() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().join("upstream");
    repository_folder(&root);
    let (_upstream, upstream_url) = static_server(&root);
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/r-advisory-database")
            .display()
            .to_string(),
    ]);
    settings_for(&workspace, "RJ5", "cran");
    let (_server, base) = cran_gateway(&workspace, &format!("[\"{upstream_url}\"]"));
    let library = workspace.folder.path().join("library");
    std::fs::create_dir_all(&library).expect("library");
    let lib = library.display();

    let said = capture(
        "advisory-pinned",
        "r-download-file",
        &base,
        &r(&format!("download.file('{base}/cran/src/contrib/readxl_1.4.1.tar.gz', tempfile(), quiet = TRUE)")),
    );
    assert!(
        said.contains("_blocked/readxl_1.4.1.tar.gz/affected-by-rsec-2023-2"),
        "{said}"
    );
    let said = capture(
        "advisory-pinned",
        "r-remotes-install-version",
        &base,
        &r(&format!("remotes::install_version('readxl', '1.4.1', repos = '{base}/cran', lib = '{lib}', upgrade = 'never')")),
    );
    assert!(
        said.contains("/readxl/_blocked/affected-by-rsec-2023-2")
            && said.contains("/readxl_1.4.1.tar.gz"),
        "install_version reaches the refused download and prints the reason in its URL: {said}"
    );
    let said = capture(
        "advisory-unpinned",
        "r-install-packages",
        &base,
        &r(&format!("options(repos = c(CRAN = '{base}/cran')); install.packages('readxl', lib = '{lib}', quiet = TRUE); cat(as.character(packageVersion('readxl', lib.loc = '{lib}')))")),
    );
    assert!(
        said.contains("1.4.0"),
        "the newest allowed version, silently: {said}"
    );
    let said = capture(
        "not-in-formulary",
        "r-install-packages",
        &base,
        &r(&format!("options(repos = c(CRAN = '{base}/o/RJ5/cran')); install.packages('readxl', lib = '{lib}', quiet = TRUE)")),
    );
    assert!(
        said.contains("_blocked/readxl-is-not-in-rj5-s-formulary")
            && said.contains("/readxl_1.4.1.tar.gz"),
        "R reaches the refused download and prints the reason in its URL: {said}"
    );
    let said = capture(
        "not-in-formulary",
        "r-remotes-install-version",
        &base,
        &r(&format!("remotes::install_version('readxl', '1.4.0', repos = '{base}/o/RJ5/cran', lib = '{lib}', upgrade = 'never')")),
    );
    assert!(
        said.contains("_blocked/readxl-is-not-in-rj5-s-formulary")
            && said.contains("/readxl_1.4.0.tar.gz"),
        "install_version reaches the refused download and prints the reason in its URL: {said}"
    );
}
