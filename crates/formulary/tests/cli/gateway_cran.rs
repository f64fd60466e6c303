//! The CRAN gateway driven by the real R (`install.packages`, `available.packages`,
//! `download.file`) against a local upstream built with `R CMD build` and
//! `tools::write_PACKAGES`, served by Python's static HTTP server (whose folder listings stand in
//! for CRAN's `Archive/` pages). readxl is a real name with real advisories: RSEC-2023-2
//! affects 1.4.1 (the upstream's current version) and RSEC-2023-1 affects 1.2.0, so 1.4.0 from
//! the Archive is the newest allowed version.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use crate::formulary_cli::{repo_root, static_server, text, Running, Workspace};

/// Source tarballs built once per target folder: (file name, whether it is current).
fn r_packages() -> &'static Path {
    static FOLDER: OnceLock<PathBuf> = OnceLock::new();
    FOLDER.get_or_init(|| {
        let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-r-packages");
        if folder.join("readxl_1.4.1.tar.gz").exists() {
            return folder;
        }
        let sources = folder.join("sources");
        std::fs::create_dir_all(&sources).expect("folder");
        for (name, version, imports) in [("cellar", "1.0.0", ""), ("readxl", "1.2.0", "cellar"), ("readxl", "1.4.0", "cellar"), ("readxl", "1.4.1", "cellar")] {
            let package = sources.join(format!("{name}-{version}")).join(name);
            std::fs::create_dir_all(package.join("R")).expect("package folder");
            let imports_line = if imports.is_empty() { String::new() } else { format!("Imports: {imports}\n") };
            std::fs::write(
                package.join("DESCRIPTION"),
                format!("Package: {name}\nVersion: {version}\nTitle: Test Package {name}\nDescription: A small package for Formulary's tests.\nAuthor: Formulary Tests\nMaintainer: Formulary Tests <tests@formulary.invalid>\nLicense: MIT + file LICENSE\n{imports_line}Encoding: UTF-8\n"),
            )
            .expect("DESCRIPTION");
            std::fs::write(package.join("LICENSE"), "YEAR: 2026\nCOPYRIGHT HOLDER: Formulary Tests\n").expect("LICENSE");
            std::fs::write(package.join("NAMESPACE"), format!("export({name}_version)\n")).expect("NAMESPACE");
            std::fs::write(package.join("R").join("code.R"), format!("{name}_version <- function() \"{version}\"\n")).expect("code");
            let output = Command::new("R")
                .args(["CMD", "build", "--no-build-vignettes", "--no-manual"])
                .arg(&package)
                .current_dir(&folder)
                .output()
                .expect("R CMD build runs (scripts/test installs r-base-core)");
            assert!(output.status.success(), "R CMD build {name} {version}: {}", text(&output.stderr));
        }
        folder
    })
}

/// A CRAN-like tree: current packages in src/contrib (with PACKAGES written by R itself),
/// older readxl versions in src/contrib/Archive/readxl/.
fn upstream(root: &Path) -> (Running, String) {
    let contrib = root.join("src/contrib");
    let archive = contrib.join("Archive/readxl");
    std::fs::create_dir_all(&archive).expect("archive folder");
    for (file, target) in [
        ("cellar_1.0.0.tar.gz", &contrib),
        ("readxl_1.4.1.tar.gz", &contrib),
        ("readxl_1.4.0.tar.gz", &archive),
        ("readxl_1.2.0.tar.gz", &archive),
    ] {
        std::fs::copy(r_packages().join(file), target.join(file)).expect("copy tarball");
    }
    let output = Command::new("Rscript")
        .args([
            "-e",
            &format!(
                "tools::write_PACKAGES('{}', type = 'source')",
                contrib.display()
            ),
        ])
        .output()
        .expect("Rscript runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    static_server(root)
}

fn gateway(workspace: &Workspace, upstreams: &str) -> (Running, String) {
    workspace.serve(&[
        ("FORMULARY_CRAN_UPSTREAMS", upstreams.to_owned()),
        ("FORMULARY_PYPI_UPSTREAMS", "[]".to_owned()),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5".to_owned()),
    ])
}

fn r(code: &str) -> Output {
    Command::new("Rscript")
        .args(["--vanilla", "-e", code])
        .output()
        .expect("Rscript runs")
}

#[test]
fn r_installs_the_newest_allowed_version_and_shows_why_a_file_is_refused() {
    let workspace = Workspace::new();
    let (upstream_server, upstream_url) = upstream(&workspace.folder.path().join("upstream"));
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/r-advisory-database")
            .display()
            .to_string(),
    ]);
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream_url}\"]"));
    let library = workspace.folder.path().join("library");
    std::fs::create_dir_all(&library).expect("library");
    let install = |repository: &str, library: &Path| {
        r(&format!(
            "options(repos = c(CRAN = '{repository}')); install.packages('readxl', lib = '{lib}', quiet = TRUE); cat(as.character(packageVersion('readxl', lib.loc = '{lib}')), as.character(packageVersion('cellar', lib.loc = '{lib}')))",
            lib = library.display()
        ))
    };

    // RSEC-2023-2 denies 1.4.1, the current version: R installs 1.4.0 from the Archive, with its dependency.
    let output = install(&format!("{base}/cran"), &library);
    assert_eq!(
        text(&output.stdout),
        "1.4.0 1.0.0",
        "{}",
        text(&output.stderr)
    );

    // A direct download of the refused file fails, and the URL R prints carries the reason.
    let output = r(&format!(
        "download.file('{base}/cran/src/contrib/readxl_1.4.1.tar.gz', tempfile(), quiet = TRUE)"
    ));
    assert!(!output.status.success());
    let message = text(&output.stderr);
    assert!(
        message.contains("_blocked/cran/readxl/1.4.1/affected-by-rsec-2023-2"),
        "{message}"
    );

    // A curated organisation view hides what it has not approved.
    workspace.ok(&["org", "add", "RJ5", "--name", "A curated trust"]);
    workspace.ok(&[
        "org",
        "settings",
        "RJ5",
        "--ecosystem",
        "cran",
        "--stance",
        "curated",
    ]);
    workspace.ok(&[
        "entry",
        "add",
        "pkg:cran/cellar",
        "--status",
        "approved",
        "--reason",
        "reviewed",
        "--org",
        "RJ5",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let output = r(&format!(
        "cat(sort(rownames(available.packages(repos = '{base}/o/RJ5/cran'))))"
    ));
    assert_eq!(text(&output.stdout), "cellar", "{}", text(&output.stderr));

    // The upstream stops: the cached index and files still install.
    drop(upstream_server);
    let offline = workspace.folder.path().join("offline-library");
    std::fs::create_dir_all(&offline).expect("library");
    let output = install(&format!("{base}/cran"), &offline);
    assert_eq!(
        text(&output.stdout),
        "1.4.0 1.0.0",
        "cached packages still install: {}",
        text(&output.stderr)
    );

    // The same policy explains itself on the command line.
    let check = workspace.run(&["policy", "check", "pkg:cran/readxl@1.4.1"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        text(&check.stdout).contains("RSEC-2023-2"),
        "{}",
        text(&check.stdout)
    );

    // A denied dependency is explained too: installing readxl needs cellar.
    workspace.ok(&[
        "entry",
        "add",
        "pkg:cran/cellar",
        "--status",
        "prohibited",
        "--reason",
        "withdrawn by its maintainer",
    ]);
    let check = workspace.run(&["policy", "check", "pkg:cran/readxl@1.4.1", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&check.stdout).expect("JSON");
    let reasons = report["decisions"][0]["reasons"]
        .as_array()
        .expect("reasons");
    let dependency = reasons
        .iter()
        .find(|reason| reason["code"] == "dependency-denied")
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        dependency["message"]
            .as_str()
            .unwrap()
            .contains("needs cellar"),
        "{dependency}"
    );
}
