//! `formulary cache verify`: re-hashes every blob and quarantines any that no longer matches its
//! address (disk damage, or an edit around the application), so it is never served again.

use std::process::ExitCode;

use clap::Subcommand;

use super::{output, Context};

/// Cache commands.
#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Re-hash every cached file; move any that no longer matches its digest to quarantine/ in
    /// the blob store and forget it, so the gateway fetches a good copy next time.
    ///
    /// Exit status: 0 when every blob matches, 1 when any was quarantined.
    Verify,
}

pub(crate) async fn run(context: &Context, command: CacheCommand) -> anyhow::Result<ExitCode> {
    let CacheCommand::Verify = command;
    let database = context.database().await?;
    let blobs = context.blobs()?;
    let listed = blobs.list().await?;
    let total_bytes: u64 = listed.iter().map(|blob| blob.size).sum();
    let bar = output::progress(total_bytes, "verifying");
    let mut quarantined = Vec::new();
    for blob in &listed {
        match blobs.rehash(&blob.sha256).await {
            Ok(None) => {}
            Ok(Some(actual)) => {
                let moved_to = blobs.quarantine(&blob.sha256).await?;
                let forgotten = database.forget_cached_blob(&blob.sha256).await?;
                quarantined.push(format!(
                    "sha256:{} holds content with sha256:{actual}; moved to {moved_to} ({forgotten} cached file(s) forgotten)",
                    blob.sha256
                ));
            }
            Err(formulary_store::StoreError::NotFound(_)) => {}
            Err(error) => return Err(error.into()),
        }
        bar.inc(blob.size);
    }
    bar.finish_and_clear();
    println!("Verified {} blobs ({} bytes).", listed.len(), total_bytes);
    if quarantined.is_empty() {
        println!("Every blob matches its digest.");
        return Ok(ExitCode::SUCCESS);
    }
    for line in &quarantined {
        println!("quarantined {line}");
    }
    println!("{} blob(s) did not match and will not be served again; the gateway fetches a good copy from the upstream when one is next asked for. Check the disk holding the blob store.", quarantined.len());
    Ok(ExitCode::from(1))
}
