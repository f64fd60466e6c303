//! `formulary org …`.

use std::process::ExitCode;

use clap::Subcommand;
use formulary_core::ecosystems::Ecosystem;
use formulary_core::{EcosystemSettings, InstallScripts, OrgCode, Organisation, Severity, Stance};

use super::{operator, output, Context};

/// Organisation commands.
#[derive(Debug, Subcommand)]
pub(crate) enum OrganisationCommand {
    /// Add an organisation (a trust, an ICB) by its ODS code.
    Add {
        /// ODS-style code, e.g. RJ1.
        code: String,
        /// Its name.
        #[arg(long)]
        name: String,
    },
    /// List organisations.
    List,
    /// Show or change an organisation's rules for one ecosystem.
    Settings {
        /// Organisation code (NATIONAL for the national formulary).
        code: String,
        /// Ecosystem: pypi, cran or generic.
        #[arg(long)]
        ecosystem: Ecosystem,
        /// curated (only approved versions) or open (everything no rule blocks).
        #[arg(long)]
        stance: Option<Stance>,
        /// Lowest advisory severity that blocks: low, medium, high or critical.
        #[arg(long)]
        threshold: Option<Severity>,
        /// Allowed SPDX licence ids, comma-separated; an empty value allows every licence.
        #[arg(long, value_delimiter = ',')]
        licences: Option<Vec<String>>,
        /// Days a new release is held back (0 turns the cooldown off).
        #[arg(long)]
        cooldown_days: Option<u32>,
        /// allow or deny versions that run install scripts (npm `preinstall`, `install`,
        /// `postinstall`); an entry approving a version lets it through where denied.
        #[arg(long)]
        install_scripts: Option<InstallScripts>,
    },
}

pub(crate) async fn run(
    context: &Context,
    command: OrganisationCommand,
) -> anyhow::Result<ExitCode> {
    let database = context.database().await?;
    match command {
        OrganisationCommand::Add { code, name } => {
            let organisation = Organisation {
                code: code.parse()?,
                name,
            };
            database
                .add_organisation(&organisation, &operator())
                .await?;
            println!("Added organisation {} ({}). It follows the national formulary until it adds entries of its own.", organisation.code, organisation.name);
        }
        OrganisationCommand::List => {
            let rows: Vec<Vec<String>> = database
                .organisations()
                .await?
                .into_iter()
                .map(|organisation| vec![organisation.code.to_string(), organisation.name])
                .collect();
            output::table(&["CODE", "NAME"], &rows);
        }
        OrganisationCommand::Settings {
            code,
            ecosystem,
            stance,
            threshold,
            licences,
            cooldown_days,
            install_scripts,
        } => {
            let code: OrgCode = code.parse()?;
            let snapshot = database.policy_snapshot(chrono::Utc::now()).await?;
            if snapshot.organisation(&code).is_none() {
                anyhow::bail!("organisation {code} does not exist; add it with `formulary org add {code} --name \"…\"`");
            }
            let current = snapshot.settings_for(&code, ecosystem);
            let changing = stance.is_some()
                || threshold.is_some()
                || licences.is_some()
                || cooldown_days.is_some()
                || install_scripts.is_some();
            let settings = EcosystemSettings {
                stance: stance.unwrap_or(current.stance),
                severity_threshold: threshold.unwrap_or(current.severity_threshold),
                allowed_licences: licences
                    .map(|list| {
                        list.into_iter()
                            .filter(|id| !id.trim().is_empty())
                            .collect()
                    })
                    .unwrap_or(current.allowed_licences),
                cooldown_days: cooldown_days.unwrap_or(current.cooldown_days),
                install_scripts: install_scripts.unwrap_or(current.install_scripts),
            };
            if changing {
                database
                    .set_ecosystem_settings(&code, ecosystem, &settings, &operator())
                    .await?;
                println!("Updated {code}'s {ecosystem} rules:");
            } else {
                println!("{code}'s {ecosystem} rules:");
            }
            println!("  stance              {}", settings.stance);
            println!("  severity threshold  {}", settings.severity_threshold);
            println!(
                "  allowed licences    {}",
                if settings.allowed_licences.is_empty() {
                    "any".to_owned()
                } else {
                    settings.allowed_licences.join(", ")
                }
            );
            println!("  cooldown            {} days", settings.cooldown_days);
            println!("  install scripts     {}", settings.install_scripts);
        }
    }
    Ok(ExitCode::SUCCESS)
}
