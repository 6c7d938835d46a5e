//! What every Lambda bin does before its first event.

use std::fmt::Display;

use crate::env::ConfigError;

/// Telemetry first (so that what follows is logged), then the function's configuration, then
/// the SDK configuration. A bad configuration is logged and returned: the function stops at
/// start with the variable named, instead of failing every event.
pub async fn start<C, E>(
    read_config: impl FnOnce() -> Result<C, E>,
) -> Result<(C, aws_config::SdkConfig), E>
where
    E: From<ConfigError> + Display,
{
    let config = crate::telemetry::init_function()
        .map_err(E::from)
        .and_then(|()| read_config())
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    Ok((config, crate::aws::sdk_config().await))
}
