//! What a client may send on the `$default` route, and what it gets back.

use serde::Serialize;

use crate::filter::{Filter, FilterError};

/// Larger client messages are refused: clients only send small control messages, and API
/// Gateway would pass up to 128 KB to the function.
pub const MAX_CLIENT_MESSAGE_BYTES: usize = 4 * 1024;

/// At most this many characters of what a client sent are echoed in a reply or a log line.
pub const MAX_ECHO_CHARS: usize = 120;

/// The actions, as `ClientError` lists them.
const ACTIONS: &str = "ping, subscribe, snapshot";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMessage {
    Ping,
    /// Replaces the connection's filter.
    Subscribe(Filter),
    /// Asks for the current state of every entity a filter matches: the one sent with it
    /// (either list present, even empty: a client sends its filter along, so that a snapshot
    /// handled before its `subscribe` still matches it), else the connection's.
    Snapshot(Option<Filter>),
}

/// A reply sent back on the socket (through the `$default` route response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "UPPERCASE")]
pub enum Reply {
    Pong,
    /// The filter now in force, echoed.
    Subscribed(Filter),
    Error {
        message: String,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClientError {
    #[error("message is empty; send JSON such as {{\"action\":\"ping\"}}")]
    Empty,
    #[error("message is {0} bytes; the limit is {MAX_CLIENT_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("message is not JSON: {0}")]
    Malformed(String),
    #[error("message has no \"action\"; supported actions: {ACTIONS}")]
    NoAction,
    #[error("unknown action {}; supported actions: {ACTIONS}", echo(.0))]
    UnknownAction(String),
    #[error("invalid filter (the filter is unchanged): {0}")]
    Filter(#[from] FilterError),
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
            Some(serde_json::Value::String(action)) => action.as_str(),
            Some(other) => return Err(ClientError::UnknownAction(other.to_string())),
            None => return Err(ClientError::NoAction),
        };
        match action {
            "ping" => Ok(Self::Ping),
            "subscribe" => Ok(Self::Subscribe(Filter::from_message(&value)?)),
            "snapshot" => {
                let given = value.get("entityTypes").is_some() || value.get("entityIds").is_some();
                Ok(Self::Snapshot(
                    given.then(|| Filter::from_message(&value)).transpose()?,
                ))
            }
            other => Err(ClientError::UnknownAction(other.to_owned())),
        }
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
    fn subscribe_carries_its_filter_and_snapshot_is_understood() {
        assert_eq!(
            ClientMessage::parse(Some(
                r#"{"action":"subscribe","entityTypes":["stream"],"entityIds":["b","a"]}"#
            )),
            Ok(ClientMessage::Subscribe(Filter {
                entity_types: Some(vec!["stream".into()]),
                entity_ids: Some(vec!["a".into(), "b".into()]),
            }))
        );
        assert_eq!(
            ClientMessage::parse(Some(r#"{"action":"subscribe"}"#)),
            Ok(ClientMessage::Subscribe(Filter::EVERYTHING))
        );
        assert_eq!(
            ClientMessage::parse(Some(r#"{"action":"snapshot"}"#)),
            Ok(ClientMessage::Snapshot(None))
        );
        assert_eq!(
            ClientMessage::parse(Some(r#"{"action":"snapshot","entityTypes":[]}"#)),
            Ok(ClientMessage::Snapshot(Some(Filter::EVERYTHING)))
        );
        assert_eq!(
            ClientMessage::parse(Some(r#"{"action":"snapshot","entityIds":["a"]}"#)),
            Ok(ClientMessage::Snapshot(Some(Filter {
                entity_types: None,
                entity_ids: Some(vec!["a".into()]),
            })))
        );
        let subscribed = Reply::Subscribed(Filter {
            entity_types: Some(vec!["stream".into()]),
            entity_ids: None,
        });
        assert_eq!(
            subscribed.to_json(),
            r#"{"type":"SUBSCRIBED","entityTypes":["stream"]}"#
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
                Some(r#"{"action":"unsubscribe"}"#),
                ClientError::UnknownAction("unsubscribe".into()),
            ),
            (
                Some(r#"{"action":"subscribe","entityTypes":"stream"}"#),
                ClientError::Filter(FilterError::NotStrings {
                    list: "entityTypes",
                }),
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
        assert!(text.len() < MAX_ECHO_CHARS + 80, "{} bytes", text.len());
        assert!(
            text.starts_with(r#"unknown action "xxx"#) && text.contains("…;"),
            "{text}"
        );
        let reply = Reply::from(error).to_json();
        assert!(reply.len() < MAX_ECHO_CHARS + 120, "{reply}");

        let object = format!(r#"{{"action":{{"k":"{}"}}}}"#, "\\u0001".repeat(600));
        let text = ClientMessage::parse(Some(&object)).unwrap_err().to_string();
        assert!(text.chars().count() < MAX_ECHO_CHARS + 80, "{text}");
    }

    #[test]
    fn replies_have_the_wire_shape() {
        assert_eq!(Reply::Pong.to_json(), r#"{"type":"PONG"}"#);
        assert_eq!(
            Reply::from(ClientError::NoAction).to_json(),
            r#"{"type":"ERROR","message":"message has no \"action\"; supported actions: ping, subscribe, snapshot"}"#
        );
    }
}
