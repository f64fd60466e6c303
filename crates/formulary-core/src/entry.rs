use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, Utc};
use formulary_ecosystems::VersionRange;
use serde::{Deserialize, Serialize};

use crate::component::Component;
use crate::error::{printable, CoreError};
use crate::organisation::OrgCode;

/// The status an entry gives the versions it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// May be used.
    Approved,
    /// May be used under the entry's constraints.
    ApprovedWithConstraints,
    /// May be used until the entry expires.
    Pilot,
    /// Being reviewed: not yet allowed in a curated view.
    UnderReview,
    /// Still allowed, but not for new use: move away from it.
    Divest,
    /// Must not be used.
    Prohibited,
}

impl Status {
    /// Every status, in the order people read them.
    pub const ALL: [Status; 6] = [
        Status::Approved,
        Status::ApprovedWithConstraints,
        Status::Pilot,
        Status::UnderReview,
        Status::Divest,
        Status::Prohibited,
    ];

    /// The kebab-case word used in the CLI, the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Approved => "approved",
            Status::ApprovedWithConstraints => "approved-with-constraints",
            Status::Pilot => "pilot",
            Status::UnderReview => "under-review",
            Status::Divest => "divest",
            Status::Prohibited => "prohibited",
        }
    }

    /// True for statuses that let a curated view serve the version (while unexpired).
    pub fn admits(self) -> bool {
        matches!(
            self,
            Status::Approved | Status::ApprovedWithConstraints | Status::Pilot | Status::Divest
        )
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == wanted)
            .ok_or_else(|| {
                CoreError::InvalidEntry(format!(
                    "'{}' is not a status; use one of approved, approved-with-constraints, pilot, under-review, divest, prohibited",
                    printable(text)
                ))
            })
    }
}

/// What an exception entry sets aside, until it expires.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "kebab-case")]
pub enum Waiver {
    /// One advisory (by its id or an alias), accepted by the risk owner.
    Advisory(String),
    /// The national prohibition of the covered versions, for this organisation only.
    NationalProhibition,
}

impl fmt::Display for Waiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Waiver::Advisory(id) => write!(f, "advisory {id}"),
            Waiver::NationalProhibition => f.write_str("the national prohibition"),
        }
    }
}

impl FromStr for Waiver {
    type Err = CoreError;

    /// Reads `national-prohibition` or an advisory id such as `GHSA-xxxx-xxxx-xxxx` or `PYSEC-2023-74`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("national-prohibition") {
            return Ok(Waiver::NationalProhibition);
        }
        let looks_like_id = (3..=64).contains(&text.len())
            && text.contains('-')
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if looks_like_id {
            Ok(Waiver::Advisory(text.to_owned()))
        } else {
            Err(CoreError::InvalidEntry(format!(
                "'{}' is neither an advisory id (such as PYSEC-2023-74) nor national-prohibition",
                printable(text)
            )))
        }
    }
}

/// What a person submits to create an entry: a decision about a range of a component's versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryDraft {
    /// The organisation whose formulary the entry belongs to.
    pub organisation: OrgCode,
    /// The component decided on.
    pub component: Component,
    /// The versions covered, in the ecosystem's syntax.
    pub range: VersionRange,
    /// The decision.
    pub status: Status,
    /// Conditions of use, for `approved-with-constraints` (and any other status that has some).
    pub constraints: Option<String>,
    /// When the decision should be looked at again.
    pub review_date: Option<NaiveDate>,
    /// When a pilot or an exception ends; from that day on it no longer applies.
    pub expires: Option<NaiveDate>,
    /// What this entry sets aside as an exception (needs an expiry).
    pub waives: Vec<Waiver>,
    /// Who decided.
    pub decided_by: String,
    /// Why.
    pub reason: String,
    /// The named person who answers questions about the component.
    pub mentor: Option<String>,
}

/// Longest free text accepted in an entry field.
pub const MAX_TEXT_LENGTH: usize = 4000;

impl EntryDraft {
    /// Checks the rules every entry must follow: a reason, an expiry for pilots and exceptions,
    /// exceptions only on allowing statuses, and text within limits.
    pub fn validate(&self) -> Result<(), CoreError> {
        let invalid = |why: &str| Err(CoreError::InvalidEntry(why.to_owned()));
        if self.range.ecosystem() != self.component.ecosystem() {
            return invalid("the range is written for another ecosystem than the component's");
        }
        if self.reason.trim().is_empty() {
            return invalid(
                "every decision needs a reason; say why (it is published in the decision log)",
            );
        }
        if self.decided_by.trim().is_empty() {
            return invalid("every decision needs the name of who decided");
        }
        let texts = [
            Some(&self.reason),
            self.constraints.as_ref(),
            self.mentor.as_ref(),
            Some(&self.decided_by),
        ];
        if texts
            .into_iter()
            .flatten()
            .any(|text| text.chars().count() > MAX_TEXT_LENGTH)
        {
            return invalid(
                "a text field is longer than 4000 characters; shorten it or link to a document",
            );
        }
        if self.status == Status::Pilot && self.expires.is_none() {
            return invalid("a pilot needs an expiry date (pilots usually run 90 days)");
        }
        if self.status == Status::ApprovedWithConstraints
            && self.constraints.as_deref().is_none_or(str::is_empty)
        {
            return invalid("approved-with-constraints needs the constraints written down");
        }
        if !self.waives.is_empty() {
            if self.expires.is_none() {
                return invalid("an exception needs an expiry date, signed off by the risk owner");
            }
            if !self.status.admits() || self.status == Status::Divest {
                return invalid("an exception must have an allowing status (approved, approved-with-constraints or pilot)");
            }
        }
        if self.waives.contains(&Waiver::NationalProhibition) && self.organisation.is_national() {
            return invalid("the national formulary cannot waive its own prohibition; change or remove that entry instead");
        }
        Ok(())
    }
}

/// A recorded decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Stable identifier.
    pub id: String,
    /// The decision's content.
    pub draft: EntryDraft,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

impl Entry {
    /// True when the entry still applies on `day` (no expiry, or expiring later than `day`).
    pub fn is_in_force_on(&self, day: NaiveDate) -> bool {
        self.draft.expires.is_none_or(|expires| day < expires)
    }
}

#[cfg(test)]
mod tests {
    use formulary_ecosystems::Ecosystem;

    use super::*;

    fn draft(status: Status) -> EntryDraft {
        EntryDraft {
            organisation: OrgCode::national(),
            component: Component::new(Ecosystem::Pypi, "requests").unwrap(),
            range: VersionRange::every(Ecosystem::Pypi),
            status,
            constraints: None,
            review_date: None,
            expires: None,
            waives: Vec::new(),
            decided_by: "curator".to_owned(),
            reason: "widely used".to_owned(),
            mentor: None,
        }
    }

    #[test]
    fn statuses_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>().unwrap(), status);
        }
    }

    #[test]
    fn pilots_and_exceptions_need_expiry() {
        assert!(draft(Status::Pilot).validate().is_err());
        let mut exception = draft(Status::Approved);
        exception
            .waives
            .push(Waiver::Advisory("PYSEC-2023-74".to_owned()));
        assert!(exception.validate().is_err());
        exception.expires = NaiveDate::from_ymd_opt(2027, 1, 1);
        assert!(exception.validate().is_ok());
    }

    #[test]
    fn a_prohibition_cannot_be_an_exception_and_reasons_are_required() {
        let mut prohibited = draft(Status::Prohibited);
        prohibited
            .waives
            .push(Waiver::Advisory("PYSEC-2023-74".to_owned()));
        prohibited.expires = NaiveDate::from_ymd_opt(2027, 1, 1);
        assert!(prohibited.validate().is_err());
        let mut silent = draft(Status::Approved);
        silent.reason = " ".to_owned();
        assert!(silent.validate().is_err());
    }
}
