//! The HS256 secret from Secrets Manager (`AUTH_JWT_SECRET_ARN`), read once at cold start so
//! that the value never sits in the function's configuration. `AUTH_JWT_SECRET` (the value
//! itself) is for the local stack and tests.

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::DisplayErrorContext;

use crate::config::Env;

pub const SECRET_ARN_VAR: &str = "AUTH_JWT_SECRET_ARN";
pub const SECRET_VAR: &str = "AUTH_JWT_SECRET";
pub const PREVIOUS_SECRET_VAR: &str = "AUTH_JWT_SECRET_PREVIOUS";
/// The version stage Secrets Manager gives the value a rotation replaced.
const PREVIOUS_STAGE: &str = "AWSPREVIOUS";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("set {SECRET_ARN_VAR} or {SECRET_VAR}, not both")]
    Both,
    #[error("Secrets Manager GetSecretValue on {arn} failed: {detail}")]
    Fetch { arn: String, detail: String },
    #[error("secret {arn} has no SecretString (a binary secret is not supported)")]
    NotAString { arn: String },
    #[error("secret {arn} has no version {stage}")]
    NoVersion { arn: String, stage: String },
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

/// The current value of the secret at `arn`, and the one before the last rotation if the
/// secret has one (its `AWSPREVIOUS` version): tokens signed with it stay valid until they
/// expire.
pub async fn fetch_both(
    client: &Client,
    arn: &str,
) -> Result<(String, Option<String>), SecretError> {
    let current = fetch(client, arn, None).await?;
    let previous = match fetch(client, arn, Some(PREVIOUS_STAGE)).await {
        Ok(previous) => Some(previous),
        Err(SecretError::NoVersion { .. }) => None,
        Err(other) => return Err(other),
    };
    Ok((current, previous))
}

/// The value of the secret at `arn` (its current version, or the version `stage`).
pub async fn fetch(client: &Client, arn: &str, stage: Option<&str>) -> Result<String, SecretError> {
    let output = client
        .get_secret_value()
        .secret_id(arn)
        .set_version_stage(stage.map(str::to_owned))
        .send()
        .await
        .map_err(|e| {
            let missing = e
                .as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception());
            match (stage, missing) {
                (Some(stage), true) => SecretError::NoVersion {
                    arn: arn.to_owned(),
                    stage: stage.to_owned(),
                },
                _ => SecretError::Fetch {
                    arn: arn.to_owned(),
                    detail: DisplayErrorContext(&e).to_string(),
                },
            }
        })?;
    output.secret_string.ok_or_else(|| SecretError::NotAString {
        arn: arn.to_owned(),
    })
}

/// The process environment with `AUTH_JWT_SECRET` (and `AUTH_JWT_SECRET_PREVIOUS`) answered
/// by a fetched `(current, previous)`: the configuration then reads the fetched secret exactly
/// as it reads a local one.
pub fn env_with_secret(
    fetched: Option<(String, Option<String>)>,
) -> Env<impl Fn(&str) -> Option<String>> {
    Env::new(move |name: &str| match (name, &fetched) {
        (SECRET_VAR, Some((current, _))) => Some(current.clone()),
        (PREVIOUS_SECRET_VAR, Some((_, previous))) => previous.clone(),
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
    fn a_fetched_secret_answers_for_the_value_variables() {
        let fetched = ("fetched".to_owned(), Some("older".to_owned()));
        let env = env_with_secret(Some(fetched));
        assert_eq!(env.optional(SECRET_VAR).as_deref(), Some("fetched"));
        assert_eq!(env.optional(PREVIOUS_SECRET_VAR).as_deref(), Some("older"));
        let env = env_with_secret(Some(("fetched".to_owned(), None)));
        assert_eq!(env.optional(PREVIOUS_SECRET_VAR), None);
        let env = env_with_secret(None);
        assert_eq!(
            env.optional(SECRET_VAR),
            std::env::var(SECRET_VAR)
                .ok()
                .filter(|v| !v.trim().is_empty())
        );
    }
}
