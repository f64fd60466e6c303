//! The advisory feed's freshness, held in memory on every replica so that `/readyz` answers
//! without a query, and served by `GET /api/v1/advisories/feeds`.

use std::sync::RwLock;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use formulary_core::policy::{FeedPolicy, OnStaleFeed};
use formulary_core::OrgCode;
use formulary_store::FeedStatus;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// What every replica knows about the advisory sources, refreshed by the sync loop.
#[derive(Debug, Default)]
pub struct FeedWatch {
    state: RwLock<WatchState>,
}

#[derive(Debug, Default, Clone)]
struct WatchState {
    /// How often the server syncs; `None` when the scheduled sync is off.
    interval: Option<Duration>,
    feeds: Vec<FeedStatus>,
    read_at: Option<DateTime<Utc>>,
}

impl FeedWatch {
    /// Records the sync interval (`None`: the scheduled sync is off).
    pub fn set_interval(&self, interval: Option<Duration>) {
        self.write().interval = interval;
    }

    /// Records the sources' states as just read from the database.
    pub fn update(&self, feeds: Vec<FeedStatus>, read_at: DateTime<Utc>) {
        let mut state = self.write();
        state.feeds = feeds;
        state.read_at = Some(read_at);
    }

    /// The sources' states as last read, configured ones first.
    pub fn feeds(&self) -> Vec<FeedStatus> {
        self.read().feeds.clone()
    }

    /// The sync interval, when the scheduled sync is on.
    pub fn interval(&self) -> Option<Duration> {
        self.read().interval
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, WatchState> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, WatchState> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The feed as `/readyz` reports it: `(needs_attention, detail)`. A stale feed or a failing
    /// source needs attention; serving goes on either way.
    pub fn readiness(&self, policy: FeedPolicy, now: DateTime<Utc>) -> (bool, String) {
        let state = self.read();
        let Some(interval) = state.interval else {
            return (
                false,
                "the scheduled advisory sync is off (advisory_sync_interval_seconds = 0); advisories change only through `formulary advisories import|sync`".to_owned(),
            );
        };
        let active: Vec<&FeedStatus> = state.feeds.iter().filter(|feed| feed.active).collect();
        if active.is_empty() {
            return (
                false,
                "no advisory source is configured (advisory_sources)".to_owned(),
            );
        }
        let Some(feed) = formulary_store::feed_of(&state.feeds) else {
            return (false, "no advisory source is configured".to_owned());
        };
        let age = now.signed_duration_since(feed.current_at);
        let failing: Vec<String> = active
            .iter()
            .filter_map(|source| {
                source
                    .last_error
                    .as_ref()
                    .map(|error| format!("{}: {error}", source.source))
            })
            .collect();
        let never: usize = active
            .iter()
            .filter(|source| source.last_success_at.is_none())
            .count();
        let stale = now > policy.stale_from(feed.current_at);
        let consequence = match policy.on_stale {
            OnStaleFeed::Serve => "versions are still served, with a note on every decision",
            OnStaleFeed::Hold => "versions published since then are held back",
        };
        let mut detail = format!(
            "{} source(s), synced every {} s; every source was current {} minute(s) ago",
            active.len(),
            interval.as_secs(),
            age.num_minutes().max(0)
        );
        if never > 0 {
            detail.push_str(&format!("; {never} source(s) never synced yet"));
        }
        if stale {
            detail.push_str(&format!(
                "; STALE since {} (limit {} h): {consequence}",
                policy
                    .stale_from(feed.current_at)
                    .format("%Y-%m-%d %H:%M UTC"),
                policy.stale_after_hours
            ));
        }
        if !failing.is_empty() {
            detail.push_str(&format!(
                "; failing: {}. Check the network to the source and `advisory_sources`",
                failing.join("; ")
            ));
        }
        (stale || !failing.is_empty(), detail)
    }
}

/// `GET /api/v1/advisories/feeds`: each source's freshness, and whether the feed is stale for the
/// national view.
#[derive(Debug, Serialize)]
pub(crate) struct FeedsAnswer {
    /// Seconds between syncs; absent when the scheduled sync is off.
    interval_seconds: Option<u64>,
    /// Every configured source had synced at or after this moment.
    current_at: Option<DateTime<Utc>>,
    /// The national stale-feed rule.
    national_policy: FeedPolicy,
    /// True when the feed is staler than the national rule allows.
    stale: bool,
    /// Each source.
    sources: Vec<FeedStatus>,
}

/// `GET /api/v1/advisories/feeds`.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<FeedsAnswer>, ApiError> {
    let sources = state.database.advisory_feeds().await?;
    let current_at = formulary_store::feed_of(&sources).map(|feed| feed.current_at);
    let national_policy = state
        .snapshot
        .current()
        .feed_policy_for(&OrgCode::national());
    Ok(Json(FeedsAnswer {
        interval_seconds: state.feeds.interval().map(|interval| interval.as_secs()),
        current_at,
        national_policy,
        stale: current_at.is_some_and(|at| Utc::now() > national_policy.stale_from(at)),
        sources,
    }))
}
