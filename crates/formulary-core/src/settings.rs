use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{printable, CoreError};
use crate::severity::Severity;

/// Whether an organisation's view of an ecosystem serves only what entries approve, or everything
/// upstream that no rule blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stance {
    /// Only versions covered by an approving entry are allowed (suits desktop tools).
    Curated,
    /// Everything is allowed unless a rule blocks it: a package firewall (suits language packages).
    Open,
}

impl Stance {
    /// The lower-case word used in settings and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Stance::Curated => "curated",
            Stance::Open => "open",
        }
    }
}

impl fmt::Display for Stance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Stance {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "curated" => Ok(Stance::Curated),
            "open" => Ok(Stance::Open),
            _ => Err(CoreError::InvalidSetting(format!(
                "'{}' is not a stance; use curated or open",
                printable(text)
            ))),
        }
    }
}

/// The rules one organisation applies to one ecosystem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcosystemSettings {
    /// Curated or open.
    pub stance: Stance,
    /// Advisories at or above this severity deny the versions they affect. Malicious-package
    /// reports always deny.
    pub severity_threshold: Severity,
    /// SPDX licence identifiers allowed; empty allows every licence.
    pub allowed_licences: Vec<String>,
    /// Versions published fewer than this many days ago are held back (0 turns the rule off).
    pub cooldown_days: u32,
}

impl Default for EcosystemSettings {
    /// An open stance that blocks high and critical advisories and holds releases for 7 days.
    fn default() -> Self {
        EcosystemSettings {
            stance: Stance::Open,
            severity_threshold: Severity::High,
            allowed_licences: Vec::new(),
            cooldown_days: 7,
        }
    }
}

impl EcosystemSettings {
    /// Longest cooldown accepted: a year.
    pub const MAX_COOLDOWN_DAYS: u32 = 366;

    /// Checks that the settings are usable: licence ids are SPDX identifiers and the cooldown is
    /// at most a year.
    pub fn validate(&self) -> Result<(), CoreError> {
        if self.cooldown_days > Self::MAX_COOLDOWN_DAYS {
            return Err(CoreError::InvalidSetting(format!(
                "a cooldown of {} days is longer than the maximum of {} days",
                self.cooldown_days,
                Self::MAX_COOLDOWN_DAYS
            )));
        }
        for licence in &self.allowed_licences {
            if spdx::license_id(licence).is_none() {
                return Err(CoreError::InvalidSetting(format!(
                    "'{}' is not an SPDX licence identifier (for example MIT, Apache-2.0, GPL-2.0-or-later)",
                    printable(licence)
                )));
            }
        }
        Ok(())
    }
}
