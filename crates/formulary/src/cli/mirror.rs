//! `formulary mirror import pypi|cran|npm|conda DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::{output, Context};

/// Mirror commands.
#[derive(Debug, Subcommand)]
pub(crate) enum MirrorCommand {
    /// Import package files from a folder, for sites with no upstream (air-gapped).
    ///
    /// Files that cannot be imported are listed with the reason and the rest are imported. For
    /// cran, npm and conda the exit status is then 1 (2 when nothing at all was imported).
    Import {
        /// The ecosystem of the files.
        ecosystem: MirrorEcosystem,
        /// The folder holding them: wheels and sdists for pypi; for cran, the root of a
        /// CRAN-like repository (src/contrib/PACKAGES and tarballs, optionally
        /// src/contrib/Archive/<pkg>/ and bin/windows/contrib/X.Y/ or bin/macosx/…/contrib/X.Y/);
        /// for npm, tarballs (.tgz, as `npm pack` writes them); for conda, a channel folder
        /// (noarch/, linux-64/, … each with repodata.json and the .conda and .tar.bz2 files).
        folder: PathBuf,
        /// For conda: the channel to import into, one of `conda_channels` (default: the
        /// folder's name).
        #[arg(long)]
        channel: Option<String>,
    },
}

/// Ecosystems whose files can be imported.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum MirrorEcosystem {
    /// Wheels and source distributions.
    Pypi,
    /// A CRAN-like repository folder.
    Cran,
    /// npm tarballs.
    Npm,
    /// A conda channel folder.
    Conda,
}

pub(crate) async fn run(context: &Context, command: MirrorCommand) -> anyhow::Result<ExitCode> {
    let MirrorCommand::Import {
        ecosystem,
        folder,
        channel,
    } = command;
    if channel.is_some() && !matches!(ecosystem, MirrorEcosystem::Conda) {
        anyhow::bail!("--channel is for conda imports only");
    }
    let database = context.database().await?;
    let blobs = context.blobs()?;
    let report = match ecosystem {
        MirrorEcosystem::Pypi => {
            formulary_gateway::import_pypi_folder(&database, &blobs, &folder).await?
        }
        MirrorEcosystem::Npm => {
            formulary_gateway::import_npm_folder(&database, &blobs, &folder).await?
        }
        MirrorEcosystem::Cran => {
            let bar = output::progress(0, "importing");
            let report =
                formulary_gateway::import_cran_folder(&database, &blobs, &folder, |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                })
                .await;
            bar.finish_and_clear();
            report?
        }
        MirrorEcosystem::Conda => {
            let channel = conda_channel(context, &folder, channel)?;
            let bar = output::progress(0, "importing");
            let report = formulary_gateway::import_conda_folder(
                &database,
                &blobs,
                &folder,
                &channel,
                |done, total| {
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                },
            )
            .await;
            bar.finish_and_clear();
            report?
        }
    };
    println!(
        "Imported {} files from {}.",
        report.imported.len(),
        folder.display()
    );
    for (owner, filename) in &report.imported {
        println!("  {owner}: {filename}");
    }
    for (path, why) in &report.skipped {
        println!(
            "skipped {}: {why}",
            path.display().to_string().escape_debug()
        );
    }
    if report.imported.is_empty() {
        println!(
            "Nothing was imported: {}",
            match ecosystem {
                MirrorEcosystem::Pypi =>
                    "put wheels (.whl) or sdists (.tar.gz, .zip) in the folder.",
                MirrorEcosystem::Npm =>
                    "put npm tarballs (.tgz, as `npm pack` writes them) in the folder.",
                MirrorEcosystem::Cran =>
                    "give the root of a CRAN-like repository (the folder holding src/contrib/PACKAGES and the tarballs).",
                MirrorEcosystem::Conda =>
                    "give a channel folder whose subdirectories (noarch/, linux-64/, …) hold repodata.json and the package files it lists.",
            }
        );
    }
    if !matches!(ecosystem, MirrorEcosystem::Pypi) && !report.imported.is_empty() {
        println!(
            "A running `formulary serve` picks the import up within index_revalidate_seconds."
        );
    }
    Ok(
        match (
            ecosystem,
            report.imported.is_empty(),
            report.skipped.is_empty(),
        ) {
            (MirrorEcosystem::Pypi, _, _) | (_, _, true) => ExitCode::SUCCESS,
            (_, false, false) => ExitCode::from(1),
            (_, true, false) => ExitCode::from(2),
        },
    )
}

/// The conda channel an import goes into: `--channel`, else the folder's name. A channel the
/// configuration does not serve is imported all the same, with a warning saying how to serve it.
fn conda_channel(
    context: &Context,
    folder: &std::path::Path,
    channel: Option<String>,
) -> anyhow::Result<String> {
    let channel = match channel {
        Some(channel) => channel,
        None => folder
            .canonicalize()
            .ok()
            .and_then(|path| {
                path.file_name()
                    .map(|name| name.to_string_lossy().into_owned())
            })
            .unwrap_or_default(),
    };
    if channel.is_empty()
        || !channel
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
    {
        anyhow::bail!(
            "'{}' is not a conda channel name; give one with --channel (letters, digits, '-', '_' and '.')",
            channel.escape_debug()
        );
    }
    match context.settings.conda_channels.get(&channel) {
        None => eprintln!(
            "warning: conda_channels has no channel '{channel}', so the server will not serve this import; add `{channel} = []` to conda_channels (no upstream, for an air-gapped site)"
        ),
        Some(upstreams) if !upstreams.is_empty() => eprintln!(
            "warning: the channel '{channel}' has upstreams in conda_channels; when one of them answers, its repodata.json replaces the imported one at the next revalidation. An air-gapped site sets `{channel} = []`"
        ),
        Some(_) => {}
    }
    Ok(channel)
}
