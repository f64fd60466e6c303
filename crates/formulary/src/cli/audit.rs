//! `formulary audit verify`.

use std::process::ExitCode;

use clap::Subcommand;

use super::{output, Context};

/// Audit commands.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check that no audit row was edited or deleted. Exits 1 when the chain is broken.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) async fn run(context: &Context, command: AuditCommand) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify { json } = command;
    let database = context.database().await?;
    let verification = database.verify_audit().await?;
    if json {
        output::json(&verification)?;
    } else if verification.is_intact() {
        println!(
            "The audit log is intact: {} rows, every hash and link checks out.",
            verification.rows
        );
        println!(
            "Head hash: {} (record it elsewhere to detect later truncation).",
            verification.head
        );
    } else {
        println!(
            "The audit log has been tampered with ({} problems in {} rows):",
            verification.problems.len(),
            verification.rows
        );
        for problem in &verification.problems {
            println!("  {problem}");
        }
        println!("Restore the database from a backup and investigate who had write access.");
    }
    Ok(if verification.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
