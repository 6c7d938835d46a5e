//! The budget's lanes in the state table: item `budget` / `lanes` holds, for each lane, the
//! epoch µs up to which its slots are taken (`lane0`, `lane1`, ...). One small item, updated in
//! place: a claim is one conditional write, two when another invocation moved the lane first.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::{UpdateItemError, UpdateItemOutput};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{Claim, Granted, Run};

pub struct DynamoLanes {
    client: Client,
    table: String,
}

/// What one conditional write found: where every lane is taken up to, after the write or as
/// the condition found them.
enum Written {
    Done(HashMap<u32, i64>),
    Refused(HashMap<u32, i64>),
}

impl DynamoLanes {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    /// Claims a run of a lane as [`Claim::grant`] says, in at most three conditional writes:
    /// from the floor when the lane is free before it, else after what is taken, each time
    /// with what the last refusal said the lane holds.
    pub async fn claim(&self, claim: Claim) -> Result<Granted, String> {
        let mut taken = claim.taken;
        let mut lanes = HashMap::new();
        for _ in 0..3 {
            let run = claim.grant(taken);
            if run.count == 0 {
                break;
            }
            let write = if taken <= claim.floor {
                // The lane is free before the floor: the run starts at the floor.
                self.write(
                    claim.lane,
                    "SET #lane = :end",
                    "attribute_not_exists(#lane) OR #lane <= :floor",
                )
                .expression_attribute_values(":end", number(run.end()))
                .expression_attribute_values(":floor", number(claim.floor))
            } else {
                // Taken past the floor: the run goes after what is taken, if that is in reach.
                self.write(
                    claim.lane,
                    "ADD #lane :length",
                    "#lane > :floor AND #lane <= :ceiling",
                )
                .expression_attribute_values(":length", number(run.end() - run.start))
                .expression_attribute_values(":floor", number(claim.floor))
                .expression_attribute_values(":ceiling", number(claim.ceiling))
            };
            match written(write.send().await)? {
                Written::Done(after) => {
                    let end = after.get(&claim.lane).copied().unwrap_or(run.end());
                    let length = run.end() - run.start;
                    return Ok(Granted {
                        run: Run {
                            start: end - length,
                            ..run
                        },
                        taken: after,
                    });
                }
                Written::Refused(found) => {
                    taken = found.get(&claim.lane).copied().unwrap_or(0);
                    lanes = found;
                }
            }
        }
        Ok(Granted {
            run: claim.grant(i64::MAX),
            taken: lanes,
        })
    }

    /// A conditional update of lane `lane` (`#lane`).
    fn write(&self, lane: u32, update: &str, condition: &str) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S("budget".into()))
            .key("sk", AttributeValue::S("lanes".into()))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#lane", format!("lane{lane}"))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
    }
}

fn number(value: i64) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// Where each lane of the item is taken up to.
fn lanes_of(item: Option<&HashMap<String, AttributeValue>>) -> HashMap<u32, i64> {
    item.into_iter()
        .flatten()
        .filter_map(|(name, value)| {
            let lane = name.strip_prefix("lane")?.parse().ok()?;
            Some((lane, value.as_n().ok()?.parse().ok()?))
        })
        .collect()
}

fn written<R: std::fmt::Debug>(
    result: Result<UpdateItemOutput, SdkError<UpdateItemError, R>>,
) -> Result<Written, String> {
    match result {
        Ok(output) => Ok(Written::Done(lanes_of(output.attributes()))),
        Err(error) => {
            if let Some(UpdateItemError::ConditionalCheckFailedException(failed)) =
                error.as_service_error()
            {
                return Ok(Written::Refused(lanes_of(failed.item())));
            }
            Err(DisplayErrorContext(&error).to_string())
        }
    }
}
