//! The background job that keeps dependency admissions of curated views current: after any
//! change of records (an approval, a removal, a stance change) and every ten minutes (new
//! upstream releases), the closures are worked out again and stored when they changed. One
//! replica at a time runs it (the `dependency-admissions` lease, see [`crate::jobs`]); the others
//! learn of its changes through the change counter like any other change. The work is
//! idempotent too, so a replica whose lease lapsed mid-round writes nothing a second time.

use std::time::{Duration, Instant};

use formulary_gateway::{refresh_admissions, ClosureSources};

use crate::state::AppState;

/// How often upstream changes are looked for when no record changed.
const PERIOD: Duration = Duration::from_secs(600);

/// Runs the job every `interval` until its lease is stopped (at shutdown).
pub fn follow_admissions(
    state: AppState,
    interval: Duration,
    lease: crate::jobs::JobLease,
) -> tokio::task::JoinHandle<()> {
    let sources = ClosureSources {
        pypi: state.pypi.clone(),
        pypi_by_organisation: state.pypi_by_organisation.clone(),
        cran: state.cran.clone(),
    };
    tokio::spawn(async move {
        let mut done: Option<(i64, Instant)> = None;
        loop {
            let (generation, snapshot) = state.snapshot.current_with_generation();
            let due = done.is_none_or(|(seen, at)| seen != generation || at.elapsed() >= PERIOD);
            if !lease.hold().await {
                // Another replica runs the job; when this one takes over, it starts afresh.
                done = None;
            } else if due {
                match refresh_admissions(&state.database, &snapshot, &sources).await {
                    Ok(refresh) => {
                        if refresh.changed {
                            tracing::info!(views = ?refresh.views, "dependency admissions of curated views updated");
                            if let Err(error) = state.snapshot.refresh(&state.database).await {
                                tracing::warn!(%error, "could not reload the policy snapshot after updating dependency admissions");
                            }
                        }
                        if !refresh.unknown.is_empty() {
                            tracing::warn!(releases = ?refresh.unknown, "the requirements of these releases could not be read, so their dependencies are not admitted");
                        }
                        let (generation, _) = state.snapshot.current_with_generation();
                        done = Some((generation, Instant::now()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "could not work out dependency closures; trying again shortly");
                    }
                }
            }
            if !lease.pause(interval).await {
                return;
            }
        }
    })
}
