//! The budget's windows in the state table: item `budget` / `<window start>` counts the
//! positions claimed in that window (`used`), and expires a few minutes later.

use std::ops::Range;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::Claim;

/// Seconds a window's item is kept (TTL) after it ends: long enough to look at, short enough
/// not to pile up (3,600 windows an hour).
const KEEP_SECONDS: i64 = 600;

pub struct DynamoWindows {
    client: Client,
    table: String,
}

/// What one conditional write found.
enum Written {
    /// The count after the write.
    Used(u32),
    /// The condition failed; the count the window had.
    Refused(u32),
}

impl DynamoWindows {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Claims positions of `window` as [`Claim::grant`] says, in at most three conditional
    /// writes: from the floor when the count is behind it, else after the count, else what is
    /// left.
    pub async fn claim(&self, window: i64, claim: Claim) -> Result<Range<u32>, String> {
        let mut used = 0;
        if claim.floor > 0 {
            let jump = claim.grant(0);
            if jump.is_empty() {
                return Ok(jump);
            }
            match self
                .write(
                    window,
                    "SET used = :n, expiresAt = :expires",
                    "used < :floor",
                    jump.end,
                    claim,
                )
                .await?
            {
                Written::Used(_) => return Ok(jump),
                Written::Refused(found) => used = found,
            }
        }
        for _ in 0..2 {
            let granted = claim.grant(used);
            if granted.is_empty() {
                return Ok(granted);
            }
            let n = granted.len() as u32;
            let room = claim.capacity - n;
            match self.write_add(window, n, room).await? {
                Written::Used(after) => return Ok(after - n..after),
                Written::Refused(found) => used = found,
            }
        }
        Ok(0..0)
    }

    async fn write(
        &self,
        window: i64,
        update: &str,
        condition: &str,
        value: u32,
        claim: Claim,
    ) -> Result<Written, String> {
        let result = self
            .request(window, update, condition)
            .expression_attribute_values(":n", AttributeValue::N(value.to_string()))
            .expression_attribute_values(":floor", AttributeValue::N(claim.floor.to_string()))
            .send()
            .await;
        written(result)
    }

    async fn write_add(&self, window: i64, n: u32, room: u32) -> Result<Written, String> {
        let result = self
            .request(
                window,
                "ADD used :n SET expiresAt = :expires",
                "used <= :room",
            )
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .expression_attribute_values(":room", AttributeValue::N(room.to_string()))
            .send()
            .await;
        written(result)
    }

    fn request(
        &self,
        window: i64,
        update: &str,
        condition: &str,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S("budget".into()))
            .key("sk", AttributeValue::S(window.to_string()))
            .update_expression(update)
            .condition_expression(format!("attribute_not_exists(used) OR {condition}"))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((window / 1000 + KEEP_SECONDS).to_string()),
            )
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }
}

fn used_of(item: Option<&std::collections::HashMap<String, AttributeValue>>) -> Option<u32> {
    item?.get("used")?.as_n().ok()?.parse().ok()
}

fn written<R>(
    result: Result<UpdateItemOutput, SdkError<UpdateItemError, R>>,
) -> Result<Written, String>
where
    R: std::fmt::Debug,
{
    match result {
        Ok(output) => Ok(Written::Used(used_of(output.attributes()).unwrap_or(0))),
        Err(error) => {
            if let Some(UpdateItemError::ConditionalCheckFailedException(failed)) =
                error.as_service_error()
            {
                return Ok(Written::Refused(used_of(failed.item()).unwrap_or(0)));
            }
            Err(DisplayErrorContext(&error).to_string())
        }
    }
}
