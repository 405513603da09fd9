//! `persona admin user create|list|disable|enable|promote|reset-password`.

use std::{io::BufRead, process::ExitCode};

use anyhow::bail;
use clap::Subcommand;

use crate::{
    app::AppState,
    auth::{
        self, Role, UserRow,
        users::{self, list_users, set_disabled, set_role},
    },
    cli::Cli,
    domain::{Email, Secret, Timestamp},
    error::AppResult,
    features::accounts::{self, Password, Purpose},
};

#[derive(Debug, clap::Args)]
pub struct Opts {
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account (prints a generated password unless --password-stdin)
    Create {
        #[arg(long)]
        email: String,
        /// Make the account an administrator
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input
        #[arg(long)]
        password_stdin: bool,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List accounts
    List,
    /// Disable an account: it cannot sign in, and its sessions end
    Disable { email: String },
    /// Enable a disabled account
    Enable { email: String },
    /// Make an account an administrator
    Promote { email: String },
    /// Print a single-use password reset token (30 minutes), for servers without mail
    ResetPassword { email: String },
}

pub async fn run(cli: &Cli, opts: &Opts) -> anyhow::Result<ExitCode> {
    let app = cli.open_app()?;
    match &opts.command {
        UserCommand::Create {
            email,
            admin,
            password_stdin,
            display_name,
        } => {
            let email = Email::parse(email).map_err(|m| anyhow::anyhow!("--email {m}"))?;
            let (password, generated) = if *password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line)?;
                (line.trim_end_matches(['\r', '\n']).to_owned(), false)
            } else {
                let (token, _) = auth::new_opaque_token()?;
                (token[..24].to_owned(), true)
            };
            let shown = generated.then(|| password.clone());
            let password = Password::parse(Secret::new(password))
                .map_err(|m| anyhow::anyhow!("the password {m}"))?;
            let role = if *admin { Role::Admin } else { Role::User };
            let user =
                accounts::create_user(&app, email, password, display_name.clone(), role).await?;
            println!(
                "created {} ({}, id {})",
                user.email,
                user.role.as_str(),
                user.id
            );
            if let Some(password) = shown {
                println!("password (shown once; change it after the first login): {password}");
            }
        }
        UserCommand::List => {
            let users = app.db.read(list_users).await?;
            println!(
                "{:<36}  {:<32}  {:<5}  {:<8}  created",
                "id", "email", "role", "state"
            );
            for u in users {
                let created = u.created_at.to_datetime();
                println!(
                    "{:<36}  {:<32}  {:<5}  {:<8}  {}",
                    u.id,
                    u.email,
                    u.role.as_str(),
                    if u.disabled { "disabled" } else { "active" },
                    created.date()
                );
            }
        }
        UserCommand::Disable { email } => {
            let user = update(&app, email, |tx, id, now| set_disabled(tx, id, true, now)).await?;
            println!("disabled {}; its sessions have ended", user.email);
        }
        UserCommand::Enable { email } => {
            let user = update(&app, email, |tx, id, now| set_disabled(tx, id, false, now)).await?;
            println!("enabled {}", user.email);
        }
        UserCommand::Promote { email } => {
            let user = update(&app, email, |tx, id, now| {
                set_role(tx, id, Role::Admin, now)
            })
            .await?;
            println!("{} is now an administrator", user.email);
        }
        UserCommand::ResetPassword { email } => {
            let user = find(&app, email).await?;
            let token = accounts::issue_user_token(&app, &user.id, Purpose::ResetPassword).await?;
            println!(
                "reset token for {} (single use, valid 30 minutes):",
                user.email
            );
            println!("{token}");
            if let Some(link) = app.notify.link("/reset-password", &token) {
                println!("{link}");
            }
            println!(
                "The app's \"reset password\" screen takes it (POST /api/v1/auth/reset-password)."
            );
        }
    }
    app.db.close().await;
    Ok(ExitCode::SUCCESS)
}

/// Finds the account of `email` and applies `change` to it in one write.
async fn update(
    app: &AppState,
    email: &str,
    change: impl FnOnce(&rusqlite::Connection, &str, Timestamp) -> AppResult<()> + Send + 'static,
) -> anyhow::Result<UserRow> {
    let user = find(app, email).await?;
    let id = user.id.clone();
    app.db
        .write(move |tx| change(tx, &id, Timestamp::now()))
        .await?;
    Ok(user)
}

async fn find(app: &AppState, email: &str) -> anyhow::Result<UserRow> {
    // Normalised as accounts are stored (NFC, lower case).
    let normalized = Email::parse(email)
        .map_err(|m| anyhow::anyhow!("{email:?} {m}"))?
        .to_string();
    let lookup = normalized.clone();
    let user = app
        .db
        .read(move |conn| users::user_by_email(conn, &lookup))
        .await?;
    match user {
        Some(user) => Ok(user),
        None => bail!("no account with the email {normalized}"),
    }
}
