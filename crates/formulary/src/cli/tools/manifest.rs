//! `formulary tools add MANIFEST`: a tool version's files as a curator describes them in TOML,
//! checked as the web page checks its form (`formulary_store::tool_artifacts`) and recorded
//! (audited as `tool.add`). A file the vendor signs names its detached signature and the
//! vendor's public key, pinned here (inline, or in a file beside the manifest).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use formulary_store::{ToolArtifact, ToolFileInput};
use serde::Deserialize;

use crate::cli::{operator, Context};

/// A manifest: one version of one tool, with its files per platform.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    name: String,
    version: String,
    #[serde(rename = "file")]
    files: Vec<ManifestFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    platform: String,
    url: String,
    sha256: String,
    size: u64,
    kind: String,
    #[serde(default)]
    binaries: Vec<String>,
    /// An installer's per-user recipe (`{prefix}`: the folder in the person's profile).
    #[serde(default)]
    install_args: Vec<String>,
    /// The vendor's detached signature of the file, when the vendor signs it.
    #[serde(default)]
    signature: Option<ManifestSignature>,
}

/// `signature = { url, kind, public_key | public_key_file }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestSignature {
    url: String,
    kind: String,
    /// The vendor's public key itself (armored OpenPGP key block, or minisign public key).
    #[serde(default)]
    public_key: Option<String>,
    /// Or a file holding it, relative to the manifest.
    #[serde(default)]
    public_key_file: Option<String>,
}

/// The manifest's files, checked as the web page checks them (`formulary_store::tool_artifacts`);
/// `folder` is where the manifest is (for `public_key_file`).
fn artifacts_of(manifest: Manifest, folder: &Path) -> anyhow::Result<Vec<ToolArtifact>> {
    let mut files = Vec::new();
    for file in manifest.files {
        let (signature_url, signature_kind, signature_key) = match file.signature {
            None => Default::default(),
            Some(signature) => {
                let key = match (signature.public_key, signature.public_key_file) {
                    (Some(key), None) => key,
                    (None, Some(path)) => {
                        let path = folder.join(path);
                        std::fs::read_to_string(&path).with_context(|| {
                            format!("could not read the vendor's public key from {}", path.display())
                        })?
                    }
                    _ => anyhow::bail!("the signature of the {} file needs the vendor's public key: give public_key (the key itself) or public_key_file (a file beside the manifest), not both", file.platform),
                };
                (signature.url, signature.kind, key)
            }
        };
        files.push(ToolFileInput {
            platform: file.platform,
            url: file.url,
            sha256: file.sha256,
            size: file.size,
            kind: file.kind,
            binaries: file.binaries,
            install_args: file.install_args,
            signature_url,
            signature_kind,
            signature_key,
        });
    }
    formulary_store::tool_artifacts(&manifest.name, &manifest.version, &files).map_err(|problems| {
        anyhow::anyhow!(
            "the manifest cannot be added:\n{}",
            problems
                .iter()
                .map(|problem| format!("  {}: {}", problem.field, problem.message))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })
}

/// `formulary tools add MANIFEST`.
pub(crate) async fn add(context: &Context, manifest: &Path) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("could not read {}", manifest.display()))?;
    let parsed: Manifest = toml::from_str(&text)
        .with_context(|| format!("{} is not a tool manifest", manifest.display()))?;
    let artifacts = artifacts_of(parsed, manifest.parent().unwrap_or(Path::new(".")))?;
    let database = context.database().await?;
    database.add_tool_artifacts(&artifacts, &operator()).await?;
    for artifact in &artifacts {
        println!(
            "Added {} {} for {} ({}, {} bytes).",
            artifact.name, artifact.version, artifact.platform, artifact.filename, artifact.size
        );
        if let Some(signature) = &artifact.signature {
            println!(
                "  The gateway will verify the vendor's {} signature with the pinned key: {}.",
                signature.kind, signature.signer
            );
        }
    }
    println!(
        "Who may download it is decided by entries for pkg:generic/{} (formulary entry add).",
        artifacts[0].name
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_checked() {
        let manifest: Manifest = toml::from_str(
            "name = \"UV\"\nversion = \"0.9.5\"\n[[file]]\nplatform = \"x86_64-linux\"\nurl = \"https://example.org/uv/uv-x86_64-unknown-linux-gnu.tar.gz\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nsize = 10\nkind = \"archive\"\nbinaries = [\"uv-x86_64-unknown-linux-gnu/uv\"]\n",
        )
        .expect("parses");
        let artifacts = artifacts_of(manifest, Path::new(".")).expect("valid");
        assert_eq!(artifacts[0].name, "uv");
        assert_eq!(artifacts[0].filename, "uv-x86_64-unknown-linux-gnu.tar.gz");
        assert!(artifacts[0].signature.is_none());
        let bad: Manifest = toml::from_str("name = \"uv\"\nversion = \"1\"\n[[file]]\nplatform = \"x\"\nurl = \"file:///etc/passwd\"\nsha256 = \"00\"\nsize = 1\nkind = \"archive\"\n").expect("parses");
        assert!(artifacts_of(bad, Path::new(".")).is_err());
    }

    #[test]
    fn a_signed_file_names_its_signature_and_key() {
        let folder = tempfile::tempdir().expect("folder");
        std::fs::write(
            folder.path().join("minisign.pub"),
            "untrusted comment: minisign public key E7620F1842B4E81F\nRWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n",
        )
        .expect("key");
        let manifest: Manifest = toml::from_str(
            "name = \"uv\"\nversion = \"0.9.5\"\n[[file]]\nplatform = \"x86_64-linux\"\nurl = \"https://example.org/uv.tar.gz\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nsize = 10\nkind = \"archive\"\n[file.signature]\nurl = \"https://example.org/uv.tar.gz.minisig\"\nkind = \"minisign\"\npublic_key_file = \"minisign.pub\"\n",
        )
        .expect("parses");
        let artifacts = artifacts_of(manifest, folder.path()).expect("valid");
        let signature = artifacts[0].signature.as_ref().expect("signed");
        assert_eq!(signature.signer, "minisign key E7620F1842B4E81F");
        let unreadable: Manifest = toml::from_str(
            "name = \"uv\"\nversion = \"0.9.5\"\n[[file]]\nplatform = \"x86_64-linux\"\nurl = \"https://example.org/uv.tar.gz\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\nsize = 10\nkind = \"archive\"\nsignature = { url = \"https://example.org/uv.tar.gz.asc\", kind = \"openpgp\", public_key = \"-----BEGIN PGP PUBLIC KEY BLOCK-----\\n\\nAAAA\\n-----END PGP PUBLIC KEY BLOCK-----\\n\" }\n",
        )
        .expect("parses");
        let error = artifacts_of(unreadable, folder.path()).expect_err("refused");
        assert!(
            error
                .to_string()
                .contains("signature_key: The public key cannot be used"),
            "{error}"
        );
    }
}
