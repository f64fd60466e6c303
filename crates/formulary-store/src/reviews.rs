//! Review policies per organisation, and review stages claimed by or assigned to one person.
//! Every change is audited (`review-policy.set`, `request.assign`).

use formulary_core::request::{Assignment, ReviewPolicy, ReviewStage};
use formulary_core::OrgCode;
use sqlx::Row;

use crate::audit;
use crate::database::Database;
use crate::error::StoreError;
use crate::time;

fn flag(value: bool) -> i64 {
    i64::from(value)
}

impl Database {
    /// An organisation's review policy (the default, where none was set).
    pub async fn review_policy(&self, organisation: &OrgCode) -> Result<ReviewPolicy, StoreError> {
        let row = sqlx::query(
            "SELECT distinct_reviewers, information_governance_role, clinical_safety_role, clinical_safety_for_clinical_data FROM review_policies WHERE organisation = $1",
        )
        .bind(organisation.as_str())
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(ReviewPolicy::default());
        };
        let on =
            |column: &str| -> Result<bool, StoreError> { Ok(row.try_get::<i64, _>(column)? != 0) };
        Ok(ReviewPolicy {
            distinct_reviewers: on("distinct_reviewers")?,
            information_governance_role: on("information_governance_role")?,
            clinical_safety_role: on("clinical_safety_role")?,
            clinical_safety_for_clinical_data: on("clinical_safety_for_clinical_data")?,
        })
    }

    /// Replaces an organisation's review policy (audited as `review-policy.set`).
    pub async fn set_review_policy(
        &self,
        organisation: &OrgCode,
        policy: &ReviewPolicy,
        actor: &str,
    ) -> Result<(), StoreError> {
        self.require_organisation(organisation).await?;
        let (code, policy, actor) = (organisation.to_string(), *policy, actor.to_owned());
        self.transact(move |connection| {
            let (code, actor) = (code.clone(), actor.clone());
            Box::pin(async move {
                sqlx::query(
                    "INSERT INTO review_policies (organisation, distinct_reviewers, information_governance_role, clinical_safety_role, clinical_safety_for_clinical_data, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (organisation) DO UPDATE SET distinct_reviewers = excluded.distinct_reviewers,
                       information_governance_role = excluded.information_governance_role,
                       clinical_safety_role = excluded.clinical_safety_role,
                       clinical_safety_for_clinical_data = excluded.clinical_safety_for_clinical_data,
                       updated_at = excluded.updated_at",
                )
                .bind(&code)
                .bind(flag(policy.distinct_reviewers))
                .bind(flag(policy.information_governance_role))
                .bind(flag(policy.clinical_safety_role))
                .bind(flag(policy.clinical_safety_for_clinical_data))
                .bind(time::to_text(time::now()))
                .execute(&mut *connection)
                .await?;
                audit::record(connection, &actor, "review-policy.set", &code, &serde_json::json!({ "policy": policy })).await
            })
        })
        .await
    }

    /// The stages of a request claimed by or assigned to someone.
    pub async fn review_assignments(&self, request_id: i64) -> Result<Vec<Assignment>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.stage, a.user_id, u.display_name FROM review_assignments a JOIN users u ON u.id = a.user_id WHERE a.request_id = $1 ORDER BY a.stage",
        )
        .bind(request_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Assignment {
                    stage: row
                        .try_get::<String, _>("stage")?
                        .parse::<ReviewStage>()
                        .map_err(|error| StoreError::corrupt("review assignment", error))?,
                    user_id: row.try_get("user_id")?,
                    user_name: row.try_get("display_name")?,
                })
            })
            .collect()
    }

    /// Gives a stage of a request to one person (a claim when `actor` is that person), replacing
    /// any earlier assignment of the stage; audited as `request.assign`.
    pub async fn assign_review_stage(
        &self,
        request_id: i64,
        stage: ReviewStage,
        user_id: &str,
        actor: &str,
    ) -> Result<(), StoreError> {
        let (user_id, actor) = (user_id.to_owned(), actor.to_owned());
        self.transact(move |connection| {
            let (user_id, actor) = (user_id.clone(), actor.clone());
            Box::pin(async move {
                sqlx::query("DELETE FROM review_assignments WHERE request_id = $1 AND stage = $2")
                    .bind(request_id)
                    .bind(stage.as_str())
                    .execute(&mut *connection)
                    .await?;
                sqlx::query(
                    "INSERT INTO review_assignments (request_id, stage, user_id, assigned_by, assigned_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(request_id)
                .bind(stage.as_str())
                .bind(&user_id)
                .bind(&actor)
                .bind(time::to_text(time::now()))
                .execute(&mut *connection)
                .await?;
                let details = serde_json::json!({ "stage": stage.as_str(), "assignee": user_id });
                audit::record(connection, &actor, "request.assign", &format!("request:{request_id}"), &details).await
            })
        })
        .await
    }
}
