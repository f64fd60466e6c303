//! Device sign-in codes (`device_codes`): `formulary setup` asks for one, the person approves its
//! short user code on a page while signed in, and setup, polling with the device code (stored
//! only as its SHA-256), receives one token for package clients, once.

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// What a poll with a device code finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// No such code.
    Unknown,
    /// Not approved yet.
    Pending,
    /// Polled again sooner than `interval` seconds after the last poll.
    SlowDown,
    /// Past its expiry, not approved (or approved too late).
    Expired,
    /// Approved by this username; this poll redeems it (a token is to be issued now).
    Approved(String),
    /// Already redeemed: a code gives one token.
    Used,
}

impl Database {
    /// Records a new device code (its SHA-256 and the user code), from a client address.
    pub async fn start_device_sign_in(
        &self,
        device_hash: &str,
        user_code: &str,
        client_name: &str,
        from: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO device_codes (device_hash, user_code, client_name, created_from, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(device_hash)
        .bind(user_code)
        .bind(client_name)
        .bind(from)
        .bind(time::to_text(Utc::now()))
        .bind(time::to_text(expires_at))
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// How many device codes an address asked for since `since`.
    pub async fn device_codes_from(
        &self,
        from: &str,
        since: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM device_codes WHERE created_from = $1 AND created_at >= $2",
        )
        .bind(from)
        .bind(time::to_text(since))
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>("n")?)
    }

    /// The client name of a user code that can still be approved (known, unexpired, not yet
    /// approved), for the approval page.
    pub async fn pending_device_code(&self, user_code: &str) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT client_name, expires_at, approved_at FROM device_codes WHERE user_code = $1",
        )
        .bind(user_code)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let expires = time::from_text(&row.try_get::<String, _>("expires_at")?)?;
        let approved: Option<String> = row.try_get("approved_at")?;
        Ok((expires > Utc::now() && approved.is_none())
            .then(|| row.try_get::<String, _>("client_name"))
            .transpose()?)
    }

    /// Approves a user code for `username`, audited as `device.approve` by `actor`; the client
    /// name when it was approvable, `None` otherwise (unknown, expired or already approved).
    pub async fn approve_device_code(
        &self,
        user_code: &str,
        username: &str,
        actor: &str,
    ) -> Result<Option<String>, StoreError> {
        let (user_code, username, actor) =
            (user_code.to_owned(), username.to_owned(), actor.to_owned());
        self.transact(move |connection| {
            let (user_code, username, actor) = (user_code.clone(), username.clone(), actor.clone());
            Box::pin(async move {
                let row = sqlx::query(
                    "SELECT client_name, expires_at, approved_at FROM device_codes WHERE user_code = $1",
                )
                .bind(&user_code)
                .fetch_optional(&mut *connection)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let expires = time::from_text(&row.try_get::<String, _>("expires_at")?)?;
                let approved: Option<String> = row.try_get("approved_at")?;
                if expires <= Utc::now() || approved.is_some() {
                    return Ok(None);
                }
                let client: String = row.try_get("client_name")?;
                sqlx::query(
                    "UPDATE device_codes SET approved_by = $1, approved_at = $2 WHERE user_code = $3 AND approved_at IS NULL",
                )
                .bind(&username)
                .bind(time::to_text(Utc::now()))
                .bind(&user_code)
                .execute(&mut *connection)
                .await?;
                audit::append(
                    connection,
                    &actor,
                    "device.approve",
                    &format!("device:{user_code}"),
                    &serde_json::json!({ "client": client, "username": username }),
                )
                .await?;
                Ok(Some(client))
            })
        })
        .await
    }

    /// A poll with a device code's SHA-256: records the poll, and redeems an approved code
    /// (once). `interval` is the least number of seconds between polls.
    pub async fn poll_device_code(
        &self,
        device_hash: &str,
        interval: i64,
    ) -> Result<DevicePoll, StoreError> {
        let device_hash = device_hash.to_owned();
        self.transact(move |connection| {
            let device_hash = device_hash.clone();
            Box::pin(async move {
                let row = sqlx::query(
                    "SELECT expires_at, approved_by, redeemed_at, last_poll_at FROM device_codes WHERE device_hash = $1",
                )
                .bind(&device_hash)
                .fetch_optional(&mut *connection)
                .await?;
                let Some(row) = row else {
                    return Ok(DevicePoll::Unknown);
                };
                let now = Utc::now();
                let expires = time::from_text(&row.try_get::<String, _>("expires_at")?)?;
                let approved_by: Option<String> = row.try_get("approved_by")?;
                let redeemed: Option<String> = row.try_get("redeemed_at")?;
                let last_poll: Option<String> = row.try_get("last_poll_at")?;
                if redeemed.is_some() {
                    return Ok(DevicePoll::Used);
                }
                if expires <= now {
                    return Ok(DevicePoll::Expired);
                }
                sqlx::query("UPDATE device_codes SET last_poll_at = $1 WHERE device_hash = $2")
                    .bind(time::to_text(now))
                    .bind(&device_hash)
                    .execute(&mut *connection)
                    .await?;
                if let Some(username) = approved_by {
                    let redeemed = sqlx::query(
                        "UPDATE device_codes SET redeemed_at = $1 WHERE device_hash = $2 AND redeemed_at IS NULL",
                    )
                    .bind(time::to_text(now))
                    .bind(&device_hash)
                    .execute(&mut *connection)
                    .await?;
                    return Ok(if redeemed.rows_affected() == 1 {
                        DevicePoll::Approved(username)
                    } else {
                        DevicePoll::Used
                    });
                }
                if let Some(last) = last_poll {
                    if (now - time::from_text(&last)?).num_milliseconds() < interval * 1000 - 500 {
                        return Ok(DevicePoll::SlowDown);
                    }
                }
                Ok(DevicePoll::Pending)
            })
        })
        .await
    }
}
