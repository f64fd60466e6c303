//! Sign-in sessions. The cookie carries a random secret; only its SHA-256 is stored, with the
//! session's CSRF token and expiry, and for a sign-in through an identity provider, the
//! provider and its ID token (for single logout). Signing out ends the session for good.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use formulary_core::OrgCode;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::accounts::User;
use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// A live session, as found from its cookie secret.
#[derive(Debug, Clone)]
pub struct Session {
    /// Who is signed in.
    pub user: User,
    /// The token every form of this session must carry.
    pub csrf_token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A session just started: the secret goes into the cookie and is never stored.
#[derive(Debug, Clone)]
pub struct StartedSession {
    /// The cookie value.
    pub secret: String,
    /// The session's CSRF token.
    pub csrf_token: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// The identity provider a session was signed in through: what signing out needs to end the
/// person's session at the provider too (OpenID Connect RP-initiated logout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSession {
    /// The provider's id in the configuration.
    pub provider: String,
    /// The ID token the provider issued at sign-in (sent back as `id_token_hint`).
    pub id_token: String,
}

/// The stored form of a cookie secret.
pub(crate) fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// 244 random bits from the operating system's generator, as 64 hex characters.
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

impl Database {
    /// Starts a session for a user who has just proved who they are (audited as `user.sign-in`).
    pub async fn start_session(
        &self,
        user: &User,
        lifetime: Duration,
        client: &str,
    ) -> Result<StartedSession, StoreError> {
        self.start_session_through(user, lifetime, client, None)
            .await
    }

    /// Starts a session, recording the identity provider it was signed in through (if any)
    /// with the ID token the provider issued, for single logout.
    pub async fn start_session_through(
        &self,
        user: &User,
        lifetime: Duration,
        client: &str,
        provider: Option<&ProviderSession>,
    ) -> Result<StartedSession, StoreError> {
        let started = StartedSession {
            secret: random_secret(),
            csrf_token: random_secret(),
            expires_at: time::now() + lifetime,
        };
        let (stored, user, client, provider) = (
            started.clone(),
            user.clone(),
            client.to_owned(),
            provider.cloned(),
        );
        self.transact(move |connection| {
            let (session, user, client, provider) =
                (stored.clone(), user.clone(), client.clone(), provider.clone());
            Box::pin(async move {
                sqlx::query("INSERT INTO sessions (id_hash, user_id, csrf_token, created_at, expires_at, ended_at, identity_provider, id_token) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7)")
                    .bind(digest(&session.secret))
                    .bind(&user.id)
                    .bind(&session.csrf_token)
                    .bind(time::to_text(time::now()))
                    .bind(time::to_text(session.expires_at))
                    .bind(provider.as_ref().map(|provider| provider.provider.clone()))
                    .bind(provider.as_ref().map(|provider| provider.id_token.clone()))
                    .execute(&mut *connection)
                    .await?;
                let details = serde_json::json!({ "client": client, "expires_at": session.expires_at, "identity_provider": provider.as_ref().map(|provider| provider.provider.clone()) });
                audit::record(connection, &user.actor(), "user.sign-in", &user.id, &details).await
            })
        })
        .await?;
        Ok(started)
    }

    /// The live session a cookie secret belongs to: not ended, not expired, account not disabled.
    pub async fn session(&self, secret: &str) -> Result<Option<Session>, StoreError> {
        if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let row = sqlx::query(
            "SELECT user_id, csrf_token, expires_at, ended_at FROM sessions WHERE id_hash = $1",
        )
        .bind(digest(secret))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let ended: Option<String> = row.try_get("ended_at")?;
        let expires_at = time::from_text(&row.try_get::<String, _>("expires_at")?)?;
        if ended.is_some() || expires_at <= Utc::now() {
            return Ok(None);
        }
        let user_id: String = row.try_get("user_id")?;
        let Some(user) = self.user(&user_id).await? else {
            return Ok(None);
        };
        if user.disabled_at.is_some() {
            return Ok(None);
        }
        Ok(Some(Session {
            user,
            csrf_token: row.try_get("csrf_token")?,
            expires_at,
        }))
    }

    /// Ends a session at once (audited as `user.sign-out`). Ending an unknown or ended session
    /// does nothing.
    pub async fn end_session(&self, secret: &str) -> Result<(), StoreError> {
        self.end_session_for_logout(secret).await.map(|_| ())
    }

    /// Ends a session at once (audited as `user.sign-out`) and returns the identity provider it
    /// was signed in through, with its ID token, so the person can be signed out there too. The
    /// stored ID token is cleared. `None` for a local session, or an unknown or ended one.
    pub async fn end_session_for_logout(
        &self,
        secret: &str,
    ) -> Result<Option<ProviderSession>, StoreError> {
        let hash = digest(secret);
        self.transact(move |connection| {
            let hash = hash.clone();
            Box::pin(async move {
                let row = sqlx::query(
                    "SELECT user_id, identity_provider, id_token FROM sessions WHERE id_hash = $1 AND ended_at IS NULL",
                )
                .bind(&hash)
                .fetch_optional(&mut *connection)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let user_id: String = row.try_get("user_id")?;
                let provider: Option<String> = row.try_get("identity_provider")?;
                let id_token: Option<String> = row.try_get("id_token")?;
                sqlx::query("UPDATE sessions SET ended_at = $1, id_token = NULL WHERE id_hash = $2")
                    .bind(time::to_text(time::now()))
                    .bind(&hash)
                    .execute(&mut *connection)
                    .await?;
                audit::record(
                    connection,
                    &format!("user-id:{user_id}"),
                    "user.sign-out",
                    &user_id,
                    &serde_json::json!({ "identity_provider": provider }),
                )
                .await?;
                Ok(provider
                    .zip(id_token)
                    .map(|(provider, id_token)| ProviderSession { provider, id_token }))
            })
        })
        .await
    }

    /// When each account with a role in `organisation` last signed in on the web (started a
    /// session, with a password or through an identity provider); accounts that never did are
    /// absent.
    pub async fn last_sign_ins(
        &self,
        organisation: &OrgCode,
    ) -> Result<HashMap<String, DateTime<Utc>>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, MAX(created_at) AS last FROM sessions WHERE user_id IN (SELECT user_id FROM memberships WHERE organisation = $1) GROUP BY user_id",
        )
        .bind(organisation.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut last = HashMap::with_capacity(rows.len());
        for row in &rows {
            let at: Option<String> = row.try_get("last")?;
            if let Some(at) = at {
                last.insert(row.try_get("user_id")?, time::from_text(&at)?);
            }
        }
        Ok(last)
    }

    /// When an account last signed in on the web, if ever.
    pub async fn last_sign_in(&self, user_id: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let row = sqlx::query("SELECT MAX(created_at) AS last FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(self.pool())
            .await?;
        let at: Option<String> = row.try_get("last")?;
        at.map(|at| time::from_text(&at)).transpose()
    }
}
