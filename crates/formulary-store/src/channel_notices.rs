//! Channel notices written by people (national curators, organisation admins): added and
//! withdrawn (audited as `channel-notice.add` and `channel-notice.withdraw`, subject the
//! notice's id), and read back for the administration pages and for `notices.json`. Rows are
//! never deleted, so dated views and the history still see withdrawn notices.

use formulary_core::channel_notice::{ChannelNotice, ChannelNoticeDraft, NoticeLevel};
use formulary_core::OrgCode;
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

const COLUMNS: &str = "id, organisation, channel, level, message, expires, created_at, created_by, withdrawn_at, withdrawn_by";

fn decode(row: &sqlx::any::AnyRow) -> Result<ChannelNotice, StoreError> {
    let organisation = row
        .try_get::<String, _>("organisation")?
        .parse::<OrgCode>()
        .map_err(|error| StoreError::corrupt("channel notice", error))?;
    let level = row
        .try_get::<String, _>("level")?
        .parse::<NoticeLevel>()
        .map_err(|error| StoreError::corrupt("channel notice", error.message))?;
    Ok(ChannelNotice {
        id: row.try_get("id")?,
        draft: ChannelNoticeDraft {
            organisation,
            channel: row.try_get("channel")?,
            level,
            message: row.try_get("message")?,
            expires: time::day_from_text(row.try_get("expires")?)?,
        },
        created_at: time::from_text(&row.try_get::<String, _>("created_at")?)?,
        created_by: row.try_get("created_by")?,
        withdrawn_at: time::optional_from_text(row.try_get("withdrawn_at")?)?,
        withdrawn_by: row.try_get("withdrawn_by")?,
    })
}

fn details(draft: &ChannelNoticeDraft) -> serde_json::Value {
    serde_json::json!({
        "organisation": draft.organisation.as_str(),
        "channel": draft.channel,
        "level": draft.level.as_str(),
        "message": draft.message,
        "expires": draft.expires.map(|day| day.to_string()),
    })
}

impl Database {
    /// Records a notice (checked by [`ChannelNoticeDraft::check`]) written by `actor`, with its
    /// audit row, in one transaction.
    pub async fn add_channel_notice(
        &self,
        draft: &ChannelNoticeDraft,
        actor: &str,
    ) -> Result<ChannelNotice, StoreError> {
        self.require_organisation(&draft.organisation).await?;
        let notice = ChannelNotice {
            id: format!("cn-{}", uuid::Uuid::now_v7().simple()),
            draft: draft.clone(),
            created_at: time::now(),
            created_by: actor.to_owned(),
            withdrawn_at: None,
            withdrawn_by: None,
        };
        let written = notice.clone();
        self.transact(move |connection| {
            let notice = written.clone();
            Box::pin(async move {
                let draft = &notice.draft;
                sqlx::query(&format!(
                    "INSERT INTO channel_notices ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, NULL)"
                ))
                .bind(&notice.id)
                .bind(draft.organisation.as_str())
                .bind(draft.channel.clone())
                .bind(draft.level.as_str())
                .bind(&draft.message)
                .bind(draft.expires.map(|day| day.to_string()))
                .bind(time::to_text(notice.created_at))
                .bind(&notice.created_by)
                .execute(&mut *connection)
                .await?;
                audit::record(connection, &notice.created_by, "channel-notice.add", &notice.id, &details(draft)).await
            })
        })
        .await?;
        Ok(notice)
    }

    /// One notice by id, withdrawn or not.
    pub async fn channel_notice(&self, id: &str) -> Result<ChannelNotice, StoreError> {
        self.ensure_online()?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM channel_notices WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => decode(&row),
            None => Err(StoreError::NotFound(format!(
                "channel notice '{}'",
                id.escape_debug()
            ))),
        }
    }

    /// Every notice of these organisations, withdrawn and expired ones too, oldest first.
    pub async fn channel_notices_of(
        &self,
        organisations: &[OrgCode],
    ) -> Result<Vec<ChannelNotice>, StoreError> {
        self.ensure_online()?;
        let mut notices = Vec::new();
        for organisation in organisations {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM channel_notices WHERE organisation = $1 ORDER BY created_at, id"
            ))
            .bind(organisation.as_str())
            .fetch_all(self.pool())
            .await?;
            for row in &rows {
                notices.push(decode(row)?);
            }
        }
        notices
            .sort_by(|left, right| (left.created_at, &left.id).cmp(&(right.created_at, &right.id)));
        Ok(notices)
    }

    /// Withdraws a notice at once (audited); it stays stored, marked withdrawn. A notice
    /// already withdrawn is a conflict that says when and by whom.
    pub async fn withdraw_channel_notice(
        &self,
        id: &str,
        actor: &str,
    ) -> Result<ChannelNotice, StoreError> {
        let current = self.channel_notice(id).await?;
        if let (Some(at), Some(by)) = (current.withdrawn_at, &current.withdrawn_by) {
            return Err(StoreError::Conflict(format!(
                "channel notice {id} was already withdrawn at {at} by {by}"
            )));
        }
        let withdrawn_at = time::now();
        let (id, actor) = (id.to_owned(), actor.to_owned());
        let (id_for_write, actor_for_write) = (id.clone(), actor.clone());
        self.transact(move |connection| {
            let (id, actor) = (id_for_write.clone(), actor_for_write.clone());
            Box::pin(async move {
                let changed = sqlx::query("UPDATE channel_notices SET withdrawn_at = $1, withdrawn_by = $2 WHERE id = $3 AND withdrawn_at IS NULL")
                    .bind(time::to_text(withdrawn_at))
                    .bind(&actor)
                    .bind(&id)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected();
                if changed == 0 {
                    return Err(StoreError::Conflict(format!("channel notice {id} was withdrawn by someone else in the meantime")));
                }
                audit::record(connection, &actor, "channel-notice.withdraw", &id, &serde_json::json!({})).await
            })
        })
        .await?;
        Ok(ChannelNotice {
            withdrawn_at: Some(withdrawn_at),
            withdrawn_by: Some(actor),
            ..current
        })
    }
}
