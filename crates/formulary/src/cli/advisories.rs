//! `formulary advisories import|sync`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Subcommand;
use formulary_store::{Database, ImportOutcome};
use futures_util::StreamExt;
use std::io::Write;

use super::{operator, output, Context};
use crate::osv_source;

/// Advisory commands.
#[derive(Debug, Subcommand)]
pub(crate) enum AdvisoriesCommand {
    /// Import OSV records from a .json/.yaml file, a folder of them, or an OSV all.zip export.
    Import {
        /// The file, folder or zip.
        path: PathBuf,
    },
    /// Fetch the configured OSV exports (or --url) and import what changed. Safe to run again.
    Sync {
        /// An all.zip URL to fetch instead of the configured `advisory_sources`. Repeatable.
        #[arg(long)]
        url: Vec<String>,
    },
    /// Show each OSV source the server syncs: when it last synced, what changed, any error.
    Feeds,
    /// Set what an organisation's views do when the advisory feed is stale.
    StalePolicy {
        /// The organisation (NATIONAL sets the rule every organisation without its own follows).
        organisation: String,
        /// Hours without a complete sync after which the feed is stale.
        #[arg(long, default_value_t = 24)]
        stale_after_hours: u32,
        /// `serve` (keep serving, with a note on every decision) or `hold` (stop admitting
        /// versions published after the feed went stale).
        #[arg(long)]
        on_stale: String,
    },
}

pub(crate) async fn run(context: &Context, command: AdvisoriesCommand) -> anyhow::Result<ExitCode> {
    let database = context.database().await?;
    match command {
        AdvisoriesCommand::Import { path } => {
            import(&database, &path, &path.display().to_string()).await
        }
        AdvisoriesCommand::Feeds => feeds(&database).await,
        AdvisoriesCommand::StalePolicy {
            organisation,
            stale_after_hours,
            on_stale,
        } => {
            let code: formulary_core::OrgCode = organisation.parse()?;
            let policy = formulary_core::policy::FeedPolicy {
                stale_after_hours,
                on_stale: on_stale.parse()?,
            };
            database.set_feed_policy(&code, policy, &operator()).await?;
            println!(
                "{code}: the advisory feed counts as stale after {stale_after_hours} hours without a complete sync; then {}.",
                match policy.on_stale {
                    formulary_core::policy::OnStaleFeed::Serve =>
                        "versions are still served, with a note on every decision",
                    formulary_core::policy::OnStaleFeed::Hold =>
                        "versions published after it went stale are held back until it syncs again",
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        AdvisoriesCommand::Sync { url } => {
            let sources = if url.is_empty() {
                context.settings.advisory_sources.clone()
            } else {
                url
            };
            if sources.is_empty() {
                anyhow::bail!("no advisory sources: set `advisory_sources` in the configuration or pass --url");
            }
            let mut worst = ExitCode::SUCCESS;
            for source in sources {
                let downloaded = download(&source).await?;
                let outcome = import(&database, downloaded.path(), &source).await?;
                if outcome != ExitCode::SUCCESS {
                    worst = outcome;
                }
            }
            Ok(worst)
        }
    }
}

async fn feeds(database: &Database) -> anyhow::Result<ExitCode> {
    let feeds = database.advisory_feeds().await?;
    if feeds.is_empty() {
        println!("No advisory source has been synced by a server yet. `formulary serve` syncs `advisory_sources` every `advisory_sync_interval_seconds`.");
        return Ok(ExitCode::SUCCESS);
    }
    let when = |time: Option<chrono::DateTime<chrono::Utc>>| {
        time.map_or_else(
            || "never".to_owned(),
            |time| time.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        )
    };
    let rows: Vec<Vec<String>> = feeds
        .iter()
        .map(|feed| {
            vec![
                feed.source.clone(),
                if feed.active { "yes" } else { "no" }.to_owned(),
                when(feed.last_success_at),
                feed.last_mode.clone().unwrap_or_default(),
                feed.last_changed.to_string(),
                feed.total_changed.to_string(),
                feed.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    output::table(
        &[
            "source",
            "configured",
            "last success",
            "mode",
            "changed",
            "total",
            "last error",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}

async fn import(database: &Database, path: &Path, source: &str) -> anyhow::Result<ExitCode> {
    let reading = output::progress(0, "reading records");
    reading.set_length(1);
    let loaded = tokio::task::spawn_blocking({
        let path = path.to_path_buf();
        move || osv_source::load(&path)
    })
    .await??;
    reading.finish_and_clear();
    let bar = output::progress(loaded.imports.len() as u64, "importing");
    let outcomes = database
        .import_advisories(&loaded.imports, source, &operator(), |done| {
            bar.set_position(done as u64)
        })
        .await?;
    bar.finish_and_clear();
    let count = |wanted: ImportOutcome| {
        outcomes
            .iter()
            .filter(|outcome| **outcome == wanted)
            .count()
    };
    println!(
        "Imported {} advisories from {source}: {} new, {} updated, {} unchanged.",
        outcomes.len(),
        count(ImportOutcome::Inserted),
        count(ImportOutcome::Updated),
        count(ImportOutcome::Unchanged)
    );
    if loaded.other_ecosystems > 0 {
        println!(
            "Skipped {} records about ecosystems Formulary does not serve.",
            loaded.other_ecosystems
        );
    }
    if !loaded.warnings.is_empty() {
        println!(
            "{} parts of records could not be evaluated and were left out:",
            loaded.warnings.len()
        );
        for warning in loaded.warnings.iter().take(20) {
            println!("  {warning}");
        }
    }
    if !loaded.failures.is_empty() {
        println!(
            "{} records could not be read and were not imported:",
            loaded.failures.len()
        );
        for (file, reason) in &loaded.failures {
            println!("  {file}: {reason}");
        }
        println!(
            "The other records were imported. Fix or remove the files above and import again."
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Largest export accepted (the npm export, the largest, is about 210 MB).
const MAX_DOWNLOAD_BYTES: u64 = 1024 * 1024 * 1024;

async fn download(url: &str) -> anyhow::Result<tempfile::NamedTempFile> {
    let parsed =
        url::Url::parse(url).with_context(|| format!("'{}' is not a URL", url.escape_debug()))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        anyhow::bail!(
            "advisory sources must be http(s) URLs, not {}",
            parsed.scheme()
        );
    }
    let client = reqwest::Client::builder()
        .user_agent(concat!("formulary/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(60))
        .build()?;
    let response = client
        .get(parsed.clone())
        .send()
        .await
        .with_context(|| format!("could not fetch {parsed}; check the network and the URL"))?;
    let status = response.status();
    if !status.is_success() {
        anyhow::bail!("{parsed} answered {status}; check the URL in `advisory_sources`");
    }
    let bar = output::progress(response.content_length().unwrap_or(0), "downloading");
    let mut file = tempfile::Builder::new().suffix(".zip").tempfile()?;
    let mut received: u64 = 0;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("the download of {parsed} was interrupted after {received} bytes; run the sync again"))?;
        received += chunk.len() as u64;
        if received > MAX_DOWNLOAD_BYTES {
            anyhow::bail!("{parsed} is larger than 1 GiB; refusing to download it");
        }
        file.write_all(&chunk)?;
        bar.set_position(received);
    }
    bar.finish_and_clear();
    file.flush()?;
    Ok(file)
}
