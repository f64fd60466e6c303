//! `formulary entry …`.

use std::process::ExitCode;

use chrono::NaiveDate;
use clap::Subcommand;
use formulary_core::ecosystems::VersionRange;
use formulary_core::{Component, EntryDraft, OrgCode, Status, Waiver};
use formulary_server::EntryView;
use formulary_store::EntryFilter;

use super::{operator, output, Context};

/// Entry commands.
#[derive(Debug, Subcommand)]
pub(crate) enum EntryCommand {
    /// Record a decision about a component's versions.
    Add {
        /// The component, as a purl without version: pkg:pypi/requests, pkg:cran/readxl, pkg:generic/git.
        component: String,
        /// Versions covered, in the ecosystem's syntax (PEP 440 for PyPI, '>= 1.0, < 2' for CRAN and generic).
        #[arg(long, default_value = "*")]
        range: String,
        /// approved, approved-with-constraints, pilot, under-review, divest or prohibited.
        #[arg(long)]
        status: Status,
        /// Why (published in the decision log).
        #[arg(long)]
        reason: String,
        /// Whose formulary [default: NATIONAL].
        #[arg(long, default_value = "NATIONAL")]
        org: String,
        /// Conditions of use.
        #[arg(long)]
        constraints: Option<String>,
        /// When to review the decision (YYYY-MM-DD).
        #[arg(long)]
        review_date: Option<NaiveDate>,
        /// When a pilot or exception ends (YYYY-MM-DD); pilots default to 90 days from today.
        #[arg(long)]
        expires: Option<NaiveDate>,
        /// Make this an exception: an advisory id, or national-prohibition. Repeatable.
        #[arg(long)]
        waives: Vec<String>,
        /// Who decided [default: the operator].
        #[arg(long)]
        decided_by: Option<String>,
        /// The named person who answers questions about the component.
        #[arg(long)]
        mentor: Option<String>,
    },
    /// List entries in force (newest first).
    List {
        /// Only this organisation's.
        #[arg(long)]
        org: Option<String>,
        /// Only this component's (purl without version).
        #[arg(long)]
        component: Option<String>,
        /// Include removed entries.
        #[arg(long)]
        include_removed: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one entry with its history.
    Show {
        /// The entry id.
        id: String,
    },
    /// Remove an entry (it stays in history).
    Remove {
        /// The entry id.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
    },
}

pub(crate) async fn run(context: &Context, command: EntryCommand) -> anyhow::Result<ExitCode> {
    let database = context.database().await?;
    match command {
        EntryCommand::Add {
            component,
            range,
            status,
            reason,
            org,
            constraints,
            review_date,
            expires,
            waives,
            decided_by,
            mentor,
        } => {
            let component: Component = component.parse()?;
            let expires = expires.or_else(|| {
                (status == Status::Pilot)
                    .then(|| chrono::Utc::now().date_naive() + chrono::Duration::days(90))
            });
            let draft = EntryDraft {
                organisation: org.parse::<OrgCode>()?,
                range: VersionRange::parse(component.ecosystem(), &range)?,
                component,
                status,
                constraints,
                review_date,
                expires,
                waives: waives
                    .iter()
                    .map(|text| text.parse::<Waiver>())
                    .collect::<Result<_, _>>()?,
                decided_by: decided_by.unwrap_or_else(operator),
                reason,
                mentor,
            };
            let entry = database.add_entry(&draft, &operator()).await?;
            println!(
                "Recorded entry {}: {} {} is {} in {}.",
                entry.id, draft.component, draft.range, draft.status, draft.organisation
            );
        }
        EntryCommand::List {
            org,
            component,
            include_removed,
            json,
        } => {
            let filter = EntryFilter {
                organisation: org.map(|code| code.parse()).transpose()?,
                component: component.map(|purl| purl.parse()).transpose()?,
                include_removed,
            };
            let views: Vec<EntryView> = database
                .list_entries(&filter)
                .await?
                .iter()
                .map(EntryView::from)
                .collect();
            if json {
                output::json(&views)?;
            } else if views.is_empty() {
                println!("No entries match. Add one with `formulary entry add`.");
            } else {
                let rows: Vec<Vec<String>> = views
                    .iter()
                    .map(|view| {
                        vec![
                            view.id.clone(),
                            view.organisation.to_string(),
                            view.component.clone(),
                            view.range.clone(),
                            view.status.to_string(),
                            if view.removed_at.is_some() {
                                "removed".to_owned()
                            } else {
                                String::new()
                            },
                        ]
                    })
                    .collect();
                output::table(&["ID", "ORG", "COMPONENT", "VERSIONS", "STATUS", ""], &rows);
            }
        }
        EntryCommand::Show { id } => {
            let stored = database.entry(&id).await?;
            let history = database.audit_for_subject(&id).await?;
            output::json(
                &serde_json::json!({ "entry": EntryView::from(&stored), "history": history }),
            )?;
        }
        EntryCommand::Remove { id, reason } => {
            let removed = database.remove_entry(&id, &operator(), &reason).await?;
            println!(
                "Removed entry {id} ({} {}); it stays in the history.",
                removed.entry.draft.component, removed.entry.draft.range
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
