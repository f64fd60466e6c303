//! The demo's people and requests: one account per role, and requests in every state, made
//! through the same workflow the web pages use, so that a newcomer can click through it.

use formulary_core::request::RequestForm;
use formulary_core::{Membership, OrgCode, Role};
use formulary_server::identity::{hash_password, Principal};
use formulary_server::workflow::{self, DecisionForm, SignOffForm};
use formulary_server::AppState;
use formulary_store::{NewUser, LOCAL_PROVIDER};

const ACTOR: &str = "demo:seed";

/// The password of every demo account (printed when the demo starts; never use it elsewhere).
pub const DEMO_PASSWORD: &str = "formulary-demo";

/// A demo account: username, display name, and roles as (organisation, role).
pub type DemoUser = (&'static str, &'static str, &'static [(&'static str, Role)]);

/// The demo accounts.
pub const DEMO_USERS: [DemoUser; 6] = [
    (
        "ana",
        "Ana Patel (analyst, RJ1)",
        &[("RJ1", Role::Requester)],
    ),
    (
        "rob",
        "Rob Evans (reviewer, RJ1)",
        &[("RJ1", Role::Reviewer)],
    ),
    (
        "aisha",
        "Aisha Khan (approver, RJ1)",
        &[("RJ1", Role::Approver)],
    ),
    (
        "olu",
        "Olu Adeyemi (organisation admin, RJ1)",
        &[("RJ1", Role::OrganisationAdmin)],
    ),
    (
        "nina",
        "Nina Brooks (national curator)",
        &[
            ("NATIONAL", Role::NationalCurator),
            ("NATIONAL", Role::Approver),
        ],
    ),
    (
        "audrey",
        "Audrey Lee (auditor)",
        &[("NATIONAL", Role::Auditor)],
    ),
];

fn form(
    ecosystem: &str,
    name: &str,
    range: &str,
    problem: &str,
    data_class: &str,
    users: u32,
) -> RequestForm {
    RequestForm {
        organisation: "RJ1".to_owned(),
        ecosystem: ecosystem.to_owned(),
        name: name.to_owned(),
        version_range: range.to_owned(),
        problem: problem.to_owned(),
        data_class: data_class.to_owned(),
        environment: "Trust Windows 11 laptop, R 4.4 with RStudio, or Python 3.12 with VS Code"
            .to_owned(),
        alternatives: "Checked the catalogue first; nothing approved does this".to_owned(),
        users: users.to_string(),
        credentials: String::new(),
    }
}

fn sign(stage: &str, verdict: &str, note: &str) -> SignOffForm {
    SignOffForm {
        stage: stage.to_owned(),
        verdict: verdict.to_owned(),
        note: note.to_owned(),
    }
}

fn failed(error: workflow::WorkflowError) -> anyhow::Error {
    anyhow::anyhow!("{}", formulary_server::ApiError::from(error).detail)
}

/// Adds the demo accounts and requests unless accounts exist. Returns true when it did.
pub async fn seed_if_empty(state: &AppState) -> anyhow::Result<bool> {
    let database = &state.database;
    if !database.users().await?.is_empty() {
        return Ok(false);
    }
    // One hash for all: the accounts share the demo password.
    let hash = hash_password(DEMO_PASSWORD).map_err(anyhow::Error::msg)?;
    let mut people = Vec::new();
    for (username, name, roles) in DEMO_USERS {
        let memberships = roles
            .iter()
            .map(|(organisation, role)| {
                Ok(Membership::new(organisation.parse::<OrgCode>()?, *role))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let user = database
            .add_user(
                &NewUser {
                    username: username.to_owned(),
                    display_name: name.to_owned(),
                    email: Some(format!("{username}@example.nhs.uk")),
                    password_hash: Some(hash.clone()),
                    identity_provider: LOCAL_PROVIDER.to_owned(),
                    external_subject: None,
                    memberships,
                },
                ACTOR,
            )
            .await?;
        people.push(Principal::from_user(user));
    }
    let [ana, rob, aisha, _olu, nina, _audrey] = &people[..] else {
        anyhow::bail!("the demo needs its six accounts");
    };

    // Granted at once: dplyr is approved nationally for every version.
    workflow::submit(
        state,
        ana,
        &form(
            "cran",
            "dplyr",
            "",
            "Reshape the weekly A&E attendance extract for the operational dashboard",
            "aggregate",
            6,
        ),
    )
    .await
    .map_err(failed)?;

    // A full review, approved for the trust.
    let janitor = workflow::submit(state, ana, &form("cran", "janitor", "", "Clean column names and find duplicate patient-episode rows in monthly returns before aggregation", "aggregate", 12))
        .await
        .map_err(failed)?;
    for (stage, note) in [
        (
            "basic",
            "Well documented, tested on CRAN, MIT licence, actively maintained",
        ),
        (
            "technical",
            "Pure R; dependencies all in the formulary; installs per user",
        ),
        ("security", "No advisories; no network access at runtime"),
    ] {
        workflow::sign_off(state, rob, janitor.id, &sign(stage, "passed", note))
            .await
            .map_err(failed)?;
    }
    workflow::decide(
        state,
        aisha,
        janitor.id,
        &DecisionForm {
            outcome: "approved".to_owned(),
            reason: "Small, well-maintained cleaning helpers; reviewed at all three stages"
                .to_owned(),
            mentor: "Ana Patel (Performance team)".to_owned(),
            ..DecisionForm::default()
        },
    )
    .await
    .map_err(failed)?;

    // Rejected, with a reason others can reuse.
    let streamlit = workflow::submit(
        state,
        ana,
        &form(
            "pypi",
            "streamlit",
            "",
            "Share an interactive waiting-list explorer with service managers",
            "personal",
            40,
        ),
    )
    .await
    .map_err(failed)?;
    workflow::comment(state, rob, streamlit.id, "Would the dashboard show patient-level rows? Streamlit serves pages from your laptop to anyone who can reach it.").await.map_err(failed)?;
    workflow::comment(
        state,
        ana,
        streamlit.id,
        "Yes, filtered by clinician. I had not thought about it being reachable.",
    )
    .await
    .map_err(failed)?;
    workflow::decide(
        state,
        nina,
        streamlit.id,
        &DecisionForm {
            outcome: "rejected".to_owned(),
            reason: "Runs a web server on the analyst's machine with patient-level data; publish through the trust's Posit Connect instead".to_owned(),
            ..DecisionForm::default()
        },
    )
    .await
    .map_err(failed)?;

    // In review, with a question in the thread.
    let expectations = workflow::submit(
        state,
        ana,
        &form(
            "pypi",
            "great-expectations",
            ">=1",
            "Automated data-quality checks on the SUS extract before it feeds the capacity model",
            "personal",
            4,
        ),
    )
    .await
    .map_err(failed)?;
    workflow::sign_off(
        state,
        rob,
        expectations.id,
        &sign(
            "basic",
            "concerns",
            "Large dependency tree (over 60 packages); Apache-2.0; active",
        ),
    )
    .await
    .map_err(failed)?;
    workflow::comment(
        state,
        rob,
        expectations.id,
        "Could pandera do the job? It is much smaller.",
    )
    .await
    .map_err(failed)?;

    // Just submitted.
    workflow::submit(state, ana, &form("cran", "tidymodels", "", "Fit and validate a readmission-risk model for the discharge team, with cross-validation", "clinical", 3))
        .await
        .map_err(failed)?;
    Ok(true)
}
