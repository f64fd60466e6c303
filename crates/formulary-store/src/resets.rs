//! Password reset links: an administrator issues one for a local account; the person opens it,
//! chooses a new password, and every session of the account ends. Only the SHA-256 of the
//! link's secret is stored; a link works once and before it expires, and issuing a new link
//! retires any unused older one.

use chrono::{DateTime, Duration, Utc};
use sqlx::Row;

use crate::accounts::{end_sessions, User, LOCAL_PROVIDER};
use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::sessions::{digest, random_secret};
use crate::time;

/// A reset link just issued: the secret goes into the link and is never stored.
#[derive(Debug, Clone)]
pub struct IssuedReset {
    /// The secret for the link.
    pub secret: String,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

impl Database {
    /// Issues a reset link for a local account (audited as `user.password-reset-issued`).
    /// Refused for accounts that sign in through an identity provider, and for disabled ones.
    pub async fn issue_password_reset(
        &self,
        user_id: &str,
        lifetime: Duration,
        actor: &str,
    ) -> Result<IssuedReset, StoreError> {
        let user = self
            .user(user_id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {user_id}")))?;
        if user.identity_provider != LOCAL_PROVIDER {
            return Err(StoreError::Conflict(format!(
                "{} signs in through {}, so the password is reset there",
                user.username, user.identity_provider
            )));
        }
        if user.disabled_at.is_some() {
            return Err(StoreError::Conflict(format!(
                "{}'s account is disabled; enable it first, then reset the password",
                user.username
            )));
        }
        let issued = IssuedReset {
            secret: random_secret(),
            expires_at: time::now() + lifetime,
        };
        let (hash, expires, user_id, actor) = (
            digest(&issued.secret),
            time::to_text(issued.expires_at),
            user.id.clone(),
            actor.to_owned(),
        );
        self.transact(move |connection| {
            let (hash, expires, user_id, actor) =
                (hash.clone(), expires.clone(), user_id.clone(), actor.clone());
            Box::pin(async move {
                let now = time::to_text(time::now());
                sqlx::query("UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
                    .bind(&now)
                    .bind(&user_id)
                    .execute(&mut *connection)
                    .await?;
                sqlx::query(
                    "INSERT INTO password_resets (digest, user_id, created_by, created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5, NULL)",
                )
                .bind(&hash)
                .bind(&user_id)
                .bind(&actor)
                .bind(&now)
                .bind(&expires)
                .execute(&mut *connection)
                .await?;
                audit::record(connection, &actor, "user.password-reset-issued", &user_id, &serde_json::json!({ "expires_at": expires })).await
            })
        })
        .await?;
        Ok(issued)
    }

    /// The account a reset link is for, while the link is unused and unexpired.
    pub async fn password_reset_user(&self, secret: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id, expires_at FROM password_resets WHERE digest = $1 AND used_at IS NULL",
        )
        .bind(digest(secret))
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        if time::from_text(&row.try_get::<String, _>("expires_at")?)? <= time::now() {
            return Ok(None);
        }
        let user = self.user(&row.try_get::<String, _>("user_id")?).await?;
        Ok(user.filter(|user| user.disabled_at.is_none()))
    }

    /// Uses a reset link: sets the new password hash, retires the link and ends every session of
    /// the account, in one transaction audited as `user.password` by the account itself. Returns
    /// None when the link is unknown, used, expired, or its account disabled.
    pub async fn complete_password_reset(
        &self,
        secret: &str,
        password_hash: &str,
    ) -> Result<Option<User>, StoreError> {
        let Some(user) = self.password_reset_user(secret).await? else {
            return Ok(None);
        };
        let (hash, password_hash, user_id, actor) = (
            digest(secret),
            password_hash.to_owned(),
            user.id.clone(),
            user.actor(),
        );
        let used = self
            .transact(move |connection| {
                let (hash, password_hash, user_id, actor) =
                    (hash.clone(), password_hash.clone(), user_id.clone(), actor.clone());
                Box::pin(async move {
                    let now = time::to_text(time::now());
                    let claimed = sqlx::query(
                        "UPDATE password_resets SET used_at = $1 WHERE digest = $2 AND user_id = $3 AND used_at IS NULL",
                    )
                    .bind(&now)
                    .bind(&hash)
                    .bind(&user_id)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected();
                    if claimed == 0 {
                        return Ok(false);
                    }
                    sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                        .bind(&password_hash)
                        .bind(&user_id)
                        .execute(&mut *connection)
                        .await?;
                    let ended = end_sessions(connection, &user_id, None).await?;
                    audit::record(
                        connection,
                        &actor,
                        "user.password",
                        &user_id,
                        &serde_json::json!({ "sessions_ended": ended, "by": "reset link" }),
                    )
                    .await?;
                    Ok(true)
                })
            })
            .await?;
        Ok(used.then_some(user))
    }
}
