//! What woke the processor: a stream batch, ticks from the tick queue, or the schedule. One
//! function serves all three, so the rounds are started by one piece of code with one set of
//! permissions.

use aws_lambda_events::dynamodb::Event;
use serde_json::Value;

#[derive(Debug)]
pub enum Trigger {
    Stream(Box<Event>),
    /// SQS messages from the tick queue (how many): each means "see whether a round should
    /// start".
    Ticks(usize),
    /// EventBridge's scheduled event: the safety net, and the rounds' status metrics.
    Schedule,
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("not a DynamoDB stream batch, an SQS batch or a scheduled event: {0}")]
    Unknown(String),
    #[error("a DynamoDB stream batch that does not decode: {0}")]
    Stream(#[from] serde_json::Error),
}

impl Trigger {
    pub fn of(event: Value) -> Result<Self, TriggerError> {
        let source = event
            .pointer("/Records/0/eventSource")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        match source.as_str() {
            "aws:dynamodb" => Ok(Self::Stream(Box::new(serde_json::from_value(event)?))),
            "aws:sqs" => Ok(Self::Ticks(event["Records"].as_array().map_or(0, Vec::len))),
            _ if event.get("source").and_then(Value::as_str) == Some("aws.events") => {
                Ok(Self::Schedule)
            }
            _ => {
                let mut shown = event.to_string();
                shown.truncate(200);
                Err(TriggerError::Unknown(shown))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_source_is_told_apart() {
        let record = crate::update::tests::record(
            "INSERT",
            "100",
            crate::update::tests::seed_image(),
            serde_json::Value::Null,
        );
        let stream = json!({ "Records": [record] });
        assert!(matches!(Trigger::of(stream), Ok(Trigger::Stream(_))));
        let ticks = json!({"Records": [{"eventSource": "aws:sqs", "body": "{}"}, {"eventSource": "aws:sqs"}]});
        assert!(matches!(Trigger::of(ticks), Ok(Trigger::Ticks(2))));
        let schedule =
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert!(matches!(Trigger::of(schedule), Ok(Trigger::Schedule)));
        let other = Trigger::of(json!({"hello": 1})).unwrap_err();
        assert!(other.to_string().contains("hello"), "{other}");
    }
}
