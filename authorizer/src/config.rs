//! The authorizer's configuration, from the environment (tests pass a map).

use std::fmt;
use std::time::Duration;

pub use platform::env::{ConfigError as VarError, Env, process_env};

use crate::verify::ClaimRules;

/// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits).
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error(transparent)]
    Var(#[from] VarError),
    #[error(
        "AUTH_MODE={mode:?}: the authorizer runs only with AUTH_MODE=jwt (with AUTH_MODE=none it is not deployed)"
    )]
    NotJwtMode { mode: String },
    #[error(
        "AUTH_MODE=jwt needs a key source: set AUTH_JWT_SECRET (HS256) and/or AUTH_JWKS_URL (RS256/ES256)"
    )]
    NoKeySource,
    #[error("AUTH_JWT_SECRET_PREVIOUS is set without AUTH_JWT_SECRET")]
    PreviousWithoutCurrent,
    /// The value is never echoed: it is a secret.
    #[error(
        "environment variable AUTH_JWT_SECRET is too short: {len} bytes, at least {MIN_SECRET_BYTES} needed"
    )]
    WeakSecret { len: usize },
}

fn invalid(name: &'static str, value: &str, reason: String) -> VarError {
    VarError::Invalid {
        name,
        value: value.to_owned(),
        reason,
    }
}

/// `AUTH_MODE`: `none` (the default: no authorizer is deployed) or `jwt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    None,
    Jwt,
}

/// The HS256 shared secret; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(ConfigError::WeakSecret { len: bytes.len() });
        }
        Ok(Self(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where RS256 / ES256 keys come from and how the cache treats the issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    pub url: String,
    /// The whole fetch (connect, headers, body) is bounded by this.
    pub fetch_timeout: Duration,
    /// At most one fetch per interval, whatever kids tokens name.
    pub min_refresh_interval: Duration,
    /// Keys older than this are refetched (a removed key stops verifying).
    pub max_age: Duration,
}

/// Everything the verifier needs, when `AUTH_MODE=jwt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub hs256_secret: Option<Secret>,
    /// `AUTH_JWT_SECRET_PREVIOUS`: the secret before the last rotation, still accepted.
    pub hs256_previous_secret: Option<Secret>,
    pub jwks: Option<JwksConfig>,
    pub claims: ClaimRules,
}

pub fn auth_mode<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<AuthMode, VarError> {
    match env.optional("AUTH_MODE").as_deref() {
        None | Some("none") => Ok(AuthMode::None),
        Some("jwt") => Ok(AuthMode::Jwt),
        Some(other) => Err(invalid("AUTH_MODE", other, "must be none or jwt".into())),
    }
}

/// The configuration of a deployed authorizer: fails unless `AUTH_MODE=jwt` with a key source.
pub fn load<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<AuthConfig, ConfigError> {
    if auth_mode(env)? != AuthMode::Jwt {
        let mode = env.optional("AUTH_MODE").unwrap_or_else(|| "none".into());
        return Err(ConfigError::NotJwtMode { mode });
    }
    let hs256_secret = env
        .optional("AUTH_JWT_SECRET")
        .map(Secret::new)
        .transpose()?;
    let hs256_previous_secret = env
        .optional("AUTH_JWT_SECRET_PREVIOUS")
        .map(Secret::new)
        .transpose()?;
    if hs256_previous_secret.is_some() && hs256_secret.is_none() {
        return Err(ConfigError::PreviousWithoutCurrent);
    }
    let jwks = jwks_config(env)?;
    if hs256_secret.is_none() && jwks.is_none() {
        return Err(ConfigError::NoKeySource);
    }
    Ok(AuthConfig {
        hs256_secret,
        hs256_previous_secret,
        jwks,
        claims: claim_rules(env)?,
    })
}

fn claim_rules<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<ClaimRules, VarError> {
    let audiences = env
        .optional("AUTH_AUDIENCE")
        .map(|list| split_list(&list))
        .unwrap_or_default();
    Ok(ClaimRules {
        issuer: env.optional("AUTH_ISSUER"),
        audiences,
        leeway_secs: env.number_or("AUTH_LEEWAY_SECS", 30, 0..=300)?,
    })
}

fn jwks_config<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<JwksConfig>, VarError> {
    let Some(url) = env.optional("AUTH_JWKS_URL") else {
        return Ok(None);
    };
    check_jwks_url(&url)?;
    let secs = |name, default, range| env.number_or(name, default, range).map(Duration::from_secs);
    Ok(Some(JwksConfig {
        url,
        fetch_timeout: Duration::from_millis(env.number_or(
            "AUTH_JWKS_TIMEOUT_MS",
            3000,
            100..=10_000,
        )?),
        min_refresh_interval: secs("AUTH_JWKS_MIN_REFRESH_SECS", 30, 1..=3600)?,
        max_age: secs("AUTH_JWKS_MAX_AGE_SECS", 3600, 60..=86_400)?,
    }))
}

/// Keys must come over TLS; plain http only to loopback (the local stack, tests).
fn check_jwks_url(url: &str) -> Result<(), VarError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|e| invalid("AUTH_JWKS_URL", url, e.to_string()))?;
    let loopback = match parsed.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    };
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(invalid(
            "AUTH_JWKS_URL",
            url,
            "must be https:// (http:// only to loopback)".into(),
        )),
    }
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
pub(crate) use platform::env::pairs_env as map_env;

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn mode_defaults_to_none_and_the_bin_refuses_it() {
        let env = map_env(&[]);
        assert_eq!(auth_mode(&env), Ok(AuthMode::None));
        assert_eq!(
            load(&env),
            Err(ConfigError::NotJwtMode {
                mode: "none".into()
            })
        );
    }

    #[test]
    fn unknown_mode_names_the_variable() {
        let err = auth_mode(&map_env(&[("AUTH_MODE", "oauth")])).unwrap_err();
        assert!(err.to_string().contains("AUTH_MODE"), "{err}");
    }

    #[test]
    fn jwt_mode_needs_a_key_source() {
        let env = map_env(&[("AUTH_MODE", "jwt")]);
        assert_eq!(load(&env), Err(ConfigError::NoKeySource));
        let message = ConfigError::NoKeySource.to_string();
        assert!(message.contains("AUTH_JWT_SECRET") && message.contains("AUTH_JWKS_URL"));
    }

    #[test]
    fn secret_only_with_defaults() {
        let config = load(&map_env(&[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWT_SECRET", SECRET),
        ]))
        .unwrap();
        assert_eq!(config.hs256_secret.unwrap().expose(), SECRET.as_bytes());
        assert_eq!(config.hs256_previous_secret, None);
        assert_eq!(config.jwks, None);
        assert_eq!(config.claims, ClaimRules::default());
        assert_eq!(config.claims.leeway_secs, 30);
    }

    #[test]
    fn a_previous_secret_needs_a_current_one() {
        let config = load(&map_env(&[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWT_SECRET", SECRET),
            (
                "AUTH_JWT_SECRET_PREVIOUS",
                "fedcba9876543210fedcba9876543210",
            ),
        ]))
        .unwrap();
        assert!(config.hs256_previous_secret.is_some());
        let err = load(&map_env(&[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWKS_URL", "https://issuer.example/jwks.json"),
            ("AUTH_JWT_SECRET_PREVIOUS", SECRET),
        ]))
        .unwrap_err();
        assert_eq!(err, ConfigError::PreviousWithoutCurrent);
    }

    #[test]
    fn short_secret_is_refused_without_echoing_it() {
        let err = load(&map_env(&[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWT_SECRET", "hunter2"),
        ]))
        .unwrap_err();
        assert_eq!(err, ConfigError::WeakSecret { len: 7 });
        assert!(!err.to_string().contains("hunter2"));
        assert!(!format!("{:?}", Secret::new(SECRET).unwrap()).contains(SECRET));
    }

    #[test]
    fn jwks_issuer_audience_and_knobs() {
        let config = load(&map_env(&[
            ("AUTH_MODE", "jwt"),
            (
                "AUTH_JWKS_URL",
                "https://issuer.example/.well-known/jwks.json",
            ),
            ("AUTH_ISSUER", "https://issuer.example"),
            ("AUTH_AUDIENCE", "dashboards, ops"),
            ("AUTH_JWKS_TIMEOUT_MS", "500"),
            ("AUTH_JWKS_MIN_REFRESH_SECS", "10"),
        ]))
        .unwrap();
        let jwks = config.jwks.unwrap();
        assert_eq!(jwks.fetch_timeout, Duration::from_millis(500));
        assert_eq!(jwks.min_refresh_interval, Duration::from_secs(10));
        assert_eq!(jwks.max_age, Duration::from_secs(3600));
        assert_eq!(
            config.claims.issuer.as_deref(),
            Some("https://issuer.example")
        );
        assert_eq!(config.claims.audiences, ["dashboards", "ops"]);
    }

    #[test]
    fn jwks_url_must_be_tls_unless_loopback() {
        let load_url = |url| load(&map_env(&[("AUTH_MODE", "jwt"), ("AUTH_JWKS_URL", url)]));
        let err = load_url("http://issuer.example/jwks.json").unwrap_err();
        assert!(err.to_string().contains("AUTH_JWKS_URL"), "{err}");
        assert!(load_url("http://127.0.0.1:9000/jwks.json").is_ok());
        assert!(load_url("http://localhost:9000/jwks.json").is_ok());
        assert!(load_url("not a url").is_err());
    }

    #[test]
    fn out_of_range_number_names_the_variable() {
        let err = load(&map_env(&[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWT_SECRET", SECRET),
            ("AUTH_LEEWAY_SECS", "9000"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("AUTH_LEEWAY_SECS"), "{err}");
    }
}
