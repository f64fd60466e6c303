//! `uv python install` through the gateway's download list, with the real uv: an allowed build
//! is installed whenever one meets the request, and a request only a refused build meets
//! reaches that build's file, which answers 403 with the reason uv prints.
//!
//! The allowed build is this machine's Python laid out as a python-build-standalone archive
//! (see `first_day.rs`); the refused builds are never downloaded, so their manifests point at
//! files that stand in for them.

use std::path::Path;
use std::process::{Command, Output};

use crate::first_day::{add_manifest, cpython_archive, publish};
use crate::formulary_cli::{static_server, text, Workspace};
use crate::gateway_auth::{serve, upstreams, PASSWORD};
use crate::tools::TRIPLE;

/// uv as the person runs it: their home, their `uv.toml` (the test environment's
/// `UV_NO_CONFIG` removed), Python installed under `installs`.
fn uv(home: &Path, installs: &str, args: &str) -> Output {
    Command::new("sh")
        .args(["-c", &format!("uv {args}")])
        .current_dir(home)
        .env("HOME", home)
        .env("UV_PYTHON_INSTALL_DIR", home.join(installs))
        .env("UV_CACHE_DIR", home.join(".cache/uv"))
        .env_remove("UV_NO_CONFIG")
        .env_remove("UV_PYTHON_DOWNLOADS_JSON_URL")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("UV_PYTHON_INSTALL_MIRROR")
        .output()
        .expect("uv runs")
}

crate::on_both_databases!(async fn uv_gets_an_allowed_cpython_and_is_refused_a_prohibited_one_with_the_reason);
async fn uv_gets_an_allowed_cpython_and_is_refused_a_prohibited_one_with_the_reason() {
    if std::env::consts::ARCH != "x86_64" || std::env::consts::OS != "linux" {
        eprintln!("skipped: the CPython build here is made for x86_64 Linux");
        return;
    }
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));

    // The allowed build (this machine's Python, e.g. 3.11.2) and three refused ones: an older
    // minor, a newer patch of the same minor and a newer minor.
    let (python, archive) = cpython_archive();
    let mut parts = python
        .split('.')
        .map(|part| part.parse::<u8>().expect("X.Y.Z"));
    let (major, minor) = (parts.next().expect("major"), parts.next().expect("minor"));
    let older_minor = format!("{major}.{}.9", minor - 1);
    let newer_patch = format!("{major}.{minor}.99");
    let newer_minor = "3.99.0".to_owned();
    let bytes = std::fs::read(archive).expect("archive");
    let vendor = root.join("vendor");
    std::fs::create_dir_all(&vendor).expect("vendor");
    let (_vendor_server, vendor_url) = static_server(&vendor);
    for version in [python, &older_minor, &newer_patch, &newer_minor] {
        let (url, sha256, size) = publish(
            &vendor,
            &vendor_url,
            &format!("cpython/{version}/cpython-{version}+local-{TRIPLE}-install_only.tar.gz"),
            &bytes,
        );
        add_manifest(
            &workspace,
            &root,
            "cpython",
            version,
            &format!("url = \"{url}\"\nsha256 = \"{sha256}\"\nsize = {size}\nkind = \"archive\"\n"),
        );
    }
    for (range, reason) in [
        (
            format!("< {major}.{minor}"),
            "End of life: no security fixes any more",
        ),
        (
            format!(">= {newer_patch}, < {major}.{}", minor + 1),
            "Recalled: breaks the trust's database driver",
        ),
        (
            ">= 3.99".to_owned(),
            "Not yet validated with the trust's data platform",
        ),
    ] {
        workspace.ok(&[
            "entry",
            "add",
            "pkg:generic/cpython",
            "--range",
            &range,
            "--status",
            "prohibited",
            "--reason",
            reason,
        ]);
    }

    let (_server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &root.join("log"));
    let home = crate::tools::set_up_home(&root, &base, "jane", "uv").await;

    // The minor with an allowed build: the allowed one, not the newer refused patch.
    let output = uv(
        &home,
        "pythons-a",
        &format!("python install {major}.{minor}"),
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(&format!("Installed Python {python}")),
        "{}",
        text(&output.stderr)
    );
    // No version at all: the newest allowed build, not the refused newer minor.
    let output = uv(&home, "pythons-b", "python install");
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(&format!("Installed Python {python}")),
        "{}",
        text(&output.stderr)
    );
    let ran = Command::new(home.join(format!(
        "pythons-b/cpython-{python}-linux-x86_64-gnu/bin/python3"
    )))
    .args(["-c", "import platform; print(platform.python_version())"])
    .output()
    .expect("python runs");
    assert_eq!(text(&ran.stdout).trim(), python.as_str());

    // A request only a refused build meets: uv prints the gateway's reason and the link.
    for (request, reason) in [
        (format!("{major}.{}", minor - 1), "End of life"),
        (older_minor.clone(), "End of life"),
        ("3.99".to_owned(), "Not yet validated"),
    ] {
        let output = uv(&home, "pythons-c", &format!("python install {request}"));
        let printed = text(&output.stderr);
        assert!(!output.status.success(), "{request}: {printed}");
        assert!(
            printed.contains("403 Blocked by Formulary")
                && printed.contains(reason)
                && printed.contains(&format!(
                    "Request it at {base}/requests/new?component=pkg:generic/cpython"
                )),
            "{request}: {printed}"
        );
        eprintln!("uv python install {request}:\n{printed}");
    }
    assert!(!home
        .join("pythons-c")
        .join(format!("cpython-{older_minor}-linux-x86_64-gnu"))
        .exists());

    // A refused newer patch of an allowed minor cannot be listed without uv choosing it for
    // `uv python install X.Y`: asked for by its number, uv finds no download.
    let output = uv(&home, "pythons-c", &format!("python install {newer_patch}"));
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("No download found"),
        "{}",
        text(&output.stderr)
    );
    eprintln!("uv python install {newer_patch}:\n{}", text(&output.stderr));

    // The refusals are in the ledger, with the person.
    let actors = crate::gateway_auth::ledger_actors(&workspace, "pkg:generic/cpython", 3).await;
    assert!(
        actors.iter().all(|actor| actor == "user:jane"),
        "{actors:?}"
    );
}
