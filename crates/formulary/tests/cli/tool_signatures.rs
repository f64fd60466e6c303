//! Vendor signatures on desktop tools, with real OpenPGP keys made by GnuPG in the test: the
//! vendor's key is an RSA certification key with an Ed25519 signing subkey (as release keys are
//! usually kept), and another key stands for someone else. A static "vendor" serves the tool's
//! program and its detached signatures; the curator pins the vendor's key in each manifest. A
//! good signature installs and its signer is shown; a tampered file whose SHA-256 the manifest
//! matches, a signature by the other key, and a missing signature are each refused by the
//! gateway with the reason, and nothing is cached or installed. A key that does not parse is
//! refused by `formulary tools add`. The signer is shown in `tools list`, `tools/index.json`
//! and on `/admin/tools`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

use crate::formulary_cli::{static_server, text, Workspace};
use crate::gateway_auth::{serve, upstreams, PASSWORD};

/// A throwaway GnuPG home.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Gpg {
        // Short path: gpg-agent's socket must fit in a Unix socket address.
        let home = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .expect("gnupg home");
        Gpg { home }
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = Command::new("gpg")
            .env("GNUPGHOME", self.home.path())
            .args([
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ])
            .args(args)
            .output()
            .expect("gpg runs");
        assert!(
            output.status.success(),
            "gpg {args:?}: {}",
            text(&output.stderr)
        );
        output
    }

    /// The primary key's fingerprint for a user id.
    fn fingerprint(&self, user: &str) -> String {
        let listed = text(&self.run(&["--with-colons", "--list-keys", user]).stdout);
        listed
            .lines()
            .find_map(|line| line.strip_prefix("fpr:"))
            .and_then(|rest| rest.trim_matches(':').split(':').next_back())
            .expect("a fingerprint")
            .to_owned()
    }

    fn export(&self, fingerprint: &str) -> String {
        text(&self.run(&["--armor", "--export", fingerprint]).stdout)
    }

    fn sign(&self, fingerprint: &str, file: &Path, signature: &Path, armor: bool) {
        let (file, signature) = (file.display().to_string(), signature.display().to_string());
        let mut args = vec![
            "--local-user",
            fingerprint,
            "--detach-sign",
            "--output",
            &signature,
        ];
        if armor {
            args.push("--armor");
        }
        args.push(&file);
        self.run(&args);
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

fn program(version: &str) -> Vec<u8> {
    format!("#!/bin/sh\necho \"hello {version}\"\n").into_bytes()
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

/// Every file under `folder` whose name holds `digest` (a blob stored under its SHA-256).
fn files_named(folder: &Path, digest: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![folder.to_path_buf()];
    while let Some(folder) = pending.pop() {
        for entry in std::fs::read_dir(&folder).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if entry.file_name().to_string_lossy().contains(digest) {
                found.push(path);
            }
        }
    }
    found
}

crate::on_both_databases!(async fn only_files_the_vendors_pinned_key_signed_are_installed);
async fn only_files_the_vendors_pinned_key_signed_are_installed() {
    if Command::new("gpg").arg("--version").output().is_err() {
        eprintln!("skipped: GnuPG (gpg) is not installed, so no key can be made");
        return;
    }
    let workspace = Workspace::new();
    let root = workspace.folder.path().to_path_buf();
    workspace.ok(&["org", "add", "RJ1", "--name", "A trust"]);
    workspace.add_user("jane", "Jane Analyst", &["RJ1:requester"], PASSWORD);
    workspace.add_user(
        "nico",
        "Nico Curator",
        &["NATIONAL:national-curator"],
        PASSWORD,
    );
    let (_pypi, pypi_url, _cran, cran_url) = upstreams(&root.join("upstreams"));

    // The vendor's release key (a certification key with a signing subkey), and another.
    let gpg = Gpg::new();
    let vendor_user = "Hello Releases <releases@hello.example>";
    gpg.run(&["--quick-gen-key", vendor_user, "rsa3072", "cert", "never"]);
    let vendor_key = gpg.fingerprint(vendor_user);
    gpg.run(&["--quick-add-key", &vendor_key, "ed25519", "sign", "never"]);
    let other_user = "Mallory <mallory@elsewhere.example>";
    gpg.run(&["--quick-gen-key", other_user, "ed25519", "sign", "never"]);
    let other_key = gpg.fingerprint(other_user);
    let pinned = gpg.export(&vendor_key);
    assert!(pinned.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"));

    // 1.0 signed by the vendor; 1.1 signed, then replaced at the vendor by other bytes (the
    // manifest's SHA-256 is the replacement's); 1.2 signed by the other key; 1.3 unsigned.
    let vendor = root.join("vendor");
    let platform = format!("{}-linux", std::env::consts::ARCH);
    for (version, signer) in [
        ("1.0", Some(&vendor_key)),
        ("1.1", Some(&vendor_key)),
        ("1.2", Some(&other_key)),
        ("1.3", None),
    ] {
        let folder = vendor.join(version);
        std::fs::create_dir_all(&folder).expect("folder");
        let file = folder.join("hello");
        std::fs::write(&file, program(version)).expect("program");
        let extension = if version == "1.2" { "sig" } else { "asc" };
        if let Some(signer) = signer {
            gpg.sign(
                signer,
                &file,
                &folder.join(format!("hello.{extension}")),
                extension == "asc",
            );
        }
        if version == "1.1" {
            std::fs::write(&file, b"#!/bin/sh\necho \"hello 1.1, altered\"\n").expect("tamper");
        }
        let bytes = std::fs::read(&file).expect("program");
        let manifest = root.join(format!("hello-{version}.toml"));
        std::fs::write(
            &manifest,
            format!(
                "name = \"hello\"\nversion = \"{version}\"\n\n[[file]]\nplatform = \"{platform}\"\nurl = \"VENDOR{version}/hello\"\nsha256 = \"{}\"\nsize = {}\nkind = \"binary\"\n\n[file.signature]\nurl = \"VENDOR{version}/hello.{extension}\"\nkind = \"openpgp\"\npublic_key_file = \"vendor-key.asc\"\n",
                hex::encode(Sha256::digest(&bytes)),
                bytes.len()
            ),
        )
        .expect("manifest");
    }
    std::fs::write(root.join("vendor-key.asc"), &pinned).expect("key");
    let (_vendor_server, vendor_url) = static_server(&vendor);
    for version in ["1.0", "1.1", "1.2", "1.3"] {
        let manifest = root.join(format!("hello-{version}.toml"));
        let text = std::fs::read_to_string(&manifest).expect("manifest");
        std::fs::write(&manifest, text.replace("VENDOR", &vendor_url)).expect("manifest");
        let added = workspace.ok(&["tools", "add", &manifest.display().to_string()]);
        assert!(
            added.contains(&format!(
                "The gateway will verify the vendor's openpgp signature with the pinned key: OpenPGP {vendor_key} (Hello Releases <releases@hello.example>)"
            )),
            "{added}"
        );
    }

    // A key that is not a key is refused when the manifest is added, saying what to paste.
    let damaged = root.join("damaged.toml");
    std::fs::write(
        &damaged,
        std::fs::read_to_string(root.join("hello-1.0.toml"))
            .expect("manifest")
            .replace("version = \"1.0\"", "version = \"0.9\"")
            .replace(
                "public_key_file = \"vendor-key.asc\"",
                "public_key = \"-----BEGIN PGP PUBLIC KEY BLOCK-----\\n\\nbm90IGEga2V5\\n-----END PGP PUBLIC KEY BLOCK-----\\n\"",
            ),
    )
    .expect("manifest");
    let refused = workspace.run(&["tools", "add", &damaged.display().to_string()]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains(
            "signature_key: The public key cannot be used: the OpenPGP public key cannot be read"
        ),
        "{}",
        text(&refused.stderr)
    );

    let (_server, base) = serve(&workspace, &pypi_url, &cran_url, "token", &root.join("log"));
    let home = crate::tools::set_up_home(&root, &base, "jane", "pip").await;

    // The list shows who signed each file, as evidence.
    let output = person(&home, &["tools", "list"]);
    let listed = text(&output.stdout);
    assert!(output.status.success(), "{listed}{}", text(&output.stderr));
    assert!(listed.contains("SIGNED BY (vendor)"), "{listed}");
    assert!(
        listed
            .lines()
            .any(|line| line.contains("1.0") && line.contains(&format!("OpenPGP {vendor_key}"))),
        "{listed}"
    );

    // The gateway's tool list and the curators' page give the same evidence.
    let (token, _) =
        crate::gateway_auth::gateway_token(&reqwest::Client::new(), &base, "jane").await;
    let index: serde_json::Value = reqwest::Client::new()
        .get(format!("{base}/o/RJ1/tools/index.json"))
        .basic_auth("jane", Some(&token))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let signature = &index["tools"][0]["files"][0]["signature"];
    assert_eq!(signature["kind"], "openpgp", "{index}");
    assert_eq!(
        signature["signer"],
        format!("OpenPGP {vendor_key} (Hello Releases <releases@hello.example>)")
    );
    let mut browser = crate::requests::Browser::new(&base);
    crate::requests::sign_in(&mut browser, "nico", PASSWORD).await;
    let (_, page) = browser.get("/admin/tools").await;
    assert!(
        page.contains(&format!("Signed by the vendor: OpenPGP {vendor_key} (Hello Releases &lt;releases@hello.example&gt;)")),
        "{page}"
    );

    // A good signature (by the vendor's signing subkey): installed, and the signer shown.
    let output = person(&home, &["tools", "install", "hello@1.0"]);
    let report = text(&output.stdout);
    assert!(output.status.success(), "{report}{}", text(&output.stderr));
    assert!(
        report.contains(&format!("hello: the gateway verified the vendor's signature (OpenPGP {vendor_key} (Hello Releases <releases@hello.example>))")),
        "{report}"
    );
    let ran = Command::new(home.join(".local/bin/hello"))
        .output()
        .expect("hello runs");
    assert_eq!(text(&ran.stdout).trim(), "hello 1.0");
    let cached = files_named(
        &root.join("data"),
        &hex::encode(Sha256::digest(program("1.0"))),
    );
    assert_eq!(
        cached.len(),
        1,
        "the verified file is cached once: {cached:?}"
    );

    // Refused by the gateway with the reason; nothing installed, nothing cached.
    for (version, why) in [
        ("1.1", "the signature does not match the file".to_owned()),
        (
            "1.2",
            format!("it was made with another key ({other_key}), not the pinned key {vendor_key}"),
        ),
        (
            "1.3",
            format!("the vendor publishes no signature at {vendor_url}1.3/hello.asc (404)"),
        ),
    ] {
        let output = person(&home, &["tools", "install", &format!("hello@{version}")]);
        let report = text(&output.stdout);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{report}{}",
            text(&output.stderr)
        );
        assert!(
            report.contains(&format!("hello {version} could not be downloaded (502 Bad Gateway): Vendor signature did not verify The vendor's signature on hello did not verify with the key pinned in its manifest: "))
                && report.contains(&why)
                && report.contains("Formulary refused the file and cached nothing"),
            "{version}: {report}"
        );
        assert!(!home
            .join(format!(".local/share/formulary/tools/hello/{version}"))
            .exists());
        let bytes = std::fs::read(vendor.join(version).join("hello")).expect("program");
        let digest = hex::encode(Sha256::digest(&bytes));
        assert_eq!(
            files_named(&root.join("data"), &digest),
            Vec::<PathBuf>::new(),
            "{version} must not be cached"
        );
    }
    // Asked again, the altered file is still refused (it was not cached by the first refusal).
    let output = person(&home, &["tools", "install", "hello@1.1"]);
    assert!(text(&output.stdout).contains("Vendor signature did not verify"));
    let ran = Command::new(home.join(".local/bin/hello"))
        .output()
        .expect("hello runs");
    assert_eq!(text(&ran.stdout).trim(), "hello 1.0");
}
