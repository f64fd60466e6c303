//! One sync of one OSV source. OSV's exports publish, beside each ecosystem's `all.zip`, a
//! `modified_id.csv` (`<modified>,<id>` per record, newest first) and every record as
//! `<id>.json`. With a cursor from an earlier sync, only the records modified since are fetched;
//! without one, or when the listing is missing or names too many records, the whole export is.
//! Imports are idempotent (a record replaces the stored one only when its `modified` is newer),
//! so a sync interrupted or run twice leaves the same advisories.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use formulary_core::advisory::RecordFormat;
use formulary_store::{Database, FeedSuccess, ImportOutcome};
use futures_util::StreamExt as _;

use crate::osv_source::{self, LoadedRecords};

/// The audit actor of scheduled syncs.
pub const SYNC_ACTOR: &str = "system:advisory-sync";

/// Largest export accepted (the npm export, the largest, is about 210 MB).
const MAX_EXPORT_BYTES: u64 = 1024 * 1024 * 1024;

/// Largest `modified_id.csv` accepted (PyPI's is about 1 MB; npm's about 10 MB).
const MAX_LISTING_BYTES: u64 = 64 * 1024 * 1024;

/// More changed records than this are fetched as the whole export instead, one by one being
/// slower than one archive.
const MAX_INCREMENTAL_RECORDS: usize = 2000;

/// Records fetched at once in an incremental sync.
const PARALLEL_FETCHES: usize = 8;

/// An HTTP client for OSV sources.
pub fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("formulary/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(Duration::from_secs(60))
        .build()?)
}

/// What one sync did, and the advisories it added or changed (for recalls).
#[derive(Debug)]
pub struct Synced {
    /// For the source's record.
    pub success: FeedSuccess,
    /// The advisories added or updated that concern a component somebody has (downloaded or
    /// reported): the only ones that can call for a recall. (`success.changed` counts them all.)
    pub changed: Vec<formulary_core::advisory::Advisory>,
}

/// Syncs one source (an `all.zip` URL) from `cursor` (the newest `modified` time of its listing
/// seen before, if any), and imports what changed.
pub async fn sync_source(
    database: &Database,
    client: &reqwest::Client,
    source: &str,
    cursor: Option<DateTime<Utc>>,
) -> anyhow::Result<Synced> {
    let started_at = Utc::now();
    let clock = Instant::now();
    let export = url::Url::parse(source)
        .with_context(|| format!("'{}' is not a URL", source.escape_debug()))?;
    if !matches!(export.scheme(), "https" | "http") {
        bail!(
            "advisory sources must be http(s) URLs, not {}",
            export.scheme()
        );
    }
    let base = export
        .join("./")
        .with_context(|| format!("{export} has no folder"))?;
    let listing = fetch_listing(client, &base).await?;
    let newest = listing
        .as_ref()
        .and_then(|rows| rows.first())
        .map(|row| row.0);
    let changed_ids: Option<Vec<String>> = match (&listing, cursor) {
        (Some(rows), Some(cursor)) => {
            // Records modified at the cursor itself are fetched again: another record with the
            // same time may have arrived after the last sync read the listing.
            let since: Vec<String> = rows
                .iter()
                .take_while(|(modified, _)| *modified >= cursor)
                .map(|(_, id)| id.clone())
                .collect();
            (since.len() <= MAX_INCREMENTAL_RECORDS).then_some(since)
        }
        _ => None,
    };
    // Only changed advisories about components somebody has can call for a recall; the rest are
    // counted, not kept, so that a full sync's memory stays bounded.
    let mut tally = Tally {
        held: database.held_components().await?,
        ..Tally::default()
    };
    let mode = match changed_ids {
        Some(ids) => {
            let loaded = fetch_records(client, &base, &ids).await?;
            tally.import(database, source, loaded).await?;
            "incremental"
        }
        None => {
            import_export(database, client, &export, source, &mut tally).await?;
            "full"
        }
    };
    if tally.failures > 0 {
        tracing::warn!(
            %source,
            failures = tally.failures,
            first = %tally.first_failure.as_deref().unwrap_or_default(),
            "some advisory records could not be read and were not imported"
        );
    }
    let changed = tally.changed;
    let changed_advisories = tally.kept;
    let cursor = newest.or(tally.newest);
    Ok(Synced {
        success: FeedSuccess {
            started_at,
            mode,
            changed: i64::try_from(changed).unwrap_or(i64::MAX),
            cursor,
            duration_ms: i64::try_from(clock.elapsed().as_millis()).unwrap_or(i64::MAX),
        },
        changed: changed_advisories,
    })
}

/// Records imported per batch of a full export (one transaction each, as
/// `Database::import_advisories` writes them).
const IMPORT_BATCH: usize = 500;

/// What a sync has imported so far.
#[derive(Debug, Default)]
struct Tally {
    /// Components somebody has (downloaded or reported), as (ecosystem, name).
    held: std::collections::HashSet<(String, String)>,
    /// Records added or updated.
    changed: usize,
    /// The changed advisories about a held component (for recalls).
    kept: Vec<formulary_core::advisory::Advisory>,
    /// The newest `modified` seen.
    newest: Option<DateTime<Utc>>,
    /// Records that could not be read.
    failures: usize,
    /// The first of them, with why.
    first_failure: Option<String>,
}

impl Tally {
    /// Imports one batch and counts what changed.
    async fn import(
        &mut self,
        database: &Database,
        source: &str,
        loaded: crate::osv_source::LoadedRecords,
    ) -> anyhow::Result<()> {
        if self.first_failure.is_none() {
            self.first_failure = loaded
                .failures
                .first()
                .map(|(file, reason)| format!("{file}: {reason}"));
        }
        self.failures += loaded.failures.len();
        let outcomes = database
            .import_advisories(&loaded.imports, source, SYNC_ACTOR, |_| {})
            .await?;
        for (import, outcome) in loaded.imports.into_iter().zip(outcomes) {
            let advisory = import.advisory;
            self.newest = self.newest.max(Some(advisory.modified));
            if outcome == ImportOutcome::Unchanged {
                continue;
            }
            self.changed += 1;
            let held = advisory.components().any(|component| {
                self.held.contains(&(
                    component.ecosystem().as_str().to_owned(),
                    component.name.as_str().to_owned(),
                ))
            });
            if held {
                self.kept.push(advisory);
            }
        }
        Ok(())
    }
}

/// `modified_id.csv`, newest first; `None` when the source does not publish one (404).
async fn fetch_listing(
    client: &reqwest::Client,
    base: &url::Url,
) -> anyhow::Result<Option<Vec<(DateTime<Utc>, String)>>> {
    let url = base.join("modified_id.csv")?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("could not fetch {url}"))?;
    if matches!(
        response.status(),
        reqwest::StatusCode::NOT_FOUND | reqwest::StatusCode::FORBIDDEN
    ) {
        return Ok(None);
    }
    if !response.status().is_success() {
        bail!("{url} answered {}", response.status());
    }
    let body = read_capped(response, MAX_LISTING_BYTES, &url).await?;
    let text = String::from_utf8(body).with_context(|| format!("{url} is not UTF-8 text"))?;
    Ok(Some(parse_listing(&text)))
}

/// Reads `<modified>,<id>` lines, skipping a header and lines that do not parse, newest first.
pub fn parse_listing(text: &str) -> Vec<(DateTime<Utc>, String)> {
    let mut rows: Vec<(DateTime<Utc>, String)> = text
        .lines()
        .filter_map(|line| {
            let (modified, id) = line.trim().split_once(',')?;
            let modified = DateTime::parse_from_rfc3339(modified.trim()).ok()?;
            let id = id.trim();
            let safe = !id.is_empty()
                && id.len() <= 200
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
                && !id.starts_with('.');
            safe.then(|| (modified.with_timezone(&Utc), id.to_owned()))
        })
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    rows
}

async fn fetch_records(
    client: &reqwest::Client,
    base: &url::Url,
    ids: &[String],
) -> anyhow::Result<LoadedRecords> {
    let fetched: Vec<anyhow::Result<(String, Option<Vec<u8>>)>> =
        futures_util::stream::iter(ids.iter().cloned())
            .map(|id| async move {
                let url = base.join(&format!("{id}.json"))?;
                let response = client
                    .get(url.clone())
                    .send()
                    .await
                    .with_context(|| format!("could not fetch {url}"))?;
                if response.status() == reqwest::StatusCode::NOT_FOUND {
                    // Listed but gone (deleted upstream): nothing to import.
                    return Ok((id, None));
                }
                if !response.status().is_success() {
                    bail!("{url} answered {}", response.status());
                }
                let max = formulary_core::advisory::MAX_RECORD_BYTES as u64;
                Ok((id, Some(read_capped(response, max, &url).await?)))
            })
            .buffered(PARALLEL_FETCHES)
            .collect()
            .await;
    let mut loaded = LoadedRecords::default();
    for outcome in fetched {
        let (id, bytes) = outcome?;
        if let Some(bytes) = bytes {
            loaded.accept(&format!("{id}.json"), &bytes, RecordFormat::Json);
        }
    }
    Ok(loaded)
}

/// Downloads the whole export to a temporary file, then reads and imports it
/// [`IMPORT_BATCH`] records at a time (the reader a batch or two ahead of the writer), so that
/// memory stays bounded whatever the export's size.
async fn import_export(
    database: &Database,
    client: &reqwest::Client,
    url: &url::Url,
    source: &str,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let response = client
        .get(url.clone())
        .send()
        .await
        .with_context(|| format!("could not fetch {url}; check the network and the URL"))?;
    if !response.status().is_success() {
        bail!(
            "{url} answered {}; check the URL in `advisory_sources`",
            response.status()
        );
    }
    let mut file = tempfile::Builder::new().suffix(".zip").tempfile()?;
    let mut received: u64 = 0;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| {
            format!("the download of {url} was interrupted after {received} bytes")
        })?;
        received += chunk.len() as u64;
        if received > MAX_EXPORT_BYTES {
            bail!("{url} is larger than 1 GiB; refusing to download it");
        }
        file.write_all(&chunk)?;
    }
    file.flush()?;
    let (sender, mut receiver) = tokio::sync::mpsc::channel(2);
    let reader = tokio::task::spawn_blocking(move || {
        // The temporary file lives as long as it is read.
        osv_source::for_each_zip_batch(file.path(), IMPORT_BATCH, |batch| {
            sender.blocking_send(batch).is_ok()
        })
    });
    while let Some(batch) = receiver.recv().await {
        tally.import(database, source, batch).await?;
    }
    reader.await??;
    Ok(())
}

async fn read_capped(
    response: reqwest::Response,
    max: u64,
    url: &url::Url,
) -> anyhow::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.with_context(|| format!("the download of {url} was interrupted"))?;
        if (bytes.len() + chunk.len()) as u64 > max {
            bail!("{url} is larger than {max} bytes; refusing it");
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::parse_listing;

    #[test]
    fn listings_are_read_newest_first_and_hostile_ids_are_dropped() {
        let rows = parse_listing(
            "modified,id\n2024-01-02T00:00:00Z,PYSEC-2024-2\n2024-03-01T10:00:00.5Z,GHSA-aaaa-bbbb-cccc\nnot a line\n2023-12-31T00:00:00Z,../../etc/passwd\n2024-01-01T00:00:00Z,MAL-2024-1\r\n",
        );
        let ids: Vec<&str> = rows.iter().map(|(_, id)| id.as_str()).collect();
        assert_eq!(ids, ["GHSA-aaaa-bbbb-cccc", "PYSEC-2024-2", "MAL-2024-1"]);
    }
}
