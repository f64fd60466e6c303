//! Who may do what to a request, and what each step requires. Every check returns a
//! [`Refusal`] that says why not and what to do instead; the server turns it into a 403 or 409.

use std::collections::BTreeSet;

use thiserror::Error;

use crate::access::{Membership, Role};
use crate::organisation::OrgCode;
use crate::request::review::{check_sign_off_policy, Assignment, ReviewPolicy};
use crate::request::vocabulary::{DataClass, Outcome, RequestState, ReviewStage};

/// Why a step is not allowed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Refusal {
    /// The person lacks the role, or is the requester where that is not allowed.
    #[error("{0}")]
    NotPermitted(String),
    /// The request is not in a state where the step makes sense.
    #[error("{0}")]
    WrongState(String),
}

/// Someone acting on a request: their identity and their roles.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Their stable user id (or service account id).
    pub id: &'a str,
    /// Their roles, per organisation.
    pub memberships: &'a [Membership],
}

impl Actor<'_> {
    /// True when the actor holds `role` for `organisation` (there, or nationally).
    pub fn holds(&self, role: Role, organisation: &OrgCode) -> bool {
        self.memberships
            .iter()
            .any(|membership| membership.grants(role, organisation))
    }
}

/// A stage that has been signed off, and by whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedStage {
    /// The stage.
    pub stage: ReviewStage,
    /// The reviewer's user id.
    pub by: String,
}

/// What the rules need to know about a request.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    /// The organisation it was made for.
    pub organisation: OrgCode,
    /// The requester's user id.
    pub requester: String,
    /// Where it stands.
    pub state: RequestState,
    /// The most sensitive data involved.
    pub data_class: DataClass,
    /// Stages signed off so far.
    pub signed: Vec<SignedStage>,
    /// The organisation's review policy.
    pub policy: ReviewPolicy,
    /// Stages claimed by or assigned to someone.
    pub assignments: Vec<Assignment>,
}

impl RequestFacts {
    /// The stages an approval needs: basic, technical and security, plus information governance
    /// when personal or clinical data is involved, plus clinical safety for clinical data when
    /// the organisation's policy asks for it.
    pub fn stages_needed_for_approval(&self) -> Vec<ReviewStage> {
        let mut needed = ReviewStage::REQUIRED.to_vec();
        if self.data_class != DataClass::Aggregate {
            needed.push(ReviewStage::InformationGovernance);
        }
        if self.data_class == DataClass::Clinical && self.policy.clinical_safety_for_clinical_data {
            needed.push(ReviewStage::ClinicalSafety);
        }
        needed
    }

    /// True when the request is open and every stage an approval needs is signed off: an
    /// approver can decide it now.
    pub fn ready_to_decide(&self) -> bool {
        self.state.is_open() && self.stages_missing_for_approval().is_empty()
    }

    /// The needed stages not yet signed off.
    pub fn stages_missing_for_approval(&self) -> Vec<ReviewStage> {
        let signed: BTreeSet<ReviewStage> = self.signed.iter().map(|signed| signed.stage).collect();
        self.stages_needed_for_approval()
            .into_iter()
            .filter(|stage| !signed.contains(stage))
            .collect()
    }

    fn require_open(&self, step: &str) -> Result<(), Refusal> {
        if self.state.is_open() {
            Ok(())
        } else {
            Err(Refusal::WrongState(format!(
                "this request is already {}, so it cannot be {step}; start a new request if the need has changed",
                self.state.label().to_lowercase()
            )))
        }
    }
}

/// Anyone who belongs to an organisation may ask for a tool for it, except auditors, who read
/// and never change.
pub fn may_submit(actor: &Actor<'_>, organisation: &OrgCode) -> Result<(), Refusal> {
    let acting_member = actor.memberships.iter().any(|membership| {
        membership.role != Role::Auditor
            && (&membership.organisation == organisation || membership.organisation.is_national())
    });
    if acting_member {
        Ok(())
    } else {
        Err(Refusal::NotPermitted(format!(
            "you are not a member of {organisation}, so you cannot request for it; choose one of your own organisations"
        )))
    }
}

/// The requester and the people who review or decide for the organisation may comment.
pub fn may_comment(actor: &Actor<'_>, request: &RequestFacts) -> Result<(), Refusal> {
    let staff = [
        Role::Reviewer,
        Role::Approver,
        Role::OrganisationAdmin,
        Role::NationalCurator,
        Role::InformationGovernance,
        Role::ClinicalSafetyOfficer,
    ]
    .into_iter()
    .any(|role| actor.holds(role, &request.organisation));
    if actor.id == request.requester || staff {
        Ok(())
    } else {
        Err(Refusal::NotPermitted(
            "only the requester and the organisation's reviewers and approvers can comment on this request".to_owned(),
        ))
    }
}

/// A reviewer for the organisation (not the requester) may sign off a stage of an open request,
/// once per stage. The organisation's [`ReviewPolicy`] may name a role for a stage, ask for a
/// different person per stage, and a claimed or assigned stage is signed off by its assignee.
pub fn may_sign_off(
    actor: &Actor<'_>,
    request: &RequestFacts,
    stage: ReviewStage,
) -> Result<(), Refusal> {
    request.require_open("reviewed")?;
    check_sign_off_policy(actor, request, stage)?;
    if actor.id == request.requester {
        return Err(Refusal::NotPermitted(
            "you made this request, so another reviewer must review it".to_owned(),
        ));
    }
    if request.signed.iter().any(|signed| signed.stage == stage) {
        return Err(Refusal::WrongState(format!(
            "the {} has already been signed off",
            stage.label().to_lowercase()
        )));
    }
    Ok(())
}

/// The scope a decision's entry takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionScope {
    /// The national formulary: every organisation inherits it.
    National,
    /// Only the requesting organisation's overlay.
    Organisation,
}

/// An approver for the organisation may decide an open request, but never their own request, and
/// never as its sole reviewer. Approvals need every required stage signed off; a national scope
/// needs a national approver or curator. A rejection needs no stages.
pub fn may_decide(
    actor: &Actor<'_>,
    request: &RequestFacts,
    outcome: Outcome,
    scope: DecisionScope,
) -> Result<(), Refusal> {
    request.require_open("decided")?;
    let national = OrgCode::national();
    let may_approve_here = actor.holds(Role::Approver, &request.organisation);
    let may_approve_nationally =
        actor.holds(Role::Approver, &national) || actor.holds(Role::NationalCurator, &national);
    if !may_approve_here && !may_approve_nationally {
        return Err(Refusal::NotPermitted(format!(
            "deciding a request needs the approver role for {}",
            request.organisation
        )));
    }
    if scope == DecisionScope::National && !may_approve_nationally {
        return Err(Refusal::NotPermitted(
            "a national decision needs a national approver or curator; decide for your organisation instead".to_owned(),
        ));
    }
    if actor.id == request.requester {
        return Err(Refusal::NotPermitted(
            "you made this request, so someone else must decide it (the approver is never the requester)".to_owned(),
        ));
    }
    if outcome == Outcome::Rejected {
        return Ok(());
    }
    let missing = request.stages_missing_for_approval();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter().map(|stage| stage.label()).collect();
        return Err(Refusal::WrongState(format!(
            "an approval needs every review stage signed off; still missing: {}",
            names.join(", ")
        )));
    }
    if !request.signed.is_empty() && request.signed.iter().all(|signed| signed.by == actor.id) {
        return Err(Refusal::NotPermitted(
            "you signed off every stage yourself; the approver cannot be the sole reviewer, so ask another reviewer to review a stage".to_owned(),
        ));
    }
    Ok(())
}

/// Only the requester may withdraw, and only while the request is open.
pub fn may_withdraw(actor: &Actor<'_>, request: &RequestFacts) -> Result<(), Refusal> {
    request.require_open("withdrawn")?;
    if actor.id == request.requester {
        Ok(())
    } else {
        Err(Refusal::NotPermitted(
            "only the requester can withdraw a request".to_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust() -> OrgCode {
        "RJ1".parse().unwrap()
    }

    fn facts(signed: &[(ReviewStage, &str)]) -> RequestFacts {
        RequestFacts {
            organisation: trust(),
            requester: "ana".to_owned(),
            state: if signed.is_empty() {
                RequestState::Submitted
            } else {
                RequestState::InReview
            },
            data_class: DataClass::Aggregate,
            signed: signed
                .iter()
                .map(|(stage, by)| SignedStage {
                    stage: *stage,
                    by: (*by).to_owned(),
                })
                .collect(),
            policy: ReviewPolicy::default(),
            assignments: Vec::new(),
        }
    }

    fn memberships(role: Role, organisation: OrgCode) -> Vec<Membership> {
        vec![Membership::new(organisation, role)]
    }

    #[test]
    fn each_role_does_only_its_own_step() {
        let request = facts(&[]);
        let requester = memberships(Role::Requester, trust());
        let reviewer = memberships(Role::Reviewer, trust());
        let approver = memberships(Role::Approver, trust());
        let auditor = memberships(Role::Auditor, trust());
        let stranger = memberships(Role::Reviewer, "RQM".parse().unwrap());
        let actor = |id, memberships| Actor { id, memberships };

        assert!(may_submit(&actor("ana", &requester), &trust()).is_ok());
        assert!(may_submit(&actor("sam", &stranger), &trust()).is_err());
        assert!(may_submit(&actor("aud", &auditor), &trust()).is_err());
        assert!(may_sign_off(&actor("rev", &reviewer), &request, ReviewStage::Basic).is_ok());
        for (id, roles) in [
            ("ana", &requester),
            ("app", &approver),
            ("aud", &auditor),
            ("sam", &stranger),
        ] {
            assert!(
                may_sign_off(&actor(id, roles), &request, ReviewStage::Basic).is_err(),
                "{id}"
            );
        }
        assert!(may_decide(
            &actor("app", &approver),
            &request,
            Outcome::Rejected,
            DecisionScope::Organisation
        )
        .is_ok());
        for (id, roles) in [("ana", &requester), ("rev", &reviewer), ("aud", &auditor)] {
            assert!(
                may_decide(
                    &actor(id, roles),
                    &request,
                    Outcome::Rejected,
                    DecisionScope::Organisation
                )
                .is_err(),
                "{id}"
            );
        }
        assert!(may_comment(&actor("ana", &requester), &request).is_ok());
        assert!(may_comment(&actor("aud", &auditor), &request).is_err());
        assert!(may_withdraw(&actor("ana", &requester), &request).is_ok());
        assert!(may_withdraw(&actor("rev", &reviewer), &request).is_err());
    }

    #[test]
    fn the_approver_is_never_the_requester_nor_the_sole_reviewer() {
        let both = vec![
            Membership::new(trust(), Role::Reviewer),
            Membership::new(trust(), Role::Approver),
        ];
        let all_stages = [
            (ReviewStage::Basic, "ana"),
            (ReviewStage::Technical, "rev"),
            (ReviewStage::Security, "rev"),
        ];
        let own = facts(&all_stages);
        let ana = Actor {
            id: "ana",
            memberships: &both,
        };
        let refusal =
            may_decide(&ana, &own, Outcome::Approved, DecisionScope::Organisation).unwrap_err();
        assert!(
            refusal.to_string().contains("never the requester"),
            "{refusal}"
        );
        assert!(may_sign_off(&ana, &facts(&[]), ReviewStage::Basic).is_err());

        let alone = facts(&[
            (ReviewStage::Basic, "rev"),
            (ReviewStage::Technical, "rev"),
            (ReviewStage::Security, "rev"),
        ]);
        let rev = Actor {
            id: "rev",
            memberships: &both,
        };
        let refusal =
            may_decide(&rev, &alone, Outcome::Approved, DecisionScope::Organisation).unwrap_err();
        assert!(refusal.to_string().contains("sole reviewer"), "{refusal}");
        let other = Actor {
            id: "app",
            memberships: &both,
        };
        assert!(may_decide(
            &other,
            &alone,
            Outcome::Approved,
            DecisionScope::Organisation
        )
        .is_ok());
    }

    #[test]
    fn approvals_need_every_stage_and_personal_data_needs_governance() {
        let approver = memberships(Role::Approver, trust());
        let app = Actor {
            id: "app",
            memberships: &approver,
        };
        let partial = facts(&[(ReviewStage::Basic, "rev")]);
        let refusal = may_decide(
            &app,
            &partial,
            Outcome::Approved,
            DecisionScope::Organisation,
        )
        .unwrap_err();
        assert!(
            refusal
                .to_string()
                .contains("Technical review, Security review"),
            "{refusal}"
        );
        let mut personal = facts(&[
            (ReviewStage::Basic, "rev"),
            (ReviewStage::Technical, "rev"),
            (ReviewStage::Security, "rev"),
        ]);
        personal.data_class = DataClass::Personal;
        assert_eq!(
            personal.stages_missing_for_approval(),
            [ReviewStage::InformationGovernance]
        );
        assert!(may_decide(&app, &personal, Outcome::Pilot, DecisionScope::Organisation).is_err());
        assert!(may_decide(
            &app,
            &personal,
            Outcome::Rejected,
            DecisionScope::Organisation
        )
        .is_ok());
    }

    #[test]
    fn national_scope_needs_a_national_approver_and_closed_requests_stay_closed() {
        let local = memberships(Role::Approver, trust());
        let national = memberships(Role::NationalCurator, OrgCode::national());
        let signed = facts(&[
            (ReviewStage::Basic, "rev"),
            (ReviewStage::Technical, "rev"),
            (ReviewStage::Security, "rev"),
        ]);
        let local_actor = Actor {
            id: "app",
            memberships: &local,
        };
        let national_actor = Actor {
            id: "cur",
            memberships: &national,
        };
        assert!(may_decide(
            &local_actor,
            &signed,
            Outcome::Approved,
            DecisionScope::National
        )
        .is_err());
        assert!(may_decide(
            &national_actor,
            &signed,
            Outcome::Approved,
            DecisionScope::National
        )
        .is_ok());
        let mut closed = signed.clone();
        closed.state = RequestState::Approved;
        let refusal = may_decide(
            &national_actor,
            &closed,
            Outcome::Approved,
            DecisionScope::National,
        )
        .unwrap_err();
        assert!(matches!(refusal, Refusal::WrongState(_)));
        let requester = memberships(Role::Requester, trust());
        assert!(may_withdraw(
            &Actor {
                id: "ana",
                memberships: &requester
            },
            &closed
        )
        .is_err());
    }
}
