use chrono::{DateTime, Utc};
use formulary_core::{OrgCode, Role};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// Every token starts with this, so that secret scanners and people recognise it.
pub(crate) const TOKEN_PREFIX: &str = "frm_";

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenScope {
    /// The JSON API, with the rights of its role (or its person's roles), and reading the
    /// package gateway.
    Api,
    /// Reading the package gateway only (`/pypi/…`, `/cran/…`): the token package clients keep
    /// in their configuration files, so one found there cannot act on the formulary.
    Gateway,
}

impl TokenScope {
    /// The stored and displayed name: `api` or `gateway`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Api => "api",
            TokenScope::Gateway => "gateway",
        }
    }
}

impl std::fmt::Display for TokenScope {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl std::str::FromStr for TokenScope {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<TokenScope, StoreError> {
        match text {
            "api" => Ok(TokenScope::Api),
            "gateway" => Ok(TokenScope::Gateway),
            other => Err(StoreError::Corrupt {
                what: "token scope",
                why: format!("'{}' is not api or gateway", other.escape_debug()),
            }),
        }
    }
}

/// A stored API token (never the secret itself: only its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiToken {
    /// Public identifier, safe to show and log.
    pub id: String,
    /// What it is for.
    pub name: String,
    /// The organisation it acts for.
    pub organisation: OrgCode,
    /// What it may do there.
    pub role: Role,
    /// Who issued it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// The person it acts as (a token from `formulary login`), whose roles it then carries;
    /// None for a service account's token, which carries `organisation` and `role`.
    pub user_id: Option<String>,
    /// What it may be used for.
    pub scope: TokenScope,
}

impl ApiToken {
    /// How the token appears as an actor in the audit log.
    pub fn actor(&self) -> String {
        format!("token:{} ({})", self.id, self.name)
    }
}

/// A newly issued token: the secret is shown once and never stored.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The stored token.
    pub token: ApiToken,
    /// The bearer secret to hand to the client.
    pub secret: String,
}

/// Who a new token acts for and what it may do.
struct Grant<'a> {
    organisation: &'a OrgCode,
    role: Role,
    user_id: Option<String>,
    scope: TokenScope,
}

/// The SHA-256 of a secret, as `api_tokens.token_hash` holds it.
pub(crate) fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

impl Database {
    /// Issues a token for an organisation and role.
    pub async fn issue_token(
        &self,
        name: &str,
        organisation: &OrgCode,
        role: Role,
        expires_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<IssuedToken, StoreError> {
        self.issue(
            name,
            Grant {
                organisation,
                role,
                user_id: None,
                scope: TokenScope::Api,
            },
            expires_at,
            actor,
        )
        .await
    }

    /// Issues a service account's token that only reads the package gateway (for a build
    /// machine or a shared server that installs packages).
    pub async fn issue_gateway_service_token(
        &self,
        name: &str,
        organisation: &OrgCode,
        expires_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<IssuedToken, StoreError> {
        self.issue(
            name,
            Grant {
                organisation,
                role: Role::Requester,
                user_id: None,
                scope: TokenScope::Gateway,
            },
            expires_at,
            actor,
        )
        .await
    }

    /// Issues a token that acts as a person, with whatever roles they hold when it is used.
    pub async fn issue_user_token(
        &self,
        name: &str,
        user: &crate::accounts::User,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<IssuedToken, StoreError> {
        self.issue_user_token_with_scope(name, user, TokenScope::Api, expires_at)
            .await
    }

    /// Issues a person's token for one scope ([`TokenScope::Gateway`]: the token their package
    /// clients keep).
    pub async fn issue_user_token_with_scope(
        &self,
        name: &str,
        user: &crate::accounts::User,
        scope: TokenScope,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<IssuedToken, StoreError> {
        let (organisation, role) = user
            .memberships
            .first()
            .map(|membership| (membership.organisation.clone(), membership.role))
            .unwrap_or((OrgCode::national(), Role::Requester));
        self.issue(
            name,
            Grant {
                organisation: &organisation,
                role,
                user_id: Some(user.id.clone()),
                scope,
            },
            expires_at,
            &user.actor(),
        )
        .await
    }

    async fn issue(
        &self,
        name: &str,
        grant: Grant<'_>,
        expires_at: Option<DateTime<Utc>>,
        actor: &str,
    ) -> Result<IssuedToken, StoreError> {
        let Grant {
            organisation,
            role,
            user_id,
            scope,
        } = grant;
        let name = name.trim();
        if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
            return Err(StoreError::Conflict(
                "a token needs a name of 1 to 100 printable characters saying what it is for"
                    .to_owned(),
            ));
        }
        self.require_organisation(organisation).await?;
        // Two random v4 UUIDs: 244 random bits from the operating system's generator.
        let secret = format!(
            "{TOKEN_PREFIX}{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let token = ApiToken {
            // 64 random bits: ids made from the clock collided for tokens issued in the same
            // millisecond, and the retried insert then failed for good.
            id: format!("t-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]),
            name: name.to_owned(),
            organisation: organisation.clone(),
            role,
            created_by: actor.to_owned(),
            created_at: time::now(),
            expires_at,
            revoked_at: None,
            user_id,
            scope,
        };
        let (stored, hash, actor) = (token.clone(), digest(&secret), actor.to_owned());
        self.transact(move |connection| {
            let (token, hash, actor) = (stored.clone(), hash.clone(), actor.clone());
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO api_tokens (id, name, token_hash, organisation, role, created_by, created_at, expires_at, revoked_at, user_id, scope) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, $10)",
                )
                .bind(&token.id)
                .bind(&token.name)
                .bind(&hash)
                .bind(token.organisation.as_str())
                .bind(token.role.as_str())
                .bind(&token.created_by)
                .bind(time::to_text(token.created_at))
                .bind(token.expires_at.map(time::to_text))
                .bind(token.user_id.clone())
                .bind(token.scope.as_str())
                .execute(&mut *connection)
                .await?;
                let details = serde_json::json!({ "name": token.name, "organisation": token.organisation, "role": token.role, "user": token.user_id, "scope": token.scope, "expires_at": token.expires_at });
                audit::append(connection, &actor, "token.issue", &token.id, &details).await?;
                Ok(())
            })
        })
        .await?;
        Ok(IssuedToken { token, secret })
    }

    /// The token a bearer secret belongs to, if it is valid now (not revoked, not expired).
    pub async fn authenticate_token(&self, secret: &str) -> Result<Option<ApiToken>, StoreError> {
        if !secret.starts_with(TOKEN_PREFIX) || secret.len() > 200 {
            return Ok(None);
        }
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1"
        ))
        .bind(digest(secret))
        .fetch_optional(self.pool())
        .await?;
        let Some(token) = row.map(|row| decode(&row)).transpose()? else {
            return Ok(None);
        };
        let now = Utc::now();
        let usable =
            token.revoked_at.is_none() && token.expires_at.is_none_or(|expires| now < expires);
        Ok(usable.then_some(token))
    }

    /// Revokes a token at once.
    pub async fn revoke_token(&self, id: &str, actor: &str) -> Result<(), StoreError> {
        let (id, actor) = (id.to_owned(), actor.to_owned());
        self.transact(move |connection| {
            let (id, actor) = (id.clone(), actor.clone());
            Box::pin(async move {
                let changed = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(time::to_text(Utc::now()))
                .bind(&id)
                .execute(&mut *connection)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Err(StoreError::NotFound(format!(
                        "an unrevoked token with id '{}'",
                        id.escape_debug()
                    )));
                }
                audit::append(
                    connection,
                    &actor,
                    "token.revoke",
                    &id,
                    &serde_json::json!({}),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// The tokens issued to a person (by `formulary login`), newest first, revoked and expired
    /// ones included.
    pub async fn user_tokens(&self, user_id: &str) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY created_at DESC"
        ))
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// Revokes one of a person's own tokens (audited as `token.revoke`). A token that is not
    /// theirs is reported as not found, the same as one that does not exist.
    pub async fn revoke_user_token(
        &self,
        user_id: &str,
        token_id: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.revoke_person_token(user_id, token_id, actor, true)
            .await
    }

    /// Revokes a person's token on an administrator's behalf (audited as `token.revoke`, with
    /// `by_owner: false`); a token that is not the person's is reported as not found.
    pub async fn revoke_token_of_user(
        &self,
        user_id: &str,
        token_id: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.revoke_person_token(user_id, token_id, actor, false)
            .await
    }

    async fn revoke_person_token(
        &self,
        user_id: &str,
        token_id: &str,
        actor: &str,
        by_owner: bool,
    ) -> Result<(), StoreError> {
        let (user_id, token_id, actor) =
            (user_id.to_owned(), token_id.to_owned(), actor.to_owned());
        self.transact(move |connection| {
            let (user_id, token_id, actor) = (user_id.clone(), token_id.clone(), actor.clone());
            Box::pin(async move {
                let changed = sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
                )
                .bind(time::to_text(Utc::now()))
                .bind(&token_id)
                .bind(&user_id)
                .execute(&mut *connection)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Err(StoreError::NotFound(format!(
                        "an unrevoked token of this person with id '{}'",
                        token_id.escape_debug()
                    )));
                }
                audit::append(
                    connection,
                    &actor,
                    "token.revoke",
                    &token_id,
                    &serde_json::json!({ "by_owner": by_owner }),
                )
                .await?;
                Ok(())
            })
        })
        .await
    }

    /// Every token, newest first.
    pub async fn tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM api_tokens ORDER BY created_at DESC"
        ))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode).collect()
    }
}

const COLUMNS: &str =
    "id, name, organisation, role, created_by, created_at, expires_at, revoked_at, user_id, scope";

fn decode(row: &sqlx::any::AnyRow) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        organisation: row.try_get::<String, _>("organisation")?.parse()?,
        role: row.try_get::<String, _>("role")?.parse()?,
        created_by: row.try_get("created_by")?,
        created_at: time::from_text(&row.try_get::<String, _>("created_at")?)?,
        expires_at: time::optional_from_text(row.try_get("expires_at")?)?,
        revoked_at: time::optional_from_text(row.try_get("revoked_at")?)?,
        user_id: row.try_get("user_id")?,
        scope: row.try_get::<String, _>("scope")?.parse()?,
    })
}
