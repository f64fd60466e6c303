//! Notifications: what each person is told, in the app and by email, and the email outbox.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sqlx::Row;

use crate::database::Database;
use crate::error::StoreError;
use crate::time;

/// Emails are given up after this many failed attempts (the last error is kept).
pub const MAX_EMAIL_ATTEMPTS: i64 = 8;

/// A notification to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNotification {
    /// Who is told.
    pub user_id: String,
    /// What kind of event (`request.question`, `request.decided`, `review.waiting`, …): for
    /// preferences and filtering.
    pub kind: String,
    /// One line, used as the email subject.
    pub subject: String,
    /// What happened, why it matters to them, and what to do next.
    pub body: String,
    /// An absolute link to where they act on it.
    pub link: String,
}

/// A notification as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Identifier.
    pub id: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// What kind of event.
    pub kind: String,
    /// One line.
    pub subject: String,
    /// The message.
    pub body: String,
    /// Where to act on it.
    pub link: String,
    /// When its person marked it read.
    pub read_at: Option<DateTime<Utc>>,
    /// `pending`, `sent`, `failed` or `none` (no address, or email turned off).
    pub email_state: String,
}

/// An email waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingEmail {
    /// The notification it carries.
    pub notification: Notification,
    /// The person's address.
    pub to: String,
    /// The person's name, for the `To:` header.
    pub display_name: String,
    /// Attempts so far.
    pub attempts: i64,
}

fn decode(row: &sqlx::any::AnyRow) -> Result<Notification, StoreError> {
    Ok(Notification {
        id: row.try_get("id")?,
        created_at: time::from_text(&row.try_get::<String, _>("created_at")?)?,
        kind: row.try_get("kind")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        link: row.try_get("link")?,
        read_at: time::optional_from_text(row.try_get("read_at")?)?,
        email_state: row.try_get("email_state")?,
    })
}

const COLUMNS: &str =
    "n.id, n.created_at, n.kind, n.subject, n.body, n.link, n.read_at, n.email_state";

impl Database {
    /// Records notifications; each is queued for email when its person has an address and has
    /// not turned email off.
    pub async fn notify(&self, notes: &[NewNotification]) -> Result<(), StoreError> {
        let notes = notes.to_vec();
        self.transact(move |connection| {
            let notes = notes.clone();
            Box::pin(async move {
                let now = time::to_text(Utc::now());
                for note in &notes {
                    let person = sqlx::query(
                        "SELECT email, email_notifications, disabled_at FROM users WHERE id = $1",
                    )
                    .bind(&note.user_id)
                    .fetch_optional(&mut *connection)
                    .await?;
                    let Some(person) = person else { continue };
                    if person.try_get::<Option<String>, _>("disabled_at")?.is_some() {
                        continue;
                    }
                    let wants_email = person.try_get::<i64, _>("email_notifications")? != 0
                        && person
                            .try_get::<Option<String>, _>("email")?
                            .is_some_and(|email| !email.trim().is_empty());
                    sqlx::query(
                        "INSERT INTO notifications (id, user_id, created_at, kind, subject, body, link, email_state, email_next_attempt_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(format!("n-{}", uuid::Uuid::now_v7().simple()))
                    .bind(&note.user_id)
                    .bind(&now)
                    .bind(&note.kind)
                    .bind(&note.subject)
                    .bind(&note.body)
                    .bind(&note.link)
                    .bind(if wants_email { "pending" } else { "none" })
                    .bind(wants_email.then(|| now.clone()))
                    .execute(&mut *connection)
                    .await?;
                }
                Ok(())
            })
        })
        .await
    }

    /// A person's newest notifications, newest first.
    pub async fn notifications_for(
        &self,
        user_id: &str,
        limit: i64,
    ) -> Result<Vec<Notification>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM notifications n WHERE n.user_id = $1 ORDER BY n.created_at DESC, n.id DESC LIMIT $2"
        ))
        .bind(user_id)
        .bind(limit.clamp(1, 500))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(decode).collect()
    }

    /// How many of a person's notifications are unread.
    pub async fn unread_notifications(&self, user_id: &str) -> Result<i64, StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS unread FROM notifications WHERE user_id = $1 AND read_at IS NULL",
        )
        .bind(user_id)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get("unread")?)
    }

    /// Marks every notification of a person read. Returns how many changed.
    pub async fn mark_notifications_read(&self, user_id: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE notifications SET read_at = $1 WHERE user_id = $2 AND read_at IS NULL",
        )
        .bind(time::to_text(Utc::now()))
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Whether a person is emailed.
    pub async fn email_notifications(&self, user_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT email_notifications FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("account {user_id}")))?;
        Ok(row.try_get::<i64, _>("email_notifications")? != 0)
    }

    /// Turns a person's email notifications on or off (audited).
    pub async fn set_email_notifications(
        &self,
        user_id: &str,
        enabled: bool,
        actor: &str,
    ) -> Result<(), StoreError> {
        let (user_id, actor) = (user_id.to_owned(), actor.to_owned());
        self.transact(move |connection| {
            let (user_id, actor) = (user_id.clone(), actor.clone());
            Box::pin(async move {
                let changed =
                    sqlx::query("UPDATE users SET email_notifications = $1 WHERE id = $2")
                        .bind(i64::from(enabled))
                        .bind(&user_id)
                        .execute(&mut *connection)
                        .await?;
                if changed.rows_affected() == 0 {
                    return Err(StoreError::NotFound(format!("account {user_id}")));
                }
                crate::audit::record(
                    connection,
                    &actor,
                    "user.notifications",
                    &user_id,
                    &serde_json::json!({ "email": enabled }),
                )
                .await
            })
        })
        .await
    }

    /// Emails due to be sent now, oldest first.
    pub async fn due_emails(&self, limit: i64) -> Result<Vec<OutgoingEmail>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS}, n.email_attempts, u.email, u.display_name FROM notifications n JOIN users u ON u.id = n.user_id
             WHERE n.email_state = 'pending' AND n.email_next_attempt_at <= $1 ORDER BY n.created_at LIMIT $2"
        ))
        .bind(time::to_text(Utc::now()))
        .bind(limit.clamp(1, 500))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(OutgoingEmail {
                    notification: decode(row)?,
                    to: row
                        .try_get::<Option<String>, _>("email")?
                        .unwrap_or_default(),
                    display_name: row.try_get("display_name")?,
                    attempts: row.try_get("email_attempts")?,
                })
            })
            .collect()
    }

    /// Records that an email was taken by the SMTP server, or why not; a failed one is tried
    /// again later (doubling the wait from one minute), up to [`MAX_EMAIL_ATTEMPTS`].
    pub async fn record_email_attempt(
        &self,
        id: &str,
        outcome: Result<(), String>,
    ) -> Result<(), StoreError> {
        let now = Utc::now();
        match outcome {
            Ok(()) => {
                sqlx::query("UPDATE notifications SET email_state = 'sent', emailed_at = $1, email_attempts = email_attempts + 1, email_error = NULL WHERE id = $2")
                    .bind(time::to_text(now))
                    .bind(id)
                    .execute(self.pool())
                    .await?;
            }
            Err(error) => {
                let row = sqlx::query("SELECT email_attempts FROM notifications WHERE id = $1")
                    .bind(id)
                    .fetch_one(self.pool())
                    .await?;
                let attempts = row.try_get::<i64, _>("email_attempts")? + 1;
                let state = if attempts >= MAX_EMAIL_ATTEMPTS {
                    "failed"
                } else {
                    "pending"
                };
                let wait = Duration::minutes(1i64 << attempts.clamp(0, 12));
                sqlx::query("UPDATE notifications SET email_state = $1, email_attempts = $2, email_error = $3, email_next_attempt_at = $4 WHERE id = $5")
                    .bind(state)
                    .bind(attempts)
                    .bind(error.chars().take(500).collect::<String>())
                    .bind(time::to_text(now + wait))
                    .bind(id)
                    .execute(self.pool())
                    .await?;
            }
        }
        Ok(())
    }

    /// The people holding any of `roles` in `organisation`, or nationally (national roles
    /// count for every organisation), who can be told something.
    pub async fn people_with_roles(
        &self,
        organisation: &str,
        roles: &[&str],
    ) -> Result<Vec<String>, StoreError> {
        let mut people = Vec::new();
        for role in roles {
            let rows = sqlx::query(
                "SELECT DISTINCT m.user_id FROM memberships m JOIN users u ON u.id = m.user_id
                 WHERE m.role = $1 AND (m.organisation = $2 OR m.organisation = 'NATIONAL') AND u.disabled_at IS NULL",
            )
            .bind(*role)
            .bind(organisation)
            .fetch_all(self.pool())
            .await?;
            for row in rows {
                let id: String = row.try_get("user_id")?;
                if !people.contains(&id) {
                    people.push(id);
                }
            }
        }
        Ok(people)
    }
}
