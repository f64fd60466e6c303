//! Managing people: the rules shared by the administration pages (`web::admin::people`) and the
//! JSON API (`api::people`), so both refuse the same things with the same words.
//!
//! - An organisation admin manages roles in their own organisation only; national curators in
//!   every organisation. `national-curator` is granted only in `NATIONAL`.
//! - Whole-account actions (disable, enable, password link, revoking tokens) need the caller to
//!   administer every organisation the account has a role in, so an admin of one trust can never
//!   lock out a national curator or someone of another trust.
//! - Nobody locks themselves out: no one disables their own account or removes their own
//!   `organisation-admin` or `national-curator` role.
//! - A person's last role is kept unless a national curator revokes it (disabling is how to stop
//!   someone, and keeps them on the organisation's list).

use chrono::{DateTime, Duration, Utc};
use formulary_core::request::FieldError;
use formulary_core::{Membership, OrgCode, Organisation, Role};
use formulary_store::{NewUser, User, LOCAL_PROVIDER};

use crate::error::ApiError;
use crate::identity::Principal;
use crate::state::AppState;

/// How long a password link (for a new account or a reset) works.
pub(crate) const PASSWORD_LINK_DAYS: i64 = 7;

/// True when `principal` administers `organisation`: its organisation admins, and national
/// curators (for every organisation, the national one included).
pub(crate) fn administers(principal: &Principal, organisation: &OrgCode) -> bool {
    principal.may_change_formulary(organisation)
}

/// True when `principal` is a national curator.
pub(crate) fn is_national_curator(principal: &Principal) -> bool {
    principal.holds(Role::NationalCurator, &OrgCode::national())
}

/// The organisation named by `code`, when it exists and `principal` administers it; otherwise
/// 404 (no such organisation) or 403 saying which organisations they do administer.
pub(crate) async fn administered_organisation(
    state: &AppState,
    principal: &Principal,
    code: &str,
) -> Result<Organisation, ApiError> {
    let code: OrgCode = code.parse().map_err(|_| {
        ApiError::not_found(format!(
            "there is no organisation '{}'",
            code.escape_debug()
        ))
    })?;
    let organisation = state
        .database
        .organisation(&code)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no organisation {code}")))?;
    if !administers(principal, &code) {
        let yours: Vec<String> = principal
            .organisations()
            .into_iter()
            .filter(|own| administers(principal, own))
            .map(|own| own.to_string())
            .collect();
        return Err(ApiError::forbidden(format!(
            "{} ({}) does not administer {code}, so nothing there can be seen or changed here. {}",
            principal.name,
            principal.describe_roles(),
            if yours.is_empty() {
                "Ask an organisation admin or a national curator.".to_owned()
            } else {
                format!("You administer {}.", yours.join(", "))
            }
        )));
    }
    Ok(organisation)
}

/// The roles that can be granted in `organisation`: a national curator only nationally.
pub(crate) fn grantable(organisation: &OrgCode) -> Vec<Role> {
    Role::ALL
        .into_iter()
        .filter(|role| *role != Role::NationalCurator || organisation.is_national())
        .collect()
}

/// The role named `text`, when it can be granted in `organisation`.
pub(crate) fn grantable_role(text: &str, organisation: &OrgCode) -> Option<Role> {
    text.trim()
        .parse::<Role>()
        .ok()
        .filter(|role| grantable(organisation).contains(role))
}

/// `user`'s roles in `organisation`.
pub(crate) fn roles_here(user: &User, organisation: &OrgCode) -> Vec<Role> {
    user.memberships
        .iter()
        .filter(|membership| &membership.organisation == organisation)
        .map(|membership| membership.role)
        .collect()
}

/// True when `principal` may act on the whole account of `user`: every organisation the
/// account has a role in is one they administer (national curators: any account).
pub(crate) fn manages_account(principal: &Principal, user: &User) -> bool {
    is_national_curator(principal)
        || user
            .memberships
            .iter()
            .all(|membership| administers(principal, &membership.organisation))
}

/// The person `user_id` as seen from `organisation`: found when they hold a role there
/// (national curators also find role-less accounts); anyone else is "not found" here.
pub(crate) async fn person(
    state: &AppState,
    principal: &Principal,
    organisation: &Organisation,
    user_id: &str,
) -> Result<User, ApiError> {
    let user = state.database.user(user_id).await?;
    let national = is_national_curator(principal);
    user.filter(|user| {
        !roles_here(user, &organisation.code).is_empty()
            || (national && user.memberships.is_empty())
    })
    .ok_or_else(|| {
        ApiError::not_found(format!(
            "there is no person with id '{}' in {}",
            user_id.escape_debug(),
            organisation.code
        ))
    })
}

/// Refuses a whole-account action on `user` that `principal` may not take.
pub(crate) fn may_manage_account(principal: &Principal, user: &User) -> Result<(), ApiError> {
    if manages_account(principal, user) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "{} also has roles in organisations you do not administer, so only a national curator can change the account itself",
        user.display_name
    )))
}

/// Refuses disabling one's own account.
pub(crate) fn may_disable(principal: &Principal, user: &User) -> Result<(), ApiError> {
    may_manage_account(principal, user)?;
    if user.id == principal.id {
        return Err(ApiError::forbidden(
            "you cannot disable your own account: you would be locked out at once. Ask another administrator",
        ));
    }
    Ok(())
}

/// Refuses revoking `role` in `organisation` from `user` when it would lock the caller out
/// (their own administration role) or leave someone without any role (unless a national
/// curator does it).
pub(crate) fn may_revoke(
    principal: &Principal,
    user: &User,
    organisation: &OrgCode,
    role: Role,
) -> Result<(), ApiError> {
    if user.id == principal.id && matches!(role, Role::OrganisationAdmin | Role::NationalCurator) {
        return Err(ApiError::forbidden(format!(
            "you cannot remove your own {} role in {organisation}: you would lose the administration you are using. Ask another administrator",
            role.label().to_lowercase()
        )));
    }
    if user.memberships.len() == 1 && !is_national_curator(principal) {
        return Err(ApiError::forbidden(format!(
            "this is {}'s only role, and a person without roles drops off every organisation's list. To stop them using Formulary, disable the account instead; to change what they do, grant the new role first",
            user.display_name
        )));
    }
    Ok(())
}

/// A new local account as asked for (form fields or a JSON body).
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
pub(crate) struct NewPerson {
    /// What they type to sign in.
    pub username: String,
    /// Their full name.
    pub display_name: String,
    /// Where notifications go; empty for none.
    pub email: String,
    /// Their first role in the organisation.
    pub role: String,
}

/// Checks a new person for `organisation`, naming each field that is wrong.
pub(crate) fn check_new_person(
    organisation: &OrgCode,
    new: &NewPerson,
) -> Result<NewUser, Vec<FieldError>> {
    let mut errors = Vec::new();
    let username = match formulary_store::canonical_username(&new.username) {
        Ok(name) => Some(name),
        Err(error) => {
            errors.push(FieldError::new("username", sentence(&error.to_string())));
            None
        }
    };
    let display_name = new.display_name.trim();
    if display_name.is_empty()
        || display_name.chars().count() > 100
        || display_name.chars().any(char::is_control)
    {
        errors.push(FieldError::new(
            "display_name",
            "Enter the person's full name, up to 100 characters",
        ));
    }
    let email = new.email.trim();
    if !email.is_empty()
        && (email.len() > 254
            || !email.contains('@')
            || email.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        errors.push(FieldError::new(
            "email",
            "Enter an email address like name@nhs.net, or leave it empty",
        ));
    }
    let role = grantable_role(&new.role, organisation);
    if role.is_none() {
        errors.push(FieldError::new(
            "role",
            if organisation.is_national() {
                "Select the person's first role".to_owned()
            } else {
                format!("Select the person's first role (a national curator is made only in NATIONAL, not in {organisation})")
            },
        ));
    }
    match (username, role) {
        (Some(username), Some(role)) if errors.is_empty() => Ok(NewUser {
            username,
            display_name: display_name.to_owned(),
            email: (!email.is_empty()).then(|| email.to_owned()),
            password_hash: None,
            identity_provider: LOCAL_PROVIDER.to_owned(),
            external_subject: None,
            memberships: vec![Membership::new(organisation.clone(), role)],
        }),
        _ => Err(errors),
    }
}

/// Issues a password link for `user` (audited by the store; refused for accounts of an
/// identity provider and disabled ones) and returns it, built from the configured public URL,
/// with when it stops working.
pub(crate) async fn password_link(
    state: &AppState,
    principal: &Principal,
    user: &User,
) -> Result<(String, DateTime<Utc>), ApiError> {
    let issued = state
        .database
        .issue_password_reset(
            &user.id,
            Duration::days(PASSWORD_LINK_DAYS),
            &principal.actor,
        )
        .await?;
    let link = state
        .public_url
        .join(&format!("reset-password/{}", issued.secret))
        .map_or_else(
            |_| format!("/reset-password/{}", issued.secret),
            String::from,
        );
    Ok((link, issued.expires_at))
}

/// The first letter of a message in upper case (store messages start in lower case).
pub(crate) fn sentence(text: &str) -> String {
    let mut letters = text.chars();
    letters
        .next()
        .map(|first| first.to_uppercase().chain(letters).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, roles: &[(&str, Role)]) -> User {
        User {
            id: id.to_owned(),
            username: id.to_owned(),
            display_name: id.to_owned(),
            email: None,
            identity_provider: LOCAL_PROVIDER.to_owned(),
            created_at: Utc::now(),
            disabled_at: None,
            memberships: roles
                .iter()
                .map(|(org, role)| Membership::new(org.parse().unwrap(), *role))
                .collect(),
        }
    }

    #[test]
    fn nobody_locks_themselves_out() {
        let olu = user(
            "olu",
            &[("RJ1", Role::OrganisationAdmin), ("RJ1", Role::Approver)],
        );
        let admin = Principal::from_user(olu.clone());
        let rj1: OrgCode = "RJ1".parse().unwrap();
        assert!(may_disable(&admin, &olu).is_err());
        assert!(may_revoke(&admin, &olu, &rj1, Role::OrganisationAdmin).is_err());
        assert!(
            may_revoke(&admin, &olu, &rj1, Role::Approver).is_ok(),
            "a role that is not an administration role may go"
        );
        let nina = user("nina", &[("NATIONAL", Role::NationalCurator)]);
        let curator = Principal::from_user(nina.clone());
        assert!(may_disable(&curator, &nina).is_err());
        assert!(may_revoke(&curator, &nina, &OrgCode::national(), Role::NationalCurator).is_err());
        assert!(may_disable(&curator, &olu).is_ok());
    }

    #[test]
    fn an_organisation_admin_acts_on_whole_accounts_of_their_own_organisation_only() {
        let admin = Principal::from_user(user("olu", &[("RJ1", Role::OrganisationAdmin)]));
        let rj1: OrgCode = "RJ1".parse().unwrap();
        let ana = user("ana", &[("RJ1", Role::Requester)]);
        let both = user("bo", &[("RJ1", Role::Requester), ("RQM", Role::Reviewer)]);
        assert!(may_disable(&admin, &ana).is_ok());
        assert!(may_manage_account(&admin, &both).is_err());
        assert!(
            may_revoke(&admin, &ana, &rj1, Role::Requester).is_err(),
            "a last role stays unless a national curator revokes it"
        );
        let curator = Principal::from_user(user("nina", &[("NATIONAL", Role::NationalCurator)]));
        assert!(may_revoke(&curator, &ana, &rj1, Role::Requester).is_ok());
        assert!(may_manage_account(&curator, &both).is_ok());
        assert_eq!(grantable_role("national-curator", &rj1), None);
        assert_eq!(
            grantable_role("national-curator", &OrgCode::national()),
            Some(Role::NationalCurator)
        );
    }

    #[test]
    fn a_new_person_is_checked_field_by_field() {
        let rj1: OrgCode = "RJ1".parse().unwrap();
        let errors = check_new_person(
            &rj1,
            &NewPerson {
                username: "x".to_owned(),
                display_name: " ".to_owned(),
                email: "not an address".to_owned(),
                role: "national-curator".to_owned(),
            },
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|error| error.field).collect();
        assert_eq!(fields, ["username", "display_name", "email", "role"]);
        let new = check_new_person(
            &rj1,
            &NewPerson {
                username: " A.Khan ".to_owned(),
                display_name: "Aisha Khan".to_owned(),
                email: String::new(),
                role: "reviewer".to_owned(),
            },
        )
        .unwrap();
        assert_eq!(new.username, "a.khan");
        assert_eq!(new.email, None);
        assert_eq!(new.memberships, vec![Membership::new(rj1, Role::Reviewer)]);
    }
}
