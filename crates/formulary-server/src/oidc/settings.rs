//! How one OpenID Connect provider is configured (`[[oidc_providers]]` in formulary.toml; every
//! field is described in docs/configuration.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How a provider's claims become Formulary roles (see [`super::claims`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClaimsProfile {
    /// NHS Care Identity Service 2: `nhsid_nrbac_roles` (`org_code`, `role_code`), the selected role.
    Cis2,
    /// Microsoft Entra ID: the `roles` claim (app roles such as `Formulary.Reviewer.RJ1`).
    Entra,
    /// Any other provider: a groups claim looked up in `role_map`.
    Generic,
}

impl ClaimsProfile {
    /// The scopes asked for when the provider's settings name none.
    pub fn default_scopes(self) -> Vec<String> {
        let scopes: &[&str] = match self {
            ClaimsProfile::Cis2 => &[
                "openid",
                "profile",
                "email",
                "nationalrbacaccess",
                "associatedorgs",
            ],
            ClaimsProfile::Entra | ClaimsProfile::Generic => &["openid", "profile", "email"],
        };
        scopes.iter().map(|scope| (*scope).to_owned()).collect()
    }
}

fn yes() -> bool {
    true
}

/// One OpenID Connect provider people may sign in with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderSettings {
    /// A short name used in addresses (`/sign-in/oidc/<id>`): 1 to 32 of a–z, 0–9 and `-`.
    pub id: String,
    /// What the sign-in button says after "Sign in with", e.g. `NHS Care Identity`.
    pub display_name: String,
    /// The issuer URL; its `/.well-known/openid-configuration` is read for the endpoints and
    /// keys. Accounts made through the provider are stored under it.
    pub issuer: String,
    /// The client id Formulary is registered with.
    pub client_id: String,
    /// A file holding the client secret (first line). Takes precedence over `client_secret_env`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// The name of an environment variable holding the client secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// `cis2`, `entra` or `generic`.
    pub profile: ClaimsProfile,
    /// Scopes to ask for; default by profile ([`ClaimsProfile::default_scopes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// cis2: NHS role code (whole, or one part such as `R8000`) → Formulary roles. entra: app
    /// role value → `ORG:role` pairs. generic: group → `ORG:role` pairs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub role_map: BTreeMap<String, Vec<String>>,
    /// cis2: the Formulary role for an NHS role whose code is not in `role_map` (unset: such
    /// roles give nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_role: Option<String>,
    /// cis2: when the token names the role the person selected (`selected_roleid`), only that
    /// one counts (default true).
    #[serde(default = "yes")]
    pub use_selected_role: bool,
    /// entra: the first part of app role values read as `<prefix>.<Role>.<ORG>` (default
    /// `Formulary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_prefix: Option<String>,
    /// generic: the claim listing the person's groups (default `groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// Whether the provider may give national roles (in `NATIONAL`); default false, so that
    /// national curators and auditors are made in Formulary itself.
    #[serde(default)]
    pub allow_national_roles: bool,
    /// Seconds each request to the provider may take (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

impl OidcProviderSettings {
    /// Checks the fields that can be checked without the provider; the message says which and how.
    pub fn check(&self) -> Result<(), String> {
        let id_ok = (1..=32).contains(&self.id.len())
            && self
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            return Err(format!(
                "oidc_providers: id '{}' must be 1 to 32 of a-z, 0-9 and '-'",
                self.id.escape_debug()
            ));
        }
        let issuer = url::Url::parse(&self.issuer).map_err(|error| {
            format!(
                "oidc_providers.{}: issuer '{}' is not a URL ({error})",
                self.id,
                self.issuer.escape_debug()
            )
        })?;
        if !matches!(issuer.scheme(), "https" | "http") {
            return Err(format!(
                "oidc_providers.{}: issuer must be an https:// URL",
                self.id
            ));
        }
        if self.display_name.trim().is_empty() || self.client_id.trim().is_empty() {
            return Err(format!(
                "oidc_providers.{}: display_name and client_id must not be empty",
                self.id
            ));
        }
        if let Some(role) = &self.default_role {
            role.parse::<formulary_core::Role>()
                .map_err(|error| format!("oidc_providers.{}: default_role: {error}", self.id))?;
        }
        Ok(())
    }

    /// The scopes asked for.
    pub fn scopes(&self) -> Vec<String> {
        self.scopes
            .clone()
            .unwrap_or_else(|| self.profile.default_scopes())
    }

    /// A provider with every optional field empty, for tests and examples.
    pub fn example(profile: ClaimsProfile) -> OidcProviderSettings {
        OidcProviderSettings {
            id: "example".to_owned(),
            display_name: "Example".to_owned(),
            issuer: "https://id.example.nhs.uk".to_owned(),
            client_id: "formulary".to_owned(),
            client_secret_file: None,
            client_secret_env: None,
            profile,
            scopes: None,
            role_map: BTreeMap::new(),
            default_role: None,
            use_selected_role: true,
            role_prefix: None,
            groups_claim: None,
            allow_national_roles: false,
            timeout_seconds: None,
        }
    }
}
