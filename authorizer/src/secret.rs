//! The HS256 secret from Secrets Manager (`AUTH_JWT_SECRET_ARN`), read once at cold start so
//! that the value never sits in the function's configuration. `AUTH_JWT_SECRET` (the value
//! itself) is for the local stack and tests.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;

use crate::config::Env;

pub const SECRET_ARN_VAR: &str = "AUTH_JWT_SECRET_ARN";
pub const SECRET_VAR: &str = "AUTH_JWT_SECRET";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("set {SECRET_ARN_VAR} or {SECRET_VAR}, not both")]
    Both,
    #[error("Secrets Manager GetSecretValue on {arn} failed: {detail}")]
    Fetch { arn: String, detail: String },
    #[error("secret {arn} has no SecretString (a binary secret is not supported)")]
    NotAString { arn: String },
}

/// The secret's ARN when the secret is to be fetched.
pub fn arn_to_fetch<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<Option<String>, SecretError> {
    match (env.optional(SECRET_ARN_VAR), env.optional(SECRET_VAR)) {
        (Some(_), Some(_)) => Err(SecretError::Both),
        (arn, _) => Ok(arn),
    }
}

/// The current value of the secret at `arn`.
pub async fn fetch(client: &Client, arn: &str) -> Result<String, SecretError> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| SecretError::Fetch {
            arn: arn.to_owned(),
            detail: DisplayErrorContext(&e).to_string(),
        })?;
    output.secret_string.ok_or_else(|| SecretError::NotAString {
        arn: arn.to_owned(),
    })
}

/// The process environment with `AUTH_JWT_SECRET` answered by `value`: the configuration then
/// reads the fetched secret exactly as it reads a local one.
pub fn env_with_secret(value: Option<String>) -> Env<impl Fn(&str) -> Option<String>> {
    Env::new(move |name: &str| match (name, &value) {
        (SECRET_VAR, Some(value)) => Some(value.clone()),
        _ => std::env::var(name).ok(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::map_env;

    #[test]
    fn the_arn_is_fetched_only_when_given_and_not_beside_a_value() {
        assert_eq!(arn_to_fetch(&map_env(&[])).unwrap(), None);
        assert_eq!(
            arn_to_fetch(&map_env(&[(SECRET_VAR, "x")])).unwrap(),
            None,
            "a local value needs no fetch"
        );
        assert_eq!(
            arn_to_fetch(&map_env(&[(
                SECRET_ARN_VAR,
                "arn:aws:secretsmanager:r:1:secret:s"
            )]))
            .unwrap()
            .as_deref(),
            Some("arn:aws:secretsmanager:r:1:secret:s")
        );
        assert!(matches!(
            arn_to_fetch(&map_env(&[(SECRET_ARN_VAR, "arn"), (SECRET_VAR, "x")])),
            Err(SecretError::Both)
        ));
    }

    #[test]
    fn a_fetched_secret_answers_for_the_value_variable() {
        let env = env_with_secret(Some("fetched".into()));
        assert_eq!(env.optional(SECRET_VAR).as_deref(), Some("fetched"));
        let env = env_with_secret(None);
        assert_eq!(
            env.optional(SECRET_VAR),
            std::env::var(SECRET_VAR)
                .ok()
                .filter(|v| !v.trim().is_empty())
        );
    }
}
