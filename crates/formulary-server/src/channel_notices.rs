//! Channel notices: the rules shared by the administration page
//! (`web::admin::channel_notices`) and the JSON API (`api::channel_notices`), so both refuse
//! the same things with the same words. A national curator writes notices for `NATIONAL`
//! (every organisation's views) and for any organisation; an organisation admin for their own
//! organisation; anyone else is refused with 403 by [`crate::people::administered_organisation`].
//! The store audits every change under the writer's name.

use chrono::{DateTime, NaiveDate, Utc};
use formulary_core::channel_notice::{ChannelNotice, ChannelNoticeDraft};
use formulary_core::request::FieldError;
use formulary_core::Organisation;
use serde::Serialize;

use crate::error::ApiError;
use crate::state::AppState;

/// The conda channels this server serves, in name order (none when conda is not configured).
pub(crate) fn served_channels(state: &AppState) -> Vec<String> {
    state
        .conda
        .as_deref()
        .map(|gateway| gateway.channels().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The notice typed for `organisation`, checked against the channels served and today.
pub(crate) fn check(
    state: &AppState,
    organisation: &Organisation,
    channel: &str,
    level: &str,
    message: &str,
    expires: Option<NaiveDate>,
) -> Result<ChannelNoticeDraft, Vec<FieldError>> {
    ChannelNoticeDraft::check(
        organisation.code.clone(),
        channel,
        level,
        message,
        expires,
        &served_channels(state),
        Utc::now().date_naive(),
    )
}

/// The notice `id` when it is `organisation`'s; any other is "not found" here, so one trust
/// cannot even learn another's notice ids.
pub(crate) async fn own_notice(
    state: &AppState,
    organisation: &Organisation,
    id: &str,
) -> Result<ChannelNotice, ApiError> {
    let notice = state.database.channel_notice(id).await;
    match notice {
        Ok(notice) if notice.draft.organisation == organisation.code => Ok(notice),
        Ok(_) | Err(formulary_store::StoreError::NotFound(_)) => Err(ApiError::not_found(format!(
            "{} has no channel notice '{}'; list them at /api/v1/organisations/{}/channel-notices",
            organisation.code,
            id.escape_debug(),
            organisation.code
        ))),
        Err(error) => Err(error.into()),
    }
}

/// Where a notice stands now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Standing {
    /// In `notices.json` now.
    Shown,
    /// Withdrawn by someone.
    Withdrawn,
    /// Past its last day.
    Expired,
}

impl Standing {
    /// Where `notice` stands at `now`.
    pub(crate) fn of(notice: &ChannelNotice, now: DateTime<Utc>) -> Standing {
        if notice.withdrawn_at.is_some_and(|at| at <= now) {
            Standing::Withdrawn
        } else if notice.is_shown_at(now) {
            Standing::Shown
        } else {
            Standing::Expired
        }
    }
}

/// A notice as the API answers it: what was written, who wrote and withdrew it, and where it
/// stands.
#[derive(Debug, Serialize)]
pub(crate) struct NoticeView {
    #[serde(flatten)]
    notice: ChannelNotice,
    /// `shown`, `withdrawn` or `expired`.
    standing: Standing,
}

impl From<ChannelNotice> for NoticeView {
    fn from(notice: ChannelNotice) -> NoticeView {
        NoticeView {
            standing: Standing::of(&notice, Utc::now()),
            notice,
        }
    }
}
