//! `/api/v1/organisations/{code}/people`: the people of an organisation, as the administration
//! pages show them, for scripts — list them, add a local account (with a link to choose its
//! password), grant and revoke roles, disable and enable an account, issue a password link.
//! The same rules as the pages ([`crate::people`]): organisation admins for their own
//! organisation, national curators for every one; nobody locks themselves out. Every change is
//! audited by the store under the caller's name.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use formulary_core::{Membership, OrgCode, Organisation, Role};
use formulary_store::{StoreError, User, LOCAL_PROVIDER};
use serde::{Deserialize, Serialize};

use crate::auth::Authenticated;
use crate::error::ApiError;
use crate::identity::Principal;
use crate::people::{
    administered_organisation, check_new_person, grantable_role, may_disable, may_manage_account,
    may_revoke, password_link, person, roles_here, NewPerson,
};
use crate::state::AppState;

/// One person as an administrator of `organisation` sees them.
#[derive(Debug, Serialize)]
pub(crate) struct PersonView {
    id: String,
    username: String,
    display_name: String,
    email: Option<String>,
    /// `local` (a Formulary password) or the identity provider's issuer.
    sign_in: String,
    disabled: bool,
    disabled_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    /// When they last signed in on the web, if ever.
    last_sign_in: Option<DateTime<Utc>>,
    /// Their roles in the organisation asked about.
    roles: Vec<Role>,
    /// Every role they hold, in every organisation.
    memberships: Vec<Membership>,
}

fn view(user: User, organisation: &OrgCode, last_sign_in: Option<DateTime<Utc>>) -> PersonView {
    PersonView {
        roles: roles_here(&user, organisation),
        id: user.id,
        username: user.username,
        display_name: user.display_name,
        email: user.email,
        sign_in: user.identity_provider,
        disabled: user.disabled_at.is_some(),
        disabled_at: user.disabled_at,
        created_at: user.created_at,
        last_sign_in,
        memberships: user.memberships,
    }
}

/// The person again, after a change, as the answer.
async fn fresh_view(
    state: &AppState,
    caller: &Principal,
    organisation: &Organisation,
    user_id: &str,
) -> Result<Json<PersonView>, ApiError> {
    let user = match person(state, caller, organisation, user_id).await {
        Ok(user) => user,
        // Their last role here was just revoked: they are still an account.
        Err(_) => state
            .database
            .user(user_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("user {user_id}")))?,
    };
    let last = state.database.last_sign_in(&user.id).await?;
    Ok(Json(view(user, &organisation.code, last)))
}

/// `GET /api/v1/organisations/{code}/people`: everyone with a role there, by name.
pub(crate) async fn list(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(code): Path<String>,
) -> Result<Json<Vec<PersonView>>, ApiError> {
    let organisation = administered_organisation(&state, &caller, &code).await?;
    let people = state
        .database
        .users_in_organisation(&organisation.code)
        .await?;
    let mut last: HashMap<String, DateTime<Utc>> =
        state.database.last_sign_ins(&organisation.code).await?;
    Ok(Json(
        people
            .into_iter()
            .map(|user| {
                let at = last.remove(&user.id);
                view(user, &organisation.code, at)
            })
            .collect(),
    ))
}

/// `GET /api/v1/organisations/{code}/people/{user}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((code, user_id)): Path<(String, String)>,
) -> Result<Json<PersonView>, ApiError> {
    let organisation = administered_organisation(&state, &caller, &code).await?;
    fresh_view(&state, &caller, &organisation, &user_id).await
}

/// The answer to adding a person or issuing a password link: the link is shown once.
#[derive(Debug, Serialize)]
pub(crate) struct PasswordLink {
    #[serde(skip_serializing_if = "Option::is_none")]
    person: Option<PersonView>,
    /// Where the person chooses their password; works once, until `expires_at`.
    password_link: String,
    expires_at: DateTime<Utc>,
}

/// A secret shown once: never cached.
fn shown_once(status: StatusCode, answer: PasswordLink) -> Response {
    let mut response = (status, Json(answer)).into_response();
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store, private"),
    );
    response
}

/// The body of `POST /api/v1/organisations/{code}/people`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPersonBody {
    username: String,
    display_name: String,
    #[serde(default)]
    email: Option<String>,
    role: String,
}

/// `POST /api/v1/organisations/{code}/people`: a local account with its first role there, and
/// a link (from `public_url`) with which the person chooses their own password.
pub(crate) async fn add(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(code): Path<String>,
    Json(body): Json<NewPersonBody>,
) -> Result<Response, ApiError> {
    let organisation = administered_organisation(&state, &caller, &code).await?;
    let asked = NewPerson {
        username: body.username,
        display_name: body.display_name,
        email: body.email.unwrap_or_default(),
        role: body.role,
    };
    let new = check_new_person(&organisation.code, &asked).map_err(|errors| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The person cannot be added",
            errors
                .iter()
                .map(|error| format!("{}: {}", error.field, error.message))
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let user = match state.database.add_user(&new, &caller.actor).await {
        Ok(user) => user,
        Err(StoreError::Conflict(why)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "The person cannot be added",
                format!("username: {why}; choose another username"),
            ))
        }
        Err(error) => return Err(error.into()),
    };
    let (link, expires_at) = password_link(&state, &caller, &user).await?;
    Ok(shown_once(
        StatusCode::CREATED,
        PasswordLink {
            person: Some(view(user, &organisation.code, None)),
            password_link: link,
            expires_at,
        },
    ))
}

/// The body that names a role.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RoleBody {
    role: String,
}

/// `POST /api/v1/organisations/{code}/people/{user}/roles`: grants a role there.
pub(crate) async fn grant(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((code, user_id)): Path<(String, String)>,
    Json(body): Json<RoleBody>,
) -> Result<Json<PersonView>, ApiError> {
    let organisation = administered_organisation(&state, &caller, &code).await?;
    let user = person(&state, &caller, &organisation, &user_id).await?;
    let role = grantable_role(&body.role, &organisation.code).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "The role cannot be granted here",
            format!(
                "role: '{}' is not a role that can be granted in {}; national-curator is granted only in NATIONAL",
                body.role.escape_debug(),
                organisation.code
            ),
        )
    })?;
    state
        .database
        .grant_role(
            &user.id,
            &Membership::new(organisation.code.clone(), role),
            &caller.actor,
        )
        .await?;
    fresh_view(&state, &caller, &organisation, &user.id).await
}

/// `DELETE /api/v1/organisations/{code}/people/{user}/roles/{role}`: revokes a role there.
/// Nobody removes their own `organisation-admin` or `national-curator` role, and a person's
/// last role is kept unless a national curator revokes it.
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((code, user_id, role)): Path<(String, String, String)>,
) -> Result<Json<PersonView>, ApiError> {
    let organisation = administered_organisation(&state, &caller, &code).await?;
    let user = person(&state, &caller, &organisation, &user_id).await?;
    let role: Role = role.parse().map_err(|_| {
        ApiError::not_found(format!(
            "{} holds no role '{}' in {}",
            user.display_name,
            role.escape_debug(),
            organisation.code
        ))
    })?;
    may_revoke(&caller, &user, &organisation.code, role)?;
    state
        .database
        .revoke_role(
            &user.id,
            &Membership::new(organisation.code.clone(), role),
            &caller.actor,
        )
        .await?;
    fresh_view(&state, &caller, &organisation, &user.id).await
}

async fn set_disabled(
    state: &AppState,
    caller: &Principal,
    code: &str,
    user_id: &str,
    disabled: bool,
) -> Result<Json<PersonView>, ApiError> {
    let organisation = administered_organisation(state, caller, code).await?;
    let user = person(state, caller, &organisation, user_id).await?;
    if disabled {
        may_disable(caller, &user)?;
    } else {
        may_manage_account(caller, &user)?;
    }
    state
        .database
        .set_user_disabled(&user.id, disabled, &caller.actor)
        .await?;
    fresh_view(state, caller, &organisation, &user.id).await
}

/// `POST /api/v1/organisations/{code}/people/{user}/disable`: every session ends at once and
/// every token is refused while disabled. Never one's own account.
pub(crate) async fn disable(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((code, user_id)): Path<(String, String)>,
) -> Result<Json<PersonView>, ApiError> {
    set_disabled(&state, &caller, &code, &user_id, true).await
}

/// `POST /api/v1/organisations/{code}/people/{user}/enable`.
pub(crate) async fn enable(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((code, user_id)): Path<(String, String)>,
) -> Result<Json<PersonView>, ApiError> {
    set_disabled(&state, &caller, &code, &user_id, false).await
}

/// `POST /api/v1/organisations/{code}/people/{user}/password-reset`: a one-time link with
/// which a local account's owner chooses a new password (their current one works until then).
pub(crate) async fn reset_password(
    State(state): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((code, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let organisation = administered_organisation(&state, &caller, &code).await?;
    let user = person(&state, &caller, &organisation, &user_id).await?;
    may_manage_account(&caller, &user)?;
    if user.identity_provider != LOCAL_PROVIDER {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "No password to reset",
            format!(
                "{} signs in through {}, so their password is changed there, not in Formulary",
                user.display_name, user.identity_provider
            ),
        ));
    }
    let (link, expires_at) = password_link(&state, &caller, &user).await?;
    Ok(shown_once(
        StatusCode::CREATED,
        PasswordLink {
            person: None,
            password_link: link,
            expires_at,
        },
    ))
}
