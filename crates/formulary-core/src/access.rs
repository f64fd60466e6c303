use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{printable, CoreError};
use crate::organisation::OrgCode;

/// What a person or service account may do within its organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Searches, requests and installs.
    Requester,
    /// Reviews requests.
    Reviewer,
    /// Decides requests (never their own).
    Approver,
    /// Manages the organisation's overlay: entries, settings and accounts.
    OrganisationAdmin,
    /// Publishes and revokes national entries; manages organisations.
    NationalCurator,
    /// Reads everything, including the audit log; changes nothing.
    Auditor,
    /// Signs off the information governance stage where the organisation's review policy names
    /// the role (a DPIA where personal data is processed).
    InformationGovernance,
    /// Signs off the clinical safety stage (DCB0129/DCB0160) where the organisation's review
    /// policy names the role.
    ClinicalSafetyOfficer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 8] = [
        Role::Requester,
        Role::Reviewer,
        Role::Approver,
        Role::OrganisationAdmin,
        Role::NationalCurator,
        Role::Auditor,
        Role::InformationGovernance,
        Role::ClinicalSafetyOfficer,
    ];

    /// The kebab-case word used in the CLI, the API and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Requester => "requester",
            Role::Reviewer => "reviewer",
            Role::Approver => "approver",
            Role::OrganisationAdmin => "organisation-admin",
            Role::NationalCurator => "national-curator",
            Role::Auditor => "auditor",
            Role::InformationGovernance => "information-governance",
            Role::ClinicalSafetyOfficer => "clinical-safety-officer",
        }
    }

    /// How the role reads on a page.
    pub fn label(self) -> &'static str {
        match self {
            Role::Requester => "Requester",
            Role::Reviewer => "Reviewer",
            Role::Approver => "Approver",
            Role::OrganisationAdmin => "Organisation admin",
            Role::NationalCurator => "National curator",
            Role::Auditor => "Auditor",
            Role::InformationGovernance => "Information governance",
            Role::ClinicalSafetyOfficer => "Clinical safety officer",
        }
    }

    /// True when someone with this role in `own` may change the formulary (entries and
    /// settings) of `target`: a national curator of the national organisation may change any;
    /// an organisation admin only its own organisation's overlay.
    pub fn may_change_formulary(self, own: &OrgCode, target: &OrgCode) -> bool {
        match self {
            Role::NationalCurator => own.is_national() || own == target,
            Role::OrganisationAdmin => own == target && !target.is_national(),
            Role::Requester
            | Role::Reviewer
            | Role::Approver
            | Role::Auditor
            | Role::InformationGovernance
            | Role::ClinicalSafetyOfficer => false,
        }
    }

    /// True when this role may create organisations.
    pub fn may_manage_organisations(self, own: &OrgCode) -> bool {
        self == Role::NationalCurator && own.is_national()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim().to_ascii_lowercase().replace('_', "-");
        Role::ALL.into_iter().find(|role| role.as_str() == wanted).ok_or_else(|| {
            CoreError::InvalidSetting(format!(
                "'{}' is not a role; use requester, reviewer, approver, organisation-admin, national-curator, auditor, information-governance or clinical-safety-officer",
                printable(text)
            ))
        })
    }
}

/// One role held in one organisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Membership {
    /// Where the role is held.
    pub organisation: OrgCode,
    /// The role.
    pub role: Role,
}

impl Membership {
    /// A role in an organisation.
    pub fn new(organisation: OrgCode, role: Role) -> Membership {
        Membership { organisation, role }
    }

    /// True when this membership gives `role` over `organisation`'s work: held there, or held
    /// nationally (national staff act for every organisation).
    pub fn grants(&self, role: Role, organisation: &OrgCode) -> bool {
        self.role == role && (&self.organisation == organisation || self.organisation.is_national())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> OrgCode {
        text.parse().expect("code")
    }

    #[test]
    fn each_role_changes_only_what_it_may() {
        let (national, trust, other) = (OrgCode::national(), code("RJ1"), code("RQM"));
        assert!(Role::NationalCurator.may_change_formulary(&national, &national));
        assert!(Role::NationalCurator.may_change_formulary(&national, &trust));
        assert!(Role::OrganisationAdmin.may_change_formulary(&trust, &trust));
        assert!(!Role::OrganisationAdmin.may_change_formulary(&trust, &other));
        assert!(!Role::OrganisationAdmin.may_change_formulary(&trust, &national));
        for role in [
            Role::Requester,
            Role::Reviewer,
            Role::Approver,
            Role::Auditor,
        ] {
            assert!(!role.may_change_formulary(&trust, &trust), "{role}");
            assert!(!role.may_manage_organisations(&national), "{role}");
        }
        assert!(Role::NationalCurator.may_manage_organisations(&national));
        assert!(!Role::NationalCurator.may_manage_organisations(&trust));
    }
}
