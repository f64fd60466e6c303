//! `formulary who-has PURL`: who has a component version, from the server's download ledger and
//! the environments reported to it.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::client::{self, ServerArgs};
use super::output;

/// Options of `formulary who-has`.
#[derive(Debug, Args)]
pub(crate) struct WhoHasArgs {
    /// The component, with or without a version: pkg:pypi/requests@2.19.1, pkg:cran/readxl.
    purl: String,
    /// Print the server's JSON answer.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Exit status 0 when somebody has it, 1 when nobody does.
pub(crate) async fn run(args: WhoHasArgs) -> anyhow::Result<ExitCode> {
    let (server, token) = client::signed_in(&args.server)?;
    let answer = client::exchange(
        client::client()?
            .get(format!("{server}/api/v1/who-has"))
            .query(&[("purl", args.purl.as_str())])
            .bearer_auth(&token),
        &server,
    )
    .await?;
    let holders = answer["holders"].as_array().cloned().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else if holders.is_empty() {
        println!(
            "Nobody is known to have {}: no download through the gateway and no reported environment.",
            args.purl
        );
    } else {
        println!(
            "{} people in {} organisations have {}:",
            answer["people"], answer["organisations"], args.purl
        );
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        let rows: Vec<Vec<String>> = holders
            .iter()
            .map(|holder| {
                vec![
                    text(&holder["person_name"]),
                    text(&holder["organisation"]),
                    text(&holder["version"]),
                    match holder["via"].as_str() {
                        Some("report") => format!("reported: {}", text(&holder["environment"])),
                        _ => format!("downloaded ×{}", holder["count"]),
                    },
                    text(&holder["last_at"]).chars().take(19).collect(),
                ]
            })
            .collect();
        output::table(
            &["who", "organisation", "version", "how", "when (UTC)"],
            &rows,
        );
        if let Some(limited) = answer["limited_to"].as_array() {
            let codes: Vec<String> = limited.iter().map(text).collect();
            println!(
                "Limited to the organisations you administer: {}.",
                codes.join(", ")
            );
        }
    }
    Ok(if holders.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
