//! Telling people things outside the app: mail (SMTP, when configured) and signed webhooks.
//! Features build a message from a template here and hand it over; delivery and its
//! failures are this module's business, the words are the template's.

mod mail;
pub mod templates;
pub mod webhook;

pub use mail::{Mail, Mailer};

use crate::config::Config;

pub struct Notify {
    /// `None` while `smtp.host` is unset.
    mailer: Option<Mailer>,
    http: reqwest::Client,
}

impl Notify {
    pub fn new(config: &Config, http: reqwest::Client) -> anyhow::Result<Notify> {
        Ok(Notify {
            mailer: Mailer::from_config(&config.smtp)?,
            http,
        })
    }

    /// Whether mail can be sent at all.
    pub fn can_mail(&self) -> bool {
        self.mailer.is_some()
    }

    /// A link for mails: `{smtp.public_url}{path}?token=…`, when a public URL is configured.
    pub fn link(&self, path: &str, token: &str) -> Option<String> {
        self.mailer.as_ref().and_then(|m| m.link(path, token))
    }

    /// Sends `mail`; `Ok(false)` when mail is not configured (nothing was sent).
    pub async fn mail(&self, mail: Mail) -> anyhow::Result<bool> {
        match &self.mailer {
            Some(mailer) => mailer.send(mail).await.map(|()| true),
            None => Ok(false),
        }
    }

    /// POSTs a signed JSON webhook (see [`webhook`]).
    pub async fn webhook(
        &self,
        url: &str,
        secret: &[u8],
        body: &serde_json::Value,
    ) -> Result<(), webhook::WebhookError> {
        webhook::send(&self.http, url, secret, body).await
    }
}
