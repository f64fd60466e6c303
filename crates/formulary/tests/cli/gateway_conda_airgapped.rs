//! `formulary mirror import conda DIR` for a site with no internet: a channel folder built from
//! real packages (py-rattler's indexer, conda-package-handling), with a package that is not what
//! its record says, a damaged one, a missing one, an unlisted one and a symbolic link beside the
//! good files, imported and then served with no upstream at all to the real py-rattler, under
//! the same policy; and conda packages that repackage a PyPI project get its advisories, with
//! the mapping stated in the reason.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::formulary_cli::{repo_root, text, Workspace};
use crate::gateway_conda::{build_channel_with, driver, get};

/// Reads and writes a subdirectory's `repodata.json`.
fn edit_repodata(path: &Path, edit: impl FnOnce(&mut Value)) {
    let mut repodata: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("repodata")).expect("JSON");
    edit(&mut repodata);
    std::fs::write(path, serde_json::to_vec(&repodata).expect("JSON")).expect("repodata");
}

/// Adds bad input to the channel: a file whose content is another package (`impostor`), one
/// whose bytes are not the ones its record hashes (`damaged`), a record without a file
/// (`missing`), a record whose file name climbs out of the folder, a package file without a
/// record (`stray`) and a symbolic link (`linked`).
fn spoil(channel: &Path) {
    let noarch = channel.join("noarch");
    std::fs::copy(
        noarch.join("tinyapp-1.0-0.tar.bz2"),
        noarch.join("impostor-1.0-0.tar.bz2"),
    )
    .expect("impostor");
    std::fs::write(noarch.join("damaged-1.0-0.tar.bz2"), b"BZh91AY&SY damaged").expect("damaged");
    std::fs::write(noarch.join("stray-1.0-0.tar.bz2"), b"stray").expect("stray");
    std::os::unix::fs::symlink("/etc/passwd", noarch.join("linked-1.0-0.tar.bz2")).expect("link");
    edit_repodata(&noarch.join("repodata.json"), |repodata| {
        let packages = repodata["packages"].as_object_mut().expect("packages");
        let mut impostor = packages["tinyapp-1.0-0.tar.bz2"].clone();
        impostor["name"] = "impostor".into();
        packages.insert("impostor-1.0-0.tar.bz2".to_owned(), impostor);
        let mut damaged = packages["tinylib-1.0-0.tar.bz2"].clone();
        damaged["name"] = "damaged".into();
        damaged["size"] = 18.into();
        damaged.as_object_mut().expect("record").remove("md5");
        packages.insert("damaged-1.0-0.tar.bz2".to_owned(), damaged.clone());
        damaged["name"] = "missing".into();
        packages.insert("missing-1.0-0.tar.bz2".to_owned(), damaged.clone());
        packages.insert("../escape-1.0-0.tar.bz2".to_owned(), damaged);
    });
}

/// py-rattler solves `specs` against the gateway's channel and installs them into `prefix`;
/// the driver's JSON answer.
fn install(gateway: &str, root: &Path, prefix: &str, specs: &[&str]) -> Value {
    let output = Command::new("python3")
        .arg(driver())
        .arg("install")
        .arg(gateway)
        .arg(root.join(prefix))
        .arg(root.join(format!("{prefix}-cache")))
        .args(specs)
        .stdin(Stdio::null())
        .output()
        .expect("py-rattler driver runs");
    let stdout = text(&output.stdout);
    serde_json::from_str(stdout.lines().next().unwrap_or_default())
        .unwrap_or_else(|_| panic!("driver said {stdout}{}", text(&output.stderr)))
}

fn solved_version(answer: &Value, name: &str) -> Option<String> {
    answer["solved"]
        .as_array()?
        .iter()
        .find(|record| record["name"] == name)
        .and_then(|record| record["version"].as_str())
        .map(str::to_owned)
}

crate::on_both_databases!(fn an_imported_conda_channel_installs_with_no_upstream_under_policy);
fn an_imported_conda_channel_installs_with_no_upstream_under_policy() {
    let workspace = Workspace::new();
    let root = workspace.folder.path();
    let channel = build_channel_with(root, &["advisory"]);
    spoil(&channel);
    let no_upstream = ("FORMULARY_CONDA_CHANNELS", "{conda-forge=[]}");

    let import = workspace
        .command(&[
            "mirror",
            "import",
            "conda",
            &channel.display().to_string(),
            "--channel",
            "conda-forge",
        ])
        .env(no_upstream.0, no_upstream.1)
        .output()
        .expect("the binary runs");
    let said = text(&import.stdout);
    assert_eq!(
        import.status.code(),
        Some(1),
        "some files were skipped: {said}{}",
        text(&import.stderr)
    );
    for expected in [
        "Imported 8 files",
        "conda-forge/noarch: tinyapp-1.0-0.tar.bz2",
        "conda-forge/noarch: r-tinyr-0.3.1-0.tar.bz2",
        "conda-forge/linux-64: platformtool-1.2.0-h0_0.conda",
        "conda-forge/linux-64: pytorch-1.13.0-py_0.tar.bz2",
        "impostor-1.0-0.tar.bz2: its info/index.json gives name \"tinyapp\" but its record in repodata.json says \"impostor\"",
        "damaged-1.0-0.tar.bz2: its sha256 is",
        "missing-1.0-0.tar.bz2: listed in repodata.json but the file is not in the folder",
        "stray-1.0-0.tar.bz2: not listed in repodata.json",
        "linked-1.0-0.tar.bz2: a symbolic link",
        "its record '../escape-1.0-0.tar.bz2' has no name or version, or is not named as a conda package file",
    ] {
        assert!(said.contains(expected), "{expected:?} in:\n{said}");
    }

    // A later import with nothing good in it loses nothing imported before.
    let later = root.join("later");
    std::fs::create_dir_all(later.join("noarch")).expect("later");
    std::fs::write(later.join("noarch/late-1.0-0.tar.bz2"), b"short").expect("late");
    std::fs::write(
        later.join("noarch/repodata.json"),
        serde_json::json!({"info": {"subdir": "noarch"}, "packages": {"late-1.0-0.tar.bz2": {
            "name": "late", "version": "1.0", "build": "0", "build_number": 0, "depends": [],
            "sha256": "0".repeat(64), "size": 1000}}})
        .to_string(),
    )
    .expect("later repodata");
    let again = workspace
        .command(&[
            "mirror",
            "import",
            "conda",
            &later.display().to_string(),
            "--channel",
            "conda-forge",
        ])
        .env(no_upstream.0, no_upstream.1)
        .output()
        .expect("the binary runs");
    let said = text(&again.stdout);
    assert_eq!(again.status.code(), Some(2), "{said}");
    assert!(
        said.contains(
            "late-1.0-0.tar.bz2: it is 5 bytes but its record in repodata.json says 1000"
        ),
        "{said}"
    );

    workspace.ok(&[
        "advisories",
        "import",
        &repo_root()
            .join("test-data/osv/pypa-advisory-database/vulns/torch")
            .display()
            .to_string(),
    ]);
    // No upstream at all: the channel is served from the import alone.
    let (_server, base, _log) = crate::reliability::serve(&workspace, &[no_upstream]);
    let gateway = format!("{base}/conda/conda-forge");

    // py-rattler solves and installs from the import: tinylib 2.0 (indexed today) is held back
    // by the cooldown, and pytorch 1.13.0 by torch's PyPI advisory.
    let answer = install(
        &gateway,
        root,
        "env",
        &["tinyapp", "platformtool", "r-tinyr", "pytorch"],
    );
    assert_eq!(
        solved_version(&answer, "tinylib").as_deref(),
        Some("1.0"),
        "{answer}"
    );
    assert_eq!(
        solved_version(&answer, "platformtool").as_deref(),
        Some("1.2.0")
    );
    assert_eq!(
        solved_version(&answer, "pytorch").as_deref(),
        Some("1.13.1")
    );
    assert_eq!(
        std::fs::read_to_string(root.join("env/share/tinylib/VERSION")).expect("installed file"),
        "tinylib 1.0\n"
    );
    assert!(root.join("env/bin/platformtool").is_file());
    assert_eq!(
        std::fs::read_to_string(root.join("env/lib/torch/VERSION")).expect("installed file"),
        "torch 1.13.1\n"
    );

    // What was refused at import is not served; the imported records are upstream's.
    let (status, _, body) = get(&format!("{gateway}/noarch/repodata.json"));
    assert_eq!(status, 200, "{body}");
    let served: Value = serde_json::from_str(&body).expect("repodata JSON");
    let original: Value = serde_json::from_str(
        &std::fs::read_to_string(channel.join("noarch/repodata.json")).expect("repodata"),
    )
    .expect("JSON");
    let mut files: Vec<&String> = served["packages"]
        .as_object()
        .expect("packages")
        .keys()
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "r-tinyr-0.3.1-0.tar.bz2",
            "tinyapp-1.0-0.tar.bz2",
            "tinylib-1.0-0.tar.bz2"
        ]
    );
    assert_eq!(
        served["packages"]["tinyapp-1.0-0.tar.bz2"],
        original["packages"]["tinyapp-1.0-0.tar.bz2"]
    );
    for refused in ["impostor-1.0-0.tar.bz2", "damaged-1.0-0.tar.bz2"] {
        assert_eq!(
            get(&format!("{gateway}/noarch/{refused}")).0,
            404,
            "{refused}"
        );
    }

    // A pinned pytorch 1.13.0 is absent from the repodata (the solve cannot choose it), and
    // its file, asked for directly (as an explicit environment does), is refused with the
    // advisory and the mapping that brought it.
    let (_, _, linux) = get(&format!("{gateway}/linux-64/repodata.json"));
    assert!(!linux.contains("pytorch-1.13.0"), "{linux}");
    assert!(linux.contains("pytorch-1.13.1-py_0.tar.bz2"), "{linux}");
    let pinned = install(&gateway, root, "env-pinned", &["pytorch==1.13.0"]);
    assert!(pinned["error"].is_string(), "{pinned}");
    let (status, reason, body) = get(&format!("{gateway}/linux-64/pytorch-1.13.0-py_0.tar.bz2"));
    assert_eq!(status, 403, "{body}");
    assert!(
        reason.contains(
            "PYSEC-2022-43015 via PyPI package torch (mapped from conda package pytorch)"
        ),
        "{reason}"
    );
    assert!(body.contains("fixed in 1.13.1"), "{body}");
    let checked = workspace.run(&["policy", "check", "pkg:conda/pytorch@1.13.0"]);
    let said = text(&checked.stdout);
    assert!(
        !checked.status.success()
            && said.contains("via PyPI package torch (mapped from conda package pytorch)"),
        "{said}{}",
        text(&checked.stderr)
    );
}
