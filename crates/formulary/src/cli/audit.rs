//! `formulary audit verify`: the audit chain, its signed checkpoints, and the policy records
//! bound to it; `formulary audit acknowledge-restore`: the key holder's signed word that the
//! database was restored from a backup.

use std::process::ExitCode;

use clap::Subcommand;
use serde::Serialize;

use super::{output, Context};

/// Audit commands.
#[derive(Debug, Subcommand)]
pub(crate) enum AuditCommand {
    /// Check that no audit row was edited or deleted, that the chain still matches every signed
    /// checkpoint, and that entries and settings are as the audit trail records them. Exits 1
    /// when anything was changed around the application.
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// After restoring the database from a backup: sign, with the audit key, that the
    /// checkpoints the restored chain no longer matches are set aside, and record why in the
    /// audit log. Refused when the chain itself is broken or nothing needs acknowledging.
    AcknowledgeRestore {
        /// Which backup was restored and why (kept in the checkpoint file and the audit log).
        #[arg(long)]
        reason: String,
    },
}

/// Everything `audit verify` found.
#[derive(Debug, Serialize)]
struct Findings {
    chain: formulary_store::AuditVerification,
    checkpoints: formulary_store::CheckpointReport,
    policy_records: Vec<String>,
}

impl Findings {
    fn is_intact(&self) -> bool {
        self.chain.is_intact()
            && self.checkpoints.problems.is_empty()
            && self.policy_records.is_empty()
    }
}

/// Checks the chain, the checkpoints and the policy records; shared with `serve`'s start.
pub(crate) async fn check(
    context: &Context,
    database: &formulary_store::Database,
) -> anyhow::Result<(
    formulary_store::AuditVerification,
    formulary_store::CheckpointReport,
    Vec<String>,
)> {
    let chain = database.verify_audit().await?;
    let log = context.checkpoint_log()?;
    let hashes = database.audit_hashes_at(&log.checkpointed_rows()?).await?;
    let checkpoints = log.check(&hashes)?;
    let policy_records = database.policy_integrity().await?.problems;
    Ok((chain, checkpoints, policy_records))
}

pub(crate) async fn run(context: &Context, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { json } => verify(context, json).await,
        AuditCommand::AcknowledgeRestore { reason } => acknowledge_restore(context, &reason).await,
    }
}

async fn acknowledge_restore(context: &Context, reason: &str) -> anyhow::Result<ExitCode> {
    let reason = reason.trim();
    anyhow::ensure!(
        !reason.is_empty(),
        "say which backup was restored and why (--reason); it is kept with the signed acknowledgement"
    );
    let database = context.database().await?;
    let chain = database.verify_audit().await?;
    if !chain.is_intact() {
        println!(
            "Not acknowledged: the audit chain itself is broken ({} problems), so this is not a clean restore of a backup. Run `formulary audit verify` to see them.",
            chain.problems.len()
        );
        return Ok(ExitCode::from(1));
    }
    let log = context.checkpoint_log()?;
    let (head_seq, head) = database.audit_head().await?;
    let mut positions = log.checkpointed_rows()?;
    positions.push(head_seq);
    let hashes = database.audit_hashes_at(&positions).await?;
    let Some(marker) = log.acknowledge_restore(&hashes, head_seq, &head, reason)? else {
        println!("Nothing to acknowledge: the audit chain matches every signed checkpoint.");
        return Ok(ExitCode::SUCCESS);
    };
    database
        .record_action(
            &super::operator(),
            "audit.restore-acknowledged",
            "audit",
            &serde_json::json!({
                "reason": reason,
                "restored_head": marker.seq,
                "kept_through": marker.kept_through,
                "superseded_through": marker.superseded_through,
            }),
        )
        .await?;
    println!(
        "Restore acknowledged: the checkpoints of rows {}–{} taken before the restore are set aside; the chain up to row {} and from row {} on stays guarded.",
        marker.kept_through + 1,
        marker.superseded_through,
        marker.kept_through,
        marker.seq
    );
    println!("`formulary audit verify` reports this restore from now on; run it on every replica's checkpoint file (each replica keeps its own).");
    Ok(ExitCode::SUCCESS)
}

async fn verify(context: &Context, json: bool) -> anyhow::Result<ExitCode> {
    let database = context.database().await?;
    let (chain, checkpoints, policy_records) = check(context, &database).await?;
    let findings = Findings {
        chain,
        checkpoints,
        policy_records,
    };
    if json {
        output::json(&findings)?;
    } else if findings.is_intact() {
        println!(
            "The audit log is intact: {} rows, every hash and link checks out, and it matches all {} signed checkpoints.",
            findings.chain.rows, findings.checkpoints.checkpoints
        );
        println!("Entries and settings are exactly as the audit trail records them.");
        for restore in &findings.checkpoints.restores {
            println!("Note: {restore}.");
        }
        println!("Head hash: {}.", findings.chain.head);
    } else {
        let problems: Vec<&String> = findings
            .chain
            .problems
            .iter()
            .chain(&findings.checkpoints.problems)
            .chain(&findings.policy_records)
            .collect();
        println!(
            "The records have been changed around the application ({} problems; {} audit rows, {} checkpoints):",
            problems.len(),
            findings.chain.rows,
            findings.checkpoints.checkpoints
        );
        for problem in problems {
            println!("  {problem}");
        }
        println!("The server applies entries and settings as the audit trail records them. Restore the database from a backup and investigate who had write access.");
    }
    Ok(if findings.is_intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// At start: checks the chain, the checkpoints and the policy records, and says loudly what was
/// changed around the application (the server still starts, applying the audited records).
pub(crate) async fn check_at_start(context: &Context, database: &formulary_store::Database) {
    match check(context, database).await {
        Ok((chain, checkpoints, policy_records)) => {
            let problems: Vec<&String> = chain
                .problems
                .iter()
                .chain(&checkpoints.problems)
                .chain(&policy_records)
                .collect();
            if problems.is_empty() {
                tracing::info!(
                    rows = chain.rows,
                    checkpoints = checkpoints.checkpoints,
                    "audit trail intact"
                );
            }
            for problem in problems {
                tracing::error!(problem = %problem, "the records were changed around the application; run `formulary audit verify`");
            }
        }
        Err(error) => tracing::warn!("could not check the audit trail at start: {error:#}"),
    }
}

/// Records a signed checkpoint of the audit head every `interval` while it moves.
pub(crate) fn follow_checkpoints(
    context: &Context,
    database: formulary_store::Database,
    interval: std::time::Duration,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let log = context.checkpoint_log()?;
    Ok(tokio::spawn(async move {
        loop {
            if database.is_offline() {
                tokio::time::sleep(interval).await;
                continue;
            }
            let outcome = async {
                let (seq, head) = database.audit_head().await?;
                log.record(seq, &head)?;
                anyhow::Ok(())
            }
            .await;
            if let Err(error) = outcome {
                tracing::warn!("could not record an audit checkpoint: {error:#}");
            }
            tokio::time::sleep(interval).await;
        }
    }))
}
