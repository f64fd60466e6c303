//! People: accounts, their roles per organisation, and the record of failed sign-ins.
//! Password hashing happens above this crate; only the resulting hash is stored.

use chrono::{DateTime, Utc};
use formulary_core::{Membership, Role};
use serde::Serialize;
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// The identity provider name of accounts whose password Formulary checks itself.
pub const LOCAL_PROVIDER: &str = "local";

/// A person (or service account) who can sign in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Stable identifier, used in the audit log.
    pub id: String,
    /// What they type to sign in.
    pub username: String,
    /// How their name is shown.
    pub display_name: String,
    /// Where to reach them.
    pub email: Option<String>,
    /// `local`, or the issuer of the identity provider they sign in with.
    pub identity_provider: String,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
    /// Set when the account may no longer sign in.
    pub disabled_at: Option<DateTime<Utc>>,
    /// Their roles, per organisation.
    pub memberships: Vec<Membership>,
}

impl User {
    /// How the user appears as an actor in the audit log.
    pub fn actor(&self) -> String {
        format!("user:{}", self.username)
    }
}

/// What is needed to create an account.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Sign-in name: 2 to 64 of a–z, 0–9, `.`, `_`, `-`, `@`.
    pub username: String,
    /// Shown name, 1 to 100 printable characters.
    pub display_name: String,
    /// Optional email address.
    pub email: Option<String>,
    /// The argon2 hash of a local password (None for accounts that sign in elsewhere).
    pub password_hash: Option<String>,
    /// `local`, or an identity provider's issuer.
    pub identity_provider: String,
    /// The subject the identity provider knows them by.
    pub external_subject: Option<String>,
    /// Their first roles.
    pub memberships: Vec<Membership>,
}

/// How many sign-ins failed in a window, and when the latest did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureTally {
    /// How many.
    pub count: i64,
    /// When the latest was, if any.
    pub latest: Option<DateTime<Utc>>,
}

/// The failed sign-ins the throttle weighs, by key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignInFailures {
    /// For the username, from any address.
    pub account: FailureTally,
    /// For the username, from this address.
    pub account_from_client: FailureTally,
    /// From this address, for any username.
    pub client: FailureTally,
}

/// Checks a sign-in name and returns it in canonical (lower-case) form.
pub fn canonical_username(text: &str) -> Result<String, StoreError> {
    let name = text.trim().to_ascii_lowercase();
    let well_formed = (2..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if well_formed {
        Ok(name)
    } else {
        Err(StoreError::Conflict(
            "a username is 2 to 64 characters: letters, digits, '.', '_', '-' and '@'".to_owned(),
        ))
    }
}

impl Database {
    /// Creates an account with its first roles, audited as `user.add` and one `role.grant` each.
    pub async fn add_user(&self, new: &NewUser, actor: &str) -> Result<User, StoreError> {
        let username = canonical_username(&new.username)?;
        let display_name = new.display_name.trim().to_owned();
        if display_name.is_empty()
            || display_name.chars().count() > 100
            || display_name.chars().any(char::is_control)
        {
            return Err(StoreError::Conflict(
                "a display name is 1 to 100 printable characters".to_owned(),
            ));
        }
        for membership in &new.memberships {
            self.require_organisation(&membership.organisation).await?;
        }
        if self.user_by_username(&username).await?.is_some() {
            return Err(StoreError::Conflict(format!(
                "the username '{username}' is taken; choose another"
            )));
        }
        let user = User {
            id: format!("u-{}", uuid::Uuid::now_v7().simple()),
            username,
            display_name,
            email: new.email.clone().filter(|email| !email.trim().is_empty()),
            identity_provider: new.identity_provider.clone(),
            created_at: time::now(),
            disabled_at: None,
            memberships: Vec::new(),
        };
        let (stored, new, actor) = (user.clone(), new.clone(), actor.to_owned());
        self.transact(move |connection| {
            let (user, new, actor) = (stored.clone(), new.clone(), actor.clone());
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO users (id, username, display_name, email, password_hash, identity_provider, external_subject, created_at, disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
                )
                .bind(&user.id)
                .bind(&user.username)
                .bind(&user.display_name)
                .bind(user.email.clone())
                .bind(new.password_hash.clone())
                .bind(&user.identity_provider)
                .bind(new.external_subject.clone())
                .bind(time::to_text(user.created_at))
                .execute(&mut *connection)
                .await?;
                let details = serde_json::json!({
                    "username": user.username,
                    "display_name": user.display_name,
                    "identity_provider": user.identity_provider,
                });
                audit::record(connection, &actor, "user.add", &user.id, &details).await?;
                for membership in &new.memberships {
                    insert_membership(connection, &user.id, membership, &actor).await?;
                }
                Ok(())
            })
        })
        .await?;
        self.user(&user.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {}", user.id)))
    }

    /// Gives a user a role in an organisation (audited as `role.grant`).
    pub async fn grant_role(
        &self,
        user_id: &str,
        membership: &Membership,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.require_organisation(&membership.organisation).await?;
        let (user_id, membership, actor) =
            (user_id.to_owned(), membership.clone(), actor.to_owned());
        self.transact(move |connection| {
            let (user_id, membership, actor) = (user_id.clone(), membership.clone(), actor.clone());
            Box::pin(
                async move { insert_membership(connection, &user_id, &membership, &actor).await },
            )
        })
        .await
    }

    /// Takes a role away (audited as `role.revoke`).
    pub async fn revoke_role(
        &self,
        user_id: &str,
        membership: &Membership,
        actor: &str,
    ) -> Result<(), StoreError> {
        let (user_id, membership, actor) =
            (user_id.to_owned(), membership.clone(), actor.to_owned());
        self.transact(move |connection| {
            let (user_id, membership, actor) = (user_id.clone(), membership.clone(), actor.clone());
            Box::pin(async move {
                let removed = sqlx::query(
                    "DELETE FROM memberships WHERE user_id = $1 AND organisation = $2 AND role = $3",
                )
                .bind(&user_id)
                .bind(membership.organisation.as_str())
                .bind(membership.role.as_str())
                .execute(&mut *connection)
                .await?
                .rows_affected();
                if removed == 0 {
                    return Err(StoreError::NotFound(format!(
                        "a {} role in {} for user {user_id}",
                        membership.role, membership.organisation
                    )));
                }
                let details = serde_json::json!({ "organisation": membership.organisation, "role": membership.role });
                audit::record(connection, &actor, "role.revoke", &user_id, &details).await
            })
        })
        .await
    }

    /// A user by id.
    pub async fn user(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => Ok(Some(self.with_memberships(decode_user(&row)?).await?)),
            None => Ok(None),
        }
    }

    /// A user by sign-in name (any case), with their password hash if they have a local one.
    pub async fn user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<(User, Option<String>)>, StoreError> {
        let Ok(username) = canonical_username(username) else {
            return Ok(None);
        };
        let row = sqlx::query(&format!(
            "SELECT {USER_COLUMNS}, password_hash FROM users WHERE username = $1"
        ))
        .bind(&username)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => {
                let hash: Option<String> = row.try_get("password_hash")?;
                Ok(Some((
                    self.with_memberships(decode_user(&row)?).await?,
                    hash,
                )))
            }
            None => Ok(None),
        }
    }

    /// Every account, by username.
    pub async fn users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        ))
        .fetch_all(self.pool())
        .await?;
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            users.push(self.with_memberships(decode_user(row)?).await?);
        }
        Ok(users)
    }

    /// The accounts with a role in `organisation`, by display name, each with all its roles; in
    /// two queries whatever their number (the administration pages list them).
    pub async fn users_in_organisation(
        &self,
        organisation: &formulary_core::OrgCode,
    ) -> Result<Vec<User>, StoreError> {
        let members = "SELECT user_id FROM memberships WHERE organisation = $1";
        let rows = sqlx::query(&format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id IN ({members}) ORDER BY display_name, username"
        ))
        .bind(organisation.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut users = rows
            .iter()
            .map(decode_user)
            .collect::<Result<Vec<_>, _>>()?;
        let roles = sqlx::query(&format!(
            "SELECT user_id, organisation, role FROM memberships WHERE user_id IN ({members}) ORDER BY organisation, role"
        ))
        .bind(organisation.as_str())
        .fetch_all(self.pool())
        .await?;
        let mut by_user: std::collections::HashMap<String, Vec<Membership>> =
            std::collections::HashMap::new();
        for row in &roles {
            by_user
                .entry(row.try_get::<String, _>("user_id")?)
                .or_default()
                .push(Membership::new(
                    row.try_get::<String, _>("organisation")?.parse()?,
                    row.try_get::<String, _>("role")?.parse::<Role>()?,
                ));
        }
        for user in &mut users {
            user.memberships = by_user.remove(&user.id).unwrap_or_default();
        }
        Ok(users)
    }

    /// Replaces a local account's password hash and ends every session of the account except
    /// `keep_session` (the cookie secret of the session that made the change, if any), in one
    /// transaction audited as `user.password`.
    pub async fn set_password_hash(
        &self,
        user_id: &str,
        password_hash: &str,
        keep_session: Option<&str>,
        actor: &str,
    ) -> Result<(), StoreError> {
        let (user_id, hash, actor) = (
            user_id.to_owned(),
            password_hash.to_owned(),
            actor.to_owned(),
        );
        let kept = keep_session.map(crate::sessions::digest);
        self.transact(move |connection| {
            let (user_id, hash, actor, kept) =
                (user_id.clone(), hash.clone(), actor.clone(), kept.clone());
            Box::pin(async move {
                let changed = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(&hash)
                    .bind(&user_id)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected();
                if changed == 0 {
                    return Err(StoreError::NotFound(format!("user {user_id}")));
                }
                let ended = end_sessions(connection, &user_id, kept.as_deref()).await?;
                audit::record(
                    connection,
                    &actor,
                    "user.password",
                    &user_id,
                    &serde_json::json!({ "sessions_ended": ended }),
                )
                .await
            })
        })
        .await
    }

    /// Disables an account (every session ends at once, and its tokens are refused while it is
    /// disabled) or enables it again; audited as `user.disable` or `user.enable`. Doing what is
    /// already done is a conflict, so a repeated command says so.
    pub async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        actor: &str,
    ) -> Result<(), StoreError> {
        let (user_id, actor) = (user_id.to_owned(), actor.to_owned());
        self.transact(move |connection| {
            let (user_id, actor) = (user_id.clone(), actor.clone());
            Box::pin(async move {
                let now = time::to_text(time::now());
                let changed = if disabled {
                    sqlx::query("UPDATE users SET disabled_at = $1 WHERE id = $2 AND disabled_at IS NULL")
                        .bind(&now)
                        .bind(&user_id)
                } else {
                    sqlx::query("UPDATE users SET disabled_at = NULL WHERE id = $1 AND disabled_at IS NOT NULL")
                        .bind(&user_id)
                }
                .execute(&mut *connection)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Err(StoreError::Conflict(format!(
                        "the account {user_id} is already {}",
                        if disabled { "disabled" } else { "enabled" }
                    )));
                }
                let ended = if disabled {
                    end_sessions(connection, &user_id, None).await?
                } else {
                    0
                };
                let action = if disabled { "user.disable" } else { "user.enable" };
                audit::record(
                    connection,
                    &actor,
                    action,
                    &user_id,
                    &serde_json::json!({ "sessions_ended": ended }),
                )
                .await
            })
        })
        .await
    }

    /// Records a failed sign-in (audited as `user.sign-in-failed`; the password is never kept).
    pub async fn record_sign_in_failure(
        &self,
        username: &str,
        client: &str,
    ) -> Result<(), StoreError> {
        let username: String = username.chars().take(64).collect();
        let client: String = client.chars().take(64).collect();
        self.transact(move |connection| {
            let (username, client) = (username.clone(), client.clone());
            Box::pin(async move {
                sqlx::query("INSERT INTO sign_in_failures (id, username, client, at) VALUES ($1, $2, $3, $4)")
                    .bind(uuid::Uuid::now_v7().to_string())
                    .bind(username.to_ascii_lowercase())
                    .bind(&client)
                    .bind(time::to_text(time::now()))
                    .execute(&mut *connection)
                    .await?;
                let details = serde_json::json!({ "client": client });
                audit::record(connection, "anonymous", "user.sign-in-failed", &username, &details).await
            })
        })
        .await
    }

    /// The failed sign-ins since `since` that the sign-in throttle weighs: for this username
    /// from any address, for this username from this address, and from this address for any
    /// username; each with how many and when the latest was.
    pub async fn sign_in_failures_since(
        &self,
        username: &str,
        client: &str,
        since: DateTime<Utc>,
    ) -> Result<SignInFailures, StoreError> {
        let since = time::to_text(since);
        let username = username.trim().to_ascii_lowercase();
        let username: String = username.chars().take(64).collect();
        let client: String = client.chars().take(64).collect();
        let tally = |sql: &'static str, binds: Vec<String>| {
            let since = since.clone();
            async move {
                let mut query = sqlx::query(sql);
                for value in binds {
                    query = query.bind(value);
                }
                let row = query.bind(since).fetch_one(self.pool()).await?;
                let count: i64 = row.try_get("n")?;
                let latest: Option<String> = row.try_get("latest")?;
                Ok::<_, StoreError>(FailureTally {
                    count,
                    latest: time::optional_from_text(latest)?,
                })
            }
        };
        Ok(SignInFailures {
            account: tally(
                "SELECT COUNT(*) AS n, MAX(at) AS latest FROM sign_in_failures WHERE username = $1 AND at >= $2",
                vec![username.clone()],
            )
            .await?,
            account_from_client: tally(
                "SELECT COUNT(*) AS n, MAX(at) AS latest FROM sign_in_failures WHERE username = $1 AND client = $2 AND at >= $3",
                vec![username, client.clone()],
            )
            .await?,
            client: tally(
                "SELECT COUNT(*) AS n, MAX(at) AS latest FROM sign_in_failures WHERE client = $1 AND at >= $2",
                vec![client],
            )
            .await?,
        })
    }

    async fn with_memberships(&self, mut user: User) -> Result<User, StoreError> {
        let rows = sqlx::query(
            "SELECT organisation, role FROM memberships WHERE user_id = $1 ORDER BY organisation, role",
        )
        .bind(&user.id)
        .fetch_all(self.pool())
        .await?;
        user.memberships = rows
            .iter()
            .map(|row| {
                Ok(Membership::new(
                    row.try_get::<String, _>("organisation")?.parse()?,
                    row.try_get::<String, _>("role")?.parse::<Role>()?,
                ))
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(user)
    }
}

/// Ends every live session of a user except the one whose secret digest is `keep`; returns how
/// many ended.
pub(crate) async fn end_sessions(
    connection: &mut sqlx::AnyConnection,
    user_id: &str,
    keep: Option<&str>,
) -> Result<u64, StoreError> {
    Ok(sqlx::query(
        "UPDATE sessions SET ended_at = $1, id_token = NULL WHERE user_id = $2 AND ended_at IS NULL AND id_hash <> $3",
    )
    .bind(time::to_text(time::now()))
    .bind(user_id)
    .bind(keep.unwrap_or(""))
    .execute(&mut *connection)
    .await?
    .rows_affected())
}

async fn insert_membership(
    connection: &mut sqlx::AnyConnection,
    user_id: &str,
    membership: &Membership,
    actor: &str,
) -> Result<(), StoreError> {
    let exists = sqlx::query(
        "SELECT 1 AS present FROM memberships WHERE user_id = $1 AND organisation = $2 AND role = $3",
    )
    .bind(user_id)
    .bind(membership.organisation.as_str())
    .bind(membership.role.as_str())
    .fetch_optional(&mut *connection)
    .await?;
    if exists.is_some() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO memberships (user_id, organisation, role, granted_at, granted_by) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(membership.organisation.as_str())
    .bind(membership.role.as_str())
    .bind(time::to_text(time::now()))
    .bind(actor)
    .execute(&mut *connection)
    .await?;
    let details =
        serde_json::json!({ "organisation": membership.organisation, "role": membership.role });
    audit::record(connection, actor, "role.grant", user_id, &details).await
}

const USER_COLUMNS: &str =
    "id, username, display_name, email, identity_provider, created_at, disabled_at";

fn decode_user(row: &sqlx::any::AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        email: row.try_get("email")?,
        identity_provider: row.try_get("identity_provider")?,
        created_at: time::from_text(&row.try_get::<String, _>("created_at")?)?,
        disabled_at: time::optional_from_text(row.try_get("disabled_at")?)?,
        memberships: Vec::new(),
    })
}
