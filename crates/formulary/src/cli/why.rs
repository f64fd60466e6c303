//! `formulary why`: which version of a component a view serves, and why every newer one is held
//! back (an advisory, the cooldown, a prohibition…). An unpinned install that quietly gets an
//! older version is explained here, from the release evidence the gateway keeps.

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use formulary_core::ecosystems::Version;
use formulary_core::policy::{evaluate_releases, Decision, View};
use formulary_core::{Component, ComponentVersion, OrgCode};
use serde::Serialize;

use super::{output, Context};

/// `formulary why PURL`.
#[derive(Debug, Args)]
pub(crate) struct WhyArgs {
    /// A component (pkg:pypi/requests) or one version of it (pkg:pypi/requests@2.19.1).
    purl: String,
    /// The organisation whose view decides [default: NATIONAL].
    #[arg(long, default_value = "NATIONAL")]
    org: String,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

/// What `why` found, for `--json`.
#[derive(Serialize)]
struct Explanation<'a> {
    component: String,
    organisation: &'a OrgCode,
    /// The version an unpinned install gets from this view, if any.
    serves: Option<String>,
    /// Newer versions the view holds back, newest first, with their decisions.
    held_back: Vec<&'a Decision>,
    /// The version asked about, when one was.
    asked: Option<&'a Decision>,
}

/// Explains what the view serves of a component and what it holds back. Exits 0 when the view
/// serves a version (or the version asked about), 1 when it does not, 2 when it cannot tell.
pub(crate) async fn run(context: &Context, args: WhyArgs) -> anyhow::Result<ExitCode> {
    let organisation: OrgCode = args.org.parse()?;
    let (component, asked): (Component, Option<Version>) = if args.purl.contains('@') {
        let item: ComponentVersion = args.purl.parse()?;
        (item.component, Some(item.version))
    } else {
        (args.purl.parse()?, None)
    };
    let database = context.database().await?;
    let snapshot = database.policy_snapshot(chrono::Utc::now()).await?;
    if snapshot.organisation(&organisation).is_none() {
        bail!("organisation {organisation} does not exist; list them with `formulary org list`");
    }
    let releases = database.releases_of(&component).await?;
    if releases.is_empty() {
        bail!("Formulary has no release evidence for {component} yet: the gateway records it the first time someone asks for the project. Ask the gateway once (for example `pip download --no-deps {}` through it), then run this again; `formulary policy check {component}@VERSION` decides one version without it", component.name);
    }
    let view = View {
        organisation: organisation.clone(),
        at: chrono::Utc::now(),
    };
    let decisions = evaluate_releases(&snapshot, &view, &component, &releases);
    let pairs: Vec<(&Version, &Decision)> = releases
        .iter()
        .map(|release| &release.version)
        .zip(&decisions)
        .collect();
    // What a resolver picks for an unpinned install: the newest allowed version the publisher
    // did not yank, a final release unless only pre-releases are allowed.
    let candidates = || {
        pairs
            .iter()
            .filter(|(_, decision)| decision.allowed && decision.yanked.is_none())
    };
    let serves = candidates()
        .filter(|(version, _)| !version.is_prerelease())
        .map(|(version, _)| *version)
        .max()
        .or_else(|| candidates().map(|(version, _)| *version).max());
    let mut held_back: Vec<&Decision> = pairs
        .iter()
        .filter(|(version, decision)| {
            !decision.allowed
                && !version.is_prerelease()
                && serves.is_none_or(|served| *version > served)
        })
        .map(|(_, decision)| *decision)
        .collect();
    held_back.reverse();
    let asked_decision = asked.as_ref().map(|version| {
        pairs
            .iter()
            .find(|(known, _)| *known == version)
            .map(|(_, decision)| (*decision).clone())
            .unwrap_or_else(|| {
                formulary_core::policy::evaluate_version(
                    &snapshot, &view, &component, version, &releases,
                )
            })
    });
    let served_text = serves.map(ToString::to_string);
    if args.json {
        output::json(&Explanation {
            component: component.to_string(),
            organisation: &organisation,
            serves: served_text.clone(),
            held_back: held_back.clone(),
            asked: asked_decision.as_ref(),
        })?;
    } else {
        print_explanation(
            &component,
            &organisation,
            served_text.as_deref(),
            &held_back,
            asked_decision.as_ref(),
        );
    }
    let fine = match &asked_decision {
        Some(decision) => decision.allowed,
        None => serves.is_some(),
    };
    Ok(if fine {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_explanation(
    component: &Component,
    organisation: &OrgCode,
    serves: Option<&str>,
    held_back: &[&Decision],
    asked: Option<&Decision>,
) {
    if let Some(decision) = asked {
        output::print_decision(decision, organisation.as_str());
        println!();
    }
    match serves {
        Some(version) => println!(
            "{component} in {organisation}'s view: an unpinned install gets {version}, the newest version allowed."
        ),
        None => println!(
            "{component} in {organisation}'s view: no version is allowed, so an install fails (the refusal says why)."
        ),
    }
    if held_back.is_empty() {
        println!("No newer version is held back.");
        return;
    }
    println!("Held back (newest first):");
    for decision in held_back {
        let reason = decision.headline().unwrap_or("denied by policy");
        println!("  {} — {reason}", decision.version);
        if let Some(link) = decision.denials().find_map(|denial| denial.link.as_deref()) {
            println!("      {link}");
        }
    }
}
