//! Channel notices written by people: a national curator's (for every organisation's views) or
//! an organisation admin's (for their organisation's views) message to the users of conda
//! channels, with a level, an optional channel and an optional expiry. Served in a channel's
//! `notices.json` (CEP-6) beside the standing prohibitions while it is shown: written, not
//! withdrawn, not expired. The rules for what a notice may hold live here, so the web form and
//! the API refuse the same things with the same words.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::request::FieldError;
use crate::OrgCode;

/// The longest message accepted, in characters (conda prints it whole in a terminal).
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// The longest channel name accepted, in characters.
pub const MAX_CHANNEL_CHARS: usize = 64;

/// How conda presents a notice (CEP-6 `level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeLevel {
    /// For information.
    Info,
    /// Something to act on.
    Warning,
    /// Something to act on at once.
    Critical,
}

impl NoticeLevel {
    /// Every level, mildest first.
    pub const ALL: [NoticeLevel; 3] = [
        NoticeLevel::Info,
        NoticeLevel::Warning,
        NoticeLevel::Critical,
    ];

    /// The level as CEP-6 and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeLevel::Info => "info",
            NoticeLevel::Warning => "warning",
            NoticeLevel::Critical => "critical",
        }
    }
}

impl fmt::Display for NoticeLevel {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for NoticeLevel {
    type Err = FieldError;

    fn from_str(text: &str) -> Result<NoticeLevel, FieldError> {
        NoticeLevel::ALL
            .into_iter()
            .find(|level| level.as_str() == text.trim())
            .ok_or_else(|| FieldError::new("level", "Choose the level: info, warning or critical"))
    }
}

/// A notice as its author writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelNoticeDraft {
    /// Whose views show it: `NATIONAL` for every organisation's.
    pub organisation: OrgCode,
    /// The conda channel it is for; `None` for every channel.
    pub channel: Option<String>,
    /// How conda presents it.
    pub level: NoticeLevel,
    /// What users read: plain text, never markup.
    pub message: String,
    /// The last day (UTC) it is shown; `None` until it is withdrawn.
    pub expires: Option<NaiveDate>,
}

impl ChannelNoticeDraft {
    /// The draft from what a person typed, or every problem with it, worded for them.
    /// `channels` are the channels this server serves (a named channel must be one);
    /// `today` is the current day (an expiry must not be before it).
    pub fn check(
        organisation: OrgCode,
        channel: &str,
        level: &str,
        message: &str,
        expires: Option<NaiveDate>,
        channels: &[String],
        today: NaiveDate,
    ) -> Result<ChannelNoticeDraft, Vec<FieldError>> {
        let mut errors = Vec::new();
        let message = normalise_message(message)
            .map_err(|error| errors.push(error))
            .ok();
        let level = level
            .parse::<NoticeLevel>()
            .map_err(|error| errors.push(error))
            .ok();
        let channel = check_channel(channel, channels)
            .map_err(|error| errors.push(error))
            .ok()
            .flatten();
        if expires.is_some_and(|day| day < today) {
            errors.push(FieldError::new(
                "expires",
                "Enter today or a later day: the notice is shown until the end of that day (UTC)",
            ));
        }
        match (message, level, errors.is_empty()) {
            (Some(message), Some(level), true) => Ok(ChannelNoticeDraft {
                organisation,
                channel,
                level,
                message,
                expires,
            }),
            _ => Err(errors),
        }
    }
}

/// The message trimmed, line endings made `\n`, when it is plain printable text of 1 to
/// [`MAX_MESSAGE_CHARS`] characters. Control characters (terminal escapes among them) are
/// refused: conda prints the message to terminals as it is.
fn normalise_message(text: &str) -> Result<String, FieldError> {
    let text = text.replace("\r\n", "\n");
    let text = text.trim();
    if text.is_empty() {
        return Err(FieldError::new(
            "message",
            "Enter the message people will read in conda",
        ));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(FieldError::new(
            "message",
            format!("Shorten the message to {MAX_MESSAGE_CHARS} characters or fewer; link to a page for the details"),
        ));
    }
    if text
        .chars()
        .any(|character| character.is_control() && character != '\n')
    {
        return Err(FieldError::new(
            "message",
            "Remove the control characters (such as terminal escapes or tabs) from the message: conda prints it to terminals as it is",
        ));
    }
    Ok(text.to_owned())
}

/// The channel named (`None`: every channel), when this server serves it.
fn check_channel(text: &str, channels: &[String]) -> Result<Option<String>, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if channels.iter().any(|channel| channel == text) {
        return Ok(Some(text.to_owned()));
    }
    let shown: String = text
        .chars()
        .take(MAX_CHANNEL_CHARS)
        .collect::<String>()
        .escape_debug()
        .to_string();
    Err(FieldError::new(
        "channel",
        if channels.is_empty() {
            format!("This server serves no conda channels, so there is no channel '{shown}': leave the channel empty for every channel")
        } else {
            format!(
                "This server has no conda channel '{shown}': choose one of {}, or leave it empty for every channel",
                channels.join(", ")
            )
        },
    ))
}

/// A notice as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelNotice {
    /// Stable, so conda shows it once per interval however often it fetches.
    pub id: String,
    /// What was written.
    #[serde(flatten)]
    pub draft: ChannelNoticeDraft,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// Who wrote it (the audit actor).
    pub created_by: String,
    /// When it was withdrawn, if it was.
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// Who withdrew it.
    pub withdrawn_by: Option<String>,
}

impl ChannelNotice {
    /// The moment it stops being shown: the start of the day after its expiry (UTC).
    pub fn expired_at(&self) -> Option<DateTime<Utc>> {
        self.draft
            .expires
            .and_then(|day| day.checked_add_days(Days::new(1)))
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .map(|moment| moment.and_utc())
    }

    /// True when it is shown at `at`: written by then, not withdrawn by then, not expired.
    pub fn is_shown_at(&self, at: DateTime<Utc>) -> bool {
        self.created_at <= at
            && self.withdrawn_at.is_none_or(|withdrawn| at < withdrawn)
            && self.expired_at().is_none_or(|expired| at < expired)
    }

    /// True when a view of `organisation` shows it on `channel` (at any moment it is shown).
    pub fn applies_to(&self, organisation: &OrgCode, channel: &str) -> bool {
        (self.draft.organisation.is_national() || &self.draft.organisation == organisation)
            && self
                .draft
                .channel
                .as_deref()
                .is_none_or(|own| own == channel)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn channels() -> Vec<String> {
        vec!["conda-forge".to_owned(), "bioconda".to_owned()]
    }

    fn check(
        channel: &str,
        level: &str,
        message: &str,
    ) -> Result<ChannelNoticeDraft, Vec<FieldError>> {
        ChannelNoticeDraft::check(
            "RJ1".parse().unwrap(),
            channel,
            level,
            message,
            Some(day("2026-12-31")),
            &channels(),
            day("2026-12-05"),
        )
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|error| error.field).collect()
    }

    #[test]
    fn a_good_notice_is_trimmed_and_kept_as_plain_text() {
        let draft = check(
            " conda-forge ",
            "critical",
            "  <b>Move</b> off\r\nnumpy 1.x  ",
        )
        .unwrap();
        assert_eq!(draft.channel.as_deref(), Some("conda-forge"));
        assert_eq!(draft.level, NoticeLevel::Critical);
        assert_eq!(draft.message, "<b>Move</b> off\nnumpy 1.x");
        assert_eq!(check("", "info", "x").unwrap().channel, None);
    }

    #[test]
    fn hostile_or_empty_input_is_refused_field_by_field() {
        let errors = check("elsewhere", "loud", " \n ").unwrap_err();
        assert_eq!(fields(&errors), ["message", "level", "channel"]);
        assert!(
            errors[2].message.contains("conda-forge, bioconda"),
            "{errors:?}"
        );
        let escape = check("", "info", "look \u{1b}[31mred").unwrap_err();
        assert!(escape[0].message.contains("control characters"));
        let long = "x".repeat(MAX_MESSAGE_CHARS + 1);
        assert!(check("", "info", &long).unwrap_err()[0]
            .message
            .contains("1000"));
        assert!(check("", "info", &"é".repeat(MAX_MESSAGE_CHARS)).is_ok());
        let past = ChannelNoticeDraft::check(
            OrgCode::national(),
            "",
            "info",
            "x",
            Some(day("2026-12-04")),
            &channels(),
            day("2026-12-05"),
        )
        .unwrap_err();
        assert_eq!(fields(&past), ["expires"]);
    }

    #[test]
    fn a_notice_is_shown_from_writing_until_withdrawn_or_past_its_last_day() {
        let at = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 12, d, h, 0, 0).unwrap();
        let mut notice = ChannelNotice {
            id: "cn-1".to_owned(),
            draft: check("conda-forge", "info", "hello").unwrap(),
            created_at: at(5, 12),
            created_by: "user:cora".to_owned(),
            withdrawn_at: None,
            withdrawn_by: None,
        };
        notice.draft.expires = Some(day("2026-12-06"));
        assert!(!notice.is_shown_at(at(5, 11)));
        assert!(notice.is_shown_at(at(5, 12)));
        assert!(notice.is_shown_at(at(6, 23)));
        assert!(!notice.is_shown_at(at(7, 0)));
        notice.withdrawn_at = Some(at(6, 1));
        assert!(notice.is_shown_at(at(6, 0)) && !notice.is_shown_at(at(6, 1)));
        let rj1: OrgCode = "RJ1".parse().unwrap();
        let rqm: OrgCode = "RQM".parse().unwrap();
        assert!(notice.applies_to(&rj1, "conda-forge"));
        assert!(!notice.applies_to(&rj1, "bioconda") && !notice.applies_to(&rqm, "conda-forge"));
        notice.draft.organisation = OrgCode::national();
        notice.draft.channel = None;
        assert!(notice.applies_to(&rqm, "bioconda"));
    }
}
