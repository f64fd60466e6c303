//! Per-user installer recipes, run for real on Linux: a self-extracting shell installer in the
//! style of Miniforge's (`sh Miniforge3-Linux-x86_64.sh -b -p PREFIX`: batch mode, refuses a
//! prefix that exists, unpacks the tar.gz appended to itself, writes the prefix into what it
//! installs so it cannot be moved afterwards), built here and served by a static "vendor".
//! `formulary tools install` runs it with exactly the recipe's arguments, as the person, into
//! their profile, and links its program; an installer with no recipe is refused with the
//! reason, a failing one leaves nothing behind, and a machine-wide recipe cannot be added.

use std::path::Path;
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::formulary_cli::{static_server, text, Workspace};
use crate::gateway_auth::{serve, upstreams, PASSWORD};

/// The installer's script; the program it installs follows as a tar.gz after the marker line.
const INSTALLER: &str = r#"#!/bin/sh
# hello VERSION installer for Linux: a self-extracting installer in Miniforge's style.
#   sh hello-VERSION-Linux-x86_64.sh -b -p PREFIX
set -eu
BATCH=0
PREFIX="$HOME/hello"
ARGS="$*"
while getopts "bp:" option; do
    case "$option" in
        b) BATCH=1 ;;
        p) PREFIX="$OPTARG" ;;
        *) echo "usage: $0 -b -p PREFIX" >&2; exit 2 ;;
    esac
done
if [ "$BATCH" != 1 ]; then
    echo "ERROR: this installer asks questions unless it runs in batch mode (-b)" >&2
    exit 2
fi
if [ -e "$PREFIX" ]; then
    echo "ERROR: File or directory already exists: '$PREFIX'" >&2
    exit 1
fi
mkdir -p "$PREFIX"
START=$(awk '/^__PAYLOAD_BELOW__$/ { print NR + 1; exit 0 }' "$0")
tail -n +"$START" "$0" | tar -xzf - -C "$PREFIX"
sed "s|@PREFIX@|$PREFIX|g" "$PREFIX/bin/hello.in" > "$PREFIX/bin/hello"
rm "$PREFIX/bin/hello.in"
chmod 755 "$PREFIX/bin/hello"
printf '%s\n' "$ARGS" > "$PREFIX/.installer-args"
id -u > "$PREFIX/.installer-uid"
echo "hello VERSION installed into $PREFIX"
exit 0
__PAYLOAD_BELOW__
"#;

/// `hello-VERSION-Linux-x86_64.sh`: the script with its payload appended.
fn installer(version: &str) -> Vec<u8> {
    let program = format!("#!/bin/sh\necho \"hello {version} from @PREFIX@\"\n");
    let mut tarball = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(program.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    tarball
        .append_data(&mut header, "bin/hello.in", program.as_bytes())
        .expect("append");
    let payload = tarball.into_inner().expect("tar").finish().expect("gzip");
    let mut bytes = INSTALLER.replace("VERSION", version).into_bytes();
    bytes.extend_from_slice(&payload);
    bytes
}

fn person(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_formulary"))
        .args(args)
        .current_dir(home)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_DATA_HOME")
        .env_remove("FORMULARY_CONFIG_DIR")
        .output()
        .expect("formulary runs")
}

crate::on_both_databases!(async fn an_installer_runs_with_its_per_user_recipe_into_the_profile);
async fn an_installer_runs_with_its_per_user_recipe_into_the_profile() {
    if std::env::consts::OS != "linux" {
        eprintln!("skipped: the installer here is a Linux shell installer");
        return;
    }
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));
    let vendor = root.join("vendor");
    std::fs::create_dir_all(&vendor).expect("vendor");
    let (_vendor_server, vendor_url) = static_server(&vendor);

    // 1.0 with the per-user recipe; 0.9 recorded with none; 1.1 with a recipe missing `-b`.
    let platform = format!("{}-linux", std::env::consts::ARCH);
    for (version, recipe) in [
        ("1.0", "install_args = [\"-b\", \"-p\", \"{prefix}\"]\n"),
        ("0.9", ""),
        ("1.1", "install_args = [\"-p\", \"{prefix}\"]\n"),
    ] {
        let bytes = installer(version);
        let filename = format!("hello-{version}-Linux-x86_64.sh");
        std::fs::create_dir_all(vendor.join(version)).expect("folder");
        std::fs::write(vendor.join(version).join(&filename), &bytes).expect("installer");
        let manifest = root.join(format!("hello-{version}.toml"));
        std::fs::write(
            &manifest,
            format!(
                "name = \"hello\"\nversion = \"{version}\"\n\n[[file]]\nplatform = \"{platform}\"\nurl = \"{vendor_url}{version}/{filename}\"\nsha256 = \"{}\"\nsize = {}\nkind = \"installer\"\nbinaries = [\"bin/hello\"]\n{recipe}",
                hex::encode(Sha256::digest(&bytes)),
                bytes.len()
            ),
        )
        .expect("manifest");
        workspace.ok(&["tools", "add", &manifest.display().to_string()]);
    }
    // A recipe that installs for every user of the computer is not accepted.
    let machine_wide = root.join("machine-wide.toml");
    std::fs::write(
        &machine_wide,
        format!("name = \"git\"\nversion = \"2.47.1\"\n\n[[file]]\nplatform = \"x86_64-windows\"\nurl = \"{vendor_url}Git-2.47.1-64-bit.exe\"\nsha256 = \"{}\"\nsize = 1\nkind = \"installer\"\ninstall_args = [\"/VERYSILENT\", \"/ALLUSERS\", \"/DIR={{prefix}}\"]\n", "a".repeat(64)),
    )
    .expect("manifest");
    let refused = workspace.run(&["tools", "add", &machine_wide.display().to_string()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("install_args: /ALLUSERS installs for every user of the computer, which needs admin rights"),
        "{}",
        text(&refused.stderr)
    );

    let (_server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &root.join("log"));
    let home = crate::tools::set_up_home(&root, &base, "jane", "pip").await;

    // The recipe, exactly, as the person, into the profile; the program linked and working.
    let output = person(&home, &["tools", "install", "hello@1.0"]);
    let report = text(&output.stdout);
    assert!(output.status.success(), "{report}{}", text(&output.stderr));
    let prefix = home.join(".local/share/formulary/tools/hello/1.0");
    assert!(
        report.contains("Running hello-1.0-Linux-x86_64.sh for you only, into ~/.local/share/formulary/tools/hello/1.0")
            && report.contains("Installed hello 1.0 in ~/.local/share/formulary/tools/hello/1.0"),
        "{report}"
    );
    assert_eq!(
        std::fs::read_to_string(prefix.join(".installer-args")).expect("args"),
        format!("-b -p {}\n", prefix.display())
    );
    let uid = text(&Command::new("id").arg("-u").output().expect("id").stdout);
    assert_eq!(
        std::fs::read_to_string(prefix.join(".installer-uid")).expect("uid"),
        uid,
        "the installer runs as the person, not elevated"
    );
    let ran = Command::new(home.join(".local/bin/hello"))
        .output()
        .expect("hello runs");
    assert_eq!(
        text(&ran.stdout).trim(),
        format!("hello 1.0 from {}", prefix.display())
    );
    assert!(
        !prefix
            .parent()
            .expect("folder")
            .join(".1.0.installer")
            .exists(),
        "the downloaded installer is not kept"
    );

    // No per-user recipe: refused, saying why and what to do; nothing downloaded or run.
    let output = person(&home, &["tools", "install", "hello@0.9"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("hello 0.9 for")
            && text(&output.stdout).contains("is an installer with no per-user recipe")
            && text(&output.stdout).contains("Ask your organisation's IT"),
        "{}",
        text(&output.stdout)
    );
    assert!(!home.join(".local/share/formulary/tools/hello/0.9").exists());

    // A failing installer: what it said, and nothing left behind; 1.0 stays on the PATH.
    let output = person(&home, &["tools", "install", "hello@1.1"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stdout));
    assert!(
        text(&output.stdout).contains("hello 1.1 was not installed: the installer failed")
            && text(&output.stdout).contains("runs in batch mode (-b)"),
        "{}",
        text(&output.stdout)
    );
    assert!(!home.join(".local/share/formulary/tools/hello/1.1").exists());
    let ran = Command::new(home.join(".local/bin/hello"))
        .output()
        .expect("hello runs");
    assert!(text(&ran.stdout).contains("hello 1.0"));

    // Removal takes the installed folder and the link.
    let output = person(&home, &["tools", "remove", "hello"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!prefix.exists() && !home.join(".local/bin/hello").is_symlink());

    let actors = crate::gateway_auth::ledger_actors(&workspace, "pkg:generic/hello", 2).await;
    assert!(
        actors.iter().all(|actor| actor == "user:jane"),
        "{actors:?}"
    );
}
