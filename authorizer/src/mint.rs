//! Minting HS256 tokens for the local stack (`local token --sub NAME --entity-types a,b
//! --ttl 1h`) and tests: the same claims the verifier reads.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::MIN_SECRET_BYTES;

/// What the token says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MintRequest {
    pub subject: String,
    /// Empty: no `entity_types` claim (every type).
    pub entity_types: Vec<String>,
    pub ttl: Duration,
    pub issuer: Option<String>,
    pub audience: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MintError {
    #[error("the subject is empty")]
    EmptySubject,
    #[error("entity type {0:?} is empty or contains ','")]
    BadEntityType(String),
    #[error("the ttl must be at least one second")]
    ZeroTtl,
    #[error("the secret is {0} bytes, at least {MIN_SECRET_BYTES} needed")]
    WeakSecret(usize),
    #[error("ttl {0:?}: expected a number with an optional unit s, m, h or d (e.g. 90s, 15m, 1h)")]
    BadTtl(String),
    #[error("signing failed: {0}")]
    Sign(String),
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    entity_types: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
}

/// A signed HS256 token issued at `now` (epoch seconds), valid for `request.ttl`.
pub fn mint_hs256(secret: &[u8], request: &MintRequest, now: u64) -> Result<String, MintError> {
    check(secret, request)?;
    let claims = Claims {
        sub: &request.subject,
        iat: now,
        exp: now + request.ttl.as_secs(),
        entity_types: &request.entity_types,
        iss: request.issuer.as_deref(),
        aud: request.audience.as_deref(),
    };
    let key = EncodingKey::from_secret(secret).map_err(|e| MintError::Sign(e.to_string()))?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .map_err(|e| MintError::Sign(e.to_string()))
}

fn check(secret: &[u8], request: &MintRequest) -> Result<(), MintError> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(MintError::WeakSecret(secret.len()));
    }
    if request.subject.trim().is_empty() {
        return Err(MintError::EmptySubject);
    }
    if request.ttl.as_secs() == 0 {
        return Err(MintError::ZeroTtl);
    }
    match request
        .entity_types
        .iter()
        .find(|t| t.trim().is_empty() || t.contains(','))
    {
        Some(bad) => Err(MintError::BadEntityType(bad.clone())),
        None => Ok(()),
    }
}

/// Seconds since the Unix epoch, for `mint_hs256`'s `now`.
pub fn now_epoch_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `90`, `90s`, `15m`, `1h`, `2d`.
pub fn parse_ttl(text: &str) -> Result<Duration, MintError> {
    let text = text.trim();
    let bad = || MintError::BadTtl(text.to_owned());
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let unit_secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    number
        .checked_mul(unit_secs)
        .map(Duration::from_secs)
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::{ClaimRules, Identity, VerifyingKey, verify_with_key};

    const SECRET: &[u8] = b"local-dev-secret-0123456789abcdef";

    fn request(entity_types: &[&str]) -> MintRequest {
        MintRequest {
            subject: "alice".into(),
            entity_types: entity_types.iter().map(|s| s.to_string()).collect(),
            ttl: Duration::from_secs(3600),
            ..MintRequest::default()
        }
    }

    #[test]
    fn minted_token_verifies_with_its_claims() {
        let token = mint_hs256(SECRET, &request(&["stream", "batch"]), now_epoch_secs()).unwrap();
        let key = VerifyingKey::hs256(SECRET).unwrap();
        assert_eq!(
            verify_with_key(&token, &key, &ClaimRules::default()),
            Ok(Identity {
                subject: "alice".into(),
                entity_types: Some(vec!["stream".into(), "batch".into()]),
            })
        );
    }

    #[test]
    fn no_entity_types_means_no_claim() {
        let token = mint_hs256(SECRET, &request(&[]), now_epoch_secs()).unwrap();
        let claims: serde_json::Value =
            jsonwebtoken::dangerous::insecure_decode_claims(&token).unwrap();
        assert_eq!(claims.get("entity_types"), None);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            3600
        );
    }

    #[test]
    fn issuer_and_audience_are_carried() {
        let mut req = request(&[]);
        req.issuer = Some("local".into());
        req.audience = Some("dashboards".into());
        let token = mint_hs256(SECRET, &req, now_epoch_secs()).unwrap();
        let rules = ClaimRules {
            issuer: Some("local".into()),
            audiences: vec!["dashboards".into()],
            ..ClaimRules::default()
        };
        let key = VerifyingKey::hs256(SECRET).unwrap();
        assert!(verify_with_key(&token, &key, &rules).is_ok());
    }

    #[test]
    fn bad_requests_are_refused() {
        let now = now_epoch_secs();
        assert_eq!(
            mint_hs256(b"short", &request(&[]), now),
            Err(MintError::WeakSecret(5))
        );
        let mut empty = request(&[]);
        empty.subject = " ".into();
        assert_eq!(
            mint_hs256(SECRET, &empty, now),
            Err(MintError::EmptySubject)
        );
        assert_eq!(
            mint_hs256(SECRET, &request(&["a,b"]), now),
            Err(MintError::BadEntityType("a,b".into()))
        );
        let mut zero = request(&[]);
        zero.ttl = Duration::ZERO;
        assert_eq!(mint_hs256(SECRET, &zero, now), Err(MintError::ZeroTtl));
    }

    #[test]
    fn ttl_forms() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        assert!(parse_ttl("1w").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("").is_err());
    }
}
