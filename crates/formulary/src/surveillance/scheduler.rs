//! The scheduled advisory sync of `formulary serve`. Every replica runs this loop; a lease in the
//! database lets exactly one of them sync at a time. The lease is taken only once it has expired
//! and, after a run, is left to expire when the next run is due, so across any number of
//! replicas the sources are synced once per interval; a replica that dies mid-run holds it at
//! most `RUN_LEASE` longer. Every replica also reads the sources' states on each tick, for
//! `/readyz`, and for the policy's stale-feed rule.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use formulary_server::surveillance::FeedWatch;
use formulary_server::{SnapshotHolder, ADVISORY_SYNC_RUNNING};
use formulary_store::Database;

use super::sync;

/// The lease's name.
pub const LEASE: &str = "advisory-sync";

/// How long a running sync holds the lease before it must extend it.
const RUN_LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// How often a running sync extends its lease.
const RENEW_EVERY: Duration = Duration::from_secs(60);

/// What the loop needs.
#[derive(Debug, Clone)]
pub struct Scheduler {
    /// The store.
    pub database: Database,
    /// The OSV sources (`all.zip` URLs).
    pub sources: Vec<String>,
    /// Time between runs.
    pub interval: Duration,
    /// Where the sources' states are published for `/readyz`.
    pub feeds: Arc<FeedWatch>,
    /// Whom recalls are announced to (webhooks) and where links point.
    pub announcer: super::recalls::Announcer,
    /// The policy snapshot, told of the feed's freshness and refreshed after changes.
    pub snapshot: Arc<SnapshotHolder>,
}

impl Scheduler {
    /// Starts the loop on the runtime.
    pub fn start(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move { self.run().await })
    }

    async fn run(self) {
        let holder = format!(
            "{}-{}",
            std::process::id(),
            &formulary_store::random_secret()[..12]
        );
        self.feeds.set_interval(Some(self.interval));
        if let Err(error) = self.database.configure_feeds(&self.sources).await {
            tracing::warn!(%error, "could not record the advisory sources; retrying at the next tick");
        }
        let client = match sync::client() {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "cannot build an HTTP client: the scheduled advisory sync is off");
                return;
            }
        };
        let tick = (self.interval / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
        let mut configured = false;
        loop {
            if !configured {
                configured = self.database.configure_feeds(&self.sources).await.is_ok();
            }
            let now = Utc::now();
            match self
                .database
                .try_take_lease(LEASE, &holder, now, now + RUN_LEASE)
                .await
            {
                Ok(true) => self.sync_all(&client, &holder, now).await,
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "could not take the advisory sync lease; retrying")
                }
            }
            self.publish().await;
            tokio::time::sleep(tick).await;
        }
    }

    /// One run over every source, holding the lease.
    async fn sync_all(
        &self,
        client: &reqwest::Client,
        holder: &str,
        started: chrono::DateTime<Utc>,
    ) {
        // While this run imports, replicas rebuild their policy snapshots once at its end rather
        // than after every imported batch (a dead replica's hold lapses with RUN_LEASE).
        if let Err(error) = self
            .database
            .try_take_lease(ADVISORY_SYNC_RUNNING, holder, started, started + RUN_LEASE)
            .await
        {
            tracing::warn!(%error, "could not mark the advisory sync as running; snapshots are rebuilt as it imports");
        }
        let renewer = {
            let (database, holder) = (self.database.clone(), holder.to_owned());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    let until = Utc::now() + RUN_LEASE;
                    for name in [LEASE, ADVISORY_SYNC_RUNNING] {
                        if let Err(error) = database.extend_lease(name, &holder, until).await {
                            tracing::warn!(%error, lease = name, "could not extend the advisory sync lease");
                        }
                    }
                }
            })
        };
        let feeds = self.database.advisory_feeds().await.unwrap_or_default();
        let mut changed = Vec::new();
        let mut any_changed = false;
        for source in &self.sources {
            let cursor = feeds
                .iter()
                .find(|feed| &feed.source == source)
                .and_then(|feed| feed.cursor);
            let attempt = Utc::now();
            match sync::sync_source(&self.database, client, source, cursor).await {
                Ok(super::sync::Synced {
                    success,
                    changed: advisories,
                }) => {
                    changed.extend(advisories);
                    any_changed |= success.changed > 0;
                    tracing::info!(
                        %source,
                        mode = success.mode,
                        changed = success.changed,
                        took_ms = success.duration_ms,
                        "advisory source synced"
                    );
                    if let Err(error) = self.database.feed_succeeded(source, &success).await {
                        tracing::warn!(%error, %source, "could not record the advisory sync");
                    }
                }
                Err(error) => {
                    let reason = format!("{error:#}");
                    tracing::warn!(%source, error = %reason, "advisory source could not be synced; the advisories already stored stay in force");
                    if let Err(error) = self.database.feed_failed(source, attempt, &reason).await {
                        tracing::warn!(%error, %source, "could not record the failed advisory sync");
                    }
                }
            }
        }
        renewer.abort();
        // Nobody starts the next run before it is due (a run longer than the interval is
        // followed at once by the next).
        let due = started
            + chrono::Duration::from_std(self.interval).unwrap_or(chrono::Duration::minutes(10));
        if let Err(error) = self.database.extend_lease(LEASE, holder, due).await {
            tracing::warn!(%error, "could not set when the next advisory sync is due");
        }
        if let Err(error) = self
            .database
            .extend_lease(ADVISORY_SYNC_RUNNING, holder, Utc::now())
            .await
        {
            tracing::warn!(%error, "could not mark the advisory sync as finished; snapshots follow within 5 minutes");
        }
        if any_changed {
            // This replica applies the change at once (its rebuilds waited while the sync ran);
            // the others within their follow interval.
            if let Err(error) = self.snapshot.refresh(&self.database).await {
                tracing::warn!(%error, "could not refresh the policy snapshot after the advisory sync");
            }
        }
        // Then the people who already have what the changed advisories now deny are told; the
        // advisories of open recalls are looked at again, so that downloads the ledger wrote
        // late and environments reported since join their recall.
        let snapshot = self.snapshot.current();
        let mut advisories = changed;
        match self.database.recalls().await {
            Ok(recalls) => {
                for recall in recalls.iter().filter(|recall| recall.closed_at.is_none()) {
                    let (Some(id), Ok(component)) = (
                        &recall.advisory_id,
                        recall.component.parse::<formulary_core::Component>(),
                    ) else {
                        continue;
                    };
                    if advisories.iter().any(|advisory| &advisory.id == id) {
                        continue;
                    }
                    if let Some(advisory) = snapshot
                        .advisories_for(&component)
                        .iter()
                        .find(|advisory| &advisory.id == id)
                    {
                        advisories.push(formulary_core::advisory::Advisory::clone(advisory));
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "could not read the open recalls"),
        }
        if !advisories.is_empty() {
            if let Err(error) = super::recalls::after_advisories(
                &self.database,
                &snapshot,
                &advisories,
                &self.announcer,
            )
            .await
            {
                tracing::warn!(error = %format!("{error:#}"), "could not open the recalls the advisory sync calls for; they are looked at again at the next sync");
            }
        }
    }

    /// Reads the sources' states and tells `/readyz` and the policy snapshot. (The recall job,
    /// [`super::prohibitions`], marks the people who moved off recalled versions.)
    async fn publish(&self) {
        match self.database.advisory_feeds().await {
            Ok(feeds) => {
                self.snapshot
                    .set_advisory_feed(formulary_store::feed_of(&feeds));
                self.feeds.update(feeds, Utc::now());
            }
            Err(error) => tracing::debug!(%error, "could not read the advisory feeds' states"),
        }
    }
}
