//! `formulary policy check`: the dry run a reviewer uses before changing a rule, and the answer to
//! "will my project's environment be allowed?".

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use formulary_core::policy::{evaluate_version, Decision, View};
use formulary_core::{ComponentVersion, OrgCode};
use serde::Serialize;

use super::{output, Context};

/// Policy commands.
#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCommand {
    /// Decide component versions in an organisation's view and explain why. Exits 0 when every
    /// version is allowed and 1 when any is denied.
    Check {
        /// Versioned purls, e.g. pkg:pypi/requests@2.19.1 pkg:cran/readxl@1.0.0.
        purls: Vec<String>,
        /// A requirements file or lockfile (requirements.txt, uv.lock, poetry.lock, pylock.toml, renv.lock).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// The organisation whose view decides [default: NATIONAL].
        #[arg(long, default_value = "NATIONAL")]
        org: String,
        /// Print JSON for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Report<'a> {
    organisation: &'a OrgCode,
    allowed: bool,
    decisions: &'a [Decision],
    skipped: &'a [String],
}

pub(crate) async fn run(context: &Context, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Check {
        purls,
        file,
        org,
        json,
    } = command;
    let organisation: OrgCode = org.parse()?;
    let mut wanted: Vec<ComponentVersion> = purls
        .iter()
        .map(|purl| purl.parse())
        .collect::<Result<_, _>>()?;
    let mut skipped = Vec::new();
    if let Some(path) = &file {
        let pins = crate::lockfile::read(path)?;
        wanted.extend(pins.pins);
        skipped = pins.skipped;
    }
    if wanted.is_empty() {
        anyhow::bail!("nothing to check: give versioned purls (pkg:pypi/requests@2.32.3) or --file with pinned versions");
    }
    let database = context.database().await?;
    let snapshot = database.policy_snapshot(chrono::Utc::now()).await?;
    if snapshot.organisation(&organisation).is_none() {
        anyhow::bail!(
            "organisation {organisation} does not exist; list them with `formulary org list`"
        );
    }
    let view = View {
        organisation: organisation.clone(),
        at: chrono::Utc::now(),
    };
    let mut decisions = Vec::with_capacity(wanted.len());
    for item in &wanted {
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
    let allowed = decisions.iter().all(|decision| decision.allowed);
    if json {
        output::json(&Report {
            organisation: &organisation,
            allowed,
            decisions: &decisions,
            skipped: &skipped,
        })?;
    } else {
        for decision in &decisions {
            output::print_decision(decision, organisation.as_str());
        }
        for line in &skipped {
            println!("not checked: {line}");
        }
        if decisions.len() > 1 {
            let denied = decisions
                .iter()
                .filter(|decision| !decision.allowed)
                .count();
            println!(
                "\n{} checked: {} allowed, {denied} denied.",
                decisions.len(),
                decisions.len() - denied
            );
        }
        if snapshot.advisory_count() == 0 {
            println!("note: no advisories are loaded, so known vulnerabilities were not checked; run `formulary advisories sync` or `formulary advisories import PATH`.");
        }
    }
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
