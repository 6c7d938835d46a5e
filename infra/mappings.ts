// The event source mappings: the metrics stream -> processor, and the fan-out queue -> fanout.
// Both invoke the function's `live` alias, so a rollback of the alias (RUNBOOK) moves them too.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { Settings, STREAM_MAPPING } from "./config";
import { RustFunction } from "./functions";

export function streamMapping(
    settings: Settings,
    processor: RustFunction,
    streamArn: pulumi.Input<string>,
    onFailureArn: pulumi.Input<string>,
): aws.lambda.EventSourceMapping {
    return new aws.lambda.EventSourceMapping(
        "processor-stream",
        {
            functionName: processor.alias.arn,
            eventSourceArn: streamArn,
            // Off: no new broadcasts; the mapping resumes from its checkpoint when switched on
            // again, skipping (to the stream DLQ) records older than maximumRecordAgeInSeconds.
            enabled: settings.switches.broadcasts,
            startingPosition: STREAM_MAPPING.startingPosition,
            batchSize: STREAM_MAPPING.batchSize,
            maximumBatchingWindowInSeconds: STREAM_MAPPING.maximumBatchingWindowInSeconds,
            parallelizationFactor: STREAM_MAPPING.parallelizationFactor,
            // A failing batch is split in halves until the bad record is alone ...
            bisectBatchOnFunctionError: STREAM_MAPPING.bisectBatchOnFunctionError,
            maximumRetryAttempts: STREAM_MAPPING.maximumRetryAttempts,
            // Records older than this are not broadcast at all: after an outage the backlog is
            // stale state, not news (config.ts has the reasoning for the default).
            maximumRecordAgeInSeconds: settings.stream.maxRecordAgeSeconds,
            // ... and after the retries, or past that age, the batch's shard position goes to
            // the stream DLQ (RUNBOOK: stream-dlq-depth, "Replay failed stream batches").
            destinationConfig: { onFailure: { destinationArn: onFailureArn } },
            // The processor never reports single records: it succeeds with an empty
            // batchItemFailures, or fails the whole invocation (a Query or SendMessage failed),
            // and Lambda retries the whole batch, bisecting it. Kept on so that an empty
            // response is read as "all done" and a future per-record report is honoured.
            functionResponseTypes: ["ReportBatchItemFailures"],
        },
        // The mapping is validated against the role's permissions when it is created.
        { dependsOn: [processor.policy] },
    );
}

export function queueMapping(settings: Settings, fanout: RustFunction, queueArn: pulumi.Input<string>): aws.lambda.EventSourceMapping {
    return new aws.lambda.EventSourceMapping(
        "fanout-queue",
        {
            functionName: fanout.alias.arn,
            eventSourceArn: queueArn,
            // Off: FanoutJobs wait in the queue (retention 4 days) and nothing is posted.
            enabled: settings.switches.deliveries,
            batchSize: settings.fanout.batchSize,
            maximumBatchingWindowInSeconds: 0,
            // Only the FanoutJobs that failed return to the queue (and, past maxReceiveCount, the DLQ).
            functionResponseTypes: ["ReportBatchItemFailures"],
            // Caps concurrent fanout invocations: with FANOUT_CONCURRENCY posts each, this bounds
            // the PostToConnection rate against the account throttle.
            scalingConfig: { maximumConcurrency: settings.fanout.maxConcurrency },
        },
        { dependsOn: [fanout.policy] },
    );
}
