//! `/admin/{org}/settings`: an organisation's rules per ecosystem (stance, severity threshold,
//! cooldown, allowed licences) beside the national baseline. An overlay may only tighten the
//! baseline: a loosening is refused with the reason against each field, as the API refuses it
//! (the store checks again inside its transaction). National curators set the baseline itself
//! on the national organisation's page.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use formulary_core::ecosystems::Ecosystem;
use formulary_core::request::FieldError;
use formulary_core::{EcosystemSettings, InstallScripts, OrgCode, Organisation, Severity, Stance};
use formulary_store::StoreError;
use maud::html;
use serde::Deserialize;

use super::{caption, done_banner, organisation_for, select, sentence, subnav};
use crate::error::ApiError;
use crate::state::AppState;
use crate::web::page::{self, Field, Section};
use crate::web::session::{PostedForm, SignedIn};
use crate::web::WebError;

const SEVERITIES: [(&str, &str); 4] = [
    (
        "low",
        "Low: block advisories of low severity and above (strictest)",
    ),
    ("medium", "Medium and above"),
    ("high", "High and above"),
    ("critical", "Critical only (most lenient)"),
];

/// What the page confirms after a change (`?done=`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
}

fn describe(settings: &EcosystemSettings) -> String {
    format!(
        "{}; blocks advisories rated {} and above; {} days' cooldown; licences: {}{}",
        settings.stance,
        settings.severity_threshold,
        settings.cooldown_days,
        if settings.allowed_licences.is_empty() {
            "any".to_owned()
        } else {
            settings.allowed_licences.join(", ")
        },
        match settings.install_scripts {
            InstallScripts::Allow => "",
            InstallScripts::Deny => "; install scripts denied",
        }
    )
}

fn national_of(state: &AppState, ecosystem: Ecosystem) -> EcosystemSettings {
    state
        .snapshot
        .current()
        .settings_for(&OrgCode::national(), ecosystem)
}

fn parse_ecosystem(text: &str) -> Result<Ecosystem, WebError> {
    text.parse().map_err(|_| {
        ApiError::not_found(format!(
            "there is no ecosystem '{}'; use one of {}",
            text.escape_debug(),
            Ecosystem::ALL
                .map(|ecosystem| ecosystem.as_str())
                .join(", ")
        ))
        .into()
    })
}

/// `GET /admin/{org}/settings`: the settings in force per ecosystem, beside the baseline.
pub(crate) async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let snapshot = state.snapshot.current();
    let code = &organisation.code;
    let content = html! {
        (subnav(&organisation, "settings"))
        (done_banner((done.done == "saved").then_some("The settings have been saved and apply to the gateway now.")))
        (caption(&organisation))
        h1 { "Settings" }
        @if code.is_national() {
            p { "These are the national baseline: every organisation's settings may only be as strict or stricter." }
        } @else {
            p { "Your organisation's settings apply on top of the national baseline and may only tighten it. To let one version through that the baseline blocks, a national curator adds an exception entry, which expires." }
        }
        table.nhsuk-table #settings {
            caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Settings per ecosystem" }
            thead.nhsuk-table__head { tr { th scope="col" { "Ecosystem" } th scope="col" { "In force for " (code) } @if !code.is_national() { th scope="col" { "National baseline" } } th scope="col" { "Action" } } }
            tbody.nhsuk-table__body {
                @for ecosystem in Ecosystem::ALL {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { (ecosystem.display_name()) }
                        td.nhsuk-table__cell { (describe(&snapshot.settings_for(code, ecosystem))) }
                        @if !code.is_national() { td.nhsuk-table__cell { (describe(&national_of(&state, ecosystem))) } }
                        td.nhsuk-table__cell { a href={ "/admin/" (code) "/settings/" (ecosystem.as_str()) } { "Change" span.nhsuk-u-visually-hidden { " " (ecosystem.display_name()) " settings" } } }
                    }
                }
            }
        }
    };
    let title = format!("Settings of {code}");
    Ok(page::render(&signed_in.viewer, Section::Admin, &title, false, content).into_response())
}

/// The settings form, as posted (and as shown).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default)]
pub(crate) struct SettingsForm {
    stance: String,
    severity_threshold: String,
    cooldown_days: String,
    allowed_licences: String,
    install_scripts: String,
}

impl SettingsForm {
    fn from_settings(settings: &EcosystemSettings) -> SettingsForm {
        SettingsForm {
            stance: settings.stance.as_str().to_owned(),
            severity_threshold: settings.severity_threshold.as_str().to_owned(),
            cooldown_days: settings.cooldown_days.to_string(),
            allowed_licences: settings.allowed_licences.join(", "),
            install_scripts: settings.install_scripts.as_str().to_owned(),
        }
    }

    fn check(&self) -> Result<EcosystemSettings, Vec<FieldError>> {
        let mut errors = Vec::new();
        let stance = self.stance.parse::<Stance>().ok();
        if stance.is_none() {
            errors.push(FieldError::new("stance", "Select curated or open"));
        }
        let severity = self.severity_threshold.parse::<Severity>().ok();
        if severity.is_none() {
            errors.push(FieldError::new(
                "severity_threshold",
                "Select the lowest severity of advisory that blocks a version",
            ));
        }
        let cooldown = self
            .cooldown_days
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|days| *days <= EcosystemSettings::MAX_COOLDOWN_DAYS);
        if cooldown.is_none() {
            errors.push(FieldError::new(
                "cooldown_days",
                format!(
                    "Enter a whole number of days from 0 to {}",
                    EcosystemSettings::MAX_COOLDOWN_DAYS
                ),
            ));
        }
        // Absent (a form from before the setting existed) means allow.
        let install_scripts = if self.install_scripts.trim().is_empty() {
            Some(InstallScripts::Allow)
        } else {
            self.install_scripts.parse::<InstallScripts>().ok()
        };
        if install_scripts.is_none() {
            errors.push(FieldError::new(
                "install_scripts",
                "Select whether versions that run install scripts are served",
            ));
        }
        let licences: Vec<String> = self
            .allowed_licences
            .split([',', ' ', '\n'])
            .map(str::trim)
            .filter(|licence| !licence.is_empty())
            .map(str::to_owned)
            .collect();
        let (Some(stance), Some(severity_threshold), Some(cooldown_days), Some(install_scripts)) =
            (stance, severity, cooldown, install_scripts)
        else {
            return Err(errors);
        };
        let settings = EcosystemSettings {
            stance,
            severity_threshold,
            allowed_licences: licences,
            cooldown_days,
            install_scripts,
        };
        if let Err(error) = settings.validate() {
            errors.push(FieldError::new(
                "allowed_licences",
                sentence(&error.to_string()),
            ));
        }
        if errors.is_empty() {
            Ok(settings)
        } else {
            Err(errors)
        }
    }
}

/// Each loosening of the baseline, against the field that causes it.
fn loosening_errors(settings: &EcosystemSettings, national: &EcosystemSettings) -> Vec<FieldError> {
    settings
        .loosenings(national)
        .into_iter()
        .map(|why| {
            let field = if why.contains("stance") {
                "stance"
            } else if why.contains("severity") {
                "severity_threshold"
            } else if why.contains("cooldown") {
                "cooldown_days"
            } else if why.contains("install scripts") {
                "install_scripts"
            } else {
                "allowed_licences"
            };
            FieldError::new(
                field,
                format!(
                    "{}: an organisation's settings may only tighten the national baseline. Keep the national value or a stricter one; for one version the baseline blocks, ask a national curator for an expiring exception",
                    sentence(&why)
                ),
            )
        })
        .collect()
}

async fn render_form(
    state: &AppState,
    signed_in: &SignedIn,
    organisation: &Organisation,
    ecosystem: Ecosystem,
    form: &SettingsForm,
    errors: &[FieldError],
    status: StatusCode,
) -> Result<Response, WebError> {
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let code = &organisation.code;
    let national = national_of(state, ecosystem);
    let content = html! {
        (subnav(organisation, "settings"))
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            (page::error_summary(errors))
            (caption(organisation))
            h1 { (ecosystem.display_name()) " settings" }
            @if !code.is_national() {
                div.nhsuk-inset-text #baseline {
                    span.nhsuk-u-visually-hidden { "Information: " }
                    p { "National baseline: " (describe(&national)) ". Your settings may be as strict or stricter." }
                }
            }
            form method="post" action={ "/admin/" (code) "/settings/" (ecosystem.as_str()) } novalidate {
                (page::csrf_field(csrf))
                (page::radios("stance", "Stance", Some("Curated serves only what an entry approves; open serves everything the policy does not block"), &[("curated", "Curated"), ("open", "Open")], &form.stance, errors))
                (select("severity_threshold", "Advisories that block a version", None, &SEVERITIES, &form.severity_threshold, errors))
                (page::input(Field { name: "cooldown_days", label: "Cooldown in days", hint: Some("New releases wait this long before they are served, so that malicious ones are found first"), value: &form.cooldown_days }, "text", Some("off"), errors))
                (page::input(Field { name: "allowed_licences", label: "Allowed licences (optional)", hint: Some("SPDX identifiers separated by commas, for example MIT, Apache-2.0; empty allows any"), value: &form.allowed_licences }, "text", Some("off"), errors))
                @if ecosystem == Ecosystem::Npm {
                    (page::radios("install_scripts", "Install scripts", Some("Packages with a preinstall, install or postinstall script run code on the machine that installs them. Deny refuses such versions unless an entry approves the version"), &[("allow", "Allow (flagged on the component page)"), ("deny", "Deny")], &form.install_scripts, errors))
                } @else {
                    input type="hidden" name="install_scripts" value=(form.install_scripts);
                }
                button.nhsuk-button type="submit" { "Save settings" }
            }
            p { a href={ "/admin/" (code) "/settings" } { "Back to all settings" } }
        } }
    };
    let title = format!("{} settings of {code}", ecosystem.display_name());
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

/// `GET /admin/{org}/settings/{ecosystem}`: the form, filled with the settings in force.
pub(crate) async fn edit(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, ecosystem)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let ecosystem = parse_ecosystem(&ecosystem)?;
    let current = state
        .snapshot
        .current()
        .settings_for(&organisation.code, ecosystem);
    let form = SettingsForm::from_settings(&current);
    render_form(
        &state,
        &signed_in,
        &organisation,
        ecosystem,
        &form,
        &[],
        StatusCode::OK,
    )
    .await
}

/// `POST /admin/{org}/settings/{ecosystem}`: saves the settings, or shows why not.
pub(crate) async fn save(
    State(state): State<AppState>,
    Path((org, ecosystem)): Path<(String, String)>,
    posted: PostedForm<SettingsForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let ecosystem = parse_ecosystem(&ecosystem)?;
    let refused = |errors: Vec<FieldError>| {
        let (state, signed_in, organisation, form) = (&state, &signed_in, &organisation, &form);
        async move {
            render_form(
                state,
                signed_in,
                organisation,
                ecosystem,
                form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
    };
    let settings = match form.check() {
        Ok(settings) => settings,
        Err(errors) => return refused(errors).await,
    };
    if !organisation.code.is_national() {
        let errors = loosening_errors(&settings, &national_of(&state, ecosystem));
        if !errors.is_empty() {
            return refused(errors).await;
        }
    }
    match state
        .database
        .set_ecosystem_settings(
            &organisation.code,
            ecosystem,
            &settings,
            &signed_in.principal.actor,
        )
        .await
    {
        Ok(()) => {}
        Err(StoreError::Invalid(error)) => {
            return refused(vec![FieldError::new(
                "stance",
                sentence(&error.to_string()),
            )])
            .await
        }
        Err(error) => return Err(error.into()),
    }
    state.snapshot.refresh(&state.database).await?;
    Ok(Redirect::to(&format!("/admin/{}/settings?done=saved", organisation.code)).into_response())
}
