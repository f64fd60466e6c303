//! `formulary mirror import pypi DIR`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::Context;

/// Mirror commands.
#[derive(Debug, Subcommand)]
pub(crate) enum MirrorCommand {
    /// Import package files from a folder, for sites with no upstream (air-gapped).
    Import {
        /// The ecosystem of the files.
        ecosystem: MirrorEcosystem,
        /// The folder holding them (wheels and sdists for pypi).
        folder: PathBuf,
    },
}

/// Ecosystems whose files can be imported.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum MirrorEcosystem {
    /// Wheels and source distributions.
    Pypi,
}

pub(crate) async fn run(context: &Context, command: MirrorCommand) -> anyhow::Result<ExitCode> {
    let MirrorCommand::Import {
        ecosystem: MirrorEcosystem::Pypi,
        folder,
    } = command;
    let database = context.database().await?;
    let blobs = context.blobs()?;
    let report = formulary_gateway::import_pypi_folder(&database, &blobs, &folder).await?;
    println!(
        "Imported {} files from {}.",
        report.imported.len(),
        folder.display()
    );
    for (project, filename) in &report.imported {
        println!("  {project}: {filename}");
    }
    for (path, why) in &report.skipped {
        println!("skipped {}: {why}", path.display());
    }
    if report.imported.is_empty() {
        println!(
            "Nothing was imported: put wheels (.whl) or sdists (.tar.gz, .zip) in the folder."
        );
    }
    Ok(ExitCode::SUCCESS)
}
