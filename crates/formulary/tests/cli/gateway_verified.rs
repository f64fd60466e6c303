//! Nothing unverified enters the cache, and what is cached survives a restart: CRAN files pulled
//! through are checked against `MD5sum` and their own DESCRIPTION; a file that is not gzip, names
//! another package, or has the wrong sum is refused with the reason and never stored; after a
//! restart with the upstream stopped, a cached file is served from the blob store.

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::formulary_cli::{static_server, text, Workspace};
use crate::gateway_cran::{gateway, repository_folder};

/// A gzip-compressed tarball holding `<package>/DESCRIPTION` with this text.
fn tarball(package: &str, description: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(description.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("{package}/DESCRIPTION"),
            description.as_bytes(),
        )
        .expect("append");
    builder
        .into_inner()
        .and_then(|encoder| encoder.finish())
        .expect("tarball")
}

/// Adds three bad packages to the upstream's `src/contrib`: one not gzip at all, one whose
/// tarball is another package's, one whose `MD5sum` in PACKAGES is wrong. Returns their files'
/// digests. PACKAGES.gz is removed so that the edited PACKAGES is what the gateway reads.
fn add_bad_packages(root: &Path) -> Vec<(String, String)> {
    let contrib = root.join("src/contrib");
    let files = [
        (
            "notgzip",
            b"<html>down for maintenance</html>".to_vec(),
            None,
        ),
        (
            "impostor",
            std::fs::read(contrib.join("cellar_1.0.0.tar.gz")).expect("cellar"),
            None,
        ),
        (
            "wrongsum",
            tarball(
                "wrongsum",
                "Package: wrongsum\nVersion: 1.0\nLicense: MIT\n",
            ),
            Some("0123456789abcdef0123456789abcdef"),
        ),
    ];
    let mut packages = std::fs::read_to_string(contrib.join("PACKAGES")).expect("PACKAGES");
    let mut digests = Vec::new();
    for (name, bytes, md5) in files {
        let filename = format!("{name}_1.0.tar.gz");
        std::fs::write(contrib.join(&filename), &bytes).expect("write");
        let md5 = md5.map(str::to_owned).unwrap_or_else(|| {
            use md5::Digest as _;
            hex::encode(md5::Md5::digest(&bytes))
        });
        packages.push_str(&format!(
            "\nPackage: {name}\nVersion: 1.0\nLicense: MIT\nMD5sum: {md5}\nNeedsCompilation: no\n"
        ));
        digests.push((filename, hex::encode(Sha256::digest(&bytes))));
    }
    std::fs::write(contrib.join("PACKAGES"), packages).expect("PACKAGES");
    let _ = std::fs::remove_file(contrib.join("PACKAGES.gz"));
    let _ = std::fs::remove_file(contrib.join("PACKAGES.rds"));
    digests
}

/// Fetches files through the gateway: one line per file, `status sha256-of-body` or
/// `status problem-detail`.
fn fetch(base: &str, files: &[&str]) -> Vec<String> {
    let script = format!(
        "import hashlib, json, urllib.request, urllib.error\n\
         for name in {files:?}:\n\
         \x20   try:\n\
         \x20       body = urllib.request.urlopen('{base}/cran/src/contrib/' + name, timeout=30).read()\n\
         \x20       print(200, hashlib.sha256(body).hexdigest())\n\
         \x20   except urllib.error.HTTPError as error:\n\
         \x20       print(error.code, json.loads(error.read()).get('detail', ''))\n"
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 runs");
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).lines().map(str::to_owned).collect()
}

#[test]
fn corrupt_cran_files_are_never_cached_and_cached_ones_survive_a_restart_without_upstream() {
    let workspace = Workspace::new();
    let root = workspace.folder.path().join("upstream");
    repository_folder(&root);
    let bad = add_bad_packages(&root);
    let cellar = hex::encode(Sha256::digest(
        std::fs::read(root.join("src/contrib/cellar_1.0.0.tar.gz")).expect("cellar"),
    ));
    let (upstream_server, upstream) = static_server(&root);
    let (server, base) = gateway(&workspace, &format!("[\"{upstream}\"]"));
    let answers = fetch(
        &base,
        &[
            "notgzip_1.0.tar.gz",
            "impostor_1.0.tar.gz",
            "wrongsum_1.0.tar.gz",
            "cellar_1.0.0.tar.gz",
        ],
    );
    assert!(
        answers[0].starts_with("502 ") && answers[0].contains("not a readable gzip"),
        "{answers:?}"
    );
    assert!(
        answers[1].starts_with("502 ") && answers[1].contains("no impostor/DESCRIPTION"),
        "{answers:?}"
    );
    assert!(
        answers[2].starts_with("502 ") && answers[2].contains("md5"),
        "{answers:?}"
    );
    assert_eq!(answers[3], format!("200 {cellar}"), "{answers:?}");
    let blobs = workspace.folder.path().join("data/blobs");
    // The impostor's bytes are cellar's, which is rightly cached as cellar.
    for (filename, digest) in bad.iter().filter(|(name, _)| !name.starts_with("impostor")) {
        let stored = Command::new("find")
            .arg(&blobs)
            .args(["-name", digest])
            .output()
            .expect("find");
        assert!(
            text(&stored.stdout).trim().is_empty(),
            "{filename} must not be cached"
        );
    }
    // Restart with the upstream stopped: the cached file is served from the blob store.
    drop(server);
    drop(upstream_server);
    let (_server, base) = gateway(&workspace, &format!("[\"{upstream}\"]"));
    let answers = fetch(&base, &["cellar_1.0.0.tar.gz", "wrongsum_1.0.tar.gz"]);
    assert_eq!(answers[0], format!("200 {cellar}"), "{answers:?}");
    assert!(
        answers[1].starts_with("502 ") || answers[1].starts_with("404 "),
        "an uncached file cannot be had with the upstream down: {answers:?}"
    );
    // A blob damaged on disk is found by `formulary cache verify`, quarantined and forgotten.
    let damaged = Command::new("find")
        .arg(&blobs)
        .args(["-name", &cellar])
        .output()
        .expect("find");
    let damaged = text(&damaged.stdout).trim().to_owned();
    assert!(!damaged.is_empty(), "cellar is cached");
    std::fs::write(&damaged, b"bit rot").expect("damage the blob");
    let first = workspace.run(&["cache", "verify"]);
    assert_eq!(first.status.code(), Some(1), "{}", text(&first.stdout));
    assert!(
        text(&first.stdout).contains(&format!("quarantined sha256:{cellar}")),
        "{}",
        text(&first.stdout)
    );
    assert!(
        !Path::new(&damaged).exists(),
        "the damaged blob is moved away"
    );
    let second = workspace.run(&["cache", "verify"]);
    assert_eq!(second.status.code(), Some(0), "{}", text(&second.stdout));
}
