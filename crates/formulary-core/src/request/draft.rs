use formulary_ecosystems::{Ecosystem, VersionRange};
use serde::{Deserialize, Serialize};

use crate::component::Component;
use crate::organisation::OrgCode;
use crate::request::vocabulary::DataClass;

/// Longest free-text answer accepted (problem, environment, alternatives, comments, reasons).
pub const MAX_FIELD_CHARS: usize = 4000;
/// Longest short answer accepted (names, version ranges, credentials).
pub const MAX_SHORT_FIELD_CHARS: usize = 200;
/// The most users a request can name (a sanity bound, not a policy).
const MAX_USERS: u32 = 1_000_000;

/// One problem with one field of a form, worded for the person who filled it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The form field's name (also the id of its input, for error-summary links).
    pub field: &'static str,
    /// What is wrong and how to put it right.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> FieldError {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// A checked request, ready to be stored: it starts from the problem, then names the tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestDraft {
    /// The organisation the requester asks for.
    pub organisation: OrgCode,
    /// The tool asked for.
    pub component: Component,
    /// The versions asked for, in the ecosystem's syntax (`*` for any).
    pub range: VersionRange,
    /// The problem to solve and its scope.
    pub problem: String,
    /// The most sensitive data the tool will touch.
    pub data_class: DataClass,
    /// Where it will run (machine, operating system, IDE).
    pub environment: String,
    /// What else was considered, and why it does not do.
    pub alternatives: String,
    /// How many people will use it.
    pub users: u32,
    /// Credentials or APIs it needs, if any.
    pub credentials: String,
}

/// A request form as submitted: every field as text, so that each problem can be reported
/// against its own field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RequestForm {
    /// Organisation code; empty means the requester's own (when they have one).
    pub organisation: String,
    /// `pypi`, `cran` or `generic`.
    pub ecosystem: String,
    /// Package name.
    pub name: String,
    /// Version range; empty means any version.
    pub version_range: String,
    /// Problem and scope.
    pub problem: String,
    /// `aggregate`, `personal` or `clinical`.
    pub data_class: String,
    /// Where it will run.
    pub environment: String,
    /// Alternatives considered.
    pub alternatives: String,
    /// Number of users.
    pub users: String,
    /// Credentials or APIs needed.
    pub credentials: String,
}

fn too_long(text: &str, limit: usize) -> bool {
    text.chars().count() > limit
}

impl RequestForm {
    /// Checks every field and returns the draft, or every problem found (in form order).
    pub fn check(
        &self,
        default_organisation: Option<&OrgCode>,
    ) -> Result<RequestDraft, Vec<FieldError>> {
        let mut errors = Vec::new();
        let organisation = if self.organisation.trim().is_empty() {
            default_organisation.cloned()
        } else {
            self.organisation.parse::<OrgCode>().ok()
        };
        if organisation.is_none() {
            errors.push(FieldError::new(
                "organisation",
                "Choose the organisation you are asking for (its ODS code, such as RJ1)",
            ));
        }
        let problem = self.problem.trim();
        if problem.is_empty() {
            errors.push(FieldError::new(
                "problem",
                "Describe the problem you need to solve and its scope",
            ));
        } else if too_long(problem, MAX_FIELD_CHARS) {
            errors.push(FieldError::new(
                "problem",
                format!("The problem must be {MAX_FIELD_CHARS} characters or fewer; link to a document for more"),
            ));
        }
        let data_class = self.data_class.parse::<DataClass>().ok();
        if data_class.is_none() {
            errors.push(FieldError::new(
                "data_class",
                "Select the most sensitive data the tool will touch: aggregate, personal or clinical",
            ));
        }
        let ecosystem = self.ecosystem.parse::<Ecosystem>().ok();
        if ecosystem.is_none() {
            errors.push(FieldError::new(
                "ecosystem",
                "Select where the tool comes from: PyPI, CRAN or a desktop tool",
            ));
        }
        let name = self.name.trim();
        let component = match ecosystem {
            _ if name.is_empty() => {
                errors.push(FieldError::new(
                    "name",
                    "Enter the name of the tool or package, such as readxl or requests",
                ));
                None
            }
            _ if too_long(name, MAX_SHORT_FIELD_CHARS) => {
                errors.push(FieldError::new(
                    "name",
                    format!("The name must be {MAX_SHORT_FIELD_CHARS} characters or fewer"),
                ));
                None
            }
            Some(ecosystem) => match Component::new(ecosystem, name) {
                Ok(component) => Some(component),
                Err(error) => {
                    errors.push(FieldError::new(
                        "name",
                        format!("Enter a valid package name: {error}"),
                    ));
                    None
                }
            },
            None => None,
        };
        let range_text = match self.version_range.trim() {
            "" => "*",
            text => text,
        };
        let range = match ecosystem {
            _ if too_long(range_text, MAX_SHORT_FIELD_CHARS) => {
                errors.push(FieldError::new(
                    "version_range",
                    format!(
                        "The version range must be {MAX_SHORT_FIELD_CHARS} characters or fewer"
                    ),
                ));
                None
            }
            Some(ecosystem) => match VersionRange::parse(ecosystem, range_text) {
                Ok(range) => Some(range),
                Err(error) => {
                    errors.push(FieldError::new(
                        "version_range",
                        format!("Enter a version range such as >=4.3,<5 or leave it empty for any version: {error}"),
                    ));
                    None
                }
            },
            None => None,
        };
        let environment = self.environment.trim();
        if environment.is_empty() {
            errors.push(FieldError::new(
                "environment",
                "Say where it will run, for example a Windows laptop with RStudio",
            ));
        } else if too_long(environment, MAX_FIELD_CHARS) {
            errors.push(FieldError::new(
                "environment",
                format!("The environment must be {MAX_FIELD_CHARS} characters or fewer"),
            ));
        }
        let alternatives = self.alternatives.trim();
        if too_long(alternatives, MAX_FIELD_CHARS) {
            errors.push(FieldError::new(
                "alternatives",
                format!("The alternatives must be {MAX_FIELD_CHARS} characters or fewer"),
            ));
        }
        let users = match self.users.trim().parse::<u32>() {
            Ok(users) if (1..=MAX_USERS).contains(&users) => Some(users),
            _ => {
                errors.push(FieldError::new(
                    "users",
                    "Enter how many people will use it, as a whole number such as 5",
                ));
                None
            }
        };
        let credentials = self.credentials.trim();
        if too_long(credentials, MAX_FIELD_CHARS) {
            errors.push(FieldError::new(
                "credentials",
                format!("The credentials answer must be {MAX_FIELD_CHARS} characters or fewer"),
            ));
        }
        match (organisation, component, range, data_class, users) {
            (Some(organisation), Some(component), Some(range), Some(data_class), Some(users))
                if errors.is_empty() =>
            {
                Ok(RequestDraft {
                    organisation,
                    component,
                    range,
                    problem: problem.to_owned(),
                    data_class,
                    environment: environment.to_owned(),
                    alternatives: alternatives.to_owned(),
                    users,
                    credentials: credentials.to_owned(),
                })
            }
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> RequestForm {
        RequestForm {
            organisation: "RJ1".to_owned(),
            ecosystem: "cran".to_owned(),
            name: "readxl".to_owned(),
            version_range: ">=1.4.2".to_owned(),
            problem: "Read Excel returns from GP practices".to_owned(),
            data_class: "aggregate".to_owned(),
            environment: "Windows laptop, RStudio".to_owned(),
            alternatives: String::new(),
            users: "12".to_owned(),
            credentials: String::new(),
        }
    }

    #[test]
    fn a_complete_form_becomes_a_draft() {
        let draft = form().check(None).unwrap();
        assert_eq!(draft.component.purl(), "pkg:cran/readxl");
        assert_eq!(draft.range.as_str(), ">=1.4.2");
        assert_eq!(draft.users, 12);
    }

    #[test]
    fn every_problem_is_reported_against_its_field() {
        let mut bad = RequestForm {
            users: "many".to_owned(),
            ecosystem: "cpan".to_owned(),
            ..RequestForm::default()
        };
        bad.problem = "x".repeat(MAX_FIELD_CHARS + 1);
        let errors = bad.check(None).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|error| error.field).collect();
        assert_eq!(
            fields,
            [
                "organisation",
                "problem",
                "data_class",
                "ecosystem",
                "name",
                "environment",
                "users"
            ]
        );
        assert!(errors[1].message.contains("4000 characters or fewer"));
    }

    #[test]
    fn the_requesters_organisation_is_the_default_and_an_empty_range_means_any() {
        let mut blank = form();
        blank.organisation = String::new();
        blank.version_range = " ".to_owned();
        let draft = blank.check(Some(&OrgCode::national())).unwrap();
        assert!(draft.organisation.is_national());
        assert!(draft.range.is_every());
    }
}
