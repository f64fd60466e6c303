//! A tool version as a national curator describes it (a manifest for `formulary tools add`, or
//! the form on `/admin/tools`), checked into [`ToolArtifact`]s: every problem names the field
//! and says what to write instead, so the CLI and the page report the same things.

use formulary_core::ecosystems::{Ecosystem, Version};
use formulary_core::Component;

use crate::tool_signature::{signer_of, ToolSignature};
use crate::tools::ToolArtifact;

/// The placeholder in an installer's per-user recipe for the folder in the person's profile.
pub const PREFIX_PLACEHOLDER: &str = "{prefix}";

/// One file of a tool version as described: a manifest's `[[file]]`, or the page's form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolFileInput {
    /// `{arch}-{os}` (`x86_64-linux`, `aarch64-macos`, `x86_64-windows`, `x86_64-linux-musl`).
    pub platform: String,
    /// Where the vendor publishes it (http or https).
    pub url: String,
    /// Its SHA-256, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// `archive`, `binary` or `installer`.
    pub kind: String,
    /// The programs to put on the PATH (paths inside the archive or installed folder).
    pub binaries: Vec<String>,
    /// An installer's per-user recipe (`{prefix}` for the folder in the person's profile).
    pub install_args: Vec<String>,
    /// Where the vendor publishes the file's detached signature; empty when it signs none.
    pub signature_url: String,
    /// The signature's kind: `openpgp` or `minisign` (empty with no signature).
    pub signature_kind: String,
    /// The vendor's public key, pinned (armored OpenPGP key block, or minisign public key).
    pub signature_key: String,
}

/// A problem with a described tool version: the field (`name`, `version`, `platform`, `url`,
/// `sha256`, `size`, `kind`, `binaries`, `install_args`, `signature_url`, `signature_kind`,
/// `signature_key`) and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolProblem {
    /// Which field.
    pub field: &'static str,
    /// What is wrong and what to write instead.
    pub message: String,
}

/// Arguments that install for every user of the computer, which needs admin rights.
const MACHINE_WIDE: [&str; 4] = ["/allusers", "allusers=1", "--all-users", "/all"];

/// Checks a described tool version; its files as stored, or every problem found.
pub fn tool_artifacts(
    name: &str,
    version: &str,
    files: &[ToolFileInput],
) -> Result<Vec<ToolArtifact>, Vec<ToolProblem>> {
    let mut problems = Vec::new();
    let mut problem = |field: &'static str, message: String| {
        problems.push(ToolProblem { field, message });
    };
    let component = match Component::new(Ecosystem::Generic, name.trim()) {
        Ok(component) if !name.trim().is_empty() => Some(component),
        Ok(_) => {
            problem(
                "name",
                "Enter the tool's name, like git, uv or miniforge".to_owned(),
            );
            None
        }
        Err(error) => {
            problem("name", format!("The name cannot be used: {error}. Use letters, digits, '.', '_' and '-', like git or r-base"));
            None
        }
    };
    let version = version.trim();
    if version.is_empty() {
        problem(
            "version",
            "Enter the version the vendor gives it, like 2.47.1".to_owned(),
        );
    } else if let Err(error) = Version::parse(Ecosystem::Generic, version) {
        problem(
            "version",
            format!(
                "The version cannot be used: {error}. Write it as the vendor does, like 2.47.1"
            ),
        );
    }
    if files.is_empty() {
        problem(
            "platform",
            "Describe at least one file: the tool's download for one platform".to_owned(),
        );
    }
    let mut artifacts = Vec::new();
    for file in files {
        let platform = file.platform.trim();
        if platform.is_empty() {
            problem(
                "platform",
                "Choose the platform the file is for, like x86_64-linux or x86_64-windows"
                    .to_owned(),
            );
        } else if !platform.contains('-')
            || !platform
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problem("platform", format!("'{}' is not a platform: write {{arch}}-{{os}}, like x86_64-linux, aarch64-macos or x86_64-windows", platform.escape_debug()));
        }
        let filename = match url::Url::parse(file.url.trim()) {
            Err(_) => {
                problem("url", format!("'{}' is not a web address: enter the vendor's download address, starting https://", file.url.trim().escape_debug()));
                None
            }
            Ok(url) if url.scheme() != "https" && url.scheme() != "http" => {
                problem("url", format!("Only http and https addresses can be pulled through, not {}:. Enter the vendor's download address", url.scheme()));
                None
            }
            Ok(url) => {
                let filename = url
                    .path_segments()
                    .and_then(|mut segments| segments.next_back().map(str::to_owned))
                    .filter(|name| !name.is_empty());
                if filename.is_none() {
                    problem("url", format!("{url} names no file: enter the address of the file itself, ending in its name"));
                }
                filename
            }
        };
        let sha256 = file.sha256.trim().to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            problem("sha256", "Enter the file's SHA-256: 64 characters 0-9 and a-f, from the vendor's checksums (or `sha256sum FILE`)".to_owned());
        }
        if file.size == 0 {
            problem(
                "size",
                "Enter the file's size in bytes, a whole number greater than 0".to_owned(),
            );
        }
        let kind = file.kind.trim();
        if !matches!(kind, "archive" | "binary" | "installer") {
            problem("kind", "Choose what the file is: archive (unpacked), binary (one program) or installer (run with a per-user recipe)".to_owned());
        }
        let binaries: Vec<String> = file
            .binaries
            .iter()
            .map(|binary| binary.trim().to_owned())
            .filter(|binary| !binary.is_empty())
            .collect();
        if binaries.iter().any(|binary| {
            binary.starts_with('/')
                || binary.starts_with('\\')
                || binary.contains(':')
                || binary.split(['/', '\\']).any(|part| part == "..")
        }) {
            problem("binaries", "Programs are paths inside the archive or installed folder, like bin/git or git-2.47.1/git.exe: no leading / and no ..".to_owned());
        }
        let install_args: Vec<String> = file
            .install_args
            .iter()
            .map(|argument| argument.trim().to_owned())
            .filter(|argument| !argument.is_empty())
            .collect();
        if !install_args.is_empty() {
            if kind != "installer" {
                problem(
                    "install_args",
                    "Only an installer takes install arguments: clear them, or choose installer"
                        .to_owned(),
                );
            } else if !install_args
                .iter()
                .any(|argument| argument.contains(PREFIX_PLACEHOLDER))
            {
                problem("install_args", format!("Say where it installs with {PREFIX_PLACEHOLDER}, which formulary tools replaces with a folder in the person's profile: for example -b -p {PREFIX_PLACEHOLDER} (Miniforge) or /DIR={PREFIX_PLACEHOLDER} (Inno Setup)"));
            }
            if let Some(argument) = install_args.iter().find(|argument| {
                MACHINE_WIDE
                    .iter()
                    .any(|wide| argument.to_ascii_lowercase() == *wide)
            }) {
                problem("install_args", format!("{argument} installs for every user of the computer, which needs admin rights: use the vendor's current-user option instead (for example /CURRENTUSER)"));
            }
        }
        let signature = signature_of(file, &mut problem);
        if let (Some(component), Some(filename)) = (&component, filename) {
            artifacts.push(ToolArtifact {
                name: component.name.as_str().to_owned(),
                version: version.to_owned(),
                platform: platform.to_owned(),
                filename,
                url: file.url.trim().to_owned(),
                sha256,
                size: file.size,
                kind: kind.to_owned(),
                binaries,
                install_args,
                signature,
            });
        }
    }
    let mut platforms: Vec<&str> = files.iter().map(|file| file.platform.trim()).collect();
    platforms.sort_unstable();
    if platforms.windows(2).any(|pair| pair[0] == pair[1]) {
        problem(
            "platform",
            "Each platform can have one file per version: remove the repeated platform".to_owned(),
        );
    }
    if problems.is_empty() {
        Ok(artifacts)
    } else {
        Err(problems)
    }
}

/// The file's vendor signature as described (none when all three fields are empty), its key
/// parsed to name the signer; problems go to `problem`.
fn signature_of(
    file: &ToolFileInput,
    problem: &mut impl FnMut(&'static str, String),
) -> Option<ToolSignature> {
    let (url, kind, key) = (
        file.signature_url.trim(),
        file.signature_kind.trim().to_ascii_lowercase(),
        file.signature_key.trim(),
    );
    if url.is_empty() && kind.is_empty() && key.is_empty() {
        return None;
    }
    let url_ok =
        matches!(url::Url::parse(url), Ok(parsed) if matches!(parsed.scheme(), "https" | "http"));
    if !url_ok {
        problem("signature_url", format!("'{}' is not the address of the vendor's signature: enter the https:// address of the detached signature published beside the file (often the file's address with .asc, .sig or .minisig added)", url.escape_debug()));
    }
    let kind_ok = matches!(kind.as_str(), "openpgp" | "minisign");
    if !kind_ok {
        problem("signature_kind", "Choose the signature's kind: openpgp (a .asc or .sig file, checked with the vendor's OpenPGP key) or minisign (a .minisig file)".to_owned());
    }
    let signer = if key.is_empty() {
        problem("signature_key", "Paste the vendor's public key, from the vendor's own site (not from beside the file): the signature is only as good as this key".to_owned());
        None
    } else if kind_ok {
        match signer_of(&kind, key) {
            Ok(signer) => Some(signer),
            Err(why) => {
                problem(
                    "signature_key",
                    format!("The public key cannot be used: {why}"),
                );
                None
            }
        }
    } else {
        None
    };
    signer.filter(|_| url_ok).map(|signer| ToolSignature {
        url: url.to_owned(),
        kind,
        public_key: format!("{key}\n"),
        signer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> ToolFileInput {
        ToolFileInput {
            platform: "x86_64-linux".to_owned(),
            url: "https://example.org/miniforge/Miniforge3-Linux-x86_64.sh".to_owned(),
            sha256: "AB".repeat(32),
            size: 10,
            kind: "installer".to_owned(),
            binaries: vec!["bin/conda".to_owned()],
            install_args: vec!["-b".to_owned(), "-p".to_owned(), "{prefix}".to_owned()],
            ..ToolFileInput::default()
        }
    }

    fn fields(result: Result<Vec<ToolArtifact>, Vec<ToolProblem>>) -> Vec<&'static str> {
        result
            .expect_err("problems")
            .into_iter()
            .map(|problem| problem.field)
            .collect()
    }

    #[test]
    fn a_good_installer_is_recorded_with_its_recipe() {
        let artifacts = tool_artifacts("Miniforge", "24.11.3-0", &[file()]).expect("valid");
        assert_eq!(artifacts[0].name, "miniforge");
        assert_eq!(artifacts[0].filename, "Miniforge3-Linux-x86_64.sh");
        assert_eq!(artifacts[0].sha256, "ab".repeat(32));
        assert_eq!(artifacts[0].install_args, ["-b", "-p", "{prefix}"]);
    }

    #[test]
    fn each_problem_names_its_field() {
        assert_eq!(
            fields(tool_artifacts("", "", &[file()])),
            ["name", "version"]
        );
        let bad = ToolFileInput {
            platform: "linux".to_owned(),
            url: "file:///etc/passwd".to_owned(),
            sha256: "00".to_owned(),
            size: 0,
            kind: "msi".to_owned(),
            binaries: vec!["../../bin/sh".to_owned()],
            install_args: vec!["-b".to_owned()],
            signature_url: "ftp://example.org/x.asc".to_owned(),
            signature_kind: "gpg".to_owned(),
            signature_key: "ssh-ed25519 AAAA".to_owned(),
        };
        assert_eq!(
            fields(tool_artifacts("git", "2.47.1", &[bad])),
            [
                "platform",
                "url",
                "sha256",
                "size",
                "kind",
                "binaries",
                "install_args",
                "signature_url",
                "signature_kind"
            ]
        );
        let mut wide = file();
        wide.install_args = vec!["/ALLUSERS".to_owned(), "/DIR={prefix}".to_owned()];
        let problems = tool_artifacts("git", "2.47.1", &[wide]).expect_err("refused");
        assert!(
            problems[0].message.contains("needs admin rights"),
            "{problems:?}"
        );
        let mut archive = file();
        archive.kind = "archive".to_owned();
        assert_eq!(
            fields(tool_artifacts("git", "2.47.1", &[archive])),
            ["install_args"]
        );
        assert_eq!(
            fields(tool_artifacts("git", "2.47.1", &[file(), file()])),
            ["platform"]
        );
        assert_eq!(fields(tool_artifacts("git", "2.47.1", &[])), ["platform"]);
    }

    #[test]
    fn an_installer_without_a_recipe_may_be_recorded() {
        let mut bare = file();
        bare.install_args.clear();
        let artifacts = tool_artifacts("git", "2.47.1", &[bare]).expect("valid");
        assert!(artifacts[0].install_args.is_empty());
    }

    #[test]
    fn a_signature_needs_an_address_a_kind_and_a_key_that_parses() {
        let mut signed = file();
        signed.signature_url = "https://example.org/Miniforge3-Linux-x86_64.sh.minisig".to_owned();
        signed.signature_kind = "minisign".to_owned();
        signed.signature_key =
            "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3".to_owned();
        let artifacts = tool_artifacts("miniforge", "24.11.3-0", &[signed.clone()]).expect("valid");
        let signature = artifacts[0].signature.as_ref().expect("signature");
        assert_eq!(signature.signer, "minisign key E7620F1842B4E81F");
        signed.signature_key = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nnope".to_owned();
        signed.signature_kind = "openpgp".to_owned();
        let problems =
            tool_artifacts("miniforge", "24.11.3-0", &[signed.clone()]).expect_err("refused");
        assert_eq!(problems[0].field, "signature_key");
        assert!(
            problems[0]
                .message
                .starts_with("The public key cannot be used"),
            "{problems:?}"
        );
        signed.signature_key.clear();
        assert_eq!(
            fields(tool_artifacts("miniforge", "24.11.3-0", &[signed])),
            ["signature_key"]
        );
    }
}
