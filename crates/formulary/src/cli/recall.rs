//! `formulary recall open|list|show`: recalls on the server's machine. A curator opens one by
//! hand (a national cyber alert, say) for the versions named; the people who have them, from
//! the ledger and the inventory, are listed, and the configured webhooks are told.

use std::process::ExitCode;

use anyhow::bail;
use clap::Subcommand;
use formulary_core::Component;
use formulary_store::NewRecall;

use super::{operator, output, Context};
use crate::surveillance::recalls::{Announcer, Webhooks};

/// Recall commands.
#[derive(Debug, Subcommand)]
pub(crate) enum RecallCommand {
    /// Open a recall of some versions of a component, by hand.
    Open {
        /// The component: pkg:pypi/requests.
        component: String,
        /// A version recalled (repeatable).
        #[arg(long = "version", required = true)]
        versions: Vec<String>,
        /// Why, for the people told (the alert's reference and what it says).
        #[arg(long)]
        reason: String,
        /// The version (or alternative) to move to.
        #[arg(long)]
        move_to: Option<String>,
    },
    /// List recalls with their progress.
    List,
    /// Show one recall and everyone on it.
    Show {
        /// The recall's id (rc-…).
        id: String,
    },
}

pub(crate) async fn run(context: &Context, command: RecallCommand) -> anyhow::Result<ExitCode> {
    let database = context.database().await?;
    match command {
        RecallCommand::Open {
            component,
            versions,
            reason,
            move_to,
        } => {
            let component: Component = component.parse()?;
            if reason.trim().len() < 10 {
                bail!("say why, in at least 10 characters: people are told this reason");
            }
            let mut holders = Vec::new();
            for version in &versions {
                holders.extend(database.who_has(&component, Some(version)).await?);
            }
            let key = format!("manual:{}", versions.join(","));
            let change = database
                .open_recall(
                    &NewRecall {
                        cause: "manual".to_owned(),
                        cause_key: key,
                        advisory_id: None,
                        component: component.clone(),
                        versions,
                        move_to,
                        reason,
                        severity: None,
                        holders,
                    },
                    &operator(),
                )
                .await?;
            let settings = &context.settings;
            Announcer {
                webhooks: Webhooks {
                    urls: settings.recall_webhooks.clone(),
                    secret: settings.recall_webhook_secret.clone(),
                },
                // Links point where the server is reached: `public_url`, else its listen address.
                public_url: settings.public_url(settings.listen)?,
            }
            .recall_changed(&database, &change)
            .await;
            println!(
                "Recall {} of {} {}: {} people or environments newly told.",
                change.id,
                component.purl(),
                if change.opened { "opened" } else { "updated" },
                change.new_people
            );
        }
        RecallCommand::List => {
            database.resolve_recalls().await?;
            let rows: Vec<Vec<String>> = database
                .recalls()
                .await?
                .into_iter()
                .map(|recall| {
                    vec![
                        recall.id,
                        recall.component,
                        recall.versions.join(", "),
                        recall.move_to.unwrap_or_default(),
                        recall.told.to_string(),
                        recall.exposed.to_string(),
                        recall.opened_at.format("%Y-%m-%d %H:%M").to_string(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "id",
                    "component",
                    "versions",
                    "move to",
                    "told",
                    "exposed",
                    "opened (UTC)",
                ],
                &rows,
            );
        }
        RecallCommand::Show { id } => {
            database.resolve_recalls().await?;
            let Some((recall, people)) = database.recall(&id).await? else {
                bail!(
                    "no recall has the id {}; list them with `formulary recall list`",
                    id.escape_debug()
                );
            };
            println!(
                "{}: {} {}",
                recall.id,
                recall.component,
                recall.versions.join(", ")
            );
            println!("Why: {}", recall.reason);
            println!(
                "Move to: {}",
                recall
                    .move_to
                    .as_deref()
                    .unwrap_or("(no allowed version known)")
            );
            println!(
                "{} told, {} moved or explained, {} still exposed.",
                recall.told, recall.resolved, recall.exposed
            );
            let rows: Vec<Vec<String>> = people
                .into_iter()
                .map(|person| {
                    vec![
                        person.person_name,
                        person.organisation,
                        if person.environment.is_empty() {
                            "download".to_owned()
                        } else {
                            person.environment
                        },
                        person.version,
                        person.resolution.unwrap_or_else(|| "exposed".to_owned()),
                    ]
                })
                .collect();
            output::table(
                &["who", "organisation", "where", "version", "status"],
                &rows,
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
