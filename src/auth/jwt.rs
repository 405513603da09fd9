//! Access tokens: HS256 JWTs signed with the newest key of the ring in `secrets.toml`, named
//! by `kid`, so older keys keep verifying after a rotation. Every other algorithm (`none`
//! included) is refused before any signature check.

use std::time::Duration;

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, decode_header, encode,
    errors::ErrorKind,
};
use serde::{Deserialize, Serialize};

use super::Role;
use crate::{
    config::AuthConfig,
    error::{ApiError, AppResult, Code},
    secrets::Secrets,
};

/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The session id: logout ends the session, and with it every token naming it.
    pub sid: String,
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
        }
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
            sub: user_id.to_owned(),
            sid: session_id.to_owned(),
            role,
            iat: now,
            exp: now + self.ttl.as_secs(),
            iss: self.issuer.clone(),
        };
        encode(&header, &claims, &key.encoding).map_err(ApiError::internal)
    }

    /// Checks algorithm, key id, signature, issuer and expiry.
    pub fn verify(&self, token: &str) -> AppResult<Claims> {
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
            Err(err) if matches!(err.kind(), ErrorKind::ExpiredSignature) => {
                Err(ApiError::Unauthorized {
                    code: Code::TokenExpired,
                    message: "The access token has expired; refresh it.".into(),
                })
            }
            Err(_) => Err(invalid()),
        }
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

    fn code(result: AppResult<Claims>) -> &'static str {
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
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("u1", "s1"));
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
}
