//! Who is calling: a [`Principal`] built from a session cookie or an API token, and the
//! [`IdentityProvider`] interface that proves a person's identity from a username and password
//! (local accounts, argon2 password hashes). People who sign in through an OpenID Connect
//! provider (NHS CIS2, Entra ID) go through a browser redirect instead: see [`crate::oidc`].

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
    /// Too many recent failures for this username or from this address: the next attempt must
    /// wait a little (the wait doubles with each failure, within a bound).
    #[error("too many failed sign-ins lately, so the next attempt must wait {wait_seconds} seconds; try again then (or ask your organisation's administrator to reset your password)")]
    TooManyAttempts {
        /// Seconds until an attempt is accepted again.
        wait_seconds: i64,
    },
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

/// How far back failed sign-ins count, in minutes.
pub const FAILURE_WINDOW_MINUTES: i64 = 15;

/// One throttle: after `free` failures within the window, each attempt must wait
/// 2^(failures − free) seconds after the latest failure, but never longer than `longest_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// Failures that cost nothing (typing mistakes).
    pub free: i64,
    /// The longest wait, in seconds.
    pub longest_wait: i64,
}

/// One username from one address: the guesser's own line, slowed the most.
pub const PER_ACCOUNT_AND_ADDRESS: Throttle = Throttle {
    free: 5,
    longest_wait: 300,
};
/// One username from any address: a guesser spread over many addresses. The wait stays short
/// so that the account's owner is slowed by at most a minute, never locked out.
pub const PER_ACCOUNT: Throttle = Throttle {
    free: 10,
    longest_wait: 60,
};
/// One address, any username (password spraying). Short too, because many people may share an
/// address behind NAT when no trusted proxy reports theirs.
pub const PER_ADDRESS: Throttle = Throttle {
    free: 30,
    longest_wait: 60,
};

impl Throttle {
    /// How long an attempt must still wait, given `tally`, at `now`.
    pub fn wait(
        self,
        tally: formulary_store::FailureTally,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::Duration> {
        let latest = tally.latest?;
        if tally.count < self.free {
            return None;
        }
        let over = tally.count - self.free;
        let seconds = 1_i64
            .checked_shl(u32::try_from(over.min(30)).unwrap_or(30))
            .unwrap_or(i64::MAX)
            .min(self.longest_wait);
        let remaining = latest + chrono::Duration::seconds(seconds) - now;
        (remaining > chrono::Duration::zero()).then_some(remaining)
    }
}

/// The longest wait any of the three throttles imposes, in whole seconds (at least 1).
pub fn required_wait(
    failures: &formulary_store::SignInFailures,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<i64> {
    [
        PER_ACCOUNT_AND_ADDRESS.wait(failures.account_from_client, now),
        PER_ACCOUNT.wait(failures.account, now),
        PER_ADDRESS.wait(failures.client, now),
    ]
    .into_iter()
    .flatten()
    .max()
    .map(|wait| ((wait.num_milliseconds() + 999) / 1000).max(1))
}

/// Signs someone in through `provider`. An attempt that comes too soon after recent failures
/// (for the username, from the address, or both; see [`required_wait`]) is refused without
/// checking the password; each failure is recorded in the database (so every replica sees it)
/// and audited.
pub async fn sign_in(
    database: &Database,
    provider: &dyn IdentityProvider,
    credentials: &Credentials,
    client: &str,
) -> Result<User, SignInError> {
    let now = chrono::Utc::now();
    let since = now - chrono::Duration::minutes(FAILURE_WINDOW_MINUTES);
    let failures = database
        .sign_in_failures_since(&credentials.username, client, since)
        .await?;
    if let Some(wait_seconds) = required_wait(&failures, now) {
        tracing::warn!(%client, wait_seconds, "sign-in attempt throttled after recent failures");
        return Err(SignInError::TooManyAttempts { wait_seconds });
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

/// The lowest zxcvbn score a new password must reach: 4, more than 10^10 guesses, out of
/// reach of online guessing and of slow offline guessing against argon2. (Score 3 still lets
/// through breached-list patterns such as `Summer2024!!`.)
pub const MIN_PASSWORD_SCORE: u8 = 4;

/// Checks a new password against the policy: 12 to 256 characters, and not guessable by
/// zxcvbn (common and breached passwords, words, names, keyboard patterns, dates, and the
/// person's own names in `personal`) below [`MIN_PASSWORD_SCORE`]. The message says why and
/// how to do better.
pub fn check_new_password(password: &str, personal: &[&str]) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!(
            "the password must be at least {MIN_PASSWORD_CHARS} characters; a phrase of several unrelated words is easiest to remember"
        ));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!(
            "the password must be at most {MAX_PASSWORD_CHARS} characters"
        ));
    }
    let estimate = zxcvbn::zxcvbn(password, personal);
    if u8::from(estimate.score()) >= MIN_PASSWORD_SCORE {
        return Ok(());
    }
    let mut advice = Vec::new();
    if let Some(feedback) = estimate.feedback() {
        if let Some(warning) = feedback.warning() {
            advice.push(warning.to_string());
        }
        advice.extend(feedback.suggestions().iter().map(ToString::to_string));
    }
    Err(format!(
        "the password is too easy to guess: it is common, appears in lists of breached passwords, or follows a pattern{}. Choose a phrase of four or more unrelated words",
        if advice.is_empty() {
            String::new()
        } else {
            format!(" ({})", advice.join(" "))
        }
    ))
}

/// Why a password change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PasswordChangeError {
    /// The current password was wrong, or the attempt was throttled.
    #[error(transparent)]
    CurrentPassword(SignInError),
    /// The new password does not meet the policy ([`check_new_password`]).
    #[error("{0}")]
    Policy(String),
    /// The account does not sign in with a local password (an identity provider's account).
    #[error(
        "this account signs in through its identity provider, so its password is changed there"
    )]
    NotLocal,
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Changes a person's own password: the current one is checked like a sign-in (throttled, and
/// a wrong one recorded as a failed sign-in), the new one against the policy; every other
/// session of the account then ends (all of them when `keep_session` is None). Audited as
/// `user.password`.
pub async fn change_own_password(
    database: &Database,
    user: &User,
    current: &str,
    new: &str,
    client: &str,
    keep_session: Option<&str>,
) -> Result<(), PasswordChangeError> {
    if user.identity_provider != formulary_store::LOCAL_PROVIDER {
        return Err(PasswordChangeError::NotLocal);
    }
    let credentials = Credentials {
        username: user.username.clone(),
        password: current.to_owned(),
    };
    let checked = sign_in(database, &LocalAccounts, &credentials, client)
        .await
        .map_err(|error| match error {
            SignInError::Store(error) => PasswordChangeError::Store(error),
            other => PasswordChangeError::CurrentPassword(other),
        })?;
    if checked.id != user.id {
        return Err(PasswordChangeError::CurrentPassword(SignInError::Rejected));
    }
    check_new_password(new, &[&user.username, &user.display_name])
        .map_err(PasswordChangeError::Policy)?;
    let new = new.to_owned();
    let hash = tokio::task::spawn_blocking(move || hash_password(&new))
        .await
        .map_err(|error| {
            PasswordChangeError::Policy(format!("could not hash the password: {error}"))
        })?
        .map_err(PasswordChangeError::Policy)?;
    database
        .set_password_hash(&user.id, &hash, keep_session, &user.actor())
        .await?;
    Ok(())
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
    fn common_and_breached_passwords_are_refused_and_phrases_accepted() {
        for weak in [
            "password1234",
            "qwertyuiop123",
            "Password1234!",
            "Summer2024!!",
            "nhs-password-1",
            "short",
        ] {
            let refusal = check_new_password(weak, &["ana"]).unwrap_err();
            assert!(
                refusal.contains("too easy to guess") || refusal.contains("at least 12"),
                "{weak}: {refusal}"
            );
        }
        assert!(
            check_new_password("anapatel-anapatel", &["anapatel", "Ana Patel"]).is_err(),
            "the person's own names count as guessable"
        );
        check_new_password("a long test passphrase", &["ana"]).expect("a phrase passes");
        check_new_password("violet tractor spoon harbour", &[]).expect("a phrase passes");
    }

    #[test]
    fn waits_double_per_failure_within_bounds() {
        use formulary_store::{FailureTally, SignInFailures};
        let now = chrono::Utc::now();
        let tally = |count| FailureTally {
            count,
            latest: Some(now),
        };
        let failures = |pair, account, address| SignInFailures {
            account_from_client: tally(pair),
            account: tally(account),
            client: tally(address),
        };
        assert_eq!(
            required_wait(&failures(4, 4, 4), now),
            None,
            "typing mistakes cost nothing"
        );
        assert_eq!(required_wait(&failures(5, 5, 5), now), Some(1));
        assert_eq!(required_wait(&failures(8, 8, 8), now), Some(8));
        assert_eq!(
            required_wait(&failures(40, 40, 40), now),
            Some(300),
            "the longest wait for one address"
        );
        assert_eq!(
            required_wait(&failures(0, 500, 0), now),
            Some(60),
            "a guesser spread over many addresses slows the owner by at most a minute"
        );
        assert_eq!(
            required_wait(&failures(5, 5, 5), now + chrono::Duration::seconds(2)),
            None,
            "the wait is counted from the latest failure"
        );
        assert_eq!(required_wait(&SignInFailures::default(), now), None);
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
