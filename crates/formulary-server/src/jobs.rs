//! Background jobs that exactly one replica runs at a time. Every replica runs each job's loop;
//! before each round the loop asks for the job's lease in the database ([`JobLease::hold`]). The
//! replica that holds it extends it every round; the others skip the round. A replica that dies
//! (kill -9, a lost machine) stops extending, and another takes the job over once the lease has
//! expired, [`JobLease::ttl`] later at most. A replica that shuts down cleanly hands it over at
//! once ([`JobLease::release`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use formulary_store::Database;

/// How long a job's lease lasts without being extended: the longest a job pauses when the
/// replica running it dies.
pub const JOB_LEASE: Duration = Duration::from_secs(30);

/// An identity for this replica's leases: the process id and a random part, so that two
/// replicas on different machines with the same pid differ.
pub fn replica_holder() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let random = formulary_store::random_secret();
    let random = random.get(..12).unwrap_or(&random);
    if host.is_empty() {
        format!("{}-{random}", std::process::id())
    } else {
        format!("{host}-{}-{random}", std::process::id())
    }
}

/// One job's lease, as one replica holds (or waits for) it.
#[derive(Debug, Clone)]
pub struct JobLease {
    database: Database,
    name: &'static str,
    holder: String,
    ttl: Duration,
    /// Set by [`JobLease::release`] (shared by clones): a released lease is never taken again by
    /// this replica, so a job loop still running at shutdown cannot take it back.
    released: Arc<AtomicBool>,
}

impl JobLease {
    /// The lease `name` for this replica (`holder` from [`replica_holder`]), lasting
    /// [`JOB_LEASE`].
    pub fn new(database: Database, name: &'static str, holder: String) -> JobLease {
        JobLease {
            database,
            name,
            holder,
            ttl: JOB_LEASE,
            released: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The same lease with another lifetime (tests use a short one).
    pub fn with_ttl(mut self, ttl: Duration) -> JobLease {
        self.ttl = ttl;
        self
    }

    /// How long the lease lasts unless extended.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// True when this replica holds the lease for the next [`JobLease::ttl`]: it extends the
    /// lease it holds, or takes one that nobody holds or that has expired. False when another
    /// replica holds it, when the database cannot be reached (a job never runs unleased), and
    /// after [`JobLease::release`].
    pub async fn hold(&self) -> bool {
        if self.released.load(Ordering::SeqCst) {
            return false;
        }
        if self.database.is_offline() {
            // Started with the database down: no job runs until it answers (said once, at start).
            return false;
        }
        let now = Utc::now();
        let until = now
            + chrono::Duration::from_std(self.ttl)
                .unwrap_or_else(|_| chrono::Duration::seconds(30));
        match self
            .database
            .extend_lease(self.name, &self.holder, until)
            .await
        {
            Ok(true) => return true,
            Ok(false) => {}
            Err(error) => {
                tracing::warn!(job = self.name, %error, "could not extend a background job's lease; the job waits");
                return false;
            }
        }
        match self
            .database
            .try_take_lease(self.name, &self.holder, now, until)
            .await
        {
            Ok(taken) => {
                if taken {
                    tracing::info!(
                        job = self.name,
                        holder = %self.holder,
                        "this replica now runs the background job"
                    );
                }
                taken
            }
            Err(error) => {
                tracing::warn!(job = self.name, %error, "could not take a background job's lease; the job waits");
                false
            }
        }
    }

    /// Gives the lease up (at shutdown), so that another replica takes the job over at its next
    /// round rather than after the lease expires. From then on [`JobLease::hold`] is false here.
    pub async fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        let _ = self
            .database
            .extend_lease(self.name, &self.holder, Utc::now())
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_released_lease_is_free_for_others_and_never_taken_back_by_its_holder() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", folder.path().join("jobs.db").display());
        let database = Database::open(&url).await.expect("SQLite opens");
        let ours = JobLease::new(database.clone(), "recalls", "replica-a".to_owned());
        let theirs = JobLease::new(database.clone(), "recalls", "replica-b".to_owned());
        assert!(ours.hold().await, "a free lease is taken");
        assert!(ours.hold().await, "and extended by its holder");
        assert!(!theirs.hold().await, "another replica waits");
        // A job loop holds a clone; releasing through any clone stops them all.
        let in_the_loop = ours.clone();
        ours.release().await;
        assert!(
            !in_the_loop.hold().await,
            "a loop still running after the release does not take the lease back"
        );
        assert!(theirs.hold().await, "another replica takes it at once");
    }
}
