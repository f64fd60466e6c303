//! `formulary doctor`: checks, for each client `formulary setup` configured, that the client
//! itself would use the organisation's view with a token the gateway accepts, asking the client
//! where it can (`pip config get`, `npm config get`, R's own `available.packages()` through its
//! configured download method) and making the request the client makes with the credential it
//! would send. Each problem comes with what to do. Exit status 1 when something needs fixing.

use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;

use super::setup::{on_path, Places};

/// `formulary doctor`.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {}

/// One check's outcome.
struct Finding {
    subject: &'static str,
    problem: bool,
    text: String,
}

fn ok(subject: &'static str, text: impl Into<String>) -> Finding {
    Finding {
        subject,
        problem: false,
        text: text.into(),
    }
}

fn fix(subject: &'static str, text: impl Into<String>) -> Finding {
    Finding {
        subject,
        problem: true,
        text: text.into(),
    }
}

/// Runs a client command with a time limit, returning its standard output when it succeeds.
fn ask(program: &str, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|error| format!("could not run {program}: {error}"))?;
    let started = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > Duration::from_secs(120) => {
                let _ = child.kill();
                return Err(format!("{program} did not answer within 2 minutes"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(error) => return Err(error.to_string()),
        }
    }
    let output = child
        .wait_with_output()
        .map_err(|error| error.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        let error = String::from_utf8_lossy(&output.stderr);
        Err(error
            .lines()
            .rev()
            .find(|line| !line.trim().is_empty())
            .unwrap_or("failed")
            .trim()
            .to_owned())
    }
}

/// The password a netrc file gives a host.
fn netrc_password(text: &str, host: &str) -> Option<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let start = words
        .windows(2)
        .position(|pair| pair[0] == "machine" && pair[1] == host)?;
    let rest = &words[start + 2..];
    let end = rest
        .iter()
        .position(|word| matches!(*word, "machine" | "default"))
        .unwrap_or(rest.len());
    rest[..end]
        .windows(2)
        .find(|pair| pair[0] == "password")
        .map(|pair| pair[1].to_owned())
}

fn override_variables(names: &[&str], expected: &str) -> Vec<String> {
    names
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|value| (name, value)))
        .filter(|(_, value)| !value.is_empty() && !value.starts_with(expected))
        .map(|(name, value)| format!("{name} is set ({}), which takes precedence over the settings setup wrote: unset it", redact(&value)))
        .collect()
}

/// A URL without its password, for messages.
fn redact(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("****"));
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

async fn check_token(
    server: &url::Url,
    view: &url::Url,
    token: &str,
) -> anyhow::Result<Vec<Finding>> {
    let client = super::client::http_client()?;
    let again = format!("create a new token for package clients at {server}account, then run `formulary setup --server {server}`");
    let me = match client.get(server.join("api/v1/me")?).bearer_auth(token).send().await {
        Err(error) => return Ok(vec![fix("server", format!("cannot reach {server} ({error}); check your network or VPN, and that the address is right"))]),
        Ok(response) if response.status() == reqwest::StatusCode::UNAUTHORIZED => {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            return Ok(vec![fix("token", format!("the server refuses the token ({}): {again}", body["title"].as_str().unwrap_or("invalid")))]);
        }
        Ok(response) => response.json::<Value>().await.unwrap_or(Value::Null),
    };
    let mut findings = vec![ok(
        "token",
        format!("belongs to {}", me["name"].as_str().unwrap_or("you")),
    )];
    let index = view.join("pypi/simple/")?;
    match client.get(index.clone()).basic_auth("formulary", Some(token)).send().await {
        Ok(response) if response.status().is_success() => findings.push(ok("gateway", format!("{index} answers"))),
        Ok(response) => findings.push(fix("gateway", format!("{index} answers {}; if the organisation code is wrong, run setup again with --org CODE", response.status()))),
        Err(error) => findings.push(fix("gateway", format!("cannot reach {index}: {error}"))),
    }
    Ok(findings)
}

fn check_netrc(places: &Places, host: &str, token: &str) -> Finding {
    let path = places.netrc();
    match std::fs::read_to_string(&path).ok().and_then(|text| netrc_password(&text, host)) {
        Some(password) if password == token => ok("netrc", format!("{} holds the token for {host}", places.show(&path))),
        Some(_) => fix("netrc", format!("{} holds another password for {host}: run `formulary setup` again", places.show(&path))),
        None => fix("netrc", format!("{} has no entry for {host}, so pip, uv and R send no token: run `formulary setup` again", places.show(&path))),
    }
}

fn check_pip(expected: &str) -> Vec<Finding> {
    let program = ["pip", "pip3"].into_iter().find(|program| on_path(program));
    let Some(program) = program else {
        return vec![ok("pip", "not found on PATH; nothing to check")];
    };
    let mut findings: Vec<Finding> = override_variables(
        &["PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE"],
        expected,
    )
    .into_iter()
    .map(|text| fix("pip", text))
    .collect();
    match ask(program, &["config", "get", "global.index-url"]) {
        Ok(value) if value == expected => findings.push(ok("pip", format!("uses {expected}"))),
        Ok(value) => findings.push(fix("pip", format!("uses {} instead of {expected}; another pip configuration file (site or virtual environment) wins: run `pip config debug` to see which, or run `formulary setup` again", redact(&value)))),
        Err(error) => findings.push(fix("pip", format!("has no index-url from Formulary ({error}); run `formulary setup` again"))),
    }
    findings
}

fn check_uv(places: &Places, expected: &str) -> Vec<Finding> {
    if !on_path("uv") {
        return vec![ok("uv", "not found on PATH; nothing to check")];
    }
    let mut findings: Vec<Finding> = override_variables(
        &[
            "UV_INDEX_URL",
            "UV_DEFAULT_INDEX",
            "UV_INDEX",
            "UV_EXTRA_INDEX_URL",
        ],
        expected,
    )
    .into_iter()
    .map(|text| fix("uv", text))
    .collect();
    if std::env::var_os("UV_NO_CONFIG").is_some() {
        findings.push(fix(
            "uv",
            "UV_NO_CONFIG is set, so uv ignores uv.toml: unset it",
        ));
    }
    let path = places.uv();
    let configured = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|table| {
            table
                .get("index")?
                .as_array()?
                .iter()
                .find(|index| index.get("default").and_then(toml::Value::as_bool) == Some(true))?
                .get("url")?
                .as_str()
                .map(str::to_owned)
        });
    match configured {
        Some(url) if url == expected => findings.push(ok(
            "uv",
            format!("{} makes {expected} the default index", places.show(&path)),
        )),
        Some(url) => findings.push(fix(
            "uv",
            format!(
                "the default index in {} is {}: run `formulary setup` again",
                places.show(&path),
                redact(&url)
            ),
        )),
        None => findings.push(fix(
            "uv",
            format!(
                "{} names no default index: run `formulary setup` again",
                places.show(&path)
            ),
        )),
    }
    findings
}

fn check_r(expected: &str) -> Vec<Finding> {
    if !on_path("Rscript") {
        return vec![ok("R", "not found on PATH; nothing to check")];
    }
    let code = "cat(getOption('repos')[['CRAN']], getOption('download.file.method', 'libcurl'), sep = '\\n'); cat(nrow(available.packages()), '\\n')";
    match ask("Rscript", &["-e", code]) {
        Ok(answer) => {
            let lines: Vec<&str> = answer.lines().map(str::trim).collect();
            match lines.as_slice() {
                [repository, method, count, ..] if *repository == expected && *count != "0" => vec![ok("R", format!("installs from {expected} (download method {method}); it lists {count} packages"))],
                [repository, ..] if *repository != expected => vec![fix("R", format!("uses {} instead of {expected}: another .Rprofile (in the project folder, or R_PROFILE_USER) wins, or setup was undone; run `formulary setup` again", redact(repository)))],
                _ => vec![fix("R", format!("reaches {expected} but lists no packages; check the token with `formulary doctor` after `formulary setup`"))],
            }
        }
        Err(error) => vec![fix(
            "R",
            format!("could not list packages from {expected}: {error}"),
        )],
    }
}

fn check_npm(places: &Places, expected: &str, token: &str) -> Vec<Finding> {
    if !on_path("npm") {
        return vec![ok("npm", "not found on PATH; nothing to check")];
    }
    let mut findings = Vec::new();
    match ask("npm", &["config", "get", "registry"]) {
        Ok(value) if value == expected => findings.push(ok("npm", format!("uses {expected}"))),
        Ok(value) => findings.push(fix("npm", format!("uses {} instead of {expected}: a project .npmrc or NPM_CONFIG_REGISTRY wins, or run `formulary setup` again", redact(&value)))),
        Err(error) => findings.push(fix("npm", format!("could not ask npm its registry: {error}"))),
    }
    let holds = std::fs::read_to_string(places.npmrc()).is_ok_and(|text| {
        text.lines()
            .any(|line| line.ends_with(&format!(":_authToken={token}")))
    });
    if !holds {
        findings.push(fix(
            "npm",
            format!(
                "{} holds no token for the registry: run `formulary setup` again",
                places.show(&places.npmrc())
            ),
        ));
    }
    findings
}

/// `formulary doctor`.
pub(crate) async fn run(_args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let places = Places::current()?;
    let saved_path = places.formulary().join("gateway.json");
    let Ok(text) = std::fs::read_to_string(&saved_path) else {
        println!("Formulary is not set up here ({} is missing). Run `formulary setup --server https://…` first.", places.show(&saved_path));
        return Ok(ExitCode::from(1));
    };
    let saved: Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is damaged; run `formulary setup` again",
            saved_path.display()
        )
    })?;
    let server = url::Url::parse(saved["server"].as_str().unwrap_or(""))
        .context("the saved server address is not a URL; run `formulary setup` again")?;
    let view = url::Url::parse(saved["view"].as_str().unwrap_or(""))
        .context("the saved view is not a URL; run `formulary setup` again")?;
    let token = saved["token"].as_str().unwrap_or("").to_owned();
    let clients: Vec<String> = saved["clients"]
        .as_array()
        .map(|clients| {
            clients
                .iter()
                .filter_map(|client| client.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let host = view.host_str().unwrap_or("").to_owned();
    println!("Checking the package clients set up for {view}");
    let mut findings = check_token(&server, &view, &token).await?;
    let pypi = view.join("pypi/simple/")?.to_string();
    if clients
        .iter()
        .any(|client| matches!(client.as_str(), "pip" | "uv" | "r" | "conda"))
    {
        findings.push(check_netrc(&places, &host, &token));
    }
    for client in &clients {
        findings.extend(match client.as_str() {
            "pip" => check_pip(&pypi),
            "uv" => check_uv(&places, &pypi),
            "r" => check_r(view.join("cran")?.as_str()),
            "npm" => check_npm(&places, view.join("npm/")?.as_str(), &token),
            _ => Vec::new(),
        });
    }
    let problems = findings.iter().filter(|finding| finding.problem).count();
    for finding in &findings {
        println!(
            "  {:<4} {:<8} {}",
            if finding.problem { "FIX" } else { "ok" },
            finding.subject,
            finding.text
        );
    }
    if problems == 0 {
        println!("Everything works: these clients install through Formulary.");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{problems} thing(s) to fix; each line says how.");
        Ok(ExitCode::from(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netrc_passwords_are_found_per_machine() {
        let text = "machine a.example login x password one\nmachine f.example\n  login formulary\n  password frm_2\ndefault login y password three\n";
        assert_eq!(netrc_password(text, "f.example").as_deref(), Some("frm_2"));
        assert_eq!(netrc_password(text, "a.example").as_deref(), Some("one"));
        assert_eq!(netrc_password(text, "b.example"), None);
    }

    #[test]
    fn passwords_are_hidden_in_messages() {
        assert_eq!(
            redact("https://u:frm_1@h.example/simple/"),
            "https://u:****@h.example/simple/"
        );
        assert_eq!(redact("https://h.example/"), "https://h.example/");
    }
}
