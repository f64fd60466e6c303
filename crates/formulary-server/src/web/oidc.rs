//! Signing in through an OpenID Connect provider: `GET /sign-in/oidc/{id}` sends the browser to
//! the provider (authorisation code flow, PKCE S256, `state` and `nonce`), and
//! `GET /sign-in/oidc/{id}/callback` checks the answer, finds or makes the account by (issuer,
//! subject), applies the roles the provider's claims map to, and starts a session. The
//! redirect URI is built from `public_url`, never from the request. Every refusal is a page
//! saying what happened and what to do, and is audited.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use formulary_core::Membership;
use formulary_store::{ExternalIdentity, ExternalOutcome, PendingLogin};
use maud::html;
use serde::Deserialize;

use super::page::{self, Section};
use super::session::{self, cookie, same_secret, set_cookie, with_cookie, Viewer, SESSION_COOKIE};
use super::sign_in::{safe_next, Next};
use crate::oidc::{claims, OidcError, OidcProvider};
use crate::state::{AppState, ClientAddress};

/// The cookie that ties a provider's answer to the browser that asked for it.
pub const OIDC_STATE_COOKIE: &str = "formulary_oidc_state";
/// The longest `code` or `state` accepted from the browser (providers' are far shorter).
const MAX_CODE_BYTES: usize = 4096;
/// Minutes a person has to finish signing in at the provider.
pub const OIDC_LOGIN_MINUTES: i64 = 10;

/// The provider's answer, as query parameters of the callback.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Answer {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Where the provider sends people back: `<public_url>sign-in/oidc/<id>/callback`.
pub(crate) fn redirect_uri(state: &AppState, provider: &OidcProvider) -> url::Url {
    let mut url = state.public_url.clone();
    let path = format!(
        "{}sign-in/oidc/{}/callback",
        state.public_url.path(),
        provider.settings.id
    );
    url.set_path(&path);
    url
}

/// A page that says what went wrong with signing in and what to do next.
fn problem(
    state: &AppState,
    status: StatusCode,
    title: &str,
    what: &str,
    next_step: &str,
) -> Response {
    let local = !state.oidc.all().is_empty();
    let content = html! {
        div.nhsuk-grid-row { div.nhsuk-grid-column-two-thirds {
            h1 { (title) }
            p { (what) }
            p { (next_step) }
            @if local {
                p { a href="/sign-in" { "Go back to the sign-in page" } }
            }
        } }
    };
    // The state cookie is left alone: a bad link must not cancel a sign-in under way in this
    // browser (a used state is useless anyway, and the cookie expires with it).
    page::render_with_status(
        status,
        &Viewer::default(),
        Section::Account,
        title,
        false,
        content,
    )
    .into_response()
}

async fn audit_failure(
    state: &AppState,
    provider: &str,
    subject: Option<&str>,
    reason: &str,
    client: &str,
) {
    if let Err(error) = state
        .database
        .record_external_sign_in_failure(provider, subject, reason, client)
        .await
    {
        tracing::error!(%error, provider, "could not audit a failed sign-in");
    }
    tracing::warn!(
        provider,
        reason,
        "sign-in through an identity provider refused"
    );
}

/// `GET /sign-in/oidc/{id}`: sends the browser to the provider.
pub(crate) async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<Next>,
    ClientAddress(client): ClientAddress,
) -> Response {
    let Some(provider) = state.oidc.find(&id) else {
        return problem(
            &state,
            StatusCode::NOT_FOUND,
            "No such sign-in option",
            "Formulary is not set up to sign people in with that identity provider.",
            "Use one of the options on the sign-in page.",
        );
    };
    let name = provider.settings.display_name.clone();
    let redirect = redirect_uri(&state, provider);
    let authorisation = match provider.authorise(&redirect).await {
        Ok(authorisation) => authorisation,
        Err(error) => {
            audit_failure(
                &state,
                &id,
                None,
                &format!("provider unreachable: {error}"),
                &client,
            )
            .await;
            return problem(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("{name} is not answering"),
                &format!("Formulary could not reach {name} to sign you in ({error})."),
                "Try again in a few minutes. If you have a Formulary username and password, you can sign in with them instead; if this goes on, tell your service desk.",
            );
        }
    };
    let pending = PendingLogin {
        provider: id.clone(),
        nonce: authorisation.nonce,
        pkce_verifier: authorisation.pkce_verifier,
        next_path: safe_next(&query.next).to_owned(),
        expires_at: chrono::Utc::now() + chrono::Duration::minutes(OIDC_LOGIN_MINUTES),
    };
    if let Err(error) = state
        .database
        .start_oidc_login(&authorisation.state, &pending)
        .await
    {
        tracing::error!(%error, "could not record a sign-in under way");
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    with_cookie(
        Redirect::to(authorisation.url.as_str()).into_response(),
        set_cookie(
            state.is_https(),
            OIDC_STATE_COOKIE,
            &authorisation.state,
            OIDC_LOGIN_MINUTES * 60,
        ),
    )
}

/// `GET /sign-in/oidc/{id}/callback`: the provider's answer.
pub(crate) async fn callback(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(answer): Query<Answer>,
    headers: HeaderMap,
    ClientAddress(client): ClientAddress,
) -> Response {
    let Some(provider) = state.oidc.find(&id) else {
        return problem(
            &state,
            StatusCode::NOT_FOUND,
            "No such sign-in option",
            "Formulary is not set up to sign people in with that identity provider.",
            "Use one of the options on the sign-in page.",
        );
    };
    let name = provider.settings.display_name.clone();
    let start_again =
        format!("Go back to the sign-in page and choose “Sign in with {name}” again.");

    // The answer must come back to the browser that asked, for a sign-in not yet used.
    let sent = answer.state.as_deref().unwrap_or("");
    let kept = cookie(&headers, OIDC_STATE_COOKIE).unwrap_or("");
    if sent.is_empty() || sent.len() > MAX_CODE_BYTES || kept.is_empty() || !same_secret(sent, kept)
    {
        audit_failure(
            &state,
            &id,
            None,
            "state mismatch: the answer does not belong to this browser's sign-in",
            &client,
        )
        .await;
        return problem(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            "The answer from the identity provider does not match a sign-in started in this browser, so Formulary did not act on it. This happens when a link is opened in another browser, when cookies are blocked, or when the link was tampered with.",
            &start_again,
        );
    }
    let pending = match state.database.take_oidc_login(sent).await {
        Ok(pending) => pending,
        Err(error) => {
            tracing::error!(%error, "could not read the sign-in under way");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let Some(pending) = pending.filter(|pending| pending.provider == id) else {
        audit_failure(&state, &id, None, "state unknown or already used", &client).await;
        return problem(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in was already used",
            "Formulary has no sign-in under way for this answer: it was used already, or it was not started here.",
            &start_again,
        );
    };
    if pending.expires_at < chrono::Utc::now() {
        audit_failure(&state, &id, None, "state expired", &client).await;
        return problem(
            &state,
            StatusCode::BAD_REQUEST,
            "The sign-in took too long",
            &format!("Signing in must be finished within {OIDC_LOGIN_MINUTES} minutes of starting, for safety."),
            &start_again,
        );
    }
    if let Some(error) = answer.error.as_deref() {
        let description = answer
            .error_description
            .as_deref()
            .map(crate::oidc::provider::printable)
            .unwrap_or_default();
        let error = crate::oidc::provider::printable(error);
        audit_failure(
            &state,
            &id,
            None,
            &format!("provider said {error}: {description}"),
            &client,
        )
        .await;
        return if error == "access_denied" {
            problem(
                &state,
                StatusCode::FORBIDDEN,
                "You did not finish signing in",
                &format!("{name} says the sign-in was cancelled or consent was not given, so Formulary does not know who you are."),
                &format!("To use Formulary, sign in again and allow {name} to share your name, email and NHS roles with it."),
            )
        } else {
            problem(
                &state,
                StatusCode::BAD_GATEWAY,
                &format!("{name} could not sign you in"),
                &format!(
                    "{name} answered with the error “{error}”{}.",
                    if description.is_empty() {
                        String::new()
                    } else {
                        format!(": {description}")
                    }
                ),
                &format!("{start_again} If it happens again, tell your service desk what it says."),
            )
        };
    }
    let Some(code) = answer
        .code
        .as_deref()
        .filter(|code| !code.is_empty() && code.len() <= MAX_CODE_BYTES)
    else {
        audit_failure(&state, &id, None, "no code in the answer", &client).await;
        return problem(
            &state,
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            "The identity provider's answer carries no authorisation code.",
            &start_again,
        );
    };
    let redirect = redirect_uri(&state, provider);
    let verified = match provider
        .verify(&redirect, code, &pending.nonce, &pending.pkce_verifier)
        .await
    {
        Ok(verified) => verified,
        Err(error) => {
            audit_failure(&state, &id, None, &error.to_string(), &client).await;
            let (status, title, next_step) = match error {
                OidcError::Unreachable(_) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("{name} is not answering"),
                    "Try again in a few minutes. If you have a Formulary username and password, you can sign in with them instead.".to_owned(),
                ),
                OidcError::Refused(_) => (StatusCode::BAD_GATEWAY, format!("{name} could not sign you in"), start_again.clone()),
                OidcError::Invalid(_) => (
                    StatusCode::BAD_GATEWAY,
                    "The identity provider's answer could not be trusted".to_owned(),
                    format!("{start_again} If it happens again, tell your service desk: Formulary's log has the details."),
                ),
            };
            return problem(&state, status, &title, &format!("{error}."), &next_step);
        }
    };
    finish(&state, provider, verified, &pending.next_path, &client).await
}

/// Maps the verified claims to an account and roles and starts the session.
async fn finish(
    state: &AppState,
    provider: &OidcProvider,
    verified: crate::oidc::provider::Verified,
    next: &str,
    client: &str,
) -> Response {
    let settings = &provider.settings;
    let id = settings.id.as_str();
    let name = settings.display_name.as_str();
    let person = claims::person(&verified.claims, &verified.subject);
    let mapped = claims::map_roles(settings, &verified.claims);
    let mut memberships: Vec<Membership> = Vec::new();
    let mut unknown: Vec<String> = Vec::new();
    for membership in mapped.memberships {
        match state.database.organisation(&membership.organisation).await {
            Ok(Some(_)) => memberships.push(membership),
            Ok(None) => {
                let code = membership.organisation.to_string();
                if !unknown.contains(&code) {
                    unknown.push(code);
                }
            }
            Err(error) => {
                tracing::error!(%error, "could not read organisations");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        }
    }
    let identity = ExternalIdentity {
        issuer: settings.issuer.clone(),
        subject: verified.subject.clone(),
        username_hint: person.username_hint,
        display_name: person.display_name,
        email: person.email,
        memberships: memberships.clone(),
    };
    let actor = format!("oidc:{id}");
    let create = !memberships.is_empty();
    let mut outcome = state
        .database
        .apply_external_sign_in(&identity, create, &actor)
        .await;
    if outcome.is_err() {
        // Two first sign-ins of one person at once: the second made the same account and met
        // the unique (issuer, subject) index; now it finds the account.
        outcome = state
            .database
            .apply_external_sign_in(&identity, create, &actor)
            .await;
    }
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            tracing::error!(%error, "could not apply a sign-in through an identity provider");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let why_no_role = || {
        let mut reasons = Vec::new();
        if !unknown.is_empty() {
            reasons.push(format!(
                "your organisation{} ({}) {} not set up in Formulary",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", "),
                if unknown.len() == 1 { "is" } else { "are" }
            ));
        }
        if !mapped.unmapped.is_empty() {
            reasons.push(format!(
                "no Formulary role is set for: {}",
                mapped.unmapped.join("; ")
            ));
        }
        if !mapped.refused_national.is_empty() {
            reasons.push(
                "national roles are given in Formulary itself, not by the identity provider"
                    .to_owned(),
            );
        }
        if reasons.is_empty() {
            reasons.push(format!("{name} gave no role at all"));
        }
        reasons.join("; ")
    };
    let user = match outcome {
        ExternalOutcome::Applied(applied) => applied.user,
        ExternalOutcome::Disabled(_) => {
            audit_failure(
                state,
                id,
                Some(&verified.subject),
                "account disabled in Formulary",
                client,
            )
            .await;
            return problem(
                state,
                StatusCode::FORBIDDEN,
                "Your Formulary account is disabled",
                &format!("{name} confirmed who you are, but your account in Formulary has been disabled, so you cannot sign in."),
                "Ask your organisation's Formulary administrator to enable it again.",
            );
        }
        ExternalOutcome::NoAccount => {
            let reasons = why_no_role();
            audit_failure(
                state,
                id,
                Some(&verified.subject),
                &format!("no role: {reasons}"),
                client,
            )
            .await;
            return problem(
                state,
                StatusCode::FORBIDDEN,
                "Formulary has no role for you yet",
                &format!("{name} confirmed who you are, but {reasons}."),
                "Ask your organisation's Formulary administrator to add your organisation or to map your NHS role, then sign in again. Searching the catalogue and the decision log needs no account.",
            );
        }
    };
    if user.memberships.is_empty() {
        let reasons = why_no_role();
        audit_failure(
            state,
            id,
            Some(&verified.subject),
            &format!("no role left: {reasons}"),
            client,
        )
        .await;
        return problem(
            state,
            StatusCode::FORBIDDEN,
            "Formulary has no role for you any more",
            &format!("{name} confirmed who you are, but {reasons}, so the roles it gave before were removed."),
            "If you still need Formulary, ask your organisation's Formulary administrator for a role.",
        );
    }
    let provider_session = formulary_store::ProviderSession {
        provider: id.to_owned(),
        id_token: verified.id_token.clone(),
    };
    match state
        .database
        .start_session_through(
            &user,
            session::session_lifetime(),
            client,
            Some(&provider_session),
        )
        .await
    {
        Ok(started) => {
            let response = with_cookie(
                Redirect::to(next).into_response(),
                set_cookie(
                    state.is_https(),
                    SESSION_COOKIE,
                    &started.secret,
                    session::SESSION_HOURS * 3600,
                ),
            );
            with_cookie(
                response,
                set_cookie(state.is_https(), OIDC_STATE_COOKIE, "", 0),
            )
        }
        Err(error) => {
            tracing::error!(%error, "could not start a session");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
