//! The canary function's environment.

use std::time::Duration;

use authorizer::AuthMode;
use authorizer::config::Secret;
use authorizer::secret::{SECRET_ARN_VAR, SECRET_VAR};
use platform::env::{ConfigError, Env, process_env};

/// The heartbeat's key in the metrics table unless `CANARY_ENTITY_ID` says otherwise.
pub const DEFAULT_ENTITY_ID: &str = "canary-heartbeat";
/// How long a run waits for its update by default: the production stream mapping alone may
/// hold a record for its 5 s batching window.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum CanaryConfigError {
    #[error(transparent)]
    Var(#[from] ConfigError),
    #[error(
        "AUTH_MODE=jwt: the canary signs its own HS256 token, so it needs {SECRET_ARN_VAR} (or {SECRET_VAR} locally); a stack verifying JWKS keys only cannot run it"
    )]
    NoSecret,
    #[error("set {SECRET_ARN_VAR} or {SECRET_VAR}, not both")]
    BothSecrets,
    /// The value is never echoed: it is a secret.
    #[error("{SECRET_VAR} is refused: {0}")]
    WeakSecret(authorizer::ConfigError),
}

/// Where the HS256 secret comes from: its value (the local stack) or a Secrets Manager ARN,
/// read on every run so that a rotation never leaves the canary with a stale key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Value(Secret),
    Arn(String),
}

/// What the canary's token must carry for the authorizer to accept it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSettings {
    pub secret: SecretSource,
    /// `AUTH_ISSUER`, when the authorizer checks `iss`.
    pub issuer: Option<String>,
    /// The first of `AUTH_AUDIENCE`, when the authorizer checks `aud`.
    pub audience: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryConfig {
    /// `CANARY_WS_URL`: the stage's `wss://{api-id}.execute-api.{region}.amazonaws.com/{stage}`.
    pub ws_url: String,
    /// `METRICS_TABLE_NAME`: the table whose stream the processor reads.
    pub metrics_table: String,
    /// `CANARY_ENTITY_ID`: the heartbeat's `entity_id`.
    pub entity_id: String,
    /// `CANARY_TIMEOUT_MS`: how long a run waits for its update (the invocation's own deadline
    /// may cut it shorter).
    pub timeout: Duration,
    /// With `AUTH_MODE=jwt`, how the canary signs its token.
    pub token: Option<TokenSettings>,
}

impl CanaryConfig {
    pub fn from_env() -> Result<Self, CanaryConfigError> {
        Self::read(&process_env())
    }

    pub fn read<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, CanaryConfigError> {
        let ws_url = env.required(
            "CANARY_WS_URL",
            "the stage's WebSocket URL, wss://{api-id}.execute-api.{region}.amazonaws.com/{stage}",
        )?;
        if !(ws_url.starts_with("wss://") || ws_url.starts_with("ws://")) {
            return Err(ConfigError::Invalid {
                name: "CANARY_WS_URL",
                value: ws_url,
                reason: "must be a wss:// URL ending in the stage".into(),
            }
            .into());
        }
        Ok(Self {
            ws_url: ws_url.trim_end_matches('/').to_owned(),
            metrics_table: env.required(
                "METRICS_TABLE_NAME",
                "the metrics table the processor's stream belongs to",
            )?,
            entity_id: env.string_or("CANARY_ENTITY_ID", DEFAULT_ENTITY_ID),
            timeout: Duration::from_millis(env.number_or(
                "CANARY_TIMEOUT_MS",
                u64::try_from(DEFAULT_TIMEOUT.as_millis()).unwrap_or(u64::MAX),
                1_000..=600_000,
            )?),
            token: token_settings(env)?,
        })
    }
}

fn token_settings<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<TokenSettings>, CanaryConfigError> {
    if authorizer::config::auth_mode(env)? == AuthMode::None {
        return Ok(None);
    }
    let secret = match (env.optional(SECRET_ARN_VAR), env.optional(SECRET_VAR)) {
        (Some(_), Some(_)) => return Err(CanaryConfigError::BothSecrets),
        (Some(arn), None) => SecretSource::Arn(arn),
        (None, Some(value)) => {
            SecretSource::Value(Secret::new(value).map_err(CanaryConfigError::WeakSecret)?)
        }
        (None, None) => return Err(CanaryConfigError::NoSecret),
    };
    let audience = env.optional("AUTH_AUDIENCE").and_then(|list| {
        list.split(',')
            .map(str::trim)
            .find(|a| !a.is_empty())
            .map(str::to_owned)
    });
    Ok(Some(TokenSettings {
        secret,
        issuer: env.optional("AUTH_ISSUER"),
        audience,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::env::pairs_env;

    const BASE: [(&str, &str); 2] = [
        (
            "CANARY_WS_URL",
            "wss://abc123.execute-api.us-east-1.amazonaws.com/prod/",
        ),
        ("METRICS_TABLE_NAME", "metrics"),
    ];
    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(extra: &[(&str, &str)]) -> Result<CanaryConfig, CanaryConfigError> {
        let mut pairs = BASE.to_vec();
        pairs.extend_from_slice(extra);
        CanaryConfig::read(&pairs_env(&pairs))
    }

    #[test]
    fn defaults_without_authentication() {
        let c = config(&[]).unwrap();
        assert_eq!(
            c.ws_url,
            "wss://abc123.execute-api.us-east-1.amazonaws.com/prod"
        );
        assert_eq!(c.entity_id, "canary-heartbeat");
        assert_eq!(c.timeout, Duration::from_secs(20));
        assert_eq!(c.token, None);
        let c = config(&[("CANARY_TIMEOUT_MS", "5000"), ("CANARY_ENTITY_ID", "hb")]).unwrap();
        assert_eq!(
            (c.timeout, c.entity_id.as_str()),
            (Duration::from_secs(5), "hb")
        );
    }

    #[test]
    fn errors_name_the_variable() {
        for missing in ["CANARY_WS_URL", "METRICS_TABLE_NAME"] {
            let pairs: Vec<_> = BASE
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = CanaryConfig::read(&pairs_env(&pairs)).unwrap_err();
            assert!(err.to_string().contains(missing), "{err}");
        }
        let err = config(&[("CANARY_WS_URL", "https://abc/prod")]).unwrap_err();
        assert!(err.to_string().contains("wss://"), "{err}");
        let err = config(&[("CANARY_TIMEOUT_MS", "10")]).unwrap_err();
        assert!(err.to_string().contains("CANARY_TIMEOUT_MS"), "{err}");
    }

    #[test]
    fn jwt_mode_signs_with_the_authorizers_secret_and_claims() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt-a1B2c3";
        let c = config(&[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWT_SECRET_ARN", arn),
            ("AUTH_ISSUER", "https://issuer.example"),
            ("AUTH_AUDIENCE", " , dashboards, ops"),
        ])
        .unwrap();
        assert_eq!(
            c.token,
            Some(TokenSettings {
                secret: SecretSource::Arn(arn.into()),
                issuer: Some("https://issuer.example".into()),
                audience: Some("dashboards".into()),
            })
        );
        let local = config(&[("AUTH_MODE", "jwt"), ("AUTH_JWT_SECRET", SECRET)]).unwrap();
        assert!(matches!(
            local.token.unwrap().secret,
            SecretSource::Value(s) if s.expose() == SECRET.as_bytes()
        ));
    }

    #[test]
    fn jwt_mode_without_a_usable_secret_is_refused_without_echoing_it() {
        let err = config(&[("AUTH_MODE", "jwt")]).unwrap_err();
        assert!(matches!(err, CanaryConfigError::NoSecret), "{err}");
        let err = config(&[
            ("AUTH_MODE", "jwt"),
            ("AUTH_JWT_SECRET", SECRET),
            ("AUTH_JWT_SECRET_ARN", "arn"),
        ])
        .unwrap_err();
        assert!(matches!(err, CanaryConfigError::BothSecrets), "{err}");
        let err = config(&[("AUTH_MODE", "jwt"), ("AUTH_JWT_SECRET", "hunter2")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(config(&[("AUTH_MODE", "oauth")]).is_err());
    }
}
