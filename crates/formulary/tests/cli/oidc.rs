//! Signing in with NHS identities, end to end: `formulary serve` configured with three OpenID
//! providers — two real ones (the certified `oidc-provider` package from npm, run from
//! tests/oidc/provider.mjs), one with CIS2-shaped accounts and one with Entra-shaped accounts,
//! and a third that is down — and Debian's chromium driven by tests/browser/oidc.js through
//! the whole authorisation-code flow (PKCE S256, state, nonce), single logout (RP-initiated, and
//! a provider without it), and the refusals. Then the
//! records are checked: accounts linked by (issuer, subject), roles added and removed by the
//! provider and audited, failures audited, no client secret anywhere, the chain intact.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::browser::{node_folder, run_script, PASSWORD};
use crate::formulary_cli::{free_port, wait_for_service, Running, Workspace};

const CIS2_SECRET: &str = "cis2-client-secret-never-logged-7f3a";
const ENTRA_SECRET: &str = "entra-client-secret-never-logged-91c2";

/// Starts tests/oidc/provider.mjs on `port` with `accounts` (written to a file, returned) and
/// extra environment (`POST_LOGOUT_REDIRECT_URI`, `NO_LOGOUT`).
pub(crate) fn start_provider(
    workspace: &Workspace,
    name: &str,
    port: u16,
    secret: &str,
    redirect: &str,
    accounts: &Value,
    extra: &[(&str, String)],
) -> (Running, std::path::PathBuf) {
    let folder = node_folder("tests/oidc", "oidc-provider");
    let file = workspace
        .folder
        .path()
        .join(format!("{name}-accounts.json"));
    std::fs::write(&file, serde_json::to_string_pretty(accounts).expect("JSON")).expect("written");
    let child = Command::new("node")
        .arg(folder.join("provider.mjs"))
        .env("PORT", port.to_string())
        .env("ISSUER", format!("http://127.0.0.1:{port}"))
        .env("CLIENT_ID", "formulary")
        .env("CLIENT_SECRET", secret)
        .env("REDIRECT_URI", redirect)
        .env("ACCOUNTS_FILE", &file)
        .envs(extra.iter().map(|(name, value)| (*name, value.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node runs the provider");
    let mut running = Running(child);
    wait_for_service(
        &mut running.0,
        port,
        "the OpenID provider (node provider.mjs)",
    );
    (running, file)
}

/// One NHS role as CIS2 lists it in `nhsid_nrbac_roles`.
pub(crate) fn nrbac(
    person_roleid: &str,
    org_code: &str,
    role_code: &str,
    role_name: &str,
) -> Value {
    json!({
        "person_orgid": format!("org-{person_roleid}"),
        "person_roleid": person_roleid,
        "org_code": org_code,
        "role_code": role_code,
        "role_name": role_name,
        "activities": ["Receive Self Claimed LR Alerts"],
        "activity_codes": ["B0172"],
    })
}

/// Calls the API with a token.
fn api_get(base: &str, token: &str, path: &str) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let answer = client
            .get(format!("{base}/api/v1{path}"))
            .bearer_auth(token)
            .send()
            .await
            .expect("answer");
        assert!(
            answer.status().is_success(),
            "GET {path}: {}",
            answer.status()
        );
        answer.json().await.expect("JSON")
    })
}

/// A personal API token for a local account, from `POST /api/v1/session/token`.
pub(crate) fn api_token(base: &str, username: &str) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let answer: Value = reqwest::Client::new()
            .post(format!("{base}/api/v1/session/token"))
            .json(&json!({ "username": username, "password": PASSWORD }))
            .send()
            .await
            .expect("login")
            .json()
            .await
            .expect("JSON");
        answer["token"].as_str().expect("a token").to_owned()
    })
}

crate::on_both_databases!(fn people_sign_in_through_real_openid_providers_with_cis2_and_entra_claims);

fn people_sign_in_through_real_openid_providers_with_cis2_and_entra_claims() {
    let workspace = Workspace::new();
    workspace.ok(&["org", "add", "RJ1", "--name", "Leeds Teaching Hospitals"]);
    workspace.add_user("ana", "Ana Analyst", &["RJ1:requester"], PASSWORD);
    workspace.add_user("audrey", "Audrey Auditor", &["NATIONAL:auditor"], PASSWORD);
    // An account whose username is what the CIS2 person will ask for: it must never be linked.
    workspace.add_user("nia.nurse", "Someone Else", &["RJ1:requester"], PASSWORD);

    let (cis2_port, entra_port, down_port) = (free_port(), free_port(), free_port());
    let cis2_issuer = format!("http://127.0.0.1:{cis2_port}");
    let entra_issuer = format!("http://127.0.0.1:{entra_port}");
    let secret_file = workspace.folder.path().join("cis2-secret");
    std::fs::write(&secret_file, format!("{CIS2_SECRET}\n")).expect("secret written");
    let config = format!(
        r#"
[[oidc_providers]]
id = "cis2"
display_name = "NHS Care Identity"
issuer = "{cis2_issuer}"
client_id = "formulary"
client_secret_file = "{secret}"
profile = "cis2"
scopes = ["openid", "profile", "email", "nationalrbacaccess", "associatedorgs", "selectedrole"]
role_map = {{ "R8000" = ["requester"], "S0080:G0450:R5080" = ["reviewer"] }}

[[oidc_providers]]
id = "entra"
display_name = "Microsoft Entra ID"
issuer = "{entra_issuer}"
client_id = "formulary"
client_secret_env = "TEST_ENTRA_SECRET"
profile = "entra"

[[oidc_providers]]
id = "offline"
display_name = "Offline Provider"
issuer = "http://127.0.0.1:{down_port}"
client_id = "formulary"
profile = "generic"
timeout_seconds = 2
"#,
        secret = secret_file.display()
    );
    std::fs::write(workspace.folder.path().join("formulary.toml"), config).expect("config");
    let (_server, base) = workspace.serve(&[("TEST_ENTRA_SECRET", ENTRA_SECRET.to_owned())]);

    let cis2_accounts = json!({
        "cis2-nia": {
            "name": "Nia Nurse",
            "given_name": "Nia",
            "family_name": "Nurse",
            "preferred_username": "nia.nurse",
            "email": "nia.nurse@nhs.net",
            "email_verified": true,
            "nhsid_useruid": "555012345678",
            "nhsid_nrbac_roles": [
                nrbac("1001", "RJ1", "S8000:G8000:R8000", "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\""),
                nrbac("1002", "RJ1", "S0080:G0450:R5080", "\"Admin & Clerical\":\"Information Governance\":\"Information Governance Lead\""),
                nrbac("1003", "ZZZ9", "S8000:G8000:R8000", "\"Clinical\":\"Clinical Provision\":\"Clinical Practitioner Access Role\""),
            ],
            "nhsid_user_orgs": [
                { "org_code": "RJ1", "org_name": "LEEDS TEACHING HOSPITALS NHS TRUST" },
                { "org_code": "ZZZ9", "org_name": "A TRUST FORMULARY DOES NOT KNOW" },
            ],
        },
        "cis2-sam": {
            "name": "Sam Selected",
            "preferred_username": "sam",
            "nhsid_nrbac_roles": [
                nrbac("3001", "RJ1", "S8000:G8000:R8000", "Clinical Practitioner Access Role"),
                nrbac("3002", "RJ1", "S0080:G0450:R5080", "Information Governance Lead"),
            ],
            "selected_roleid": "3002",
        },
        "cis2-uma": {
            "name": "Uma Unknown",
            "preferred_username": "uma",
            "nhsid_nrbac_roles": [nrbac("2001", "ZZZ9", "S8000:G8000:R8000", "Clinical Practitioner Access Role")],
        },
    });
    let entra_accounts = json!({
        "entra-eve": {
            "name": "Eve Entra",
            "preferred_username": "eve@trust.nhs.uk",
            "email": "eve@trust.nhs.uk",
            "roles": ["Formulary.Approver.RJ1", "Formulary.NationalCurator.NATIONAL"],
        },
    });
    let (_cis2, cis2_file) = start_provider(
        &workspace,
        "cis2",
        cis2_port,
        CIS2_SECRET,
        &format!("{base}/sign-in/oidc/cis2/callback"),
        &cis2_accounts,
        &[("POST_LOGOUT_REDIRECT_URI", format!("{base}/signed-out"))],
    );
    let (_entra, _) = start_provider(
        &workspace,
        "entra",
        entra_port,
        ENTRA_SECRET,
        &format!("{base}/sign-in/oidc/entra/callback"),
        &entra_accounts,
        // A provider without RP-initiated logout: signing out ends Formulary's session only.
        &[("NO_LOGOUT", "1".to_owned())],
    );

    let environment = [
        ("CIS2_ISSUER", cis2_issuer.clone()),
        ("ENTRA_ISSUER", entra_issuer.clone()),
        ("ACCOUNTS_FILE", cis2_file.display().to_string()),
    ];
    // Screenshots per backend: the SQLite and PostgreSQL runs may go on at the same time.
    let backend = format!("{:?}", crate::databases::current()).to_ascii_lowercase();
    run_script("oidc", &format!("oidc-{backend}"), &base, &environment, 10);

    // The accounts: linked by (issuer, subject), never to the local nia.nurse.
    let listed = workspace.ok(&["admin", "user", "list"]);
    let line = |name: &str| {
        listed
            .lines()
            .find(|line| line.contains(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{listed}"))
            .to_owned()
    };
    assert!(line("Someone Else").contains("RJ1:requester"), "{listed}");
    let nia = line("Nia Nurse");
    assert!(
        nia.starts_with("nia.nurse-2")
            && nia.contains("RJ1:requester")
            && !nia.contains("reviewer"),
        "a new account, requester only after the provider dropped the reviewer role: {nia}"
    );
    let eve = line("Eve Entra");
    assert!(
        eve.contains("RJ1:approver") && !eve.contains("NATIONAL"),
        "{eve}"
    );
    assert!(
        !listed.contains("Uma"),
        "no account without a role: {listed}"
    );
    let sam = line("Sam Selected");
    assert!(
        sam.contains("RJ1:reviewer") && !sam.contains("requester"),
        "only the selected role: {sam}"
    );

    // Everything is audited, and no secret is anywhere in the audit log.
    let auditor = api_token(&base, "audrey");
    let audit = api_get(&base, &auditor, "/audit?limit=500");
    let rows = audit.as_array().expect("rows");
    let all = audit.to_string();
    for secret in [CIS2_SECRET, ENTRA_SECRET] {
        assert!(!all.contains(secret), "a client secret in the audit log");
    }
    let has = |action: &str, actor: &str, detail: &str| {
        rows.iter().any(|row| {
            row["action"] == action
                && row["actor"].as_str().unwrap_or("").contains(actor)
                && row.to_string().contains(detail)
        })
    };
    assert!(
        has("user.add", "oidc:cis2", "cis2-nia"),
        "the CIS2 account's creation, with its issuer and subject: {all}"
    );
    assert!(has("role.grant", "oidc:cis2", "reviewer"), "{all}");
    assert!(
        has(
            "role.revoke",
            "oidc:cis2",
            "no longer given by the identity provider"
        ),
        "the removed role: {all}"
    );
    assert!(has("role.grant", "oidc:entra", "approver"), "{all}");
    assert!(
        has(
            "user.sign-out",
            "user-id:",
            "\"identity_provider\":\"cis2\""
        ),
        "a sign-out through the provider is audited with it: {all}"
    );
    assert!(!all.contains("eyJ"), "no ID token (a JWT) in the audit log");
    for reason in [
        "state mismatch",
        "access_denied",
        "already used",
        "no role",
        "unreachable",
    ] {
        assert!(
            has("user.sign-in-failed", "anonymous", reason),
            "the refusal '{reason}' is audited: {all}"
        );
    }

    // A disabled account stays disabled whatever the provider says.
    let username = nia
        .split_whitespace()
        .next()
        .expect("a username")
        .to_owned();
    workspace.ok(&["admin", "user", "disable", &username]);
    run_script(
        "oidc",
        &format!("oidc-disabled-{backend}"),
        &base,
        &[
            ("OIDC_CASE", "disabled".to_owned()),
            environment[0].clone(),
            environment[1].clone(),
            environment[2].clone(),
        ],
        1,
    );
    let audit = api_get(&base, &auditor, "/audit?limit=500");
    assert!(
        audit.to_string().contains("account disabled in Formulary"),
        "{audit}"
    );
    let after = workspace.ok(&["admin", "user", "list"]);
    assert!(
        after
            .lines()
            .any(|line| line.starts_with(&username) && line.contains("disabled")),
        "{after}"
    );

    let verified = workspace.ok(&["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
}
