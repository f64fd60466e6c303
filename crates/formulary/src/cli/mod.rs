//! Command-line definitions and dispatch. Exit status: 0 success (and "allowed"), 1 a negative
//! answer (a denied version, a broken audit chain), 2 an error.

mod admin;
mod advisories;
mod audit;
mod blobs;
mod cache;
mod client;
mod doctor;
mod entries;
mod inventory;
mod mirror;
mod organisations;
mod output;
mod policy;
mod recall;
mod report;
mod serve;
mod serve_offline;
mod setup;
mod tokens;
mod tools;
mod who_has;
mod why;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use formulary_store::{BlobStore, Database};

use crate::config::{self, Overrides, Settings};

/// Formulary: the software formulary and policy-enforcing package gateway.
#[derive(Debug, Parser)]
#[command(name = "formulary", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./formulary.toml when it exists.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Folder for the embedded SQLite file and blobs [default: ./formulary-data].
    #[arg(long, global = true, value_name = "PATH")]
    data_dir: Option<PathBuf>,
    /// Record store: sqlite://PATH or postgres://USER@HOST/DATABASE.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (web page, JSON API, health check).
    Serve(serve::ServeArgs),
    /// Manage organisations and their per-ecosystem rules.
    #[command(subcommand, name = "org")]
    Organisation(organisations::OrganisationCommand),
    /// Manage entries: decisions about components and version ranges.
    #[command(subcommand)]
    Entry(entries::EntryCommand),
    /// Ask the policy engine.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Which version of a component a view serves, and why each newer one is held back.
    Why(why::WhyArgs),
    /// Import and sync OSV advisories.
    #[command(subcommand)]
    Advisories(advisories::AdvisoriesCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(tokens::TokenCommand),
    /// Check the tamper-evident audit log.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Import package files for air-gapped sites.
    #[command(subcommand)]
    Mirror(mirror::MirrorCommand),
    /// Check the cached package files.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
    /// The blob store: copy it to another (a folder or an S3-compatible bucket), list, stat.
    #[command(subcommand)]
    Blobs(blobs::BlobsCommand),
    /// Manage accounts and roles (on the server's machine).
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Sign in to a Formulary server and keep a personal token for the commands below.
    Login(client::LoginArgs),
    /// Search a server's catalogue.
    Search(client::SearchArgs),
    /// Request a tool from a server, starting from the problem.
    Request(client::RequestArgs),
    /// Show your requests, or one request's timeline.
    Status(client::StatusArgs),
    /// Recalls: versions withdrawn while people have them.
    #[command(subcommand)]
    Recall(recall::RecallCommand),
    /// Set up pip, uv, R, npm, yarn and conda to install through Formulary (no admin rights).
    Setup(setup::SetupArgs),
    /// Check that each client `formulary setup` configured installs through Formulary.
    Doctor(doctor::DoctorArgs),
    /// Desktop tools from the formulary: add (curators), list and install (into your profile).
    #[command(subcommand)]
    Tools(tools::ToolsCommand),
    /// Report what an environment contains (an SBOM, lockfile or requirements file) to a server.
    Report(report::ReportArgs),
    /// An organisation's estate: `inventory export` writes it as a CycloneDX SBOM.
    #[command(subcommand)]
    Inventory(inventory::InventoryCommand),
    /// Who has a component version: from the server's download ledger and reported environments.
    WhoHas(who_has::WhoHasArgs),
}

/// Parses the command line, runs the command and turns the outcome into an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve(_)) {
        crate::allocator::tune_by_restarting();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        database_url: cli.database_url.clone(),
        listen: match &cli.command {
            Command::Serve(args) => args.listen,
            _ => None,
        },
    };
    let settings = Settings::load(cli.config.as_deref(), overrides)?;
    init_logging(&settings, matches!(cli.command, Command::Serve(_)));
    for variable in config::unknown_variables() {
        tracing::warn!("{variable} is set but is not a Formulary setting; see docs/configuration.md for the names");
    }
    if let Some(path) = &settings.conda_name_mapping {
        let text = std::fs::read_to_string(path).map_err(|error| {
            anyhow::anyhow!(
                "conda_name_mapping: cannot read {} ({error})",
                path.display()
            )
        })?;
        let mapping = formulary_core::policy::CondaMapping::parse(&text)
            .map_err(|why| anyhow::anyhow!("conda_name_mapping {}: {why}", path.display()))?;
        tracing::info!(names = mapping.len(), path = %path.display(), "using the configured conda name mapping");
        formulary_core::policy::set_conda_mapping(mapping);
    }
    let context = Context {
        settings,
        opened: std::sync::Mutex::new(None),
    };
    let outcome = match cli.command {
        Command::Serve(args) => serve::run(&context, args).await,
        Command::Organisation(command) => organisations::run(&context, command).await,
        Command::Entry(command) => entries::run(&context, command).await,
        Command::Policy(command) => policy::run(&context, command).await,
        Command::Why(args) => why::run(&context, args).await,
        Command::Advisories(command) => advisories::run(&context, command).await,
        Command::Token(command) => tokens::run(&context, command).await,
        Command::Audit(command) => audit::run(&context, command).await,
        Command::Mirror(command) => mirror::run(&context, command).await,
        Command::Cache(command) => cache::run(&context, command).await,
        Command::Blobs(command) => blobs::run(&context, command).await,
        Command::Admin(command) => admin::run(&context, command).await,
        Command::Login(args) => client::login(args).await,
        Command::Search(args) => client::search(args).await,
        Command::Request(args) => client::request(args).await,
        Command::Status(args) => client::status(args).await,
        Command::Recall(command) => recall::run(&context, command).await,
        Command::Setup(args) => setup::run(args).await,
        Command::Doctor(args) => doctor::run(args).await,
        Command::Tools(command) => tools::run(&context, command).await,
        Command::Report(args) => report::run(args).await,
        Command::Inventory(command) => inventory::run(command).await,
        Command::WhoHas(args) => who_has::run(args).await,
    };
    context.checkpoint_audit().await;
    outcome
}

/// What every command can reach.
pub(crate) struct Context {
    settings: Settings,
    /// The record store, once a command has opened it.
    opened: std::sync::Mutex<Option<Database>>,
}

impl Context {
    /// Opens the record store, creating the data folder for the embedded SQLite default.
    async fn database(&self) -> anyhow::Result<Database> {
        let url = self.settings.database_url();
        if self.settings.database_url.is_none() {
            std::fs::create_dir_all(&self.settings.data_dir).map_err(|error| {
                anyhow::anyhow!(
                    "could not create the data folder {}: {error}",
                    self.settings.data_dir.display()
                )
            })?;
        }
        let database = Database::open(&url).await?;
        *self
            .opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(database.clone());
        Ok(database)
    }

    /// The signed checkpoints of the audit chain's head (the key is created on first use).
    fn checkpoint_log(&self) -> anyhow::Result<formulary_store::CheckpointLog> {
        let key = formulary_store::AuditKey::load_or_create(&self.settings.audit_key_file())?;
        Ok(formulary_store::CheckpointLog::new(
            self.settings.audit_checkpoint_file(),
            key,
        ))
    }

    /// Records a signed checkpoint of the audit chain's head if this command opened the records
    /// and the head moved, so that changes made from the command line are covered too.
    async fn checkpoint_audit(&self) {
        let opened = self
            .opened
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let Some(database) = opened else { return };
        let outcome = async {
            let (seq, head) = database.audit_head().await?;
            if seq > 0 {
                self.checkpoint_log()?.record(seq, &head)?;
            }
            anyhow::Ok(())
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!("could not record an audit checkpoint: {error:#}");
        }
    }

    /// Opens the blob store.
    fn blobs(&self) -> anyhow::Result<BlobStore> {
        Ok(BlobStore::open(&self.settings.blob_location()?)?)
    }
}

/// Who the local operator is, for the audit log.
pub(crate) fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "operator".to_owned());
    format!(
        "cli:{}",
        user.chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(64)
            .collect::<String>()
    )
}

fn init_logging(settings: &Settings, serving: bool) {
    let default = if serving {
        "info,sqlx=warn,tower_http=info"
    } else {
        "warn,sqlx=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("FORMULARY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        );
    let _ = if settings.log_format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
