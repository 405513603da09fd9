//! Outgoing mail over SMTP (lettre, rustls). Off while `smtp.host` is unset: features then
//! fall back to what the admin can do with the CLI.

use anyhow::Context;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, header::ContentType},
    transport::smtp::authentication::Credentials,
};

use crate::config::SmtpConfig;

/// One plain-text mail, as a template made it.
#[derive(Clone)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Mail bodies hold single-use tokens: never print them.
impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    public_url: Option<String>,
}

impl Mailer {
    /// `None` when SMTP is not configured.
    pub fn from_config(smtp: &SmtpConfig) -> anyhow::Result<Option<Mailer>> {
        let Some(host) = smtp.host.as_deref() else {
            return Ok(None);
        };
        let port = smtp.port.unwrap_or(587);
        let mut builder = match smtp.starttls {
            // Plain SMTP: only for a relay on localhost or a trusted network.
            Some(false) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            _ if port == 465 => AsyncSmtpTransport::<Tokio1Executor>::relay(host)?,
            _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)?,
        }
        .port(port);
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let from = smtp
            .from
            .as_deref()
            .context("smtp.from is required")?
            .parse::<Mailbox>()
            .context("smtp.from is not a mail address")?;
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
            public_url: smtp.public_url.clone(),
        }))
    }

    /// `{public_url}{path}?token=…` when a public URL is configured.
    pub fn link(&self, path: &str, token: &str) -> Option<String> {
        self.public_url
            .as_deref()
            .map(|base| format!("{}{path}?token={token}", base.trim_end_matches('/')))
    }

    pub async fn send(&self, mail: Mail) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail.to.parse().context("recipient is not a mail address")?)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body)?;
        self.transport
            .send(message)
            .await
            .context("SMTP send failed")?;
        Ok(())
    }
}
