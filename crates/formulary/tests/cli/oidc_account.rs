//! API tokens for people who sign in only through an identity provider, and single logout, end
//! to end: `formulary serve` with a real OpenID provider (the `oidc-provider` package,
//! tests/oidc/provider.mjs, with RP-initiated logout) and Debian's chromium
//! (tests/browser/oidc_account.js). Kim, who has no Formulary password, signs in with CIS2-shaped
//! claims, creates an API token on /account and signs out everywhere; the token works on the
//! API and with `formulary login --token-stdin`; she signs in again (the provider asks who she
//! is: its session ended with Formulary's), revokes the token, and it is refused. Tokens of a
//! disabled or role-less account are refused too. Run on SQLite and PostgreSQL.

use std::io::Write;
use std::process::{Output, Stdio};

use serde_json::{json, Value};

use crate::browser::{run_script, PASSWORD};
use crate::formulary_cli::{free_port, text, Workspace};
use crate::oidc::{api_token, nrbac, start_provider};

const SECRET: &str = "cis2-client-secret-for-tokens-5d1e";

/// Calls the API: the status and the JSON answer.
fn api(base: &str, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("{base}/api/v1{path}");
        let request = match method {
            "GET" => client.get(url),
            "DELETE" => client.delete(url),
            _ => client.post(url),
        };
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let answer = request.bearer_auth(token).send().await.expect("answer");
        let status = answer.status().as_u16();
        (status, answer.json().await.unwrap_or(Value::Null))
    })
}

crate::on_both_databases!(fn a_person_who_signs_in_only_through_an_identity_provider_uses_the_api_with_a_token_from_their_account_page);

fn a_person_who_signs_in_only_through_an_identity_provider_uses_the_api_with_a_token_from_their_account_page(
) {
    let workspace = Workspace::new();
    workspace.ok(&["org", "add", "RJ1", "--name", "Leeds Teaching Hospitals"]);
    workspace.add_user(
        "cora",
        "Cora Curator",
        &["NATIONAL:national-curator"],
        PASSWORD,
    );
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let secret_file = workspace.folder.path().join("cis2-secret");
    std::fs::write(&secret_file, SECRET).expect("secret written");
    let config = format!(
        r#"
[[oidc_providers]]
id = "cis2"
display_name = "NHS Care Identity"
issuer = "{issuer}"
client_id = "formulary"
client_secret_file = "{secret}"
profile = "cis2"
role_map = {{ "R8000" = ["requester"] }}
"#,
        secret = secret_file.display()
    );
    std::fs::write(workspace.folder.path().join("formulary.toml"), config).expect("config");
    let (_server, base) = workspace.serve(&[]);
    let accounts = json!({
        "cis2-kim": {
            "name": "Kim Keyworker",
            "preferred_username": "kim.keyworker",
            "email": "kim.keyworker@nhs.net",
            "nhsid_nrbac_roles": [nrbac("4001", "RJ1", "S8000:G8000:R8000", "Clinical Practitioner Access Role")],
        },
    });
    let (_provider, _) = start_provider(
        &workspace,
        "cis2",
        port,
        SECRET,
        &format!("{base}/sign-in/oidc/cis2/callback"),
        &accounts,
        &[("POST_LOGOUT_REDIRECT_URI", format!("{base}/signed-out"))],
    );
    let backend = format!("{:?}", crate::databases::current()).to_ascii_lowercase();
    let token_file = workspace.folder.path().join("api-token");
    let environment = |case: &str| {
        vec![
            ("OIDC_CASE", case.to_owned()),
            ("TOKEN_FILE", token_file.display().to_string()),
        ]
    };

    // 1. In the browser: sign in through the provider, create an API token, sign out everywhere.
    run_script(
        "oidc_account",
        &format!("oidc-account-create-{backend}"),
        &base,
        &environment("create"),
        3,
    );
    let token = std::fs::read_to_string(&token_file)
        .expect("the script kept the token")
        .trim()
        .to_owned();

    // 2. The token acts as Kim, with her roles, on the API.
    let (status, me) = api(&base, &token, "GET", "/me", None);
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], "Kim Keyworker", "{me}");
    assert_eq!(
        me["memberships"],
        json!([{ "organisation": "RJ1", "role": "requester" }]),
        "{me}"
    );
    let (status, mine) = api(&base, &token, "GET", "/requests?scope=mine", None);
    assert_eq!(status, 200, "{mine}");
    // A gateway token for later: every token of the account follows its state.
    let (status, gateway) = api(
        &base,
        &token,
        "POST",
        "/me/tokens",
        Some(json!({ "name": "pip on the laptop", "scope": "gateway" })),
    );
    assert_eq!(status, 201, "{gateway}");
    let gateway = gateway["token"]
        .as_str()
        .expect("a gateway token")
        .to_owned();
    // A token cannot mint a longer-lived API twin of itself.
    let (status, refused) = api(
        &base,
        &token,
        "POST",
        "/me/tokens",
        Some(json!({ "name": "twin", "scope": "api" })),
    );
    assert_eq!(status, 400, "{refused}");

    // 3. The CLI: `formulary login --token-stdin` keeps the token; then `formulary status` works.
    let credentials = workspace.folder.path().join("credentials.json");
    let cli = |arguments: &[&str], stdin: &str| -> Output {
        let mut child = workspace
            .command(arguments)
            .env("FORMULARY_CREDENTIALS", &credentials)
            .env_remove("FORMULARY_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("formulary runs");
        let mut input = child.stdin.take().expect("stdin");
        input.write_all(stdin.as_bytes()).expect("stdin written");
        drop(input);
        child.wait_with_output().expect("formulary ends")
    };
    let refused = cli(
        &["login", "--server", &base, "--token-stdin"],
        &format!("{gateway}\n"),
    );
    assert!(
        !refused.status.success() && text(&refused.stderr).contains("/account"),
        "a gateway-only token is not an API sign-in: {}",
        text(&refused.stderr)
    );
    assert!(!credentials.exists(), "nothing saved for a refused token");
    let login = cli(
        &["login", "--server", &base, "--token-stdin"],
        &format!("{token}\n"),
    );
    assert!(login.status.success(), "{}", text(&login.stderr));
    assert!(
        text(&login.stdout).contains("Signed in to")
            && text(&login.stdout).contains("Kim Keyworker")
            && text(&login.stdout).contains("requester of RJ1"),
        "{}",
        text(&login.stdout)
    );
    let status = cli(&["status", "--server", &base], "");
    assert!(status.status.success(), "{}", text(&status.stderr));

    // 4. In the browser again: the provider asks who she is (single logout ended its session);
    //    she revokes the token on /account.
    run_script(
        "oidc_account",
        &format!("oidc-account-revoke-{backend}"),
        &base,
        &environment("revoke"),
        2,
    );
    let (status, refused) = api(&base, &token, "GET", "/me", None);
    assert_eq!(status, 401, "a revoked token is refused: {refused}");
    let after = cli(&["status", "--server", &base], "");
    assert!(
        !after.status.success() && text(&after.stderr).contains("revoked"),
        "{}",
        text(&after.stderr)
    );

    // 5. Every token of a disabled or role-less account is refused.
    let curator = api_token(&base, "cora");
    let (status, people) = api(&base, &curator, "GET", "/organisations/RJ1/people", None);
    assert_eq!(status, 200, "{people}");
    let kim = people
        .as_array()
        .expect("people")
        .iter()
        .find(|person| person["display_name"] == "Kim Keyworker")
        .unwrap_or_else(|| panic!("Kim is listed: {people}"))
        .clone();
    assert_eq!(kim["sign_in"], issuer.as_str(), "{kim}");
    assert!(kim["last_sign_in"].is_string(), "{kim}");
    let kim_path = format!("/organisations/RJ1/people/{}", kim["id"].as_str().unwrap());
    assert_eq!(api(&base, &gateway, "GET", "/me", None).0, 200);
    let (status, _) = api(
        &base,
        &curator,
        "POST",
        &format!("{kim_path}/disable"),
        None,
    );
    assert_eq!(status, 200);
    let (status, refused) = api(&base, &gateway, "GET", "/me", None);
    assert_eq!(status, 401, "{refused}");
    assert!(refused.to_string().contains("disabled"), "{refused}");
    let (status, _) = api(&base, &curator, "POST", &format!("{kim_path}/enable"), None);
    assert_eq!(status, 200);
    assert_eq!(api(&base, &gateway, "GET", "/me", None).0, 200);
    let (status, _) = api(
        &base,
        &curator,
        "DELETE",
        &format!("{kim_path}/roles/requester"),
        None,
    );
    assert_eq!(status, 200);
    let (status, refused) = api(&base, &gateway, "GET", "/me", None);
    assert_eq!(status, 401, "{refused}");
    assert!(refused.to_string().contains("no role"), "{refused}");

    // The token's life is in the audit log under Kim's name, and the chain verifies.
    let (status, audit) = api(&base, &curator, "GET", "/audit?limit=1000", None);
    assert_eq!(status, 200);
    let rows = audit.as_array().expect("rows");
    let kim_actor = format!("user:{}", kim["username"].as_str().unwrap());
    for action in ["token.issue", "token.revoke"] {
        assert!(
            rows.iter()
                .any(|row| row["action"] == action && row["actor"] == kim_actor.as_str()),
            "{action} by {kim_actor}: {audit}"
        );
    }
    assert!(
        !audit.to_string().contains(&token) && !audit.to_string().contains(SECRET),
        "no secret in the audit log"
    );
    let verified = workspace.ok(&["audit", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
}
