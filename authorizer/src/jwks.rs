//! The issuer's signing keys: fetched from a JWKS URL, cached for the life of the process,
//! refetched when a token names an unknown `kid` (at most once per interval, so a flood of
//! random kids cannot hammer the issuer) or when the keys are older than their maximum age.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::JwksConfig;
use crate::verify::VerifyingKey;

/// A JWK Set is a few KB; anything far larger is not one.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum JwksError {
    #[error("JWKS fetch timed out after {0:?}")]
    Timeout(Duration),
    #[error("JWKS request failed: {0}")]
    Request(String),
    #[error("JWKS endpoint answered HTTP {0}")]
    Status(u16),
    #[error("JWKS response is over {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("JWKS response is not a JWK Set: {0}")]
    Parse(String),
    #[error("JWKS never loaded; next fetch allowed in {0:?}")]
    NotLoaded(Duration),
}

/// Where the key set comes from: HTTP in production, memory in tests.
pub trait JwksSource: Send + Sync {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<Jwk>, JwksError>>;
}

/// Fetches a JWK Set over HTTPS (plain HTTP only to loopback, as config allows).
pub struct HttpJwksSource {
    client: reqwest::Client,
    url: reqwest::Url,
    timeout: Duration,
}

impl HttpJwksSource {
    pub fn new(url: &str, timeout: Duration) -> Result<Self, JwksError> {
        let url = reqwest::Url::parse(url).map_err(|e| JwksError::Request(e.to_string()))?;
        // One bound for connect + headers + body; no redirects: the URL is configured exactly.
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| JwksError::Request(e.to_string()))?;
        Ok(Self {
            client,
            url,
            timeout,
        })
    }

    async fn get(&self) -> Result<Vec<Jwk>, JwksError> {
        let mut response = self
            .client
            .get(self.url.clone())
            .send()
            .await
            .map_err(|e| self.error(&e))?;
        if !response.status().is_success() {
            return Err(JwksError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.error(&e))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(JwksError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        parse_jwks(&body)
    }

    fn error(&self, error: &reqwest::Error) -> JwksError {
        if error.is_timeout() {
            JwksError::Timeout(self.timeout)
        } else {
            JwksError::Request(error.to_string())
        }
    }
}

impl JwksSource for HttpJwksSource {
    fn fetch(&self) -> BoxFuture<'_, Result<Vec<Jwk>, JwksError>> {
        Box::pin(self.get())
    }
}

/// The keys of a JWK Set document; a key this crate cannot read is skipped, not fatal.
pub fn parse_jwks(body: &[u8]) -> Result<Vec<Jwk>, JwksError> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<serde_json::Value>,
    }
    let set: RawSet = serde_json::from_slice(body).map_err(|e| JwksError::Parse(e.to_string()))?;
    Ok(set
        .keys
        .into_iter()
        .filter_map(|key| serde_json::from_value(key).ok())
        .collect())
}

/// A signing key usable here: RSA -> RS256, EC P-256 -> ES256, and a declared `alg` or `use`
/// must agree. Anything else (HMAC `oct` keys included) never verifies a token.
pub fn usable_key(jwk: &Jwk) -> Option<(String, VerifyingKey)> {
    let kid = jwk.common.key_id.clone()?;
    if !matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    ) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    let declared_ok = jwk
        .common
        .key_algorithm
        .is_none_or(|declared| declared == KeyAlgorithm::from(alg));
    let key = DecodingKey::from_jwk(jwk).ok()?;
    declared_ok.then(|| (kid, VerifyingKey::new(alg, key)))
}

/// When the cache may go back to the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub min_interval: Duration,
    pub max_age: Duration,
}

impl From<&JwksConfig> for RefreshPolicy {
    fn from(config: &JwksConfig) -> Self {
        Self {
            min_interval: config.min_refresh_interval,
            max_age: config.max_age,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookupError {
    /// The issuer does not (or, rate-limited, not yet) publish this kid.
    UnknownKid,
    Unavailable(JwksError),
}

#[derive(Default)]
struct CacheState {
    keys: HashMap<String, Arc<VerifyingKey>>,
    loaded_at: Option<Instant>,
    attempted_at: Option<Instant>,
}

impl CacheState {
    fn fresh_key(&self, kid: &str, now: Instant, max_age: Duration) -> Option<Arc<VerifyingKey>> {
        let fresh = self.loaded_at.is_some_and(|t| now - t < max_age);
        fresh.then(|| self.keys.get(kid).cloned()).flatten()
    }

    fn wait_before_fetch(&self, now: Instant, min_interval: Duration) -> Duration {
        self.attempted_at
            .map_or(Duration::ZERO, |t| min_interval.saturating_sub(now - t))
    }
}

/// Keys by kid, shared by every invocation of the process.
pub struct JwksCache {
    source: Box<dyn JwksSource>,
    policy: RefreshPolicy,
    // A tokio mutex held across the fetch: concurrent misses wait for one fetch.
    state: Mutex<CacheState>,
}

impl JwksCache {
    pub fn new(source: Box<dyn JwksSource>, policy: RefreshPolicy) -> Self {
        Self {
            source,
            policy,
            state: Mutex::new(CacheState::default()),
        }
    }

    /// The key for `kid`, fetching the set first if it is unknown or stale and the rate
    /// limit allows. A failed refresh keeps the keys already held.
    pub async fn key(&self, kid: &str) -> Result<Arc<VerifyingKey>, KeyLookupError> {
        let mut state = self.state.lock().await;
        let now = Instant::now();
        if let Some(key) = state.fresh_key(kid, now, self.policy.max_age) {
            return Ok(key);
        }
        let wait = state.wait_before_fetch(now, self.policy.min_interval);
        let fetched = if wait.is_zero() {
            Some(self.refresh(&mut state, now).await)
        } else {
            None
        };
        if let Some(key) = state.keys.get(kid) {
            return Ok(key.clone());
        }
        match fetched {
            Some(Err(e)) => Err(KeyLookupError::Unavailable(e)),
            _ if state.loaded_at.is_none() => {
                Err(KeyLookupError::Unavailable(JwksError::NotLoaded(wait)))
            }
            _ => Err(KeyLookupError::UnknownKid),
        }
    }

    async fn refresh(&self, state: &mut CacheState, now: Instant) -> Result<(), JwksError> {
        state.attempted_at = Some(now);
        let jwks = match self.source.fetch().await {
            Ok(jwks) => jwks,
            Err(e) => {
                tracing::warn!(error = %e, held = state.keys.len(), "JWKS refresh failed");
                return Err(e);
            }
        };
        state.keys = jwks
            .iter()
            .filter_map(usable_key)
            .map(|(kid, key)| (kid, Arc::new(key)))
            .collect();
        state.loaded_at = Some(now);
        tracing::info!(
            offered = jwks.len(),
            usable = state.keys.len(),
            "JWKS refreshed"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests;
