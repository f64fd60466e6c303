//! `formulary setup`: the analyst's side, with no administrator. Given the server and a token
//! for package clients, it finds the clients installed here and writes their user-level
//! settings to use the person's organisation's view of the gateway; the token goes in files
//! only the person can read (netrc, .npmrc, .yarnrc.yml, and Formulary's own credential file).
//! `--dry-run` prints the exact change; `--undo` puts back what was there; running it twice
//! changes nothing the second time. See docs/self-service.md.

mod device;
mod files;
mod places;
mod record;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::Value;

pub(crate) use places::Places;
use record::Record;

/// `formulary setup`.
#[derive(Debug, Args)]
pub(crate) struct SetupArgs {
    /// The Formulary server, e.g. https://formulary.example.nhs.uk/ [default: $FORMULARY_SERVER].
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Read the token from standard input (otherwise it is asked for, hidden, when there is a terminal).
    #[arg(long)]
    token_stdin: bool,
    /// Sign in with your browser instead of pasting a token: setup prints an address and a short
    /// code to approve while signed in.
    #[arg(long, conflicts_with = "token_stdin")]
    device: bool,
    /// The organisation whose view to use [default: your organisation, from the token].
    #[arg(long, value_name = "CODE")]
    org: Option<String>,
    /// Only these clients (pip, uv, r, npm, yarn, conda), found or not [default: those found here].
    #[arg(long = "client", value_name = "NAME")]
    clients: Vec<String>,
    /// Print the exact change to each file and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Put back every file as it was before `formulary setup` first changed it.
    #[arg(long, conflicts_with_all = ["dry_run", "token_stdin", "device", "org", "clients"])]
    undo: bool,
}

/// The clients setup knows, with the programs that show one is installed.
const CLIENTS: [(&str, &[&str]); 6] = [
    ("pip", &["pip", "pip3", "python3", "python"]),
    ("uv", &["uv"]),
    ("r", &["R", "Rscript"]),
    ("npm", &["npm", "pnpm"]),
    ("yarn", &["yarn"]),
    ("conda", &["conda", "mamba", "micromamba"]),
];

/// One file's change.
pub(crate) struct Change {
    client: &'static str,
    path: PathBuf,
    before: Option<String>,
    after: String,
    /// The file holds the token: written readable only by its owner.
    secret: bool,
    notes: Vec<String>,
}

/// Whether a program is on `PATH`.
pub(crate) fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|folder| {
        let candidate = folder.join(program);
        candidate.is_file() || (cfg!(windows) && folder.join(format!("{program}.exe")).is_file())
    })
}

/// The token for package clients: from standard input with `--token-stdin`; else made with the
/// sign-in `formulary login` kept for this server; else asked for (hidden) on a terminal, or
/// read from standard input.
async fn read_token(args: &SetupArgs, server: &url::Url) -> anyhow::Result<String> {
    if args.device {
        return device::sign_in(server).await;
    }
    if !args.token_stdin {
        if let Some(api_token) = super::client::saved_login(server.as_str()) {
            return token_from_login(server, &api_token).await;
        }
    }
    let token = if args.token_stdin || !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text.lines().next().unwrap_or("").trim().to_owned()
    } else {
        eprintln!("Create a token for package clients at {server}account, then paste it here.");
        rpassword::prompt_password("Token (frm_…, hidden): ")?
            .trim()
            .to_owned()
    };
    if !token.starts_with("frm_") {
        bail!("that is not a Formulary token (they start with frm_); create one for package clients at {server}account and run setup again");
    }
    Ok(token)
}

/// Issues a token for package clients with the person's `formulary login` sign-in, so nothing
/// needs pasting.
async fn token_from_login(server: &url::Url, api_token: &str) -> anyhow::Result<String> {
    let host = super::client::this_computer();
    let (status, body) = super::client::send_json(
        super::client::http_client()?
            .post(server.join("api/v1/me/tokens")?)
            .bearer_auth(api_token)
            .json(&serde_json::json!({ "name": format!("formulary setup on {host}"), "scope": "gateway" })),
        server.as_str(),
    )
    .await?;
    if !status.is_success() {
        bail!(
            "your sign-in from `formulary login` could not create a token for package clients ({status}: {} {}). Sign in again with `formulary login --server {server} --username …`, or paste a token from {server}account with --token-stdin",
            body["title"].as_str().unwrap_or(""),
            body["detail"].as_str().unwrap_or("")
        );
    }
    eprintln!("Created a token for package clients with your `formulary login` sign-in; it lasts 90 days.");
    body["token"]
        .as_str()
        .map(str::to_owned)
        .context("the server's answer had no token")
}

/// The server's base URL with one trailing slash.
fn server_base(args: &SetupArgs) -> anyhow::Result<url::Url> {
    let text = args
        .server
        .clone()
        .or_else(|| std::env::var("FORMULARY_SERVER").ok())
        .context("say which server with --server https://… (the address of your Formulary)")?;
    let mut url = url::Url::parse(text.trim()).with_context(|| {
        format!(
            "'{}' is not a URL; write e.g. https://formulary.example.nhs.uk/",
            text.escape_debug()
        )
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        bail!(
            "give the server address without a user or password; the token is asked for separately"
        );
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// Who the token belongs to, checked with the server (`GET /api/v1/me`).
async fn whoami(server: &url::Url, token: &str) -> anyhow::Result<Value> {
    let (status, body) = super::client::send_json(
        super::client::http_client()?
            .get(server.join("api/v1/me")?)
            .bearer_auth(token),
        server.as_str(),
    )
    .await?;
    if !status.is_success() {
        bail!(
            "the server did not accept the token ({status}): {} {} Create a new token for package clients at {server}account and run setup again.",
            body["title"].as_str().unwrap_or(""),
            body["detail"].as_str().unwrap_or("")
        );
    }
    Ok(body)
}

/// The organisation's view: `--org`, else the person's first organisation other than the
/// national one, else the server's default view.
fn view_url(
    server: &url::Url,
    me: &Value,
    org: Option<&str>,
) -> anyhow::Result<(url::Url, String)> {
    let chosen = org.map(str::to_owned).or_else(|| {
        me["memberships"].as_array().and_then(|memberships| {
            memberships
                .iter()
                .filter_map(|membership| membership["organisation"].as_str())
                .find(|code| *code != "NATIONAL")
                .map(str::to_owned)
        })
    });
    match chosen {
        Some(code) => {
            let code = code.trim().to_ascii_uppercase();
            if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                bail!(
                    "'{}' is not an organisation code (ODS codes such as RJ1)",
                    code.escape_debug()
                );
            }
            Ok((server.join(&format!("o/{code}/"))?, code))
        }
        None => Ok((server.clone(), "the server's default view".to_owned())),
    }
}

/// The ecosystems the server's gateway offers (`GET /gateways.json`); `None` when the server
/// does not say (an older server), and then every client found is configured.
async fn offered_ecosystems(server: &url::Url, token: &str) -> Option<Vec<String>> {
    let response = super::client::http_client()
        .ok()?
        .get(server.join("gateways.json").ok()?)
        .basic_auth("formulary", Some(token))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: Value = response.json().await.ok()?;
    Some(
        body["ecosystems"]
            .as_array()?
            .iter()
            .filter_map(|ecosystem| ecosystem.as_str().map(str::to_owned))
            .collect(),
    )
}

fn read(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error).with_context(|| format!("could not read {}", path.display())),
    }
}

/// Writes a file whole (through a temporary file beside it), readable only by its owner when
/// it holds the token.
pub(crate) fn write_file(path: &Path, text: &str, secret: bool) -> anyhow::Result<()> {
    let folder = path.parent().context("a file path has a folder")?;
    std::fs::create_dir_all(folder)
        .with_context(|| format!("could not create {}", folder.display()))?;
    let mut temporary = tempfile::NamedTempFile::new_in(folder)
        .with_context(|| format!("could not write in {}", folder.display()))?;
    std::io::Write::write_all(&mut temporary, text.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = if secret {
            0o600
        } else {
            std::fs::metadata(path).map_or(0o644, |metadata| metadata.permissions().mode() & 0o777)
        };
        std::fs::set_permissions(temporary.path(), std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    temporary
        .persist(path)
        .with_context(|| format!("could not replace {}", path.display()))?;
    Ok(())
}

/// A file's new text (and notes for the person) from its current text.
type Edit<'a> = dyn Fn(&str) -> anyhow::Result<(String, Vec<String>)> + 'a;

/// Builds every change for the chosen clients.
fn plan(
    places: &Places,
    clients: &[&'static str],
    (server, view): (&url::Url, &url::Url),
    token: &str,
    python_downloads: Option<&str>,
) -> anyhow::Result<Vec<Change>> {
    let host = view
        .host_str()
        .context("the server address has a host")?
        .to_owned();
    let mut changes = Vec::new();
    let mut change = |client: &'static str,
                      path: PathBuf,
                      after: &Edit<'_>,
                      secret: bool|
     -> anyhow::Result<()> {
        let before = read(&path)?;
        let (after, notes) = after(before.as_deref().unwrap_or(""))?;
        changes.push(Change {
            client,
            path,
            before,
            after,
            secret,
            notes,
        });
        Ok(())
    };
    let netrc = places.netrc();
    let uses_netrc = clients
        .iter()
        .any(|client| matches!(*client, "pip" | "uv" | "r" | "conda"));
    if uses_netrc {
        change(
            "netrc",
            netrc.clone(),
            &|text| Ok((files::netrc(text, &host, "formulary", token), Vec::new())),
            true,
        )?;
    }
    let pypi = view.join("pypi/simple/")?.to_string();
    for client in clients {
        match *client {
            "pip" => change(
                "pip",
                places.pip(),
                &|text| {
                    let notes = files::ini_other_indexes(text)
                    .into_iter()
                    .map(|line| format!("keeps `{line}`: packages from there do not pass through Formulary; remove it unless you need it"))
                    .collect();
                    Ok((files::ini_set(text, "global", "index-url", &pypi), notes))
                },
                false,
            )?,
            "uv" => change(
                "uv",
                places.uv(),
                &|text| files::uv_toml(text, &pypi, python_downloads),
                false,
            )?,
            "r" => {
                let cran = view.join("cran")?.to_string();
                let netrc_text = netrc.display().to_string();
                change(
                    "r",
                    places.r_profile(),
                    &|text| Ok((files::r_profile(text, &cran, &netrc_text), Vec::new())),
                    false,
                )?;
            }
            "npm" => {
                let registry = view.join("npm/")?.to_string();
                change(
                    "npm",
                    places.npmrc(),
                    &|text| Ok((files::npmrc(text, &registry, token), Vec::new())),
                    true,
                )?;
            }
            "yarn" => {
                let registry = view.join("npm/")?.to_string();
                change(
                    "yarn",
                    places.yarnrc(),
                    &|text| {
                        Ok((
                            files::yaml_set(
                                text,
                                &[
                                    ("npmRegistryServer", registry.as_str().into()),
                                    ("npmAuthToken", token.into()),
                                    ("npmAlwaysAuth", true.into()),
                                    // Yarn ≥ 4.15 holds new releases a day; the gateway's cooldown, with
                                    // its security fast lane, is the one rule.
                                    ("npmMinimalAgeGate", 0.into()),
                                ],
                            )?,
                            Vec::new(),
                        ))
                    },
                    true,
                )?;
            }
            "conda" => {
                // The token in the channel's path, as anaconda.org has it: conda and mamba mask
                // it in what they print and send it on every platform. They know only letters,
                // digits and `-` in it, so `frm_` is written `frm-` (the server takes both).
                let tokened = channel_base(server, view, token)?;
                let channel = tokened.join("conda/conda-forge")?.to_string();
                change(
                    "conda",
                    places.condarc(),
                    &|text| {
                        Ok((
                            files::yaml_set(
                                text,
                                &[
                                    (
                                        "channels",
                                        serde_yaml::Value::Sequence(vec![channel.as_str().into()]),
                                    ),
                                    ("default_channels", serde_yaml::Value::Sequence(Vec::new())),
                                    ("channel_alias", tokened.join("conda")?.as_str().into()),
                                ],
                            )?,
                            Vec::new(),
                        ))
                    },
                    true,
                )?;
            }
            other => bail!("unknown client {other}"),
        }
    }
    Ok(changes)
}

/// The view's address with the token in the path (`{server}t/frm-…/o/ORG/`), for conda.
fn channel_base(server: &url::Url, view: &url::Url, token: &str) -> anyhow::Result<url::Url> {
    let relative = view
        .as_str()
        .strip_prefix(server.as_str())
        .context("the view is on the server")?;
    let path_token = token.replacen("frm_", "frm-", 1);
    Ok(server.join(&format!("t/{path_token}/{relative}"))?)
}

fn masked(text: &str, token: &str) -> String {
    text.replace(token, "frm_…(token)")
        .replace(&token.replacen("frm_", "frm-", 1), "frm-…(token)")
}

/// `formulary setup`.
pub(crate) async fn run(args: SetupArgs) -> anyhow::Result<ExitCode> {
    let places = Places::current()?;
    if args.undo {
        return record::undo(&places);
    }
    let server = server_base(&args)?;
    let token = read_token(&args, &server).await?;
    let me = whoami(&server, &token).await?;
    let (view, organisation) = view_url(&server, &me, args.org.as_deref())?;
    if let Some(unknown) = args.clients.iter().find(|client| {
        !CLIENTS
            .iter()
            .any(|(name, _)| client.eq_ignore_ascii_case(name))
    }) {
        bail!(
            "'{}' is not a client setup knows; choose among pip, uv, r, npm, yarn, conda",
            unknown.escape_debug()
        );
    }
    let offered = offered_ecosystems(&server, &token).await;
    let mut chosen: Vec<&'static str> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    for (name, programs) in CLIENTS {
        let asked = args
            .clients
            .iter()
            .any(|client| client.eq_ignore_ascii_case(name));
        if !args.clients.is_empty() && !asked {
            continue;
        }
        // uv is set up before it is installed: on a new computer it comes after setup (from
        // `formulary tools install uv`), and its settings file does nothing until then.
        let found = name == "uv" || programs.iter().any(|program| on_path(program));
        if !asked && !found {
            skipped.push(format!("{name} (not found on PATH)"));
            continue;
        }
        let ecosystem = match name {
            "pip" | "uv" => "pypi",
            "r" => "cran",
            "npm" | "yarn" => "npm",
            other => other,
        };
        if let Some(offered) = &offered {
            if !offered.iter().any(|offered| offered == ecosystem) {
                skipped.push(format!("{name} (this server has no {ecosystem} gateway)"));
                continue;
            }
        }
        chosen.push(name);
    }
    // `uv python install` reads the CPython builds the view allows from the gateway.
    let python_downloads = offered
        .as_ref()
        .is_some_and(|offered| offered.iter().any(|offered| offered == "python"))
        .then(|| view.join("python/download-metadata.json"))
        .transpose()?
        .map(|url| url.to_string());
    let changes = plan(
        &places,
        &chosen,
        (&server, &view),
        &token,
        python_downloads.as_deref(),
    )?;
    let credential = places.formulary().join("gateway.json");
    let saved = serde_json::to_string_pretty(&serde_json::json!({
        "server": server.as_str(),
        "view": view.as_str(),
        "organisation": organisation,
        "clients": chosen,
        "token": token,
    }))? + "\n";
    let name = me["name"].as_str().unwrap_or("you");
    println!("Setting up package clients for {name}, with {organisation} at {view}");
    if args.dry_run {
        println!("Dry run: nothing is changed. The token is shown as frm_…(token).");
    }
    let mut record = Record::load(&places)?;
    let mut changed = 0;
    for change in changes.iter().chain(std::iter::once(&Change {
        client: "formulary",
        path: credential.clone(),
        before: read(&credential)?,
        after: saved.clone(),
        secret: true,
        notes: Vec::new(),
    })) {
        let shown = places.show(&change.path);
        if change.before.as_deref() == Some(change.after.as_str()) {
            println!("  {:<9} {shown}: already set up", change.client);
            continue;
        }
        changed += 1;
        if args.dry_run {
            println!(
                "  {:<9} {shown}: would change{}",
                change.client,
                if change.secret {
                    " (readable only by you)"
                } else {
                    ""
                }
            );
            let before = masked(change.before.as_deref().unwrap_or(""), &token);
            let after = masked(&change.after, &token);
            let diff = similar::TextDiff::from_lines(&before, &after);
            print!(
                "{}",
                diff.unified_diff()
                    .context_radius(2)
                    .header(&format!("{shown} (before)"), &format!("{shown} (after)"))
            );
        } else {
            record.remember(&change.path, change.before.as_deref());
            record.save(&places)?;
            write_file(&change.path, &change.after, change.secret)?;
            println!(
                "  {:<9} {shown}: updated{}",
                change.client,
                if change.secret {
                    " (readable only by you)"
                } else {
                    ""
                }
            );
        }
        for note in &change.notes {
            println!("            note: {note}");
        }
    }
    for skipped in &skipped {
        println!("  skipped   {skipped}");
    }
    if args.dry_run {
        println!("{changed} file(s) would change. Run again without --dry-run to apply.");
    } else if changed == 0 {
        println!("Everything was already set up; nothing changed.");
    } else {
        println!("Done. pip, uv and R now install through Formulary with no flags. Check with `formulary doctor`; undo with `formulary setup --undo`.");
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_is_the_persons_organisation_unless_chosen() {
        let server = url::Url::parse("https://f.example/").expect("url");
        let me = serde_json::json!({"memberships": [{"organisation": "NATIONAL"}, {"organisation": "RJ1"}]});
        let (view, code) = view_url(&server, &me, None).expect("view");
        assert_eq!(
            (view.as_str(), code.as_str()),
            ("https://f.example/o/RJ1/", "RJ1")
        );
        let (view, _) = view_url(&server, &me, Some("rj5")).expect("view");
        assert_eq!(view.as_str(), "https://f.example/o/RJ5/");
        let national = serde_json::json!({"memberships": [{"organisation": "NATIONAL"}]});
        assert_eq!(
            view_url(&server, &national, None).expect("view").0.as_str(),
            "https://f.example/"
        );
        assert!(view_url(&server, &me, Some("../x")).is_err());
    }

    #[test]
    fn conda_channels_carry_the_token_in_their_path() {
        let server = url::Url::parse("https://f.example/").expect("url");
        let view = server.join("o/RJ1/").expect("view");
        assert_eq!(
            channel_base(&server, &view, "frm_abc123")
                .expect("base")
                .as_str(),
            "https://f.example/t/frm-abc123/o/RJ1/"
        );
        assert_eq!(
            channel_base(&server, &server, "frm_abc123")
                .expect("base")
                .as_str(),
            "https://f.example/t/frm-abc123/"
        );
        assert_eq!(
            masked(
                "channels: [https://f.example/t/frm-abc123/o/RJ1/conda/conda-forge]",
                "frm_abc123"
            ),
            "channels: [https://f.example/t/frm-…(token)/o/RJ1/conda/conda-forge]"
        );
    }

    #[test]
    fn tokens_are_masked_in_what_is_printed() {
        assert_eq!(masked("a=frm_123\n", "frm_123"), "a=frm_…(token)\n");
    }
}
