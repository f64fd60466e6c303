//! Background jobs that exactly one replica runs at a time. Every replica runs each job's loop;
//! before each round the loop asks for the job's lease in the database ([`JobLease::hold`]). The
//! replica that holds it extends it every round; the others skip the round. A replica that dies
//! (kill -9, a lost machine) stops extending, and another takes the job over once the lease has
//! expired, [`JobLease::ttl`] later at most. A replica that shuts down cleanly first asks its
//! loops to stop ([`JobLease::stop`]: no new round starts, a pause between rounds ends at once),
//! lets a round in progress finish ([`finish`]), and then hands the leases over at once
//! ([`JobLease::release`]).

use std::time::Duration;

use chrono::Utc;
use formulary_store::Database;
use tokio_util::sync::CancellationToken;

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
    /// Cancelled by [`JobLease::stop`] (shared by clones): a stopped lease is never taken or
    /// extended again by this replica, so a job loop still running at shutdown cannot take back
    /// a lease it has handed over.
    stopped: CancellationToken,
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
            stopped: CancellationToken::new(),
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
    /// after [`JobLease::stop`].
    pub async fn hold(&self) -> bool {
        if self.stopped.is_cancelled() {
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

    /// Asks the job's loop to stop (at shutdown): from now on [`JobLease::hold`] is false here
    /// and [`JobLease::pause`] returns false at once. A round in progress is not interrupted.
    pub fn stop(&self) {
        self.stopped.cancel();
    }

    /// Waits `interval` between rounds; false (at once) when the job is asked to stop, and the
    /// loop should then end.
    pub async fn pause(&self, interval: Duration) -> bool {
        tokio::select! {
            () = self.stopped.cancelled() => false,
            () = tokio::time::sleep(interval) => true,
        }
    }

    /// Gives the lease up (at shutdown, after the loop has ended), so that another replica takes
    /// the job over at its next round rather than after the lease expires. Stops it here too.
    pub async fn release(&self) {
        self.stop();
        let _ = self
            .database
            .extend_lease(self.name, &self.holder, Utc::now())
            .await;
    }
}

/// Waits for stopped job loops to end (each finishing the round it is in) until `patience` has
/// passed, then cancels those still running; returns how many had to be cancelled.
pub async fn finish(loops: Vec<tokio::task::JoinHandle<()>>, patience: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + patience;
    let mut cancelled = 0;
    for mut job in loops {
        if tokio::time::timeout_at(deadline, &mut job).await.is_err() {
            job.abort();
            let _ = job.await;
            cancelled += 1;
        }
    }
    cancelled
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

    #[tokio::test]
    async fn a_stopped_loop_ends_after_its_round_and_one_that_overruns_is_cancelled() {
        let folder = tempfile::tempdir().expect("temporary folder");
        let url = format!("sqlite://{}", folder.path().join("jobs.db").display());
        let database = Database::open(&url).await.expect("SQLite opens");
        let rounds = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = std::sync::Arc::new(tokio::sync::Notify::new());
        let lease = JobLease::new(database.clone(), "email-outbox", "replica-a".to_owned());
        // A loop like the real ones: a round (here 300 ms of work) while it holds the lease, then
        // a long pause.
        let job = {
            let (lease, rounds) = (lease.clone(), std::sync::Arc::clone(&rounds));
            let started = std::sync::Arc::clone(&started);
            tokio::spawn(async move {
                loop {
                    if lease.hold().await {
                        started.notify_one();
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        rounds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    if !lease.pause(Duration::from_secs(3600)).await {
                        return;
                    }
                }
            })
        };
        // Asked to stop in the middle of its first round.
        tokio::time::timeout(Duration::from_secs(30), started.notified())
            .await
            .expect("the loop starts a round");
        let asked = std::time::Instant::now();
        lease.stop();
        assert_eq!(finish(vec![job], Duration::from_secs(5)).await, 0);
        assert_eq!(
            rounds.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "the round in progress finished"
        );
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "the pause ended at once: {:?}",
            asked.elapsed()
        );
        // A loop that does not end within the patience is cancelled.
        let stuck = tokio::spawn(std::future::pending::<()>());
        assert_eq!(finish(vec![stuck], Duration::from_millis(100)).await, 1);
    }
}
