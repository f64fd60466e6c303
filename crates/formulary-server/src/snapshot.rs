use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use formulary_core::policy::PolicySnapshot;
use formulary_store::{Database, StoreError};

/// The longest pause between attempts to re-establish the change listener.
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(5);

/// Aborts a spawned task when dropped (the listener dies with its follower).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How changes made elsewhere reach this replica, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeListening {
    /// The listener has not started (yet): changes arrive by polling.
    NotStarted = 0,
    /// The database has no `LISTEN/NOTIFY` (SQLite: one process writes): polling only.
    NotAvailable = 1,
    /// Listening: changes arrive within milliseconds.
    Listening = 2,
    /// The listening connection was lost and is being re-established: polling meanwhile.
    Reconnecting = 3,
}

/// The lease a scheduled advisory sync holds while it runs (beside the lease that schedules
/// it). While it is held and nothing but advisory imports changed, replicas leave their snapshot
/// as it is instead of rebuilding it (all advisories read again) for every imported batch; the
/// syncing replica releases it and rebuilds once at the end, the others at their next check.
pub const ADVISORY_SYNC_RUNNING: &str = "advisory-sync-running";

/// The audit action of advisory imports.
const ADVISORY_IMPORT_ACTION: &str = "advisories.import";

/// A dated snapshot's key: the change counter it was built at and the moment it shows.
type DatedKey = (i64, chrono::DateTime<Utc>);

/// The policy snapshot in force, swapped whole when the records change. Readers take a cheap
/// `Arc` clone and never wait for a rebuild.
#[derive(Debug)]
pub struct SnapshotHolder {
    current: RwLock<(i64, Arc<PolicySnapshot>)>,
    /// Whether changes arrive by `LISTEN/NOTIFY` now (see [`ChangeListening`]).
    listening: std::sync::atomic::AtomicU8,
    /// Snapshots of past moments (dated views), by (change counter, moment); a few are kept.
    dated: std::sync::Mutex<Vec<(DatedKey, Arc<PolicySnapshot>)>>,
}

impl SnapshotHolder {
    /// Loads the snapshot as it stands now.
    pub async fn load(database: &Database) -> Result<SnapshotHolder, StoreError> {
        let counter = database.change_counter().await?;
        let snapshot = database.policy_snapshot(Utc::now()).await?;
        Ok(SnapshotHolder {
            current: RwLock::new((counter, Arc::new(snapshot))),
            listening: std::sync::atomic::AtomicU8::new(ChangeListening::NotStarted as u8),
            dated: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A holder of a snapshot built elsewhere (the local copy's, on a start with the database
    /// down), at change counter `counter`.
    pub fn from_snapshot(counter: i64, snapshot: PolicySnapshot) -> SnapshotHolder {
        SnapshotHolder {
            current: RwLock::new((counter, Arc::new(snapshot))),
            listening: std::sync::atomic::AtomicU8::new(ChangeListening::NotStarted as u8),
            dated: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The snapshot in force with its generation (the change counter it was built at).
    pub fn current_with_generation(&self) -> (i64, Arc<PolicySnapshot>) {
        let guard = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (guard.0, Arc::clone(&guard.1))
    }

    /// The snapshot in force.
    pub fn current(&self) -> Arc<PolicySnapshot> {
        let guard = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(&guard.1)
    }

    /// The snapshot as things stood at `at` (a dated view), built once and kept while nothing
    /// changes.
    pub async fn at(
        &self,
        database: &Database,
        at: chrono::DateTime<Utc>,
    ) -> Result<Arc<PolicySnapshot>, StoreError> {
        let counter = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
        let key = (counter, at);
        if let Some(found) = self
            .dated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(stored, _)| *stored == key)
        {
            return Ok(Arc::clone(&found.1));
        }
        let snapshot = Arc::new(database.policy_snapshot(at).await?);
        let mut dated = self
            .dated
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        dated.retain(|((stored_counter, _), _)| *stored_counter == counter);
        if dated.len() >= 8 {
            dated.remove(0);
        }
        dated.push((key, Arc::clone(&snapshot)));
        Ok(snapshot)
    }

    /// Rebuilds the snapshot if the database changed since it was built. Returns true when it did.
    pub async fn refresh(&self, database: &Database) -> Result<bool, StoreError> {
        let counter = database.change_counter().await?;
        let known = self
            .current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0;
        if counter == known || Self::import_running(database, known).await? {
            return Ok(false);
        }
        let snapshot = Arc::new(database.policy_snapshot(Utc::now()).await?);
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counter > guard.0 {
            *guard = (counter, snapshot);
        }
        Ok(true)
    }

    /// True while a scheduled advisory sync runs and only its imports changed the records since
    /// `known`: the rebuild waits for the end of the sync.
    async fn import_running(database: &Database, known: i64) -> Result<bool, StoreError> {
        let running = database
            .lease(ADVISORY_SYNC_RUNNING)
            .await?
            .is_some_and(|lease| lease.expires_at > Utc::now());
        if !running {
            return Ok(false);
        }
        database
            .only_action_since(known, ADVISORY_IMPORT_ACTION)
            .await
    }

    /// Keeps the snapshot fresh, so that writes made through any replica (or the CLI) reach this
    /// one: on PostgreSQL it listens for change notifications and rebuilds as soon as one
    /// arrives (well within a second); on every database it also checks the change counter every
    /// `interval`, as the fallback when notifications are lost (a dropped listening connection,
    /// a database restart). Also picks up expiries at day boundaries by rebuilding at least
    /// every hour.
    pub fn follow(
        self: Arc<Self>,
        database: Database,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let listening = tokio::spawn(Arc::clone(&self).listen(database.clone()));
        tokio::spawn(async move {
            let _listening = AbortOnDrop(listening);
            let mut ticks: u64 = 0;
            let hourly = (3600 / interval.as_secs().max(1)).max(1);
            loop {
                tokio::time::sleep(interval).await;
                if database.is_offline() {
                    // The snapshot from the local copy stays until the database answers.
                    continue;
                }
                ticks += 1;
                let outcome = if ticks % hourly == 0 {
                    self.force(&database).await
                } else {
                    self.refresh(&database).await.map(|_| ())
                };
                if let Err(error) = outcome {
                    tracing::warn!(%error, "could not refresh the policy snapshot; serving the previous one");
                }
            }
        })
    }

    /// Rebuilds the snapshot whenever another writer announces a change (PostgreSQL
    /// `LISTEN/NOTIFY`). Reconnects after the connection is lost (a database restart), with a
    /// growing pause up to [`LISTEN_RETRY_MAX`], and re-reads the counter after every reconnect,
    /// since announcements made meanwhile are gone. Returns at once on SQLite.
    async fn listen(self: Arc<Self>, database: Database) {
        let mut pause = Duration::from_millis(250);
        loop {
            if database.is_offline() {
                tokio::time::sleep(pause).await;
                continue;
            }
            let mut listener = match database.listen_for_changes().await {
                Ok(Some(listener)) => listener,
                Ok(None) => {
                    self.set_listening(ChangeListening::NotAvailable);
                    return;
                }
                Err(error) => {
                    self.set_listening(ChangeListening::Reconnecting);
                    tracing::warn!(%error, retry_in_ms = pause.as_millis() as u64, "could not listen for policy changes; polling meanwhile");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(LISTEN_RETRY_MAX);
                    continue;
                }
            };
            tracing::debug!("listening for policy changes");
            self.set_listening(ChangeListening::Listening);
            pause = Duration::from_millis(250);
            // Anything announced before the listener was up.
            self.refresh_logged(&database).await;
            loop {
                match listener.next().await {
                    Ok(formulary_store::ChangeEvent::Changed(seq)) => {
                        if seq > self.generation() {
                            self.refresh_logged(&database).await;
                        }
                    }
                    Ok(formulary_store::ChangeEvent::Lost) => {
                        // A new listening connection (the outer loop), so that `/readyz` knows
                        // when listening works again; it re-reads the counter once up.
                        self.set_listening(ChangeListening::Reconnecting);
                        tracing::warn!(
                            "lost the connection that listens for policy changes; reconnecting"
                        );
                        break;
                    }
                    Err(error) => {
                        self.set_listening(ChangeListening::Reconnecting);
                        tracing::warn!(%error, "the connection that listens for policy changes failed; reconnecting");
                        break;
                    }
                }
            }
        }
    }

    /// How changes made elsewhere reach this replica now.
    pub fn change_listening(&self) -> ChangeListening {
        match self.listening.load(std::sync::atomic::Ordering::Relaxed) {
            1 => ChangeListening::NotAvailable,
            2 => ChangeListening::Listening,
            3 => ChangeListening::Reconnecting,
            _ => ChangeListening::NotStarted,
        }
    }

    fn set_listening(&self, state: ChangeListening) {
        self.listening
            .store(state as u8, std::sync::atomic::Ordering::Relaxed);
    }

    /// The change counter the snapshot in force was built at.
    pub fn generation(&self) -> i64 {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }

    async fn refresh_logged(&self, database: &Database) {
        if let Err(error) = self.refresh(database).await {
            tracing::warn!(%error, "could not refresh the policy snapshot; serving the previous one");
        }
    }

    /// Swaps in the advisory feed's freshness (kept current by the advisory sync on every
    /// replica), keeping the rest of the snapshot and its generation. Nothing happens when it is
    /// unchanged.
    pub fn set_advisory_feed(&self, feed: Option<formulary_core::policy::AdvisoryFeed>) {
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.1.advisory_feed() == feed {
            return;
        }
        let mut snapshot = PolicySnapshot::clone(&guard.1);
        snapshot.set_advisory_feed(feed);
        guard.1 = Arc::new(snapshot);
    }

    async fn force(&self, database: &Database) -> Result<(), StoreError> {
        let counter = database.change_counter().await?;
        let snapshot = Arc::new(database.policy_snapshot(Utc::now()).await?);
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = (counter, snapshot);
        Ok(())
    }
}
