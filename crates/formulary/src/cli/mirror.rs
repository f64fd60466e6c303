//! `formulary mirror import pypi|cran|npm DIR`.

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
    /// cran and npm the exit status is then 1 (2 when nothing at all was imported).
    Import {
        /// The ecosystem of the files.
        ecosystem: MirrorEcosystem,
        /// The folder holding them: wheels and sdists for pypi; for cran, the root of a
        /// CRAN-like repository (src/contrib/PACKAGES and tarballs, optionally
        /// src/contrib/Archive/<pkg>/ and bin/windows/contrib/X.Y/ or bin/macosx/…/contrib/X.Y/);
        /// for npm, tarballs (.tgz, as `npm pack` writes them).
        folder: PathBuf,
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
}

pub(crate) async fn run(context: &Context, command: MirrorCommand) -> anyhow::Result<ExitCode> {
    let MirrorCommand::Import { ecosystem, folder } = command;
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
            }
        );
    }
    if matches!(ecosystem, MirrorEcosystem::Cran | MirrorEcosystem::Npm)
        && !report.imported.is_empty()
    {
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
            (MirrorEcosystem::Cran | MirrorEcosystem::Npm, false, false) => ExitCode::from(1),
            (MirrorEcosystem::Cran | MirrorEcosystem::Npm, true, false) => ExitCode::from(2),
        },
    )
}
