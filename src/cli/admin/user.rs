//! `persona admin user create|list|disable|enable|promote|reset-password`.

use std::{io::BufRead, process::ExitCode};

use anyhow::bail;
use clap::Subcommand;

use crate::{
    app::AppState,
    auth::{self, Role, UserRow, users::list_users},
    cli::Cli,
    domain::{Email, Secret},
    features::accounts::{self, AdminChange, Password},
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
            let user = change(&app, email, AdminChange::Disable).await?;
            println!("disabled {}; its sessions have ended", user.email);
        }
        UserCommand::Enable { email } => {
            let user = change(&app, email, AdminChange::Enable).await?;
            println!("enabled {}", user.email);
        }
        UserCommand::Promote { email } => {
            let user = change(&app, email, AdminChange::Promote).await?;
            println!("{} is now an administrator", user.email);
        }
        UserCommand::ResetPassword { email } => {
            let user = find(&app, email).await?;
            let reset = accounts::issue_reset(&app, &user.id).await?;
            println!(
                "reset token for {} (single use, valid 30 minutes):",
                user.email
            );
            println!("{}", reset.token);
            if let Some(link) = reset.link {
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

/// Applies `change` to the account of `email` (the console's service function).
async fn change(app: &AppState, email: &str, change: AdminChange) -> anyhow::Result<UserRow> {
    let user = find(app, email).await?;
    Ok(accounts::change_account(app, &user.id, change).await?)
}

async fn find(app: &AppState, email: &str) -> anyhow::Result<UserRow> {
    let email = Email::parse(email).map_err(|m| anyhow::anyhow!("{email:?} {m}"))?;
    match accounts::find_by_email(app, &email).await? {
        Some(user) => Ok(user),
        None => bail!("no account with the email {email}"),
    }
}
