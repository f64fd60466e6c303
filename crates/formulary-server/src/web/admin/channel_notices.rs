//! `/admin/{org}/channel-notices`: the notices the organisation's conda users read in each
//! channel's `notices.json` (CEP-6), beside the standing prohibitions: list them (shown,
//! withdrawn, expired), write one (message, level, channel, last day) and withdraw one. The
//! national organisation's notices apply to every organisation's views. The rules are shared
//! with the API ([`crate::channel_notices`]); the store audits every change.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{NaiveDate, Utc};
use formulary_core::channel_notice::{ChannelNotice, NoticeLevel, MAX_MESSAGE_CHARS};
use formulary_core::request::FieldError;
use formulary_core::Organisation;
use maud::{html, Markup};
use serde::Deserialize;

use super::{caption, done_banner, organisation_for, select, subnav};
use crate::channel_notices::{check, own_notice, served_channels, Standing};
use crate::state::AppState;
use crate::web::page::{self, Field, Section};
use crate::web::session::{PostedForm, SignedIn};
use crate::web::WebError;

/// What the page confirms after a change (`?done=`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
}

/// The new notice's form, as posted.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct NoticeForm {
    message: String,
    level: String,
    channel: String,
    expires: String,
}

/// The form's last day, or why it cannot be read.
fn expiry(text: &str) -> Result<Option<NaiveDate>, FieldError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse::<NaiveDate>().map(Some).map_err(|_| {
        FieldError::new(
            "expires",
            "Enter the last day as YYYY-MM-DD, for example 2027-03-31, or leave it empty",
        )
    })
}

fn standing_tag(standing: Standing) -> Markup {
    let (class, text) = match standing {
        Standing::Shown => ("nhsuk-tag--green", "Shown"),
        Standing::Withdrawn => ("nhsuk-tag--grey", "Withdrawn"),
        Standing::Expired => ("nhsuk-tag--grey", "Expired"),
    };
    html! { strong class={ "nhsuk-tag " (class) } { (text) } }
}

fn level_tag(level: NoticeLevel) -> Markup {
    let class = match level {
        NoticeLevel::Info => "nhsuk-tag--blue",
        NoticeLevel::Warning => "nhsuk-tag--orange",
        NoticeLevel::Critical => "nhsuk-tag--red",
    };
    html! { strong class={ "nhsuk-tag " (class) } { (level.as_str()) } }
}

fn notice_rows(notices: &[ChannelNotice], code: &str, csrf: &str) -> Markup {
    let now = Utc::now();
    html! {
        table.nhsuk-table #notices {
            caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Channel notices of " (code) }
            thead.nhsuk-table__head { tr {
                th scope="col" { "Message" } th scope="col" { "Level" } th scope="col" { "Channel" } th scope="col" { "Last day" } th scope="col" { "Now" }
            } }
            tbody.nhsuk-table__body {
                @for notice in notices {
                    @let standing = Standing::of(notice, now);
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell {
                            (page::prose(&notice.draft.message))
                            span.nhsuk-body-s { "Written by " (notice.created_by) ", " (page::when(notice.created_at)) }
                            @if let (Some(at), Some(by)) = (notice.withdrawn_at, &notice.withdrawn_by) {
                                br; span.nhsuk-body-s { "Withdrawn by " (by) ", " (page::when(at)) }
                            }
                        }
                        td.nhsuk-table__cell { (level_tag(notice.draft.level)) }
                        td.nhsuk-table__cell { @if let Some(channel) = &notice.draft.channel { code { (channel) } } @else { "Every channel" } }
                        td.nhsuk-table__cell { @if let Some(day) = notice.draft.expires { (day.format("%-d %B %Y")) } @else { "Until withdrawn" } }
                        td.nhsuk-table__cell {
                            (standing_tag(standing))
                            @if standing == Standing::Shown {
                                form method="post" action={ "/admin/" (code) "/channel-notices/" (notice.id) "/withdraw" } {
                                    (page::csrf_field(csrf))
                                    button.nhsuk-button.nhsuk-button--secondary.nhsuk-u-margin-bottom-0.nhsuk-u-margin-top-2 type="submit" {
                                        "Withdraw" span.nhsuk-u-visually-hidden { " the notice written " (page::when(notice.created_at)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn render(
    state: &AppState,
    signed_in: &SignedIn,
    organisation: &Organisation,
    form: &NoticeForm,
    errors: &[FieldError],
    done: Option<&str>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let mut notices = state
        .database
        .channel_notices_of(std::slice::from_ref(&organisation.code))
        .await?;
    notices.reverse();
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let code = organisation.code.as_str();
    let channels = served_channels(state);
    let mut channel_options: Vec<(&str, &str)> = vec![("", "Every channel")];
    channel_options.extend(
        channels
            .iter()
            .map(|channel| (channel.as_str(), channel.as_str())),
    );
    let levels: Vec<(&str, &str)> = vec![
        ("info", "Info: for information"),
        ("warning", "Warning: something to act on"),
        ("critical", "Critical: something to act on at once"),
    ];
    let whose = if organisation.code.is_national() {
        "every organisation's conda users (the national notices are in every view)".to_owned()
    } else {
        format!("the conda users of {code}'s views (/o/{code}/conda/…)")
    };
    let message_hint = format!(
        "Plain text, up to {MAX_MESSAGE_CHARS} characters; conda prints it as it is, so say what happened, why, and what to do next"
    );
    let content = html! {
        (subnav(organisation, "channel-notices"))
        (page::error_summary(errors))
        (done_banner(done))
        (caption(organisation))
        h1 { "Channel notices" }
        p { "Notices are shown to " (whose) " by " code { "conda notices" } " and after installs, beside the notices about prohibited packages, until they are withdrawn or past their last day. Withdrawn notices stay listed here and in the audit log." }
        @if notices.is_empty() { p #no-notices { "No channel notices yet." } } @else { (notice_rows(&notices, code, csrf)) }
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            h2.nhsuk-heading-m #write { "Write a notice" }
            form method="post" action={ "/admin/" (code) "/channel-notices" } novalidate {
                (page::csrf_field(csrf))
                (page::textarea(Field { name: "message", label: "Message", hint: Some(message_hint.as_str()), value: &form.message }, 3, errors))
                (page::radios("level", "Level", Some("How conda presents it"), &levels, if form.level.is_empty() { "info" } else { &form.level }, errors))
                (select("channel", "Channel", Some("The conda channel it is about, or every channel"), &channel_options, &form.channel, errors))
                (page::input(Field { name: "expires", label: "Last day shown (optional)", hint: Some("As YYYY-MM-DD (UTC); empty shows it until it is withdrawn"), value: &form.expires }, "text", Some("off"), errors))
                button.nhsuk-button type="submit" { "Publish notice" }
            }
        } }
    };
    let title = format!("Channel notices of {code}");
    Ok(page::render_with_status(
        status,
        &signed_in.viewer,
        Section::Admin,
        &title,
        !errors.is_empty(),
        content,
    )
    .into_response())
}

fn done_message(done: &str) -> Option<&'static str> {
    match done {
        "published" => {
            Some("The notice has been published; conda shows it the next time it fetches the channel's notices.")
        }
        "withdrawn" => Some("The notice has been withdrawn; it is no longer in notices.json."),
        _ => None,
    }
}

/// `GET /admin/{org}/channel-notices`.
pub(crate) async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    render(
        &state,
        &signed_in,
        &organisation,
        &NoticeForm::default(),
        &[],
        done_message(&done.done),
        StatusCode::OK,
    )
    .await
}

/// `POST /admin/{org}/channel-notices`.
pub(crate) async fn add(
    State(state): State<AppState>,
    Path(org): Path<String>,
    posted: PostedForm<NoticeForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let expires = expiry(&form.expires);
    let checked = check(
        &state,
        &organisation,
        &form.channel,
        &form.level,
        &form.message,
        expires.clone().ok().flatten(),
    );
    let draft = match (checked, expires) {
        (Ok(draft), Ok(_)) => draft,
        (checked, expires) => {
            let mut errors = checked.err().unwrap_or_default();
            errors.extend(expires.err());
            return render(
                &state,
                &signed_in,
                &organisation,
                &form,
                &errors,
                None,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    state
        .database
        .add_channel_notice(&draft, &signed_in.principal.actor)
        .await?;
    // The audit row moved the change counter: rebuild now, so the local copy (kept with the
    // snapshot) is current at once rather than at the next poll.
    state.snapshot.refresh(&state.database).await?;
    Ok(Redirect::to(&format!(
        "/admin/{}/channel-notices?done=published",
        organisation.code
    ))
    .into_response())
}

/// `POST /admin/{org}/channel-notices/{id}/withdraw`: only a notice of this organisation.
pub(crate) async fn withdraw(
    State(state): State<AppState>,
    Path((org, id)): Path<(String, String)>,
    posted: PostedForm<Done>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, .. } = posted;
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let notice = own_notice(&state, &organisation, &id)
        .await
        .map_err(|error| WebError::from(error).seen_by(&signed_in.viewer))?;
    state
        .database
        .withdraw_channel_notice(&notice.id, &signed_in.principal.actor)
        .await?;
    // The audit row moved the change counter: rebuild now, so the local copy (kept with the
    // snapshot) is current at once rather than at the next poll.
    state.snapshot.refresh(&state.database).await?;
    Ok(Redirect::to(&format!(
        "/admin/{}/channel-notices?done=withdrawn",
        organisation.code
    ))
    .into_response())
}
