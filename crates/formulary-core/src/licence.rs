use serde::Serialize;

/// The outcome of checking a release's licence against the licences a view allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum LicenceCheck {
    /// The view allows every licence, or the expression is satisfied by allowed licences.
    Allowed,
    /// The expression needs a licence the view does not allow.
    NotAllowed {
        /// The release's licence expression.
        expression: String,
    },
    /// The release declares no licence.
    Unknown,
    /// The declared licence is not a valid SPDX expression.
    Unrecognised {
        /// What the release declares.
        declared: String,
    },
}

impl LicenceCheck {
    /// Checks `declared` (an SPDX expression) against `allowed` (SPDX identifiers). An empty
    /// `allowed` list allows everything, including unknown licences.
    pub fn evaluate(declared: Option<&str>, allowed: &[String]) -> LicenceCheck {
        if allowed.is_empty() {
            return LicenceCheck::Allowed;
        }
        let Some(declared) = declared.map(str::trim).filter(|text| !text.is_empty()) else {
            return LicenceCheck::Unknown;
        };
        let Ok(expression) = spdx::Expression::parse_mode(declared, spdx::ParseMode::LAX) else {
            return LicenceCheck::Unrecognised {
                declared: crate::error::printable(declared),
            };
        };
        let allowed_ids: Vec<&str> = allowed
            .iter()
            .filter_map(|name| spdx::license_id(name).map(|id| id.name))
            .collect();
        let satisfied = expression.evaluate(|requirement| match &requirement.license {
            spdx::LicenseItem::Spdx { id, .. } => allowed_ids.contains(&id.name),
            spdx::LicenseItem::Other { .. } => false,
        });
        if satisfied {
            LicenceCheck::Allowed
        } else {
            LicenceCheck::NotAllowed {
                expression: crate::error::printable(declared),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn expressions_are_evaluated_against_the_allowed_set() {
        let list = allowed(&["MIT", "Apache-2.0"]);
        assert_eq!(
            LicenceCheck::evaluate(Some("MIT OR GPL-3.0-only"), &list),
            LicenceCheck::Allowed
        );
        assert_eq!(
            LicenceCheck::evaluate(Some("MIT AND GPL-3.0-only"), &list),
            LicenceCheck::NotAllowed {
                expression: "MIT AND GPL-3.0-only".to_owned()
            }
        );
        assert_eq!(LicenceCheck::evaluate(None, &list), LicenceCheck::Unknown);
        assert!(matches!(
            LicenceCheck::evaluate(Some("Some custom licence"), &list),
            LicenceCheck::Unrecognised { .. }
        ));
    }

    #[test]
    fn an_empty_allowed_set_allows_everything() {
        assert_eq!(
            LicenceCheck::evaluate(Some("GPL-3.0-only"), &[]),
            LicenceCheck::Allowed
        );
        assert_eq!(LicenceCheck::evaluate(None, &[]), LicenceCheck::Allowed);
    }
}
