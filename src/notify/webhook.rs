//! Signed webhooks. The body is JSON; the signature header is
//! `X-Persona-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, so a
//! receiver can check who sent it and refuse replays (a `t` too old), as Stripe's do.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::domain::Timestamp;

pub const SIGNATURE_HEADER: &str = "x-persona-signature";

/// How long one delivery attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("the receiver answered {0}")]
    Status(u16),
    #[error("the receiver could not be reached: {0}")]
    Transport(String),
}

/// The `X-Persona-Signature` value for `body` sent at `t`.
pub fn signature(secret: &[u8], t: Timestamp, body: &[u8]) -> Result<String, WebhookError> {
    // HMAC takes keys of any length; the error exists only for fixed-size MACs.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .map_err(|_| WebhookError::Transport("unusable webhook secret".to_owned()))?;
    mac.update(t.unix().to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "t={},v1={}",
        t.unix(),
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// POSTs `body` to `url` with its signature; any 2xx is delivered.
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    secret: &[u8],
    body: &serde_json::Value,
) -> Result<(), WebhookError> {
    let bytes = serde_json::to_vec(body).map_err(|e| WebhookError::Transport(e.to_string()))?;
    let response = client
        .post(url)
        .timeout(ATTEMPT_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            SIGNATURE_HEADER,
            signature(secret, Timestamp::now(), &bytes)?,
        )
        .body(bytes)
        .send()
        .await
        .map_err(|e| WebhookError::Transport(e.without_url().to_string()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(WebhookError::Status(response.status().as_u16()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_time_dot_body() {
        // Python: hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()
        let sig = signature(b"key", Timestamp::from_unix(1_700_000_000), b"{}").unwrap();
        assert_eq!(
            sig,
            "t=1700000000,v1=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
    }
}
