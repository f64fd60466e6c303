//! Health endpoints for load balancers and orchestrators.
//!
//! - `/livez` answers 200 from memory: the process runs and its HTTP stack answers. It never
//!   touches the database or the disk, so a database outage does not get the server restarted.
//! - `/readyz` checks what serving needs, each check bounded so the answer comes within 100 ms:
//!   the database (a query on a connection kept for probes), the blob folder (a small file
//!   written and removed, and the free space) and the download ledger (lines waiting in the local
//!   journal), and the gateways' upstreams (from memory). 503 when the database or the blob folder
//!   fails; 200 with `degraded` checks listed when something needs attention but serving goes on.
//!   The advisory feed's freshness is read from memory too (kept by the advisory sync): stale or
//!   failing is `degraded`, never `failed`.
//! - `/healthz` is kept as an alias of `/readyz` for existing probes.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;

use crate::state::AppState;

/// How long each readiness probe may take; they run side by side, so the answer comes within
/// about this (well inside the 100 ms a probe is given).
const PROBE_BUDGET: Duration = Duration::from_millis(60);

/// Free space in the blob folder under which readiness reports the disk as degraded.
const LOW_SPACE_BYTES: u64 = 512 * 1024 * 1024;

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum CheckStatus {
    /// Works.
    Ok,
    /// Works, but needs attention (serving goes on).
    Degraded,
    /// Does not work: the server is not ready.
    Failed,
}

/// One line of the readiness answer.
#[derive(Debug, Serialize)]
struct Check {
    status: CheckStatus,
    /// What was found, in words, with what to do when it is not `ok`.
    detail: String,
    /// How long the check took, in milliseconds.
    elapsed_ms: u128,
}

/// The readiness answer.
#[derive(Debug, Serialize)]
struct Readiness {
    /// `ready`, `degraded` (ready, with checks that need attention) or `unavailable`.
    status: &'static str,
    database: Check,
    blobs: Check,
    ledger: Check,
    /// The gateways' upstreams: degraded when one failed lately, is down, or had a document held
    /// back (cached packages are still served, so this never makes the server unready).
    upstreams: Check,
    /// The advisory feed's freshness: degraded when stale or when a source fails to sync.
    advisory_feed: Check,
    /// How changes made through other replicas reach this one: degraded while the PostgreSQL
    /// listener reconnects (changes then arrive by polling, within seconds).
    changes: Check,
}

/// `/livez`: 200 from memory.
pub(crate) async fn live() -> Response {
    no_store(Json(serde_json::json!({ "status": "live" })).into_response())
}

/// `/readyz` (and `/healthz`): what serving needs, checked within 100 ms; 503 when not ready.
pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let (database, blobs) = tokio::join!(database_check(&state), blob_check(&state));
    let ledger = ledger_check(&state);
    let upstreams = upstream_check(&state);
    let advisory_feed = advisory_feed_check(&state);
    let changes = changes_check(&state);
    let checks = [
        changes.status,
        database.status,
        blobs.status,
        ledger.status,
        upstreams.status,
        advisory_feed.status,
    ];
    let (code, status) = if checks.contains(&CheckStatus::Failed) {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    } else if checks.contains(&CheckStatus::Degraded) {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ready")
    };
    if code != StatusCode::OK {
        tracing::warn!(database = %database.detail, blobs = %blobs.detail, "readiness check: not ready");
    }
    let answer = Readiness {
        status,
        database,
        blobs,
        ledger,
        upstreams,
        advisory_feed,
        changes,
    };
    no_store((code, Json(answer)).into_response())
}

/// Health answers must never be cached by a proxy.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn database_check(state: &AppState) -> Check {
    let started = Instant::now();
    if state.database.is_offline() {
        return Check {
            status: CheckStatus::Failed,
            detail: offline_detail(state),
            elapsed_ms: started.elapsed().as_millis(),
        };
    }
    let (status, detail) = match tokio::time::timeout(PROBE_BUDGET, state.database.probe()).await
    {
        Ok(Ok(())) => (CheckStatus::Ok, format!("{} answers", state.storage_label)),
        Ok(Err(error)) => (
            CheckStatus::Failed,
            format!(
                "{} does not answer: {error}. Cached package files are still served; check the database server and `database_url`",
                state.storage_label
            ),
        ),
        Err(_) => (
            CheckStatus::Failed,
            format!(
                "{} did not answer within {} ms. Cached package files are still served; check the database server and the network to it",
                state.storage_label,
                PROBE_BUDGET.as_millis()
            ),
        ),
    };
    Check {
        status,
        detail,
        elapsed_ms: started.elapsed().as_millis(),
    }
}

/// What `/readyz` says while the database has not answered since the start.
fn offline_detail(state: &AppState) -> String {
    let copy = match state
        .database
        .local_copy()
        .and_then(|copy| copy.written_at())
    {
        Some(written) => {
            let age = (chrono::Utc::now() - written).num_seconds().max(0);
            format!(
                "its local copy written at {} ({} ago)",
                written.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                age_text(age)
            )
        }
        None => "its local copy".to_owned(),
    };
    format!(
        "{} is down: it could not be reached when this server started and has not answered since. This replica serves only what it holds, from {copy}: cached package indexes and files, with the policy as the copy records it; signing in, requests and changes wait for the database. It is retried every few seconds and taken back without a restart; check the database server and `database_url`",
        state.storage_label
    )
}

/// `3 h 4 min`, `5 min 2 s`, `7 s`.
fn age_text(seconds: i64) -> String {
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours > 0 {
        format!("{hours} h {minutes} min")
    } else if minutes > 0 {
        format!("{minutes} min {seconds} s")
    } else {
        format!("{seconds} s")
    }
}

/// One disk probe at a time: a hung file system must not pile up blocked threads.
static DISK_PROBE_RUNNING: AtomicBool = AtomicBool::new(false);

/// How long object storage may take to answer the readiness probe (a network round trip, so
/// more than the local checks get).
const OBJECT_STORE_PROBE_BUDGET: Duration = Duration::from_millis(1000);

/// Asks object storage about a key (any answer, "not found" included, means it is reachable and
/// takes the credentials).
async fn object_store_check(state: &AppState) -> Check {
    let started = Instant::now();
    let label = state.blobs.label().to_owned();
    let (status, detail) =
        match tokio::time::timeout(OBJECT_STORE_PROBE_BUDGET, state.blobs.probe()).await {
            Ok(Ok(())) => (CheckStatus::Ok, format!("the blob store {label} answers")),
            Ok(Err(error)) => (
                CheckStatus::Failed,
                format!("{error}. Cached package files cannot be served; check the object storage server, s3_endpoint and the credentials"),
            ),
            Err(_) => (
                CheckStatus::Failed,
                format!(
                    "the blob store {label} did not answer within {} ms. Cached package files cannot be served; check the object storage server and the network to it",
                    OBJECT_STORE_PROBE_BUDGET.as_millis()
                ),
            ),
        };
    Check {
        status,
        detail,
        elapsed_ms: started.elapsed().as_millis(),
    }
}

async fn blob_check(state: &AppState) -> Check {
    let started = Instant::now();
    let Some(folder) = state.blob_dir.clone() else {
        return object_store_check(state).await;
    };
    let (status, detail) = if DISK_PROBE_RUNNING.swap(true, Ordering::AcqRel) {
        (
            CheckStatus::Failed,
            format!(
                "the previous check of the blob folder {} has not finished: the disk is not answering",
                folder.display()
            ),
        )
    } else {
        let probe = tokio::task::spawn_blocking(move || {
            let outcome = probe_folder(&folder);
            DISK_PROBE_RUNNING.store(false, Ordering::Release);
            outcome
        });
        match tokio::time::timeout(PROBE_BUDGET, probe).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => (
                CheckStatus::Failed,
                format!("the blob folder check failed: {error}"),
            ),
            Err(_) => (
                CheckStatus::Failed,
                format!(
                    "the blob folder did not answer within {} ms: the disk is slow or hung",
                    PROBE_BUDGET.as_millis()
                ),
            ),
        }
    };
    Check {
        status,
        detail,
        elapsed_ms: started.elapsed().as_millis(),
    }
}

/// Writes and removes a small file in the blob folder, then reads the free space.
fn probe_folder(folder: &Path) -> (CheckStatus, String) {
    let probe = folder.join(format!(".readyz-{}", std::process::id()));
    let written = std::fs::write(&probe, b"formulary readiness probe\n");
    let _ = std::fs::remove_file(&probe);
    if let Err(error) = written {
        return (
            CheckStatus::Failed,
            format!(
                "cannot write to the blob folder {}: {error}. New package files cannot be cached; free space or fix its permissions",
                folder.display()
            ),
        );
    }
    match rustix::fs::statvfs(folder) {
        Ok(stats) => {
            let free = stats.f_bavail.saturating_mul(stats.f_frsize);
            let mib = free / (1024 * 1024);
            if free < LOW_SPACE_BYTES {
                (
                    CheckStatus::Degraded,
                    format!(
                        "the blob folder {} has only {mib} MiB free: new package files may soon fail to cache; free space",
                        folder.display()
                    ),
                )
            } else {
                (CheckStatus::Ok, format!("writable, {mib} MiB free"))
            }
        }
        Err(error) => (
            CheckStatus::Ok,
            format!("writable (free space unknown: {error})"),
        ),
    }
}

fn upstream_check(state: &AppState) -> Check {
    let (worst, detail) = crate::upstreams::summary(&crate::upstreams::collect(state));
    Check {
        status: match worst {
            formulary_gateway::HealthState::Healthy => CheckStatus::Ok,
            _ => CheckStatus::Degraded,
        },
        detail,
        elapsed_ms: 0,
    }
}

fn ledger_check(state: &AppState) -> Check {
    let Some(ledger) = &state.ledger else {
        return Check {
            status: CheckStatus::Ok,
            detail: "lines are written directly".to_owned(),
            elapsed_ms: 0,
        };
    };
    let status = ledger.status();
    let (check, detail) = if status.dropped > 0 {
        (
            CheckStatus::Degraded,
            format!(
                "{} download lines were dropped because the local journal was full while the database was down; {} wait in the journal",
                status.dropped, status.journal_lines
            ),
        )
    } else if status.journal_lines > 0 {
        (
            CheckStatus::Degraded,
            format!(
                "{} download lines wait in the local journal for the database; they are written when it answers again",
                status.journal_lines
            ),
        )
    } else {
        (CheckStatus::Ok, "every line is in the database".to_owned())
    };
    Check {
        status: check,
        detail,
        elapsed_ms: 0,
    }
}

/// The advisory feed, from what the sync loop last read (no query): degraded when it is staler
/// than the national rule allows or a source fails; never a reason to stop serving.
fn changes_check(state: &AppState) -> Check {
    use crate::snapshot::ChangeListening;
    let (status, detail) = match state.snapshot.change_listening() {
        ChangeListening::Listening => (
            CheckStatus::Ok,
            "listening for changes (PostgreSQL NOTIFY): other replicas' changes apply within milliseconds",
        ),
        ChangeListening::NotAvailable => (
            CheckStatus::Ok,
            "SQLite: changes are read by polling (one process writes)",
        ),
        ChangeListening::NotStarted => (
            CheckStatus::Ok,
            "starting: changes are read by polling until the listener is up",
        ),
        ChangeListening::Reconnecting => (
            CheckStatus::Degraded,
            "the connection that listens for changes is lost and being re-established; other replicas' changes arrive by polling (within seconds) meanwhile. Check the database connection",
        ),
    };
    Check {
        status,
        detail: detail.to_owned(),
        elapsed_ms: 0,
    }
}

fn advisory_feed_check(state: &AppState) -> Check {
    let policy = state
        .snapshot
        .current()
        .feed_policy_for(&formulary_core::OrgCode::national());
    let (attention, detail) = state.feeds.readiness(policy, chrono::Utc::now());
    Check {
        status: if attention {
            CheckStatus::Degraded
        } else {
            CheckStatus::Ok
        },
        detail,
        elapsed_ms: 0,
    }
}
