//! Signing in through OpenID Connect providers (NHS CIS2, Microsoft Entra ID, others): their
//! settings ([`settings`]), the flow and the token checks ([`provider`]), and how claims become
//! a person and their Formulary roles ([`claims`]). The web pages are in `web::oidc`.

pub mod claims;
pub mod provider;
pub mod settings;

use std::sync::Arc;

pub use provider::{OidcError, OidcProvider};
pub use settings::{ClaimsProfile, OidcProviderSettings};

/// The providers configured, in the order their buttons appear.
#[derive(Debug, Clone, Default)]
pub struct OidcProviders(Arc<Vec<OidcProvider>>);

impl OidcProviders {
    /// Sets up every configured provider (reading client secrets; nothing is fetched from the
    /// providers yet, so one that is down does not stop the server). Ids must be unique.
    pub fn new(settings: &[OidcProviderSettings]) -> Result<OidcProviders, String> {
        let mut providers: Vec<OidcProvider> = Vec::with_capacity(settings.len());
        for one in settings {
            if providers
                .iter()
                .any(|provider| provider.settings.id == one.id)
            {
                return Err(format!(
                    "oidc_providers: the id '{}' is used twice; give each provider its own",
                    one.id
                ));
            }
            providers.push(OidcProvider::new(one.clone())?);
        }
        Ok(OidcProviders(Arc::new(providers)))
    }

    /// Every provider.
    pub fn all(&self) -> &[OidcProvider] {
        &self.0
    }

    /// The provider with this id.
    pub fn find(&self, id: &str) -> Option<&OidcProvider> {
        self.0.iter().find(|provider| provider.settings.id == id)
    }
}
