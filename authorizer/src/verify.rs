//! Token verification. The algorithm comes from configuration, never from the token: HS256
//! only against the configured secret, RS256 / ES256 only against a JWKS key whose own type
//! and `alg` match. The token header only selects among those.

use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use crate::config::{AuthConfig, Secret};
use crate::jwks::{HttpJwksSource, JwksCache, JwksError, KeyLookupError, RefreshPolicy};

/// What a verified token says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    /// `None`: every entity type; `Some`: only these (never empty).
    pub entity_types: Option<Vec<String>>,
}

/// A key and the one algorithm it verifies.
#[derive(Clone)]
pub struct VerifyingKey {
    alg: Algorithm,
    key: DecodingKey,
}

impl VerifyingKey {
    pub fn hs256(secret: &[u8]) -> Result<Self, jsonwebtoken::errors::Error> {
        Ok(Self::new(
            Algorithm::HS256,
            DecodingKey::from_secret(secret)?,
        ))
    }

    pub(crate) fn new(alg: Algorithm, key: DecodingKey) -> Self {
        Self { alg, key }
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({:?})", self.alg)
    }
}

/// Why a present token is refused (a Deny policy, 403).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Rejection {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not accepted")]
    AlgorithmNotAllowed(String),
    #[error("token names no kid")]
    MissingKid,
    #[error("no key with kid {0:?}")]
    UnknownKid(String),
    #[error("key {kid:?} verifies {key:?}, token says {token:?}")]
    KeyAlgorithmMismatch {
        kid: String,
        key: Algorithm,
        token: Algorithm,
    },
    #[error("bad signature")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("missing claim {0}")]
    MissingClaim(String),
    #[error("invalid claims: {0}")]
    InvalidClaims(String),
}

impl Rejection {
    /// A stable word for logs and metric filters.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::AlgorithmNotAllowed(_) => "algorithm_not_allowed",
            Rejection::MissingKid => "missing_kid",
            Rejection::UnknownKid(_) => "unknown_kid",
            Rejection::KeyAlgorithmMismatch { .. } => "key_algorithm_mismatch",
            Rejection::BadSignature => "bad_signature",
            Rejection::Expired => "expired",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::WrongIssuer => "wrong_issuer",
            Rejection::WrongAudience => "wrong_audience",
            Rejection::MissingClaim(_) => "missing_claim",
            Rejection::InvalidClaims(_) => "invalid_claims",
        }
    }

    fn from_jwt(error: &jsonwebtoken::errors::Error) -> Self {
        match error.kind() {
            ErrorKind::InvalidSignature => Rejection::BadSignature,
            ErrorKind::ExpiredSignature => Rejection::Expired,
            ErrorKind::ImmatureSignature => Rejection::NotYetValid,
            ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
            ErrorKind::InvalidAudience => Rejection::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => Rejection::MissingClaim(claim.clone()),
            ErrorKind::InvalidClaimFormat(claim) => Rejection::InvalidClaims(claim.clone()),
            ErrorKind::InvalidAlgorithm => Rejection::AlgorithmNotAllowed("mismatch".into()),
            ErrorKind::Json(e) => Rejection::InvalidClaims(e.to_string()),
            _ => Rejection::Malformed(error.to_string()),
        }
    }
}

/// Why a token could not be judged, or was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Not the client's fault: the issuer's keys could not be had (a 500, not a 403).
    #[error("signing keys unavailable: {0}")]
    Unavailable(#[from] JwksError),
}

/// The claim checks besides the signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRules {
    /// `iss` must equal this, when set.
    pub issuer: Option<String>,
    /// `aud` must name one of these, when not empty.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            issuer: None,
            audiences: Vec::new(),
            leeway_secs: 30,
        }
    }
}

impl ClaimRules {
    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.leeway = self.leeway_secs;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        if self.audiences.is_empty() {
            // Unconfigured: an `aud` the token happens to carry is not checked.
            validation.validate_aud = false;
        } else {
            validation.set_audience(&self.audiences);
            required.push("aud");
        }
        validation.set_required_spec_claims(&required);
        validation
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    entity_types: Option<EntityTypesClaim>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EntityTypesClaim {
    List(Vec<String>),
    Csv(String),
}

/// Checks the signature with `key` (and only its algorithm), then the claims.
pub fn verify_with_key(
    token: &str,
    key: &VerifyingKey,
    rules: &ClaimRules,
) -> Result<Identity, Rejection> {
    let data = jsonwebtoken::decode::<Claims>(token, &key.key, &rules.validation(key.alg))
        .map_err(|e| Rejection::from_jwt(&e))?;
    identity(data.claims)
}

fn identity(claims: Claims) -> Result<Identity, Rejection> {
    let subject = claims.sub.map(|s| s.trim().to_owned()).unwrap_or_default();
    if subject.is_empty() {
        return Err(Rejection::InvalidClaims("sub is empty".into()));
    }
    let entity_types = claims.entity_types.map(entity_types).transpose()?;
    Ok(Identity {
        subject,
        entity_types,
    })
}

/// An array of strings or a comma-separated string. Present but empty is refused rather than
/// read as "no limit", and a comma inside an array item would change the meaning once joined.
fn entity_types(claim: EntityTypesClaim) -> Result<Vec<String>, Rejection> {
    let items = match claim {
        EntityTypesClaim::List(items) => items,
        EntityTypesClaim::Csv(text) => text.split(',').map(str::to_owned).collect(),
    };
    if items.iter().any(|item| item.contains(',')) {
        return Err(Rejection::InvalidClaims(
            "entity_types item contains ','".into(),
        ));
    }
    let types: Vec<String> = items
        .iter()
        .map(|item| item.trim())
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect();
    if types.is_empty() {
        return Err(Rejection::InvalidClaims("entity_types is empty".into()));
    }
    Ok(types)
}

/// The parts of the JOSE header that select a key; read before any key is chosen.
#[derive(Debug, Deserialize)]
struct TokenHeader {
    alg: String,
    kid: Option<String>,
}

fn header(token: &str) -> Result<TokenHeader, Rejection> {
    let malformed = |why: &str| Rejection::Malformed(why.to_owned());
    let mut segments = token.split('.');
    let (Some(head), Some(_), Some(_), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(malformed("not three dot-separated segments"));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(head)
        .map_err(|_| malformed("header is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| malformed("header is not a JOSE header"))
}

/// Verifies tokens against the configured secret and/or JWKS; built once per process.
pub struct Verifier {
    hs256: Option<Arc<VerifyingKey>>,
    /// The secret before the last rotation: tokens it signed still verify until they expire,
    /// so a rotation refuses nobody who holds a token that was valid a minute ago.
    hs256_previous: Option<Arc<VerifyingKey>>,
    jwks: Option<JwksCache>,
    rules: ClaimRules,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("AUTH_JWT_SECRET is not a usable HS256 key: {0}")]
    Secret(jsonwebtoken::errors::Error),
    #[error("cannot build the JWKS client: {0}")]
    Jwks(JwksError),
}

impl Verifier {
    pub fn new(hs256: Option<VerifyingKey>, jwks: Option<JwksCache>, rules: ClaimRules) -> Self {
        Self {
            hs256: hs256.map(Arc::new),
            hs256_previous: None,
            jwks,
            rules,
        }
    }

    /// Also accepts HS256 tokens signed with `previous` (the secret before a rotation).
    pub fn with_previous_secret(mut self, previous: Option<VerifyingKey>) -> Self {
        self.hs256_previous = previous.map(Arc::new);
        self
    }

    /// The verifier a deployed authorizer uses: the secret and/or an HTTPS JWKS cache.
    pub fn from_config(config: &AuthConfig) -> Result<Self, BuildError> {
        let hs256 = hs256_key(config.hs256_secret.as_ref())?;
        let previous = hs256_key(config.hs256_previous_secret.as_ref())?;
        let jwks = match &config.jwks {
            Some(jwks) => {
                let source =
                    HttpJwksSource::new(&jwks.url, jwks.fetch_timeout).map_err(BuildError::Jwks)?;
                Some(JwksCache::new(Box::new(source), RefreshPolicy::from(jwks)))
            }
            None => None,
        };
        Ok(Self::new(hs256, jwks, config.claims.clone()).with_previous_secret(previous))
    }

    pub async fn verify(&self, token: &str) -> Result<Identity, VerifyError> {
        let header = header(token)?;
        let key = self.key_for(&header).await?;
        match verify_with_key(token, &key, &self.rules) {
            Err(Rejection::BadSignature) if header.alg == "HS256" => {
                self.verify_with_previous(token)
            }
            result => Ok(result?),
        }
    }

    /// A bad signature under the current secret, tried under the previous one.
    fn verify_with_previous(&self, token: &str) -> Result<Identity, VerifyError> {
        let previous = self
            .hs256_previous
            .as_ref()
            .ok_or(Rejection::BadSignature)?;
        Ok(verify_with_key(token, previous, &self.rules)?)
    }

    async fn key_for(&self, header: &TokenHeader) -> Result<Arc<VerifyingKey>, VerifyError> {
        match (header.alg.as_str(), &self.hs256, &self.jwks) {
            ("HS256", Some(key), _) => Ok(key.clone()),
            ("RS256", _, Some(jwks)) => jwks_key(jwks, header, Algorithm::RS256).await,
            ("ES256", _, Some(jwks)) => jwks_key(jwks, header, Algorithm::ES256).await,
            (other, _, _) => Err(Rejection::AlgorithmNotAllowed(clip(other)).into()),
        }
    }
}

fn hs256_key(secret: Option<&Secret>) -> Result<Option<VerifyingKey>, BuildError> {
    secret
        .map(|s| VerifyingKey::hs256(s.expose()))
        .transpose()
        .map_err(BuildError::Secret)
}

async fn jwks_key(
    jwks: &JwksCache,
    header: &TokenHeader,
    alg: Algorithm,
) -> Result<Arc<VerifyingKey>, VerifyError> {
    let kid = header.kid.as_deref().ok_or(Rejection::MissingKid)?;
    let key = jwks.key(kid).await.map_err(|e| match e {
        KeyLookupError::UnknownKid => VerifyError::from(Rejection::UnknownKid(clip(kid))),
        KeyLookupError::Unavailable(e) => VerifyError::Unavailable(e),
    })?;
    if key.alg != alg {
        return Err(Rejection::KeyAlgorithmMismatch {
            kid: clip(kid),
            key: key.alg,
            token: alg,
        }
        .into());
    }
    Ok(key)
}

/// The `sub` a token claims, unverified: for deny logs only, never for a decision.
pub fn claimed_subject(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Sub {
        sub: Option<String>,
    }
    let claims = jsonwebtoken::dangerous::insecure_decode_claims::<Sub>(token).ok()?;
    claims.sub.map(|s| clip(&s))
}

/// Attacker-controlled text, bounded before it reaches a log line.
fn clip(text: &str) -> String {
    text.chars().take(64).collect()
}

#[cfg(test)]
mod tests;
