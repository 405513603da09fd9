//! `persona admin user create|list|disable|enable|promote|reset-password`.

use std::{io::BufRead, process::ExitCode};

use anyhow::bail;
use clap::Subcommand;

use crate::{
    app::{App, AppState},
    auth::{self, Role},
    cli::Cli,
    features::accounts::{
        service,
        store::{self, Purpose, UserRow},
        types::{Email, Password},
    },
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
    let app = App::init(cli.load_config()?)?;
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
                let (token, _) = auth::new_opaque_token().map_err(|e| anyhow::anyhow!("{e}"))?;
                (token[..24].to_owned(), true)
            };
            let shown = generated.then(|| password.clone());
            let password =
                Password::parse(password).map_err(|m| anyhow::anyhow!("the password {m}"))?;
            let role = if *admin { Role::Admin } else { Role::User };
            let user = service::create_user(&app, email, password, display_name.clone(), role)
                .await
                .map_err(|e| anyhow::anyhow!("{}", describe(e)))?;
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
            let users = app
                .db
                .read(store::list_users)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{:<36}  {:<32}  {:<5}  {:<8}  created",
                "id", "email", "role", "state"
            );
            for u in users {
                let created = crate::features::accounts::types::timestamp(u.created_at);
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
            let user = update(&app, email, |tx, id, now| {
                store::set_disabled(tx, id, true, now)
            })
            .await?;
            println!("disabled {}; its sessions have ended", user.email);
        }
        UserCommand::Enable { email } => {
            let user = update(&app, email, |tx, id, now| {
                store::set_disabled(tx, id, false, now)
            })
            .await?;
            println!("enabled {}", user.email);
        }
        UserCommand::Promote { email } => {
            let user = update(&app, email, |tx, id, now| {
                store::set_role(tx, id, Role::Admin, now)
            })
            .await?;
            println!("{} is now an administrator", user.email);
        }
        UserCommand::ResetPassword { email } => {
            let user = find(&app, email).await?;
            let token = service::issue_user_token(&app, &user.id, Purpose::ResetPassword)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "reset token for {} (single use, valid 30 minutes):",
                user.email
            );
            println!("{token}");
            if let Some(link) = app
                .mailer
                .as_ref()
                .and_then(|m| m.link("/reset-password", &token))
            {
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
    change: impl FnOnce(&rusqlite::Connection, &str, i64) -> crate::error::AppResult<()>
    + Send
    + 'static,
) -> anyhow::Result<UserRow> {
    let user = find(app, email).await?;
    let id = user.id.clone();
    app.db
        .write(move |tx| change(tx, &id, auth::now()))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(user)
}

async fn find(app: &AppState, email: &str) -> anyhow::Result<UserRow> {
    let normalized = email.trim().to_lowercase();
    let lookup = normalized.clone();
    let user = app
        .db
        .read(move |conn| store::user_by_email(conn, &lookup))
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    match user {
        Some(user) => Ok(user),
        None => bail!("no account with the email {normalized}"),
    }
}

fn describe(err: crate::error::ApiError) -> String {
    match err {
        crate::error::ApiError::Conflict { message, .. } => message.into_owned(),
        other => other.to_string(),
    }
}
