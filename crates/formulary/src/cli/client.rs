//! The analyst's side of the CLI, talking to a Formulary server over its JSON API:
//! `formulary login`, `search`, `request` and `status`. The personal token from `login` is kept
//! in a file only its owner can read.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use formulary_core::ComponentVersion;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::output;

/// Where the server is, for commands that talk to one.
#[derive(Debug, Clone, Args)]
pub(crate) struct ServerArgs {
    /// The server's address [default: from `formulary login`, else $FORMULARY_SERVER, else http://127.0.0.1:8080].
    #[arg(long, value_name = "URL")]
    server: Option<String>,
}

/// `formulary login`.
#[derive(Debug, Args)]
pub(crate) struct LoginArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Your username (to sign in with your Formulary password).
    #[arg(long, required_unless_present = "token_stdin")]
    username: Option<String>,
    /// Read the password from standard input instead of asking.
    #[arg(long, conflicts_with = "token_stdin")]
    password_stdin: bool,
    /// Read an API token from standard input instead of signing in with a password: for people
    /// who sign in through their organisation's identity provider, paste a token created on
    /// the server's account page (`/account`, "Use the API with my roles").
    #[arg(long, conflicts_with = "username")]
    token_stdin: bool,
}

/// `formulary search`.
#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Text in the name, e.g. readxl.
    query: String,
    /// Only pypi, cran or generic.
    #[arg(long)]
    ecosystem: Option<String>,
    /// Whose decisions to show [default: the server's default view].
    #[arg(long)]
    org: Option<String>,
}

/// `formulary request`.
#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The tool, as a package URL: pkg:cran/readxl, pkg:pypi/polars@1.2.0, pkg:generic/git.
    purl: String,
    /// The problem to solve and its scope.
    #[arg(long)]
    problem: String,
    /// aggregate, personal or clinical.
    #[arg(long = "data", value_name = "CLASS")]
    data_class: String,
    /// Where it will run, e.g. "Windows laptop, RStudio".
    #[arg(long)]
    environment: String,
    /// How many people will use it.
    #[arg(long)]
    users: u32,
    /// Versions, e.g. ">=1.4.2" [default: the purl's version, else any].
    #[arg(long)]
    range: Option<String>,
    /// Alternatives considered.
    #[arg(long, default_value = "")]
    alternatives: String,
    /// Credentials or APIs it needs.
    #[arg(long, default_value = "")]
    credentials: String,
    /// The organisation it is for [default: your own].
    #[arg(long)]
    org: Option<String>,
}

/// `formulary status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// A request number, to see its timeline; without one, lists your requests.
    id: Option<i64>,
}

/// What `formulary login` keeps.
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    server: String,
    token: String,
    username: String,
}

fn credentials_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FORMULARY_CREDENTIALS") {
        return Ok(PathBuf::from(path));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("APPDATA").map(PathBuf::from))
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))
        .context("cannot tell where to keep your sign-in: set HOME or FORMULARY_CREDENTIALS")?;
    Ok(base.join("formulary").join("credentials.json"))
}

fn load_saved() -> Option<Saved> {
    let text = std::fs::read_to_string(credentials_path().ok()?).ok()?;
    serde_json::from_str(&text).ok()
}

fn save(saved: &Saved) -> anyhow::Result<PathBuf> {
    let path = credentials_path()?;
    if let Some(folder) = path.parent() {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("could not create {}", folder.display()))?;
    }
    let text = serde_json::to_string_pretty(saved)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&path)
        .with_context(|| format!("could not write {}", path.display()))?;
    std::io::Write::write_all(&mut file, text.as_bytes())?;
    Ok(path)
}

/// The personal API token `formulary login` kept for a server, if any.
pub(crate) fn saved_login(server: &str) -> Option<String> {
    load_saved()
        .filter(|saved| saved.server.trim_end_matches('/') == server.trim_end_matches('/'))
        .map(|saved| saved.token)
}

fn server_url(args: &ServerArgs, saved: Option<&Saved>) -> String {
    args.server
        .clone()
        .or_else(|| std::env::var("FORMULARY_SERVER").ok())
        .or_else(|| saved.map(|saved| saved.server.clone()))
        .unwrap_or_else(|| "http://127.0.0.1:8080".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// The HTTP client every client-side command uses.
pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    client()
}

pub(super) fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .user_agent(concat!("formulary-cli/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(30))
        .build()?)
}

/// The name of this computer (`HOSTNAME`, `COMPUTERNAME`), for naming the tokens it is given.
pub(crate) fn this_computer() -> String {
    std::env::var("HOSTNAME")
        .or_else(|_| std::env::var("COMPUTERNAME"))
        .unwrap_or_else(|_| "this computer".to_owned())
}

/// Sends a request and returns its status and JSON body (`Null` when the body is not JSON);
/// the error says the server at `server` could not be reached.
pub(crate) async fn send_json(
    request: reqwest::RequestBuilder,
    server: &str,
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let response = request
        .send()
        .await
        .with_context(|| format!("could not reach the Formulary server at {server}; check the address (--server) and that it is running"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Ok((status, body))
}

/// Sends a request and returns its JSON, or the server's problem description as the error.
pub(super) async fn exchange(
    request: reqwest::RequestBuilder,
    server: &str,
) -> anyhow::Result<Value> {
    let (status, body) = send_json(request, server).await?;
    if status.is_success() {
        return Ok(body);
    }
    let title = body["title"].as_str().unwrap_or("The server refused");
    let detail = body["detail"].as_str().unwrap_or("");
    if status == reqwest::StatusCode::UNAUTHORIZED {
        bail!("{title}: {detail} Run `formulary login --username …` first.");
    }
    bail!("{title} ({status}): {detail}")
}

pub(super) fn signed_in(args: &ServerArgs) -> anyhow::Result<(String, String)> {
    let saved = load_saved();
    let server = server_url(args, saved.as_ref());
    let token = std::env::var("FORMULARY_TOKEN")
        .ok()
        .or_else(|| saved.filter(|saved| saved.server == server).map(|saved| saved.token))
        .with_context(|| format!("you are not signed in to {server}; run `formulary login --server {server} --username …`"))?;
    Ok((server, token))
}

pub(crate) async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let server = server_url(&args.server, load_saved().as_ref());
    let Some(username) = args.username.clone().filter(|_| !args.token_stdin) else {
        return login_with_token(&server).await;
    };
    let password = if args.password_stdin || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text.lines().next().unwrap_or("").to_owned()
    } else {
        rpassword::prompt_password(format!("Password for {username} at {server}: "))?
    };
    let host = this_computer();
    let body = json!({ "username": username, "password": password, "name": format!("formulary login on {host}") });
    let answer = exchange(
        client()?
            .post(format!("{server}/api/v1/session/token"))
            .json(&body),
        &server,
    )
    .await?;
    let token = answer["token"]
        .as_str()
        .context("the server's answer had no token")?
        .to_owned();
    let path = save(&Saved {
        server: server.clone(),
        token,
        username: username.clone(),
    })?;
    println!(
        "Signed in to {server} as {} ({}). The token is kept in {} until {}.",
        answer["user"]["name"].as_str().unwrap_or(&username),
        roles_of(&answer["user"]),
        path.display(),
        answer["expires_at"].as_str().unwrap_or("it is revoked")
    );
    Ok(ExitCode::SUCCESS)
}

/// "requester of RJ1, reviewer of RJ1" from a `Whoami`, or "no roles yet".
fn roles_of(whoami: &Value) -> String {
    let roles: Vec<String> = whoami["memberships"]
        .as_array()
        .map(|memberships| {
            memberships
                .iter()
                .map(|membership| {
                    format!(
                        "{} of {}",
                        membership["role"].as_str().unwrap_or("?"),
                        membership["organisation"].as_str().unwrap_or("?")
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    if roles.is_empty() {
        "no roles yet".to_owned()
    } else {
        roles.join(", ")
    }
}

/// `formulary login --token-stdin`: checks that the pasted token is a working API token (not
/// one that only reads the package gateway) and keeps it like a password sign-in's token.
async fn login_with_token(server: &str) -> anyhow::Result<ExitCode> {
    let token = if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        rpassword::prompt_password(format!("Paste your API token from {server}/account: "))?
    } else {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text.lines().next().unwrap_or("").to_owned()
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("no token on standard input. Create an API token on {server}/account (\"Use the API with my roles\"), then run `formulary login --server {server} --token-stdin` and paste it, or pipe it in from a file only you can read");
    }
    let http = client()?;
    let answer = http
        .get(format!("{server}/api/v1/me/tokens"))
        .bearer_auth(&token)
        .send()
        .await
        .with_context(|| format!("could not reach the Formulary server at {server}; check the address (--server) and that it is running"))?;
    let status = answer.status();
    if !status.is_success() {
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        bail!(
            "{server} did not accept the token ({status}): {} {} Nothing was saved. Create an API token on {server}/account (\"Use the API with my roles\") and try again.",
            body["title"].as_str().unwrap_or("refused"),
            body["detail"].as_str().unwrap_or("")
        );
    }
    let whoami = exchange(
        http.get(format!("{server}/api/v1/me")).bearer_auth(&token),
        server,
    )
    .await?;
    let name = whoami["name"].as_str().unwrap_or("you").to_owned();
    let username = whoami["username"].as_str().unwrap_or(&name).to_owned();
    let path = save(&Saved {
        server: server.to_owned(),
        token,
        username,
    })?;
    println!(
        "Signed in to {server} as {name} ({}) with the API token you pasted. It is kept in {}; it works until it expires or you revoke it on {server}/account.",
        roles_of(&whoami),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let server = server_url(&args.server, load_saved().as_ref());
    let mut query = vec![("q", args.query.clone())];
    if let Some(ecosystem) = &args.ecosystem {
        query.push(("ecosystem", ecosystem.clone()));
    }
    if let Some(org) = &args.org {
        query.push(("organisation", org.clone()));
    }
    let hits = exchange(
        client()?
            .get(format!("{server}/api/v1/search"))
            .query(&query),
        &server,
    )
    .await?;
    let rows: Vec<Vec<String>> = hits
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|hit| {
                    let statuses: Vec<&str> = hit["statuses"]
                        .as_array()
                        .map(|list| list.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    vec![
                        hit["component"].as_str().unwrap_or("").to_owned(),
                        if statuses.is_empty() {
                            "no entry".to_owned()
                        } else {
                            statuses.join(", ")
                        },
                        hit["open_requests"].to_string(),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if rows.is_empty() {
        println!("Nothing named like '{}' is known to {server}. Request it with `formulary request pkg:…`.", args.query);
    } else {
        output::table(&["COMPONENT", "DECISIONS", "OPEN REQUESTS"], &rows);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn request(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let (server, token) = signed_in(&args.server)?;
    let (component, version) = match args.purl.parse::<ComponentVersion>() {
        Ok(wanted) => (wanted.component, Some(wanted.version.to_string())),
        Err(_) => (args.purl.parse::<formulary_core::Component>()?, None),
    };
    let range = args
        .range
        .clone()
        .or_else(|| version.map(|version| format!("=={version}")))
        .unwrap_or_default();
    let body = json!({
        "organisation": args.org.clone().unwrap_or_default(),
        "ecosystem": component.ecosystem().as_str(),
        "name": component.name.as_str(),
        "version_range": range,
        "problem": args.problem,
        "data_class": args.data_class,
        "environment": args.environment,
        "alternatives": args.alternatives,
        "users": args.users.to_string(),
        "credentials": args.credentials,
    });
    let answer = exchange(
        client()?
            .post(format!("{server}/api/v1/requests"))
            .bearer_auth(&token)
            .json(&body),
        &server,
    )
    .await?;
    let id = answer["id"].as_i64().unwrap_or_default();
    let state = answer["state"].as_str().unwrap_or("submitted");
    if state == "submitted" {
        println!("Request {id} submitted for {}. Follow it with `formulary status {id}` or at {server}/requests/{id}.", component.purl());
    } else {
        println!(
            "Request {id} was granted at once ({state}): {}. Install it through the gateway now.",
            answer["decision"]["reason"]
                .as_str()
                .unwrap_or("an existing entry covers it")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let (server, token) = signed_in(&args.server)?;
    let http = client()?;
    match args.id {
        None => {
            let requests = exchange(
                http.get(format!("{server}/api/v1/requests"))
                    .bearer_auth(&token),
                &server,
            )
            .await?;
            let rows: Vec<Vec<String>> = requests
                .as_array()
                .map(|requests| {
                    requests
                        .iter()
                        .map(|request| {
                            vec![
                                request["id"].to_string(),
                                request["component"].as_str().unwrap_or("").to_owned(),
                                request["range"].as_str().unwrap_or("").to_owned(),
                                request["organisation"].as_str().unwrap_or("").to_owned(),
                                request["state"].as_str().unwrap_or("").to_owned(),
                                request["created_at"]
                                    .as_str()
                                    .unwrap_or("")
                                    .chars()
                                    .take(16)
                                    .collect(),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            if rows.is_empty() {
                println!("You have no requests on {server}.");
            } else {
                output::table(
                    &["ID", "COMPONENT", "RANGE", "ORG", "STATE", "SUBMITTED"],
                    &rows,
                );
            }
        }
        Some(id) => {
            let request = exchange(
                http.get(format!("{server}/api/v1/requests/{id}"))
                    .bearer_auth(&token),
                &server,
            )
            .await?;
            println!(
                "Request {id}: {} {} for {}",
                request["component"].as_str().unwrap_or(""),
                request["range"].as_str().unwrap_or(""),
                request["organisation"].as_str().unwrap_or("")
            );
            println!("State: {}", request["state"].as_str().unwrap_or(""));
            if let Some(reason) = request["decision"]["reason"].as_str() {
                println!(
                    "Decision: {reason} (by {})",
                    request["decision"]["by"].as_str().unwrap_or("?")
                );
            }
            println!("Timeline:");
            for event in request["events"].as_array().into_iter().flatten() {
                let stage = event["stage"]
                    .as_str()
                    .map(|stage| format!(" [{stage}: {}]", event["verdict"].as_str().unwrap_or("")))
                    .unwrap_or_default();
                println!(
                    "  {}  {}  {}{stage}  {}",
                    event["at"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(16)
                        .collect::<String>(),
                    event["actor"]["name"].as_str().unwrap_or(""),
                    event["kind"].as_str().unwrap_or(""),
                    event["body"]
                        .as_str()
                        .unwrap_or("")
                        .lines()
                        .next()
                        .unwrap_or("")
                );
            }
            println!("See it at {server}/requests/{id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
