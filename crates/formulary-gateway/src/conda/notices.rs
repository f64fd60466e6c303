//! A channel's `notices.json` (CEP-6) for one view: the standing prohibitions of conda packages
//! that apply in the view (the national formulary's and the view's organisation's, in force at
//! the view's moment), one notice each, so `conda notices` and the notices conda prints after
//! an install tell users what the channel withholds and why; and beside them the notices people
//! wrote (national curators for every view, organisation admins for their organisation's) for
//! this channel or every channel, shown at the view's moment. Built from the policy snapshot
//! and the written notices alone (no upstream).

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use formulary_core::channel_notice::ChannelNotice;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::policy::{PolicySnapshot, View};
use formulary_core::Status;
use serde::Serialize;

/// How long a client may keep a notice with no expiry of its own before fetching again.
const STANDING_FOR: Duration = Duration::days(1);
/// How often conda may show a notice again (seconds).
const INTERVAL_SECONDS: u64 = 86_400;

/// `notices.json` as conda reads it.
#[derive(Debug, Serialize)]
pub struct Notices {
    /// The notices, oldest first.
    pub notices: Vec<Notice>,
}

/// One notice (CEP-6).
#[derive(Debug, Serialize)]
pub struct Notice {
    /// Stable across fetches, so conda shows it once (the entry's id).
    pub id: String,
    /// What the user reads.
    pub message: String,
    /// `info`, `warning` or `critical`.
    pub level: &'static str,
    /// When the entry was recorded (ISO 8601 with offset, as Python's `fromisoformat` reads).
    pub created_at: String,
    /// When the notice stops applying: the entry's expiry, else a day on (re-issued while the
    /// entry stands).
    pub expired_at: String,
    /// How often, in seconds, conda may show it again.
    pub interval: u64,
}

fn iso(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// The view's notices on `channel`: every prohibition of a conda component by the national
/// formulary or the view's organisation in force at `view.at`, and every one of `written` that
/// applies to the view's organisation and `channel` and is shown at `view.at` (as written, with
/// its own level and id), oldest first. `public_url` (ending in `/`) makes the link to each
/// component's page.
pub fn channel_notices(
    snapshot: &PolicySnapshot,
    view: &View,
    public_url: &str,
    channel: &str,
    written: &[ChannelNotice],
) -> Notices {
    let today = view.at.date_naive();
    let mut notices: Vec<(DateTime<Utc>, Notice)> = snapshot
        .components_with_entries()
        .filter(|component| component.ecosystem() == Ecosystem::Conda)
        .flat_map(|component| snapshot.entries_for(component))
        .filter(|entry| {
            let draft = &entry.draft;
            draft.status == Status::Prohibited
                && (draft.organisation.is_national() || draft.organisation == view.organisation)
                && entry.created_at <= view.at
                && entry.is_in_force_on(today)
        })
        .map(|entry| {
            let draft = &entry.draft;
            let whose = if draft.organisation.is_national() {
                "the national formulary".to_owned()
            } else {
                format!("{}'s formulary", draft.organisation)
            };
            let versions = if draft.range.is_every() {
                "every version".to_owned()
            } else {
                format!("versions {}", draft.range)
            };
            let expires = draft
                .expires
                .and_then(|day| day.and_hms_opt(0, 0, 0))
                .map(|moment| moment.and_utc());
            let notice = Notice {
                id: entry.id.clone(),
                message: format!(
                    "{name}: {versions} prohibited by {whose}: {reason}. This channel leaves them out and refuses their files; use another version or component. See {public_url}components/conda/{name}",
                    name = draft.component.name,
                    reason = draft.reason.trim_end_matches('.'),
                ),
                level: "warning",
                created_at: iso(entry.created_at),
                expired_at: iso(expires.unwrap_or(view.at + STANDING_FOR)),
                interval: INTERVAL_SECONDS,
            };
            (entry.created_at, notice)
        })
        .collect();
    notices.extend(
        written
            .iter()
            .filter(|notice| {
                notice.applies_to(&view.organisation, channel) && notice.is_shown_at(view.at)
            })
            .map(|notice| {
                let shown = Notice {
                    id: notice.id.clone(),
                    message: notice.draft.message.clone(),
                    level: notice.draft.level.as_str(),
                    created_at: iso(notice.created_at),
                    expired_at: iso(notice.expired_at().unwrap_or(view.at + STANDING_FOR)),
                    interval: INTERVAL_SECONDS,
                };
                (notice.created_at, shown)
            }),
    );
    notices.sort_by(|left, right| (left.0, &left.1.id).cmp(&(right.0, &right.1.id)));
    Notices {
        notices: notices.into_iter().map(|(_, notice)| notice).collect(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use formulary_core::channel_notice::{ChannelNoticeDraft, NoticeLevel};
    use formulary_core::{OrgCode, Organisation};

    use super::*;

    fn written(id: &str, organisation: &str, channel: Option<&str>, hour: u32) -> ChannelNotice {
        ChannelNotice {
            id: id.to_owned(),
            draft: ChannelNoticeDraft {
                organisation: organisation.parse().unwrap(),
                channel: channel.map(str::to_owned),
                level: NoticeLevel::Critical,
                message: format!("<i>{id}</i>"),
                expires: None,
            },
            created_at: Utc.with_ymd_and_hms(2026, 12, 5, hour, 0, 0).unwrap(),
            created_by: "user:cora".to_owned(),
            withdrawn_at: None,
            withdrawn_by: None,
        }
    }

    #[test]
    fn written_notices_show_in_the_views_and_channels_they_are_for() {
        let rj1: OrgCode = "RJ1".parse().unwrap();
        let snapshot = PolicySnapshot::new(
            [Organisation {
                code: rj1.clone(),
                name: "Trust".to_owned(),
            }],
            [],
            [],
            [],
        );
        let view = View {
            organisation: rj1,
            at: Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap(),
        };
        let mut withdrawn = written("cn-gone", "NATIONAL", None, 1);
        withdrawn.withdrawn_at = Some(view.at);
        let all = [
            written("cn-later", "NATIONAL", None, 3),
            written("cn-first", "RJ1", Some("conda-forge"), 2),
            written("cn-other-trust", "RQM", None, 2),
            written("cn-other-channel", "RJ1", Some("bioconda"), 2),
            written("cn-future", "NATIONAL", None, 13),
            withdrawn,
        ];
        let notices = channel_notices(&snapshot, &view, "https://f.example/", "conda-forge", &all);
        let ids: Vec<&str> = notices
            .notices
            .iter()
            .map(|notice| notice.id.as_str())
            .collect();
        assert_eq!(ids, ["cn-first", "cn-later"]);
        let first = &notices.notices[0];
        assert_eq!(
            (first.level, first.message.as_str()),
            ("critical", "<i>cn-first</i>")
        );
        assert_eq!(first.created_at, "2026-12-05T02:00:00+00:00");
        assert_eq!(first.expired_at, "2026-12-06T12:00:00+00:00");
        let json = serde_json::to_value(&notices).unwrap();
        assert_eq!(
            json["notices"][0]["message"], "<i>cn-first</i>",
            "text, not markup"
        );
    }
}
