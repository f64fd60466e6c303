//! How an organisation wants its requests reviewed ([`ReviewPolicy`]), who may sign off each
//! stage under it, and who may claim or assign a stage ([`may_claim`], [`may_assign`]). The
//! sign-off and decision rules themselves are in [`super::workflow`], which consults the policy.

use serde::{Deserialize, Serialize};

use crate::access::{Membership, Role};
use crate::organisation::OrgCode;
use crate::request::vocabulary::ReviewStage;
use crate::request::workflow::{Actor, Refusal, RequestFacts};

/// One organisation's rules for reviews. The default is the behaviour before policies existed:
/// any reviewer signs off any stage, and one reviewer may sign off several.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ReviewPolicy {
    /// Each stage of a request must be signed off by a different person.
    pub distinct_reviewers: bool,
    /// The information governance stage needs the `information-governance` role (a reviewer
    /// without it may not sign it off).
    pub information_governance_role: bool,
    /// The clinical safety stage needs the `clinical-safety-officer` role.
    pub clinical_safety_role: bool,
    /// Requests touching clinical data need the clinical safety stage before approval.
    pub clinical_safety_for_clinical_data: bool,
}

impl ReviewPolicy {
    /// The named role a stage needs under this policy, if any (otherwise the reviewer role).
    pub fn role_for(&self, stage: ReviewStage) -> Role {
        match stage {
            ReviewStage::InformationGovernance if self.information_governance_role => {
                Role::InformationGovernance
            }
            ReviewStage::ClinicalSafety if self.clinical_safety_role => Role::ClinicalSafetyOfficer,
            _ => Role::Reviewer,
        }
    }

    /// The policy's rules in words, one a line, for pages and the audit log.
    pub fn describe(&self) -> Vec<String> {
        let mut rules = Vec::new();
        if self.distinct_reviewers {
            rules.push("each stage is signed off by a different person".to_owned());
        }
        if self.information_governance_role {
            rules.push("information governance is signed off by someone with the information governance role".to_owned());
        }
        if self.clinical_safety_role {
            rules.push("clinical safety is signed off by a clinical safety officer".to_owned());
        }
        if self.clinical_safety_for_clinical_data {
            rules.push("requests touching clinical data need the clinical safety stage".to_owned());
        }
        if rules.is_empty() {
            rules.push("any reviewer may sign off any stage".to_owned());
        }
        rules
    }
}

/// A stage claimed by, or assigned to, one person: only they sign it off until it is reassigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// The stage.
    pub stage: ReviewStage,
    /// The person's user id.
    pub user_id: String,
    /// Their name, as shown.
    pub user_name: String,
}

/// True when someone with `memberships` is eligible to sign off `stage` of a request for
/// `organisation` under `policy` (the role alone: the requester and distinctness are checked
/// at sign-off).
pub fn eligible_for_stage(
    memberships: &[Membership],
    organisation: &OrgCode,
    policy: &ReviewPolicy,
    stage: ReviewStage,
) -> bool {
    let role = policy.role_for(stage);
    memberships
        .iter()
        .any(|membership| membership.grants(role, organisation))
}

/// Checks the policy's part of a sign-off: the stage's role, the claim, and distinct reviewers.
pub(crate) fn check_sign_off_policy(
    actor: &Actor<'_>,
    request: &RequestFacts,
    stage: ReviewStage,
) -> Result<(), Refusal> {
    let policy = &request.policy;
    let role = policy.role_for(stage);
    if !actor.holds(role, &request.organisation) {
        return Err(Refusal::NotPermitted(format!(
            "signing off the {} needs the {} role for {}; ask your organisation's administrator who holds it",
            stage.label().to_lowercase(),
            role.label().to_lowercase(),
            request.organisation
        )));
    }
    if let Some(claim) = request
        .assignments
        .iter()
        .find(|assignment| assignment.stage == stage && assignment.user_id != actor.id)
    {
        return Err(Refusal::NotPermitted(format!(
            "the {} is assigned to {}; ask them, or ask an approver or administrator to reassign it",
            stage.label().to_lowercase(),
            claim.user_name
        )));
    }
    if policy.distinct_reviewers {
        if let Some(other) = request
            .signed
            .iter()
            .find(|signed| signed.by == actor.id && signed.stage != stage)
        {
            return Err(Refusal::NotPermitted(format!(
                "{} requires a different reviewer for each stage, and you signed off the {}; another reviewer must sign off the {}",
                request.organisation,
                other.stage.label().to_lowercase(),
                stage.label().to_lowercase()
            )));
        }
    }
    Ok(())
}

/// Someone eligible for a stage may claim it while it is open, not yet signed off, and not
/// claimed by someone else; the requester never may.
pub fn may_claim(
    actor: &Actor<'_>,
    request: &RequestFacts,
    stage: ReviewStage,
) -> Result<(), Refusal> {
    may_take(actor.id, actor.memberships, request, stage)?;
    if let Some(claim) = request
        .assignments
        .iter()
        .find(|assignment| assignment.stage == stage)
    {
        let whose = if claim.user_id == actor.id {
            "you have already claimed it".to_owned()
        } else {
            format!(
                "{} has claimed it; an approver or administrator can reassign it",
                claim.user_name
            )
        };
        return Err(Refusal::WrongState(format!(
            "the {} cannot be claimed: {whose}",
            stage.label().to_lowercase()
        )));
    }
    Ok(())
}

/// Approvers, organisation admins and national curators of the request's organisation may
/// assign (or reassign) an open stage to someone eligible for it who is not the requester.
pub fn may_assign(
    actor: &Actor<'_>,
    request: &RequestFacts,
    stage: ReviewStage,
    assignee_id: &str,
    assignee_memberships: &[Membership],
) -> Result<(), Refusal> {
    let manages = [
        Role::Approver,
        Role::OrganisationAdmin,
        Role::NationalCurator,
    ]
    .into_iter()
    .any(|role| actor.holds(role, &request.organisation));
    if !manages {
        return Err(Refusal::NotPermitted(format!(
            "assigning review stages needs the approver or organisation admin role for {}; you can claim a stage yourself instead",
            request.organisation
        )));
    }
    may_take(assignee_id, assignee_memberships, request, stage)
}

/// Whether `id` with `memberships` could take `stage` of `request` at all.
fn may_take(
    id: &str,
    memberships: &[Membership],
    request: &RequestFacts,
    stage: ReviewStage,
) -> Result<(), Refusal> {
    if !request.state.is_open() {
        return Err(Refusal::WrongState(format!(
            "this request is already {}, so its stages cannot be assigned",
            request.state.label().to_lowercase()
        )));
    }
    if id == request.requester {
        return Err(Refusal::NotPermitted(
            "the requester cannot review their own request; choose another reviewer".to_owned(),
        ));
    }
    if request.signed.iter().any(|signed| signed.stage == stage) {
        return Err(Refusal::WrongState(format!(
            "the {} has already been signed off",
            stage.label().to_lowercase()
        )));
    }
    if request.policy.distinct_reviewers {
        if let Some(other) = request.signed.iter().find(|signed| signed.by == id) {
            return Err(Refusal::NotPermitted(format!(
                "{} requires a different reviewer for each stage, and this person signed off the {}; choose someone else",
                request.organisation,
                other.stage.label().to_lowercase()
            )));
        }
    }
    if !eligible_for_stage(memberships, &request.organisation, &request.policy, stage) {
        return Err(Refusal::NotPermitted(format!(
            "the {} needs someone with the {} role for {}",
            stage.label().to_lowercase(),
            request.policy.role_for(stage).label().to_lowercase(),
            request.organisation
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::vocabulary::{DataClass, Outcome, RequestState};
    use crate::request::workflow::{may_decide, may_sign_off, DecisionScope, SignedStage};

    fn trust() -> OrgCode {
        "RJ1".parse().unwrap()
    }

    fn request(policy: ReviewPolicy, signed: &[(ReviewStage, &str)]) -> RequestFacts {
        RequestFacts {
            organisation: trust(),
            requester: "ana".to_owned(),
            state: RequestState::InReview,
            data_class: DataClass::Clinical,
            signed: signed
                .iter()
                .map(|(stage, by)| SignedStage {
                    stage: *stage,
                    by: (*by).to_owned(),
                })
                .collect(),
            policy,
            assignments: Vec::new(),
        }
    }

    #[test]
    fn distinct_reviewers_cannot_sign_off_two_stages() {
        let strict = ReviewPolicy {
            distinct_reviewers: true,
            ..ReviewPolicy::default()
        };
        let reviewer = vec![Membership::new(trust(), Role::Reviewer)];
        let rev = Actor {
            id: "rev",
            memberships: &reviewer,
        };
        let facts = request(strict, &[(ReviewStage::Basic, "rev")]);
        let refusal = may_sign_off(&rev, &facts, ReviewStage::Technical).unwrap_err();
        assert!(
            refusal
                .to_string()
                .contains("different reviewer for each stage"),
            "{refusal}"
        );
        // Without the policy the same reviewer may go on, as before.
        let lenient = request(ReviewPolicy::default(), &[(ReviewStage::Basic, "rev")]);
        assert!(may_sign_off(&rev, &lenient, ReviewStage::Technical).is_ok());
    }

    #[test]
    fn named_stages_need_their_role_and_clinical_data_needs_clinical_safety() {
        let policy = ReviewPolicy {
            information_governance_role: true,
            clinical_safety_role: true,
            clinical_safety_for_clinical_data: true,
            ..ReviewPolicy::default()
        };
        let reviewer = vec![Membership::new(trust(), Role::Reviewer)];
        let governance = vec![Membership::new(trust(), Role::InformationGovernance)];
        let safety = vec![Membership::new(trust(), Role::ClinicalSafetyOfficer)];
        let facts = request(policy, &[]);
        let rev = Actor {
            id: "rev",
            memberships: &reviewer,
        };
        let refusal = may_sign_off(&rev, &facts, ReviewStage::InformationGovernance).unwrap_err();
        assert!(
            refusal.to_string().contains("information governance role"),
            "{refusal}"
        );
        assert!(may_sign_off(&rev, &facts, ReviewStage::ClinicalSafety).is_err());
        let ig = Actor {
            id: "ig",
            memberships: &governance,
        };
        assert!(may_sign_off(&ig, &facts, ReviewStage::InformationGovernance).is_ok());
        assert!(
            may_sign_off(&ig, &facts, ReviewStage::Basic).is_err(),
            "the IG role alone does not make a reviewer"
        );
        let cso = Actor {
            id: "cso",
            memberships: &safety,
        };
        assert!(may_sign_off(&cso, &facts, ReviewStage::ClinicalSafety).is_ok());
        assert!(facts
            .stages_needed_for_approval()
            .contains(&ReviewStage::ClinicalSafety));
        let approver = vec![Membership::new(trust(), Role::Approver)];
        let app = Actor {
            id: "app",
            memberships: &approver,
        };
        let nearly = request(
            policy,
            &[
                (ReviewStage::Basic, "rev"),
                (ReviewStage::Technical, "rev"),
                (ReviewStage::Security, "rev"),
                (ReviewStage::InformationGovernance, "ig"),
            ],
        );
        assert!(!nearly.ready_to_decide());
        assert_eq!(
            nearly.stages_missing_for_approval(),
            [ReviewStage::ClinicalSafety]
        );
        assert!(may_decide(
            &app,
            &nearly,
            Outcome::Approved,
            DecisionScope::Organisation
        )
        .is_err());
        let mut done = nearly.clone();
        done.signed.push(SignedStage {
            stage: ReviewStage::ClinicalSafety,
            by: "cso".to_owned(),
        });
        assert!(done.ready_to_decide());
        assert!(may_decide(&app, &done, Outcome::Approved, DecisionScope::Organisation).is_ok());
    }

    #[test]
    fn claims_and_assignments_keep_a_stage_to_one_person() {
        let reviewer = vec![Membership::new(trust(), Role::Reviewer)];
        let approver = vec![Membership::new(trust(), Role::Approver)];
        let requester = vec![Membership::new(trust(), Role::Requester)];
        let mut facts = request(ReviewPolicy::default(), &[]);
        let rev = Actor {
            id: "rev",
            memberships: &reviewer,
        };
        let other = Actor {
            id: "ria",
            memberships: &reviewer,
        };
        assert!(may_claim(&rev, &facts, ReviewStage::Security).is_ok());
        facts.assignments.push(Assignment {
            stage: ReviewStage::Security,
            user_id: "rev".to_owned(),
            user_name: "Rev".to_owned(),
        });
        assert!(may_claim(&other, &facts, ReviewStage::Security).is_err());
        let refusal = may_sign_off(&other, &facts, ReviewStage::Security).unwrap_err();
        assert!(refusal.to_string().contains("assigned to Rev"), "{refusal}");
        assert!(may_sign_off(&rev, &facts, ReviewStage::Security).is_ok());
        // Only managers assign, and only to someone eligible who is not the requester.
        assert!(may_assign(&rev, &facts, ReviewStage::Security, "ria", &reviewer).is_err());
        let app = Actor {
            id: "app",
            memberships: &approver,
        };
        assert!(may_assign(&app, &facts, ReviewStage::Security, "ria", &reviewer).is_ok());
        assert!(may_assign(&app, &facts, ReviewStage::Security, "ana", &reviewer).is_err());
        assert!(may_assign(&app, &facts, ReviewStage::Security, "req", &requester).is_err());
        let ana = Actor {
            id: "ana",
            memberships: &reviewer,
        };
        assert!(may_claim(&ana, &facts, ReviewStage::Basic).is_err());
    }
}
