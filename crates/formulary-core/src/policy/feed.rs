//! The advisory feed's freshness as a policy input. Advisories block versions only if Formulary
//! knows them; when the server has not synced its OSV sources for longer than a view allows, the
//! view either keeps serving with a note on every decision, or stops admitting versions published
//! after the feed went stale (their advisories may not have reached Formulary yet). It never
//! fails open silently.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::decision::{Effect, Reason, ReasonCode};
use super::release::Release;
use crate::error::{printable, CoreError};

/// What a view does once the advisory feed is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnStaleFeed {
    /// Keep serving; every decision carries a note saying how old the advisory data is.
    Serve,
    /// Deny versions published after the feed went stale (and note the others).
    Hold,
}

impl OnStaleFeed {
    /// The word used in settings and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            OnStaleFeed::Serve => "serve",
            OnStaleFeed::Hold => "hold",
        }
    }
}

impl fmt::Display for OnStaleFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OnStaleFeed {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "serve" => Ok(OnStaleFeed::Serve),
            "hold" => Ok(OnStaleFeed::Hold),
            _ => Err(CoreError::InvalidSetting(format!(
                "'{}' is not a stale-feed action; use serve (keep serving, with a note) or hold (stop admitting versions published after the feed went stale)",
                printable(text)
            ))),
        }
    }
}

/// One organisation's rule for a stale advisory feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedPolicy {
    /// Hours without a successful sync after which the feed counts as stale.
    pub stale_after_hours: u32,
    /// What to do then.
    pub on_stale: OnStaleFeed,
}

impl Default for FeedPolicy {
    /// Stale after 24 hours (144 missed ten-minute syncs); keep serving, with a note.
    fn default() -> Self {
        FeedPolicy {
            stale_after_hours: 24,
            on_stale: OnStaleFeed::Serve,
        }
    }
}

impl FeedPolicy {
    /// Longest limit accepted: 90 days.
    pub const MAX_STALE_AFTER_HOURS: u32 = 90 * 24;

    /// Checks the limit is between an hour and 90 days.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.stale_after_hours == 0 || self.stale_after_hours > Self::MAX_STALE_AFTER_HOURS {
            return Err(CoreError::InvalidSetting(format!(
                "a stale-feed limit of {} hours is outside 1 to {} hours",
                self.stale_after_hours,
                Self::MAX_STALE_AFTER_HOURS
            )));
        }
        Ok(())
    }

    /// The moment the feed goes (or went) stale, given when it was last wholly current.
    pub fn stale_from(&self, current_at: DateTime<Utc>) -> DateTime<Utc> {
        current_at + Duration::hours(i64::from(self.stale_after_hours))
    }
}

/// The advisory feed as the policy sees it: the moment up to which every configured source had
/// been synced (the oldest of their last successful syncs). Absent when no source is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AdvisoryFeed {
    /// Every configured source had been synced successfully at or after this moment.
    pub current_at: DateTime<Utc>,
}

/// The stale-feed rule for one release at `at`: `None` while the feed is fresh.
pub(crate) fn stale_feed_reason(
    feed: &AdvisoryFeed,
    policy: &FeedPolicy,
    at: DateTime<Utc>,
    release: &Release,
) -> Option<Reason> {
    let stale_from = policy.stale_from(feed.current_at);
    if at <= stale_from {
        return None;
    }
    let synced = feed.current_at.format("%Y-%m-%d %H:%M UTC");
    let stale = stale_from.format("%Y-%m-%d %H:%M UTC");
    let held = policy.on_stale == OnStaleFeed::Hold
        && release
            .published
            .is_some_and(|published| published > stale_from);
    let (effect, message) = if held {
        (
            Effect::Deny,
            format!(
                "held back: it was published after the advisory feed went stale ({stale}; last complete sync {synced}), so advisories about it may not have reached Formulary. It is admitted once the feed syncs again; ask your Formulary administrator to check `advisory_sources`"
            ),
        )
    } else {
        (
            Effect::Note,
            format!(
                "the advisory feed is stale: the last complete sync was {synced}, so advisories published since then are not applied"
            ),
        )
    };
    Some(Reason {
        code: ReasonCode::AdvisoryFeedStale,
        effect,
        message,
        advisory: None,
        link: None,
    })
}
