//! `formulary serve`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use std::collections::HashMap;

use clap::Args;
use formulary_core::OrgCode;
use formulary_gateway::{CranGateway, PypiGateway};
use formulary_server::AppState;

use super::Context;

/// Options of `formulary serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080]. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Seed a demo formulary (national formulary and one trust overlay) when the database has no entries.
    #[arg(long)]
    demo: bool,
}

pub(crate) async fn run(context: &Context, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (database, offline_snapshot) = super::serve_offline::open(context).await?;
    let offline = database.is_offline();
    let blobs = context.blobs()?;
    if !blobs.is_local() {
        // A replica may start while the bucket is briefly away: it says so, and /readyz reports
        // it unready until the bucket answers.
        match blobs.probe().await {
            Ok(()) => tracing::info!(store = blobs.label(), "blobs live in object storage"),
            Err(error) => {
                tracing::warn!(%error, "the blob store does not answer yet; cached package files cannot be served until it does (check s3_endpoint, the bucket and the credentials)")
            }
        }
    }
    match blobs.sweep_incoming(chrono::Duration::hours(1)).await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(
            removed,
            "removed unfinished blob writes left by an earlier crash"
        ),
        Err(error) => tracing::warn!(%error, "could not sweep unfinished blob writes"),
    }
    if args.demo && !offline && crate::demo::seed_if_empty(&database).await? {
        tracing::info!("seeded the demo formulary (organisations NATIONAL and RJ1)");
    }
    let (pypi, pypi_by_organisation) = pypi_gateways(context, &database, &blobs)?;
    let default_organisation = context
        .settings
        .default_organisation
        .parse()
        .context("default_organisation is not a valid organisation code")?;
    let mut state = match offline_snapshot {
        Some(snapshot) => AppState::with_snapshot(
            database.clone(),
            blobs,
            Some(pypi),
            default_organisation,
            snapshot,
        )?,
        None => AppState::new(database.clone(), blobs, Some(pypi), default_organisation).await?,
    };
    state.pypi_by_organisation = pypi_by_organisation;
    state.cran = Some(Arc::new(cran_gateway(context, &database, &state.blobs)?));
    state.tools = Some(Arc::new(formulary_gateway::ToolGateway::new(
        database.clone(),
        state.blobs.clone(),
        upstream_options(&context.settings).budget,
    )?));
    state.npm = Some(Arc::new(npm_gateway(context, &database, &state.blobs)?));
    state.conda = Some(Arc::new(conda_gateway(context, &database, &state.blobs)?));
    if args.demo && !offline && crate::demo_people::seed_if_empty(&state).await? {
        tracing::info!(
            "seeded the demo accounts ana (requester), rob (reviewer), aisha (approver), olu (organisation admin), nina (national curator) and audrey (auditor), all with the password '{}', and their requests",
            crate::demo_people::DEMO_PASSWORD
        );
    }
    let journal = context.settings.ledger_journal();
    let (ledger, ledger_writer) = formulary_gateway::DownloadLedger::start(
        database.clone(),
        &formulary_gateway::LedgerOptions {
            journal: journal.clone(),
            journal_max_bytes: context.settings.ledger_journal_max_bytes,
        },
    )
    .with_context(|| format!("could not open the download ledger's journal {}: check that the data folder can be written", journal.display()))?;
    state.ledger = Some(ledger);
    if let formulary_store::BlobLocation::Folder(folder) = context.settings.blob_location()? {
        state.blob_dir = Some(folder);
    }
    if !offline {
        super::audit::check_at_start(context, &database).await;
    }
    let _local_copy = super::serve_offline::keep_local_copy(&database);
    // Each background job runs on one replica at a time, under a lease in the database.
    let holder = formulary_server::jobs::replica_holder();
    let lease =
        |name| formulary_server::jobs::JobLease::new(database.clone(), name, holder.clone());
    let job_leases = [
        lease("email-outbox"),
        lease("dependency-admissions"),
        lease("recalls"),
    ];
    let outbox = match &context.settings.smtp_url {
        Some(smtp_url) => {
            let mailer =
                formulary_server::mail::Mailer::new(&formulary_server::mail::MailOptions {
                    smtp_url: smtp_url.clone(),
                    from: context.settings.smtp_from.clone(),
                    ca_file: context.settings.smtp_ca_file.clone(),
                })?;
            Some(formulary_server::mail::follow_outbox(
                mailer,
                database.clone(),
                Duration::from_secs(2),
                job_leases[0].clone(),
            ))
        }
        None => None,
    };
    let _checkpoints =
        super::audit::follow_checkpoints(context, database.clone(), Duration::from_secs(10))?;
    let _follower = Arc::clone(&state.snapshot).follow(database.clone(), Duration::from_secs(2));
    let admissions = formulary_server::follow_admissions(
        state.clone(),
        Duration::from_secs(2),
        job_leases[1].clone(),
    );
    let listener = tokio::net::TcpListener::bind(context.settings.listen)
        .await
        .with_context(|| format!("could not listen on {}: is another program using that port? Choose another with --listen", context.settings.listen))?;
    let address = listener.local_addr()?;
    state.public_url = context.settings.public_url(address)?;
    // Recall notices link to pages from `public_url`, so these start once it is known.
    let announcer = crate::surveillance::recalls::Announcer {
        webhooks: crate::surveillance::recalls::Webhooks {
            urls: context.settings.recall_webhooks.clone(),
            secret: context.settings.recall_webhook_secret.clone(),
        },
        public_url: state.public_url.clone(),
    };
    let _advisory_sync = start_advisory_sync(context, &database, &state, &announcer);
    let recalls = crate::surveillance::prohibitions::follow(
        database.clone(),
        Arc::clone(&state.snapshot),
        announcer,
        Duration::from_secs(2),
        job_leases[2].clone(),
    );
    state.trusted_proxies =
        formulary_server::TrustedProxies::parse(&context.settings.trusted_proxies)
            .map_err(|problem| anyhow::anyhow!("trusted_proxies: {problem}"))?;
    state.gateway_access = context
        .settings
        .gateway_access
        .parse()
        .map_err(|problem| anyhow::anyhow!("gateway_access: {problem}"))?;
    state.oidc = formulary_server::oidc::OidcProviders::new(&context.settings.oidc_providers)
        .map_err(anyhow::Error::msg)?;
    for provider in state.oidc.all() {
        let redirect = format!(
            "{}sign-in/oidc/{}/callback",
            state.public_url, provider.settings.id
        );
        tracing::info!(
            provider = %provider.settings.id,
            issuer = %provider.settings.issuer,
            %redirect,
            "people may sign in through this OpenID provider; register this redirect URI with it"
        );
        if context.settings.public_url.is_none() {
            tracing::warn!(
                provider = %provider.settings.id,
                %redirect,
                "an OpenID provider is configured but public_url is not set: the redirect URI is built from the listen address, which is rarely what people reach; set public_url"
            );
        }
    }
    if context.settings.public_url.is_none() && address.ip().is_unspecified() {
        tracing::warn!(
            public_url = %state.public_url,
            "public_url is not set and the server listens on every interface: set public_url to the address people use, or browsers' forms will be refused"
        );
    }
    // TCP_NODELAY (small responses must not wait for Nagle's algorithm), and large immutable
    // bodies sent with sendfile.
    let listener = formulary_server::ZeroCopyListener::new(listener);
    println!("Formulary is listening on http://{address}/ (Ctrl-C to stop)");
    let settings = &context.settings;
    let limits = formulary_server::ConnectionLimits {
        header_read_timeout: Duration::from_secs(settings.header_read_timeout_seconds.max(1)),
        idle_timeout: Duration::from_secs(settings.idle_timeout_seconds.max(1)),
        max_connections: settings.max_connections.max(1),
        shutdown_deadline: Duration::from_secs(settings.shutdown_deadline_seconds),
    };
    let served = formulary_server::serve(
        listener,
        formulary_server::app(state),
        limits,
        shutdown_signal(),
    )
    .await;
    if served.refused > 0 {
        tracing::warn!(
            refused = served.refused,
            "connections were refused because max_connections was reached"
        );
    }
    // Stop the leased jobs first, letting a round in progress finish (an email being sent is
    // recorded as sent), then hand them over to another replica now rather than when the leases
    // expire. A loop still running would otherwise take its lease again and keep it past exit.
    for job in &job_leases {
        job.stop();
    }
    let leased_jobs = outbox.into_iter().chain([admissions, recalls]).collect();
    let cancelled = formulary_server::jobs::finish(leased_jobs, JOBS_FINISH).await;
    if cancelled > 0 {
        tracing::warn!(
            cancelled,
            patience = ?JOBS_FINISH,
            "background jobs were stopped mid-round at exit; the next holder repeats the round"
        );
    }
    for job in &job_leases {
        job.release().await;
    }
    if let Some(copy) = database.local_copy() {
        if let Err(error) = copy.write_now().await {
            tracing::warn!(%error, "could not write the local copy at exit");
        }
    }
    // Every download answered so far is queued: write it (or keep it in the journal) before
    // exiting, within a few seconds.
    match tokio::time::timeout(LEDGER_FINISH, ledger_writer.finish()).await {
        Ok(summary) if summary.journal_lines > 0 || summary.dropped > 0 => tracing::warn!(
            written = summary.written,
            kept_in_journal = summary.journal_lines,
            dropped = summary.dropped,
            "download ledger: lines kept in the local journal are written at the next start"
        ),
        Ok(summary) => tracing::info!(written = summary.written, "download ledger written"),
        Err(_) => tracing::warn!(
            "the download ledger was still writing at exit; lines already in its journal are written at the next start"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts the scheduled advisory sync, unless it is turned off or no source is configured.
fn start_advisory_sync(
    context: &Context,
    database: &formulary_store::Database,
    state: &AppState,
    announcer: &crate::surveillance::recalls::Announcer,
) -> Option<tokio::task::JoinHandle<()>> {
    let settings = &context.settings;
    if settings.advisory_sync_interval_seconds == 0 || settings.advisory_sources.is_empty() {
        tracing::info!("the scheduled advisory sync is off: advisories change only through `formulary advisories import|sync`");
        return None;
    }
    Some(
        crate::surveillance::scheduler::Scheduler {
            database: database.clone(),
            sources: settings.advisory_sources.clone(),
            interval: Duration::from_secs(settings.advisory_sync_interval_seconds),
            feeds: Arc::clone(&state.feeds),
            snapshot: Arc::clone(&state.snapshot),
            announcer: announcer.clone(),
        }
        .start(),
    )
}

/// How long the background jobs may take to finish the round they are in at exit.
const JOBS_FINISH: Duration = Duration::from_secs(5);

/// How long the download ledger may take to write what is queued at exit.
const LEDGER_FINISH: Duration = Duration::from_secs(5);

/// Gateways of organisations with upstreams of their own.
type GatewaysByOrganisation = HashMap<OrgCode, Arc<PypiGateway>>;

/// The PyPI gateways: the default one over `pypi_upstreams`, and one per organisation that has
/// upstreams of its own.
fn pypi_gateways(
    context: &Context,
    database: &formulary_store::Database,
    blobs: &formulary_store::BlobStore,
) -> anyhow::Result<(Arc<PypiGateway>, GatewaysByOrganisation)> {
    let settings = &context.settings;
    let build = |upstreams: &[String]| -> anyhow::Result<PypiGateway> {
        Ok(PypiGateway::new(
            database.clone(),
            blobs.clone(),
            upstream_urls(upstreams)?,
            &upstream_options(settings),
        )?
        .serving_legacy_files(settings.pypi_legacy_files))
    };
    let default = Arc::new(build(&settings.pypi_upstreams).context("pypi_upstreams")?);
    let mut by_organisation = HashMap::new();
    for (code, upstreams) in &settings.pypi_organisation_upstreams {
        let organisation: OrgCode = code
            .parse()
            .with_context(|| format!("pypi_organisation_upstreams: {code}"))?;
        let gateway = build(upstreams)
            .with_context(|| format!("pypi_organisation_upstreams.{organisation}"))?
            .for_organisation(&organisation);
        by_organisation.insert(organisation, Arc::new(gateway));
    }
    Ok((default, by_organisation))
}

/// The CRAN gateway over `cran_upstreams`.
fn cran_gateway(
    context: &Context,
    database: &formulary_store::Database,
    blobs: &formulary_store::BlobStore,
) -> anyhow::Result<CranGateway> {
    let settings = &context.settings;
    Ok(CranGateway::new(
        database.clone(),
        blobs.clone(),
        upstream_urls(&settings.cran_upstreams).context("cran_upstreams")?,
        &upstream_options(settings),
    )?)
}

/// How the gateways treat their upstreams: the request budget, the patience of a request that
/// has a cached copy, and the revalidation period.
fn upstream_options(settings: &crate::config::Settings) -> formulary_gateway::UpstreamOptions {
    formulary_gateway::UpstreamOptions {
        budget: formulary_gateway::Budget::within(Duration::from_secs(
            settings.upstream_timeout_seconds.max(1),
        )),
        patience: Duration::from_millis(settings.upstream_patience_ms),
        revalidate_after: Duration::from_secs(settings.index_revalidate_seconds),
    }
}

/// The npm gateway over `npm_upstreams`.
fn npm_gateway(
    context: &Context,
    database: &formulary_store::Database,
    blobs: &formulary_store::BlobStore,
) -> anyhow::Result<formulary_gateway::NpmGateway> {
    let settings = &context.settings;
    Ok(formulary_gateway::NpmGateway::new(
        database.clone(),
        blobs.clone(),
        upstream_urls(&settings.npm_upstreams).context("npm_upstreams")?,
        &upstream_options(settings),
    )?)
}

/// The conda gateway over `conda_channels`.
fn conda_gateway(
    context: &Context,
    database: &formulary_store::Database,
    blobs: &formulary_store::BlobStore,
) -> anyhow::Result<formulary_gateway::CondaGateway> {
    let settings = &context.settings;
    let mut channels = std::collections::BTreeMap::new();
    for (channel, upstreams) in &settings.conda_channels {
        if !channel
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'))
            || channel.is_empty()
        {
            anyhow::bail!(
                "conda_channels: '{}' is not a channel name; use letters, digits, '-', '_' and '.'",
                channel.escape_debug()
            );
        }
        channels.insert(
            channel.clone(),
            upstream_urls(upstreams).with_context(|| format!("conda_channels.{channel}"))?,
        );
    }
    Ok(formulary_gateway::CondaGateway::new(
        database.clone(),
        blobs.clone(),
        channels,
        &upstream_options(settings),
    )?)
}

/// Parses a configured list of upstream URLs, naming the one that is not a URL.
fn upstream_urls(texts: &[String]) -> anyhow::Result<Vec<url::Url>> {
    texts
        .iter()
        .map(|text| {
            url::Url::parse(text).with_context(|| {
                format!(
                    "'{}' is not an upstream URL; write it as https://host/path/",
                    text.escape_debug()
                )
            })
        })
        .collect()
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
