//! `formulary inventory export --org ORG`: an organisation's estate as a CycloneDX 1.6 SBOM,
//! from a server (`GET /api/v1/organisations/{code}/sbom`): every component version its people
//! downloaded through its view and its environments reported.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use super::client::{self, ServerArgs};

/// Inventory commands.
#[derive(Debug, Subcommand)]
pub(crate) enum InventoryCommand {
    /// Write an organisation's estate as a CycloneDX 1.6 JSON SBOM.
    Export {
        /// The organisation (ODS code).
        #[arg(long)]
        org: String,
        /// Where to write it [default: standard output].
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
}

pub(crate) async fn run(command: InventoryCommand) -> anyhow::Result<ExitCode> {
    match command {
        InventoryCommand::Export {
            org,
            output,
            server,
        } => {
            let (server, token) = client::signed_in(&server)?;
            let document = client::exchange(
                client::client()?
                    .get(format!(
                        "{server}/api/v1/organisations/{}/sbom",
                        urlencoding_path(&org)
                    ))
                    .bearer_auth(&token),
                &server,
            )
            .await?;
            let text = serde_json::to_string_pretty(&document)?;
            let count = document["components"].as_array().map_or(0, Vec::len);
            match output {
                Some(path) => {
                    std::fs::write(&path, format!("{text}\n"))
                        .with_context(|| format!("could not write {}", path.display()))?;
                    eprintln!(
                        "Wrote the estate of {} ({count} component versions) to {} (CycloneDX 1.6).",
                        org.to_ascii_uppercase(),
                        path.display()
                    );
                }
                None => println!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An organisation code as one path segment (codes are letters and digits; anything else is
/// escaped so that it cannot change the path, and the server refuses it).
fn urlencoding_path(text: &str) -> String {
    text.bytes()
        .map(|byte| {
            if byte.is_ascii_alphanumeric() {
                (byte as char).to_string()
            } else {
                format!("%{byte:02X}")
            }
        })
        .collect()
}
