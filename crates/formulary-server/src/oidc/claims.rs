//! From a provider's claims to a person and their Formulary roles, by profile:
//!
//! - `cis2` (NHS Care Identity Service 2): `nhsid_nrbac_roles` entries, each with an `org_code`
//!   (the organisation, by its ODS code) and a `role_code` such as `S8000:G8000:R8000`, mapped to
//!   Formulary roles by the provider's `role_map` (whole code or one `:` part, e.g. `R8000`),
//!   else `default_role`. When the token carries `selected_roleid` (the role the person chose at
//!   sign-in) and `use_selected_role` is on, only the entry whose `person_roleid` it names counts.
//! - `entra` (Microsoft Entra ID): the `roles` claim; a value found in `role_map` gives the
//!   `ORG:role` pairs listed there, else a value shaped `Formulary.<Role>.<ORG>` (e.g.
//!   `Formulary.Reviewer.RJ1`) gives that role there.
//! - `generic`: the claim named by `groups_claim` (default `groups`), each value looked up in
//!   `role_map` (`ORG:role` pairs).
//!
//! Everything here is pure, so each rule is tested without a provider.

use std::collections::BTreeMap;

use formulary_core::{Membership, OrgCode, Role};
use serde_json::{Map, Value};

use super::settings::{ClaimsProfile, OidcProviderSettings};

/// The claims of one sign-in: the verified ID token's, with the UserInfo endpoint's added
/// (the ID token wins where both say something).
pub type Claims = Map<String, Value>;

/// The roles a provider's claims map to, and what could not be mapped (for the person and the
/// audit log).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MappedRoles {
    /// Roles in organisations as the claims give them (not yet checked against the
    /// organisations Formulary knows).
    pub memberships: Vec<Membership>,
    /// Role entries that gave no Formulary role: a description of each.
    pub unmapped: Vec<String>,
    /// National roles the provider asserted but may not give (`allow_national_roles` off).
    pub refused_national: Vec<Membership>,
}

/// Who the claims say the person is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// A wish for a new account's username.
    pub username_hint: String,
    /// The name to show.
    pub display_name: String,
    /// Their email address, if given.
    pub email: Option<String>,
}

/// The person the claims describe: `preferred_username`, else the email, else the subject, as
/// the username wish; `name`, else given and family names, as the shown name.
pub fn person(claims: &Claims, subject: &str) -> Person {
    let text = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
    };
    let email = text("email");
    let username_hint = text("preferred_username")
        .or_else(|| email.clone())
        .or_else(|| text("upn"))
        .unwrap_or_else(|| subject.to_owned());
    let display_name = text("name")
        .or_else(|| {
            let parts: Vec<String> = [text("given_name"), text("family_name")]
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
        .unwrap_or_else(|| username_hint.clone());
    Person {
        username_hint,
        display_name,
        email,
    }
}

/// The Formulary roles the claims map to under the provider's profile and tables.
pub fn map_roles(settings: &OidcProviderSettings, claims: &Claims) -> MappedRoles {
    let mut mapped = match settings.profile {
        ClaimsProfile::Cis2 => cis2(settings, claims),
        ClaimsProfile::Entra => entra(settings, claims),
        ClaimsProfile::Generic => generic(settings, claims),
    };
    if !settings.allow_national_roles {
        let (national, local): (Vec<_>, Vec<_>) = mapped
            .memberships
            .into_iter()
            .partition(|membership| membership.organisation.is_national());
        mapped.memberships = local;
        mapped.refused_national = national;
    }
    let mut unique = Vec::new();
    for membership in mapped.memberships {
        if !unique.contains(&membership) {
            unique.push(membership);
        }
    }
    mapped.memberships = unique;
    mapped
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// Reads `ORG:role` pairs from a table's value.
fn pairs(values: &[String], unmapped: &mut Vec<String>, key: &str) -> Vec<Membership> {
    let mut found = Vec::new();
    for value in values {
        let parsed = value.split_once(':').and_then(|(organisation, role)| {
            Some(Membership::new(
                organisation.parse::<OrgCode>().ok()?,
                role.parse::<Role>().ok()?,
            ))
        });
        match parsed {
            Some(membership) => found.push(membership),
            None => unmapped.push(format!(
                "{key}: the table gives '{value}', which is not ORG:role"
            )),
        }
    }
    found
}

fn cis2(settings: &OidcProviderSettings, claims: &Claims) -> MappedRoles {
    let mut mapped = MappedRoles::default();
    let entries: Vec<&Map<String, Value>> = claims
        .get("nhsid_nrbac_roles")
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default();
    let selected = claims
        .get("selected_roleid")
        .and_then(|value| match value {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .filter(|_| settings.use_selected_role);
    for entry in entries {
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(|value| match value {
                    Value::String(text) => Some(text.trim().to_owned()),
                    Value::Number(number) => Some(number.to_string()),
                    _ => None,
                })
                .unwrap_or_default()
        };
        if let Some(selected) = &selected {
            if &field("person_roleid") != selected {
                continue;
            }
        }
        let (org_code, role_code) = (field("org_code"), field("role_code"));
        let Ok(organisation) = org_code.parse::<OrgCode>() else {
            mapped.unmapped.push(format!(
                "role {role_code} has no usable org_code ('{org_code}')"
            ));
            continue;
        };
        let roles = cis2_roles(&settings.role_map, &role_code)
            .or_else(|| settings.default_role.clone().map(|role| vec![role]));
        let Some(roles) = roles else {
            mapped.unmapped.push(format!(
                "role {role_code} in {organisation} is not in the role table"
            ));
            continue;
        };
        for role in roles {
            match role.parse::<Role>() {
                Ok(role) => mapped
                    .memberships
                    .push(Membership::new(organisation.clone(), role)),
                Err(_) => mapped.unmapped.push(format!(
                    "role {role_code}: the table gives '{role}', which is not a Formulary role"
                )),
            }
        }
    }
    mapped
}

/// The table's roles for a CIS2 role code: the whole code first, then its `:` parts from the
/// most specific (the job role, `R…`) to the least.
fn cis2_roles(table: &BTreeMap<String, Vec<String>>, role_code: &str) -> Option<Vec<String>> {
    if role_code.is_empty() {
        return None;
    }
    if let Some(roles) = table.get(role_code) {
        return Some(roles.clone());
    }
    role_code
        .rsplit(':')
        .find_map(|part| table.get(part.trim()).cloned())
}

/// Reads `Formulary.<Role>.<ORG>`: role words in any case, `OrganisationAdmin` or
/// `Organisation-Admin` alike.
fn entra_value(prefix: &str, value: &str) -> Option<Membership> {
    let mut parts = value.split('.');
    let (first, role, organisation) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !first.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let word = role.to_ascii_lowercase().replace(['-', '_'], "");
    let role = Role::ALL
        .into_iter()
        .find(|candidate| candidate.as_str().replace('-', "") == word)?;
    Some(Membership::new(organisation.parse().ok()?, role))
}

fn entra(settings: &OidcProviderSettings, claims: &Claims) -> MappedRoles {
    let mut mapped = MappedRoles::default();
    let prefix = settings.role_prefix.as_deref().unwrap_or("Formulary");
    for value in strings(claims.get("roles")) {
        if let Some(targets) = settings.role_map.get(&value) {
            let found = pairs(targets, &mut mapped.unmapped, &value);
            mapped.memberships.extend(found);
        } else if let Some(membership) = entra_value(prefix, &value) {
            mapped.memberships.push(membership);
        } else {
            mapped.unmapped.push(format!(
                "app role '{value}' is neither in the role table nor shaped {prefix}.<Role>.<ORG>"
            ));
        }
    }
    mapped
}

fn generic(settings: &OidcProviderSettings, claims: &Claims) -> MappedRoles {
    let mut mapped = MappedRoles::default();
    let claim = settings.groups_claim.as_deref().unwrap_or("groups");
    for value in strings(claims.get(claim)) {
        match settings.role_map.get(&value) {
            Some(targets) => {
                let found = pairs(targets, &mut mapped.unmapped, &value);
                mapped.memberships.extend(found);
            }
            None => mapped
                .unmapped
                .push(format!("group '{value}' is not in the role table")),
        }
    }
    mapped
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(profile: ClaimsProfile, table: &[(&str, &[&str])]) -> OidcProviderSettings {
        let mut settings = OidcProviderSettings::example(profile);
        settings.role_map = table
            .iter()
            .map(|(key, values)| {
                (
                    (*key).to_owned(),
                    values.iter().map(|value| (*value).to_owned()).collect(),
                )
            })
            .collect();
        settings
    }

    fn claims(value: Value) -> Claims {
        value.as_object().cloned().expect("an object")
    }

    fn membership(organisation: &str, role: Role) -> Membership {
        Membership::new(organisation.parse().expect("a code"), role)
    }

    fn cis2_claims(selected: Option<&str>) -> Claims {
        let mut value = json!({
            "nhsid_nrbac_roles": [
                { "person_orgid": "1001", "person_roleid": "2001", "org_code": "RJ1", "role_code": "S8000:G8000:R8000", "role_name": "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\"" },
                { "person_orgid": "1002", "person_roleid": "2002", "org_code": "rrk", "role_code": "S0080:G0450:R5080" },
                { "person_orgid": "1003", "person_roleid": "2003", "org_code": "RJ1", "role_code": "S0010:G0020:R9999" }
            ]
        });
        if let Some(selected) = selected {
            value["selected_roleid"] = json!(selected);
        }
        claims(value)
    }

    #[test]
    fn cis2_roles_map_by_code_part_and_organisation() {
        let settings = settings(
            ClaimsProfile::Cis2,
            &[
                ("R8000", &["requester"]),
                ("S0080:G0450:R5080", &["reviewer", "approver"]),
            ],
        );
        let mapped = map_roles(&settings, &cis2_claims(None));
        assert_eq!(
            mapped.memberships,
            vec![
                membership("RJ1", Role::Requester),
                membership("RRK", Role::Reviewer),
                membership("RRK", Role::Approver),
            ]
        );
        assert_eq!(mapped.unmapped.len(), 1, "{:?}", mapped.unmapped);
        assert!(mapped.unmapped[0].contains("R9999"));
    }

    #[test]
    fn cis2_selected_role_alone_counts_and_default_role_fills_gaps() {
        let mut settings = settings(ClaimsProfile::Cis2, &[("R5080", &["reviewer"])]);
        let mapped = map_roles(&settings, &cis2_claims(Some("2002")));
        assert_eq!(mapped.memberships, vec![membership("RRK", Role::Reviewer)]);
        settings.default_role = Some("requester".to_owned());
        let mapped = map_roles(&settings, &cis2_claims(Some("2003")));
        assert_eq!(mapped.memberships, vec![membership("RJ1", Role::Requester)]);
        settings.use_selected_role = false;
        let mapped = map_roles(&settings, &cis2_claims(Some("2003")));
        assert_eq!(
            mapped.memberships,
            vec![
                membership("RJ1", Role::Requester),
                membership("RRK", Role::Reviewer)
            ],
            "every role when the selection is ignored (duplicates merged)"
        );
    }

    #[test]
    fn entra_roles_follow_the_pattern_or_the_table() {
        let settings = settings(ClaimsProfile::Entra, &[("Analyst", &["RJ1:requester"])]);
        let mapped = map_roles(
            &settings,
            &claims(json!({ "roles": [
                "Formulary.Reviewer.RJ1",
                "formulary.organisation-admin.rrk",
                "Analyst",
                "Formulary.Wizard.RJ1",
                "Other.Reviewer.RJ1",
                "Formulary.NationalCurator.NATIONAL"
            ] })),
        );
        assert_eq!(
            mapped.memberships,
            vec![
                membership("RJ1", Role::Reviewer),
                membership("RRK", Role::OrganisationAdmin),
                membership("RJ1", Role::Requester),
            ]
        );
        assert_eq!(mapped.unmapped.len(), 2, "{:?}", mapped.unmapped);
        assert_eq!(
            mapped.refused_national,
            vec![membership("NATIONAL", Role::NationalCurator)],
            "national roles only when allowed"
        );
    }

    #[test]
    fn generic_groups_need_the_table_and_national_roles_need_permission() {
        let mut settings = settings(
            ClaimsProfile::Generic,
            &[
                ("formulary-rj1-reviewers", &["RJ1:reviewer"]),
                ("curators", &["NATIONAL:national-curator"]),
                ("broken", &["RJ1 reviewer"]),
            ],
        );
        let groups = claims(
            json!({ "groups": ["formulary-rj1-reviewers", "curators", "broken", "strangers"] }),
        );
        let mapped = map_roles(&settings, &groups);
        assert_eq!(mapped.memberships, vec![membership("RJ1", Role::Reviewer)]);
        assert_eq!(mapped.unmapped.len(), 2, "{:?}", mapped.unmapped);
        settings.allow_national_roles = true;
        settings.groups_claim = Some("teams".to_owned());
        assert!(map_roles(&settings, &groups).memberships.is_empty());
        let mapped = map_roles(&settings, &claims(json!({ "teams": "curators" })));
        assert_eq!(
            mapped.memberships,
            vec![membership("NATIONAL", Role::NationalCurator)]
        );
    }

    #[test]
    fn the_person_comes_from_standard_claims() {
        let found = person(
            &claims(
                json!({ "given_name": "Nia", "family_name": "Nurse", "email": "nia.nurse@nhs.net" }),
            ),
            "sub-1",
        );
        assert_eq!(found.display_name, "Nia Nurse");
        assert_eq!(found.username_hint, "nia.nurse@nhs.net");
        let bare = person(&Claims::new(), "555012345678");
        assert_eq!(bare.username_hint, "555012345678");
        assert_eq!(bare.email, None);
    }
}
