//! `/admin/{org}/people`: the people with a role in an organisation; adding a local account
//! (with a link to set its password), granting and revoking roles, disabling and enabling an
//! account, issuing a password reset link, and revoking a person's tokens.
//!
//! An organisation admin manages roles in their own organisation only, and acts on a whole
//! account (disable, reset, tokens) only when every role of that account is in organisations
//! they administer, so an admin of one trust can never lock out a national curator or someone
//! of another trust.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Duration;
use formulary_core::request::FieldError;
use formulary_core::{Membership, OrgCode, Organisation, Role};
use formulary_store::{ApiToken, NewUser, StoreError, User, LOCAL_PROVIDER};
use maud::{html, Markup};
use serde::Deserialize;

use super::{administers, caption, done_banner, organisation_for, select, sentence, subnav};
use crate::error::ApiError;
use crate::identity::Principal;
use crate::state::AppState;
use crate::web::account::token_state;
use crate::web::page::{self, Field, Section};
use crate::web::session::{PostedForm, SignedIn};
use crate::web::WebError;

/// How long a password link (for a new account or a reset) works.
pub(crate) const PASSWORD_LINK_DAYS: i64 = 7;

/// What a page confirms after a change (`?done=`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Done {
    #[serde(default)]
    done: String,
}

fn done_message(done: &str) -> Option<&'static str> {
    Some(match done {
        "granted" => "The role has been granted.",
        "revoked" => "The role has been revoked.",
        "disabled" => {
            "The account has been disabled: its sessions ended and its tokens are refused."
        }
        "enabled" => "The account has been enabled again.",
        "token" => "The token has been revoked; it stopped working at once.",
        _ => return None,
    })
}

/// The roles that can be granted in `organisation`: a national curator only nationally.
fn grantable(organisation: &OrgCode) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|role| *role != Role::NationalCurator || organisation.is_national())
        .collect()
}

fn role_options(organisation: &OrgCode) -> Vec<(&'static str, &'static str)> {
    grantable(organisation)
        .into_iter()
        .map(|role| (role.as_str(), role.label()))
        .collect()
}

/// True when `principal` may act on the whole account of `user`: every organisation the
/// account has a role in is one they administer (national curators: any account).
fn manages_account(principal: &Principal, user: &User) -> bool {
    principal.holds(Role::NationalCurator, &OrgCode::national())
        || user
            .memberships
            .iter()
            .all(|membership| administers(principal, &membership.organisation))
}

fn roles_here(user: &User, organisation: &OrgCode) -> Vec<Role> {
    user.memberships
        .iter()
        .filter(|membership| &membership.organisation == organisation)
        .map(|membership| membership.role)
        .collect()
}

/// The person named in the path, when they hold a role in the organisation (national curators
/// also find role-less accounts); anyone else is "not found" here.
async fn person(
    state: &AppState,
    signed_in: &SignedIn,
    organisation: &Organisation,
    user_id: &str,
) -> Result<User, WebError> {
    let user = state.database.user(user_id).await?;
    let national = signed_in
        .principal
        .holds(Role::NationalCurator, &OrgCode::national());
    user.filter(|user| {
        !roles_here(user, &organisation.code).is_empty()
            || (national && user.memberships.is_empty())
    })
    .ok_or_else(|| {
        WebError::from(ApiError::not_found(format!(
            "there is no person with id '{}' in {}",
            user_id.escape_debug(),
            organisation.code
        )))
        .seen_by(&signed_in.viewer)
    })
}

fn refuse(signed_in: &SignedIn, detail: impl Into<String>) -> WebError {
    WebError::from(ApiError::forbidden(detail)).seen_by(&signed_in.viewer)
}

/// A page that shows a secret link once: never cached.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    response
}

/// The new person's form, as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NewPersonForm {
    username: String,
    display_name: String,
    email: String,
    role: String,
}

struct ListView<'a> {
    errors: &'a [FieldError],
    form: &'a NewPersonForm,
    done: Option<&'a str>,
    fresh_link: Option<(&'a User, &'a str)>,
}

async fn render_list(
    state: &AppState,
    signed_in: &SignedIn,
    organisation: &Organisation,
    view: ListView<'_>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let people: Vec<User> = state
        .database
        .users_in_organisation(&organisation.code)
        .await?;
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let errors = view.errors;
    let code = &organisation.code;
    let content = html! {
        (subnav(organisation, "people"))
        (page::error_summary(errors))
        (done_banner(view.done))
        @if let Some((user, link)) = view.fresh_link {
            div.nhsuk-inset-text #password-link {
                span.nhsuk-u-visually-hidden { "Information: " }
                p { "The account " strong { (user.username) } " has been created. Send " (user.display_name) " this link to choose a password; it works once, for " (PASSWORD_LINK_DAYS) " days, and is shown only now:" }
                p { code { (link) } }
            }
        }
        (caption(organisation))
        h1 { "People" }
        table.nhsuk-table #people {
            caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "People with a role in " (code) }
            thead.nhsuk-table__head { tr { th scope="col" { "Name" } th scope="col" { "Username" } th scope="col" { "Roles here" } th scope="col" { "Account" } } }
            tbody.nhsuk-table__body {
                @for user in &people {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { a href={ "/admin/" (code) "/people/" (user.id) } { (user.display_name) } }
                        td.nhsuk-table__cell { code { (user.username) } }
                        td.nhsuk-table__cell { (roles_here(user, code).iter().map(|role| role.label()).collect::<Vec<_>>().join(", ")) }
                        td.nhsuk-table__cell { @if user.disabled_at.is_some() { strong.nhsuk-tag.nhsuk-tag--grey { "Disabled" } } @else { "Active" } }
                    }
                }
            }
        }
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            h2.nhsuk-heading-m #add { "Add a person" }
            p { "This creates a local account (for small sites and break-glass; people who sign in through an identity provider get their account when they first sign in). You get a link to send them, with which they choose their own password." }
            form method="post" action={ "/admin/" (code) "/people" } novalidate {
                (page::csrf_field(csrf))
                (page::input(Field { name: "username", label: "Username", hint: Some("2 to 64 characters: letters, digits, '.', '_', '-' and '@', for example a.khan"), value: &view.form.username }, "text", Some("off"), errors))
                (page::input(Field { name: "display_name", label: "Full name", hint: None, value: &view.form.display_name }, "text", Some("off"), errors))
                (page::input(Field { name: "email", label: "Email address (optional)", hint: Some("Where notifications go"), value: &view.form.email }, "email", Some("off"), errors))
                (select("role", "First role", None, &role_options(code), if view.form.role.is_empty() { "requester" } else { &view.form.role }, errors))
                button.nhsuk-button type="submit" { "Add person" }
            }
        } }
    };
    let title = format!("People of {}", organisation.code);
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

/// `GET /admin/{org}/people`.
pub(crate) async fn list(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(org): Path<String>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let view = ListView {
        errors: &[],
        form: &NewPersonForm::default(),
        done: done_message(&done.done),
        fresh_link: None,
    };
    render_list(&state, &signed_in, &organisation, view, StatusCode::OK).await
}

/// `POST /admin/{org}/people`: adds a local account with its first role here, and shows a
/// link with which the person chooses their password.
pub(crate) async fn add(
    State(state): State<AppState>,
    Path(org): Path<String>,
    posted: PostedForm<NewPersonForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let mut errors = Vec::new();
    let username = match formulary_store::canonical_username(&form.username) {
        Ok(name) => Some(name),
        Err(error) => {
            errors.push(FieldError::new("username", sentence(&error.to_string())));
            None
        }
    };
    let display_name = form.display_name.trim();
    if display_name.is_empty() || display_name.chars().count() > 100 {
        errors.push(FieldError::new(
            "display_name",
            "Enter the person's full name, up to 100 characters",
        ));
    }
    let email = form.email.trim();
    if !email.is_empty()
        && (email.len() > 254 || !email.contains('@') || email.chars().any(char::is_whitespace))
    {
        errors.push(FieldError::new(
            "email",
            "Enter an email address like name@nhs.net, or leave it empty",
        ));
    }
    let role = form
        .role
        .parse::<Role>()
        .ok()
        .filter(|role| grantable(&organisation.code).contains(role));
    if role.is_none() {
        errors.push(FieldError::new("role", "Select the person's first role"));
    }
    let (Some(username), Some(role), true) = (username, role, errors.is_empty()) else {
        let view = ListView {
            errors: &errors,
            form: &form,
            done: None,
            fresh_link: None,
        };
        return render_list(
            &state,
            &signed_in,
            &organisation,
            view,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    let new = NewUser {
        username,
        display_name: display_name.to_owned(),
        email: (!email.is_empty()).then(|| email.to_owned()),
        password_hash: None,
        identity_provider: LOCAL_PROVIDER.to_owned(),
        external_subject: None,
        memberships: vec![Membership::new(organisation.code.clone(), role)],
    };
    let user = match state
        .database
        .add_user(&new, &signed_in.principal.actor)
        .await
    {
        Ok(user) => user,
        Err(StoreError::Conflict(why)) => {
            let errors = [FieldError::new("username", sentence(&why))];
            let view = ListView {
                errors: &errors,
                form: &form,
                done: None,
                fresh_link: None,
            };
            return render_list(
                &state,
                &signed_in,
                &organisation,
                view,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(error) => return Err(error.into()),
    };
    let link = reset_link(&state, &signed_in, &user).await?;
    let view = ListView {
        errors: &[],
        form: &NewPersonForm::default(),
        done: None,
        fresh_link: Some((&user, &link)),
    };
    Ok(no_store(
        render_list(&state, &signed_in, &organisation, view, StatusCode::CREATED).await?,
    ))
}

/// Issues a password link for `user` and returns it, from the configured public URL.
async fn reset_link(
    state: &AppState,
    signed_in: &SignedIn,
    user: &User,
) -> Result<String, WebError> {
    let issued = state
        .database
        .issue_password_reset(
            &user.id,
            Duration::days(PASSWORD_LINK_DAYS),
            &signed_in.principal.actor,
        )
        .await?;
    Ok(state
        .public_url
        .join(&format!("reset-password/{}", issued.secret))
        .map_or_else(
            |_| format!("/reset-password/{}", issued.secret),
            String::from,
        ))
}

struct PersonView<'a> {
    errors: &'a [FieldError],
    done: Option<&'a str>,
    reset_link: Option<&'a str>,
}

async fn render_person(
    state: &AppState,
    signed_in: &SignedIn,
    organisation: &Organisation,
    user: &User,
    view: PersonView<'_>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let tokens = state.database.user_tokens(&user.id).await?;
    let content = person_markup(signed_in, organisation, user, &tokens, &view);
    Ok(page::render_with_status(
        status,
        &signed_in.viewer,
        Section::Admin,
        &user.display_name,
        !view.errors.is_empty(),
        content,
    )
    .into_response())
}

fn person_markup(
    signed_in: &SignedIn,
    organisation: &Organisation,
    user: &User,
    tokens: &[ApiToken],
    view: &PersonView<'_>,
) -> Markup {
    let csrf = signed_in.viewer.csrf_token.as_deref().unwrap_or("");
    let code = &organisation.code;
    let base = format!("/admin/{code}/people/{}", user.id);
    let whole_account = manages_account(&signed_in.principal, user);
    let here = roles_here(user, code);
    let grant_options: Vec<(&str, &str)> = grantable(code)
        .into_iter()
        .filter(|role| !here.contains(role))
        .map(|role| (role.as_str(), role.label()))
        .collect();
    let local = user.identity_provider == LOCAL_PROVIDER;
    html! {
        (subnav(organisation, "people"))
        (page::error_summary(view.errors))
        (done_banner(view.done))
        @if let Some(link) = view.reset_link {
            div.nhsuk-inset-text #password-link {
                span.nhsuk-u-visually-hidden { "Information: " }
                p { "Send " (user.display_name) " this link to choose a new password. It works once, for " (PASSWORD_LINK_DAYS) " days, and is shown only now; their current password works until they use it, and every session of the account ends when they do:" }
                p { code { (link) } }
            }
        }
        (caption(organisation))
        h1 { (user.display_name) }
        dl.nhsuk-summary-list #person {
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Username" } dd.nhsuk-summary-list__value { code { (user.username) } } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Email" } dd.nhsuk-summary-list__value { @if let Some(email) = &user.email { (email) } @else { (page::none()) } } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Signs in with" } dd.nhsuk-summary-list__value { @if local { "A local password" } @else { (user.identity_provider) } } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Account" } dd.nhsuk-summary-list__value { @if let Some(at) = user.disabled_at { "Disabled since " (page::when(at)) } @else { "Active since " (page::when(user.created_at)) } } }
            div.nhsuk-summary-list__row { dt.nhsuk-summary-list__key { "Roles elsewhere" } dd.nhsuk-summary-list__value {
                @let elsewhere: Vec<String> = user.memberships.iter().filter(|membership| &membership.organisation != code).map(|membership| format!("{} of {}", membership.role.label(), membership.organisation)).collect();
                @if elsewhere.is_empty() { (page::none()) } @else { (elsewhere.join(", ")) }
            } }
        }
        h2.nhsuk-heading-m { "Roles in " (code) }
        table.nhsuk-table #roles {
            caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Roles in " (code) }
            thead.nhsuk-table__head { tr { th scope="col" { "Role" } th scope="col" { "Action" } } }
            tbody.nhsuk-table__body {
                @for role in &here {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { (role.label()) }
                        td.nhsuk-table__cell {
                            form.formulary-inline-form method="post" action={ (base) "/roles/revoke" } {
                                (page::csrf_field(csrf))
                                input type="hidden" name="role" value=(role.as_str());
                                button.nhsuk-button.nhsuk-button--secondary.nhsuk-u-margin-bottom-0 type="submit" { "Revoke" span.nhsuk-u-visually-hidden { " the " (role.label().to_lowercase()) " role" } }
                            }
                        }
                    }
                }
            }
        }
        @if !grant_options.is_empty() {
            form method="post" action={ (base) "/roles" } novalidate {
                (page::csrf_field(csrf))
                (select("role", "Grant a role", Some("Information governance and clinical safety officer sign off those review stages where the review policy names them"), &grant_options, "", view.errors))
                button.nhsuk-button type="submit" { "Grant role" }
            }
        }
        h2.nhsuk-heading-m { "Account" }
        @if !whole_account {
            p { "This account also has roles in organisations you do not administer, so only a national curator can disable it, reset its password or revoke its tokens." }
        } @else {
            div.formulary-actions {
                @if user.disabled_at.is_some() {
                    form.formulary-inline-form method="post" action={ (base) "/enable" } {
                        (page::csrf_field(csrf))
                        button.nhsuk-button.nhsuk-button--secondary type="submit" { "Enable account" }
                    }
                } @else if user.id != signed_in.principal.id {
                    form.formulary-inline-form method="post" action={ (base) "/disable" } {
                        (page::csrf_field(csrf))
                        button.nhsuk-button.nhsuk-button--warning type="submit" { "Disable account" }
                    }
                }
                @if local && user.disabled_at.is_none() {
                    form.formulary-inline-form method="post" action={ (base) "/password-reset" } {
                        (page::csrf_field(csrf))
                        button.nhsuk-button.nhsuk-button--secondary type="submit" { "Create a password reset link" }
                    }
                }
            }
        }
        h2.nhsuk-heading-m { "Tokens" }
        @if tokens.is_empty() {
            p { "This person has no tokens." }
        } @else {
            table.nhsuk-table #tokens {
                caption.nhsuk-table__caption.nhsuk-u-visually-hidden { "Tokens of " (user.display_name) }
                thead.nhsuk-table__head { tr { th scope="col" { "Token" } th scope="col" { "Name" } th scope="col" { "Use" } th scope="col" { "Issued" } th scope="col" { "State" } th scope="col" { "Action" } } }
                tbody.nhsuk-table__body {
                    @for token in tokens {
                        tr.nhsuk-table__row {
                            td.nhsuk-table__cell { code { (token.id) } }
                            td.nhsuk-table__cell { (token.name) }
                            td.nhsuk-table__cell { @if token.scope == formulary_store::TokenScope::Gateway { "Package clients" } @else { "API" } }
                            td.nhsuk-table__cell { (page::when(token.created_at)) }
                            td.nhsuk-table__cell { (token_state(token)) }
                            td.nhsuk-table__cell {
                                @if token.revoked_at.is_none() && whole_account {
                                    form.formulary-inline-form method="post" action={ (base) "/tokens/" (token.id) "/revoke" } {
                                        (page::csrf_field(csrf))
                                        button.nhsuk-button.nhsuk-button--secondary.nhsuk-u-margin-bottom-0 type="submit" { "Revoke" span.nhsuk-u-visually-hidden { " token " (token.id) } }
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

/// `GET /admin/{org}/people/{user}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path((org, user_id)): Path<(String, String)>,
    Query(done): Query<Done>,
) -> Result<Response, WebError> {
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let user = person(&state, &signed_in, &organisation, &user_id).await?;
    let view = PersonView {
        errors: &[],
        done: done_message(&done.done),
        reset_link: None,
    };
    render_person(
        &state,
        &signed_in,
        &organisation,
        &user,
        view,
        StatusCode::OK,
    )
    .await
}

/// A role, as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RoleForm {
    role: String,
}

fn back_to(organisation: &Organisation, user: &User, done: &str) -> Response {
    Redirect::to(&format!(
        "/admin/{}/people/{}?done={done}",
        organisation.code, user.id
    ))
    .into_response()
}

/// `POST /admin/{org}/people/{user}/roles`: grants a role here.
pub(crate) async fn grant(
    State(state): State<AppState>,
    Path((org, user_id)): Path<(String, String)>,
    posted: PostedForm<RoleForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let user = person(&state, &signed_in, &organisation, &user_id).await?;
    let Some(role) = form
        .role
        .parse::<Role>()
        .ok()
        .filter(|role| grantable(&organisation.code).contains(role))
    else {
        let errors = [FieldError::new("role", "Select a role to grant")];
        let view = PersonView {
            errors: &errors,
            done: None,
            reset_link: None,
        };
        return render_person(
            &state,
            &signed_in,
            &organisation,
            &user,
            view,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    };
    state
        .database
        .grant_role(
            &user.id,
            &Membership::new(organisation.code.clone(), role),
            &signed_in.principal.actor,
        )
        .await?;
    Ok(back_to(&organisation, &user, "granted"))
}

/// `POST /admin/{org}/people/{user}/roles/revoke`: revokes a role here. A person's last role
/// is kept unless a national curator revokes it: disabling the account is the way to stop
/// someone, and keeps them on the organisation's list.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Path((org, user_id)): Path<(String, String)>,
    posted: PostedForm<RoleForm>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let user = person(&state, &signed_in, &organisation, &user_id).await?;
    let role: Role = form
        .role
        .parse()
        .map_err(|error: formulary_core::CoreError| ApiError::bad_request(error.to_string()))?;
    let national = signed_in
        .principal
        .holds(Role::NationalCurator, &OrgCode::national());
    if user.memberships.len() == 1 && !national {
        return Err(refuse(
            &signed_in,
            format!(
            "this is {}'s only role, and a person without roles drops off every organisation's list. To stop them using Formulary, disable the account instead; to change what they do, grant the new role first",
            user.display_name
        )));
    }
    state
        .database
        .revoke_role(
            &user.id,
            &Membership::new(organisation.code.clone(), role),
            &signed_in.principal.actor,
        )
        .await?;
    Ok(back_to(&organisation, &user, "revoked"))
}

/// Nothing but the CSRF token.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Empty {}

/// The account named in the path, when the viewer may act on the whole account.
async fn managed_account(
    state: &AppState,
    signed_in: &SignedIn,
    org: &str,
    user_id: &str,
) -> Result<(Organisation, User), WebError> {
    let organisation = organisation_for(state, signed_in, org).await?;
    let user = person(state, signed_in, &organisation, user_id).await?;
    if !manages_account(&signed_in.principal, &user) {
        return Err(refuse(
            signed_in,
            format!(
            "{} also has roles in organisations you do not administer, so only a national curator can change the account itself",
            user.display_name
        )));
    }
    Ok((organisation, user))
}

async fn set_disabled(
    state: &AppState,
    org: &str,
    user_id: &str,
    signed_in: &SignedIn,
    disabled: bool,
) -> Result<Response, WebError> {
    let (organisation, user) = managed_account(state, signed_in, org, user_id).await?;
    if disabled && user.id == signed_in.principal.id {
        return Err(refuse(
            signed_in,
            "you cannot disable your own account; ask another administrator",
        ));
    }
    state
        .database
        .set_user_disabled(&user.id, disabled, &signed_in.principal.actor)
        .await?;
    Ok(back_to(
        &organisation,
        &user,
        if disabled { "disabled" } else { "enabled" },
    ))
}

/// `POST /admin/{org}/people/{user}/disable`.
pub(crate) async fn disable(
    State(state): State<AppState>,
    Path((org, user_id)): Path<(String, String)>,
    posted: PostedForm<Empty>,
) -> Result<Response, WebError> {
    set_disabled(&state, &org, &user_id, &posted.signed_in, true).await
}

/// `POST /admin/{org}/people/{user}/enable`.
pub(crate) async fn enable(
    State(state): State<AppState>,
    Path((org, user_id)): Path<(String, String)>,
    posted: PostedForm<Empty>,
) -> Result<Response, WebError> {
    set_disabled(&state, &org, &user_id, &posted.signed_in, false).await
}

/// `POST /admin/{org}/people/{user}/password-reset`: issues a one-time link, shown once.
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    Path((org, user_id)): Path<(String, String)>,
    posted: PostedForm<Empty>,
) -> Result<Response, WebError> {
    let signed_in = posted.signed_in;
    let (organisation, user) = managed_account(&state, &signed_in, &org, &user_id).await?;
    let link = reset_link(&state, &signed_in, &user).await?;
    let view = PersonView {
        errors: &[],
        done: None,
        reset_link: Some(&link),
    };
    Ok(no_store(
        render_person(
            &state,
            &signed_in,
            &organisation,
            &user,
            view,
            StatusCode::OK,
        )
        .await?,
    ))
}

/// `POST /admin/{org}/people/{user}/tokens/{token}/revoke`.
pub(crate) async fn revoke_token(
    State(state): State<AppState>,
    Path((org, user_id, token)): Path<(String, String, String)>,
    posted: PostedForm<Empty>,
) -> Result<Response, WebError> {
    let signed_in = posted.signed_in;
    let (organisation, user) = managed_account(&state, &signed_in, &org, &user_id).await?;
    state
        .database
        .revoke_token_of_user(&user.id, &token, &signed_in.principal.actor)
        .await?;
    Ok(back_to(&organisation, &user, "token"))
}
