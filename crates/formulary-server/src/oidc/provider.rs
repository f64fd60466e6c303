//! One configured OpenID provider at run time: its discovery document and keys (read when first
//! needed and kept a few minutes, so a provider that is down never stops the server or local
//! sign-in), the authorisation request (code flow, PKCE S256, `state`, `nonce`), and the checks
//! on its answer (the `openidconnect` crate verifies the ID token's signature against the
//! provider's JWKS, its issuer, audience, expiry and nonce, and the access token's hash), and
//! the request that signs the person out at the provider too (RP-initiated logout, when the
//! discovery document names an `end_session_endpoint`).

use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreRevocableToken, CoreRevocationErrorResponse, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessTokenHash, AdditionalClaims, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields,
    IssuerUrl, LogoutRequest, Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadataWithLogout, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::claims::Claims;
use super::settings::OidcProviderSettings;

/// Every claim beyond the standard ones, kept as JSON for the mapping profiles.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    claims: Map<String, Value>,
}

impl AdditionalClaims for OtherClaims {}

type Fields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<Fields, CoreTokenType>;
type OidcClient = Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How long a discovery document (with its keys) is used before it is read again.
const METADATA_LIFETIME: Duration = Duration::from_secs(300);

/// Why talking to the provider failed, in words for the person signing in.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider could not be reached, or answered with something that is not OpenID.
    #[error("{0}")]
    Unreachable(String),
    /// The provider refused to give tokens for the code.
    #[error("{0}")]
    Refused(String),
    /// The provider's answer did not pass the checks (signature, issuer, audience, expiry,
    /// nonce, access token hash, subject).
    #[error("{0}")]
    Invalid(String),
}

/// A sign-in request ready to send the browser to.
#[derive(Debug)]
pub struct Authorisation {
    /// The provider's authorisation URL with every parameter.
    pub url: url::Url,
    /// The `state` sent (the browser's cookie and the stored sign-in are keyed by it).
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier whose S256 challenge was sent.
    pub pkce_verifier: String,
}

/// What the provider vouched for.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The subject identifier (unique per issuer).
    pub subject: String,
    /// The ID token's claims with the UserInfo endpoint's added.
    pub claims: Claims,
    /// The ID token itself, sent back as `id_token_hint` when the person signs out.
    pub id_token: String,
}

/// One provider: its settings, client secret and cached discovery document.
pub struct OidcProvider {
    /// Its settings.
    pub settings: OidcProviderSettings,
    secret: Option<ClientSecret>,
    http: reqwest::Client,
    metadata: tokio::sync::Mutex<Option<(Instant, ProviderMetadataWithLogout)>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OidcProvider")
            .field("id", &self.settings.id)
            .field("issuer", &self.settings.issuer)
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// Sets a provider up from its settings, reading its client secret (from the file, else the
    /// environment variable). Nothing is fetched from the provider yet.
    pub fn new(settings: OidcProviderSettings) -> Result<OidcProvider, String> {
        settings.check()?;
        let id = settings.id.clone();
        let secret = if let Some(file) = &settings.client_secret_file {
            let text = std::fs::read_to_string(file).map_err(|error| {
                format!(
                    "oidc_providers.{id}: could not read client_secret_file {}: {error}",
                    file.display()
                )
            })?;
            Some(text.lines().next().unwrap_or("").trim().to_owned())
        } else if let Some(variable) = &settings.client_secret_env {
            Some(std::env::var(variable).map_err(|_| {
                format!("oidc_providers.{id}: the environment variable {variable} (client_secret_env) is not set")
            })?)
        } else {
            None
        };
        if secret.as_deref() == Some("") {
            return Err(format!("oidc_providers.{id}: the client secret is empty"));
        }
        let timeout = Duration::from_secs(settings.timeout_seconds.unwrap_or(10).max(1));
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's answer steer requests elsewhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|error| format!("oidc_providers.{id}: HTTP client: {error}"))?;
        Ok(OidcProvider {
            settings,
            secret: secret.map(ClientSecret::new),
            http,
            metadata: tokio::sync::Mutex::new(None),
        })
    }

    /// The discovery document: the cached one unless it is older than a few minutes or
    /// `fresh` is asked for (after a signature failed: the keys may have rotated).
    async fn metadata(&self, fresh: bool) -> Result<ProviderMetadataWithLogout, OidcError> {
        let mut cached = self.metadata.lock().await;
        if let Some((read_at, metadata)) = cached.as_ref() {
            if !fresh && read_at.elapsed() < METADATA_LIFETIME {
                return Ok(metadata.clone());
            }
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone()).map_err(|error| {
            OidcError::Unreachable(format!("the issuer URL is not valid: {error}"))
        })?;
        let metadata = ProviderMetadataWithLogout::discover_async(issuer, &self.http)
            .await
            .map_err(|error| {
                OidcError::Unreachable(format!(
                    "could not read {}'s OpenID configuration: {}",
                    self.settings.display_name,
                    describe(&error)
                ))
            })?;
        *cached = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    fn client(&self, metadata: ProviderMetadataWithLogout, redirect: &url::Url) -> OidcClient {
        OidcClient::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            self.secret.clone(),
        )
        .set_redirect_uri(RedirectUrl::from_url(redirect.clone()))
    }

    /// Prepares the authorisation request: a fresh `state`, `nonce` and PKCE verifier (S256).
    pub async fn authorise(&self, redirect: &url::Url) -> Result<Authorisation, OidcError> {
        let client = self.client(self.metadata(false).await?, redirect);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scopes(
                self.settings
                    .scopes()
                    .into_iter()
                    .filter(|scope| scope != "openid")
                    .map(Scope::new),
            )
            .set_pkce_challenge(challenge)
            .url();
        Ok(Authorisation {
            url,
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
        })
    }

    /// Exchanges the code (with the PKCE verifier) for tokens, verifies the ID token (against
    /// the provider's keys, read again once if the signature does not check, in case they
    /// rotated), then adds the UserInfo endpoint's claims for the same subject.
    pub async fn verify(
        &self,
        redirect: &url::Url,
        code: &str,
        nonce: &str,
        pkce_verifier: &str,
    ) -> Result<Verified, OidcError> {
        let client = self.client(self.metadata(false).await?, redirect);
        let request = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|error| {
                OidcError::Unreachable(format!("the provider has no token endpoint: {error}"))
            })?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()));
        let tokens: Tokens =
            request
                .request_async(&self.http)
                .await
                .map_err(|error| match &error {
                    openidconnect::RequestTokenError::ServerResponse(response) => {
                        OidcError::Refused(format!(
                            "{} refused to complete the sign-in: {}{}",
                            self.settings.display_name,
                            response.error().as_ref(),
                            response
                                .error_description()
                                .map(|text| format!(" ({})", printable(text)))
                                .unwrap_or_default()
                        ))
                    }
                    _ => OidcError::Unreachable(format!(
                        "could not complete the sign-in with {}: {}",
                        self.settings.display_name,
                        describe(&error)
                    )),
                })?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| OidcError::Invalid("the provider sent no ID token".to_owned()))?;
        let nonce = Nonce::new(nonce.to_owned());
        let first = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .cloned();
        let (client, claims) = match first {
            Ok(claims) => (client, claims),
            Err(first) => {
                // The provider may have rotated its keys since the discovery document was read.
                let client = self.client(self.metadata(true).await?, redirect);
                let claims = id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .map_err(|_| {
                        OidcError::Invalid(format!(
                            "the ID token did not pass verification: {first}"
                        ))
                    })?
                    .clone();
                (client, claims)
            }
        };
        let verifier = client.id_token_verifier();
        if let Some(expected) = claims.access_token_hash() {
            let algorithm = id_token.signing_alg().map_err(|error| {
                OidcError::Invalid(format!("the ID token's algorithm: {error}"))
            })?;
            let key = id_token
                .signing_key(&verifier)
                .map_err(|error| OidcError::Invalid(format!("the ID token's key: {error}")))?;
            let actual = AccessTokenHash::from_token(tokens.access_token(), algorithm, key)
                .map_err(|error| OidcError::Invalid(format!("the access token hash: {error}")))?;
            if actual != *expected {
                return Err(OidcError::Invalid(
                    "the access token does not belong to the ID token (at_hash differs)".to_owned(),
                ));
            }
        }
        let subject = claims.subject().clone();
        let mut all = match serde_json::to_value(&claims) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        if let Ok(request) = client.user_info(tokens.access_token().clone(), Some(subject.clone()))
        {
            let info: UserInfoClaims<OtherClaims, CoreGenderClaim> =
                request.request_async(&self.http).await.map_err(|error| {
                    OidcError::Unreachable(format!(
                        "could not read your details from {}'s UserInfo endpoint: {}",
                        self.settings.display_name,
                        describe(&error)
                    ))
                })?;
            if let Ok(Value::Object(extra)) = serde_json::to_value(&info) {
                for (name, value) in extra {
                    all.entry(name).or_insert(value);
                }
            }
        }
        Ok(Verified {
            subject: subject.as_str().to_owned(),
            claims: all,
            id_token: id_token.to_string(),
        })
    }

    /// Where to send the browser to sign the person out at the provider too (OpenID Connect
    /// RP-initiated logout): the provider's `end_session_endpoint` with `id_token_hint`,
    /// `client_id`, `post_logout_redirect_uri` and `state`. `None` when the provider names no
    /// such endpoint: then only Formulary's session ends.
    pub async fn logout_url(
        &self,
        id_token: &str,
        post_logout: &url::Url,
        state: &str,
    ) -> Result<Option<url::Url>, OidcError> {
        let metadata = self.metadata(false).await?;
        let Some(endpoint) = metadata.additional_metadata().end_session_endpoint.clone() else {
            return Ok(None);
        };
        let mut request = LogoutRequest::from(endpoint)
            .set_client_id(ClientId::new(self.settings.client_id.clone()))
            .set_post_logout_redirect_uri(PostLogoutRedirectUrl::from_url(post_logout.clone()))
            .set_state(CsrfToken::new(state.to_owned()));
        if let Ok(hint) = id_token.parse::<IdToken>() {
            request = request.set_id_token_hint(&hint);
        }
        Ok(Some(request.http_get_url()))
    }
}

/// An ID token as this client reads them.
type IdToken = openidconnect::IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// An error and its causes, on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let words = cause.to_string();
        if !text.contains(&words) {
            text.push_str(": ");
            text.push_str(&words);
        }
        source = cause.source();
    }
    printable(&text)
}

/// Text from outside, shortened and without control characters.
pub(crate) fn printable(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(300).collect()
}
