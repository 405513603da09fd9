//! Access tokens: HS256 JWTs signed with the newest key of the ring in `secrets.toml`, named
//! by `kid`, so older keys keep verifying after a rotation. Every other algorithm (`none`
//! included) is refused before any signature check.
//!
//! A token is verified once; its claims are then kept, keyed by the token's exact text, and
//! each later request that presents it costs a lookup and the expiry check. (The full check,
//! an HMAC with two base64 decodes and two JSON parses, was a sixth of `GET /auth/me`'s CPU.)
//! Only the bytes that were verified hit: any other text, a tampered one included, goes
//! through the full check. A new key ring (a rotation) starts with nothing kept.

use std::{sync::Arc, time::Duration};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
    errors::ErrorKind,
};
use serde::{Deserialize, Serialize};

use super::Role;
use crate::{
    cache::TtlCache,
    config::AuthConfig,
    error::{ApiError, AppResult, Code},
    secrets::Secrets,
};

/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: u64 = 30;

/// Verified tokens kept (about 0.5 KB each with the cache's own entry): more than the
/// clients a small server has active at once; beyond it, the least used are verified again.
const VERIFIED_KEPT: u64 = 4_096;

/// How long a verified token is kept before it is verified again.
const VERIFIED_KEPT_FOR: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Arc<str>,
    /// The session id: logout ends the session, and with it every token naming it.
    pub sid: Arc<str>,
    pub role: Role,
    pub iat: u64,
    pub exp: u64,
    pub iss: String,
}

struct RingKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

pub struct Jwt {
    /// Oldest first; the last signs.
    keys: Vec<RingKey>,
    issuer: String,
    ttl: Duration,
    validation: Validation,
    /// Tokens already verified, by their text (see the module docs).
    verified: TtlCache<Box<str>, Arc<Claims>>,
}

impl Jwt {
    pub fn new(secrets: &Secrets, config: &AuthConfig) -> Self {
        let keys = secrets
            .jwt_keys
            .iter()
            .map(|k| RingKey {
                kid: k.kid.clone(),
                encoding: EncodingKey::from_secret(k.key.as_bytes()),
                decoding: DecodingKey::from_secret(k.key.as_bytes()),
            })
            .collect();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.set_issuer(&[&config.issuer]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss"]);
        Jwt {
            keys,
            issuer: config.issuer.clone(),
            ttl: config.access_ttl,
            validation,
            verified: TtlCache::new(VERIFIED_KEPT, VERIFIED_KEPT_FOR),
        }
    }

    /// Drops the verified tokens kept longer than their time.
    pub fn forget_stale(&self) {
        self.verified.forget_stale();
    }

    /// The lifetime of new access tokens.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Signs an access token for a session.
    pub fn sign(&self, user_id: &str, session_id: &str, role: Role, now: u64) -> AppResult<String> {
        let key = self.keys.last().expect("the JWT ring is never empty");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let claims = Claims {
            sub: user_id.into(),
            sid: session_id.into(),
            role,
            iat: now,
            exp: now + self.ttl.as_secs(),
            iss: self.issuer.clone(),
        };
        encode(&header, &claims, &key.encoding).map_err(ApiError::internal)
    }

    /// Checks algorithm, key id, signature, issuer and expiry.
    pub fn verify(&self, token: &str) -> AppResult<Arc<Claims>> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`Self::verify`], with `now` (Unix seconds) for the expiry of a token verified
    /// before. (A token seen for the first time is checked against the system clock by
    /// jsonwebtoken.)
    fn verify_at(&self, token: &str, now: u64) -> AppResult<Arc<Claims>> {
        if let Some(claims) = self.verified.get(token) {
            // jsonwebtoken's rule: expired once `exp` is more than the leeway in the past.
            if claims.exp < now.saturating_sub(LEEWAY_SECS) {
                self.verified.remove(token);
                return Err(expired());
            }
            return Ok(claims);
        }
        let claims = Arc::new(self.check(token)?);
        self.verified.insert(token.into(), claims.clone());
        Ok(claims)
    }

    /// The full check of a token not seen before.
    fn check(&self, token: &str) -> AppResult<Claims> {
        let header = decode_header(token).map_err(|_| invalid())?;
        if header.alg != Algorithm::HS256 {
            return Err(invalid());
        }
        let kid = header.kid.ok_or_else(invalid)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or_else(invalid)?;
        match decode::<Claims>(token, &key.decoding, &self.validation) {
            Ok(data) => Ok(data.claims),
            Err(err) if matches!(err.kind(), ErrorKind::ExpiredSignature) => Err(expired()),
            Err(_) => Err(invalid()),
        }
    }
}

fn expired() -> ApiError {
    ApiError::Unauthorized {
        code: Code::TokenExpired,
        message: "The access token has expired; refresh it.".into(),
    }
}

fn invalid() -> ApiError {
    ApiError::Unauthorized {
        code: Code::Unauthorized,
        message: "The access token is invalid.".into(),
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    fn jwt() -> (Secrets, Jwt) {
        let secrets = Secrets::generate().unwrap();
        let jwt = Jwt::new(&secrets, &AuthConfig::default());
        (secrets, jwt)
    }

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn code(result: AppResult<Arc<Claims>>) -> &'static str {
        match result {
            Err(ApiError::Unauthorized { code, .. }) => code.as_str(),
            other => panic!("expected 401, got {other:?}"),
        }
    }

    #[test]
    fn a_signed_token_verifies() {
        let (_, jwt) = jwt();
        let token = jwt.sign("u1", "s1", Role::Admin, now()).unwrap();
        let claims = jwt.verify(&token).unwrap();
        assert_eq!((&*claims.sub, &*claims.sid), ("u1", "s1"));
        assert_eq!(claims.role, Role::Admin);
    }

    #[test]
    fn expired_tokens_say_so() {
        let (_, jwt) = jwt();
        let token = jwt.sign("u1", "s1", Role::User, now() - 3600).unwrap();
        assert_eq!(code(jwt.verify(&token)), "token_expired");
    }

    #[test]
    fn forged_tokens_are_refused() {
        let (_, jwt) = jwt();
        let token = jwt.sign("u1", "s1", Role::User, now()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();

        // alg none, with and without a signature.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"x"}"#);
        assert_eq!(
            code(jwt.verify(&format!("{none}.{}.", parts[1]))),
            "unauthorized"
        );
        assert_eq!(
            code(jwt.verify(&format!("{none}.{}.{}", parts[1], parts[2]))),
            "unauthorized"
        );

        // Another key (another server's secrets).
        let (_, other) = self::jwt();
        let foreign = other.sign("u1", "s1", Role::User, now()).unwrap();
        assert_eq!(code(jwt.verify(&foreign)), "unauthorized");

        // A tampered payload: promote ourselves to admin.
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let evil = URL_SAFE_NO_PAD.encode(payload.replace("\"user\"", "\"admin\""));
        assert_eq!(
            code(jwt.verify(&format!("{}.{evil}.{}", parts[0], parts[2]))),
            "unauthorized"
        );

        // A kid that is not in the ring, and HS512.
        let header = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        let wrong_kid = URL_SAFE_NO_PAD.encode(header.replace("\"kid\":\"", "\"kid\":\"zz"));
        assert_eq!(
            code(jwt.verify(&format!("{wrong_kid}.{}.{}", parts[1], parts[2]))),
            "unauthorized"
        );
        let hs512 = URL_SAFE_NO_PAD.encode(header.replace("HS256", "HS512"));
        assert_eq!(
            code(jwt.verify(&format!("{hs512}.{}.{}", parts[1], parts[2]))),
            "unauthorized"
        );

        assert_eq!(code(jwt.verify("not-a-token")), "unauthorized");
    }

    #[test]
    fn older_keys_keep_verifying_after_rotation() {
        let (mut secrets, old) = jwt();
        let token = old.sign("u1", "s1", Role::User, now()).unwrap();
        secrets.jwt_keys.push(crate::secrets::JwtKey {
            kid: crate::secrets::new_kid().unwrap(),
            created_at: time::OffsetDateTime::now_utc(),
            key: crate::secrets::Key256::generate().unwrap(),
        });
        let rotated = Jwt::new(&secrets, &AuthConfig::default());
        assert!(rotated.verify(&token).is_ok());
        let fresh = rotated.sign("u1", "s1", Role::User, now()).unwrap();
        let kid = decode_header(&fresh).unwrap().kid.unwrap();
        assert_eq!(kid, secrets.signing_jwt_key().kid);
    }

    #[test]
    fn a_kept_token_expires_like_a_fresh_one() {
        let (_, jwt) = jwt();
        // Expires one second from now.
        let token = jwt
            .sign("u1", "s1", Role::User, now() + 1 - jwt.ttl().as_secs())
            .unwrap();
        let exp = jwt.verify(&token).unwrap().exp;
        // Kept: still good within the leeway, refused past it (and dropped).
        assert!(jwt.verify_at(&token, exp + LEEWAY_SECS).is_ok());
        assert_eq!(
            code(jwt.verify_at(&token, exp + LEEWAY_SECS + 1)),
            "token_expired"
        );
        assert!(jwt.verified.get(token.as_str()).is_none());
    }

    #[test]
    fn only_the_verified_text_is_kept() {
        let (_, jwt) = jwt();
        let token = jwt.sign("u1", "s1", Role::User, now()).unwrap();
        assert_eq!(&*jwt.verify(&token).unwrap().sub, "u1");
        assert!(jwt.verified.get(token.as_str()).is_some());
        // The same signature on another payload, once the original is kept.
        let parts: Vec<&str> = token.split('.').collect();
        let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        let evil = URL_SAFE_NO_PAD.encode(payload.replace("\"user\"", "\"admin\""));
        let forged = format!("{}.{evil}.{}", parts[0], parts[2]);
        assert_eq!(code(jwt.verify(&forged)), "unauthorized");
        assert!(jwt.verified.get(forged.as_str()).is_none());
        // Refused tokens are not kept.
        assert_eq!(code(jwt.verify("not-a-token")), "unauthorized");
        assert!(jwt.verified.get("not-a-token").is_none());
    }
}
