//! Accounts of people who sign in through an OpenID Connect provider: the sign-ins under way
//! (state, nonce and PKCE verifier, used once), and the account and roles the provider's
//! answer stands for. An account is found only by (issuer, subject), never by email or
//! username; the roles a provider gives are applied at each sign-in, added and removed, while
//! roles granted in Formulary stay as they are.

use chrono::{DateTime, Utc};
use formulary_core::Membership;
use sqlx::Row;

use crate::accounts::{canonical_username, User};
use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::sessions::digest;
use crate::time;

/// A sign-in sent to a provider and not yet back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingLogin {
    /// The provider's id in the configuration.
    pub provider: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier sent with the code.
    pub pkce_verifier: String,
    /// The local path to go to afterwards.
    pub next_path: String,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// Who a provider says signed in, and the roles its claims map to.
#[derive(Debug, Clone)]
pub struct ExternalIdentity {
    /// The provider's issuer URL (stored as the account's `identity_provider`).
    pub issuer: String,
    /// The provider's subject identifier for the person.
    pub subject: String,
    /// A wish for the username of a new account (made unique, and never used to find one).
    pub username_hint: String,
    /// The name to show.
    pub display_name: String,
    /// Where to reach them, when the provider says.
    pub email: Option<String>,
    /// The roles the provider's claims map to, now.
    pub memberships: Vec<Membership>,
}

/// What applying a provider's answer came to.
#[derive(Debug, Clone)]
pub enum ExternalOutcome {
    /// The account (found or made) with its roles brought up to date.
    Applied(ExternalSignIn),
    /// The account exists but is disabled in Formulary: nothing was changed.
    Disabled(User),
    /// There is no account and none was to be made.
    NoAccount,
}

/// What signing in through a provider did to the account.
#[derive(Debug, Clone)]
pub struct ExternalSignIn {
    /// The account, with its roles after the change.
    pub user: User,
    /// True when the account was made by this sign-in.
    pub created: bool,
    /// Roles the provider now gives that the account lacked.
    pub granted: Vec<Membership>,
    /// Roles the provider gave before and no longer does.
    pub revoked: Vec<Membership>,
}

impl Database {
    /// Records a sign-in sent to a provider under the SHA-256 of its `state`.
    pub async fn start_oidc_login(
        &self,
        state: &str,
        pending: &PendingLogin,
    ) -> Result<(), StoreError> {
        let now = time::to_text(time::now());
        sqlx::query("DELETE FROM oidc_logins WHERE expires_at < $1")
            .bind(&now)
            .execute(self.pool())
            .await?;
        sqlx::query("INSERT INTO oidc_logins (state_hash, provider, nonce, pkce_verifier, next_path, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(digest(state))
            .bind(&pending.provider)
            .bind(&pending.nonce)
            .bind(&pending.pkce_verifier)
            .bind(&pending.next_path)
            .bind(&now)
            .bind(time::to_text(pending.expires_at))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Takes the sign-in started with `state` out of the store, so it is used at most once.
    /// `None` when there is none (never started, already used); an expired one is returned so
    /// the caller can say it expired.
    pub async fn take_oidc_login(&self, state: &str) -> Result<Option<PendingLogin>, StoreError> {
        let hash = digest(state);
        self.transact(move |connection| {
            let hash = hash.clone();
            Box::pin(async move {
                let row = sqlx::query("SELECT provider, nonce, pkce_verifier, next_path, expires_at FROM oidc_logins WHERE state_hash = $1")
                    .bind(&hash)
                    .fetch_optional(&mut *connection)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let taken = sqlx::query("DELETE FROM oidc_logins WHERE state_hash = $1")
                    .bind(&hash)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected();
                if taken == 0 {
                    return Ok(None);
                }
                Ok(Some(PendingLogin {
                    provider: row.try_get("provider")?,
                    nonce: row.try_get("nonce")?,
                    pkce_verifier: row.try_get("pkce_verifier")?,
                    next_path: row.try_get("next_path")?,
                    expires_at: time::from_text(&row.try_get::<String, _>("expires_at")?)?,
                }))
            })
        })
        .await
    }

    /// Audits a sign-in through a provider that did not succeed (`user.sign-in-failed`, by
    /// `anonymous`, or by the person when the provider vouched for them): the provider, why, and
    /// the client's address. Never a token, code or secret.
    pub async fn record_external_sign_in_failure(
        &self,
        provider: &str,
        subject: Option<&str>,
        reason: &str,
        client: &str,
    ) -> Result<(), StoreError> {
        let details = serde_json::json!({
            "provider": provider,
            "external_subject": subject,
            "reason": reason.chars().take(500).collect::<String>(),
            "client": client.chars().take(64).collect::<String>(),
        });
        let subject = format!("oidc:{provider}");
        self.transact(move |connection| {
            let (details, subject) = (details.clone(), subject.clone());
            Box::pin(async move {
                audit::record(
                    connection,
                    "anonymous",
                    "user.sign-in-failed",
                    &subject,
                    &details,
                )
                .await
            })
        })
        .await
    }

    /// The account a provider knows by `subject`, if one was made.
    pub async fn user_by_external_subject(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id FROM users WHERE identity_provider = $1 AND external_subject = $2",
        )
        .bind(issuer)
        .bind(subject)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => self.user(&row.try_get::<String, _>("id")?).await,
            None => Ok(None),
        }
    }

    /// Applies what a provider says about a person who just signed in: finds their account by
    /// (issuer, subject) or makes one (audited as `user.add`), refreshes the name and email
    /// (`user.profile`), and makes the roles that came from this provider equal to
    /// `identity.memberships` (`role.grant` and `role.revoke`, by `actor`), leaving roles
    /// granted in Formulary alone. A disabled account is left as it is
    /// ([`ExternalOutcome::Disabled`]). `create` false means no account is made when there is
    /// none ([`ExternalOutcome::NoAccount`]).
    pub async fn apply_external_sign_in(
        &self,
        identity: &ExternalIdentity,
        create: bool,
        actor: &str,
    ) -> Result<ExternalOutcome, StoreError> {
        for membership in &identity.memberships {
            self.require_organisation(&membership.organisation).await?;
        }
        let existing = self
            .user_by_external_subject(&identity.issuer, &identity.subject)
            .await?;
        if let Some(user) = existing.as_ref().filter(|user| user.disabled_at.is_some()) {
            return Ok(ExternalOutcome::Disabled(user.clone()));
        }
        if existing.is_none() && !create {
            return Ok(ExternalOutcome::NoAccount);
        }
        let username = match &existing {
            Some(user) => user.username.clone(),
            None => {
                self.free_username(&identity.username_hint, &identity.subject)
                    .await?
            }
        };
        let display_name = clean_display_name(&identity.display_name, &username);
        let email = identity
            .email
            .clone()
            .filter(|email| !email.trim().is_empty() && email.len() <= 254);
        let (identity, actor) = (identity.clone(), actor.to_owned());
        let existing_id = existing.as_ref().map(|user| user.id.clone());
        let (user_id, created, granted, revoked) = self
            .transact(move |connection| {
                let (identity, actor, existing_id, username, display_name, email) = (
                    identity.clone(),
                    actor.clone(),
                    existing_id.clone(),
                    username.clone(),
                    display_name.clone(),
                    email.clone(),
                );
                Box::pin(async move {
                    let (user_id, created) = match existing_id {
                        Some(id) => {
                            let row = sqlx::query("SELECT display_name, email FROM users WHERE id = $1")
                                .bind(&id)
                                .fetch_one(&mut *connection)
                                .await?;
                            let old_name: String = row.try_get("display_name")?;
                            let old_email: Option<String> = row.try_get("email")?;
                            if old_name != display_name || old_email != email {
                                sqlx::query("UPDATE users SET display_name = $1, email = $2 WHERE id = $3")
                                    .bind(&display_name)
                                    .bind(email.clone())
                                    .bind(&id)
                                    .execute(&mut *connection)
                                    .await?;
                                let details = serde_json::json!({ "display_name": display_name, "email_changed": old_email != email });
                                audit::record(connection, &actor, "user.profile", &id, &details).await?;
                            }
                            (id, false)
                        }
                        None => {
                            let id = format!("u-{}", uuid::Uuid::now_v7().simple());
                            sqlx::query("INSERT INTO users (id, username, display_name, email, password_hash, identity_provider, external_subject, created_at, disabled_at) VALUES ($1, $2, $3, $4, NULL, $5, $6, $7, NULL)")
                                .bind(&id)
                                .bind(&username)
                                .bind(&display_name)
                                .bind(email.clone())
                                .bind(&identity.issuer)
                                .bind(&identity.subject)
                                .bind(time::to_text(time::now()))
                                .execute(&mut *connection)
                                .await?;
                            let details = serde_json::json!({
                                "username": username,
                                "display_name": display_name,
                                "identity_provider": identity.issuer,
                                "external_subject": identity.subject,
                            });
                            audit::record(connection, &actor, "user.add", &id, &details).await?;
                            (id, true)
                        }
                    };
                    let (granted, revoked) = sync_memberships(connection, &user_id, &identity, &actor).await?;
                    Ok((user_id, created, granted, revoked))
                })
            })
            .await?;
        let user = self
            .user(&user_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
        Ok(ExternalOutcome::Applied(ExternalSignIn {
            user,
            created,
            granted,
            revoked,
        }))
    }

    /// A username nobody has yet, from `hint` (cleaned), else from the provider's subject.
    async fn free_username(&self, hint: &str, subject: &str) -> Result<String, StoreError> {
        let cleaned: String = hint
            .trim()
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@') {
                    c
                } else {
                    '-'
                }
            })
            .take(56)
            .collect();
        let base = match canonical_username(&cleaned) {
            Ok(name) => name,
            Err(_) => {
                let digest = digest(subject);
                format!("oidc-{}", &digest[..12])
            }
        };
        for attempt in 1..1000 {
            let candidate = if attempt == 1 {
                base.clone()
            } else {
                format!("{base}-{attempt}")
            };
            if self.user_by_username(&candidate).await?.is_none() {
                return Ok(candidate);
            }
        }
        Err(StoreError::Conflict(format!(
            "no free username near '{base}'"
        )))
    }
}

/// The name to store: trimmed, printable, at most 100 characters; else the username.
fn clean_display_name(name: &str, username: &str) -> String {
    let cleaned: String = name
        .trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(100)
        .collect();
    if cleaned.trim().is_empty() {
        username.to_owned()
    } else {
        cleaned.trim().to_owned()
    }
}

/// Makes the account's roles from `identity.issuer` equal to `identity.memberships`; returns
/// the roles granted and revoked, each audited.
async fn sync_memberships(
    connection: &mut sqlx::AnyConnection,
    user_id: &str,
    identity: &ExternalIdentity,
    actor: &str,
) -> Result<(Vec<Membership>, Vec<Membership>), StoreError> {
    let rows = sqlx::query("SELECT organisation, role, source FROM memberships WHERE user_id = $1")
        .bind(user_id)
        .fetch_all(&mut *connection)
        .await?;
    let mut held: Vec<(Membership, String)> = Vec::with_capacity(rows.len());
    for row in &rows {
        held.push((
            Membership::new(
                row.try_get::<String, _>("organisation")?.parse()?,
                row.try_get::<String, _>("role")?.parse()?,
            ),
            row.try_get("source")?,
        ));
    }
    let mut granted = Vec::new();
    for wanted in &identity.memberships {
        if held.iter().any(|(membership, _)| membership == wanted) || granted.contains(wanted) {
            continue;
        }
        sqlx::query("INSERT INTO memberships (user_id, organisation, role, granted_at, granted_by, source) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(user_id)
            .bind(wanted.organisation.as_str())
            .bind(wanted.role.as_str())
            .bind(time::to_text(time::now()))
            .bind(actor)
            .bind(&identity.issuer)
            .execute(&mut *connection)
            .await?;
        let details = serde_json::json!({ "organisation": wanted.organisation, "role": wanted.role, "source": identity.issuer });
        audit::record(connection, actor, "role.grant", user_id, &details).await?;
        granted.push(wanted.clone());
    }
    let mut revoked = Vec::new();
    for (membership, source) in &held {
        if source != &identity.issuer || identity.memberships.contains(membership) {
            continue;
        }
        sqlx::query(
            "DELETE FROM memberships WHERE user_id = $1 AND organisation = $2 AND role = $3",
        )
        .bind(user_id)
        .bind(membership.organisation.as_str())
        .bind(membership.role.as_str())
        .execute(&mut *connection)
        .await?;
        let details = serde_json::json!({ "organisation": membership.organisation, "role": membership.role, "source": identity.issuer, "reason": "no longer given by the identity provider" });
        audit::record(connection, actor, "role.revoke", user_id, &details).await?;
        revoked.push(membership.clone());
    }
    Ok((granted, revoked))
}
