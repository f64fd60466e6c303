//! The page shell and the form parts every page uses, following the NHS.UK design system's
//! markup (header, width container, error summary, form groups, tags, summary lists). Pages are
//! server-rendered and need no JavaScript; maud escapes every interpolated value.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use formulary_core::request::{FieldError, RequestState};
use formulary_core::Status;
use maud::{html, Markup, DOCTYPE};

use super::session::Viewer;

/// The sections of the site, for the navigation's current-page marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// The home page.
    Home,
    /// Search and component pages.
    Catalogue,
    /// Requests.
    Requests,
    /// The public decision log.
    Decisions,
    /// The metrics page.
    Metrics,
    /// The audit log.
    Audit,
    /// Sign in.
    Account,
    /// Administration.
    Admin,
}

/// A rendered page with its status.
#[derive(Debug)]
pub struct Page {
    status: StatusCode,
    body: String,
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        (self.status, Html(self.body)).into_response()
    }
}

/// Renders `content` inside the site's shell. `errors` prefixes the title with "Error:" so
/// screen-reader users hear at once that the form needs attention.
pub fn render(
    viewer: &Viewer,
    section: Section,
    title: &str,
    has_errors: bool,
    content: Markup,
) -> Page {
    render_with_status(StatusCode::OK, viewer, section, title, has_errors, content)
}

/// Like [`render`], with a status other than 200.
pub fn render_with_status(
    status: StatusCode,
    viewer: &Viewer,
    section: Section,
    title: &str,
    has_errors: bool,
    content: Markup,
) -> Page {
    let full_title = format!(
        "{}{title} – Formulary",
        if has_errors { "Error: " } else { "" }
    );
    let link = |href: &str, label: &str, here: Section| {
        html! {
            li { a href=(href) aria-current=[(section == here).then_some("page")] { (label) } }
        }
    };
    let principal = viewer.principal.as_ref();
    let markup = html! {
        (DOCTYPE)
        html lang="en-GB" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (full_title) }
                link rel="stylesheet" href="/assets/nhsuk-frontend.min.css";
                link rel="stylesheet" href="/assets/formulary.css";
            }
            body {
                a.nhsuk-skip-link href="#maincontent" { "Skip to main content" }
                header.nhsuk-header role="banner" {
                    div.nhsuk-header__container.nhsuk-width-container {
                        div.nhsuk-header__service {
                            a.nhsuk-header__service-name href="/" { "Formulary" }
                        }
                    }
                    div.nhsuk-width-container {
                        @if let Some(principal) = principal {
                            div.formulary-account {
                                "Signed in as " strong { (principal.name) } " (" (principal.describe_roles()) ") · "
                                a href="/account" { "Your account" } " · "
                                form.formulary-inline-form method="post" action="/sign-out" {
                                    input type="hidden" name="csrf_token" value=(viewer.csrf_token.as_deref().unwrap_or(""));
                                    button.formulary-link-button type="submit" { "Sign out" }
                                }
                            }
                        }
                        nav aria-label="Main" {
                            ul.formulary-header-nav {
                                (link("/components", "Catalogue", Section::Catalogue))
                                (link("/requests", "Requests", Section::Requests))
                                (link("/decisions", "Decision log", Section::Decisions))
                                (link("/metrics", "Metrics", Section::Metrics))
                                @if principal.is_some_and(|principal| principal.may_read_audit()) {
                                    (link("/audit", "Audit log", Section::Audit))
                                }
                                @if principal.is_some_and(super::admin::is_admin) {
                                    (link("/admin", "Administration", Section::Admin))
                                }
                                @if principal.is_none() {
                                    (link("/sign-in", "Sign in", Section::Account))
                                }
                            }
                        }
                    }
                }
                div.nhsuk-width-container {
                    main.nhsuk-main-wrapper #maincontent role="main" {
                        (content)
                    }
                }
                footer.nhsuk-footer role="contentinfo" {
                    div.nhsuk-width-container {
                        p.nhsuk-body-s {
                            "Formulary " (env!("CARGO_PKG_VERSION")) ": which open-source software may be used, on what evidence. "
                            a href="/api/v1/openapi.json" { "JSON API" } " · "
                            a href="/decisions" { "Public decision log" }
                        }
                    }
                }
            }
        }
    };
    Page {
        status,
        body: markup.into_string(),
    }
}

/// The error summary at the top of a form: each problem links to its field. It takes focus on
/// load (`autofocus`), so keyboard and screen-reader users land on it without JavaScript.
pub fn error_summary(errors: &[FieldError]) -> Markup {
    html! {
        @if !errors.is_empty() {
            div.nhsuk-error-summary aria-labelledby="error-summary-title" role="alert" tabindex="-1" autofocus {
                h2.nhsuk-error-summary__title #error-summary-title { "There is a problem" }
                div.nhsuk-error-summary__body {
                    ul.nhsuk-list.nhsuk-error-summary__list {
                        @for error in errors {
                            li { a href={ "#" (error.field) } { (error.message) } }
                        }
                    }
                }
            }
        }
    }
}

fn field_error<'a>(errors: &'a [FieldError], field: &str) -> Option<&'a FieldError> {
    errors.iter().find(|error| error.field == field)
}

fn described_by(field: &str, hint: Option<&str>, error: bool) -> Option<String> {
    let mut ids = Vec::new();
    if hint.is_some() {
        ids.push(format!("{field}-hint"));
    }
    if error {
        ids.push(format!("{field}-error"));
    }
    (!ids.is_empty()).then(|| ids.join(" "))
}

fn error_message(field: &str, error: Option<&FieldError>) -> Markup {
    html! {
        @if let Some(error) = error {
            span.nhsuk-error-message id={ (field) "-error" } {
                span.nhsuk-u-visually-hidden { "Error:" } " " (error.message)
            }
        }
    }
}

/// What a text field shows.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    /// The form name, which is also the input's id.
    pub name: &'a str,
    /// The visible label.
    pub label: &'a str,
    /// Help shown under the label.
    pub hint: Option<&'a str>,
    /// The current value.
    pub value: &'a str,
}

/// A one-line text input (`kind` is the input type: text, password, number, date).
pub fn input(
    field: Field<'_>,
    kind: &str,
    autocomplete: Option<&str>,
    errors: &[FieldError],
) -> Markup {
    let error = field_error(errors, field.name);
    html! {
        div.nhsuk-form-group.nhsuk-form-group--error[error.is_some()] {
            label.nhsuk-label for=(field.name) { (field.label) }
            @if let Some(hint) = field.hint { div.nhsuk-hint id={ (field.name) "-hint" } { (hint) } }
            (error_message(field.name, error))
            input.nhsuk-input.nhsuk-input--error[error.is_some()] id=(field.name) name=(field.name) type=(kind)
                value=(field.value) autocomplete=[autocomplete] spellcheck="false"
                aria-describedby=[described_by(field.name, field.hint, error.is_some())];
        }
    }
}

/// A multi-line text box.
pub fn textarea(field: Field<'_>, rows: u8, errors: &[FieldError]) -> Markup {
    let error = field_error(errors, field.name);
    html! {
        div.nhsuk-form-group.nhsuk-form-group--error[error.is_some()] {
            label.nhsuk-label for=(field.name) { (field.label) }
            @if let Some(hint) = field.hint { div.nhsuk-hint id={ (field.name) "-hint" } { (hint) } }
            (error_message(field.name, error))
            textarea.nhsuk-textarea.nhsuk-textarea--error[error.is_some()] id=(field.name) name=(field.name) rows=(rows)
                aria-describedby=[described_by(field.name, field.hint, error.is_some())] { (field.value) }
        }
    }
}

/// A set of radio buttons; the first option's input carries the field's id, so that the error
/// summary's link lands on it.
pub fn radios(
    name: &str,
    legend: &str,
    hint: Option<&str>,
    options: &[(&str, &str)],
    selected: &str,
    errors: &[FieldError],
) -> Markup {
    let error = field_error(errors, name);
    html! {
        div.nhsuk-form-group.nhsuk-form-group--error[error.is_some()] {
            fieldset.nhsuk-fieldset aria-describedby=[described_by(name, hint, error.is_some())] {
                legend.nhsuk-fieldset__legend.nhsuk-fieldset__legend--s { (legend) }
                @if let Some(hint) = hint { div.nhsuk-hint id={ (name) "-hint" } { (hint) } }
                (error_message(name, error))
                div.nhsuk-radios {
                    @for (index, (value, label)) in options.iter().enumerate() {
                        @let id = if index == 0 { name.to_owned() } else { format!("{name}-{value}") };
                        div.nhsuk-radios__item {
                            input.nhsuk-radios__input id=(id) name=(name) type="radio" value=(value) checked[*value == selected];
                            label.nhsuk-label.nhsuk-radios__label for=(id) { (label) }
                        }
                    }
                }
            }
        }
    }
}

/// The hidden field that proves a form came from this site (CSRF protection).
pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name="csrf_token" value=(token); }
}

/// A coloured tag for an entry status.
pub fn status_tag(status: Status) -> Markup {
    let colour = match status {
        Status::Approved => "nhsuk-tag--green",
        Status::ApprovedWithConstraints => "nhsuk-tag--aqua-green",
        Status::Pilot => "nhsuk-tag--blue",
        Status::UnderReview => "nhsuk-tag--yellow",
        Status::Divest => "nhsuk-tag--orange",
        Status::Prohibited => "nhsuk-tag--red",
    };
    html! { strong class={ "nhsuk-tag " (colour) } { (status.as_str().replace('-', " ")) } }
}

/// A coloured tag for a request state.
pub fn state_tag(state: RequestState) -> Markup {
    let colour = match state {
        RequestState::Submitted => "nhsuk-tag--grey",
        RequestState::InReview => "nhsuk-tag--yellow",
        RequestState::Approved => "nhsuk-tag--green",
        RequestState::ApprovedWithConstraints => "nhsuk-tag--aqua-green",
        RequestState::Pilot => "nhsuk-tag--blue",
        RequestState::Rejected => "nhsuk-tag--red",
        RequestState::Withdrawn => "nhsuk-tag--white",
    };
    html! { strong class={ "nhsuk-tag " (colour) } { (state.label()) } }
}

/// A tag saying whether a version is allowed.
pub fn allowed_tag(allowed: bool) -> Markup {
    if allowed {
        html! { strong.nhsuk-tag.nhsuk-tag--green { "Allowed" } }
    } else {
        html! { strong.nhsuk-tag.nhsuk-tag--red { "Blocked" } }
    }
}

/// A time as people in England read it, e.g. `21 November 2026, 14:05 UTC`.
pub fn when(time: DateTime<Utc>) -> String {
    time.format("%-d %B %Y, %H:%M UTC").to_string()
}

/// How long ago, roughly: `3 days 4 hours`, `25 minutes`.
pub fn elapsed(since: DateTime<Utc>, until: DateTime<Utc>) -> String {
    let minutes = (until - since).num_minutes().max(0);
    let (days, hours, minutes) = (minutes / 1440, (minutes % 1440) / 60, minutes % 60);
    let plural =
        |count: i64, unit: &str| format!("{count} {unit}{}", if count == 1 { "" } else { "s" });
    match (days, hours) {
        (0, 0) => plural(minutes, "minute"),
        (0, hours) => format!("{} {}", plural(hours, "hour"), plural(minutes, "minute")),
        (days, hours) => format!("{} {}", plural(days, "day"), plural(hours, "hour")),
    }
}

/// Text kept as typed: line breaks preserved, markup escaped.
pub fn prose(text: &str) -> Markup {
    html! { div.formulary-pre { (text) } }
}

/// A non-breaking marker for empty cells.
pub fn none() -> Markup {
    html! { span.nhsuk-u-secondary-text-colour { "None" } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_link_each_error_to_its_field_and_escape_messages() {
        let errors = [FieldError::new("problem", "<b>Describe</b> the problem")];
        let markup = error_summary(&errors).into_string();
        assert!(markup.contains(r##"href="#problem""##), "{markup}");
        assert!(markup.contains("&lt;b&gt;Describe"), "{markup}");
        let field = input(
            Field {
                name: "problem",
                label: "Problem",
                hint: Some("Say why"),
                value: "\"><script>",
            },
            "text",
            None,
            &errors,
        )
        .into_string();
        assert!(field.contains("nhsuk-form-group--error"));
        assert!(
            field.contains(r#"aria-describedby="problem-hint problem-error""#),
            "{field}"
        );
        assert!(!field.contains("<script>"), "{field}");
    }

    #[test]
    fn elapsed_time_reads_naturally() {
        let start = DateTime::parse_from_rfc3339("2026-11-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            elapsed(start, start + chrono::Duration::minutes(1)),
            "1 minute"
        );
        assert_eq!(
            elapsed(start, start + chrono::Duration::minutes(125)),
            "2 hours 5 minutes"
        );
        assert_eq!(
            elapsed(start, start + chrono::Duration::hours(50)),
            "2 days 2 hours"
        );
    }
}
