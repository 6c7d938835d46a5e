// Conflated broadcast rounds (BROADCAST_MODE=rounds, rounds/ and processor/src/conflation.rs):
// what wakes the processor besides the stream, and what the processor and the fanout may do to
// the broadcast state table and the tick queue.
//
//   stream batch  -> processor: records changes as pending, starts a round if none is in flight
//   tick queue    -> processor: a round ended (sent by the fanout that finished its last job, or
//                    the processor) or a round's lease ran out (sent delayed when it started)
//   schedule      -> processor: every minute, the safety tick; it also emits RoundAge and
//                    PendingEntities, which round-stuck reads (no data: the schedule is broken)
//
// The same resources and grants exist in batch mode, where the processor only keeps each
// entity's latest change in the table (the snapshots' source) and the fanout's posting budget
// still uses it: switching modes is one variable. The message function reads the entities for
// snapshots, and nothing else of the table.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { roundsActive, Settings, TICK_MAPPING, TICK_SCHEDULE, tickScheduleName } from "./config";
import { RustFunction } from "./functions";
import { allow, Statement } from "./iam";

/**
 * The partition keys (`pk`) of the state table each function touches (rounds/src/store.rs,
 * fanout/src/budget/dynamo.rs): the processor records and clears changes and starts rounds (in
 * batch mode it keeps the entities only); the fanout counts jobs done, ends rounds and claims
 * runs of the budget's lanes, and never reads or writes a change; the message function reads the entities
 * (snapshot/src/cache.rs, `RoundStore::entities`).
 */
export const STATE_KEYS = {
    processor: ["entity", "pending", "round"],
    fanout: ["round", "done#*", "budget"],
    message: ["entity"],
} as const;

/** The processor: changes, rounds and ticks. */
export function processorRoundStatements(stateTableArn: pulumi.Input<string>, tickQueueArn: pulumi.Input<string>): Statement[] {
    return [
        // GetItem (the round), PutItem (a change, the round's start), UpdateItem (the round's
        // progress and end), DeleteItem (a change once broadcast), Query (what is pending).
        allow(
            "BroadcastState",
            ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:Query"],
            [stateTableArn],
            { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [...STATE_KEYS.processor] } },
        ),
        allow("SendTicks", ["sqs:SendMessage"], [tickQueueArn]),
        // What the tick queue's mapping polls with (the function's role), as for the fanout's.
        allow("ConsumeTicks", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [tickQueueArn]),
    ];
}

/**
 * The message function's snapshots: a Query of the `entity` partition (consistent, paged),
 * nothing else of the state table.
 */
export function messageSnapshotStatements(stateTableArn: pulumi.Input<string>): Statement[] {
    return [
        allow("ReadEntities", ["dynamodb:Query"], [stateTableArn], {
            "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [...STATE_KEYS.message] },
        }),
    ];
}

/** The fanout: the posting budget's lanes, done jobs, the end of a round, its tick. */
export function fanoutRoundStatements(stateTableArn: pulumi.Input<string>, tickQueueArn: pulumi.Input<string>): Statement[] {
    return [
        // PutItem: a job's done marker; UpdateItem: the round's count and end, a run of a budget lane.
        allow("BudgetAndRoundProgress", ["dynamodb:PutItem", "dynamodb:UpdateItem"], [stateTableArn], {
            "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [...STATE_KEYS.fanout] },
        }),
        allow("SendRoundEndedTicks", ["sqs:SendMessage"], [tickQueueArn]),
    ];
}

/**
 * The tick queue -> processor's live alias. Off with config broadcastsEnabled false: ticks then
 * wait (a day) and start nothing.
 */
export function tickMapping(settings: Settings, processor: RustFunction, tickQueueArn: pulumi.Input<string>): aws.lambda.EventSourceMapping {
    return new aws.lambda.EventSourceMapping(
        "processor-ticks",
        {
            functionName: processor.alias.arn,
            eventSourceArn: tickQueueArn,
            enabled: settings.switches.broadcasts,
            batchSize: TICK_MAPPING.batchSize,
            maximumBatchingWindowInSeconds: TICK_MAPPING.maximumBatchingWindowInSeconds,
            // The processor answers a batch of ticks with an empty batchItemFailures, or fails
            // the invocation (and the batch comes back after the visibility timeout).
            functionResponseTypes: ["ReportBatchItemFailures"],
            scalingConfig: { maximumConcurrency: TICK_MAPPING.maximumConcurrency },
        },
        { dependsOn: [processor.policy] },
    );
}

export interface TickSchedule {
    rule: aws.cloudwatch.EventRule;
    permission: aws.lambda.Permission;
    target: aws.cloudwatch.EventTarget;
}

/**
 * Every minute, EventBridge invokes the processor's live alias: it starts a round if one should
 * have started (a lost tick, a round whose lease ran out with nobody to notice), and emits the
 * rounds' state. Enabled in rounds mode while broadcasts are on; otherwise there is nothing for
 * it to do, and round-stuck does not count its silence.
 */
export function tickSchedule(settings: Settings, processor: RustFunction): TickSchedule {
    const rule = new aws.cloudwatch.EventRule("processor-tick", {
        name: tickScheduleName(settings),
        description: "The rounds' safety tick: starts a round that should have started, emits RoundAge (RUNBOOK.md, round-stuck)",
        scheduleExpression: TICK_SCHEDULE,
        state: roundsActive(settings) ? "ENABLED" : "DISABLED",
    });
    const permission = new aws.lambda.Permission("processor-tick", {
        action: "lambda:InvokeFunction",
        function: processor.function.name,
        qualifier: processor.alias.name,
        principal: "events.amazonaws.com",
        sourceArn: rule.arn,
    });
    // A failed run is not retried, by EventBridge or by Lambda: the next one comes within the
    // minute, and a retry would overlap it. (EventBridge is the only asynchronous caller of the
    // processor: the mappings invoke it synchronously.)
    new aws.lambda.FunctionEventInvokeConfig("processor", {
        functionName: processor.function.name,
        qualifier: processor.alias.name,
        maximumRetryAttempts: 0,
        maximumEventAgeInSeconds: 60,
    });
    const target = new aws.cloudwatch.EventTarget(
        "processor-tick",
        {
            rule: rule.name,
            arn: processor.alias.arn,
            retryPolicy: { maximumRetryAttempts: 0, maximumEventAgeInSeconds: 60 },
        },
        // EventBridge may invoke the alias from its first event on.
        { dependsOn: [permission] },
    );
    return { rule, permission, target };
}
