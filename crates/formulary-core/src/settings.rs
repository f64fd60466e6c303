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

/// Whether a view serves versions that run code when they are installed (npm's `preinstall`,
/// `install` and `postinstall` scripts). Only ecosystems whose registries say so (npm) are
/// affected; elsewhere the setting has no effect.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum InstallScripts {
    /// Versions with install scripts are served (flagged as evidence).
    #[default]
    Allow,
    /// Versions with install scripts are refused unless an entry in force approves the version.
    Deny,
}

impl InstallScripts {
    /// The lower-case word used in settings and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            InstallScripts::Allow => "allow",
            InstallScripts::Deny => "deny",
        }
    }
}

impl fmt::Display for InstallScripts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstallScripts {
    type Err = CoreError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "allow" => Ok(InstallScripts::Allow),
            "deny" => Ok(InstallScripts::Deny),
            _ => Err(CoreError::InvalidSetting(format!(
                "'{}' is not an install-scripts setting; use allow or deny",
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
    /// Whether versions that run install scripts are served (npm only; absent means allow).
    #[serde(default)]
    pub install_scripts: InstallScripts,
}

impl Default for EcosystemSettings {
    /// An open stance that blocks high and critical advisories and holds releases for 7 days.
    fn default() -> Self {
        EcosystemSettings {
            stance: Stance::Open,
            severity_threshold: Severity::High,
            allowed_licences: Vec::new(),
            cooldown_days: 7,
            install_scripts: InstallScripts::Allow,
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
    /// The settings in force for an organisation whose own settings (`self`) overlay the
    /// national baseline: the stricter of each rule. Overlays only tighten, so a stored overlay
    /// that is looser than today's baseline (the baseline was tightened after it was saved)
    /// never loosens anything.
    pub fn within(&self, national: &EcosystemSettings) -> EcosystemSettings {
        let stance = if self.stance == Stance::Curated || national.stance == Stance::Curated {
            Stance::Curated
        } else {
            Stance::Open
        };
        let allowed_licences = match (
            national.allowed_licences.is_empty(),
            self.allowed_licences.is_empty(),
        ) {
            (true, _) => self.allowed_licences.clone(),
            (false, true) => national.allowed_licences.clone(),
            (false, false) => self
                .allowed_licences
                .iter()
                .filter(|licence| national.allowed_licences.contains(licence))
                .cloned()
                .collect(),
        };
        EcosystemSettings {
            stance,
            severity_threshold: self.severity_threshold.min(national.severity_threshold),
            allowed_licences,
            cooldown_days: self.cooldown_days.max(national.cooldown_days),
            install_scripts: self.install_scripts.max(national.install_scripts),
        }
    }

    /// What these overlay settings would loosen compared with the national baseline, one
    /// sentence per rule; empty when they only keep or tighten it.
    pub fn loosenings(&self, national: &EcosystemSettings) -> Vec<String> {
        let mut looser = Vec::new();
        if self.stance == Stance::Open && national.stance == Stance::Curated {
            looser.push("the stance is open but the national baseline is curated".to_owned());
        }
        if self.severity_threshold > national.severity_threshold {
            looser.push(format!(
                "the severity threshold {} lets through advisories the national threshold {} blocks",
                self.severity_threshold, national.severity_threshold
            ));
        }
        if self.cooldown_days < national.cooldown_days {
            looser.push(format!(
                "a cooldown of {} days is shorter than the national {} days",
                self.cooldown_days, national.cooldown_days
            ));
        }
        if self.install_scripts < national.install_scripts {
            looser.push(
                "install scripts are allowed but the national baseline denies them".to_owned(),
            );
        }
        if !national.allowed_licences.is_empty() {
            let extra: Vec<&str> = self
                .allowed_licences
                .iter()
                .filter(|licence| !national.allowed_licences.contains(licence))
                .map(String::as_str)
                .collect();
            if !extra.is_empty() {
                looser.push(format!(
                    "the licences {} are not in the national list ({})",
                    extra.join(", "),
                    national.allowed_licences.join(", ")
                ));
            }
        }
        looser
    }

    /// Refuses overlay settings that would loosen the national baseline, saying what and what
    /// to do instead (an exception entry for the version that needs it, which expires).
    pub fn check_tightens(&self, national: &EcosystemSettings) -> Result<(), CoreError> {
        let looser = self.loosenings(national);
        if looser.is_empty() {
            return Ok(());
        }
        Err(CoreError::InvalidSetting(format!(
            "an organisation's settings may only tighten the national baseline, and these would loosen it: {}. \
             Keep the national value or a stricter one; to allow one version the baseline blocks, ask a national \
             curator for an exception entry (it needs an expiry and is audited)",
            looser.join("; ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn national() -> EcosystemSettings {
        EcosystemSettings {
            stance: Stance::Curated,
            severity_threshold: Severity::High,
            allowed_licences: vec!["MIT".to_owned(), "Apache-2.0".to_owned()],
            cooldown_days: 7,
            install_scripts: InstallScripts::Deny,
        }
    }

    #[test]
    fn an_overlay_that_loosens_is_refused_with_every_reason() {
        let overlay = EcosystemSettings {
            stance: Stance::Open,
            severity_threshold: Severity::Critical,
            allowed_licences: vec!["MIT".to_owned(), "GPL-3.0-only".to_owned()],
            cooldown_days: 0,
            install_scripts: InstallScripts::Allow,
        };
        let looser = overlay.loosenings(&national());
        assert_eq!(looser.len(), 5, "{looser:?}");
        let error = overlay.check_tightens(&national()).unwrap_err().to_string();
        assert!(error.contains("install scripts"), "{error}");
        let error = overlay.check_tightens(&national()).unwrap_err().to_string();
        assert!(error.contains("critical"), "{error}");
        assert!(error.contains("GPL-3.0-only"), "{error}");
        assert!(error.contains("exception entry"), "{error}");
    }

    #[test]
    fn an_overlay_that_tightens_is_accepted_and_the_stricter_rule_wins() {
        let overlay = EcosystemSettings {
            stance: Stance::Curated,
            severity_threshold: Severity::Medium,
            allowed_licences: vec!["MIT".to_owned()],
            cooldown_days: 14,
            install_scripts: InstallScripts::Deny,
        };
        assert!(overlay.check_tightens(&national()).is_ok());
        assert_eq!(overlay.within(&national()), overlay);
    }

    #[test]
    fn a_stored_overlay_looser_than_todays_baseline_never_loosens() {
        let stale_overlay = EcosystemSettings {
            stance: Stance::Open,
            severity_threshold: Severity::Critical,
            allowed_licences: Vec::new(),
            cooldown_days: 0,
            install_scripts: InstallScripts::Allow,
        };
        assert_eq!(stale_overlay.within(&national()), national());
        let partly = EcosystemSettings {
            allowed_licences: vec!["MIT".to_owned(), "GPL-3.0-only".to_owned()],
            ..national()
        };
        assert_eq!(
            partly.within(&national()).allowed_licences,
            vec!["MIT".to_owned()]
        );
    }
}
