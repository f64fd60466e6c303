//! `formulary mirror import cran DIR` for a site with no internet: a CRAN-like folder (with a
//! damaged tarball, hostile names and a tree without PACKAGES beside the good files) imported,
//! then served with no upstream at all to the real R, under the same policy.

use std::path::Path;

use crate::formulary_cli::{repo_root, text, Workspace};
use crate::gateway_cran::{gateway, r, repository_folder};

/// Adds bad input to a repository folder: a damaged tarball listed in PACKAGES, an entry whose
/// package name climbs out of the folder, a file with a newline in its name, a symbolic link and
/// a tree without PACKAGES.
fn spoil(folder: &Path) {
    let contrib = folder.join("src/contrib");
    std::fs::write(
        contrib.join("broken_1.0.tar.gz"),
        b"\x1f\x8b\x08\0 not really gzip",
    )
    .expect("damaged file");
    let mut packages = std::fs::read_to_string(contrib.join("PACKAGES")).expect("PACKAGES");
    packages.push_str(
        "\nPackage: broken\nVersion: 1.0\nLicense: MIT\n\nPackage: ../../etc\nVersion: 1.0\n",
    );
    std::fs::write(contrib.join("PACKAGES"), packages).expect("PACKAGES");
    std::fs::write(contrib.join("evil\nname_1.0.tar.gz"), b"x").expect("odd name");
    std::os::unix::fs::symlink("/etc/passwd", contrib.join("passwd_1.0.tar.gz")).expect("link");
    let mac = folder.join("bin/macosx/contrib/4.2");
    std::fs::create_dir_all(&mac).expect("mac tree");
    std::fs::write(mac.join("cellar_1.0.0.tgz"), b"x").expect("mac file");
}

#[test]
fn an_imported_cran_folder_installs_with_no_upstream_and_the_same_policy() {
    let workspace = Workspace::new();
    let bundle = workspace.folder.path().join("bundle");
    repository_folder(&bundle);
    spoil(&bundle);

    let windows_tree = text(&r("cat(contrib.url('', type = 'win.binary'))").stdout)
        .trim_start_matches('/')
        .to_owned();
    let import = workspace.run(&["mirror", "import", "cran", &bundle.display().to_string()]);
    let said = text(&import.stdout);
    assert_eq!(
        import.status.code(),
        Some(1),
        "some files were skipped: {said}{}",
        text(&import.stderr)
    );
    for expected in [
        "Imported 7 files".to_owned(),
        "bin/macosx/big-sur-x86_64/contrib/4.2: cellar_1.0.0.tgz".to_owned(),
        format!("{windows_tree}: readxl_1.4.1.zip"),
    ] {
        assert!(said.contains(&expected), "{expected:?} in:\n{said}");
    }
    for expected in [
        "src/contrib: cellar_1.0.0.tar.gz",
        "src/contrib: readxl_1.2.0.tar.gz",
        "broken_1.0.tar.gz: it is not a readable gzip-compressed tar archive",
        "the entry for '../../etc' 1.0 does not name a valid R package",
        "evil\\nname_1.0.tar.gz: not listed in PACKAGES",
        "passwd_1.0.tar.gz: a symbolic link",
        "bin/macosx/contrib/4.2: this tree has no PACKAGES",
    ] {
        assert!(said.contains(expected), "{expected:?} in:\n{said}");
    }
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/r-advisory-database")
            .display()
            .to_string(),
    ]);
    let (mut server, base) = gateway(&workspace, "[]");
    let repository = format!("{base}/cran");

    // RSEC-2023-2 denies readxl 1.4.1: R installs 1.4.0 from the imported Archive, with cellar.
    let library = workspace.folder.path().join("library");
    std::fs::create_dir_all(&library).expect("library");
    let output = r(&format!(
        "options(repos = c(CRAN = '{repository}')); install.packages('readxl', lib = '{lib}', quiet = TRUE); cat(as.character(packageVersion('readxl', lib.loc = '{lib}')), as.character(packageVersion('cellar', lib.loc = '{lib}')))",
        lib = library.display()
    ));
    assert_eq!(
        text(&output.stdout),
        "1.4.0 1.0.0",
        "{}",
        text(&output.stderr)
    );

    // The damaged package is not offered; the denied file is refused with its reason.
    let output = r(&format!(
        "cat(sort(rownames(available.packages(repos = '{repository}'))))"
    ));
    assert_eq!(
        text(&output.stdout),
        "cellar readxl",
        "{}",
        text(&output.stderr)
    );
    let output = r(&format!(
        "download.file('{repository}/src/contrib/Archive/readxl/readxl_1.2.0.tar.gz', tempfile(), quiet = TRUE)"
    ));
    assert!(
        text(&output.stderr).contains(
            "cran/src/contrib/Archive/readxl/_blocked/readxl_1.2.0.tar.gz/affected-by-rsec-2023-1"
        ),
        "{}",
        text(&output.stderr)
    );

    // Meta/archive.rds lists every archived version, the refused ones under `_blocked/{reason}/`
    // (so that R prints the reason), and remotes installs the allowed one.
    let output = r(&format!(
        "a <- readRDS(gzcon(url('{repository}/src/contrib/Meta/archive.rds'))); cat(names(a), sub('/_blocked/[a-z0-9-]+/', '/_blocked/', rownames(a$readxl)))"
    ));
    assert!(
        text(&output.stdout)
            .starts_with("readxl readxl/_blocked/readxl_1.2.0.tar.gz readxl/readxl_1.4.0.tar.gz"),
        "{}",
        text(&output.stderr)
    );
    let remotes_library = workspace.folder.path().join("remotes-library");
    std::fs::create_dir_all(&remotes_library).expect("library");
    let output = r(&format!(
        "remotes::install_version('readxl', '1.4.0', repos = '{repository}', lib = '{lib}', upgrade = 'never', quiet = TRUE); cat(as.character(packageVersion('readxl', lib.loc = '{lib}')))",
        lib = remotes_library.display()
    ));
    assert_eq!(text(&output.stdout), "1.4.0", "{}", text(&output.stderr));
    let output = r(&format!(
        "remotes::install_version('readxl', '1.2.0', repos = '{repository}', lib = '{lib}', upgrade = 'never')",
        lib = remotes_library.display()
    ));
    assert!(
        text(&output.stderr).contains("/Archive/readxl/_blocked/affected-by-rsec-2023-1")
            && text(&output.stderr).contains("/readxl_1.2.0.tar.gz"),
        "remotes reaches the refused download and prints the reason in its URL: {}",
        text(&output.stderr)
    );

    // The imported Windows tree: cellar is offered and downloads; denied readxl 1.4.1 is listed
    // as refused.
    let destination = workspace.folder.path().join("downloads");
    std::fs::create_dir_all(&destination).expect("downloads");
    let output = r(&format!(
        "a <- available.packages(contriburl = contrib.url('{repository}', type = 'win.binary'), fields = 'Formulary-Refused'); cat(sort(rownames(a)[is.na(a[, 'Formulary-Refused'])])); cat('', basename(download.packages('cellar', '{destination}', repos = '{repository}', type = 'win.binary', quiet = TRUE)[, 2]))",
        destination = destination.display()
    ));
    assert_eq!(
        text(&output.stdout),
        "cellar cellar_1.0.0.zip",
        "{}",
        text(&output.stderr)
    );
    assert_eq!(
        std::fs::read(destination.join("cellar_1.0.0.zip")).expect("downloaded"),
        std::fs::read(bundle.join(&windows_tree).join("cellar_1.0.0.zip")).expect("original"),
        "the served binary is the imported one"
    );

    // A graceful stop writes every queued ledger line: each download and refusal is there.
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(stopped.success());
    assert!(server.0.wait().expect("server exits").success());
    let count = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); print(*c.execute(\"SELECT outcome, COUNT(*) FROM downloads WHERE name IN ('readxl', 'cellar') GROUP BY outcome ORDER BY outcome\").fetchall())")
        .arg(workspace.folder.path().join("data/formulary.db"))
        .output()
        .expect("python3 runs");
    let ledger = text(&count.stdout);
    assert!(
        ledger.starts_with("('refused', 1) ('served', "),
        "{ledger}{}",
        text(&count.stderr)
    );
}
