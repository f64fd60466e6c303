use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{printable, CoreError};

/// An organisation code: an ODS code such as `RJ1` (a trust) or `QWE` (an ICB), upper case.
/// The national formulary belongs to the organisation [`OrgCode::NATIONAL`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct OrgCode(String);

impl OrgCode {
    /// The code of the national organisation, whose formulary every organisation inherits.
    pub const NATIONAL: &'static str = "NATIONAL";

    /// The national organisation's code.
    pub fn national() -> OrgCode {
        OrgCode(Self::NATIONAL.to_owned())
    }

    /// True for the national organisation.
    pub fn is_national(&self) -> bool {
        self.0 == Self::NATIONAL
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for OrgCode {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let code = text.trim().to_ascii_uppercase();
        let well_formed =
            (2..=12).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric());
        if well_formed {
            Ok(OrgCode(code))
        } else {
            Err(CoreError::InvalidOrgCode {
                code: printable(text),
            })
        }
    }
}

impl TryFrom<String> for OrgCode {
    type Error = CoreError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<OrgCode> for String {
    fn from(code: OrgCode) -> String {
        code.0
    }
}

impl fmt::Display for OrgCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An organisation whose staff use Formulary: the national body or a local one (a trust, an ICB).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organisation {
    /// Its code.
    pub code: OrgCode,
    /// Its name as people know it.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_upper_cased_and_checked() {
        assert_eq!("rj1".parse::<OrgCode>().unwrap().as_str(), "RJ1");
        assert!(OrgCode::national().is_national());
        for bad in ["", "R", "RJ1/../x", "TOOLONGCODE123", "R J1"] {
            assert!(bad.parse::<OrgCode>().is_err(), "{bad:?}");
        }
    }
}
