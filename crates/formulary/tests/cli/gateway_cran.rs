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
pub(crate) fn r_packages() -> &'static Path {
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

/// A CRAN-like repository folder: current packages in src/contrib (with PACKAGES written by R
/// itself), older readxl versions in src/contrib/Archive/readxl/ with the Meta/archive.rds R's
/// own `file.info()` and `saveRDS()` make (as CRAN does), and a Windows binary tree for this R
/// version with fake binary packages (zip files holding a DESCRIPTION, as real ones do).
pub(crate) fn repository_folder(root: &Path) {
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
    let windows = root
        .join(text(&r("cat(contrib.url('', type = 'win.binary'))").stdout).trim_start_matches('/'));
    std::fs::create_dir_all(&windows).expect("windows tree");
    for (name, version, imports) in [("cellar", "1.0.0", ""), ("readxl", "1.4.1", "cellar")] {
        fake_windows_binary(&windows, name, version, imports);
    }
    let mac = root.join(
        text(&r("cat(contrib.url('', type = 'mac.binary.big-sur-x86_64'))").stdout)
            .trim_start_matches('/'),
    );
    fake_mac_binary(&mac, "cellar", "1.0.0");
    let output = r(&format!(
        "tools::write_PACKAGES('{contrib}', type = 'source'); tools::write_PACKAGES('{windows}', type = 'win.binary'); tools::write_PACKAGES('{mac}', type = 'mac.binary'); \
         setwd('{contrib}/Archive'); files <- list.files('.', pattern = '[.]tar[.]gz$', recursive = TRUE); \
         dir.create('../Meta'); saveRDS(split(file.info(files), dirname(files)), '../Meta/archive.rds')",
        contrib = contrib.display(),
        windows = windows.display(),
        mac = mac.display()
    ));
    assert!(output.status.success(), "{}", text(&output.stderr));
}

/// A zip file shaped like a Windows binary package: `<name>/DESCRIPTION` with a `Built:` line.
fn fake_windows_binary(folder: &Path, name: &str, version: &str, imports: &str) {
    use std::io::Write;
    let file = std::fs::File::create(folder.join(format!("{name}_{version}.zip"))).expect("zip");
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default();
    let imports_line = if imports.is_empty() {
        String::new()
    } else {
        format!("Imports: {imports}\n")
    };
    zip.start_file(format!("{name}/DESCRIPTION"), options)
        .expect("member");
    write!(zip, "Package: {name}\nVersion: {version}\nTitle: Test Package {name}\nDescription: A fake binary package.\nLicense: MIT + file LICENSE\n{imports_line}Built: R 4.2.0; ; 2026-01-01 00:00:00 UTC; windows\n").expect("DESCRIPTION");
    zip.start_file(format!("{name}/NAMESPACE"), options)
        .expect("member");
    writeln!(zip, "export({name}_version)").expect("NAMESPACE");
    zip.finish().expect("zip written");
}

/// A gzip-compressed tarball shaped like a macOS binary package, made with tar(1).
fn fake_mac_binary(folder: &Path, name: &str, version: &str) {
    let staging = folder.join("staging");
    std::fs::create_dir_all(staging.join(name)).expect("staging");
    std::fs::write(
        staging.join(name).join("DESCRIPTION"),
        format!("Package: {name}\nVersion: {version}\nTitle: Test Package {name}\nDescription: A fake binary package.\nLicense: MIT + file LICENSE\nBuilt: R 4.2.0; ; 2026-01-01 00:00:00 UTC; unix\n"),
    )
    .expect("DESCRIPTION");
    let output = Command::new("tar")
        .arg("czf")
        .arg(folder.join(format!("{name}_{version}.tgz")))
        .arg("-C")
        .arg(&staging)
        .arg(name)
        .output()
        .expect("tar runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    std::fs::remove_dir_all(staging).expect("staging removed");
}

/// The repository folder served by a static server.
fn upstream(root: &Path) -> (Running, String) {
    repository_folder(root);
    static_server(root)
}

pub(crate) fn gateway(workspace: &Workspace, upstreams: &str) -> (Running, String) {
    workspace.serve(&[
        ("FORMULARY_CRAN_UPSTREAMS", upstreams.to_owned()),
        ("FORMULARY_PYPI_UPSTREAMS", "[]".to_owned()),
        ("FORMULARY_INDEX_REVALIDATE_SECONDS", "0".to_owned()),
        ("FORMULARY_UPSTREAM_TIMEOUT_SECONDS", "5".to_owned()),
    ])
}

/// `GET url` without following redirects: the status and the body (the `Location` of a
/// redirect).
pub(crate) fn get(url: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let answer = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(url)
            .send()
            .await
            .expect("GET answers");
        let status = answer.status().as_u16();
        if answer.status().is_redirection() {
            let location = answer
                .headers()
                .get("location")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            return (status, location);
        }
        (status, answer.text().await.expect("a body"))
    })
}

pub(crate) fn r(code: &str) -> Output {
    Command::new("Rscript")
        .args(["--vanilla", "-e", code])
        .output()
        .expect("Rscript runs")
}

crate::on_both_databases!(fn r_installs_the_newest_allowed_version_and_shows_why_a_file_is_refused);
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
        message.contains(&format!(
            "{base}/cran/src/contrib/_blocked/readxl_1.4.1.tar.gz/affected-by-rsec-2023-2"
        )),
        "{message}"
    );

    // The refusal page decides again; it never shows text from its URL.
    let (status, location) = get(&format!("{base}/cran/src/contrib/readxl_1.4.1.tar.gz"));
    assert_eq!(status, 303, "{location}");
    assert!(
        location.starts_with(&format!(
            "{base}/cran/src/contrib/_blocked/readxl_1.4.1.tar.gz/affected-by-rsec-2023-2"
        )),
        "{location}"
    );
    let (status, body) = get(&location);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("RSEC-2023-2")
            && body.contains(&format!(
                "Request it at {base}/requests/new?component=pkg:cran/readxl"
            )),
        "{body}"
    );
    for forged in [
        "/cran/src/contrib/_blocked/readxl_1.4.1.tar.gz/your-nhs-account-is-locked-call-0800-000-000",
        "/cran/src/contrib/_blocked/cellar_1.0.0.tar.gz/affected-by-rsec-2023-2",
        "/_blocked/cran/readxl/1.4.1/your-nhs-account-is-locked-call-0800-000-000",
    ] {
        let (status, body) = get(&format!("{base}{forged}"));
        assert_eq!(status, 404, "{forged}: {body}");
        assert!(
            !body.contains("account") && !body.contains("0800"),
            "{forged}: {body}"
        );
    }

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
        "a <- available.packages(repos = '{base}/o/RJ5/cran', fields = 'Formulary-Refused'); cat(sort(rownames(a)[is.na(a[, 'Formulary-Refused'])]))"
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

#[test]
fn r_finds_allowed_archived_versions_and_binary_packages_through_an_upstream() {
    let workspace = Workspace::new();
    let (_upstream_server, upstream_url) = upstream(&workspace.folder.path().join("upstream"));
    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/r-advisory-database")
            .display()
            .to_string(),
    ]);
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream_url}\"]"));
    let repository = format!("{base}/cran");

    // The upstream's archive.rds (written by R's saveRDS) lists 1.2.0 and 1.4.0; the gateway's
    // lists them both (RSEC-2023-1 denies 1.2.0: the download says so) and the current 1.4.1,
    // which RSEC-2023-2 denies (PACKAGES offers 1.4.0 in its place), so that a pinned
    // `install_version` reaches the refused download and shows why.
    let archive = |repository: &str| {
        r(&format!(
            "a <- readRDS(gzcon(url('{repository}/src/contrib/Meta/archive.rds'))); cat(length(a), names(a), sub('/_blocked/[a-z0-9-]+/', '/_blocked/', rownames(a$readxl)))"
        ))
    };
    let output = archive(&repository);
    assert_eq!(
        text(&output.stdout),
        "1 readxl readxl/_blocked/readxl_1.2.0.tar.gz readxl/readxl_1.4.0.tar.gz readxl/_blocked/readxl_1.4.1.tar.gz",
        "{}",
        text(&output.stderr)
    );
    // Every file.info() column the upstream gives for an archived file is passed on as it is
    // (owner names included), not made up.
    let output = r(&format!(
        "u <- readRDS(gzcon(url('{upstream_url}/src/contrib/Meta/archive.rds')))$readxl; \
         g <- readRDS(gzcon(url('{repository}/src/contrib/Meta/archive.rds')))$readxl; \
         row <- 'readxl/readxl_1.4.0.tar.gz'; \
         for (column in c('size', 'mode', 'mtime', 'ctime', 'atime', 'uid', 'gid', 'uname', 'grname')) \
           cat(column, identical(format(u[row, column]), format(g[row, column])), format(u[row, column]), format(g[row, column]), '\\n')"
    ));
    let columns = text(&output.stdout);
    assert!(
        columns.lines().count() == 9 && !columns.contains("FALSE"),
        "{columns}{}",
        text(&output.stderr)
    );
    let library = workspace.folder.path().join("library");
    std::fs::create_dir_all(&library).expect("library");
    let output = r(&format!(
        "remotes::install_version('readxl', '1.4.0', repos = '{repository}', lib = '{lib}', upgrade = 'never', quiet = TRUE); cat(as.character(packageVersion('readxl', lib.loc = '{lib}')))",
        lib = library.display()
    ));
    assert_eq!(text(&output.stdout), "1.4.0", "{}", text(&output.stderr));
    for (version, reason) in [
        ("1.2.0", "affected-by-rsec-2023-1"),
        ("1.4.1", "affected-by-rsec-2023-2"),
    ] {
        let output = r(&format!(
            "remotes::install_version('readxl', '{version}', repos = '{repository}', lib = '{lib}', upgrade = 'never')",
            lib = library.display()
        ));
        let said = format!(
            "{}{}{:?}",
            text(&output.stdout),
            text(&output.stderr),
            output.status
        );
        assert!(
            said.contains(&format!("_blocked/{reason}"))
                && said.contains(&format!("/readxl_{version}.tar.gz")),
            "install_version {version} shows the reason: {said}"
        );
    }

    // A curated view that approved only cellar serves no readxl: every version is refused.
    workspace.ok(&["org", "add", "RJ6", "--name", "A curated trust"]);
    workspace.ok(&[
        "org",
        "settings",
        "RJ6",
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
        "RJ6",
    ]);
    std::thread::sleep(Duration::from_secs(3));
    let output = r(&format!(
        "a <- available.packages(repos = '{base}/o/RJ6/cran', fields = 'Formulary-Refused'); cat(sort(rownames(a)[is.na(a[, 'Formulary-Refused'])]), '|', a['readxl', 'Formulary-Refused'])"
    ));
    let said = text(&output.stdout);
    assert!(
        said.starts_with("cellar | readxl is not in RJ6's formulary"),
        "{said}{}",
        text(&output.stderr)
    );

    // The Windows tree: cellar is listed and downloads; readxl 1.4.1 (no allowed binary) is
    // listed as refused, and its download is refused with the reason in the URL R prints.
    let destination = workspace.folder.path().join("downloads");
    std::fs::create_dir_all(&destination).expect("downloads");
    let output = r(&format!(
        "options(warn = 1); a <- available.packages(contriburl = contrib.url('{repository}', type = 'win.binary'), fields = 'Formulary-Refused'); cat(sort(rownames(a)[is.na(a[, 'Formulary-Refused'])])); \
         cat('', basename(download.packages('cellar', '{destination}', repos = '{repository}', type = 'win.binary', quiet = TRUE)[, 2])); \
         cat('', nrow(download.packages('readxl', '{destination}', repos = '{repository}', type = 'win.binary', quiet = TRUE)))",
        destination = destination.display()
    ));
    assert_eq!(
        text(&output.stdout),
        "cellar cellar_1.0.0.zip 0",
        "{}",
        text(&output.stderr)
    );
    assert!(
        text(&output.stderr).contains("/_blocked/affected-by-rsec-2023-2")
            && text(&output.stderr).contains("/readxl_1.4.1.zip"),
        "{}",
        text(&output.stderr)
    );
    let windows = text(
        &r(&format!(
            "cat(contrib.url('{repository}', type = 'win.binary'))"
        ))
        .stdout,
    );
    let output = r(&format!(
        "download.file('{windows}/readxl_1.4.1.zip', tempfile(), quiet = TRUE)"
    ));
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("/_blocked/readxl_1.4.1.zip/affected-by-rsec-2023-2"),
        "{}",
        text(&output.stderr)
    );

    // The macOS tree goes through the same code: listed and downloadable.
    let output = r(&format!(
        "contrib <- contrib.url('{repository}', type = 'mac.binary.big-sur-x86_64'); cat(rownames(available.packages(contriburl = contrib))); \
         cat('', basename(download.packages('cellar', '{destination}', contriburl = contrib, type = 'mac.binary.big-sur-x86_64', quiet = TRUE)[, 2]))",
        destination = destination.display()
    ));
    assert_eq!(
        text(&output.stdout),
        "cellar cellar_1.0.0.tgz",
        "{}",
        text(&output.stderr)
    );
}

/// CRAN's `Meta/current.rds` dates every current tarball: the gateway uses those times, not when
/// it first saw a version. Here cellar was published on 1 March 2024 and readxl 1.4.1 today.
#[test]
fn publication_times_come_from_the_upstream_s_current_rds() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().join("upstream");
    repository_folder(&root);
    let contrib = root.join("src/contrib");
    let touched = Command::new("touch")
        .args(["-d", "2024-03-01 12:00:00 UTC"])
        .arg(contrib.join("cellar_1.0.0.tar.gz"))
        .status()
        .expect("touch runs");
    assert!(touched.success());
    let output = r(&format!(
        "setwd('{contrib}'); files <- list.files('.', pattern = '[.]tar[.]gz$'); saveRDS(file.info(files), 'Meta/current.rds')",
        contrib = contrib.display()
    ));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let (_upstream, upstream_url) = static_server(&root);
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream_url}\"]"));

    // readxl 1.4.1 was published today: the 7-day cooldown holds it back, and says so.
    let output = r(&format!(
        "download.file('{base}/cran/src/contrib/readxl_1.4.1.tar.gz', tempfile(), quiet = TRUE)"
    ));
    assert!(
        text(&output.stderr).contains("/_blocked/readxl_1.4.1.tar.gz/published-0-day-s-ago"),
        "{}",
        text(&output.stderr)
    );
    // A view of a day before cellar's publication does not have it; one after does.
    let listed = |day: &str| {
        let output = r(&format!(
            "a <- available.packages(repos = '{base}/@{day}/cran', fields = 'Formulary-Refused'); cat(sort(rownames(a)[is.na(a[, 'Formulary-Refused'])]))"
        ));
        text(&output.stdout)
    };
    assert!(
        !listed("2024-02-15").contains("cellar"),
        "{}",
        listed("2024-02-15")
    );
    assert!(
        listed("2024-03-15").contains("cellar"),
        "{}",
        listed("2024-03-15")
    );
}
