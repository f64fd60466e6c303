//! `/admin/{org}/people`: the people with a role in an organisation; adding a local account
//! (with a link to set its password), granting and revoking roles, disabling and enabling an
//! account, issuing a password reset link, and revoking a person's tokens.
//!
//! The rules (who may do what, and what nobody may do to themselves) are in [`crate::people`],
//! shared with the JSON API.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use formulary_core::request::FieldError;
use formulary_core::{Membership, OrgCode, Organisation, Role};
use formulary_store::{ApiToken, StoreError, User, LOCAL_PROVIDER};
use maud::{html, Markup};
use serde::Deserialize;

use super::{caption, done_banner, organisation_for, select, sentence, subnav};
use crate::error::ApiError;
use crate::people::{
    check_new_person, grantable, grantable_role, manages_account, may_disable, may_manage_account,
    may_revoke, password_link, roles_here, NewPerson, PASSWORD_LINK_DAYS,
};
use crate::state::AppState;
use crate::web::account::token_state;
use crate::web::page::{self, Field, Section};
use crate::web::session::{PostedForm, SignedIn};
use crate::web::WebError;

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

fn role_options(organisation: &OrgCode) -> Vec<(&'static str, &'static str)> {
    grantable(organisation)
        .into_iter()
        .map(|role| (role.as_str(), role.label()))
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
    crate::people::person(state, &signed_in.principal, organisation, user_id)
        .await
        .map_err(|error| WebError::from(error).seen_by(&signed_in.viewer))
}

/// A refusal, shown as a page to the signed-in viewer.
fn seen(signed_in: &SignedIn, error: ApiError) -> WebError {
    WebError::from(error).seen_by(&signed_in.viewer)
}

/// A page that shows a secret link once: never cached.
fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    response
}

struct ListView<'a> {
    errors: &'a [FieldError],
    form: &'a NewPerson,
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
    let last_sign_ins = state.database.last_sign_ins(&organisation.code).await?;
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
            thead.nhsuk-table__head { tr { th scope="col" { "Name" } th scope="col" { "Username" } th scope="col" { "Roles here" } th scope="col" { "Account" } th scope="col" { "Last signed in" } } }
            tbody.nhsuk-table__body {
                @for user in &people {
                    tr.nhsuk-table__row {
                        td.nhsuk-table__cell { a href={ "/admin/" (code) "/people/" (user.id) } { (user.display_name) } }
                        td.nhsuk-table__cell { code { (user.username) } }
                        td.nhsuk-table__cell { (roles_here(user, code).iter().map(|role| role.label()).collect::<Vec<_>>().join(", ")) }
                        td.nhsuk-table__cell { @if user.disabled_at.is_some() { strong.nhsuk-tag.nhsuk-tag--grey { "Disabled" } } @else { "Active" } }
                        td.nhsuk-table__cell { @if let Some(at) = last_sign_ins.get(&user.id) { (page::when(*at)) } @else { "Never" } }
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
        form: &NewPerson::default(),
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
    posted: PostedForm<NewPerson>,
) -> Result<Response, WebError> {
    let PostedForm { signed_in, form } = posted;
    let organisation = organisation_for(&state, &signed_in, &org).await?;
    let new = match check_new_person(&organisation.code, &form) {
        Ok(new) => new,
        Err(errors) => {
            return refused(&state, &signed_in, &organisation, &form, &errors).await;
        }
    };
    let user = match state
        .database
        .add_user(&new, &signed_in.principal.actor)
        .await
    {
        Ok(user) => user,
        Err(StoreError::Conflict(why)) => {
            let errors = [FieldError::new("username", sentence(&why))];
            return refused(&state, &signed_in, &organisation, &form, &errors).await;
        }
        Err(error) => return Err(error.into()),
    };
    let link = reset_link(&state, &signed_in, &user).await?;
    let view = ListView {
        errors: &[],
        form: &NewPerson::default(),
        done: None,
        fresh_link: Some((&user, &link)),
    };
    Ok(no_store(
        render_list(&state, &signed_in, &organisation, view, StatusCode::CREATED).await?,
    ))
}

/// The list again with the form as posted and what was wrong with it (422).
async fn refused(
    state: &AppState,
    signed_in: &SignedIn,
    organisation: &Organisation,
    form: &NewPerson,
    errors: &[FieldError],
) -> Result<Response, WebError> {
    let view = ListView {
        errors,
        form,
        done: None,
        fresh_link: None,
    };
    render_list(
        state,
        signed_in,
        organisation,
        view,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await
}

/// Issues a password link for `user` and returns it, from the configured public URL.
async fn reset_link(
    state: &AppState,
    signed_in: &SignedIn,
    user: &User,
) -> Result<String, WebError> {
    password_link(state, &signed_in.principal, user)
        .await
        .map(|(link, _)| link)
        .map_err(|error| WebError::from(error).seen_by(&signed_in.viewer))
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
    let Some(role) = grantable_role(&form.role, &organisation.code) else {
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
    may_revoke(&signed_in.principal, &user, &organisation.code, role)
        .map_err(|error| seen(&signed_in, error))?;
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
    may_manage_account(&signed_in.principal, &user).map_err(|error| seen(signed_in, error))?;
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
    if disabled {
        may_disable(&signed_in.principal, &user).map_err(|error| seen(signed_in, error))?;
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
