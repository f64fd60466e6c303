//! Requests and their timelines. Every step (submission, comment, sign-off, decision,
//! withdrawal) is one transaction that also writes the audit row; a decision that approves also
//! writes its entry in the same transaction.

use chrono::{DateTime, Utc};
use formulary_core::ecosystems::{Ecosystem, VersionRange};
use formulary_core::request::{DataClass, RequestDraft, RequestState, ReviewStage, SignOffVerdict};
use formulary_core::{Component, Entry, EntryDraft, OrgCode};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::audit;
use crate::database::Database;
use crate::entries::{insert_entry, new_entry};
use crate::error::StoreError;
use crate::time;

/// A person as a request shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserRef {
    /// Their user id.
    pub id: String,
    /// Their display name.
    pub name: String,
}

/// How a request was decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedDecision {
    /// Who decided (display name), or `Formulary` when an existing entry granted it at once.
    pub by: String,
    /// Why, as published in the decision log.
    pub reason: String,
    /// `national` or `organisation`, when an entry was written.
    pub scope: Option<String>,
    /// The entry that now allows the component, when there is one.
    pub entry_id: Option<String>,
    /// True when an earlier decision was reused instead of a new review.
    pub reused: bool,
    /// What was reused: an entry id or `request:N`.
    pub reused_from: Option<String>,
}

/// A request as stored.
#[derive(Debug, Clone)]
pub struct StoredRequest {
    /// Its number.
    pub id: i64,
    /// What was asked.
    pub draft: RequestDraft,
    /// Who asked.
    pub requester: UserRef,
    /// Where it stands.
    pub state: RequestState,
    /// When it was submitted.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was decided or withdrawn.
    pub decided_at: Option<DateTime<Utc>>,
    /// The decision, once there is one.
    pub decision: Option<RecordedDecision>,
}

/// What kind of step an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// The request was made.
    Submitted,
    /// Someone wrote in the thread.
    Comment,
    /// A review stage was signed off.
    SignOff,
    /// An approver decided.
    Decision,
    /// An existing entry already covered it, so it was granted at once.
    Granted,
    /// The requester withdrew it.
    Withdrawal,
}

impl EventKind {
    const ALL: [EventKind; 6] = [
        EventKind::Submitted,
        EventKind::Comment,
        EventKind::SignOff,
        EventKind::Decision,
        EventKind::Granted,
        EventKind::Withdrawal,
    ];

    /// The word stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Submitted => "submitted",
            EventKind::Comment => "comment",
            EventKind::SignOff => "sign-off",
            EventKind::Decision => "decision",
            EventKind::Granted => "granted",
            EventKind::Withdrawal => "withdrawal",
        }
    }
}

/// One step in a request's timeline.
#[derive(Debug, Clone, Serialize)]
pub struct RequestEvent {
    /// Position in the timeline, from 1.
    pub seq: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub actor: UserRef,
    /// What kind of step.
    pub kind: EventKind,
    /// The review stage, for sign-offs.
    pub stage: Option<ReviewStage>,
    /// The reviewer's verdict, for sign-offs.
    pub verdict: Option<SignOffVerdict>,
    /// The text: a comment, a note, a reason.
    pub body: String,
}

/// Which requests to list.
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    /// Only this requester's (user id).
    pub requester: Option<String>,
    /// Only for this organisation.
    pub organisation: Option<OrgCode>,
    /// Only for this component.
    pub component: Option<Component>,
    /// Only open ones (submitted or in review).
    pub open_only: bool,
}

/// An existing entry that already covers a new request.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The entry.
    pub entry_id: String,
    /// The state the request takes (from the entry's status).
    pub state: RequestState,
    /// Why it was granted, for the log.
    pub reason: String,
}

/// What an approver decided.
#[derive(Debug, Clone)]
pub struct DecisionRecord {
    /// The state the request moves to (a decision state).
    pub state: RequestState,
    /// Why.
    pub reason: String,
    /// `national` or `organisation`, when an entry is written.
    pub scope: Option<String>,
    /// The entry to write, for approvals.
    pub entry: Option<EntryDraft>,
    /// The earlier decision reused, if any.
    pub reused_from: Option<String>,
}

const COLUMNS: &str = "r.id, r.organisation, r.ecosystem, r.name, r.version_range, r.requester, u.display_name AS requester_name, r.problem, r.data_class, r.environment, r.alternatives, r.users_count, r.credentials, r.state, r.created_at, r.updated_at, r.decided_at, r.decided_by, r.decision_reason, r.decision_scope, r.entry_id, r.reused, r.reused_from";

impl Database {
    /// Stores a new request. With a `grant`, an existing entry already covers it: it is decided
    /// at once, as a reuse.
    pub async fn submit_request(
        &self,
        draft: &RequestDraft,
        requester: &UserRef,
        actor: &str,
        grant: Option<Grant>,
    ) -> Result<StoredRequest, StoreError> {
        self.require_organisation(&draft.organisation).await?;
        let (draft, requester, actor) = (draft.clone(), requester.clone(), actor.to_owned());
        let id = self
            .transact(move |connection| {
                let (draft, requester, actor, grant) =
                    (draft.clone(), requester.clone(), actor.clone(), grant.clone());
                Box::pin(async move {
                    let id: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) + 1 AS next FROM requests")
                        .fetch_one(&mut *connection)
                        .await?
                        .try_get("next")?;
                    let now = time::to_text(time::now());
                    let state = grant.as_ref().map_or(RequestState::Submitted, |grant| grant.state);
                    sqlx::query("INSERT INTO requests (id, organisation, ecosystem, name, version_range, requester, problem, data_class, environment, alternatives, users_count, credentials, state, created_at, updated_at, decided_at, decided_by, decision_reason, decision_scope, entry_id, reused, reused_from) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16, $17, NULL, $18, $19, $18)")
                        .bind(id)
                        .bind(draft.organisation.as_str())
                        .bind(draft.component.ecosystem().as_str())
                        .bind(draft.component.name.as_str())
                        .bind(draft.range.as_str())
                        .bind(&requester.id)
                        .bind(&draft.problem)
                        .bind(draft.data_class.as_str())
                        .bind(&draft.environment)
                        .bind(&draft.alternatives)
                        .bind(i64::from(draft.users))
                        .bind(&draft.credentials)
                        .bind(state.as_str())
                        .bind(&now)
                        .bind(grant.as_ref().map(|_| now.clone()))
                        .bind(grant.as_ref().map(|_| "Formulary".to_owned()))
                        .bind(grant.as_ref().map(|grant| grant.reason.clone()))
                        .bind(grant.as_ref().map(|grant| grant.entry_id.clone()))
                        .bind(i64::from(grant.is_some()))
                        .execute(&mut *connection)
                        .await?;
                    append_event(connection, id, &requester, EventKind::Submitted, None, None, &draft.problem).await?;
                    let details = serde_json::json!({
                        "component": draft.component,
                        "range": draft.range.as_str(),
                        "organisation": draft.organisation,
                        "data_class": draft.data_class,
                        "users": draft.users,
                    });
                    audit::record(connection, &actor, "request.submit", &format!("request:{id}"), &details).await?;
                    if let Some(grant) = grant {
                        let system = UserRef { id: "formulary".to_owned(), name: "Formulary".to_owned() };
                        append_event(connection, id, &system, EventKind::Granted, None, None, &grant.reason).await?;
                        let details = serde_json::json!({ "state": grant.state, "entry": grant.entry_id, "reason": grant.reason, "reused": true });
                        audit::record(connection, "formulary", "request.decide", &format!("request:{id}"), &details).await?;
                    }
                    Ok(id)
                })
            })
            .await?;
        self.require_request(id).await
    }

    /// Adds a comment to the thread (audited as `request.comment`).
    pub async fn comment_on_request(
        &self,
        id: i64,
        author: &UserRef,
        actor: &str,
        body: &str,
    ) -> Result<(), StoreError> {
        let (author, actor, body) = (author.clone(), actor.to_owned(), body.to_owned());
        self.transact(move |connection| {
            let (author, actor, body) = (author.clone(), actor.clone(), body.clone());
            Box::pin(async move {
                touch(connection, id, None).await?;
                append_event(
                    connection,
                    id,
                    &author,
                    EventKind::Comment,
                    None,
                    None,
                    &body,
                )
                .await?;
                let details = serde_json::json!({ "length": body.chars().count() });
                audit::record(
                    connection,
                    &actor,
                    "request.comment",
                    &format!("request:{id}"),
                    &details,
                )
                .await
            })
        })
        .await
    }

    /// Signs off a review stage; the request moves to `in-review` (audited as `request.sign-off`).
    /// Refuses a stage already signed off, and a request no longer open, even under races.
    pub async fn sign_off_request(
        &self,
        id: i64,
        reviewer: &UserRef,
        actor: &str,
        stage: ReviewStage,
        verdict: SignOffVerdict,
        note: &str,
    ) -> Result<(), StoreError> {
        let (reviewer, actor, note) = (reviewer.clone(), actor.to_owned(), note.to_owned());
        self.transact(move |connection| {
            let (reviewer, actor, note) = (reviewer.clone(), actor.clone(), note.clone());
            Box::pin(async move {
                let already = sqlx::query("SELECT 1 AS present FROM request_events WHERE request_id = $1 AND kind = 'sign-off' AND stage = $2")
                    .bind(id)
                    .bind(stage.as_str())
                    .fetch_optional(&mut *connection)
                    .await?;
                if already.is_some() {
                    return Err(StoreError::Conflict(format!("the {} of request {id} has already been signed off", stage.label().to_lowercase())));
                }
                touch(connection, id, Some(RequestState::InReview)).await?;
                append_event(connection, id, &reviewer, EventKind::SignOff, Some(stage), Some(verdict), &note).await?;
                let details = serde_json::json!({ "stage": stage, "verdict": verdict, "note": note });
                audit::record(connection, &actor, "request.sign-off", &format!("request:{id}"), &details).await
            })
        })
        .await
    }

    /// Decides an open request; an approval writes its entry in the same transaction
    /// (audited as `request.decide` and `entry.add`).
    pub async fn decide_request(
        &self,
        id: i64,
        approver: &UserRef,
        actor: &str,
        decision: &DecisionRecord,
    ) -> Result<Option<Entry>, StoreError> {
        if let Some(draft) = &decision.entry {
            draft.validate()?;
        }
        let entry = decision.entry.as_ref().map(new_entry);
        let (approver, actor, decision, stored) = (
            approver.clone(),
            actor.to_owned(),
            decision.clone(),
            entry.clone(),
        );
        self.transact(move |connection| {
            let (approver, actor, decision, entry) =
                (approver.clone(), actor.clone(), decision.clone(), stored.clone());
            Box::pin(async move {
                if let Some(entry) = &entry {
                    insert_entry(connection, entry, &actor).await?;
                }
                let now = time::to_text(time::now());
                let changed = sqlx::query("UPDATE requests SET state = $1, updated_at = $2, decided_at = $2, decided_by = $3, decision_reason = $4, decision_scope = $5, entry_id = $6, reused = $7, reused_from = $8 WHERE id = $9 AND state IN ('submitted', 'in-review')")
                    .bind(decision.state.as_str())
                    .bind(&now)
                    .bind(&approver.name)
                    .bind(&decision.reason)
                    .bind(decision.scope.clone())
                    .bind(entry.as_ref().map(|entry| entry.id.clone()))
                    .bind(i64::from(decision.reused_from.is_some()))
                    .bind(decision.reused_from.clone())
                    .bind(id)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected();
                if changed == 0 {
                    return Err(StoreError::Conflict(format!("request {id} is no longer open; it was decided or withdrawn meanwhile")));
                }
                append_event(connection, id, &approver, EventKind::Decision, None, None, &decision.reason).await?;
                let details = serde_json::json!({
                    "state": decision.state,
                    "reason": decision.reason,
                    "scope": decision.scope,
                    "entry": entry.as_ref().map(|entry| entry.id.clone()),
                    "reused_from": decision.reused_from,
                });
                audit::record(connection, &actor, "request.decide", &format!("request:{id}"), &details).await
            })
        })
        .await?;
        Ok(entry)
    }

    /// Withdraws an open request (audited as `request.withdraw`).
    pub async fn withdraw_request(
        &self,
        id: i64,
        requester: &UserRef,
        actor: &str,
        note: &str,
    ) -> Result<(), StoreError> {
        let (requester, actor, note) = (requester.clone(), actor.to_owned(), note.to_owned());
        self.transact(move |connection| {
            let (requester, actor, note) = (requester.clone(), actor.clone(), note.clone());
            Box::pin(async move {
                let now = time::to_text(time::now());
                let changed = sqlx::query("UPDATE requests SET state = 'withdrawn', updated_at = $1, decided_at = $1 WHERE id = $2 AND state IN ('submitted', 'in-review')")
                    .bind(&now)
                    .bind(id)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected();
                if changed == 0 {
                    return Err(StoreError::Conflict(format!("request {id} is no longer open, so it cannot be withdrawn")));
                }
                append_event(connection, id, &requester, EventKind::Withdrawal, None, None, &note).await?;
                audit::record(connection, &actor, "request.withdraw", &format!("request:{id}"), &serde_json::json!({ "note": note })).await
            })
        })
        .await
    }

    /// One request, if it exists.
    pub async fn request(&self, id: i64) -> Result<Option<StoredRequest>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM requests r JOIN users u ON u.id = r.requester WHERE r.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| decode_request(&row)).transpose()
    }

    async fn require_request(&self, id: i64) -> Result<StoredRequest, StoreError> {
        self.request(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("request {id}")))
    }

    /// A request's timeline, oldest first.
    pub async fn request_events(&self, id: i64) -> Result<Vec<RequestEvent>, StoreError> {
        let rows = sqlx::query("SELECT seq, at, actor, actor_name, kind, stage, verdict, body FROM request_events WHERE request_id = $1 ORDER BY seq")
            .bind(id)
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(decode_event).collect()
    }

    /// Requests matching `filter`, newest first.
    pub async fn requests(&self, filter: &RequestFilter) -> Result<Vec<StoredRequest>, StoreError> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM requests r JOIN users u ON u.id = r.requester WHERE 1 = 1"
        );
        let mut binds: Vec<String> = Vec::new();
        let mut bind = |sql: &mut String, clause: &str, value: String| {
            binds.push(value);
            sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(requester) = &filter.requester {
            bind(&mut sql, " AND r.requester = ?", requester.clone());
        }
        if let Some(organisation) = &filter.organisation {
            bind(
                &mut sql,
                " AND r.organisation = ?",
                organisation.as_str().to_owned(),
            );
        }
        if let Some(component) = &filter.component {
            bind(
                &mut sql,
                " AND r.ecosystem = ?",
                component.ecosystem().as_str().to_owned(),
            );
            bind(
                &mut sql,
                " AND r.name = ?",
                component.name.as_str().to_owned(),
            );
        }
        if filter.open_only {
            sql.push_str(" AND r.state IN ('submitted', 'in-review')");
        }
        sql.push_str(" ORDER BY r.id DESC");
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value);
        }
        let rows = query.fetch_all(self.pool()).await?;
        rows.iter().map(decode_request).collect()
    }
}

/// Marks a request as changed. With `state`, it also moves an open request to that state; the
/// check and the change are one compare-and-set `UPDATE`, so a step that raced a decision or a
/// withdrawal cannot put the request back into review (the database re-checks the condition
/// after waiting for the other writer's row lock).
async fn touch(
    connection: &mut AnyConnection,
    id: i64,
    state: Option<RequestState>,
) -> Result<(), StoreError> {
    let now = time::to_text(time::now());
    let changed = match state {
        Some(state) => sqlx::query(
            "UPDATE requests SET state = $1, updated_at = $2 WHERE id = $3 AND state IN ('submitted', 'in-review')",
        )
        .bind(state.as_str())
        .bind(&now)
        .bind(id),
        None => sqlx::query("UPDATE requests SET updated_at = $1 WHERE id = $2")
            .bind(now.clone())
            .bind(id),
    }
    .execute(&mut *connection)
    .await?
    .rows_affected();
    if changed > 0 {
        return Ok(());
    }
    let row = sqlx::query("SELECT state FROM requests WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *connection)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("request {id}")))?;
    let current: RequestState = row.try_get::<String, _>("state")?.parse()?;
    Err(StoreError::Conflict(format!(
        "request {id} is already {}, so it cannot be reviewed",
        current.label().to_lowercase()
    )))
}

async fn append_event(
    connection: &mut AnyConnection,
    id: i64,
    actor: &UserRef,
    kind: EventKind,
    stage: Option<ReviewStage>,
    verdict: Option<SignOffVerdict>,
    body: &str,
) -> Result<(), StoreError> {
    let seq: i64 = sqlx::query(
        "SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM request_events WHERE request_id = $1",
    )
    .bind(id)
    .fetch_one(&mut *connection)
    .await?
    .try_get("next")?;
    sqlx::query("INSERT INTO request_events (request_id, seq, at, actor, actor_name, kind, stage, verdict, body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(id)
        .bind(seq)
        .bind(time::to_text(time::now()))
        .bind(&actor.id)
        .bind(&actor.name)
        .bind(kind.as_str())
        .bind(stage.map(|stage| stage.as_str()))
        .bind(verdict.map(|verdict| verdict.as_str()))
        .bind(body)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

fn decode_request(row: &sqlx::any::AnyRow) -> Result<StoredRequest, StoreError> {
    let ecosystem: Ecosystem = row
        .try_get::<String, _>("ecosystem")?
        .parse()
        .map_err(formulary_core::CoreError::from)?;
    let component = Component::new(ecosystem, &row.try_get::<String, _>("name")?)?;
    let range = VersionRange::parse(ecosystem, &row.try_get::<String, _>("version_range")?)
        .map_err(formulary_core::CoreError::from)?;
    let users: i64 = row.try_get("users_count")?;
    let state: RequestState = row.try_get::<String, _>("state")?.parse()?;
    let decided_by: Option<String> = row.try_get("decided_by")?;
    let reused: i64 = row.try_get("reused")?;
    let decision = match decided_by {
        Some(by) if state.is_decision() => Some(RecordedDecision {
            by,
            reason: row
                .try_get::<Option<String>, _>("decision_reason")?
                .unwrap_or_default(),
            scope: row.try_get("decision_scope")?,
            entry_id: row.try_get("entry_id")?,
            reused: reused != 0,
            reused_from: row.try_get("reused_from")?,
        }),
        _ => None,
    };
    Ok(StoredRequest {
        id: row.try_get("id")?,
        draft: RequestDraft {
            organisation: row.try_get::<String, _>("organisation")?.parse()?,
            component,
            range,
            problem: row.try_get("problem")?,
            data_class: row
                .try_get::<String, _>("data_class")?
                .parse::<DataClass>()?,
            environment: row.try_get("environment")?,
            alternatives: row.try_get("alternatives")?,
            users: u32::try_from(users).map_err(|error| StoreError::corrupt("request", error))?,
            credentials: row.try_get("credentials")?,
        },
        requester: UserRef {
            id: row.try_get("requester")?,
            name: row.try_get("requester_name")?,
        },
        state,
        created_at: time::from_text(&row.try_get::<String, _>("created_at")?)?,
        updated_at: time::from_text(&row.try_get::<String, _>("updated_at")?)?,
        decided_at: time::optional_from_text(row.try_get("decided_at")?)?,
        decision,
    })
}

fn decode_event(row: &sqlx::any::AnyRow) -> Result<RequestEvent, StoreError> {
    let kind: String = row.try_get("kind")?;
    let kind = EventKind::ALL
        .into_iter()
        .find(|known| known.as_str() == kind)
        .ok_or_else(|| StoreError::corrupt("request event", format!("unknown kind '{kind}'")))?;
    Ok(RequestEvent {
        seq: row.try_get("seq")?,
        at: time::from_text(&row.try_get::<String, _>("at")?)?,
        actor: UserRef {
            id: row.try_get("actor")?,
            name: row.try_get("actor_name")?,
        },
        kind,
        stage: row
            .try_get::<Option<String>, _>("stage")?
            .map(|stage| stage.parse())
            .transpose()?,
        verdict: row
            .try_get::<Option<String>, _>("verdict")?
            .map(|verdict| verdict.parse())
            .transpose()?,
        body: row.try_get("body")?,
    })
}
