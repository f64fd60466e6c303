//! Gateway tokens in the local copy, so that a deployment that asks for a token on every gateway
//! request (`gateway_access = "token"`) keeps serving its people while the database is down.
//!
//! The copy keeps only what checking a token needs: the SHA-256 of its secret as the database
//! stores it (never the secret), how the download ledger names its holder, its scope and its
//! expiry. Revoked tokens, tokens of disabled accounts and of accounts that hold no role are
//! not kept, so they are refused offline as online. The copy is sealed: a token hash added to it
//! by hand breaks the seal and the copy is refused. Tokens cannot be created while the database
//! is down (creating one needs it), so the copy is never behind on them by more than its last
//! write.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{lock, LocalCopy};
use crate::database::Database;
use crate::error::StoreError;
use crate::time;
use crate::tokens::{digest, TokenScope, TOKEN_PREFIX};

/// A usable token, by the SHA-256 of its secret (hex, as `api_tokens.token_hash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StoredToken {
    /// How the download ledger names the holder (`user:jane`, `token:t-… (ci)`).
    actor: String,
    scope: TokenScope,
    expires_at: Option<DateTime<Utc>>,
}

/// Usable tokens by the SHA-256 of their secret.
pub(super) type Tokens = BTreeMap<String, StoredToken>;

/// A token the local copy vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedToken {
    /// How the download ledger names the holder (`user:jane`, `token:t-… (ci)`).
    pub actor: String,
    /// What the token may be used for.
    pub scope: TokenScope,
}

impl LocalCopy {
    /// Replaces the usable tokens (read from the database).
    fn set_tokens(&self, tokens: Tokens) {
        {
            let mut contents = lock(&self.contents);
            if contents.tokens.as_ref() == Some(&tokens) {
                return;
            }
            contents.tokens = Some(tokens);
        }
        self.touch();
    }

    /// Checks a token's secret against the copy: `Err` when the copy holds no tokens (it was
    /// written by a version that did not keep them), `Ok(None)` when the token is unknown,
    /// revoked before the copy was written, or expired.
    fn token(&self, secret: &str) -> Result<Option<CopiedToken>, ()> {
        let contents = lock(&self.contents);
        let tokens = contents.tokens.as_ref().ok_or(())?;
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 200 {
            return Ok(None);
        }
        let now = Utc::now();
        Ok(tokens
            .get(&digest(secret))
            .filter(|token| token.expires_at.is_none_or(|expires| now < expires))
            .map(|token| CopiedToken {
                actor: token.actor.clone(),
                scope: token.scope,
            }))
    }
}

impl Database {
    /// Reads the usable tokens into the attached local copy (nothing happens without one).
    pub(crate) async fn copy_tokens(&self) -> Result<(), StoreError> {
        let Some(copy) = self.local_copy().cloned() else {
            return Ok(());
        };
        self.ensure_online()?;
        // The same rules as checking a token online: not revoked, not expired, and a person's
        // token only while the account is enabled and holds a role.
        let rows = sqlx::query(
            "SELECT t.token_hash, t.id, t.name, t.scope, t.expires_at, t.user_id, u.username \
             FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id \
             WHERE t.revoked_at IS NULL AND (t.user_id IS NULL OR (u.disabled_at IS NULL \
             AND EXISTS (SELECT 1 FROM memberships m WHERE m.user_id = t.user_id)))",
        )
        .fetch_all(self.pool())
        .await?;
        let now = Utc::now();
        let mut tokens = Tokens::new();
        for row in &rows {
            let expires_at = time::optional_from_text(row.try_get("expires_at")?)?;
            if expires_at.is_some_and(|expires| expires <= now) {
                continue;
            }
            let user_id: Option<String> = row.try_get("user_id")?;
            let actor = match user_id {
                Some(_) => format!("user:{}", row.try_get::<String, _>("username")?),
                None => format!(
                    "token:{} ({})",
                    row.try_get::<String, _>("id")?,
                    row.try_get::<String, _>("name")?
                ),
            };
            tokens.insert(
                row.try_get("token_hash")?,
                StoredToken {
                    actor,
                    scope: row.try_get::<String, _>("scope")?.parse()?,
                    expires_at,
                },
            );
        }
        copy.set_tokens(tokens);
        Ok(())
    }

    /// While the database is down: checks a token against the local copy. `Ok(None)` for a
    /// token that is unknown, was revoked before the copy was written, or has expired;
    /// [`StoreError::Unavailable`] when there is no copy or it holds no tokens.
    pub fn token_from_local_copy(&self, secret: &str) -> Result<Option<CopiedToken>, StoreError> {
        self.local_copy()
            .ok_or(())
            .and_then(|copy| copy.token(secret))
            .map_err(|()| {
                StoreError::Unavailable(
                    "this server's local copy holds no gateway tokens (it was written by an older version)".to_owned(),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoints::AuditKey;

    #[test]
    fn only_the_hash_is_kept_and_expired_or_unknown_tokens_are_refused() {
        let folder = tempfile::tempdir().expect("temp dir");
        let key = AuditKey::load_or_create(&folder.path().join("audit.key")).expect("key");
        let copy = LocalCopy::open(&folder.path().join("local-copy"), key);
        assert!(copy.token("frm_jane").is_err(), "no tokens kept yet");
        let token = |actor: &str, expires_at| StoredToken {
            actor: actor.to_owned(),
            scope: TokenScope::Gateway,
            expires_at,
        };
        copy.set_tokens(Tokens::from([
            (digest("frm_jane"), token("user:jane", None)),
            (
                digest("frm_old"),
                token("user:old", Some(Utc::now() - chrono::Duration::seconds(1))),
            ),
        ]));
        assert_eq!(
            copy.token("frm_jane"),
            Ok(Some(CopiedToken {
                actor: "user:jane".to_owned(),
                scope: TokenScope::Gateway
            }))
        );
        assert_eq!(copy.token("frm_old"), Ok(None), "expired");
        assert_eq!(copy.token("frm_other"), Ok(None), "unknown");
        let kept = serde_json::to_string(&*lock(&copy.contents)).expect("JSON");
        assert!(!kept.contains("frm_jane"), "the secret is never kept");
        assert!(kept.contains(&digest("frm_jane")), "its hash is");
    }
}
