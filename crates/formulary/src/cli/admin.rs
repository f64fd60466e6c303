//! `formulary admin user …`: accounts and their roles, run on the server's machine. The first
//! administrator is made this way; after that, organisation admins manage their own people.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use formulary_core::Membership;
use formulary_server::identity::{check_new_password, hash_password};
use formulary_store::{NewUser, LOCAL_PROVIDER};

use super::{operator, output, Context};

/// Administration commands.
#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Manage accounts.
    #[command(subcommand)]
    User(UserCommand),
}

/// Account commands.
#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// Create a local account. The password is read from standard input (or asked for).
    Add {
        /// Sign-in name, e.g. jane.doe.
        username: String,
        /// Name shown to others.
        #[arg(long)]
        name: String,
        /// Email address.
        #[arg(long)]
        email: Option<String>,
        /// A role as ORG:ROLE, e.g. RJ1:requester or NATIONAL:national-curator (repeatable).
        #[arg(long = "role", value_name = "ORG:ROLE", required = true)]
        roles: Vec<String>,
    },
    /// Give an account another role.
    Grant {
        /// Sign-in name.
        username: String,
        /// ORG:ROLE.
        #[arg(long = "role", value_name = "ORG:ROLE")]
        role: String,
    },
    /// Take a role away.
    Revoke {
        /// Sign-in name.
        username: String,
        /// ORG:ROLE.
        #[arg(long = "role", value_name = "ORG:ROLE")]
        role: String,
    },
    /// List accounts and their roles.
    List,
    /// Disable an account: it can no longer sign in, every session ends at once, and its
    /// personal tokens are refused until it is enabled again.
    Disable {
        /// Sign-in name.
        username: String,
    },
    /// Enable a disabled account again (its old sessions stay ended).
    Enable {
        /// Sign-in name.
        username: String,
    },
    /// Set a new password for a local account (for someone who forgot theirs). The password is
    /// read from standard input (or asked for twice); every session of the account ends.
    ResetPassword {
        /// Sign-in name.
        username: String,
    },
}

/// Reads `ORG:ROLE`.
pub(crate) fn parse_membership(text: &str) -> anyhow::Result<Membership> {
    let (organisation, role) = text.split_once(':').with_context(|| {
        format!("'{text}' is not ORG:ROLE; write it like RJ1:requester or NATIONAL:auditor")
    })?;
    Ok(Membership::new(organisation.parse()?, role.parse()?))
}

/// Reads a new password: from standard input when it is not a terminal (first line), else by
/// asking twice without echo.
fn read_new_password() -> anyhow::Result<String> {
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        let first = rpassword::prompt_password("New password (12 characters or more): ")?;
        let second = rpassword::prompt_password("Same password again: ")?;
        anyhow::ensure!(
            first == second,
            "the two passwords differ; nothing was changed"
        );
        Ok(first)
    } else {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        Ok(text.lines().next().unwrap_or("").to_owned())
    }
}

/// The account called `username`, or a message saying there is none.
async fn find(
    database: &formulary_store::Database,
    username: &str,
) -> anyhow::Result<formulary_store::User> {
    Ok(database
        .user_by_username(username)
        .await?
        .with_context(|| {
            format!("there is no account '{username}'; `formulary admin user list` shows them")
        })?
        .0)
}

pub(crate) async fn run(context: &Context, command: AdminCommand) -> anyhow::Result<ExitCode> {
    let AdminCommand::User(command) = command;
    let database = context.database().await?;

    match command {
        UserCommand::Add {
            username,
            name,
            email,
            roles,
        } => {
            let memberships = roles
                .iter()
                .map(|role| parse_membership(role))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let password = read_new_password()?;
            check_new_password(&password, &[&username, &name])
                .map_err(|why| anyhow::anyhow!("{why}; nothing was created"))?;
            let hash = hash_password(&password).map_err(anyhow::Error::msg)?;
            let user = database
                .add_user(
                    &NewUser {
                        username,
                        display_name: name,
                        email,
                        password_hash: Some(hash),
                        identity_provider: LOCAL_PROVIDER.to_owned(),
                        external_subject: None,
                        memberships,
                    },
                    &operator(),
                )
                .await?;
            println!(
                "Created {} ({}) with roles: {}. They can sign in at /sign-in or with `formulary login`.",
                user.username,
                user.display_name,
                user.memberships.iter().map(|membership| format!("{} of {}", membership.role, membership.organisation)).collect::<Vec<_>>().join(", ")
            );
        }
        UserCommand::Grant { username, role } => {
            let membership = parse_membership(&role)?;
            let (user, _) = database.user_by_username(&username).await?.with_context(|| format!("there is no account '{username}'; create it with `formulary admin user add`"))?;
            database
                .grant_role(&user.id, &membership, &operator())
                .await?;
            println!(
                "{} is now {} of {}.",
                user.username, membership.role, membership.organisation
            );
        }
        UserCommand::Revoke { username, role } => {
            let membership = parse_membership(&role)?;
            let (user, _) = database
                .user_by_username(&username)
                .await?
                .with_context(|| format!("there is no account '{username}'"))?;
            database
                .revoke_role(&user.id, &membership, &operator())
                .await?;
            println!(
                "{} is no longer {} of {}.",
                user.username, membership.role, membership.organisation
            );
        }
        UserCommand::Disable { username } => {
            let user = find(&database, &username).await?;
            database
                .set_user_disabled(&user.id, true, &operator())
                .await?;
            println!("{} is disabled: signed out everywhere, and their tokens are refused. `formulary admin user enable {}` undoes it.", user.username, user.username);
        }
        UserCommand::Enable { username } => {
            let user = find(&database, &username).await?;
            database
                .set_user_disabled(&user.id, false, &operator())
                .await?;
            println!("{} can sign in again; sessions that were open when the account was disabled stay ended.", user.username);
        }
        UserCommand::ResetPassword { username } => {
            let (user, hash) = database
                .user_by_username(&username)
                .await?
                .with_context(|| format!("there is no account '{username}'"))?;
            anyhow::ensure!(
                hash.is_some() && user.identity_provider == LOCAL_PROVIDER,
                "{} signs in through {}, so their password is changed there",
                user.username,
                user.identity_provider
            );
            let password = read_new_password()?;
            check_new_password(&password, &[&user.username, &user.display_name])
                .map_err(|why| anyhow::anyhow!("{why}; nothing was changed"))?;
            let hash = hash_password(&password).map_err(anyhow::Error::msg)?;
            database
                .set_password_hash(&user.id, &hash, None, &operator())
                .await?;
            println!("Set a new password for {}; every session of theirs has ended. Give it to them by a separate channel.", user.username);
        }
        UserCommand::List => {
            let rows: Vec<Vec<String>> = database
                .users()
                .await?
                .into_iter()
                .map(|user| {
                    vec![
                        user.username.clone(),
                        user.display_name.clone(),
                        user.memberships
                            .iter()
                            .map(|membership| {
                                format!("{}:{}", membership.organisation, membership.role)
                            })
                            .collect::<Vec<_>>()
                            .join(" "),
                        if user.disabled_at.is_some() {
                            "disabled".to_owned()
                        } else {
                            "active".to_owned()
                        },
                    ]
                })
                .collect();
            output::table(&["USERNAME", "NAME", "ROLES", "STATE"], &rows);
        }
    }
    Ok(ExitCode::SUCCESS)
}
