//! `formulary policy check`: the dry run a reviewer uses before changing a rule, and the answer to
//! "will my project's environment be allowed?", from the local store or from a running server.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Subcommand;
use formulary_core::policy::{evaluate_version, Decision, View};
use formulary_core::{ComponentVersion, OrgCode, Stance};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::{output, Context};
use crate::lockfile::{self, Environment, Platform};

/// How many questions `--server` asks at once.
const SERVER_CONCURRENCY: usize = 8;

/// Policy commands.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Decide component versions in an organisation's view and explain why. Exits 0 when every
    /// version is allowed, 1 when any is denied and 2 when the question cannot be answered (no
    /// formulary to ask, an unreadable file).
    Check {
        /// Versioned purls, e.g. pkg:pypi/requests@2.19.1 pkg:cran/readxl@1.0.0.
        purls: Vec<String>,
        /// A requirements file or lockfile (requirements.txt with its -r/-c includes, uv.lock,
        /// poetry.lock, pylock.toml, an renv lockfile), recognised by its content.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// The organisation whose view decides [default: NATIONAL].
        #[arg(long, default_value = "NATIONAL")]
        org: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
        /// Ask the Formulary server at this address (through its API) instead of the local store.
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// The Python version environment markers are evaluated for, e.g. 3.12 [default: this machine's python3].
        #[arg(long, value_name = "X.Y")]
        python_version: Option<String>,
        /// The platform environment markers are evaluated for: linux, windows or macos [default: this machine's].
        #[arg(long, value_name = "NAME")]
        platform: Option<String>,
    },
}

/// A decision as the API sends it, for `--server`.
#[derive(Debug, Serialize, Deserialize)]
struct RemoteDecision {
    component: String,
    version: String,
    allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    yanked: Option<String>,
    reasons: Vec<RemoteReason>,
}

/// A reason as the API sends it.
#[derive(Debug, Serialize, Deserialize)]
struct RemoteReason {
    code: String,
    effect: String,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    advisory: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
}

/// The decisions, decided here or by a server.
enum Answers {
    Local {
        decisions: Vec<Decision>,
        advisories_loaded: bool,
    },
    Remote(Vec<RemoteDecision>),
}

#[derive(Serialize)]
struct Report<'a, D: Serialize> {
    organisation: &'a OrgCode,
    allowed: bool,
    decisions: &'a [D],
    skipped: &'a [String],
}

pub(crate) async fn run(context: &Context, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Check {
        purls,
        file,
        org,
        json,
        server,
        python_version,
        platform,
    } = command;
    let organisation: OrgCode = org.parse()?;
    let mut wanted: Vec<ComponentVersion> = purls
        .iter()
        .map(|purl| purl.parse())
        .collect::<Result<_, _>>()?;
    let environment = Environment::declared(
        python_version,
        platform.as_deref().map(Platform::parse).transpose()?,
    );
    let mut skipped = Vec::new();
    if let Some(path) = &file {
        let pins = lockfile::read(path, &environment)?;
        wanted.extend(pins.pins);
        skipped = pins.skipped;
    }
    if wanted.is_empty() {
        for line in &skipped {
            eprintln!("not checked: {line}");
        }
        bail!("nothing to check: give versioned purls (pkg:pypi/requests@2.32.3) or --file with pinned versions");
    }
    let answers = match &server {
        Some(server) => Answers::Remote(decide_remotely(server, &organisation, &wanted).await?),
        None => decide_locally(context, &organisation, &wanted).await?,
    };
    let allowed = match &answers {
        Answers::Local { decisions, .. } => decisions.iter().all(|decision| decision.allowed),
        Answers::Remote(decisions) => decisions.iter().all(|decision| decision.allowed),
    };
    if json {
        match &answers {
            Answers::Local { decisions, .. } => output::json(&Report {
                organisation: &organisation,
                allowed,
                decisions,
                skipped: &skipped,
            })?,
            Answers::Remote(decisions) => output::json(&Report {
                organisation: &organisation,
                allowed,
                decisions,
                skipped: &skipped,
            })?,
        }
    } else {
        let verdicts: Vec<bool> = match &answers {
            Answers::Local { decisions, .. } => {
                for decision in decisions {
                    output::print_decision(decision, organisation.as_str());
                }
                decisions.iter().map(|decision| decision.allowed).collect()
            }
            Answers::Remote(decisions) => {
                for decision in decisions {
                    print_remote(decision, organisation.as_str());
                }
                decisions.iter().map(|decision| decision.allowed).collect()
            }
        };
        for line in &skipped {
            println!("not checked: {line}");
        }
        if verdicts.len() > 1 {
            let denied = verdicts.iter().filter(|allowed| !**allowed).count();
            println!(
                "\n{} checked: {} allowed, {denied} denied.",
                verdicts.len(),
                verdicts.len() - denied
            );
        }
        if let Answers::Local {
            advisories_loaded: false,
            ..
        } = answers
        {
            println!("note: no advisories are loaded, so known vulnerabilities were not checked; run `formulary advisories sync` or `formulary advisories import PATH`.");
        }
    }
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Decides against the local store, refusing to answer from a store that does not exist or
/// holds nothing (every answer would be "allowed" without anything having been checked).
async fn decide_locally(
    context: &Context,
    organisation: &OrgCode,
    wanted: &[ComponentVersion],
) -> anyhow::Result<Answers> {
    let settings = &context.settings;
    let place = match &settings.database_url {
        Some(_) => "the database given by --database-url".to_owned(),
        None => {
            let folder = settings.data_dir.display();
            if !settings.data_dir.join("formulary.db").is_file() {
                bail!("there is no formulary to check against: {folder} holds no Formulary data (nothing was created). Run this where the data folder is, give it with --data-dir PATH (or --database-url URL), or ask a running Formulary with --server URL");
            }
            format!("the data folder {folder}")
        }
    };
    let database = context.database().await?;
    let snapshot = database.policy_snapshot(chrono::Utc::now()).await?;
    // Nothing could deny: no entries, no advisories, and an open view for what is asked.
    let all_open = wanted.iter().all(|item| {
        snapshot
            .settings_for(organisation, item.component.ecosystem())
            .stance
            == Stance::Open
    });
    if snapshot.components_with_entries().next().is_none()
        && snapshot.advisory_count() == 0
        && all_open
    {
        bail!("the formulary in {place} is empty (no entries, no advisories, and an open view), so every version would be ALLOWED without anything having been checked. Give the data folder of your formulary with --data-dir PATH (or --database-url URL), ask a running Formulary with --server URL, or load advisories first with `formulary advisories sync`");
    }
    if snapshot.organisation(organisation).is_none() {
        bail!("organisation {organisation} does not exist; list them with `formulary org list`");
    }
    let view = View {
        organisation: organisation.clone(),
        at: chrono::Utc::now(),
    };
    let mut decisions = Vec::with_capacity(wanted.len());
    for item in wanted {
        let releases = database.releases_of(&item.component).await?;
        decisions.push(evaluate_version(
            &snapshot,
            &view,
            &item.component,
            &item.version,
            &releases,
        ));
    }
    formulary_gateway::explain_cran_dependencies(&database, &snapshot, &view, &mut decisions)
        .await?;
    Ok(Answers::Local {
        decisions,
        advisories_loaded: snapshot.advisory_count() > 0,
    })
}

/// Asks a running Formulary (`GET /api/v1/policy/check`), a few purls at a time, keeping their
/// order.
async fn decide_remotely(
    server: &str,
    organisation: &OrgCode,
    wanted: &[ComponentVersion],
) -> anyhow::Result<Vec<RemoteDecision>> {
    let server = server.trim_end_matches('/');
    if !(server.starts_with("http://") || server.starts_with("https://")) {
        bail!(
            "--server '{}' is not an http:// or https:// address of a Formulary server",
            server.escape_debug()
        );
    }
    let http = reqwest::Client::builder()
        .user_agent(concat!("formulary-cli/", env!("CARGO_PKG_VERSION")))
        .timeout(std::time::Duration::from_secs(60))
        .build()?;
    let http = &http;
    futures_util::stream::iter(wanted.iter().map(|item| async move {
        let response = http
            .get(format!("{server}/api/v1/policy/check"))
            .query(&[
                ("purl", item.to_string()),
                ("organisation", organisation.to_string()),
            ])
            .send()
            .await
            .with_context(|| format!("could not reach the Formulary server at {server}; check the address (--server) and that it is running"))?;
        let status = response.status();
        if !status.is_success() {
            let problem: serde_json::Value = response.json().await.unwrap_or_default();
            bail!(
                "the Formulary server at {server} could not answer for {item}: {} ({status}) {}",
                problem["title"].as_str().unwrap_or("it refused"),
                problem["detail"].as_str().unwrap_or("")
            );
        }
        response.json::<RemoteDecision>().await.with_context(|| {
            format!("the answer from {server} for {item} is not a policy decision; is it a Formulary server of the same version?")
        })
    }))
    .buffered(SERVER_CONCURRENCY)
    .collect::<Vec<_>>()
    .await
    .into_iter()
    .collect()
}

/// Prints a decision from a server exactly as `output::print_decision` prints a local one.
fn print_remote(decision: &RemoteDecision, organisation: &str) {
    let verdict = if decision.allowed {
        "ALLOWED"
    } else {
        "DENIED"
    };
    println!(
        "{verdict}  {}@{}  (view: {organisation})",
        decision.component, decision.version
    );
    for reason in &decision.reasons {
        println!(
            "  {:<5} [{}] {}",
            reason.effect, reason.code, reason.message
        );
        if let Some(link) = &reason.link {
            println!("        see {link}");
        }
    }
    if decision.reasons.is_empty() {
        println!("  allow no rule applies: this view is open and nothing blocks the version");
    }
}
