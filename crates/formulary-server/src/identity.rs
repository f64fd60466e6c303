//! Who is calling: a [`Principal`] built from a session cookie or an API token, and the
//! [`IdentityProvider`] interface that proves a person's identity at sign-in. Local accounts
//! (argon2 password hashes) are the first provider; an OIDC provider (NHS CIS2, Entra ID) fits
//! the same interface, mapping its claims to an account and roles.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use formulary_core::request::workflow::Actor;
use formulary_core::{Membership, OrgCode, Role};
use formulary_store::{ApiToken, Database, StoreError, User, UserRef};

/// Shortest password accepted for a local account.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest password accepted (hashing cost is bounded).
pub const MAX_PASSWORD_CHARS: usize = 256;

/// Someone authenticated: a person (by session or personal token) or a service account token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Stable id: the user id, or `token:<id>` for a service account.
    pub id: String,
    /// How they are shown.
    pub name: String,
    /// How they appear in the audit log.
    pub actor: String,
    /// Their roles, per organisation.
    pub memberships: Vec<Membership>,
    /// The account, for people.
    pub user: Option<User>,
}

impl Principal {
    /// A signed-in person.
    pub fn from_user(user: User) -> Principal {
        Principal {
            id: user.id.clone(),
            name: user.display_name.clone(),
            actor: user.actor(),
            memberships: user.memberships.clone(),
            user: Some(user),
        }
    }

    /// A service account's token: it carries exactly one role in one organisation.
    pub fn from_service_token(token: &ApiToken) -> Principal {
        Principal {
            id: format!("token:{}", token.id),
            name: token.name.clone(),
            actor: token.actor(),
            memberships: vec![Membership::new(token.organisation.clone(), token.role)],
            user: None,
        }
    }

    /// The principal as the request workflow sees it.
    pub fn as_actor(&self) -> Actor<'_> {
        Actor {
            id: &self.id,
            memberships: &self.memberships,
        }
    }

    /// The principal as a request's timeline shows it.
    pub fn user_ref(&self) -> UserRef {
        UserRef {
            id: self.id.clone(),
            name: self.name.clone(),
        }
    }

    /// True when they hold `role` for `organisation` (there, or nationally).
    pub fn holds(&self, role: Role, organisation: &OrgCode) -> bool {
        self.as_actor().holds(role, organisation)
    }

    /// True when they hold `role` anywhere.
    pub fn has_role(&self, role: Role) -> bool {
        self.memberships
            .iter()
            .any(|membership| membership.role == role)
    }

    /// True when one of their roles may change `target`'s formulary.
    pub fn may_change_formulary(&self, target: &OrgCode) -> bool {
        self.memberships.iter().any(|membership| {
            membership
                .role
                .may_change_formulary(&membership.organisation, target)
        })
    }

    /// True when one of their roles may create organisations.
    pub fn may_manage_organisations(&self) -> bool {
        self.memberships.iter().any(|membership| {
            membership
                .role
                .may_manage_organisations(&membership.organisation)
        })
    }

    /// True when they may read the whole audit log (auditors, national curators).
    pub fn may_read_audit(&self) -> bool {
        self.has_role(Role::Auditor) || self.holds(Role::NationalCurator, &OrgCode::national())
    }

    /// The organisation they most likely act for: their first local one, else national.
    pub fn home_organisation(&self) -> Option<OrgCode> {
        let local = self
            .memberships
            .iter()
            .find(|membership| !membership.organisation.is_national());
        local
            .or_else(|| self.memberships.first())
            .map(|membership| membership.organisation.clone())
    }

    /// The organisations they belong to, without repeats, in code order.
    pub fn organisations(&self) -> Vec<OrgCode> {
        let mut codes: Vec<OrgCode> = self
            .memberships
            .iter()
            .map(|membership| membership.organisation.clone())
            .collect();
        codes.sort();
        codes.dedup();
        codes
    }

    /// Their roles in words, e.g. `requester of RJ1, auditor of NATIONAL`.
    pub fn describe_roles(&self) -> String {
        if self.memberships.is_empty() {
            return "no roles".to_owned();
        }
        self.memberships
            .iter()
            .map(|membership| format!("{} of {}", membership.role, membership.organisation))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What someone typed to sign in.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The username.
    pub username: String,
    /// The password (never logged, never stored).
    pub password: String,
}

/// Why a sign-in did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Wrong username or password (deliberately not saying which).
    #[error("the username or password is not correct")]
    Rejected,
    /// The account exists but may not sign in.
    #[error("this account is disabled; ask your organisation's administrator")]
    Disabled,
    /// Too many recent failures for this username or from this address.
    #[error("too many failed sign-ins; wait {FAILURE_WINDOW_MINUTES} minutes and try again, or ask your organisation's administrator to reset your password")]
    TooManyAttempts,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Proves who someone is. Local accounts implement it with passwords; an OIDC provider would
/// implement it by completing the authorisation-code flow and mapping claims to an account.
#[async_trait::async_trait]
pub trait IdentityProvider: Send + Sync + std::fmt::Debug {
    /// The provider's name, as stored on accounts (`local`, or an issuer URL).
    fn name(&self) -> &str;

    /// The account the credentials prove, or why not.
    async fn authenticate(
        &self,
        database: &Database,
        credentials: &Credentials,
    ) -> Result<User, SignInError>;
}

/// Accounts whose argon2 password hash Formulary keeps.
#[derive(Debug, Clone, Default)]
pub struct LocalAccounts;

#[async_trait::async_trait]
impl IdentityProvider for LocalAccounts {
    fn name(&self) -> &str {
        formulary_store::LOCAL_PROVIDER
    }

    async fn authenticate(
        &self,
        database: &Database,
        credentials: &Credentials,
    ) -> Result<User, SignInError> {
        let found = database.user_by_username(&credentials.username).await?;
        let password = credentials.password.clone();
        let Some((user, Some(hash))) = found else {
            // Spend the same effort as a real check, so timing does not reveal which usernames exist.
            let _ = tokio::task::spawn_blocking(move || hash_password(&password)).await;
            return Err(SignInError::Rejected);
        };
        let verified = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        if !verified {
            return Err(SignInError::Rejected);
        }
        if user.disabled_at.is_some() {
            return Err(SignInError::Disabled);
        }
        Ok(user)
    }
}

/// Failed sign-ins for one username, within the window, before it is refused for a while.
pub const MAX_FAILURES_PER_USERNAME: i64 = 5;
/// Failed sign-ins from one address, within the window, before it is refused for a while.
pub const MAX_FAILURES_PER_CLIENT: i64 = 20;
/// The window, in minutes.
pub const FAILURE_WINDOW_MINUTES: i64 = 15;

/// Signs someone in through `provider`, refusing at once when the username or the address has
/// failed too often lately, and recording (and auditing) each failure.
pub async fn sign_in(
    database: &Database,
    provider: &dyn IdentityProvider,
    credentials: &Credentials,
    client: &str,
) -> Result<User, SignInError> {
    let since = chrono::Utc::now() - chrono::Duration::minutes(FAILURE_WINDOW_MINUTES);
    let (by_username, by_client) = database
        .sign_in_failures_since(&credentials.username, client, since)
        .await?;
    if by_username >= MAX_FAILURES_PER_USERNAME || by_client >= MAX_FAILURES_PER_CLIENT {
        tracing::warn!(%client, "sign-in refused: too many recent failures");
        return Err(SignInError::TooManyAttempts);
    }
    match provider.authenticate(database, credentials).await {
        Ok(user) => Ok(user),
        Err(SignInError::Store(error)) => Err(SignInError::Store(error)),
        Err(refusal) => {
            database
                .record_sign_in_failure(&credentials.username, client)
                .await?;
            Err(refusal)
        }
    }
}

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> Result<String, String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must be at least {MIN_PASSWORD_CHARS} characters; a phrase of several words is easiest to remember"
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "the password must be at most {MAX_PASSWORD_CHARS} characters"
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| format!("could not hash the password: {error}"))
}

/// True when `password` matches the PHC-format `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return false;
    }
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify_and_short_ones_are_refused() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery!", &hash));
        assert!(!verify_password("anything", "not a hash"));
        assert!(hash_password("short").unwrap_err().contains("at least 12"));
    }

    #[test]
    fn roles_are_checked_per_organisation() {
        let trust: OrgCode = "RJ1".parse().unwrap();
        let principal = Principal {
            id: "u-1".to_owned(),
            name: "Ana".to_owned(),
            actor: "user:ana".to_owned(),
            memberships: vec![Membership::new(trust.clone(), Role::OrganisationAdmin)],
            user: None,
        };
        assert!(principal.may_change_formulary(&trust));
        assert!(!principal.may_change_formulary(&OrgCode::national()));
        assert!(!principal.may_manage_organisations());
        assert!(!principal.may_read_audit());
        assert_eq!(principal.home_organisation(), Some(trust));
        assert_eq!(principal.describe_roles(), "organisation-admin of RJ1");
    }
}
