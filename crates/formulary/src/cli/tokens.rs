//! `formulary token …`.

use std::process::ExitCode;

use clap::Subcommand;
use formulary_core::{OrgCode, Role};
use formulary_store::TokenScope;

use super::{operator, output, Context};

/// Token commands.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Issue an API token. The secret is printed once; store it safely.
    Create {
        /// What it is for, e.g. "ci" or "jane.doe laptop".
        #[arg(long)]
        name: String,
        /// requester, reviewer, approver, organisation-admin, national-curator, auditor, information-governance or clinical-safety-officer
        /// (needed for `--scope api`).
        #[arg(long, required_unless_present = "scope")]
        role: Option<Role>,
        /// api (the JSON API with the role's rights) or gateway (reading the package gateway
        /// only, e.g. for a build server's pip or R) [default: api].
        #[arg(long)]
        scope: Option<formulary_store::TokenScope>,
        /// The organisation it acts for [default: NATIONAL].
        #[arg(long, default_value = "NATIONAL")]
        org: String,
        /// Days until it stops working (0: never).
        #[arg(long, default_value_t = 90)]
        expires_days: i64,
    },
    /// List tokens (never their secrets).
    List,
    /// Revoke a token at once.
    Revoke {
        /// The token id (t-…).
        id: String,
    },
}

pub(crate) async fn run(context: &Context, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let database = context.database().await?;
    match command {
        TokenCommand::Create {
            name,
            role,
            scope,
            org,
            expires_days,
        } => {
            let organisation: OrgCode = org.parse()?;
            let expires = (expires_days > 0)
                .then(|| chrono::Utc::now() + chrono::Duration::days(expires_days));
            let (issued, what) = match (scope.unwrap_or(TokenScope::Api), role) {
                (TokenScope::Gateway, _) => (
                    database
                        .issue_gateway_service_token(&name, &organisation, expires, &operator())
                        .await?,
                    format!("reads the package gateway for {organisation}"),
                ),
                (TokenScope::Api, Some(role)) => (
                    database
                        .issue_token(&name, &organisation, role, expires, &operator())
                        .await?,
                    format!("{role} of {organisation}"),
                ),
                (TokenScope::Api, None) => anyhow::bail!(
                    "an API token needs --role (requester, reviewer, approver, organisation-admin, national-curator, auditor, information-governance or clinical-safety-officer); a token that only reads the package gateway needs --scope gateway"
                ),
            };
            eprintln!(
                "Issued token {} ({what}){}. The secret follows; it is shown only once:",
                issued.token.id,
                expires
                    .map(|at| format!(", valid until {}", at.date_naive()))
                    .unwrap_or_default()
            );
            println!("{}", issued.secret);
        }
        TokenCommand::List => {
            let rows: Vec<Vec<String>> = database
                .tokens()
                .await?
                .into_iter()
                .map(|token| {
                    let state = match (token.revoked_at, token.expires_at) {
                        (Some(at), _) => format!("revoked {}", at.date_naive()),
                        (None, Some(at)) if at < chrono::Utc::now() => {
                            format!("expired {}", at.date_naive())
                        }
                        (None, Some(at)) => format!("valid until {}", at.date_naive()),
                        (None, None) => "valid".to_owned(),
                    };
                    vec![
                        token.id,
                        token.name,
                        token.organisation.to_string(),
                        token.role.to_string(),
                        token.scope.to_string(),
                        state,
                    ]
                })
                .collect();
            output::table(&["ID", "NAME", "ORG", "ROLE", "SCOPE", "STATE"], &rows);
        }
        TokenCommand::Revoke { id } => {
            database.revoke_token(&id, &operator()).await?;
            println!("Revoked token {id}; it stops working at once.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
