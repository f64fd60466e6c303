//! `formulary report FILE`: tells a Formulary server what an environment contains, so that "who
//! has version X?" and recalls reach it. An SBOM (CycloneDX or SPDX JSON) is sent as it is;
//! a requirements file (`pip freeze` output too), `uv.lock`, `pylock.toml`, `poetry.lock` or
//! `renv.lock` is read here, with the readers of `policy check`, and sent as purls.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde_json::{json, Value};

use super::client::{self, ServerArgs};
use crate::lockfile::{self, Environment, Platform};

/// Options of `formulary report`.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The SBOM, lockfile or requirements file.
    file: PathBuf,
    /// The organisation the environment belongs to (its ODS code).
    #[arg(long)]
    org: String,
    /// The project, machine or pipeline's name; a later report of the same name replaces this one.
    #[arg(long)]
    environment: String,
    /// project, machine or pipeline.
    #[arg(long, default_value = "project")]
    kind: String,
    /// The Python version environment markers are evaluated for (X.Y[.Z]).
    #[arg(long)]
    python_version: Option<String>,
    /// The platform environment markers are evaluated for: linux, windows or macos.
    #[arg(long)]
    platform: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Largest file read.
const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

pub(crate) async fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let (server, token) = client::signed_in(&args.server)?;
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    anyhow::ensure!(
        size <= MAX_FILE_BYTES,
        "{} is larger than 32 MiB; is it really an SBOM or a lockfile?",
        args.file.display()
    );
    let sbom = std::fs::read(&args.file)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(|document| {
            document["bomFormat"].as_str() == Some("CycloneDX")
                || document["spdxVersion"].is_string()
        });
    let mut skipped = Vec::new();
    let body = match sbom {
        Some(document) => document,
        None => {
            let environment = Environment::declared(
                args.python_version.clone(),
                args.platform.as_deref().map(Platform::parse).transpose()?,
            );
            let pins = lockfile::read(&args.file, &environment)?;
            skipped = pins.skipped;
            let purls: Vec<String> = pins.pins.iter().map(ToString::to_string).collect();
            json!({ "components": purls })
        }
    };
    let mut url = url::Url::parse(&format!("{server}/api/v1/inventory/"))
        .with_context(|| format!("'{server}' is not a server address"))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("'{server}' is not a server address"))?
        .pop_if_empty()
        .push(&args.org)
        .push(&args.environment);
    url.query_pairs_mut().append_pair("kind", &args.kind);
    let answer = client::exchange(
        client::client()?.put(url).bearer_auth(&token).json(&body),
        &server,
    )
    .await?;
    println!(
        "Reported {} component versions of {} ({}) in {} to {server}{}.",
        answer["components"],
        args.environment,
        args.kind,
        args.org,
        if answer["new_environment"] == true {
            " (a new environment)"
        } else {
            ", replacing its last report"
        }
    );
    let server_skipped: Vec<&str> = answer["skipped"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for line in skipped.iter().map(String::as_str).chain(server_skipped) {
        println!("  not reported: {line}");
    }
    Ok(ExitCode::SUCCESS)
}
