//! Timestamps are stored as RFC 3339 UTC text with a fixed number of digits, so that text order is
//! time order on every database.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::error::StoreError;

pub(crate) fn to_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `time` as it reads back after [`to_text`] (to the microsecond, truncated).
pub(crate) fn to_stored_precision(time: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound as _;
    time.trunc_subsecs(6)
}

pub(crate) fn from_text(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| StoreError::corrupt("timestamp", format!("'{text}': {error}")))
}

pub(crate) fn optional_from_text(
    text: Option<String>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.as_deref().map(from_text).transpose()
}

pub(crate) fn day_from_text(text: Option<String>) -> Result<Option<NaiveDate>, StoreError> {
    text.map(|text| {
        text.parse::<NaiveDate>()
            .map_err(|error| StoreError::corrupt("date", format!("'{text}': {error}")))
    })
    .transpose()
}

/// The current time at the precision stored (microseconds), so that what is returned from a write
/// equals what is later read back.
pub(crate) fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}
