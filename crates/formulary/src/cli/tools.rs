//! `formulary tools`: desktop tools from the formulary. `add` (on the server's machine, for a
//! national curator) records a tool version's files from a manifest; `list` and `install` (for
//! the analyst, with the settings `formulary setup` saved) show the tools approved in their
//! view and install one into their own profile, never asking for elevation: the archive is
//! fetched through the gateway (policy applied, verified, ledger), checked again here against
//! its SHA-256, unpacked into a per-version folder, and its programs linked into a folder on the
//! person's PATH. Versions sit side by side; the newest installed one is linked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use formulary_core::ecosystems::{Ecosystem, Version};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::setup::Places;
use super::Context;

mod installer;
mod manifest;

/// Tool commands.
#[derive(Debug, Subcommand)]
pub(crate) enum ToolsCommand {
    /// Record a tool version's files from a manifest (TOML; see docs/self-service.md).
    Add {
        /// The manifest file.
        manifest: PathBuf,
    },
    /// The tools your organisation's view offers for this computer, and which are installed.
    List,
    /// Install an approved tool into your own profile (no admin rights), e.g. `uv` or `uv@0.9.5`.
    Install {
        /// NAME or NAME@VERSION [default version: the newest allowed].
        tool: String,
    },
    /// Install the newest allowed version of every installed tool.
    Update,
    /// Remove an installed tool (every version, or NAME@VERSION).
    Remove {
        /// NAME or NAME@VERSION.
        tool: String,
    },
    /// Which installed version of a tool runs, and where.
    Which {
        /// The tool's name.
        name: String,
    },
}

/// This computer's platform, as manifests name it: `{arch}-{os}`.
pub(crate) fn this_platform() -> String {
    let os = match std::env::consts::OS {
        "macos" => "macos",
        "windows" => "windows",
        _ => "linux",
    };
    format!("{}-{os}", std::env::consts::ARCH)
}

/// What `formulary setup` saved: the view and the token.
fn saved(places: &Places) -> anyhow::Result<(url::Url, String)> {
    let path = places.formulary().join("gateway.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("Formulary is not set up here ({} is missing); run `formulary setup --server https://…` first", places.show(&path))
    })?;
    let saved: Value = serde_json::from_str(&text)?;
    let view = url::Url::parse(saved["view"].as_str().unwrap_or(""))
        .context("the saved view is not a URL; run `formulary setup` again")?;
    Ok((view, saved["token"].as_str().unwrap_or("").to_owned()))
}

async fn fetch_index(view: &url::Url, token: &str) -> anyhow::Result<Vec<Value>> {
    let response = super::client::http_client()?
        .get(view.join("tools/index.json")?)
        .basic_auth("formulary", Some(token))
        .send()
        .await
        .with_context(|| format!("could not reach {view}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!(
            "{view}tools/index.json answered {status}: {} {} (run `formulary doctor`)",
            body["title"].as_str().unwrap_or(""),
            body["detail"].as_str().unwrap_or("")
        );
    }
    Ok(body["tools"].as_array().cloned().unwrap_or_default())
}

/// Where tools are unpacked, and the folder their programs are linked into.
fn tool_folders(places: &Places) -> (PathBuf, PathBuf) {
    places.tools()
}

fn installed_versions(root: &Path, name: &str) -> Vec<String> {
    std::fs::read_dir(root.join(name))
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().join(".formulary-complete").exists())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn newer(a: &str, b: &str) -> bool {
    match (
        Version::parse(Ecosystem::Generic, a),
        Version::parse(Ecosystem::Generic, b),
    ) {
        (Ok(a), Ok(b)) => a > b,
        _ => a > b,
    }
}

async fn list(places: &Places) -> anyhow::Result<ExitCode> {
    let (view, token) = saved(places)?;
    let tools = fetch_index(&view, &token).await?;
    let platform = this_platform();
    let (root, _) = tool_folders(places);
    let mut rows = Vec::new();
    for tool in &tools {
        let name = tool["name"].as_str().unwrap_or("?");
        let version = tool["version"].as_str().unwrap_or("?");
        let file_here = tool["files"].as_array().and_then(|files| {
            files
                .iter()
                .find(|file| file["platform"] == platform.as_str())
        });
        let here = file_here.is_some();
        let signer = file_here
            .and_then(|file| file["signature"]["signer"].as_str())
            .unwrap_or("");
        let state = if tool["allowed"] == true {
            if here {
                "allowed".to_owned()
            } else {
                format!("allowed (no file for {platform})")
            }
        } else {
            let reasons: Vec<&str> = tool["reasons"]
                .as_array()
                .map(|reasons| {
                    reasons
                        .iter()
                        .filter_map(|reason| reason["message"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            format!("refused: {}", reasons.join("; "))
        };
        let installed = if installed_versions(&root, name)
            .iter()
            .any(|installed| installed == version)
        {
            "yes"
        } else {
            ""
        };
        rows.push(vec![
            name.to_owned(),
            version.to_owned(),
            state,
            installed.to_owned(),
            signer.to_owned(),
        ]);
    }
    if rows.is_empty() {
        println!("{view} offers no desktop tools yet.");
    } else {
        super::output::table(
            &[
                "TOOL",
                "VERSION",
                "STATE",
                "INSTALLED",
                "SIGNED BY (vendor)",
            ],
            &rows,
        );
    }
    for notice in notices(&tools, &root, &platform) {
        println!("{notice}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Warnings for installed versions the view now refuses (a recall), and notices of newer
/// allowed versions.
fn notices(tools: &[Value], root: &Path, platform: &str) -> Vec<String> {
    let mut notices = Vec::new();
    let mut names: Vec<&str> = tools
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    names.dedup();
    for name in names {
        let installed = installed_versions(root, name);
        for version in &installed {
            if let Some(tool) = tools
                .iter()
                .find(|tool| tool["name"] == name && tool["version"] == version.as_str())
            {
                if tool["allowed"] != true {
                    let reasons: Vec<&str> = tool["reasons"]
                        .as_array()
                        .map(|reasons| {
                            reasons
                                .iter()
                                .filter_map(|reason| reason["message"].as_str())
                                .collect()
                        })
                        .unwrap_or_default();
                    notices.push(format!("warning: {name} {version} is installed but now refused ({}); remove it with `formulary tools remove {name}@{version}`", reasons.join("; ")));
                }
            }
        }
        let newest_allowed = tools
            .iter()
            .filter(|tool| tool["name"] == name && tool["allowed"] == true)
            .filter(|tool| {
                tool["files"]
                    .as_array()
                    .is_some_and(|files| files.iter().any(|file| file["platform"] == platform))
            })
            .filter_map(|tool| tool["version"].as_str())
            .fold(None::<&str>, |best, version| match best {
                Some(best) if !newer(version, best) => Some(best),
                _ => Some(version),
            });
        if let (Some(newest), false) = (newest_allowed, installed.is_empty()) {
            if installed.iter().all(|version| newer(newest, version)) {
                notices.push(format!("notice: {name} {newest} is allowed and newer than what is installed; run `formulary tools update`"));
            }
        }
    }
    notices
}

fn remove(places: &Places, tool: &str) -> anyhow::Result<ExitCode> {
    let (name, version) = match tool.split_once('@') {
        Some((name, version)) => (
            name.trim().to_ascii_lowercase(),
            Some(version.trim().to_owned()),
        ),
        None => (tool.trim().to_ascii_lowercase(), None),
    };
    let (root, bin) = tool_folders(places);
    let installed = installed_versions(&root, &name);
    let doomed: Vec<String> = installed
        .iter()
        .filter(|installed| {
            version
                .as_deref()
                .is_none_or(|version| version == installed.as_str())
        })
        .cloned()
        .collect();
    if doomed.is_empty() {
        bail!("{tool} is not installed; see `formulary tools list`");
    }
    // Links into the removed folders go too; the newest remaining version is linked instead.
    let removed_folders: Vec<PathBuf> = doomed
        .iter()
        .map(|version| root.join(&name).join(version))
        .collect();
    if let Ok(entries) = std::fs::read_dir(&bin) {
        for entry in entries.flatten() {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                if removed_folders
                    .iter()
                    .any(|folder| target.starts_with(folder))
                {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
    }
    for (version, folder) in doomed.iter().zip(&removed_folders) {
        std::fs::remove_dir_all(folder)
            .with_context(|| format!("could not remove {}", folder.display()))?;
        println!("Removed {name} {version}.");
    }
    let remaining = installed_versions(&root, &name);
    if let Some(newest) =
        remaining
            .iter()
            .cloned()
            .reduce(|best, other| if newer(&other, &best) { other } else { best })
    {
        let recorded =
            std::fs::read_to_string(root.join(&name).join(&newest).join(".formulary-binaries"))
                .unwrap_or_default();
        for binary in recorded.lines().filter(|line| !line.is_empty()) {
            let shim = link(&root.join(&name).join(&newest).join(binary), &bin)?;
            println!("  {} → {name} {newest}", places.show(&shim));
        }
    } else {
        let _ = std::fs::remove_dir(root.join(&name));
    }
    Ok(ExitCode::SUCCESS)
}

fn which(places: &Places, name: &str) -> anyhow::Result<ExitCode> {
    let name = name.trim().to_ascii_lowercase();
    let (root, bin) = tool_folders(places);
    let folder = root.join(&name);
    let mut found = false;
    if let Ok(entries) = std::fs::read_dir(&bin) {
        for entry in entries.flatten() {
            if let Ok(target) = std::fs::read_link(entry.path()) {
                if let Ok(rest) = target.strip_prefix(&folder) {
                    let version = rest
                        .components()
                        .next()
                        .map(|part| part.as_os_str().to_string_lossy().into_owned())
                        .unwrap_or_default();
                    println!(
                        "{} → {name} {version} ({})",
                        places.show(&entry.path()),
                        places.show(&target)
                    );
                    found = true;
                }
            }
        }
    }
    if !found {
        println!("{name} is not installed by formulary tools (see `formulary tools list`).");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn unpack(archive: &Path, filename: &str, into: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(archive)?;
    if filename.ends_with(".zip") {
        zip::ZipArchive::new(file)?.extract(into)?;
    } else if filename.ends_with(".tar.gz") || filename.ends_with(".tgz") {
        tar::Archive::new(flate2::read::GzDecoder::new(file)).unpack(into)?;
    } else {
        bail!("{filename} is not an archive formulary tools can unpack (.zip, .tar.gz)");
    }
    Ok(())
}

fn link(program: &Path, bin: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(bin)?;
    let name = program.file_name().context("a program has a name")?;
    #[cfg(unix)]
    {
        let shim = bin.join(name);
        let _ = std::fs::remove_file(&shim);
        std::os::unix::fs::symlink(program, &shim)
            .with_context(|| format!("could not link {}", shim.display()))?;
        Ok(shim)
    }
    #[cfg(not(unix))]
    {
        let stem = Path::new(name).file_stem().unwrap_or(name);
        let shim = bin.join(format!("{}.cmd", stem.to_string_lossy()));
        std::fs::write(&shim, format!("@\"{}\" %*\r\n", program.display()))?;
        Ok(shim)
    }
}

async fn install(places: &Places, tool: &str) -> anyhow::Result<ExitCode> {
    let (name, wanted) = match tool.split_once('@') {
        Some((name, version)) => (
            name.trim().to_ascii_lowercase(),
            Some(version.trim().to_owned()),
        ),
        None => (tool.trim().to_ascii_lowercase(), None),
    };
    let (view, token) = saved(places)?;
    let platform = this_platform();
    let tools = fetch_index(&view, &token).await?;
    let versions: Vec<&Value> = tools
        .iter()
        .filter(|entry| entry["name"] == name.as_str())
        .collect();
    if versions.is_empty() {
        bail!("{view} offers no tool called {name}; see `formulary tools list`, or request it at {}requests/new", view.join("/")?);
    }
    let chosen = match &wanted {
        Some(version) => versions
            .iter()
            .find(|entry| entry["version"] == version.as_str())
            .copied()
            .with_context(|| {
                format!("{name} {version} is not offered; see `formulary tools list`")
            })?,
        None => versions
            .iter()
            .filter(|entry| entry["allowed"] == true)
            .filter(|entry| {
                entry["files"].as_array().is_some_and(|files| {
                    files
                        .iter()
                        .any(|file| file["platform"] == platform.as_str())
                })
            })
            .max_by(|a, b| {
                let (a, b) = (
                    a["version"].as_str().unwrap_or(""),
                    b["version"].as_str().unwrap_or(""),
                );
                if newer(a, b) {
                    std::cmp::Ordering::Greater
                } else if newer(b, a) {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .copied()
            .with_context(|| {
                format!("no version of {name} is allowed for {platform} in your view")
            })?,
    };
    let version = chosen["version"].as_str().unwrap_or("").to_owned();
    if chosen["allowed"] != true {
        let reasons: Vec<&str> = chosen["reasons"]
            .as_array()
            .map(|reasons| {
                reasons
                    .iter()
                    .filter_map(|reason| reason["message"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        println!("{name} {version} is refused: {}", reasons.join("; "));
        return Ok(ExitCode::from(1));
    }
    let file = chosen["files"]
        .as_array()
        .and_then(|files| {
            files
                .iter()
                .find(|file| file["platform"] == platform.as_str())
        })
        .with_context(|| format!("{name} {version} has no file for {platform}"))?;
    let bare = file["kind"] == "binary";
    let runs_installer = file["kind"] == "installer";
    let recipe: Vec<String> = file["install_args"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|argument| argument.as_str().map(str::to_owned))
        .collect();
    if runs_installer && recipe.is_empty() {
        println!("{name} {version} for {platform} is an installer with no per-user recipe, so formulary tools does not run it: it could need admin rights. Ask your organisation's IT to install it, or ask the formulary's curators for a portable (archive) edition or a per-user recipe.");
        return Ok(ExitCode::from(1));
    }
    if file["kind"] != "archive" && !bare && !runs_installer {
        println!("{name} {version} for {platform} is a file of kind {} that formulary tools cannot install; tell your Formulary operator.", file["kind"]);
        return Ok(ExitCode::from(1));
    }
    let filename = file["filename"].as_str().unwrap_or("download");
    let expected = file["sha256"].as_str().unwrap_or("").to_owned();
    let tools_url = view
        .join("tools/")?
        .join(file["url"].as_str().unwrap_or(""))?;
    let mut response = super::client::http_client()?
        .get(tools_url.clone())
        .basic_auth("formulary", Some(&token))
        .timeout(std::time::Duration::from_secs(3600))
        .send()
        .await
        .with_context(|| format!("could not reach {view}"))?;
    if !response.status().is_success() {
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        println!(
            "{name} {version} could not be downloaded ({status}): {} {}",
            body["title"].as_str().unwrap_or(""),
            body["detail"].as_str().unwrap_or("")
        );
        return Ok(ExitCode::from(1));
    }
    let (root, bin) = tool_folders(places);
    std::fs::create_dir_all(&root)?;
    let progress = indicatif::ProgressBar::new(file["size"].as_u64().unwrap_or(0));
    if !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    progress.set_message(format!("{name} {version}"));
    let mut download = tempfile::NamedTempFile::new_in(&root)?;
    let mut hasher = Sha256::new();
    while let Some(chunk) = response.chunk().await? {
        hasher.update(&chunk);
        std::io::Write::write_all(&mut download, &chunk)?;
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    let digest = hex::encode(hasher.finalize());
    if digest != expected {
        bail!("the download of {filename} does not match its published SHA-256 ({digest} instead of {expected}); nothing was installed. Try again, and tell your Formulary operator if it persists");
    }
    if let Some(signer) = file["signature"]["signer"].as_str() {
        println!("{filename}: the gateway verified the vendor's signature ({signer}).");
    }
    let folder = root.join(&name).join(&version);
    let program_name = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    if runs_installer {
        // The installer writes the version's folder itself (many refuse one that exists, and
        // record where they are in the files they install, so it cannot be moved afterwards).
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(root.join(&name))?;
        // Saved under its own name (Windows runs an installer by its extension).
        let holding = root.join(&name).join(format!(".{version}.installer"));
        std::fs::create_dir_all(&holding)?;
        let saved = holding.join(
            Path::new(filename)
                .file_name()
                .context("the installer has a file name")?,
        );
        download
            .persist(&saved)
            .map_err(|error| anyhow::anyhow!("could not save {filename}: {error}"))?;
        let plan = installer::plan(std::env::consts::OS, &saved, filename, &recipe, &folder)
            .map_err(|why| anyhow::anyhow!("{name} {version} cannot be installed: {why}"));
        let plan = match plan {
            Ok(plan) => plan,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&holding);
                return Err(error);
            }
        };
        println!(
            "Running {filename} for you only, into {} ({} {}) …",
            places.show(&folder),
            plan.program.display(),
            plan.args.join(" ")
        );
        let ran = installer::run(&plan);
        let _ = std::fs::remove_dir_all(&holding);
        if let Err(why) = ran {
            let _ = std::fs::remove_dir_all(&folder);
            println!("{name} {version} was not installed: the installer failed: {why}");
            return Ok(ExitCode::from(1));
        }
        if !folder.is_dir() {
            bail!("the installer of {name} {version} ended without installing into {}; its per-user recipe is wrong: tell your Formulary operator", places.show(&folder));
        }
    } else {
        let staging = root.join(&name).join(format!(".{version}.partial"));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging)?;
        // A bare program (kind `binary`, such as the `formulary` client itself) is installed
        // under the tool's name; an archive is unpacked.
        if bare {
            let program = staging.join(&program_name);
            std::fs::copy(download.path(), &program)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755))?;
            }
        } else {
            unpack(download.path(), filename, &staging)?;
        }
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::rename(&staging, &folder)?;
    }
    std::fs::write(
        folder.join(".formulary-complete"),
        format!("{tools_url}\n{digest}\n"),
    )?;
    let newest =
        installed_versions(&root, &name)
            .into_iter()
            .fold(version.clone(), |best, other| {
                if newer(&other, &best) {
                    other
                } else {
                    best
                }
            });
    let binaries: Vec<&str> = if bare {
        vec![program_name.as_str()]
    } else {
        file["binaries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect()
    };
    // `remove` links these again when this version becomes the newest one left.
    std::fs::write(
        folder.join(".formulary-binaries"),
        binaries
            .iter()
            .map(|binary| format!("{binary}\n"))
            .collect::<String>(),
    )?;
    let mut linked = Vec::new();
    if newest == version {
        for binary in binaries {
            let program = folder.join(binary);
            if !program.is_file() {
                bail!("{binary} is not in {filename}; the manifest is wrong: tell your Formulary operator");
            }
            linked.push(link(&program, &bin)?);
        }
    }
    println!(
        "Installed {name} {version} in {} (verified SHA-256 {}…).",
        places.show(&folder),
        &digest[..12]
    );
    for shim in &linked {
        println!("  {} → {}", places.show(shim), name);
    }
    if newest != version {
        println!("  {name} {newest} is also installed and stays the one on your PATH.");
    }
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|folder| folder == bin));
    if !linked.is_empty() && !on_path {
        println!(
            "  Add {} to your PATH to run it by name.",
            places.show(&bin)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `formulary tools update`: the newest allowed version of every installed tool.
async fn update(places: &Places) -> anyhow::Result<ExitCode> {
    let (root, _) = tool_folders(places);
    let names: Vec<String> = std::fs::read_dir(&root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.path().is_dir())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !installed_versions(&root, name).is_empty())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        println!("No tools are installed; see `formulary tools list`.");
        return Ok(ExitCode::SUCCESS);
    }
    let mut status = ExitCode::SUCCESS;
    for name in names {
        let (view, token) = saved(places)?;
        let tools = fetch_index(&view, &token).await?;
        let platform = this_platform();
        let newest = tools
            .iter()
            .filter(|tool| tool["name"] == name.as_str() && tool["allowed"] == true)
            .filter(|tool| {
                tool["files"].as_array().is_some_and(|files| {
                    files
                        .iter()
                        .any(|file| file["platform"] == platform.as_str())
                })
            })
            .filter_map(|tool| tool["version"].as_str())
            .fold(None::<String>, |best, version| match best {
                Some(best) if !newer(version, &best) => Some(best),
                _ => Some(version.to_owned()),
            });
        match newest {
            Some(version) if installed_versions(&root, &name).contains(&version) => println!("{name} {version} is the newest allowed version and is installed."),
            Some(version) => {
                if install(places, &format!("{name}@{version}")).await? != ExitCode::SUCCESS {
                    status = ExitCode::from(1);
                }
            }
            None => println!("No version of {name} is allowed for {platform} now; keep or remove what is installed."),
        }
    }
    Ok(status)
}

/// Runs a `formulary tools` command.
pub(crate) async fn run(context: &Context, command: ToolsCommand) -> anyhow::Result<ExitCode> {
    match command {
        ToolsCommand::Add { manifest } => manifest::add(context, &manifest).await,
        ToolsCommand::List => list(&Places::current()?).await,
        ToolsCommand::Install { tool } => install(&Places::current()?, &tool).await,
        ToolsCommand::Update => update(&Places::current()?).await,
        ToolsCommand::Remove { tool } => remove(&Places::current()?, &tool),
        ToolsCommand::Which { name } => which(&Places::current()?, &name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_platforms() {
        assert!(newer("0.10.0", "0.9.5"));
        assert!(this_platform().contains('-'));
    }
}
