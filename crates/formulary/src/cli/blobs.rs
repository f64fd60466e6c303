//! `formulary blobs`: the blob store itself. `migrate` copies every blob from one store to
//! another (a local folder and an S3-compatible bucket, either way), checking each digest on the
//! way and skipping what the destination already holds, so that a migration stopped at any
//! point is finished by running it again. `list` and `stat` show what a store holds.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::bail;
use clap::{Args, Subcommand};
use formulary_store::{BlobRef, BlobStore, StoreError};
use futures_util::StreamExt;

use super::{output, Context};

/// Blob store commands.
#[derive(Debug, Subcommand)]
pub(crate) enum BlobsCommand {
    /// Copy every blob from one store to another (a folder or s3://BUCKET/PREFIX, reached with
    /// the configured s3_endpoint, s3_region and s3_allow_http), checking each digest. Blobs the
    /// destination already holds are skipped, so an interrupted migration resumes where it
    /// stopped. Then set blob_store to the destination and restart the servers.
    ///
    /// Exit status: 0 when the destination holds every blob of the source, 1 otherwise.
    Migrate(MigrateArgs),
    /// List the blobs in a store (digest and size).
    List(StoreArgs),
    /// Show whether a store holds a blob, and its size.
    Stat {
        /// The blob's SHA-256 (hex, optionally prefixed `sha256:`).
        sha256: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// `blobs migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// The store to copy to: a folder or s3://BUCKET/PREFIX.
    #[arg(long, value_name = "STORE")]
    to: String,
    /// The store to copy from [default: the configured blob_store].
    #[arg(long, value_name = "STORE")]
    from: Option<String>,
    /// Blobs copied at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    jobs: u16,
}

/// Which store a command reads.
#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// A folder or s3://BUCKET/PREFIX [default: the configured blob_store].
    #[arg(long, value_name = "STORE")]
    store: Option<String>,
}

pub(crate) async fn run(context: &Context, command: BlobsCommand) -> anyhow::Result<ExitCode> {
    match command {
        BlobsCommand::Migrate(args) => migrate(context, args).await,
        BlobsCommand::List(args) => {
            let blobs = open(context, args.store.as_deref())?;
            let mut listed = blobs.list().await?;
            listed.sort_by(|a, b| a.sha256.cmp(&b.sha256));
            for blob in &listed {
                println!("sha256:{} {}", blob.sha256, blob.size);
            }
            let bytes: u64 = listed.iter().map(|blob| blob.size).sum();
            eprintln!(
                "{} blob(s), {bytes} bytes, in {}",
                listed.len(),
                blobs.label()
            );
            Ok(ExitCode::SUCCESS)
        }
        BlobsCommand::Stat { sha256, store } => {
            let blobs = open(context, store.store.as_deref())?;
            let digest = sha256.strip_prefix("sha256:").unwrap_or(&sha256);
            match blobs.stat(digest).await {
                Ok(Some(blob)) => {
                    println!(
                        "sha256:{} {} bytes in {}",
                        blob.sha256,
                        blob.size,
                        blobs.label()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Ok(None) | Err(StoreError::NotFound(_)) => {
                    println!("{} does not hold sha256:{digest}", blobs.label());
                    Ok(ExitCode::from(1))
                }
                Err(error) => Err(error.into()),
            }
        }
    }
}

/// Opens the named store, or the configured one.
fn open(context: &Context, store: Option<&str>) -> anyhow::Result<BlobStore> {
    match store {
        Some(text) => Ok(BlobStore::open(&context.settings.blob_location_of(text)?)?),
        None => context.blobs(),
    }
}

/// Writes the migration to the audit log; a store that cannot be reached is reported, not fatal
/// (the blobs are copied and checked either way).
async fn record_migration(context: &Context, details: &serde_json::Value) {
    let subject = details["to"].as_str().unwrap_or("blob store").to_owned();
    let recorded = match context.database().await {
        Ok(database) => database
            .record_action(&super::operator(), "blobs.migrate", &subject, details)
            .await
            .map_err(anyhow::Error::from),
        Err(error) => Err(error),
    };
    if let Err(error) = recorded {
        eprintln!("warning: the copy was not written to the audit log ({error:#}); the blobs were copied and checked all the same");
    }
}

/// What happened to one blob.
enum Copied {
    Done(u64),
    /// Gone from the source since it was listed.
    Vanished,
    Failed(String),
}

async fn migrate(context: &Context, args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let source = open(context, args.from.as_deref())?;
    let destination = open(context, Some(&args.to))?;
    if source.label() == destination.label() {
        bail!(
            "the source and the destination are the same store ({}); give --to another folder or bucket",
            source.label()
        );
    }
    let started = Instant::now();
    // Uploads an earlier, killed run left half-done (older than an hour, so not another run's).
    if let Err(error) = destination.sweep_incoming(chrono::Duration::hours(1)).await {
        tracing::warn!(%error, "could not sweep unfinished writes in the destination");
    }
    let listed = source.list().await?;
    let present: HashMap<String, u64> = destination
        .list()
        .await?
        .into_iter()
        .map(|blob| (blob.sha256, blob.size))
        .collect();
    let (skipped, mut missing): (Vec<BlobRef>, Vec<BlobRef>) = listed
        .iter()
        .cloned()
        .partition(|blob| present.get(&blob.sha256) == Some(&blob.size));
    missing.sort_by(|a, b| a.sha256.cmp(&b.sha256));
    let to_copy: u64 = missing.iter().map(|blob| blob.size).sum();
    eprintln!(
        "{} blob(s) in {}; {} already in {}; copying {} ({to_copy} bytes)",
        listed.len(),
        source.label(),
        skipped.len(),
        destination.label(),
        missing.len()
    );
    let bar = output::progress(to_copy, "copying");
    let outcomes: Vec<(BlobRef, Copied)> = futures_util::stream::iter(missing)
        .map(|blob| {
            let (source, destination, bar) = (&source, &destination, &bar);
            async move {
                let outcome = match destination.copy_from(source, &blob.sha256).await {
                    Ok(stored) => Copied::Done(stored.size),
                    Err(StoreError::NotFound(_)) => Copied::Vanished,
                    Err(StoreError::DigestMismatch { actual, .. }) => Copied::Failed(format!(
                        "the source holds content with sha256:{actual} under this address; nothing was copied. Run `formulary cache verify` against the source to quarantine it"
                    )),
                    Err(error) => Copied::Failed(error.to_string()),
                };
                bar.inc(blob.size);
                (blob, outcome)
            }
        })
        .buffer_unordered(usize::from(args.jobs))
        .collect()
        .await;
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let (mut copied, mut copied_bytes, mut failed) = (0usize, 0u64, Vec::new());
    let mut vanished = std::collections::HashSet::new();
    for (blob, outcome) in outcomes {
        match outcome {
            Copied::Done(size) => {
                copied += 1;
                copied_bytes += size;
            }
            Copied::Vanished => {
                vanished.insert(blob.sha256);
            }
            Copied::Failed(why) => failed.push(format!("sha256:{}: {why}", blob.sha256)),
        }
    }
    let seconds = elapsed.as_secs_f64().max(0.001);
    println!(
        "Copied {copied} blob(s) ({copied_bytes} bytes) from {} to {} in {seconds:.1} s ({:.1} MB/s, {:.0} blobs/s); {} already there; {} gone from the source meanwhile; {} failed.",
        source.label(),
        destination.label(),
        copied_bytes as f64 / 1_000_000.0 / seconds,
        copied as f64 / seconds,
        skipped.len(),
        vanished.len(),
        failed.len()
    );
    for line in &failed {
        println!("failed {line}");
    }
    // The destination is listed again: every blob of the source must now be there, whole.
    let now_present: HashMap<String, u64> = destination
        .list()
        .await?
        .into_iter()
        .map(|blob| (blob.sha256, blob.size))
        .collect();
    let absent = listed
        .iter()
        .filter(|blob| !vanished.contains(&blob.sha256))
        .filter(|blob| now_present.get(&blob.sha256) != Some(&blob.size))
        .count();
    record_migration(
        context,
        &serde_json::json!({
            "from": source.label(), "to": destination.label(), "copied": copied,
            "copied_bytes": copied_bytes, "already_there": skipped.len(),
            "failed": failed.len(), "absent_after": absent,
        }),
    )
    .await;
    if absent == 0 && failed.is_empty() {
        println!(
            "{} holds every blob of {} ({} in all), each checked against its digest as it was written.",
            destination.label(),
            source.label(),
            listed.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "{absent} blob(s) of the source are not in {}; run the same command again to copy them (blobs already copied are skipped).",
            destination.label()
        );
        Ok(ExitCode::from(1))
    }
}
