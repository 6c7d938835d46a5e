//! What a client may send on the `$default` route, and what it gets back.

use serde::{Deserialize, Serialize};

/// Larger client messages are refused: clients only send small control messages, and API
/// Gateway would pass up to 128 KB to the function.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 4 * 1024;

/// At most this many characters of what a client sent are echoed in a reply or a log line.
pub const MAX_ECHO_CHARS: usize = 120;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum ClientMessage {
    Ping,
}

/// A reply sent back on the socket (through the `$default` route response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Reply {
    Pong,
    Error { message: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error("message is empty; send JSON such as {{\"action\":\"ping\"}}")]
    Empty,
    #[error("message is {0} bytes; the limit is {MAX_CLIENT_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("message is not JSON: {0}")]
    Malformed(String),
    #[error("message has no \"action\"; supported actions: ping")]
    NoAction,
    #[error("unknown action {}; supported actions: ping", echo(.0))]
    UnknownAction(String),
}

/// `text` quoted and escaped, cut to [`MAX_ECHO_CHARS`] characters (marked with `…`).
fn echo(text: &str) -> String {
    let quoted = format!("{text:?}");
    match quoted.char_indices().nth(MAX_ECHO_CHARS) {
        Some((cut, _)) => format!("{}…", &quoted[..cut]),
        None => quoted,
    }
}

impl ClientMessage {
    pub fn parse(body: Option<&str>) -> Result<Self, ClientError> {
        let body = body.map(str::trim).filter(|b| !b.is_empty());
        let body = body.ok_or(ClientError::Empty)?;
        if body.len() > MAX_CLIENT_MESSAGE_BYTES {
            return Err(ClientError::TooLarge(body.len()));
        }
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        let action = match value.get("action") {
            Some(serde_json::Value::String(action)) => action.clone(),
            Some(other) => return Err(ClientError::UnknownAction(other.to_string())),
            None => return Err(ClientError::NoAction),
        };
        serde_json::from_value(value).map_err(|_| ClientError::UnknownAction(action))
    }
}

impl Reply {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("replies always serialize")
    }
}

impl From<ClientError> for Reply {
    fn from(error: ClientError) -> Self {
        Reply::Error {
            message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_is_understood() {
        assert_eq!(
            ClientMessage::parse(Some(r#"{"action":"ping"}"#)),
            Ok(ClientMessage::Ping)
        );
        assert_eq!(
            ClientMessage::parse(Some(r#" {"action":"ping","extra":1} "#)),
            Ok(ClientMessage::Ping)
        );
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let cases = [
            (None, ClientError::Empty),
            (Some(""), ClientError::Empty),
            (Some("{nope"), ClientError::Malformed(String::new())),
            (Some("[1,2]"), ClientError::NoAction),
            (Some(r#"{"type":"ping"}"#), ClientError::NoAction),
            (
                Some(r#"{"action":"subscribe"}"#),
                ClientError::UnknownAction("subscribe".into()),
            ),
            (
                Some(r#"{"action":42}"#),
                ClientError::UnknownAction("42".into()),
            ),
        ];
        for (body, expected) in cases {
            let got = ClientMessage::parse(body).unwrap_err();
            match (&got, &expected) {
                (ClientError::Malformed(_), ClientError::Malformed(_)) => {}
                _ => assert_eq!(got, expected, "{body:?}"),
            }
        }
        let big = format!(r#"{{"action":"ping","pad":"{}"}}"#, "x".repeat(5000));
        assert!(matches!(
            ClientMessage::parse(Some(&big)),
            Err(ClientError::TooLarge(_))
        ));
    }

    #[test]
    fn a_long_action_is_echoed_cut_short() {
        let action = "x".repeat(4000);
        let body = format!(r#"{{"action":"{action}"}}"#);
        let error = ClientMessage::parse(Some(&body)).unwrap_err();
        assert_eq!(error, ClientError::UnknownAction(action));
        let text = error.to_string();
        assert!(text.len() < MAX_ECHO_CHARS + 60, "{} bytes", text.len());
        assert!(
            text.starts_with(r#"unknown action "xxx"#) && text.contains("…;"),
            "{text}"
        );
        let reply = Reply::from(error).to_json();
        assert!(reply.len() < MAX_ECHO_CHARS + 100, "{reply}");

        let object = format!(r#"{{"action":{{"k":"{}"}}}}"#, "\\u0001".repeat(600));
        let text = ClientMessage::parse(Some(&object)).unwrap_err().to_string();
        assert!(text.chars().count() < MAX_ECHO_CHARS + 60, "{text}");
    }

    #[test]
    fn replies_have_the_wire_shape() {
        assert_eq!(Reply::Pong.to_json(), r#"{"type":"PONG"}"#);
        assert_eq!(
            Reply::from(ClientError::NoAction).to_json(),
            r#"{"type":"ERROR","message":"message has no \"action\"; supported actions: ping"}"#
        );
    }
}
