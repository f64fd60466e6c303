use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::entry::Status;
use crate::error::{printable, CoreError};

/// Implements `as_str`, `Display`, `FromStr` (kebab-case, `_` accepted for `-`) and `ALL` for a
/// fieldless enum whose words are listed once.
macro_rules! words {
    ($type:ident, $what:literal, { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $type {
            /// Every value, in the order people read them.
            pub const ALL: &'static [$type] = &[$($type::$variant),+];

            /// The kebab-case word used in forms, the API and storage.
            pub fn as_str(self) -> &'static str {
                match self { $($type::$variant => $word),+ }
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $type {
            type Err = CoreError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
                $type::ALL.iter().copied().find(|value| value.as_str() == wanted).ok_or_else(|| {
                    let choices: Vec<&str> = $type::ALL.iter().map(|value| value.as_str()).collect();
                    CoreError::InvalidRequest(format!(
                        "'{}' is not {}; use one of {}",
                        printable(text),
                        $what,
                        choices.join(", ")
                    ))
                })
            }
        }
    };
}

/// The most sensitive data a requested tool will touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataClass {
    /// Aggregate or published figures only.
    Aggregate,
    /// Personal data (a DPIA may be needed).
    Personal,
    /// Clinical data about patients' care.
    Clinical,
}

words!(DataClass, "a data classification", {
    Aggregate => "aggregate",
    Personal => "personal",
    Clinical => "clinical",
});

impl DataClass {
    /// How the classification reads in a sentence.
    pub fn label(self) -> &'static str {
        match self {
            DataClass::Aggregate => "Aggregate or published data only",
            DataClass::Personal => "Personal data",
            DataClass::Clinical => "Clinical data",
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestState {
    /// Waiting for a reviewer to pick it up.
    Submitted,
    /// At least one review stage has been signed off.
    InReview,
    /// Decided: may be used.
    Approved,
    /// Decided: may be used under constraints.
    ApprovedWithConstraints,
    /// Decided: may be used for a limited pilot.
    Pilot,
    /// Decided: may not be used, with a reason.
    Rejected,
    /// The requester no longer needs it.
    Withdrawn,
}

words!(RequestState, "a request state", {
    Submitted => "submitted",
    InReview => "in-review",
    Approved => "approved",
    ApprovedWithConstraints => "approved-with-constraints",
    Pilot => "pilot",
    Rejected => "rejected",
    Withdrawn => "withdrawn",
});

impl RequestState {
    /// True while the request can still be reviewed, decided or withdrawn.
    pub fn is_open(self) -> bool {
        matches!(self, RequestState::Submitted | RequestState::InReview)
    }

    /// True for the states a decision leads to (not withdrawal).
    pub fn is_decision(self) -> bool {
        matches!(
            self,
            RequestState::Approved
                | RequestState::ApprovedWithConstraints
                | RequestState::Pilot
                | RequestState::Rejected
        )
    }

    /// How the state reads on a page.
    pub fn label(self) -> &'static str {
        match self {
            RequestState::Submitted => "Submitted",
            RequestState::InReview => "In review",
            RequestState::Approved => "Approved",
            RequestState::ApprovedWithConstraints => "Approved with constraints",
            RequestState::Pilot => "Pilot",
            RequestState::Rejected => "Rejected",
            RequestState::Withdrawn => "Withdrawn",
        }
    }
}

/// A stage of review. The first three are required before approval; information governance and
/// clinical safety sign-offs are added when the data or the use call for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReviewStage {
    /// Peer review: documentation, tests, licence, activity, support life.
    Basic,
    /// IT review: dependencies, permissions, sandbox test, network connections, uninstall.
    Technical,
    /// Security review: advisories and risk assessment.
    Security,
    /// Information governance: DPIA where personal data is processed.
    InformationGovernance,
    /// Clinical safety officer (DCB0129/DCB0160), only where they apply.
    ClinicalSafety,
}

words!(ReviewStage, "a review stage", {
    Basic => "basic",
    Technical => "technical",
    Security => "security",
    InformationGovernance => "information-governance",
    ClinicalSafety => "clinical-safety",
});

impl ReviewStage {
    /// The stages every approval needs.
    pub const REQUIRED: [ReviewStage; 3] = [
        ReviewStage::Basic,
        ReviewStage::Technical,
        ReviewStage::Security,
    ];

    /// How the stage reads on a page.
    pub fn label(self) -> &'static str {
        match self {
            ReviewStage::Basic => "Basic review",
            ReviewStage::Technical => "Technical review",
            ReviewStage::Security => "Security review",
            ReviewStage::InformationGovernance => "Information governance sign-off",
            ReviewStage::ClinicalSafety => "Clinical safety sign-off",
        }
    }
}

/// What a reviewer concluded at a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignOffVerdict {
    /// Nothing at this stage stands in the way.
    Passed,
    /// Concerns the approver must weigh (they are in the note).
    Concerns,
}

words!(SignOffVerdict, "a sign-off verdict", {
    Passed => "passed",
    Concerns => "concerns",
});

/// The decision an approver can give.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// May be used.
    Approved,
    /// May be used under written constraints.
    ApprovedWithConstraints,
    /// May be used for a pilot that expires (90 days unless said otherwise).
    Pilot,
    /// May not be used.
    Rejected,
}

words!(Outcome, "a decision", {
    Approved => "approved",
    ApprovedWithConstraints => "approved-with-constraints",
    Pilot => "pilot",
    Rejected => "rejected",
});

impl Outcome {
    /// The state the request moves to.
    pub fn state(self) -> RequestState {
        match self {
            Outcome::Approved => RequestState::Approved,
            Outcome::ApprovedWithConstraints => RequestState::ApprovedWithConstraints,
            Outcome::Pilot => RequestState::Pilot,
            Outcome::Rejected => RequestState::Rejected,
        }
    }

    /// The status of the entry the decision creates, if it creates one (a rejection does not:
    /// it is published in the decision log, and the component stays as the policy leaves it).
    pub fn entry_status(self) -> Option<Status> {
        match self {
            Outcome::Approved => Some(Status::Approved),
            Outcome::ApprovedWithConstraints => Some(Status::ApprovedWithConstraints),
            Outcome::Pilot => Some(Status::Pilot),
            Outcome::Rejected => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_bad_words_say_the_choices() {
        for state in RequestState::ALL {
            assert_eq!(state.as_str().parse::<RequestState>().unwrap(), *state);
        }
        for stage in ReviewStage::ALL {
            assert_eq!(stage.as_str().parse::<ReviewStage>().unwrap(), *stage);
        }
        let error = "secret".parse::<DataClass>().unwrap_err().to_string();
        assert!(error.contains("aggregate, personal, clinical"), "{error}");
        assert_eq!(
            "approved_with_constraints".parse::<Outcome>().unwrap(),
            Outcome::ApprovedWithConstraints
        );
    }

    #[test]
    fn only_decisions_are_decisions() {
        assert!(RequestState::Rejected.is_decision());
        assert!(!RequestState::Withdrawn.is_decision());
        assert!(RequestState::InReview.is_open());
        assert!(!RequestState::Pilot.is_open());
        assert_eq!(Outcome::Rejected.entry_status(), None);
        assert_eq!(Outcome::Pilot.entry_status(), Some(Status::Pilot));
    }
}
