//! `formulary tools` with a real tool binary: ruff's own executable, taken from its wheels on
//! PyPI and packed as the archive its vendor publishes (`ruff-x86_64-unknown-linux-gnu.tar.gz`
//! holding `ruff-x86_64-unknown-linux-gnu/ruff`), served by a static upstream. A curator adds
//! two versions from manifests; the newer is prohibited. The analyst, after `formulary setup`,
//! lists the tools, installs the allowed one into their profile (no root), runs it by name, and
//! is refused the prohibited one with the reason; the ledger names them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use crate::formulary_cli::{static_server, text, Workspace};
use crate::gateway_auth::{gateway_token, serve, upstreams, PASSWORD};

const VERSIONS: [&str; 2] = ["0.6.9", "0.7.0"];
pub(crate) const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// A project's manylinux wheel from PyPI, downloaded once per target folder.
pub(crate) fn wheel(project: &str, version: &str) -> PathBuf {
    wheel_for(project, version, "manylinux_2_17_x86_64")
}

/// A project's wheel for a platform tag (`manylinux_2_17_x86_64`, `win_amd64`) from PyPI,
/// downloaded once per target folder.
pub(crate) fn wheel_for(project: &str, version: &str, platform: &str) -> PathBuf {
    static LOCK: OnceLock<std::sync::Mutex<()>> = OnceLock::new();
    let _one_at_a_time = LOCK.get_or_init(Default::default).lock();
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-tool-wheels");
    std::fs::create_dir_all(&folder).expect("folder");
    let find = || {
        std::fs::read_dir(&folder)
            .expect("folder")
            .flatten()
            .find(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.starts_with(&format!("{project}-{version}-"))
                    && name.contains(platform)
                    && name.ends_with(".whl")
            })
            .map(|entry| entry.path())
    };
    if let Some(found) = find() {
        return found;
    }
    let output = Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--platform",
            platform,
            "--disable-pip-version-check",
            "-d",
        ])
        .arg(&folder)
        .arg(format!("{project}=={version}"))
        .env("PIP_CONFIG_FILE", "/dev/null")
        .env_remove("PIP_FIND_LINKS")
        .output()
        .expect("pip runs");
    assert!(
        output.status.success(),
        "could not download {project} {version} from PyPI: {}",
        text(&output.stderr)
    );
    find().expect("the downloaded wheel")
}

/// The archive a vendor publishes (`{project}-x86_64-unknown-linux-gnu.tar.gz` holding
/// `{project}-x86_64-unknown-linux-gnu/{program}`), built from the programs in its wheel:
/// (file name, bytes).
pub(crate) fn vendor_archive(project: &str, version: &str, programs: &[&str]) -> (String, Vec<u8>) {
    let mut zip =
        zip::ZipArchive::new(std::fs::File::open(wheel(project, version)).expect("wheel"))
            .expect("zip");
    let mut tarball = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for program in programs {
        let mut binary = Vec::new();
        std::io::copy(
            &mut zip
                .by_name(&format!("{project}-{version}.data/scripts/{program}"))
                .unwrap_or_else(|_| panic!("{program} in the {project} wheel")),
            &mut binary,
        )
        .expect("read");
        let mut header = tar::Header::new_gnu();
        header.set_size(binary.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tarball
            .append_data(
                &mut header,
                format!("{project}-{TRIPLE}/{program}"),
                binary.as_slice(),
            )
            .expect("append");
    }
    let bytes = tarball.into_inner().expect("tar").finish().expect("gzip");
    (format!("{project}-{TRIPLE}.tar.gz"), bytes)
}

/// ruff's archive, as its vendor publishes it.
fn archive(version: &str) -> (String, Vec<u8>) {
    vendor_archive("ruff", version, &["ruff"])
}

fn person(program: impl AsRef<std::ffi::OsStr>, home: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("FORMULARY_CONFIG_DIR");
    command
}

/// A new home under `root` for `username`, with `formulary setup --client CLIENT` run in it
/// and one of their gateway tokens given on standard input (as the bootstrap gives it).
pub(crate) async fn set_up_home(root: &Path, base: &str, username: &str, client: &str) -> PathBuf {
    let (token, _) = gateway_token(&reqwest::Client::new(), base, username).await;
    let home = root.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let mut setup = person(env!("CARGO_BIN_EXE_formulary"), &home)
        .current_dir(root)
        .args([
            "setup",
            "--server",
            base,
            "--token-stdin",
            "--client",
            client,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setup");
    setup
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{token}\n").as_bytes())
        .expect("token");
    let output = setup.wait_with_output().expect("setup ends");
    assert!(
        output.status.success(),
        "{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    home
}

crate::on_both_databases!(async fn an_approved_tool_installs_into_the_profile_and_a_prohibited_one_is_refused);
async fn an_approved_tool_installs_into_the_profile_and_a_prohibited_one_is_refused() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));

    // The vendor's downloads, and a curator's manifest for each version.
    let vendor = root.join("vendor");
    let mut digests = Vec::new();
    for version in VERSIONS {
        let (filename, bytes) = archive(version);
        let folder = vendor.join(version);
        std::fs::create_dir_all(&folder).expect("folder");
        std::fs::write(folder.join(&filename), &bytes).expect("archive");
        digests.push((
            version,
            filename,
            hex::encode(Sha256::digest(&bytes)),
            bytes.len(),
        ));
    }
    let (_vendor_server, vendor_url) = static_server(&vendor);
    for (version, filename, sha256, size) in &digests {
        let manifest = root.join(format!("ruff-{version}.toml"));
        std::fs::write(
            &manifest,
            format!("name = \"ruff\"\nversion = \"{version}\"\n\n[[file]]\nplatform = \"x86_64-linux\"\nurl = \"{vendor_url}{version}/{filename}\"\nsha256 = \"{sha256}\"\nsize = {size}\nkind = \"archive\"\nbinaries = [\"ruff-{TRIPLE}/ruff\"]\n"),
        )
        .expect("manifest");
        let added = workspace.ok(&["tools", "add", &manifest.display().to_string()]);
        assert!(
            added.contains(&format!("Added ruff {version} for x86_64-linux")),
            "{added}"
        );
    }
    workspace.ok(&[
        "entry",
        "add",
        "pkg:generic/ruff",
        "--range",
        ">= 0.7.0",
        "--status",
        "prohibited",
        "--reason",
        "Changes our formatting rules; stay on 0.6 until the style guide is updated",
    ]);

    let (_server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &root.join("log"));
    let client = reqwest::Client::new();
    let home = set_up_home(&root, &base, "jane", "pip").await;
    let (token, _) = gateway_token(&client, &base, "jane").await;
    let formulary = |args: &[&str]| {
        person(env!("CARGO_BIN_EXE_formulary"), &home)
            .current_dir(&root)
            .args(args)
            .output()
            .expect("formulary runs")
    };

    // The list shows what the view allows, and why not.
    let output = formulary(&["tools", "list"]);
    let listed = text(&output.stdout);
    assert!(output.status.success(), "{listed}{}", text(&output.stderr));
    assert!(
        listed.lines().any(|line| line.contains("ruff")
            && line.contains("0.6.9")
            && line.contains("allowed")),
        "{listed}"
    );
    assert!(
        listed.lines().any(|line| line.contains("0.7.0")
            && line.contains("refused")
            && line.contains("Changes our formatting rules")),
        "{listed}"
    );

    // Install: the newest allowed version, into the profile, on the person's PATH.
    let output = formulary(&["tools", "install", "ruff"]);
    let report = text(&output.stdout);
    assert!(output.status.success(), "{report}{}", text(&output.stderr));
    assert!(
        report.contains("Installed ruff 0.6.9 in ~/.local/share/formulary/tools/ruff/0.6.9"),
        "{report}"
    );
    let ran = Command::new(home.join(".local/bin/ruff"))
        .arg("--version")
        .output()
        .expect("ruff runs");
    assert_eq!(
        text(&ran.stdout).trim(),
        "ruff 0.6.9",
        "{}",
        text(&ran.stderr)
    );

    // The prohibited version is refused with the reason, by the client and by the gateway.
    let output = formulary(&["tools", "install", "ruff@0.7.0"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("ruff 0.7.0 is refused")
            && text(&output.stdout).contains("Changes our formatting rules"),
        "{}",
        text(&output.stdout)
    );
    let refused = client
        .get(format!(
            "{base}/o/RJ1/tools/files/ruff/0.7.0/x86_64-linux/ruff-{TRIPLE}.tar.gz"
        ))
        .basic_auth("jane", Some(&token))
        .send()
        .await
        .expect("GET");
    assert_eq!(refused.status(), 403);
    assert!(refused
        .text()
        .await
        .expect("body")
        .contains("Changes our formatting rules"));
    assert!(!home
        .join(".local/share/formulary/tools/ruff/0.7.0")
        .exists());

    let output = formulary(&["tools", "which", "ruff"]);
    assert!(
        text(&output.stdout).contains("~/.local/bin/ruff → ruff 0.6.9"),
        "{}",
        text(&output.stdout)
    );

    // A recall of the installed version: the list warns, and remove takes it away.
    workspace.ok(&[
        "entry",
        "add",
        "pkg:generic/ruff",
        "--range",
        ">= 0.6.9, < 0.7",
        "--status",
        "prohibited",
        "--reason",
        "Recalled: a regression corrupts notebooks",
    ]);
    tokio::time::sleep(std::time::Duration::from_secs(4)).await;
    let output = formulary(&["tools", "list"]);
    assert!(
        text(&output.stdout).contains("warning: ruff 0.6.9 is installed but now refused (")
            && text(&output.stdout).contains("a regression corrupts notebooks"),
        "{}",
        text(&output.stdout)
    );
    let output = formulary(&["tools", "remove", "ruff"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!home.join(".local/bin/ruff").exists() && !home.join(".local/bin/ruff").is_symlink());
    assert!(!home
        .join(".local/share/formulary/tools/ruff/0.6.9")
        .exists());

    // The ledger says who has which version.
    let actors = crate::gateway_auth::ledger_actors(&workspace, "pkg:generic/ruff", 2).await;
    assert!(
        actors.iter().all(|actor| actor == "user:jane"),
        "{actors:?}"
    );
}
